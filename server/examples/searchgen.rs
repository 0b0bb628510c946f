//! Search benchmark driver for `bench/search.sh`: ingests N sessions of terminal-like output into a running
//! ddcoterm-server (each also written as a `.cast` file under DIR for the grep baseline), waits until the
//! indexer has caught up, then times `q=` queries and `grep -rlF` over DIR for the same words, in this run.
//! Prints `key=value` lines.
//!
//! Usage: searchgen URL HOST_TOKEN READ_TOKEN DIR [--sessions N] [--bytes-per-session B] [--queries Q]

use std::io::Write as _;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const WORDS: &[&str] = &[
    "error",
    "warning",
    "info",
    "pod",
    "deployment",
    "service",
    "ready",
    "running",
    "pending",
    "failed",
    "restart",
    "kubectl",
    "terraform",
    "apply",
    "plan",
    "node",
    "cluster",
    "namespace",
    "default",
    "payments",
    "web",
    "api",
    "latency",
    "request",
    "response",
    "timeout",
    "connection",
    "refused",
    "retry",
    "ok",
    "done",
    "created",
];

struct Opts {
    url: String,
    host: String,
    read: String,
    dir: std::path::PathBuf,
    sessions: usize,
    bytes: usize,
    queries: usize,
}

fn parse() -> Result<Opts, String> {
    let mut a = std::env::args().skip(1);
    let usage =
        "usage: searchgen URL HOST_TOKEN READ_TOKEN DIR [--sessions N] [--bytes-per-session B] [--queries Q]";
    let mut o = Opts {
        url: a.next().ok_or(usage)?,
        host: a.next().ok_or(usage)?,
        read: a.next().ok_or(usage)?,
        dir: a.next().ok_or(usage)?.into(),
        sessions: 10_000,
        bytes: 100_000,
        queries: 100,
    };
    while let Some(k) = a.next() {
        let v: usize = a.next().and_then(|v| v.parse().ok()).ok_or(format!("{k} needs a number"))?;
        match k.as_str() {
            "--sessions" => o.sessions = v,
            "--bytes-per-session" => o.bytes = v,
            "--queries" => o.queries = v,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(o)
}

/// A tiny deterministic generator (xorshift), so runs are comparable.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Session `i`'s chunks: the header, then ~16 KiB chunks of log-like lines. Every session holds `benchall`;
/// one in a hundred holds `rareword{i % 7}`; each ends with `sess{i}end`.
fn cast(i: usize, bytes: usize) -> Vec<Vec<u8>> {
    let mut r = rng(i as u64 + 1);
    let mut chunks = vec![b"{\"version\":2,\"width\":120,\"height\":40}\n".to_vec()];
    let (mut cur, mut total, mut t) = (Vec::new(), 0, 0.0f64);
    let mut line_no = 0;
    while total < bytes {
        let mut line = format!("\u{1b}[32m{line_no:06}\u{1b}[0m ");
        for _ in 0..10 {
            line.push_str(WORDS[(r() % WORDS.len() as u64) as usize]);
            line.push(' ');
        }
        if line_no == 3 {
            line.push_str("benchall ");
            if i.is_multiple_of(100) {
                line.push_str(&format!("rareword{} ", i % 7));
            }
        }
        line.push_str("\r\n");
        t += 0.01;
        let ev = format!("{}\n", serde_json::json!([(t * 1000.0).round() / 1000.0, "o", line]));
        total += ev.len();
        cur.extend_from_slice(ev.as_bytes());
        line_no += 1;
        if cur.len() >= 16 << 10 {
            chunks.push(std::mem::take(&mut cur));
        }
    }
    cur.extend_from_slice(
        format!("{}\n", serde_json::json!([t + 1.0, "o", format!("sess{i}end\r\n")])).as_bytes(),
    );
    chunks.push(cur);
    chunks
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

fn ingest(o: &Opts, http: &reqwest::blocking::Client, i: usize) -> Result<(), String> {
    let id = format!("bench-{i:06}");
    let chunks = cast(i, o.bytes);
    let started = format!("2026-01-01T{:02}:{:02}:{:02}Z", (i / 3600) % 24, (i / 60) % 60, i % 60);
    let create = serde_json::json!({
        "id": id, "started_at": started, "host": "bench", "user": "bench", "command": format!("run job {i}"),
        "width": 120, "height": 40,
    });
    let check = |r: reqwest::Result<reqwest::blocking::Response>| -> Result<(), String> {
        let r = r.map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("{id}: {} {}", r.status(), r.text().unwrap_or_default()))
        }
    };
    check(http.post(format!("{}/api/v1/sessions", o.url)).bearer_auth(&o.host).json(&create).send())?;
    for (seq, c) in chunks.iter().enumerate() {
        let mut r = http
            .put(format!("{}/api/v1/sessions/{id}/chunks/{seq}", o.url))
            .bearer_auth(&o.host)
            .header("content-type", "application/x-asciicast")
            .body(c.clone());
        // Each chunk carries the hash of the one before; chunk 0 the chain root, the hash of the create body
        // as sent (reqwest sends serde_json's bytes).
        let prev = if seq > 0 { sha(&chunks[seq - 1]) } else { sha(&serde_json::to_vec(&create).unwrap()) };
        r = r.header("x-ddcoterm-prev-sha256", prev);
        check(r.send())?;
    }
    let end = serde_json::json!({"ended_at": "2026-01-02T00:00:00Z", "exit_status": 0, "last_seq": chunks.len() - 1});
    check(http.post(format!("{}/api/v1/sessions/{id}/end", o.url)).bearer_auth(&o.host).json(&end).send())?;
    let mut f = std::fs::File::create(o.dir.join(format!("{id}.cast"))).map_err(|e| e.to_string())?;
    f.write_all(&chunks.concat()).map_err(|e| e.to_string())
}

/// Sessions matching `q` (all pages).
fn count(o: &Opts, http: &reqwest::blocking::Client, q: &str) -> usize {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let url = format!("{}/api/v1/sessions?limit=500&q={q}{cursor}", o.url);
        let v: serde_json::Value = http.get(url).bearer_auth(&o.read).send().unwrap().json().unwrap();
        n += v["sessions"].as_array().map_or(0, Vec::len);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return n,
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&o.dir).unwrap();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let start = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= o.sessions {
                    break;
                }
                if let Err(e) = ingest(&o, &http, i) {
                    eprintln!("ingest failed: {e}");
                    std::process::exit(1);
                }
            });
        }
    });
    let ingest_s = start.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(&o.dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    println!("sessions={} cast_bytes={bytes} ingest_s={ingest_s:.1}", o.sessions);
    let idx = Instant::now();
    while count(&o, &http, "benchall") < o.sessions {
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("index_catch_up_s={:.1}", idx.elapsed().as_secs_f64());

    // Queries: a word in 1% of sessions, a word in every session (first page), a phrase, a miss.
    let words = ["rareword3", "benchall", "%22connection%20refused%22", "nosuchword"];
    let mut q_ms = Vec::new();
    for k in 0..o.queries {
        let q = words[k % words.len()];
        let t = Instant::now();
        let r = http.get(format!("{}/api/v1/sessions?q={q}", o.url)).bearer_auth(&o.read).send().unwrap();
        assert!(r.status().is_success());
        r.bytes().unwrap();
        q_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut g_ms = Vec::new();
    let plain = ["rareword3", "benchall", "connection refused", "nosuchword"];
    for k in 0..o.queries.min(40) {
        let t = Instant::now();
        let out =
            std::process::Command::new("grep").arg("-rlF").arg(plain[k % plain.len()]).arg(&o.dir).output();
        out.expect("grep");
        g_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (qp50, qp99) = (pct(&mut q_ms, 0.5), pct(&mut q_ms, 0.99));
    let (gp50, gp99) = (pct(&mut g_ms, 0.5), pct(&mut g_ms, 0.99));
    println!("q_p50_ms={qp50:.1} q_p99_ms={qp99:.1} grep_p50_ms={gp50:.1} grep_p99_ms={gp99:.1}");
    println!("q_p50_over_grep_p50={:.3} target_q_ms=200", qp50 / gp50);
}
