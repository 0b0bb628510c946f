//! Bastion mode through the real binary, as one user (tests/fleet_bastion.rs has the multi-user container):
//! `ddcoterm agent` holds the session, the user's home holds nothing, and no agent means no command. With a
//! session server (the REAL `ddcoterm-server`), the agent uploads with a host token only it holds, and what
//! the server stores is the agent's `.cast` byte for byte, also after a `kill -9` of the recorder or of the
//! agent itself.

mod harness;
mod support;

use harness::{no_tty, text, World};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::server::Server;

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

impl AgentProc {
    /// SIGKILL: no shutdown; what it acknowledged must already be on its disk.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bastion whose agent uploads to `server` with the host token in its credentials file (0600), which
/// is the only place the token is written.
fn bastion_world_with_server(server: &Server) -> World {
    let w = World::new();
    let creds = w.path("etc/agent-credentials.yaml");
    std::fs::write(&creds, format!("server_token: {}\n", server.host_token)).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = format!(
        "server:\n  url: {}\nagent:\n  enabled: true\n  socket: {}\n  state_dir: {}\n  credentials_file: {}\n",
        server.url,
        w.path("run/agent.sock").display(),
        w.path("state").display(),
        creds.display()
    );
    w.system_config(&cfg);
    w
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

/// Starts the agent, its stderr appended to `agent.log` in the world.
fn start_agent(w: &World) -> AgentProc {
    let _ = std::fs::remove_file(w.path("run/agent.sock"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(w.path("agent.log")).unwrap();
    let child = w.ddcoterm(&["agent"]).stdin(Stdio::null()).stderr(log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.path("run/agent.sock").exists() {
        assert!(
            Instant::now() < deadline,
            "the agent did not create its socket: {}",
            std::fs::read_to_string(w.path("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    AgentProc { child }
}

fn id_of(cast: &Path) -> String {
    cast.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The server holds session `id` complete, equal to `cast` byte for byte, with a verified hash chain.
fn assert_uploaded(server: &Server, cast: &Path) -> serde_json::Value {
    let id = id_of(cast);
    server.wait_for(&format!("session {id} complete on the server"), || {
        server.session(&id).is_some_and(|s| s["state"] == "complete")
    });
    let local = std::fs::read(cast).unwrap();
    let stored = server.cast(&id);
    assert!(
        stored == local,
        "the server's cast ({} bytes) differs from the agent's ({} bytes):\n{}\n---\n{}",
        stored.len(),
        local.len(),
        text(&stored),
        text(&local)
    );
    let v = server.verify(&id);
    assert!(v.status.success(), "verify {id}: {}{}", text(&v.stdout), text(&v.stderr));
    server.session(&id).unwrap()
}

/// Starts a recorder printing a line every 10 ms through the agent and waits until the server holds two
/// of its event chunks (a session not in `known`); returns the recorder, the pid file of its command and the
/// session's cast.
fn record_loop(w: &World, server: &Server, known: &[String]) -> (Child, PathBuf, PathBuf) {
    let pidfile = w.path("child.pid");
    let script = "echo $$ > \"$PIDFILE\"; i=0; while :; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done";
    let mut c = w.ddcoterm(&["--", "sh", "-c", script]);
    c.env("PIDFILE", &pidfile).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = c.spawn().unwrap();
    let new = || server.sessions().into_iter().find(|s| !known.iter().any(|k| s["id"] == k.as_str()));
    server.wait_for("two event chunks on the server", || {
        new().and_then(|s| s["committed_seq"].as_u64()).is_some_and(|c| c >= 2)
    });
    let id = new().unwrap()["id"].as_str().unwrap().to_string();
    let cast = casts(w).into_iter().find(|c| id_of(c) == id).expect("the agent's cast of the session");
    (child, pidfile, cast)
}

/// Nothing the agent sent was refused for good (a repeat with other bytes or another `prev_sha256` is a
/// 409, moved to the spool's dead letters).
fn no_dead_letters(w: &World) {
    let dead = files_under(&w.path("state/spool/dead"));
    let shown: Vec<String> = dead
        .iter()
        .map(|p| text(&std::fs::read(p).unwrap_or_default()).chars().take(400).collect())
        .collect();
    assert!(dead.is_empty(), "dead letters: {shown:?}");
}

fn kill_command(pidfile: &Path) {
    if let Ok(pid) = std::fs::read_to_string(pidfile).unwrap_or_default().trim().parse::<i32>() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
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
    let spooled: Vec<_> = files_under(&w.path("state/spool"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    assert!(spooled.is_empty(), "no server and no Datadog: no records for either: {spooled:?}");
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

#[test]
fn the_agent_uploads_with_a_token_only_it_holds_and_the_server_gets_its_cast_byte_for_byte() {
    let server = Server::start();
    let w = bastion_world_with_server(&server);
    let agent = start_agent(&w);
    let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "echo hello-from-bastion; env; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello-from-bastion"));
    let casts = casts(&w);
    assert_eq!(casts.len(), 1, "{casts:?}");
    let s = assert_uploaded(&server, &casts[0]);
    assert_eq!(s["exit_status"], 3, "{s}");
    let link = format!("{}/sessions/{}", server.url, id_of(&casts[0]));
    assert_eq!(
        text(&out.stderr).matches(&link).count(),
        2,
        "the link at the start and the end: {}",
        text(&out.stderr)
    );
    assert_eq!(s["host"], "host1", "the server stamps the token's host: {s}");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().map(|u| u.name).unwrap_or_default();
    assert_eq!(s["user"], me.as_str(), "the peer's name, as the agent knows it: {s}");
    // The token is the agent's alone: not in the user's environment, output or home, nor in the agent's log.
    drop(agent);
    let log = std::fs::read_to_string(w.path("agent.log")).unwrap();
    for (what, hay) in
        [("the command's output", text(&out.stdout) + &text(&out.stderr)), ("the agent's log", log)]
    {
        assert!(!hay.contains(&server.host_token), "the host token leaked into {what}");
    }
    assert!(text(&out.stdout).contains("PATH="), "the environment was printed: {}", text(&out.stdout));
}

#[test]
fn a_killed_recorder_and_a_killed_agent_lose_nothing_the_agent_acknowledged() {
    let server = Server::start();
    let w = bastion_world_with_server(&server);
    let agent = start_agent(&w);
    // 1. kill -9 of the recorder mid-session: the agent closes the session from what it stored.
    let (mut rec, pidfile, cast) = record_loop(&w, &server, &[]);
    rec.kill().unwrap();
    rec.wait().unwrap();
    kill_command(&pidfile);
    let s = assert_uploaded(&server, &cast);
    no_dead_letters(&w);
    assert_eq!(s["exit_status"], serde_json::Value::Null, "not known: {s}");
    assert!(text(&std::fs::read(&cast).unwrap()).contains("recorder lost"));
    // 2. kill -9 of the agent mid-session: its restart closes the session it held; chunks it had spooled
    // and not yet delivered are delivered by the new agent, its last chunk again as a repeat.
    let (mut rec, pidfile, cast) = record_loop(&w, &server, &[id_of(&cast)]);
    agent.kill9();
    rec.kill().unwrap();
    rec.wait().unwrap();
    kill_command(&pidfile);
    let id = id_of(&cast);
    assert_eq!(server.session(&id).unwrap()["state"], "live", "nobody ended it yet");
    let _agent = start_agent(&w);
    let s = assert_uploaded(&server, &cast);
    no_dead_letters(&w);
    assert_eq!(s["exit_status"], serde_json::Value::Null, "{s}");
    assert!(text(&std::fs::read(&cast).unwrap()).contains("the agent stopped while the session was live"));
    // 3. the server down: the agent keeps what it stores and delivers it when the server is back.
    let mut server = server;
    server.stop();
    let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "echo while-the-server-was-down"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cast = casts(&w)
        .into_iter()
        .find(|c| text(&std::fs::read(c).unwrap()).contains("while-the-server-was-down"))
        .unwrap();
    server.restart();
    assert_uploaded(&server, &cast);
    no_dead_letters(&w);
}

#[test]
fn a_server_url_without_a_token_stops_the_agent_with_the_keys_named() {
    let server = Server::start();
    let w = bastion_world_with_server(&server);
    std::fs::write(w.path("etc/agent-credentials.yaml"), "api_key: x\n").unwrap();
    let out = w.ddcoterm(&["agent"]).stdin(Stdio::null()).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("server.url") && err.contains("server_token"), "{err}");
}
