//! Delivery passes over the spool: per-group FIFO lanes, locks, backoff with jitter, and `flush` to empty it.

use super::{now_ms, Entry, RecordId, Spool, SpoolError, State, Stored};
use rand::Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sends one stored record somewhere. Implemented by the glue in `cmd/` (Datadog), and by tests.
pub trait Deliver: Send + Sync {
    fn deliver(&self, rec: &Stored) -> Result<(), Failure>;
}

/// Why a delivery failed and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The receiver will refuse it again: keep it with the error; only an explicit flush retries it.
    pub permanent: bool,
    /// The receiver's hint (rate-limit reset); the backoff never waits less than this.
    pub retry_after: Option<Duration>,
    pub status: Option<u16>,
    pub message: String,
}

impl Failure {
    pub fn retry(message: impl Into<String>) -> Failure {
        Failure { permanent: false, retry_after: None, status: None, message: message.into() }
    }
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure { permanent: true, retry_after: None, status: None, message: message.into() }
    }
}

/// Exponential backoff with jitter: attempt n waits a random time in `[d/2, d]`, `d = base * 2^(n-1)` capped at
/// `max`, so that many clients retrying after an outage do not arrive together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(500), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let d = self.base.saturating_mul(1u32 << exp.min(20)).min(self.max);
        let lo = d / 2;
        let span = (d - lo).as_micros() as u64;
        lo + Duration::from_micros(if span == 0 { 0 } else { rand::rng().random_range(0..=span) })
    }
}

/// What happened to one record in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Failed(Failure),
}

/// How a flush behaves.
#[derive(Debug, Clone)]
pub struct FlushOptions {
    /// Parallel senders (each delivers whole lanes).
    pub workers: usize,
    pub backoff: Backoff,
    /// Start no delivery after this instant.
    pub deadline: Option<Instant>,
    /// Try records marked permanent once more in this run (the key or payload limit may have been fixed).
    pub retry_permanent: bool,
    /// Ignore stored next-attempt times for the first attempt of this run (`spool flush` means now).
    pub ignore_schedule: bool,
    /// Give up on a record for this run after this many failed attempts (it stays spooled).
    pub max_attempts: Option<u32>,
    /// Give up on a record for this run rather than wait longer than this for its next attempt.
    pub max_wait: Duration,
}

