//! The search indexer: a background task in every replica that indexes committed chunks, commands and ends
//! after the ack, never on the ack path. Work is found and claimed through the database (a lease per session,
//! then a compare-and-set on its progress), so replicas share it and a crash at any point leaves the progress
//! where the last committed pass put it: nothing indexed twice, nothing skipped.

use std::time::Duration;

use bytes::Bytes;
use ddcoterm_wire::ProcessEvent;

use crate::error::ApiError;
use crate::ingest::{cast_key, now_ms};
use crate::packs;
use crate::search::{carry_split, normalise, rows, rows_at, TimedText};
use crate::searchmatch::{encode_checked, row_marks, RowTimes};
use crate::state::AppState;
use crate::store::{IndexDoc, IndexProgress, SessionRow};

/// How long an indexer may hold a session before another replica (or this one, restarted) may take it over.
/// A pass that outlives it is not harmful: its compare-and-set fails if another pass committed meanwhile.
const LEASE: Duration = Duration::from_secs(10);
/// Pause between passes when there was nothing to do.
const IDLE: Duration = Duration::from_secs(1);
/// Pause between passes that found work. Each pass per session is two write transactions (claim, commit),
/// each taking SQLite's one write lock and syncing the WAL: run back to back under ingest load they were a
/// write transaction per acknowledged chunk, in the group commits' way (the acknowledgement tail). A pause
/// lets each session gather several chunks per pass; indexing lags by at most about this much more.
const BUSY_PAUSE: Duration = Duration::from_millis(250);
/// Sessions taken per pass.
const PER_PASS: u32 = 16;
/// Chunk bytes read for one session in one pass (chunks still stored one by one); the rest waits for the
/// next pass, so a long live session does not hold the indexer's memory.
const BATCH_BYTES: u64 = 1 << 20;
/// Chunk rows read for one session in one pass, in one query (bounds that query's size when a session's
/// chunks are tiny; `BATCH_BYTES` usually stops the pass first).
const ROWS_PER_READ: i64 = 4096;

/// Chunks waiting for a group commit at which ingest counts as saturated (paced load from a few hundred
/// hosts keeps a handful waiting; hosts sending as fast as acknowledgements return keep one each).
const SATURATED: usize = 32;

/// The pause after a pass that found work. While ingest is saturated, at least as long as the pass took:
/// a pass then mostly holds SQLite's one writer and the cores the acknowledgements need, so the indexer
/// takes at most about half of them and catches up when the load falls.
fn pause(in_flight: usize, pass: Duration) -> Duration {
    if in_flight >= SATURATED {
        BUSY_PAUSE.max(pass)
    } else {
        BUSY_PAUSE
    }
}

