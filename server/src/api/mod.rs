//! HTTP routes, and the request plumbing every handler shares: authentication, body limits, gzip, JSON.

mod ingest;
mod ops;
pub mod read;
mod windows;

use std::io::Read as _;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::auth::{token_hash, verify_password, Principal};
use crate::error::{ApiError, ApiResult};
use crate::ingest::now_ms;
use crate::state::AppState;

pub fn router(st: AppState) -> Router {
    Router::new()
        .route("/api/v1/sessions", post(ingest::create).get(read::list))
        .route("/api/v1/sessions/{id}", get(read::detail))
        .route("/api/v1/sessions/{id}/chunks/{seq}", put(ingest::chunk))
        .route("/api/v1/sessions/{id}/events", post(ingest::events))
        .route("/api/v1/sessions/{id}/end", post(ingest::end))
        .route("/api/v1/sessions/{id}/cast", get(read::cast))
        .route("/api/v1/sessions/{id}/live", get(read::live))
        .route("/api/v1/sessions/{id}/window", get(windows::window))
        .route("/api/v1/sessions/{id}/keyframes", get(windows::keyframes))
        .route("/api/v1/sessions/{id}/screen", get(windows::screen))
        .route("/api/v1/views", get(read::views))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            )
        })
        .layer(middleware::from_fn_with_state(st.clone(), observe))
        .with_state(st)
}

/// `/metrics` alone, without a token, for `--metrics-listen`.
pub fn metrics_router(st: AppState) -> Router {
    Router::new().route("/metrics", get(ops::metrics_open)).with_state(st)
}

/// Counts error answers and logs each request (never its headers: they hold tokens).
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        st.metrics.error(status.as_u16());
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), ms, "request");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), ms, "request");
    }
    res
}

/// The caller: a bearer token (hash looked up; revoked or unknown is 401) or a local user with HTTP Basic.
pub async fn authenticate(st: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header (Bearer token)"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        let hash = token_hash(token.trim());
        let cached = st.host_tokens.get(&hash);
        let from_database = cached.is_none();
        let mut row = match cached {
            Some(row) => row,
            None => {
                let row = st.meta.token_by_hash(&hash).await?;
                let row = row.ok_or_else(|| ApiError::unauthorized("unknown token"))?;
                if row.revoked_at.is_some() {
                    return Err(ApiError::unauthorized("token revoked"));
                }
                row
            }
        };
        let now = now_ms();
        // One write per token per minute at most: last-seen is for spotting silent hosts, not an audit log.
        if row.last_seen.is_none_or(|t| now - t > 60_000) {
            st.meta.token_touch(row.id, now).await?;
            row.last_seen = Some(now);
        }
        // Only a row just read starts a second of trust: refreshed on every hit, a token in steady use
        // would never be read again and a revocation from the CLI would never reach it.
        if from_database {
            st.host_tokens.put(&hash, &row);
        }
        return Ok(Principal {
            token_id: Some(row.id),
            name: row.name,
            email: None,
            role: row.role,
            host: row.host,
            login: None,
        });
    }
    if let Some(b64) = value.strip_prefix("Basic ") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| ApiError::unauthorized("Basic credentials are not base64"))?;
        let raw =
            String::from_utf8(raw).map_err(|_| ApiError::unauthorized("Basic credentials are not UTF-8"))?;
        let (name, password) =
            raw.split_once(':').ok_or_else(|| ApiError::unauthorized("Basic credentials lack a ':'"))?;
        let user = st.meta.user_get(name).await?;
        let ok = match &user {
            Some(u) => {
                let (pw, phc) = (password.to_string(), u.password.clone());
                tokio::task::spawn_blocking(move || verify_password(&pw, &phc)).await.unwrap_or(false)
            }
            None => false,
        };
        return match (ok, user) {
            (true, Some(u)) => Ok(Principal {
                token_id: None,
                name: u.name,
                email: u.email,
                role: u.role,
                host: None,
                login: None,
            }),
            _ => Err(ApiError::unauthorized("wrong user name or password")),
        };
    }
    Err(ApiError::unauthorized("Authorization must be `Bearer <token>` or Basic"))
}

/// A reader of sessions: a bearer token or Basic credentials, or, when the request has no Authorization header,
/// a web login cookie. Only read handlers call this: a cookie never authorises a write (so a cross-site form
/// cannot reach the ingest API with a reviewer's cookie).
pub async fn authenticate_read(st: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    if headers.get(header::AUTHORIZATION).is_none() {
        if let Some((who, _)) = crate::login::resolve(st, headers).await? {
            return Ok(who);
        }
    }
    authenticate(st, headers).await
}

/// Refuses a request whose Content-Type is not one of `allowed` (parameters like `charset` ignored).
pub fn require_content_type(headers: &HeaderMap, allowed: &[&str]) -> ApiResult<()> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if allowed.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unsupported(format!("Content-Type {ct:?}: expected one of {}", allowed.join(", "))))
    }
}

/// Reads the body up to `limit` bytes after decoding (`Content-Encoding: gzip` or none): 413 above it,
/// 400 for a gzip stream that does not decode.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> ApiResult<Bytes> {
    let encoding =
        headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => return Err(ApiError::unsupported(format!("Content-Encoding {other:?}: only gzip"))),
    };
    // A gzip stream of `limit` bytes can be slightly longer than its content.
    let wire_limit = if gzip { limit + limit / 8 + 1024 } else { limit };
    // What admission control reserved for this body (`Admission::admit`), and no more.
    let capacity = crate::admission::content_length(headers).map_or(0, |n| n.min(limit)) as usize;
    let raw = collect_limited(body, wire_limit, capacity).await?;
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("gzip body does not decode: {e}")))?;
    if out.len() as u64 > limit {
        return Err(ApiError::too_large(format!("decoded body over {limit} bytes")));
    }
    Ok(Bytes::from(out))
}

/// Past this much, an oversized body is no longer read to the end before the 413: the connection is closed.
const DRAIN_CAP: u64 = 64 << 20;

/// Collects the body up to `limit` bytes. Above it, the rest is read and discarded (up to `DRAIN_CAP`) so the
/// client, still writing, receives the 413 instead of a broken pipe.
///
/// The buffer is sized once, `capacity` (the Content-Length, as far as admission control counted it):
/// a chunk arrives in several frames, and an empty buffer grown frame by frame reallocated on the way, each
/// large allocation one more pass of glibc's malloc over its free lists. A wrong Content-Length costs no
/// more than growing would (hyper refuses a body that does not match it anyway).
async fn collect_limited(mut body: Body, limit: u64, capacity: usize) -> ApiResult<Bytes> {
    let mut buf = bytes::BytesMut::with_capacity(capacity);
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > limit {
            if seen > DRAIN_CAP {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(ApiError::too_large(format!("body over {limit} bytes")));
    }
    Ok(buf.freeze())
}

/// Parses a JSON body: 400 when it is not JSON, 422 when it is JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(format!("JSON body: {e}")),
        _ => ApiError::bad_request(format!("JSON body: {e}")),
    })
}
