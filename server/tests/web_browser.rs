//! The web UI in a real headless Chromium (chromedriver, fantoccini) against the real server, with sessions
//! uploaded through the real ingest API: sign-in, list, filters, search opening at the match, play, seek by
//! the command list, speed, download, live follow, the list updating itself, viewer scope, sign-out, the
//! CSP holding with no violation, and an XSS corpus that never runs. Saves screenshots to
//! target/screenshots/. Without chromium or chromedriver each test prints "skipped: <why>".

mod support;
mod web_support;

use std::time::Duration;

use serde_json::json;
use support::Server;
use web_support::{add_user, out, wait_indexed, Browser, Upload};

/// No console message about the Content-Security-Policy (a violation is logged as an error).
fn assert_no_csp_violation(b: &Browser) {
    let log = b.console();
    let bad: Vec<&String> =
        log.iter().filter(|m| m.contains("Content Security Policy") || m.contains("Refused to")).collect();
    assert!(bad.is_empty(), "CSP violations: {bad:#?}");
}

fn sign_in(b: &Browser, s: &Server, user: &str, password: &str) {
    b.fill("#user", user);
    b.fill("#password", password);
    b.click("#signin");
    b.wait_js("signed in", &format!("!location.pathname.startsWith('/login') && document.querySelector('.who') && document.querySelector('.who').textContent.startsWith({})", json!(user)), 10);
    let _ = s;
}

