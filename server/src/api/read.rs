//! Read handlers (viewer, auditor, admin): session list, one session with its process events, the cast.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine as _;
use ddcoterm_wire::{CreateSession, ProcessEvent, SessionDetail, SessionInfo, SessionPage};

use super::authenticate_read;
use super::ingest::path_error;
use crate::auth::Principal;
use crate::cmd::token::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::grants::Grants;
use crate::ingest::{now_ms, read_cast, validate_id};
use crate::state::AppState;
use crate::store::Role;
use crate::store::{ListFilter, SessionRow};

const MAX_LIMIT: u32 = 500;

async fn reader(st: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let who = authenticate_read(st, headers).await?;
    if !who.can_read() {
        return Err(ApiError::forbidden("host tokens write sessions and never read them"));
    }
    Ok(who)
}

pub fn info(st: &AppState, r: &SessionRow) -> SessionInfo {
    let meta: Option<CreateSession> = r.meta_json.as_deref().and_then(|m| serde_json::from_str(m).ok());
    let grants = meta.as_ref().map(Grants::of_meta).unwrap_or_default();
    SessionInfo {
        id: r.id.clone(),
        state: r.state.clone(),
        url: st.session_url(&r.id),
        host: r.host.clone(),
        claimed_host: meta.as_ref().map(|m| m.host.clone()),
        user: r.user.clone(),
        command: r.command.clone(),
        started_at: meta.as_ref().map(|m| m.started_at.clone()),
        ended_at: r.ended_at.clone(),
        exit_status: r.exit_status,
        width: meta.as_ref().map(|m| m.width),
        height: meta.as_ref().map(|m| m.height),
        rule: meta.as_ref().and_then(|m| m.rule.clone()),
        actions: meta.as_ref().map(|m| m.actions.clone()).unwrap_or_default(),
        break_glass: meta.as_ref().is_some_and(|m| m.break_glass),
        approval: meta.as_ref().and_then(|m| m.approval.clone()),
        ssh: meta.as_ref().and_then(|m| m.ssh.clone()),
        rule_message: meta.as_ref().and_then(|m| m.rule_message.clone()),
        approver: grants.approver,
        incident: meta.as_ref().and_then(|m| m.incident.clone()),
        break_glass_reason: meta.as_ref().and_then(|m| m.break_glass_reason.clone()).or_else(|| {
            meta.as_ref().and_then(|m| {
                m.tags.iter().find_map(|t| t.strip_prefix("break_glass_reason:")).map(str::to_string)
            })
        }),
        tags: meta.map(|m| m.tags).unwrap_or_default(),
        received_at: rfc3339(r.first_seen),
        last_activity: rfc3339(r.last_activity),
        committed_seq: r.committed_seq,
        last_seq: r.last_seq,
        bytes: r.bytes,
        legal_hold: r.legal_hold,
        search_match: None,
    }
}

fn time_ms(key: &str, v: &str) -> ApiResult<i64> {
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|e| {
        ApiError::bad_request(format!("query parameter `{key}`: {v:?} is not RFC 3339 ({e})"))
    })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn encode_cursor(r: &SessionRow) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", r.sort_ts, r.id))
}

fn decode_cursor(v: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("query parameter `cursor`: not a cursor this server handed out");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = raw.split_once(':').ok_or_else(bad)?;
    validate_id(id).map_err(|_| bad())?;
    Ok((ts.parse().map_err(|_| bad())?, id.to_string()))
}

/// `yes`/`no` (also `true`/`false`) of a yes-or-no filter; anything else is refused naming the parameter.
fn yes_no(key: &str, v: &str) -> ApiResult<bool> {
    match v {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!("query parameter `{key}`: {v:?} is not yes or no"))),
    }
}

/// Builds the filter from the query string; unknown parameters are refused rather than ignored.
pub fn filter(who: &Principal, params: Vec<(String, String)>) -> ApiResult<ListFilter> {
    let mut f = ListFilter { limit: 50, ..Default::default() };
    for (k, v) in params {
        match k.as_str() {
            "user" => f.user = Some(v),
            "host" => f.host = Some(v),
            "command" => f.command = Some(v),
            "since" => f.since_ms = Some(time_ms("since", &v)?),
            "until" => f.until_ms = Some(time_ms("until", &v)?),
            "exit" => {
                f.exit = Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("query parameter `exit`: {v:?} is not an integer"))
                })?)
            }
            "state" => match v.as_str() {
                "live" | "complete" | "abandoned" => f.state = Some(v),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter `state`: {v:?} is not live, complete or abandoned"
                    )))
                }
            },
            "rule" => f.rule = Some(v),
            "approval" => f.approved = Some(yes_no("approval", &v)?),
            "break_glass" => f.break_glass = Some(yes_no("break_glass", &v)?),
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter `limit`: {v:?} is not between 1 and {MAX_LIMIT}"
                    )))
                }
            },
            "cursor" => f.before = Some(decode_cursor(&v)?),
            "q" => f.q.extend(
                crate::search::parse_query(&v)
                    .map_err(|e| ApiError::bad_request(format!("query parameter `q`: {e}")))?,
            ),
            other => return Err(ApiError::bad_request(format!("unknown query parameter `{other}`"))),
        }
    }
    if let Some(own) = who.forced_user() {
        match &f.user {
            Some(u) if u != own => {
                return Err(ApiError::forbidden(format!("a viewer sees only the sessions of user {own}")));
            }
            _ => f.user = Some(own.to_string()),
        }
    }
    Ok(f)
}