pub async fn run_forever(st: AppState) {
    loop {
        let started = std::time::Instant::now();
        match run_once(&st).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(_) => tokio::time::sleep(pause(st.commits.in_flight(), started.elapsed())).await,
            Err(e) => {
                tracing::warn!(error = %e.message, "search indexer pass failed");
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

/// One pass over pending sessions; returns how many were advanced.
pub async fn run_once(st: &AppState) -> Result<usize, ApiError> {
    let mut advanced = 0;
    for id in st.meta.index_pending(now_ms(), PER_PASS).await? {
        if index_session(st, &id).await? {
            advanced += 1;
        }
    }
    Ok(advanced)
}

async fn index_session(st: &AppState, id: &str) -> Result<bool, ApiError> {
    let now = now_ms();
    let Some(from) = st.meta.index_claim(id, now, now + LEASE.as_millis() as i64).await? else {
        return Ok(false);
    };
    let Some(row) = st.meta.session_get(id).await? else { return Ok(false) };
    let mut to = from.clone();
    let mut docs = Vec::new();

    if !from.meta_done {
        if let Some(c) = &row.command {
            push_command(&mut docs, c);
            to.meta_done = true;
        }
    }
    let events = st.meta.events(id).await?;
    if (from.events_done as usize) < events.len() {
        for body in &events[from.events_done as usize..] {
            if let Ok(e) = serde_json::from_str::<ProcessEvent>(body) {
                push_command(&mut docs, &e.command);
            }
        }
        to.events_done = events.len() as u64;
    }

    let committed = row.committed_seq.map_or(-1, |c| c as i64);
    let finished =
        row.state == "abandoned" || row.last_seq.is_some_and(|l| row.committed_seq.is_some_and(|c| c >= l));
    if committed > from.indexed_seq || (finished && !from.final_done) {
        let mut timed = TimedText::new(from.tail.clone());
        let read = read_output(st, &row, &from, committed, &mut timed).await?;
        let TimedText { text, marks, .. } = timed;
        to.indexed_seq = read.0;
        to.indexed_bytes = read.1;
        let last = finished && to.indexed_seq >= committed;
        let (now_text, carry) = carry_split(&text, last);
        for (part, (t, first)) in rows_at(now_text).into_iter().enumerate() {
            let len = t.split(' ').count() as u64;
            let times = RowTimes { marks: row_marks(&marks, first, len), text: t };
            docs.push(IndexDoc {
                kind: "output",
                first_seq: from.indexed_seq + 1,
                last_seq: to.indexed_seq,
                part: part as i64,
                times: Some(encode_checked(&times)),
                text: times.text,
            });
        }
        to.tail = carry;
        to.final_done = last;
    }
    let stored = st.meta.index_commit(id, &from, &to, &docs).await?;
    if !stored {
        tracing::debug!(session = %id, "another indexer advanced this session first");
    }
    Ok(stored && to != from)
}

fn push_command(docs: &mut Vec<IndexDoc>, command: &str) {
    let mut t = String::new();
    normalise(command, &mut t);
    for (part, text) in rows(&t).into_iter().enumerate() {
        docs.push(IndexDoc {
            kind: "command",
            first_seq: -1,
            last_seq: -1,
            part: part as i64,
            text,
            times: None,
        });
    }
}

/// Appends the normalised output of the chunks after `from.indexed_seq` (at most `BATCH_BYTES` of them, or
/// the whole rest of a compacted cast) to `text`, with when its words were printed; returns the new
/// (indexed_seq, indexed_bytes).
async fn read_output(
    st: &AppState,
    row: &SessionRow,
    from: &IndexProgress,
    committed: i64,
    text: &mut TimedText,
) -> Result<(i64, u64), ApiError> {
    let (mut seq, mut bytes) = (from.indexed_seq, from.indexed_bytes);
    let mut read = 0u64;
    // This call reads at most the chunks up to `upto`, their rows fetched in one query (a chunk's bytes
    // may be inside a pack); the next call goes on from there.
    let upto = committed.min(seq.saturating_add(ROWS_PER_READ));
    let rows = if row.compacted || seq >= upto {
        Vec::new()
    } else {
        st.meta.chunks_between(&row.id, (seq + 1) as u64, upto as u64).await?
    };
    let mut rows = rows.iter();
    while seq < upto && read < BATCH_BYTES {
        let next = (seq + 1) as u64;
        let chunk = packs::read_next(st, row, &mut rows, next).await?;
        let Some(chunk) = chunk else {
            let cast: Bytes = st.objects.get(&cast_key(row)).await?;
            let rest = cast.slice((bytes as usize).min(cast.len())..);
            text.push_cast(&rest);
            return Ok((committed.max(row.last_seq.map_or(-1, |l| l as i64)), bytes + rest.len() as u64));
        };
        text.push_cast(&chunk);
        read += chunk.len() as u64;
        bytes += chunk.len() as u64;
        seq += 1;
    }
    Ok((seq, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexer_yields_only_while_ingest_is_saturated() {
        let long = Duration::from_secs(2);
        assert_eq!(pause(0, long), BUSY_PAUSE, "paced ingest: the indexer keeps its pace");
        assert_eq!(pause(SATURATED - 1, long), BUSY_PAUSE);
        assert_eq!(pause(SATURATED, long), long, "saturated: at most half the time");
        assert_eq!(pause(500, Duration::from_millis(10)), BUSY_PAUSE, "never shorter than the usual pause");
    }
}
