//! The recording core, free of processes and terminals: merges output reads into events, redacts, encodes
//! asciicast lines, writes the file, turns markers into process events and feeds snapshots and Outputs.

use super::cast::{self, CastFile};
use super::fanout::Fanout;
use super::markers::Marker;
use super::snapshot::Snapshotter;
use super::utf8::Utf8Carry;
use crate::model::{ProcessEvent, SessionMeta, Snapshot};
use crate::redact::{Redactor, StreamRedactor};
use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// No output for this long takes a snapshot (the `logs` action).
pub const SNAPSHOT_IDLE: Duration = Duration::from_millis(500);

/// Tunables, from `recording.*`.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub merge_window: Duration,
    pub merge_bytes: usize,
    /// Record `i` events (only those the caller says were typed with echo on).
    pub input: bool,
    /// Render snapshots (the `logs` action).
    pub snapshots: bool,
}

/// One session's recording state. Every byte passes the redactor before it reaches the file or an Output.
pub struct Pipeline {
    cfg: PipelineConfig,
    meta: SessionMeta,
    clock: Clock,
    redactor: Redactor,
    /// The output stream's redactor and UTF-8 decoder, and the keystrokes'.
    out: Stream,
    inp: Stream,
    /// Output read but not yet written: waits for its merge window or merge size.
    batch: Batch,
    idle: Idle,
    cast: Option<CastFile>,
    events: Option<File>,
    fanout: Fanout,
    snap: Option<Snapshotter>,
    /// Snapshots taken, waiting to be handed to the Outputs.
    snaps: Vec<Snapshot>,
    open_command: Option<(String, String, Instant)>,
    text: String,
    lines: Vec<u8>,
    last_t: f64,
}

/// When the session started, on the monotonic clock and the wall clock: event times are relative to the
/// first, process events and snapshots carry the second.
struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Clock {
    fn now() -> Clock {
        let start_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Clock { start: Instant::now(), start_unix_ms }
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    fn ms_since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_millis() as u64
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        self.start_unix_ms + self.ms_since_start(at)
    }
}

/// One direction of the terminal (output or keystrokes): its streaming redactor and UTF-8 decoder.
struct Stream {
    redact: StreamRedactor,
    utf8: Utf8Carry,
}

/// Output read and not yet written, and the buffer its redacted bytes pass through (both reused).
#[derive(Default)]
struct Batch {
    pending: Vec<u8>,
    redacted: Vec<u8>,
    /// When the first byte of `pending` was read (the merge window runs from there).
    at: Option<Instant>,
}

/// The last output and the last activity (output or keystroke); the redactors' idle flush runs one merge
/// window after the last activity, once.
struct Idle {
    last_output: Option<Instant>,
    last_activity: Option<Instant>,
    flushed: bool,
}

impl Pipeline {
    /// `cast`: the local file (already holding the header), `events`: the local `.events.jsonl`.
    pub fn new(
        cfg: PipelineConfig,
        meta: SessionMeta,
        redactor: Redactor,
        cast: Option<CastFile>,
        events: Option<File>,
        mut fanout: Fanout,
    ) -> Pipeline {
        fanout.start(&meta);
        let snap = cfg
            .snapshots
            .then(|| Snapshotter::new(meta.width, meta.height, &meta.session_id, redactor.clone()));
        let mut out_redact = redactor.stream();
        out_redact.set_width(meta.width);
        Pipeline {
            out: Stream { redact: out_redact, utf8: Utf8Carry::default() },
            inp: Stream { redact: redactor.stream(), utf8: Utf8Carry::default() },
            redactor,
            cfg,
            clock: Clock::now(),
            meta,
            batch: Batch::default(),
            idle: Idle { last_output: None, last_activity: None, flushed: true },
            cast,
            events,
            fanout,
            snap,
            snaps: Vec::new(),
            open_command: None,
            text: String::new(),
            lines: Vec::new(),
            last_t: 0.0,
        }
    }

    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// Output waiting for its merge window (the loop wakes on its own timer meanwhile).
    pub fn output_pending(&self) -> bool {
        self.batch.at.is_some()
    }

