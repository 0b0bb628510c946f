//! Per-session grants over the API and the pages: the approver (by user name or by e-mail, any case) and the
//! responders of the linked incident open a session read-only; anyone else gets 404; sessions stored with
//! the older `approved_by:`/`approver:` tags keep their grant; the views are audited; bad grant fields are
//! refused with the field named; `user add --email` and `user list`.

mod support;
mod web_support;

use base64::Engine as _;
use serde_json::json;
use support::Server;
use web_support::{http, out, sign_in, Upload};

const PW: &str = "correct horse";

/// `user add` through the real CLI, with `--email` when given.
fn add_user(s: &Server, name: &str, role: &str, email: Option<&str>) {
    let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
    if let Some(e) = email {
        args.extend(["--email", e]);
    }
    web_support::add_user_with(s, &args, PW);
}

/// GET as a local user (HTTP Basic): the status and body.
fn get(s: &Server, user: &str, path: &str) -> (u16, String) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PW}"));
    let r = http()
        .get(format!("{}{path}", s.url))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn page(s: &Server, cookie: &str, path: &str) -> (u16, String) {
    let r = http().get(format!("{}{path}", s.url)).header("cookie", cookie).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Every read path of one session: metadata, cast, live stream, window index.
fn reads(id: &str) -> [String; 3] {
    [
        format!("/api/v1/sessions/{id}"),
        format!("/api/v1/sessions/{id}/cast"),
        format!("/api/v1/sessions/{id}/keyframes"),
    ]
}

fn setup() -> Server {
    let s = Server::start();
    let host = s.token("grants-1", "host");
    let up = Upload { s: &s, host: &host };
    up.session(
        "approved-1",
        json!({"user": "carol", "command": "kubectl delete pod web-0", "rule": "prod.yaml:3",
               "rule_message": "Production: a second person approves <b>deletes</b>",
               "approval": "COTERM-7", "approver": "Bob@Example.com",
               "incident": {"id": "42", "responders": ["lead@example.com", "dana"]},
               "tags": ["approval_case:COTERM-7", "approved_by:Bob@Example.com", "incident:42"]}),
        &[out(0.5, "pod deleted\r\n")],
        false,
    );
    up.session(
        "broke-1",
        json!({"user": "carol", "break_glass": true, "break_glass_reason": "db down, <script>x</script>"}),
        &[out(0.5, "x")],
        false,
    );
    // Stored by earlier clients and servers: the grant was a tag.
    up.session(
        "old-client-1",
        json!({"user": "carol", "tags": ["approved_by:erin"]}),
        &[out(0.5, "x")],
        false,
    );
    up.session("old-server-1", json!({"user": "carol", "tags": ["approver:erin"]}), &[out(0.5, "x")], false);
    add_user(&s, "bob", "viewer", Some("bob@example.com"));
    add_user(&s, "Bob@Example.com", "viewer", None);
    add_user(&s, "lead", "viewer", Some("LEAD@example.COM"));
    add_user(&s, "dana", "viewer", None);
    add_user(&s, "erin", "viewer", None);
    add_user(&s, "mallory", "viewer", Some("mallory@example.com"));
    s
}

#[test]
fn approver_and_responders_open_the_session_and_nobody_else_does() {
    let s = setup();
    // bob by e-mail (stored lower case, named in another case), "Bob@Example.com" by exact user name, lead by
    // e-mail (stored in another case), dana by user name as a responder.
    for who in ["bob", "Bob@Example.com", "lead", "dana"] {
        for path in reads("approved-1") {
            let (st, body) = get(&s, who, &path);
            assert_eq!(st, 200, "{who} {path}: {body}");
        }
    }
    let (_, d) = get(&s, "bob", "/api/v1/sessions/approved-1");
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["approver"], "Bob@Example.com");
    assert_eq!(d["incident"], json!({"id": "42", "responders": ["lead@example.com", "dana"]}));
    assert_eq!(d["rule_message"], "Production: a second person approves <b>deletes</b>");
    // Nobody else, and none of them anywhere else: 404 as for a session that does not exist.
    for (who, id) in
        [("mallory", "approved-1"), ("bob", "broke-1"), ("dana", "old-client-1"), ("lead", "broke-1")]
    {
        for path in reads(id) {
            assert_eq!(get(&s, who, &path).0, 404, "{who} {path}");
        }
    }
    // A grant is not a list filter: the list still shows a viewer their own sessions only.
    let (_, list) = get(&s, "bob", "/api/v1/sessions");
    assert!(!list.contains("approved-1"), "{list}");
}

