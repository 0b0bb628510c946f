//! Windows over a recording and the server's own rendering of a moment: a window is a small, valid asciicast
//! v2 document that starts from the keyframe at or before the moment asked for (its screen painted by the
//! first event, at t=0) and holds the events from there to `at + span`, times rebased; `/screen` is the
//! terminal at `at`, as text. Both read only the byte range they need (`crate::castread`).

use serde::Serialize;

use crate::castread::CastReader;
use crate::error::{ApiError, ApiResult};
use crate::keyframes;
use crate::replay::{parse_event, screen_text, Replay};
use crate::state::AppState;
use crate::store::{Keyframe, SessionRow};

/// Event bytes a window holds past `at` at most: a burst (a `cat` of a big file) ends the window early,
/// `ddcoterm_end` says where, and the page asks for the next one from there. Events up to `at` are always
/// included: at most one keyframe interval (`keyframes::EVERY_BYTES`) plus one event.
pub const MAX_BYTES_AFTER_AT: usize = 4 << 20;

/// A window, ready to serve.
pub struct Window {
    /// The asciicast document.
    pub body: Vec<u8>,
    /// Recording time of the window's t=0 (its keyframe), seconds.
    pub offset: f64,
    /// Recording time up to which the window holds every event.
    pub end: f64,
    /// No event of the recording (as stored so far) comes after the window.
    pub last: bool,
}

/// The keyframe for `at`, or 404 when nothing is recorded yet. The index is built or extended first only
/// when it does not reach `at` yet: a moment inside the part already indexed is served at once, even while
/// a build of the rest is under way (no later keyframe can be at or before it).
async fn keyframe(st: &AppState, row: &SessionRow, at: f64) -> ApiResult<Keyframe> {
    let p = st.meta.keyframe_progress(&row.id).await?.unwrap_or_default();
    let p = if p.frames > 0 && (p.done || at < p.time) { p } else { keyframes::ensure(st, row).await? };
    let none = || ApiError::not_found(format!("session {}: nothing recorded yet", row.id));
    if p.frames == 0 {
        return Err(none());
    }
    st.meta.keyframe_at(&row.id, at).await?.ok_or_else(none)
}

/// The recording's header line as a JSON object (empty when the first line is not one).
async fn header(st: &AppState, row: &SessionRow) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    let mut r = CastReader::open(st, row, 0).await?;
    let line = r.next_line(row.compacted).await?.map(|(l, _)| l).unwrap_or_default();
    Ok(serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default())
}

/// Rounds a time to microseconds for printing (asciicast times are seconds; f64 noise is not information).
fn micros(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

/// The window of `row` at `at` seconds, `span` seconds long. `at` past the end is the last keyframe onwards.
pub async fn window(st: &AppState, row: &SessionRow, at: f64, span: f64) -> ApiResult<Window> {
    let kf = keyframe(st, row, at).await?;
    let mut head = header(st, row).await?;
    // The keyframe's size (a resize before it is already applied); no idle_time_limit, whose compression
    // would make the player's clock differ from `ddcoterm_offset + t`; our own fields are ours to set.
    head.retain(|k, _| !k.starts_with("ddcoterm_") && k != "idle_time_limit");
    head.insert("version".into(), 2.into());
    head.insert("width".into(), kf.cols.into());
    head.insert("height".into(), kf.rows.into());
    head.insert("ddcoterm_offset".into(), micros(kf.t).into());

    let mut events = Vec::new();
    let paint = serde_json::to_string(&(0.0, "o", screen_text(&kf)?))
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    events.extend_from_slice(paint.as_bytes());
    events.push(b'\n');

    let mut reader = CastReader::open(st, row, kf.offset).await?;
    let (mut time, mut after_at) = (kf.t, 0usize);
    let limit = at + span;
    let mut end = None;
    while let Some((line, _)) = reader.next_line(row.compacted).await? {
        let Some((t, _, _)) = parse_event(&line) else { continue };
        let t = t.max(time);
        if t > at {
            if t > limit {
                end = Some(limit);
                break;
            }
            // At least one event past `at`, so that asking again from `ddcoterm_end` always moves on.
            if after_at > 0 && after_at + line.len() > MAX_BYTES_AFTER_AT {
                end = Some(time);
                break;
            }
            after_at += line.len() + 1;
        }
        time = t;
        // The line parsed as [number, string, string]: its first comma ends the time.
        let comma = line.iter().position(|&b| b == b',').unwrap_or(line.len());
        events.extend_from_slice(format!("[{}", micros(t - kf.t)).as_bytes());
        events.extend_from_slice(&line[comma..]);
        events.push(b'\n');
    }
    let last = end.is_none();
    let end = end.unwrap_or(time);
    head.insert("ddcoterm_end".into(), micros(end).into());
    head.insert("ddcoterm_last".into(), last.into());
    let mut body = serde_json::to_vec(&head).map_err(|e| ApiError::unavailable(e.to_string()))?;
    body.push(b'\n');
    body.extend_from_slice(&events);
    Ok(Window { body, offset: kf.t, end, last })
}

/// The server's own rendering of the terminal at `at` seconds.
#[derive(Debug, Serialize)]
pub struct ScreenAt {
    /// The moment asked for.
    pub at: f64,
    /// Time of the last event applied.
    pub time: f64,
    pub cols: usize,
    pub rows: usize,
    pub cursor: Cursor,
    /// The visible lines as text, trailing blanks trimmed (colours and attributes left out).
    pub lines: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Cursor {
    pub col: usize,
    pub row: usize,
    pub visible: bool,
}

pub async fn screen(st: &AppState, row: &SessionRow, at: f64) -> ApiResult<ScreenAt> {
    let kf = keyframe(st, row, at).await?;
    let mut replay = Replay::from_keyframe(&kf)?;
    let mut reader = CastReader::open(st, row, kf.offset).await?;
    while let Some((line, _)) = reader.next_line(row.compacted).await? {
        let Some((t, code, data)) = parse_event(&line) else { continue };
        if replay.time_of(t) > at {
            break;
        }
        replay.apply(t, &code, &data);
    }
    let (cols, rows) = replay.vt.size();
    let c = replay.vt.cursor();
    Ok(ScreenAt {
        at,
        time: replay.time,
        cols,
        rows,
        cursor: Cursor { col: c.col, row: c.row, visible: c.visible },
        lines: replay.lines(),
    })
}
