//! Fans a session's records out to its Outputs: cast lines batched into upload-sized gzip chunks, process
//! events and snapshots; each Output fails on its own (logged, never blocking the user's command).
//!
//! The Outputs run on a writer thread of their own (`ddcoterm-outputs`): fsync'd spool writes never happen on
//! the recorder's thread, which only moves buffers into a bounded queue. When the writer falls behind, the queue fills and the recorder waits for it (back-pressure travels
//! up to the child's writes); nothing is dropped. The writer calls the Outputs in exactly the order the
//! recorder issued the records, and [`Fanout::end`] (or dropping the Fanout) waits until everything queued,
//! including the last partial chunk, has been handed over.

use crate::model::{Action, ActionSet, Output, ProcessEvent, SessionMeta, Snapshot};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A chunk is handed over after this long or this many (uncompressed) bytes, whichever comes first.
pub const CHUNK_INTERVAL: Duration = Duration::from_secs(1);
/// Each chunk is one fsync'd spool record: 1 MiB keeps that cost small on bulk output.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Records queued for the writer at most; beyond that the recorder waits (bounded memory, nothing dropped).
pub const QUEUE_RECORDS: usize = 2;
/// Line buffers larger than this are freed instead of being reused.
const RECYCLE_MAX: usize = 1024 * 1024;
/// The writer's stack: it only calls the Outputs (their buffers live on the heap).
const WRITER_STACK: usize = 256 * 1024;

enum Msg {
    Start(SessionMeta),
    Lines(Vec<u8>, Instant),
    Event(ProcessEvent),
    Snapshot(Snapshot),
    End { meta: SessionMeta, exit_code: i32, duration_ms: u64 },
}

/// The recorder's side: gates records by the session's actions and queues them for the writer thread.
pub struct Fanout {
    tx: Option<SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    /// Line buffers the writer is done with.
    spare: Option<Receiver<Vec<u8>>>,
    record: bool,
    logs: bool,
    process_info: bool,
}

impl Fanout {
    /// `record` gates cast chunks, `logs` snapshots, `process_info` process events. No outputs: no thread.
    pub fn new(outputs: Vec<Box<dyn Output>>, actions: &ActionSet) -> Fanout {
        Fanout::with_queue(outputs, actions, QUEUE_RECORDS)
    }

    /// [`Fanout::new`] with an explicit queue bound (tests).
    pub(crate) fn with_queue(outputs: Vec<Box<dyn Output>>, actions: &ActionSet, queue: usize) -> Fanout {
        let mut f = Fanout {
            tx: None,
            writer: None,
            spare: None,
            record: actions.contains(Action::Record),
            logs: actions.contains(Action::Logs),
            process_info: actions.contains(Action::ProcessInfo),
        };
        if outputs.is_empty() {
            return f;
        }
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let (spare_tx, spare_rx) = mpsc::channel();
        let slots = outputs.into_iter().map(|output| Slot { output, errors: 0 }).collect();
        let spawned = std::thread::Builder::new()
            .name("ddcoterm-outputs".into())
            .stack_size(WRITER_STACK)
            .spawn(move || Writer::new(slots, spare_tx).run(rx));
        match spawned {
            Ok(h) => {
                f.tx = Some(tx);
                f.writer = Some(h);
                f.spare = Some(spare_rx);
            }
            Err(e) => tracing::warn!(
                "session outputs unavailable (starting their thread: {e}); recording locally only"
            ),
        }
        f
    }

    fn send(&mut self, msg: Msg) {
        let Some(tx) = &self.tx else { return };
        if tx.send(msg).is_err() {
            // The writer thread died (a panicking Output): the local recording goes on without outputs.
            tracing::warn!("session outputs stopped unexpectedly; recording locally only");
            self.tx = None;
            self.join();
        }
    }

    fn join(&mut self) {
        self.tx = None;
        if let Some(h) = self.writer.take() {
            if h.join().is_err() {
                tracing::warn!("a session output panicked; what it had not handed over is lost");
            }
        }
    }

