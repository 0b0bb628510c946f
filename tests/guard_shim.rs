//! The shim path end to end: the CoTerm docs' lint and rules examples through real PTYs, pass-through of
//! arguments and exit codes, the policy floor, recursion and the error paths.

mod harness;

use harness::{exit_code, no_tty, pty, reference, text, World};
use std::os::unix::ffi::OsStrExt;

/// Org layer that turns default recording off, so a shim that passes policy execs the real binary.
const NO_RECORDING: &str = "process_config:\n  default_actions: []\n";

#[test]
fn docs_lint_example_asks_on_the_terminal_and_yes_runs() {
    let w = World::new();
    w.system_config(NO_RECORDING)
        .user_config(&reference("coterm-lint.yaml"))
        .kubeconfig("staging-1")
        .fake("kubectl");
    let shim = w.shim("kubectl");
    let mut c = w.cmd(&shim);
    c.args(["scale", "foo"]);
    let mut s = pty(c);
    s.expect("Warning from CoTerm: No kubectl context specified (effective context: 'staging-1').").unwrap();
    s.expect("Do you want to continue? (y/n)").unwrap();
    s.send_line("y").unwrap();
    s.expect("REAL kubectl [scale] [foo]").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn docs_lint_example_no_aborts_without_running() {
    let w = World::new();
    w.system_config(NO_RECORDING)
        .user_config(&reference("coterm-lint.yaml"))
        .kubeconfig("prod-1")
        .fake("kubectl");
    let shim = w.shim("kubectl");
    let mut c = w.cmd(&shim);
    c.args(["scale", "foo"]);
    let mut s = pty(c);
    s.expect("Do you want to continue? (y/n)").unwrap();
    s.send_line("n").unwrap();
    s.expect("not run").unwrap();
    assert_eq!(exit_code(&mut s), 1);
}

#[test]
fn lint_with_explicit_context_does_not_warn() {
    let w = World::new();
    w.system_config(NO_RECORDING).user_config(&reference("coterm-lint.yaml")).fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).args(["scale", "foo", "--context", "dev"]).to_owned_cmd());
    assert_eq!(text(&out.stdout), "REAL kubectl [scale] [foo] [--context] [dev]\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn lint_without_a_terminal_aborts_with_a_clear_message() {
    let w = World::new();
    w.system_config(NO_RECORDING)
        .user_config(&reference("coterm-lint.yaml"))
        .kubeconfig("dev")
        .fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).args(["scale", "foo"]).to_owned_cmd());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("No kubectl context specified"), "{err}");
    assert!(err.contains("no terminal") && err.contains("lints.non_interactive"), "{err}");
    assert!(text(&out.stdout).is_empty(), "kubectl must not run");
}

#[test]
fn docs_lint_example_warns_even_without_any_kubeconfig() {
    let w = World::new();
    w.system_config(&format!("{NO_RECORDING}lints:\n  non_interactive: allow\n"))
        .user_config(&reference("coterm-lint.yaml"))
        .fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).args(["scale", "foo"]).to_owned_cmd());
    let err = text(&out.stderr);
    assert!(
        err.contains("Warning from CoTerm: No kubectl context specified (effective context: 'nil')"),
        "{err}"
    );
    assert!(out.status.success(), "{err}");
}

#[test]
fn lint_without_a_terminal_runs_when_config_allows() {
    let w = World::new();
    w.system_config(&format!("{NO_RECORDING}lints:\n  non_interactive: allow\n"))
        .user_config(&reference("coterm-lint.yaml"))
        .kubeconfig("dev")
        .fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).args(["scale", "foo"]).to_owned_cmd());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("No kubectl context specified"));
    assert_eq!(text(&out.stdout), "REAL kubectl [scale] [foo]\n");
}

