//! Durable outbox of opaque records (DESIGN.md §7): written atomically, delivered by a [`Deliver`]er, deleted
//! only after success; knows nothing of Datadog.
//!
//! Layout of `spool.dir` (0700):
//! - `<id>~<class>~<group>.rec` (0600): a JSON header line (`kind`, `meta`, `created_ms`, `body_len`) then the body.
//! - `<id>.state` (0600): attempts, last error, next attempt time, permanent flag; absent until a failure.
//! - `tmp/`: files being written (renamed into place when complete).
//! - `dead/`: dead letters, records refused permanently, each with its `.state` (the receiver's message).
//! - `dropped.log`: one line per record dropped because the spool was full.
//!
//! A sender locks a `.rec` file (fs4 `flock`) for as long as it delivers it and re-checks that the file still
//! exists once locked, so concurrent processes never send a record twice. Another stream writes audit records
//! with `Spool::open(dir, max)?.enqueue(Record::new("audit.break_glass", Class::Audit, json))`; see
//! `docs/datadog.md` for the audit JSON fields.

pub mod dead;
pub mod flush;
pub mod health;
pub mod record;
pub mod sender;
pub mod status;

pub use dead::DeadLetter;
pub use flush::{flush, Backoff, Deliver, Failure, FlushOptions, FlushReport, Outcome};
pub use record::{Class, Record, RecordId, Stored};
pub use sender::{DrainReport, Sender, SenderOptions};

use crate::fsutil;
use fs4::fs_std::FileExt;
use record::Name;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Spool failures; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool: {0}")]
    Invalid(String),
    #[error("spool {path} is full ({used} of {max} bytes, spool.max_bytes) and only audit records are left; the new {kind} record was not stored", path = path.display())]
    Full { path: PathBuf, used: u64, max: u64, kind: String },
    #[error("spool record {path} is corrupt ({msg}); moved aside as .corrupt", path = path.display())]
    Corrupt { path: PathBuf, msg: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// Delivery history of a record that failed at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub attempts: u32,
    pub last_error: String,
    pub status: Option<u16>,
    /// The receiver refused it (bad key, bad payload): automatic senders stop; `spool flush` tries once more.
    pub permanent: bool,
    /// Unix ms before which automatic senders leave it alone (backoff, rate-limit reset).
    pub next_attempt_ms: u64,
    pub updated_ms: u64,
}

/// A record as listed (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: RecordId,
    pub class: Class,
    pub group: Option<String>,
    pub bytes: u64,
    pub state: Option<State>,
    pub path: PathBuf,
}

/// One line of `dropped.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropNote {
    pub at_ms: u64,
    pub id: String,
    pub kind: String,
    pub class: Class,
    pub bytes: u64,
}

/// The spool directory, shared safely by every ddcoterm process of the user.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (bytes, when measured): a full scan at most once a second on the enqueue path.
    size: Mutex<Option<(u64, Instant)>>,
}

