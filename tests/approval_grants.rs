//! The approval's grants end to end: a command approved through (a wiremock fake of) Datadog Case Management,
//! with an incident linked whose responders the search names, recorded by the real client into the real
//! session server; the create metadata carries the approver, the incident and its responders, and the
//! rule's message (redacted); the server then lets the approver (matched by e-mail) and a responder open the
//! session read-only, and nobody else.

mod harness;
mod support;

use base64::Engine as _;
use serial_test::serial;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::server::{bin, Server};
use support::{Fake, Home, API_KEY};

/// The Datadog user who approves; the fake's `GET /api/v2/users/{id}` gives them the handle `<id>@example.com`.
const APPROVER: &str = "00000000-0000-0000-0000-0000000000b0";
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";

fn home(fake: &Fake, server: &Server) -> Home {
    let h = Home::new();
    h.config(
        &fake.uri(),
        API_KEY,
        &format!(
            "process_config:
  commands:
    - command: fakecmd
      rules:
        - rule: |
            return true, \"Production: key {SECRET} is in use, be careful\", \"check the plan\"
          actions: [record, process_info, approval]
approval:
  poll_interval: 50ms
  offer_incidents: true
spool:
  flush_timeout: 20s
{}",
            server.client_config()
        ),
    );
    let bin = h.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("fakecmd"), "#!/bin/sh\necho \"RAN fakecmd $*\"\n").unwrap();
    std::fs::set_permissions(bin.join("fakecmd"), std::fs::Permissions::from_mode(0o755)).unwrap();
    h
}

fn add_user(server: &Server, name: &str, email: Option<&str>) {
    let mut args = vec!["--data-dir".to_string(), server.data().display().to_string()];
    args.extend(["user", "add", name, "--role", "viewer", "--password-stdin"].map(String::from));
    if let Some(e) = email {
        args.extend(["--email".to_string(), e.to_string()]);
    }
    let mut c = Command::new(bin()).args(&args).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "user add {name}: {}", String::from_utf8_lossy(&o.stderr));
}

/// `GET path` as a local user with HTTP Basic: the status.
fn status_as(server: &Server, user: &str, path: &str) -> u16 {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:correct horse"));
    reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.url))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
#[serial]
fn the_approver_and_the_incident_responders_may_open_the_recorded_session() {
    let server = Server::start();
    let fake = Fake::start();
    let inc = fake.add_incident_with_responders("checkout is down", &["Lead@Example.com", "dana"]);
    let h = home(&fake, &server);
    let mut c = h.cmd();
    c.args(["approve", "--", "fakecmd", "x"])
        .env("PATH", format!("{}:/usr/bin:/bin", h.root().join("bin").display()))
        .env("TERM", "xterm")
        .env_remove("COTERM_BREAK_GLASS");
    let mut s = expectrl::Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    let end = Instant::now() + Duration::from_secs(30);
    let case = loop {
        if let Some(c) = fake.cases().first() {
            break c.clone();
        }
        assert!(Instant::now() < end, "no case created");
        std::thread::sleep(Duration::from_millis(20));
    };
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    s.expect("Link it to this run? (y/n)").unwrap();
    s.send_line("y").unwrap();
    s.expect("RAN fakecmd x").unwrap();
    match s.get_process_mut().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("unexpected wait status {other:?}"),
    }
    assert_eq!(fake.cases()[0].incidents, [inc]);

    server
        .wait_for("the session on the server", || server.sessions().iter().any(|s| s["state"] == "complete"));
    let listed = server.sessions();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let d = server.session(&id).unwrap();
    let approver = format!("{APPROVER}@example.com");
    assert_eq!(d["approver"], approver.as_str(), "{d}");
    assert_eq!(d["approval"], case.key.as_str(), "{d}");
    assert_eq!(d["incident"]["id"], "1", "{d}");
    let responders = d["incident"]["responders"].as_array().unwrap();
    assert!(responders.contains(&"Lead@Example.com".into()) && responders.contains(&"dana".into()), "{d}");
    let msg = d["rule_message"].as_str().unwrap();
    assert!(msg.starts_with("Production: key ") && msg.ends_with(" is in use, be careful"), "{d}");
    assert!(!msg.contains(SECRET), "the rule message is redacted: {msg}");

    // The approver by e-mail (another case), a responder by e-mail and one by name; nobody else.
    add_user(&server, "bob", Some(&approver.to_uppercase()));
    add_user(&server, "lead", Some("lead@example.com"));
    add_user(&server, "dana", None);
    add_user(&server, "mallory", Some("mallory@example.com"));
    for who in ["bob", "lead", "dana"] {
        assert_eq!(status_as(&server, who, &format!("/api/v1/sessions/{id}")), 200, "{who}");
        assert_eq!(status_as(&server, who, &format!("/api/v1/sessions/{id}/cast")), 200, "{who}");
    }
    assert_eq!(status_as(&server, "mallory", &format!("/api/v1/sessions/{id}")), 404);
    assert_eq!(status_as(&server, "mallory", &format!("/api/v1/sessions/{id}/cast")), 404);
}
