//! The metadata store: the trait every database backend implements, and the rows it returns.
//!
//! Handlers and the ingest path see only this trait, so PostgreSQL drops in beside SQLite. A committed row is
//! the commit point of every write (DESIGN.md §12): objects are durable before the row that names them.

pub mod batch;
pub mod postgres;
pub mod sqlite;
pub mod sqlite_checkpoint;

use async_trait::async_trait;

/// What went wrong in the store, as much as a handler needs to pick a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or refused the statement: the caller answers 503 and the host retries.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule held (a name taken, a row inserted concurrently).
    #[error("already exists: {0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Who may do what (DESIGN.md §12 "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes its own sessions, never reads.
    Host,
    /// Reads sessions recorded under its own user name.
    Viewer,
    /// Reads every session.
    Auditor,
    /// Reads every session and manages tokens and users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "host" => Role::Host,
            "viewer" => Role::Viewer,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub host: Option<String>,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    /// Argon2 PHC string.
    pub password: String,
    /// Where per-session grants naming an e-mail find this user (`user add --email`, single sign-on's
    /// verified `email` claim).
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SessionRow {
    pub id: String,
    pub owner_token: i64,
    /// The host name bound to the owner token.
    pub host: String,
    /// Object key prefix `sessions/<yyyy>/<mm>/<dd>/<id>`, fixed at first contact.
    pub prefix: String,
    pub first_seen: i64,
    pub last_activity: i64,
    /// `live`, `complete` or `abandoned`.
    pub state: String,
    /// The create body as received (canonical JSON of `CreateSession`); `None` until the create arrives.
    pub meta_json: Option<String>,
    /// SHA-256 of the create body as received: the chain root chunk 0 must carry (DESIGN.md §12).
    pub create_sha256: Option<String>,
    /// The create body as received, byte for byte (write-once), so `verify` can recompute the root.
    pub create_body: Option<String>,
    pub user: Option<String>,
    pub command: Option<String>,
    pub sort_ts: i64,
    pub ended_at: Option<String>,
    pub exit_status: Option<i32>,
    pub last_seq: Option<u64>,
    pub committed_seq: Option<u64>,
    pub bytes: u64,
    pub legal_hold: bool,
    pub compacted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub seq: u64,
    pub sha256: String,
    pub prev_sha256: Option<String>,
    pub len: u64,
    /// Where the bytes are when they share a pack object with other chunks of the same group commit
    /// (`None`: in the chunk's own object, `ingest::chunk_key`). Not read by the chain checks, which leave
    /// it `None`.
    pub pack: Option<PackRef>,
}

/// A chunk's bytes inside a pack: `len` bytes at `offset` of object `key` (`packs::read_chunk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRef {
    pub key: String,
    pub offset: u64,
}

/// Whether session `s` (with its search progress `p`, NULL when never indexed) has something new to index:
/// never seen, chunks past what is indexed, its command or events not indexed yet, or finished and its last
/// words not indexed yet. The same on SQLite and PostgreSQL; NULL counts as no.
pub(crate) const INDEX_PENDING: &str = "(p.session_id IS NULL OR s.committed_seq > p.indexed_seq \
     OR (p.meta_done = 0 AND s.command IS NOT NULL) \
     OR p.events_done < (SELECT count(*) FROM events e WHERE e.session_id = s.id) \
     OR (p.final_done = 0 AND (s.state = 'abandoned' OR (s.last_seq IS NOT NULL AND s.committed_seq >= s.last_seq))))";

/// Listed sessions the indexer may take off `index_todo` per pass (each with its own statement on
/// PostgreSQL, so that it never holds two of the rows a group commit's trigger writes).
pub(crate) const INDEX_TODO_PRUNE: u32 = 500;

/// The `chunks.pack` and `chunks.pack_offset` columns as a [`PackRef`] (both stores).
pub(crate) fn pack_ref(key: Option<String>, offset: Option<i64>) -> Option<PackRef> {
    key.map(|key| PackRef { key, offset: offset.unwrap_or(0) as u64 })
}

/// Of the packs a release touched (key, reads left), those nothing reads from any more (both stores).
pub(crate) fn unread_packs(released: Vec<(String, i64)>) -> Vec<String> {
    released.into_iter().filter(|(_, live)| *live <= 0).map(|(key, _)| key).collect()
}

