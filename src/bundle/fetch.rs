//! Fetches bundle bytes over HTTPS (plain HTTP only to loopback, for tests) with ETag revalidation,
//! timeouts, a size cap and no redirect to an insecure URL.

use reqwest::blocking::Client;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use std::io::Read;
use std::time::Duration;

/// A bundle larger than this is refused (policy is text; a huge body is an attack or a mistake).
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Connection timeout for a source.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout for a source.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Result of a GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the ETag we sent still matches.
    NotModified,
    /// 200 with the full body and its ETag.
    Body { data: Vec<u8>, etag: Option<String> },
    /// 404 (the caller decides what a missing file means).
    NotFound,
}

/// Accepts `https://...`, and `http://` only to a loopback host.
pub fn check_url(url: &str) -> Result<Url, String> {
    let u = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err("plain http is refused (only https, or http to a loopback address for tests)".into()),
        s => Err(format!("unsupported scheme `{s}` (use https)")),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `<url>.sig`: the signature sits beside the bundle (the query string, if any, is kept after it).
pub fn sig_url(url: &Url) -> Url {
    let mut u = url.clone();
    let path = format!("{}.sig", u.path());
    u.set_path(&path);
    u
}

/// One HTTP client for a whole pull.
pub struct Fetcher {
    client: Client,
}

impl Fetcher {
    /// Builds the client: timeouts, our user agent, and redirects only to allowed URLs (at most 5).
    pub fn new(request_timeout: Duration) -> Result<Fetcher, String> {
        let policy = reqwest::redirect::Policy::custom(|a| {
            if a.previous().len() >= 5 {
                a.error("too many redirects")
            } else if let Err(m) = check_url(a.url().as_str()) {
                let msg = format!("redirect to {} refused: {m}", a.url());
                a.error(msg)
            } else {
                a.follow()
            }
        });
        crate::datadog::tls::install_provider();
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
            .timeout(request_timeout)
            .redirect(policy)
            .user_agent(concat!("ddcoterm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher { client })
    }

    /// GETs `url`, sending `If-None-Match` when an ETag is given. Errors are one line, fit for the state file.
    pub fn get(&self, url: &Url, etag: Option<&str>) -> Result<Fetched, String> {
        let mut req = self.client.get(url.clone());
        if let Some(e) = etag {
            req = req.header(IF_NONE_MATCH, e);
        }
        let resp = req.send().map_err(|e| format!("fetch failed: {}", error_chain(&e)))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED if etag.is_some() => return Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND => return Ok(Fetched::NotFound),
            s if s != StatusCode::OK => return Err(format!("HTTP {s}")),
            _ => {}
        }
        let new_etag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let declared = resp.content_length();
        if declared.is_some_and(|n| n > MAX_BYTES) {
            return Err(format!("body is larger than {MAX_BYTES} bytes"));
        }
        let mut data = Vec::new();
        resp.take(MAX_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("download interrupted: {}", error_chain(&e)))?;
        if data.len() as u64 > MAX_BYTES {
            return Err(format!("body is larger than {MAX_BYTES} bytes"));
        }
        if let Some(n) = declared.filter(|n| *n != data.len() as u64) {
            return Err(format!("truncated download: got {} of {n} bytes", data.len()));
        }
        Ok(Fetched::Body { data, etag: new_etag })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let cases = [
            ("https://bundles.example.com/b.yaml", true),
            ("http://127.0.0.1:8080/b.yaml", true),
            ("http://[::1]:8080/b.yaml", true),
            ("http://localhost/b.yaml", true),
            ("http://bundles.example.com/b.yaml", false),
            ("http://10.0.0.1/b.yaml", false),
            ("ftp://127.0.0.1/b.yaml", false),
            ("file:///etc/passwd", false),
            ("not a url", false),
        ];
        for (url, ok) in cases {
            assert_eq!(check_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn signature_url_is_beside_the_bundle() {
        let u = Url::parse("https://h/p/sre.yaml?x=1").unwrap();
        assert_eq!(sig_url(&u).as_str(), "https://h/p/sre.yaml.sig?x=1");
    }
}