impl Default for FlushOptions {
    /// What `ddcoterm spool flush` does.
    fn default() -> Self {
        FlushOptions {
            workers: 4,
            backoff: Backoff::default(),
            deadline: None,
            retry_permanent: true,
            ignore_schedule: true,
            max_attempts: Some(4),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The result of a flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: u64,
    /// Failed attempts (each record may fail several times before it is delivered).
    pub failed_attempts: u64,
    /// Records refused permanently in this run (moved to the dead letters) or still spooled with a
    /// permanent error written by an earlier version: (id, the receiver's message).
    pub permanent: Vec<(RecordId, String)>,
    /// Records still spooled that may succeed later: (id, last error or "not attempted").
    pub pending: Vec<(RecordId, String)>,
}

/// Per-run memory: attempts made by this run and permanent records already retried once.
#[derive(Debug, Default)]
pub(crate) struct Run {
    attempts: Mutex<HashMap<RecordId, u32>>,
    retried_permanent: Mutex<HashSet<RecordId>>,
}

pub(crate) struct PassResult {
    pub attempted: u64,
    pub next_wake: Option<Instant>,
}

enum Ready {
    Now,
    At(Instant),
    No,
}

fn readiness(opts: &FlushOptions, run: &Run, id: &RecordId, state: Option<&State>) -> Ready {
    let Some(st) = state else { return Ready::Now };
    let tried = run.attempts.lock().map(|a| a.get(id).copied().unwrap_or(0)).unwrap_or(0);
    if st.permanent {
        let retried = run.retried_permanent.lock().map(|r| r.contains(id)).unwrap_or(true);
        return if opts.retry_permanent && !retried { Ready::Now } else { Ready::No };
    }
    if opts.max_attempts.is_some_and(|m| tried >= m) {
        return Ready::No;
    }
    if opts.ignore_schedule && tried == 0 {
        return Ready::Now;
    }
    let now = now_ms();
    if st.next_attempt_ms <= now {
        return Ready::Now;
    }
    let wait = Duration::from_millis(st.next_attempt_ms - now);
    if wait > opts.max_wait {
        return Ready::No;
    }
    Ready::At(Instant::now() + wait)
}

/// One pass: lanes (one per group, one per ungrouped record), preferred lanes first, each delivered in order
/// until a record fails or is not due yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass(
    spool: &Spool,
    deliver: &dyn Deliver,
    opts: &FlushOptions,
    run: &Run,
    prefer: &(dyn Fn(&RecordId) -> bool + Sync),
    on: &(dyn Fn(&Entry, &Outcome) + Sync),
    should_yield: &(dyn Fn() -> bool + Sync),
    should_stop: &(dyn Fn() -> bool + Sync),
) -> Result<PassResult, SpoolError> {
    let mut lanes: Vec<Vec<Entry>> = Vec::new();
    let mut by_group: HashMap<String, usize> = HashMap::new();
    for e in spool.entries()? {
        match &e.group {
            Some(g) => match by_group.get(g) {
                Some(&i) => lanes[i].push(e),
                None => {
                    by_group.insert(g.clone(), lanes.len());
                    lanes.push(vec![e]);
                }
            },
            None => lanes.push(vec![e]),
        }
    }
    // Stable: preferred lanes first, otherwise oldest head first (entries are sorted).
    lanes.sort_by_key(|l| !l.iter().any(|e| prefer(&e.id)));
    let queue = Mutex::new(VecDeque::from(lanes));
    let attempted = Mutex::new(0u64);
    let wake: Mutex<Option<Instant>> = Mutex::new(None);
    let note_wake = |t: Instant| {
        if let Ok(mut w) = wake.lock() {
            *w = Some(w.map_or(t, |x| x.min(t)));
        }
    };
    let past_deadline = || opts.deadline.is_some_and(|d| Instant::now() >= d);
    let worker = || -> Result<(), SpoolError> {
        loop {
            if should_stop() || should_yield() || past_deadline() {
                return Ok(());
            }
            let Some(lane) = queue.lock().ok().and_then(|mut q| q.pop_front()) else { return Ok(()) };
            'lane: for e in lane {
                if should_stop() || past_deadline() {
                    return Ok(());
                }
                match readiness(opts, run, &e.id, e.state.as_ref()) {
                    Ready::Now => {}
                    Ready::At(t) => {
                        note_wake(t);
                        break 'lane;
                    }
                    Ready::No => break 'lane,
                }
                let Some(mut claim) = spool.claim(&e)? else {
                    if e.path.exists() {
                        // Another sender holds it: the lane is busy; look again soon.
                        note_wake(Instant::now() + Duration::from_millis(100));
                        break 'lane;
                    }
                    continue 'lane; // delivered meanwhile by someone else
                };
                // The state may have changed since the scan (another process failed it meanwhile).
                let state = spool.read_state(&e.id);
                match readiness(opts, run, &e.id, state.as_ref()) {
                    Ready::Now => {}
                    Ready::At(t) => {
                        note_wake(t);
                        break 'lane;
                    }
                    Ready::No => break 'lane,
                }
                if state.as_ref().is_some_and(|s| s.permanent) {
                    if let Ok(mut r) = run.retried_permanent.lock() {
                        r.insert(e.id.clone());
                    }
                }
                let stored = match claim.read() {
                    Ok(s) => s,
                    Err(SpoolError::Corrupt { msg, .. }) => {
                        on(
                            &e,
                            &Outcome::Failed(Failure::permanent(format!(
                                "corrupt record moved aside: {msg}"
                            ))),
                        );
                        continue 'lane;
                    }
                    Err(other) => return Err(other),
                };
                if let Ok(mut a) = attempted.lock() {
                    *a += 1;
                }
                match deliver.deliver(&stored) {
                    Ok(()) => {
                        claim.delete()?;
                        on(&e, &Outcome::Delivered);
                    }
                    Err(f) => {
                        let tried = run
                            .attempts
                            .lock()
                            .map(|mut a| {
                                let n = a.entry(e.id.clone()).or_insert(0);
                                *n += 1;
                                *n
                            })
                            .unwrap_or(1);
                        let prev = state.unwrap_or_default();
                        let delay = opts
                            .backoff
                            .delay(tried.max(prev.attempts + 1))
                            .max(f.retry_after.unwrap_or_default());
                        let st = State {
                            attempts: prev.attempts + 1,
                            last_error: f.message.clone(),
                            status: f.status,
                            permanent: f.permanent,
                            next_attempt_ms: now_ms() + delay.as_millis() as u64,
                            updated_ms: now_ms(),
                        };
                        if f.permanent {
                            // A dead letter: out of the lane, so the records after it go on.
                            claim.bury(&st)?;
                            on(&e, &Outcome::Failed(f));
                            continue 'lane;
                        }
                        claim.set_state(&st)?;
                        drop(claim);
                        if !f.permanent
                            && opts.max_attempts.is_none_or(|m| tried < m)
                            && delay <= opts.max_wait
                        {
                            note_wake(Instant::now() + delay);
                        }
                        on(&e, &Outcome::Failed(f));
                        break 'lane;
                    }
                }
            }
        }
    };
    if opts.workers <= 1 {
        worker()?;
    } else {
        let results: Vec<Result<(), SpoolError>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..opts.workers).map(|_| s.spawn(worker)).collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Err(SpoolError::Invalid("sender thread panicked".into())))
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    let attempted = attempted.into_inner().unwrap_or(0);
    let next_wake = wake.into_inner().unwrap_or(None);
    Ok(PassResult { attempted, next_wake })
}