/// A new session row, written at first contact (a create or a chunk that came first).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub owner_token: i64,
    pub host: String,
    pub prefix: String,
    pub now: i64,
}

/// The create's metadata, filled into a row that may already exist from an early chunk.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub meta_json: String,
    pub user: String,
    pub command: String,
    /// Unix ms of `started_at`: the list's sort key.
    pub sort_ts: i64,
    /// `ddcoterm_wire::chain_root` of `create_body`.
    pub create_sha256: String,
    /// The request body exactly as decoded.
    pub create_body: String,
}

/// Filters of `GET /api/v1/sessions`; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub user: Option<String>,
    pub host: Option<String>,
    /// Substring of the command line.
    pub command: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub exit: Option<i32>,
    pub state: Option<String>,
    /// Substring of the rule that required the recording.
    pub rule: Option<String>,
    /// Sessions whose command was approved through Case Management (`true`) or not (`false`).
    pub approved: Option<bool>,
    /// Sessions started with break glass (`true`) or without (`false`).
    pub break_glass: Option<bool>,
    /// Full-text terms (`q`), each a word or a phrase of normalised words; all must match.
    pub q: Vec<Vec<String>>,
    /// Keyset cursor: rows strictly older than `(sort_ts, id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// One recorded view of a session (DESIGN.md §12: every replay or download is itself recorded).
#[derive(Debug, Clone)]
pub struct ViewRow {
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// Token name or user name of the reader.
    pub viewer: String,
    pub role: String,
    pub session_id: String,
    /// `cast` (download or replay) or `live` (live follow).
    pub kind: String,
}

/// A signed-in person in the web UI (`web_logins`): the cookie value is stored as its SHA-256 only.
#[derive(Debug, Clone)]
pub struct LoginRow {
    /// SHA-256 (hex) of the cookie value.
    pub hash: String,
    pub user: String,
    /// The role the user had when signing in.
    pub role: Role,
    /// The per-login token every state-changing form carries.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The user's role now (`None`: the user was removed); filled by [`MetaStore::login_get`].
    pub current_role: Option<Role>,
    /// The user's e-mail now; filled by [`MetaStore::login_get`] (per-session grants match it).
    pub current_email: Option<String>,
}

/// An OpenID Connect sign-in between the redirect to the provider and its callback (`oidc_pending`).
#[derive(Debug, Clone)]
pub struct OidcPending {
    /// SHA-256 (hex) of the `state` sent to the provider (the value itself lives only in the browser's cookie).
    pub state_hash: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go once signed in (a local path).
    pub next: String,
    pub expires_at: i64,
}

/// How far the search indexer got in one session (`search_progress`). Advanced only by a compare-and-set on
/// the counters, so two indexers never both store the same piece.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexProgress {
    /// Highest chunk whose output is indexed (-1: none).
    pub indexed_seq: i64,
    /// Bytes of the cast through `indexed_seq` (where the next chunk starts in the compacted cast).
    pub indexed_bytes: u64,
    /// Process events whose commands are indexed.
    pub events_done: u64,
    /// The session's own command is indexed.
    pub meta_done: bool,
    /// The session ended (or was abandoned) and its last words are indexed.
    pub final_done: bool,
    /// Normalised text carried to the next pass: the unfinished last word and a few words before it.
    pub tail: String,
}

/// One index row to store.
#[derive(Debug, Clone)]
pub struct IndexDoc {
    /// `output` or `command`.
    pub kind: &'static str,
    /// Chunks the output came from; -1 for commands.
    pub first_seq: i64,
    pub last_seq: i64,
    /// Position of this row among those of one indexing pass.
    pub part: i64,
    /// Normalised text (see `search::normalise`).
    pub text: String,
    /// Output rows: the text and when its words were printed (`searchmatch::encode`), so a hit has a time.
    pub times: Option<Vec<u8>>,
}

/// The terminal at one point of a recording (`crate::keyframes`): where a window starts playing from.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyframe {
    /// Position in the session's index, from 0 (the empty screen right after the header).
    pub idx: i64,
    /// Recording time of the last event applied, seconds.
    pub t: f64,
    /// Byte offset in the cast (chunks concatenated, so compacted or not) where the following events start.
    pub offset: u64,
    pub cols: u32,
    pub rows: u32,
    /// `avt::Terminal::dump()` of the screen, gzip-compressed.
    pub screen: Vec<u8>,
}

