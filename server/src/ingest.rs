//! The ingest path: create, chunk, events, end, compaction. This file alone owns the commit order
//! (DESIGN.md §12, STYLE §12): an object is durable before the row that names it commits, and an answer is
//! sent only after the row committed. Handlers parse and authenticate; everything that decides is here.

use axum::http::StatusCode;
use bytes::Bytes;
use ddcoterm_wire::{
    chain_root, chunk_hash, CommitAnswer, CreateAnswer, CreateSession, EndSession, ProcessEvent,
    PREV_HASH_HEADER,
};

use crate::auth::Principal;
use crate::commit::Staged;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::objects::{ObjectError, Put};
use crate::packs;
use crate::state::AppState;
use crate::store::{ChunkInsert, ChunkRow, NewSession, SessionMeta, SessionRow};

/// Largest seq accepted: far beyond any session (a chunk per 250 ms for 80 years), and safe in an i64 column.
pub const MAX_SEQ: u64 = 1 << 40;

pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Session ids are path components and object key parts: 1-128 of `[A-Za-z0-9_-]` (UUIDs fit), so `/`, `..`,
/// NUL and every other surprise are refused before anything is looked up.
pub fn validate_id(id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "session id {:?} is invalid: 1-128 characters of A-Z a-z 0-9 - _",
            id.chars().take(140).collect::<String>()
        )))
    }
}

pub fn parse_seq(s: &str) -> ApiResult<u64> {
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_SEQ => Ok(n),
        _ => Err(ApiError::bad_request(format!("seq {s:?} is not an integer between 0 and {MAX_SEQ}"))),
    }
}

fn parse_time(field: &str, v: &str) -> ApiResult<time::OffsetDateTime> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::invalid(format!("field `{field}`: {v:?} is not an RFC 3339 time ({e})")))
}

/// `sessions/<yyyy>/<mm>/<dd>/<id>`, dated by the server's clock at first contact, so a chunk that comes
/// before its create lands where the create's session will look.
fn prefix(id: &str, now_ms: i64) -> String {
    format!("sessions/{}/{id}", dated(now_ms))
}

/// `<yyyy>/<mm>/<dd>` of `now_ms` (UTC): the date part of session prefixes and pack keys.
pub(crate) fn dated(now_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}/{:02}/{:02}", t.year(), t.month() as u8, t.day())
}

pub fn chunk_key(s: &SessionRow, seq: u64) -> String {
    format!("{}/{seq:08}", s.prefix)
}

pub fn cast_key(s: &SessionRow) -> String {
    format!("{}/{}.cast", s.prefix, s.id)
}

pub fn state_of(s: &SessionRow) -> String {
    s.state.clone()
}

fn host_token(who: &Principal) -> ApiResult<i64> {
    who.token_id.ok_or_else(|| ApiError::forbidden("only host tokens write sessions"))
}

/// Creates the session row for a first contact (or reads the one another request or replica claimed).
async fn claim(st: &AppState, who: &Principal, id: &str) -> ApiResult<SessionRow> {
    let token = host_token(who)?;
    let now = now_ms();
    let host = who.host.clone().unwrap_or_else(|| who.name.clone());
    let new = NewSession { id: id.to_string(), owner_token: token, host, prefix: prefix(id, now), now };
    Ok(st.meta.session_claim(&new).await?)
}

/// Refuses a caller whose host token does not own `row`.
fn check_owner(who: &Principal, row: SessionRow) -> ApiResult<SessionRow> {
    if row.owner_token != host_token(who)? {
        return Err(ApiError::forbidden(format!("session {} belongs to another host token", row.id)));
    }
    Ok(row)
}

/// Finds or creates the session row, and refuses a caller that does not own it.
async fn owned_session(st: &AppState, who: &Principal, id: &str) -> ApiResult<SessionRow> {
    host_token(who)?;
    let row = match st.meta.session_get(id).await? {
        Some(r) => r,
        None => claim(st, who, id).await?,
    };
    check_owner(who, row)
}

