//! Load generator for `bench/server.sh`: simulated hosts uploading chunks to a running ddcoterm-server.
//!
//! Paced (open loop): every host sends a chunk every `--interval-ms` whether or not the previous one was
//! acknowledged, so a slow server shows up as latency rather than as fewer requests. Saturated: every host
//! sends its next chunk as soon as the previous one is acknowledged. A 503 is retried like a host's spool
//! would (after its `Retry-After`, capped at 1 s) and counted as `busy`. Latency runs from the time a chunk
//! was due (paced: its scheduled tick, so a generator starved of CPU cannot hide a slow server; saturated:
//! its first send) to its acknowledgement. Chunk 0 carries the create body's hash (the chain root).
//! Prints one line of `key=value` numbers, the generator's own CPU seconds last.
//!
//! `--slow-ms MS` also prints, on stderr, every acknowledgement slower than MS (when, which host and chunk): a
//! tail is then placed in time (start-up, a steady rate, a stall of the storage).
//!
//! Usage: loadgen URL TOKEN [--hosts N] [--seconds S] [--chunk-bytes B] [--interval-ms MS] [--saturate]
//!        [--slow-ms MS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ddcoterm_wire::{chain_root, chunk_hash};
use tokio::sync::Mutex;

struct Opts {
    url: String,
    token: String,
    hosts: usize,
    seconds: u64,
    chunk_bytes: usize,
    interval: Duration,
    saturate: bool,
    slow_ms: Option<u64>,
    /// When the run started: the time of a slow acknowledgement is printed from here.
    t0: Instant,
}