/// Complete sessions from this size on get their keyframe index built in the background, before anyone asks
/// (smaller ones are built on the first request, in milliseconds). Migration 0005's partial index
/// `sessions_kf_todo` repeats the number: the query must name it literally for the index to serve it.
pub const KEYFRAMES_EAGER_BYTES: u64 = 1 << 20;

/// How far a session's keyframe index got. Advanced only by a compare-and-set on these values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyframeProgress {
    /// Keyframes stored (their `idx` are `0..frames`).
    pub frames: i64,
    /// Bytes of the cast read: the end of the last complete line the builder saw.
    pub bytes: u64,
    /// Time of the last event read, seconds: the recording's duration so far.
    pub time: f64,
    /// The session was complete and all of it was read: nothing will ever be added.
    pub done: bool,
}

/// The outcome of inserting a chunk row.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkInsert {
    /// The row is committed; the session's new commit point.
    Inserted { committed_seq: Option<u64> },
    /// A row for this seq already exists (a concurrent request won): compare against it.
    Exists(ChunkRow),
    /// Chunk 0 names a chain root other than the stored create body's hash; nothing was written.
    Refused(String),
}

/// Decodes the `near` column of `session_and_near`'s query: a JSON array of `[seq, sha256, prev_sha256,
/// len]` arrays (the same on SQLite and PostgreSQL).
pub(crate) fn near_rows(json: &str) -> Result<Vec<ChunkRow>> {
    let rows: Vec<(i64, String, Option<String>, i64)> = serde_json::from_str(json)
        .map_err(|e| StoreError::Unavailable(format!("neighbouring chunk rows: {e}")))?;
    let mut out: Vec<ChunkRow> = rows
        .into_iter()
        .map(|(seq, sha256, prev_sha256, len)| ChunkRow {
            seq: seq as u64,
            sha256,
            prev_sha256,
            len: len as u64,
            pack: None,
        })
        .collect();
    out.sort_by_key(|c| c.seq);
    Ok(out)
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    async fn token_insert(
        &self,
        name: &str,
        role: Role,
        host: Option<&str>,
        hash: &str,
        now: i64,
    ) -> Result<i64>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;
    async fn token_touch(&self, id: i64, now: i64) -> Result<()>;
    async fn token_list(&self) -> Result<Vec<TokenRow>>;
    /// Revokes by name; false when no live token has that name.
    async fn token_revoke(&self, name: &str, now: i64) -> Result<bool>;

    async fn user_insert(
        &self,
        name: &str,
        role: Role,
        password: &str,
        email: Option<&str>,
        now: i64,
    ) -> Result<()>;
    /// Sets or clears a user's e-mail; false when no such user.
    async fn user_set_email(&self, name: &str, email: Option<&str>) -> Result<bool>;
    async fn user_get(&self, name: &str) -> Result<Option<UserRow>>;
    /// Every user, by name (the admin page).
    async fn user_list(&self) -> Result<Vec<UserRow>>;
    /// False when no such user.
    async fn user_set_password(&self, name: &str, password: &str) -> Result<bool>;
    async fn user_remove(&self, name: &str) -> Result<bool>;
    /// Changes a user's role (their logins with the old role stop holding); false when no such user.
    async fn user_set_role(&self, name: &str, role: Role) -> Result<bool>;

    async fn session_get(&self, id: &str) -> Result<Option<SessionRow>>;
    /// Inserts the row unless one exists; returns the row as stored either way.
    async fn session_claim(&self, new: &NewSession) -> Result<SessionRow>;
    /// Fills the create's metadata into a row that has none yet, unless a stored chunk 0 names another chain
    /// root; false when nothing was written (the caller re-reads the row to say why).
    async fn session_set_meta(&self, id: &str, meta: &SessionMeta, now: i64) -> Result<bool>;
    /// Records the end (`last_seq`, `ended_at`, `exit_status`) once.
    async fn session_set_end(
        &self,
        id: &str,
        ended_at: &str,
        exit_status: Option<i32>,
        last_seq: u64,
        now: i64,
    ) -> Result<()>;
    /// Marks the session complete and its `<id>.cast` written. The first call for a session also releases
    /// its chunks' hold on their packs, and returns the packs no chunk reads from any more (for the caller to
    /// delete, then [`MetaStore::packs_forget`]); later calls return nothing.
    async fn session_mark_compacted(&self, id: &str, now: i64) -> Result<Vec<String>>;
    async fn session_set_hold(&self, id: &str, hold: bool) -> Result<bool>;
    async fn session_list(&self, filter: &ListFilter) -> Result<Vec<SessionRow>>;
    /// Deletes the session's rows. When it was not compacted, its chunks' hold on their packs is released
    /// as well; returns the packs no chunk reads from any more, like [`MetaStore::session_mark_compacted`].
    async fn session_delete(&self, id: &str) -> Result<Vec<String>>;
    /// Live sessions with no activity since `cutoff` become `abandoned`; returns how many.
    async fn sessions_abandon(&self, cutoff: i64) -> Result<u64>;
    /// Sessions first seen before `cutoff` and not on legal hold.
    async fn sessions_expired(&self, cutoff: i64) -> Result<Vec<SessionRow>>;
    async fn sessions_live_count(&self) -> Result<u64>;
    /// Ended sessions whose chunks are all stored but whose cast is not written yet.
    async fn sessions_to_compact(&self) -> Result<Vec<SessionRow>>;

    async fn chunk_get(&self, id: &str, seq: u64) -> Result<Option<ChunkRow>>;
    /// The rows of `seq - 1`, `seq` and `seq + 1` that exist, in one round trip (what a new chunk is checked
    /// against: its own replay and both neighbours' chain hashes).
    async fn chunks_near(&self, id: &str, seq: u64) -> Result<Vec<ChunkRow>>;
    /// The session's row and [`MetaStore::chunks_near`] in ONE read: what every chunk PUT checks (it used
    /// to be two reads besides the token's). None when the session does not exist.
    async fn session_and_near(&self, id: &str, seq: u64) -> Result<Option<(SessionRow, Vec<ChunkRow>)>>;
    /// Inserts the rows of a batch of chunks (session id, row) in ONE transaction, so a single commit (one
    /// WAL sync) makes many hosts' chunks durable at once: each row advances its session's commit point,
    /// bumps activity and reopens an abandoned session. One outcome per item, in order (an inserted row
    /// carries its session's commit point after the whole batch); an error means nothing of the batch was
    /// committed. Every pack a row names must be reserved ([`MetaStore::pack_reserve`]) and is sealed by
    /// this commit, holding as many reads as rows of it were inserted; a pack with no reservation (swept as
    /// stale) fails the batch, and the hosts resend.
    async fn chunks_commit(&self, batch: &[(String, ChunkRow)], now: i64) -> Result<Vec<ChunkInsert>>;
    async fn chunks(&self, id: &str) -> Result<Vec<ChunkRow>>;
    /// The stored rows with `from <= seq <= to`, in order: one read for a reader that walks a range.
    async fn chunks_between(&self, id: &str, from: u64, to: u64) -> Result<Vec<ChunkRow>>;

    /// Records a pack object about to be written, before any byte of it is: a pack whose batch never
    /// commits (crash, database outage) is then still found and deleted by [`MetaStore::packs_dead`], not
    /// left behind unnamed. `chunks_commit` seals it with the count of its chunks that were inserted.
    async fn pack_reserve(&self, key: &str, now: i64) -> Result<()>;
    /// Packs to delete: sealed and read by no chunk, or reserved before `stale_before` and never sealed.
    async fn packs_dead(&self, stale_before: i64, limit: u32) -> Result<Vec<String>>;
    /// Drops the rows of deleted packs (only those still dead).
    async fn packs_forget(&self, keys: &[String]) -> Result<()>;

    /// Appends events not already stored (same digest); returns how many were new.
    async fn events_insert(&self, id: &str, events: &[(String, String)], now: i64) -> Result<u64>;
    /// Event bodies in arrival order.
    async fn events(&self, id: &str) -> Result<Vec<String>>;

    /// Records a view before its bytes are served.
    async fn view_insert(&self, at: i64, viewer: &str, role: Role, session: &str, kind: &str) -> Result<()>;
    /// Views newest first, optionally of one session and/or by one viewer, with ids below `before` (a cursor).
    async fn views(
        &self,
        session: Option<&str>,
        viewer: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ViewRow>>;

    /// Stores a new web login (`current_role` is ignored).
    async fn login_insert(&self, login: &LoginRow) -> Result<()>;
    /// The login with this cookie hash and its user's current role, whatever its expiry (the caller decides).
    async fn login_get(&self, hash: &str) -> Result<Option<LoginRow>>;
    /// Signs one login out.
    async fn login_delete(&self, hash: &str) -> Result<()>;
    /// Signs every login of a user out (password changed, user removed); returns how many.
    async fn logins_delete_user(&self, user: &str) -> Result<u64>;
    /// Deletes expired logins and login failures older than `failures_before`.
    async fn logins_purge(&self, now: i64, failures_before: i64) -> Result<()>;
    /// Records a failed sign-in (the user name as typed, existing or not).
    async fn login_failure_insert(&self, at: i64, user: &str, addr: &str) -> Result<()>;
    /// Failed sign-ins since `since`: (for this user name, from this client address).
    async fn login_failures(&self, user: &str, addr: &str, since: i64) -> Result<(u64, u64)>;

    /// Stores a sign-in started with an OpenID provider, first purging those expired at `now`.
    async fn oidc_pending_insert(&self, p: &OidcPending, now: i64) -> Result<()>;
    /// Deletes and returns the pending sign-in with this state hash (expired or not: the caller decides).
    async fn oidc_pending_take(&self, state_hash: &str) -> Result<Option<OidcPending>>;

    /// Sessions with output, commands or an end not indexed yet, and no indexer's lease live at `now`.
    async fn index_pending(&self, now: i64, limit: u32) -> Result<Vec<String>>;
    /// Takes the indexing lease of one session until `until` (creating its progress row); `None` when another
    /// indexer holds a live lease.
    async fn index_claim(&self, id: &str, now: i64, until: i64) -> Result<Option<IndexProgress>>;
    /// Stores `docs` and moves the progress from `from` to `to` in one transaction, releasing the lease; false
    /// (and nothing stored) when the progress is no longer `from` (another indexer moved it, or the session
    /// was deleted).
    async fn index_commit(
        &self,
        id: &str,
        from: &IndexProgress,
        to: &IndexProgress,
        docs: &[IndexDoc],
    ) -> Result<bool>;
    /// The stored times (`IndexDoc::times`) of the session's output rows that may contain `term` (a word, or
    /// a phrase of words), earliest first, at most `limit` from the `skip`th on; rows indexed without times
    /// are left out. A candidate, not a proof: PostgreSQL keeps at most 256 positions of a word in a
    /// `tsvector`, so its phrase match is lossy in long rows and it is asked for rows holding every word;
    /// the caller finds the phrase in the row's own text ([`crate::searchmatch::locate`]).
    async fn index_times_candidates(
        &self,
        id: &str,
        term: &[String],
        skip: i64,
        limit: i64,
    ) -> Result<Vec<Vec<u8>>>;

    /// The keyframe index's progress (all zero when none was built); `None` when the session does not exist.
    async fn keyframe_progress(&self, id: &str) -> Result<Option<KeyframeProgress>>;
    /// Every keyframe's (time, offset), in order, without screens: what a seek bar needs.
    async fn keyframe_times(&self, id: &str) -> Result<Vec<(f64, u64)>>;
    /// The last keyframe at or before `at` seconds (the first one when `at` is before it), with its screen.
    async fn keyframe_at(&self, id: &str, at: f64) -> Result<Option<Keyframe>>;
    /// Stores `frames` (idx from `from.frames` on) and moves the progress from `from` to `to` in one
    /// transaction; false (and nothing stored) when the progress is no longer `from` (another builder moved
    /// it, or the session was deleted).
    async fn keyframes_commit(
        &self,
        id: &str,
        from: &KeyframeProgress,
        to: &KeyframeProgress,
        frames: &[Keyframe],
    ) -> Result<bool>;
    /// Complete sessions of at least [`KEYFRAMES_EAGER_BYTES`] (as compacted) whose keyframe index is not
    /// finished, oldest first.
    async fn keyframes_pending(&self, limit: u32) -> Result<Vec<String>>;
}
