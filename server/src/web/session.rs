//! `/sessions/<id>` (the link ddcoterm prints): metadata, the player with the command timeline as markers and
//! as a side list, live follow for a live session; and the recording itself, audited as a `view` (the player
//! loading it) or a `download` (an attachment).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use ddcoterm_wire::{ProcessEvent, SessionInfo};
use maud::html;
use serde::Deserialize;

use super::list::{approval, duration, short_time};
use super::{assets, error_page, layout, viewer, Viewer};
use crate::api::read::{audit, info, visible};
use crate::error::ApiError;
use crate::grants::Grants;
use crate::ingest::read_cast;
use crate::state::AppState;
use crate::store::SessionRow;

/// Recordings of this many bytes or more play in windows (`crate::window`): the page fetches the window at
/// the moment shown instead of the whole cast. Below it the whole cast loads in well under a second on any
/// link worth using (1 MiB), and the player then has exact idle-time compression and the search's match is
/// found in the page; it is also where the background builder starts indexing complete sessions
/// (`keyframes::run_forever`), so a windowed session normally has its index before anyone opens it.
pub const WINDOWED_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
pub struct PageQuery {
    /// The search that led here: the page opens the player at its first match.
    q: Option<String>,
    /// Seconds into the recording to open at (the list's link to a search match carries it).
    t: Option<f64>,
}

