//! Joins the spool and the Datadog client: session outputs that write spool records, the deliverer that turns
//! records into API calls, and the end-of-session drain bounded by `spool.flush_timeout`.
//!
//! How a session uses it (`cmd/session.rs`):
//! 1. `let outs = outputs::build(loaded, &actions)?;` before the recorder starts (starts the background sender).
//! 2. the recorder's output writer thread (`recorder/fanout.rs`) calls `Output::session_start / cast_chunk /
//!    process_event / snapshot / session_end`; each only writes to the spool (never the network). Chunks are
//!    spooled plain and gzip-compressed by the sender just before their upload.
//! 3. after `session_end`, `let report = outputs::finish(loaded);` waits at most `spool.flush_timeout`; print
//!    `report` to stderr when `report.needs_attention()`.

use crate::config::durations;
use crate::config::Loaded;
use crate::datadog::payload::{self, AuditEvent, LogBatcher};
use crate::datadog::{ApiError, Call, Client, ClientOptions, Retry};
use crate::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use crate::recorder::recovery::{self as journal, Journal};
use crate::spool::{
    Class, Deliver, DrainReport, Failure, Record, RecordId, Sender, SenderOptions, Spool, Stored,
};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Record kinds this glue writes and knows how to deliver. `audit.<what>` records are written by the audit
/// module (body: [`AuditEvent`] JSON) and sent as Events API events.
pub const KIND_SESSION_CREATE: &str = "session.create";
pub const KIND_SESSION_CHUNK: &str = "session.chunk";
pub const KIND_SESSION_END: &str = "session.end";
pub const KIND_EVENT: &str = "event.process";
pub const KIND_LOGS: &str = "logs.batch";
pub const KIND_AUDIT_PREFIX: &str = "audit.";

/// Meta key of a `session.chunk` record saying how its body is stored: [`ENCODING_PLAIN`] (what this version
/// writes: asciicast lines, compressed by [`to_call`] just before the upload), or absent (gzip, as written by
/// earlier versions, sent as is).
pub const META_ENCODING: &str = "encoding";
pub const ENCODING_PLAIN: &str = "plain";

/// Send buffered log snapshots at least this often while a session runs.
const LOG_BATCH_AGE: Duration = Duration::from_secs(5);

/// `spool.dir`, else `~/.ddcoterm/spool`.
pub fn spool_dir(loaded: &Loaded) -> PathBuf {
    loaded.settings.spool.dir.clone().unwrap_or_else(|| loaded.dirs.spool())
}

/// Opens the configured spool (creating it 0700).
pub fn open_spool(loaded: &Loaded) -> anyhow::Result<Spool> {
    Ok(Spool::open(spool_dir(loaded), loaded.settings.spool.max_bytes)?)
}

/// `spool.flush_timeout`, parsed.
pub fn flush_timeout(loaded: &Loaded) -> anyhow::Result<Duration> {
    Ok(durations::parse("spool.flush_timeout", &loaded.settings.spool.flush_timeout)?)
}

/// Delivers spool records to Datadog. The HTTP client is built on first use, on the sending thread: reqwest's
/// blocking client must not be created inside an async runtime, and a session may be driven from one.
#[derive(Debug)]
pub struct DatadogDeliver {
    conn: crate::config::settings::ConnectionConfig,
    opts: ClientOptions,
    client: std::sync::OnceLock<Result<Client, String>>,
}

impl DatadogDeliver {
    /// From `connection_config`; fails on a bad host or a missing API key (nothing could be sent).
    pub fn from_loaded(loaded: &Loaded, opts: ClientOptions) -> anyhow::Result<DatadogDeliver> {
        let conn = loaded.settings.connection_config.clone();
        crate::datadog::Site::for_connection(&conn)?;
        if conn.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            anyhow::bail!(crate::error::Exit::new(
                crate::error::exit::CONFIG,
                "no Datadog API key: set connection_config.api_key (ddcoterm init) or DD_API_KEY"
            ));
        }
        Ok(DatadogDeliver { conn, opts, client: std::sync::OnceLock::new() })
    }

    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .get_or_init(|| Client::from_settings(&self.conn, self.opts).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Failure::permanent(e.clone()))
    }
}