/// [`owned_session`] and the rows of chunks `seq - 1..=seq + 1`: from what this process last committed for
/// the session when `seq` is the next in order ([`crate::tails`]), else in one read when the session exists
/// (every chunk after the first contact). The caller holds the session's lock.
async fn owned_session_near(
    st: &AppState,
    who: &Principal,
    id: &str,
    seq: u64,
) -> ApiResult<(SessionRow, Vec<ChunkRow>)> {
    host_token(who)?;
    if let Some((row, last)) = st.tails.take(id, seq) {
        // Chunks `seq` and `seq + 1` are known not to be stored: only `seq - 1` is near.
        return Ok((check_owner(who, row)?, vec![last]));
    }
    match st.meta.session_and_near(id, seq).await? {
        Some((row, near)) => Ok((check_owner(who, row)?, near)),
        None => {
            let row = check_owner(who, claim(st, who, id).await?)?;
            // Another request or replica may have claimed it first and stored chunks since.
            Ok((row, st.meta.chunks_near(id, seq).await?))
        }
    }
}

/// Records the session's metadata and the root of its hash chain: the SHA-256 of `raw`, the create body
/// exactly as decoded, which chunk 0 must carry (in either arrival order).
pub async fn create(
    st: &AppState,
    who: &Principal,
    body: CreateSession,
    raw: &[u8],
) -> ApiResult<(StatusCode, CreateAnswer)> {
    validate_id(&body.id)?;
    let started = parse_time("started_at", &body.started_at)?;
    if !(1..=10_000).contains(&body.width) || !(1..=10_000).contains(&body.height) {
        return Err(ApiError::invalid(format!(
            "fields `width`/`height`: {}x{} is outside 1..10000",
            body.width, body.height
        )));
    }
    crate::grants::validate(&body)?;
    let _guard = st.lock_session(&body.id).await;
    st.tails.forget(&body.id);
    let row = owned_session(st, who, &body.id).await?;
    let meta_json = serde_json::to_string(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let root = chain_root(raw);
    let status = match &row.meta_json {
        None => {
            let mismatch = || {
                ApiError::conflict(format!(
                    "session {}: the create body's SHA-256 is not the {PREV_HASH_HEADER} its stored chunk 0 \
                     carries (the body must be sent byte for byte as hashed)",
                    body.id
                ))
            };
            if let Some(c0) = st.meta.chunk_get(&body.id, 0).await? {
                if c0.prev_sha256.as_deref() != Some(root.as_str()) {
                    return Err(mismatch());
                }
            }
            let create_body = String::from_utf8(raw.to_vec())
                .map_err(|_| ApiError::bad_request("create body is not UTF-8"))?;
            let meta = SessionMeta {
                meta_json: meta_json.clone(),
                user: body.user.clone(),
                command: body.command.clone(),
                sort_ts: (started.unix_timestamp_nanos() / 1_000_000) as i64,
                create_sha256: root,
                create_body,
            };
            if st.meta.session_set_meta(&body.id, &meta, now_ms()).await? {
                StatusCode::CREATED
            } else {
                // Another server process got there first: a create or a chunk 0 decided the root.
                let now = st.meta.session_get(&body.id).await?;
                match now.and_then(|r| r.meta_json) {
                    Some(stored) if stored == meta_json => StatusCode::OK,
                    Some(_) => {
                        return Err(ApiError::conflict(format!(
                            "session {} exists with other metadata",
                            body.id
                        )))
                    }
                    None => return Err(mismatch()),
                }
            }
        }
        Some(stored) if *stored == meta_json => StatusCode::OK,
        Some(_) => {
            return Err(ApiError::conflict(format!("session {} exists with other metadata", body.id)));
        }
    };
    let answer =
        CreateAnswer { url: st.session_url(&body.id), id: body.id, committed_seq: row.committed_seq };
    Ok((status, answer))
}

/// Checks a chunk body before anything is stored: UTF-8 asciicast v2 lines, each complete. Chunk 0 starts
/// with the header object; every other line is an event array.
pub fn validate_chunk(seq: u64, body: &[u8]) -> ApiResult<()> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("chunk is not UTF-8 (byte {})", e.valid_up_to())))?;
    if text.is_empty() {
        return Err(ApiError::bad_request("chunk is empty"));
    }
    if !text.ends_with('\n') {
        return Err(ApiError::bad_request("chunk must end with a newline (whole asciicast lines only)"));
    }
    for (i, line) in text.lines().enumerate() {
        let not_json =
            |e: serde_json::Error| ApiError::bad_request(format!("chunk line {}: not JSON ({e})", i + 1));
        if seq == 0 && i == 0 {
            let v: serde_json::Value = serde_json::from_str(line).map_err(not_json)?;
            if v.get("version").and_then(|v| v.as_u64()) != Some(2) {
                return Err(ApiError::invalid(
                    "chunk 0 line 1 must be an asciicast v2 header (\"version\": 2)",
                ));
            }
            continue;
        }
        // Checked, not built: an event line is validated as JSON without allocating its values.
        serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(not_json)?;
        if !line.trim_start().starts_with('[') {
            return Err(ApiError::invalid(format!(
                "chunk line {}: an asciicast event must be a JSON array",
                i + 1
            )));
        }
    }
    Ok(())
}

