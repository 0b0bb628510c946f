//! Web UI over plain HTTP (no browser): sign-in and its cookie, the throttle, CSRF and same-origin checks,
//! open redirects, security headers, who may open which page (viewer scope, the approver's grant), the
//! audited download, hostile metadata escaped, and live streams that end when their login does.

mod support;
mod web_support;

use std::io::Read as _;
use std::time::{Duration, Instant};

use support::Server;
use web_support::{add_user, http, out, sign_in, Upload};

const CSP: &str =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn get(s: &Server, path: &str, cookie: &str) -> reqwest::blocking::Response {
    http().get(format!("{}{path}", s.url)).header("cookie", cookie).send().unwrap()
}

fn login_form(s: &Server, user: &str, password: &str, next: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{}/login", s.url))
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("user", user), ("password", password), ("next", next)]))
        .send()
        .unwrap()
}

/// An inline event-handler attribute (` onload=`, ` onerror=` ...) anywhere in the page.
fn has_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

#[test]
fn pages_send_strangers_to_sign_in_and_come_back_only_to_local_paths() {
    let s = Server::start();
    add_user(&s, "alice", "auditor", "correct horse");
    let r = get(&s, "/sessions/abc?q=x", "");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fsessions%2Fabc%3Fq%3Dx");
    // The form never carries a foreign `next`, and the sign-in never redirects off the server.
    let page = get(&s, "/login?next=https://evil.example/x", "").text().unwrap();
    assert!(page.contains(r#"name="next" value="/""#), "{page}");
    for (next, to) in [
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/sessions/abc?q=x", "/sessions/abc?q=x"),
    ] {
        let r = login_form(&s, "alice", "correct horse", next);
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], to, "next={next}");
    }
}