/// Turns a stored record into the call and body to send.
pub fn to_call(rec: &Stored) -> Result<(Call, Vec<u8>), Failure> {
    let session = || {
        rec.meta
            .get("session_id")
            .cloned()
            .ok_or_else(|| Failure::permanent(format!("{} record {} has no session_id", rec.kind, rec.id)))
    };
    let call = match rec.kind.as_str() {
        KIND_SESSION_CREATE => Call::SessionCreate,
        KIND_SESSION_CHUNK => {
            let seq = rec
                .meta
                .get("seq")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Failure::permanent(format!("chunk record {} has no seq", rec.id)))?;
            let call = Call::SessionChunk { session_id: session()?, seq };
            return match rec.meta.get(META_ENCODING).map(String::as_str) {
                // Compressed here, on the sender's thread, rather than on the recorder's while it records.
                Some(ENCODING_PLAIN) => Ok((call, payload::gzip(&rec.body))),
                None => Ok((call, rec.body.clone())),
                Some(other) => Err(Failure::permanent(format!(
                    "chunk record {} has an unknown encoding `{other}` (written by a newer ddcoterm?)",
                    rec.id
                ))),
            };
        }
        KIND_SESSION_END => Call::SessionEnd { session_id: session()? },
        KIND_EVENT => Call::Event,
        KIND_LOGS => Call::Logs,
        k if k.starts_with(KIND_AUDIT_PREFIX) => {
            let what = &k[KIND_AUDIT_PREFIX.len()..];
            let a: AuditEvent = serde_json::from_slice(&rec.body)
                .map_err(|e| Failure::permanent(format!("audit record {} is not valid JSON: {e}", rec.id)))?;
            return Ok((Call::Event, payload::audit_event(what, &a)));
        }
        other => {
            return Err(Failure::permanent(format!(
                "unknown record kind `{other}` (written by a newer ddcoterm?)"
            )))
        }
    };
    Ok((call, rec.body.clone()))
}

/// Maps the client's error classes onto the spool's.
pub fn failure(e: &ApiError) -> Failure {
    match e.retry() {
        Retry::Later { after } => {
            Failure { permanent: false, retry_after: after, status: e.status(), message: e.to_string() }
        }
        Retry::Never => {
            Failure { permanent: true, retry_after: None, status: e.status(), message: e.to_string() }
        }
    }
}

impl Deliver for DatadogDeliver {
    fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
        let (call, body) = to_call(rec)?;
        self.client()?.send(&call.request(body)).map(|_| ()).map_err(|e| failure(&e))
    }
}

/// Where this process's outputs write: a sender that also delivers, or (no key, bad host) the spool alone.
#[derive(Clone)]
enum Sink {
    Sending(Arc<Sender>),
    SpoolOnly { spool: Arc<Spool>, why: String, written: Arc<Mutex<usize>> },
}

impl Sink {
    fn enqueue(&self, rec: Record) -> anyhow::Result<RecordId> {
        self.enqueue_with(rec, None)
    }

    fn enqueue_journaled(
        &self,
        rec: Record,
        journal: &mut dyn FnMut(&str) -> std::io::Result<()>,
    ) -> anyhow::Result<RecordId> {
        self.enqueue_with(rec, Some(journal))
    }

    fn enqueue_with(
        &self,
        rec: Record,
        journal: Option<&mut dyn FnMut(&str) -> std::io::Result<()>>,
    ) -> anyhow::Result<RecordId> {
        match self {
            Sink::Sending(s) => Ok(match journal {
                Some(j) => s.enqueue_journaled(rec, j)?,
                None => s.enqueue(rec)?,
            }),
            Sink::SpoolOnly { spool, written, .. } => {
                let (id, _) = match journal {
                    Some(j) => spool.enqueue_journaled(rec, j)?,
                    None => spool.enqueue_noting_drops(rec)?,
                };
                if let Ok(mut n) = written.lock() {
                    *n += 1;
                }
                Ok(id)
            }
        }
    }
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// The process-wide sink, created on first use.
fn sink(loaded: &Loaded) -> anyhow::Result<Sink> {
    let mut g = SINK.lock().map_err(|_| anyhow::anyhow!("output state poisoned"))?;
    if let Some(s) = g.as_ref() {
        return Ok(s.clone());
    }
    let spool = Arc::new(open_spool(loaded).context("opening the spool")?);
    let s = match DatadogDeliver::from_loaded(loaded, ClientOptions::default()) {
        Ok(d) => Sink::Sending(Arc::new(Sender::spawn(spool, Arc::new(d), SenderOptions::default()))),
        Err(e) => {
            let why = format!("{e:#}");
            tracing::info!(
                "not sending to Datadog ({why}); the session is kept in {}",
                spool.dir().display()
            );
            Sink::SpoolOnly { spool, why, written: Arc::new(Mutex::new(0)) }
        }
    };
    *g = Some(s.clone());
    Ok(s)
}

/// Spools `record` and wakes this process's sender (starting it if needed). For cmd-level callers such as the
/// break-glass path (`Record::new("audit.break_glass", Class::Audit, serde_json::to_vec(&AuditEvent)?)`);
/// follow it with [`finish`] before exiting so that it is sent promptly.
pub fn enqueue(loaded: &Loaded, record: Record) -> anyhow::Result<RecordId> {
    sink(loaded)?.enqueue(record)
}

/// [`enqueue`] through [`Spool::enqueue_journaled`]: `journal` is called with the record's file name just
/// before it is published (session recovery, `cmd/recovery.rs`).
pub fn enqueue_journaled(
    loaded: &Loaded,
    record: Record,
    journal: &mut dyn FnMut(&str) -> std::io::Result<()>,
) -> anyhow::Result<RecordId> {
    sink(loaded)?.enqueue_journaled(record, journal)
}

/// What [`finish`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    pub drain: DrainReport,
    /// Set when nothing was sent because the client could not be set up (no key, bad host).
    pub not_sending: Option<String>,
    /// This process's records left in the spool (pending + refused).
    pub left: usize,
}

