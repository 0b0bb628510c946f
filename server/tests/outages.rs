//! Backend outages under load (PostgreSQL + S3 only): with the object store or the database stopped for
//! 30 s, ingest answers 503 with `Retry-After` (never 500), `/readyz` says not ready, simulated hosts keep
//! their chunks and resend like a spool, and once the backend is back every session is complete and byte
//! for byte what the hosts sent, and no pack object is left behind by a batch the outage failed.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{backends, chunks, create_bytes, sha256, Server};

const HOSTS: usize = 6;
const CHUNKS: usize = 60;
const OUTAGE: Duration = Duration::from_secs(30);

/// The two drills share this binary's PostgreSQL and SeaweedFS: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Default)]
struct Seen {
    unavailable: AtomicU64,
    retry_after: AtomicU64,
    other_errors: Mutex<Vec<String>>,
}

/// A host with a spool: sends each request until it is acknowledged; 503 and connection errors wait (the
/// `Retry-After`, at most 1 s here to keep the test short) and resend; any other failure is recorded.
fn send_until_acked(seen: &Seen, what: &str, build: &dyn Fn() -> reqwest::blocking::RequestBuilder) {
    loop {
        match build().send() {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status() == 503 => {
                seen.unavailable.fetch_add(1, Ordering::Relaxed);
                if r.headers().get("retry-after").is_some() {
                    seen.retry_after.fetch_add(1, Ordering::Relaxed);
                }
                let body: serde_json::Value = r.json().unwrap_or_default();
                assert!(body["error"]["code"].is_string(), "{what}: 503 without a JSON error: {body}");
            }
            Ok(r) => {
                let status = r.status();
                seen.other_errors
                    .lock()
                    .unwrap()
                    .push(format!("{what}: {status} {}", r.text().unwrap_or_default()));
                return;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn drill(name: &str, stop: fn(), start: fn()) {
    if !backends::enabled() {
        println!("skipped: outage drills need DDCOTERM_SERVER_BACKEND=postgres-s3 (sqlite-dir has no backend to stop)");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A short grace, so that the pack sweep below runs within the test (sessions silent through the outage
    // are marked abandoned meanwhile, and reopen with their next chunk).
    let s = Server::start_with(&[
        ("DDCOTERMD_COMPLETER__GRACE", "3s"),
        ("DDCOTERMD_COMPLETER__INTERVAL", "500ms"),
    ]);
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    let casts: Vec<Vec<Vec<u8>>> = (0..HOSTS).map(|_| chunks(CHUNKS)).collect();
    let seen = Arc::new(Seen::default());
    let sent = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = casts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (url, host, c, seen, sent) = (s.url.clone(), host.clone(), c.clone(), seen.clone(), sent.clone());
            let id = format!("{name}{i}");
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                let create = create_bytes(&id, "alice");
                send_until_acked(&seen, &format!("{id} create"), &|| {
                    http.post(format!("{url}/api/v1/sessions"))
                        .bearer_auth(&host)
                        .header("content-type", "application/json")
                        .body(create.clone())
                });
                for (seq, body) in c.iter().enumerate() {
                    let prev = if seq == 0 { sha256(&create) } else { sha256(&c[seq - 1]) };
                    send_until_acked(&seen, &format!("{id} chunk {seq}"), &|| {
                        http.put(format!("{url}/api/v1/sessions/{id}/chunks/{seq}"))
                            .bearer_auth(&host)
                            .header("content-type", "application/x-asciicast")
                            .header("x-ddcoterm-prev-sha256", prev.clone())
                            .body(body.clone())
                    });
                    sent.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
                let end = serde_json::json!({"ended_at": "2026-01-01T00:10:00Z", "exit_status": 0, "last_seq": CHUNKS});
                send_until_acked(&seen, &format!("{id} end"), &|| {
                    http.post(format!("{url}/api/v1/sessions/{id}/end")).bearer_auth(&host).json(&end)
                });
            })
        })
        .collect();
    // Let the hosts get going, then take the backend away for OUTAGE.
    s.wait_for("first chunks", || sent.load(Ordering::Relaxed) >= HOSTS as u64 * 3);
    stop();
    let down = Instant::now();
    let ready_while_down = s.req("GET", "/readyz", "").send().map(|r| r.status().as_u16()).unwrap_or(0);
    while down.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = sent.load(Ordering::Relaxed);
    start();
    for t in threads {
        t.join().unwrap();
    }
    let errors = seen.other_errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "answers other than 2xx/503:\n{}\n{}", errors.join("\n"), s.log());
    assert_eq!(ready_while_down, 503, "/readyz while {name} was down");
    let unavailable = seen.unavailable.load(Ordering::Relaxed);
    assert!(unavailable > 0, "no 503 while {name} was down ({during} chunks acknowledged by then)");
    assert_eq!(seen.retry_after.load(Ordering::Relaxed), unavailable, "a 503 without Retry-After");
    assert_eq!(s.req("GET", "/readyz", "").send().unwrap().status(), 200);
    for (i, c) in casts.iter().enumerate() {
        let id = format!("{name}{i}");
        let (_, detail) = s.get_json(&aud, &format!("/api/v1/sessions/{id}"));
        assert_eq!(detail["state"], "complete", "{id}: {detail}");
        assert_eq!(s.cast(&aud, &id), c.concat(), "{id}: cast differs from what the host sent");
        let out = s.cli(&["verify", &id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // Every session is compacted, so no pack is read any more; the packs reserved for batches the outage
    // failed were never sealed, and are swept once older than the grace period. Nothing is left but casts.
    s.wait_for("every pack deleted", || backends::query(&s.env, "SELECT count(*) FROM packs") == "0");
    let left: Vec<String> = s.objects().into_iter().map(|o| o.0).filter(|k| !k.ends_with(".cast")).collect();
    assert!(left.is_empty(), "objects left besides the casts: {left:?}");
    println!(
        "{name}: {unavailable} answers were 503 during a {}s outage; every session complete",
        OUTAGE.as_secs()
    );
}

#[test]
fn s3_stopped_for_30s_under_load_loses_nothing() {
    drill("s3out", backends::stop_s3, backends::start_s3);
}

#[test]
fn postgres_stopped_for_30s_under_load_loses_nothing() {
    drill("pgout", backends::stop_pg, backends::start_pg);
}
