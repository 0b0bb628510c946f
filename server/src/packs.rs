//! Pack objects: a group commit's chunks written as ONE object instead of one object each.
//!
//! On an S3-compatible store every chunk was a PUT, and at 200 hosts the store's per-request work (800 PUTs a
//! second on SeaweedFS) set the acknowledgement tail; a request also costs money on a hosted store. With
//! packing (`pack_chunks`, on by default for S3) the commit queue's sync stage concatenates its batch's
//! chunks into `packs/<yyyy>/<mm>/<dd>/<time>-<random>`, and each chunk row names the pack and its offset.
//!
//! A pack's life is in the `packs` table, never found by listing the store: reserved before its PUT, sealed
//! by the transaction that commits its rows (holding one read per inserted row), released as its sessions
//! are compacted or deleted, and deleted once nothing reads from it. A reservation never sealed (a crash or
//! an outage between the PUT and the commit) is deleted once older than `completer.grace`: its chunks were
//! never acknowledged, and the hosts resent them.

use bytes::{Bytes, BytesMut};
use rand::RngCore as _;

use crate::error::ApiResult;
use crate::ingest::{chunk_key, dated, now_ms};
use crate::metrics::Metrics;
use crate::objects::{self, Objects};
use crate::state::AppState;
use crate::store::{ChunkRow, MetaStore, PackRef, SessionRow};

/// Packs deleted per sweep at most (the next pass takes the rest).
const SWEEP_LIMIT: u32 = 1000;

/// A fresh pack key, dated like session prefixes and unique across replicas without coordination.
fn pack_key(now_ms: i64) -> String {
    let mut random = [0u8; 8];
    rand::rng().fill_bytes(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("packs/{}/{now_ms:013x}-{random}", dated(now_ms))
}

/// Writes `bodies` as one durable pack (reserved first); returns where each body is.
pub async fn write(
    meta: &dyn MetaStore,
    objects: &dyn Objects,
    bodies: &[&Bytes],
) -> ApiResult<Vec<PackRef>> {
    let now = now_ms();
    let key = pack_key(now);
    meta.pack_reserve(&key, now).await?;
    let mut pack = BytesMut::with_capacity(bodies.iter().map(|b| b.len()).sum());
    let mut refs = Vec::with_capacity(bodies.len());
    for b in bodies {
        refs.push(PackRef { key: key.clone(), offset: pack.len() as u64 });
        pack.extend_from_slice(b);
    }
    objects.put_create(&key, pack.freeze()).await?;
    Ok(refs)
}

/// Bytes `range` (relative to the chunk, within its length) of a stored chunk, wherever it is.
pub async fn read_range(
    st: &AppState,
    row: &SessionRow,
    c: &ChunkRow,
    range: std::ops::Range<u64>,
) -> objects::Result<Bytes> {
    match &c.pack {
        Some(p) => st.objects.get_within(&p.key, p.offset + range.start..p.offset + range.end).await,
        None => st.objects.get_range(&chunk_key(row, c.seq), range).await,
    }
}

/// Chunk `seq`, when the next of `rows` (in order, from `chunks_between`) is its row and its bytes are still
/// stored; `None` when the session was compacted (its chunk rows not read, or its chunks gone since): the
/// cast has it. For readers walking a session's chunks in order (live follow, the indexer).
pub async fn read_next(
    st: &AppState,
    row: &SessionRow,
    rows: &mut std::slice::Iter<'_, ChunkRow>,
    seq: u64,
) -> objects::Result<Option<Bytes>> {
    let Some(c) = rows.next().filter(|c| c.seq == seq) else { return Ok(None) };
    match read_chunk(st, row, c).await {
        Ok(b) => Ok(Some(b)),
        Err(objects::ObjectError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A stored chunk's bytes.
pub async fn read_chunk(st: &AppState, row: &SessionRow, c: &ChunkRow) -> objects::Result<Bytes> {
    match &c.pack {
        Some(_) => read_range(st, row, c, 0..c.len).await,
        None => st.objects.get(&chunk_key(row, c.seq)).await,
    }
}

/// Deletes packs the database says nothing reads from, then their rows; returns how many went. A failure
/// leaves them for the completer's next sweep.
pub async fn delete(st: &AppState, keys: &[String]) -> u64 {
    let mut gone = Vec::with_capacity(keys.len());
    for key in keys {
        match st.objects.delete(key).await {
            Ok(()) => gone.push(key.clone()),
            Err(e) => tracing::warn!(pack = %key, error = %e, "leaving an unread pack for the next sweep"),
        }
    }
    if gone.is_empty() {
        return 0;
    }
    Metrics::add(&st.metrics.packs_deleted, gone.len() as u64);
    if let Err(e) = st.meta.packs_forget(&gone).await {
        tracing::warn!(error = %e, "pack rows left for the next sweep");
    }
    gone.len() as u64
}

/// One sweep: packs with no reader, and reservations older than `completer.grace` never sealed. Returns how
/// many were deleted.
pub async fn sweep(st: &AppState) -> anyhow::Result<u64> {
    let stale_before = now_ms() - st.settings.grace.as_millis() as i64;
    let dead = st.meta.packs_dead(stale_before, SWEEP_LIMIT).await?;
    Ok(delete(st, &dead).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_keys_are_dated_and_distinct() {
        let a = pack_key(1_767_225_600_000);
        let b = pack_key(1_767_225_600_000);
        assert!(a.starts_with("packs/2026/01/01/0019b76daa800-"), "{a}");
        assert_ne!(a, b);
        assert!(object_store::path::Path::parse(&a).is_ok());
    }
}
