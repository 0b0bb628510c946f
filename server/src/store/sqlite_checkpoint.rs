//! SQLite WAL checkpoints off the commit path: one background task on its own connection.
//!
//! With SQLite's default auto-checkpoint, the transaction whose commit pushes the WAL past 1000 pages then
//! copies the WAL into the database file and fsyncs it, inside the same call: the group commit that carries
//! a whole batch of acknowledgements waits for a database-file sync it does not need (measured as the ingest
//! latency tail). The server's connections therefore set `wal_autocheckpoint=0` and this task checkpoints
//! instead: `PASSIVE` every [`INTERVAL`] (it never blocks a writer or a reader; SQLite restarts the WAL from
//! its beginning at the next write once everything is copied), and `RESTART` (which waits for readers,
//! briefly holding writers) only when the WAL has grown past [`RESTART_FRAMES`] because readers kept the
//! passive ones from finishing. Durability is unchanged: a commit is synced in the WAL (`synchronous=FULL`)
//! before any answer, whether or not it has been checkpointed.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::task::JoinHandle;

/// How often the WAL is copied into the database file.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// WAL frames (pages, 4 KiB by default) past which a checkpoint waits for readers: 64 MiB.
pub const RESTART_FRAMES: i64 = 16_384;

/// The running checkpointer; dropping it stops the task (the store that started it is gone).
pub struct Checkpointer {
    task: JoinHandle<()>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one checkpoint reported (`PRAGMA wal_checkpoint`): frames in the WAL and frames copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub busy: bool,
    pub wal_frames: i64,
    pub checkpointed: i64,
}

/// Runs one checkpoint of `mode` (`PASSIVE`, `RESTART`) on `conn`.
pub async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> sqlx::Result<Progress> {
    let sql = match mode {
        "RESTART" => "PRAGMA wal_checkpoint(RESTART)",
        _ => "PRAGMA wal_checkpoint(PASSIVE)",
    };
    let (busy, wal_frames, checkpointed): (i64, i64, i64) = sqlx::query_as(sql).fetch_one(conn).await?;
    Ok(Progress { busy: busy != 0, wal_frames, checkpointed })
}

/// Starts the task on a connection of its own (not one of the pool's: a checkpoint never waits for a
/// request's connection, nor holds one).
pub fn start(opts: SqliteConnectOptions) -> Checkpointer {
    Checkpointer { task: tokio::spawn(run(opts)) }
}

async fn run(opts: SqliteConnectOptions) {
    let mut conn = loop {
        match opts.connect().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpointer: cannot open the database; retrying");
                tokio::time::sleep(INTERVAL * 10).await;
            }
        }
    };
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match checkpoint(&mut conn, "PASSIVE").await {
            Ok(p) if p.wal_frames > RESTART_FRAMES && p.checkpointed < p.wal_frames => {
                if let Err(e) = checkpoint(&mut conn, "RESTART").await {
                    tracing::warn!(error = %e, frames = p.wal_frames, "WAL checkpoint (RESTART) failed");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                // A broken connection is replaced; SQLite itself is fine (the WAL keeps every commit).
                if conn.ping().await.is_err() {
                    if let Ok(c) = opts.connect().await {
                        conn = c;
                    }
                }
            }
        }
    }
}