/// Stores one chunk. Order: checks, object (durable), row (commit point), answer; a failure before the row
/// leaves nothing acknowledged, so the host's spool resends.
pub async fn put_chunk(
    st: &AppState,
    who: &Principal,
    id: &str,
    seq: u64,
    prev: Option<&str>,
    body: Bytes,
) -> ApiResult<(StatusCode, CommitAnswer)> {
    validate_id(id)?;
    let what = if seq == 0 {
        "chain root: SHA-256 of the session's create body".to_string()
    } else {
        format!("SHA-256 of chunk {}", seq - 1)
    };
    let prev = match prev {
        None => {
            return Err(ApiError::bad_request(format!(
                "chunk {seq} needs header {PREV_HASH_HEADER} ({what})"
            )))
        }
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            h.to_string()
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "header {PREV_HASH_HEADER} must be 64 lowercase hex digits ({what})"
            )))
        }
    };
    validate_chunk(seq, &body)?;
    let sha = chunk_hash(&body);
    let _guard = st.lock_session(id).await;
    let (row, near) = owned_session_near(st, who, id, seq).await?;
    let at = |s: u64| near.iter().find(|c| c.seq == s);
    if let Some(existing) = at(seq) {
        return replay(st, &row, existing, &sha, &prev);
    }
    if seq == 0 {
        if let Some(root) = &row.create_sha256 {
            if *root != prev {
                return Err(ApiError::conflict(format!(
                    "chunk 0: header {PREV_HASH_HEADER} does not match the SHA-256 of the session's create body"
                )));
            }
        }
    }
    if let Some(last) = row.last_seq {
        if seq > last {
            return Err(ApiError::conflict(format!(
                "chunk {seq} is past the session's end (last_seq {last})"
            )));
        }
    }
    if let Some(before) = seq.checked_sub(1) {
        if let Some(b) = at(before) {
            if b.sha256 != prev {
                return Err(ApiError::conflict(format!(
                    "chunk {seq}: previous-chunk hash does not match chunk {before}"
                )));
            }
        }
    }
    if let Some(after) = at(seq + 1) {
        if after.prev_sha256.as_deref() != Some(sha.as_str()) {
            return Err(ApiError::conflict(format!(
                "chunk {seq}: chunk {} names another previous hash",
                seq + 1
            )));
        }
    }
    let len = body.len() as u64;
    let staged = if st.commits.packs() {
        // The bytes go into the batch's pack, written by the commit queue's sync stage.
        Staged::Pack(body)
    } else {
        let key = chunk_key(&row, seq);
        let put_started = std::time::Instant::now();
        let put = st.objects.put_create_staged(&key, body.clone()).await?;
        // Per-chunk object write time, beside the commit queue's per-batch times, to tell which part makes
        // the acknowledgement tail (`DDCOTERMD_LOG=ddcoterm_server::ingest=debug`).
        tracing::debug!(ms = put_started.elapsed().as_secs_f64() * 1e3, "object staged");
        if put == Put::Exists {
            // Left by an attempt that never reached its row (so never acknowledged): ours replaces it.
            if st.objects.get(&key).await.ok().as_ref() != Some(&body) {
                st.objects.put_overwrite(&key, body).await?;
            }
        }
        Staged::Object(key)
    };
    // The commit queue makes the chunk durable with the rest of its batch, then commits the row.
    let chunk = ChunkRow { seq, sha256: sha.clone(), prev_sha256: Some(prev.clone()), len, pack: None };
    let committed = match st.commits.commit(id, staged, chunk).await? {
        ChunkInsert::Inserted { committed_seq } => committed_seq,
        // Only another server process can get here (this one holds the session's lock).
        ChunkInsert::Exists(existing) => return replay(st, &row, &existing, &sha, &prev),
        ChunkInsert::Refused(why) => return Err(ApiError::conflict(why)),
    };
    st.live.committed(id);
    Metrics::add(&st.metrics.chunks_acked, 1);
    Metrics::add(&st.metrics.ingest_bytes, len);
    let mut state = if row.state == "abandoned" { "live".to_string() } else { row.state.clone() };
    let completes = matches!((row.last_seq, committed), (Some(last), Some(c)) if c >= last);
    if committed == Some(seq) && !completes {
        // This chunk is the commit point (nothing above it stored): the next one in order can be checked
        // against it without a read.
        let tail = ChunkRow { seq, sha256: sha.clone(), prev_sha256: Some(prev.clone()), len, pack: None };
        st.tails.put(SessionRow { committed_seq: committed, state: state.clone(), ..row.clone() }, tail);
    }
    if let (Some(last), Some(c)) = (row.last_seq, committed) {
        if c >= last {
            let fresh = st.meta.session_get(id).await?.unwrap_or(row);
            // The chunk is committed whatever happens next: a failed compaction is the completer's to
            // retry, not a reason to make the host resend.
            match compact(st, &fresh).await {
                Ok(()) => state = "complete".into(),
                Err(e) => tracing::warn!(session = %id, error = %e.message, "compaction deferred"),
            }
        }
    }
    Ok((StatusCode::CREATED, CommitAnswer { committed_seq: committed, state }))
}