impl FinishReport {
    /// True when the user should be told something (records left behind).
    pub fn needs_attention(&self) -> bool {
        self.left > 0
    }
}

impl std::fmt::Display for FinishReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.not_sending {
            Some(why) => write!(
                f,
                "{} record(s) kept in the spool, not sent: {why}; fix it, then `ddcoterm spool flush`",
                self.left
            ),
            None => write!(f, "{}", self.drain),
        }
    }
}

/// Waits at most `spool.flush_timeout` for this process's records to be delivered, then stops the sender;
/// what is left stays spooled. Call once, after every output's `session_end`. Cheap when nothing was built.
pub fn finish(loaded: &Loaded) -> FinishReport {
    let timeout = flush_timeout(loaded).unwrap_or(Duration::from_secs(3));
    finish_by(Instant::now() + timeout)
}

/// [`finish`] with an explicit deadline.
pub fn finish_by(deadline: Instant) -> FinishReport {
    let sink = SINK.lock().ok().and_then(|mut g| g.take());
    match sink {
        None => FinishReport::default(),
        Some(Sink::Sending(s)) => {
            let drain = s.drain(deadline);
            let left = drain.pending + drain.permanent;
            FinishReport { drain, not_sending: None, left }
        }
        Some(Sink::SpoolOnly { why, written, .. }) => {
            let left = written.lock().map(|n| *n).unwrap_or(0);
            FinishReport { drain: DrainReport::default(), not_sending: Some(why), left }
        }
    }
}

/// Builds the session's Datadog outputs for `actions` (`record`, `logs`, `process_info`); none when no such
/// action is set. The returned outputs only write to the spool; [`finish`] waits for delivery.
pub fn build(loaded: &Loaded, actions: &ActionSet) -> anyhow::Result<Vec<Box<dyn Output>>> {
    build_journaled(loaded, actions, None)
}

/// [`build`], with the session's recovery journal: every session record (create, chunks, process events, end)
/// is journaled as it is spooled, each chunk with its byte range in the local `.cast`, whose first chunk
/// starts at `cast_header_len`. A killed recorder's recovery continues from there (`cmd/recovery.rs`).
pub fn build_journaled(
    loaded: &Loaded,
    actions: &ActionSet,
    journal: Option<(Journal, u64)>,
) -> anyhow::Result<Vec<Box<dyn Output>>> {
    let wanted = [Action::Record, Action::Logs, Action::ProcessInfo];
    if !wanted.iter().any(|a| actions.contains(*a)) {
        return Ok(Vec::new());
    }
    // Validate the timeout now so a bad value is reported before the session, not silently at its end.
    flush_timeout(loaded)?;
    let sink = sink(loaded)?;
    let mut out = DatadogOutput::new(actions.clone(), sink);
    if let Some((j, offset)) = journal {
        out.journal = Some(j);
        out.offset = offset;
    }
    Ok(vec![Box::new(out)])
}

/// One output for all three actions of a session.
struct DatadogOutput {
    actions: ActionSet,
    sink: Sink,
    meta: Option<SessionMeta>,
    logs: LogBatcher,
    logs_since: Option<Instant>,
    chunks: u64,
    /// The recovery journal, and where the next chunk starts in the local `.cast`.
    journal: Option<Journal>,
    offset: u64,
}