    pub fn start(&mut self, meta: &SessionMeta) {
        self.send(Msg::Start(meta.clone()));
    }

    /// Takes complete event lines, leaving a recycled empty buffer in `lines` (no copy on the way).
    pub fn lines(&mut self, lines: &mut Vec<u8>, now: Instant) {
        if !self.record || self.tx.is_none() || lines.is_empty() {
            return;
        }
        let next = self.spare.as_ref().and_then(|s| s.try_recv().ok()).unwrap_or_default();
        let buf = std::mem::replace(lines, next);
        self.send(Msg::Lines(buf, now));
    }

    pub fn process_event(&mut self, ev: &ProcessEvent) {
        if self.process_info {
            self.send(Msg::Event(ev.clone()));
        }
    }

    pub fn snapshot(&mut self, snap: Snapshot) {
        if self.logs {
            self.send(Msg::Snapshot(snap));
        }
    }

    /// Hands over the last chunk, ends the session on every output and waits until the writer is done.
    pub fn end(&mut self, meta: &SessionMeta, exit_code: i32, duration_ms: u64) {
        self.send(Msg::End { meta: meta.clone(), exit_code, duration_ms });
        self.join();
    }
}

impl Drop for Fanout {
    /// Without [`Fanout::end`] (an error path), what was queued is still handed over before the thread ends.
    fn drop(&mut self) {
        self.join();
    }
}

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

/// The writer thread's state: the Outputs and the chunk being filled.
struct Writer {
    slots: Vec<Slot>,
    spare: Sender<Vec<u8>>,
    /// The lines of the current chunk.
    chunk: Vec<u8>,
    chunk_started: Option<Instant>,
    seq: u64,
}

