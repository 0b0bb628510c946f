//! Retention of the local recordings directory (`recording.retention`): deletes recordings older than
//! `max_age`, then the oldest until the directory fits in `max_total`, never one that is still being written,
//! waiting for its recovery, or whose upload is still spooled (the caller says which, see [`sweep`]).
//!
//! Cheap by construction: [`due`] is one `stat` of a marker file (`.retention`, whose mtime is the last sweep)
//! and a sweep reads only the directory listing and file metadata, never a recording's content. It runs at
//! the start of a recorded session and in `ddcoterm spool flush` (the flush timer), at most once per
//! `interval`; a shim call that execs directly never gets here.

use crate::config::settings::RetentionSettings;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The marker file; its mtime is when the last sweep started.
pub const MARKER: &str = ".retention";

/// A file written this recently is never deleted, lock or no lock (a recorder whose lock could not be created
/// still appends to its `.cast`).
pub const RECENT: Duration = Duration::from_secs(10 * 60);

/// Files that belong to a session `<id>`: its recording and process events (deleted together) and the
/// recorder's lock and journal (while either exists the session is live or waits for its recovery).
const DATA_EXTS: [&str; 2] = [".cast", ".events.jsonl"];
const BUSY_EXTS: [&str; 2] = [".recorder", ".journal"];

/// The resolved limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_age: Option<Duration>,
    pub max_total: Option<u64>,
    pub interval: Duration,
}

impl Policy {
    /// The limits of `recording.retention` (its values were parsed when the config was loaded); `0` turns a
    /// limit off.
    pub fn from_settings(s: &RetentionSettings) -> Policy {
        let max_age = s.max_age.get();
        let max_total = s.max_total.bytes();
        Policy {
            max_age: (!max_age.is_zero()).then_some(max_age),
            max_total: (max_total > 0).then_some(max_total),
            interval: s.interval.get(),
        }
    }

    /// Neither limit set: nothing to do, not even a look at the marker.
    pub fn is_off(&self) -> bool {
        self.max_age.is_none() && self.max_total.is_none()
    }
}