/// A record of session `session_id`: ordered in its group, after its create.
pub(crate) fn session_record(kind: &str, class: Class, session_id: &str, body: Vec<u8>) -> Record {
    Record::new(kind, class, body).in_group(group_of(session_id)).with_meta("session_id", session_id)
}

/// Chunk `seq` of a session: asciicast lines stored plain (compressing is the sender's job, see [`to_call`]).
pub(crate) fn chunk_record(session_id: &str, seq: u64, lines: Vec<u8>) -> Record {
    session_record(KIND_SESSION_CHUNK, Class::Bulk, session_id, lines)
        .with_meta("seq", seq.to_string())
        .with_meta(META_ENCODING, ENCODING_PLAIN)
}

/// Session ids are uuids; anything else is made safe for a spool group name.
pub(crate) fn group_of(session_id: &str) -> String {
    let g: String = session_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(100)
        .collect();
    if g.is_empty() {
        "session".into()
    } else {
        g
    }
}

impl DatadogOutput {
    fn new(actions: ActionSet, sink: Sink) -> Self {
        DatadogOutput {
            actions,
            sink,
            meta: None,
            logs: LogBatcher::default(),
            logs_since: None,
            chunks: 0,
            journal: None,
            offset: 0,
        }
    }

    fn session_record(&self, kind: &str, class: Class, session_id: &str, body: Vec<u8>) -> Record {
        session_record(kind, class, session_id, body)
    }

    /// Spools `rec`, journaling it as `entry(file name, pid)` when the session has a journal.
    fn enqueue_journaled(
        &mut self,
        rec: Record,
        entry: impl Fn(String, u32) -> journal::Entry,
    ) -> anyhow::Result<RecordId> {
        match &mut self.journal {
            None => self.sink.enqueue(rec),
            Some(j) => self
                .sink
                .enqueue_journaled(rec, &mut |file| j.append(&entry(file.to_string(), std::process::id()))),
        }
    }

    fn send_logs(&mut self, batch: Vec<u8>) -> anyhow::Result<()> {
        self.logs_since = if self.logs.is_empty() { None } else { Some(Instant::now()) };
        self.sink.enqueue(Record::new(KIND_LOGS, Class::Normal, payload::gzip(&batch)))?;
        Ok(())
    }

    fn flush_old_logs(&mut self) -> anyhow::Result<()> {
        if self.logs_since.is_some_and(|t| t.elapsed() >= LOG_BATCH_AGE) {
            if let Some(b) = self.logs.take() {
                self.send_logs(b)?;
            }
        }
        Ok(())
    }
}

impl Output for DatadogOutput {
    fn session_start(&mut self, meta: &SessionMeta) -> anyhow::Result<()> {
        self.meta = Some(meta.clone());
        if self.actions.contains(Action::Record) {
            let rec = self.session_record(
                KIND_SESSION_CREATE,
                Class::Normal,
                &meta.session_id,
                payload::session_create(meta),
            );
            self.enqueue_journaled(rec, |file, pid| journal::Entry::Create { file, pid })?;
        }
        Ok(())
    }

    fn cast_chunk(&mut self, seq: u64, lines: &[u8]) -> anyhow::Result<()> {
        self.cast_chunk_vec(seq, lines.to_vec())
    }

    fn cast_chunk_vec(&mut self, seq: u64, lines: Vec<u8>) -> anyhow::Result<()> {
        if self.actions.contains(Action::Record) {
            let id = self.meta.as_ref().map(|m| m.session_id.clone()).unwrap_or_default();
            let (start, end) = (self.offset, self.offset + lines.len() as u64);
            let rec = chunk_record(&id, seq, lines);
            // The range moves on even if the spool refused the chunk: the next chunk's bytes come after it.
            self.offset = end;
            self.enqueue_journaled(rec, |file, pid| journal::Entry::Chunk { seq, start, end, file, pid })?;
            self.chunks = self.chunks.max(seq + 1);
        }
        self.flush_old_logs()
    }

    fn process_event(&mut self, event: &ProcessEvent) -> anyhow::Result<()> {
        if self.actions.contains(Action::ProcessInfo) {
            let rec = Record::new(KIND_EVENT, Class::Normal, payload::process_event(event));
            self.enqueue_journaled(rec, |file, pid| journal::Entry::Event { file, pid })?;
        }
        self.flush_old_logs()
    }

