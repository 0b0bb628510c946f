//! Handlers for long recordings (`crate::window`): a window from a keyframe, the keyframe times for a seek
//! bar, and the server's rendering of the screen at a moment. Reviewer authentication and role checks as for
//! `/cast`; windows and screens show recorded content, so each is recorded in the view audit first.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;

use super::read::{audit, session_for};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::window;

/// Longest window asked for, seconds: a page asks for the next window as it plays, it never needs an hour.
const MAX_SPAN: f64 = 600.0;
const DEFAULT_SPAN: f64 = 30.0;

/// Reads `at` and `span` (seconds, decimal) from the query; anything else, or a value out of range, is 400
/// naming the parameter.
fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> ApiResult<(f64, f64)> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let (mut at, mut span) = (None, None);
    for (k, v) in params {
        if !allowed.contains(&k.as_str()) {
            let takes = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}` (this endpoint takes {takes})"
            )));
        }
        let n: f64 = v.trim().parse().ok().filter(|n: &f64| n.is_finite()).ok_or_else(|| {
            ApiError::bad_request(format!("query parameter `{k}`: {v:?} is not a number of seconds"))
        })?;
        match k.as_str() {
            "at" if n < 0.0 => {
                return Err(ApiError::bad_request(format!("query parameter `at`: {v:?} is negative")));
            }
            "at" => at = Some(n),
            _ if !(n > 0.0 && n <= MAX_SPAN) => {
                return Err(ApiError::bad_request(format!(
                    "query parameter `span`: {v:?} is not above 0 and at most {MAX_SPAN}"
                )));
            }
            _ => span = Some(n),
        }
    }
    Ok((at.unwrap_or(0.0), span.unwrap_or(DEFAULT_SPAN)))
}

/// `GET /api/v1/sessions/{id}/window?at=&span=`: an asciicast v2 document starting at the keyframe at or
/// before `at`, holding the events up to `at + span`.
pub async fn window(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let (who, row) = session_for(&st, path, &headers).await?;
    let (at, span) = params(query, &["at", "span"])?;
    audit(&st, &who, &row.id, "window").await?;
    let w = window::window(&st, &row, at, span).await?;
    let num = |v: f64| HeaderValue::from_str(&v.to_string()).unwrap_or(HeaderValue::from_static("0"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-asciicast")),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
            (HeaderName::from_static("x-ddcoterm-offset"), num(w.offset)),
            (HeaderName::from_static("x-ddcoterm-end"), num(w.end)),
            (
                HeaderName::from_static("x-ddcoterm-last"),
                HeaderValue::from_static(if w.last { "true" } else { "false" }),
            ),
        ],
        w.body,
    ))
}

/// `GET /api/v1/sessions/{id}/keyframes`: the keyframe times (a seek bar), the duration so far, whether the
/// index is final. Times only, no recorded content: not a view.
pub async fn keyframes(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let (_, row) = session_for(&st, path, &headers).await?;
    params(query, &[])?;
    let p = crate::keyframes::ensure(&st, &row).await?;
    let times: Vec<f64> = st.meta.keyframe_times(&row.id).await?.into_iter().map(|(t, _)| t).collect();
    Ok(Json(serde_json::json!({
        "duration": p.time,
        "complete": p.done,
        "keyframes": times,
    })))
}

/// `GET /api/v1/sessions/{id}/screen?at=`: the server's own rendering of the screen at `at` seconds.
pub async fn screen(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<window::ScreenAt>> {
    let (who, row) = session_for(&st, path, &headers).await?;
    let (at, _) = params(query, &["at"])?;
    audit(&st, &who, &row.id, "screen").await?;
    Ok(Json(window::screen(&st, &row, at).await?))
}
