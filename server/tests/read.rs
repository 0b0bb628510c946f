//! Read API and roles: list filters, newest first, cursor pages, viewer scope, password users, revoked
//! tokens, last-seen in `token list` and `/metrics`, the separate metrics address.

mod support;

use support::{chunks, Server};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// Creates a session; returns the create body's bytes (chunk 0's chain root is their hash).
fn create_at(s: &Server, token: &str, id: &str, user: &str, command: &str, started: &str) -> Vec<u8> {
    let mut body = support::create_body(id, user);
    body["started_at"] = started.into();
    body["command"] = command.into();
    let bytes = serde_json::to_vec(&body).unwrap();
    let r = s
        .req("POST", "/api/v1/sessions", token)
        .header("content-type", "application/json")
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    bytes
}

#[test]
fn list_filters_sort_newest_first_and_pages_with_a_cursor() {
    let s = Server::start();
    let h1 = s.token("web-1", "host");
    let h2 = s.token("db-1", "host");
    let aud = s.token("aud", "auditor");
    let mut created = Vec::new();
    for i in 0..7 {
        let (tok, user) = if i % 2 == 0 { (&h1, "alice") } else { (&h2, "bob") };
        let cmd = if i < 3 { "kubectl get pods" } else { "terraform apply" };
        created.push(create_at(
            &s,
            tok,
            &format!("r{i}"),
            user,
            cmd,
            &format!("2026-01-0{}T10:00:00Z", i + 1),
        ));
    }
    // exit status: r6 ends with 0 through its one chunk.
    let c = chunks(0);
    assert_eq!(s.chunk(&h1, "r6", 0, &c[0], Some(&created[6])).status(), 201);
    assert_eq!(s.end(&h1, "r6", 0).status(), 200);

    let (_, all) = s.get_json(&aud, "/api/v1/sessions");
    assert_eq!(ids(&all), ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    let q = |q: &str| ids(&s.get_json(&aud, &format!("/api/v1/sessions?{q}")).1);
    assert_eq!(q("user=bob"), ["r5", "r3", "r1"]);
    assert_eq!(q("host=web-1"), ["r6", "r4", "r2", "r0"]);
    assert_eq!(q("command=terraform"), ["r6", "r5", "r4", "r3"]);
    assert_eq!(q("since=2026-01-03T00:00:00Z&until=2026-01-05T00:00:00Z"), ["r3", "r2"]);
    assert_eq!(q("state=complete"), ["r6"]);
    assert_eq!(q("exit=0"), ["r6"]);
    // Cursor pages of 3 cover everything once, in order.
    let mut seen = Vec::new();
    let mut path = "/api/v1/sessions?limit=3".to_string();
    loop {
        let (status, page) = s.get_json(&aud, &path);
        assert_eq!(status, 200);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/sessions?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
}

#[test]
fn list_filters_by_rule_approval_and_break_glass() {
    let s = Server::start();
    let h = s.token("web-1", "host");
    let aud = s.token("aud", "auditor");
    let post = |id: &str, started: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut body = support::create_body(id, "alice");
        body["started_at"] = started.into();
        edit(&mut body);
        let r = s
            .req("POST", "/api/v1/sessions", &h)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{id}");
    };
    post("plain", "2026-01-01T10:00:00Z", &|b| b["rule"] = serde_json::Value::Null);
    post("case", "2026-01-02T10:00:00Z", &|b| {
        b["rule"] = "/etc/ddcoterm/config.yaml:12 kubectl delete in prod".into();
        b["approval"] = "CASE-7".into();
    });
    post("approver", "2026-01-03T10:00:00Z", &|b| b["approver"] = "bob@example.com".into());
    post("glass", "2026-01-04T10:00:00Z", &|b| {
        b["break_glass"] = true.into();
        b["break_glass_reason"] = "db on fire".into();
    });
    let q = |q: &str| ids(&s.get_json(&aud, &format!("/api/v1/sessions?{q}")).1);
    assert_eq!(q("rule=delete%20in%20prod"), ["case"]);
    assert_eq!(q("rule=prod"), ["glass", "approver", "case"]);
    assert_eq!(q("approval=yes"), ["approver", "case"]);
    assert_eq!(q("approval=no"), ["glass", "plain"]);
    assert_eq!(q("break_glass=yes"), ["glass"]);
    assert_eq!(q("break_glass=false"), ["approver", "case", "plain"]);
    assert_eq!(q("approval=no&break_glass=no"), ["plain"]);
    for bad in ["approval=maybe", "break_glass=1"] {
        let (status, v) = s.get_json(&aud, &format!("/api/v1/sessions?{bad}"));
        assert_eq!(status, 400, "{bad}: {v}");
        let key = bad.split('=').next().unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(&format!("`{key}`")), "{v}");
    }
}