    fn snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        if !self.actions.contains(Action::Logs) {
            return Ok(());
        }
        let meta = self
            .meta
            .clone()
            .unwrap_or_else(|| SessionMeta { session_id: snapshot.session_id.clone(), ..Default::default() });
        if self.logs_since.is_none() {
            self.logs_since = Some(Instant::now());
        }
        if let Some(batch) = self.logs.push(&payload::log_entry(&meta, snapshot)) {
            self.send_logs(batch)?;
        }
        self.flush_old_logs()
    }

    fn session_end(&mut self, meta: &SessionMeta, exit_code: i32, duration_ms: u64) -> anyhow::Result<()> {
        let mut first_err = None;
        if let Some(b) = self.logs.take() {
            if let Err(e) = self.send_logs(b) {
                first_err = Some(e);
            }
        }
        if self.actions.contains(Action::Record) {
            let rec = self.session_record(
                KIND_SESSION_END,
                Class::Normal,
                &meta.session_id,
                payload::session_end(exit_code, duration_ms, self.chunks),
            );
            if let Err(e) = self.enqueue_journaled(rec, |file, pid| journal::Entry::End { file, pid }) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stored(kind: &str, meta: &[(&str, &str)], body: &[u8]) -> Stored {
        Stored {
            id: RecordId("1".into()),
            class: Class::Normal,
            group: None,
            kind: kind.into(),
            meta: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            created_ms: 0,
            body: body.to_vec(),
        }
    }

    #[test]
    fn record_kinds_map_to_calls() {
        let (c, _) =
            to_call(&stored(KIND_SESSION_CHUNK, &[("session_id", "s1"), ("seq", "4")], b"")).unwrap();
        assert_eq!(c, Call::SessionChunk { session_id: "s1".into(), seq: 4 });
        let (c, _) = to_call(&stored(KIND_SESSION_END, &[("session_id", "s1")], b"")).unwrap();
        assert_eq!(c, Call::SessionEnd { session_id: "s1".into() });
        assert_eq!(to_call(&stored(KIND_LOGS, &[], b"")).unwrap().0, Call::Logs);
        let (c, body) =
            to_call(&stored("audit.break_glass", &[], br#"{"user":"ana","command":"rm -rf /"}"#)).unwrap();
        assert_eq!(c, Call::Event);
        assert!(String::from_utf8(body).unwrap().contains("break_glass:true"));
        // Plain chunks are compressed for the upload; earlier (gzip) records go out as stored.
        let lines = b"[0.5, \"o\", \"hello\\r\\n\"]\n";
        let plain =
            stored(KIND_SESSION_CHUNK, &[("session_id", "s1"), ("seq", "0"), ("encoding", "plain")], lines);
        let (_, body) = to_call(&plain).unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut back).unwrap();
        assert_eq!(back, lines);
        let old = stored(KIND_SESSION_CHUNK, &[("session_id", "s1"), ("seq", "0")], &payload::gzip(lines));
        assert_eq!(to_call(&old).unwrap().1, payload::gzip(lines));
        let odd =
            stored(KIND_SESSION_CHUNK, &[("session_id", "s1"), ("seq", "0"), ("encoding", "zstd")], b"");
        assert!(to_call(&odd).unwrap_err().message.contains("zstd"));
        assert!(to_call(&stored("mystery.kind", &[], b"")).unwrap_err().permanent);
        assert!(to_call(&stored(KIND_SESSION_CHUNK, &[("session_id", "s")], b"")).unwrap_err().permanent);
        assert!(to_call(&stored("audit.break_glass", &[], b"not json")).unwrap_err().permanent);
    }

    #[test]
    fn api_errors_map_to_spool_failures() {
        let e = ApiError::Http {
            method: "POST".into(),
            url: "/x".into(),
            status: 429,
            msg: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        let f = failure(&e);
        assert!(!f.permanent);
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        let e = ApiError::Http {
            method: "POST".into(),
            url: "/x".into(),
            status: 403,
            msg: "Forbidden".into(),
            retry_after: None,
        };
        let f = failure(&e);
        assert!(f.permanent && f.message.contains("Forbidden") && f.status == Some(403));
    }

    #[test]
    fn group_names_are_safe() {
        assert_eq!(group_of("0193b7e2-aaaa"), "0193b7e2-aaaa");
        assert_eq!(group_of("a/b c"), "a_b_c");
        assert_eq!(group_of(""), "session");
    }
}
