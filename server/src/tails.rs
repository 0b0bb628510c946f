//! The chunk each session last committed in this process, so that the next chunk in order is checked
//! without reading the database: that read (session row and neighbouring chunks, a round trip to a SQLite
//! worker thread and back) was about a sixth of the server's CPU per chunk under saturated ingest.
//!
//! Sound only where this process is the sessions' only writer: the embedded SQLite store, whose data
//! directory `serve` locks ([`crate::serve_lock`]). Replicas on PostgreSQL may store chunks of the same
//! session behind each other's back, so there the cache is off and every chunk reads the database.
//!
//! The entry's claim: chunk `seq` is stored with this hash, chunks `seq + 1` and `seq + 2` are not, and the
//! session row is as shown. To keep it true:
//! - an entry is written only after the commit that made its chunk the session's commit point
//!   (`committed_seq == seq`: nothing above it is stored);
//! - every chunk request for the session takes (removes) the entry under the session's lock, whatever its
//!   seq; it is used only by chunk `seq + 1`, and written again only by a successful commit;
//! - a create, an end or a deletion of the session forgets it.
//!
//! Any error path therefore leaves no entry, and the next request reads the database.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{ChunkRow, SessionRow};

/// Entries kept at most; past it the map starts again empty (each live session re-reads once).
const MAX_ENTRIES: usize = 16_384;

/// See the module documentation.
pub struct SessionTails {
    enabled: bool,
    entries: Mutex<HashMap<String, (SessionRow, ChunkRow)>>,
}

impl SessionTails {
    /// `enabled`: this process is the only writer of the sessions it stores.
    pub fn new(enabled: bool) -> SessionTails {
        SessionTails { enabled, entries: Mutex::default() }
    }

    /// Removes the session's entry and returns it when it describes the chunk just before `seq`.
    /// The caller holds the session's lock.
    pub fn take(&self, id: &str, seq: u64) -> Option<(SessionRow, ChunkRow)> {
        if !self.enabled {
            return None;
        }
        let entry = self.entries.lock().ok()?.remove(id)?;
        (entry.1.seq.checked_add(1) == Some(seq)).then_some(entry)
    }

    /// Records that `chunk` was just committed as the session's commit point (`row` as it now stands).
    /// The caller holds the session's lock.
    pub fn put(&self, row: SessionRow, chunk: ChunkRow) {
        if !self.enabled {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&row.id) {
                entries.clear();
            }
            entries.insert(row.id.clone(), (row, chunk));
        }
    }

    /// Drops what is known of the session (its row is about to change, or is gone).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> SessionRow {
        SessionRow { id: id.into(), ..SessionRow::default() }
    }

    fn chunk(seq: u64) -> ChunkRow {
        ChunkRow { seq, sha256: format!("h{seq}"), prev_sha256: None, len: 1, pack: None }
    }

    #[test]
    fn an_entry_serves_only_the_next_seq_and_only_once() {
        let t = SessionTails::new(true);
        t.put(row("a"), chunk(4));
        assert_eq!(t.take("a", 5).map(|(_, c)| c.seq), Some(4));
        assert!(t.take("a", 5).is_none(), "taken");
        t.put(row("a"), chunk(4));
        // Another seq (a replay, or a chunk out of order) removes it too: its commit may change what is
        // stored above the entry's chunk.
        assert!(t.take("a", 7).is_none());
        assert!(t.take("a", 5).is_none());
        assert!(t.take("a", 0).is_none());
    }

    #[test]
    fn forget_and_disabled() {
        let t = SessionTails::new(true);
        t.put(row("a"), chunk(1));
        t.forget("a");
        assert!(t.take("a", 2).is_none());
        let off = SessionTails::new(false);
        off.put(row("a"), chunk(1));
        assert!(off.take("a", 2).is_none());
    }

    #[test]
    fn the_map_is_bounded() {
        let t = SessionTails::new(true);
        for i in 0..MAX_ENTRIES + 10 {
            t.put(row(&format!("s{i}")), chunk(0));
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(t.take(&format!("s{}", MAX_ENTRIES + 9), 1).is_some(), "the newest is kept");
    }
}
