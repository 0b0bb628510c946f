//! Classifies API failures as retryable or permanent and extracts the server's own message.

use std::time::Duration;

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Connect errors, timeouts, 408, 429, 5xx. `after` is the server's hint (`X-RateLimit-Reset`, `Retry-After`).
    Later { after: Option<Duration> },
    /// 400, 401, 403, 404, 413 and other 4xx, bad configuration: the same request will fail again.
    Never,
}

/// A failed call. Never contains a key: keys travel only in headers, and messages come from the URL path,
/// the transport error kind and the server's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {url}: {msg}")]
    Transport { method: String, url: String, msg: String, timeout: bool },
    #[error("{method} {url}: HTTP {status}: {msg}")]
    Http { method: String, url: String, status: u16, msg: String, retry_after: Option<Duration> },
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    /// Retry class used by the spool sender.
    pub fn retry(&self) -> Retry {
        match self {
            ApiError::Transport { .. } => Retry::Later { after: None },
            ApiError::Http { status, retry_after, .. } => {
                if is_retryable_status(*status) {
                    Retry::Later { after: *retry_after }
                } else {
                    Retry::Never
                }
            }
            ApiError::Config(_) => Retry::Never,
        }
    }

    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// 408, 429 and 5xx are worth retrying; every other non-2xx is not.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The human message from a Datadog error body: `{"errors": ["..."]}` (v1) or JSON:API
/// `{"errors": [{"title": ..., "detail": ...}]}` (v2); otherwise the start of the body.
pub fn server_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .filter_map(|e| match e {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => {
                        let title = o.get("title").and_then(|t| t.as_str());
                        let detail = o.get("detail").and_then(|t| t.as_str());
                        match (title, detail) {
                            (Some(t), Some(d)) => Some(format!("{t}: {d}")),
                            (Some(t), None) => Some(t.to_string()),
                            (None, Some(d)) => Some(d.to_string()),
                            _ => None,
                        }
                    }
                    _ => None,
                })
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty response body)".into();
    }
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// Seconds to wait from `X-RateLimit-Reset` (Datadog: seconds until the window resets) or `Retry-After`.
pub fn retry_after(reset: Option<&str>, retry_after: Option<&str>) -> Option<Duration> {
    [reset, retry_after]
        .into_iter()
        .flatten()
        .find_map(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> ApiError {
        ApiError::Http {
            method: "POST".into(),
            url: "/x".into(),
            status,
            msg: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn status_classes() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(http(s).retry(), Retry::Later { .. }), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert_eq!(http(s).retry(), Retry::Never, "{s}");
        }
        let t = ApiError::Transport {
            method: "GET".into(),
            url: "/".into(),
            msg: "refused".into(),
            timeout: false,
        };
        assert!(matches!(t.retry(), Retry::Later { after: None }));
        assert_eq!(ApiError::Config("no key".into()).retry(), Retry::Never);
    }

    #[test]
    fn messages_from_v1_and_jsonapi_bodies() {
        assert_eq!(server_message(br#"{"errors":["Forbidden"]}"#), "Forbidden");
        assert_eq!(
            server_message(
                br#"{"errors":[{"status":"400","title":"Bad Request","detail":"invalid project"}]}"#
            ),
            "Bad Request: invalid project"
        );
        assert_eq!(server_message(b"upstream down"), "upstream down");
        assert_eq!(server_message(b""), "(empty response body)");
    }

    #[test]
    fn rate_limit_reset_is_honoured() {
        assert_eq!(retry_after(Some("7"), None), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(None, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("x"), None), None);
    }
}