    /// The merge size: the loop is woken as soon as this much output is queued.
    pub fn merge_bytes(&self) -> usize {
        self.cfg.merge_bytes
    }

    /// The redactor, for command lines of process events built outside.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Raw output (markers already stripped), as read at `at`.
    pub fn output(&mut self, data: &[u8], at: Instant) {
        if data.is_empty() {
            return;
        }
        self.batch.at.get_or_insert(at);
        self.idle.last_output = Some(at);
        self.idle.last_activity = Some(at);
        self.idle.flushed = false;
        self.batch.pending.extend_from_slice(data);
        self.after_output();
    }

    /// [`Pipeline::output`] taking the bytes out of `data` (left empty, holding a reusable buffer): a batch
    /// that starts a merge is moved in rather than copied.
    pub fn output_vec(&mut self, data: &mut Vec<u8>, at: Instant) {
        if data.is_empty() {
            return;
        }
        self.batch.at.get_or_insert(at);
        if self.batch.pending.is_empty() {
            std::mem::swap(&mut self.batch.pending, data);
        } else {
            self.batch.pending.extend_from_slice(data);
        }
        data.clear();
        self.idle.last_output = Some(at);
        self.idle.last_activity = Some(at);
        self.idle.flushed = false;
        self.after_output();
    }

    fn after_output(&mut self) {
        if self.batch.pending.len() >= self.cfg.merge_bytes {
            self.flush_output(false);
        }
    }

