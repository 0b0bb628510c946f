//! The nesting marker: when a command runs inside a ddcoterm recording, it is not recorded twice. The marker
//! variable (`DDCOTERM_SESSION=<session-id>:<recorder-pid>`) is only a claim, which anyone can set; the
//! recording is skipped only when the claim is proven by things the user cannot mint from a shell:
//!
//! 1. the named process is an ancestor of this one (a process cannot choose its parent chain);
//! 2. it runs the same ddcoterm executable as this process (same device and inode);
//! 3. it is recording that session: it holds `<session-id>.cast` open (not deleted), or, in bastion mode,
//!    the local agent says that very process streams that session (the agent knows its peers by
//!    `SO_PEERCRED`). A ddcoterm that is not recording (`--actions logs`, `play`) passes neither.
//!
//! A forced `record` (break glass, `ssh-login`) never skips, proven or not (the caller decides that). A claim
//! that fails is reported once and the command is recorded: failing safe costs a second recording.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A marker value for the child of recorder `pid` recording `session_id`.
pub fn marker(session_id: &str, pid: u32) -> String {
    format!("{session_id}:{pid}")
}

/// The session id part of a marker (for links and messages); the whole value when it has no pid.
pub fn session_id(marker: &str) -> &str {
    marker.rsplit_once(':').map(|(id, _)| id).unwrap_or(marker)
}

/// A proven outer recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outer {
    pub session_id: String,
    pub pid: u32,
}

/// Who knows whether the named process is recording the session.
pub enum Witness<'a> {
    /// Personal mode: the recorder writes `<session-id>.cast` itself and holds it open.
    OpenCast,
    /// Bastion mode: the agent holding the recording, asked for the pid streaming a session id.
    Agent(&'a dyn Fn(&str) -> std::io::Result<Option<u32>>),
}

/// Checks the marker against the process tree and the recording's witness (see the module doc). `Err`
/// says why the claim does not hold, for the one line the user sees.
pub fn prove(marker: &str, witness: Witness<'_>) -> Result<Outer, String> {
    prove_in(Path::new("/proc"), marker, std::process::id(), witness)
}

fn prove_in(proc: &Path, marker: &str, me: u32, witness: Witness<'_>) -> Result<Outer, String> {
    let (id, pid) = marker.rsplit_once(':').ok_or("it names no recorder process")?;
    let valid_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !valid_id {
        return Err("it names no ddcoterm session".into());
    }
    let pid: u32 = pid.parse().map_err(|_| "it names no recorder process")?;
    if !is_ancestor(proc, pid, me) {
        return Err(format!("process {pid} is not one of this command's parents"));
    }
    let exe = |p: &str| std::fs::metadata(proc.join(p).join("exe")).map(|m| (m.dev(), m.ino()));
    match (exe(&pid.to_string()), exe(&me.to_string())) {
        (Ok(theirs), Ok(ours)) if theirs == ours => {}
        (Ok(_), Ok(_)) => return Err(format!("process {pid} is not ddcoterm")),
        (Err(e), _) | (_, Err(e)) => return Err(format!("cannot check process {pid}: {e}")),
    }
    let recording = match witness {
        Witness::OpenCast => {
            let cast = format!("{id}.cast");
            let fds = std::fs::read_dir(proc.join(pid.to_string()).join("fd"))
                .map_err(|e| format!("cannot check process {pid}'s open files: {e}"))?;
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target: PathBuf| target.file_name().is_some_and(|n| n == cast.as_str()))
        }
        Witness::Agent(ask) => {
            ask(id).map_err(|e| format!("the agent cannot confirm session {id}: {e}"))? == Some(pid)
        }
    };
    if !recording {
        return Err(format!("process {pid} is not recording session {id}"));
    }
    Ok(Outer { session_id: id.to_string(), pid })
}

/// True when `pid` is `me`'s parent, grandparent, ... (at most 64 steps up).
fn is_ancestor(proc: &Path, pid: u32, me: u32) -> bool {
    let mut cur = me;
    for _ in 0..64 {
        match parent_of(proc, cur) {
            Some(p) if p == pid => return true,
            Some(p) if p > 1 => cur = p,
            _ => return false,
        }
    }
    false
}

