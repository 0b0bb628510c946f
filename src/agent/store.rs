//! The agent's storage: one function per frame kind, each storing first (fsync) and only then returning,
//! so that the server's ack means "on disk"; quotas are checked before a session starts, nothing is evicted.
//!
//! Layout under `agent.state_dir` (all 0700, owned by the agent's user):
//! `recordings/<user>/<session>.cast`, `spool/` (records on their way to the session server and Datadog),
//! `audit/audit.log` (one JSON line per audit record), `sessions/<session>` (claims: who owns an id, created
//! exclusively), `sessions/<session>.at` (progress, see `progress`; an agent restarted after a crash closes
//! from it the sessions it held).
//!
//! For the session server (DESIGN.md §12) the agent writes the same records as a personal recorder
//! (`upload::kinds`): the create, chunk 0 = the cast's header line (which the agent writes itself, with the
//! user and host it knows), chunk n + 1 = the recorder's chunk n, each with its `prev_sha256` fixed when it
//! is stored, process events, the end; so the server's copy is the agent's `.cast` byte for byte.

use super::progress::{self, Progress};
use super::proto::{codes, Audit, End, Open, Reply};
use crate::audit::AuditRecord;
use crate::config::settings::WhenFull;
use crate::datadog::payload::{self, LogBatcher};
use crate::model::{ProcessEvent, SessionMeta, Snapshot};
use crate::recorder::cast;
use crate::spool::{Class, Deliver, Record, Sender, SenderOptions, Spool};
use crate::upload::kinds::{self, Chain, KIND_AUDIT_PREFIX};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who is on the other end of a connection, from `SO_PEERCRED` (never from what the peer says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// The passwd name of `uid`, or `uid-<n>` when it has none (or one unfit for a directory name).
    pub user: String,
}

impl Peer {
    pub fn new(uid: u32, gid: u32, pid: u32) -> Peer {
        let name = crate::nss::user_by_uid(nix::unistd::Uid::from_raw(uid)).map(|u| u.name);
        let user = match name {
            Some(n) if safe_name(&n) => n,
            _ => format!("uid-{uid}"),
        };
        Peer { uid, gid, pid, user }
    }
}

/// A name used as a path component: no separators, no dot files, bounded.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Storage limits, from `agent.max_bytes`, `agent.user_quota_bytes`, `agent.when_full`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub user_quota_bytes: u64,
    pub when_full: WhenFull,
}

/// Where the agent's records go: what `ddcoterm agent` found configured (`server.url` with a host token,
/// Datadog keys). Records for a destination that is not configured are not written (audit records always
/// are), as in personal mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// The session server's base URL (links in the Datadog session event).
    pub server: Option<String>,
    pub datadog: bool,
}

/// One open session, owned by the connection streaming it.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub meta: SessionMeta,
    cast: File,
    pub cast_path: PathBuf,
    /// `sessions/<id>.at`, rewritten after each chunk (see `progress`).
    at: File,
    /// The cast's length, and where its last chunk starts.
    len: u64,
    prev_len: u64,
    /// The session server's seq and hash chain: chunk 0 is the header, the recorder's chunk n is n + 1.
    chain: Chain,
    /// The `prev_sha256` the last stored chunk carries (kept in the progress record).
    last_prev: String,
    last_t: f64,
    started: Instant,
    pub ended: bool,
}

/// The agent's state directory and its outbox.
pub struct Store {
    root: PathBuf,
    spool: Arc<Spool>,
    sender: Option<Sender>,
    dests: Destinations,
    limits: Limits,
    hostname: String,
    used: Mutex<Usage>,
}

/// How often at most the state dir is walked again to learn what it holds (the spool shrinks as records are
/// delivered, an administrator may archive recordings); in between, what the agent writes is added.
const RESCAN: Duration = Duration::from_secs(10);

/// Bytes under the state dir, and per user under their recordings dir.
struct Usage {
    total: u64,
    users: HashMap<String, u64>,
    scanned: Instant,
}

/// Creates `dir` 0700 and refuses one that others could write to or that another user owns.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let m = std::fs::symlink_metadata(dir)?;
    let euid = nix::unistd::geteuid().as_raw();
    if !m.is_dir() || m.uid() != euid || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by uid {euid} and writable by it alone (found uid {}, mode {:o})",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Total size of the regular files under `dir` (0 when it does not exist).
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A session id the agent accepts: it becomes a file name and a spool group.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn io_refusal(what: &str, e: impl std::fmt::Display) -> Reply {
    tracing::error!("storing {what}: {e}");
    Reply::refused(codes::IO, format!("the agent could not store {what}: {e}"))
}

