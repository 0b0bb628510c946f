//! The hand-off between the threads that read the child's output and the loop that records it: a bounded
//! byte queue that wakes the loop only when it has to (first bytes while it sleeps, a full merge batch, a
//! marker), so bulk output costs one wake-up per batch rather than one per read.

use super::markers::Marker;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Readers wait when this much is queued (bounds memory whatever the output volume). Two merge batches: the
/// readers keep relaying while the loop records the previous batch.
pub const QUEUE_CAP: usize = 128 * 1024;

#[derive(Default)]
struct State {
    data: Vec<u8>,
    first_at: Option<Instant>,
    markers: Vec<(Marker, Instant)>,
    /// The loop sleeps without a timer for output: the next bytes must wake it.
    wake_on_data: bool,
    /// Readers blocked on a full queue (the loop wakes them only then: a futex call per batch otherwise).
    waiting: usize,
}

/// What the loop takes in one go.
pub struct Batch {
    pub first_at: Instant,
    pub markers: Vec<(Marker, Instant)>,
}

pub struct OutQueue {
    state: Mutex<State>,
    space: Condvar,
    threshold: usize,
}

impl OutQueue {
    /// `batch_bytes`: queued bytes that wake the loop at once (the merge size, capped below the queue size).
    pub fn new(batch_bytes: usize) -> OutQueue {
        OutQueue {
            state: Mutex::new(State { wake_on_data: true, ..State::default() }),
            space: Condvar::new(),
            threshold: batch_bytes.clamp(1, QUEUE_CAP / 2),
        }
    }

    /// Queues bytes read at `at`; returns true when the loop must be woken.
    pub fn push(&self, data: &[u8], markers: Vec<Marker>, at: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.data.len() >= QUEUE_CAP {
            s.waiting += 1;
            s = self.space.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiting -= 1;
        }
        let before = s.data.len();
        if before + data.len() > s.data.capacity() {
            // Grow once to the bound rather than by doubling (the buffers are swapped around, never freed).
            s.data.reserve_exact((QUEUE_CAP + data.len()).max(before + data.len()) - before);
        }
        s.data.extend_from_slice(data);
        s.first_at.get_or_insert(at);
        let has_markers = !markers.is_empty();
        s.markers.extend(markers.into_iter().map(|m| (m, at)));
        let wake = (s.wake_on_data && !s.data.is_empty())
            || (before < self.threshold && s.data.len() >= self.threshold)
            || has_markers;
        if wake {
            s.wake_on_data = false;
        }
        wake
    }

    /// Swaps the queued bytes into `into` (emptied first); `None` when nothing is queued.
    pub fn take(&self, into: &mut Vec<u8>) -> Option<Batch> {
        into.clear();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.data.is_empty() && s.markers.is_empty() {
            return None;
        }
        std::mem::swap(&mut s.data, into);
        let batch = Batch {
            first_at: s.first_at.take().unwrap_or_else(Instant::now),
            markers: std::mem::take(&mut s.markers),
        };
        let waiting = s.waiting > 0;
        drop(s);
        if waiting {
            self.space.notify_all();
        }
        Some(batch)
    }

    /// The loop says whether it will wake on its own (a merge timer runs) or needs the next bytes to wake it.
    pub fn set_wake_on_data(&self, wake: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.wake_on_data = wake;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_per_batch_not_per_read() {
        let q = OutQueue::new(10);
        let t = Instant::now();
        assert!(q.push(b"abc", Vec::new(), t), "first bytes while the loop sleeps");
        assert!(!q.push(b"def", Vec::new(), t), "the loop is already coming");
        assert!(q.push(b"ghijk", Vec::new(), t), "a full batch");
        let mut buf = Vec::new();
        let b = q.take(&mut buf).unwrap();
        assert_eq!(buf, b"abcdefghijk");
        assert_eq!(b.first_at, t);
        assert!(q.take(&mut buf).is_none());
        assert!(!q.push(b"x", Vec::new(), t), "the loop has a timer running");
        q.set_wake_on_data(true);
        assert!(q.push(b"y", Vec::new(), t));
        assert!(q.push(b"", vec![Marker::CommandEnd { status: 0 }], t), "markers always wake");
    }

    #[test]
    fn a_full_queue_holds_the_reader_until_the_loop_takes() {
        let q = std::sync::Arc::new(OutQueue::new(1024));
        let t = Instant::now();
        q.push(&vec![b'a'; QUEUE_CAP], Vec::new(), t);
        let q2 = q.clone();
        let reader = std::thread::spawn(move || q2.push(b"b", Vec::new(), Instant::now()));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!reader.is_finished(), "the reader waits while the queue is full");
        let mut buf = Vec::new();
        q.take(&mut buf).unwrap();
        assert_eq!(buf.len(), QUEUE_CAP);
        reader.join().unwrap();
        q.take(&mut buf).unwrap();
        assert_eq!(buf, b"b", "nothing lost, in order");
    }
}
