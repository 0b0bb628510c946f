//! The nesting marker: when a command runs inside a ddcoterm recording, it is not recorded twice. The marker
//! variable (`DDCOTERM_SESSION=<session-id>:<recorder-pid>`) is only a claim, which anyone can set; the
//! recording is skipped only when the claim is proven by things the user cannot mint from a shell:
//!
//! 1. the named process is an ancestor of this one (a process cannot choose its parent chain);
//! 2. it runs the same ddcoterm executable as this process (same device and inode);
//! 3. it holds the session's recording open (`<session-id>.cast`, not deleted): a ddcoterm that is not
//!    recording (`--actions logs`, `play`) holds none.
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

/// Checks the marker against the process tree and the recorder's open files (see the module doc). `Err`
/// says why the claim does not hold, for the one line the user sees.
pub fn prove(marker: &str) -> Result<Outer, String> {
    prove_in(Path::new("/proc"), marker, std::process::id())
}

fn prove_in(proc: &Path, marker: &str, me: u32) -> Result<Outer, String> {
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
    let cast = format!("{id}.cast");
    let fds = std::fs::read_dir(proc.join(pid.to_string()).join("fd"))
        .map_err(|e| format!("cannot check process {pid}'s open files: {e}"))?;
    let recording = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target: PathBuf| target.file_name().is_some_and(|n| n == cast.as_str()));
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
            let e = prove(marker).unwrap_err();
            assert!(e.contains(why), "{marker}: {e}");
        }
        let _ = child.kill();
        let _ = child.wait();
        // Our parent is the test harness: an ancestor, but not ddcoterm, or not recording.
        let e = prove(&format!("0193abcd-0000:{ppid}")).unwrap_err();
        assert!(e.contains("is not ddcoterm") || e.contains("is not recording"), "{e}");
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
