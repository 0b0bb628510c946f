//! Web benchmark driver for `bench/web.sh`: uploads a long recording (default: 1 hour, 200 MB) through the
//! ingest API as a host would, times the list API over many filters, and times the window API at random
//! moments. Prints `key=value` lines.
//!
//! Usage:
//!   webgen record URL HOST_TOKEN ID [--seconds S] [--bytes B] [--chunk-bytes C]
//!   webgen list URL READ_TOKEN [--queries Q]
//!   webgen windows URL READ_TOKEN ID [--windows N] [--span S] [--pid SERVER_PID]

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn usage() -> ! {
    eprintln!(
        "usage: webgen record URL HOST_TOKEN ID [--seconds S] [--bytes B] [--chunk-bytes C]\n       \
         webgen list URL READ_TOKEN [--queries Q]\n       \
         webgen windows URL READ_TOKEN ID [--windows N] [--span S] [--pid SERVER_PID]"
    );
    std::process::exit(2)
}

/// Positional arguments, then `--key value` options as numbers.
fn args(positional: usize) -> (Vec<String>, Vec<(String, f64)>) {
    let all: Vec<String> = std::env::args().skip(2).collect();
    if all.len() < positional {
        usage();
    }
    let (pos, rest) = all.split_at(positional);
    let mut opts = Vec::new();
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        let v = it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| {
            eprintln!("{k} needs a number");
            std::process::exit(2)
        });
        opts.push((k.trim_start_matches("--").to_string(), v));
    }
    (pos.to_vec(), opts)
}

