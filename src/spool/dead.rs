//! The dead-letter area (`<spool>/dead/`): records a receiver refused permanently (a malformed body, a chunk
//! the server holds other bytes for, a payload over its limit) are moved here with the receiver's message, so
//! they never block the records after them and are never retried by themselves. `spool status` lists them;
//! `spool flush --dead-letters` puts them back once the cause is fixed. Nothing here is deleted automatically.

use super::record::{self, Name};
use super::{io_err, Claim, Spool, SpoolError, State};
use crate::fsutil;
use std::fs;
use std::path::PathBuf;

/// Subdirectory of the spool holding dead letters (`<file>.rec` and `<id>.state`).
pub const DIR: &str = "dead";

/// One dead letter, for `spool status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub file: String,
    pub id: String,
    pub kind: String,
    pub group: Option<String>,
    pub session_id: Option<String>,
    pub bytes: u64,
    pub state: State,
}

impl Spool {
    pub fn dead_dir(&self) -> PathBuf {
        self.dir.join(DIR)
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let dir = self.dead_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SpoolError::Io { path: dir, source: e }),
        };
        let mut out = Vec::new();
        for de in rd.flatten() {
            let file = de.file_name().to_string_lossy().into_owned();
            let Some(name) = Name::parse(&file) else { continue };
            let bytes = fs::read(de.path()).map_err(io_err(&de.path()))?;
            let (kind, meta) = match record::decode(&bytes) {
                Ok((h, _)) => (h.kind, h.meta),
                Err(msg) => (format!("? ({msg})"), Default::default()),
            };
            let state = fs::read(dir.join(format!("{}.state", name.id)))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            out.push(DeadLetter {
                file,
                id: name.id.0.clone(),
                kind,
                group: name.group.clone(),
                session_id: meta.get("session_id").cloned(),
                bytes: bytes.len() as u64,
                state,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Moves every dead letter back into the spool (the cause was fixed); returns how many.
    pub fn requeue_dead(&self) -> Result<usize, SpoolError> {
        let mut n = 0;
        for d in self.dead_letters()? {
            let from = self.dead_dir().join(&d.file);
            let to = self.dir.join(&d.file);
            fs::rename(&from, &to).map_err(io_err(&from))?;
            let _ = fs::remove_file(self.dead_dir().join(format!("{}.state", d.id)));
            n += 1;
        }
        if n > 0 {
            fsutil::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        }
        Ok(n)
    }
}

impl Claim<'_> {
    /// Refused for good: moves the record to the dead letters with `state` (the receiver's message), while
    /// still holding its lock. The state is written first, so a crash leaves either the record in the spool
    /// (retried) or the record dead with its reason, never a dead record without one.
    pub fn bury(self, state: &State) -> Result<(), SpoolError> {
        let dead = self.spool.dead_dir();
        fsutil::ensure_private_dir(&dead).map_err(io_err(&dead))?;
        let state_path = dead.join(format!("{}.state", self.entry.id));
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        fsutil::atomic_write(&self.spool.dir.join("tmp"), &state_path, &bytes)
            .map_err(io_err(&state_path))?;
        let file = self.entry.path.file_name().map(|f| f.to_os_string()).unwrap_or_default();
        fs::rename(&self.entry.path, dead.join(&file)).map_err(io_err(&self.entry.path))?;
        fsutil::sync_dir(&dead).map_err(io_err(&dead))?;
        let _ = fs::remove_file(self.spool.dir.join(format!("{}.state", self.entry.id)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Class, Record};

    #[test]
    fn buried_records_leave_the_queue_with_their_reason_and_come_back_on_request() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path().join("spool"), 0).unwrap();
        let rec = Record::new("session.chunk", Class::Bulk, b"x".to_vec())
            .in_group("g1")
            .with_meta("session_id", "s1");
        s.enqueue(rec).unwrap();
        s.enqueue(Record::new("event.process", Class::Normal, b"{}".to_vec())).unwrap();
        let e = s.entries().unwrap().remove(0);
        let st = State {
            attempts: 1,
            last_error: "HTTP 409 conflict".into(),
            status: Some(409),
            permanent: true,
            ..Default::default()
        };
        s.claim(&e).unwrap().unwrap().bury(&st).unwrap();
        assert_eq!(s.entries().unwrap().len(), 1, "the later record is not behind it any more");
        let dead = s.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].kind.as_str(), dead[0].session_id.as_deref()), ("session.chunk", Some("s1")));
        assert_eq!(dead[0].state, st);
        assert_eq!(s.requeue_dead().unwrap(), 1);
        assert_eq!(s.entries().unwrap().len(), 2);
        assert!(s.dead_letters().unwrap().is_empty());
    }
}