impl Store {
    /// Opens (creating) the state dir. `dests` says which records are written, `deliver` sends them (the
    /// session server and Datadog with the agent's credentials); `None` keeps them spooled.
    pub fn open(
        root: &Path,
        limits: Limits,
        dests: Destinations,
        deliver: Option<Arc<dyn Deliver>>,
    ) -> anyhow::Result<Store> {
        for d in ["", "spool", "recordings", "audit", "sessions"] {
            private_dir(&root.join(d))?;
        }
        // Unbounded for the spool itself: it would evict the oldest chunks; the agent refuses new sessions
        // instead (see `check_room`).
        let spool = Arc::new(Spool::open(root.join("spool"), 0)?);
        let sender = deliver.map(|d| Sender::spawn(spool.clone(), d, SenderOptions::default()));
        let used = Usage { total: du(root), users: HashMap::new(), scanned: Instant::now() };
        let store = Store {
            root: root.to_path_buf(),
            spool,
            sender,
            dests,
            limits,
            hostname: crate::dirs::host_name(),
            used: Mutex::new(used),
        };
        store.recover();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The recorder's chunk `seq` this session expects next (the server's seq minus the header).
    pub fn expected_seq(s: &Session) -> u64 {
        s.chain.next_seq().saturating_sub(1)
    }

    fn spool_record(&self, rec: Record) -> anyhow::Result<()> {
        match &self.sender {
            Some(s) => s.enqueue(rec)?,
            None => self.spool.enqueue(rec)?,
        };
        Ok(())
    }

    /// Counts `n` bytes just written (for `user`'s recordings when given).
    fn add_used(&self, user: Option<&str>, n: u64) {
        if let Ok(mut u) = self.used.lock() {
            u.total += n;
            if let Some(b) = user.and_then(|name| u.users.get_mut(name)) {
                *b += n;
            }
        }
    }

    fn user_dir(&self, user: &str) -> PathBuf {
        self.root.join("recordings").join(user)
    }

    /// `Some(reason)` when a new session of `peer` must be refused for want of room.
    fn check_room(&self, peer: &Peer) -> Option<String> {
        let Ok(mut u) = self.used.lock() else { return Some("the agent's usage count is poisoned".into()) };
        if u.scanned.elapsed() >= RESCAN {
            *u = Usage { total: du(&self.root), users: HashMap::new(), scanned: Instant::now() };
        }
        let total = u.total;
        let mine = *u.users.entry(peer.user.clone()).or_insert_with(|| du(&self.user_dir(&peer.user)));
        if total >= self.limits.max_bytes {
            return Some(format!(
                "the agent's storage is full ({total} of {} bytes, agent.max_bytes); nothing was evicted",
                self.limits.max_bytes
            ));
        }
        if mine >= self.limits.user_quota_bytes {
            return Some(format!(
                "{}'s recordings use {mine} of {} bytes (agent.user_quota_bytes); nothing was evicted",
                peer.user, self.limits.user_quota_bytes
            ));
        }
        None
    }

