//! Operations endpoints: liveness, readiness (both stores answer), Prometheus metrics.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::authenticate;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Role;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    st.meta.ping().await?;
    st.objects.ping().await?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// Behind an auditor or admin token on the main address.
pub async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    let who = authenticate(&st, &headers).await?;
    if !matches!(who.role, Role::Auditor | Role::Admin) {
        return Err(ApiError::forbidden("metrics need an auditor or admin token (or --metrics-listen)"));
    }
    metrics_open(State(st)).await
}

/// Without a token: only mounted on `--metrics-listen`.
pub async fn metrics_open(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let live = st.meta.sessions_live_count().await?;
    let tokens = st.meta.token_list().await?;
    let text = st.metrics.render(live, &tokens);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