#[test]
fn review_sign_in_list_filter_search_play_seek_speed_download_sign_out() {
    let Some(b) = Browser::start("review flow") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    let up = Upload { s: &s, host: &host };
    up.session(
        "s-old",
        json!({"user": "alice", "command": "kubectl get pods", "started_at": "2026-01-01T00:00:00Z"}),
        &[out(0.5, "NAME   READY\r\nweb-1  1/1\r\n")],
        false,
    );
    let lines: Vec<String> = (1..=30)
        .map(|i| out(i as f64, &format!("step {i}{}\r\n", if i == 12 { " zebracorn reached" } else { "" })))
        .collect();
    let cast = up.session(
        "s-deploy",
        json!({"user": "bob", "command": "terraform apply", "started_at": "2026-01-01T00:05:00Z",
               "rule": "prod-change", "approval": "CASE-42", "ssh": {"client": "10.0.0.7", "fingerprint": "SHA256:abc"}}),
        &lines,
        false,
    );
    up.events(
        "s-deploy",
        json!([
            {"command": "terraform init", "started_at": "2026-01-01T00:05:02Z", "exit_code": 0},
            {"command": "terraform plan", "started_at": "2026-01-01T00:05:08Z", "exit_code": 0},
            {"command": "terraform apply", "started_at": "2026-01-01T00:05:20Z", "exit_code": 0},
        ]),
    );
    add_user(&s, "lead", "auditor", "correct horse");
    let aud = s.token("aud", "auditor");
    wait_indexed(&s, &aud, "zebracorn", "s-deploy");

    // Sign in: a wrong password first.
    b.goto(&format!("{}/", s.url));
    b.wait_js("the sign-in page", "location.pathname === '/login'", 10);
    b.fill("#user", "lead");
    b.fill("#password", "wrong password");
    b.click("#signin");
    assert!(b.text("#login-error").contains("wrong user name or password"));
    sign_in(&b, &s, "lead", "correct horse");

    // The list: newest first, both sessions.
    let ids =
        b.js("return Array.from(document.querySelectorAll('#sessions tbody tr')).map(r => r.dataset.id);");
    assert_eq!(ids, json!(["s-deploy", "s-old"]));
    b.screenshot("list");
    assert_no_csp_violation(&b);

    // Filter by command.
    b.fill("#command", "kubectl");
    b.click("#apply");
    b.wait_js("the filtered list", "location.search.includes('command=kubectl')", 10);
    let ids =
        b.js("return Array.from(document.querySelectorAll('#sessions tbody tr')).map(r => r.dataset.id);");
    assert_eq!(ids, json!(["s-old"]));

    // Search the output and open the match: the player opens at it.
    b.goto(&format!("{}/", s.url));
    b.fill("#q", "zebracorn");
    b.click("#apply");
    b.wait_js("search results", "location.search.includes('q=zebracorn')", 10);
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('#sessions tbody tr')).map(r => r.dataset.id);"),
        json!(["s-deploy"])
    );
    // The hit shows when and where the output matched, the word marked, and links to that moment.
    assert_eq!(b.text("#sessions tbody tr td.command small.match mark"), "zebracorn");
    assert!(b.text("#sessions tbody tr td.command small.match").starts_with("at 0:12: "));
    let href = b.js("return document.querySelector('#sessions tbody tr a.open').getAttribute('href');");
    assert_eq!(href, json!("/sessions/s-deploy?t=12.000&q=zebracorn"));
    b.screenshot("list-search");
    b.click("#sessions tbody tr a.open");
    b.wait_js("the session page", "location.pathname === '/sessions/s-deploy'", 10);
    let m = b.wait_js("the match panel", "document.querySelector('#match').dataset.time", 15);
    assert_eq!(m, json!("12.000"));
    assert!(b.text("#match").contains("zebracorn"));
    b.wait_js("the player at the match", "window.ddcotermPlayer", 10);
    let t = b.player_time();
    assert!((11.9..=12.5).contains(&t), "opened at {t}, the match is at 12");
    b.wait_js(
        "the match on the screen",
        "document.getElementById('player').innerText.includes('step 12 zebracorn reached')",
        10,
    );
    assert!(!b
        .js("return document.getElementById('player').innerText;")
        .as_str()
        .unwrap()
        .contains("step 13"));
    assert_eq!(b.text("#m-rule"), "prod-change");
    assert_eq!(b.text("#m-approval"), "CASE-42");

    // Seek by clicking a command in the side list.
    b.click("#timeline li:nth-child(3) button");
    std::thread::sleep(Duration::from_millis(300));
    let t = b.player_time();
    assert!((19.9..=20.5).contains(&t), "the third command starts at 20 s, the player is at {t}");
    b.click("#timeline li:nth-child(1) button");
    std::thread::sleep(Duration::from_millis(300));
    let t = b.player_time();
    assert!((1.9..=2.5).contains(&t), "the first command starts at 2 s, the player is at {t}");

    // Play at 4x: a second of wall time moves the player well past what 1x would.
    b.js("const s = document.getElementById('speed'); s.value = '4'; s.dispatchEvent(new Event('change'));");
    b.wait_js("the player at 4x", "window.ddcotermPlayer && true", 5);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = b.player_time();
    assert!((1.9..=2.5).contains(&t0), "the speed change kept the position: {t0}");
    b.click(".ap-playback-button");
    std::thread::sleep(Duration::from_millis(1500));
    let t1 = b.player_time();
    assert!(t1 - t0 > 2.5, "at 4x, 1.5 s of wall time played only {} s", t1 - t0);
    b.screenshot("player");
    assert_no_csp_violation(&b);

    // Keyboard: space pauses, the right arrow seeks 5 s forward.
    b.js("document.querySelector('.ap-wrapper').focus();");
    b.keys(" ");
    std::thread::sleep(Duration::from_millis(300));
    let paused = b.player_time();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(b.player_time(), paused, "space did not pause the player");
    b.keys("\u{E014}");
    std::thread::sleep(Duration::from_millis(300));
    let t = b.player_time();
    assert!((t - paused - 5.0).abs() < 0.6, "the right arrow moved the player from {paused} to {t}");

    // Download: the link is an attachment whose bytes are the uploaded cast.
    assert_eq!(b.js("return document.getElementById('download').hasAttribute('download');"), json!(true));
    let got = b.js_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.getElementById('download').href).then(r => r.arrayBuffer()).then(a => done(Array.from(new Uint8Array(a))));",
    );
    let got: Vec<u8> = serde_json::from_value(got).unwrap();
    assert_eq!(got, cast);

    // Narrow (phone-width) window: nothing wider than the screen on the list.
    b.goto(&format!("{}/", s.url));
    b.resize(390, 844);
    std::thread::sleep(Duration::from_millis(300));
    let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(overflow.as_i64().unwrap_or(99) <= 1, "the list overflows a phone-width window by {overflow}px");
    b.screenshot("list-narrow");
    b.resize(1280, 800);

    // Sign out: back to the sign-in page, and pages need signing in again.
    b.click("#signout");
    b.wait_js("the sign-in page", "location.pathname === '/login'", 10);
    b.goto(&format!("{}/sessions/s-deploy", s.url));
    b.wait_js("sent to sign in", "location.pathname === '/login'", 10);
}