    /// Opens a session: claim the id, write the cast header, spool the create record; then the reply.
    pub fn open_session(&self, peer: &Peer, open: Open) -> Result<Session, Reply> {
        let id = open.meta.session_id.clone();
        if !valid_session_id(&id) {
            return Err(Reply::refused(codes::BAD_REQUEST, "session id: 1-64 characters of [A-Za-z0-9_-]"));
        }
        let mut meta = open.meta;
        // Filed under the peer's user name and this host, whatever the recorder claimed.
        meta.user = peer.user.clone();
        meta.hostname = self.hostname.clone();
        meta.tags.retain(|t| !identity_tag(t));
        if let Some(why) = self.check_room(peer) {
            let mut reply = Reply::refused(codes::FULL, why.clone());
            if self.limits.when_full == WhenFull::RunUnrecorded {
                let rec = unrecorded_audit(&meta, &why);
                match self.store_audit(peer, Audit { what: "unrecorded".into(), record: rec }) {
                    Ok(()) => reply.run_unrecorded = true,
                    Err(r) => return Err(r),
                }
            }
            return Err(reply);
        }
        let claim = self.root.join("sessions").join(&id);
        let mut f = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&claim) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Reply::refused(codes::ID_TAKEN, format!("session id {id} is already used")))
            }
            Err(e) => return Err(io_refusal("the session claim", e)),
        };
        let stored = (|| -> anyhow::Result<(File, PathBuf, File, u64, Chain, String)> {
            writeln!(f, "uid={} pid={} user={}", peer.uid, peer.pid, peer.user)?;
            f.sync_all()?;
            let dir = self.user_dir(&peer.user);
            private_dir(&dir)?;
            let path = dir.join(format!("{id}.cast"));
            let mut cast = OpenOptions::new().append(true).create_new(true).mode(0o600).open(&path)?;
            let header = cast::header_line(&meta, &open.shell, &open.term);
            cast.write_all(&header)?;
            cast.sync_data()?;
            sync_dir(&dir)?;
            let hl = header.len() as u64;
            // The create and chunk 0 (the header) are spooled before the progress record exists: an agent that
            // dies in between never acknowledged the session, and its restart finds nothing to close.
            let (create, root) = kinds::create_record(&meta);
            let mut chain = Chain::new(root.clone());
            let chunk0 = chain.chunk(&id, header.clone());
            if self.dests.server.is_some() {
                self.spool_record(create)?;
                self.spool_record(chunk0)?;
            }
            // Written under a temporary name and renamed: a progress record is never seen half-written.
            let sessions = self.root.join("sessions");
            let tmp = sessions.join(format!(".{id}.at.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let at = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let p = Progress { next_seq: 1, prev_len: 0, len: hl, ended: false, prev_sha256: root.clone() };
            progress::write(&at, &p)?;
            std::fs::rename(&tmp, sessions.join(format!("{id}.at")))?;
            sync_dir(&sessions)?;
            self.add_used(Some(&peer.user), header.len() as u64);
            Ok((cast, path, at, hl, chain, root))
        })();
        let (cast, cast_path, at, hl, chain, root) =
            stored.map_err(|e| io_refusal("the session start", format!("{e:#}")))?;
        tracing::info!(session = %id, user = %peer.user, pid = peer.pid, "session opened");
        Ok(Session {
            id,
            meta,
            cast,
            cast_path,
            at,
            len: hl,
            prev_len: 0,
            chain,
            last_prev: root,
            last_t: 0.0,
            started: Instant::now(),
            ended: false,
        })
    }

    /// Appends a chunk to the cast (fdatasync), then spools it; on a spool error the cast is cut back so the
    /// two never disagree.
    pub fn chunk(&self, s: &mut Session, seq: u64, lines: Vec<u8>) -> Reply {
        if s.ended {
            return Reply::refused(codes::BAD_REQUEST, "the session has ended");
        }
        let expected = Store::expected_seq(s);
        if seq != expected {
            return Reply::refused(
                codes::BAD_REQUEST,
                format!("chunk {seq} out of order: expected {expected}"),
            );
        }
        if !event_lines(&lines) {
            return Reply::refused(
                codes::BAD_REQUEST,
                "a chunk is UTF-8 asciicast lines, each ending in a newline",
            );
        }
        let used = self.used.lock().map(|u| u.total).unwrap_or(u64::MAX);
        if used + lines.len() as u64 > self.limits.max_bytes {
            return Reply::refused(
                codes::FULL,
                format!(
                    "the agent's storage is full (agent.max_bytes = {}); nothing was evicted",
                    self.limits.max_bytes
                ),
            );
        }
        match self.append_chunk(s, lines) {
            Ok(()) => Reply::ok(),
            Err(e) => io_refusal("the chunk", format!("{e:#}")),
        }
    }

    /// The one place that orders a chunk's storage: cast (fdatasync), progress (fdatasync), spool (fsync); a
    /// failure undoes the earlier steps, so the cast, the progress and the spool never disagree.
    fn append_chunk(&self, s: &mut Session, lines: Vec<u8>) -> anyhow::Result<()> {
        let before = s.len;
        let n = lines.len() as u64;
        let last_t = last_time(&lines);
        let undo_cast = |s: &mut Session| {
            let _ = s.cast.set_len(before).and_then(|()| s.cast.sync_data());
        };
        if let Err(e) = s.cast.write_all(&lines).and_then(|()| s.cast.sync_data()) {
            undo_cast(s);
            return Err(e.into());
        }
        let was = Progress {
            next_seq: s.chain.next_seq(),
            prev_len: s.prev_len,
            len: before,
            ended: false,
            prev_sha256: s.last_prev.clone(),
        };
        let mut chain = s.chain.clone();
        let prev_sha256 = chain.prev().to_string();
        let rec = chain.chunk(&s.id, lines);
        let now = Progress {
            next_seq: chain.next_seq(),
            prev_len: before,
            len: before + n,
            ended: false,
            prev_sha256: prev_sha256.clone(),
        };
        if let Err(e) = progress::write(&s.at, &now) {
            undo_cast(s);
            let _ = progress::write(&s.at, &was);
            return Err(e.into());
        }
        if self.dests.server.is_some() {
            if let Err(e) = self.spool_record(rec) {
                undo_cast(s);
                let _ = progress::write(&s.at, &was);
                return Err(e);
            }
            // The same lines in the spool.
            self.add_used(None, n);
        }
        s.prev_len = before;
        s.len = before + n;
        s.chain = chain;
        s.last_prev = prev_sha256;
        self.add_used(Some(&s.meta.user), n);
        if let Some(t) = last_t {
            s.last_t = s.last_t.max(t);
        }
        Ok(())
    }

    pub fn event(&self, s: &Session, mut ev: ProcessEvent) -> Reply {
        ev.session_id = s.id.clone();
        ev.user = s.meta.user.clone();
        ev.hostname = s.meta.hostname.clone();
        ev.tags.retain(|t| !identity_tag(t));
        let mut res = Ok(());
        if self.dests.server.is_some() {
            res = self.spool_record(kinds::events_record(&ev));
        }
        if res.is_ok() && self.dests.datadog {
            res = self.spool_record(kinds::datadog_event_record(&ev));
        }
        match res {
            Ok(()) => Reply::ok(),
            Err(e) => io_refusal("the process event", format!("{e:#}")),
        }
    }

    pub fn snapshot(&self, s: &Session, mut snap: Snapshot) -> Reply {
        snap.session_id = s.id.clone();
        if !self.dests.datadog {
            return Reply::ok();
        }
        let mut b = LogBatcher::default();
        let first = b.push(&payload::log_entry(&s.meta, &snap));
        let Some(batch) = first.or_else(|| b.take()) else { return Reply::ok() };
        match self.spool_record(kinds::logs_record(&batch)) {
            Ok(()) => Reply::ok(),
            Err(e) => io_refusal("the snapshot", format!("{e:#}")),
        }
    }

    /// Audit records are stored whatever the quotas say (they are small and they are the evidence).
    pub fn store_audit(&self, peer: &Peer, mut a: Audit) -> Result<(), Reply> {
        if a.what.is_empty()
            || a.what.len() > 32
            || !a.what.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(Reply::refused(codes::BAD_REQUEST, "audit kind: 1-32 characters of [a-z_]"));
        }
        a.record.user = peer.user.clone();
        a.record.hostname = self.hostname.clone();
        a.record.tags.retain(|t| !identity_tag(t));
        a.record.tags.push(format!("user:{}", peer.user));
        a.record.tags.push(format!("host:{}", self.hostname));
        let res = (|| -> anyhow::Result<()> {
            let path = self.root.join("audit").join("audit.log");
            let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
            let mut line = serde_json::to_vec(&serde_json::json!({
                "event": a.what, "uid": peer.uid, "pid": peer.pid, "record": a.record
            }))?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_data()?;
            let body = serde_json::to_vec(&a.record)?;
            self.add_used(None, (line.len() + body.len()) as u64);
            self.spool_record(Record::new(format!("{KIND_AUDIT_PREFIX}{}", a.what), Class::Audit, body))
        })();
        res.map_err(|e| io_refusal("the audit record", format!("{e:#}")))
    }

    /// The recorder's end: spool the end record. The exit marker is already in the last chunk.
    pub fn end(&self, s: &mut Session, end: End) -> Reply {
        if s.ended {
            return Reply::refused(codes::BAD_REQUEST, "the session has already ended");
        }
        match self.spool_end(s, Some(end.exit_code), end.duration_ms, true) {
            Ok(()) => {
                self.mark_ended(s);
                tracing::info!(session = %s.id, exit = end.exit_code, "session ended");
                Reply::ok()
            }
            Err(e) => io_refusal("the session end", format!("{e:#}")),
        }
    }

    /// The recorder went away without an end (killed): everything acknowledged is already stored; close the
    /// recording with a marker saying so, as one more chunk, and spool the end.
    pub fn finalise_lost(&self, s: &mut Session, pid: u32) {
        self.close_lost(s, &format!("recorder lost (pid {pid} went away without ending the session)"), true);
    }

    /// Closes a session nobody will end: `why` as a marker event in one more chunk, then the end (exit status
    /// unknown); with `datadog_event`, also the Datadog session event (not after a restart: the session's
    /// metadata died with the previous agent).
    fn close_lost(&self, s: &mut Session, why: &str, datadog_event: bool) {
        if s.ended {
            return;
        }
        let t = s.last_t.max(s.started.elapsed().as_secs_f64());
        let mut line = Vec::new();
        cast::push_event(&mut line, t, "m", why);
        if let Err(e) = self.append_chunk(s, line) {
            tracing::error!(session = %s.id, "closing the lost session's recording: {e:#}");
        }
        let duration_ms = (t * 1000.0) as u64;
        // The exit status is not known: the recorder (or the agent) went away before the command ended.
        match self.spool_end(s, None, duration_ms, datadog_event) {
            Ok(()) => {
                self.mark_ended(s);
                tracing::warn!(session = %s.id, "{why}; session finalised from what was stored");
            }
            Err(e) => tracing::error!(session = %s.id, "spooling the lost session's end: {e:#}"),
        }
        s.ended = true;
    }

    /// Spools the session's end for the server (complete once chunks `0..=last` are stored) and, with
    /// `datadog_event` and Datadog configured, its `coterm_session` event with the server link.
    fn spool_end(
        &self,
        s: &Session,
        exit_code: Option<i32>,
        duration_ms: u64,
        datadog_event: bool,
    ) -> anyhow::Result<()> {
        if self.dests.server.is_some() {
            let last_seq = s.chain.next_seq().saturating_sub(1);
            self.spool_record(kinds::end_record(&s.id, crate::spool::now_ms(), exit_code, last_seq))?;
        }
        if datadog_event && self.dests.datadog {
            let link = self.dests.server.as_deref().map(|b| crate::upload::server::session_link(b, &s.id));
            self.spool_record(kinds::datadog_session_record(
                &s.meta,
                exit_code,
                duration_ms,
                link.as_deref(),
            ))?;
        }
        Ok(())
    }

    /// The end is spooled: recovery leaves the session alone from now on.
    fn mark_ended(&self, s: &mut Session) {
        s.ended = true;
        let p = Progress {
            next_seq: s.chain.next_seq(),
            prev_len: s.prev_len,
            len: s.len,
            ended: true,
            prev_sha256: s.last_prev.clone(),
        };
        if let Err(e) = progress::write(&s.at, &p) {
            tracing::error!(session = %s.id, "marking the session ended: {e}");
        }
    }

    /// After a restart: every session the previous agent held open is closed from what it had stored.
    fn recover(&self) {
        let dir = self.root.join("sessions");
        let Ok(rd) = std::fs::read_dir(&dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".at") else { continue };
            if let Err(err) = self.recover_one(id) {
                tracing::error!(session = %id, "recovering the session after a restart: {err:#}");
            }
        }
    }

    fn recover_one(&self, id: &str) -> anyhow::Result<()> {
        let sessions = self.root.join("sessions");
        let p = progress::read(&sessions.join(format!("{id}.at")))?;
        if p.ended {
            return Ok(());
        }
        let claim = std::fs::read_to_string(sessions.join(id))?;
        let user = claim
            .split_whitespace()
            .find_map(|w| w.strip_prefix("user="))
            .filter(|u| safe_name(u))
            .ok_or_else(|| anyhow::anyhow!("{}: no user", sessions.join(id).display()))?
            .to_string();
        let cast_path = self.user_dir(&user).join(format!("{id}.cast"));
        let cast = OpenOptions::new().read(true).append(true).open(&cast_path)?;
        // Lines past the recorded length were never acknowledged.
        cast.set_len(p.len)?;
        cast.sync_data()?;
        // The last stored chunk (the header when no other was): spooled again with the seq and the
        // `prev_sha256` it was first spooled with, a repeat the server accepts when it already has it.
        let mut last = vec![0u8; (p.len - p.prev_len) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&cast, &mut last, p.prev_len)?;
        let last_seq = p.next_seq - 1;
        if self.dests.server.is_some() {
            self.spool_record(kinds::chunk_record(id, last_seq, last.clone(), &p.prev_sha256))?;
        }
        let at = OpenOptions::new().write(true).open(sessions.join(format!("{id}.at")))?;
        let mut s = Session {
            id: id.to_string(),
            meta: SessionMeta { session_id: id.to_string(), user, ..Default::default() },
            cast,
            cast_path,
            at,
            len: p.len,
            prev_len: p.prev_len,
            chain: Chain::resume(last_seq, ddcoterm_wire::chunk_hash(&last)),
            last_prev: p.prev_sha256,
            last_t: last_time(&last).unwrap_or(0.0),
            started: Instant::now(),
            ended: false,
        };
        match last_exit(&last) {
            // The recorder had written its exit marker: only the end is missing. (No Datadog session event:
            // the session's metadata died with the agent; the server has it from the create.)
            Some(code) => {
                self.spool_end(&s, Some(code), (s.last_t * 1000.0) as u64, false)?;
                self.mark_ended(&mut s);
            }
            None => self.close_lost(
                &mut s,
                "recording interrupted: the agent stopped while the session was live",
                false,
            ),
        }
        Ok(())
    }
}

