//! What a recorder leaves for its recovery if it is killed: a lock naming it (pid and start time, what the
//! session was), the journal of the spool records it committed (chunk boundaries as byte offsets in the local
//! `.cast`), and the reading of the `.cast` tail no chunk holds yet. No spool or network here: `upload/recovery.rs`
//! turns this into spool records.
//!
//! Files, next to `<id>.cast` in the recordings directory (0600):
//! - `<id>.recorder`: [`RecorderInfo`] JSON, `flock`ed by the recorder for as long as it runs. It is created
//!   locked (written under another name, locked, then renamed), so nobody ever sees it unlocked while the
//!   recorder lives; the kernel drops the lock when the recorder dies, however it dies.
//! - `<id>.journal`: one line per spool record committed for the session, appended and fsync'd after the
//!   record's temp file is complete and before it is published (`Spool::enqueue_journaled`; chunk lines are
//!   fsync'd, see [`Journal::append`]):
//!   `create <file> <pid>`, `chunk <seq> <start> <end> <file> <pid>`, `event <file> <pid>`, `end <file> <pid>`,
//!   `session-event <file> <pid>` (the Datadog session event, written by a recovery).
//!   A chunk line says that `.cast` bytes `start..end` are chunk `seq` (chunk 0 is the header line, `0..header_len`,
//!   as the session server numbers them); `pid` wrote the temp file, so a journaled record that was never
//!   published is found under `tmp/<file>.<pid>.tmp`.

use super::cast;
use crate::model::{ProcessEvent, SessionMeta};
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Extension of the recorder lock file.
pub const LOCK_EXT: &str = "recorder";
/// Extension of the journal.
pub const JOURNAL_EXT: &str = "journal";
/// Data of the exit marker a recovery appends when the recorder died before writing its own: the exit status
/// of the command is not known (the process events and the end record say `unknown` / `null` as well).
pub const EXIT_UNKNOWN: &str = "exit unknown";

/// `<dir>/<id>.recorder`.
pub fn lock_path(dir: &Path, session_id: &str) -> PathBuf {
    dir.join(format!("{session_id}.{LOCK_EXT}"))
}

/// `<dir>/<id>.journal`.
pub fn journal_path(dir: &Path, session_id: &str) -> PathBuf {
    dir.join(format!("{session_id}.{JOURNAL_EXT}"))
}

/// What a recovery needs to finish the session the way its recorder would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderInfo {
    pub v: u32,
    pub pid: u32,
    /// `/proc/<pid>/stat` start time (clock ticks since boot): with the pid, it names the recorder process even
    /// after the pid is reused. `None` where there is no `/proc`.
    pub pid_start: Option<u64>,
    pub started_at_ms: u64,
    pub meta: SessionMeta,
    /// The local recording, when the session has `record`.
    pub cast: Option<PathBuf>,
    /// Length of the `.cast` header line (chunk 0): the recorder's first event chunk starts there.
    pub header_len: u64,
    /// The wrapped command's process event, when one is due at the end (`process_info` on `ddcoterm -- CMD`);
    /// exit code and duration are filled in when it is sent.
    pub event: Option<ProcessEvent>,
}

/// The start time of process `pid` from `/proc/<pid>/stat` (field 22), if it runs.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorder `info` names still runs: its pid exists with the same start time (or, without
/// `/proc`, at all).
pub fn recorder_alive(info: &RecorderInfo) -> bool {
    if !crate::spool::pid_alive(info.pid) {
        return false;
    }
    match (info.pid_start, proc_start_time(info.pid)) {
        (Some(recorded), Some(now)) => recorded == now,
        // A pid that exists and cannot be compared: assume it is the recorder (never recover a live session).
        _ => true,
    }
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// The recorder's hold on its session. Dropping it without [`RecorderLock::release`] (an error path) keeps
/// the files, so that a later recovery finishes the session.
#[derive(Debug)]
pub struct RecorderLock {
    _file: File,
    path: PathBuf,
    journal: PathBuf,
}

impl RecorderLock {
    /// Writes `<dir>/<id>.recorder` already locked.
    pub fn acquire(dir: &Path, info: &RecorderInfo) -> anyhow::Result<RecorderLock> {
        let path = lock_path(dir, &info.meta.session_id);
        let tmp = dir.join(format!(".{}.{LOCK_EXT}.{}.tmp", info.meta.session_id, std::process::id()));
        let res = (|| -> io::Result<File> {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.lock_exclusive()?;
            // Not fsync'd: the lock matters while the process could die, which the kernel sees at once; an
            // empty lock left by a power loss is removed by the next sweep.
            f.write_all(&serde_json::to_vec(info).unwrap_or_default())?;
            fs::rename(&tmp, &path)?;
            Ok(f)
        })();
        match res {
            Ok(file) => {
                Ok(RecorderLock { _file: file, path, journal: journal_path(dir, &info.meta.session_id) })
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(anyhow::anyhow!("creating {}: {e}", path.display()))
            }
        }
    }

    /// The session ended normally: nothing is left to recover. The lock goes first, so that a crash in
    /// between leaves a journal nobody reads, never a lock without its journal.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.journal);
    }
}