#[test]
fn sessions_stored_with_the_old_tags_keep_their_grant() {
    let s = setup();
    for id in ["old-client-1", "old-server-1"] {
        assert_eq!(get(&s, "erin", &format!("/api/v1/sessions/{id}/cast")).0, 200, "{id}");
        let (_, d) = get(&s, "erin", &format!("/api/v1/sessions/{id}"));
        assert!(d.contains(r#""approver":"erin""#), "{d}");
        assert_eq!(get(&s, "mallory", &format!("/api/v1/sessions/{id}")).0, 404);
    }
}

#[test]
fn grant_views_are_audited_and_the_page_says_who_may_look() {
    let s = setup();
    let bob = sign_in(&s, "bob", PW);
    let (st, html) = page(&s, &bob, "/sessions/approved-1");
    assert_eq!(st, 200, "{html}");
    for want in [
        r#"id="m-approver">Bob@Example.com<"#,
        r#"id="m-incident">42<"#,
        r#"id="m-approval">COTERM-7<"#,
        "Production: a second person approves &lt;b&gt;deletes&lt;/b&gt;",
        "approver Bob@Example.com; responders of incident 42: lead@example.com, dana",
        r#"id="m-your-grant">you: approver<"#,
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert_eq!(page(&s, &bob, "/sessions/approved-1/download").0, 200);
    assert_eq!(page(&s, &sign_in(&s, "mallory", PW), "/sessions/approved-1").0, 404);
    let (_, lead) = get(&s, "lead", "/api/v1/sessions/approved-1/cast");
    assert!(lead.contains("pod deleted"));
    let (_, v) = s.get_json(&s.token("adm", "admin"), "/api/v1/views?session=approved-1");
    let views: Vec<(String, String)> = v["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["viewer"].as_str().unwrap().into(), v["kind"].as_str().unwrap().into()))
        .collect();
    for want in [("bob", "download"), ("lead", "cast")] {
        assert!(views.contains(&(want.0.into(), want.1.into())), "{want:?} in {views:?}");
    }
    // The break-glass reason is shown, escaped.
    let aud = {
        add_user(&s, "aud", "auditor", None);
        sign_in(&s, "aud", PW)
    };
    let (_, html) = page(&s, &aud, "/sessions/broke-1");
    assert!(html.contains(r#"id="m-break-glass-reason">db down, &lt;script&gt;x&lt;/script&gt;<"#), "{html}");
}

#[test]
fn bad_grant_fields_are_refused_with_the_field_named() {
    let s = Server::start();
    let host = s.token("grants-1", "host");
    for (i, (field, value)) in [
        ("approver", json!("bob\u{1b}]0;x\u{7}")),
        ("approver", json!("")),
        ("incident", json!({"id": "42", "responders": ["ok", "line\nbreak"]})),
        ("incident", json!({"id": "42", "responders": vec!["x"; 201]})),
        ("rule_message", json!("x".repeat(5000))),
        ("break_glass_reason", json!("\u{0}")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = support::create_body(&format!("bad-{i}"), "carol");
        body[field] = value;
        let r = s.req("POST", "/api/v1/sessions", &host).json(&body).send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        assert_eq!(status, 422, "{field}: {text}");
        assert!(text.contains(&format!("`{field}")), "{field}: {text}");
    }
}

#[test]
fn user_add_email_and_user_list() {
    let s = Server::start();
    add_user(&s, "alice", "auditor", Some("Alice@Example.com"));
    add_user(&s, "bob", "viewer", None);
    let o = s.cli(&["user", "list"]);
    assert!(o.status.success());
    let listed = String::from_utf8(o.stdout).unwrap();
    assert_eq!(listed, "alice\tauditor\tAlice@Example.com\tpassword\nbob\tviewer\t-\tpassword\n");
    let o = s.cli(&["user", "email", "bob", "bob@example.com"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8(s.cli(&["user", "list"]).stdout)
        .unwrap()
        .contains("bob\tviewer\tbob@example.com"));
    let o = s.cli(&["user", "email", "bob", "--clear"]);
    assert!(o.status.success());
    assert!(String::from_utf8(s.cli(&["user", "list"]).stdout).unwrap().contains("bob\tviewer\t-"));
    let o = s.cli(&["user", "email", "bob", "not an address"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--email"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.cli(&["user", "email", "nobody", "x@y.org"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no user \"nobody\""));
}
