//! Live follow (`GET /api/v1/sessions/{id}/live`): Server-Sent Events in asciinema-player's `eventsource`
//! format. A reviewer who opens a session mid-way first gets the CURRENT screen (an avt terminal run over the
//! cast so far, dumped as text + escape sequences), then the output as chunks commit, then `done`.
//!
//! Commits are followed through the database (`committed_seq`), so a session another replica ingests is
//! followed too: a commit in this process wakes followers at once, otherwise they poll the row. Memory per
//! follower is one terminal (size clamped), one chunk being read, and a small queue of events; a follower that
//! does not drain its queue is cut off rather than buffered for.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::ingest::cast_key;
use crate::packs;
use crate::state::AppState;
use crate::store::SessionRow;

/// How often a follower re-reads its session row when no in-process commit woke it (a chunk committed by
/// another replica, an end, an abandonment).
const POLL: Duration = Duration::from_millis(500);
/// Comment lines that keep proxies and load balancers from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events queued for one follower before it counts as slow.
const QUEUE: usize = 64;
/// How long a full queue may stay full before the follower is cut off.
const SLOW: Duration = Duration::from_secs(10);
/// The follower's terminal is at most this big, whatever the recording's header claims (a hostile header
/// must not make the server allocate a 10000x10000 screen per viewer).
const MAX_COLS: usize = 1000;
const MAX_ROWS: usize = 500;

/// Wakes this process's followers when a chunk commits here.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub { tx: broadcast::channel(1024).0 }
    }
}

impl LiveHub {
    /// Called by the ingest path after a chunk row committed (never before: followers read committed data).
    pub fn committed(&self, id: &str) {
        // No receiver is not an error: nobody follows anything.
        let _ = self.tx.send(Arc::from(id));
    }
}

/// Why a follower stopped early.
enum Stop {
    /// The client went away or was too slow: nothing more to send.
    Gone,
    /// The session vanished (retention) or the stores failed.
    Failed(String),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Stop {
        Stop::Failed(e.message)
    }
}

