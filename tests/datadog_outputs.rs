//! The session outputs against the fake: exact requests per action, ordering, keys never leaked, bounded exit.

mod support;

use ddcoterm::cmd::outputs;
use ddcoterm::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use serial_test::serial;
use std::time::{Duration, Instant};
use support::{contains, Fake, Home, API_KEY};

fn meta(id: &str) -> SessionMeta {
    SessionMeta {
        session_id: id.into(),
        command: "kubectl get pods".into(),
        user: "ana".into(),
        hostname: "bastion-1".into(),
        cwd: "/srv".into(),
        actions: vec![Action::Record, Action::Logs, Action::ProcessInfo],
        rule: Some("/etc/ddcoterm/config.yaml:0".into()),
        started_at: 1_764_000_000,
        width: 80,
        height: 24,
        tags: vec!["team:sre".into()],
        ssh: None,
    }
}

fn event(id: &str) -> ProcessEvent {
    ProcessEvent {
        session_id: id.into(),
        command: "kubectl get pods".into(),
        executable: "kubectl".into(),
        cwd: "/srv".into(),
        user: "ana".into(),
        hostname: "bastion-1".into(),
        exit_code: Some(0),
        started_at_ms: 1_764_000_000_500,
        duration_ms: 120,
        tags: vec![],
    }
}

/// Runs a small session through the outputs, as the recorder does.
fn run_session(outs: &mut [Box<dyn Output>], id: &str, chunks: usize) {
    let m = meta(id);
    for o in outs.iter_mut() {
        o.session_start(&m).unwrap();
    }
    for seq in 0..chunks as u64 {
        let line = format!("[{}.5, \"o\", \"line {seq}\\r\\n\"]\n", seq);
        for o in outs.iter_mut() {
            o.cast_chunk(seq, line.as_bytes()).unwrap();
        }
    }
    for o in outs.iter_mut() {
        o.process_event(&event(id)).unwrap();
        o.snapshot(&Snapshot {
            session_id: id.into(),
            timestamp_ms: 1_764_000_001_000,
            lines: vec!["NAME READY".into(), "web-1 1/1".into()],
        })
        .unwrap();
        o.session_end(&m, 0, 1234).unwrap();
    }
}

#[test]
#[serial]
fn record_action_streams_create_then_chunks_then_end() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let loaded = home.loaded();
    let mut outs = outputs::build(&loaded, &ActionSet::new([Action::Record])).unwrap();
    run_session(&mut outs, "0193b7e2-0000-7000-8000-000000000001", 3);
    let rep = outputs::finish(&loaded);
    assert!(!rep.needs_attention(), "{rep}");

    let reqs = fake.accepted();
    let paths: Vec<String> = reqs.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let base = "/api/unstable/coterm/sessions";
    let id = "0193b7e2-0000-7000-8000-000000000001";
    assert_eq!(
        paths,
        vec![
            format!("POST {base}"),
            format!("PUT {base}/{id}/chunks/0"),
            format!("PUT {base}/{id}/chunks/1"),
            format!("PUT {base}/{id}/chunks/2"),
            format!("POST {base}/{id}/end"),
        ]
    );
    for r in &reqs {
        assert_eq!(r.header("dd-api-key"), Some(API_KEY));
        assert_eq!(r.header("dd-application-key"), None, "app key only where needed");
    }
    let create = reqs[0].json();
    assert_eq!(create["session_id"], id);
    assert_eq!(create["command"], "kubectl get pods");
    assert_eq!(create["actions"], serde_json::json!(["record", "logs", "process_info"]));
    assert_eq!(reqs[1].header("content-encoding"), Some("gzip"));
    assert_eq!(reqs[1].header("content-type"), Some("application/x-asciicast"));
    let chunks = fake.session_chunks(id);
    assert_eq!(chunks[&1], b"[1.5, \"o\", \"line 1\\r\\n\"]\n");
    assert_eq!(
        fake.session_end(id).unwrap(),
        serde_json::json!({"exit_code": 0, "duration_ms": 1234, "chunks": 3})
    );
    assert!(home.loaded().settings.spool.dir.is_none());
    assert_eq!(
        std::fs::read_dir(home.spool())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "rec"))
            .count(),
        0
    );
}

#[test]
#[serial]
fn process_info_sends_one_event_with_tags() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let loaded = home.loaded();
    let mut outs = outputs::build(&loaded, &ActionSet::new([Action::ProcessInfo])).unwrap();
    run_session(&mut outs, "s-pi", 2);
    outputs::finish(&loaded);
    let reqs = fake.accepted();
    assert_eq!(reqs.len(), 1, "{:?}", reqs.iter().map(|r| &r.path).collect::<Vec<_>>());
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/v1/events"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["source_type_name"], "coterm_process_info");
    assert_eq!(v["alert_type"], "info");
    assert_eq!(v["host"], "bastion-1");
    let tags: Vec<String> =
        v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    for t in ["session_id:s-pi", "executable:kubectl", "exit_code:0", "user:ana", "host:bastion-1"] {
        assert!(tags.iter().any(|x| x == t), "{t} missing from {tags:?}");
    }
}

