//! Ingest API v1 against the real binary: create, chunks (order, replay, chain), events, end, compaction,
//! ownership, verify, abandoned sessions reopening.

mod support;

use support::{chunks, sha256, Server};

#[test]
fn a_session_uploaded_in_order_reads_back_byte_for_byte_and_verifies() {
    let s = Server::start();
    let host = s.token("bastion-1", "host");
    let aud = s.token("audit", "auditor");
    let r = s.create(&host, "s1", "alice");
    assert_eq!(r.status(), 201);
    let answer: serde_json::Value = r.json().unwrap();
    assert_eq!(answer["url"], format!("{}/sessions/s1", s.url));
    assert!(answer["committed_seq"].is_null());
    let c = chunks(3);
    for (i, body) in c.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| c[p].as_slice());
        let r = s.chunk(&host, "s1", i as u64, body, prev);
        assert_eq!(r.status(), 201);
        assert_eq!(r.json::<serde_json::Value>().unwrap()["committed_seq"], i as u64);
    }
    let r = s.end(&host, "s1", 3);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["state"], "complete");
    assert_eq!(s.cast(&aud, "s1"), c.concat());
    // Compaction leaves one object: <id>.cast.
    let objects = s.objects();
    assert_eq!(objects.len(), 1, "{:?}", objects.iter().map(|o| &o.0).collect::<Vec<_>>());
    assert!(objects[0].0.ends_with("s1/s1.cast"));
    let out = s.cli(&["verify", "s1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: create and 4 chunks"));
    // Tampering with the stored cast is found.
    let mut bytes = objects[0].1.clone();
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    s.write_object(&objects[0].0, &bytes);
    let out = s.cli(&["verify", "s1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("chunk 3: stored bytes hash"));
}

#[test]
fn create_is_idempotent_for_the_same_metadata_and_conflicts_otherwise() {
    let s = Server::start();
    let host = s.token("h", "host");
    assert_eq!(s.create(&host, "s1", "alice").status(), 201);
    assert_eq!(s.create(&host, "s1", "alice").status(), 200);
    let r = s.create(&host, "s1", "mallory");
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error"]["code"], "conflict");
}

#[test]
fn chunks_out_of_order_and_before_the_create_converge() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    let c = chunks(4);
    // 2 and 4 first, then 0 before the create (carrying the hash of the create body to come), then the rest.
    let create = support::create_bytes("s2", "bob");
    for i in [2usize, 4, 0] {
        let prev = Some(i.checked_sub(1).map_or(create.as_slice(), |p| c[p].as_slice()));
        assert_eq!(s.chunk(&host, "s2", i as u64, &c[i], prev).status(), 201);
    }
    let r = s.create(&host, "s2", "bob");
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["committed_seq"], 0);
    // The end arrives before chunks 1 and 3: accepted, not complete.
    let r = s.end(&host, "s2", 4);
    assert_eq!(r.status(), 202);
    let r = s.chunk(&host, "s2", 1, &c[1], Some(&c[0]));
    assert_eq!(r.json::<serde_json::Value>().unwrap()["committed_seq"], 2);
    let r = s.chunk(&host, "s2", 3, &c[3], Some(&c[2]));
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!((v["committed_seq"].as_u64(), v["state"].as_str()), (Some(4), Some("complete")));
    assert_eq!(s.cast(&aud, "s2"), c.concat());
    let (_, d) = s.get_json(&aud, "/api/v1/sessions/s2");
    assert_eq!(d["state"], "complete");
    assert_eq!(d["host"], "h", "the token's host name is stamped");
    assert_eq!(d["claimed_host"], "claimed-host", "the client's claim is kept beside");
}

#[test]
fn a_replayed_chunk_is_200_with_the_same_bytes_and_409_with_others() {
    let s = Server::start();
    let host = s.token("h", "host");
    let c = chunks(1);
    assert_eq!(s.chunk(&host, "s3", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&host, "s3", 1, &c[1], Some(&c[0])).status(), 201);
    assert_eq!(s.chunk(&host, "s3", 1, &c[1], Some(&c[0])).status(), 200);
    assert_eq!(s.chunk(&host, "s3", 1, b"[1.0,\"o\",\"other\"]\n", Some(&c[0])).status(), 409);
    // After completion too (the chunk objects are compacted away; the rows still answer).
    assert_eq!(s.end(&host, "s3", 1).status(), 200);
    assert_eq!(s.chunk(&host, "s3", 1, &c[1], Some(&c[0])).status(), 200);
    assert_eq!(s.chunk(&host, "s3", 2, b"[2.0,\"o\",\"late\"]\n", Some(&c[1])).status(), 409);
}

