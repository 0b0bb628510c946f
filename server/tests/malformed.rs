//! Bad input: every malformed or unauthorised request gets its 4xx with a JSON error, nothing is stored, and
//! the server keeps serving.

mod support;

use std::io::{Read as _, Write as _};

use support::{chunks, create_body, sha256, Server};

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    token: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    want: u16,
}

fn case(name: &'static str, method: &'static str, path: &str, token: &str, want: u16) -> Case {
    Case { name, method, path: path.into(), token: token.into(), headers: vec![], body: vec![], want }
}

impl Case {
    fn json(mut self, v: serde_json::Value) -> Case {
        self.headers.push(("content-type", "application/json".into()));
        self.body = v.to_string().into_bytes();
        self
    }
    fn cast(mut self, body: &[u8]) -> Case {
        self.headers.push(("content-type", "application/x-asciicast".into()));
        self.body = body.to_vec();
        self
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.headers.push((k, v.into()));
        self
    }
    fn body(mut self, b: impl Into<Vec<u8>>) -> Case {
        self.body = b.into();
        self
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

/// What the server holds: every object file's path and bytes, every session as the auditor sees it, tokens.
fn snapshot(s: &Server, aud: &str) -> (Vec<(String, Vec<u8>)>, serde_json::Value, String) {
    let objects = s.objects();
    let (status, mut list) = s.get_json(aud, "/api/v1/sessions?limit=500");
    assert_eq!(status, 200);
    for sess in list["sessions"].as_array_mut().unwrap() {
        sess.as_object_mut().unwrap().remove("last_activity");
    }
    let tokens = s.cli(&["token", "list", "--json"]);
    let mut tokens: serde_json::Value = serde_json::from_slice(&tokens.stdout).unwrap();
    for t in tokens.as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("last_seen");
    }
    (objects, list, tokens.to_string())
}

#[test]
fn malformed_requests_get_4xx_and_store_nothing() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    let viewer = s.token("alice", "viewer");
    let admin = s.token("root", "admin");
    let gone = s.token("gone", "host");
    assert!(s.cli(&["token", "revoke", "gone"]).status.success());
    let c = chunks(2);
    assert_eq!(s.create(&host, "good", "bob").status(), 201);
    assert_eq!(s.chunk(&host, "good", 0, &c[0], None).status(), 201);
    let before = snapshot(&s, &aud);

