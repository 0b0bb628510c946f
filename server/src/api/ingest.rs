//! Ingest handlers (host tokens): parse and authenticate, then hand over to `crate::ingest`.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ddcoterm_wire::{CommitAnswer, CreateAnswer, CreateSession, EndSession, ProcessEvent, PREV_HASH_HEADER};

use super::{authenticate, parse_json, read_body, require_content_type};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ingest;
use crate::state::AppState;
use crate::store::Role;

const CHUNK_TYPES: &[&str] = &["application/x-asciicast", "application/octet-stream", "text/plain"];

async fn host(st: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let who = authenticate(st, headers).await?;
    if who.role != Role::Host {
        return Err(ApiError::forbidden(format!("a {} token cannot write sessions", who.role.as_str())));
    }
    Ok(who)
}

async fn json_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    require_content_type(headers, &["application/json"])?;
    let limit = st.settings.raw.limits.max_json_bytes;
    let mut admitted = st.admission.admit(headers, limit)?;
    let bytes = read_body(headers, body, limit).await?;
    admitted.grow_to(bytes.len() as u64)?;
    parse_json(&bytes)
}

pub fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad_request(format!("path: {e}"))
}

pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreateAnswer>)> {
    let who = host(&st, &headers).await?;
    require_content_type(&headers, &["application/json"])?;
    // The exact bytes matter: their SHA-256 is the root of the session's hash chain.
    let limit = st.settings.raw.limits.max_json_bytes;
    let mut admitted = st.admission.admit(&headers, limit)?;
    let raw = read_body(&headers, body, limit).await?;
    admitted.grow_to(raw.len() as u64)?;
    let create: CreateSession = parse_json(&raw)?;
    let (status, answer) = ingest::create(&st, &who, create, &raw).await?;
    Ok((status, Json(answer)))
}

pub async fn chunk(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CommitAnswer>)> {
    let who = host(&st, &headers).await?;
    let Path((id, seq)) = path.map_err(path_error)?;
    ingest::validate_id(&id)?;
    let seq = ingest::parse_seq(&seq)?;
    require_content_type(&headers, CHUNK_TYPES)?;
    let prev = match headers.get(PREV_HASH_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request(format!("header {PREV_HASH_HEADER} is not ASCII")))?,
        ),
    };
    let limit = st.settings.raw.limits.max_chunk_bytes;
    // Held until the answer: the body stays in memory until its batch commits.
    let mut admitted = st.admission.admit(&headers, limit)?;
    let bytes = read_body(&headers, body, limit).await?;
    admitted.grow_to(bytes.len() as u64)?;
    let (status, answer) = ingest::put_chunk(&st, &who, &id, seq, prev, bytes).await?;
    Ok((status, Json(answer)))
}

pub async fn events(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<CommitAnswer>> {
    let who = host(&st, &headers).await?;
    let Path(id) = path.map_err(path_error)?;
    ingest::validate_id(&id)?;
    let events: Vec<ProcessEvent> = json_body(&st, &headers, body).await?;
    Ok(Json(ingest::add_events(&st, &who, &id, events).await?))
}

pub async fn end(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CommitAnswer>)> {
    let who = host(&st, &headers).await?;
    let Path(id) = path.map_err(path_error)?;
    ingest::validate_id(&id)?;
    let end: EndSession = json_body(&st, &headers, body).await?;
    let (status, answer) = ingest::end(&st, &who, &id, end).await?;
    Ok((status, Json(answer)))
}