pub async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SessionPage>> {
    let who = reader(&st, &headers).await?;
    let Query(params) = query.map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let f = filter(&who, params)?;
    let rows = st.meta.session_list(&f).await?;
    let next_cursor = (rows.len() == f.limit as usize).then(|| rows.last().map(encode_cursor)).flatten();
    Ok(Json(SessionPage { sessions: infos(&st, &rows, &f.q).await?, next_cursor }))
}

/// Hits that always get their `search_match`, whatever the time spent.
const MATCHES_ALWAYS: usize = 1;
/// Time a page may spend finding where its hits matched: each is an index look-up and a row's text inflated,
/// and a page of 50 hits over long recordings spent most of the search's time there (bench/search.sh's p99).
/// Hits past it carry no `search_match`; their links (`?q=`) still open at the match, which the session page
/// asks the index for itself.
const MATCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(25);

/// The rows as the API shows them; with a search, each (within [`MATCH_BUDGET`]) with where its output first
/// matched.
pub async fn infos(st: &AppState, rows: &[SessionRow], q: &[Vec<String>]) -> ApiResult<Vec<SessionInfo>> {
    let mut out = Vec::with_capacity(rows.len());
    let started = std::time::Instant::now();
    for (n, r) in rows.iter().enumerate() {
        let mut i = info(st, r);
        if !q.is_empty() && (n < MATCHES_ALWAYS || started.elapsed() < MATCH_BUDGET) {
            i.search_match = crate::searchmatch::first_match(st, &r.id, q).await?;
        }
        out.push(i);
    }
    Ok(out)
}

/// The reader and the session named in the path, if it exists and the reader may see it: the one way every
/// per-session read starts.
pub(super) async fn session_for(
    st: &AppState,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> ApiResult<(Principal, SessionRow)> {
    let who = reader(st, headers).await?;
    let Path(id) = path.map_err(path_error)?;
    let row = visible(st, &who, &id).await?;
    Ok((who, row))
}

/// [`session_for`], then the view recorded (`kind`: `cast`, `live`) before a byte of the recording is served.
async fn recording_for(
    st: &AppState,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    kind: &str,
) -> ApiResult<(Principal, SessionRow)> {
    let (who, row) = session_for(st, path, headers).await?;
    audit(st, &who, &row.id, kind).await?;
    Ok((who, row))
}

/// The session if it exists and the caller may see it; 404 otherwise (a viewer cannot probe others' ids).
pub async fn visible(st: &AppState, who: &Principal, id: &str) -> ApiResult<SessionRow> {
    validate_id(id)?;
    match st.meta.session_get(id).await? {
        Some(r) if who.can_read_session(&r) => Ok(r),
        _ => Err(ApiError::not_found(format!("no session {id}"))),
    }
}

pub async fn detail(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionDetail>> {
    let (who, row) = session_for(&st, path, &headers).await?;
    let id = &row.id;
    let events = st
        .meta
        .events(id)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_str::<ProcessEvent>(e).ok())
        .collect();
    tracing::info!(viewer = %who.name, session = %id, "session metadata read");
    Ok(Json(SessionDetail { session: info(&st, &row), events }))
}

pub async fn cast(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let (who, row) = recording_for(&st, path, &headers, "cast").await?;
    let bytes = read_cast(&st, &row).await?;
    tracing::info!(viewer = %who.name, session = %row.id, bytes = bytes.len(), "recording downloaded");
    Ok(([(header::CONTENT_TYPE, "application/x-asciicast")], bytes))
}

/// Records who is about to see which recording (`kind`: `cast`, `live`, `window`, `screen`), before a byte of
/// it is served: a view that cannot be
/// recorded is refused (503), never served unrecorded.
pub async fn audit(st: &AppState, who: &Principal, id: &str, kind: &str) -> ApiResult<()> {
    st.meta.view_insert(now_ms(), &who.name, who.role, id, kind).await?;
    tracing::info!(viewer = %who.name, session = %id, kind, "view recorded");
    Ok(())
}

/// `GET /api/v1/sessions/{id}/live`: Server-Sent Events for asciinema-player's `eventsource` driver.
pub async fn live(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let (who, row) = recording_for(&st, path, &headers, "live").await?;
    Ok(crate::live::follow(st, row, who.login))
}

/// `GET /api/v1/views?session=&viewer=&limit=&cursor=`: the view audit (and the admins' actions), newest first (admins only).
pub async fn views(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = authenticate_read(&st, &headers).await?;
    if who.role != Role::Admin {
        return Err(ApiError::forbidden("only admins read the view audit"));
    }
    let Query(params) = query.map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let (mut session, mut viewer, mut before, mut limit) = (None, None::<String>, None, 100u32);
    for (k, v) in params {
        match k.as_str() {
            "session" => {
                validate_id(&v).map_err(|_| {
                    ApiError::bad_request(format!("query parameter `session`: {v:?} is not a session id"))
                })?;
                session = Some(v);
            }
            "viewer" => {
                if v.is_empty() || v.len() > 128 {
                    return Err(ApiError::bad_request("query parameter `viewer`: 1-128 bytes"));
                }
                viewer = Some(v);
            }
            "cursor" => {
                before = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("query parameter `cursor`: not a cursor this server handed out")
                })?)
            }
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter `limit`: {v:?} is not between 1 and {MAX_LIMIT}"
                    )))
                }
            },
            other => return Err(ApiError::bad_request(format!("unknown query parameter `{other}`"))),
        }
    }
    let rows = st.meta.views(session.as_deref(), viewer.as_deref(), before, limit).await?;
    let next_cursor = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let views: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "at": rfc3339(r.at), "viewer": r.viewer, "role": r.role, "session": r.session_id, "kind": r.kind,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "views": views, "next_cursor": next_cursor })))
}
