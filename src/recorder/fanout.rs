//! Fans a session's records out to its Outputs: cast lines batched into upload-sized chunks, process events
//! and snapshots; each Output fails on its own (logged, never blocking the user's command).

use crate::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use std::time::{Duration, Instant};

/// A chunk is handed over after this long or this many bytes, whichever comes first.
pub const CHUNK_INTERVAL: Duration = Duration::from_secs(1);
// Each chunk is one fsync'd spool record: 1 MiB keeps that cost small on bulk output.
pub const CHUNK_BYTES: usize = 1024 * 1024;

struct Slot {
    output: Box<dyn Output>,
    errors: u64,
}

impl Slot {
    fn call(&mut self, what: &str, f: impl FnOnce(&mut dyn Output) -> anyhow::Result<()>) {
        if let Err(e) = f(self.output.as_mut()) {
            self.errors += 1;
            // The first error says what broke; later ones only count, so bulk output cannot flood stderr.
            if self.errors == 1 || self.errors.is_power_of_two() {
                tracing::warn!("session output failed in {what} ({} errors so far): {e:#}", self.errors);
            }
        }
    }
}

/// The Outputs of one session, gated by its actions.
pub struct Fanout {
    slots: Vec<Slot>,
    record: bool,
    logs: bool,
    process_info: bool,
    chunk: Vec<u8>,
    chunk_started: Option<Instant>,
    seq: u64,
}

impl Fanout {
    /// `record` gates cast chunks, `logs` snapshots, `process_info` process events.
    pub fn new(outputs: Vec<Box<dyn Output>>, actions: &ActionSet) -> Fanout {
        Fanout {
            slots: outputs.into_iter().map(|output| Slot { output, errors: 0 }).collect(),
            record: actions.contains(Action::Record),
            logs: actions.contains(Action::Logs),
            process_info: actions.contains(Action::ProcessInfo),
            chunk: Vec::new(),
            chunk_started: None,
            seq: 0,
        }
    }

    pub fn start(&mut self, meta: &SessionMeta) {
        for s in &mut self.slots {
            s.call("session_start", |o| o.session_start(meta));
        }
    }

    /// Buffers complete event lines; hands a chunk over when it is big or old enough.
    pub fn lines(&mut self, lines: &[u8], now: Instant) {
        if !self.record || self.slots.is_empty() || lines.is_empty() {
            return;
        }
        self.chunk.extend_from_slice(lines);
        self.chunk_started.get_or_insert(now);
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush_chunk();
        }
    }

    /// When the pending chunk must be handed over at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.chunk_started.map(|t| t + CHUNK_INTERVAL)
    }

    pub fn tick(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| now >= d) {
            self.flush_chunk();
        }
    }

    fn flush_chunk(&mut self) {
        self.chunk_started = None;
        if self.chunk.is_empty() {
            return;
        }
        let seq = self.seq;
        self.seq += 1;
        let chunk = std::mem::take(&mut self.chunk);
        for s in &mut self.slots {
            s.call("cast_chunk", |o| o.cast_chunk(seq, &chunk));
        }
    }

    pub fn process_event(&mut self, ev: &ProcessEvent) {
        if !self.process_info {
            return;
        }
        for s in &mut self.slots {
            s.call("process_event", |o| o.process_event(ev));
        }
    }

    pub fn snapshot(&mut self, snap: &Snapshot) {
        if !self.logs {
            return;
        }
        for s in &mut self.slots {
            s.call("snapshot", |o| o.snapshot(snap));
        }
    }

    /// Hands over the last chunk, then ends the session on every output.
    pub fn end(&mut self, meta: &SessionMeta, exit_code: i32, duration_ms: u64) {
        self.flush_chunk();
        for s in &mut self.slots {
            s.call("session_end", |o| o.session_end(meta, exit_code, duration_ms));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Chunks an output received: `(seq, lines)`.
    pub type Chunks = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    /// Records every call; `fail` makes every call error.
    #[derive(Clone, Default)]
    pub struct Probe {
        pub calls: Arc<Mutex<Vec<String>>>,
        pub chunks: Chunks,
        pub fail: bool,
    }

    impl Output for Probe {
        fn session_start(&mut self, m: &SessionMeta) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("start {}", m.session_id));
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
        fn cast_chunk(&mut self, seq: u64, lines: &[u8]) -> anyhow::Result<()> {
            self.chunks.lock().unwrap().push((seq, lines.to_vec()));
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
        fn process_event(&mut self, e: &ProcessEvent) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("event {}", e.command));
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
        fn snapshot(&mut self, s: &Snapshot) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("snapshot {}", s.lines.join("|")));
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
        fn session_end(&mut self, _m: &SessionMeta, code: i32, _d: u64) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("end {code}"));
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn chunks_are_batched_and_a_failing_output_does_not_stop_the_others() {
        let bad = Probe { fail: true, ..Probe::default() };
        let good = Probe::default();
        let actions = ActionSet::new([Action::Record, Action::ProcessInfo]);
        let mut f = Fanout::new(vec![Box::new(bad.clone()), Box::new(good.clone())], &actions);
        let t0 = Instant::now();
        f.start(&SessionMeta { session_id: "s".into(), ..SessionMeta::default() });
        f.lines(b"[0.1, \"o\", \"a\"]\n", t0);
        f.lines(b"[0.2, \"o\", \"b\"]\n", t0);
        assert!(good.chunks.lock().unwrap().is_empty(), "small lines wait for the interval");
        f.tick(t0 + CHUNK_INTERVAL);
        f.lines(&vec![b'x'; CHUNK_BYTES], t0 + CHUNK_INTERVAL);
        f.snapshot(&Snapshot { session_id: "s".into(), timestamp_ms: 0, lines: vec!["l".into()] });
        f.end(&SessionMeta::default(), 3, 10);
        let chunks = good.chunks.lock().unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], (0, b"[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]\n".to_vec()));
        assert_eq!(chunks[1].0, 1);
        // logs is not among the actions: no snapshot.
        assert_eq!(*good.calls.lock().unwrap(), vec!["start s", "end 3"]);
        assert_eq!(bad.chunks.lock().unwrap().len(), 2, "the failing output was still called");
    }
}
