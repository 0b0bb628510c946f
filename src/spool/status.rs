//! What waits in the spool and why (`ddcoterm spool status`): each record with its last error, counts by
//! kind, dead letters and dropped records, as one serialisable [`Status`].

use super::{now_ms, Entry, Spool, SpoolError};
use serde::Serialize;
use std::collections::BTreeMap;

/// One waiting record.
#[derive(Debug, Serialize)]
pub struct RecordView {
    pub id: String,
    pub kind: String,
    pub class: &'static str,
    pub group: Option<String>,
    pub bytes: u64,
    pub created_ms: u64,
    pub attempts: u32,
    pub permanent: bool,
    pub status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_ms: Option<u64>,
}

/// Waiting records of one kind.
#[derive(Debug, Default, Serialize)]
pub struct KindCount {
    pub count: usize,
    pub bytes: u64,
}

/// One dead letter: refused for good, kept under `dead/`.
#[derive(Debug, Serialize)]
pub struct DeadView {
    pub id: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub bytes: u64,
    pub status: Option<u16>,
    /// The receiver's message.
    pub message: String,
    pub refused_ms: u64,
}

/// The whole spool; `--format json` prints it as it is (field names are a documented interface).
#[derive(Debug, Serialize)]
pub struct Status {
    pub dir: String,
    /// Records waiting to be sent.
    pub count: usize,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_ms: Option<u64>,
    /// Dead letters plus waiting records marked permanent by an earlier version.
    pub permanent: usize,
    /// Waiting records whose credentials were refused (HTTP 401/403): they wait for a fixed token or key.
    pub credentials_refused: usize,
    pub dropped: usize,
    pub by_kind: BTreeMap<String, KindCount>,
    pub records: Vec<RecordView>,
    pub dead_letters: Vec<DeadView>,
}

impl Status {
    /// Reads every waiting record's header and state, and the dead letters.
    pub fn of(spool: &Spool) -> Result<Status, SpoolError> {
        let records: Vec<RecordView> = spool.entries()?.iter().map(|e| view(spool, e)).collect();
        let mut by_kind: BTreeMap<String, KindCount> = BTreeMap::new();
        for r in &records {
            let k = by_kind.entry(r.kind.clone()).or_default();
            k.count += 1;
            k.bytes += r.bytes;
        }
        let dead_letters: Vec<DeadView> = spool
            .dead_letters()?
            .into_iter()
            .map(|d| DeadView {
                id: d.id,
                kind: d.kind,
                session_id: d.session_id,
                bytes: d.bytes,
                status: d.state.status,
                message: d.state.last_error,
                refused_ms: d.state.updated_ms,
            })
            .collect();
        Ok(Status {
            dir: spool.dir().display().to_string(),
            count: records.len(),
            bytes: records.iter().map(|r| r.bytes).sum(),
            max_bytes: spool.max_bytes(),
            oldest_ms: records.iter().map(|r| r.created_ms).min(),
            permanent: records.iter().filter(|r| r.permanent).count() + dead_letters.len(),
            credentials_refused: records.iter().filter(|r| matches!(r.status, Some(401 | 403))).count(),
            dropped: spool.dropped().len(),
            by_kind,
            records,
            dead_letters,
        })
    }

    /// How long the oldest waiting record has waited, in milliseconds.
    pub fn oldest_age_ms(&self) -> Option<u64> {
        self.oldest_ms.map(|t| now_ms().saturating_sub(t))
    }
}

fn view(spool: &Spool, e: &Entry) -> RecordView {
    let kind = spool.header(e).map(|h| h.kind).unwrap_or_else(|err| format!("? ({err})"));
    let st = e.state.clone();
    RecordView {
        id: e.id.0.clone(),
        kind,
        class: e.class.as_str(),
        group: e.group.clone(),
        bytes: e.bytes,
        created_ms: e.id.created_ms(),
        attempts: st.as_ref().map_or(0, |s| s.attempts),
        permanent: st.as_ref().is_some_and(|s| s.permanent),
        status: st.as_ref().and_then(|s| s.status),
        last_error: st.as_ref().map(|s| s.last_error.clone()),
        next_attempt_ms: st.as_ref().filter(|s| !s.permanent).map(|s| s.next_attempt_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Class, Record};

    #[test]
    fn counts_by_kind_and_totals() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::open(t.path(), 1 << 20).unwrap();
        spool.enqueue(Record::new("logs", Class::Normal, b"abc".to_vec())).unwrap();
        spool.enqueue(Record::new("logs", Class::Normal, b"de".to_vec())).unwrap();
        spool.enqueue(Record::new("audit.break_glass", Class::Audit, b"{}".to_vec())).unwrap();
        let s = Status::of(&spool).unwrap();
        assert_eq!(s.count, 3);
        assert_eq!(s.by_kind["logs"].count, 2);
        assert_eq!(s.bytes, s.records.iter().map(|r| r.bytes).sum::<u64>());
        assert_eq!((s.permanent, s.credentials_refused, s.dropped), (0, 0, 0));
        assert!(s.oldest_age_ms().is_some());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["by_kind"]["audit.break_glass"]["count"], 1);
    }
}