    let prev0 = sha256(&c[0]);
    let long_id = "x".repeat(200);
    let events_1001: Vec<_> = (0..1001).map(|i| serde_json::json!({"command": format!("c{i}")})).collect();
    let mut no_user = create_body("n1", "u");
    no_user.as_object_mut().unwrap().remove("user");
    let mut unknown = create_body("n2", "u");
    unknown["colour"] = "red".into();
    let mut bad_time = create_body("n3", "u");
    bad_time["started_at"] = "yesterday".into();
    let mut zero_width = create_body("n4", "u");
    zero_width["width"] = 0.into();
    let ch = "/api/v1/sessions/good/chunks";
    let cases = vec![
        case("no token", "POST", "/api/v1/sessions", "", 401).json(create_body("n5", "u")),
        case("unknown token", "POST", "/api/v1/sessions", "ddcts_nope", 401).json(create_body("n6", "u")),
        case("revoked token", "POST", "/api/v1/sessions", &gone, 401).json(create_body("n7", "u")),
        case("basic auth garbage", "GET", "/api/v1/sessions", "", 401).header("authorization", "Basic !!!"),
        case("basic auth unknown user", "GET", "/api/v1/sessions", "", 401)
            .header("authorization", "Basic YWxpY2U6d3Jvbmdwdw=="),
        case("viewer token creates", "POST", "/api/v1/sessions", &viewer, 403).json(create_body("n8", "u")),
        case("auditor token writes a chunk", "PUT", &format!("{ch}/1"), &aud, 403).cast(&c[1]),
        case("admin token ends", "POST", "/api/v1/sessions/good/end", &admin, 403)
            .json(serde_json::json!({"ended_at": "2026-01-01T00:00:00Z", "last_seq": 0})),
        case("host token lists", "GET", "/api/v1/sessions", &host, 403),
        case("host token reads a cast", "GET", "/api/v1/sessions/good/cast", &host, 403),
        case("host token reads metrics", "GET", "/metrics", &host, 403),
        case("viewer reads another user's session", "GET", "/api/v1/sessions/good", &viewer, 404),
        case("create: not JSON", "POST", "/api/v1/sessions", &host, 400)
            .header("content-type", "application/json")
            .body("{not json"),
        case("create: text/plain", "POST", "/api/v1/sessions", &host, 415)
            .header("content-type", "text/plain")
            .body(create_body("n9", "u").to_string()),
        case("create: no content type", "POST", "/api/v1/sessions", &host, 415)
            .body(create_body("n10", "u").to_string()),
        case("create: missing field", "POST", "/api/v1/sessions", &host, 422).json(no_user),
        case("create: unknown field", "POST", "/api/v1/sessions", &host, 422).json(unknown),
        case("create: bad started_at", "POST", "/api/v1/sessions", &host, 422).json(bad_time),
        case("create: zero width", "POST", "/api/v1/sessions", &host, 422).json(zero_width),
        case("create: id with /", "POST", "/api/v1/sessions", &host, 400).json(create_body("a/b", "u")),
        case("create: id ..", "POST", "/api/v1/sessions", &host, 400).json(create_body("..", "u")),
        case("create: id with NUL", "POST", "/api/v1/sessions", &host, 400).json(create_body("a\0b", "u")),
        case("create: id too long", "POST", "/api/v1/sessions", &host, 400).json(create_body(&long_id, "u")),
        case("create: giant JSON", "POST", "/api/v1/sessions", &host, 413)
            .header("content-type", "application/json")
            .body(vec![b' '; 2 << 20]),
        case("chunk: id with encoded /", "PUT", "/api/v1/sessions/a%2Fb/chunks/0", &host, 400).cast(&c[0]),
        // The URL parser resolves an encoded `..` as a dot segment: no route (the raw `..` is sent below).
        case("chunk: id encoded ..", "PUT", "/api/v1/sessions/%2E%2E/chunks/0", &host, 404).cast(&c[0]),
        case("chunk: id with NUL", "PUT", "/api/v1/sessions/a%00b/chunks/0", &host, 400).cast(&c[0]),
        case("chunk: id not UTF-8", "PUT", "/api/v1/sessions/a%FFb/chunks/0", &host, 400).cast(&c[0]),
        case("chunk: seq overflow", "PUT", &format!("{ch}/99999999999999999999999"), &host, 400).cast(&c[1]),
        case("chunk: seq above the limit", "PUT", &format!("{ch}/{}", (1u64 << 40) + 1), &host, 400)
            .cast(&c[1]),
        case("chunk: negative seq", "PUT", &format!("{ch}/-1"), &host, 400).cast(&c[1]),
        case("chunk: seq not a number", "PUT", &format!("{ch}/one"), &host, 400).cast(&c[1]),
        case("chunk: bad gzip", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(b"\x1f\x8bnot really gzip")
            .header("content-encoding", "gzip")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: gzip bomb", "PUT", &format!("{ch}/1"), &host, 413)
            .cast(&gzip(&vec![b'['; 64 << 20]))
            .header("content-encoding", "gzip")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: giant body", "PUT", &format!("{ch}/1"), &host, 413)
            .cast(&vec![b'['; 5 << 20])
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: not UTF-8", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(b"[0.1,\"o\",\"\xff\xfe\"]\n")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: JSON content type", "PUT", &format!("{ch}/1"), &host, 415)
            .header("content-type", "application/json")
            .header("x-ddcoterm-prev-sha256", prev0.clone())
            .body(c[1].clone()),
        case("chunk: brotli encoding", "PUT", &format!("{ch}/1"), &host, 415)
            .cast(&c[1])
            .header("content-encoding", "br")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk 0 without a header line", "PUT", "/api/v1/sessions/n11/chunks/0", &host, 422)
            .cast(b"[0.1,\"o\",\"x\"]\n")
            .header("x-ddcoterm-prev-sha256", s.root("n11")),
        case("chunk 0: no chain root header", "PUT", "/api/v1/sessions/n12/chunks/0", &host, 400).cast(&c[0]),
        case("chunk 0: chain root not hex", "PUT", "/api/v1/sessions/n13/chunks/0", &host, 400)
            .cast(&c[0])
            .header("x-ddcoterm-prev-sha256", "ABC"),
        case("chunk 0: another chain root", "PUT", &format!("{ch}/0"), &host, 409)
            .cast(&c[0])
            .header("x-ddcoterm-prev-sha256", sha256(b"another create body")),
        case("chunk: no final newline", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(b"[0.1,\"o\",\"x\"]")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: empty", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(b"")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: not asciicast lines", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(b"hello world\n")
            .header("x-ddcoterm-prev-sha256", prev0.clone()),
        case("chunk: no chain header", "PUT", &format!("{ch}/1"), &host, 400).cast(&c[1]),
        case("chunk: chain header not hex", "PUT", &format!("{ch}/1"), &host, 400)
            .cast(&c[1])
            .header("x-ddcoterm-prev-sha256", "zz"),
        case("chunk: wrong chain hash", "PUT", &format!("{ch}/1"), &host, 409)
            .cast(&c[1])
            .header("x-ddcoterm-prev-sha256", sha256(b"other")),
        case("chunk: replayed with other bytes", "PUT", &format!("{ch}/0"), &host, 409)
            .cast(b"{\"version\":2,\"width\":1,\"height\":1}\n")
            .header("x-ddcoterm-prev-sha256", s.root("good")),
        case("events: not an array", "POST", "/api/v1/sessions/good/events", &host, 422)
            .json(serde_json::json!({"command": "x"})),
        case("events: too many", "POST", "/api/v1/sessions/good/events", &host, 413).json(events_1001.into()),
        case("events: empty command", "POST", "/api/v1/sessions/good/events", &host, 422)
            .json(serde_json::json!([{"command": ""}])),
        case("events: bad time", "POST", "/api/v1/sessions/good/events", &host, 422)
            .json(serde_json::json!([{"command": "x", "started_at": "noon"}])),
        case("end: bad ended_at", "POST", "/api/v1/sessions/good/end", &host, 422)
            .json(serde_json::json!({"ended_at": "later", "last_seq": 0})),
        case("end: last_seq overflow", "POST", "/api/v1/sessions/good/end", &host, 400)
            .json(serde_json::json!({"ended_at": "2026-01-01T00:00:00Z", "last_seq": 1u64 << 41})),
        case("end: negative last_seq", "POST", "/api/v1/sessions/good/end", &host, 422)
            .json(serde_json::json!({"ended_at": "2026-01-01T00:00:00Z", "last_seq": -1})),
        case("list: bad since", "GET", "/api/v1/sessions?since=monday", &aud, 400),
        case("list: unknown parameter", "GET", "/api/v1/sessions?colour=red", &aud, 400),
        case("list: limit 0", "GET", "/api/v1/sessions?limit=0", &aud, 400),
        case("list: forged cursor", "GET", "/api/v1/sessions?cursor=AAAA", &aud, 400),
        case("list: bad state", "GET", "/api/v1/sessions?state=deleted", &aud, 400),
        case("viewer asks for another user", "GET", "/api/v1/sessions?user=bob", &viewer, 403),
        case("unknown endpoint", "GET", "/api/v2/sessions", &aud, 404),
        case("wrong method", "DELETE", "/api/v1/sessions/good", &admin, 405),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    // A fresh connection per case: after an early 413 the server closes a connection the client may still be
    // writing to, and a pooled connection would carry that into the next case.
    let http = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for c in &cases {
        let m = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut r = http.request(m, format!("{}{}", s.url, c.path)).body(c.body.clone());
        if !c.token.is_empty() {
            r = r.bearer_auth(&c.token);
        }
        for (k, v) in &c.headers {
            r = r.header(*k, v);
        }
        let res = r.send().unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().unwrap_or(serde_json::Value::Null);
        if status != c.want
            || body["error"]["code"].as_str().is_none()
            || body["error"]["message"].as_str().is_none()
        {
            failures.push(format!("{}: want {}, got {status} {body}", c.name, c.want));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // Very long headers, through a raw socket (the HTTP layer refuses them before any handler).
    let mut sock = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    let big = "a".repeat(1 << 20);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let _ = sock.write_all(req.as_bytes());
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(200)]);

    // A literal `..` as the session id, as a hostile client sends it (no URL normalisation on the way).
    let mut sock = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    let body = String::from_utf8(c[0].clone()).unwrap();
    let req = format!(
        "PUT /api/v1/sessions/../chunks/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {host}\r\n\
         Content-Type: application/x-asciicast\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"bad_request\""), "{answer}");

    assert_eq!(snapshot(&s, &aud), before, "a refused request changed what is stored");
    assert_eq!(s.get_json("", "/healthz").0, 200);
    assert_eq!(s.get_json("", "/readyz").0, 200);
    // And the good session still takes its next chunk.
    assert_eq!(s.chunk(&host, "good", 1, &c[1], Some(&c[0])).status(), 201);
}
