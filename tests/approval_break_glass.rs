//! Break glass: the audit record is on disk (spool, class audit) before the gate lets the command run, it is
//! sent as a warning event when Datadog is up and by `ddcoterm spool flush` when it was not; no reason and no
//! terminal refuses when a reason is required.

mod harness;
mod support;

use ddcoterm::guard::gate;
use ddcoterm::model::{Action, ActionSet};
use ddcoterm::policy::{Decision, DecisionSource, Invocation};
use serial_test::serial;
use std::collections::BTreeMap;
use std::process::Stdio;
use support::{Fake, Home, API_KEY};

fn invocation() -> Invocation {
    Invocation {
        executable: "kubectl".into(),
        args: vec!["scale".into(), "deploy/web".into(), "--context".into(), "prod-1".into()],
        env: BTreeMap::new(),
        cwd: "/srv".into(),
        user: "alice".into(),
        hostname: "bastion-1".into(),
    }
}

fn decision() -> Decision {
    Decision {
        warnings: Vec::new(),
        rule: None,
        actions: ActionSet::new([Action::Logs, Action::Approval]),
        source: DecisionSource::Rule,
        user_message: None,
        approver_message: None,
        errors: Vec::new(),
        context: BTreeMap::from([("k8s_context".to_string(), "prod-1".to_string())]),
    }
}

/// Sets the break-glass variables for one test (tests that touch the environment run serially).
struct BreakGlassEnv;

impl BreakGlassEnv {
    fn on(reason: Option<&str>) -> BreakGlassEnv {
        std::env::set_var("COTERM_BREAK_GLASS", "Yes");
        match reason {
            Some(r) => std::env::set_var("COTERM_BREAK_GLASS_REASON", r),
            None => std::env::remove_var("COTERM_BREAK_GLASS_REASON"),
        }
        BreakGlassEnv
    }
}

impl Drop for BreakGlassEnv {
    fn drop(&mut self) {
        std::env::remove_var("COTERM_BREAK_GLASS");
        std::env::remove_var("COTERM_BREAK_GLASS_REASON");
    }
}

fn audit_files(h: &Home) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(h.spool())
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(".rec")).collect())
        .unwrap_or_default()
}

#[test]
#[serial]
fn online_break_glass_skips_the_wait_forces_recording_and_sends_a_warning_event() {
    let fake = Fake::start();
    let h = Home::new();
    h.config(&fake.uri(), API_KEY, "");
    let _env = BreakGlassEnv::on(Some("prod db on fire"));
    let out =
        gate::require(&h.loaded(), &invocation(), &decision(), "kubectl rules[0] at x:3 (system)", None)
            .expect("break glass lets the command run");
    assert_eq!(out.force, ActionSet::new([Action::Record, Action::ProcessInfo]));
    assert_eq!(
        out.actions(&decision().actions),
        ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo, Action::Approval])
    );
    assert!(out.tags.contains(&"break_glass:true".to_string()), "{:?}", out.tags);
    assert!(fake.cases().is_empty(), "no approval case, no wait");
    let events = fake.accepted_path_prefix("/api/v1/events");
    assert_eq!(events.len(), 1);
    let ev = events[0].json();
    assert_eq!(ev["alert_type"], "warning");
    let tags: Vec<String> = serde_json::from_value(ev["tags"].clone()).unwrap();
    for t in ["break_glass:true", "user:alice", "host:bastion-1"] {
        assert!(tags.contains(&t.to_string()), "{t} in {tags:?}");
    }
    assert!(tags.iter().any(|t| t.starts_with("rule:kubectl_rules[0]")), "{tags:?}");
    let text = ev["text"].as_str().unwrap();
    assert!(text.contains("prod db on fire") && text.contains("kubectl scale deploy/web"), "{text}");
    assert!(audit_files(&h).is_empty(), "delivered records leave the spool");
    let log = std::fs::read_to_string(h.home().join("audit.log")).unwrap();
    assert!(log.contains("break_glass") && log.contains("prod db on fire"));
}

#[test]
#[serial]
fn offline_break_glass_keeps_the_audit_in_the_spool_until_spool_flush() {
    let h = Home::new();
    h.config(&support::closed_port_uri(), API_KEY, "");
    let _env = BreakGlassEnv::on(Some("datadog is down too"));
    let out = gate::require(&h.loaded(), &invocation(), &decision(), "kubectl rules[0]", None)
        .expect("offline break glass still runs");
    assert!(out.tags.contains(&"break_glass:true".to_string()));
    // On disk, fsync'd, before the gate returned (i.e. before the command could start).
    let files = audit_files(&h);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_string_lossy().contains("~a"), "audit class: {files:?}");
    assert!(support::contains(&std::fs::read(&files[0]).unwrap(), "datadog is down too"));

    // Datadog is back: `ddcoterm spool flush` delivers it.
    let fake = Fake::start();
    h.config(&fake.uri(), API_KEY, "");
    let out = h.cmd().args(["spool", "flush"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = fake.accepted_path_prefix("/api/v1/events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json()["alert_type"], "warning");
    assert!(audit_files(&h).is_empty());
}

#[test]
#[serial]
fn break_glass_works_without_any_key() {
    let h = Home::new();
    std::fs::write(h.home().join("config.yaml"), "connection_config:\n  host: app.datadoghq.com\n").unwrap();
    let _env = BreakGlassEnv::on(None);
    let out = gate::require(&h.loaded(), &invocation(), &decision(), "r", None).unwrap();
    assert!(out.tags.contains(&"break_glass:true".to_string()));
    assert_eq!(audit_files(&h).len(), 1, "kept for a later flush");
}

#[test]
fn required_reason_without_a_terminal_refuses() {
    let fake = Fake::start();
    let h = Home::new();
    h.config(
        &fake.uri(),
        API_KEY,
        "break_glass:\n  require_reason: true\nprocess_config:\n  default_actions: []\n",
    );
    let mut c = h.cmd();
    let mut s = std::process::Command::new("setsid");
    s.arg("-w").arg(c.get_program()).args(["approve", "--", "true"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    let _ = &mut c;
    s.env("COTERM_BREAK_GLASS", "1").env_remove("COTERM_BREAK_GLASS_REASON");
    let out = s.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COTERM_BREAK_GLASS_REASON"), "{err}");
    assert!(audit_files(&h).is_empty(), "nothing ran, nothing to audit");
    assert!(fake.cases().is_empty());
}
