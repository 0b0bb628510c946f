//! `ddcoterm sessions` (order, filters, short ids, formats, `show`) and `recording.retention` through the real
//! binary, on recordings it made itself.

mod harness;
mod recorder_support;

use recorder_support::Env;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn record(env: &Env, script: &str) {
    let out = env.cmd().args(["--", "sh", "-c", script]).output().unwrap();
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
}

fn json_list(env: &Env, args: &[&str]) -> Vec<Value> {
    let out = env.cmd().arg("sessions").args(args).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn newest_first_with_filters_short_ids_and_json() {
    let env = Env::new();
    record(&env, "echo first; exit 0");
    std::thread::sleep(Duration::from_millis(1100)); // a later `timestamp` (seconds) in the header
    record(&env, "echo second; exit 3");
    record(&env, "echo third kubectl; exit 3");

    let all = json_list(&env, &[]);
    let cmds: Vec<&str> = all.iter().map(|s| s["command"].as_str().unwrap()).collect();
    assert_eq!(cmds.len(), 3);
    assert_eq!(cmds[2], "sh -c 'echo first; exit 0'", "oldest last: {cmds:?}");
    let s = &all[0];
    assert!(s["id"].as_str().unwrap().len() >= 32, "full ids in JSON: {s}");
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'), "RFC 3339: {s}");
    assert!(s["exit_code"].is_i64() && s["size_bytes"].is_u64() && s["duration_secs"].is_f64(), "{s}");
    assert_eq!(s["user"].as_str(), Some(whoami().as_str()));

    assert_eq!(json_list(&env, &["--exit", "3"]).len(), 2);
    assert_eq!(json_list(&env, &["--command", "kubectl"]).len(), 1);
    assert_eq!(json_list(&env, &["--exit", "0", "--command", "first"]).len(), 1);
    assert_eq!(json_list(&env, &["--user", "nobody-else"]).len(), 0);
    assert_eq!(json_list(&env, &["--host", all[0]["host"].as_str().unwrap()]).len(), 3);
    assert_eq!(json_list(&env, &["--since", "1h"]).len(), 3);
    assert_eq!(json_list(&env, &["--until", "1h"]).len(), 0);
    assert_eq!(
        json_list(&env, &["--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00+02:00"]).len(),
        3
    );

    // The table: short ids, newest first, human durations and sizes.
    let out = env.cmd().arg("sessions").output().unwrap();
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("EXIT") && lines[0].contains("DURATION"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[3].contains("echo first"), "{table}");
    let shorts: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    for (short, full) in shorts.iter().zip(&all) {
        let full = full["id"].as_str().unwrap();
        assert!(short.len() >= 8 && short.len() < full.len() && full.ends_with(short), "{short} of {full}");
        // The short id plays and shows that session.
        let out = env.cmd().args(["play", short]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = env.cmd().args(["sessions", "show", short, "--format", "json"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["id"], full);
    }
    let out = env.cmd().args(["play", shorts[2]]).output().unwrap();
    assert_eq!(out.stdout, b"first\n");
    let out = env.cmd().args(["sessions", "show", shorts[0]]).output().unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("exit      3") && shown.contains("kubectl") && shown.contains("file"), "{shown}");

    // Their shared UUIDv7 time prefix is ambiguous: refused, candidates listed.
    let prefix = &all[0]["id"].as_str().unwrap()[..6];
    let out = env.cmd().args(["play", prefix]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(err.contains("3 recordings match") && err.contains("echo first"), "{err}");
}

#[test]
fn bad_filters_are_usage_errors_naming_the_flag() {
    let env = Env::new();
    let out = env.cmd().args(["sessions", "--since", "last tuesday"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("--since `last tuesday`"), "{}", text(&out.stderr));
    let out = env.cmd().args(["sessions", "--format", "xml"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let out = env.cmd().args(["sessions", "show", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = env.cmd().arg("sessions").output().unwrap();
    assert!(text(&out.stdout).contains("no recordings in"), "{}", text(&out.stdout));
}

#[test]
fn a_hostile_command_line_cannot_drive_the_terminal_from_the_table() {
    let env = Env::new();
    record(&env, "true '\u{1b}]52;c;cm0gLXJm\u{7}' '\u{1b}[6n'");
    let out = env.cmd().arg("sessions").output().unwrap();
    let table = text(&out.stdout);
    assert!(table.contains("52;c;cm0gLXJm"), "{table}");
    assert!(!table.contains('\u{1b}') && !table.contains('\u{7}'), "{table:?}");
}

fn whoami() -> String {
    text(&std::process::Command::new("id").arg("-un").output().unwrap().stdout).trim().to_string()
}

fn aged(path: &Path, days: u64) {
    std::fs::write(
        path,
        format!(
            "{{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}}\n{}\n",
            "[0.1, \"o\", \"x\"]"
        ),
    )
    .unwrap();
    let t = SystemTime::now() - Duration::from_secs(days * 86400);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

#[test]
fn retention_runs_when_a_recording_starts_and_keeps_what_is_busy() {
    let env = Env::new();
    let rec = env.recordings();
    std::fs::create_dir_all(&rec).unwrap();
    aged(&rec.join("0190aaaa-old.cast"), 100);
    // A recorder still writing (a long session started 100 days ago... or a clock step): its lock is held.
    aged(&rec.join("0190bbbb-live.cast"), 100);
    std::fs::write(rec.join("0190bbbb-live.recorder"), "{}").unwrap();
    let lock = std::fs::File::open(rec.join("0190bbbb-live.recorder")).unwrap();
    fs4::fs_std::FileExt::lock_exclusive(&lock).unwrap();
    aged(&rec.join("0190cccc-recent.cast"), 10);
    // A spooled upload of an old session keeps its recording.
    aged(&rec.join("0190dddd-queued.cast"), 100);
    let spool = ddcoterm::spool::Spool::open(env.home().join("spool"), 0).unwrap();
    spool
        .enqueue(
            ddcoterm::spool::Record::new("session.chunk", ddcoterm::spool::Class::Bulk, b"x".to_vec())
                .in_group("0190dddd-queued"),
        )
        .unwrap();

    // A shim-like call that does not record never looks.
    let out = env.cmd().args(["--actions=", "--", "true"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(rec.join("0190aaaa-old.cast").exists() && !rec.join(".retention").exists());

    let out = env.cmd().args(["--", "true"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("retention: deleted 1 old recording(s)"), "{}", text(&out.stderr));
    assert!(!rec.join("0190aaaa-old.cast").exists());
    for kept in ["0190bbbb-live.cast", "0190cccc-recent.cast", "0190dddd-queued.cast"] {
        assert!(rec.join(kept).exists(), "{kept} kept");
    }
    assert!(rec.join(".retention").exists());

    // Within the interval (1h) the directory is not looked at again.
    aged(&rec.join("0190eeee-old2.cast"), 100);
    env.cmd().args(["--", "true"]).output().unwrap();
    assert!(rec.join("0190eeee-old2.cast").exists(), "one sweep per interval");

    // The flush timer's command applies it too (interval 0: due at once).
    let out =
        env.cmd().args(["spool", "flush", "--set", "recording.retention.interval=0s"]).output().unwrap();
    assert!(text(&out.stderr).contains("retention: deleted 1 old recording(s)"), "{}", text(&out.stderr));
    assert!(!rec.join("0190eeee-old2.cast").exists());
    for kept in ["0190bbbb-live.cast", "0190cccc-recent.cast", "0190dddd-queued.cast"] {
        assert!(rec.join(kept).exists(), "{kept} kept by the flush");
    }
    drop(lock);
}

#[test]
fn retention_values_are_checked_and_a_user_cannot_delete_sooner_than_the_floor() {
    let env = Env::new();
    let rec = env.recordings();
    std::fs::create_dir_all(&rec).unwrap();
    aged(&rec.join("0190aaaa-old.cast"), 40);
    // A bad value is refused when the config is loaded: a usage error naming the flag and key, nothing run.
    let out = env.cmd().args(["--set", "recording.retention.max_age=soon", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("recording.retention.max_age")
            && text(&out.stderr).contains("`soon` is not a duration"),
        "{}",
        text(&out.stderr)
    );
    assert!(rec.join("0190aaaa-old.cast").exists(), "nothing deleted on a bad value");
    // 1d is looser than the built-in 90d: the floor applies, the 40-day-old recording stays.
    let out = env.cmd().args(["--set", "recording.retention.max_age=1d", "--", "true"]).output().unwrap();
    assert!(text(&out.stderr).contains("recording.retention.max_age"), "{}", text(&out.stderr));
    assert!(rec.join("0190aaaa-old.cast").exists());
}