#[test]
fn viewers_see_only_their_own_sessions_and_users_sign_in_with_passwords() {
    let s = Server::start();
    let host = s.token("h", "host");
    create_at(&s, &host, "a1", "alice", "kubectl get pods", "2026-01-01T00:00:00Z");
    create_at(&s, &host, "b1", "bob", "kubectl get pods", "2026-01-02T00:00:00Z");
    let alice = s.token("alice", "viewer");
    assert_eq!(ids(&s.get_json(&alice, "/api/v1/sessions").1), ["a1"]);
    assert_eq!(s.get_json(&alice, "/api/v1/sessions/a1").0, 200);
    assert_eq!(s.get_json(&alice, "/api/v1/sessions/b1").0, 404);
    assert_eq!(s.req("GET", "/api/v1/sessions/b1/cast", &alice).send().unwrap().status(), 404);

    // A password user (HTTP Basic), its password changed, then removed.
    let add = std::process::Command::new(support::BIN)
        .arg("--data-dir")
        .arg(s.data())
        .args(["user", "add", "carol", "--role", "auditor", "--password-stdin"])
        .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    add.stdin.as_ref().unwrap().write_all(b"s3cret-pass\n").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());
    let basic = |pw: &str| {
        s.http
            .get(format!("{}/api/v1/sessions", s.url))
            .basic_auth("carol", Some(pw))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(basic("s3cret-pass"), 200);
    assert_eq!(basic("wrong"), 401);
    let short = s.cli(&["user", "add", "dave", "--password-stdin"]);
    assert!(!short.status.success(), "an empty password is refused");
    assert!(s.cli(&["user", "remove", "carol"]).status.success());
    assert_eq!(basic("s3cret-pass"), 401);
}

#[test]
fn revoked_tokens_get_401_and_last_seen_is_reported() {
    let s = Server::start();
    let host = s.token("bastion-9", "host");
    let aud = s.token("aud", "auditor");
    let list =
        || serde_json::from_slice::<serde_json::Value>(&s.cli(&["token", "list", "--json"]).stdout).unwrap();
    assert!(list()[1]["last_seen"].is_null());
    assert_eq!(s.create(&host, "t1", "alice").status(), 201);
    let l = list();
    let b9 = l.as_array().unwrap().iter().find(|t| t["name"] == "bastion-9").unwrap();
    assert!(b9["last_seen"].is_string(), "{l}");
    assert_eq!(b9["host"], "bastion-9");
    let metrics = s.req("GET", "/metrics", &aud).send().unwrap().text().unwrap();
    assert!(
        metrics.contains(
            "ddcoterm_token_last_seen_seconds{token=\"bastion-9\",role=\"host\",host=\"bastion-9\"}"
        ),
        "{metrics}"
    );
    assert!(s.cli(&["token", "revoke", "bastion-9"]).status.success());
    // Revoked from another process (the CLI): the server trusts a host token it looked up for one second
    // (server/src/host_tokens.rs), so the revocation holds within that second, also for a host that keeps
    // sending meanwhile (its requests must not keep renewing the trust).
    let revoked = std::time::Instant::now();
    let status = loop {
        let status = s.create(&host, "t1", "alice").status().as_u16();
        if status != 200 || revoked.elapsed() > std::time::Duration::from_secs(5) {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status, 401, "still accepted {:?} after the revocation", revoked.elapsed());
    assert!(
        revoked.elapsed() < std::time::Duration::from_millis(1500),
        "refused only after {:?}",
        revoked.elapsed()
    );
    let r = s.create(&host, "t2", "alice");
    assert_eq!(r.status(), 401);
    assert!(!s.cli(&["token", "revoke", "bastion-9"]).status.success(), "revoking twice says so");
    assert!(!s.cli(&["token", "create", "x", "--role", "superuser"]).status.success());
    assert!(!s.cli(&["token", "create", "aud", "--role", "auditor"]).status.success(), "names are unique");
}

#[test]
fn metrics_listen_serves_metrics_without_a_token_on_its_own_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let s = Server::start_with(&[("DDCOTERMD_METRICS_LISTEN", &addr)]);
    let text = s.http.get(format!("http://{addr}/metrics")).send().unwrap().text().unwrap();
    assert!(text.contains("# TYPE ddcoterm_chunks_acked_total counter"), "{text}");
    assert_eq!(s.get_json("", "/metrics").0, 401, "the main address still wants a token");
}
