//! The static shim binary (`ddcoterm-shim`, docs/policy.md): a plain call is decided and exec'd by it alone;
//! every other call is handed over to the full `ddcoterm` before anything is printed or done, and the
//! static process never reads the user or group databases (strace shows every file it opens). Without the
//! full binary beside it, what it cannot decide fails closed.

mod harness;

use harness::{no_tty, text, World};
use std::path::Path;
use std::process::{Command, Output};

const NO_RECORDING: &str = "process_config:\n  default_actions: []\n";

/// Org policy: `delete` is recorded, `drain` warns, anything else is plain.
const ORG: &str = "process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      lints:\n        - if has_arg('drain') then return 'DRAIN WARNING' end\n      rules:\n        - rule: has_arg('delete')\n          actions: [record]\n";

/// What one traced call did.
struct Traced {
    out: Output,
    /// The static process's system calls, up to (not including) the program it exec'd next.
    before_exec: Vec<String>,
    /// The program the static process exec'd: the real command, or `ddcoterm` when it handed over.
    next_program: String,
}

fn strace_missing() -> bool {
    let missing = Command::new("strace").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true);
    if missing {
        eprintln!("skipped: strace is not installed (`make tools` installs it)");
    }
    missing
}

/// Runs `shim args` in `w` under strace (opens and execs of every process), with `env` changes applied.
fn traced(w: &World, shim: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Traced {
    let log = w.path("strace.log");
    let mut c = w.cmd("strace");
    c.args(["-f", "-qq", "-s", "4096", "-e", "trace=open,openat,execve", "-o"])
        .arg(&log)
        .arg(shim)
        .args(args);
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = no_tty(c);
    let trace = std::fs::read_to_string(&log).unwrap();
    let first = trace.lines().next().unwrap_or_default();
    let pid = first.split_whitespace().next().unwrap_or_default().to_string();
    assert!(first.contains(&format!("execve(\"{}\"", shim.display())), "{trace}");
    let mine: Vec<String> = trace
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().next() == Some(pid.as_str()))
        .map(String::from)
        .collect();
    let exec_at = mine.iter().position(|l| l.contains("execve(")).unwrap_or(mine.len());
    let next_program = mine.get(exec_at).and_then(|l| l.split('"').nth(1)).unwrap_or_default().to_string();
    Traced { out, before_exec: mine[..exec_at].to_vec(), next_program }
}

impl Traced {
    fn handed_over(&self) -> bool {
        Path::new(&self.next_program) == harness::bin()
    }
    fn execd_the_real(&self, w: &World) -> bool {
        Path::new(&self.next_program) == w.path("real/kubectl")
    }
    /// The static process opened none of the user and group databases' files, nor an NSS module.
    fn assert_no_lookups(&self) {
        let bad = ["/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "libnss_", "/etc/host.conf"];
        let hits: Vec<&String> =
            self.before_exec.iter().filter(|l| bad.iter().any(|b| l.contains(b))).collect();
        assert!(hits.is_empty(), "the static shim made a look-up:\n{hits:#?}");
    }
    /// Handed over without a look-up, and `ddcoterm` then ran `kubectl get pods` (no output of its own).
    fn assert_handed_over_and_ran_get_pods(&self) {
        assert!(self.handed_over(), "exec'd {}", self.next_program);
        self.assert_no_lookups();
        assert_eq!(text(&self.out.stdout), "REAL kubectl [get] [pods]\n", "{}", text(&self.out.stderr));
    }
}

fn world(org: &str) -> World {
    let w = World::new();
    w.system_config(org).kubeconfig("dev-01").fake("kubectl");
    w
}

#[test]
fn a_plain_call_is_execd_by_the_static_binary_itself() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    let t = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[]);
    assert_eq!(text(&t.out.stdout), "REAL kubectl [get] [pods]\n", "{}", text(&t.out.stderr));
    assert!(t.out.status.success());
    assert!(t.execd_the_real(&w), "exec'd {}", t.next_program);
    t.assert_no_lookups();
    assert!(text(&t.out.stderr).is_empty(), "{}", text(&t.out.stderr));
}

#[test]
fn a_call_with_an_action_is_handed_over_and_recorded_by_ddcoterm() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    let t = traced(&w, &w.shim("kubectl"), &["delete", "pod", "x"], &[]);
    assert!(t.handed_over(), "exec'd {}", t.next_program);
    t.assert_no_lookups();
    assert!(t.out.status.success(), "{}", text(&t.out.stderr));
    assert!(text(&t.out.stdout).contains("REAL kubectl [delete] [pod] [x]"), "{}", text(&t.out.stdout));
    let casts = std::fs::read_dir(w.recordings())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cast"));
    assert_eq!(casts.count(), 1, "the handed-over call was recorded once");
}

