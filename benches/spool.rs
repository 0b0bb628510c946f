//! `make bench` part for the spool: flush throughput to the fake on loopback, enqueue cost, and the exit
//! latency a recorded session's uploads add with the session server up (the baseline) and down (connection
//! refused: not waited for, whatever `spool.flush_timeout` says), as a ratio measured in the same run.

// support/mod.rs builds its world with the tests' one harness.
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use ddcoterm::datadog::ClientOptions;
use ddcoterm::model::{Action, ActionSet, SessionMeta};
use ddcoterm::spool::{self, Class, FlushOptions, Record, Spool};
use ddcoterm::upload::kinds::KIND_EVENT;
use ddcoterm::upload::{DatadogDeliver, Uploader};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::server::Server;
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

/// Milliseconds `Uploader::finish` takes after a 21-chunk recorded session uploading to `server_url`.
fn exit_latency(label: &str, server_url: &str, token_file: &std::path::Path, flush_timeout: &str) -> f64 {
    let home = Home::new();
    home.config(
        "http://127.0.0.1:9",
        API_KEY,
        &format!(
            "spool:\n  flush_timeout: {flush_timeout}\nserver:\n  url: {server_url}\n  token_file: {}\n",
            token_file.display()
        ),
    );
    // Datadog unset (an unreachable one would stop the wait by itself): only the server is measured.
    let mut loaded = home.loaded();
    loaded.settings.connection_config.api_key = None;
    let up = Arc::new(Uploader::new(&loaded).unwrap());
    let header = b"{\"version\":2,\"width\":80,\"height\":24}\n".to_vec();
    let actions = ActionSet::new([Action::Record, Action::ProcessInfo]);
    let mut out = up.session_output(&actions, header, None).expect("a server is configured");
    let meta = SessionMeta {
        session_id: format!("0193b7e2-bench-{}", rand_suffix()),
        command: "true".into(),
        ..Default::default()
    };
    out.session_start(&meta).unwrap();
    for seq in 0..20 {
        out.cast_chunk(seq, b"[0.1, \"o\", \"hello\\r\\n\"]\n").unwrap();
    }
    out.session_end(&meta, 0, 10).unwrap();
    let start = Instant::now();
    let rep = up.finish();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    println!("added exit latency, {label:<13} {ms:>8.1} ms (spool.flush_timeout {flush_timeout}; {rep})");
    ms
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    flush_throughput(2000, 1);
    flush_throughput(2000, 4);
    let server = Server::start();
    let up = exit_latency("server up:", &server.url, &server.token_file(), "3s");
    let down = exit_latency("server down:", &support::closed_port_uri(), &server.token_file(), "3s");
    println!(
        "exit latency ratio, server down / server up: {:.2}x (before: ~3000 ms down, the full timeout)",
        down / up.max(0.001)
    );
}
