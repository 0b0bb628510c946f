//! Typed settings (issue #20, DESIGN.md §3.3): every duration and size key is parsed when the config is
//! loaded, so a bad value is an error naming the file, line and key (exit 78) before anything runs, and the
//! parsed values reach the code that uses them.

mod harness;

use harness::{no_tty, text, World};
use std::path::PathBuf;

/// (key, YAML setting it to a bad value, 1-based line of the value, what the error says about it)
const BAD: &[(&str, &str, usize, &str)] = &[
    ("recording.merge_window", "recording:\n  merge_window: soon\n", 2, "`soon` is not a duration"),
    (
        "recording.retention.max_age",
        "recording:\n  retention:\n    max_age: 3 fortnights\n",
        3,
        "is not a duration",
    ),
    ("recording.retention.interval", "recording:\n  retention:\n    interval: 10\n", 3, "`10` has no unit"),
    (
        "recording.retention.max_total",
        "recording:\n  retention:\n    max_total: lots\n",
        3,
        "`lots` is not a size",
    ),
    ("approval.request_ttl", "approval:\n  request_ttl: 0s\n", 2, "must be greater than zero"),
    ("approval.grant_ttl", "approval:\n  grant_ttl: forever\n", 2, "`forever` is not a duration"),
    ("approval.poll_interval", "approval:\n  poll_interval: 0\n", 2, "must be greater than zero"),
    ("spool.flush_timeout", "spool:\n  flush_timeout: 3 secs and a bit\n", 2, "is not a duration"),
    ("policy.snippet_timeout", "policy:\n  snippet_timeout: fast\n", 2, "`fast` is not a duration"),
];

fn assert_names(stderr: &str, file: &str, line: usize, key: &str, why: &str) {
    let at = format!("{file}:{line}:");
    assert!(stderr.contains(&at), "{key}: expected `{at}` in: {stderr}");
    assert!(stderr.contains(&format!("key `{key}`")), "{key}: expected the key in: {stderr}");
    assert!(stderr.contains(why), "{key}: expected `{why}` in: {stderr}");
}

#[test]
fn a_bad_duration_or_size_in_an_organisation_file_fails_at_load_naming_file_line_and_key() {
    for (key, yaml, line, why) in BAD {
        let w = World::new();
        let file = w.write("etc/config.yaml", yaml, 0o644);
        w.fake("kubectl");
        let file = file.display().to_string();
        // Every command, the guard path included: an organisation layer that does not load fails closed.
        let out = w.ddcoterm(&["config", "show"]).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{key}: {}", text(&out.stderr));
        assert_names(&text(&out.stderr), &file, *line, key, why);
        let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "touch ran"]));
        assert_eq!(out.status.code(), Some(78), "{key}: {}", text(&out.stderr));
        assert_names(&text(&out.stderr), &file, *line, key, why);
        assert!(!w.path("ran").exists(), "{key}: nothing runs on a config error");
    }
}

#[test]
fn a_bad_duration_in_the_users_file_is_an_error_for_config_commands_and_skipped_on_the_guard_path() {
    for (key, yaml, line, why) in BAD {
        let w = World::new();
        let file = w.write("home/.ddcoterm/config.yaml", yaml, 0o600).display().to_string();
        let out = w.ddcoterm(&["config", "show"]).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{key}: {}", text(&out.stderr));
        assert_names(&text(&out.stderr), &file, *line, key, why);
        // A typo in the user's own file does not block guarded commands (the organisation's layers decide),
        // and it is reported with its place.
        let out = no_tty(w.ddcoterm(&["--actions=", "--", "sh", "-c", "touch ran"]));
        assert_eq!(out.status.code(), Some(0), "{key}: {}", text(&out.stderr));
        assert_names(&text(&out.stderr), &file, *line, key, why);
        assert!(w.path("ran").exists(), "{key}");
    }
}