#[test]
fn docs_rules_example_unmatched_command_execs_with_no_actions() {
    let w = World::new();
    w.user_config(&reference("coterm-rules.yaml")).fake("kubectl");
    let out = w.cmd(w.shim("kubectl")).args(["get", "pods"]).env("FAKE_EXIT", "42").output().unwrap();
    assert_eq!(out.status.code(), Some(42), "exit status passes through: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "REAL kubectl [get] [pods]\n");
    assert!(!w.ddhome().join("recordings").exists(), "`actions: []` records nothing");
}

#[test]
fn docs_rules_example_prod_scale_requires_approval_and_fails_closed() {
    let w = World::new();
    w.user_config(&reference("coterm-rules.yaml")).fake("kubectl");
    let out =
        no_tty(w.cmd(w.shim("kubectl")).args(["scale", "deploy/web", "--context", "prod-1"]).to_owned_cmd());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("Proceed with caution"), "user_message shown: {err}");
    assert!(err.contains("approval required by kubectl rules[0]"), "{err}");
    assert!(text(&out.stdout).is_empty(), "kubectl must not run");
}

#[test]
fn argument_bytes_pass_through_unchanged() {
    let w = World::new();
    w.system_config(NO_RECORDING).fake("kubectl");
    let odd = std::ffi::OsStr::from_bytes(b"\xff\xfe-not-utf8");
    let out = w
        .cmd(w.shim("kubectl"))
        .arg("a b")
        .arg("")
        .arg("it's \"quoted\"")
        .arg("ünï©ødé")
        .arg("--")
        .arg(odd)
        .output()
        .unwrap();
    let mut want =
        b"REAL kubectl [a b] [] [it's \"quoted\"] [\xc3\xbcn\xc3\xaf\xc2\xa9\xc3\xb8d\xc3\xa9] [--] ["
            .to_vec();
    want.extend_from_slice(b"\xff\xfe-not-utf8]\n");
    assert_eq!(out.stdout, want, "{}", text(&out.stderr));
}

#[test]
fn stdin_and_stdout_pass_through() {
    let w = World::new();
    w.system_config(NO_RECORDING).fake_script("kubectl", "#!/bin/sh\ntr a-z A-Z\n");
    let mut child = w
        .cmd(w.shim("kubectl"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"piped data\n").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "PIPED DATA\n");
}

/// ddcoterm starts without Rust's runtime start-up (src/main.rs) and does its part itself: the real binary
/// must still start as it would without a shim, with SIGPIPE at its default and the standard fds open.
#[test]
fn the_real_binary_starts_with_default_sigpipe_and_closed_std_fds_reopened() {
    let w = World::new();
    let script = "#!/bin/sh\ngrep '^SigIgn' /proc/self/status\nreadlink /proc/self/fd/0\n";
    w.system_config(NO_RECORDING).fake_script("kubectl", script);
    // `<&-`: the shim itself starts with stdin closed, as a careless cron job or daemon would start it.
    let out = w.cmd("sh").args(["-c", "exec \"$0\" get <&-"]).arg(w.shim("kubectl")).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", text(&out.stderr));
    let ignored = stdout.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap();
    let mask = u64::from_str_radix(ignored, 16).unwrap();
    assert_eq!(mask & (1 << (13 - 1)), 0, "SIGPIPE must not be ignored in the real binary: {stdout}");
    assert_eq!(stdout.lines().nth(1), Some("/dev/null"), "{stdout}");
}

/// ddcoterm itself ignores SIGPIPE: output to a closed pipe is an error it handles (exit 0, as `| head`
/// expects), not a death by signal.
#[test]
fn a_closed_stdout_pipe_is_not_a_crash() {
    let w = World::new();
    let line = "x".repeat(1 << 20); // far more than a pipe holds: the write after `head` exits fails
    let cast = w.write(
        "big.cast",
        &format!("{{\"version\": 2, \"width\": 80, \"height\": 24}}\n[0.0, \"o\", \"{line}\"]\n"),
        0o600,
    );
    let out = w
        .cmd("bash")
        .args(["-c", "\"$0\" play --speed 1000 \"$1\" | head -c 1 >/dev/null; echo \"${PIPESTATUS[0]}\""])
        .arg(harness::bin())
        .arg(&cast)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "0", "ddcoterm's own exit status: {}", text(&out.stderr));
}

