//! The reviewer's web UI (DESIGN.md §12 "Web UI"): server-rendered pages (maud, escaping by default), their
//! static files, sign-in, and the headers every page carries. Pages authorise exactly as the read API does.

mod admin;
mod assets;
mod layout;
mod list;
mod session;
mod signin;
mod sso;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::LoginRow;

/// The policy every page is served under: scripts only from our own static files (the player's
/// WebAssembly needs `'wasm-unsafe-eval'`, nothing more), no inline script or style, no plugins, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                       img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                       form-action 'self'";

pub fn router(st: AppState) -> Router {
    Router::new()
        .route("/", get(list::page))
        .route("/sessions/{id}", get(session::page))
        .route("/sessions/{id}/recording", get(session::recording))
        .route("/sessions/{id}/download", get(session::download))
        .route("/login", get(signin::form).post(signin::submit))
        .route("/logout", post(signin::logout))
        .route("/login/oidc", get(sso::start))
        .route(crate::oidc::CALLBACK_PATH, get(sso::callback))
        .route("/static/{hash}/{name}", get(assets::serve))
        .route(assets::LICENSE_PATH, get(assets::license))
        .merge(admin::routes())
        .layer(middleware::from_fn(security_headers))
        .with_state(st)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show recordings' metadata: never kept by shared caches or the back button after sign-out.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Who is looking at a page: a web login (cookie), or a reviewer token / Basic credentials for scripts.
pub struct Viewer {
    pub who: Principal,
    /// The login when signed in with the cookie (its CSRF token goes into the sign-out form).
    pub login: Option<LoginRow>,
}

/// The page's reader, or a redirect to the sign-in page that comes back to `uri` afterwards.
async fn viewer(st: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let found = if headers.get(header::AUTHORIZATION).is_some() {
        crate::api::authenticate(st, headers).await.map(|who| Some(Viewer { who, login: None }))
    } else {
        crate::login::resolve(st, headers).await.map(|o| o.map(|(who, l)| Viewer { who, login: Some(l) }))
    };
    match found {
        Ok(Some(v)) if v.who.can_read() => Ok(v),
        Ok(Some(_)) => {
            Err(error_page(None, &ApiError::forbidden("host tokens write sessions and never read them")))
        }
        Ok(None) => {
            let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Err(Redirect::to(&format!("/login?next={}", encode(next))).into_response())
        }
        Err(e) => Err(error_page(None, &e)),
    }
}

/// An error as a page (status kept); the message is escaped like everything else.
fn error_page(v: Option<&Viewer>, e: &ApiError) -> Response {
    let body = layout::page(
        v,
        "Error",
        maud::html! {
            h1 { (e.status.canonical_reason().unwrap_or("Error")) }
            p.error { (e.message) }
            p { a href="/" { "Back to the sessions" } }
        },
        maud::html! {},
    );
    let mut res = (e.status, body).into_response();
    if let Some(secs) = e.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// Percent-encodes everything but unreserved characters (a query-string value).
pub fn encode(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::with_capacity(s.len()), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// Where to go after signing in: a path on this server only. Anything that could leave it (an absolute URL,
/// `//host`, `/\host`, control characters) becomes `/`.
pub fn local_next(next: &str) -> &str {
    let b = next.as_bytes();
    let local = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 2048;
    if local {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        for ok in ["/", "/sessions/abc?q=x", "/?user=a%2Fb"] {
            assert_eq!(local_next(ok), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "",
            "/\t/evil.example",
            "evil",
        ] {
            assert_eq!(local_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn encoding_keeps_only_unreserved() {
        assert_eq!(encode("/sessions/a?q=x y&z"), "%2Fsessions%2Fa%3Fq%3Dx%20y%26z");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