#[test]
fn a_bad_duration_in_a_variable_or_flag_names_it() {
    let w = World::new();
    let out = w.ddcoterm(&["config", "show"]).env("DDCOTERM_APPROVAL__GRANT_TTL", "soon").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(e.contains("approval.grant_ttl") && e.contains("`soon` is not a duration"), "{e}");
    let out = w.ddcoterm(&["config", "show", "--set", "spool.flush_timeout=later"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "a flag is a usage error: {}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(e.contains("spool.flush_timeout") && e.contains("`later` is not a duration"), "{e}");
}

#[test]
fn config_show_prints_durations_as_written() {
    let w = World::new();
    w.user_config("approval:\n  request_ttl: 10m\nrecording:\n  retention:\n    max_total: 3GiB\n");
    let out = w.ddcoterm(&["config", "show"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("request_ttl: 10m") && shown.contains("max_total: 3GiB"), "{shown}");
}

/// A rule whose snippet spends about 100 ms of CPU before matching.
const SLOW_RULE: &str = "process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: \"local t = os.clock() while os.clock() - t < 0.1 do end return true, 'slow rule'\"\n          actions: [approval]\n";

#[test]
fn policy_snippet_timeout_reaches_the_sandbox() {
    let w = World::new();
    w.user_config(&format!("{SLOW_RULE}policy:\n  snippet_timeout: 2s\n"));
    let check = |extra: &[&str]| {
        let mut c = w.ddcoterm(&["check", "--format", "json"]);
        c.args(extra).args(["--", "kubectl", "get", "pods"]);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let d = check(&[]);
    assert_eq!(d["user_message"], "slow rule", "2s is budget enough: {d}");
    let d = check(&["--set", "policy.snippet_timeout=20ms"]);
    assert!(d["errors"][0].as_str().unwrap_or_default().contains("time budget"), "20ms is not: {d}");
}

fn casts(w: &World) -> Vec<PathBuf> {
    let dir = w.ddhome().join("recordings");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cast")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The `o` events of the only recording.
fn output_events(w: &World) -> Vec<String> {
    let casts = casts(w);
    assert_eq!(casts.len(), 1, "{casts:?}");
    let cast = std::fs::read_to_string(&casts[0]).unwrap();
    cast.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn recording_merge_window_reaches_the_recorder() {
    let script = "printf first-part; sleep 0.4; printf second-part";
    // 2s: both writes fall in one window and become one event.
    let w = World::new();
    w.user_config("recording:\n  merge_window: 2s\n");
    let out = no_tty(w.ddcoterm(&["--actions=record", "--", "sh", "-c", script]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = output_events(&w);
    assert!(events.iter().any(|e| e.contains("first-part") && e.contains("second-part")), "{events:?}");
    // The 10ms default: two events.
    let w = World::new();
    let out = no_tty(w.ddcoterm(&["--actions=record", "--", "sh", "-c", script]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = output_events(&w);
    assert!(!events.iter().any(|e| e.contains("first-part") && e.contains("second-part")), "{events:?}");
}

#[test]
fn a_relative_path_is_refused_at_load_and_a_configured_directory_is_used() {
    let w = World::new();
    let file = w.write("etc/config.yaml", "spool:\n  max_bytes: 100000000\nrecording:\n  dir: recs\n", 0o644);
    let out = no_tty(w.ddcoterm(&["--", "sh", "-c", "touch ran"]));
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert_names(
        &text(&out.stderr),
        &file.display().to_string(),
        4,
        "recording.dir",
        "is not an absolute path",
    );
    assert!(!w.path("ran").exists());
    w.system_config("");
    let out = w.ddcoterm(&["config", "show", "--set", "spool.dir=~/spool"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("spool.dir"), "{}", text(&out.stderr));

    let elsewhere = w.path("elsewhere");
    w.write("etc/config.yaml", &format!("recording:\n  dir: {}\n", elsewhere.display()), 0o644);
    let out = no_tty(w.ddcoterm(&["--actions=record", "--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let casts: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
    assert!(casts.iter().any(|e| e.path().extension().is_some_and(|x| x == "cast")), "{casts:?}");
}