/// Delivers everything it can now: loops over passes, sleeping until the next retry is due, until the spool
/// is empty, only records it must give up on are left, or the deadline passes. `on` sees every outcome
/// (progress bars).
pub fn flush(
    spool: &Spool,
    deliver: &dyn Deliver,
    opts: &FlushOptions,
    on: &(dyn Fn(&Entry, &Outcome) + Sync),
) -> Result<FlushReport, SpoolError> {
    let run = Run::default();
    let delivered = std::sync::atomic::AtomicU64::new(0);
    let failed = std::sync::atomic::AtomicU64::new(0);
    let dead: Mutex<Vec<(RecordId, String)>> = Mutex::new(Vec::new());
    let count = |e: &Entry, o: &Outcome| {
        match o {
            Outcome::Delivered => delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Outcome::Failed(f) => {
                if f.permanent {
                    if let Ok(mut d) = dead.lock() {
                        d.push((e.id.clone(), f.message.clone()));
                    }
                }
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            }
        };
        on(e, o);
    };
    loop {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let r = pass(spool, deliver, opts, &run, &|_| false, &count, &|| false, &|| false)?;
        if r.attempted > 0 {
            continue;
        }
        match r.next_wake {
            None => break,
            Some(t) => {
                let until = opts.deadline.map_or(t, |d| d.min(t));
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
        }
    }
    let mut report = FlushReport {
        delivered: delivered.into_inner(),
        failed_attempts: failed.into_inner(),
        permanent: dead.into_inner().unwrap_or_default(),
        ..Default::default()
    };
    for e in spool.entries()? {
        match e.state {
            Some(st) if st.permanent => report.permanent.push((e.id, st.last_error)),
            Some(st) => report.pending.push((e.id, st.last_error)),
            None => report.pending.push((e.id, "not attempted yet".into())),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::{Class, Record};
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    type FailFn = Box<dyn Fn(&Stored, u64) -> Option<Failure> + Send + Sync>;

    /// Records bodies it accepted; fails according to a script keyed by body.
    struct Script {
        accepted: Mutex<Vec<Vec<u8>>>,
        fail: FailFn,
        calls: AtomicU64,
    }
    impl Deliver for Script {
        fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(f) = (self.fail)(rec, n) {
                return Err(f);
            }
            self.accepted.lock().unwrap().push(rec.body.clone());
            Ok(())
        }
    }
    fn script(f: impl Fn(&Stored, u64) -> Option<Failure> + Send + Sync + 'static) -> Script {
        Script { accepted: Mutex::new(Vec::new()), fail: Box::new(f), calls: AtomicU64::new(0) }
    }
    fn fast() -> FlushOptions {
        FlushOptions {
            backoff: Backoff { base: Duration::from_millis(1), max: Duration::from_millis(5) },
            max_attempts: Some(50),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for _ in 0..50 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            assert!(b.delay(40) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn group_order_is_kept_even_with_failures_and_many_workers() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path(), 0).unwrap();
        for g in ["a", "b", "c"] {
            for i in 0..20 {
                s.enqueue(Record::new("k", Class::Normal, format!("{g}{i:02}").into_bytes()).in_group(g))
                    .unwrap();
            }
        }
        let d = script(|_, n| (n % 3 == 0).then(|| Failure::retry("503")));
        let rep = flush(&s, &d, &fast(), &|_, _| {}).unwrap();
        assert_eq!(rep.delivered, 60);
        assert!(rep.pending.is_empty() && rep.permanent.is_empty());
        let got: Vec<String> =
            d.accepted.lock().unwrap().iter().map(|b| String::from_utf8(b.clone()).unwrap()).collect();
        for g in ["a", "b", "c"] {
            let seq: Vec<&String> = got.iter().filter(|x| x.starts_with(g)).collect();
            let mut sorted = seq.clone();
            sorted.sort();
            assert_eq!(seq, sorted, "group {g} out of order");
            assert_eq!(seq.len(), 20);
        }
    }

    #[test]
    fn permanent_failures_become_dead_letters_and_never_block_their_group() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path(), 0).unwrap();
        s.enqueue(Record::new("k", Class::Normal, b"create".to_vec()).in_group("g")).unwrap();
        s.enqueue(Record::new("k", Class::Bulk, b"chunk".to_vec()).in_group("g")).unwrap();
        s.enqueue(Record::new("k", Class::Normal, b"other".to_vec())).unwrap();
        let d = script(|r, _| (r.body == b"create").then(|| Failure::permanent("HTTP 422: bad create")));
        let rep = flush(&s, &d, &fast(), &|_, _| {}).unwrap();
        assert_eq!(rep.delivered, 2, "the chunk after the refused create still goes");
        assert_eq!(rep.permanent.len(), 1);
        assert_eq!(rep.permanent[0].1, "HTTP 422: bad create");
        assert!(rep.pending.is_empty());
        let dead = s.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].state.last_error, "HTTP 422: bad create");
        assert!(dead[0].state.permanent);
        // Never retried by itself: a later flush does not see it.
        let calls = d.calls.load(Ordering::SeqCst);
        flush(&s, &d, &fast(), &|_, _| {}).unwrap();
        assert_eq!(d.calls.load(Ordering::SeqCst), calls);
        // Put back on request (the cause fixed): delivered.
        assert_eq!(s.requeue_dead().unwrap(), 1);
        let ok = script(|_, _| None);
        assert_eq!(flush(&s, &ok, &fast(), &|_, _| {}).unwrap().delivered, 1);
        assert_eq!(*ok.accepted.lock().unwrap(), vec![b"create".to_vec()]);
    }

    #[test]
    fn deadline_leaves_the_rest_spooled() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path(), 0).unwrap();
        s.enqueue(Record::new("k", Class::Normal, b"x".to_vec())).unwrap();
        let d = script(|_, _| Some(Failure::retry("connection refused")));
        let opts = FlushOptions {
            deadline: Some(Instant::now() + Duration::from_millis(200)),
            max_attempts: None,
            ..fast()
        };
        let start = Instant::now();
        let rep = flush(&s, &d, &opts, &|_, _| {}).unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(rep.pending.len(), 1);
        assert_eq!(rep.pending[0].1, "connection refused");
    }

    #[test]
    fn retry_after_hint_is_honoured() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path(), 0).unwrap();
        s.enqueue(Record::new("k", Class::Normal, b"x".to_vec())).unwrap();
        let d = script(|_, n| {
            (n == 0)
                .then(|| Failure { retry_after: Some(Duration::from_millis(300)), ..Failure::retry("429") })
        });
        let start = Instant::now();
        let rep = flush(&s, &d, &fast(), &|_, _| {}).unwrap();
        assert_eq!(rep.delivered, 1);
        assert!(start.elapsed() >= Duration::from_millis(290), "{:?}", start.elapsed());
    }

    #[test]
    fn two_concurrent_flushers_never_deliver_a_record_twice() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path(), 0).unwrap();
        for i in 0..300 {
            let r = Record::new("k", Class::Normal, format!("{i}").into_bytes());
            s.enqueue(if i % 3 == 0 { r.in_group(format!("g{}", i % 7)) } else { r }).unwrap();
        }
        let d = script(|_, n| (n % 5 == 0).then(|| Failure::retry("503")));
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    let s2 = Spool::open(t.path(), 0).unwrap();
                    flush(&s2, &d, &fast(), &|_, _| {}).unwrap();
                });
            }
        });
        let mut got = d.accepted.lock().unwrap().clone();
        got.sort();
        let n = got.len();
        got.dedup();
        assert_eq!(n, got.len(), "duplicates delivered");
        assert_eq!(n, 300);
    }
}
