//! What every handler shares: the two stores, resolved settings, counters, per-session write locks.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;

use crate::admission::Admission;
use crate::commit::CommitQueue;
use crate::config::Resolved;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::objects::Objects;
use crate::store::MetaStore;

#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetaStore>,
    pub objects: Arc<dyn Objects>,
    pub settings: Arc<Resolved>,
    /// Base of the links handed out (`--public-url`, else `http://<listen address>`).
    pub public_url: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// Group commit of chunk rows (`crate::commit`).
    pub commits: CommitQueue,
    /// The bound on request bodies in flight (`limits.max_inflight_bytes`).
    pub admission: Arc<Admission>,
    /// Wakes live followers when a chunk commits in this process.
    pub live: Arc<LiveHub>,
    /// The OpenID Connect provider, when `oidc:` is configured.
    pub oidc: Option<Arc<crate::oidc::Provider>>,
    /// Host tokens looked up in the last second (`crate::host_tokens`).
    pub host_tokens: Arc<crate::host_tokens::HostTokens>,
    /// What each session last committed here, on the embedded store only (`crate::tails`).
    pub tails: Arc<crate::tails::SessionTails>,
    locks: Arc<SessionLocks>,
}

/// Striped locks serialising writes to one session in this process: a chunk's object and its row must not
/// interleave with another request for the same seq (the row is what says which bytes were acknowledged).
struct SessionLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
}

impl AppState {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        objects: Arc<dyn Objects>,
        settings: Resolved,
        public_url: String,
    ) -> AppState {
        // Many stripes: a request holds its session's stripe while its batch commits, and should rarely
        // wait behind another session that hashes to the same one.
        let stripes = (0..4096).map(|_| tokio::sync::Mutex::new(())).collect();
        let packs = settings.raw.pack_chunks.unwrap_or_else(|| objects.packs_by_default());
        let metrics: Arc<Metrics> = Arc::default();
        let max_batch = settings.raw.limits.max_commit_batch;
        let commits = CommitQueue::start(meta.clone(), objects.clone(), metrics.clone(), max_batch, packs);
        let admission = Arc::new(Admission::new(settings.raw.limits.max_inflight_bytes));
        let oidc = settings.oidc.clone().map(|c| Arc::new(crate::oidc::Provider::new(c)));
        AppState {
            tails: Arc::new(crate::tails::SessionTails::new(false)),
            oidc,
            commits,
            admission,
            meta,
            objects,
            settings: Arc::new(settings),
            public_url: public_url.trim_end_matches('/').into(),
            metrics,
            live: Arc::default(),
            host_tokens: Arc::default(),
            locks: Arc::new(SessionLocks { stripes, hasher: RandomState::new() }),
        }
    }

    /// Checks the next chunk of a session against what this process last committed ([`crate::tails`]).
    /// Only for a process that holds the store's one-writer lock ([`crate::serve_lock`]).
    pub fn with_session_tails(mut self, _lock: &std::fs::File) -> AppState {
        self.tails = Arc::new(crate::tails::SessionTails::new(true));
        self
    }

    pub async fn lock_session(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let i = self.locks.hasher.hash_one(id) as usize % self.locks.stripes.len();
        self.locks.stripes[i].lock().await
    }

    pub fn session_url(&self, id: &str) -> String {
        format!("{}/sessions/{id}", self.public_url)
    }
}
