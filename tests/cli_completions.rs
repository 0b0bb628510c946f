//! `ddcoterm completions SHELL` and the hidden `ddcoterm manpages --out DIR`: generated from the clap tree,
//! for every visible command, with no configuration needed.

mod harness;

use harness::World;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ddcoterm");

#[test]
fn completions_name_every_visible_command_for_each_shell() {
    for (shell, marker) in
        [("bash", "complete -F _ddcoterm"), ("zsh", "#compdef ddcoterm"), ("fish", "complete -c ddcoterm")]
    {
        let out = World::bare().ddcoterm(&["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {marker}");
        for sub in ["check", "spool", "ssh-login", "completions"] {
            assert!(script.contains(sub), "{shell} completes {sub}");
        }
    }
    let out = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "a usage error (README exit-code table)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
    // `| head` closes the pipe early: no panic, no error.
    let out = Command::new("sh").arg("-c").arg(format!("{BIN} completions bash | head -1")).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn man_pages_are_written_one_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let out = Command::new(BIN).args(["manpages", "--out"]).arg(&man).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "ddcoterm.1",
        "ddcoterm-check.1",
        "ddcoterm-spool-flush.1",
        "ddcoterm-completions.1",
        "ddcoterm-bundle-sign.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("manpages")), "{pages:?}");
    let check = std::fs::read_to_string(man.join("ddcoterm-check.1")).unwrap();
    assert!(check.contains(".TH ddcoterm-check 1") && check.contains("json"), "{check}");
    // An output path that cannot be a directory is an error naming it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(BIN).args(["manpages", "--out"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&file.display().to_string()));
}
