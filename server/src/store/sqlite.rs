//! The metadata store on SQLite (the embedded default): WAL, `synchronous=FULL`, embedded migrations.
//!
//! `synchronous=FULL` because a committed row is an acknowledgement to a host that then forgets the chunk:
//! WAL's default (`NORMAL`) may lose the last commits on power loss. Write transactions start with
//! `BEGIN IMMEDIATE` so two writers queue on the busy timeout instead of failing on a lock upgrade.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{
    ChunkInsert, ChunkRow, ListFilter, MetaStore, NewSession, Result, Role, SessionMeta, SessionRow,
    StoreError, TokenRow, UserRow, ViewRow,
};
use super::{IndexDoc, IndexProgress, LoginRow, OidcPending};
use super::{Keyframe, KeyframeProgress, KEYFRAMES_EAGER_BYTES};
use crate::store::batch::{self, Decision, SessionState};
use crate::store::sqlite_checkpoint::{self, Checkpointer};

/// Embedded migrations, applied in order at start; each runs once (table `schema_migrations`).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_create_chain.sql")),
    (3, include_str!("../../migrations/sqlite/0003_read.sql")),
    (4, include_str!("../../migrations/sqlite/0004_web.sql")),
    (5, include_str!("../../migrations/sqlite/0005_windows.sql")),
    (6, include_str!("../../migrations/sqlite/0006_oidc.sql")),
    (7, include_str!("../../migrations/sqlite/0007_search_times.sql")),
    (8, include_str!("../../migrations/sqlite/0008_user_email.sql")),
    (9, include_str!("../../migrations/sqlite/0009_hot_updates.sql")),
    (10, include_str!("../../migrations/sqlite/0010_packs.sql")),
    (11, include_str!("../../migrations/sqlite/0011_sweep_indexes.sql")),
    (12, include_str!("../../migrations/sqlite/0012_index_todo.sql")),
];

pub struct Sqlite {
    pool: SqlitePool,
    /// The one connection every write goes through (the group commit's above all). Sharing the pool, each
    /// commit queued for a connection behind every request's reads (hundreds under load) while the whole
    /// batch waited: 8 of a batch's 13 ms. Writers now queue for it in order, never in SQLite's sleeping
    /// busy handler.
    writer: SqlitePool,
    /// Copies the WAL into the database file in the background (the pool's connections never do).
    _checkpointer: Checkpointer,
}

fn err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(db.message().to_string());
        }
    }
    StoreError::Unavailable(e.to_string())
}

impl Sqlite {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Sqlite> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    /// Opens a `sqlite:` URL (`--database-url sqlite:///path/to/db`).
    pub async fn open_url(url: &str) -> Result<Sqlite> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<Sqlite> {
        // No checkpoint inside a committing transaction: the background checkpointer does them.
        let opts = opts.pragma("wal_autocheckpoint", "0");
        // No ping before handing out a connection: an SQLite connection lives in this process, and the
        // ping is a round trip to its worker thread that doubled the thread hand-offs of every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(err)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(err)?;
        // Short busy timeout: a RESTART checkpoint that cannot get the readers out quickly gives up and
        // retries at the next round rather than holding writers.
        let checkpointer = sqlite_checkpoint::start(opts.busy_timeout(Duration::from_millis(200)));
        let store = Sqlite { pool, writer, _checkpointer: checkpointer };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            if done.is_none() {
                sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(err)?;
                sqlx::query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))",
                )
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
        }
        tx.commit().await.map_err(err)
    }
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn token_row(r: &SqliteRow) -> Result<TokenRow> {
    let role: String = r.try_get("role").map_err(err)?;
    Ok(TokenRow {
        id: r.try_get("id").map_err(err)?,
        name: r.try_get("name").map_err(err)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown role {role:?} in tokens")))?,
        host: r.try_get("host").map_err(err)?,
        created_at: r.try_get("created_at").map_err(err)?,
        last_seen: r.try_get("last_seen").map_err(err)?,
        revoked_at: r.try_get("revoked_at").map_err(err)?,
    })
}

fn session_row(r: &SqliteRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.try_get("id").map_err(err)?,
        owner_token: r.try_get("owner_token").map_err(err)?,
        host: r.try_get("host").map_err(err)?,
        prefix: r.try_get("prefix").map_err(err)?,
        first_seen: r.try_get("first_seen").map_err(err)?,
        last_activity: r.try_get("last_activity").map_err(err)?,
        state: r.try_get("state").map_err(err)?,
        meta_json: r.try_get("meta_json").map_err(err)?,
        create_sha256: r.try_get("create_sha256").map_err(err)?,
        create_body: r.try_get("create_body").map_err(err)?,
        user: r.try_get("user_name").map_err(err)?,
        command: r.try_get("command").map_err(err)?,
        sort_ts: r.try_get("sort_ts").map_err(err)?,
        ended_at: r.try_get("ended_at").map_err(err)?,
        exit_status: r.try_get("exit_status").map_err(err)?,
        last_seq: opt_u64(r.try_get("last_seq").map_err(err)?),
        committed_seq: opt_u64(r.try_get("committed_seq").map_err(err)?),
        bytes: r.try_get::<i64, _>("bytes").map_err(err)? as u64,
        legal_hold: r.try_get::<i64, _>("legal_hold").map_err(err)? != 0,
        compacted: r.try_get::<i64, _>("compacted").map_err(err)? != 0,
    })
}