/// Tags that name who or where (`user:`, `host:`): the agent sets those itself; a recorder's are dropped.
fn identity_tag(t: &str) -> bool {
    t.starts_with("user:") || t.starts_with("host:")
}

fn unrecorded_audit(meta: &SessionMeta, why: &str) -> AuditRecord {
    AuditRecord {
        user: meta.user.clone(),
        hostname: meta.hostname.clone(),
        command: meta.command.clone(),
        cwd: meta.cwd.clone(),
        rule: meta.rule.clone(),
        reason: Some(why.to_string()),
        session_id: Some(meta.session_id.clone()),
        timestamp_ms: crate::spool::now_ms(),
        tags: vec!["unrecorded:true".into(), "reason:agent_full".into()],
    }
}

/// A chunk is asciicast event lines: UTF-8, each line `[...]` and newline-terminated. Anything else (a second
/// header, a line with no end) would make the agent's recording unreadable by players and the server.
fn event_lines(lines: &[u8]) -> bool {
    !lines.is_empty()
        && lines.ends_with(b"\n")
        && std::str::from_utf8(lines).is_ok()
        && lines[..lines.len() - 1]
            .split(|&b| b == b'\n')
            .all(|l| l.first() == Some(&b'[') && l.last() == Some(&b']'))
}

