//! Full-text search (`q=` on the session list): words from output (escape sequences stripped) and commands,
//! phrases, words and phrases cut by a chunk boundary, redacted secrets absent, pages with a cursor, 400 on
//! bad syntax; a session over 1 MB searchable at its end; an indexer killed mid-way resumes without losing or
//! doubling anything. On both backends (the index lives in SQLite FTS5 or PostgreSQL tsvectors).

mod support;

use support::{Server, HEADER};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

fn event(t: f64, text: &str) -> String {
    format!("{}\n", serde_json::json!([t, "o", text]))
}

/// Creates `id` and stores `outputs` as chunks 1..; ends it when `end`.
fn ingest(s: &Server, host: &str, id: &str, user: &str, command: &str, outputs: &[String], end: bool) {
    let mut body = support::create_body(id, user);
    body["command"] = command.into();
    let create = serde_json::to_vec(&body).unwrap();
    let r = s
        .req("POST", "/api/v1/sessions", host)
        .header("content-type", "application/json")
        .body(create.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut prev = HEADER.to_vec();
    // Chunk 0's chain root is the hash of the exact create body.
    assert_eq!(s.chunk(host, id, 0, HEADER, Some(&create)).status(), 201);
    for (i, o) in outputs.iter().enumerate() {
        let r = s.chunk(host, id, i as u64 + 1, o.as_bytes(), Some(&prev));
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
        prev = o.as_bytes().to_vec();
    }
    if end {
        assert!(s.end(host, id, outputs.len() as u64).status().is_success());
    }
}

fn search(s: &Server, token: &str, q: &str) -> Vec<String> {
    let (status, v) = s.get_json(token, &format!("/api/v1/sessions?q={}", urlencode(q)));
    assert_eq!(status, 200, "{q}: {v}");
    ids(&v)
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `search.indexer: false`: this replica indexes nothing (search finds nothing new); a replica that runs
/// the indexer picks up where indexing stopped.
#[test]
fn a_replica_with_the_indexer_off_leaves_indexing_to_others() {
    let mut s = Server::start_with(&[("DDCOTERMD_SEARCH__INDEXER", "false")]);
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    ingest(&s, &host, "q1", "alice", "uptime", &[event(0.5, "zanzibar quokka\r\n")], true);
    assert!(s.log().contains("search indexer off"), "{}", s.log());
    // An indexer finds new work within a second (its idle pause); give it two and a half.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(search(&s, &aud, "quokka").is_empty(), "indexed with the indexer off");
    s.set_env("DDCOTERMD_SEARCH__INDEXER", "true");
    s.restart();
    s.wait_for("the indexer", || search(&s, &aud, "quokka") == ["q1"]);
    assert_eq!(search(&s, &aud, "uptime"), ["q1"]);
}

#[test]
fn search_finds_output_and_commands_and_pages() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    ingest(
        &s,
        &host,
        "s1",
        "alice",
        "kubectl scale deploy/web --replicas=3",
        &[
            event(0.5, "Scaling \u{1b}[1mdeployment\u{1b}[0m web\r\n"),
            // A secret typed (an input event, recorded but never indexed) and echoed redacted: the server
            // indexes the output the host sent, which holds only the placeholder.
            format!(
                "{}{}",
                serde_json::json!([0.9, "i", "ghpsecret0123\r"]).to_string() + "\n",
                event(1.0, "token=[REDACTED:github-token] ok\r\n")
            ),
            // A word and a phrase cut by the chunk boundary.
            event(1.5, "replica set conver"),
        ],
        false,
    );
    let late = event(2.0, "ged after rollout\r\n");
    assert_eq!(
        s.chunk(&host, "s1", 4, late.as_bytes(), Some(event(1.5, "replica set conver").as_bytes())).status(),
        201
    );
    ingest(
        &s,
        &host,
        "s2",
        "bob",
        "terraform plan",
        &[event(0.5, "No changes. deployment is fine\r\n")],
        true,
    );
    // A command typed inside the session (a process event).
    let ev = serde_json::json!([{"command": "helm rollback payments 42", "cwd": "/srv", "exit_code": 0}]);
    let r = s.req("POST", "/api/v1/sessions/s2/events", &host).json(&ev).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());

    s.wait_for("the indexer", || search(&s, &aud, "helm rollback").len() == 1);
    s.wait_for("the indexer", || search(&s, &aud, "converged").len() == 1);
    assert_eq!(search(&s, &aud, "deployment"), ["s2", "s1"], "newest first (s2 created later, same start)");
    assert_eq!(search(&s, &aud, "DEPLOYMENT web"), ["s1"], "words are AND-ed, case-insensitive");
    assert_eq!(search(&s, &aud, "kubectl"), ["s1"], "the session's command");
    assert_eq!(search(&s, &aud, "deploy/web"), ["s1"], "punctuation splits words into a phrase");
    assert_eq!(search(&s, &aud, "\"payments 42\""), ["s2"], "a process event's command");
    assert_eq!(search(&s, &aud, "\"set converged after\""), ["s1"], "a phrase across a chunk boundary");
    assert!(search(&s, &aud, "\"web deployment\"").is_empty(), "a phrase is the words in a row");
    assert!(search(&s, &aud, "1mdeployment").is_empty(), "escape sequences are not text");
    assert!(String::from_utf8(s.cast(&aud, "s1")).unwrap().contains("ghpsecret0123"));
    assert!(
        search(&s, &aud, "ghpsecret0123").is_empty(),
        "input is not indexed, and the output held only the placeholder"
    );
    assert_eq!(search(&s, &aud, "redacted github"), ["s1"]);
    assert!(search(&s, &aud, "conver").is_empty(), "words match whole, not as prefixes");

    // Each hit says when its output first matched, and the words around it.
    let at = |q: &str, id: &str| -> serde_json::Value {
        let (_, v) = s.get_json(&aud, &format!("/api/v1/sessions?q={}", urlencode(q)));
        v["sessions"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["search_match"].clone()
    };
    assert_eq!(at("deployment", "s1")["t"], 0.5);
    let snippet = at("deployment", "s1")["snippet"].as_str().unwrap().to_string();
    assert!(
        snippet.starts_with("scaling deployment web token redacted github token ok replica set"),
        "{snippet}"
    );
    assert_eq!(at("deployment", "s2")["t"], 0.5);
    // A word finished by the next chunk's event: printed whole at 2.0 s.
    assert_eq!(at("\"set converged after\"", "s1")["t"], 2.0);
    // The earliest of several terms; a term only in the command has no output time.
    assert_eq!(at("rollout redacted", "s1")["t"], 1.0);
    assert!(at("kubectl", "s1").is_null(), "a command-only match has no time");
    let (_, plain) = s.get_json(&aud, "/api/v1/sessions");
    assert!(plain["sessions"][0].get("search_match").is_none(), "no search, no match: {plain}");

    // Combined with the other filters, the viewer's scope, and pages with a cursor.
    assert_eq!(ids(&s.get_json(&aud, "/api/v1/sessions?q=deployment&user=bob").1), ["s2"]);
    let bob = s.token("bob", "viewer");
    assert_eq!(search(&s, &bob, "deployment"), ["s2"]);
    let (_, p1) = s.get_json(&aud, "/api/v1/sessions?q=deployment&limit=1");
    assert_eq!(ids(&p1), ["s2"]);
    let c = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s.get_json(&aud, &format!("/api/v1/sessions?q=deployment&limit=1&cursor={c}"));
    assert_eq!(ids(&p2), ["s1"]);

    for bad in ["%22open", "---", "", &"x%20".repeat(17)] {
        let (status, v) = s.get_json(&aud, &format!("/api/v1/sessions?q={bad}"));
        assert_eq!(status, 400, "q={bad}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("`q`"), "{v}");
    }
}

#[test]
fn a_session_over_a_megabyte_is_searchable_at_its_end() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    let filler: String = (0..2000).map(|i| format!("row {i} of the log with some words in it\r\n")).collect();
    let mut outs: Vec<String> = (0..20).map(|i| event(i as f64, &filler)).collect();
    outs.push(event(99.0, "finalmarker reached\r\n"));
    let total: usize = outs.iter().map(String::len).sum();
    assert!(total > 1_300_000, "{total}");
    ingest(&s, &host, "big", "alice", "tail -f app.log", &outs, true);
    s.wait_for("the indexer", || search(&s, &aud, "finalmarker").len() == 1);
    assert_eq!(search(&s, &aud, "\"row 1999 of the log\" finalmarker"), ["big"]);
    // The time of the match, far past the first index row and the first indexing pass (1 MiB).
    let (_, v) = s.get_json(&aud, "/api/v1/sessions?q=finalmarker");
    assert_eq!(v["sessions"][0]["search_match"]["t"], 99.0, "{v}");
    assert_eq!(
        v["sessions"][0]["search_match"]["snippet"],
        "… of the log with some words in it finalmarker reached"
    );
    let (_, v) = s.get_json(&aud, "/api/v1/sessions?q=%22row+1500+of%22");
    assert_eq!(v["sessions"][0]["search_match"]["t"], 0.0, "the first event holds the first row 1500: {v}");
    let (_, v) = s.get_json(&aud, "/api/v1/sessions?q=%22row+1500+of%22+finalmarker");
    assert_eq!(v["sessions"][0]["search_match"]["t"], 0.0, "the earliest term wins: {v}");
}

/// Index rows of one session: (kind, first_seq, last_seq, part), read from the database itself.
fn index_rows(s: &Server, id: &str) -> Vec<(String, i64, i64, i64)> {
    let sql = format!(
        "SELECT kind, first_seq, last_seq, part FROM search_docs WHERE session_id = '{id}' ORDER BY first_seq, part"
    );
    sql_rows(s, &sql)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

/// The rows `sql` returns from the server's database, fields separated by `|`, one row a line.
fn sql_rows(s: &Server, sql: &str) -> String {
    let out = match s.env.iter().find(|(k, _)| k == "DDCOTERMD_DATABASE_URL") {
        Some((_, url)) => {
            std::process::Command::new("psql").args([url.as_str(), "-At", "-F|", "-c", sql]).output()
        }
        None => std::process::Command::new("sqlite3")
            .args(["-separator", "|"])
            .arg(s.data().join("ddcoterm.db"))
            .arg(sql)
            .output(),
    }
    .expect("psql or sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The indexer reads its work from `index_todo` (migration 0012), not from every stored session: the list
/// empties once everything is indexed, and a process event added to a finished session lists it again
/// (the database's trigger, whatever the write path) until its command is indexed too.
#[test]
fn the_indexer_works_from_a_list_that_empties_once_everything_is_indexed() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    ingest(&s, &host, "w1", "alice", "kubectl get pods", &[event(0.5, "alphaword output\r\n")], true);
    ingest(&s, &host, "w2", "bob", "ls", &[event(0.5, "betaword output\r\n")], true);
    s.wait_for("both indexed", || {
        search(&s, &aud, "alphaword") == ["w1"] && search(&s, &aud, "betaword") == ["w2"]
    });
    let listed = || sql_rows(&s, "SELECT count(*) FROM index_todo");
    s.wait_for("an empty work list", || listed() == "0");
    let late = serde_json::json!([{"command": "helm rollback zetaword"}]);
    let r = s.req("POST", "/api/v1/sessions/w1/events", &host).json(&late).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    s.wait_for("the late event's command indexed", || search(&s, &aud, "zetaword") == ["w1"]);
    s.wait_for("an empty work list again", || listed() == "0");
}

#[test]
fn an_indexer_killed_mid_way_resumes_without_losing_or_doubling() {
    let mut s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    // 120 chunks of ~40 KB, each with a word of its own: several indexing passes (1 MB each).
    let outs: Vec<String> = (1..=120)
        .map(|i| event(i as f64, &format!("uniq{i}x {}\r\n", "lorem ipsum dolor sit amet ".repeat(1500))))
        .collect();
    ingest(&s, &host, "k1", "alice", "make build", &outs, false);
    // Kill as soon as the first pass is stored (or whenever it is, if indexing was that fast).
    s.wait_for("a first indexing pass", || index_rows(&s, "k1").iter().any(|r| r.0 == "output"));
    s.restart();
    // The killed indexer's lease (10 s) runs out before the restarted one takes the session over.
    let start = std::time::Instant::now();
    while search(&s, &aud, "uniq120x").is_empty() {
        assert!(start.elapsed().as_secs() < 60, "the index did not catch up\n{}", s.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for i in 1..=120 {
        assert_eq!(search(&s, &aud, &format!("uniq{i}x")), ["k1"], "chunk {i} is searchable");
    }
    let rows: Vec<_> = index_rows(&s, "k1").into_iter().filter(|r| r.0 == "output").collect();
    let mut next = 0; // chunk 0 (the header) is in the first pass
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(seen.insert((r.1, r.2, r.3)), "indexed twice: {r:?}");
        if r.3 == 0 {
            assert_eq!(r.1, next, "passes cover the chunks in order, none skipped: {rows:?}");
            next = r.2 + 1;
        }
    }
    assert_eq!(next, 121, "{rows:?}");
}
