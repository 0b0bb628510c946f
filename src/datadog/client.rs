//! The one HTTP client for Datadog: base URL per API, auth headers, gzip bodies, error classification.

use super::error::{self, ApiError};
use super::secret::Secret;
use super::site::{Api, Site, SiteError};
use crate::config::settings::ConnectionConfig;
use std::time::{Duration, SystemTime};

/// HTTP verbs we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One call, fully described (no keys: headers are added by [`Client::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub api: Api,
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    pub content_type: &'static str,
    /// The body is already gzip-compressed: send `Content-Encoding: gzip`.
    pub gzip: bool,
    /// Also send `DD-APPLICATION-KEY` (v2 endpoints that act as a user).
    pub app_key: bool,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(api: Api, path: impl Into<String>, app_key: bool) -> Request {
        Request {
            api,
            method: Method::Get,
            path: path.into(),
            content_type: "application/json",
            gzip: false,
            app_key,
            body: Vec::new(),
        }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server's `Date` header (clock-skew check in `doctor`).
    pub date: Option<SystemTime>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::Config(format!("the server answered with invalid JSON: {e}")))
    }
}

/// Timeouts; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(20) }
    }
}

/// Blocking client: it runs on the spool's sender threads and in short-lived commands, never on the
/// recorder's thread and never inside an async runtime.
pub struct Client {
    http: reqwest::blocking::Client,
    site: Site,
    api_key: Option<Secret>,
    app_key: Option<Secret>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("site", &self.site)
            .field("api_key", &self.api_key)
            .field("app_key", &self.app_key)
            .finish()
    }
}

impl Client {
    pub fn new(
        site: Site,
        api_key: Option<Secret>,
        app_key: Option<Secret>,
        opts: ClientOptions,
    ) -> Result<Client, ApiError> {
        super::tls::install_provider();
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .user_agent(concat!("ddcoterm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Client { http, site, api_key, app_key })
    }

    /// From `connection_config` (env fallbacks are already merged by the config loader).
    pub fn from_settings(conn: &ConnectionConfig, opts: ClientOptions) -> Result<Client, ClientSetupError> {
        let site = Site::for_connection(conn)?;
        let key = |k: &Option<String>| k.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(Secret::new);
        Ok(Client::new(site, key(&conn.api_key), key(&conn.app_key), opts)?)
    }

    pub fn site(&self) -> &Site {
        &self.site
    }
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }
    pub fn has_app_key(&self) -> bool {
        self.app_key.is_some()
    }
    pub fn api_key(&self) -> Option<&Secret> {
        self.api_key.as_ref()
    }
    pub fn app_key(&self) -> Option<&Secret> {
        self.app_key.as_ref()
    }

    /// Sends `req`; a non-2xx answer is an [`ApiError::Http`] with the server's message.
    pub fn send(&self, req: &Request) -> Result<Response, ApiError> {
        let url = format!("{}{}", self.site.base(req.api), req.path);
        let method = req.method.as_str().to_string();
        let api_key = self.api_key.as_ref().ok_or_else(|| {
            ApiError::Config("no Datadog API key: set connection_config.api_key or DD_API_KEY".into())
        })?;
        let mut rb = self
            .http
            .request(
                match req.method {
                    Method::Get => reqwest::Method::GET,
                    Method::Post => reqwest::Method::POST,
                    Method::Put => reqwest::Method::PUT,
                },
                &url,
            )
            .header("DD-API-KEY", api_key.expose())
            .header("Accept", "application/json");
        if req.app_key {
            let app = self.app_key.as_ref().ok_or_else(|| {
                ApiError::Config(format!(
                    "{method} {}: needs an application key: set connection_config.app_key or DD_APP_KEY",
                    req.path
                ))
            })?;
            rb = rb.header("DD-APPLICATION-KEY", app.expose());
        }
        if req.method != Method::Get {
            rb = rb.header("Content-Type", req.content_type).body(req.body.clone());
            if req.gzip {
                rb = rb.header("Content-Encoding", "gzip");
            }
        }
        let resp = rb.send().map_err(|e| ApiError::Transport {
            method: method.clone(),
            url: url.clone(),
            msg: transport_msg(&e),
            timeout: e.is_timeout(),
        })?;
        let status = resp.status().as_u16();
        let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let date = header("date").and_then(|d| parse_http_date(&d));
        let reset = header("x-ratelimit-reset");
        let retry_after = header("retry-after");
        let body = resp
            .bytes()
            .map_err(|e| ApiError::Transport {
                method: method.clone(),
                url: url.clone(),
                msg: transport_msg(&e),
                timeout: e.is_timeout(),
            })?
            .to_vec();
        if (200..300).contains(&status) {
            return Ok(Response { status, body, date });
        }
        Err(ApiError::Http {
            method,
            url,
            status,
            msg: error::server_message(&body),
            retry_after: error::retry_after(reset.as_deref(), retry_after.as_deref()),
        })
    }

    /// `GET /api/v1/validate`: is the API key accepted? Returns the response (its `Date` is the server clock).
    pub fn validate(&self) -> Result<Response, ApiError> {
        let resp = self.send(&Request::get(Api::Api, "/api/v1/validate", false))?;
        match resp.json()?.get("valid").and_then(|v| v.as_bool()) {
            Some(true) => Ok(resp),
            _ => Err(ApiError::Config("the API key was not reported valid by /api/v1/validate".into())),
        }
    }

    /// `GET /api/v2/current_user` (needs the application key): who the keys act as.
    pub fn current_user(&self) -> Result<CurrentUser, ApiError> {
        let v = self.send(&Request::get(Api::Api, "/api/v2/current_user", true))?.json()?;
        let data = v.get("data").cloned().unwrap_or_default();
        let attr = |k: &str| {
            data.get("attributes")
                .and_then(|a| a.get(k))
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok(CurrentUser {
            id: data.get("id").and_then(|s| s.as_str()).unwrap_or_default().to_string(),
            handle: attr("handle"),
            email: attr("email"),
            name: attr("name"),
        })
    }
}

/// The user behind the application key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: String,
    pub handle: String,
    pub email: String,
    pub name: String,
}

/// Setting the client up failed: bad host, or the HTTP stack.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn transport_msg(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let what = if e.is_connect() { "cannot connect" } else { "request failed" };
    format!("{what}: {}", chain(e))
}

/// The error and its causes in one line, without the URL (the caller adds it once; reqwest's own message
/// repeats it). Shared by the Datadog client and the session server client.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.dedup();
    parts.join(": ")
}

/// Parses an HTTP date (`Wed, 25 Nov 2026 18:01:32 GMT`, and the two obsolete forms RFC 9110 accepts).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Wed, 25 Nov 2026 18:01:32 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 1_795_629_692);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn debug_masks_keys() {
        let site = Site::resolve("app.datadoghq.com", 443).unwrap();
        let key = "abcdefabcdefabcdefabcdef12345678";
        let c = Client::new(site, Some(Secret::new(key)), Some(Secret::new(key)), ClientOptions::default())
            .unwrap();
        assert!(!format!("{c:?}").contains(key));
    }

    #[test]
    fn missing_api_key_is_a_config_error_that_says_how_to_fix_it() {
        let site = Site::resolve("http://127.0.0.1:9", 443).unwrap();
        let c = Client::new(site, None, None, ClientOptions::default()).unwrap();
        let e = c.send(&Request::get(Api::Api, "/api/v1/validate", false)).unwrap_err();
        assert!(e.to_string().contains("DD_API_KEY"), "{e}");
    }
}