#[test]
fn a_broken_hash_chain_is_refused_in_either_arrival_order() {
    let s = Server::start();
    let host = s.token("h", "host");
    let c = chunks(3);
    assert_eq!(s.chunk(&host, "s4", 0, &c[0], None).status(), 201);
    // Chunk 1 claiming another predecessor.
    assert_eq!(s.chunk(&host, "s4", 1, &c[1], Some(b"not chunk 0")).status(), 409);
    // Chunk 3 arrives first naming a chunk 2 that is not the one later sent.
    assert_eq!(s.chunk(&host, "s4", 3, &c[3], Some(b"something else")).status(), 201);
    assert_eq!(s.chunk(&host, "s4", 2, &c[2], Some(&c[1])).status(), 409);
    // A missing chain header on chunk > 0.
    let r = s.chunk(&host, "s4", 1, &c[1], None);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("x-ddcoterm-prev-sha256"));
}

#[test]
fn only_the_creating_host_token_writes_its_session() {
    let s = Server::start();
    let owner = s.token("owner", "host");
    let other = s.token("other", "host");
    let c = chunks(1);
    assert_eq!(s.create(&owner, "s5", "alice").status(), 201);
    assert_eq!(s.create(&other, "s5", "alice").status(), 403);
    assert_eq!(s.chunk(&other, "s5", 0, &c[0], None).status(), 403);
    assert_eq!(s.end(&other, "s5", 0).status(), 403);
    let ev = s.req("POST", "/api/v1/sessions/s5/events", &other).json(&serde_json::json!([{"command": "x"}]));
    assert_eq!(ev.send().unwrap().status(), 403);
    // A session first touched by a chunk is owned by that chunk's token: no squatting by a later create.
    assert_eq!(s.chunk(&owner, "s6", 0, &c[0], None).status(), 201);
    assert_eq!(s.create(&other, "s6", "alice").status(), 403);
}

#[test]
fn process_events_are_stored_once_and_shown_with_the_session() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    assert_eq!(s.create(&host, "s7", "alice").status(), 201);
    let events = serde_json::json!([
        {"command": "kubectl get pods", "cwd": "/home/alice", "started_at": "2026-01-01T00:00:01Z", "exit_code": 0, "duration_ms": 120},
        {"command": "kubectl delete pod web-1", "started_at": "2026-01-01T00:00:05Z", "exit_code": 1}
    ]);
    for _ in 0..2 {
        let r = s.req("POST", "/api/v1/sessions/s7/events", &host).json(&events).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, d) = s.get_json(&aud, "/api/v1/sessions/s7");
    assert_eq!(status, 200);
    let ev = d["events"].as_array().unwrap();
    assert_eq!(ev.len(), 2, "a resent batch is not stored twice: {d}");
    assert_eq!(ev[1]["command"], "kubectl delete pod web-1");
    assert_eq!(d["rule"], "prod");
}

#[test]
fn gzip_chunks_are_stored_decoded() {
    use std::io::Write as _;
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    let c = chunks(1);
    assert_eq!(s.chunk(&host, "s8", 0, &c[0], None).status(), 201);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&c[1]).unwrap();
    let r = s
        .req("PUT", "/api/v1/sessions/s8/chunks/1", &host)
        .header("content-type", "application/x-asciicast")
        .header("content-encoding", "gzip")
        .header("x-ddcoterm-prev-sha256", sha256(&c[0]))
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.cast(&aud, "s8"), c.concat());
}

#[test]
fn a_silent_session_is_abandoned_and_a_late_chunk_reopens_it() {
    let s = Server::start_with(&[
        ("DDCOTERMD_COMPLETER__GRACE", "1s"),
        ("DDCOTERMD_COMPLETER__INTERVAL", "200ms"),
    ]);
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    let c = chunks(2);
    assert_eq!(s.create(&host, "s9", "alice").status(), 201);
    assert_eq!(s.chunk(&host, "s9", 0, &c[0], None).status(), 201);
    s.wait_for("abandoned", || s.get_json(&aud, "/api/v1/sessions/s9").1["state"] == "abandoned");
    let r = s.chunk(&host, "s9", 1, &c[1], Some(&c[0]));
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["state"], "live");
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/s9").1["state"], "live");
    // Late chunks then an end complete it.
    assert_eq!(s.chunk(&host, "s9", 2, &c[2], Some(&c[1])).status(), 201);
    assert_eq!(s.end(&host, "s9", 2).status(), 200);
    assert_eq!(s.cast(&aud, "s9"), c.concat());
    let metrics = s.req("GET", "/metrics", &aud).send().unwrap().text().unwrap();
    assert!(metrics.contains("ddcoterm_sessions_abandoned_total 1"), "{metrics}");
}

