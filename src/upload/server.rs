//! Blocking HTTP client for the session server's ingest API v1 (DESIGN.md §12): bearer host token, create,
//! chunk PUT (gzip body, `x-ddcoterm-prev-sha256`), events, end, `/readyz`; JSON errors parsed.
//!
//! Runs on the spool's sender thread and in short-lived commands (doctor), never on the recorder's thread.
//! The token is read from `server.token_file` only and never appears in a message, a log line or `Debug`.

use crate::config::settings::ServerSettings;
use crate::datadog::payload::{gzip, path_segment};
use crate::datadog::Secret;
use ddcoterm_wire as wire;
use std::path::Path;
use std::time::Duration;

/// Why a call failed, classified for the spool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// Connection refused, no route, DNS: nothing reached a server. Sending again now will not help.
    #[error("{what}: cannot reach the session server: {msg}")]
    Unreachable { what: String, msg: String },
    /// Reached, but no usable answer (timeout, reset mid-body).
    #[error("{what}: {msg}")]
    Transport { what: String, msg: String },
    /// A non-2xx answer with the server's `{"error": {code, message}}`.
    #[error("{what}: HTTP {status} {code}: {message}")]
    Http { what: String, status: u16, code: String, message: String, retry_after: Option<Duration> },
    /// Bad `server.*` settings or an unreadable token file.
    #[error("{0}")]
    Config(String),
}

impl ServerError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ServerError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Reads the host token: the file's first line, trimmed. Errors name the file and the key, never the content.
pub fn read_token(path: &Path) -> Result<Secret, ServerError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServerError::Config(format!("server.token_file: cannot read {}: {e}", path.display()))
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ServerError::Config(format!(
            "server.token_file: {} is empty; put the host token from `ddcoterm-server token create HOST --role host` in it",
            path.display()
        )));
    }
    Ok(Secret::new(token))
}

/// Checks `server.url`: an absolute http(s) URL without query or fragment; returns it without a trailing `/`.
pub fn parse_url(url: &str) -> Result<String, ServerError> {
    let u = url.trim().trim_end_matches('/');
    let bad = |why: &str| ServerError::Config(format!("server.url: `{url}` {why}"));
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("has no host"));
    }
    if rest.contains(['?', '#', ' ', '@']) {
        return Err(bad("must be a plain base URL (no query, fragment, spaces or credentials)"));
    }
    if u.starts_with("http://") && !is_loopback(rest) {
        return Err(bad(
            "would send the host token and the recordings in clear text: use https:// (plain http:// only to \
             a loopback address such as 127.0.0.1)",
        ));
    }
    Ok(u.to_string())
}

/// The host of `host[:port][/path]` is this machine: `localhost`, `127.0.0.0/8` or `[::1]`.
fn is_loopback(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The link a reviewer opens: `<server.url>/sessions/<id>`.
pub fn session_link(base: &str, session_id: &str) -> String {
    format!("{}/sessions/{}", base.trim_end_matches('/'), path_segment(session_id))
}

/// One configured session server.
pub struct ServerClient {
    http: reqwest::blocking::Client,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient").field("base", &self.base).field("token", &self.token).finish()
    }
}

/// Timeouts; tests and doctor shorten them.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { connect_timeout: Duration::from_secs(3), timeout: Duration::from_secs(30) }
    }
}

/// `server.url` and the token, checked; `None` when no server is configured.
pub fn configured(s: &ServerSettings) -> Result<Option<(String, Secret)>, ServerError> {
    let Some(url) = s.url.as_deref().filter(|u| !u.trim().is_empty()) else { return Ok(None) };
    let base = parse_url(url)?;
    let file = s.token_file.as_deref().ok_or_else(|| {
        ServerError::Config(
            "server.url is set but server.token_file is not: the host token is read from that file only"
                .into(),
        )
    })?;
    Ok(Some((base, read_token(file)?)))
}

