//! Windows over long recordings (`/window`, `/keyframes`, `/screen`): for many moments, the window replayed in
//! a terminal, the server's `/screen` and a terminal run over the whole cast show the same screen; while the
//! session is chunks (live, the index extended as chunks arrive) and once compacted; roles, the view audit,
//! bad parameters; and the index build's memory on a large cast.

mod support;

use support::Server;

/// A recording with known content: numbered lines (with colours and an escape sequence split across every
/// two events), a full-screen redraw on the alternate screen and back, a hidden cursor, a resize, a marker
/// and input. Events every 0.5 s; about 2 KiB each, so keyframes come both by time and by bytes.
fn recording() -> Vec<Vec<u8>> {
    let mut lines =
        vec![b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1767225600,\"idle_time_limit\":2}"
            .to_vec()];
    let pad = "x".repeat(1900);
    for i in 1..=700u32 {
        let t = i as f64 * 0.5;
        let data = match i {
            // A full-screen redraw on the alternate screen, then back to the main one.
            200 => {
                let mut s = String::from("\x1b[?1049h\x1b[2J\x1b[H");
                for r in 0..24 {
                    s.push_str(&format!("\x1b[{};1Hfull screen row {r}", r + 1));
                }
                s
            }
            260 => "\x1b[?1049l".to_string(),
            300 => "\x1b[?25l".to_string(),
            420 => "\x1b[?25h".to_string(),
            // The escape sequence split across two events: the parser is mid-sequence between them.
            _ if i % 2 == 0 => format!("line {i} \x1b[3"),
            _ => format!("2mgreen {pad}\x1b[0m line {i} end\r\n"),
        };
        lines.push(serde_json::to_vec(&serde_json::json!([t, "o", data])).unwrap());
        if i == 350 {
            lines.push(br#"[175.1,"r","100x30"]"#.to_vec());
        }
        if i == 500 {
            lines.push(br#"[250.2,"m","checkpoint"]"#.to_vec());
            lines.push(br#"[250.3,"i","ls\r"]"#.to_vec());
        }
    }
    lines
}

/// The cast split the way a host sends it: the header alone, then chunks of about 16 KiB of whole lines.
fn chunked(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = vec![[&lines[0][..], b"\n"].concat()];
    let mut cur = Vec::new();
    for l in &lines[1..] {
        cur.extend_from_slice(l);
        cur.push(b'\n');
        if cur.len() >= 16 << 10 {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A terminal over `cast` (header + event lines) with every event at or before `at` applied: the reference.
fn render(cast: &[u8], at: f64) -> (Vec<String>, (usize, usize, bool)) {
    let mut it = cast.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let head: serde_json::Value = serde_json::from_slice(it.next().unwrap()).unwrap();
    let mut vt = avt::Terminal::new(
        head["width"].as_u64().unwrap() as usize,
        head["height"].as_u64().unwrap() as usize,
    )
    .unwrap();
    for l in it {
        let (t, code, data): (f64, String, String) = serde_json::from_slice(l).unwrap();
        if t > at {
            break;
        }
        match code.as_str() {
            "o" => vt.feed(data.as_str()),
            "r" => {
                let (c, r) = data.split_once('x').unwrap();
                vt.resize(c.parse().unwrap(), r.parse().unwrap());
            }
            _ => {}
        }
    }
    let c = vt.cursor();
    let lines = vt.screen().visible_lines().map(|l| l.text().trim_end().to_string()).collect();
    (lines, (c.col, c.row, c.visible))
}

/// The header of a window and its body; checks it is a valid asciicast v2 document as it goes.
fn window(s: &Server, token: &str, id: &str, at: f64, span: f64) -> (serde_json::Value, Vec<u8>) {
    let r = s.req("GET", &format!("/api/v1/sessions/{id}/window?at={at}&span={span}"), token).send().unwrap();
    assert_eq!(r.status(), 200, "window at {at}");
    assert_eq!(r.headers()["content-type"], "application/x-asciicast");
    let offset_header: f64 = r.headers()["x-ddcoterm-offset"].to_str().unwrap().parse().unwrap();
    let body = r.bytes().unwrap().to_vec();
    let mut it = body.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let head: serde_json::Value = serde_json::from_slice(it.next().unwrap()).unwrap();
    assert_eq!(head["version"], 2);
    assert_eq!(head["ddcoterm_offset"].as_f64(), Some(offset_header));
    assert!(head.get("idle_time_limit").is_none(), "idle compression would shift the clock: {head}");
    let mut prev = 0.0;
    for (n, l) in it.enumerate() {
        let (t, code, _): (f64, String, String) = serde_json::from_slice(l).unwrap();
        if n == 0 {
            assert_eq!((t, code.as_str()), (0.0, "o"), "the first event paints the keyframe's screen");
        }
        assert!(t >= prev, "times go forward");
        prev = t;
    }
    (head, body)
}

/// Replays a window in a terminal up to `at` (absolute).
fn replay_window(head: &serde_json::Value, body: &[u8], at: f64) -> (Vec<String>, (usize, usize, bool)) {
    let offset = head["ddcoterm_offset"].as_f64().unwrap();
    assert!(offset <= at + 1e-9, "the window starts after {at}: {head}");
    // The same document with absolute times, rendered like the whole cast.
    let mut abs = Vec::new();
    for (n, l) in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        if n == 0 {
            abs.extend_from_slice(l);
        } else {
            let (t, code, data): (f64, String, String) = serde_json::from_slice(l).unwrap();
            abs.extend_from_slice(&serde_json::to_vec(&serde_json::json!([t + offset, code, data])).unwrap());
        }
        abs.push(b'\n');
    }
    render(&abs, at)
}

fn screen(s: &Server, token: &str, id: &str, at: f64) -> (Vec<String>, (usize, usize, bool)) {
    let (status, v) = s.get_json(token, &format!("/api/v1/sessions/{id}/screen?at={at}"));
    assert_eq!(status, 200, "{v}");
    let lines = v["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let c = &v["cursor"];
    (
        lines,
        (
            c["col"].as_u64().unwrap() as usize,
            c["row"].as_u64().unwrap() as usize,
            c["visible"].as_bool().unwrap(),
        ),
    )
}

/// Every moment in `ats`: window replay == `/screen` == the whole cast rendered.
fn check_moments(s: &Server, token: &str, id: &str, cast: &[u8], ats: &[f64]) {
    for &at in ats {
        let want = render(cast, at);
        let (head, body) = window(s, token, id, at, 20.0);
        assert_eq!(replay_window(&head, &body, at), want, "window at {at} ({head})");
        assert_eq!(screen(s, token, id, at), want, "/screen at {at}");
    }
}

fn send(s: &Server, host: &str, id: &str, chunks: &[Vec<u8>], range: std::ops::Range<usize>) {
    for seq in range {
        let prev = seq.checked_sub(1).map(|p| &chunks[p][..]);
        let r = s.chunk(host, id, seq as u64, &chunks[seq], prev);
        assert_eq!(r.status(), 201, "chunk {seq}");
    }
}

/// Moments between events (events are at multiples of 0.5 s), spread over the recording and past its end.
fn moments(until: f64) -> Vec<f64> {
    let mut v: Vec<f64> =
        vec![0.0, 0.1, 0.75, 5.25, 99.8, 100.25, 129.9, 130.25, 150.25, 175.2, 175.4, 250.25, 250.35];
    let mut x = 0.3f64;
    while x < until {
        v.push(x);
        x += 7.7;
    }
    v.push(until + 100.0);
    v.into_iter().filter(|&a| a <= until + 100.0).collect()
}

#[test]
fn windows_and_screens_match_the_whole_recording_chunked_and_compacted() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    let lines = recording();
    let chunks = chunked(&lines);
    let cast: Vec<u8> = chunks.concat();
    assert!(chunks.len() > 40, "{} chunks", chunks.len());
    assert_eq!(s.create(&host, "w1", "alice").status(), 201);

    // Live, half of it stored as chunks: the index is built over what is committed.
    let half = chunks.len() / 2;
    send(&s, &host, "w1", &chunks, 0..half);
    let prefix: Vec<u8> = chunks[..half].concat();
    let prefix_end = {
        let last = prefix.split(|&b| b == b'\n').rfind(|l| !l.is_empty()).unwrap();
        serde_json::from_slice::<(f64, String, String)>(last).unwrap().0
    };
    check_moments(&s, &aud, "w1", &prefix, &moments(prefix_end));
    let (_, kf_live) = s.get_json(&aud, "/api/v1/sessions/w1/keyframes");
    assert_eq!(kf_live["complete"], false, "{kf_live}");
    assert_eq!(kf_live["duration"].as_f64(), Some(prefix_end));

    // The rest arrives: the index is extended from its last keyframe, still on chunks.
    send(&s, &host, "w1", &chunks, half..chunks.len());
    check_moments(&s, &aud, "w1", &cast, &moments(350.0));

    // Ended and compacted: the same answers, now from ranged reads of one object.
    assert_eq!(s.end(&host, "w1", chunks.len() as u64 - 1).status(), 200);
    let (_, d) = s.get_json(&aud, "/api/v1/sessions/w1");
    assert_eq!(d["state"], "complete");
    assert!(s.objects().iter().any(|(k, _)| k.ends_with("w1.cast")));
    check_moments(&s, &aud, "w1", &cast, &moments(350.0));
    let (_, kf) = s.get_json(&aud, "/api/v1/sessions/w1/keyframes");
    assert_eq!(kf["complete"], true, "{kf}");
    assert_eq!(kf["duration"].as_f64(), Some(350.0));
    let times: Vec<f64> = kf["keyframes"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    // Every 10 s of recording at least, more often where 256 KiB of output came sooner.
    assert!(times.len() >= 35, "{times:?}");
    assert!(times.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 10.0 + 0.5), "{times:?}");
    assert_eq!(times[0], 0.0);

    // The same recording sent whole and only then read: its index is built once, from scratch, over the
    // compacted cast, and comes out the same as the one extended chunk by chunk.
    assert_eq!(s.create(&host, "w2", "alice").status(), 201);
    send(&s, &host, "w2", &chunks, 0..chunks.len());
    assert_eq!(s.end(&host, "w2", chunks.len() as u64 - 1).status(), 200);
    let (_, kf2) = s.get_json(&aud, "/api/v1/sessions/w2/keyframes");
    assert_eq!(kf2, kf, "index built at once == index extended as chunks came");
    check_moments(&s, &aud, "w2", &cast, &[0.3, 101.0, 175.3, 250.25, 349.9]);

    // A window holds what it needs, not the recording: from its keyframe to at + span.
    let (head, body) = window(&s, &aud, "w2", 300.25, 5.0);
    assert!(body.len() < cast.len() / 10, "{} bytes of {}", body.len(), cast.len());
    let offset = head["ddcoterm_offset"].as_f64().unwrap();
    assert!(offset <= 300.25 && offset > 280.0, "{head}");
    assert_eq!(head["ddcoterm_end"].as_f64(), Some(305.25));
    assert_eq!(head["ddcoterm_last"], false);
    assert_eq!(
        (head["width"].as_u64(), head["height"].as_u64()),
        (Some(100), Some(30)),
        "size after the resize"
    );
    assert_eq!(head["timestamp"].as_u64(), Some(1767225600));
    // Past the end: the last keyframe on, marked last.
    let (head, _) = window(&s, &aud, "w2", 10_000.0, 30.0);
    assert_eq!(head["ddcoterm_last"], true);
    assert_eq!(head["ddcoterm_end"].as_f64(), Some(350.0));
}

#[test]
fn windows_are_for_reviewers_and_each_is_recorded() {
    let s = Server::start();
    let host = s.token("h", "host");
    let alice = s.token("alice", "viewer");
    let bob = s.token("bob", "viewer");
    let admin = s.token("root", "admin");
    let lines = recording();
    let chunks = chunked(&lines[..40]);
    assert_eq!(s.create(&host, "w3", "alice").status(), 201);
    send(&s, &host, "w3", &chunks, 0..chunks.len());
    for path in ["window?at=3", "screen?at=3", "keyframes"] {
        let url = format!("/api/v1/sessions/w3/{path}");
        assert_eq!(s.req("GET", &url, "").send().unwrap().status(), 401, "{path} without a token");
        assert_eq!(s.req("GET", &url, &host).send().unwrap().status(), 403, "{path} with a host token");
        assert_eq!(s.req("GET", &url, &bob).send().unwrap().status(), 404, "{path}: another user's session");
        assert_eq!(s.req("GET", &url, &alice).send().unwrap().status(), 200, "{path}: her own session");
    }
    let (_, views) = s.get_json(&admin, "/api/v1/views?session=w3");
    let kinds: Vec<(&str, &str)> = views["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["viewer"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    // Newest first; refused requests and the keyframe times (no recorded content) are not views.
    assert_eq!(kinds, [("alice", "screen"), ("alice", "window")]);
}

#[test]
fn bad_parameters_are_refused_naming_the_parameter() {
    let s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    let chunks = chunked(&recording()[..10]);
    assert_eq!(s.create(&host, "w4", "alice").status(), 201);
    send(&s, &host, "w4", &chunks, 0..chunks.len());
    for (q, field) in [
        ("window?at=-1", "at"),
        ("window?at=abc", "at"),
        ("window?at=inf", "at"),
        ("window?at=NaN", "at"),
        ("window?at=1&span=0", "span"),
        ("window?at=1&span=601", "span"),
        ("window?at=1&span=", "span"),
        ("window?at=1&speed=2", "speed"),
        ("screen?at=1&span=3", "span"),
        ("screen?at=", "at"),
        ("keyframes?at=1", "at"),
    ] {
        let (status, v) = s.get_json(&aud, &format!("/api/v1/sessions/w4/{q}"));
        assert_eq!(status, 400, "{q}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("`{field}`")), "{q}: {msg}");
    }
    // A session with nothing stored yet has no window; an unknown one is 404 too.
    assert_eq!(s.create(&host, "w5", "alice").status(), 201);
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/w5/window?at=1").0, 404);
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/nope/window?at=1").0, 404);
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/w4/window").0, 200, "at defaults to 0");
}

/// Reads the server's peak resident set (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// The index of a 32 MiB recording is built streaming: the server restarted (so its peak is the build's
/// alone, not the ingest's) grows by far less than the recording's size while it builds.
#[test]
fn building_the_index_of_a_large_recording_streams_it() {
    // The search indexer off: it works through the same session 1 MiB at a time, and what it holds at the
    // moment of the build (FTS pending terms, page cache) is not the build's.
    let mut s = Server::start_with(&[("DDCOTERMD_SEARCH__INDEXER", "false")]);
    let host = s.token("h", "host");
    let aud = s.token("aud", "auditor");
    assert_eq!(s.create(&host, "big", "alice").status(), 201);
    let header = b"{\"version\":2,\"width\":120,\"height\":40}\n".to_vec();
    assert_eq!(s.chunk(&host, "big", 0, &header, None).status(), 201);
    let mut prev = header;
    let mut t: f64 = 0.0;
    let chunks = 32;
    for seq in 1..=chunks {
        let mut c = Vec::with_capacity(1 << 20);
        while c.len() < (1 << 20) - 400 {
            t += 0.01;
            let line =
                format!("\x1b[32m{:08}\x1b[0m {}\r\n", (t * 100.0) as u64, "lorem ipsum dolor ".repeat(16));
            c.extend_from_slice(
                &serde_json::to_vec(&serde_json::json!([(t * 100.0).round() / 100.0, "o", line])).unwrap(),
            );
            c.push(b'\n');
        }
        assert_eq!(s.chunk(&host, "big", seq, &c, Some(&prev)).status(), 201);
        prev = c;
    }
    // Left live (chunks, not compacted): the background builder takes only complete sessions, so the index
    // is built by the request below, in the restarted process.
    // A fresh process: its peak is the start-up plus whatever the build holds.
    s.restart();
    let pid = s.pid();
    let base = peak_rss_mib(pid);
    let (status, kf) = s.get_json(&aud, "/api/v1/sessions/big/keyframes");
    assert_eq!(status, 200, "{kf}");
    assert_eq!(kf["complete"], false);
    assert!(kf["keyframes"].as_array().unwrap().len() >= 100, "{}", kf["keyframes"]);
    let peak = peak_rss_mib(pid);
    eprintln!("peak RSS before the build {base:.1} MiB, after {peak:.1} MiB");
    assert!(peak - base < 16.0, "building over 32 MiB grew the server from {base:.1} to {peak:.1} MiB");
    let (head, _) = window(&s, &aud, "big", t / 2.0, 10.0);
    assert!(head["ddcoterm_offset"].as_f64().unwrap() > t / 2.0 - 10.0, "{head}");
}