impl Spool {
    /// Opens (creating, 0700) the spool at `dir`. `max_bytes` 0 means unbounded.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        fsutil::ensure_private_dir(&dir).map_err(io_err(&dir))?;
        let tmp = dir.join("tmp");
        fsutil::ensure_private_dir(&tmp).map_err(io_err(&tmp))?;
        // Temp files of dead writers are swept by session recovery (`Spool::sweep_tmp`), which knows which
        // of them a journal still needs.
        Ok(Spool { dir, max_bytes, size: Mutex::new(None) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores `rec` durably and returns its id. When the spool is over `max_bytes`, the oldest bulk records
    /// (then normal ones) are dropped with a warning and a line in `dropped.log`; audit records are never
    /// dropped and always stored.
    pub fn enqueue(&self, rec: Record) -> Result<RecordId, SpoolError> {
        self.enqueue_noting_drops(rec).map(|(id, _)| id)
    }

    /// [`Spool::enqueue`], also returning the ids it dropped to make room.
    pub fn enqueue_noting_drops(&self, rec: Record) -> Result<(RecordId, Vec<RecordId>), SpoolError> {
        self.enqueue_inner(rec, None)
    }

    /// [`Spool::enqueue_noting_drops`] calling `journal` with the record's file name once its temp file is
    /// complete and fsync'd, just before it is published (renamed into place). A crash after the journal
    /// call leaves the record whole under `tmp/`, where [`Spool::publish_tmp`] finishes the job; an error
    /// from `journal` stores nothing. This is how a session's chunk boundaries are persisted with the chunk.
    pub fn enqueue_journaled(
        &self,
        rec: Record,
        journal: &mut dyn FnMut(&str) -> std::io::Result<()>,
    ) -> Result<(RecordId, Vec<RecordId>), SpoolError> {
        self.enqueue_inner(rec, Some(journal))
    }

    fn enqueue_inner(
        &self,
        rec: Record,
        journal: Option<&mut dyn FnMut(&str) -> std::io::Result<()>>,
    ) -> Result<(RecordId, Vec<RecordId>), SpoolError> {
        if !record::valid_kind(&rec.kind) {
            return Err(SpoolError::Invalid(format!("bad record kind `{}`", rec.kind)));
        }
        if let Some(g) = &rec.group {
            if !record::valid_group(g) {
                return Err(SpoolError::Invalid(format!(
                    "bad record group `{g}` (letters, digits, - and _)"
                )));
            }
        }
        let id = RecordId::generate();
        let name = Name { id: id.clone(), class: rec.class, group: rec.group.clone() };
        let header = record::encode_header(&rec, id.created_ms());
        let size = (header.len() + rec.body.len()) as u64;
        let dropped = self.make_room(size, &rec)?;
        let file_name = name.file_name();
        let dest = self.dir.join(&file_name);
        let tmp = self.dir.join("tmp");
        let parts: [&[u8]; 2] = [&header, &rec.body];
        match journal {
            Some(j) => fsutil::atomic_write_parts_then(&tmp, &dest, &parts, Some(&mut || j(&file_name))),
            None => fsutil::atomic_write_parts(&tmp, &dest, &parts),
        }
        .map_err(io_err(&dest))?;
        if let Ok(mut s) = self.size.lock() {
            if let Some((b, _)) = s.as_mut() {
                *b += size;
            }
        }
        Ok((id, dropped))
    }

    fn make_room(&self, need: u64, rec: &Record) -> Result<Vec<RecordId>, SpoolError> {
        let mut dropped = Vec::new();
        if self.max_bytes == 0 {
            return Ok(dropped);
        }
        let cached = {
            let s = self.size.lock().map_err(|_| SpoolError::Invalid("lock poisoned".into()))?;
            s.filter(|(_, at)| at.elapsed() < Duration::from_secs(1)).map(|(b, _)| b)
        };
        if let Some(b) = cached {
            if b + need <= self.max_bytes {
                return Ok(dropped);
            }
        }
        let entries = self.entries()?;
        let mut used: u64 = entries.iter().map(|e| e.bytes).sum();
        if used + need > self.max_bytes {
            for class in [Class::Bulk, Class::Normal] {
                for e in entries.iter().filter(|e| e.class == class) {
                    if used + need <= self.max_bytes {
                        break;
                    }
                    if self.drop_entry(e)? {
                        used = used.saturating_sub(e.bytes);
                        dropped.push(e.id.clone());
                    }
                }
            }
        }
        if let Ok(mut s) = self.size.lock() {
            *s = Some((used, Instant::now()));
        }
        if used + need > self.max_bytes && rec.class != Class::Audit {
            return Err(SpoolError::Full {
                path: self.dir.clone(),
                used,
                max: self.max_bytes,
                kind: rec.kind.clone(),
            });
        }
        if used + need > self.max_bytes {
            tracing::warn!(
                "spool {} is over spool.max_bytes; keeping the audit record anyway",
                self.dir.display()
            );
        }
        Ok(dropped)
    }

    /// Deletes one record to make room, unless a sender holds it. Returns whether it was dropped.
    fn drop_entry(&self, e: &Entry) -> Result<bool, SpoolError> {
        let Some(claim) = self.claim(e)? else { return Ok(false) };
        let kind = claim.header().map(|h| h.kind).unwrap_or_else(|_| "?".into());
        claim.delete()?;
        tracing::warn!(
            "spool full (spool.max_bytes = {}): dropped the oldest {} record {} ({} bytes)",
            self.max_bytes,
            kind,
            e.id,
            e.bytes
        );
        let note = DropNote { at_ms: now_ms(), id: e.id.0.clone(), kind, class: e.class, bytes: e.bytes };
        let path = self.dir.join("dropped.log");
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let mut line = serde_json::to_vec(&note).unwrap_or_default();
        line.push(b'\n');
        f.write_all(&line).map_err(io_err(&path))?;
        Ok(true)
    }

    /// Records dropped because the spool was full, oldest first.
    pub fn dropped(&self) -> Vec<DropNote> {
        fs::read_to_string(self.dir.join("dropped.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every record waiting, oldest first, with its delivery state.
    pub fn entries(&self) -> Result<Vec<Entry>, SpoolError> {
        let rd = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut out = Vec::new();
        let mut states = std::collections::HashSet::new();
        for de in rd {
            let de = de.map_err(io_err(&self.dir))?;
            let file = de.file_name().to_string_lossy().into_owned();
            if let Some(id) = file.strip_suffix(".state") {
                states.insert(id.to_string());
                continue;
            }
            let Some(name) = Name::parse(&file) else { continue };
            let Ok(md) = de.metadata() else { continue };
            out.push(Entry {
                id: name.id,
                class: name.class,
                group: name.group,
                bytes: md.len(),
                state: None,
                path: de.path(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        for e in out.iter_mut() {
            if states.remove(&e.id.0) {
                e.state = self.read_state(&e.id);
            }
        }
        // States left over from a crash between deleting a record and its state.
        for orphan in states {
            let p = self.dir.join(format!("{orphan}.state"));
            let old = fs::metadata(&p)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
                .unwrap_or(false);
            if old {
                let _ = fs::remove_file(p);
            }
        }
        Ok(out)
    }

    pub(crate) fn read_state(&self, id: &RecordId) -> Option<State> {
        let bytes = fs::read(self.dir.join(format!("{id}.state"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Locks `e` for delivery. `None` when another sender holds it or it is already gone.
    pub fn claim(&self, e: &Entry) -> Result<Option<Claim<'_>>, SpoolError> {
        let file = match File::open(&e.path) {
            Ok(f) => f,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(SpoolError::Io { path: e.path.clone(), source: err }),
        };
        if !FileExt::try_lock_exclusive(&file).map_err(io_err(&e.path))? {
            return Ok(None);
        }
        // Locked: make sure the name still points at this file (it may have been delivered and deleted by the
        // sender that held the lock before us).
        let ino = file.metadata().map_err(io_err(&e.path))?.ino();
        match fs::metadata(&e.path) {
            Ok(md) if md.ino() == ino => {}
            _ => return Ok(None),
        }
        Ok(Some(Claim { spool: self, entry: e.clone(), file }))
    }

    /// The header of a record, for `spool status`.
    pub fn header(&self, e: &Entry) -> Result<record::Header, SpoolError> {
        let mut f = File::open(&e.path).map_err(io_err(&e.path))?;
        let mut buf = vec![0u8; 4096];
        let n = f.read(&mut buf).map_err(io_err(&e.path))?;
        let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
        serde_json::from_slice(line)
            .map_err(|err| SpoolError::Corrupt { path: e.path.clone(), msg: err.to_string() })
    }

    /// Whether a record file named `file_name` (as given to an [`Spool::enqueue_journaled`] journal) is
    /// waiting in the spool.
    pub fn holds(&self, file_name: &str) -> bool {
        Name::parse(file_name).is_some() && self.dir.join(file_name).is_file()
    }

    /// Finishes an enqueue that `pid` journaled but did not publish (it died between the two): renames its
    /// complete temp file into place. Returns whether there was one.
    pub fn publish_tmp(&self, file_name: &str, pid: u32) -> Result<bool, SpoolError> {
        if Name::parse(file_name).is_none() {
            return Err(SpoolError::Invalid(format!("bad record file name `{file_name}`")));
        }
        let tmp = fsutil::tmp_path(&self.dir.join("tmp"), file_name, pid);
        let dest = self.dir.join(file_name);
        match fs::rename(&tmp, &dest) {
            Ok(()) => {
                File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SpoolError::Io { path: tmp, source: e }),
        }
    }

    /// Removes temp files left by writers that died: older than `older_than`, whose owning pid (in the name)
    /// is no longer running, and that `keep` does not claim (a group whose recorder is still to be recovered
    /// may need its journaled temp file). Returns the paths removed.
    pub fn sweep_tmp(&self, older_than: Duration, keep: &dyn Fn(Option<&str>) -> bool) -> Vec<PathBuf> {
        let tmp = self.dir.join("tmp");
        let mut removed = Vec::new();
        let Ok(rd) = fs::read_dir(&tmp) else { return removed };
        for de in rd.flatten() {
            let file = de.file_name().to_string_lossy().into_owned();
            let old = de
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > older_than)
                .unwrap_or(false);
            let owner_alive = fsutil::tmp_owner(&file).is_some_and(pid_alive);
            let group = file.split_once(".rec.").and_then(|(rec, _)| Name::parse(&format!("{rec}.rec")));
            if !old || owner_alive || keep(group.as_ref().and_then(|n| n.group.as_deref())) {
                continue;
            }
            if fs::remove_file(de.path()).is_ok() {
                removed.push(de.path());
            }
        }
        removed
    }
}

/// Whether a process with this pid exists (a zombie or another user's process counts as existing).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // Signal 0 sends nothing; it only checks that the pid exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// A locked record; dropping it releases the lock.
#[derive(Debug)]
pub struct Claim<'a> {
    spool: &'a Spool,
    entry: Entry,
    file: File,
}

impl Claim<'_> {
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    fn header(&self) -> Result<record::Header, SpoolError> {
        self.spool.header(&self.entry)
    }

    /// Reads the whole record. A corrupt file is moved aside (`.corrupt`, kept for inspection) and reported.
    pub fn read(&mut self) -> Result<Stored, SpoolError> {
        let mut bytes = Vec::new();
        (&self.file).read_to_end(&mut bytes).map_err(io_err(&self.entry.path))?;
        match record::decode(&bytes) {
            Ok((h, body)) => Ok(Stored {
                id: self.entry.id.clone(),
                class: self.entry.class,
                group: self.entry.group.clone(),
                kind: h.kind,
                meta: h.meta,
                created_ms: h.created_ms,
                body: body.to_vec(),
            }),
            Err(msg) => {
                let aside = self.entry.path.with_extension("corrupt");
                let _ = fs::rename(&self.entry.path, aside);
                Err(SpoolError::Corrupt { path: self.entry.path.clone(), msg })
            }
        }
    }

    /// Delivered (or dropped): remove the record and its state while still holding the lock.
    pub fn delete(self) -> Result<(), SpoolError> {
        fs::remove_file(&self.entry.path).map_err(io_err(&self.entry.path))?;
        let _ = fs::remove_file(self.spool.dir.join(format!("{}.state", self.entry.id)));
        Ok(())
    }

    /// Records a failed attempt.
    pub fn set_state(&self, state: &State) -> Result<(), SpoolError> {
        let dest = self.spool.dir.join(format!("{}.state", self.entry.id));
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        fsutil::atomic_write(&self.spool.dir.join("tmp"), &dest, &bytes).map_err(io_err(&dest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(max: u64) -> (tempfile::TempDir, Spool) {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path().join("spool"), max).unwrap();
        (t, s)
    }

    #[test]
    fn enqueue_writes_private_files_atomically() {
        let (_t, s) = spool(0);
        let id = s.enqueue(Record::new("event.process", Class::Normal, b"{}".to_vec())).unwrap();
        let es = s.entries().unwrap();
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].id, id);
        assert_eq!(fs::metadata(&es[0].path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_claimed_record_cannot_be_claimed_twice_and_is_gone_after_delete() {
        let (_t, s) = spool(0);
        s.enqueue(Record::new("k", Class::Normal, b"x".to_vec())).unwrap();
        let e = s.entries().unwrap().remove(0);
        let mut c = s.claim(&e).unwrap().expect("first claim");
        assert!(s.claim(&e).unwrap().is_none(), "second claim while locked");
        assert_eq!(c.read().unwrap().body, b"x");
        c.delete().unwrap();
        assert!(s.claim(&e).unwrap().is_none(), "claim after delete");
        assert!(s.entries().unwrap().is_empty());
    }

    #[test]
    fn state_is_kept_with_the_record() {
        let (_t, s) = spool(0);
        s.enqueue(Record::new("k", Class::Normal, b"x".to_vec())).unwrap();
        let e = s.entries().unwrap().remove(0);
        let c = s.claim(&e).unwrap().unwrap();
        let st = State {
            attempts: 2,
            last_error: "HTTP 403: Forbidden".into(),
            permanent: true,
            ..Default::default()
        };
        c.set_state(&st).unwrap();
        drop(c);
        assert_eq!(s.entries().unwrap()[0].state.as_ref(), Some(&st));
    }

    #[test]
    fn full_spool_drops_oldest_bulk_first_and_never_audit() {
        let (_t, s) = spool(2000);
        let body = vec![b'x'; 300];
        let audit = s.enqueue(Record::new("audit.break_glass", Class::Audit, body.clone())).unwrap();
        let create =
            s.enqueue(Record::new("session.create", Class::Normal, body.clone()).in_group("s1")).unwrap();
        let mut chunks = Vec::new();
        for _ in 0..8 {
            chunks.push(
                s.enqueue(Record::new("session.chunk", Class::Bulk, body.clone()).in_group("s1")).unwrap(),
            );
        }
        let ids: Vec<RecordId> = s.entries().unwrap().into_iter().map(|e| e.id).collect();
        assert!(ids.contains(&audit) && ids.contains(&create), "{ids:?}");
        assert!(!ids.contains(&chunks[0]), "oldest chunk dropped");
        assert!(ids.contains(chunks.last().unwrap()));
        let total: u64 = s.entries().unwrap().iter().map(|e| e.bytes).sum();
        assert!(total <= 2000, "{total}");
        let dropped = s.dropped();
        assert!(!dropped.is_empty() && dropped.iter().all(|d| d.kind == "session.chunk"), "{dropped:?}");
        // Audit is stored even when only audit would be left.
        for _ in 0..10 {
            s.enqueue(Record::new("audit.break_glass", Class::Audit, body.clone())).unwrap();
        }
        assert_eq!(s.entries().unwrap().iter().filter(|e| e.class == Class::Audit).count(), 11);
        let e = s.enqueue(Record::new("event.process", Class::Normal, body)).unwrap_err().to_string();
        assert!(e.contains("spool.max_bytes"), "{e}");
    }

    #[test]
    fn a_journaled_record_whose_writer_died_before_publishing_is_published_later() {
        let (_t, s) = spool(0);
        let mut named = String::new();
        // The journal line is written, then the writer "dies" before the rename.
        let err = s
            .enqueue_journaled(Record::new("k", Class::Bulk, b"x".to_vec()).in_group("g"), &mut |f| {
                named = f.to_string();
                Err(std::io::Error::other("killed"))
            })
            .unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(!s.holds(&named) && s.entries().unwrap().is_empty(), "not published");
        assert_eq!(fs::read_dir(s.dir().join("tmp")).unwrap().count(), 1, "kept whole under tmp/");
        assert!(s.publish_tmp(&named, std::process::id()).unwrap());
        assert!(s.holds(&named));
        assert_eq!(Claim::read(&mut s.claim(&s.entries().unwrap()[0]).unwrap().unwrap()).unwrap().body, b"x");
        assert!(!s.publish_tmp(&named, std::process::id()).unwrap(), "nothing left to publish");
        assert!(s.publish_tmp("../x", 1).is_err(), "only record names");
        // Without a journal a failed write leaves nothing behind.
        let plain = s.enqueue(Record::new("k", Class::Normal, b"y".to_vec())).unwrap();
        assert!(s.entries().unwrap().iter().any(|e| e.id == plain));
        assert_eq!(fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn bad_kind_and_group_are_refused() {
        let (_t, s) = spool(0);
        assert!(s.enqueue(Record::new("Bad Kind", Class::Normal, vec![])).is_err());
        assert!(s.enqueue(Record::new("k", Class::Normal, vec![]).in_group("../x")).is_err());
    }

    #[test]
    fn corrupt_records_are_moved_aside_not_deleted() {
        let (_t, s) = spool(0);
        s.enqueue(Record::new("k", Class::Normal, b"hello".to_vec())).unwrap();
        let e = s.entries().unwrap().remove(0);
        let bytes = fs::read(&e.path).unwrap();
        fs::write(&e.path, &bytes[..bytes.len() - 2]).unwrap();
        let mut c = s.claim(&e).unwrap().unwrap();
        assert!(c.read().unwrap_err().to_string().contains("corrupt"));
        assert!(e.path.with_extension("corrupt").exists());
    }
}
