//! `ddcoterm approve -- CMD` end to end against the wiremock fake: approval after polls, refusals, expiry,
//! self-approval, Ctrl-C, rate limits and 5xx while polling, Datadog down, API-key-only configs, grant reuse.

mod harness;
mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::{Case, Fake, Fault, Home, API_KEY, CURRENT_USER_ID};

/// Someone other than the requester.
const APPROVER: &str = "00000000-0000-0000-0000-0000000000b0";

/// A home whose policy runs commands without recording (so an approved command is exec'd), with fast polls.
fn home(host: &str, approval: &str) -> Home {
    let h = Home::new();
    h.system_config("process_config:\n  default_actions: []\n");
    h.config(host, API_KEY, &format!("approval:\n  poll_interval: 50ms\n{approval}"));
    let bin = h.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("fakecmd");
    std::fs::write(&script, "#!/bin/sh\necho \"RAN fakecmd $*\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    h
}

/// `ddcoterm approve -- fakecmd ARGS` without a controlling terminal (CI), fakecmd found on PATH.
fn spawn(h: &Home, args: &[&str]) -> Child {
    let c = h.cmd();
    let mut s = std::process::Command::new("setsid");
    s.arg("-w").arg(c.get_program()).args(["approve", "--", "fakecmd"]).args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    s.env_remove("COTERM_BREAK_GLASS").env_remove("COTERM_BREAK_GLASS_REASON").env_remove("DDCOTERM_SESSION");
    s.env("PATH", format!("{}:/usr/bin:/bin", h.root().join("bin").display()));
    s.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    s.spawn().expect("spawn ddcoterm")
}

struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn finish(mut child: Child) -> Done {
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("ddcoterm did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Done { code: status.code(), stdout, stderr }
}

/// Waits for the `n`th case to exist.
fn wait_case(fake: &Fake, n: usize) -> Case {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(c) = fake.cases().get(n - 1) {
            return c.clone();
        }
        assert!(Instant::now() < end, "no case created; requests: {:?}", paths(fake));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn polls(fake: &Fake, case: &Case) -> usize {
    let path = format!("/api/v2/cases/{}", case.id);
    fake.requests().iter().filter(|r| r.method == "GET" && r.path == path).count()
}

fn wait_polls(fake: &Fake, case: &Case, n: usize) {
    let end = Instant::now() + Duration::from_secs(30);
    while polls(fake, case) < n {
        assert!(Instant::now() < end, "only {} polls", polls(fake, case));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn paths(fake: &Fake) -> Vec<String> {
    fake.requests().iter().map(|r| format!("{} {} {}", r.method, r.path, r.status)).collect()
}

#[test]
fn approved_by_another_user_after_several_polls_runs_the_command() {
    let fake = Fake::start();
    // A configured pattern, so the test holds whatever the built-in kinds are.
    let h =
        home(&fake.uri(), "redaction:\n  patterns:\n    - name: gh_token\n      regex: 'ghp_[A-Za-z0-9]+'\n");
    let child = spawn(&h, &["scale", "--token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"]);
    let case = wait_case(&fake, 1);
    wait_polls(&fake, &case, 3);
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stdout.contains("RAN fakecmd scale --token=ghp_"), "{}", d.stdout);
    assert!(d.stderr.contains(&case.key) && d.stderr.contains("/cases/"), "key and link shown: {}", d.stderr);
    let create = fake.accepted_path_prefix("/api/v2/cases").into_iter().find(|r| r.method == "POST").unwrap();
    let body = create.json();
    assert_eq!(body["data"]["type"], "case");
    assert_eq!(body["data"]["attributes"]["type_id"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(
        body["data"]["relationships"]["project"]["data"]["id"],
        "d4bbe1af-0000-0000-0000-0000000000c7"
    );
    let desc = body["data"]["attributes"]["description"].as_str().unwrap();
    assert!(desc.contains("fakecmd scale") && desc.contains("binding: "), "{desc}");
    assert!(!desc.contains("0123456789abcdefghij"), "the command line is redacted before it leaves: {desc}");
    assert!(desc.contains("[REDACTED:gh_token]"), "{desc}");
    assert!(create.header("dd-application-key").is_some());
}

#[test]
fn declined_refuses_with_a_distinct_message() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    let child = spawn(&h, &["delete", "ns"]);
    let case = wait_case(&fake, 1);
    fake.set_case_status(&case.key, "DECLINED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(1));
    assert!(d.stderr.contains("approval DECLINED") && d.stderr.contains(&case.key), "{}", d.stderr);
    assert!(!d.stdout.contains("RAN"), "must not run");
}

#[test]
fn closed_and_cancelled_cases_refuse_too() {
    for status in ["CLOSED", "CANCELLED"] {
        let fake = Fake::start();
        let h = home(&fake.uri(), "");
        let child = spawn(&h, &["x"]);
        let case = wait_case(&fake, 1);
        fake.set_case_status(&case.key, status, APPROVER);
        let d = finish(child);
        assert_eq!(d.code, Some(1), "{status}");
        assert!(!d.stdout.contains("RAN"));
    }
}

#[test]
fn request_expires_and_the_case_is_closed_with_a_comment() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "  request_ttl: 400ms\n");
    let d = finish(spawn(&h, &["x"]));
    assert_eq!(d.code, Some(1));
    assert!(d.stderr.contains("expired after 400ms"), "{}", d.stderr);
    assert!(!d.stdout.contains("RAN"));
    let case = &fake.cases()[0];
    assert!(case.comments.iter().any(|c| c.contains("Expired")), "{:?}", case.comments);
    assert_eq!(case.status, "CLOSED");
}

#[test]
fn self_approval_is_ignored_until_someone_else_approves() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    let child = spawn(&h, &["x"]);
    let case = wait_case(&fake, 1);
    fake.set_case_status(&case.key, "APPROVED", CURRENT_USER_ID);
    let n = polls(&fake, &case);
    wait_polls(&fake, &case, n + 3);
    assert!(child_alive(&child_pid(&child)), "still waiting after a self-approval");
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stderr.contains("does not count"), "{}", d.stderr);
}

fn child_pid(c: &Child) -> i32 {
    c.id() as i32
}

fn child_alive(pid: &i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
}

#[test]
fn ctrl_c_cancels_the_case_and_exits_130() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    let child = spawn(&h, &["x"]);
    let case = wait_case(&fake, 1);
    wait_polls(&fake, &case, 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let d = finish(child);
    assert_eq!(d.code, Some(130), "{}", d.stderr);
    assert!(d.stderr.contains("cancelled"), "{}", d.stderr);
    let status_calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/v2/cases/{}/status", case.id))
        .collect();
    assert_eq!(status_calls[0].json()["data"]["attributes"]["status_name"], "CANCELLED");
    let case = &fake.cases()[0];
    assert!(case.comments.iter().any(|c| c.contains("Cancelled by the requester")), "{:?}", case.comments);
    assert_ne!(case.status, "OPEN", "the case no longer waits for an approver");
}

#[test]
fn rate_limits_and_server_errors_while_polling_are_retried() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    let child = spawn(&h, &["x"]);
    let case = wait_case(&fake, 1);
    fake.fail_next([
        Fault::RateLimited { reset_secs: 1 },
        Fault::Status(503),
        Fault::Status(500),
        Fault::Status(502),
    ]);
    let end = Instant::now() + Duration::from_secs(30);
    while fake.requests().iter().filter(|r| r.status >= 429).count() < 4 {
        assert!(Instant::now() < end, "{:?}", paths(&fake));
        std::thread::sleep(Duration::from_millis(20));
    }
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stdout.contains("RAN"));
}

