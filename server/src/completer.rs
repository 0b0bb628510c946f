//! Background sweeps: sessions that stopped arriving become `abandoned` (Teleport's upload completer), ended
//! sessions whose compaction failed are compacted, and retention deletes what is past `retention.days`
//! unless on legal hold; pack objects nothing reads from any more are deleted (`crate::packs`). Everything is
//! found through the database, never by listing the object store.

use std::time::Duration;

use crate::ingest::{cast_key, chunk_key, compact, now_ms};
use crate::metrics::Metrics;
use crate::packs;
use crate::state::AppState;

/// One pass; returns (abandoned, compacted, deleted).
pub async fn run_once(st: &AppState) -> anyhow::Result<(u64, u64, u64)> {
    Metrics::add(&st.metrics.completer_runs, 1);
    let now = now_ms();
    let cutoff = now - st.settings.grace.as_millis() as i64;
    let abandoned = st.meta.sessions_abandon(cutoff).await?;
    Metrics::add(&st.metrics.sessions_abandoned, abandoned);
    let mut compacted = 0;
    for row in st.meta.sessions_to_compact().await? {
        let _guard = st.lock_session(&row.id).await;
        match compact(st, &row).await {
            Ok(()) => compacted += 1,
            Err(e) => tracing::warn!(session = %row.id, error = %e.message, "compaction still failing"),
        }
    }
    let mut deleted = 0;
    if let Some(days) = st.settings.raw.retention.days {
        let cutoff = now - i64::from(days) * 86_400_000;
        for row in st.meta.sessions_expired(cutoff).await? {
            let _guard = st.lock_session(&row.id).await;
            // Objects first: a crash leaves a row whose objects are gone (retried next pass), never
            // objects no row names.
            // (Packs are shared with other sessions: the database says which ones this deletion leaves
            // unread, and those go after the rows; a crash leaves them to the pack sweep below.)
            st.objects.delete(&cast_key(&row)).await?;
            for c in st.meta.chunks(&row.id).await?.iter().filter(|c| c.pack.is_none()) {
                st.objects.delete(&chunk_key(&row, c.seq)).await?;
            }
            st.tails.forget(&row.id);
            let unread_packs = st.meta.session_delete(&row.id).await?;
            packs::delete(st, &unread_packs).await;
            tracing::info!(session = %row.id, "deleted by retention");
            deleted += 1;
        }
        Metrics::add(&st.metrics.sessions_deleted, deleted);
    }
    let packs_deleted = packs::sweep(st).await?;
    if abandoned + compacted + deleted + packs_deleted > 0 {
        tracing::info!(abandoned, compacted, deleted, packs_deleted, "completer pass");
    }
    Ok((abandoned, compacted, deleted))
}

pub async fn run_forever(st: AppState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = run_once(&st).await {
            tracing::warn!(error = %e, "completer pass failed");
        }
    }
}
