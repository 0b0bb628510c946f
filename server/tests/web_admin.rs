//! The admin pages over plain HTTP: admins only (others 403, nobody to the sign-in page), tokens listed and
//! revoked, users added and removed (their login ending), the audit of reviewers newest first in pages, every
//! form same-origin with the login's CSRF token, hostile names escaped.

mod support;
mod web_support;

use support::Server;
use web_support::{add_user, http, out, sign_in, Upload};

fn get(s: &Server, path: &str, cookie: &str) -> reqwest::blocking::Response {
    http().get(format!("{}{path}", s.url)).header("cookie", cookie).send().unwrap()
}

fn post(s: &Server, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> reqwest::blocking::Response {
    http()
        .post(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(pairs))
        .send()
        .unwrap()
}

/// The login's CSRF token, from the sign-out form of any page.
fn csrf(s: &Server, cookie: &str) -> String {
    let page = get(s, "/admin", cookie).text().unwrap();
    page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string()
}

#[test]
fn only_admins_open_the_admin_pages_and_post_their_forms() {
    let s = Server::start();
    add_user(&s, "root", "admin", "admin password");
    add_user(&s, "aud", "auditor", "auditor password");
    add_user(&s, "vic", "viewer", "viewer password");
    let admin = sign_in(&s, "root", "admin password");
    let pages = ["/admin", "/admin/tokens", "/admin/users", "/admin/audit"];
    for p in pages {
        let r = get(&s, p, "");
        assert_eq!(r.status(), 303, "{p}");
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?next="), "{p}");
        assert_eq!(get(&s, p, &admin).status(), 200, "{p}");
    }
    assert!(get(&s, "/", &admin).text().unwrap().contains(r#"<a id="admin" href="/admin">"#));
    for (user, pw) in [("aud", "auditor password"), ("vic", "viewer password")] {
        let c = sign_in(&s, user, pw);
        for p in pages {
            assert_eq!(get(&s, p, &c).status(), 403, "{user} {p}");
        }
        assert!(!get(&s, "/", &c).text().unwrap().contains(r#"href="/admin""#), "no admin link for {user}");
        // Their own valid CSRF token does not make them admins.
        let token = get(&s, "/", &c).text().unwrap();
        let token =
            token.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
        let r = post(
            &s,
            "/admin/users",
            &c,
            &[("csrf", &token), ("name", "x"), ("role", "admin"), ("password", "12345678")],
        );
        assert_eq!(r.status(), 403, "{user}");
    }
    // A reader token (scripts) can look but has no login to post forms with.
    let tok = s.token("reader", "admin");
    let r = http().get(format!("{}/admin/tokens", s.url)).bearer_auth(&tok).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(format!("{}/admin/tokens/revoke", s.url))
        .bearer_auth(&tok)
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[("name", "reader")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // Forms: a missing or wrong CSRF token, or another site, are refused and change nothing.
    let token = csrf(&s, &admin);
    let r = post(&s, "/admin/users", &admin, &[("name", "eve"), ("role", "admin"), ("password", "12345678")]);
    assert_eq!(r.status(), 403);
    let r = post(
        &s,
        "/admin/users",
        &admin,
        &[("csrf", "x"), ("name", "eve"), ("role", "admin"), ("password", "12345678")],
    );
    assert_eq!(r.status(), 403);
    let r = http()
        .post(format!("{}/admin/users", s.url))
        .header("cookie", &admin)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[
            ("csrf", &token),
            ("name", "eve"),
            ("role", "admin"),
            ("password", "12345678"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let users = get(&s, "/admin/users", &admin).text().unwrap();
    assert!(has_name_row(&users, "aud") && !has_name_row(&users, "eve"), "{users}");

    // The token and password forms: CSRF and admins only, like the others; bad fields named.
    let vic = sign_in(&s, "vic", "viewer password");
    let page = get(&s, "/", &vic).text().unwrap();
    let vic_csrf =
        page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let make = [("name", "t1"), ("role", "admin"), ("host", "")];
    for (cookie, token) in [(&admin, "x"), (&admin, ""), (&vic, vic_csrf.as_str())] {
        let mut f = make.to_vec();
        f.push(("csrf", token));
        assert_eq!(post(&s, "/admin/tokens", cookie, &f).status(), 403, "create with csrf {token:?}");
        let r = post(
            &s,
            "/admin/users/password",
            cookie,
            &[("csrf", token), ("name", "aud"), ("password", "new password!")],
        );
        assert_eq!(r.status(), 403, "reset with csrf {token:?}");
    }
    // The name's own cell: "t1" as a bare substring turns up now and then in a random value on the page
    // (most likely its CSRF token).
    assert!(!has_name_row(&get(&s, "/admin/tokens", &admin).text().unwrap(), "t1"));
    for (form, want) in [
        (vec![("name", "t1"), ("role", "root")], "role"),
        (vec![("name", ""), ("role", "viewer")], "name"),
        (vec![("name", "t1"), ("role", "viewer"), ("host", "web-1")], "host"),
    ] {
        let mut f = form.clone();
        f.push(("csrf", &token));
        let r = post(&s, "/admin/tokens", &admin, &f);
        assert_eq!(r.status(), 400, "{form:?}");
        assert!(r.text().unwrap().contains(want), "{form:?} names {want}");
    }
    let r = post(
        &s,
        "/admin/users/password",
        &admin,
        &[("csrf", &token), ("name", "aud"), ("password", "short")],
    );
    assert_eq!(r.status(), 400);
    let r = post(
        &s,
        "/admin/users/password",
        &admin,
        &[("csrf", &token), ("name", "nobody"), ("password", "long enough")],
    );
    assert_eq!(r.status(), 404);
    // A created token is in the answer once, with no-store; a second of that name is 409.
    let r = post(&s, "/admin/tokens", &admin, &[("csrf", &token), ("name", "ci"), ("role", "viewer")]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().unwrap();
    let created =
        page.split(r#"<code id="new-token">"#).nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(created.starts_with("ddcts_"));
    let listed = get(&s, "/admin/tokens", &admin).text().unwrap();
    assert!(has_name_row(&listed, "ci"), "{listed}");
    assert!(!listed.contains(&created));
    assert!(!s.log().contains(&created), "the new token is logged");
    let r = post(&s, "/admin/tokens", &admin, &[("csrf", &token), ("name", "ci"), ("role", "viewer")]);
    assert_eq!(r.status(), 409);
    // A reset password ends the user's logins.
    let aud = sign_in(&s, "aud", "auditor password");
    let r = post(
        &s,
        "/admin/users/password",
        &admin,
        &[("csrf", &token), ("name", "aud"), ("password", "new password!")],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(get(&s, "/", &aud).status(), 303, "the old login ended");
    sign_in(&s, "aud", "new password!");
}

#[test]
fn tokens_are_listed_and_revoked() {
    let s = Server::start();
    add_user(&s, "root", "admin", "admin password");
    let admin = sign_in(&s, "root", "admin password");
    let host = s.token("web-01", "host");
    let _reader = s.token("ci-reader", "auditor");
    assert_eq!(s.create(&host, "0190a1b2-0000-7000-8000-000000000001", "alice").status(), 201);
    let page = get(&s, "/admin/tokens", &admin).text().unwrap();
    for name in ["web-01", "ci-reader"] {
        assert!(page.contains(&format!(r#"<tr data-name="{name}">"#)), "{page}");
    }
    let row = page.split(r#"<tr data-name="web-01">"#).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(
        row.contains(">host<") && row.contains("active") && !row.contains("never"),
        "last seen set: {row}"
    );
    let row = page.split(r#"<tr data-name="ci-reader">"#).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">auditor<") && row.contains("never"), "{row}");

    let token = csrf(&s, &admin);
    let r = post(&s, "/admin/tokens/revoke", &admin, &[("csrf", &token), ("name", "web-01")]);
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/tokens");
    // The revoked token no longer writes, at once although it was just used (the page forgets the host
    // tokens this process trusted for a second); the page says so and offers no second revoke.
    assert_eq!(s.create(&host, "0190a1b2-0000-7000-8000-000000000002", "alice").status(), 401);
    let page = get(&s, "/admin/tokens", &admin).text().unwrap();
    let row = page.split(r#"<tr data-name="web-01">"#).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("revoked") && !row.contains("Revoke</button>"), "{row}");
    let r = post(&s, "/admin/tokens/revoke", &admin, &[("csrf", &token), ("name", "web-01")]);
    assert_eq!(r.status(), 404);
    let r = post(&s, "/admin/tokens/revoke", &admin, &[("csrf", &token), ("name", "nope")]);
    assert_eq!(r.status(), 404);
}

#[test]
fn users_are_added_and_removed_and_hostile_names_escaped() {
    let s = Server::start();
    add_user(&s, "root", "admin", "admin password");
    let hostile = r#"<img src=x onerror=alert(1)>"#;
    add_user(&s, hostile, "viewer", "hostile password");
    let admin = sign_in(&s, "root", "admin password");
    let page = get(&s, "/admin/users", &admin).text().unwrap();
    assert!(!page.contains(hostile) && page.contains("&lt;img src=x onerror=alert(1)&gt;"), "{page}");
    // No remove button for oneself.
    let row = page.split(r#"<tr data-name="root">"#).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(!row.contains("Remove"), "{row}");

    let token = csrf(&s, &admin);
    let add = |name: &str, role: &str, pw: &str| {
        post(
            &s,
            "/admin/users",
            &admin,
            &[("csrf", &token), ("name", name), ("role", role), ("password", pw)],
        )
    };
    let r = add("dana", "auditor", "dana's password");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/users");
    let dana = sign_in(&s, "dana", "dana's password");
    assert!(get(&s, "/", &dana).text().unwrap().contains("dana (auditor)"));
    // Bad fields are named; a taken name is a conflict.
    for (name, role, pw, status, says) in [
        ("dana", "viewer", "12345678", 409, "already exists"),
        ("erin", "host", "12345678", 400, "role"),
        ("erin", "root", "12345678", 400, "role"),
        ("a:b", "viewer", "12345678", 400, "name"),
        ("", "viewer", "12345678", 400, "name"),
        ("erin", "viewer", "short", 400, "password"),
    ] {
        let r = add(name, role, pw);
        assert_eq!(r.status(), status, "{name} {role} {pw}");
        assert!(r.text().unwrap().contains(says), "{name} {role} {pw}");
    }
    // Removing a user ends their login at once.
    let r = post(&s, "/admin/users/remove", &admin, &[("csrf", &token), ("name", "dana")]);
    assert_eq!(r.status(), 303);
    assert_eq!(get(&s, "/", &dana).status(), 303, "dana's login ended");
    let r = post(&s, "/admin/users/remove", &admin, &[("csrf", &token), ("name", "dana")]);
    assert_eq!(r.status(), 404);
    let r = post(&s, "/admin/users/remove", &admin, &[("csrf", &token), ("name", "root")]);
    assert_eq!(r.status(), 400, "no removing oneself");
    let r = post(&s, "/admin/users/remove", &admin, &[("csrf", &token), ("name", hostile)]);
    assert_eq!(r.status(), 303);
    assert!(!get(&s, "/admin/users", &admin).text().unwrap().contains("onerror"));
}

#[test]
fn the_audit_shows_who_viewed_what_newest_first_in_pages() {
    let s = Server::start();
    add_user(&s, "root", "admin", "admin password");
    add_user(&s, "aud", "auditor", "auditor password");
    let admin = sign_in(&s, "root", "admin password");
    let aud = sign_in(&s, "aud", "auditor password");
    let host = s.token("web-01", "host");
    let up = Upload { s: &s, host: &host };
    let (a, b) = ("0190a1b2-0000-7000-8000-00000000000a", "0190a1b2-0000-7000-8000-00000000000b");
    up.session(a, serde_json::json!({}), &[out(0.1, "hi\r\n")], false);
    up.session(b, serde_json::json!({}), &[out(0.1, "ho\r\n")], false);
    assert!(get(&s, "/admin/audit", &admin).text().unwrap().contains("Nothing viewed yet"));
    // 55 downloads of a, then one of b by the auditor: b's is first, 50 a page.
    for _ in 0..55 {
        assert_eq!(get(&s, &format!("/sessions/{a}/download"), &aud).status(), 200);
    }
    assert_eq!(get(&s, &format!("/sessions/{b}/download"), &aud).status(), 200);
    let page = get(&s, "/admin/audit", &admin).text().unwrap();
    let rows: Vec<&str> = page.split("<tr data-id=").skip(1).collect();
    assert_eq!(rows.len(), 50);
    assert!(
        rows[0].contains(b) && rows[0].contains(">aud<") && rows[0].contains(">download<"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(a));
    assert!(rows[0].contains(&format!(r#"href="/sessions/{b}""#)));
    let older = page.split(r#"<a id="older" href=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let page2 = get(&s, &older, &admin).text().unwrap();
    let rows2: Vec<&str> = page2.split("<tr data-id=").skip(1).collect();
    assert_eq!(rows2.len(), 6);
    assert!(rows2.iter().all(|r| r.contains(a)));
    assert!(!page2.contains(r#"id="older""#));
    assert_eq!(get(&s, "/admin/audit?before=x", &admin).status(), 400);
}

/// Whether an admin list page has a row for `name` (its name cell, not the text anywhere on the page).
fn has_name_row(page: &str, name: &str) -> bool {
    page.contains(&format!(r#"<td class="name">{name}</td>"#))
}
