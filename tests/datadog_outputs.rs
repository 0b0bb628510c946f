//! The session's Datadog outputs against the fake: exact requests per action, keys never leaked, bounded
//! exit, and no recording ever sent to Datadog (recordings go to the session server: tests/server_upload.rs).

mod harness;
mod support;

use ddcoterm::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use ddcoterm::upload::Uploader;
use serial_test::serial;
use std::sync::Arc;
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
        review: Default::default(),
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

/// The uploader and the session's outputs for `actions`, as `guard/session.rs` builds them.
fn outputs(loaded: &ddcoterm::config::Loaded, actions: &[Action]) -> (Arc<Uploader>, Vec<Box<dyn Output>>) {
    let up = Arc::new(Uploader::new(loaded).unwrap());
    let header = b"{\"version\":2,\"width\":80,\"height\":24}\n".to_vec();
    let outs =
        up.session_output(&ActionSet::new(actions.iter().copied()), header, None).into_iter().collect();
    (up, outs)
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

fn spooled(home: &Home) -> usize {
    std::fs::read_dir(home.spool())
        .map(|rd| rd.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "rec")).count())
        .unwrap_or(0)
}

#[test]
#[serial]
fn record_without_a_server_sends_datadog_one_session_event_and_no_recording() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let loaded = home.loaded();
    let (up, mut outs) = outputs(&loaded, &[Action::Record]);
    run_session(&mut outs, "0193b7e2-0000-7000-8000-000000000001", 3);
    let rep = up.finish();
    assert!(!rep.needs_attention(), "{rep}");
    let reqs = fake.accepted();
    let paths: Vec<String> = reqs.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, vec!["POST /api/v1/events"], "one session event, no chunk anywhere");
    let v = reqs[0].json();
    assert_eq!(v["source_type_name"], "coterm_session");
    assert!(!v["text"].as_str().unwrap().contains("/sessions/"), "no server, no link: {v}");
    assert_eq!(reqs[0].header("dd-api-key"), Some(API_KEY));
    assert!(fake.requests().iter().all(|r| !r.path.contains("unstable")), "no undocumented endpoint");
    assert_eq!(spooled(&home), 0);
}

#[test]
#[serial]
fn process_info_sends_one_event_with_tags() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let loaded = home.loaded();
    let (up, mut outs) = outputs(&loaded, &[Action::ProcessInfo]);
    run_session(&mut outs, "s-pi", 2);
    up.finish();
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
    let (up, mut outs) = outputs(&loaded, &[Action::Logs]);
    run_session(&mut outs, "s-logs", 1);
    up.finish();
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
    let (up, outs) = outputs(&home.loaded(), &[Action::Approval]);
    assert!(outs.is_empty());
    assert!(!up.finish().needs_attention());
}

#[test]
#[serial]
fn refused_connections_cost_the_exit_nothing_and_keep_everything_without_keys() {
    let down = support::closed_port_uri();
    let home = Home::new();
    home.config(&down, API_KEY, "spool:\n  flush_timeout: 3s\n");
    let loaded = home.loaded();
    let (up, mut outs) = outputs(&loaded, &[Action::Record, Action::Logs, Action::ProcessInfo]);
    run_session(&mut outs, "s-down", 4);
    let start = Instant::now();
    let rep = up.finish();
    let waited = start.elapsed();
    // Connection refused is known at once: the command does not sit out `spool.flush_timeout`.
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    assert!(rep.needs_attention());
    assert!(rep.to_string().contains("spool flush"), "{rep}");
    // process event + logs + session event (no server: no recording records)
    assert_eq!(spooled(&home), 3);
    let bytes = home.spool_bytes();
    assert!(!contains(&bytes, API_KEY) && !contains(&bytes, support::APP_KEY), "a key reached the spool");

    // Datadog comes back: `spool flush` delivers everything.
    let fake = Fake::start();
    home.config(&fake.uri(), API_KEY, "");
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("delivered 3 record(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for o in [&out.stdout, &out.stderr] {
        assert!(!contains(o, API_KEY));
    }
}

#[test]
#[serial]
fn no_api_key_and_no_server_write_nothing_to_send() {
    let home = Home::new();
    std::fs::write(home.home().join("config.yaml"), "connection_config:\n  host: http://127.0.0.1:9\n")
        .unwrap();
    let loaded = home.loaded();
    let (up, outs) = outputs(&loaded, &[Action::ProcessInfo, Action::Record, Action::Logs]);
    assert!(outs.is_empty(), "no destination: nothing is spooled for one");
    let start = Instant::now();
    let rep = up.finish();
    assert!(start.elapsed() < Duration::from_millis(200));
    assert_eq!(rep.left(), 0);
    assert_eq!(spooled(&home), 0);
}
