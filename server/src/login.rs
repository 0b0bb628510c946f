//! Web sign-in for people: login cookies (random, stored hashed, with an expiry), which login a request
//! carries and whether it still holds, the CSRF checks of state-changing forms, and the login throttle.
//!
//! A login holds while it has not expired, its user still exists and still has the role it signed in with:
//! `user remove`, a role change or sign-out ends it, and live streams opened with it end within a poll.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use rand::RngCore as _;

use crate::auth::{token_hash, Principal};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::{LoginRow, UserRow};

/// The cookie's name. `__Host-` would pin Secure and Path=/, but it also demands Secure, which a plain-http
/// loopback server cannot set; the attributes are set explicitly instead.
pub const COOKIE: &str = "ddcoterm_login";
/// How long a login lasts without signing in again.
pub const LOGIN_TTL_MS: i64 = 12 * 3600 * 1000;
/// The throttle's window and how many failures it allows in it, per user name and per client address.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILURES: u64 = 5;

/// 256 random bits, URL-safe base64.
fn random() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A new login for `user`: the cookie value (given to the browser once, never stored) and the row to store.
pub fn new_login(user: &UserRow, now: i64) -> (String, LoginRow) {
    let value = random();
    let row = LoginRow {
        hash: token_hash(&value),
        user: user.name.clone(),
        role: user.role,
        csrf: random(),
        created_at: now,
        expires_at: now + LOGIN_TTL_MS,
        current_role: Some(user.role),
        current_email: user.email.clone(),
    };
    (value, row)
}

/// Whether a stored login still signs its user in at `now`.
pub fn holds(l: &LoginRow, now: i64) -> bool {
    now < l.expires_at && l.current_role == Some(l.role)
}

/// The value of our login cookie in the request's `Cookie` headers, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE, 128)
}

/// The non-empty value of cookie `name` in the request's `Cookie` headers, if any and at most `max_len`
/// bytes (anything longer is not one of ours).
pub fn named_cookie<'h>(headers: &'h HeaderMap, name: &str, max_len: usize) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= max_len)
}

/// The signed-in person behind the request's cookie, if the login holds.
pub async fn resolve(st: &AppState, headers: &HeaderMap) -> ApiResult<Option<(Principal, LoginRow)>> {
    let Some(value) = cookie_value(headers) else { return Ok(None) };
    let Some(l) = st.meta.login_get(&token_hash(value)).await? else { return Ok(None) };
    if !holds(&l, crate::ingest::now_ms()) {
        return Ok(None);
    }
    let who = Principal {
        token_id: None,
        name: l.user.clone(),
        email: l.current_email.clone(),
        role: l.role,
        host: None,
        login: Some(l.hash.clone()),
    };
    Ok(Some((who, l)))
}

/// Whether the login with this hash still holds (live streams ask this on every poll). A database that
/// cannot answer counts as revoked: a stream must not outlive a sign-out it could not check.
pub async fn still_holds(st: &AppState, hash: &str) -> bool {
    match st.meta.login_get(hash).await {
        Ok(Some(l)) => holds(&l, crate::ingest::now_ms()),
        _ => false,
    }
}

/// `Set-Cookie` for a new login (`value`), or one that clears it (`None`). `Secure` when the server's public
/// URL is https.
pub fn set_cookie(st: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if st.public_url.starts_with("https://") { "; Secure" } else { "" };
    let s = match value {
        Some(v) => format!(
            "{COOKIE}={v}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            LOGIN_TTL_MS / 1000
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&s).expect("cookie values are URL-safe base64")
}

/// The request comes from one of our own pages: `Sec-Fetch-Site: same-origin` when the browser sends it,
/// else an `Origin` equal to the public URL's or the `Host` the request was sent to. A request with neither
/// header is refused (every browser that submits a form sends one of them).
pub fn same_origin(st: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return false };
    if origin == origin_of(&st.public_url) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// `scheme://host[:port]` of a URL (what browsers put in `Origin`).
fn origin_of(url: &str) -> &str {
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => &url[..i + 3 + j],
            None => url,
        },
        None => url,
    }
}

/// Constant-time comparison of the CSRF token a form carried with the login's.
pub fn csrf_ok(login: &LoginRow, sent: &str) -> bool {
    let (a, b) = (login.csrf.as_bytes(), sent.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds until a sign-in for `user` from `addr` may be tried again, if either has used up its failures.
pub async fn throttled(st: &AppState, user: &str, addr: &str, now: i64) -> ApiResult<Option<u64>> {
    let (by_user, by_addr) = st.meta.login_failures(user, addr, now - THROTTLE_WINDOW_MS).await?;
    Ok((by_user >= MAX_FAILURES || by_addr >= MAX_FAILURES).then_some((THROTTLE_WINDOW_MS / 1000) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Role;

    fn user(role: Role) -> UserRow {
        UserRow { name: "alice".into(), role, password: String::new(), email: None }
    }

    #[test]
    fn a_login_holds_until_expiry_removal_or_role_change() {
        let (value, mut l) = new_login(&user(Role::Viewer), 1000);
        assert_eq!(l.hash, token_hash(&value));
        assert_ne!(l.csrf, value);
        assert!(holds(&l, 1001));
        assert!(!holds(&l, 1000 + LOGIN_TTL_MS));
        l.current_role = Some(Role::Admin);
        assert!(!holds(&l, 1001), "a role change ends the login");
        l.current_role = None;
        assert!(!holds(&l, 1001), "a removed user's login ends");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_bounded() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; ddcoterm_login=abc ; b=2"));
        assert_eq!(cookie_value(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={}", "x".repeat(200))).unwrap());
        assert_eq!(cookie_value(&h), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let (_, l) = new_login(&user(Role::Auditor), 0);
        assert!(csrf_ok(&l, &l.csrf.clone()));
        assert!(!csrf_ok(&l, ""));
        assert!(!csrf_ok(&l, &format!("{}x", l.csrf)));
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("https://rec.example.com/x/y"), "https://rec.example.com");
        assert_eq!(origin_of("http://127.0.0.1:7780"), "http://127.0.0.1:7780");
    }
}