#[test]
fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_needs_the_csrf_token() {
    let s = Server::start();
    add_user(&s, "alice", "auditor", "correct horse");
    // A wrong password and an unknown user get the same answer.
    let a = login_form(&s, "alice", "wrong", "/");
    let b = login_form(&s, "nobody", "wrong", "/");
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (401, 401));
    let (a, b) = (a.text().unwrap(), b.text().unwrap());
    assert!(a.contains("wrong user name or password") && b.contains("wrong user name or password"));
    // No Origin and no Sec-Fetch-Site, or a cross-site one: refused before the password is even looked at.
    let r = http()
        .post(format!("{}/login", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("user", "alice"), ("password", "correct horse")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http()
        .post(format!("{}/login", s.url))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("user", "alice"), ("password", "correct horse")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = login_form(&s, "alice", "correct horse", "/");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure ({set})");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = get(&s, "/", &cookie);
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let html = page.text().unwrap();
    assert!(!html.contains("<script>") && !has_handler(&html), "no inline script or handler");
    let csrf = html.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    // The read API takes the cookie too.
    assert_eq!(get(&s, "/api/v1/sessions", &cookie).status(), 200);
    // ... but never for a write.
    let r = http()
        .post(format!("{}/api/v1/sessions", s.url))
        .header("cookie", &cookie)
        .json(&serde_json::json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let logout = |csrf: &str, site: &str| {
        http()
            .post(format!("{}/logout", s.url))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(web_support::form(&[("csrf", csrf)]))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(logout("forged", "same-origin"), 403);
    assert_eq!(logout(&csrf, "cross-site"), 403);
    assert_eq!(get(&s, "/", &cookie).status(), 200, "still signed in after refused sign-outs");
    assert_eq!(logout(&csrf, "same-origin"), 303);
    assert_eq!(get(&s, "/", &cookie).status(), 303, "signed out");
    assert_eq!(get(&s, "/api/v1/sessions", &cookie).status(), 401);
}

#[test]
fn the_cookie_is_secure_behind_an_https_public_url() {
    let s = Server::start_with(&[("DDCOTERMD_PUBLIC_URL", "https://rec.example.com")]);
    add_user(&s, "alice", "viewer", "correct horse");
    let r = http()
        .post(format!("{}/login", s.url))
        .header("origin", "https://rec.example.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("user", "alice"), ("password", "correct horse")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[test]
fn five_failures_throttle_the_user_and_the_address_with_retry_after() {
    let s = Server::start();
    add_user(&s, "alice", "viewer", "correct horse");
    add_user(&s, "bob", "viewer", "battery staple");
    for _ in 0..5 {
        assert_eq!(login_form(&s, "alice", "wrong", "/").status(), 401);
    }
    // The right password no longer helps, for this user or any other from this address.
    for (u, p) in [("alice", "correct horse"), ("bob", "battery staple"), ("nobody", "x")] {
        let r = login_form(&s, u, p, "/");
        assert_eq!(r.status(), 429, "{u}");
        assert_eq!(r.headers()["retry-after"], "900");
        assert!(r.text().unwrap().contains("too many failed sign-ins"));
    }
    assert!(s.log().contains("sign-in failed"), "failures are logged");
}

/// Behind a reverse proxy every connection is the proxy's. With `trusted_proxies`, failures count against
/// the client the proxy names in `X-Forwarded-For`, so one client's wrong passwords do not lock everyone
/// else out; without it the header is not believed, so a client cannot spread its failures over addresses it
/// makes up.
#[test]
fn behind_a_trusted_proxy_failures_count_against_the_forwarded_client() {
    let login_via = |s: &Server, client: &str, user: &str, password: &str| {
        http()
            .post(format!("{}/login", s.url))
            .header("origin", &s.url)
            .header("x-forwarded-for", client)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(web_support::form(&[("user", user), ("password", password), ("next", "/")]))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let s = Server::start_with(&[("DDCOTERMD_TRUSTED_PROXIES", "127.0.0.1,::1")]);
    add_user(&s, "bob", "viewer", "battery staple");
    for user in ["mallory", "root", "admin", "oracle", "guest"] {
        assert_eq!(login_via(&s, "203.0.113.7", user, "guess"), 401, "{user}");
    }
    assert_eq!(
        login_via(&s, "203.0.113.7", "bob", "battery staple"),
        429,
        "the guessing client is throttled"
    );
    assert_eq!(
        login_via(&s, "198.51.100.4", "bob", "battery staple"),
        303,
        "another client behind the proxy is not"
    );
    // A forged entry to the left of the proxy's own is the client's claim, not the proxy's.
    assert_eq!(login_via(&s, "198.51.100.9, 203.0.113.7", "bob", "battery staple"), 429);
    assert!(s.log().contains("203.0.113.7"), "failures are logged with the forwarded address");

    let direct = Server::start();
    add_user(&direct, "bob", "viewer", "battery staple");
    for i in 1..=5 {
        assert_eq!(login_via(&direct, &format!("203.0.113.{i}"), "mallory", "guess"), 401);
    }
    assert_eq!(
        login_via(&direct, "198.51.100.4", "bob", "battery staple"),
        429,
        "with no trusted proxy, made-up X-Forwarded-For addresses are all the one peer"
    );
}

#[test]
fn viewers_open_their_own_sessions_and_those_they_approved_and_nothing_else() {
    let s = Server::start();
    let host = s.token("web-1", "host");
    let up = Upload { s: &s, host: &host };
    up.session("alice-1", serde_json::json!({"user": "alice"}), &[out(0.5, "hi\r\n")], false);
    up.session(
        "carol-1",
        serde_json::json!({"user": "carol", "tags": ["approver:bob"]}),
        &[out(0.5, "x")],
        false,
    );
    add_user(&s, "bob", "viewer", "battery staple");
    add_user(&s, "alice", "viewer", "correct horse");
    let bob = sign_in(&s, "bob", "battery staple");
    let alice = sign_in(&s, "alice", "correct horse");
    assert_eq!(get(&s, "/sessions/alice-1", &bob).status(), 404, "another user's session, by URL");
    assert_eq!(get(&s, "/sessions/alice-1/download", &bob).status(), 404);
    assert_eq!(get(&s, "/sessions/carol-1", &bob).status(), 200, "bob approved carol's command");
    assert_eq!(get(&s, "/sessions/carol-1/recording", &bob).status(), 200);
    assert_eq!(get(&s, "/sessions/carol-1", &alice).status(), 404);
    assert_eq!(get(&s, "/sessions/alice-1", &alice).status(), 200);
    let list = get(&s, "/", &alice).text().unwrap();
    assert!(list.contains("alice-1") && !list.contains("carol-1"));
    // `user remove` ends the login at once.
    assert!(s.cli(&["user", "remove", "alice"]).status.success());
    assert_eq!(get(&s, "/", &alice).status(), 303);
}

#[test]
fn the_list_filters_by_rule_approval_and_break_glass() {
    let s = Server::start();
    let host = s.token("web-1", "host");
    let up = Upload { s: &s, host: &host };
    up.session("case-1", serde_json::json!({"approval": "CASE-7"}), &[out(0.5, "x")], false);
    up.session("glass-1", serde_json::json!({"break_glass": true}), &[out(0.5, "x")], false);
    up.session("plain-1", serde_json::json!({"rule": "dev"}), &[out(0.5, "x")], false);
    add_user(&s, "rev", "auditor", "battery staple");
    let rev = sign_in(&s, "rev", "battery staple");
    let page = |q: &str| {
        let r = get(&s, &format!("/?{q}"), &rev);
        assert_eq!(r.status(), 200, "{q}");
        r.text().unwrap()
    };
    // "any" (an empty value) is no filter.
    let html = page("rule=&approval=yes&break_glass=");
    assert!(html.contains("/sessions/case-1") && !html.contains("/sessions/glass-1"), "{html}");
    assert!(!html.contains("/sessions/plain-1"), "{html}");
    assert!(html.contains(r#"<option value="yes" selected>approved</option>"#), "{html}");
    let html = page("break_glass=yes");
    assert!(html.contains("/sessions/glass-1") && !html.contains("/sessions/case-1"), "{html}");
    let html = page("rule=dev&break_glass=no");
    assert!(html.contains("/sessions/plain-1") && !html.contains("/sessions/case-1"), "{html}");
    let r = get(&s, "/?approval=maybe", &rev);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("`approval`"));
}

#[test]
fn download_is_an_audited_attachment_with_the_uploaded_bytes() {
    let s = Server::start();
    let host = s.token("web-1", "host");
    let cast = Upload { s: &s, host: &host }.session(
        "d1",
        serde_json::json!({}),
        &[out(0.5, "one\r\n"), out(1.0, "two\r\n")],
        false,
    );
    add_user(&s, "root", "admin", "correct horse");
    let c = sign_in(&s, "root", "correct horse");
    let r = get(&s, "/sessions/d1/download", &c);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"d1.cast\"");
    assert_eq!(r.bytes().unwrap().to_vec(), cast);
    let r = get(&s, "/sessions/d1/recording", &c);
    assert!(r.headers().get("content-disposition").is_none());
    assert_eq!(r.bytes().unwrap().to_vec(), cast);
    let (_, v) = s.get_json(&s.token("adm", "admin"), "/api/v1/views?session=d1");
    let kinds: Vec<&str> =
        v["views"].as_array().unwrap().iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["view", "download"]);
    assert!(v["views"].as_array().unwrap().iter().all(|v| v["viewer"] == "root"));
}

#[test]
fn hostile_metadata_is_escaped_in_every_page() {
    let s = Server::start();
    let host = s.token("web-1", "host");
    let evil = r#"<script>window.__xss=1</script><img src=x onerror="window.__xss=2">"#;
    Upload { s: &s, host: &host }.session(
        "x1",
        serde_json::json!({"user": evil, "command": evil, "rule": evil, "approval": evil, "host": evil,
                           "tags": [evil], "ssh": {"client": evil, "fingerprint": evil}}),
        &[out(0.5, evil)],
        false,
    );
    add_user(&s, "aud", "auditor", "correct horse");
    let c = sign_in(&s, "aud", "correct horse");
    for path in ["/", "/sessions/x1", "/?q=%3Cscript%3E", "/?user=%3Cscript%3E"] {
        let html = get(&s, path, &c).text().unwrap();
        assert!(!html.contains("<script>window") && !html.contains("<img"), "{path}: {html}");
        assert!(html.contains("&lt;script&gt;"), "{path} shows the text, escaped");
    }
}

#[test]
fn a_live_stream_ends_when_its_login_signs_out() {
    let s = Server::start();
    let host = s.token("web-1", "host");
    Upload { s: &s, host: &host }.session("live1", serde_json::json!({}), &[out(0.5, "running\r\n")], true);
    add_user(&s, "aud", "auditor", "correct horse");
    let c = sign_in(&s, "aud", "correct horse");
    let html = get(&s, "/", &c).text().unwrap();
    let csrf = html.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let mut stream =
        http().get(format!("{}/api/v1/sessions/live1/live", s.url)).header("cookie", &c).send().unwrap();
    assert_eq!(stream.status(), 200);
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    while !seen.contains("running") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before its first screen: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let r = http()
        .post(format!("{}/logout", s.url))
        .header("cookie", &c)
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("csrf", csrf.as_str())]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    // The stream closes within a poll or two (heartbeats aside, nothing more arrives).
    let start = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("stream error instead of an end: {e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the live stream outlived its login");
    }
}

#[test]
fn static_files_are_hashed_immutable_and_the_licence_notice_is_served() {
    let s = Server::start();
    add_user(&s, "aud", "auditor", "correct horse");
    let c = sign_in(&s, "aud", "correct horse");
    let html = get(&s, "/", &c).text().unwrap();
    let css = html.split("href=\"/static/").nth(1).unwrap().split('"').next().unwrap();
    let r = get(&s, &format!("/static/{css}"), "");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let etag = r.headers()["etag"].clone();
    let name = css.rsplit('/').next().unwrap();
    assert_eq!(
        get(&s, &format!("/static/0000000000000000/{name}"), "").status(),
        404,
        "another build's hash"
    );
    let r = http().get(format!("{}/static/{css}", s.url)).header("if-none-match", etag).send().unwrap();
    assert_eq!(r.status(), 304);
    let lic = get(&s, "/static/LICENSE-asciinema-player", "").text().unwrap();
    assert!(lic.contains("asciinema-player") && lic.contains("Apache License"));
}
