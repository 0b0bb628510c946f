//! Group commit: durability batched across hosts (DESIGN.md §11, §12).
//!
//! Each chunk request writes its object (not yet synced) and hands its row to this queue. One committer task
//! takes everything waiting, makes the batch's objects durable in one round (on a local directory: the
//! files and their directories synced in parallel, so the filesystem journal commits them together), then
//! inserts all the batch's rows in ONE database transaction (one WAL sync), and only then answers every
//! request of the batch. While a batch commits the next one gathers, so the cost of a sync is shared by
//! every host that sent meanwhile instead of paid per chunk. An error anywhere answers the whole batch with
//! it (503 for an unreachable backend): nothing of a failed batch was acknowledged, the hosts resend.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ApiResult};
use crate::ingest::now_ms;
use crate::objects::Objects;
use crate::store::{ChunkInsert, ChunkRow, MetaStore};

struct Job {
    session: String,
    key: String,
    row: ChunkRow,
    reply: oneshot::Sender<ApiResult<ChunkInsert>>,
}

/// The sending side, shared by every request handler.
#[derive(Clone)]
pub struct CommitQueue {
    tx: mpsc::UnboundedSender<Job>,
}

impl CommitQueue {
    /// Starts the committer task (needs a Tokio runtime). `max_batch` caps the rows of one transaction.
    pub fn start(meta: Arc<dyn MetaStore>, objects: Arc<dyn Objects>, max_batch: usize) -> CommitQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, meta, objects, max_batch.max(1)));
        CommitQueue { tx }
    }

    /// Makes `key` (written with `put_create_staged`) durable and commits `row` for `session`; returns
    /// once both are done, in a batch with whatever else arrived meanwhile. The queue is unbounded on
    /// purpose: what waits in it is bounded by the in-flight admission (`limits.max_inflight_bytes`).
    pub async fn commit(&self, session: &str, key: String, row: ChunkRow) -> ApiResult<ChunkInsert> {
        let (reply, answer) = oneshot::channel();
        let job = Job { session: session.to_string(), key, row, reply };
        self.tx.send(job).map_err(|_| ApiError::unavailable("the commit queue has stopped"))?;
        answer.await.map_err(|_| ApiError::unavailable("the commit queue dropped a chunk"))?
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    meta: Arc<dyn MetaStore>,
    objects: Arc<dyn Objects>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        // One lock order for every batch, so two replicas' transactions on PostgreSQL cannot deadlock.
        batch.sort_by(|a: &Job, b: &Job| (&a.session, a.row.seq).cmp(&(&b.session, b.row.seq)));
        let keys: Vec<String> = batch.iter().map(|j| j.key.clone()).collect();
        let rows: Vec<(String, ChunkRow)> =
            batch.iter().map(|j| (j.session.clone(), j.row.clone())).collect();
        let outcome = match objects.make_durable(&keys).await {
            Ok(()) => meta.chunks_commit(&rows, now_ms()).await.map_err(ApiError::from),
            Err(e) => Err(ApiError::from(e)),
        };
        match outcome {
            Ok(results) if results.len() == batch.len() => {
                for (job, r) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Ok(results) => {
                let e = ApiError::unavailable(format!(
                    "the database answered {} outcomes for a batch of {}",
                    results.len(),
                    batch.len()
                ));
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
