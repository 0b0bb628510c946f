//! The CoTerm docs' rules example through a real shim and PTY: `kubectl scale` in a prod context waits for
//! a Case Management approval (messages to user and approver), anything else does not ask.

mod harness;
mod support;

use harness::{exit_code, World};
use std::time::{Duration, Instant};
use support::{Fake, API_KEY, APP_KEY};

const APPROVER: &str = "00000000-0000-0000-0000-0000000000b0";

/// The docs' rules example, as kept in the repository (a copy of shared/reference/coterm-rules.yaml).
fn docs_rules() -> String {
    harness::reference("coterm-rules.yaml")
}

fn world(fake: &Fake) -> World {
    world_at(&fake.uri())
}

fn world_at(host: &str) -> World {
    let w = World::new();
    w.user_config(&format!(
        "{}connection_config:\n  host: {}\n  api_key: {API_KEY}\n  app_key: {APP_KEY}\napproval:\n  poll_interval: 50ms\n",
        docs_rules(),
        host
    ))
    .kubeconfig("staging-1")
    .fake("kubectl");
    w
}

fn pty(w: &World, args: &[&str]) -> expectrl::Session {
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(args);
    harness::pty(c)
}

#[test]
fn docs_rules_example_prod_scale_waits_for_approval_then_runs() {
    let fake = Fake::start();
    let w = world(&fake);
    let mut s = pty(&w, &["scale", "deploy/web", "--replicas=3", "--context", "prod-1"]);
    s.expect("Proceed with caution. This command may disrupt your Kubernetes cluster setup.").unwrap();
    s.expect("approval requested: case CT-1").unwrap();
    let case = fake.cases()[0].clone();
    assert!(
        case.description.contains("Ensure that the user has documented a rollback plan"),
        "{}",
        case.description
    );
    assert!(case.description.contains("`k8s_context` = `prod-1`"), "{}", case.description);
    assert!(case.description.contains("kubectl scale deploy/web --replicas=3 --context prod-1"));
    assert!(
        case.description.contains("kubectl rules[0]"),
        "the deciding rule is named: {}",
        case.description
    );
    let end = Instant::now() + Duration::from_secs(10);
    while fake.requests().iter().filter(|r| r.path == format!("/api/v2/cases/{}", case.id)).count() < 2 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(20));
    }
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    s.expect("REAL kubectl [scale] [deploy/web] [--replicas=3] [--context] [prod-1]").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn docs_rules_example_prod_scale_declined_does_not_run() {
    let fake = Fake::start();
    let w = world(&fake);
    let mut s = pty(&w, &["scale", "deploy/web", "--context", "prod-1"]);
    s.expect("approval requested: case CT-1").unwrap();
    fake.set_case_status("CT-1", "DECLINED", APPROVER);
    s.expect("approval DECLINED").unwrap();
    assert_eq!(exit_code(&mut s), 1);
}

#[test]
fn docs_rules_example_without_prod_does_not_ask() {
    let fake = Fake::start();
    let w = world(&fake);
    // Current context staging-1, no --context: rule 2 (record, no approval).
    let mut s = pty(&w, &["scale", "deploy/web"]);
    s.expect("REAL kubectl [scale] [deploy/web]").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    // Prod context, but not `scale`: rule 3 (`[]`, exec'd as is).
    let mut s = pty(&w, &["get", "pods", "--context", "prod-1"]);
    s.expect("REAL kubectl [get] [pods] [--context] [prod-1]").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(fake.cases().is_empty(), "no approval asked: {:?}", fake.cases());
}

/// The fake kubectl reports whether the break-glass audit record is already in the spool when it starts.
const KUBECTL_CHECKS_SPOOL: &str = "#!/bin/sh\nif grep -qs break_glass \"$DDCOTERM_HOME\"/spool/*~a*.rec; then echo AUDIT-ON-DISK; else echo NO-AUDIT; fi\necho \"REAL kubectl $*\"\n";

#[test]
fn break_glass_offline_audit_is_on_disk_before_the_command_and_sent_by_spool_flush() {
    let w = world_at(&support::closed_port_uri());
    w.fake_script("kubectl", KUBECTL_CHECKS_SPOOL);
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(["scale", "deploy/web", "--context", "prod-1"])
        .env("COTERM_BREAK_GLASS", "true")
        .env("COTERM_BREAK_GLASS_REASON", "pager: api down");
    let mut s = harness::pty(c);
    s.expect("BREAK GLASS").unwrap();
    s.expect("AUDIT-ON-DISK").unwrap();
    s.expect("REAL kubectl scale deploy/web --context prod-1").unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let fake = Fake::start();
    w.user_config(&format!(
        "{}connection_config:\n  host: {}\n  api_key: {API_KEY}\n  app_key: {APP_KEY}\n",
        docs_rules(),
        fake.uri()
    ));
    let out = w.ddcoterm(&["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let warnings: Vec<_> = fake
        .accepted_path_prefix("/api/v1/events")
        .into_iter()
        .map(|r| r.json())
        .filter(|e| e["alert_type"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "one break-glass audit event delivered");
    let tags = warnings[0]["tags"].to_string();
    assert!(tags.contains("break_glass:true") && tags.contains("rule:kubectl_rules[0]"), "{tags}");
    assert!(warnings[0]["text"].as_str().unwrap().contains("pager: api down"));
    assert!(fake.cases().is_empty(), "break glass never waits for a case");
}

#[test]
fn break_glass_online_sends_the_audit_and_records_the_run() {
    let fake = Fake::start();
    let w = world(&fake);
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(["scale", "deploy/web", "--context", "prod-1"]).env("COTERM_BREAK_GLASS", "1");
    let mut s = harness::pty(c);
    s.expect("BREAK GLASS").unwrap();
    s.expect("REAL kubectl [scale]").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    let events: Vec<_> = fake.accepted_path_prefix("/api/v1/events").into_iter().map(|r| r.json()).collect();
    assert!(events
        .iter()
        .any(|e| e["alert_type"] == "warning" && e["tags"].to_string().contains("break_glass:true")));
    assert!(fake.cases().is_empty());
    let casts: Vec<_> = std::fs::read_dir(w.ddhome().join("recordings")).unwrap().flatten().collect();
    assert!(!casts.is_empty(), "break glass forces recording");
}