#[test]
fn live_follow_list_updates_and_viewer_scope() {
    let Some(b) = Browser::start("live follow") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    let up = Upload { s: &s, host: &host };
    up.session("b1", json!({"user": "bob", "command": "secret stuff"}), &[out(0.5, "bob's\r\n")], false);
    up.session(
        "c1",
        json!({"user": "carol", "command": "approved by alice", "approver": "Alice@Example.com",
               "approval": "COTERM-7", "tags": ["approval_case:COTERM-7", "approved_by:Alice@Example.com"]}),
        &[out(0.5, "carol-output\r\n")],
        false,
    );
    let create = up.create("l1", json!({"user": "alice", "command": "tail -f /var/log/syslog"}));
    let header = b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1767225600}\n".to_vec();
    up.chunk("l1", 0, &header, &create);
    let first = out(0.5, "first-line\r\n");
    up.chunk("l1", 1, first.as_bytes(), &header);
    add_user(&s, "alice", "viewer", "correct horse");
    // The approver grant matches the e-mail the case names her by (in another case).
    assert!(s.cli(&["user", "email", "alice", "alice@example.com"]).status.success());

    b.goto(&format!("{}/sessions/l1", s.url));
    sign_in(&b, &s, "alice", "correct horse");
    b.wait_js("back on the session", "location.pathname === '/sessions/l1'", 10);
    b.wait_js("the current screen", "document.getElementById('player').innerText.includes('first-line')", 15);
    // New output while the page is open appears in the player.
    let second = out(1.5, "second-line from the host\r\n");
    up.chunk("l1", 2, second.as_bytes(), first.as_bytes());
    b.wait_js(
        "new output",
        "document.getElementById('player').innerText.includes('second-line from the host')",
        15,
    );
    b.screenshot("live");
    assert_no_csp_violation(&b);

    // The list keeps itself current: a new session appears, an ended one stops being live.
    b.goto(&format!("{}/", s.url));
    assert_eq!(b.js("return document.querySelector('tr[data-id=l1]').dataset.state;"), json!("live"));
    let ids =
        b.js("return Array.from(document.querySelectorAll('#sessions tbody tr')).map(r => r.dataset.id);");
    assert_eq!(ids, json!(["l1"]), "a viewer lists only their own sessions");
    up.session(
        "l2",
        json!({"user": "alice", "command": "htop", "started_at": "2026-01-03T00:00:00Z"}),
        &[out(0.2, "l2-running")],
        true,
    );
    b.wait_js("the new live session", "document.querySelector('tr[data-id=l2]')", 15);
    assert_eq!(s.end(&host, "l1", 2).status(), 200);
    b.wait_js(
        "l1 no longer live",
        "document.querySelector('tr[data-id=l1]').dataset.state === 'complete'",
        15,
    );

    // Another user's session, by URL: not found, and nothing of it shown.
    b.goto(&format!("{}/sessions/b1", s.url));
    let body = b.body();
    assert!(body.contains("no session b1"), "{body}");
    assert!(!body.contains("secret stuff"));
    // The approver's grant: alice approved carol's command, so she may open (and play) that session, and the
    // page says why.
    b.goto(&format!("{}/sessions/c1", s.url));
    assert_eq!(b.text("#title-command"), "approved by alice");
    assert_eq!(b.text("#m-approver"), "Alice@Example.com");
    assert_eq!(b.text("#m-approval"), "COTERM-7");
    assert!(b.text("#m-visible-to").contains("approver Alice@Example.com"), "{}", b.text("#m-visible-to"));
    assert_eq!(b.text("#m-your-grant"), "you: approver");
    b.wait_js("the player", "window.ddcotermPlayer", 10);
    b.click(".ap-playback-button");
    b.wait_js("carol's output", "document.getElementById('player').innerText.includes('carol-output')", 15);

    // Signing out ends the live streams opened with that login, even in a page that stays open: follow l2,
    // then sign out from the page (its own sign-out form's token, a same-origin POST).
    b.goto(&format!("{}/sessions/l2", s.url));
    b.wait_js("l2 followed", "document.getElementById('player').innerText.includes('l2-running')", 15);
    assert!(!s.log().contains("live follow ended"), "no stream ended yet");
    b.js_async(
        "const done = arguments[arguments.length - 1];
         const csrf = document.querySelector('input[name=csrf]').value;
         fetch('/logout', {method: 'POST', body: new URLSearchParams({csrf}), credentials: 'same-origin'})
           .then(r => done(r.status));",
    );
    s.wait_for("the live stream to end at sign-out", || {
        s.log().contains("live follow ended: its login was signed out")
    });
    b.goto(&format!("{}/", s.url));
    b.wait_js("sent to sign in", "location.pathname === '/login'", 10);
}

