//! What the spool stores: opaque records (kind, class, optional ordering group, meta, body) and their file names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Drop priority when the spool is full (`spool.max_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Dropped first (oldest first) when the spool is full: recording chunks.
    Bulk,
    /// Dropped only when no bulk record is left: session control, events, log batches.
    Normal,
    /// Never dropped, and accepted even over the limit: break-glass and decision audit records.
    Audit,
}

impl Class {
    fn code(self) -> char {
        match self {
            Class::Bulk => 'b',
            Class::Normal => 'n',
            Class::Audit => 'a',
        }
    }
    fn from_code(c: &str) -> Option<Class> {
        match c {
            "b" => Some(Class::Bulk),
            "n" => Some(Class::Normal),
            "a" => Some(Class::Audit),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Bulk => "bulk",
            Class::Normal => "normal",
            Class::Audit => "audit",
        }
    }
}

/// A record to enqueue. `kind` says what it is to whoever delivers it (the spool never looks inside);
/// records sharing a `group` are delivered strictly in enqueue order, one at a time, and a group waits
/// behind its oldest undelivered record (a session's create before its chunks and its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub class: Class,
    pub group: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Record {
    pub fn new(kind: impl Into<String>, class: Class, body: Vec<u8>) -> Record {
        Record { kind: kind.into(), class, group: None, meta: BTreeMap::new(), body }
    }
    /// Orders this record after every earlier record of `group`.
    pub fn in_group(mut self, group: impl Into<String>) -> Record {
        self.group = Some(group.into());
        self
    }
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Record {
        self.meta.insert(key.into(), value.into());
        self
    }
}

/// A record's id: creation time (ms), pid and a per-process counter, so that sorting ids sorts a process's
/// records in enqueue order (and different processes roughly by time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub String);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

static LAST_MS: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl RecordId {
    /// A fresh id; the time part never goes backwards within a process even if the clock does.
    pub fn generate() -> RecordId {
        let now = super::now_ms();
        let ms = LAST_MS.fetch_max(now, Ordering::SeqCst).max(now);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        RecordId(format!("{ms:013}-{:08}-{n:010}", std::process::id()))
    }
    /// Unix milliseconds when the record was created.
    pub fn created_ms(&self) -> u64 {
        self.0.split('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// The parts of a record encoded in its file name `<id>~<class>~<group>.rec`, so that a directory listing
/// alone gives order, class and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub id: RecordId,
    pub class: Class,
    pub group: Option<String>,
}

impl Name {
    pub fn file_name(&self) -> String {
        format!("{}~{}~{}.rec", self.id, self.class.code(), self.group.as_deref().unwrap_or(""))
    }
    pub fn parse(file: &str) -> Option<Name> {
        let stem = file.strip_suffix(".rec")?;
        let mut it = stem.splitn(3, '~');
        let id = it.next()?;
        let class = Class::from_code(it.next()?)?;
        let group = it.next()?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        Some(Name {
            id: RecordId(id.to_string()),
            class,
            group: if group.is_empty() { None } else { Some(group.to_string()) },
        })
    }
}

/// Group names become part of a file name: letters, digits, `-`, `_`, at most 100.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty() && g.len() <= 100 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Kinds are dotted lower-case words (`session.chunk`, `audit.break_glass`).
pub fn valid_kind(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
}

/// The first line of a record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    pub kind: String,
    pub meta: BTreeMap<String, String>,
    pub created_ms: u64,
    pub body_len: u64,
}

/// A record read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: RecordId,
    pub class: Class,
    pub group: Option<String>,
    pub kind: String,
    pub meta: BTreeMap<String, String>,
    pub created_ms: u64,
    pub body: Vec<u8>,
}

/// Serializes header line + body.
pub fn encode(rec: &Record, created_ms: u64) -> Vec<u8> {
    let mut out = encode_header(rec, created_ms);
    out.extend_from_slice(&rec.body);
    out
}

/// The header line alone (with its newline): the spool writes it and the body without joining them.
pub fn encode_header(rec: &Record, created_ms: u64) -> Vec<u8> {
    let header = Header {
        v: 1,
        kind: rec.kind.clone(),
        meta: rec.meta.clone(),
        created_ms,
        body_len: rec.body.len() as u64,
    };
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Parses a record file's bytes; an error says what is wrong (truncated, bad header).
pub fn decode(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
    let nl = memchr::memchr(b'\n', bytes).ok_or("no header line")?;
    let header: Header = serde_json::from_slice(&bytes[..nl]).map_err(|e| format!("bad header: {e}"))?;
    if header.v != 1 {
        return Err(format!("unsupported record version {}", header.v));
    }
    let body = &bytes[nl + 1..];
    if body.len() as u64 != header.body_len {
        return Err(format!("body is {} bytes, header says {}", body.len(), header.body_len));
    }
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for group in [None, Some("0193b7e2-aaaa-bbbb".to_string())] {
            let n = Name { id: RecordId::generate(), class: Class::Bulk, group };
            assert_eq!(Name::parse(&n.file_name()), Some(n));
        }
        assert_eq!(Name::parse("junk.rec"), None);
        assert_eq!(Name::parse("123~x~.rec"), None);
        assert_eq!(Name::parse("123~n~.state"), None);
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<RecordId> = (0..1000).map(|_| RecordId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].created_ms() > 1_600_000_000_000);
    }

    #[test]
    fn encode_decode_and_truncation() {
        let r =
            Record::new("session.chunk", Class::Bulk, b"\x1f\x8bbinary\n\x00".to_vec()).with_meta("seq", "3");
        let bytes = encode(&r, 42);
        let (h, body) = decode(&bytes).unwrap();
        assert_eq!((h.kind.as_str(), h.created_ms, body), ("session.chunk", 42, r.body.as_slice()));
        assert_eq!(h.meta["seq"], "3");
        assert!(decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("header says"));
    }

    #[test]
    fn groups_and_kinds_are_checked() {
        assert!(valid_group("0193b7e2-aaaa_1"));
        for g in ["", "a/b", "a~b", "a.b", &"x".repeat(101)] {
            assert!(!valid_group(g), "{g}");
        }
        assert!(valid_kind("audit.break_glass"));
        assert!(!valid_kind("Audit"));
    }
}
