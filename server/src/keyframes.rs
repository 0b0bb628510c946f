//! The keyframe index of a recording: the terminal's screen every [`EVERY_SECONDS`] of recording time or
//! [`EVERY_BYTES`] of cast, stored in the database, so a window (`crate::window`) starts from the nearest
//! stored screen instead of replaying the recording from its beginning (DESIGN.md §11: a 1-hour, 200 MB
//! recording opens and seeks in <= 1 s).
//!
//! Built once and extended, never recomputed per request: complete sessions of 1 MiB or more in the
//! background soon after they complete, any other session on the first request that needs it, and a session
//! that grew since (live, or reopened) from its last keyframe on. The build streams the cast (ranged reads,
//! one terminal, at most [`COMMIT_FRAMES`] frames held), commits by compare-and-set on the progress (so two
//! builders, in one process or in two replicas, never both store frames), and runs one at a time per process
//! (a [`BUILDS`] permit), which bounds its memory and CPU whatever the number of requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::castread::CastReader;
use crate::error::{ApiError, ApiResult};
use crate::replay::{parse_event, Replay};
use crate::state::AppState;
use crate::store::{Keyframe, KeyframeProgress, SessionRow};

/// A keyframe at least every this many seconds of recording time: a window then replays at most this much
/// before the point asked for, however slow the output (a few KiB of screen per frame, gzip'd to ~1 KiB).
pub const EVERY_SECONDS: f64 = 10.0;
/// ... and at least every this many bytes of cast: a 200 MB hour of fast output gets ~800 frames (under
/// 1 MB of screens), and the player replays at most 256 KiB before the point asked for (milliseconds).
pub const EVERY_BYTES: u64 = 256 << 10;
/// ... but never before this many times the last stored screen's size of cast has passed: the stored
/// screens stay under a quarter of the recording however big and busy its screen (a hostile 1000x500 screen
/// of random colours redrawn by one byte every 10 s must not make the database grow faster than the cast).
pub const SCREEN_SHARE: u64 = 4;
/// Frames committed per transaction while building: bounds the builder's memory and makes a long build
/// resumable (a crash or a lost race loses at most this many frames of work).
pub const COMMIT_FRAMES: usize = 64;
/// Builds at once in this process.
static BUILDS: Semaphore = Semaphore::const_new(1);
/// Pause of the background builder when there was nothing to do.
const IDLE: Duration = Duration::from_secs(2);
/// How long the background builder leaves a session whose build failed.
const RETRY_FAILED: Duration = Duration::from_secs(600);

/// The session's keyframe progress, after building or extending its index when it lags the committed cast.
/// `frames == 0` afterwards means no header has been stored yet.
pub async fn ensure(st: &AppState, row: &SessionRow) -> ApiResult<KeyframeProgress> {
    let current = progress(st, &row.id).await?;
    if up_to_date(st, row, &current).await? {
        return Ok(current);
    }
    let _permit = BUILDS.acquire().await.map_err(|_| ApiError::unavailable("shutting down"))?;
    // Another request (or replica) may have built it while this one waited.
    let row = st.meta.session_get(&row.id).await?.ok_or_else(|| ApiError::not_found("session deleted"))?;
    let mut from = progress(st, &row.id).await?;
    // One pass normally; again only after losing a race to another builder (which moved the progress).
    for _ in 0..3 {
        if up_to_date(st, &row, &from).await? {
            break;
        }
        match build(st, &row, &from).await? {
            Some(to) => return Ok(to),
            None => from = progress(st, &row.id).await?,
        }
    }
    Ok(from)
}

async fn progress(st: &AppState, id: &str) -> ApiResult<KeyframeProgress> {
    st.meta.keyframe_progress(id).await?.ok_or_else(|| ApiError::not_found(format!("no session {id}")))
}

/// Nothing left to index: done, or every committed line already read.
async fn up_to_date(st: &AppState, row: &SessionRow, p: &KeyframeProgress) -> ApiResult<bool> {
    if p.done {
        return Ok(true);
    }
    if row.compacted {
        return Ok(false);
    }
    let end = CastReader::open(st, row, p.bytes).await?.end();
    // A live session whose committed bytes were all read (`bytes` stops at the last complete line, so a
    // trailing half line would look stale forever: compare against the layout's end only for new chunks).
    Ok((p.frames > 0 && p.bytes >= end) || row.committed_seq.is_none())
}