#[test]
fn the_xss_corpus_never_runs_script() {
    let Some(b) = Browser::start("xss corpus") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    let html = r#"<script>window.__xss='meta'</script><img src=x onerror="window.__xss='img'"><svg onload="window.__xss='svg'">"#;
    let corpus = [
        "<script>window.__xss='script'</script>\r\n",
        "<img src=x onerror=\"window.__xss='onerror'\">\r\n",
        "\x1b]8;;javascript:window.__xss='osc8'\x1b\\click me\x1b]8;;\x1b\\\r\n",
        "\x1b]0;PWNED title 0\x07\x1b]2;PWNED title 2\x1b\\\r\n",
        "\x1b]52;c;ZWNobyBwd25lZA==\x07\r\n",
        "\" onmouseover=\"window.__xss='attr'\" x=\"\r\n",
        "</div><script>window.__xss='close'</script>visible-end\r\n",
    ];
    let chunks: Vec<String> = corpus.iter().enumerate().map(|(i, t)| out(0.5 + i as f64, t)).collect();
    Upload { s: &s, host: &host }.session(
        "xss",
        json!({"user": html, "command": html, "rule": html, "approval": html, "tags": [html],
               "ssh": {"client": html, "fingerprint": html}, "started_at": "2026-01-01T00:00:00Z"}),
        &chunks,
        false,
    );
    Upload { s: &s, host: &host }
        .events("xss", json!([{"command": html, "started_at": "2026-01-01T00:00:01Z", "cwd": html}]));
    add_user(&s, "aud", "auditor", "correct horse");
    let aud = s.token("aud", "auditor");
    wait_indexed(&s, &aud, "script", "xss");

    b.goto(&format!("{}/login", s.url));
    sign_in(&b, &s, "aud", "correct horse");
    for path in ["/", "/?q=script", "/sessions/xss", "/sessions/xss?q=click"] {
        b.goto(&format!("{}{path}", s.url));
        std::thread::sleep(Duration::from_millis(500));
        if path.starts_with("/sessions") {
            b.wait_js("the player", "window.ddcotermPlayer", 10);
            b.js_async("const done = arguments[arguments.length - 1]; window.ddcotermPlayer.seek(7.5).then(() => done(1));");
            b.click(".ap-playback-button");
            b.wait_js(
                "the whole corpus on screen",
                "document.getElementById('player').innerText.includes('visible-end')",
                15,
            );
            // Whatever the terminal rendered, clicking it (an OSC 8 link, if one were made) runs nothing.
            b.click("#player");
            let links = b.js("return Array.from(document.querySelectorAll('a')).filter(a => !a.href.startsWith(location.origin)).map(a => a.href);");
            assert_eq!(links, json!([]), "{path}: a link off this server");
            assert_eq!(
                b.js("return document.title;"),
                json!("Session · ddcoterm"),
                "{path}: a title sequence changed the title"
            );
        }
        assert_eq!(b.js("return typeof window.__xss;"), json!("undefined"), "{path}: script ran");
        assert!(b.no_dialog(), "{path}: a dialog opened");
        assert!(b.body().contains("<script>"), "{path}: the payload is shown as text");
    }
    assert_no_csp_violation(&b);
    // The policy is enforced and the check above sees violations: an inline script injected into the page
    // is refused and logged.
    b.js("const s = document.createElement('script'); s.textContent = 'window.__xss = 9'; document.body.appendChild(s);");
    assert_eq!(b.js("return typeof window.__xss;"), json!("undefined"), "the CSP let an inline script run");
    let log = b.console();
    assert!(log.iter().any(|m| m.contains("Content Security Policy")), "no violation logged: {log:#?}");
}

/// The player's screen as text, one string per row, trailing blanks trimmed (the server's `/screen` form).
const PLAYER_LINES: &str = "Array.from(document.querySelectorAll('#player .ap-line')).map(l => l.textContent.replace(/\\u00a0/g, ' ').trimEnd())";

/// The server's own rendering of `id` at `at` seconds.
fn server_screen(s: &Server, token: &str, id: &str, at: f64) -> serde_json::Value {
    let (status, v) = s.get_json(token, &format!("/api/v1/sessions/{id}/screen?at={at}"));
    assert_eq!(status, 200, "{v}");
    v["lines"].clone()
}