/// The parent pid from `/proc/<pid>/stat` (the field after the parenthesised name, which may hold spaces).
fn parent_of(proc: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_that_name_no_live_recorder_fail() {
        let me = std::process::id();
        let ppid = nix::unistd::getppid().as_raw() as u32;
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let unrelated = child.id();
        for (marker, why) in [
            ("anything", "names no recorder"),
            ("0193abcd-0000:notapid", "names no recorder"),
            ("../../x:1", "names no ddcoterm session"),
            (&*format!("0193abcd-0000:{unrelated}"), "not one of this command's parents"),
            (&*format!("0193abcd-0000:{me}"), "not one of this command's parents"),
        ] {
            let e = prove(marker, Witness::OpenCast).unwrap_err();
            assert!(e.contains(why), "{marker}: {e}");
        }
        let _ = child.kill();
        let _ = child.wait();
        // Our parent is the test harness: an ancestor, but not ddcoterm, or not recording.
        let e = prove(&format!("0193abcd-0000:{ppid}"), Witness::OpenCast).unwrap_err();
        assert!(e.contains("is not ddcoterm") || e.contains("is not recording"), "{e}");
    }

    /// A /proc of our own making: `me` (100) <- 50 (the recorder) <- 1; both run `exe`, 50 holds `held` open.
    fn fake_proc(recorder_exe: &str, held: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::write(p.join("ddcoterm"), "").unwrap();
        std::fs::write(p.join("other"), "").unwrap();
        for (pid, ppid, exe) in [(100, 50, "ddcoterm"), (50, 1, recorder_exe)] {
            let d = p.join(pid.to_string());
            std::fs::create_dir_all(d.join("fd")).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} (dd coterm) S {ppid} 1 1 0\n")).unwrap();
            std::os::unix::fs::symlink(p.join(exe), d.join("exe")).unwrap();
        }
        std::os::unix::fs::symlink(p.join(held), p.join("50/fd/3")).unwrap();
        t
    }

    #[test]
    fn each_proof_step_is_required() {
        let id = "0193abcd-0000";
        let yes = |_: &str| Ok(Some(50));
        let other_pid = |_: &str| Ok(Some(77));
        let none = |_: &str| Ok(None);
        let down =
            |_: &str| -> std::io::Result<Option<u32>> { Err(std::io::Error::other("connection refused")) };
        let cast = format!("{id}.cast");
        let cases: Vec<(&str, &str, &str, Witness<'_>, Result<(), &str>)> = vec![
            ("recorder holds the cast", "ddcoterm", &cast, Witness::OpenCast, Ok(())),
            ("holds another file", "ddcoterm", "notes.txt", Witness::OpenCast, Err("is not recording")),
            ("another program", "other", &cast, Witness::OpenCast, Err("is not ddcoterm")),
            ("agent confirms this pid", "ddcoterm", "x", Witness::Agent(&yes), Ok(())),
            ("agent names another pid", "ddcoterm", "x", Witness::Agent(&other_pid), Err("is not recording")),
            ("agent knows no such session", "ddcoterm", "x", Witness::Agent(&none), Err("is not recording")),
            ("agent unreachable", "ddcoterm", "x", Witness::Agent(&down), Err("cannot confirm")),
        ];
        for (name, exe, held, witness, want) in cases {
            let t = fake_proc(exe, held);
            let got = prove_in(t.path(), &format!("{id}:50"), 100, witness);
            match want {
                Ok(()) => assert_eq!(got, Ok(Outer { session_id: id.into(), pid: 50 }), "{name}"),
                Err(why) => assert!(got.unwrap_err().contains(why), "{name}"),
            }
        }
    }

    #[test]
    fn parent_chain_is_read_from_proc() {
        let ppid = nix::unistd::getppid().as_raw() as u32;
        assert_eq!(parent_of(Path::new("/proc"), std::process::id()), Some(ppid));
        assert!(is_ancestor(Path::new("/proc"), ppid, std::process::id()));
    }

    #[test]
    fn marker_round_trip() {
        let m = marker("0193-abc", 42);
        assert_eq!(session_id(&m), "0193-abc");
        assert_eq!(session_id("legacy-id"), "legacy-id");
    }
}