#[test]
fn datadog_down_fails_closed_and_names_break_glass() {
    let h = home(&support::closed_port_uri(), "");
    let d = finish(spawn(&h, &["x"]));
    assert_eq!(d.code, Some(1));
    assert!(d.stderr.contains("fail closed") && d.stderr.contains("COTERM_BREAK_GLASS=true"), "{}", d.stderr);
    assert!(!d.stdout.contains("RAN"));
}

#[test]
fn api_key_only_config_is_a_clear_error_naming_the_rule() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    std::fs::write(
        h.home().join("config.yaml"),
        format!(
            "connection_config:\n  host: {}\n  api_key: {API_KEY}\nprocess_config:\n  commands:\n    - command: fakecmd\n      rules:\n        - rule: has_arg(\"scale\")\n          actions: [approval]\n",
            fake.uri()
        ),
    )
    .unwrap();
    let d = finish(spawn(&h, &["scale"]));
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(d.stderr.contains("fakecmd rules[0]") && d.stderr.contains("DD_APP_KEY"), "{}", d.stderr);
    assert!(fake.cases().is_empty());
}

#[test]
fn grant_is_reused_for_the_identical_invocation_within_its_ttl_only() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    h.system_config("process_config:\n  default_actions: []\napproval:\n  grant_ttl: 10m\n");
    let child = spawn(&h, &["scale", "web"]);
    let case = wait_case(&fake, 1);
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    assert_eq!(finish(child).code, Some(0));
    let mode = std::fs::metadata(h.home().join("approvals.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let d = finish(spawn(&h, &["scale", "web"]));
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stderr.contains(&format!("reusing approval {}", case.key)), "{}", d.stderr);
    assert!(d.stderr.contains("confirmed with Datadog"), "{}", d.stderr);
    assert!(
        paths(&fake).iter().filter(|p| p.starts_with(&format!("GET /api/v2/cases/{} ", case.id))).count()
            >= 2,
        "the reuse asked Datadog about the case again: {:?}",
        paths(&fake)
    );
    assert_eq!(fake.cases().len(), 1, "no new case for the identical invocation");

    let child = spawn(&h, &["scale", "web", "--replicas=0"]);
    let second = wait_case(&fake, 2);
    fake.set_case_status(&second.key, "DECLINED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(1), "a different argv needs its own approval: {}", d.stderr);
}

#[test]
fn single_use_by_default() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    for n in 1..=2 {
        let child = spawn(&h, &["scale"]);
        let case = wait_case(&fake, n);
        fake.set_case_status(&case.key, "APPROVED", APPROVER);
        assert_eq!(finish(child).code, Some(0));
    }
    assert_eq!(fake.cases().len(), 2);
    assert!(!h.home().join("approvals.json").exists());
}