#[test]
fn chunk_0_carries_the_create_bodys_hash_in_either_arrival_order() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    let c = chunks(1);
    // Create first, then a chunk 0 naming another create body: refused, naming the header.
    assert_eq!(s.create(&host, "r1", "alice").status(), 201);
    let r = s.chunk(&host, "r1", 0, &c[0], Some(b"{\"id\":\"r1\"}"));
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("x-ddcoterm-prev-sha256"));
    assert_eq!(s.chunk(&host, "r1", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&host, "r1", 1, &c[1], Some(&c[0])).status(), 201);
    assert_eq!(s.end(&host, "r1", 1).status(), 200);
    let out = s.cli(&["verify", "r1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from the create"));

    // Chunk 0 first: the create that follows must hash to what chunk 0 carried.
    assert_eq!(s.chunk(&host, "r2", 0, &c[0], None).status(), 201);
    let other = support::create_bytes("r2", "mallory");
    let r = s
        .req("POST", "/api/v1/sessions", &host)
        .header("content-type", "application/json")
        .body(other)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("x-ddcoterm-prev-sha256"));
    assert_ne!(s.get_json(&aud, "/api/v1/sessions/r2").1["user"], "mallory");
    assert_eq!(s.create(&host, "r2", "alice").status(), 201);
    // The same create again (same bytes): 200; a create without chunks verifies only once chunk 0 is in.
    assert_eq!(s.create(&host, "r2", "alice").status(), 200);
    let out = s.cli(&["verify", "r2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // A session whose create never came does not verify.
    assert_eq!(s.chunk(&host, "r3", 0, &c[0], None).status(), 201);
    let out = s.cli(&["verify", "r3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("create was never received"));
}

/// The next chunk in order is checked against what the server last committed, without a read
/// (`server/src/tails.rs`). What it knows must never let a check pass that the database would fail.
#[test]
fn chunks_in_order_are_checked_as_strictly_as_any_other() {
    let s = Server::start();
    let host = s.token("h", "host");
    let c = chunks(5);
    // 0 and 1 in order; then 3 out of order naming another chunk 2; the real 2 must still be refused.
    assert_eq!(s.chunk(&host, "t1", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&host, "t1", 1, &c[1], Some(&c[0])).status(), 201);
    assert_eq!(s.chunk(&host, "t1", 3, &c[3], Some(b"not chunk 2")).status(), 201);
    assert_eq!(s.chunk(&host, "t1", 2, &c[2], Some(&c[1])).status(), 409);
    // In order after a refusal: the wrong predecessor is refused, the right one stored.
    assert_eq!(s.chunk(&host, "t2", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&host, "t2", 1, &c[1], Some(b"not chunk 0")).status(), 409);
    assert_eq!(s.chunk(&host, "t2", 1, &c[1], Some(&c[0])).status(), 201);
    // An end after chunks in order: the next chunk is past the end, however it arrives.
    assert_eq!(s.end(&host, "t2", 1).status(), 200);
    assert_eq!(s.chunk(&host, "t2", 2, &c[2], Some(&c[1])).status(), 409);
    // Another host's token cannot ride on the session's last chunk either.
    let other = s.token("h2", "host");
    assert_eq!(s.chunk(&host, "t3", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&other, "t3", 1, &c[1], Some(&c[0])).status(), 403);
    let r = s.chunk(&host, "t3", 1, &c[1], Some(&c[0]));
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["committed_seq"], 1);
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    if support::backends::enabled() {
        println!("skipped: the data directory lock is the embedded store's (PostgreSQL + S3 runs replicas)");
        return;
    }
    let s = Server::start();
    let mut second = std::process::Command::new(support::BIN)
        .arg("--data-dir")
        .arg(s.data())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = second.kill();
            panic!("a second server on the same data directory kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("already serving the data directory"), "{err}");
    assert!(err.contains(&s.data().display().to_string()), "{err}");
    // The first keeps serving.
    assert_eq!(s.chunk(&s.token("h", "host"), "t4", 0, &chunks(0)[0], None).status(), 201);
}

/// PostgreSQL keeps up with hundreds of hosts only if a chunk commit neither grows every index of
/// `sessions` nor scans `chunks`. Migration 0009 makes the commit's row update a HOT update (in place, no
/// new index entries), and the commit's lookups are primary-key probes even while `chunks` is small enough
/// that PostgreSQL would rather hash the whole table. Before this, each update left a dead row version behind
/// in all eight indexes, and a prepared statement kept hashing `chunks` as the table grew. Measured in
/// the database's own statistics, which a server's connections report when they close.
#[test]
fn on_postgres_a_chunk_commit_updates_the_session_in_place_and_scans_no_chunks() {
    if !support::backends::enabled() {
        println!("skipped: PostgreSQL statistics (DDCOTERM_SERVER_BACKEND=postgres-s3)");
        return;
    }
    // Without the search indexer, which reads a session's whole chunk list (a scan, rightly, of a table
    // this small): only the commits touch `chunks`.
    let mut s = Server::start_with(&[("DDCOTERMD_SEARCH__INDEXER", "false")]);
    let host = s.token("h", "host");
    assert_eq!(s.create(&host, "hot", "alice").status(), 201);
    const N: usize = 60;
    let c = chunks(N);
    for (seq, body) in c.iter().enumerate() {
        let prev = seq.checked_sub(1).map(|p| c[p].as_slice());
        assert_eq!(s.chunk(&host, "hot", seq as u64, body, prev).status(), 201, "chunk {seq}\n{}", s.log());
    }
    let env = s.env.clone();
    s.kill9();
    let stat = |sql: &str| -> i64 { support::backends::query(&env, sql).parse().unwrap() };
    let updates = "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'";
    s.wait_for("the killed server's statistics of its session updates", || stat(updates) >= N as i64);
    let (upd, hot) =
        (stat(updates), stat("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"));
    assert!(hot * 10 >= upd * 9, "{hot} of {upd} updates of a session row were HOT");
    let scans = stat("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'chunks'");
    // One scan is the migrations' (a foreign key checked on the empty table at start). The old statements
    // scanned twice per commit: 123 scans for these 60 chunks.
    assert!(scans <= 1, "{scans} scans of the chunks table for {N} chunk commits");
}

/// PostgreSQL: the keyframe builder finds a complete session of 1 MiB or more through its work list (which
/// migration 0009 keyed on `kf_eager`, set at compaction) and builds its index unasked; a small one it
/// leaves alone.
#[test]
fn on_postgres_the_keyframe_builder_takes_large_complete_sessions_only() {
    if !support::backends::enabled() {
        println!("skipped: PostgreSQL rows (DDCOTERM_SERVER_BACKEND=postgres-s3)");
        return;
    }
    let s = Server::start_with(&[("DDCOTERMD_SEARCH__INDEXER", "false")]);
    let host = s.token("h", "host");
    let line = |i: usize| format!("[{}.5,\"o\",\"{} {i}\\r\\n\"]\n", i, "output ".repeat(40)).into_bytes();
    for (id, lines) in [("big", 4000), ("small", 10)] {
        assert_eq!(s.create(&host, id, "alice").status(), 201);
        let mut c = chunks(0);
        c.push((1..=lines).flat_map(line).collect());
        for (seq, body) in c.iter().enumerate() {
            let prev = seq.checked_sub(1).map(|p| c[p].as_slice());
            assert_eq!(s.chunk(&host, id, seq as u64, body, prev).status(), 201, "{id} {seq}\n{}", s.log());
        }
        assert!(s.end(&host, id, 1).status().is_success());
    }
    let row = |id: &str| {
        support::backends::query(
            &s.env,
            &format!("SELECT bytes, kf_eager, kf_done FROM sessions WHERE id = '{id}'"),
        )
    };
    s.wait_for("the big session's keyframe index, built in the background", || row("big").ends_with("|1|1"));
    assert!(row("big").split('|').next().unwrap().parse::<u64>().unwrap() >= 1 << 20, "{}", row("big"));
    assert!(row("small").ends_with("|0|0"), "the small session: {}", row("small"));
}

/// PostgreSQL: the completer's sweeps (every minute by default) find their few rows through indexes
/// (migrations 0010 and 0011), not by reading the whole `sessions` or `packs` table, which a fleet's server
/// holds millions of rows of. The statements are the stores' own; with sequential scans disabled the plan
/// shows a Seq Scan only when no index can serve the statement.
#[test]
fn on_postgres_the_completer_sweeps_use_indexes() {
    if !support::backends::enabled() {
        println!("skipped: PostgreSQL plans (DDCOTERM_SERVER_BACKEND=postgres-s3)");
        return;
    }
    let s = Server::start();
    for (sweep, sql, index) in [
        (
            "sessions to compact",
            "SELECT * FROM sessions WHERE compacted = 0 AND last_seq IS NOT NULL AND committed_seq >= last_seq",
            "sessions_to_compact",
        ),
        ("retention", "SELECT * FROM sessions WHERE first_seen < 5 AND legal_hold = 0", "sessions_first_seen"),
        (
            "packs to delete",
            "SELECT key FROM packs WHERE live <= 0 AND (sealed = 1 OR created_at < 5) ORDER BY created_at LIMIT 10",
            "packs_dead",
        ),
    ] {
        let plan = support::backends::query(&s.env, &format!("SET enable_seqscan = off; EXPLAIN {sql}"));
        assert!(plan.contains(index) && !plan.contains("Seq Scan"), "{sweep}: {plan}");
    }
}
