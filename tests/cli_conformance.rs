//! The CLI's conventions, checked over the whole clap command tree (a subcommand added later is covered
//! without touching this file): help with an example everywhere, global flags before and after the
//! subcommand, did-you-mean, `NO_COLOR`/`CLICOLOR_FORCE`, and every exit code of the README's table.

mod harness;

use clap::CommandFactory;
use harness::World;
use std::process::Output;

/// Every subcommand path (`["spool", "flush"]`...), the built-in `help` left out.
fn subcommand_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&ddcoterm::cli::Cli::command(), &[], &mut out);
    out
}

fn find<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    path.iter()
        .fold(root, |c, name| c.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {name}")))
}

fn run(w: &World, args: &[&str]) -> Output {
    w.ddcoterm(args).stdin(std::process::Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_tree_has_every_documented_subcommand() {
    let paths: Vec<String> = subcommand_paths().iter().map(|p| p.join(" ")).collect();
    for want in ["check", "config show", "spool flush", "bundle list", "ssh-login", "agent", "approve"] {
        assert!(paths.iter().any(|p| p == want), "{want} missing from {paths:?}");
    }
}

#[test]
fn every_subcommand_has_an_about_a_description_and_an_example() {
    let w = World::new();
    let root = ddcoterm::cli::Cli::command();
    let mut paths = subcommand_paths();
    paths.push(Vec::new()); // ddcoterm itself
    for path in paths {
        let name = if path.is_empty() { "ddcoterm".to_string() } else { path.join(" ") };
        let cmd = find(&root, &path);
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(!about.trim().is_empty() && !about.contains('\n'), "{name}: one-line about: {about:?}");
        let long = cmd.get_long_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(long.trim().len() > about.trim().len(), "{name}: a longer description than the about");

        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&w, &args);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name} --help: {}", text(&out.stderr));
        let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words(&help).contains(&words(&about)), "{name} --help shows its about:\n{help}");
        let examples = help.split_once("Examples:").map(|(_, e)| e).unwrap_or_default();
        assert!(
            examples.lines().any(|l| l.trim_start().starts_with("ddcoterm ") || l.contains(" ddcoterm ")),
            "{name} --help ends with an example block running ddcoterm:\n{help}"
        );
    }
}

/// Global flags (`--set`, `-v`, `-q`) are accepted before and after every subcommand.
#[test]
fn global_flags_go_before_or_after_the_subcommand() {
    let w = World::new();
    for path in subcommand_paths() {
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let flags = ["--set", "recording.input=true", "-v", "--quiet"];
        let before: Vec<&str> = flags.iter().chain(&words).copied().chain(["--help"]).collect();
        let after: Vec<&str> = words.iter().chain(&flags).copied().chain(["--help"]).collect();
        for args in [before, after] {
            let out = run(&w, &args);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        }
    }
    // And they take effect either way.
    for args in [
        &["--set", "recording.merge_bytes=1234", "config", "show"][..],
        &["config", "show", "--set", "recording.merge_bytes=1234"][..],
    ] {
        let out = run(&w, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("merge_bytes: 1234"), "{args:?}:\n{}", text(&out.stdout));
    }
}

