//! Approval on a real terminal: the incident picker on /dev/tty links the chosen incident to the case.

mod harness;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::{Fake, Home, API_KEY};

const APPROVER: &str = "00000000-0000-0000-0000-0000000000b0";

fn home(host: &str) -> Home {
    let h = Home::new();
    h.system_config("process_config:\n  default_actions: []\n");
    h.config(host, API_KEY, "approval:\n  poll_interval: 50ms\n  offer_incidents: true\n");
    let bin = h.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("fakecmd"), "#!/bin/sh\necho \"RAN fakecmd $*\"\n").unwrap();
    std::fs::set_permissions(bin.join("fakecmd"), std::fs::Permissions::from_mode(0o755)).unwrap();
    h
}

fn pty(h: &Home, args: &[&str]) -> expectrl::Session {
    let mut c = h.cmd();
    c.args(["approve", "--", "fakecmd"]).args(args);
    c.env("PATH", format!("{}:/usr/bin:/bin", h.root().join("bin").display()))
        .env("TERM", "xterm")
        .env_remove("COTERM_BREAK_GLASS");
    let mut s = expectrl::Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s
}

fn approve_first_case(fake: &Fake) {
    let end = Instant::now() + Duration::from_secs(30);
    let case = loop {
        if let Some(c) = fake.cases().first() {
            break c.clone();
        }
        assert!(Instant::now() < end, "no case created");
        std::thread::sleep(Duration::from_millis(20));
    };
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
}

fn exit_code(s: &mut expectrl::Session) -> i32 {
    match s.get_process_mut().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, c) => c,
        other => panic!("unexpected wait status {other:?}"),
    }
}

#[test]
fn the_only_incident_is_offered_and_linked() {
    let fake = Fake::start();
    let inc = fake.add_incident("checkout is down");
    let h = home(&fake.uri());
    let mut s = pty(&h, &["x"]);
    approve_first_case(&fake);
    s.expect("Link it to this run? (y/n)").unwrap();
    s.send_line("y").unwrap();
    s.expect("RAN fakecmd x").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_eq!(fake.cases()[0].incidents, [inc]);
}

#[test]
fn one_of_several_incidents_is_picked_by_number() {
    let fake = Fake::start();
    fake.add_incident("first");
    let second = fake.add_incident("second");
    let h = home(&fake.uri());
    let mut s = pty(&h, &["y"]);
    approve_first_case(&fake);
    s.expect("0) none").unwrap();
    s.expect("[0-2]").unwrap();
    s.send_line("2").unwrap();
    s.expect("RAN fakecmd y").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_eq!(fake.cases()[0].incidents, [second]);
}

#[test]
fn declining_the_offer_links_nothing() {
    let fake = Fake::start();
    fake.add_incident("only");
    let h = home(&fake.uri());
    let mut s = pty(&h, &["z"]);
    approve_first_case(&fake);
    s.expect("(y/n)").unwrap();
    s.send_line("n").unwrap();
    s.expect("RAN fakecmd z").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(fake.cases()[0].incidents.is_empty());
}

#[test]
fn incidents_action_without_approval_asks_and_runs_without_a_case() {
    let fake = Fake::start();
    fake.add_incident("payments degraded");
    let h = home(&fake.uri());
    let mut c = h.cmd();
    c.args(["--actions", "incidents", "--", "fakecmd", "w"])
        .env("PATH", format!("{}:/usr/bin:/bin", h.root().join("bin").display()))
        .env("TERM", "xterm");
    let mut s = expectrl::Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect("#1 payments degraded. Link it to this run? (y/n)").unwrap();
    s.send_line("y").unwrap();
    s.expect("RAN fakecmd w").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(fake.cases().is_empty(), "no approval, no case");
    assert!(fake.requests().iter().any(|r| r.path == "/api/v2/incidents/search"));
}