fn replay(
    st: &AppState,
    row: &SessionRow,
    existing: &ChunkRow,
    sha: &str,
    prev: &str,
) -> ApiResult<(StatusCode, CommitAnswer)> {
    if existing.sha256 != sha || existing.prev_sha256.as_deref() != Some(prev) {
        return Err(ApiError::conflict(format!(
            "chunk {} of session {} is already stored with other bytes",
            existing.seq, row.id
        )));
    }
    Metrics::add(&st.metrics.chunks_replayed, 1);
    Ok((StatusCode::OK, CommitAnswer { committed_seq: row.committed_seq, state: state_of(row) }))
}

pub async fn add_events(
    st: &AppState,
    who: &Principal,
    id: &str,
    events: Vec<ProcessEvent>,
) -> ApiResult<CommitAnswer> {
    validate_id(id)?;
    let max = st.settings.raw.limits.max_events;
    if events.len() > max {
        return Err(ApiError::too_large(format!("{} events in one request; at most {max}", events.len())));
    }
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if e.command.is_empty() {
            return Err(ApiError::invalid(format!("event {i}: field `command` is empty")));
        }
        if let Some(t) = &e.started_at {
            parse_time(&format!("[{i}].started_at"), t)?;
        }
        let body = serde_json::to_string(e).map_err(|e| ApiError::bad_request(e.to_string()))?;
        rows.push((chunk_hash(body.as_bytes()), body));
    }
    let _guard = st.lock_session(id).await;
    let row = owned_session(st, who, id).await?;
    st.meta.events_insert(id, &rows, now_ms()).await?;
    Ok(CommitAnswer { committed_seq: row.committed_seq, state: state_of(&row) })
}

/// Records the end; the session completes (and is compacted) once chunks 0..=last_seq are stored. 200 when
/// complete, 202 while chunks are still missing.
pub async fn end(
    st: &AppState,
    who: &Principal,
    id: &str,
    body: EndSession,
) -> ApiResult<(StatusCode, CommitAnswer)> {
    validate_id(id)?;
    parse_time("ended_at", &body.ended_at)?;
    if body.last_seq > MAX_SEQ {
        return Err(ApiError::bad_request(format!("field `last_seq`: above {MAX_SEQ}")));
    }
    let _guard = st.lock_session(id).await;
    st.tails.forget(id);
    let row = owned_session(st, who, id).await?;
    match row.last_seq {
        Some(l) if l != body.last_seq => {
            return Err(ApiError::conflict(format!("session {id} already ended with last_seq {l}")));
        }
        Some(_) => {}
        None => {
            let chunks = st.meta.chunks(id).await?;
            if let Some(c) = chunks.iter().find(|c| c.seq > body.last_seq) {
                return Err(ApiError::invalid(format!(
                    "field `last_seq`: {} but chunk {} is stored",
                    body.last_seq, c.seq
                )));
            }
            st.meta.session_set_end(id, &body.ended_at, body.exit_status, body.last_seq, now_ms()).await?;
        }
    }
    st.live.committed(id);
    let row = st.meta.session_get(id).await?.unwrap_or(row);
    if row.committed_seq.is_some_and(|c| c >= body.last_seq) {
        if !row.compacted {
            compact(st, &row).await?;
        }
        return Ok((
            StatusCode::OK,
            CommitAnswer { committed_seq: row.committed_seq, state: "complete".into() },
        ));
    }
    Ok((StatusCode::ACCEPTED, CommitAnswer { committed_seq: row.committed_seq, state: state_of(&row) }))
}

