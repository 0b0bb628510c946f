//! Nothing lost, nothing twice: injected faults, a killed sender, concurrent senders, permanent errors.

mod harness;
mod support;

use ddcoterm::datadog::ClientOptions;
use ddcoterm::spool::{self, Backoff, Class, FlushOptions, Record, Spool};
use ddcoterm::upload::kinds::KIND_EVENT;
use ddcoterm::upload::DatadogDeliver;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{contains, Fake, Fault, Home, API_KEY};

fn event_body(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "title": format!("record {i}"), "text": "t", "tags": [] }))
        .unwrap()
}

/// Title of every accepted event, with how often it was accepted.
fn accepted_titles(fake: &Fake) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in fake.accepted_path_prefix("/api/v1/events") {
        *m.entry(r.json()["title"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

fn fill(home: &Home, n: usize) -> Spool {
    let s = Spool::open(home.spool(), 0).unwrap();
    for i in 0..n {
        s.enqueue(Record::new(KIND_EVENT, Class::Normal, event_body(i))).unwrap();
    }
    s
}

#[test]
fn thousand_records_with_thirty_percent_faults_arrive_exactly_once() {
    let fake = Fake::start();
    fake.fail_randomly(
        0.30,
        7,
        vec![
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(503),
            Fault::RateLimited { reset_secs: 1 },
            Fault::Delay(Duration::from_millis(800)),
        ],
    );
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let s = fill(&home, 1000);
    let deliver = DatadogDeliver::from_loaded(
        &home.loaded(),
        ClientOptions { connect_timeout: Duration::from_secs(1), timeout: Duration::from_millis(250) },
    )
    .unwrap();
    let opts = FlushOptions {
        workers: 8,
        backoff: Backoff { base: Duration::from_millis(20), max: Duration::from_millis(300) },
        max_attempts: None,
        ..Default::default()
    };
    let rep = spool::flush(&s, &deliver, &opts, &|_, _| {}).unwrap();
    assert_eq!(rep.delivered, 1000, "{rep:?}");
    assert!(rep.failed_attempts > 200, "faults were injected: {}", rep.failed_attempts);
    let titles = accepted_titles(&fake);
    assert_eq!(titles.len(), 1000, "every record arrived");
    let dups: Vec<_> = titles.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    assert!(s.entries().unwrap().is_empty());
    let statuses: std::collections::BTreeSet<u16> = fake.requests().iter().map(|r| r.status).collect();
    for st in [429, 500, 503] {
        assert!(statuses.contains(&st), "{st} injected: {statuses:?}");
    }
}

#[test]
fn a_sigkilled_sender_loses_nothing() {
    let fake = Fake::start();
    // Every request hangs: the flush is stuck mid-send when it is killed.
    fake.fail_randomly(1.0, 1, vec![Fault::Delay(Duration::from_secs(30))]);
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    fill(&home, 40);
    let mut child = home.cmd().args(["spool", "flush"]).spawn().unwrap();
    let start = std::time::Instant::now();
    while fake.requests().len() < 4 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(fake.requests().len() >= 4, "the sender was sending");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    child.wait().unwrap();
    assert_eq!(
        Spool::open(home.spool(), 0).unwrap().entries().unwrap().len(),
        40,
        "all records still spooled"
    );

    fake.stop_failing();
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let titles = accepted_titles(&fake);
    assert_eq!(titles.len(), 40);
    assert!(titles.values().all(|n| *n == 1));
}

#[test]
fn two_concurrent_flush_processes_do_not_duplicate() {
    let fake = Fake::start();
    fake.fail_randomly(0.2, 3, vec![Fault::Status(503), Fault::Status(500)]);
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    fill(&home, 300);
    let a = home
        .cmd()
        .args(["spool", "flush"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let b = home
        .cmd()
        .args(["spool", "flush"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for mut c in [a, b] {
        c.wait().unwrap();
    }
    // A record unlucky four times in a row is left for the next flush, as a timer would do.
    fake.stop_failing();
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let titles = accepted_titles(&fake);
    assert_eq!(titles.len(), 300);
    let dups: Vec<_> = titles.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
}

#[test]
fn a_refused_key_keeps_every_record_waiting_and_says_why_without_leaking_it() {
    let fake = Fake::start();
    let home = Home::new();
    let wrong = "wrongkey-9f8e7d6c5b4a39281706f5e4";
    home.config(&fake.uri(), wrong, "");
    fill(&home, 3);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    // 403 is not permanent: a rotated key must not throw records away. They wait (EX_TEMPFAIL).
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("Forbidden"), "{err}");
    assert!(err.contains("3 record(s)"), "{err}");

    let st = home.cmd().args(["spool", "status", "--json"]).output().unwrap();
    assert!(st.status.success());
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["count"], 3);
    assert_eq!(v["permanent"], 0, "no dead letter for a refused key");
    assert_eq!(v["credentials_refused"], 3);
    assert_eq!(v["by_kind"][KIND_EVENT]["count"], 3);
    assert!(v["records"][0]["last_error"].as_str().unwrap().contains("Forbidden"));
    let text = home.cmd().args(["spool", "status"]).output().unwrap();
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("3 record(s)") && t.contains("credentials were refused"), "{t}");
    for o in [&out.stdout, &out.stderr, &st.stdout, &text.stdout] {
        assert!(!contains(o, wrong), "key leaked");
    }
    assert!(!contains(&home.spool_bytes(), wrong), "key in spool");

    // Fixed key: the same records go through on the next flush.
    home.config(&fake.uri(), API_KEY, "");
    let out = home.cmd().args(["spool", "flush", "--progress"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(accepted_titles(&fake).len(), 3);
}

#[test]
fn a_permanent_refusal_is_a_dead_letter_that_blocks_nothing_and_can_be_put_back() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    fill(&home, 3);
    fake.fail_next([Fault::Status(400)]);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("delivered 2 record(s); 1 refused for good (dead letters); 0 still waiting"),
        "{stdout}"
    );
    assert_eq!(accepted_titles(&fake).len(), 2, "the records after the refused one went");
    let v: serde_json::Value =
        serde_json::from_slice(&home.cmd().args(["spool", "status", "--json"]).output().unwrap().stdout)
            .unwrap();
    assert_eq!((v["count"].as_u64(), v["permanent"].as_u64()), (Some(0), Some(1)), "{v}");
    assert_eq!(v["dead_letters"][0]["status"], 400);
    // Not retried by itself: a plain flush finds nothing to send.
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(accepted_titles(&fake).len(), 2);
    // Put back once fixed: delivered.
    let out = home.cmd().args(["spool", "flush", "--dead-letters"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(accepted_titles(&fake).len(), 3);
}

#[test]
fn server_down_flush_exits_tempfail_and_keeps_records() {
    let home = Home::new();
    home.config(&support::closed_port_uri(), API_KEY, "");
    fill(&home, 2);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("still waiting"));
    assert_eq!(Spool::open(home.spool(), 0).unwrap().entries().unwrap().len(), 2);
}

#[test]
fn empty_spool_status_and_flush() {
    let home = Home::new();
    home.config("http://127.0.0.1:9", API_KEY, "");
    let out = home.cmd().args(["spool", "status"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing waits"));
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success());
}