#[test]
#[serial]
fn logs_action_sends_gzip_json_arrays() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let loaded = home.loaded();
    let mut outs = outputs::build(&loaded, &ActionSet::new([Action::Logs])).unwrap();
    run_session(&mut outs, "s-logs", 1);
    outputs::finish(&loaded);
    let reqs = fake.accepted();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/v2/logs"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let logs = r.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["service"], "ddcoterm");
    assert_eq!(logs[0]["ddsource"], "coterm");
    assert_eq!(logs[0]["message"], "NAME READY\nweb-1 1/1");
    assert_eq!(logs[0]["hostname"], "bastion-1");
    assert!(logs[0]["ddtags"].as_str().unwrap().contains("session_id:s-logs"));
}

#[test]
#[serial]
fn no_datadog_action_builds_no_output() {
    let home = Home::new();
    home.config("http://127.0.0.1:9", API_KEY, "");
    let outs = outputs::build(&home.loaded(), &ActionSet::new([Action::Approval])).unwrap();
    assert!(outs.is_empty());
    assert!(!outputs::finish(&home.loaded()).needs_attention());
}

#[test]
#[serial]
fn dead_server_exit_waits_at_most_flush_timeout_and_keeps_everything_without_keys() {
    let down = support::closed_port_uri();
    let home = Home::new();
    home.config(&down, API_KEY, "spool:\n  flush_timeout: 700ms\n");
    let loaded = home.loaded();
    let mut outs =
        outputs::build(&loaded, &ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo]))
            .unwrap();
    run_session(&mut outs, "s-down", 4);
    let start = Instant::now();
    let rep = outputs::finish(&loaded);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(650) && waited < Duration::from_millis(1500), "{waited:?}");
    assert!(rep.needs_attention());
    assert!(rep.to_string().contains("spool flush"), "{rep}");
    // create + 4 chunks + event + logs + end
    let recs = std::fs::read_dir(home.spool())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "rec"))
        .count();
    assert_eq!(recs, 8);
    let bytes = home.spool_bytes();
    assert!(!contains(&bytes, API_KEY) && !contains(&bytes, support::APP_KEY), "a key reached the spool");

    // Server comes back: `spool flush` delivers everything, create first.
    let fake = Fake::start();
    home.config(&fake.uri(), API_KEY, "");
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("delivered 8 record(s)"));
    let chunks = fake.session_chunks("s-down");
    assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(fake.session_end("s-down").unwrap()["chunks"], 4);
    assert!(fake.requests().iter().all(|r| r.status != 404), "a chunk arrived before its session");
    for o in [&out.stdout, &out.stderr] {
        assert!(!contains(o, API_KEY));
    }
}

#[test]
#[serial]
fn no_api_key_keeps_the_session_spooled_and_says_why() {
    let home = Home::new();
    std::fs::write(home.home().join("config.yaml"), "connection_config:\n  host: http://127.0.0.1:9\n")
        .unwrap();
    let loaded = home.loaded();
    let mut outs = outputs::build(&loaded, &ActionSet::new([Action::ProcessInfo])).unwrap();
    run_session(&mut outs, "s-nokey", 0);
    let start = Instant::now();
    let rep = outputs::finish(&loaded);
    assert!(start.elapsed() < Duration::from_millis(200));
    assert_eq!(rep.left, 1);
    assert!(rep.to_string().contains("DD_API_KEY"), "{rep}");
}

/// A recorded command with bulk output, end to end: the writer thread's chunks reach the fake in order,
/// compressed on the way out, and together they are exactly the event lines of the local `.cast` file.
#[test]
#[serial]
fn a_recorded_command_uploads_exactly_its_cast_lines_in_ordered_chunks() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "spool:\n  flush_timeout: 20s\n");
    // About 2.3 MB of event lines: three chunks.
    let out = home.cmd().args(["--", "sh", "-c", "seq 1 300000; echo done"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.ends_with(b"299999\n300000\ndone\n"), "the screen got everything");
    let ids = fake.session_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let cast = std::fs::read(home.home().join("recordings").join(format!("{}.cast", ids[0]))).unwrap();
    let header_end = cast.iter().position(|&b| b == b'\n').unwrap() + 1;
    let chunks = fake.session_chunks(&ids[0]);
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), (0..chunks.len() as u64).collect::<Vec<_>>());
    let uploaded: Vec<u8> = chunks.values().flatten().copied().collect();
    assert!(uploaded == cast[header_end..], "uploaded lines differ from the .cast file");
    assert_eq!(fake.session_end(&ids[0]).unwrap()["chunks"], chunks.len());
    let puts: Vec<_> = fake.accepted().into_iter().filter(|r| r.path.contains("/chunks/")).collect();
    assert!(puts.iter().all(|r| r.header("content-encoding") == Some("gzip")), "chunks go out gzip");
    assert!(puts.iter().all(|r| r.body.len() * 2 < r.decoded().len()), "and really compressed");
}
