//! Delivers the Datadog kinds (process and session events, log batches, audit records) with the one Datadog
//! client. The HTTP client is built on first use, on the sending thread: reqwest's blocking client must not be
//! created inside an async runtime, and a session may be driven from one.

use super::kinds::*;
use crate::config::Loaded;
use crate::datadog::payload::{self, AuditEvent};
use crate::datadog::{ApiError, Call, Client, ClientOptions, Retry};
use crate::spool::{Deliver, Failure, Stored};
use std::time::Duration;

/// How long a record refused for its credentials (401/403) waits before the next try: a rotated key is
/// fixed by a person, not by hammering the API.
pub const AUTH_RETRY: Duration = Duration::from_secs(300);

/// Delivers Datadog records.
#[derive(Debug)]
pub struct DatadogDeliver {
    conn: crate::config::settings::ConnectionConfig,
    opts: ClientOptions,
    client: std::sync::OnceLock<Result<Client, String>>,
    /// The last attempt could not connect, or the key was refused: waiting longer helps nobody.
    stalled: std::sync::atomic::AtomicBool,
}

impl DatadogDeliver {
    /// From `connection_config`; fails on a bad host or a missing API key (nothing could be sent).
    pub fn from_loaded(loaded: &Loaded, opts: ClientOptions) -> anyhow::Result<DatadogDeliver> {
        let conn = loaded.settings.connection_config.clone();
        crate::datadog::Site::for_connection(&conn)?;
        if conn.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            anyhow::bail!(crate::error::Exit::config(
                "no Datadog API key: set connection_config.api_key (ddcoterm init) or DD_API_KEY"
            ));
        }
        Ok(DatadogDeliver {
            conn,
            opts,
            client: std::sync::OnceLock::new(),
            stalled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// True after a refused connection or key, until the next success.
    pub fn stalled(&self) -> bool {
        self.stalled.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .get_or_init(|| Client::from_settings(&self.conn, self.opts).map_err(|e| e.to_string()))
            .as_ref()
            // Our side (a bad host, no usable CA store): not the receiver's refusal, so no dead letter; the
            // records wait until the configuration is fixed.
            .map_err(|e| Failure { retry_after: Some(AUTH_RETRY), ..Failure::retry(e.clone()) })
    }
}

impl Deliver for DatadogDeliver {
    /// Sends one Datadog record.
    fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
        let (call, body) = to_call(rec)?;
        let res = self.client()?.send(&call.request(body));
        let stalled = match &res {
            Err(ApiError::Transport { msg, timeout: false, .. }) => msg.starts_with("cannot connect"),
            Err(e) => matches!(e.status(), Some(401 | 403)),
            Ok(_) => false,
        };
        self.stalled.store(stalled, std::sync::atomic::Ordering::Relaxed);
        res.map(|_| ()).map_err(|e| failure(&e))
    }
}

/// Turns a stored Datadog record into the call and body to send.
pub fn to_call(rec: &Stored) -> Result<(Call, Vec<u8>), Failure> {
    match rec.kind.as_str() {
        KIND_EVENT | KIND_SESSION_EVENT => Ok((Call::Event, rec.body.clone())),
        KIND_LOGS => Ok((Call::Logs, rec.body.clone())),
        k if k.starts_with(KIND_AUDIT_PREFIX) => {
            let what = &k[KIND_AUDIT_PREFIX.len()..];
            let a: AuditEvent = serde_json::from_slice(&rec.body)
                .map_err(|e| Failure::permanent(format!("audit record {} is not valid JSON: {e}", rec.id)))?;
            Ok((Call::Event, payload::audit_event(what, &a)))
        }
        other => Err(Failure::permanent(format!("record kind `{other}` is not a Datadog record"))),
    }
}

/// Maps the client's error classes onto the spool's. 401/403 are not permanent: a rotated or revoked key
/// must not throw records away; they wait (longer) until the key is fixed, and `spool status` says why.
pub fn failure(e: &ApiError) -> Failure {
    match (e.status(), e.retry()) {
        (Some(401 | 403), _) => Failure {
            permanent: false,
            retry_after: Some(AUTH_RETRY),
            status: e.status(),
            message: format!(
                "{e} (Datadog refused the API key: fix connection_config.api_key; records wait)"
            ),
        },
        (_, Retry::Later { after }) => {
            Failure { permanent: false, retry_after: after, status: e.status(), message: e.to_string() }
        }
        (_, Retry::Never) => {
            Failure { permanent: true, retry_after: None, status: e.status(), message: e.to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Class, RecordId};
    use std::collections::BTreeMap;

    fn stored(kind: &str, body: &[u8]) -> Stored {
        Stored {
            id: RecordId("1".into()),
            class: Class::Normal,
            group: None,
            kind: kind.into(),
            meta: BTreeMap::new(),
            created_ms: 0,
            body: body.to_vec(),
        }
    }

    #[test]
    fn datadog_kinds_map_to_calls() {
        assert_eq!(to_call(&stored(KIND_LOGS, b"")).unwrap().0, Call::Logs);
        assert_eq!(to_call(&stored(KIND_EVENT, b"{}")).unwrap().0, Call::Event);
        assert_eq!(to_call(&stored(KIND_SESSION_EVENT, b"{}")).unwrap().0, Call::Event);
        let (c, body) =
            to_call(&stored("audit.break_glass", br#"{"user":"ana","command":"rm -rf /"}"#)).unwrap();
        assert_eq!(c, Call::Event);
        assert!(String::from_utf8(body).unwrap().contains("break_glass:true"));
        assert!(to_call(&stored("audit.break_glass", b"not json")).unwrap_err().permanent);
        assert!(to_call(&stored(KIND_SESSION_CHUNK, b"")).unwrap_err().permanent);
    }

    #[test]
    fn api_errors_map_to_spool_failures() {
        let http = |status, retry_after| ApiError::Http {
            method: "POST".into(),
            url: "/x".into(),
            status,
            msg: "nope".into(),
            retry_after,
        };
        let f = failure(&http(429, Some(Duration::from_secs(3))));
        assert!(!f.permanent);
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        for s in [401, 403] {
            let f = failure(&http(s, None));
            assert!(!f.permanent && f.status == Some(s) && f.message.contains("api_key"), "{f:?}");
        }
        for s in [400, 413] {
            assert!(failure(&http(s, None)).permanent, "{s}");
        }
    }
}