#[test]
fn user_layer_cannot_bypass_an_org_approval_rule() {
    let w = World::new();
    w.system_config("process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: has_arg('delete')\n          actions: [approval]\n")
        .user_config("process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      rules:\n        - rule: true\n          actions: []\n")
        .fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).args(["delete", "pod", "x"]).to_owned_cmd());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("approval required by kubectl rules[0]"));
    assert!(text(&out.stderr).contains("(system)"), "the org rule decided: {}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn cli_actions_cannot_remove_an_org_rules_approval() {
    let w = World::new();
    w.system_config("process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: has_arg('delete')\n          actions: [approval]\n")
        .fake("kubectl");
    let out = no_tty(w.ddcoterm(&["--actions=", "--", "kubectl", "delete", "pod", "x"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("approval required"));
}

#[test]
fn missing_real_binary_exits_127() {
    let w = World::new();
    // A name no machine has (kubectl/terraform may well exist in /usr/bin on a dev box).
    let out = w.cmd(w.shim("nosuchtool")).arg("plan").output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nosuchtool: command not found"), "{}", text(&out.stderr));
}

#[test]
fn a_wrapper_calling_itself_does_not_loop() {
    let w = World::new();
    w.system_config(NO_RECORDING);
    // Both ways a wrapper re-invokes the command: as a child and with exec.
    w.fake_script("kubectl", "#!/bin/sh\ncase \"$1\" in\n outer) kubectl child; exec kubectl exec ;;\n *) echo \"INNER $1\" ;;\nesac\n");
    let out = w.cmd(w.shim("kubectl")).arg("outer").output().unwrap();
    assert_eq!(text(&out.stdout), "INNER child\nINNER exec\n", "{}", text(&out.stderr));
}

#[test]
fn two_ddcoterm_binaries_shimming_each_other_stop_with_127_instead_of_looping() {
    let w = World::new();
    w.system_config(NO_RECORDING);
    // A second, different ddcoterm (its own file: another inode) behind `real/kubectl`, and a shim of the one
    // under test further down PATH, outside the shim directories: each finds the other as the real program.
    let other = w.path("other-install/ddcoterm");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(harness::bin(), &other).unwrap();
    std::os::unix::fs::symlink(&other, w.path("real/kubectl")).unwrap();
    std::fs::create_dir_all(w.path("extra")).unwrap();
    std::os::unix::fs::symlink(harness::bin(), w.path("extra/kubectl")).unwrap();
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        w.path("shims").display(),
        w.path("real").display(),
        w.path("extra").display()
    );
    let mut c = w.cmd(w.shim("kubectl"));
    c.arg("version")
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the two shims exec'd each other for 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(127), "{err}");
    assert!(err.contains("entered 8 times in a row") && err.contains("another ddcoterm's shim"), "{err}");
}

#[test]
fn config_error_names_file_line_and_key_and_exits_78() {
    let w = World::new();
    let typo = "process_config:\n  commands:\n    - command: kubectl\n      lintz: []\n";
    w.system_config(typo).fake("kubectl");
    let out = w.cmd(w.shim("kubectl")).arg("get").output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    // Two lines above the typo are the harness's loopback switch.
    assert!(
        err.contains("etc/config.yaml:6:7: key `process_config.commands[0]`: unknown field `lintz`"),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty(), "fail closed: kubectl must not run on an org config error");
    // The same typo in the user's own file: named the same way, skipped on the guard path (tests/shim_cache.rs),
    // an error everywhere else.
    w.system_config("").user_config(typo);
    let out = w.ddcoterm(&["config", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "home/.ddcoterm/config.yaml:4:7: key `process_config.commands[0]`: unknown field `lintz`"
        ),
        "{err}"
    );
}

#[test]
fn lua_compile_error_fails_closed_and_names_the_rule() {
    let w = World::new();
    w.system_config("process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      rules:\n        - rule: 'has_arg(\"x\" and'\n          actions: [approval]\n")
        .fake("kubectl");
    let out = no_tty(w.cmd(w.shim("kubectl")).arg("get").to_owned_cmd());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("kubectl rules[0]") && err.contains("config.yaml"), "{err}");
}