/// A dead recorder's session, locked by the recovery that claimed it.
#[derive(Debug)]
pub struct Claimed {
    _file: File,
    path: PathBuf,
    pub info: RecorderInfo,
    pub journal: PathBuf,
}

impl Claimed {
    /// Claims the session of lock file `path` when its recorder is gone and no other recovery holds it.
    /// `Ok(None)`: still recording, being recovered elsewhere, or already finished.
    pub fn dead(path: &Path) -> anyhow::Result<Option<Claimed>> {
        let file = match open_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("opening {}: {e}", path.display()),
        };
        if !FileExt::try_lock_exclusive(&file)
            .map_err(|e| anyhow::anyhow!("locking {}: {e}", path.display()))?
        {
            return Ok(None);
        }
        // Locked: the name must still be this file (a recovery that finished removes it before unlocking).
        let ino = file.metadata()?.ino();
        match fs::symlink_metadata(path) {
            Ok(md) if md.ino() == ino => {}
            _ => return Ok(None),
        }
        let bytes = fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        if bytes.is_empty() {
            // Its contents never reached the disk (a power loss): nothing says what to recover.
            tracing::warn!("{} is empty (lost in a crash of the machine); removing it", path.display());
            let _ = fs::remove_file(path);
            return Ok(None);
        }
        let info: RecorderInfo = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a recorder lock ({e}); left as is", path.display()))?;
        if recorder_alive(&info) {
            return Ok(None);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let journal = journal_path(dir, &info.meta.session_id);
        Ok(Some(Claimed { _file: file, path: path.to_path_buf(), info, journal }))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recovery is complete: removes the lock, then the journal (see [`RecorderLock::release`]).
    pub fn finish(self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.journal);
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Create {
        file: String,
        pid: u32,
    },
    Chunk {
        seq: u64,
        start: u64,
        end: u64,
        file: String,
        pid: u32,
    },
    Event {
        file: String,
        pid: u32,
    },
    End {
        file: String,
        pid: u32,
    },
    /// The Datadog `coterm_session` event a recovery sends (the recorder sends it after its end).
    SessionEvent {
        file: String,
        pid: u32,
    },
}

impl Entry {
    /// The spool record file this line commits, and the pid that wrote its temp file.
    pub fn record(&self) -> (&str, u32) {
        match self {
            Entry::Create { file, pid }
            | Entry::Chunk { file, pid, .. }
            | Entry::Event { file, pid }
            | Entry::End { file, pid }
            | Entry::SessionEvent { file, pid } => (file, *pid),
        }
    }