impl Writer {
    fn new(slots: Vec<Slot>, spare: Sender<Vec<u8>>) -> Writer {
        Writer { slots, spare, chunk: Vec::new(), chunk_started: None, seq: 0 }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match self.chunk_started {
                Some(t) => {
                    match rx.recv_timeout((t + CHUNK_INTERVAL).saturating_duration_since(Instant::now())) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.flush_chunk();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            match msg {
                Msg::Start(meta) => self.each("session_start", |o| o.session_start(&meta)),
                Msg::Lines(mut buf, at) => {
                    // A chunk is handed over when it is old, or before it would outgrow CHUNK_BYTES (so its
                    // buffer is allocated once, at its final size).
                    let old = self.chunk_started.is_some_and(|t| at >= t + CHUNK_INTERVAL);
                    if old || self.chunk.len() + buf.len() > CHUNK_BYTES {
                        self.flush_chunk();
                    }
                    if self.chunk.capacity() == 0 {
                        self.chunk.reserve_exact(CHUNK_BYTES.max(buf.len()));
                    }
                    self.chunk.extend_from_slice(&buf);
                    self.chunk_started.get_or_insert(at);
                    if self.chunk.len() >= CHUNK_BYTES {
                        self.flush_chunk();
                    }
                    if buf.capacity() <= RECYCLE_MAX {
                        buf.clear();
                        let _ = self.spare.send(buf);
                    }
                }
                Msg::Event(ev) => self.each("process_event", |o| o.process_event(&ev)),
                Msg::Snapshot(s) => self.each("snapshot", |o| o.snapshot(&s)),
                Msg::End { meta, exit_code, duration_ms } => {
                    self.flush_chunk();
                    self.each("session_end", |o| o.session_end(&meta, exit_code, duration_ms));
                    return;
                }
            }
        }
        // The recorder went away without an end (an error path): still hand over what was compressed.
        self.flush_chunk();
    }

    fn each(&mut self, what: &str, mut f: impl FnMut(&mut dyn Output) -> anyhow::Result<()>) {
        for s in &mut self.slots {
            s.call(what, &mut f);
        }
    }

    fn flush_chunk(&mut self) {
        self.chunk_started = None;
        if self.chunk.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        let seq = self.seq;
        self.seq += 1;
        // The last output takes the buffer itself; the next chunk gets a fresh one (the allocator hands back
        // the one the spool has just freed).
        let Some((last, rest)) = self.slots.split_last_mut() else { return };
        for s in rest {
            s.call("cast_chunk", |o| o.cast_chunk(seq, &chunk));
        }
        last.call("cast_chunk", |o| o.cast_chunk_vec(seq, chunk));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};

    /// Chunks an output received: `(seq, lines)`.
    pub type Chunks = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    /// Records every call; `fail` makes every call error; `gate`, while closed, blocks chunk hand-overs.
    #[derive(Clone, Default)]
    pub struct Probe {
        pub calls: Arc<Mutex<Vec<String>>>,
        pub chunks: Chunks,
        pub fail: bool,
        pub gate: Option<Arc<(Mutex<bool>, Condvar)>>,
        pub panic_on_chunk: bool,
    }

    impl Probe {
        fn result(&self) -> anyhow::Result<()> {
            if self.fail {
                anyhow::bail!("down")
            } else {
                Ok(())
            }
        }
    }

    impl Output for Probe {
        fn session_start(&mut self, m: &SessionMeta) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("start {}", m.session_id));
            self.result()
        }
        fn cast_chunk(&mut self, seq: u64, lines: &[u8]) -> anyhow::Result<()> {
            if let Some(g) = &self.gate {
                let (open, cv) = &**g;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
            }
            assert!(!self.panic_on_chunk, "probe told to panic");
            self.chunks.lock().unwrap().push((seq, lines.to_vec()));
            self.calls.lock().unwrap().push(format!("chunk {seq}"));
            self.result()
        }
        fn process_event(&mut self, e: &ProcessEvent) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("event {}", e.command));
            self.result()
        }
        fn snapshot(&mut self, s: &Snapshot) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("snapshot {}", s.lines.join("|")));
            self.result()
        }
        fn session_end(&mut self, _m: &SessionMeta, code: i32, _d: u64) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push(format!("end {code}"));
            self.result()
        }
    }

    fn event(cmd: &str) -> ProcessEvent {
        ProcessEvent {
            session_id: "s".into(),
            command: cmd.into(),
            executable: cmd.into(),
            cwd: "/".into(),
            user: "u".into(),
            hostname: "h".into(),
            exit_code: Some(0),
            started_at_ms: 0,
            duration_ms: 0,
            tags: Vec::new(),
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
        f.lines(&mut b"[0.1, \"o\", \"a\"]\n".to_vec(), t0);
        f.lines(&mut b"[0.2, \"o\", \"b\"]\n".to_vec(), t0);
        // Lines an interval after the chunk began close it first.
        f.lines(&mut vec![b'x'; CHUNK_BYTES], t0 + CHUNK_INTERVAL);
        f.snapshot(Snapshot { session_id: "s".into(), timestamp_ms: 0, lines: vec!["l".into()] });
        f.end(&SessionMeta::default(), 3, 10);
        let chunks = good.chunks.lock().unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], (0, b"[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]\n".to_vec()));
        assert_eq!(chunks[1], (1, vec![b'x'; CHUNK_BYTES]));
        // logs is not among the actions: no snapshot.
        assert_eq!(*good.calls.lock().unwrap(), vec!["start s", "chunk 0", "chunk 1", "end 3"]);
        assert_eq!(bad.chunks.lock().unwrap().len(), 2, "the failing output was still called");
    }

    #[test]
    fn an_old_chunk_is_handed_over_by_the_writer_on_its_own() {
        let good = Probe::default();
        let mut f = Fanout::new(vec![Box::new(good.clone())], &ActionSet::new([Action::Record]));
        f.lines(&mut b"[0.1, \"o\", \"a\"]\n".to_vec(), Instant::now());
        let until = Instant::now() + CHUNK_INTERVAL * 5;
        while good.chunks.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(good.chunks.lock().unwrap().len(), 1, "the chunk interval passed without new lines");
        f.end(&SessionMeta::default(), 0, 1);
        assert_eq!(*good.calls.lock().unwrap(), vec!["chunk 0", "end 0"]);
    }

    #[test]
    fn a_slow_output_holds_the_recorder_back_and_nothing_is_lost_or_reordered() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let slow = Probe { gate: Some(gate.clone()), ..Probe::default() };
        let actions = ActionSet::new([Action::Record, Action::ProcessInfo]);
        let queue = 2;
        let mut f = Fanout::with_queue(vec![Box::new(slow.clone())], &actions, queue);
        let sent = Arc::new(Mutex::new(0usize));
        let sent2 = sent.clone();
        let recorder = std::thread::spawn(move || {
            let t0 = Instant::now();
            for i in 0..40u64 {
                // Each batch fills a chunk on its own: the writer blocks in cast_chunk on the first.
                let mut lines = vec![b'a' + (i % 26) as u8; CHUNK_BYTES];
                f.lines(&mut lines, t0);
                f.process_event(&event(&format!("cmd{i}")));
                *sent2.lock().unwrap() += 1;
            }
            f.end(&SessionMeta::default(), 0, 1);
        });
        std::thread::sleep(Duration::from_millis(300));
        let stuck_at = *sent.lock().unwrap();
        // One batch in the writer, `queue` messages waiting, one send blocked: the recorder is held back.
        assert!(stuck_at <= queue + 1, "the recorder ran ahead of a blocked writer: {stuck_at}");
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        recorder.join().unwrap();
        let chunks = slow.chunks.lock().unwrap();
        assert_eq!(chunks.len(), 40);
        for (i, (seq, lines)) in chunks.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(lines.len(), CHUNK_BYTES);
            assert!(lines.iter().all(|&b| b == b'a' + (i % 26) as u8), "chunk {i} holds its own lines");
        }
        let calls = slow.calls.lock().unwrap();
        let expected: Vec<String> = (0..40)
            .flat_map(|i| [format!("chunk {i}"), format!("event cmd{i}")])
            .chain(["end 0".into()])
            .collect();
        assert_eq!(*calls, expected, "records reach the output in the order they were made");
    }

    #[test]
    fn dropping_without_end_still_hands_over_the_last_chunk() {
        let good = Probe::default();
        let mut f = Fanout::new(vec![Box::new(good.clone())], &ActionSet::new([Action::Record]));
        f.lines(&mut b"[0.1, \"o\", \"tail\"]\n".to_vec(), Instant::now());
        drop(f);
        assert_eq!(*good.chunks.lock().unwrap(), vec![(0, b"[0.1, \"o\", \"tail\"]\n".to_vec())]);
    }

    #[test]
    fn a_panicking_output_does_not_stop_the_recording() {
        let bad = Probe { panic_on_chunk: true, ..Probe::default() };
        let mut f = Fanout::new(vec![Box::new(bad.clone())], &ActionSet::new([Action::Record]));
        let t0 = Instant::now();
        for _ in 0..(QUEUE_RECORDS + 4) {
            f.lines(&mut vec![b'x'; CHUNK_BYTES], t0);
        }
        f.end(&SessionMeta::default(), 0, 1);
        assert!(bad.chunks.lock().unwrap().is_empty());
    }

    #[test]
    fn line_buffers_are_recycled() {
        let good = Probe::default();
        let mut f = Fanout::new(vec![Box::new(good.clone())], &ActionSet::new([Action::Record]));
        let mut lines = Vec::with_capacity(4096);
        lines.extend_from_slice(b"[0.1, \"o\", \"a\"]\n");
        f.lines(&mut lines, Instant::now());
        assert!(lines.is_empty());
        // The writer returns the buffer it took; a later hand-over gets it back.
        let until = Instant::now() + Duration::from_secs(5);
        let mut got = false;
        while Instant::now() < until && !got {
            lines.extend_from_slice(b"[0.2, \"o\", \"b\"]\n");
            f.lines(&mut lines, Instant::now());
            got = lines.capacity() >= 4096;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(got, "a recycled buffer came back");
        f.end(&SessionMeta::default(), 0, 1);
    }
}