#[test]
fn session_approval_inside_a_recorded_session_reports_and_links_the_session() {
    let fake = Fake::start();
    // The link is the session server's (configured; nothing needs to answer there for the link).
    let h = home(&fake.uri(), "server:\n  url: https://sessions.example.test\n");
    // A real recording around `ddcoterm approve`: the approval joins that session.
    let mut c = h.cmd();
    let bin = c.get_program().to_owned();
    c.args(["--actions", "record", "--"])
        .arg(bin)
        .args(["approve", "--reason", "quarterly failover drill"])
        .env_remove("DDCOTERM_SESSION")
        .env_remove("COTERM_BREAK_GLASS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let case = wait_case(&fake, 1);
    assert!(case.description.contains("a whole terminal session"), "{}", case.description);
    assert!(case.description.contains("quarterly failover drill"), "{}", case.description);
    let cast = std::fs::read_dir(h.home().join("recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".cast"))
        .expect("the outer session is recording");
    let id = cast.trim_end_matches(".cast");
    let link = format!("https://sessions.example.test/sessions/{id}\n");
    assert!(case.description.contains(&link), "{}", case.description);
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stderr.contains("this session is approved") && d.stderr.contains(&case.key), "{}", d.stderr);
}

/// A home whose organisation layer holds `system` (besides running commands unrecorded).
fn org_home(host: &str, system: &str) -> Home {
    let h = home(host, "");
    h.system_config(&format!("process_config:\n  default_actions: []\n{system}"));
    h
}

#[test]
fn a_forged_grant_file_and_a_raised_user_grant_ttl_do_not_skip_approval() {
    let fake = Fake::start();
    // A real grant (the organisation allows reuse for 10 minutes), to copy its binding.
    let org = org_home(&fake.uri(), "approval:\n  grant_ttl: 10m\n");
    let child = spawn(&org, &["delete", "ns", "prod"]);
    let case = wait_case(&fake, 1);
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    assert_eq!(finish(child).code, Some(0));
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(org.home().join("approvals.json")).unwrap()).unwrap();
    let binding = real["grants"][0]["binding"].as_str().unwrap().to_string();

    // The attack (issue 16): the organisation keeps grants single-use; the user raises grant_ttl in their own
    // file, writes a grant for that exact binding by hand, and has no API key at all.
    let h = home(&fake.uri(), "");
    std::fs::write(
        h.home().join("config.yaml"),
        format!("connection_config:\n  host: {}\napproval:\n  grant_ttl: 3650d\n", fake.uri()),
    )
    .unwrap();
    let forged = serde_json::json!({ "grants": [{ "binding": binding, "case_key": "COTERM-999",
        "approver": "nobody", "granted_at": 0, "expires_at": u64::MAX / 2 }] });
    std::fs::write(h.home().join("approvals.json"), forged.to_string()).unwrap();
    let d = finish(spawn(&h, &["delete", "ns", "prod"]));
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(!d.stdout.contains("RAN"), "{}", d.stdout);
    assert!(!d.stderr.contains("reusing approval"), "{}", d.stderr);
    assert!(d.stderr.contains("`approval.grant_ttl`") && d.stderr.contains("looser"), "{}", d.stderr);
    assert!(d.stderr.contains("DD_API_KEY"), "asks for a real approval, which needs keys: {}", d.stderr);

    // With reuse allowed by the organisation, a grant file pointing at a case that Datadog does not hold for
    // this command (here: a case the requester approved themselves) is not honoured: a new case is filed.
    let h = org_home(&fake.uri(), "approval:\n  grant_ttl: 10m\n");
    fake.set_case_status(&case.key, "APPROVED", CURRENT_USER_ID);
    let forged = serde_json::json!({ "grants": [{ "binding": binding, "case_id": case.id, "case_key": case.key,
        "approver": "bob", "granted_at": 0, "expires_at": u64::MAX / 2 }] });
    std::fs::write(h.home().join("approvals.json"), forged.to_string()).unwrap();
    let child = spawn(&h, &["delete", "ns", "prod"]);
    let second = wait_case(&fake, 2);
    fake.set_case_status(&second.key, "DECLINED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(
        d.stderr.contains("not reusing saved approval") && d.stderr.contains("approved by the requester"),
        "{}",
        d.stderr
    );
}

#[test]
fn a_fake_approval_server_named_by_the_user_is_never_asked() {
    let real = Fake::start();
    let evil = Fake::start();
    // The organisation pins the connection: the user's host is ignored, with a warning.
    let h = home(&evil.uri(), "");
    h.system_config(&format!(
        "connection_config:\n  host: {}\n  api_key: {API_KEY}\n  app_key: {}\nprocess_config:\n  default_actions: []\n",
        real.uri(),
        support::APP_KEY
    ));
    let child = spawn(&h, &["scale"]);
    let case = wait_case(&real, 1);
    real.set_case_status(&case.key, "DECLINED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(d.stderr.contains("`connection_config.host`"), "{}", d.stderr);
    assert!(paths(&evil).is_empty(), "the user's server was asked: {:?}", paths(&evil));

    // The organisation pins nothing and does not allow loopback: a loopback server is refused before any call.
    std::fs::write(h.system().join("config.yaml"), "process_config:\n  default_actions: []\n").unwrap();
    let d = finish(spawn(&h, &["scale"]));
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(d.stderr.contains("loopback") && d.stderr.contains("allow_loopback"), "{}", d.stderr);
    assert!(paths(&evil).is_empty(), "the user's server was asked: {:?}", paths(&evil));
    assert!(!d.stdout.contains("RAN"));
}

#[test]
fn with_an_org_held_key_the_requesters_own_handle_cannot_approve() {
    let fake = Fake::start();
    let h = home(&fake.uri(), "");
    h.system_config(&format!(
        "connection_config:\n  host: {}\n  api_key: {API_KEY}\n  app_key: {}\napproval:\n  requester_handle: '{{user}}@example.com'\nprocess_config:\n  default_actions: []\n",
        fake.uri(),
        support::APP_KEY
    ));
    std::fs::write(h.home().join("config.yaml"), "approval:\n  poll_interval: 50ms\n").unwrap();
    let child = spawn(&h, &["scale"]);
    let case = wait_case(&fake, 1);
    // The fake's user `<id>` has the handle `<id>@example.com`: this unix user's own Datadog account.
    fake.set_case_status(&case.key, "APPROVED", &ddcoterm::dirs::user_name());
    let n = polls(&fake, &case);
    wait_polls(&fake, &case, n + 3);
    fake.set_case_status(&case.key, "APPROVED", APPROVER);
    let d = finish(child);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    assert!(d.stderr.contains("by you (the requester)"), "{}", d.stderr);
    assert!(d.stdout.contains("RAN fakecmd scale"), "{}", d.stdout);
}