fn opt(opts: &[(String, f64)], k: &str, default: f64) -> f64 {
    opts.iter().find(|(n, _)| n == k).map_or(default, |(_, v)| *v)
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

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

fn check(what: &str, r: reqwest::Result<reqwest::blocking::Response>) -> reqwest::blocking::Response {
    let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    if !r.status().is_success() {
        panic!("{what}: {} {}", r.status(), r.text().unwrap_or_default());
    }
    r
}

const WORDS: &[&str] = &[
    "GET",
    "POST",
    "/api/v1/orders",
    "/healthz",
    "200",
    "404",
    "503",
    "latency_ms",
    "pod/web-7f9c",
    "ready",
    "reconcile",
    "deployment",
    "payments",
    "timeout",
    "retry",
    "ok",
    "user=svc",
    "trace_id",
    "span",
    "db",
];

/// Screen content of one event at time `t`: mostly coloured log lines; every 30 s a full-screen `top`-like
/// redraw; every 10 minutes a resize and back.
fn event(r: &mut impl FnMut() -> u64, n: u64, target: usize) -> Vec<(&'static str, String)> {
    if n % 600 == 599 {
        let mut s = String::from("\x1b[H\x1b[2J");
        for row in 1..=40 {
            s.push_str(&format!(
                "\x1b[{row};1H\x1b[7m{row:3}\x1b[0m cpu {:3}% mem {:5} MiB",
                r() % 100,
                r() % 9000
            ));
        }
        return vec![("o", s)];
    }
    if n % 12_000 == 6_000 {
        return vec![("r", "160x50".into()), ("o", "\x1b[2J\x1b[Hresized\r\n".into())];
    }
    if n % 12_000 == 6_300 {
        return vec![("r", "120x40".into())];
    }
    let mut s = String::with_capacity(target + 64);
    while s.len() < target {
        s.push_str(&format!("\x1b[3{}m{:010}\x1b[0m ", r() % 7 + 1, n));
        for _ in 0..12 {
            s.push_str(WORDS[(r() % WORDS.len() as u64) as usize]);
            s.push(' ');
        }
        s.push_str("\r\n");
    }
    vec![("o", s)]
}

/// Uploads the recording: create, chunk 0 (header), event chunks of about C bytes, end.
fn record() {
    let (pos, opts) = args(3);
    let (url, host, id) = (&pos[0], &pos[1], &pos[2]);
    let seconds = opt(&opts, "seconds", 3600.0);
    let bytes = opt(&opts, "bytes", 200e6) as u64;
    let chunk_bytes = opt(&opts, "chunk-bytes", 256.0 * 1024.0) as usize;
    // Events every 50 ms: 20 per second, each about bytes / (20 * seconds) long.
    let events = (seconds * 20.0) as u64;
    let target = (bytes / events.max(1)) as usize;
    let http = http();
    let create = serde_json::json!({
        "id": id, "started_at": "2026-01-01T00:00:00Z", "host": "bench", "user": "bench",
        "command": "tail -f /var/log/app.log", "width": 120, "height": 40,
    });
    let start = Instant::now();
    check("create", http.post(format!("{url}/api/v1/sessions")).bearer_auth(host).json(&create).send());
    let put = |seq: u64, body: &[u8], prev: Option<&[u8]>| {
        let mut r = http
            .put(format!("{url}/api/v1/sessions/{id}/chunks/{seq}"))
            .bearer_auth(host)
            .header("content-type", "application/x-asciicast")
            .body(body.to_vec());
        if let Some(p) = prev {
            r = r.header("x-ddcoterm-prev-sha256", sha(p));
        }
        check(&format!("chunk {seq}"), r.send());
    };
    // Chunk 0 carries the chain root: the hash of the create body as sent (reqwest sends serde_json's bytes).
    let header = b"{\"version\":2,\"width\":120,\"height\":40,\"timestamp\":1767225600}\n".to_vec();
    let root = sha(&serde_json::to_vec(&create).unwrap());
    let r = http
        .put(format!("{url}/api/v1/sessions/{id}/chunks/0"))
        .bearer_auth(host)
        .header("content-type", "application/x-asciicast")
        .header("x-ddcoterm-prev-sha256", root)
        .body(header.clone());
    check("chunk 0", r.send());
    let mut r = rng(7);
    let (mut prev, mut seq, mut cur, mut total) =
        (header, 0u64, Vec::with_capacity(chunk_bytes + 8192), 0u64);
    for n in 0..events {
        let t = n as f64 * 0.05 + 0.05;
        for (code, data) in event(&mut r, n, target) {
            cur.extend_from_slice(
                &serde_json::to_vec(&serde_json::json!([(t * 1000.0).round() / 1000.0, code, data])).unwrap(),
            );
            cur.push(b'\n');
        }
        if cur.len() >= chunk_bytes || n + 1 == events {
            seq += 1;
            total += cur.len() as u64;
            put(seq, &cur, Some(&prev));
            prev = std::mem::replace(&mut cur, Vec::with_capacity(chunk_bytes + 8192));
        }
    }
    let upload_s = start.elapsed().as_secs_f64();
    let end = serde_json::json!({"ended_at": "2026-01-01T01:00:00Z", "exit_status": 0, "last_seq": seq});
    let t = Instant::now();
    check("end", http.post(format!("{url}/api/v1/sessions/{id}/end")).bearer_auth(host).json(&end).send());
    println!(
        "recording_bytes={total} recording_seconds={seconds} chunks={seq} upload_s={upload_s:.1} end_and_compact_s={:.1}",
        t.elapsed().as_secs_f64()
    );
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// GET `path`, timed, in ms; panics on an error answer.
fn timed(http: &reqwest::blocking::Client, url: &str, token: &str, path: &str) -> (f64, bytes::Bytes) {
    let t = Instant::now();
    let r = check(path, http.get(format!("{url}{path}")).bearer_auth(token).send());
    let b = r.bytes().unwrap();
    (t.elapsed().as_secs_f64() * 1000.0, b)
}

/// The list API under every filter, first pages and a deep cursor page.
fn list() {
    let (pos, opts) = args(2);
    let (url, read) = (&pos[0], &pos[1]);
    let queries = opt(&opts, "queries", 50.0) as usize;
    let http = http();
    // A cursor 100 pages deep (limit 50: rows 5,000 on).
    let mut cursor = String::new();
    for _ in 0..100 {
        let (_, b) = timed(&http, url, read, &format!("/api/v1/sessions?limit=50{cursor}"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        cursor = format!("&cursor={}", v["next_cursor"].as_str().expect("100 pages of sessions"));
    }
    let kinds: Vec<(&str, String)> = vec![
        ("first_page", String::new()),
        ("user", "user=user-17".into()),
        ("host", "host=host-3".into()),
        ("command_substring", "command=terraform".into()),
        ("command_rare", "command=nosuchcommand".into()),
        ("exit", "exit=2".into()),
        ("state", "state=live".into()),
        ("since_until", "since=2025-06-01T00:00:00Z&until=2025-06-08T00:00:00Z".into()),
        ("user_and_exit", "user=user-17&exit=1".into()),
        ("deep_cursor", cursor.trim_start_matches('&').to_string()),
    ];
    let mut all = Vec::new();
    for (name, q) in &kinds {
        let mut ms = Vec::new();
        let mut rows = 0;
        for _ in 0..queries {
            let (t, b) = timed(&http, url, read, &format!("/api/v1/sessions?{q}"));
            rows = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["sessions"]
                .as_array()
                .unwrap()
                .len();
            ms.push(t);
        }
        all.extend_from_slice(&ms);
        println!(
            "list_{name}_p50_ms={:.1} list_{name}_p99_ms={:.1} rows={rows}",
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.99)
        );
    }
    println!(
        "list_all_p50_ms={:.1} list_all_p99_ms={:.1} target_ms=100",
        pct(&mut all, 0.5),
        pct(&mut all, 0.99)
    );
}

/// The first window, then N at random moments; each fetched over HTTP and timed.
fn windows() {
    let (pos, opts) = args(3);
    let (url, read, id) = (&pos[0], &pos[1], &pos[2]);
    let n = opt(&opts, "windows", 10.0) as usize;
    let span = opt(&opts, "span", 30.0);
    let http = http();
    // On a server that has not built the index yet, the first request builds it: its time is the build's.
    let (kf_ms, b) = timed(&http, url, read, &format!("/api/v1/sessions/{id}/keyframes"));
    let kf: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let duration = kf["duration"].as_f64().unwrap();
    println!(
        "keyframes_first_request_ms={kf_ms:.1} keyframes={} keyframes_json_bytes={} duration_s={duration}",
        kf["keyframes"].as_array().unwrap().len(),
        b.len()
    );
    let pid = opt(&opts, "pid", 0.0) as u32;
    if pid > 0 {
        println!("server_peak_rss_after_index_build_mib={:.1}", peak_rss_mib(pid));
    }
    let (first_ms, b) = timed(&http, url, read, &format!("/api/v1/sessions/{id}/window?at=0&span={span}"));
    println!("first_window_ms={first_ms:.1} first_window_bytes={}", b.len());
    let mut r = rng(42);
    let (mut ms, mut sizes, mut screen_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let at = (r() % (duration * 1000.0) as u64) as f64 / 1000.0;
        let (t, b) = timed(&http, url, read, &format!("/api/v1/sessions/{id}/window?at={at}&span={span}"));
        ms.push(t);
        sizes.push(b.len() as f64);
        let (t, _) = timed(&http, url, read, &format!("/api/v1/sessions/{id}/screen?at={at}"));
        screen_ms.push(t);
    }
    println!(
        "random_windows={n} window_p50_ms={:.1} window_max_ms={:.1} window_p50_bytes={:.0} window_max_bytes={:.0} \
         screen_p50_ms={:.1} screen_max_ms={:.1} target_ms=1000",
        pct(&mut ms, 0.5),
        pct(&mut ms, 1.0),
        pct(&mut sizes, 0.5),
        pct(&mut sizes, 1.0),
        pct(&mut screen_ms, 0.5),
        pct(&mut screen_ms, 1.0)
    );
}

/// The peak resident set (VmHWM) of process `pid`, MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("record") => record(),
        Some("list") => list(),
        Some("windows") => windows(),
        _ => usage(),
    }
}