/// The exit status in the recorder's closing marker (`[t, "m", "exit 3"]`) when it is the last line.
fn last_exit(lines: &[u8]) -> Option<i32> {
    let body = lines.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = std::str::from_utf8(&body[start..]).ok()?;
    let rest = line.split_once(", \"m\", \"exit ")?.1;
    rest.strip_suffix("\"]")?.parse().ok()
}

/// The time of the last event line in `lines` (`[12.5, "o", ...]`).
fn last_time(lines: &[u8]) -> Option<f64> {
    let body = lines.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = &body[start..];
    let end = line.iter().position(|&b| b == b',')?;
    std::str::from_utf8(line.get(1..end)?).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_event_lines_only() {
        assert!(event_lines(b"[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]\n"));
        for bad in
            [&b""[..], b"[0.1, \"o\", \"a\"]", b"{\"version\": 2}\n", b"[0.1, \"o\", \"a\"]\n\n", b"[\xff]\n"]
        {
            assert!(!event_lines(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn last_event_time_is_read_from_the_last_line() {
        assert_eq!(last_time(b"[0.5, \"o\", \"a\"]\n[12.250000, \"o\", \"b\"]\n"), Some(12.25));
        assert_eq!(last_time(b"[3.0, \"m\", \"exit 0\"]\n"), Some(3.0));
        assert_eq!(last_time(b"garbage\n"), None);
        assert_eq!(last_time(b""), None);
    }

    #[test]
    fn ids_and_names_cannot_leave_their_directory() {
        for bad in ["", "../x", "a/b", ".", "x".repeat(65).as_str(), "a b"] {
            assert!(!valid_session_id(bad), "{bad:?}");
        }
        assert!(valid_session_id("0193b7e2-7c1d-7aaa-8000-000000000001"));
        assert!(!safe_name("..") && !safe_name(".hidden") && !safe_name("a/b") && safe_name("alice.smith"));
    }
}