/// Whether a sweep of `dir` is due (the marker is missing or older than `interval`); when it is, the marker is
/// touched first, so concurrent sessions do not all sweep. A missing directory is never due.
pub fn due(dir: &Path, interval: Duration, now: SystemTime) -> bool {
    let marker = dir.join(MARKER);
    match std::fs::symlink_metadata(&marker).and_then(|m| m.modified()) {
        // A marker in the future (the clock was stepped back) does not block sweeps until it is reached.
        Ok(t) if now.duration_since(t).is_ok_and(|age| age < interval) => return false,
        _ => {}
    }
    if !dir.is_dir() {
        return false;
    }
    // Recreated rather than its time set: a symlink planted under the name is replaced, never followed.
    let _ = std::fs::remove_file(&marker);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .map(|f| {
            let _ = f.set_modified(now);
        })
        .is_ok()
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Session ids deleted, oldest first, and the bytes they held.
    pub removed: Vec<String>,
    pub freed: u64,
    /// Sessions over a limit that were kept because they are busy (live, awaiting recovery, upload spooled).
    pub kept_busy: usize,
    pub errors: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.removed.is_empty() {
            writeln!(
                f,
                "retention: deleted {} old recording(s), {} (recording.retention)",
                self.removed.len(),
                bytesize::ByteSize(self.freed).display().iec()
            )?;
        }
        for e in &self.errors {
            writeln!(f, "retention: {e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Session {
    bytes: u64,
    modified: Option<SystemTime>,
    busy: bool,
}

/// Applies `policy` to `dir` now. `upload_pending(id)` is true for a session whose records still wait in the
/// spool (or its dead letters): its recording is kept, whatever its age.
pub fn sweep(dir: &Path, policy: &Policy, now: SystemTime, upload_pending: &dyn Fn(&str) -> bool) -> Report {
    let mut report = Report::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return report,
        Err(e) => {
            report.errors.push(format!("{}: {e}", dir.display()));
            return report;
        }
    };
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for de in entries.flatten() {
        let name = de.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Some((id, data)) = DATA_EXTS
            .iter()
            .map(|x| (x, true))
            .chain(BUSY_EXTS.iter().map(|x| (x, false)))
            .find_map(|(x, data)| name.strip_suffix(x).map(|id| (id.to_string(), data)))
        else {
            continue;
        };
        // Only regular files count (and are deleted): a symlink is never followed.
        let Ok(md) = std::fs::symlink_metadata(de.path()) else { continue };
        if !md.file_type().is_file() || id.is_empty() {
            continue;
        }
        let s = sessions.entry(id).or_default();
        if data {
            s.bytes += md.len();
            let m = md.modified().ok();
            s.modified = s.modified.max(m);
        } else {
            s.busy = true;
        }
    }
    for (id, s) in sessions.iter_mut() {
        let recent = s.modified.is_none_or(|m| now.duration_since(m).map_or(true, |age| age < RECENT));
        s.busy = s.busy || recent || upload_pending(id);
    }
    // Oldest first.
    let mut order: Vec<(&String, &Session)> = sessions.iter().filter(|(_, s)| s.modified.is_some()).collect();
    order.sort_by_key(|(id, s)| (s.modified, (*id).clone()));
    let mut total: u64 = sessions.values().map(|s| s.bytes).sum();
    for (id, s) in order {
        let too_old = policy
            .max_age
            .is_some_and(|max| s.modified.is_some_and(|m| now.duration_since(m).is_ok_and(|age| age > max)));
        let too_big = policy.max_total.is_some_and(|max| total > max);
        if !(too_old || too_big) {
            continue;
        }
        if s.busy {
            report.kept_busy += 1;
            continue;
        }
        match remove_session(dir, id) {
            Ok(()) => {
                total = total.saturating_sub(s.bytes);
                report.freed += s.bytes;
                report.removed.push(id.clone());
            }
            Err(e) => report.errors.push(e),
        }
    }
    report
}

/// The events log first, the recording last: a sweep stopped half-way leaves a recording, never a stray log.
fn remove_session(dir: &Path, id: &str) -> Result<(), String> {
    for x in DATA_EXTS.iter().rev() {
        let p = dir.join(format!("{id}{x}"));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("deleting {}: {e}", p.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn file(dir: &Path, name: &str, bytes: usize, age: Duration, now: SystemTime) {
        let p = dir.join(name);
        std::fs::write(&p, vec![b'x'; bytes]).unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(now - age).unwrap();
    }

    fn policy(age: &str, total: &str) -> Policy {
        Policy::from_settings(&RetentionSettings {
            max_age: age.into(),
            max_total: total.into(),
            interval: "1h".into(),
        })
    }

    fn left(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn old_recordings_go_busy_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        file(d.path(), "old.cast", 10, 100 * DAY, now);
        file(d.path(), "old.events.jsonl", 5, 100 * DAY, now);
        file(d.path(), "young.cast", 10, DAY, now);
        // Still being written (its recorder's lock), awaiting recovery (a journal), upload spooled.
        file(d.path(), "live.cast", 10, 100 * DAY, now);
        file(d.path(), "live.recorder", 1, 100 * DAY, now);
        file(d.path(), "crashed.cast", 10, 100 * DAY, now);
        file(d.path(), "crashed.journal", 1, 100 * DAY, now);
        file(d.path(), "queued.cast", 10, 100 * DAY, now);
        file(d.path(), "notes.txt", 10, 100 * DAY, now);
        let r = sweep(d.path(), &policy("90d", "0"), now, &|id| id == "queued");
        assert_eq!(r.removed, vec!["old"]);
        assert_eq!((r.freed, r.kept_busy), (15, 3));
        assert_eq!(
            left(d.path()),
            vec![
                "crashed.cast",
                "crashed.journal",
                "live.cast",
                "live.recorder",
                "notes.txt",
                "queued.cast",
                "young.cast"
            ]
        );
    }

    #[test]
    fn over_the_total_the_oldest_go_first_but_never_a_fresh_one() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        file(d.path(), "a.cast", 400, 5 * DAY, now);
        file(d.path(), "b.cast", 400, 4 * DAY, now);
        file(d.path(), "c.cast", 400, 3 * DAY, now);
        file(d.path(), "d.cast", 400, Duration::from_secs(60), now);
        // 1600 bytes, limit 1000: a and b go (oldest), 800 left.
        let r = sweep(d.path(), &policy("0", "1000B"), now, &|_| false);
        assert_eq!(r.removed, vec!["a", "b"]);
        assert_eq!(left(d.path()), vec!["c.cast", "d.cast"]);
        // Limit 100: c goes; d was written a minute ago and stays, over the limit or not.
        let r = sweep(d.path(), &policy("0", "100"), now, &|_| false);
        assert_eq!((r.removed.clone(), r.kept_busy), (vec!["c".to_string()], 1));
        assert_eq!(left(d.path()), vec!["d.cast"]);
    }

    #[test]
    fn symlinks_are_neither_followed_nor_counted() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        file(outside.path(), "precious", 10, 100 * DAY, now);
        std::os::unix::fs::symlink(outside.path().join("precious"), d.path().join("x.cast")).unwrap();
        let r = sweep(d.path(), &policy("1d", "1"), now, &|_| false);
        assert!(r.removed.is_empty());
        assert!(outside.path().join("precious").exists() && d.path().join("x.cast").exists());
    }

    #[test]
    fn due_at_most_once_per_interval() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        assert!(due(d.path(), Duration::from_secs(3600), now), "no marker yet");
        assert!(!due(d.path(), Duration::from_secs(3600), now + Duration::from_secs(60)));
        assert!(due(d.path(), Duration::from_secs(3600), now + Duration::from_secs(3601)));
        assert!(!due(&d.path().join("missing"), Duration::ZERO, now));
        assert!(
            due(d.path(), Duration::from_secs(3600), now - Duration::from_secs(86400)),
            "marker in the future"
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let p = Policy::from_settings(&RetentionSettings::default());
        assert_eq!((p.max_age, p.max_total), (Some(90 * DAY), Some(2 << 30)));
        assert!(policy("0", "0").is_off());
    }
}