/// The SSE response for one follower; the work runs in its own task, which ends when the client goes away.
///
/// `login`: the web login the follower signed in with; the stream ends once it no longer holds (sign-out,
/// user removed, role changed), checked on every poll.
pub fn follow(
    st: AppState,
    row: SessionRow,
    login: Option<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(QUEUE);
    let wake = st.live.tx.subscribe();
    let id = row.id.clone();
    tokio::spawn(async move {
        let mut f = Follower { st, tx, login, screen: None, sent_seq: None, offset: 0, time: 0.0 };
        match f.run(row, wake).await {
            Ok(()) | Err(Stop::Gone) => {}
            Err(Stop::Failed(e)) => tracing::warn!(session = %id, error = %e, "live follow stopped"),
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}

struct Screen {
    vt: avt::Terminal,
    cols: usize,
    rows: usize,
}

struct Follower {
    st: AppState,
    tx: mpsc::Sender<Event>,
    /// The web login to re-check on every poll (`None`: a token, checked at the start only).
    login: Option<String>,
    /// `None` until the header (chunk 0) has been read.
    screen: Option<Screen>,
    /// Highest chunk already read.
    sent_seq: Option<u64>,
    /// Bytes of the cast already read (the offset of chunk `sent_seq + 1` in the compacted cast).
    offset: u64,
    /// Time of the last event read, seconds.
    time: f64,
}

impl Follower {
    async fn run(
        &mut self,
        mut row: SessionRow,
        mut wake: broadcast::Receiver<Arc<str>>,
    ) -> Result<(), Stop> {
        // Catch up silently, then send the screen as it is now.
        loop {
            self.read_new(&row, false).await?;
            if self.screen.is_some() {
                break;
            }
            if finished(&row, self.sent_seq) {
                // Ended without even a header: nothing to show.
                self.send(Event::default().event("done").data("{}")).await?;
                return Ok(());
            }
            row = self.wait(&row.id, &mut wake).await?;
        }
        let reset = {
            let s = self.screen.as_ref().expect("set above");
            serde_json::json!({"cols": s.cols, "rows": s.rows, "time": self.time, "init": s.vt.dump()})
        };
        self.send(Event::default().data(reset.to_string())).await?;
        loop {
            if finished(&row, self.sent_seq) {
                self.send(Event::default().event("done").data("{}")).await?;
                return Ok(());
            }
            row = self.wait(&row.id, &mut wake).await?;
            self.read_new(&row, true).await?;
        }
    }

    /// Waits for a commit of this session here, or the poll interval, and re-reads the row.
    async fn wait(&self, id: &str, wake: &mut broadcast::Receiver<Arc<str>>) -> Result<SessionRow, Stop> {
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = self.tx.closed() => return Err(Stop::Gone),
                m = wake.recv() => match m {
                    Ok(s) if &*s == id => break,
                    Ok(_) => {}
                    // Missed some notifications: ours may be among them.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => {}
                },
            }
        }
        if let Some(hash) = &self.login {
            if !crate::login::still_holds(&self.st, hash).await {
                tracing::info!(session = %id, "live follow ended: its login was signed out or revoked");
                return Err(Stop::Gone);
            }
        }
        let row = self.st.meta.session_get(id).await.map_err(ApiError::from)?;
        row.ok_or_else(|| Stop::Failed("the session was deleted while followed".into()))
    }

    /// Reads every committed chunk past `sent_seq`, one at a time (or the rest of the compacted cast).
    async fn read_new(&mut self, row: &SessionRow, emit: bool) -> Result<(), Stop> {
        let Some(committed) = row.committed_seq else { return Ok(()) };
        let mut seq = self.sent_seq.map_or(0, |s| s + 1);
        // The rows of every chunk to send, in one query (a chunk's bytes may be inside a pack).
        let rows = if row.compacted || seq > committed {
            Vec::new()
        } else {
            self.st
                .meta
                .chunks_between(&row.id, seq, committed)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?
        };
        let mut rows = rows.iter();
        while seq <= committed {
            let bytes = packs::read_next(&self.st, row, &mut rows, seq)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            match bytes {
                Some(b) => {
                    self.lines(&b, emit).await?;
                    self.offset += b.len() as u64;
                    self.sent_seq = Some(seq);
                    seq += 1;
                }
                None => {
                    let cast =
                        self.st.objects.get(&cast_key(row)).await.map_err(|e| Stop::Failed(e.to_string()))?;
                    let rest = cast.slice((self.offset as usize).min(cast.len())..);
                    self.lines(&rest, emit).await?;
                    self.offset += rest.len() as u64;
                    self.sent_seq = Some(row.last_seq.unwrap_or(committed).max(committed));
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn lines(&mut self, b: &Bytes, emit: bool) -> Result<(), Stop> {
        for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            if let Some(ev) = self.apply(line) {
                if emit {
                    self.send(Event::default().data(ev)).await?;
                }
            }
        }
        Ok(())
    }

    /// Feeds one asciicast line into the terminal; returns the player message to send, if any.
    fn apply(&mut self, line: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        let Some(screen) = self.screen.as_mut() else {
            let dim = |k: &str, max: usize| {
                v.get(k).and_then(|n| n.as_u64()).map_or(1, |n| (n as usize).clamp(1, max))
            };
            let (cols, rows) = (dim("width", MAX_COLS), dim("height", MAX_ROWS));
            let vt = avt::Terminal::new(cols, rows).ok()?;
            self.screen = Some(Screen { vt, cols, rows });
            return None;
        };
        let t = v.get(0)?.as_f64()?;
        self.time = t;
        match v.get(1)?.as_str()? {
            "o" => {
                let data = v.get(2)?.as_str()?;
                screen.vt.feed(data);
                Some(serde_json::json!([t, "o", data]).to_string())
            }
            "r" => {
                let (c, r) = v.get(2)?.as_str()?.split_once('x')?;
                let cols = c.trim().parse::<usize>().ok()?.clamp(1, MAX_COLS);
                let rows = r.trim().parse::<usize>().ok()?.clamp(1, MAX_ROWS);
                screen.vt.resize(cols, rows);
                (screen.cols, screen.rows) = (cols, rows);
                // The player's eventsource driver hands the event's data to its terminal as is: a size object,
                // not the "COLSxROWS" string of the cast.
                Some(serde_json::json!([t, "r", {"cols": cols, "rows": rows}]).to_string())
            }
            "m" => Some(serde_json::json!([t, "m", v.get(2)?]).to_string()),
            // Input ("i") is not shown to followers; unknown codes are skipped.
            _ => None,
        }
    }

    async fn send(&self, ev: Event) -> Result<(), Stop> {
        match self.tx.send_timeout(ev, SLOW).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!("live follower cut off: it read nothing for {SLOW:?} with a full queue");
                Err(Stop::Gone)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Stop::Gone),
        }
    }
}

/// Nothing more will come: every chunk up to the end was read, or the session was abandoned and everything
/// committed was read (a late chunk may reopen it, but this stream ends; the player can reconnect).
fn finished(row: &SessionRow, sent: Option<u64>) -> bool {
    let caught_up = sent >= row.committed_seq;
    let all = row.last_seq.is_some_and(|last| sent.is_some_and(|s| s >= last));
    all || (row.state == "abandoned" && caught_up)
}
