//! Organisation files are trusted by owner, not just by mode (issue 16, item 5), and the user's own file cannot
//! loosen a safety key (item 6): each attack through a real shim call, which must fail closed or hold.

mod harness;

use harness::{no_tty, text, World};
use std::os::unix::fs::PermissionsExt;

const RECORDING_OFF: &str = "process_config:\n  default_actions: []\n";

fn kubectl(w: &World) -> std::process::Output {
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(["get", "pods"]);
    no_tty(c)
}

fn assert_refused(out: &std::process::Output, path: &std::path::Path, why: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&path.display().to_string()) && err.contains(why), "{err}");
    assert!(!text(&out.stdout).contains("REAL kubectl"), "the command ran: {}", text(&out.stdout));
}

#[test]
fn a_world_writable_system_directory_is_refused() {
    let w = World::new();
    w.system_config(RECORDING_OFF).fake("kubectl");
    let out = kubectl(&w);
    assert!(text(&out.stdout).contains("REAL kubectl [get] [pods]"), "control: {}", text(&out.stderr));
    std::fs::set_permissions(w.path("etc"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(&kubectl(&w), &w.path("etc"), "writable by everyone");
}

#[test]
fn a_group_writable_team_directory_is_refused() {
    let w = World::new();
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid()).unwrap().unwrap().name;
    w.system_config(&format!("{RECORDING_OFF}teams:\n  ops: [{group}]\n")).fake("kubectl");
    w.write("etc/teams/ops.yaml", "lints:\n  non_interactive: deny\n", 0o644);
    let out = kubectl(&w);
    assert!(text(&out.stdout).contains("REAL kubectl [get] [pods]"), "control: {}", text(&out.stderr));
    std::fs::set_permissions(w.path("etc/teams"), std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_refused(&kubectl(&w), &w.path("etc/teams"), "writable by its group");
}

#[test]
fn a_system_config_symlinked_into_a_writable_place_is_refused() {
    let w = World::new();
    w.fake("kubectl");
    let open = w.path("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(open.join("config.yaml"), RECORDING_OFF).unwrap();
    std::fs::remove_file(w.path("etc/config.yaml")).unwrap();
    std::os::unix::fs::symlink(open.join("config.yaml"), w.path("etc/config.yaml")).unwrap();
    assert_refused(&kubectl(&w), &w.path("etc/config.yaml"), "writable by everyone");
}

#[test]
fn a_system_config_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let w = World::new();
    w.system_config(RECORDING_OFF).fake("kubectl");
    std::os::unix::fs::chown(w.path("etc/config.yaml"), Some(65534), None).unwrap();
    assert_refused(&kubectl(&w), &w.path("etc/config.yaml"), "not by root or the user running ddcoterm");
}

#[test]
fn the_users_file_cannot_loosen_safety_keys() {
    let w = World::new();
    w.system_config(&format!("{RECORDING_OFF}break_glass:\n  require_reason: true\n")).fake("kubectl");
    w.user_config(
        "break_glass:\n  require_reason: false\nredaction:\n  enabled: false\nspool:\n  max_bytes: 1\n",
    );
    let out = no_tty(w.ddcoterm(&["config", "show"]));
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    for key in ["break_glass.require_reason", "redaction.enabled", "spool.max_bytes"] {
        assert!(err.contains(&format!("`{key}`")) && err.contains("looser"), "{key}: {err}");
    }
    assert!(stdout.contains("require_reason: true"), "{stdout}");
    assert!(stdout.contains("redaction:\n  enabled: true"), "{stdout}");

    // And the break-glass reason stays required: no reason, no terminal to ask on, no run.
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(["delete", "ns", "prod"]).env("COTERM_BREAK_GLASS", "1");
    w.system_config(
        "process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      rules:\n        - rule: has_arg('delete')\n          actions: [approval]\nbreak_glass:\n  require_reason: true\n",
    );
    let out = no_tty(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("COTERM_BREAK_GLASS_REASON"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("REAL kubectl"));
}
