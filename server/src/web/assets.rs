//! The web UI's static files, embedded in the binary: our own CSS and scripts (server/web/) and the
//! asciinema-player files `make web-assets` fetched (build.rs says where). Served under a path that carries
//! their content hash, so they can be cached forever and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

macro_rules! player {
    ($f:literal) => {
        include_bytes!(concat!(env!("DDCOTERM_WEB_ASSETS_DIR"), "/", $f))
    };
}

/// Name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../web/app.css")),
    ("list.js", "text/javascript; charset=utf-8", include_bytes!("../../web/list.js")),
    ("session.js", "text/javascript; charset=utf-8", include_bytes!("../../web/session.js")),
    ("asciinema-player.js", "text/javascript; charset=utf-8", player!("asciinema-player.js")),
    ("asciinema-player.css", "text/css; charset=utf-8", player!("asciinema-player.css")),
    ("LICENSE-asciinema-player", "text/plain; charset=utf-8", player!("LICENSE-asciinema-player")),
];

/// The player's licence notice, at a stable address (linked from every page's footer).
pub const LICENSE_PATH: &str = "/static/LICENSE-asciinema-player";

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
    /// First 16 hex digits of the SHA-256: the path segment and the ETag.
    hash: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, mime, bytes)| Asset {
            name,
            mime,
            bytes,
            hash: hex::encode(Sha256::digest(bytes))[..16].to_string(),
        })
        .collect()
});

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The cache-busting URL of one of our files: `/static/<hash>/<name>`.
pub fn url(name: &str) -> String {
    let a = find(name).unwrap_or_else(|| panic!("no embedded asset {name}"));
    format!("/static/{}/{}", a.hash, a.name)
}

/// `GET /static/{hash}/{name}`: immutable for a year; a hash of another build is 404 (never stale bytes).
pub async fn serve(Path((hash, name)): Path<(String, String)>, headers: HeaderMap) -> Response {
    match find(&name) {
        Some(a) if a.hash == hash => respond(a, &headers, "public, max-age=31536000, immutable"),
        _ => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// `GET /static/LICENSE-asciinema-player`: the notice, revalidated by ETag.
pub async fn license(headers: HeaderMap) -> Response {
    respond(find("LICENSE-asciinema-player").expect("embedded"), &headers, "no-cache")
}

fn respond(a: &Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let etag = format!("\"{}\"", a.hash);
    let etag_v = HeaderValue::from_str(&etag).expect("hex");
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_v)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(a.mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::ETAG, etag_v),
        ],
        a.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_embedded_with_a_hashed_url() {
        for (name, _, bytes) in FILES {
            assert!(!bytes.is_empty(), "{name}");
            let u = url(name);
            assert!(
                u.starts_with("/static/")
                    && u.ends_with(name)
                    && u.len() == "/static/".len() + 16 + 1 + name.len(),
                "{u}"
            );
        }
        let lic = std::str::from_utf8(find("LICENSE-asciinema-player").unwrap().bytes).unwrap();
        assert!(lic.contains("Apache License"), "the player's licence notice ships with the server");
    }
}