    fn line(&self) -> String {
        match self {
            Entry::Create { file, pid } => format!("create {file} {pid}\n"),
            Entry::Chunk { seq, start, end, file, pid } => {
                format!("chunk {seq} {start} {end} {file} {pid}\n")
            }
            Entry::Event { file, pid } => format!("event {file} {pid}\n"),
            Entry::End { file, pid } => format!("end {file} {pid}\n"),
            Entry::SessionEvent { file, pid } => format!("session-event {file} {pid}\n"),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let w: Vec<&str> = line.split(' ').collect();
        let file = |s: &str| (!s.is_empty() && !s.contains('/')).then(|| s.to_string());
        match w.as_slice() {
            ["create", f, p] => Some(Entry::Create { file: file(f)?, pid: p.parse().ok()? }),
            ["event", f, p] => Some(Entry::Event { file: file(f)?, pid: p.parse().ok()? }),
            ["end", f, p] => Some(Entry::End { file: file(f)?, pid: p.parse().ok()? }),
            ["session-event", f, p] => Some(Entry::SessionEvent { file: file(f)?, pid: p.parse().ok()? }),
            ["chunk", s, a, b, f, p] => Some(Entry::Chunk {
                seq: s.parse().ok()?,
                start: a.parse().ok()?,
                end: b.parse().ok()?,
                file: file(f)?,
                pid: p.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// The session's journal, open for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating, 0600) the journal at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Journal> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
        Ok(Journal { file, path: path.to_path_buf() })
    }

    /// Appends one line with a single write, before the record it names is published: a killed process
    /// (the case this is for) leaves every line it wrote. A chunk line is also made durable (fdatasync) first,
    /// so that after a power loss a published chunk is never cut again with other bytes under its sequence
    /// number. Create, event and end lines are not: each fsync costs a short recorded command about 5 ms,
    /// and after a power loss the worst case is one of those records sent a second time.
    pub fn append(&mut self, e: &Entry) -> io::Result<()> {
        self.file.write_all(e.line().as_bytes())?;
        if matches!(e, Entry::Chunk { .. }) {
            self.file.sync_data()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines of the journal at `path` (none when it does not exist). A torn last line (the
    /// writer died inside the write) is ignored: the record it would have named was never published.
    pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
        };
        let complete = complete_len(&bytes);
        let text = String::from_utf8_lossy(&bytes[..complete]);
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match Entry::parse(line) {
                Some(e) => out.push(e),
                None => anyhow::bail!("{}:{}: not a journal line: {line:?}", path.display(), i + 1),
            }
        }
        Ok(out)
    }
}

/// Bytes up to and including the last newline: what a killed writer finished of a line-oriented file.
pub fn complete_len(bytes: &[u8]) -> usize {
    memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1)
}

/// The last complete line of `bytes` (without its newline).
fn last_line(bytes: &[u8]) -> &[u8] {
    let body = &bytes[..complete_len(bytes)];
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    match memchr::memrchr(b'\n', body) {
        Some(i) => &body[i + 1..],
        None => body,
    }
}

/// Time of the last event of a `.cast` (0 when there is none).
pub fn last_event_time(bytes: &[u8]) -> f64 {
    cast::parse_event(&String::from_utf8_lossy(last_line(bytes))).map_or(0.0, |(t, _, _)| t)
}

/// The exit marker a `.cast` ends with, if any: `Some(Some(code))` for the recorder's own `exit <code>`,
/// `Some(None)` for a recovered [`EXIT_UNKNOWN`].
pub fn exit_marker(bytes: &[u8]) -> Option<Option<i32>> {
    let (_, code, data) = cast::parse_event(&String::from_utf8_lossy(last_line(bytes)))?;
    if code != "m" {
        return None;
    }
    if data == EXIT_UNKNOWN {
        return Some(None);
    }
    data.strip_prefix("exit ")?.parse().ok().map(Some)
}

/// The marker line a recovery appends at `t` (the last event's time: when the recorder died is not known).
pub fn unknown_exit_line(t: f64) -> Vec<u8> {
    let mut out = Vec::new();
    cast::push_event(&mut out, t, "m", EXIT_UNKNOWN);
    out
}

/// Cuts `bytes[start..end]` (whole lines) into chunks of at most `max` bytes at line ends; a line longer than
/// `max` is a chunk of its own. Returns `(start, end)` offsets.
pub fn cut_chunks(bytes: &[u8], start: usize, end: usize, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let limit = (from + max.max(1)).min(end);
        let to = if limit == end {
            end
        } else {
            match memchr::memrchr(b'\n', &bytes[from..limit]) {
                Some(i) => from + i + 1,
                // One line longer than `max`: up to its end.
                None => memchr::memchr(b'\n', &bytes[limit..end]).map_or(end, |i| limit + i + 1),
            }
        };
        out.push((from, to));
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dir: &Path, id: &str, pid: u32) -> RecorderInfo {
        RecorderInfo {
            v: 1,
            pid,
            pid_start: proc_start_time(pid),
            started_at_ms: 1,
            meta: SessionMeta { session_id: id.into(), ..SessionMeta::default() },
            cast: Some(dir.join(format!("{id}.cast"))),
            header_len: 3,
            event: None,
        }
    }

    #[test]
    fn a_live_recorders_session_cannot_be_claimed_and_a_dead_ones_can_once() {
        let d = tempfile::tempdir().unwrap();
        let lock = RecorderLock::acquire(d.path(), &info(d.path(), "s1", std::process::id())).unwrap();
        let path = lock_path(d.path(), "s1");
        assert!(Claimed::dead(&path).unwrap().is_none(), "locked by the recorder");
        // The recorder dies: the kernel drops its lock. Its pid (ours here) still runs with the same start
        // time, so a recovery still refuses: a pid is not reused while its process lives.
        drop(lock);
        assert!(Claimed::dead(&path).unwrap().is_none(), "same pid and start time: alive");
        // A lock whose pid runs with another start time is a reused pid: the recorder is gone.
        let mut i = info(d.path(), "s2", std::process::id());
        i.pid_start = i.pid_start.map(|t| t + 1);
        drop(RecorderLock::acquire(d.path(), &i).unwrap());
        let c = Claimed::dead(&lock_path(d.path(), "s2")).unwrap().expect("pid reused: recorder dead");
        assert!(Claimed::dead(&lock_path(d.path(), "s2")).unwrap().is_none(), "one recovery at a time");
        assert_eq!(c.info, i);
        c.finish();
        assert!(!lock_path(d.path(), "s2").exists());
        assert!(Claimed::dead(&lock_path(d.path(), "s2")).unwrap().is_none(), "finished");
    }

    #[test]
    fn a_released_session_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let lock = RecorderLock::acquire(d.path(), &info(d.path(), "s1", std::process::id())).unwrap();
        let mut j = Journal::open(&journal_path(d.path(), "s1")).unwrap();
        j.append(&Entry::Create { file: "f.rec".into(), pid: 1 }).unwrap();
        lock.release();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn journal_round_trips_and_ignores_a_torn_last_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.journal");
        let entries = vec![
            Entry::Create { file: "1-2-3~n~s.rec".into(), pid: 7 },
            Entry::Chunk { seq: 0, start: 10, end: 20, file: "1-2-4~b~s.rec".into(), pid: 7 },
            Entry::Event { file: "1-2-5~n~.rec".into(), pid: 8 },
            Entry::End { file: "1-2-6~n~s.rec".into(), pid: 8 },
            Entry::SessionEvent { file: "1-2-7~n~.rec".into(), pid: 8 },
        ];
        let mut j = Journal::open(&p).unwrap();
        for e in &entries {
            j.append(e).unwrap();
        }
        assert_eq!(Journal::read(&p).unwrap(), entries);
        fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"chunk 1 20 ").unwrap();
        assert_eq!(Journal::read(&p).unwrap(), entries);
        fs::write(&p, "chunk x\n").unwrap();
        let e = Journal::read(&p).unwrap_err().to_string();
        assert!(e.contains("s.journal:1"), "{e}");
        assert!(Journal::read(&d.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn cast_tails_markers_and_cuts() {
        let cast = b"{\"version\": 2}\n[0.5, \"o\", \"a\"]\n[1.25, \"o\", \"b\"]\n[1.3, \"o\", \"tor";
        assert_eq!(complete_len(cast), cast.len() - "[1.3, \"o\", \"tor".len());
        assert_eq!(last_event_time(cast), 1.25);
        assert_eq!(exit_marker(cast), None);
        let mut done = cast[..complete_len(cast)].to_vec();
        done.extend(unknown_exit_line(1.25));
        assert_eq!(exit_marker(&done), Some(None));
        assert_eq!(last_event_time(&done), 1.25);
        assert_eq!(exit_marker(b"{}\n[2.0, \"m\", \"exit 3\"]\n"), Some(Some(3)));
        let lines = b"aaaa\nbb\ncccccccccc\nd\n";
        assert_eq!(cut_chunks(lines, 0, lines.len(), 8), vec![(0, 8), (8, 19), (19, 21)]);
        assert_eq!(cut_chunks(lines, 5, lines.len(), 100), vec![(5, 21)]);
        assert!(cut_chunks(lines, 21, 21, 8).is_empty());
        let all: Vec<u8> =
            cut_chunks(lines, 0, lines.len(), 3).iter().flat_map(|&(a, b)| lines[a..b].to_vec()).collect();
        assert_eq!(all, lines);
    }
}