    /// Keystrokes the caller saw written to the PTY while its echo was on.
    pub fn input(&mut self, data: &[u8], at: Instant) {
        if !self.cfg.input {
            return;
        }
        self.flush_output(false);
        self.idle.last_activity = Some(at);
        self.idle.flushed = false;
        let redacted = self.inp.redact.push(data);
        self.text.clear();
        self.inp.utf8.push(&redacted, &mut self.text);
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            self.emit(at, "i", &text);
            self.text = text;
        }
    }

    /// The terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16, at: Instant) {
        self.flush_output(false);
        self.out.redact.set_width(cols);
        self.emit(at, "r", &cast::resize_data(cols, rows));
        if let Some(s) = &mut self.snap {
            let ms = self.clock.unix_ms(at);
            s.resize(cols, rows, ms, &mut self.snaps);
        }
        self.send_snaps();
    }

    /// A shell-integration marker seen at `at`.
    pub fn marker(&mut self, m: Marker, at: Instant) {
        match m {
            Marker::CommandStart { cwd, command } => {
                if let Some((cmd, cwd, started)) = self.open_command.take() {
                    self.command_finished(cmd, cwd, started, None, at);
                }
                self.open_command = Some((command, cwd, at));
            }
            Marker::CommandEnd { status } => {
                if let Some((cmd, cwd, started)) = self.open_command.take() {
                    self.command_finished(cmd, cwd, started, Some(status), at);
                }
            }
        }
    }

    fn command_finished(
        &mut self,
        command: String,
        cwd: String,
        started: Instant,
        code: Option<i32>,
        at: Instant,
    ) {
        let command = self.redactor.redact_str(command.trim());
        if command.is_empty() {
            return;
        }
        let executable = command.split_whitespace().next().unwrap_or_default().to_string();
        let ev = ProcessEvent {
            session_id: self.meta.session_id.clone(),
            command,
            executable,
            cwd,
            user: self.meta.user.clone(),
            hostname: self.meta.hostname.clone(),
            exit_code: code,
            started_at_ms: self.clock.unix_ms(started),
            duration_ms: at.saturating_duration_since(started).as_millis() as u64,
            tags: self.meta.tags.clone(),
        };
        self.process_event(&ev);
    }

    /// Sends a process event to the Outputs and the local event log (the command line must be redacted).
    pub fn process_event(&mut self, ev: &ProcessEvent) {
        if let Some(f) = &mut self.events {
            let mut line = serde_json::to_vec(ev).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = f.write_all(&line) {
                tracing::warn!("writing the session event log: {e}");
            }
        }
        self.fanout.process_event(ev);
    }

    /// When `tick` must run next (merge window, idle flush, idle snapshot).
    pub fn deadline(&self) -> Option<Instant> {
        let merge = self.batch.at.map(|t| t + self.cfg.merge_window);
        let snap = match (&self.snap, self.idle.last_output) {
            (Some(s), Some(t)) if s.dirty() => Some(t + SNAPSHOT_IDLE),
            _ => None,
        };
        let idle = match self.idle.last_activity {
            Some(t) if !self.idle.flushed => Some(t + self.cfg.merge_window),
            _ => None,
        };
        [merge, snap, idle].into_iter().flatten().min()
    }

    /// Does whatever is due at `now`.
    pub fn tick(&mut self, now: Instant) {
        if self.batch.at.is_some_and(|t| now >= t + self.cfg.merge_window) {
            self.flush_output(false);
        }
        if !self.idle.flushed
            && self.batch.at.is_none()
            && self.idle.last_activity.is_some_and(|t| now >= t + self.cfg.merge_window)
        {
            self.flush_idle(now);
        }
        if let (Some(s), Some(t)) = (&mut self.snap, self.idle.last_output) {
            if s.dirty() && now >= t + SNAPSHOT_IDLE {
                let snap = s.snapshot(self.clock.unix_ms(now));
                self.snaps.extend(snap);
            }
        }
        self.send_snaps();
    }

    fn flush_output(&mut self, end: bool) {
        let Some(at) = self.batch.at.take() else {
            if !end {
                return;
            }
            // End of stream: flush what the redactor and decoder still hold.
            return self.flush_tail(Instant::now());
        };
        // Buffers are reused from one batch to the next, and valid UTF-8 is not copied into a String.
        let mut redacted = std::mem::take(&mut self.batch.redacted);
        let mut spill = std::mem::take(&mut self.text);
        let mut pending = std::mem::take(&mut self.batch.pending);
        // One event per `merge_bytes` at most: a batch the loop fell behind on becomes several events, so
        // no buffer downstream (redaction, JSON, snapshot) grows past one merge size (peak RSS). The
        // redactor and the decoder stream, so where the batch is cut does not matter to them.
        let step = self.cfg.merge_bytes.max(1);
        let n = pending.len().div_ceil(step).max(1);
        for i in 0..n {
            let chunk = &pending[i * step..pending.len().min((i + 1) * step)];
            let last = i + 1 == n;
            redacted.clear();
            self.out.redact.push_into(chunk, &mut redacted);
            if end && last {
                redacted.extend_from_slice(&self.out.redact.finish());
            }
            let text = self.out.utf8.decode(&redacted, &mut spill, end && last);
            self.emit_output(at, text);
        }
        pending.clear();
        self.batch.pending = pending;
        self.text = spill;
        self.batch.redacted = redacted;
    }

    /// Output and input went quiet: let the redactors release what they safely can (a prompt without a
    /// newline, typed keystrokes), so the recording follows the screen instead of waiting for a newline.
    fn flush_idle(&mut self, now: Instant) {
        self.idle.flushed = true;
        let out = self.out.redact.flush_idle();
        if !out.is_empty() {
            let mut spill = std::mem::take(&mut self.text);
            let text = self.out.utf8.decode(&out, &mut spill, false);
            self.emit_output(now, text);
            self.text = spill;
        }
        let typed = self.inp.redact.flush_idle();
        if self.cfg.input && !typed.is_empty() {
            self.text.clear();
            self.inp.utf8.push(&typed, &mut self.text);
            if !self.text.is_empty() {
                let text = std::mem::take(&mut self.text);
                self.emit(now, "i", &text);
                self.text = text;
            }
        }
    }

    fn flush_tail(&mut self, at: Instant) {
        let tail = self.out.redact.finish();
        let mut spill = std::mem::take(&mut self.text);
        let text = self.out.utf8.decode(&tail, &mut spill, true);
        self.emit_output(at, text);
        self.text = spill;
    }

    fn emit_output(&mut self, at: Instant, text: &str) {
        if text.is_empty() {
            return;
        }
        self.emit(at, "o", text);
        if let Some(s) = &mut self.snap {
            let ms = self.clock.unix_ms(at);
            s.push(text, ms, &mut self.snaps);
        }
        self.send_snaps();
    }

    fn send_snaps(&mut self) {
        for s in std::mem::take(&mut self.snaps) {
            self.fanout.snapshot(s);
        }
    }

    fn emit(&mut self, at: Instant, code: &str, data: &str) {
        self.lines.clear();
        // Events are written in order; a time never goes back (asciicast players expect that).
        let t = self.clock.secs(at).max(self.last_t);
        self.last_t = t;
        cast::push_event(&mut self.lines, t, code, data);
        if let Some(c) = &mut self.cast {
            if let Err(e) = c.append(&self.lines) {
                tracing::warn!("{e:#}; the local recording stops here");
                self.cast = None;
            }
        }
        self.fanout.lines(&mut self.lines, at);
    }

    /// Ends the session: flushes everything, writes the exit marker, ends every Output.
    pub fn finish(mut self, exit_code: i32) {
        let now = Instant::now();
        self.flush_output(true);
        if let Some((cmd, cwd, started)) = self.open_command.take() {
            self.command_finished(cmd, cwd, started, None, now);
        }
        let tail = self.inp.redact.finish();
        if self.cfg.input && !tail.is_empty() {
            self.text.clear();
            self.inp.utf8.push(&tail, &mut self.text);
            let text = std::mem::take(&mut self.text);
            self.emit(now, "i", &text);
        }
        self.emit(now, "m", &cast::exit_marker(exit_code));
        if let Some(s) = &mut self.snap {
            let ms = self.clock.unix_ms(now);
            self.snaps.extend(s.snapshot(ms));
        }
        self.send_snaps();
        let duration = self.clock.ms_since_start(now);
        self.fanout.end(&self.meta, exit_code, duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{RedactionPattern, RedactionSettings};
    use crate::model::{Action, ActionSet};
    use crate::recorder::fanout::tests::Probe;

    fn pipeline(dir: &std::path::Path, probe: &Probe, input: bool) -> Pipeline {
        let settings = RedactionSettings {
            enabled: true,
            patterns: vec![RedactionPattern { name: "token".into(), regex: "tok_[a-z0-9]{12}".into() }],
        };
        let redactor = Redactor::from_settings(&settings).unwrap();
        let meta = SessionMeta { session_id: "s1".into(), width: 80, height: 24, ..SessionMeta::default() };
        let cast = CastFile::create(dir.join("s1.cast"), &cast::header_line(&meta, "sh", "xterm")).unwrap();
        let cfg = PipelineConfig {
            merge_window: Duration::from_millis(10),
            merge_bytes: 64 * 1024,
            input,
            snapshots: true,
        };
        let actions = ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo]);
        Pipeline::new(
            cfg,
            meta,
            redactor,
            Some(cast),
            None,
            Fanout::new(vec![Box::new(probe.clone())], &actions),
        )
    }

    fn events(dir: &std::path::Path) -> Vec<(f64, String, String)> {
        let text = std::fs::read_to_string(dir.join("s1.cast")).unwrap();
        text.lines().skip(1).map(|l| cast::parse_event(l).unwrap()).collect()
    }

    #[test]
    fn reads_merge_and_secrets_split_across_reads_are_redacted() {
        let d = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let mut p = pipeline(d.path(), &probe, false);
        let t0 = Instant::now();
        p.output(b"key tok_abcdef", t0);
        p.output(b"123456 end\r\n", t0 + Duration::from_millis(2));
        p.tick(t0 + Duration::from_millis(20));
        p.output(b"second\r\n", t0 + Duration::from_millis(30));
        p.finish(0);
        let ev = events(d.path());
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(ev[0].2, "key [REDACTED:token] end\r\n");
        assert_eq!(ev[1].2, "second\r\n");
        assert_eq!((ev[2].1.as_str(), ev[2].2.as_str()), ("m", "exit 0"));
        assert!(ev.windows(2).all(|w| w[0].0 <= w[1].0), "times never go back");
        let chunks = probe.chunks.lock().unwrap();
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.1.clone()).collect();
        assert!(!String::from_utf8_lossy(&all).contains("tok_abcdef123456"));
    }

    #[test]
    fn a_large_batch_is_recorded_as_events_of_at_most_one_merge_size_cut_anywhere() {
        let d = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let mut p = pipeline(d.path(), &probe, false);
        // 200 KB in one batch, with a secret and a 3-byte character straddling the 64 KiB cuts.
        let mut data = vec![b'x'; 64 * 1024 - 5];
        data.extend_from_slice(b"tok_abcdef123456 ");
        data.resize(2 * 64 * 1024 - 1, b'y');
        data.extend_from_slice("€".as_bytes());
        data.resize(200_000, b'z');
        data.extend_from_slice(b"\r\n");
        p.output(&data, Instant::now());
        p.finish(0);
        let ev = events(d.path());
        let out: Vec<&(f64, String, String)> = ev.iter().filter(|e| e.1 == "o").collect();
        assert!(out.len() >= 3, "{} output events", out.len());
        assert!(out.iter().all(|e| e.2.len() <= 64 * 1024 + 64), "an event holds at most one merge size");
        let all: String = out.iter().map(|e| e.2.as_str()).collect();
        let want = String::from_utf8(data).unwrap().replace("tok_abcdef123456", "[REDACTED:token]");
        assert!(all == want, "the events put together are the redacted batch");
    }

    #[test]
    fn markers_become_process_events_with_redacted_commands() {
        let d = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let mut p = pipeline(d.path(), &probe, false);
        let t0 = Instant::now();
        p.marker(Marker::CommandStart { cwd: "/tmp".into(), command: "curl -H tok_abcdef123456".into() }, t0);
        p.marker(Marker::CommandEnd { status: 7 }, t0 + Duration::from_millis(5));
        p.marker(Marker::CommandEnd { status: 0 }, t0 + Duration::from_millis(6));
        p.finish(0);
        let calls = probe.calls.lock().unwrap();
        let evs: Vec<&String> = calls.iter().filter(|c| c.starts_with("event")).collect();
        assert_eq!(evs, vec!["event curl -H [REDACTED:token]"], "{calls:?}");
    }

    #[test]
    fn input_only_when_enabled() {
        let d = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let mut p = pipeline(d.path(), &probe, true);
        p.input(b"ls\r", Instant::now());
        p.finish(0);
        assert!(events(d.path()).iter().any(|e| e.1 == "i" && e.2 == "ls\r"));
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path(), &probe, false);
        p.input(b"ls\r", Instant::now());
        p.finish(0);
        assert!(!events(d.path()).iter().any(|e| e.1 == "i"));
    }

    #[test]
    fn snapshot_at_end_goes_to_outputs() {
        let d = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let mut p = pipeline(d.path(), &probe, false);
        p.output(b"\x1b[1mhello\x1b[0m world\r\n", Instant::now());
        p.finish(0);
        assert!(probe.calls.lock().unwrap().iter().any(|c| c == "snapshot hello world"));
    }
}