/// Writes `<id>.cast` (chunks 0..=last_seq concatenated), marks the session complete, then drops the chunk
/// objects and the packs nothing reads from any more. A crash in between leaves either the chunks
/// (compaction reruns) or both (the row says which; the completer's pack sweep finds the packs).
pub async fn compact(st: &AppState, row: &SessionRow) -> ApiResult<()> {
    let Some(last) = row.last_seq else { return Ok(()) };
    let chunks = st.meta.chunks_between(&row.id, 0, last).await?;
    let mut cast = Vec::with_capacity(row.bytes as usize);
    for seq in 0..=last {
        let Some(c) = chunks.get(seq as usize).filter(|c| c.seq == seq) else {
            return Err(ApiError::unavailable(format!(
                "session {}: chunk {seq} has no row to compact",
                row.id
            )));
        };
        match packs::read_chunk(st, row, c).await {
            Ok(b) => cast.extend_from_slice(&b),
            // Another server process compacted it first and dropped the chunks: nothing left to do.
            Err(ObjectError::NotFound(_))
                if st.meta.session_get(&row.id).await?.is_some_and(|r| r.compacted) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    st.objects.put_overwrite(&cast_key(row), Bytes::from(cast)).await?;
    let unread_packs = st.meta.session_mark_compacted(&row.id, now_ms()).await?;
    Metrics::add(&st.metrics.compactions, 1);
    for c in chunks.iter().filter(|c| c.pack.is_none()) {
        if let Err(e) = st.objects.delete(&chunk_key(row, c.seq)).await {
            tracing::warn!(session = %row.id, seq = c.seq, error = %e, "leaving a compacted chunk object behind");
        }
    }
    packs::delete(st, &unread_packs).await;
    Ok(())
}

/// The recording as stored so far: the compacted cast, or chunks 0..=committed_seq.
pub async fn read_cast(st: &AppState, row: &SessionRow) -> ApiResult<Bytes> {
    if row.compacted {
        return Ok(st.objects.get(&cast_key(row)).await?);
    }
    let Some(c) = row.committed_seq else { return Ok(Bytes::new()) };
    let mut out = Vec::with_capacity(row.bytes as usize);
    for chunk in st.meta.chunks_between(&row.id, 0, c).await? {
        out.extend_from_slice(&packs::read_chunk(st, row, &chunk).await?);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_path_tricks() {
        for bad in ["", "a/b", "..", "a..b", "a\0b", "é", &"x".repeat(129), "a b", "a%2Fb"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["0192f0c4-7a1e-7c3e-9f55-1d2e3f4a5b6c", "s_1", &"x".repeat(128)] {
            assert!(validate_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn seq_bounds() {
        assert_eq!(parse_seq("0").unwrap(), 0);
        assert_eq!(parse_seq(&MAX_SEQ.to_string()).unwrap(), MAX_SEQ);
        for bad in ["-1", "18446744073709551616", "1e3", "", " 1", &(MAX_SEQ + 1).to_string()] {
            assert!(parse_seq(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunk_shapes() {
        assert!(validate_chunk(0, b"{\"version\":2,\"width\":80,\"height\":24}\n").is_ok());
        assert!(validate_chunk(0, b"{\"version\":3}\n").is_err());
        assert!(validate_chunk(1, b"[0.1,\"o\",\"hi\"]\n[0.2,\"o\",\"x\"]\n").is_ok());
        assert!(validate_chunk(1, b"[0.1,\"o\",\"hi\"]").is_err());
        assert!(validate_chunk(1, b"{\"version\":2}\n").is_err());
        assert!(validate_chunk(1, b"\xff\xfe\n").is_err());
        assert!(validate_chunk(1, b"").is_err());
    }

    #[test]
    fn prefix_is_dated() {
        assert_eq!(prefix("abc", 1_767_225_600_000), "sessions/2026/01/01/abc");
    }
}