impl ServerClient {
    pub fn new(base: String, token: Secret, opts: ServerOptions) -> Result<ServerClient, ServerError> {
        crate::datadog::tls::install_provider();
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .user_agent(concat!("ddcoterm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServerError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ServerClient { http, base, token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/sessions` with the create body exactly as spooled.
    pub fn create(&self, body: &[u8]) -> Result<wire::CreateAnswer, ServerError> {
        let what = "POST /api/v1/sessions".to_string();
        let b = self.send(reqwest::Method::POST, "/api/v1/sessions", &what, json_body(body), &[])?;
        serde_json::from_slice(&b)
            .map_err(|e| ServerError::Transport { what, msg: format!("bad answer: {e}") })
    }

    /// `PUT /api/v1/sessions/{id}/chunks/{seq}`: gzip on the wire, `prev_sha256` in the chain header.
    pub fn chunk(&self, id: &str, seq: u64, plain: &[u8], prev_sha256: &str) -> Result<(), ServerError> {
        let path = format!("/api/v1/sessions/{}/chunks/{seq}", path_segment(id));
        let what = format!("PUT {path}");
        let body = Body { bytes: gzip(plain), content_type: "application/x-asciicast", gzip: true };
        self.send(reqwest::Method::PUT, &path, &what, body, &[(wire::PREV_HASH_HEADER, prev_sha256)])?;
        Ok(())
    }

    /// `POST /api/v1/sessions/{id}/events` (JSON array of wire `ProcessEvent`).
    pub fn events(&self, id: &str, body: &[u8]) -> Result<(), ServerError> {
        let path = format!("/api/v1/sessions/{}/events", path_segment(id));
        let what = format!("POST {path}");
        self.send(reqwest::Method::POST, &path, &what, json_body(body), &[])?;
        Ok(())
    }

    /// `POST /api/v1/sessions/{id}/end`.
    pub fn end(&self, id: &str, body: &[u8]) -> Result<(), ServerError> {
        let path = format!("/api/v1/sessions/{}/end", path_segment(id));
        let what = format!("POST {path}");
        self.send(reqwest::Method::POST, &path, &what, json_body(body), &[])?;
        Ok(())
    }

    /// `GET /readyz`: the server, its database and its object store answer.
    pub fn ready(&self) -> Result<(), ServerError> {
        self.send_as(reqwest::Method::GET, "/readyz", "GET /readyz", None, &[], false).map(|_| ())
    }

    /// Is the host token accepted? An events POST to an id the server must refuse as malformed: the token is
    /// checked first (401 unknown or revoked, 403 not a host token), then the id (400). Nothing is read or
    /// written, and no session is touched.
    pub fn check_token(&self) -> Result<(), ServerError> {
        let path = "/api/v1/sessions/ddcoterm.doctor/events";
        match self.send(reqwest::Method::POST, path, &format!("POST {path}"), json_body(b"[]"), &[]) {
            Ok(_) => Ok(()),
            Err(ServerError::Http { status: 400, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        what: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Vec<u8>, ServerError> {
        self.send_as(method, path, what, Some(body), headers, true)
    }

    fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        what: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
        auth: bool,
    ) -> Result<Vec<u8>, ServerError> {
        let mut rb =
            self.http.request(method, format!("{}{path}", self.base)).header("Accept", "application/json");
        if auth {
            rb = rb.bearer_auth(self.token.expose());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.header("Content-Type", b.content_type);
            if b.gzip {
                rb = rb.header("Content-Encoding", "gzip");
            }
            rb = rb.body(b.bytes);
        }
        let transport = |e: reqwest::Error| {
            if e.is_connect() {
                ServerError::Unreachable { what: what.to_string(), msg: crate::datadog::client::chain(&e) }
            } else if e.is_timeout() {
                ServerError::Transport { what: what.to_string(), msg: "timed out".into() }
            } else {
                ServerError::Transport { what: what.to_string(), msg: crate::datadog::client::chain(&e) }
            }
        };
        let resp = rb.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().map_err(transport)?.to_vec();
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let (code, message) = match serde_json::from_slice::<wire::ErrorBody>(&body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(200).collect();
                ("http_error".into(), if text.trim().is_empty() { "(no body)".into() } else { text })
            }
        };
        Err(ServerError::Http { what: what.to_string(), status, code, message, retry_after })
    }
}

struct Body {
    bytes: Vec<u8>,
    content_type: &'static str,
    gzip: bool,
}

fn json_body(b: &[u8]) -> Body {
    Body { bytes: b.to_vec(), content_type: "application/json", gzip: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_named() {
        assert_eq!(parse_url("https://s.example.com/").unwrap(), "https://s.example.com");
        assert_eq!(parse_url("http://127.0.0.1:7780").unwrap(), "http://127.0.0.1:7780");
        for bad in ["s.example.com", "ftp://x", "https://", "https://u:p@x", "https://x/?a=1"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.starts_with("server.url:"), "{bad}: {e}");
        }
        // The host token travels in clear text over http: only to this machine.
        for ok in ["http://localhost:7780", "http://127.0.0.2/", "http://[::1]:7780/base"] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://sessions.example.com", "http://10.0.0.5:7780", "http://127.0.0.1.example.com"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("clear text") && e.contains("https://"), "{bad}: {e}");
        }
        assert_eq!(session_link("http://h:1/", "a b"), "http://h:1/sessions/a%20b");
    }

    #[test]
    fn token_file_errors_name_the_key_and_never_the_token() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        let e = read_token(&p).unwrap_err().to_string();
        assert!(e.contains("server.token_file") && e.contains("cannot read"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_token(&p).unwrap_err().to_string().contains("is empty"));
        std::fs::write(&p, "  ddct_secretvalue123456  \nignored\n").unwrap();
        let t = read_token(&p).unwrap();
        assert_eq!(t.expose(), "ddct_secretvalue123456");
        let c = ServerClient::new("http://x".into(), t, ServerOptions::default()).unwrap();
        assert!(!format!("{c:?}").contains("secretvalue"));
        let s = ServerSettings { url: Some("http://127.0.0.1:7780".into()), token_file: None };
        assert!(configured(&s).unwrap_err().to_string().contains("server.token_file"));
        assert!(configured(&ServerSettings::default()).unwrap().is_none());
    }
}
