//! Bastion mode through the real binary, as one user (tests/fleet_bastion.rs has the multi-user container):
//! `ddcoterm agent` holds the session, the user's home holds nothing, and no agent means no command.

mod harness;

use harness::{no_tty, text, World};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `ddcoterm agent` of the world; killed (by its own pid) when dropped.
struct AgentProc {
    child: Child,
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bastion_world(extra: &str) -> World {
    let w = World::new();
    let cfg = format!(
        "agent:\n  enabled: true\n  socket: {}\n  state_dir: {}\n{extra}",
        w.path("run/agent.sock").display(),
        w.path("state").display()
    );
    w.system_config(&cfg);
    w
}

fn start_agent(w: &World) -> AgentProc {
    let child = w.ddcoterm(&["agent"]).stdin(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.path("run/agent.sock").exists() {
        assert!(Instant::now() < deadline, "the agent did not create its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    AgentProc { child }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn casts(w: &World) -> Vec<PathBuf> {
    files_under(&w.path("state/recordings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cast"))
        .collect()
}

#[test]
fn a_bastion_session_is_held_by_the_agent_and_nothing_lands_in_the_users_home() {
    let w = bastion_world("");
    let _agent = start_agent(&w);
    let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "echo hello-from-bastion; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello-from-bastion"));
    let casts = casts(&w);
    assert_eq!(casts.len(), 1, "{casts:?}");
    assert!(
        text(&out.stderr).contains(&casts[0].display().to_string()),
        "the user is told where: {}",
        text(&out.stderr)
    );
    let cast = std::fs::read_to_string(&casts[0]).unwrap();
    assert!(cast.contains("hello-from-bastion") && cast.contains("\"exit 3\""), "{cast}");
    let spooled = files_under(&w.path("state/spool"));
    assert!(!spooled.is_empty(), "records wait in the agent's spool (no Datadog key here)");
    // Not a file, nor an empty spool or recordings directory (a recovery sweep once created those).
    let home: Vec<_> = std::fs::read_dir(w.ddhome())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("config.yaml"))
        .collect();
    assert!(home.is_empty(), "nothing in the user's ~/.ddcoterm: {home:?}");
    let doc = no_tty(w.ddcoterm(&["doctor"]));
    assert!(text(&doc.stdout).contains("mode: bastion: the agent at"), "{}", text(&doc.stdout));
}

#[test]
fn no_agent_means_the_command_does_not_run_whatever_the_user_sets() {
    let w = bastion_world("");
    // The user tries to switch bastion mode off, or to point the recorder at a socket of their own.
    w.user_config("agent:\n  enabled: false\n");
    let mut c = w.ddcoterm(&["--", "sh", "-c", "touch ran"]);
    c.env("DDCOTERM_AGENT__ENABLED", "false").env("DDCOTERM_AGENT__SOCKET", w.path("mine.sock"));
    let out = no_tty(c);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not answer") && err.contains("was not run"), "{err}");
    assert!(err.contains("`agent` is honoured from"), "the user is told their value is ignored: {err}");
    assert!(!w.path("ran").exists(), "the command ran unrecorded");
    let doc = no_tty(w.ddcoterm(&["doctor"]));
    assert!(text(&doc.stdout).contains("FAIL mode: bastion:"), "{}", text(&doc.stdout));
}

#[test]
fn personal_installs_keep_their_own_spool_and_say_so() {
    let w = World::new();
    let out = no_tty(w.ddcoterm(&["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!files_under(&w.ddhome().join("recordings")).is_empty());
    let doc = no_tty(w.ddcoterm(&["doctor"]));
    assert!(text(&doc.stdout).contains("mode: personal"), "{}", text(&doc.stdout));
}

#[test]
fn a_full_agent_refuses_or_runs_unrecorded_with_an_audit_record_as_configured() {
    for (when_full, code, ran) in [("refuse", 1, false), ("run_unrecorded", 0, true)] {
        let w = bastion_world(&format!("  user_quota_bytes: 1\n  when_full: {when_full}\n"));
        let _agent = start_agent(&w);
        let first = no_tty(w.ddcoterm(&["--", "echo", "first"]));
        assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
        let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "touch ran"]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{when_full}: {err}");
        assert!(err.contains("agent.user_quota_bytes"), "{err}");
        assert_eq!(w.path("ran").exists(), ran, "{when_full}");
        assert_eq!(casts(&w).len(), 1, "{when_full}: the first recording is kept");
        let audit = std::fs::read_to_string(w.path("state/audit/audit.log")).unwrap_or_default();
        assert_eq!(audit.contains("unrecorded:true"), ran, "{when_full}: {audit}");
    }
}

const APPROVAL_RULE: &str = "process_config:\n  commands:\n    - command: sh\n      rules:\n        - rule: \"true\"\n          actions: [record, approval]\n";

#[test]
fn break_glass_in_bastion_mode_is_audited_by_the_agent_before_the_command_runs() {
    let w = bastion_world(APPROVAL_RULE);
    let agent = start_agent(&w);
    let mut c = w.ddcoterm(&["--", "sh", "-c", "echo broke-the-glass"]);
    c.env("COTERM_BREAK_GLASS", "1").env("COTERM_BREAK_GLASS_REASON", "incident-42");
    let out = no_tty(c);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let audit = std::fs::read_to_string(w.path("state/audit/audit.log")).unwrap();
    assert!(audit.contains("\"event\":\"break_glass\"") && audit.contains("incident-42"), "{audit}");
    assert!(!w.ddhome().join("audit.log").exists(), "the user's own audit.log is not the evidence");
    assert!(casts(&w).len() == 1, "break glass forces the recording, held by the agent");
    // No agent: no break glass either.
    drop(agent);
    let mut c = w.ddcoterm(&["--", "sh", "-c", "touch ran"]);
    c.env("COTERM_BREAK_GLASS", "1").env("COTERM_BREAK_GLASS_REASON", "incident-43");
    let out = no_tty(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("break glass refused"), "{}", text(&out.stderr));
    assert!(!w.path("ran").exists());
}

#[test]
fn a_users_huge_merge_size_cannot_make_the_agent_refuse_the_rest_of_a_session() {
    let w = bastion_world("");
    // Unchecked, one merged write of NULs would become a 48 MB event line: a frame the agent refuses.
    w.user_config("recording:\n  merge_bytes: 8000000\n  merge_window: 2s\n");
    let _agent = start_agent(&w);
    let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "head -c 3000000 /dev/zero; echo after-the-flood"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cast = std::fs::read_to_string(&casts(&w)[0]).unwrap();
    assert!(!text(&out.stderr).contains("did not store"), "{}", text(&out.stderr));
    assert_eq!(cast.matches("\\u0000").count(), 3_000_000, "every byte reached the agent");
    assert!(cast.contains("after-the-flood") && cast.contains("\"exit 0\""));
}
