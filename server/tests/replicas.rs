//! Two server processes on one PostgreSQL + S3 state, both taking every chunk of the same sessions at once:
//! each chunk is stored once (one 201, the other 200), no 5xx, and every session ends complete and intact.

mod support;

use support::{chunks, sha256, Server};

const SESSIONS: usize = 3;
const CHUNKS: usize = 40;

#[test]
fn two_replicas_ingesting_the_same_sessions_store_each_chunk_once() {
    if !support::backends::enabled() {
        println!(
            "skipped: replicas share state only on PostgreSQL + S3 (DDCOTERM_SERVER_BACKEND=postgres-s3)"
        );
        return;
    }
    let a = Server::start();
    let b = Server::start_sharing(&a);
    let host = a.token("h", "host");
    let aud = a.token("aud", "auditor");
    let casts: Vec<Vec<Vec<u8>>> = (0..SESSIONS).map(|_| chunks(CHUNKS)).collect();
    let mut threads = Vec::new();
    for (i, c) in casts.iter().enumerate() {
        for url in [a.url.clone(), b.url.clone()] {
            let (c, host, id) = (c.clone(), host.clone(), format!("rep{i}"));
            threads.push(std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut statuses = Vec::new();
                let create = support::create_body(&id, "alice");
                let r = http.post(format!("{url}/api/v1/sessions")).bearer_auth(&host).json(&create).send().unwrap();
                statuses.push(r.status().as_u16());
                for (seq, body) in c.iter().enumerate() {
                    let mut r = http
                        .put(format!("{url}/api/v1/sessions/{id}/chunks/{seq}"))
                        .bearer_auth(&host)
                        .header("content-type", "application/x-asciicast")
                        .body(body.clone());
                    let prev = if seq > 0 {
                        sha256(&c[seq - 1])
                    } else {
                        sha256(&support::create_bytes(&id, "alice"))
                    };
                    r = r.header("x-ddcoterm-prev-sha256", prev);
                    statuses.push(r.send().unwrap().status().as_u16());
                }
                let end = serde_json::json!({"ended_at": "2026-01-01T00:10:00Z", "exit_status": 0, "last_seq": CHUNKS});
                let r = http.post(format!("{url}/api/v1/sessions/{id}/end")).bearer_auth(&host).json(&end).send().unwrap();
                statuses.push(r.status().as_u16());
                statuses
            }));
        }
    }
    let results: Vec<Vec<u16>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, pair) in results.chunks(2).enumerate() {
        for st in pair.iter().flatten() {
            assert!((200..300).contains(st), "rep{i}: a {st} answer\n{}\n{}", a.log(), b.log());
        }
        // Chunk answers are positions 1..=CHUNKS+1: exactly one of the two replicas stored each (201).
        for seq in 0..=CHUNKS {
            let created = pair.iter().filter(|s| s[seq + 1] == 201).count();
            assert_eq!(created, 1, "rep{i} chunk {seq}: {created} replicas answered 201");
        }
        let id = format!("rep{i}");
        assert_eq!(a.cast(&aud, &id), casts[i].concat());
        assert_eq!(b.cast(&aud, &id), casts[i].concat());
        let out = a.cli(&["verify", &id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}
