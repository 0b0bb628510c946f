//! `ddcoterm ssh-login` without sshd: the environment sshd would give it (`SSH_ORIGINAL_COMMAND`,
//! `SSH_CONNECTION`, an `ExposeAuthInfo` file) set by hand. What runs, what is recorded, exit codes, quoting,
//! the session's SSH metadata, passthrough bytes, and the config switches. The real-sshd tests are in
//! tests/fleet_ssh.rs.

mod harness;

use harness::{no_tty, pty, text, World};
use std::io::Write;
use std::process::{Command, Stdio};

/// A fixture key and its `ssh-keygen -lf` fingerprint.
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAMeLvJUBfiyp7qKNUefTGa5tDdqya9sC2yRfzl3+mvA";
const KEY_FP: &str = "SHA256:Eic043cFKZcIsHM3Bq9AOdfK/dJ+FZRwTL/VWC0yZVo";
const LINT: &str = "process_config:\n  commands:\n    - command: kubectl\n      lints:\n        - 'if has_arg(\"scale\") then return \"scaling from a bastion\" end'\n";

fn login(w: &World, original: Option<&str>) -> Command {
    let mut c = w.ddcoterm(&["ssh-login"]);
    c.env("SSH_CONNECTION", "192.0.2.7 50022 10.0.0.1 22");
    c.env("SSH_USER_AUTH", w.write("auth-info", &format!("publickey {KEY}\n"), 0o600));
    match original {
        Some(o) => c.env("SSH_ORIGINAL_COMMAND", o),
        None => c.env_remove("SSH_ORIGINAL_COMMAND"),
    };
    // A login starts afresh even when these leak in from the environment.
    c.env("DDCOTERM_SESSION", "outer").env("DDCOTERM_SHIM_ACTIVE", "kubectl:1");
    c
}

fn casts(w: &World) -> Vec<std::path::PathBuf> {
    let dir = w.ddhome().join("recordings");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cast"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn header(p: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[test]
fn dry_run_names_the_decision() {
    let w = World::new();
    w.system_config("ssh:\n  sftp_server: /bin/cat\n");
    for (original, want) in [
        (Some("scp -t /srv/in"), "passthrough (scp): exec /usr/bin/scp -t /srv/in, unrecorded"),
        (Some("internal-sftp -l INFO"), "passthrough (sftp-server): exec /bin/cat -l INFO, unrecorded"),
        (
            Some("kubectl get pods"),
            "remote command: /bin/bash -c 'kubectl get pods'; the policy judges `kubectl get pods`; recorded",
        ),
        (Some("scp -t /x; id"), "the policy judges `/bin/bash -c 'scp -t /x; id'`"),
        (None, "login: record the login shell /bin/bash on pipes (no PTY requested)"),
    ] {
        if original.is_some_and(|o| o.starts_with("scp")) && !std::path::Path::new("/usr/bin/scp").exists() {
            continue;
        }
        let mut c = login(&w, original);
        c.arg("--dry-run");
        let out = no_tty(c);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(want), "{original:?}: {}", text(&out.stdout));
    }
    assert!(casts(&w).is_empty(), "a dry run records nothing");
}

