//! The recorder's output for a session's uploads: turns `session_start / cast_chunk / process_event /
//! snapshot / session_end` into spool records for the configured destinations (never the network).
//!
//! Session server: the create, chunk 0 = the asciicast header line (exactly the `.cast`'s first line), chunk
//! n+1 = the recorder's chunk n, so that the chunks concatenated are the local `.cast` byte for byte; each
//! chunk's `prev_sha256` is fixed here. Datadog: process events, log batches and one `coterm_session` event.
//! Records for a destination that is not configured are not written.

use super::kinds::{self, Chain};
use super::route::Destination;
use super::Uploader;
use crate::datadog::payload::{self, LogBatcher};
use crate::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use crate::recorder::recovery::{self as journal, Journal};
use crate::spool::{Record, RecordId};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Send buffered log snapshots at least this often while a session runs.
const LOG_BATCH_AGE: std::time::Duration = std::time::Duration::from_secs(5);

impl Uploader {
    /// The session's output for `actions`, or `None` when nothing would be written (no such action, or no
    /// destination for it). `header` is the `.cast`'s first line; `journal` the recovery journal, whose chunk
    /// ranges are offsets in the `.cast` (chunk 0 = `0..header.len()`).
    pub fn session_output(
        self: &Arc<Self>,
        actions: &ActionSet,
        header: Vec<u8>,
        journal: Option<Journal>,
    ) -> Option<Box<dyn Output>> {
        let server = self.writes_for(Destination::Server);
        let datadog = self.writes_for(Destination::Datadog);
        let record = actions.contains(Action::Record) && server;
        let events = actions.contains(Action::ProcessInfo) && (server || datadog);
        let logs = actions.contains(Action::Logs) && datadog;
        let session_event = actions.contains(Action::Record) && datadog;
        if !(record || events || logs || session_event) {
            return None;
        }
        Some(Box::new(SessionOutput {
            up: self.clone(),
            actions: actions.clone(),
            record,
            events_to_server: actions.contains(Action::ProcessInfo) && server,
            events_to_datadog: actions.contains(Action::ProcessInfo) && datadog,
            logs,
            session_event,
            header,
            meta: None,
            chain: None,
            log_batch: LogBatcher::default(),
            logs_since: None,
            journal,
            offset: 0,
        }))
    }
}

struct SessionOutput {
    up: Arc<Uploader>,
    actions: ActionSet,
    record: bool,
    events_to_server: bool,
    events_to_datadog: bool,
    logs: bool,
    session_event: bool,
    header: Vec<u8>,
    meta: Option<SessionMeta>,
    chain: Option<Chain>,
    log_batch: LogBatcher,
    logs_since: Option<Instant>,
    journal: Option<Journal>,
    /// Where the next chunk starts in the local `.cast`.
    offset: u64,
}

impl SessionOutput {
    /// Spools `rec`, journaling it as `entry(file name, pid)` when the session has a journal.
    fn enqueue(
        &mut self,
        rec: Record,
        entry: impl Fn(String, u32) -> journal::Entry,
    ) -> anyhow::Result<RecordId> {
        match &mut self.journal {
            None => self.up.enqueue(rec),
            Some(j) => self
                .up
                .enqueue_journaled(rec, &mut |file| j.append(&entry(file.to_string(), std::process::id()))),
        }
    }

    /// The next chunk (header or events) of the recording.
    fn chunk(&mut self, lines: Vec<u8>) -> anyhow::Result<()> {
        let Some(chain) = self.chain.as_mut() else { return Ok(()) };
        let id = self.meta.as_ref().map(|m| m.session_id.clone()).unwrap_or_default();
        let seq = chain.next_seq();
        let (start, end) = (self.offset, self.offset + lines.len() as u64);
        let rec = chain.chunk(&id, lines);
        // The range moves on even if the spool refused the chunk: the next chunk's bytes come after it.
        self.offset = end;
        self.enqueue(rec, |file, pid| journal::Entry::Chunk { seq, start, end, file, pid })?;
        Ok(())
    }

