//! `make bench` part for the spool: flush throughput to the fake on loopback, enqueue cost, and the exit
//! latency a recorded session adds when the server is down (bounded by `spool.flush_timeout`).

#[path = "../tests/support/mod.rs"]
mod support;

use ddcoterm::cmd::outputs::{self, DatadogDeliver, KIND_EVENT};
use ddcoterm::datadog::ClientOptions;
use ddcoterm::model::{Action, ActionSet, SessionMeta};
use ddcoterm::spool::{self, Class, FlushOptions, Record, Spool};
use std::time::{Duration, Instant};
use support::{Fake, Home, API_KEY};

fn fill(s: &Spool, n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let body = format!(r#"{{"title":"bench {i}","text":"t","tags":[]}}"#).into_bytes();
        s.enqueue(Record::new(KIND_EVENT, Class::Normal, body)).unwrap();
    }
    start.elapsed()
}

fn flush_throughput(n: usize, workers: usize) {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let s = Spool::open(home.spool(), 0).unwrap();
    let enq = fill(&s, n);
    let d = DatadogDeliver::from_loaded(&home.loaded(), ClientOptions::default()).unwrap();
    let opts = FlushOptions { workers, ..Default::default() };
    let start = Instant::now();
    let rep = spool::flush(&s, &d, &opts, &|_, _| {}).unwrap();
    let took = start.elapsed();
    assert_eq!(rep.delivered as usize, n);
    println!(
        "spool enqueue (fsync'd):   {:>8.0} records/s ({n} records in {:.2?})",
        n as f64 / enq.as_secs_f64(),
        enq
    );
    println!(
        "spool flush, {workers} worker(s):  {:>8.0} records/s ({n} records in {:.2?}, loopback fake)",
        n as f64 / took.as_secs_f64(),
        took
    );
}

fn exit_latency(label: &str, host: &str, flush_timeout: &str) {
    let home = Home::new();
    home.config(host, API_KEY, &format!("spool:\n  flush_timeout: {flush_timeout}\n"));
    let loaded = home.loaded();
    let mut outs =
        outputs::build(&loaded, &ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo]))
            .unwrap();
    let meta =
        SessionMeta { session_id: "0193b7e2-bench".into(), command: "true".into(), ..Default::default() };
    for o in outs.iter_mut() {
        o.session_start(&meta).unwrap();
        for seq in 0..20 {
            o.cast_chunk(seq, b"[0.1, \"o\", \"hello\\r\\n\"]\n").unwrap();
        }
        o.session_end(&meta, 0, 10).unwrap();
    }
    let start = Instant::now();
    let rep = outputs::finish(&loaded);
    println!(
        "added exit latency, {label:<13} {:>8.0} ms (spool.flush_timeout {flush_timeout}; {})",
        start.elapsed().as_secs_f64() * 1000.0,
        rep
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    flush_throughput(2000, 1);
    flush_throughput(2000, 4);
    let fake = Fake::start();
    exit_latency("server up:", &fake.uri(), "3s");
    exit_latency("server down:", &support::closed_port_uri(), "3s");
    exit_latency("server down:", &support::closed_port_uri(), "1s");
}
