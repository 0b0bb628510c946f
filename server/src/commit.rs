//! Group commit: durability batched across hosts (DESIGN.md §11, §12).
//!
//! Each chunk request writes its object (not yet synced) and hands its row to this queue, or, when chunks
//! are packed (`crate::packs`), hands over its bytes. Two stages, each one task: the syncer takes everything
//! waiting and makes the batch durable in one round (on a local directory: the files and their directories
//! synced in parallel, so the filesystem journal commits them together; packed: the batch's chunks written
//! as one object, one PUT); the committer takes every batch synced meanwhile and inserts all their rows in ONE
//! database transaction (one WAL sync), and only then answers every request in it. A row therefore never
//! commits before its object is durable, the two syncs of consecutive batches overlap, and the cost of each
//! sync is shared by every host that sent meanwhile instead of paid per chunk. An error answers the whole
//! batch with it (503 for an unreachable backend): nothing of a failed batch was acknowledged, the hosts
//! resend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ApiResult};
use crate::ingest::now_ms;
use crate::metrics::Metrics;
use crate::objects::Objects;
use crate::store::{ChunkInsert, ChunkRow, MetaStore};

/// Where a chunk's bytes wait for the sync stage.
pub enum Staged {
    /// Written (not yet synced) as its own object, this key.
    Object(String),
    /// Still in memory: the sync stage writes it into the batch's pack (`packs`).
    Pack(Bytes),
}

struct Job {
    session: String,
    staged: Staged,
    row: ChunkRow,
    reply: oneshot::Sender<ApiResult<ChunkInsert>>,
}

/// The sending side, shared by every request handler.
#[derive(Clone)]
pub struct CommitQueue {
    tx: mpsc::UnboundedSender<Job>,
    /// Chunks handed over and not yet answered: how busy ingest is (the indexer yields when it is).
    in_flight: Arc<AtomicUsize>,
    /// Whether chunks go into packs (`pack_chunks`).
    packs: bool,
}

/// Counts one chunk in flight until dropped (answered, failed or cancelled alike).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CommitQueue {
    /// Starts the committer task (needs a Tokio runtime). `max_batch` caps the rows of one transaction;
    /// `packs`: write each batch's chunks as one pack object.
    pub fn start(
        meta: Arc<dyn MetaStore>,
        objects: Arc<dyn Objects>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        packs: bool,
    ) -> CommitQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let (synced_tx, synced_rx) = mpsc::unbounded_channel();
        let stores = Stores { meta: meta.clone(), objects, metrics };
        tokio::spawn(sync_stage(rx, synced_tx, stores, max_batch.max(1)));
        tokio::spawn(commit_stage(synced_rx, meta, max_batch.max(1)));
        CommitQueue { tx, in_flight: Arc::default(), packs }
    }

    /// Whether a chunk is handed over in memory ([`Staged::Pack`]) rather than written first.
    pub fn packs(&self) -> bool {
        self.packs
    }

    /// Chunks waiting for their batch to commit right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Makes the chunk durable (an object written with `put_create_staged`, or bytes for the batch's pack)
    /// and commits `row` for `session`; returns once both are done, in a batch with whatever else arrived
    /// meanwhile. The queue is unbounded on purpose: what waits in it is bounded by the in-flight admission
    /// (`limits.max_inflight_bytes`).
    pub async fn commit(&self, session: &str, staged: Staged, row: ChunkRow) -> ApiResult<ChunkInsert> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _counted = InFlight(self.in_flight.clone());
        let (reply, answer) = oneshot::channel();
        let job = Job { session: session.to_string(), staged, row, reply };
        self.tx.send(job).map_err(|_| ApiError::unavailable("the commit queue has stopped"))?;
        answer.await.map_err(|_| ApiError::unavailable("the commit queue dropped a chunk"))?
    }
}