    fn send_logs(&mut self, batch: Vec<u8>) -> anyhow::Result<()> {
        self.logs_since = if self.log_batch.is_empty() { None } else { Some(Instant::now()) };
        self.up.enqueue(kinds::logs_record(&batch))?;
        Ok(())
    }

    fn flush_old_logs(&mut self) -> anyhow::Result<()> {
        if self.logs_since.is_some_and(|t| t.elapsed() >= LOG_BATCH_AGE) {
            if let Some(b) = self.log_batch.take() {
                self.send_logs(b)?;
            }
        }
        Ok(())
    }
}

impl Output for SessionOutput {
    fn session_start(&mut self, meta: &SessionMeta) -> anyhow::Result<()> {
        self.meta = Some(meta.clone());
        if self.record {
            let (rec, root) = kinds::create_record(meta);
            self.chain = Some(Chain::new(root));
            let created = self.enqueue(rec, |file, pid| journal::Entry::Create { file, pid });
            // Chunk 0 is the header, whatever happened to the create (a resend converges on the server).
            let header = std::mem::take(&mut self.header);
            let chunk = self.chunk(header);
            created?;
            chunk?;
        }
        Ok(())
    }

    fn cast_chunk(&mut self, _seq: u64, lines: &[u8]) -> anyhow::Result<()> {
        self.cast_chunk_vec(_seq, lines.to_vec())
    }

    fn cast_chunk_vec(&mut self, _seq: u64, lines: Vec<u8>) -> anyhow::Result<()> {
        // The recorder counts its chunks from 0; on the wire they follow the header (seq + 1), which the
        // chain numbers itself.
        self.chunk(lines)?;
        self.flush_old_logs()
    }

    fn process_event(&mut self, event: &ProcessEvent) -> anyhow::Result<()> {
        let mut first_err = None;
        if self.events_to_server {
            let rec = kinds::events_record(event);
            if let Err(e) = self.enqueue(rec, |file, pid| journal::Entry::Event { file, pid }) {
                first_err = Some(e);
            }
        }
        if self.events_to_datadog {
            let rec = kinds::datadog_event_record(event);
            if let Err(e) = self.enqueue(rec, |file, pid| journal::Entry::Event { file, pid }) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.flush_old_logs()
    }

    fn snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        if !self.logs {
            return Ok(());
        }
        let meta = self
            .meta
            .clone()
            .unwrap_or_else(|| SessionMeta { session_id: snapshot.session_id.clone(), ..Default::default() });
        if self.logs_since.is_none() {
            self.logs_since = Some(Instant::now());
        }
        if let Some(batch) = self.log_batch.push(&payload::log_entry(&meta, snapshot)) {
            self.send_logs(batch)?;
        }
        self.flush_old_logs()
    }

    fn session_end(&mut self, meta: &SessionMeta, exit_code: i32, duration_ms: u64) -> anyhow::Result<()> {
        let mut first_err = None;
        if let Some(b) = self.log_batch.take() {
            if let Err(e) = self.send_logs(b) {
                first_err = Some(e);
            }
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        if let Some(chain) = &self.chain {
            // Chunk 0 (the header) always exists, so the last seq is the one before the next.
            let last_seq = chain.next_seq().saturating_sub(1);
            let rec = kinds::end_record(&meta.session_id, now_ms, Some(exit_code), last_seq);
            if let Err(e) = self.enqueue(rec, |file, pid| journal::Entry::End { file, pid }) {
                first_err.get_or_insert(e);
            }
        }
        if self.session_event && self.actions.contains(Action::Record) {
            let link = self.up.session_link(&meta.session_id);
            let rec = kinds::datadog_session_record(meta, Some(exit_code), duration_ms, link.as_deref());
            if let Err(e) = self.up.enqueue(rec) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