#[test]
fn run_flags_with_a_subcommand_are_a_usage_error() {
    let w = World::new();
    let out = run(&w, &["--yes", "doctor"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
}

#[test]
fn a_mistyped_subcommand_gets_a_suggestion_and_exit_64() {
    let w = World::new();
    for (typed, meant) in [("chek", "check"), ("sesions", "sessions"), ("doctr", "doctor")] {
        let out = run(&w, &[typed]);
        assert_eq!(out.status.code(), Some(64), "{typed}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("'{meant}'")), "{typed}: did you mean {meant}?\n{err}");
    }
    let out = run(&w, &["spool", "flsh"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("'flush'"), "{}", text(&out.stderr));
}

#[test]
fn set_with_a_value_of_the_wrong_type_names_the_key_and_the_type() {
    let w = World::new();
    let out = run(&w, &["--set", "recording.merge_bytes=lots", "config", "show"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("recording.merge_bytes") && err.contains("lots"), "{err}");
    assert!(err.contains("expected an integer"), "{err}");
    for internal in ["usize", "u64", "invalid type"] {
        assert!(!err.contains(internal), "no serde internals ({internal}): {err}");
    }
}

/// Colour follows the terminal, `CLICOLOR_FORCE` forces it on, `NO_COLOR` wins over both.
#[test]
fn no_color_is_honoured() {
    let w = World::new();
    let esc = |o: &Output| o.stderr.contains(&0x1b);
    let with = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = w.ddcoterm(args);
        c.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").env_remove("CLICOLOR");
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null()).output().unwrap()
    };
    // clap's own messages and ddcoterm's error lines alike.
    for args in [&["chek"][..], &["--actions", "bogus", "--", "true"][..]] {
        assert!(!esc(&with(&[], args)), "{args:?}: no colour on a pipe");
        assert!(esc(&with(&[("CLICOLOR_FORCE", "1")], args)), "{args:?}: CLICOLOR_FORCE=1 colours");
        let out = with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], args);
        assert!(!esc(&out), "{args:?}: NO_COLOR wins: {:?}", text(&out.stderr));
    }
}

/// The README's exit-code table, row by row: the code, and how it is produced here or which test does.
#[test]
fn every_exit_code_in_the_readme_table_is_produced() {
    let w = World::new();
    w.fake("fake");
    w.write("real/not-executable", "#!/bin/sh\necho never\n", 0o644);
    w.write("bad-tests.yaml", "tests: [this is not a table\n", 0o644);

    // (code, args, what stderr says)
    let rows: &[(i32, &[&str], &str)] = &[
        (0, &["--help"], ""),
        (0, &["--version"], ""),
        (7, &["--actions", "", "--", "sh", "-c", "exit 7"], ""),
        (1, &["--actions", "approval", "--", "fake"], "approval"),
        (64, &["chek"], "check"),
        (64, &["--actions", "bogus", "--", "fake"], "unknown action `bogus`"),
        (64, &["config"], "Usage"),
        (65, &["policy", "test", "bad-tests.yaml"], "bad-tests.yaml"),
        (74, &["bundle", "sign", "no-such-bundle.yaml", "--key", "no-such.key"], "no-such-bundle.yaml"),
        (126, &["--actions", "", "--", "real/not-executable"], "not-executable"),
        (126, &["--actions", "record", "--", "real/not-executable"], "not-executable"),
        (127, &["--actions", "", "--", "no-such-command-anywhere"], "command not found"),
        (64, &["check"], "CMD"),
    ];
    for (code, args, says) in rows {
        let out = run(&w, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}:\n{err}");
        assert!(err.contains(says), "{args:?} says {says:?}:\n{err}");
    }

    // 78: a configuration error names the file and line.
    w.user_config("recording:\n  input: [not, a, bool\n");
    let out = run(&w, &["config", "show"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("config.yaml"), "{}", text(&out.stderr));

    // Codes produced where the situation is set up already:
    //   70  src/error.rs `untyped_errors_are_internal` (any error without a code)
    //   75  tests/spool_faults.rs `a_refused_key_keeps_every_record_waiting_and_says_why_without_leaking_it`
    //   130 tests/approval_flow.rs `ctrl_c_cancels_the_case_and_exits_130`
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme.split("## Exit codes").nth(1).unwrap().split("\n## ").next().unwrap();
    let covered = [0, 1, 7, 64, 65, 70, 74, 75, 78, 126, 127, 130];
    for line in table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| code")) {
        let cell = line.trim_start_matches("| ").split(" |").next().unwrap();
        for code in cell.split(" / ").filter_map(|c| c.trim().parse::<i32>().ok()) {
            assert!(covered.contains(&code), "README exit code {code} has no test: {line}");
        }
    }
}

/// `--quiet` drops a session's informational lines, before or after the subcommand position, and keeps the
/// line that says where a recording is.
#[test]
fn quiet_drops_informational_lines_but_not_where_the_recording_is() {
    let w = World::new();
    let loud = run(&w, &["--actions", "process_info", "--", "true"]);
    assert_eq!(loud.status.code(), Some(0), "{}", text(&loud.stderr));
    assert!(text(&loud.stderr).contains("ended (exit 0)"), "{}", text(&loud.stderr));
    let quiet = run(&w, &["-q", "--actions", "process_info", "--", "true"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    assert!(!text(&quiet.stderr).contains("session"), "{}", text(&quiet.stderr));
    let recorded = run(&w, &["--quiet", "--actions", "record", "--", "true"]);
    let err = text(&recorded.stderr);
    assert_eq!(recorded.status.code(), Some(0), "{err}");
    assert!(!err.contains("recording session"), "no start line: {err}");
    assert!(err.contains("ended (exit 0)") && err.contains(".cast"), "where the recording is: {err}");
}
