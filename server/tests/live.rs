//! Live follow (`/live`, Server-Sent Events for asciinema-player's eventsource driver): the current screen
//! first, then output as chunks commit, a resize, `done` at the end; across two replicas on PostgreSQL + S3;
//! roles; and the view audit that records every download and live view.

mod support;

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use support::{chunks, Server};

/// Reads Server-Sent Events: (event name, data), comments (heartbeats) skipped.
struct Events(BufReader<reqwest::blocking::Response>);

impl Events {
    fn open(s: &Server, token: &str, id: &str) -> Events {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let r = http.get(format!("{}/api/v1/sessions/{id}/live", s.url)).bearer_auth(token).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Events(BufReader::new(r))
    }

    fn next(&mut self) -> (String, String) {
        let (mut event, mut data) = (String::from("message"), String::new());
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "the stream ended early");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    return (event, data);
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }

    fn json(&mut self) -> serde_json::Value {
        let (event, data) = self.next();
        assert_eq!(event, "message", "{data}");
        serde_json::from_str(&data).unwrap()
    }
}

/// Ingests into `ingest` while following on `follow`: the screen so far, two more chunks (output and a
/// resize), the end.
fn follow_a_session(ingest: &Server, follow: &Server) {
    let host = ingest.token("h", "host");
    let aud = ingest.token("aud", "auditor");
    let c = chunks(3);
    assert_eq!(ingest.create(&host, "lv1", "alice").status(), 201);
    for seq in 0..2usize {
        let prev = seq.checked_sub(1).map(|p| &c[p][..]);
        assert_eq!(ingest.chunk(&host, "lv1", seq as u64, &c[seq], prev).status(), 201);
    }
    let mut ev = Events::open(follow, &aud, "lv1");
    let reset = ev.json();
    assert_eq!((reset["cols"].as_u64(), reset["rows"].as_u64()), (Some(80), Some(24)), "{reset}");
    assert_eq!(reset["time"].as_f64(), Some(1.5), "{reset}");
    let init = reset["init"].as_str().unwrap();
    assert!(init.contains("line 1 ") && init.contains("bold"), "the current screen: {init:?}");

    assert_eq!(ingest.chunk(&host, "lv1", 2, &c[2], Some(&c[1])).status(), 201);
    let out = ev.json();
    assert_eq!(out, serde_json::json!([2.5, "o", "line 2 \u{1b}[1mbold\u{1b}[0m\r\n"]));

    let resize = b"[3.25,\"r\",\"100x30\"]\n[3.5,\"o\",\"wide\"]\n".to_vec();
    assert_eq!(ingest.chunk(&host, "lv1", 3, &resize, Some(&c[2])).status(), 201);
    assert_eq!(ev.json(), serde_json::json!([3.25, "r", {"cols": 100, "rows": 30}]));
    assert_eq!(ev.json(), serde_json::json!([3.5, "o", "wide"]));

    assert_eq!(ingest.end(&host, "lv1", 3).status(), 200);
    assert_eq!(ev.next().0, "done");

    // A finished session: its final screen, then done at once.
    let mut again = Events::open(follow, &aud, "lv1");
    let reset = again.json();
    assert_eq!((reset["cols"].as_u64(), reset["rows"].as_u64()), (Some(100), Some(30)), "{reset}");
    assert!(reset["init"].as_str().unwrap().contains("wide"));
    assert_eq!(again.next().0, "done");
}

#[test]
fn live_follow_sends_the_screen_then_output_then_done() {
    let s = Server::start();
    follow_a_session(&s, &s);
}

#[test]
fn live_follow_works_across_replicas() {
    if !support::backends::enabled() {
        println!(
            "skipped: replicas share state only on PostgreSQL + S3 (DDCOTERM_SERVER_BACKEND=postgres-s3)"
        );
        return;
    }
    let a = Server::start();
    let b = Server::start_sharing(&a);
    follow_a_session(&a, &b);
}

#[test]
fn live_follow_and_downloads_are_audited_and_roles_apply() {
    let s = Server::start();
    let host = s.token("h", "host");
    let alice = s.token("alice", "viewer");
    let bob = s.token("bob", "viewer");
    let admin = s.token("root", "admin");
    let aud = s.token("aud", "auditor");
    assert_eq!(s.create(&host, "lv2", "alice").status(), 201);
    let c = chunks(1);
    assert_eq!(s.chunk(&host, "lv2", 0, &c[0], None).status(), 201);
    assert_eq!(s.chunk(&host, "lv2", 1, &c[1], Some(&c[0])).status(), 201);

    let live = |tok: &str| s.req("GET", "/api/v1/sessions/lv2/live", tok).send().unwrap().status().as_u16();
    assert_eq!(live(&host), 403, "host tokens never read");
    assert_eq!(live(&bob), 404, "another user's session does not exist for a viewer");
    assert_eq!(live(""), 401);
    assert_eq!(s.req("GET", "/api/v1/sessions/bad%2Fid/live", &aud).send().unwrap().status(), 400);
    let mut ev = Events::open(&s, &alice, "lv2");
    assert!(ev.json()["init"].as_str().unwrap().contains("line 1"));
    drop(ev);
    assert!(!s.cast(&aud, "lv2").is_empty());

    let (status, views) = s.get_json(&admin, "/api/v1/views?session=lv2");
    assert_eq!(status, 200, "{views}");
    let got: Vec<(String, String)> = views["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["viewer"].as_str().unwrap().into(), v["kind"].as_str().unwrap().into()))
        .collect();
    assert_eq!(got, [("aud".to_string(), "cast".to_string()), ("alice".into(), "live".into())]);
    assert!(views["views"][0]["at"].as_str().unwrap().starts_with("20"));
    // Refused views are not recorded; the audit pages with a cursor; only admins read it.
    let (_, page) = s.get_json(&admin, "/api/v1/views?limit=1");
    assert_eq!(page["views"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = s.get_json(&admin, &format!("/api/v1/views?limit=5&cursor={cursor}"));
    assert_eq!(rest["views"].as_array().unwrap().len(), 1);
    assert_eq!(s.get_json(&aud, "/api/v1/views").0, 403);
    assert_eq!(s.get_json(&admin, "/api/v1/views?session=..").0, 400);
    assert_eq!(s.get_json(&admin, "/api/v1/views?bogus=1").0, 400);
}
