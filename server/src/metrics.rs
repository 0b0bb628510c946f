//! Counters for `/metrics`, and their Prometheus text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::store::TokenRow;

#[derive(Default)]
pub struct Metrics {
    pub ingest_bytes: AtomicU64,
    pub chunks_acked: AtomicU64,
    pub chunks_replayed: AtomicU64,
    pub compactions: AtomicU64,
    pub completer_runs: AtomicU64,
    pub sessions_abandoned: AtomicU64,
    pub sessions_deleted: AtomicU64,
    pub packs_written: AtomicU64,
    pub packs_deleted: AtomicU64,
    /// Error answers by status code.
    pub errors: Mutex<BTreeMap<u16, u64>>,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn error(&self, status: u16) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// Prometheus text format; `tokens` gives each host token's last-seen time.
    pub fn render(&self, live_sessions: u64, tokens: &[TokenRow]) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter("ddcoterm_ingest_bytes_total", "Chunk bytes stored.", self.ingest_bytes.load(Relaxed));
        counter(
            "ddcoterm_chunks_acked_total",
            "Chunks stored and acknowledged.",
            self.chunks_acked.load(Relaxed),
        );
        counter(
            "ddcoterm_chunks_replayed_total",
            "Chunks sent again with the same bytes.",
            self.chunks_replayed.load(Relaxed),
        );
        counter(
            "ddcoterm_compactions_total",
            "Sessions compacted into one cast.",
            self.compactions.load(Relaxed),
        );
        counter("ddcoterm_completer_runs_total", "Completer passes.", self.completer_runs.load(Relaxed));
        counter(
            "ddcoterm_sessions_abandoned_total",
            "Sessions marked abandoned.",
            self.sessions_abandoned.load(Relaxed),
        );
        counter(
            "ddcoterm_sessions_deleted_total",
            "Sessions deleted by retention.",
            self.sessions_deleted.load(Relaxed),
        );
        counter(
            "ddcoterm_packs_written_total",
            "Pack objects written (one per group commit when chunks are packed).",
            self.packs_written.load(Relaxed),
        );
        counter(
            "ddcoterm_packs_deleted_total",
            "Pack objects deleted: read by no chunk any more, or reserved and never committed.",
            self.packs_deleted.load(Relaxed),
        );
        let _ = writeln!(s, "# HELP ddcoterm_http_errors_total Error answers by status.");
        let _ = writeln!(s, "# TYPE ddcoterm_http_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(s, "ddcoterm_http_errors_total{{status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(s, "# HELP ddcoterm_live_sessions Sessions still receiving.");
        let _ = writeln!(s, "# TYPE ddcoterm_live_sessions gauge\nddcoterm_live_sessions {live_sessions}");
        let _ =
            writeln!(s, "# HELP ddcoterm_token_last_seen_seconds When each token was last used (Unix time).");
        let _ = writeln!(s, "# TYPE ddcoterm_token_last_seen_seconds gauge");
        for t in tokens.iter().filter(|t| t.revoked_at.is_none()) {
            let seen = t.last_seen.map(|ms| ms as f64 / 1000.0).unwrap_or(0.0);
            let _ = writeln!(
                s,
                "ddcoterm_token_last_seen_seconds{{token=\"{}\",role=\"{}\",host=\"{}\"}} {seen}",
                label(&t.name),
                t.role.as_str(),
                label(t.host.as_deref().unwrap_or(""))
            );
        }
        s
    }
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
