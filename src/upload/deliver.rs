//! The spool's deliverer: routes each record to its destination's client and classifies failures, so that
//! the spool keeps, retries or dead-letters it (docs/datadog.md). Remembers which destination is unreachable
//! so that a finishing command stops waiting for a dead network.

use super::datadog::{DatadogDeliver, AUTH_RETRY};
use super::kinds::*;
use super::route::{destination, Destination};
use super::server::{ServerClient, ServerError, ServerOptions};
use crate::datadog::Secret;
use crate::spool::{Deliver, Failure, Stored};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Delivers the session-server kinds.
pub struct ServerDeliver {
    base: String,
    token: Secret,
    opts: ServerOptions,
    client: OnceLock<Result<ServerClient, String>>,
    /// The `url` each create answer returned, by session id (the link printed at the end).
    links: Mutex<HashMap<String, String>>,
    /// The last attempt could not connect, or its token was refused: waiting longer helps nobody.
    stalled: AtomicBool,
}

impl std::fmt::Debug for ServerDeliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerDeliver").field("base", &self.base).finish()
    }
}

impl ServerDeliver {
    pub fn new(base: String, token: Secret, opts: ServerOptions) -> ServerDeliver {
        ServerDeliver {
            base,
            token,
            opts,
            client: OnceLock::new(),
            links: Mutex::new(HashMap::new()),
            stalled: AtomicBool::new(false),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn client(&self) -> Result<&ServerClient, Failure> {
        self.client
            .get_or_init(|| {
                ServerClient::new(self.base.clone(), self.token.clone(), self.opts).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Failure::retry(e.clone()))
    }

    /// The link the server returned for `session_id`'s create, once it was delivered.
    pub fn link(&self, session_id: &str) -> Option<String> {
        self.links.lock().ok()?.get(session_id).cloned()
    }

    /// True after a connection failure or a refused token, until the next success.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Sends one session-server record.
    pub fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
        let session = rec.meta.get(META_SESSION).cloned().ok_or_else(|| {
            Failure::permanent(format!("{} record {} has no {META_SESSION}", rec.kind, rec.id))
        })?;
        let c = self.client()?;
        let res = match rec.kind.as_str() {
            KIND_SESSION_CREATE => c.create(&rec.body).map(|a| {
                if let Ok(mut l) = self.links.lock() {
                    l.insert(session.clone(), a.url);
                }
            }),
            KIND_SESSION_CHUNK => {
                let seq: u64 = rec.meta.get(META_SEQ).and_then(|s| s.parse().ok()).ok_or_else(|| {
                    Failure::permanent(format!("chunk record {} has no {META_SEQ}", rec.id))
                })?;
                match rec.meta.get(META_ENCODING).map(String::as_str) {
                    Some(ENCODING_PLAIN) => {}
                    Some(other) => {
                        return Err(Failure::permanent(format!(
                            "chunk record {} has an unknown encoding `{other}` (written by a newer ddcoterm?)",
                            rec.id
                        )))
                    }
                    None => {
                        return Err(Failure::permanent(format!(
                            "chunk record {} was written by an earlier ddcoterm for the retired /api/unstable endpoint; its recording is the local .cast",
                            rec.id
                        )))
                    }
                }
                let prev = rec.meta.get(META_PREV).ok_or_else(|| {
                    Failure::permanent(format!("chunk record {} has no {META_PREV}", rec.id))
                })?;
                c.chunk(&session, seq, &rec.body, prev)
            }
            KIND_SESSION_EVENTS => c.events(&session, &rec.body),
            KIND_SESSION_END => c.end(&session, &rec.body),
            other => {
                return Err(Failure::permanent(format!("record kind `{other}` is not a session record")))
            }
        };
        let stalled =
            matches!(res, Err(ServerError::Unreachable { .. } | ServerError::Http { status: 401 | 403, .. }));
        self.stalled.store(stalled, Ordering::Relaxed);
        res.map_err(|e| server_failure(&rec.kind, &e))
    }
}

/// Maps a server error onto the spool's classes (docs/datadog.md, "The spool"):
/// - 401/403 (token unknown, revoked, not a host token, another host's session): kept, retried every
///   [`AUTH_RETRY`]; a rotated token must not throw recordings away.
/// - 400/404/405/409/413/415/422/431 and other 4xx: permanent; the record goes to the dead letters with the
///   server's message. 409 on a chunk means the server holds other bytes for that seq.
/// - connection errors, timeouts, 408/429/5xx (503: a store is down): retried with backoff.
pub fn server_failure(kind: &str, e: &ServerError) -> Failure {
    let status = e.status();
    let message = match (kind, status) {
        (KIND_SESSION_CHUNK, Some(409)) => format!("{e} (the server holds other bytes for this chunk)"),
        (_, Some(401 | 403)) => format!(
            "{e} (the session server refused the host token: put a valid host token in server.token_file; records wait)"
        ),
        _ => e.to_string(),
    };
    match e {
        ServerError::Http { status: 401 | 403, .. } => {
            Failure { permanent: false, retry_after: Some(AUTH_RETRY), status, message }
        }
        ServerError::Http { status: s, retry_after, .. }
            if *s == 408 || *s == 429 || (500..600).contains(s) =>
        {
            Failure { permanent: false, retry_after: *retry_after, status, message }
        }
        ServerError::Http { .. } => Failure { permanent: true, retry_after: None, status, message },
        ServerError::Unreachable { .. } | ServerError::Transport { .. } => {
            Failure { permanent: false, retry_after: None, status, message }
        }
        ServerError::Config(_) => {
            Failure { permanent: false, retry_after: Some(AUTH_RETRY), status, message }
        }
    }
}

/// Routes records to the configured destinations.
#[derive(Default)]
pub struct Deliverer {
    pub server: Option<ServerDeliver>,
    pub datadog: Option<DatadogDeliver>,
    /// `server.url` is set, even if the server could not be set up (an unreadable token file): its records
    /// are still written, and wait until it can be.
    pub server_url_set: bool,
    /// Why a destination is not configured (shown when one of its records waits).
    pub no_server: Option<String>,
    pub no_datadog: Option<String>,
}

impl Deliverer {
    /// Whether records for `d` can be sent by this process.
    pub fn has(&self, d: Destination) -> bool {
        match d {
            Destination::Server => self.server.is_some(),
            Destination::Datadog => self.datadog.is_some(),
        }
    }

    /// Whether records for `d` are written at all: for a configured destination, even one this process
    /// cannot send to (they wait in the spool); never for one that is not configured.
    pub fn writes_for(&self, d: Destination) -> bool {
        match d {
            Destination::Server => self.server.is_some() || self.server_url_set,
            Destination::Datadog => self.datadog.is_some(),
        }
    }

    /// True when a destination refused the connection or the credentials on its last attempt: a finishing
    /// command stops waiting (the background flush takes over).
    pub fn stalled(&self) -> bool {
        self.server.as_ref().is_some_and(|s| s.stalled())
            || self.datadog.as_ref().is_some_and(|d| d.stalled())
    }
}

impl Deliver for Deliverer {
    fn deliver(&self, rec: &Stored) -> Result<(), Failure> {
        match destination(&rec.kind) {
            Some(Destination::Server) => match &self.server {
                Some(s) => s.deliver(rec),
                None => Err(Failure {
                    retry_after: Some(AUTH_RETRY),
                    ..Failure::retry(format!(
                        "no session server configured ({}); kept until server.url is set",
                        self.no_server.as_deref().unwrap_or("server.url is not set")
                    ))
                }),
            },
            Some(Destination::Datadog) => match &self.datadog {
                Some(d) => d.deliver(rec),
                None => Err(Failure {
                    retry_after: Some(AUTH_RETRY),
                    ..Failure::retry(format!(
                        "Datadog is not configured ({}); kept until it is",
                        self.no_datadog.as_deref().unwrap_or("no API key")
                    ))
                }),
            },
            None => Err(Failure::permanent(format!(
                "unknown record kind `{}` (written by a newer ddcoterm?)",
                rec.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> ServerError {
        ServerError::Http {
            what: "PUT /x".into(),
            status,
            code: "c".into(),
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn failures_are_classified_for_the_spool() {
        for s in [400, 404, 409, 413, 415, 422] {
            assert!(server_failure(KIND_SESSION_CHUNK, &http(s)).permanent, "{s}");
        }
        for s in [401, 403] {
            let f = server_failure(KIND_SESSION_CREATE, &http(s));
            assert!(!f.permanent && f.retry_after == Some(AUTH_RETRY), "{s}");
            assert!(f.message.contains("server.token_file"), "{}", f.message);
        }
        for s in [408, 429, 500, 503] {
            assert!(!server_failure(KIND_SESSION_END, &http(s)).permanent, "{s}");
        }
        assert!(server_failure(KIND_SESSION_CHUNK, &http(409)).message.contains("other bytes"));
        let down = ServerError::Unreachable { what: "POST /x".into(), msg: "refused".into() };
        assert!(!server_failure(KIND_SESSION_CREATE, &down).permanent);
    }
}
