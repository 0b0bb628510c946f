//! Durability: a server killed with SIGKILL under concurrent ingest keeps every chunk it acknowledged, and
//! after the hosts resend what they still hold, every session is complete and byte-identical.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{chunks, create_bytes, sha256, Server};

const HOSTS: usize = 4;
const CHUNKS: usize = 400;

/// Sends chunks 0..=CHUNKS of `id` in order until one fails; returns the seqs acknowledged and, when it
/// stopped early, why.
fn send_until_failure(url: &str, token: &str, id: &str, c: &[Vec<u8>]) -> (Vec<u64>, Option<String>) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut acked = Vec::new();
    for (i, body) in c.iter().enumerate() {
        let mut r = http
            .put(format!("{url}/api/v1/sessions/{id}/chunks/{i}"))
            .bearer_auth(token)
            .header("content-type", "application/x-asciicast")
            .body(body.clone());
        let prev = if i > 0 { sha256(&c[i - 1]) } else { sha256(&create_bytes(id, "alice")) };
        r = r.header("x-ddcoterm-prev-sha256", prev);
        match r.send() {
            Ok(res) if res.status().is_success() => acked.push(i as u64),
            Ok(res) => return (acked, Some(format!("HTTP {} on chunk {i}", res.status()))),
            Err(e) => return (acked, Some(format!("connection: {e}"))),
        }
    }
    (acked, None)
}

#[test]
fn acknowledged_chunks_survive_kill_9_and_sessions_complete_after_resend() {
    let mut s = Server::start();
    let tokens: Vec<String> = (0..HOSTS).map(|i| s.token(&format!("host{i}"), "host")).collect();
    let aud = s.token("aud", "auditor");
    let casts: Vec<Vec<Vec<u8>>> = (0..HOSTS).map(|_| chunks(CHUNKS)).collect();
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(s.create(t, &format!("k{i}"), "alice").status(), 201);
    }
    let acked = Arc::new(Mutex::new(vec![Vec::new(); HOSTS]));
    let threads: Vec<_> = (0..HOSTS)
        .map(|i| {
            let (url, token, c, acked) = (s.url.clone(), tokens[i].clone(), casts[i].clone(), acked.clone());
            std::thread::spawn(move || {
                let (a, why) = send_until_failure(&url, &token, &format!("k{i}"), &c);
                // Only the kill may stop a host: an HTTP error answer before it is a failure.
                if let Some(why) = &why {
                    assert!(why.starts_with("connection"), "k{i} stopped on {why} before the kill");
                }
                acked.lock().unwrap()[i] = a;
            })
        })
        .collect();
    // Kill while the hosts are mid-stream.
    s.wait_for("some chunks stored in every session", || {
        (0..HOSTS).all(|i| {
            s.get_json(&aud, &format!("/api/v1/sessions/k{i}")).1["committed_seq"].as_u64().unwrap_or(0) >= 10
        })
    });
    s.kill9();
    for t in threads {
        t.join().unwrap();
    }
    s.restart();
    let acked = acked.lock().unwrap().clone();
    for (i, a) in acked.iter().enumerate() {
        let id = format!("k{i}");
        let last_acked = *a.last().expect("some chunk acknowledged");
        assert!((last_acked as usize) < CHUNKS, "host {i} finished before the kill; raise CHUNKS");
        let (_, d) = s.get_json(&aud, &format!("/api/v1/sessions/{id}"));
        let committed = d["committed_seq"].as_u64().unwrap();
        assert!(committed >= last_acked, "{id}: acknowledged up to {last_acked}, stored up to {committed}");
        let cast = s.cast(&aud, &id);
        assert_eq!(cast, casts[i][..=committed as usize].concat(), "{id}: stored prefix differs");
    }
    // The hosts' spools resend everything from their first unacknowledged chunk (and, harmlessly, more).
    for (i, t) in tokens.iter().enumerate() {
        let id = format!("k{i}");
        let (a, why) = send_until_failure(&s.url, t, &id, &casts[i]);
        assert_eq!(a.len(), CHUNKS + 1, "{id}: resend stopped: {why:?}\n{}", s.log());
        assert_eq!(s.end(t, &id, CHUNKS as u64).status(), 200);
        assert_eq!(s.cast(&aud, &id), casts[i].concat(), "{id}");
        let out = s.cli(&["verify", &id]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