#[test]
fn remote_commands_keep_exit_codes_and_quoting_and_are_recorded_with_ssh_metadata() {
    let w = World::new();
    let out = no_tty(login(&w, Some("exit 7")));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    let out = no_tty(login(&w, Some(r#"printf '%s|' "a b" c 'd;e' "$(echo sub)"; echo "$0 $SHLVL""#)));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a b|c|d;e|sub|bash 1\n");

    let recorded = casts(&w);
    assert_eq!(recorded.len(), 2, "each remote command is recorded");
    let h = header(recorded.last().unwrap());
    assert!(h["command"].as_str().unwrap().starts_with("bash -c 'printf"), "{h}");
    let ssh = &h["ddcoterm"]["ssh"];
    assert_eq!(ssh["client_addr"], "192.0.2.7", "{h}");
    assert_eq!(ssh["client_port"], 50022, "{h}");
    assert_eq!(ssh["server_port"], 22, "{h}");
    assert_eq!(ssh["auth_method"], "publickey", "{h}");
    assert_eq!(ssh["key_type"], "ssh-ed25519", "{h}");
    assert_eq!(ssh["key_fingerprint"], KEY_FP, "{h}");
}

#[test]
fn a_lint_without_a_terminal_refuses_and_says_to_use_ssh_t() {
    let w = World::new();
    w.system_config(LINT).fake("kubectl");
    let out = no_tty(login(&w, Some("kubectl scale deploy/web --replicas=0")));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("scaling from a bastion") && err.contains("ssh -t"), "{err}");
    assert!(!text(&out.stdout).contains("REAL kubectl"));

    // With a terminal (ssh -t): asked once, `n` does not run it.
    let mut s = pty(login(&w, Some("kubectl scale deploy/web --replicas=0")));
    s.expect("scaling from a bastion").unwrap();
    s.expect("(y/n)").unwrap();
    s.send_line("n").unwrap();
    s.expect("not run").unwrap();
    assert_eq!(harness::exit_code(&mut s), 1);
}

#[test]
fn passthrough_execs_the_program_with_the_bytes_untouched_and_records_nothing() {
    let w = World::new();
    w.system_config("ssh:\n  passthrough: [cat]\n");
    let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let mut c = login(&w, Some("cat"));
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = payload.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout == payload, "byte-identical through the passthrough");
    assert_eq!(text(&out.stderr), "", "nothing of ddcoterm on stderr");
    assert!(casts(&w).is_empty(), "a passthrough is not recorded");
}

#[test]
fn record_remote_commands_false_lets_the_policy_decide() {
    let w = World::new();
    w.system_config(
        "ssh:\n  record_remote_commands: false\nprocess_config:\n  commands:\n    - command: echo\n      rules:\n        - rule: true\n          actions: []\n",
    );
    let out = no_tty(login(&w, Some("echo quiet")));
    assert_eq!(text(&out.stdout), "quiet\n", "{}", text(&out.stderr));
    assert!(casts(&w).is_empty(), "a rule with [] runs it unrecorded");
    let out = no_tty(login(&w, Some("printf loud")));
    assert_eq!(text(&out.stdout), "loud");
    assert_eq!(casts(&w).len(), 1, "no rule: default actions record it");

    // Forced (the default): the same [] rule does not drop the recording.
    w.system_config("process_config:\n  commands:\n    - command: echo\n      rules:\n        - rule: true\n          actions: []\n");
    let out = no_tty(login(&w, Some("echo recorded")));
    assert_eq!(text(&out.stdout), "recorded\n");
    assert_eq!(casts(&w).len(), 2, "ssh.record_remote_commands records it anyway");
}

#[test]
fn a_user_config_cannot_add_passthroughs_and_bad_entries_are_config_errors() {
    let w = World::new();
    w.user_config("ssh:\n  passthrough: [printf]\n");
    let out = no_tty(login(&w, Some("printf x")));
    assert_eq!(text(&out.stdout), "x");
    assert!(text(&out.stderr).contains("`ssh` is honoured from"), "{}", text(&out.stderr));
    assert_eq!(casts(&w).len(), 1, "still recorded: the user layer's ssh section is ignored");

    w.system_config("ssh:\n  passthrough: [/usr/bin/scp]\n");
    let out = no_tty(login(&w, Some("true")));
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("ssh.passthrough[0]"), "{}", text(&out.stderr));

    w.system_config("ssh:\n  passthru: []\n");
    let out = no_tty(login(&w, Some("true")));
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("passthru"), "{}", text(&out.stderr));
}

#[test]
fn a_login_without_a_pty_runs_the_login_shell_on_its_input_and_records_it() {
    let w = World::new();
    let mut c = login(&w, None);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"echo from-script-$((6*7))\nexit 4\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("from-script-42"));
    let recorded = casts(&w);
    assert_eq!(recorded.len(), 1);
    assert!(std::fs::read_to_string(&recorded[0]).unwrap().contains("from-script-42"));
}