fn parse() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: loadgen URL TOKEN [options]")?;
    let token = args.next().ok_or("usage: loadgen URL TOKEN [options]")?;
    let mut o = Opts {
        url,
        token,
        hosts: 200,
        seconds: 60,
        chunk_bytes: 16 << 10,
        interval: Duration::from_millis(250),
        saturate: false,
        slow_ms: None,
        t0: Instant::now(),
    };
    while let Some(a) = args.next() {
        let mut val = |name: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: {v:?} is not a number"))
        };
        match a.as_str() {
            "--hosts" => o.hosts = val("--hosts")? as usize,
            "--seconds" => o.seconds = val("--seconds")?,
            "--chunk-bytes" => o.chunk_bytes = val("--chunk-bytes")? as usize,
            "--interval-ms" => o.interval = Duration::from_millis(val("--interval-ms")?),
            "--saturate" => o.saturate = true,
            "--slow-ms" => o.slow_ms = Some(val("--slow-ms")?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Chunk `seq` of a host: the header for 0, else asciicast output lines adding up to about `size` bytes.
/// Each line is `[{seq}.{i:03},"o","{seq * 1000 + i:0>100}\r\n"]`, assembled from slices and digits rather
/// than through `write!`: padding through the formatter wrote one `char` at a time, and that was three fifths
/// of the generator's CPU, taken from the two cores the server it measures runs on. The bytes are the same
/// (a test compares them with the `format!` form).
fn chunk(seq: u64, size: usize) -> Vec<u8> {
    if seq == 0 {
        return b"{\"version\":2,\"width\":120,\"height\":40}\n".to_vec();
    }
    let mut out = Vec::with_capacity(size + 128);
    let mut i = 0u64;
    while out.len() < size {
        out.push(b'[');
        push_padded(&mut out, seq, 0);
        out.push(b'.');
        push_padded(&mut out, i, 3);
        out.extend_from_slice(b",\"o\",\"");
        push_padded(&mut out, seq * 1000 + i, 100);
        out.extend_from_slice(b"\\r\\n\"]\n");
        i += 1;
    }
    out
}

/// Appends `v` in decimal, left-padded with zeros to `width` digits.
fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[digits.len() - 1 - n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.resize(out.len() + width.saturating_sub(n), b'0');
    out.extend_from_slice(&digits[digits.len() - n..]);
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    /// 503 answers (each retried).
    busy: u64,
    bytes: u64,
}

/// One chunk to send, and when it was due.
struct Send<'a> {
    id: &'a str,
    seq: u64,
    /// Shared, not copied, by each attempt.
    body: bytes::Bytes,
    prev: String,
    due: Instant,
}

async fn send(http: &reqwest::Client, o: &Opts, c: Send<'_>, stats: &Mutex<Stats>) -> bool {
    let Send { id, seq, body, prev, due: start } = c;
    let len = body.len() as u64;
    loop {
        let r = http
            .put(format!("{}/api/v1/sessions/{id}/chunks/{seq}", o.url))
            .bearer_auth(&o.token)
            .header("content-type", "application/x-asciicast")
            .header("x-ddcoterm-prev-sha256", &prev)
            .body(body.clone());
        match r.send().await {
            Ok(res) if res.status().is_success() => {
                let us = start.elapsed().as_micros() as u64;
                if o.slow_ms.is_some_and(|ms| us >= ms * 1000) {
                    let due = start.duration_since(o.t0).as_secs_f64();
                    eprintln!(
                        "slow ack: due_at_s={due:.3} session={id} seq={seq} ms={:.1}",
                        us as f64 / 1000.0
                    );
                }
                let mut s = stats.lock().await;
                s.latencies_us.push(us);
                s.bytes += len;
                return true;
            }
            Ok(res) if res.status() == 503 => {
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(1);
                stats.lock().await.busy += 1;
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => {
                stats.lock().await.errors += 1;
                return false;
            }
        }
    }
}

async fn host(o: Arc<Opts>, h: usize, stats: Arc<Mutex<Stats>>, deadline: Instant) {
    let http = reqwest::Client::new();
    let id = format!("load-{}-{h}", std::process::id());
    let create = serde_json::json!({
        "id": id, "started_at": "2026-01-01T00:00:00Z", "host": format!("sim-{h}"), "user": "load",
        "command": "bash", "width": 120, "height": 40,
    });
    let create = serde_json::to_vec(&create).expect("JSON");
    let created = http
        .post(format!("{}/api/v1/sessions", o.url))
        .bearer_auth(&o.token)
        .header("content-type", "application/json")
        .body(create.clone())
        .send()
        .await;
    if !matches!(created, Ok(r) if r.status().is_success()) {
        stats.lock().await.errors += 1;
        return;
    }
    // Spread the hosts' first sends over one interval, as real bastions are not in phase.
    tokio::time::sleep(o.interval.mul_f64(h as f64 / o.hosts as f64)).await;
    let mut prev = chain_root(&create);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(o.interval);
    let mut pending = Vec::new();
    while Instant::now() < deadline {
        let body = bytes::Bytes::from(chunk(seq, o.chunk_bytes));
        let this_hash = chunk_hash(&body);
        if o.saturate {
            let c = Send { id: &id, seq, body, prev: prev.clone(), due: Instant::now() };
            if !send(&http, &o, c, &stats).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        } else {
            // Latency runs from the scheduled send time, not from when this task got to run: a generator
            // that falls behind (it shares the cores with the server) must not hide the server's delay.
            let scheduled = tick.tick().await.into_std();
            let (http, o, id, prev, stats) =
                (http.clone(), o.clone(), id.clone(), prev.clone(), stats.clone());
            pending.push(tokio::spawn(async move {
                send(&http, &o, Send { id: &id, seq, body, prev, due: scheduled }, &stats).await;
            }));
        }
        prev = this_hash;
        seq += 1;
    }
    for p in pending {
        if p.await.is_err() {
            stats.lock().await.errors += 1;
        }
    }
}

/// This process's CPU time (user + system, every thread) from `/proc/self/stat`: the generator shares the
/// cores with the server, so the bench prints what it took. 0 where `/proc` is missing.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) start at the state, field 3: utime is 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<u64>() as f64 / 100.0 // USER_HZ
}

#[tokio::main]
async fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(64);
        }
    };
    // reqwest leaves the TLS provider to the binary when the workspace build also selects the client's
    // features (`rustls-no-provider`): without one, every host task panicked and nothing was measured.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let start = o.t0;
    let deadline = start + Duration::from_secs(o.seconds);
    let tasks: Vec<_> =
        (0..o.hosts).map(|h| tokio::spawn(host(o.clone(), h, stats.clone(), deadline))).collect();
    for t in tasks {
        if t.await.is_err() {
            // A host that died (panicked) sent nothing more: an error, never a silent gap in the numbers.
            stats.lock().await.errors += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut s = stats.lock().await;
    s.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if s.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((s.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, s.latencies_us.len()) - 1;
        s.latencies_us[i] as f64 / 1000.0
    };
    println!(
        "acks={} errors={} busy={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} mb_per_s={:.2} loadgen_cpu_s={:.1}",
        s.latencies_us.len(),
        s.errors,
        s.busy,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        s.bytes as f64 / secs / 1e6,
        cpu_seconds()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator's chunks, byte for byte as the `writeln!` form it replaced wrote them.
    fn chunk_by_format(seq: u64, size: usize) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::new();
        let mut i = 0;
        while out.len() < size {
            writeln!(out, "[{seq}.{i:03},\"o\",\"{:0>100}\\r\\n\"]", seq * 1000 + i).unwrap();
            i += 1;
        }
        out
    }

    #[test]
    fn chunks_are_the_bytes_the_format_form_wrote() {
        for (seq, size) in [(1, 16384), (7, 16384), (12_345, 16384), (3, 200_000), (u64::MAX / 1000, 300)] {
            assert_eq!(chunk(seq, size), chunk_by_format(seq, size), "seq {seq}, size {size}");
        }
        assert!(chunk(0, 16384).starts_with(b"{\"version\":2"));
    }
}
