//! The API's error answer: a status and `{"error": {"code", "message"}}`, built in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ddcoterm_wire::{ErrorBody, ErrorDetail};

use crate::objects::ObjectError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds sent as `Retry-After` (503s): when a host's spool should try again.
    pub retry_after: Option<u32>,
}

/// `Retry-After` of a 503 because a backend (database, object store) is unreachable.
pub const RETRY_BACKEND_SECS: u32 = 5;
/// `Retry-After` of a 503 because too many request bodies are in flight.
pub const RETRY_BUSY_SECS: u32 = 1;

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    /// 503 with `Retry-After`: nothing was stored, the host keeps the request and sends it again.
    pub fn unavailable(m: impl Into<String>) -> ApiError {
        Self::retry(RETRY_BACKEND_SECS, m)
    }
    pub fn retry(secs: u32, m: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(secs), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m) }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, "conflict", m)
    }
    pub fn too_large(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
    }
    pub fn unsupported(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", m)
    }
    pub fn invalid(m: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "database");
                ApiError::unavailable("database unavailable, retry later")
            }
        }
    }
}

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> ApiError {
        match e {
            ObjectError::NotFound(k) => {
                tracing::error!(key = %k, "object named by a row is missing");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "missing_object",
                    "a stored object is missing",
                )
            }
            ObjectError::Unavailable(m) => {
                tracing::error!(error = %m, "object store");
                ApiError::unavailable("object store unavailable, retry later")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
