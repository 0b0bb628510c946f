//! The background sender of a running session: delivers while the recorder writes, then `drain(deadline)`.

use super::flush::{pass, Backoff, Deliver, FlushOptions, Outcome, Run};
use super::{Record, RecordId, Spool, SpoolError};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning for the background sender.
#[derive(Debug, Clone, Copy)]
pub struct SenderOptions {
    pub backoff: Backoff,
    /// Look at the spool at least this often even when nothing is due (records of other processes).
    pub idle_rescan: Duration,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions { backoff: Backoff::default(), idle_rescan: Duration::from_secs(30) }
    }
}

#[derive(Debug, Default)]
struct St {
    /// Records this process enqueued that are neither delivered nor permanently refused.
    own: HashSet<RecordId>,
    own_permanent: usize,
    delivered: u64,
    kicked: bool,
    stop: bool,
    last_error: Option<String>,
}

struct Shared {
    spool: Arc<Spool>,
    deliver: Arc<dyn Deliver>,
    opts: SenderOptions,
    st: Mutex<St>,
    cv: Condvar,
}

/// A thread that delivers spooled records (this process's first, then any backlog) as they are enqueued.
/// The recorder's thread only ever writes to the spool; the network is this thread's business.
pub struct Sender {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What [`Sender::drain`] left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Records delivered by this sender (any process's).
    pub delivered: u64,
    /// This process's records still spooled (retryable: a later run or `ddcoterm spool flush` sends them).
    pub pending: usize,
    /// This process's records refused permanently (kept with their error).
    pub permanent: usize,
    pub last_error: Option<String>,
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pending == 0 && self.permanent == 0 {
            return write!(f, "all records delivered");
        }
        let mut parts = Vec::new();
        if self.pending > 0 {
            parts.push(format!("{} record(s) not sent yet", self.pending));
        }
        if self.permanent > 0 {
            parts.push(format!("{} record(s) refused", self.permanent));
        }
        write!(
            f,
            "{}; kept in the spool, `ddcoterm spool status` shows why and `ddcoterm spool flush` resends",
            parts.join(", ")
        )?;
        if let Some(e) = &self.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

impl Sender {
    /// Starts the sender thread.
    pub fn spawn(spool: Arc<Spool>, deliver: Arc<dyn Deliver>, opts: SenderOptions) -> Sender {
        let shared =
            Arc::new(Shared { spool, deliver, opts, st: Mutex::new(St::default()), cv: Condvar::new() });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ddcoterm-sender".into())
            .spawn(move || run(&s2))
            .map_err(|e| tracing::warn!("cannot start the spool sender thread: {e}; records stay spooled"))
            .ok();
        Sender { shared, thread: Mutex::new(thread) }
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.shared.spool
    }

    /// Writes `rec` to the spool (durably, before returning) and wakes the sender. Never touches the network.
    pub fn enqueue(&self, rec: Record) -> Result<RecordId, SpoolError> {
        self.enqueue_with(rec, None)
    }

    /// [`Sender::enqueue`] through [`Spool::enqueue_journaled`].
    pub fn enqueue_journaled(
        &self,
        rec: Record,
        journal: &mut dyn FnMut(&str) -> std::io::Result<()>,
    ) -> Result<RecordId, SpoolError> {
        self.enqueue_with(rec, Some(journal))
    }

    fn enqueue_with(
        &self,
        rec: Record,
        journal: Option<&mut dyn FnMut(&str) -> std::io::Result<()>>,
    ) -> Result<RecordId, SpoolError> {
        // Holding the state lock while writing means the sender cannot report this record before it is tracked.
        let mut st =
            self.shared.st.lock().map_err(|_| SpoolError::Invalid("sender state poisoned".into()))?;
        let (id, dropped) = match journal {
            Some(j) => self.shared.spool.enqueue_journaled(rec, j)?,
            None => self.shared.spool.enqueue_noting_drops(rec)?,
        };
        for d in dropped {
            st.own.remove(&d);
        }
        st.own.insert(id.clone());
        st.kicked = true;
        drop(st);
        self.shared.cv.notify_all();
        Ok(id)
    }

    /// Waits until every record this process enqueued is delivered or refused, or `deadline` passes, then
    /// stops the thread (an in-flight request is abandoned, its record stays spooled). Returns at `deadline` at
    /// the latest, whatever the network does.
    pub fn drain(&self, deadline: Instant) -> DrainReport {
        self.drain_while(deadline, &|| true)
    }

    /// [`Sender::drain`] that also stops as soon as `keep_waiting` says false (checked after every delivery
    /// outcome and at least every 50 ms): a destination known to refuse connections is not waited for.
    pub fn drain_while(&self, deadline: Instant, keep_waiting: &dyn Fn() -> bool) -> DrainReport {
        let mut st = match self.shared.st.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        st.kicked = true;
        self.shared.cv.notify_all();
        while !st.own.is_empty() && !st.stop && keep_waiting() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            st = match self.shared.cv.wait_timeout(st, slice) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        st.stop = true;
        let report = DrainReport {
            delivered: st.delivered,
            pending: st.own.len(),
            permanent: st.own_permanent,
            last_error: st.last_error.clone(),
        };
        drop(st);
        self.shared.cv.notify_all();
        let finished = self.thread.lock().ok().and_then(|mut t| t.take().filter(|h| h.is_finished()));
        if let Some(h) = finished {
            let _ = h.join();
        }
        report
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.st.lock() {
            st.stop = true;
        }
        self.shared.cv.notify_all();
    }
}

fn run(sh: &Shared) {
    let run_state = Run::default();
    let opts = FlushOptions {
        workers: 1,
        backoff: sh.opts.backoff,
        deadline: None,
        retry_permanent: false,
        ignore_schedule: false,
        max_attempts: None,
        max_wait: Duration::from_secs(24 * 3600),
    };
    loop {
        match sh.st.lock() {
            Ok(mut st) if !st.stop => st.kicked = false,
            _ => return,
        }
        let prefer = |id: &RecordId| sh.st.lock().map(|s| s.own.contains(id)).unwrap_or(false);
        let on = |e: &super::Entry, o: &Outcome| {
            if let Ok(mut st) = sh.st.lock() {
                match o {
                    Outcome::Delivered => {
                        st.delivered += 1;
                        st.own.remove(&e.id);
                    }
                    Outcome::Failed(f) => {
                        st.last_error = Some(f.message.clone());
                        if f.permanent && st.own.remove(&e.id) {
                            st.own_permanent += 1;
                        }
                    }
                }
            }
            sh.cv.notify_all();
        };
        let should_yield = || sh.st.lock().map(|s| s.kicked).unwrap_or(true);
        let should_stop = || sh.st.lock().map(|s| s.stop).unwrap_or(true);
        let wake = match pass(
            &sh.spool,
            sh.deliver.as_ref(),
            &opts,
            &run_state,
            &prefer,
            &on,
            &should_yield,
            &should_stop,
        ) {
            Ok(r) => r.next_wake,
            Err(e) => {
                tracing::warn!("spool sender: {e}");
                if let Ok(mut st) = sh.st.lock() {
                    st.last_error = Some(e.to_string());
                }
                Some(Instant::now() + Duration::from_secs(1))
            }
        };
        let Ok(st) = sh.st.lock() else { return };
        if st.stop {
            return;
        }
        if st.kicked {
            continue;
        }
        let timeout = wake
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(sh.opts.idle_rescan)
            .min(sh.opts.idle_rescan);
        let _ = sh.cv.wait_timeout_while(st, timeout, |s| !s.kicked && !s.stop);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Class, Failure, Stored};
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Toggle {
        up: AtomicBool,
        got: Mutex<Vec<Vec<u8>>>,
    }
    impl Deliver for Toggle {
        fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
            if !self.up.load(Ordering::SeqCst) {
                return Err(Failure::retry("connection refused"));
            }
            self.got.lock().unwrap().push(rec.body.clone());
            Ok(())
        }
    }

    fn opts() -> SenderOptions {
        SenderOptions {
            backoff: Backoff { base: Duration::from_millis(5), max: Duration::from_millis(50) },
            idle_rescan: Duration::from_millis(200),
        }
    }

    #[test]
    fn delivers_in_the_background_and_drains_quickly() {
        let t = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(t.path(), 0).unwrap());
        let d = Arc::new(Toggle { up: AtomicBool::new(true), got: Mutex::new(Vec::new()) });
        let s = Sender::spawn(spool.clone(), d.clone(), opts());
        for i in 0..50 {
            s.enqueue(Record::new("k", Class::Bulk, vec![i]).in_group("s")).unwrap();
        }
        let rep = s.drain(Instant::now() + Duration::from_secs(10));
        assert_eq!(rep.pending, 0, "{rep}");
        assert_eq!(*d.got.lock().unwrap(), (0..50u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert!(spool.entries().unwrap().is_empty());
    }

    #[test]
    fn drain_is_bounded_by_its_deadline_when_the_receiver_is_down() {
        let t = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(t.path(), 0).unwrap());
        let d = Arc::new(Toggle { up: AtomicBool::new(false), got: Mutex::new(Vec::new()) });
        let s = Sender::spawn(spool.clone(), d, opts());
        s.enqueue(Record::new("k", Class::Normal, b"x".to_vec())).unwrap();
        let start = Instant::now();
        let rep = s.drain(start + Duration::from_millis(300));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(800), "{took:?}");
        assert_eq!(rep.pending, 1);
        assert!(rep.to_string().contains("connection refused"), "{rep}");
        assert_eq!(spool.entries().unwrap().len(), 1, "kept");
    }
}