#[test]
fn shim_create_list_remove() {
    let w = World::new();
    w.fake("kubectl");
    let out = w.ddcoterm(&["shim", "create", "kubectl", "helm"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = w.path("shims/kubectl");
    // The static shim binary is built beside ddcoterm, so the links point at it.
    assert_eq!(std::fs::canonicalize(&link).unwrap(), std::fs::canonicalize(harness::shim_bin()).unwrap());
    let bashrc = std::fs::read_to_string(w.home().join(".bashrc")).unwrap();
    assert!(
        bashrc.contains(">>> ddcoterm shims >>>") && bashrc.contains(&w.path("shims").display().to_string())
    );
    assert!(text(&out.stderr).contains("no real `helm` on PATH"), "{}", text(&out.stderr));
    // Idempotent.
    let again = w.ddcoterm(&["shim", "create", "kubectl"]).output().unwrap();
    assert!(text(&again.stdout).contains("already there"));
    assert_eq!(std::fs::read_to_string(w.home().join(".bashrc")).unwrap(), bashrc);
    let list = text(&w.ddcoterm(&["shim", "list"]).output().unwrap().stdout);
    assert!(list.contains("first on PATH"), "{list}");
    assert!(list.contains(&format!("kubectl          -> {}", w.path("real/kubectl").display())), "{list}");
    // A shim made before the static binary was installed (a link to ddcoterm) is ours: listed, relinked.
    w.shim_of_full_binary("kubectl");
    let list = text(&w.ddcoterm(&["shim", "list"]).output().unwrap().stdout);
    assert!(list.contains("kubectl          -> "), "{list}");
    let relinked = w.ddcoterm(&["shim", "create", "kubectl"]).output().unwrap();
    assert!(text(&relinked.stdout).contains("relinked"), "{}", text(&relinked.stdout));
    assert_eq!(std::fs::canonicalize(&link).unwrap(), std::fs::canonicalize(harness::shim_bin()).unwrap());
    let rm = w.ddcoterm(&["shim", "remove", "kubectl", "helm"]).output().unwrap();
    assert!(rm.status.success());
    assert!(!link.exists());
    assert!(!std::fs::read_to_string(w.home().join(".bashrc")).unwrap().contains("ddcoterm shims"));
}

#[test]
fn shim_create_refuses_bad_names_and_occupied_paths() {
    let w = World::new();
    let out = w.ddcoterm(&["shim", "create", "../evil"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("`../evil` is not a command name"));
    w.write("shims/kubectl", "#!/bin/sh\n", 0o755);
    let out = w.ddcoterm(&["shim", "create", "kubectl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("is not a ddcoterm shim"));
}

/// `Command` is not Clone; the builder methods above return `&mut Command`.
trait ToOwnedCmd {
    fn to_owned_cmd(&mut self) -> std::process::Command;
}

impl ToOwnedCmd for std::process::Command {
    fn to_owned_cmd(&mut self) -> std::process::Command {
        let mut c = std::process::Command::new(self.get_program());
        c.args(self.get_args());
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = self.get_current_dir() {
            c.current_dir(d);
        }
        c
    }
}

#[test]
fn user_rule_cannot_switch_off_the_orgs_default_recording() {
    let w = World::new();
    w.system_config("process_config:\n  default_actions: [approval]\n")
        .user_config("process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: true\n          actions: []\n")
        .fake("kubectl");
    // approval is the org default: a user `true -> []` rule must not remove it (and approval fails closed here).
    let out = no_tty(w.cmd(w.shim("kubectl")).arg("get").to_owned_cmd());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("approval required"), "{}", text(&out.stderr));
}

#[test]
fn dash_dash_command_passes_argument_bytes_and_exit_status() {
    let w = World::new();
    w.system_config(NO_RECORDING).fake("kubectl");
    let out = w
        .ddcoterm(&["--", "kubectl", "get"])
        .arg(std::ffi::OsStr::from_bytes(b"\xffraw"))
        .env("FAKE_EXIT", "7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"REAL kubectl [get] [\xffraw]\n".to_vec());
}

#[test]
fn unknown_action_flag_is_a_usage_error_and_runs_nothing() {
    let w = World::new();
    w.system_config(NO_RECORDING).fake("kubectl");
    let out = w.ddcoterm(&["--actions=record,recrod", "--", "kubectl", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("--actions: unknown action `recrod`"), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}

/// The binary brings its own C `main`, so a test build of it would run the CLI instead of a test harness:
/// `cargo test` recorded an interactive shell into the caller's home. It must stay out of the test targets.
#[test]
fn the_binary_is_not_built_as_a_test_harness() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bin = meta["packages"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"][0] == "bin" && t["name"] == "ddcoterm")
        .expect("the ddcoterm binary target");
    assert_eq!(bin["test"], false, "Cargo.toml [[bin]] needs `test = false`: {bin}");
}
