//! The CoTerm docs' rules example through a real shim and PTY: `kubectl scale` in a prod context waits for
//! a Case Management approval (messages to user and approver), anything else does not ask.

mod harness;
mod support;

use harness::World;
use std::time::{Duration, Instant};
use support::{Fake, API_KEY, APP_KEY};

const APPROVER: &str = "00000000-0000-0000-0000-0000000000b0";

/// The docs' rules example, as kept in the repository (a copy of shared/reference/coterm-rules.yaml).
fn docs_rules() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_fixtures/coterm-rules.yaml");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn world(fake: &Fake) -> World {
    let w = World::new();
    w.user_config(&format!(
        "{}connection_config:\n  host: {}\n  api_key: {API_KEY}\n  app_key: {APP_KEY}\napproval:\n  poll_interval: 50ms\n",
        docs_rules(),
        fake.uri()
    ))
    .kubeconfig("staging-1")
    .fake("kubectl");
    w
}

fn pty(w: &World, args: &[&str]) -> expectrl::Session {
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(args);
    let mut s = expectrl::Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s
}

fn exit_code(s: &mut expectrl::Session) -> i32 {
    match s.get_process_mut().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, c) => c,
        other => panic!("unexpected wait status {other:?}"),
    }
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