/// Waits up to 10 s for the player to show `lines`; panics with both screens otherwise.
fn wait_screen(b: &Browser, lines: &serde_json::Value, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let got = b.js(&format!("return {PLAYER_LINES};"));
        if &got == lines {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the player shows\n{got:#}\nthe server renders\n{lines:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seeks the player to `t` (waiting for the seek to finish) and returns where the page says it is.
fn seek(b: &Browser, t: f64) -> serde_json::Value {
    b.js_async(&format!(
        "const done = arguments[arguments.length - 1];
         window.ddcotermPlayer.seek({t}).then(() => done(document.getElementById('player').dataset.shown));"
    ))
}

#[test]
fn a_long_recording_plays_in_windows_from_stored_screens() {
    let Some(b) = Browser::start("long recording") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    let aud = s.token("aud", "auditor");
    // An hour, one event a second, ~1.5 MB: over the page's windowed threshold (1 MiB), with sparse output.
    // Each event prints its number over several rows, in colour, so every moment's screen is its own.
    let mut chunks = vec![String::new()];
    for i in 0..3600u32 {
        let text = if i == 0 {
            "long recording start\r\n".to_string()
        } else {
            format!("\x1b[3{}mevent {i}\x1b[0m {}\r\n", i % 7 + 1, format!("{i:05}.").repeat(60))
        };
        let last = chunks.last_mut().unwrap();
        last.push_str(&out(i as f64, &text));
        if last.len() >= 64 << 10 {
            chunks.push(String::new());
        }
    }
    chunks.retain(|c| !c.is_empty());
    let cast = Upload { s: &s, host: &host }.session(
        "long",
        json!({"user": "bob", "command": "tail -f big.log", "started_at": "2026-01-01T00:00:00Z"}),
        &chunks,
        false,
    );
    assert!(cast.len() > 1 << 20, "the recording is {} bytes: not windowed", cast.len());
    Upload { s: &s, host: &host }.events(
        "long",
        json!([
            {"command": "grep ERROR big.log", "started_at": "2026-01-01T00:10:00Z", "exit_code": 0},
            {"command": "less big.log", "started_at": "2026-01-01T00:40:00Z", "exit_code": 0},
        ]),
    );
    add_user(&s, "lead", "auditor", "correct horse");

    b.goto(&format!("{}/sessions/long", s.url));
    sign_in(&b, &s, "lead", "correct horse");
    b.wait_js("the session page", "location.pathname === '/sessions/long'", 10);
    assert_eq!(
        b.js("return document.getElementById('player').dataset.windows;"),
        json!("/api/v1/sessions/long")
    );

    // The first screen: the window at 0, as the server renders it.
    b.wait_js("the first screen", "document.getElementById('player').dataset.shown === '0'", 15);
    wait_screen(&b, &server_screen(&s, &aud, "long", 0.0), "the first screen");
    assert!(b.body().contains("long recording start"));
    // The seek bar is the whole hour.
    let d = b.js_async(
        "const done = arguments[arguments.length - 1]; window.ddcotermPlayer.getDuration().then(done);",
    );
    assert_eq!(d.as_f64(), Some(3599.0), "duration");

    // Ten seeks anywhere: each shows the screen the server renders for that moment.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for k in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = (x % 3_590_000) as f64 / 1000.0;
        assert_eq!(seek(&b, t), json!(t.to_string()), "seek {k} to {t}");
        wait_screen(&b, &server_screen(&s, &aud, "long", t), &format!("seek {k} to {t}"));
        let at = b.player_time();
        assert!((at - t).abs() < 0.01, "seek {k}: the player is at {at}, not {t}");
    }

    // The whole cast was never fetched: only windows.
    let fetched = b.js("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname);");
    let paths: Vec<&str> = fetched.as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert!(!paths.iter().any(|p| p.ends_with("/recording") || p.ends_with("/cast")), "{paths:?}");
    // (A seek inside the window held needs no request, so not necessarily 11.)
    assert!(paths.iter().filter(|p| p.ends_with("/window")).count() >= 6, "{paths:?}");

    // A marker on the seek bar jumps to its command (the second one, 40:00), the side list too (10:00).
    assert_eq!(b.js("return document.querySelectorAll('.ap-marker-container').length;"), json!(2));
    b.js("document.querySelectorAll('.ap-marker-container')[1].click();");
    b.wait_js("the marker's moment", "document.getElementById('player').dataset.shown === '2400'", 10);
    wait_screen(&b, &server_screen(&s, &aud, "long", 2400.0), "the second marker");
    b.click("#timeline li:nth-child(1) button");
    b.wait_js("the command's moment", "document.getElementById('player').dataset.shown === '600'", 10);
    wait_screen(&b, &server_screen(&s, &aud, "long", 600.0), "the first command");

    // Play at 8x across window boundaries (windows of 10 and 30 s): the screen keeps up, then matches the
    // server's at the moment it paused.
    b.js("const s = document.getElementById('speed'); s.value = '8'; s.dispatchEvent(new Event('change'));");
    b.wait_js("the player at 8x", "document.getElementById('player').dataset.shown === '600'", 10);
    b.click(".ap-playback-button");
    std::thread::sleep(Duration::from_millis(6000));
    b.click(".ap-playback-button");
    std::thread::sleep(Duration::from_millis(200));
    let t = b.player_time();
    assert!(t > 640.0, "at 8x, 6 s of wall time played only {} s", t - 600.0);
    wait_screen(&b, &server_screen(&s, &aud, "long", t), &format!("paused at {t} after playing"));
    b.screenshot("player-long");

    // Keyboard: the right arrow seeks 5 s, fetched if need be, and the screen is right at once.
    b.js("document.querySelector('.ap-wrapper').focus();");
    b.keys("\u{E014}");
    b.wait_js(
        "the arrow's seek",
        &format!(
            "Math.abs(parseFloat(document.getElementById('player').dataset.shown) - {}) < 0.01",
            t + 5.0
        ),
        10,
    );
    wait_screen(&b, &server_screen(&s, &aud, "long", t + 5.0), "the right arrow");

    // `#t=` opens at that moment.
    b.goto(&format!("{}/", s.url));
    b.goto(&format!("{}/sessions/long#t=1:00:00", s.url));
    b.wait_js("opened at 1:00:00", "document.getElementById('player').dataset.shown === '3599'", 15);
    wait_screen(&b, &server_screen(&s, &aud, "long", 3600.0), "#t=1:00:00");

    // Usable at 1280x800 and at phone width: nothing overflows, the controls are on screen.
    for (w, h) in [(1280, 800), (390, 844)] {
        b.resize(w, h);
        std::thread::sleep(Duration::from_millis(300));
        let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;");
        assert!(overflow.as_i64().unwrap_or(99) <= 1, "the session page overflows {w}px by {overflow}px");
        let off = b.js("return ['.ap-playback-button', '.ap-progressbar', '#speed', '#idle', '#download']
               .filter(c => { const r = document.querySelector(c).getBoundingClientRect();
                              return !(r.width > 0 && r.left >= 0 && r.right <= window.innerWidth + 1); });");
        assert_eq!(off, json!([]), "controls off screen at {w}x{h}");
    }
    b.screenshot("player-long-narrow");
    b.resize(1280, 800);
    assert_no_csp_violation(&b);
}

#[test]
fn a_search_opens_a_long_recording_at_the_match() {
    let Some(b) = Browser::start("search into a long recording") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    let aud = s.token("aud", "auditor");
    // ~1.9 MB, one event a second: windowed in the page, indexed in several passes (1 MiB each) and many
    // index rows (64 KiB each). The word searched for is printed once, at 40:17, far into the recording.
    let mut chunks = vec![String::new()];
    for i in 0..3000u32 {
        let text = if i == 2417 {
            format!("event {i} the quuxwombat appeared {}\r\n", format!("{i:05}.").repeat(50))
        } else {
            format!("event {i} {}\r\n", format!("{i:05}.").repeat(100))
        };
        let last = chunks.last_mut().unwrap();
        last.push_str(&out(i as f64, &text));
        if last.len() >= 64 << 10 {
            chunks.push(String::new());
        }
    }
    chunks.retain(|c| !c.is_empty());
    let cast = Upload { s: &s, host: &host }.session(
        "long",
        json!({"user": "bob", "command": "tail -f big.log", "started_at": "2026-01-01T00:00:00Z"}),
        &chunks,
        false,
    );
    assert!(cast.len() > 3 << 19, "the recording is {} bytes", cast.len());
    Upload { s: &s, host: &host }.session(
        "short",
        json!({"user": "bob", "command": "cat notes", "started_at": "2026-01-01T01:00:00Z"}),
        &[out(0.5, "nothing here\r\n")],
        false,
    );
    add_user(&s, "lead", "auditor", "correct horse");
    wait_indexed(&s, &aud, "quuxwombat", "long");
    let (_, v) = s.get_json(&aud, "/api/v1/sessions?q=quuxwombat");
    assert_eq!(v["sessions"][0]["search_match"]["t"], 2417.0, "{v}");

    b.goto(&format!("{}/?q=quuxwombat", s.url));
    sign_in(&b, &s, "lead", "correct horse");
    b.wait_js(
        "the search results",
        "location.search.includes('q=quuxwombat') && document.querySelector('#sessions tbody tr')",
        10,
    );
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('#sessions tbody tr')).map(r => r.dataset.id);"),
        json!(["long"])
    );
    assert!(b.text("#sessions tbody tr td.command small.match").starts_with("at 40:17: "));
    b.click("#sessions tbody tr a.open");
    b.wait_js("the session page", "location.pathname === '/sessions/long'", 10);
    assert_eq!(
        b.js("return document.getElementById('player').dataset.windows;"),
        json!("/api/v1/sessions/long")
    );
    b.wait_js(
        "opened at the match",
        "Math.abs(parseFloat(document.getElementById('player').dataset.shown) - 2417) < 0.01",
        15,
    );
    wait_screen(&b, &server_screen(&s, &aud, "long", 2417.0), "the match's moment");
    assert!(b.body().contains("event 2417 the quuxwombat appeared"));
    let t = b.player_time();
    assert!((t - 2417.0).abs() < 0.01, "the player is at {t}, the match at 2417");
    assert_eq!(b.text("#match mark"), "quuxwombat");
    b.screenshot("player-long-search");

    // The same from the session's link with the search only (the page asks the index itself).
    b.goto(&format!("{}/", s.url));
    b.goto(&format!("{}/sessions/long?q=quuxwombat", s.url));
    b.wait_js(
        "opened at the match",
        "Math.abs(parseFloat(document.getElementById('player').dataset.shown) - 2417) < 0.01",
        15,
    );
    assert!(b.body().contains("event 2417 the quuxwombat appeared"));
    assert_no_csp_violation(&b);
}

/// No element wider than the window, and every form control on screen.
fn assert_fits(b: &Browser, what: &str) {
    let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(overflow.as_i64().unwrap_or(99) <= 1, "{what} overflows by {overflow}px");
    let off = b.js("return Array.from(document.querySelectorAll('main input:not([type=hidden]), main select, main button'))
           .filter(e => { const r = e.getBoundingClientRect(); return !(r.width > 0 && r.left >= 0 && r.right <= window.innerWidth + 1); })
           .map(e => e.id || e.name || e.className);");
    assert_eq!(off, json!([]), "{what}: controls off screen");
}

#[test]
fn admins_manage_tokens_and_users_and_read_the_audit_in_the_ui() {
    let Some(b) = Browser::start("admin pages") else { return };
    let s = Server::start();
    let host = s.token("web-1", "host");
    Upload { s: &s, host: &host }.session(
        "a1",
        json!({"user": "bob", "command": "uptime"}),
        &[out(0.5, "up\r\n")],
        false,
    );
    add_user(&s, "root", "admin", "correct horse");
    add_user(&s, "lead", "auditor", "battery staple");
    let api = |token: &str| {
        web_support::http()
            .get(format!("{}/api/v1/sessions", s.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };

    // A non-admin gets 403 on every admin page.
    b.goto(&format!("{}/admin/tokens", s.url));
    sign_in(&b, &s, "lead", "battery staple");
    for page in ["/admin", "/admin/tokens", "/admin/users", "/admin/audit"] {
        b.goto(&format!("{}{page}", s.url));
        assert!(b.body().contains("admins only"), "{page} as an auditor: {}", b.body());
    }
    b.click("#signout");
    b.wait_js("signed out", "location.pathname === '/login'", 10);

    for (w, h) in [(1280, 800), (390, 844)] {
        b.resize(w, h);
        let tag = format!("{w}x{h}");
        let (tname, uname) = (format!("ci-{w}"), format!("newbie{w}"));
        b.goto(&format!("{}/admin/tokens", s.url));
        if b.url().contains("/login") {
            sign_in(&b, &s, "root", "correct horse");
            b.goto(&format!("{}/admin/tokens", s.url));
        }
        assert_fits(&b, &format!("tokens at {tag}"));

        // Create an auditor token: shown once, works against the API, never shown again nor logged.
        b.fill("#token-name", &tname);
        b.js("document.getElementById('token-role').value = 'auditor';");
        b.click("#create-token");
        let token = b.wait_js(
            "the new token",
            "document.getElementById('new-token') && document.getElementById('new-token').textContent",
            10,
        );
        let token = token.as_str().unwrap().to_string();
        assert!(token.starts_with("ddcts_"), "{token}");
        b.screenshot(&format!("admin-token-{tag}"));
        assert_fits(&b, &format!("the created token at {tag}"));
        assert_eq!(api(&token), 200, "the created token reads the API");
        b.goto(&format!("{}/admin/tokens", s.url));
        assert!(!b.js("return document.documentElement.outerHTML;").as_str().unwrap().contains(&token));
        assert!(b.text(&format!("#tokens tr[data-name='{tname}'] td.role")).contains("auditor"));
        assert!(!s.log().contains(&token), "the token is in the server's log");

        // Revoke it: 401 from then on.
        b.click(&format!("#tokens tr[data-name='{tname}'] button.revoke"));
        b.wait_js("revoked", &format!("document.querySelector(\"#tokens tr[data-name='{tname}'] td.status\").textContent.startsWith('revoked')"), 10);
        assert_eq!(api(&token), 401, "a revoked token");

        // Add a user, who can then sign in; reset their password; remove them.
        b.goto(&format!("{}/admin/users", s.url));
        assert_fits(&b, &format!("users at {tag}"));
        b.fill("#new-name", &uname);
        b.js("document.getElementById('new-role').value = 'auditor';");
        b.fill("#new-password", "first password");
        b.click("#add");
        b.wait_js(
            "the new user",
            &format!("document.querySelector(\"#users tr[data-name='{uname}']\") !== null"),
            10,
        );
        assert_eq!(b.text(&format!("#users tr[data-name='{uname}'] td.role")), "auditor");
        b.screenshot(&format!("admin-users-{tag}"));
        let cookie = web_support::sign_in(&s, &uname, "first password");
        assert!(!cookie.is_empty());
        b.fill(&format!("#users tr[data-name='{uname}'] input.new-password"), "second password");
        b.js("window.beforeReset = true;");
        b.click(&format!("#users tr[data-name='{uname}'] button.reset"));
        b.wait_js("back on users", "!window.beforeReset && location.pathname === '/admin/users'", 10);
        let old = web_support::http()
            .post(format!("{}/login", s.url))
            .header("origin", &s.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(web_support::form(&[("user", &uname), ("password", "first password"), ("next", "/")]))
            .send()
            .unwrap();
        assert_eq!(old.status(), 401, "the old password after a reset");
        web_support::sign_in(&s, &uname, "second password");
        b.click(&format!("#users tr[data-name='{uname}'] button.remove"));
        b.wait_js(
            "removed",
            &format!("document.querySelector(\"#users tr[data-name='{uname}']\") === null"),
            10,
        );

        // The audit: every action above, filtered by who did it and by what it was done to.
        b.goto(&format!("{}/admin/audit", s.url));
        assert_fits(&b, &format!("audit at {tag}"));
        b.fill("#f-who", "root");
        b.fill("#f-session", &uname);
        b.click("#f-apply");
        b.wait_js("the filtered audit", "location.search.includes('who=root')", 10);
        let kinds = b.js(
            "return Array.from(document.querySelectorAll('#audit tbody td.kind')).map(t => t.textContent);",
        );
        assert_eq!(
            kinds,
            json!(["admin: user removed", "admin: password reset", "admin: user added (auditor)"]),
            "at {tag}"
        );
        b.fill("#f-session", &tname);
        b.click("#f-apply");
        b.wait_js("the token's audit", &format!("location.search.includes('session={tname}')"), 10);
        let kinds = b.js(
            "return Array.from(document.querySelectorAll('#audit tbody td.kind')).map(t => t.textContent);",
        );
        assert_eq!(kinds, json!(["admin: token revoked", "admin: token created (auditor)"]), "at {tag}");
        b.screenshot(&format!("admin-audit-{tag}"));
    }
    b.resize(1280, 800);
    assert_no_csp_violation(&b);
}