/// One build pass from `from` to the end of the committed cast, committing every [`COMMIT_FRAMES`] frames.
/// Returns the progress reached, or `None` when a commit lost the compare-and-set.
async fn build(
    st: &AppState,
    row: &SessionRow,
    from: &KeyframeProgress,
) -> ApiResult<Option<KeyframeProgress>> {
    let final_ = row.compacted;
    let (mut replay, mut last, mut reader) = if from.frames == 0 {
        let mut reader = CastReader::open(st, row, 0).await?;
        let Some((header, after)) = reader.next_line(final_).await? else {
            return Ok(Some(from.clone()));
        };
        let replay = Replay::from_header(&header);
        let first = replay.keyframe(0, after);
        (replay, first, reader)
    } else {
        let kf = st
            .meta
            .keyframe_at(&row.id, f64::MAX)
            .await?
            .ok_or_else(|| ApiError::unavailable(format!("session {}: keyframes missing", row.id)))?;
        let reader = CastReader::open(st, row, kf.offset).await?;
        (Replay::from_keyframe(&kf)?, kf, reader)
    };
    let mut frames: Vec<Keyframe> = if from.frames == 0 { vec![last.clone()] } else { Vec::new() };
    let mut at = from.clone();
    let mut next_idx = last.idx + 1;
    let started = std::time::Instant::now();
    while let Some((line, after)) = reader.next_line(final_).await? {
        let Some((t, code, data)) = parse_event(&line) else { continue };
        replay.apply(t, &code, &data);
        let since = after - last.offset;
        if since >= SCREEN_SHARE * last.screen.len() as u64
            && (replay.time - last.t >= EVERY_SECONDS || since >= EVERY_BYTES)
        {
            last = replay.keyframe(next_idx, after);
            next_idx += 1;
            frames.push(last.clone());
            if frames.len() >= COMMIT_FRAMES {
                let to = KeyframeProgress { frames: next_idx, bytes: after, time: replay.time, done: false };
                if !st.meta.keyframes_commit(&row.id, &at, &to, &frames).await? {
                    return Ok(None);
                }
                frames.clear();
                at = to;
            }
        }
    }
    let to = KeyframeProgress {
        frames: next_idx,
        bytes: reader.position(),
        time: replay.time.max(at.time),
        done: final_ && reader.position() >= reader.end(),
    };
    if !st.meta.keyframes_commit(&row.id, &at, &to, &frames).await? {
        return Ok(None);
    }
    tracing::info!(
        session = %row.id, frames = to.frames, bytes = to.bytes - from.bytes.min(to.bytes),
        ms = started.elapsed().as_millis() as u64, "keyframes built"
    );
    Ok(Some(to))
}

/// The background builder: complete sessions of 1 MiB or more get their index before anyone opens them. A
/// session whose build fails is left alone for [`RETRY_FAILED`] (it is built on request meanwhile).
pub async fn run_forever(st: AppState) {
    let mut failed: HashMap<String, Instant> = HashMap::new();
    loop {
        failed.retain(|_, at| at.elapsed() < RETRY_FAILED);
        match run_once(&st, &mut failed).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(_) => tokio::task::yield_now().await,
            Err(e) => {
                tracing::warn!(error = %e.message, "keyframe builder pass failed");
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

/// One pass over pending sessions, skipping those in `failed`; returns how many were built.
pub async fn run_once(st: &AppState, failed: &mut HashMap<String, Instant>) -> ApiResult<usize> {
    let mut built = 0;
    for id in st.meta.keyframes_pending(8 + failed.len() as u32).await? {
        if failed.contains_key(&id) {
            continue;
        }
        let Some(row) = st.meta.session_get(&id).await? else { continue };
        match ensure(st, &row).await {
            Ok(p) if p.done => built += 1,
            Ok(_) => {
                failed.insert(id, Instant::now());
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e.message, "keyframe build failed");
                failed.insert(id, Instant::now());
            }
        }
    }
    Ok(built)
}