#[test]
fn a_lint_warning_is_handed_over_and_shown_once() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    let t = traced(&w, &w.shim("kubectl"), &["drain", "node-1"], &[]);
    assert!(t.handed_over(), "exec'd {}", t.next_program);
    t.assert_no_lookups();
    assert_eq!(t.out.status.code(), Some(1), "no terminal to confirm on: refused");
    assert_eq!(text(&t.out.stderr).matches("DRAIN WARNING").count(), 1, "{}", text(&t.out.stderr));
    assert!(text(&t.out.stdout).is_empty());
}

#[test]
fn team_layers_are_chosen_by_ddcoterm_not_by_the_static_binary() {
    if strace_missing() {
        return;
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid()).unwrap().unwrap().name;
    let w = World::new();
    w.system_config(&format!("{NO_RECORDING}teams:\n  ops: [{group}]\n"))
        .kubeconfig("dev-01")
        .fake("kubectl");
    w.write(
        "etc/teams/ops.yaml",
        "process_config:\n  commands:\n    - command: kubectl\n      lints:\n        - if has_arg('scale') then return 'TEAM SAYS CAREFUL' end\n",
        0o644,
    );
    let plain = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[]);
    plain.assert_handed_over_and_ran_get_pods();
    // The team's layer applies: ddcoterm found the membership the static binary did not look up.
    let warned = traced(&w, &w.shim("kubectl"), &["scale", "x"], &[]);
    warned.assert_no_lookups();
    assert_eq!(warned.out.status.code(), Some(1));
    assert!(text(&warned.out.stderr).contains("TEAM SAYS CAREFUL"), "{}", text(&warned.out.stderr));
}

#[test]
fn a_snippet_that_reads_user_is_handed_over() {
    if strace_missing() {
        return;
    }
    let w = world(&format!(
        "{NO_RECORDING}  commands:\n    - command: kubectl\n      lints:\n        - if user == 'nobody-at-all' then return 'NOBODY' end\n"
    ));
    let t = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[]);
    t.assert_handed_over_and_ran_get_pods();
}

#[test]
fn no_home_is_handed_over_rather_than_looked_up() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    let t = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[("HOME", None), ("DDCOTERM_HOME", None)]);
    t.assert_handed_over_and_ran_get_pods();
}

#[test]
fn a_broken_user_layer_is_reported_once_by_ddcoterm_and_the_call_still_runs() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    w.user_config("process_config: [not, a, mapping\n");
    let t = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[]);
    t.assert_handed_over_and_ran_get_pods();
    let err = text(&t.out.stderr);
    assert_eq!(err.matches("your own config is skipped").count(), 1, "{err}");
}

#[test]
fn a_link_to_either_binary_elsewhere_on_path_is_not_the_real_program() {
    if strace_missing() {
        return;
    }
    let w = world(ORG);
    let other = w.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink(harness::bin(), other.join("kubectl")).unwrap();
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        w.path("shims").display(),
        other.display(),
        w.path("real").display()
    );
    let t = traced(&w, &w.shim("kubectl"), &["get", "pods"], &[("PATH", Some(&path))]);
    assert!(t.execd_the_real(&w), "exec'd {}", t.next_program);
    assert_eq!(text(&t.out.stdout), "REAL kubectl [get] [pods]\n", "{}", text(&t.out.stderr));
}

#[test]
fn without_ddcoterm_beside_it_plain_calls_run_and_the_rest_fail_closed() {
    let w = world(ORG);
    let alone = w.path("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(harness::shim_bin(), alone.join("ddcoterm-shim")).unwrap();
    let link = w.path("shims/kubectl");
    std::os::unix::fs::symlink(alone.join("ddcoterm-shim"), &link).unwrap();
    let plain = no_tty({
        let mut c = w.cmd(&link);
        c.args(["get", "pods"]);
        c
    });
    assert_eq!(text(&plain.stdout), "REAL kubectl [get] [pods]\n", "{}", text(&plain.stderr));
    let recorded = no_tty({
        let mut c = w.cmd(&link);
        c.args(["delete", "pod", "x"]);
        c
    });
    assert_eq!(recorded.status.code(), Some(127));
    assert!(text(&recorded.stdout).is_empty(), "the command ran unguarded: {}", text(&recorded.stdout));
    let err = text(&recorded.stderr);
    assert!(err.contains("cannot hand this call over to") && err.contains("alone/ddcoterm"), "{err}");
}

#[test]
fn run_by_its_own_name_it_says_what_it_is_for() {
    let out = Command::new(harness::shim_bin()).arg("get").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("is what shim links point at"), "{}", text(&out.stderr));
}