/// The viewer and the session, if it exists and they may open it (404 otherwise, as the API: a viewer cannot
/// tell another user's session from none).
async fn open(
    st: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<(Viewer, SessionRow), Response> {
    let v = viewer(st, headers, uri).await?;
    let id = match path {
        Ok(Path(id)) => id,
        Err(e) => return Err(error_page(Some(&v), &ApiError::bad_request(format!("path: {e}")))),
    };
    match visible(st, &v.who, &id).await {
        Ok(row) => Ok((v, row)),
        Err(e) => Err(error_page(Some(&v), &e)),
    }
}

/// Seconds from the session's start to an event's start, when both are known.
fn offset(start: Option<&str>, at: Option<&str>) -> Option<f64> {
    let p = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
    let d = p(at?)? - p(start?)?;
    let secs = d.as_seconds_f64();
    (secs >= 0.0).then_some(secs)
}

fn clock(secs: f64) -> String {
    let s = secs as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (v, row) = match open(&st, &headers, &uri, path).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let s: SessionInfo = info(&st, &row);
    let events: Vec<ProcessEvent> = match st.meta.events(&row.id).await {
        Ok(e) => e.iter().filter_map(|e| serde_json::from_str(e).ok()).collect(),
        Err(e) => return error_page(Some(&v), &e.into()),
    };
    let live = s.state == "live";
    let start = q.t.filter(|t| t.is_finite() && *t >= 0.0);
    let grants = Grants::of_row(&row);
    let incident = s.incident.as_ref().map(|i| i.id.clone()).or_else(|| grants.incident.clone());
    let q = q.q.unwrap_or_default();
    // Where the search first matched the output, from the index (long recordings too): the player opens
    // there unless the link named a moment itself.
    let found = match crate::search::parse_query(&q) {
        Ok(terms) if !live => match crate::searchmatch::first_match(&st, &row.id, &terms).await {
            Ok(m) => m,
            Err(e) => return error_page(Some(&v), &e),
        },
        _ => None,
    };
    let start = start.or(found.as_ref().map(|m| m.t));
    let words: Vec<String> =
        crate::search::parse_query(&q).unwrap_or_default().into_iter().flatten().collect();
    let ssh = s.ssh.clone();
    let windowed = !live && s.bytes >= WINDOWED_BYTES;
    // The recording's duration when its keyframe index is final; otherwise the page asks `/keyframes`, which
    // builds the index.
    let length = match windowed {
        true => st.meta.keyframe_progress(&row.id).await.ok().flatten().filter(|p| p.done).map(|p| p.time),
        false => None,
    };
    let main = html! {
        h1 { code #title-command { (s.command.as_deref().unwrap_or("(no command)")) } }
        div.session {
            section.playerbox {
                div #player
                    data-recording=(format!("/sessions/{}/recording", s.id))
                    data-live=[live.then(|| format!("/api/v1/sessions/{}/live", s.id))]
                    data-windows=[windowed.then(|| format!("/api/v1/sessions/{}", s.id))]
                    data-duration=[length.map(|d| format!("{d}"))]
                    data-cols=(s.width.unwrap_or(80))
                    data-rows=(s.height.unwrap_or(24))
                    data-q=(q)
                    data-start=[start.map(|t| format!("{t:.3}"))] {}
                div.controls {
                    label { "Speed "
                        select #speed {
                            @for x in ["0.5", "1", "1.5", "2", "4", "8"] {
                                option value=(x) selected[x == "1"] { (x) "×" }
                            }
                        }
                    }
                    label { "Idle limit "
                        select #idle {
                            @for (x, l) in [("0", "off"), ("1", "1 s"), ("2", "2 s"), ("5", "5 s")] {
                                option value=(x) selected[x == "2"] { (l) }
                            }
                        }
                    }
                    span { "Time " output #time { "0:00" } }
                    a #download href=(format!("/sessions/{}/download", s.id)) download { "Download .cast" }
                    @if live { span.badge.state-live id="live-badge" { "live: following" } }
                }
                @if let Some(m) = &found {
                    p #match role="status" data-time=(format!("{:.3}", m.t)) data-server="1" {
                        "Match at " (clock(m.t)) ": " span.snippet { (super::list::highlight(&m.snippet, &words)) }
                    }
                } @else {
                    p #match.hidden role="status" {}
                }
                p.hint { "Keys: space play/pause, ← → seek 5 s, [ ] previous/next command, 0-9 jump, f full screen." }
            }
            aside.side {
                h2 { "Commands" }
                @if events.is_empty() { p #no-events { "No command events." } }
                ol #timeline {
                    @for e in &events {
                        @let t = offset(s.started_at.as_deref(), e.started_at.as_deref());
                        li {
                            button.seek type="button" data-t=[t.map(|t| format!("{t:.3}"))] disabled[t.is_none()] {
                                span.at { (t.map(clock).unwrap_or_else(|| "?".into())) }
                                " " code.cmd { (e.command) }
                            }
                            @if let Some(x) = e.exit_code { " " span.exitcode { "exit " (x) } }
                            @if let Some(c) = &e.cwd { br; small.cwd { (c) } }
                        }
                    }
                }
                h2 { "Session" }
                dl.meta {
                    dt { "User" } dd #m-user { (s.user.as_deref().unwrap_or("?")) }
                    dt { "Host" } dd #m-host { (s.host)
                        @if let Some(c) = s.claimed_host.as_ref().filter(|c| **c != s.host) {
                            " (claims " (c) ")"
                        }
                    }
                    dt { "Client address" } dd { (ssh.as_ref().and_then(|x| x.client.clone()).unwrap_or_default()) }
                    dt { "Key fingerprint" } dd { code { (ssh.as_ref().and_then(|x| x.fingerprint.clone()).unwrap_or_default()) } }
                    dt { "Rule" } dd #m-rule { (s.rule.as_deref().unwrap_or("")) }
                    dt { "Rule message" } dd #m-rule-message { (s.rule_message.as_deref().unwrap_or("")) }
                    dt { "Actions" } dd { (s.actions.join(", ")) }
                    dt { "Approval case" } dd #m-approval { (approval(&s)) }
                    dt { "Approver" } dd #m-approver { (grants.approver.as_deref().unwrap_or("")) }
                    dt { "Incident" } dd #m-incident { (incident.as_deref().unwrap_or("")) }
                    dt { "Break glass" } dd { @if s.break_glass { span.badge.warn { "yes" } } @else { "no" } }
                    dt { "Break-glass reason" } dd #m-break-glass-reason { (s.break_glass_reason.as_deref().unwrap_or("")) }
                    dt { "Visible to" } dd #m-visible-to {
                        (s.user.as_deref().unwrap_or("?")) ", auditors and admins"
                        @let extra = grants.describe();
                        @if !extra.is_empty() { "; " (extra) }
                        @if let Some(k) = v.who.grant(&row) { " " span.badge #m-your-grant { "you: " (k.as_str()) } }
                    }
                    dt { "Tags" } dd #m-tags { (s.tags.join(", ")) }
                    dt { "State" } dd #m-state { span class=(format!("badge state-{}", s.state)) { (s.state) } }
                    dt { "Exit" } dd { (s.exit_status.map(|e| e.to_string()).unwrap_or_default()) }
                    dt { "Started (UTC)" } dd { (s.started_at.as_deref().map(short_time).unwrap_or_default()) }
                    dt { "Ended (UTC)" } dd { (s.ended_at.as_deref().map(short_time).unwrap_or_default()) }
                    dt { "Duration" } dd { (duration(&s)) }
                    dt { "Size" } dd { (s.bytes) " bytes" }
                    dt { "Id" } dd { code { (s.id) } }
                }
            }
        }
    };
    let head = html! {
        link rel="stylesheet" href=(assets::url("asciinema-player.css"));
        script src=(assets::url("asciinema-player.js")) defer {}
        script src=(assets::url("session.js")) defer {}
    };
    layout::page(Some(&v), "Session", main, head).into_response()
}

async fn serve_cast(
    st: AppState,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    kind: &'static str,
) -> Response {
    let (v, row) = match open(&st, &headers, &uri, path).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    // Recorded before a byte is served; a view that cannot be recorded is refused.
    if let Err(e) = audit(&st, &v.who, &row.id, kind).await {
        return error_page(Some(&v), &e);
    }
    let bytes = match read_cast(&st, &row).await {
        Ok(b) => b,
        Err(e) => return error_page(Some(&v), &e),
    };
    let mut res = ([(header::CONTENT_TYPE, "application/x-asciicast")], bytes).into_response();
    let h = res.headers_mut();
    if kind == "download" {
        // The id is [A-Za-z0-9_-] (validated at ingest), safe inside the quoted filename.
        let cd = format!("attachment; filename=\"{}.cast\"", row.id);
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&cd).expect("ascii id"));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /sessions/{id}/recording`: the cast for the player, audited as `view`.
pub async fn recording(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    serve_cast(st, headers, uri, path, "view").await
}

/// `GET /sessions/{id}/download`: the cast as an attachment, audited as `download`.
pub async fn download(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    serve_cast(st, headers, uri, path, "download").await
}