/// What the sync stage writes through.
struct Stores {
    meta: Arc<dyn MetaStore>,
    objects: Arc<dyn Objects>,
    metrics: Arc<Metrics>,
}

/// Stage 1: batches of chunks made durable (written objects synced, in-memory ones written as one pack); a
/// batch that fails is answered here.
async fn sync_stage(
    mut rx: mpsc::UnboundedReceiver<Job>,
    synced: mpsc::UnboundedSender<Vec<Job>>,
    stores: Stores,
    max_batch: usize,
) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let started = std::time::Instant::now();
        let outcome = make_durable(&mut batch, &stores).await;
        // Per-batch durations, to tell which stage makes the acknowledgement tail
        // (`DDCOTERMD_LOG=ddcoterm_server::commit=debug`).
        tracing::debug!(rows = batch.len(), ms = started.elapsed().as_secs_f64() * 1e3, "batch synced");
        match outcome {
            Ok(()) => {
                if let Err(mpsc::error::SendError(batch)) = synced.send(batch) {
                    answer_all(batch, ApiError::unavailable("the commit stage has stopped"));
                }
            }
            Err(e) => answer_all(batch, e),
        }
    }
}

/// Syncs the batch's written objects in one round and writes its in-memory chunks as one pack, naming it
/// in their rows.
async fn make_durable(batch: &mut [Job], stores: &Stores) -> ApiResult<()> {
    let Stores { meta, objects, metrics } = stores;
    let keys: Vec<String> = batch
        .iter()
        .filter_map(|j| match &j.staged {
            Staged::Object(k) => Some(k.clone()),
            Staged::Pack(_) => None,
        })
        .collect();
    if !keys.is_empty() {
        objects.make_durable(&keys).await?;
    }
    let bodies: Vec<&Bytes> = batch
        .iter()
        .filter_map(|j| match &j.staged {
            Staged::Pack(b) => Some(b),
            Staged::Object(_) => None,
        })
        .collect();
    if bodies.is_empty() {
        return Ok(());
    }
    let mut refs = crate::packs::write(meta.as_ref(), objects.as_ref(), &bodies).await?.into_iter();
    Metrics::add(&metrics.packs_written, 1);
    for job in batch.iter_mut().filter(|j| matches!(j.staged, Staged::Pack(_))) {
        job.row.pack = refs.next();
    }
    Ok(())
}

/// Stage 2: every synced batch waiting, rows in one transaction, then the answers.
async fn commit_stage(mut rx: mpsc::UnboundedReceiver<Vec<Job>>, meta: Arc<dyn MetaStore>, max_batch: usize) {
    let mut batches = Vec::new();
    loop {
        batches.clear();
        if rx.recv_many(&mut batches, max_batch).await == 0 {
            return;
        }
        let mut jobs: Vec<Job> = batches.drain(..).flatten().collect();
        // One lock order for every transaction, so two replicas on PostgreSQL cannot deadlock.
        jobs.sort_by(|a, b| (&a.session, a.row.seq).cmp(&(&b.session, b.row.seq)));
        let rows: Vec<(String, ChunkRow)> = jobs.iter().map(|j| (j.session.clone(), j.row.clone())).collect();
        let started = std::time::Instant::now();
        let committed = meta.chunks_commit(&rows, now_ms()).await;
        tracing::debug!(rows = rows.len(), ms = started.elapsed().as_secs_f64() * 1e3, "batch committed");
        match committed {
            Ok(results) if results.len() == jobs.len() => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Ok(results) => {
                let e = ApiError::unavailable(format!(
                    "the database answered {} outcomes for a batch of {}",
                    results.len(),
                    jobs.len()
                ));
                answer_all(jobs, e);
            }
            Err(e) => answer_all(jobs, ApiError::from(e)),
        }
    }
}

fn answer_all(jobs: Vec<Job>, e: ApiError) {
    for job in jobs {
        let _ = job.reply.send(Err(e.clone()));
    }
}