fn chunk_row(r: &SqliteRow) -> Result<ChunkRow> {
    Ok(ChunkRow {
        seq: r.try_get::<i64, _>("seq").map_err(err)? as u64,
        sha256: r.try_get("sha256").map_err(err)?,
        prev_sha256: r.try_get("prev_sha256").map_err(err)?,
        len: r.try_get::<i64, _>("len").map_err(err)? as u64,
        pack: super::pack_ref(r.try_get("pack").map_err(err)?, r.try_get("pack_offset").map_err(err)?),
    })
}

/// Releases the hold of session `id`'s chunks on their packs (inside the caller's transaction); returns the
/// packs left with no reader.
async fn release_packs(tx: &mut sqlx::SqliteConnection, id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "UPDATE packs SET live = live - c.n FROM (SELECT pack, count(*) AS n FROM chunks \
         WHERE session_id = ? AND pack IS NOT NULL GROUP BY pack) AS c WHERE packs.key = c.pack \
         RETURNING packs.key, packs.live",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .map_err(err)?;
    let left = rows.iter().map(|r| Ok((r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?)));
    Ok(super::unread_packs(left.collect::<Result<Vec<_>>>()?))
}

#[async_trait]
impl MetaStore for Sqlite {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err).map(|_| ())
    }

    async fn token_insert(
        &self,
        name: &str,
        role: Role,
        host: Option<&str>,
        hash: &str,
        now: i64,
    ) -> Result<i64> {
        let r = sqlx::query("INSERT INTO tokens (name, role, host, hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(name)
            .bind(role.as_str())
            .bind(host)
            .bind(hash)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.last_insert_rowid())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let r =
            sqlx::query("SELECT * FROM tokens WHERE hash = ?").bind(hash).fetch_optional(&self.pool).await;
        r.map_err(err)?.as_ref().map(token_row).transpose()
    }

    async fn token_touch(&self, id: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)")
            .bind(now)
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn token_list(&self) -> Result<Vec<TokenRow>> {
        let rows =
            sqlx::query("SELECT * FROM tokens ORDER BY name").fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(token_row).collect()
    }

    async fn token_revoke(&self, name: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_insert(
        &self,
        name: &str,
        role: Role,
        password: &str,
        email: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO users (name, role, password, email, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(name)
            .bind(role.as_str())
            .bind(password)
            .bind(email)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn user_set_email(&self, name: &str, email: Option<&str>) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET email = ? WHERE name = ?")
            .bind(email)
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_get(&self, name: &str) -> Result<Option<UserRow>> {
        let r = sqlx::query("SELECT * FROM users WHERE name = ?").bind(name).fetch_optional(&self.pool).await;
        match r.map_err(err)? {
            None => Ok(None),
            Some(r) => {
                let role: String = r.try_get("role").map_err(err)?;
                Ok(Some(UserRow {
                    name: r.try_get("name").map_err(err)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Unavailable(format!("unknown role {role:?} in users")))?,
                    password: r.try_get("password").map_err(err)?,
                    email: r.try_get("email").map_err(err)?,
                }))
            }
        }
    }

    async fn user_set_password(&self, name: &str, password: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET password = ? WHERE name = ?")
            .bind(password)
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_remove(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_list(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query("SELECT name, role, password, email FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role").map_err(err)?;
                Ok(UserRow {
                    name: r.try_get("name").map_err(err)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Unavailable(format!("unknown role {role:?} in users")))?,
                    password: r.try_get("password").map_err(err)?,
                    email: r.try_get("email").map_err(err)?,
                })
            })
            .collect()
    }

    async fn user_set_role(&self, name: &str, role: Role) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET role = ? WHERE name = ?")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn session_get(&self, id: &str) -> Result<Option<SessionRow>> {
        let r = sqlx::query("SELECT * FROM sessions WHERE id = ?").bind(id).fetch_optional(&self.pool).await;
        r.map_err(err)?.as_ref().map(session_row).transpose()
    }

    async fn session_claim(&self, new: &NewSession) -> Result<SessionRow> {
        sqlx::query(
            "INSERT INTO sessions (id, owner_token, host, prefix, first_seen, last_activity, state, sort_ts) \
             VALUES (?, ?, ?, ?, ?, ?, 'live', ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&new.id)
        .bind(new.owner_token)
        .bind(&new.host)
        .bind(&new.prefix)
        .bind(new.now)
        .bind(new.now)
        .bind(new.now)
        .execute(&self.writer)
        .await
        .map_err(err)?;
        self.session_get(&new.id)
            .await?
            .ok_or_else(|| StoreError::Unavailable(format!("session {} vanished after insert", new.id)))
    }

    async fn session_set_meta(&self, id: &str, meta: &SessionMeta, now: i64) -> Result<bool> {
        sqlx::query(
            "UPDATE sessions SET meta_json = ?, user_name = ?, command = ?, sort_ts = ?, last_activity = ?, \
             create_sha256 = ?, create_body = ? WHERE id = ? AND meta_json IS NULL AND NOT EXISTS \
             (SELECT 1 FROM chunks WHERE session_id = ? AND seq = 0 AND prev_sha256 IS NOT ?)",
        )
        .bind(&meta.meta_json)
        .bind(&meta.user)
        .bind(&meta.command)
        .bind(meta.sort_ts)
        .bind(now)
        .bind(&meta.create_sha256)
        .bind(&meta.create_body)
        .bind(id)
        .bind(id)
        .bind(&meta.create_sha256)
        .execute(&self.writer)
        .await
        .map_err(err)
        .map(|r| r.rows_affected() == 1)
    }

    async fn session_set_end(
        &self,
        id: &str,
        ended_at: &str,
        exit_status: Option<i32>,
        last_seq: u64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET ended_at = ?, exit_status = ?, last_seq = ?, last_activity = ?, \
             state = CASE WHEN state = 'abandoned' THEN 'live' ELSE state END WHERE id = ? AND last_seq IS NULL",
        )
        .bind(ended_at)
        .bind(exit_status)
        .bind(last_seq as i64)
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(err)
        .map(|_| ())
    }

    async fn session_mark_compacted(&self, id: &str, now: i64) -> Result<Vec<String>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let flipped = sqlx::query(
            "UPDATE sessions SET compacted = 1, kf_eager = CASE WHEN bytes >= ? THEN 1 ELSE 0 END, \
             state = 'complete', last_activity = ? WHERE id = ? AND compacted = 0",
        )
        .bind(KEYFRAMES_EAGER_BYTES as i64)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        let dead = if flipped > 0 { release_packs(&mut tx, id).await? } else { Vec::new() };
        tx.commit().await.map_err(err)?;
        Ok(dead)
    }

    async fn session_set_hold(&self, id: &str, hold: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE sessions SET legal_hold = ? WHERE id = ?")
            .bind(hold as i64)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn session_list(&self, f: &ListFilter) -> Result<Vec<SessionRow>> {
        let mut sql = String::from("SELECT * FROM sessions WHERE 1 = 1");
        // With several equality filters, SQLite (no statistics gathered) may seek the index of the least
        // selective one (exit 0: most rows). A unary `+` keeps a column's index out of the choice, so the
        // index used is the first of user, host, exit, state given: usually the most selective.
        let mut seek = true;
        let mut eq = |col: &str, given: bool, sql: &mut String| {
            if given {
                sql.push_str(if seek { " AND " } else { " AND +" });
                sql.push_str(col);
                sql.push_str(" = ?");
                seek = false;
            }
        };
        eq("user_name", f.user.is_some(), &mut sql);
        eq("host", f.host.is_some(), &mut sql);
        if f.command.is_some() {
            sql.push_str(" AND instr(command, ?) > 0");
        }
        if f.since_ms.is_some() {
            sql.push_str(" AND sort_ts >= ?");
        }
        if f.until_ms.is_some() {
            sql.push_str(" AND sort_ts < ?");
        }
        eq("exit_status", f.exit.is_some(), &mut sql);
        eq("state", f.state.is_some(), &mut sql);
        // Rule, approval and break glass live in the create body (meta_json); rows are read newest first
        // through the sort index and these are checked on each (no index: they narrow, they never seek).
        if f.rule.is_some() {
            sql.push_str(" AND instr(coalesce(json_extract(meta_json, '$.rule'), ''), ?) > 0");
        }
        if let Some(yes) = f.approved {
            sql.push_str(if yes { " AND " } else { " AND NOT " });
            sql.push_str(
                "(coalesce(json_extract(meta_json, '$.approval'), '') <> '' \
                 OR coalesce(json_extract(meta_json, '$.approver'), '') <> '')",
            );
        }
        if let Some(yes) = f.break_glass {
            sql.push_str(if yes { " AND " } else { " AND NOT " });
            sql.push_str("coalesce(json_extract(meta_json, '$.break_glass'), 0) = 1");
        }
        for _ in &f.q {
            sql.push_str(
                " AND id IN (SELECT d.session_id FROM search_docs d WHERE d.id IN \
                 (SELECT rowid FROM search_fts WHERE search_fts MATCH ?))",
            );
        }
        if f.before.is_some() {
            // A row value, so the planner seeks the (sort_ts, id) index instead of filtering from the top.
            sql.push_str(" AND (sort_ts, id) < (?, ?)");
        }
        sql.push_str(" ORDER BY sort_ts DESC, id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(v) = &f.user {
            q = q.bind(v);
        }
        if let Some(v) = &f.host {
            q = q.bind(v);
        }
        if let Some(v) = &f.command {
            q = q.bind(v);
        }
        if let Some(v) = f.since_ms {
            q = q.bind(v);
        }
        if let Some(v) = f.until_ms {
            q = q.bind(v);
        }
        if let Some(v) = f.exit {
            q = q.bind(v);
        }
        if let Some(v) = &f.state {
            q = q.bind(v);
        }
        if let Some(v) = &f.rule {
            q = q.bind(v);
        }
        for t in &f.q {
            // Words are letters and digits only (search::normalise): nothing in them is query syntax.
            q = q.bind(format!("\"{}\"", t.join(" ")));
        }
        if let Some((ts, id)) = &f.before {
            q = q.bind(ts).bind(id);
        }
        let rows = q.bind(f.limit as i64).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(session_row).collect()
    }

    async fn session_delete(&self, id: &str) -> Result<Vec<String>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let compacted: Option<i64> = sqlx::query_scalar("SELECT compacted FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        let dead = if compacted == Some(0) { release_packs(&mut tx, id).await? } else { Vec::new() };
        sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id).execute(&mut *tx).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(dead)
    }

    async fn sessions_abandon(&self, cutoff: i64) -> Result<u64> {
        let r =
            sqlx::query("UPDATE sessions SET state = 'abandoned' WHERE state = 'live' AND last_activity < ?")
                .bind(cutoff)
                .execute(&self.writer)
                .await
                .map_err(err)?;
        Ok(r.rows_affected())
    }

    async fn sessions_expired(&self, cutoff: i64) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE first_seen < ? AND legal_hold = 0")
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(session_row).collect()
    }

    async fn sessions_live_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE state = 'live'")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn sessions_to_compact(&self) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE compacted = 0 AND last_seq IS NOT NULL AND committed_seq >= last_seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(session_row).collect()
    }

    async fn chunk_get(&self, id: &str, seq: u64) -> Result<Option<ChunkRow>> {
        let r = sqlx::query("SELECT * FROM chunks WHERE session_id = ? AND seq = ?")
            .bind(id)
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await;
        r.map_err(err)?.as_ref().map(chunk_row).transpose()
    }

    async fn chunks_near(&self, id: &str, seq: u64) -> Result<Vec<ChunkRow>> {
        let rows =
            sqlx::query("SELECT * FROM chunks WHERE session_id = ? AND seq BETWEEN ? AND ? ORDER BY seq")
                .bind(id)
                .bind(seq as i64 - 1)
                .bind(seq as i64 + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.iter().map(chunk_row).collect()
    }

    async fn session_and_near(&self, id: &str, seq: u64) -> Result<Option<(SessionRow, Vec<ChunkRow>)>> {
        let r = sqlx::query(
            "SELECT s.*, (SELECT json_group_array(json_array(c.seq, c.sha256, c.prev_sha256, c.len)) FROM chunks c \
               WHERE c.session_id = s.id AND c.seq BETWEEN ? AND ?) AS near_chunks \
             FROM sessions s WHERE s.id = ?",
        )
                .bind(seq as i64 - 1)
                .bind(seq as i64 + 1)
                .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        let Some(r) = r else { return Ok(None) };
        let near: String = r.try_get("near_chunks").map_err(err)?;
        Ok(Some((session_row(&r)?, super::near_rows(&near)?)))
    }

    async fn chunks_commit(&self, batch: &[(String, ChunkRow)], now: i64) -> Result<Vec<ChunkInsert>> {
        // A few set-wide statements per batch, not several per row (store/batch.rs says why); the batch's
        // values travel as one JSON array each, read back with json_each.
        let json = |v: serde_json::Value| v.to_string();
        let mut ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let rows = sqlx::query(
            "SELECT id, committed_seq, create_sha256 FROM sessions WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(json(serde_json::json!(ids)))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let mut sessions = HashMap::new();
        for r in &rows {
            let state = SessionState {
                committed_seq: r.try_get("committed_seq").map_err(err)?,
                create_sha256: r.try_get("create_sha256").map_err(err)?,
            };
            sessions.insert(r.try_get::<String, _>("id").map_err(err)?, state);
        }
        if let Some(missing) = ids.iter().find(|id| !sessions.contains_key(**id)) {
            return Err(StoreError::Unavailable(format!("session {missing} has no row to commit chunks to")));
        }
        let keys: Vec<serde_json::Value> =
            batch.iter().map(|(id, c)| serde_json::json!([id, c.seq])).collect();
        // CROSS JOIN keeps the batch as the outer loop: one primary-key lookup per row.
        let stored = sqlx::query(
            "SELECT c.* FROM json_each(?) j CROSS JOIN chunks c \
             ON c.session_id = json_extract(j.value, '$[0]') AND c.seq = json_extract(j.value, '$[1]')",
        )
        .bind(json(serde_json::Value::Array(keys)))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let mut existing = HashMap::new();
        for r in &stored {
            let c = chunk_row(r)?;
            existing.insert((r.try_get::<String, _>("session_id").map_err(err)?, c.seq), c);
        }
        let decisions = batch::plan(batch, &existing, &sessions);
        let new: Vec<serde_json::Value> = batch
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| **d == Decision::Insert)
            .map(|((id, c), _)| {
                let (pack, offset) = c.pack.as_ref().map(|p| (&p.key, p.offset)).unzip();
                serde_json::json!([id, c.seq, c.sha256, c.prev_sha256, c.len, pack, offset])
            })
            .collect();
        let mut committed = HashMap::new();
        if !new.is_empty() {
            sqlx::query(
                "INSERT INTO chunks (session_id, seq, sha256, prev_sha256, len, pack, pack_offset, stored_at) \
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                 json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                 json_extract(value, '$[6]'), ? FROM json_each(?)",
            )
            .bind(now)
            .bind(json(serde_json::Value::Array(new)))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            let added = batch::added_bytes(batch, &decisions);
            let touched: Vec<&str> = added.iter().map(|(id, _)| *id).collect();
            let walked = sqlx::query(&batch::advance_sql("SELECT value FROM json_each(?)"))
                .bind(json(serde_json::json!(touched)))
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
            for r in &walked {
                committed
                    .insert(r.try_get::<String, _>(0).map_err(err)?, r.try_get::<i64, _>(1).map_err(err)?);
            }
            let updates: Vec<serde_json::Value> = added
                .iter()
                .map(|(id, b)| serde_json::json!([id, committed.get(*id).copied().unwrap_or(-1), b]))
                .collect();
            sqlx::query(
                "UPDATE sessions SET committed_seq = u.c, bytes = bytes + u.b, last_activity = ?, \
                 state = CASE WHEN state = 'abandoned' THEN 'live' ELSE state END \
                 FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS c, \
                 json_extract(value, '$[2]') AS b FROM json_each(?)) AS u WHERE sessions.id = u.id",
            )
            .bind(now)
            .bind(json(serde_json::Value::Array(updates)))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        for (key, n) in batch::pack_holds(batch, &decisions) {
            let sealed = sqlx::query("UPDATE packs SET sealed = 1, live = live + ? WHERE key = ?")
                .bind(n)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            if sealed.rows_affected() != 1 {
                return Err(StoreError::Unavailable(format!(
                    "pack {key} has no reservation (swept as stale)"
                )));
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(batch::outcomes(batch, decisions, &committed))
    }

    async fn chunks(&self, id: &str) -> Result<Vec<ChunkRow>> {
        let rows = sqlx::query("SELECT * FROM chunks WHERE session_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(chunk_row).collect()
    }

    async fn chunks_between(&self, id: &str, from: u64, to: u64) -> Result<Vec<ChunkRow>> {
        let rows =
            sqlx::query("SELECT * FROM chunks WHERE session_id = ? AND seq BETWEEN ? AND ? ORDER BY seq")
                .bind(id)
                .bind(from.min(i64::MAX as u64) as i64)
                .bind(to.min(i64::MAX as u64) as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.iter().map(chunk_row).collect()
    }

    async fn pack_reserve(&self, key: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO packs (key, created_at) VALUES (?, ?)")
            .bind(key)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn packs_dead(&self, stale_before: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT key FROM packs WHERE live <= 0 AND (sealed = 1 OR created_at < ?) ORDER BY created_at LIMIT ?",
        )
        .bind(stale_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }

    async fn packs_forget(&self, keys: &[String]) -> Result<()> {
        sqlx::query("DELETE FROM packs WHERE live <= 0 AND key IN (SELECT value FROM json_each(?))")
            .bind(serde_json::json!(keys).to_string())
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn events_insert(&self, id: &str, events: &[(String, String)], now: i64) -> Result<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT coalesce(max(idx), -1) + 1 FROM events WHERE session_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        let mut added = 0;
        for (digest, body) in events {
            let r = sqlx::query(
                "INSERT INTO events (session_id, idx, digest, body) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (session_id, digest) DO NOTHING",
            )
            .bind(id)
            .bind(next)
            .bind(digest)
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            if r.rows_affected() > 0 {
                next += 1;
                added += 1;
            }
        }
        sqlx::query("UPDATE sessions SET last_activity = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(added)
    }

    async fn events(&self, id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT body FROM events WHERE session_id = ? ORDER BY idx")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn view_insert(&self, at: i64, viewer: &str, role: Role, session: &str, kind: &str) -> Result<()> {
        sqlx::query("INSERT INTO view_audit (at, viewer, role, session_id, kind) VALUES (?, ?, ?, ?, ?)")
            .bind(at)
            .bind(viewer)
            .bind(role.as_str())
            .bind(session)
            .bind(kind)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn views(
        &self,
        session: Option<&str>,
        viewer: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ViewRow>> {
        let mut sql = String::from("SELECT * FROM view_audit WHERE 1 = 1");
        if session.is_some() {
            sql.push_str(" AND session_id = ?");
        }
        if viewer.is_some() {
            sql.push_str(" AND viewer = ?");
        }
        if before.is_some() {
            sql.push_str(" AND id < ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(v) = session {
            q = q.bind(v);
        }
        if let Some(v) = viewer {
            q = q.bind(v);
        }
        if let Some(v) = before {
            q = q.bind(v);
        }
        let rows = q.bind(limit as i64).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r: &SqliteRow| {
                Ok(ViewRow {
                    id: r.try_get("id").map_err(err)?,
                    at: r.try_get("at").map_err(err)?,
                    viewer: r.try_get("viewer").map_err(err)?,
                    role: r.try_get("role").map_err(err)?,
                    session_id: r.try_get("session_id").map_err(err)?,
                    kind: r.try_get("kind").map_err(err)?,
                })
            })
            .collect()
    }

    async fn login_insert(&self, l: &LoginRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_logins (hash, user_name, role, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&l.hash)
        .bind(&l.user)
        .bind(l.role.as_str())
        .bind(&l.csrf)
        .bind(l.created_at)
        .bind(l.expires_at)
        .execute(&self.writer)
        .await
        .map_err(err)
        .map(|_| ())
    }

    async fn oidc_pending_insert(&self, p: &OidcPending, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM oidc_pending WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO oidc_pending (state_hash, nonce, verifier, next_path, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&p.state_hash)
        .bind(&p.nonce)
        .bind(&p.verifier)
        .bind(&p.next)
        .bind(p.expires_at)
        .execute(&self.writer)
        .await
        .map_err(err)
        .map(|_| ())
    }

    async fn oidc_pending_take(&self, state_hash: &str) -> Result<Option<OidcPending>> {
        let r = sqlx::query(
            "DELETE FROM oidc_pending WHERE state_hash = ? \
             RETURNING state_hash, nonce, verifier, next_path, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(err)?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some(OidcPending {
            state_hash: r.try_get("state_hash").map_err(err)?,
            nonce: r.try_get("nonce").map_err(err)?,
            verifier: r.try_get("verifier").map_err(err)?,
            next: r.try_get("next_path").map_err(err)?,
            expires_at: r.try_get("expires_at").map_err(err)?,
        }))
    }

    async fn login_get(&self, hash: &str) -> Result<Option<LoginRow>> {
        let r = sqlx::query(
            "SELECT l.hash, l.user_name, l.role, l.csrf, l.created_at, l.expires_at, u.role AS current_role, u.email AS current_email \
             FROM web_logins l LEFT JOIN users u ON u.name = l.user_name WHERE l.hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        let Some(r) = r else { return Ok(None) };
        let role: String = r.try_get("role").map_err(err)?;
        let current: Option<String> = r.try_get("current_role").map_err(err)?;
        Ok(Some(LoginRow {
            hash: r.try_get("hash").map_err(err)?,
            user: r.try_get("user_name").map_err(err)?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Unavailable(format!("unknown role {role:?} in web_logins")))?,
            csrf: r.try_get("csrf").map_err(err)?,
            created_at: r.try_get("created_at").map_err(err)?,
            expires_at: r.try_get("expires_at").map_err(err)?,
            current_role: current.as_deref().and_then(Role::parse),
            current_email: r.try_get("current_email").map_err(err)?,
        }))
    }

    async fn login_delete(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_logins WHERE hash = ?")
            .bind(hash)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn logins_delete_user(&self, user: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM web_logins WHERE user_name = ?")
            .bind(user)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }

    async fn logins_purge(&self, now: i64, failures_before: i64) -> Result<()> {
        sqlx::query("DELETE FROM web_logins WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM login_failures WHERE at < ?")
            .bind(failures_before)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn login_failure_insert(&self, at: i64, user: &str, addr: &str) -> Result<()> {
        sqlx::query("INSERT INTO login_failures (at, user_name, addr) VALUES (?, ?, ?)")
            .bind(at)
            .bind(user)
            .bind(addr)
            .execute(&self.writer)
            .await
            .map_err(err)
            .map(|_| ())
    }

    async fn login_failures(&self, user: &str, addr: &str, since: i64) -> Result<(u64, u64)> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM login_failures WHERE user_name = ?1 AND at >= ?3) AS by_user, \
             (SELECT COUNT(*) FROM login_failures WHERE addr = ?2 AND at >= ?3) AS by_addr",
        )
        .bind(user)
        .bind(addr)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let (u, a): (i64, i64) = (r.try_get("by_user").map_err(err)?, r.try_get("by_addr").map_err(err)?);
        Ok((u.max(0) as u64, a.max(0) as u64))
    }

    async fn index_pending(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        // Only the sessions on the work list (migration 0012), never the whole table. CROSS JOIN keeps the
        // list as the outer loop: SQLite's planner, without statistics, scanned `sessions` instead (10 ms a
        // pass at 200,000 sessions, against 0.03 ms).
        let pending = format!(
            "SELECT s.id FROM index_todo t CROSS JOIN sessions s ON s.id = t.session_id \
             LEFT JOIN search_progress p ON p.session_id = s.id \
             WHERE {} AND (p.lease_until IS NULL OR p.lease_until < ?) ORDER BY s.last_activity LIMIT ?",
            super::INDEX_PENDING
        );
        let ids = sqlx::query_scalar(&pending)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        // Listed sessions with nothing left (or gone) leave the list, in one write: SQLite has one writer, so
        // no session can be written between this check and the delete.
        let done = format!(
            "DELETE FROM index_todo WHERE session_id IN (SELECT t.session_id FROM index_todo t \
             LEFT JOIN sessions s ON s.id = t.session_id LEFT JOIN search_progress p ON p.session_id = t.session_id \
             WHERE s.id IS NULL OR NOT COALESCE({}, 0) LIMIT ?)",
            super::INDEX_PENDING
        );
        sqlx::query(&done)
            .bind(i64::from(super::INDEX_TODO_PRUNE))
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(ids)
    }

    async fn index_claim(&self, id: &str, now: i64, until: i64) -> Result<Option<IndexProgress>> {
        let r = sqlx::query(
            "INSERT INTO search_progress (session_id, lease_until) VALUES (?, ?) \
             ON CONFLICT (session_id) DO UPDATE SET lease_until = excluded.lease_until \
             WHERE search_progress.lease_until < ?",
        )
        .bind(id)
        .bind(until)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(err)?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM search_progress WHERE session_id = ?")
            .bind(id)
            .fetch_one(&self.writer)
            .await
            .map_err(err)?;
        let r: &SqliteRow = &row;
        Ok(Some(IndexProgress {
            indexed_seq: r.try_get("indexed_seq").map_err(err)?,
            indexed_bytes: r.try_get::<i64, _>("indexed_bytes").map_err(err)? as u64,
            events_done: r.try_get::<i64, _>("events_done").map_err(err)? as u64,
            meta_done: r.try_get::<i64, _>("meta_done").map_err(err)? != 0,
            final_done: r.try_get::<i64, _>("final_done").map_err(err)? != 0,
            tail: r.try_get("tail").map_err(err)?,
        }))
    }

    async fn index_commit(
        &self,
        id: &str,
        from: &IndexProgress,
        to: &IndexProgress,
        docs: &[IndexDoc],
    ) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let r = sqlx::query(
            "UPDATE search_progress SET indexed_seq = ?, indexed_bytes = ?, events_done = ?, meta_done = ?, \
             final_done = ?, tail = ?, lease_until = 0 WHERE session_id = ? AND indexed_seq = ? AND events_done = ? \
             AND meta_done = ? AND final_done = ?",
        )
        .bind(to.indexed_seq)
        .bind(to.indexed_bytes as i64)
        .bind(to.events_done as i64)
        .bind(to.meta_done as i64)
        .bind(to.final_done as i64)
        .bind(&to.tail)
        .bind(id)
        .bind(from.indexed_seq)
        .bind(from.events_done as i64)
        .bind(from.meta_done as i64)
        .bind(from.final_done as i64)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        for d in docs {
            let r = sqlx::query(
                "INSERT INTO search_docs (session_id, kind, first_seq, last_seq, part, times) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(d.kind)
            .bind(d.first_seq)
            .bind(d.last_seq)
            .bind(d.part)
            .bind(d.times.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            sqlx::query("INSERT INTO search_fts (rowid, body) VALUES (?, ?)")
                .bind(r.last_insert_rowid())
                .bind(&d.text)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn index_times_candidates(
        &self,
        id: &str,
        term: &[String],
        skip: i64,
        limit: i64,
    ) -> Result<Vec<Vec<u8>>> {
        // The same FTS5 look-up as the list's `q` (so no dearer than the search that found the session),
        // narrowed to this session's output rows, earliest first. FTS5 phrases are exact.
        sqlx::query_scalar(
            "SELECT d.times FROM search_docs d WHERE d.session_id = ? AND d.kind = 'output' \
             AND d.times IS NOT NULL AND d.id IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?) \
             ORDER BY d.first_seq, d.part LIMIT ? OFFSET ?",
        )
        .bind(id)
        // Words are letters and digits only (search::normalise): nothing in them is query syntax.
        .bind(format!("\"{}\"", term.join(" ")))
        .bind(limit)
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }

    async fn keyframe_progress(&self, id: &str) -> Result<Option<KeyframeProgress>> {
        let r = sqlx::query("SELECT kf_frames, kf_bytes, kf_time, kf_done FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        r.map(|r| {
            Ok(KeyframeProgress {
                frames: r.try_get("kf_frames").map_err(err)?,
                bytes: r.try_get::<i64, _>("kf_bytes").map_err(err)? as u64,
                time: r.try_get("kf_time").map_err(err)?,
                done: r.try_get::<i64, _>("kf_done").map_err(err)? != 0,
            })
        })
        .transpose()
    }

    async fn keyframe_times(&self, id: &str) -> Result<Vec<(f64, u64)>> {
        let rows = sqlx::query("SELECT t, cast_offset FROM keyframes WHERE session_id = ? ORDER BY idx")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get("t").map_err(err)?, r.try_get::<i64, _>("cast_offset").map_err(err)? as u64))
            })
            .collect()
    }

    async fn keyframe_at(&self, id: &str, at: f64) -> Result<Option<Keyframe>> {
        let r = sqlx::query(
            "SELECT * FROM keyframes WHERE session_id = ? AND (t <= ? OR idx = 0) ORDER BY idx DESC LIMIT 1",
        )
        .bind(id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        r.as_ref().map(keyframe_row).transpose()
    }

    async fn keyframes_commit(
        &self,
        id: &str,
        from: &KeyframeProgress,
        to: &KeyframeProgress,
        frames: &[Keyframe],
    ) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let r = sqlx::query(
            "UPDATE sessions SET kf_frames = ?, kf_bytes = ?, kf_time = ?, kf_done = ? \
             WHERE id = ? AND kf_frames = ? AND kf_bytes = ? AND kf_done = ?",
        )
        .bind(to.frames)
        .bind(to.bytes as i64)
        .bind(to.time)
        .bind(to.done as i64)
        .bind(id)
        .bind(from.frames)
        .bind(from.bytes as i64)
        .bind(from.done as i64)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        for f in frames {
            sqlx::query(
                "INSERT INTO keyframes (session_id, idx, t, cast_offset, cols, rows, screen) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(f.idx)
            .bind(f.t)
            .bind(f.offset as i64)
            .bind(f.cols as i64)
            .bind(f.rows as i64)
            .bind(&f.screen)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn keyframes_pending(&self, limit: u32) -> Result<Vec<String>> {
        // Served by the partial index `sessions_kf_todo` (migration 0009).
        sqlx::query_scalar(
            "SELECT id FROM sessions WHERE kf_eager = 1 AND kf_done = 0 ORDER BY sort_ts LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }
}

fn keyframe_row(r: &SqliteRow) -> Result<Keyframe> {
    Ok(Keyframe {
        idx: r.try_get("idx").map_err(err)?,
        t: r.try_get("t").map_err(err)?,
        offset: r.try_get::<i64, _>("cast_offset").map_err(err)? as u64,
        cols: r.try_get::<i64, _>("cols").map_err(err)? as u32,
        rows: r.try_get::<i64, _>("rows").map_err(err)? as u32,
        screen: r.try_get("screen").map_err(err)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keyframe builder's work list: complete sessions of at least 1 MiB whose index is not built,
    /// never a small or a live one. Migration 0009 moved it off `bytes` onto `kf_eager`, set at compaction.
    #[tokio::test]
    async fn the_keyframe_work_list_holds_large_complete_sessions_until_their_index_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("ddcoterm.db")).await.unwrap();
        let owner = store.token_insert("h", Role::Host, None, "hash", 0).await.unwrap();
        let eager = KEYFRAMES_EAGER_BYTES;
        for (id, len) in [("small", eager - 1), ("large", eager), ("live", 2 * eager)] {
            let new = NewSession {
                id: id.into(),
                owner_token: owner,
                host: "h".into(),
                prefix: "p".into(),
                now: 1,
            };
            store.session_claim(&new).await.unwrap();
            let chunk = ChunkRow { seq: 0, sha256: format!("{id}-0"), prev_sha256: None, len, pack: None };
            store.chunks_commit(&[(id.to_string(), chunk)], 2).await.unwrap();
        }
        store.session_mark_compacted("small", 3).await.unwrap();
        store.session_mark_compacted("large", 3).await.unwrap();
        assert_eq!(store.keyframes_pending(10).await.unwrap(), vec!["large".to_string()]);
        let built = KeyframeProgress { frames: 0, bytes: eager, time: 1.0, done: true };
        assert!(store.keyframes_commit("large", &KeyframeProgress::default(), &built, &[]).await.unwrap());
        assert!(store.keyframes_pending(10).await.unwrap().is_empty());
    }

    /// Regression: the commit that crossed SQLite's auto-checkpoint threshold also copied the WAL into the
    /// database file and synced it, adding that sync to every acknowledgement in its batch (the p99 tail).
    #[tokio::test]
    async fn commits_never_checkpoint_and_the_background_task_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ddcoterm.db");
        let store = Sqlite::open(&path).await.unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&store.pool).await.unwrap();
        assert_eq!(auto, 0, "pool connections must leave checkpoints to the background task");
        // Let the migrations' pages reach the database file, then write well past one page.
        tokio::time::sleep(sqlite_checkpoint::INTERVAL * 3).await;
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..400 {
            let name = format!("host-{i:04}-{}", "x".repeat(100));
            store.token_insert(&name, Role::Host, None, &format!("hash-{i}"), 0).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let grown = loop {
            let now = std::fs::metadata(&path).unwrap().len();
            if now > before || std::time::Instant::now() > deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(grown > before, "the database file stayed at {before} bytes: nothing checkpointed the WAL");
    }
}
