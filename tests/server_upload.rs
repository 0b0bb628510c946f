//! The client against the REAL session server (DESIGN.md §12): a recorded command and an interactive shell
//! appear on the server, the stored cast is the local `.cast` byte for byte, the printed link is the
//! server's, the hash chain verifies; a dead server costs the command nothing and `spool flush` delivers
//! later; a revoked token keeps everything spooled (and doctor says so); a permanent refusal is a dead letter
//! that blocks nothing.

mod harness;
mod support;

use expectrl::Session;
use serial_test::serial;
use std::time::{Duration, Instant};
use support::server::Server;
use support::{Fake, Home, API_KEY};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one `.cast` of a home, and its session id.
fn only_cast(home: &Home) -> (String, Vec<u8>) {
    let casts: Vec<_> = std::fs::read_dir(home.home().join("recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cast"))
        .collect();
    assert_eq!(casts.len(), 1, "{casts:?}");
    let id = casts[0].file_stem().unwrap().to_string_lossy().into_owned();
    (id, std::fs::read(&casts[0]).unwrap())
}

fn spooled(home: &Home) -> Vec<String> {
    let spool = ddcoterm::spool::Spool::open(home.spool(), 0).unwrap();
    spool.entries().unwrap().iter().map(|e| spool.header(e).unwrap().kind).collect()
}

fn status_json(home: &Home) -> serde_json::Value {
    let out = home.cmd().args(["spool", "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[serial]
fn a_recorded_command_is_on_the_server_byte_for_byte_with_its_link_chain_and_events() {
    let server = Server::start();
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, &format!("spool:\n  flush_timeout: 20s\n{}", server.client_config()));
    // About 1.3 MB of output: several chunks after the header.
    let out = home.cmd().args(["--", "sh", "-c", "echo hello from ddcoterm; seq 1 200000"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (id, cast) = only_cast(&home);
    let link = format!("{}/sessions/{id}", server.url);
    let err = text(&out.stderr);
    assert_eq!(err.matches(&link).count(), 2, "the link at the start and at the end: {err}");

    let s = server.session(&id).expect("the session is on the server");
    assert_eq!(s["state"], "complete", "{s}");
    assert_eq!(s["url"], link.as_str());
    assert_eq!(s["host"], "host1", "the server stamps the token's host");
    assert!(s["last_seq"].as_u64().unwrap() >= 2, "header + several chunks: {s}");
    assert!(server.cast(&id) == cast, "the server's cast is the local .cast byte for byte");
    let events = s["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{s}");
    assert!(events[0]["command"].as_str().unwrap().contains("hello from ddcoterm"), "{s}");
    assert_eq!(events[0]["exit_code"], 0);
    let v = server.verify(&id);
    assert!(v.status.success(), "verify: {}{}", text(&v.stdout), text(&v.stderr));

    // Datadog: the process event and one session event with the link; never a recording.
    let events: Vec<_> = fake.accepted_path_prefix("/api/v1/events").iter().map(|r| r.json()).collect();
    let session: Vec<_> = events.iter().filter(|e| e["source_type_name"] == "coterm_session").collect();
    assert_eq!(session.len(), 1, "{events:?}");
    assert!(session[0]["text"].as_str().unwrap().contains(&link), "{}", session[0]);
    assert!(fake.requests().iter().all(|r| !r.path.contains("unstable") && !r.path.contains("/chunks/")));
    assert!(spooled(&home).is_empty(), "everything delivered: {:?}", spooled(&home));
}

#[test]
#[serial]
fn an_interactive_pty_shell_is_on_the_server() {
    let server = Server::start();
    let home = Home::new();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 20s\nrecording:\n  shell: /bin/sh\n{}", server.client_config()),
    )
    .unwrap();
    let mut c = home.cmd();
    c.current_dir(home.root()).env("TERM", "xterm").env_remove("DDCOTERM_SESSION");
    let mut s = Session::spawn(c).expect("spawn ddcoterm on a PTY");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s.expect("recording session").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.send("echo pty-$((6*7))\r").unwrap();
    s.expect("pty-42").unwrap();
    s.send("exit\r").unwrap();
    s.expect("ended (exit 0)").unwrap();
    let (id, cast) = only_cast(&home);
    server.wait_for("the session to complete", || {
        server.session(&id).is_some_and(|s| s["state"] == "complete")
    });
    let stored = server.cast(&id);
    assert!(stored == cast, "the server's cast is the local .cast");
    assert!(text(&stored).contains("pty-42"));
    assert!(server.verify(&id).status.success());
}

#[test]
#[serial]
fn server_down_the_command_exits_at_once_and_spool_flush_delivers_later() {
    let home = Home::new();
    let down = support::closed_port_uri();
    let token = home.root().join("token");
    std::fs::write(&token, "not-yet\n").unwrap();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 5s\nserver:\n  url: {down}\n  token_file: {}\n", token.display()),
    )
    .unwrap();
    let t = Instant::now();
    let out = home.cmd().args(["--", "sh", "-c", "echo while the server is down"]).output().unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < Duration::from_millis(2500), "a refused connection is not waited for: {took:?}");
    let err = text(&out.stderr);
    assert!(err.contains("kept in the spool") || err.contains("not sent yet"), "{err}");
    let kinds = spooled(&home);
    for k in ["session.create", "session.chunk", "session.events", "session.end"] {
        assert!(kinds.iter().any(|x| x == k), "{k} spooled: {kinds:?}");
    }
    let (id, cast) = only_cast(&home);
    let st = status_json(&home);
    assert_eq!(st["count"], kinds.len());
    assert_eq!(st["permanent"], 0);

    // The server comes up: `spool flush` delivers, and says what `spool status` then shows.
    let server = Server::start();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 5s\n{}", server.client_config()),
    )
    .unwrap();
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("delivered {} record(s); 0 refused", kinds.len())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(status_json(&home)["count"], 0);
    assert!(server.cast(&id) == cast);
    assert_eq!(server.session(&id).unwrap()["state"], "complete");
    assert!(server.verify(&id).status.success());
}

#[test]
#[serial]
fn a_server_too_slow_for_the_flush_timeout_is_left_to_the_background_flush() {
    let server = Server::start();
    let home = Home::new();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 1s\n{}", server.client_config()),
    )
    .unwrap();
    // Stopped, the server accepts connections but answers nothing: the command waits flush_timeout, no more.
    server.signal("STOP");
    let t = Instant::now();
    let out = home
        .cmd()
        .env("DDCOTERM_SPOOL__BACKGROUND_FLUSH", "true")
        .args(["--", "sh", "-c", "echo left to the background"])
        .output()
        .unwrap();
    let took = t.elapsed();
    server.signal("CONT");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(6), "the command waited {took:?} for a stuck server");
    let err = text(&out.stderr);
    assert!(err.contains("sending continues in the background"), "{err}");
    let (id, cast) = only_cast(&home);
    // The detached `spool flush --background` delivers once the server answers, then empties the spool.
    server.wait_for("the background flush to deliver the session", || {
        server.session(&id).is_some_and(|s| s["state"] == "complete")
    });
    assert!(server.cast(&id) == cast, "the server's cast is the local .cast");
    assert!(server.verify(&id).status.success());
    server.wait_for("the spool to empty", || spooled(&home).is_empty());
    server.wait_for("the background flush to exit", || {
        !ddcoterm::upload::flush::BackgroundLock::held(&home.spool())
    });
}

#[test]
#[serial]
fn a_revoked_token_keeps_the_recording_spooled_and_doctor_says_so() {
    let server = Server::start();
    let home = Home::new();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 5s\n{}", server.client_config()),
    )
    .unwrap();
    let out = server.cli(&["token", "revoke", "host1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = Instant::now();
    let out = home.cmd().args(["--", "sh", "-c", "echo revoked"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "a refused token is not waited for: {:?}",
        t.elapsed()
    );
    let (id, cast) = only_cast(&home);
    assert!(server.session(&id).is_none());
    let st = status_json(&home);
    assert!(st["count"].as_u64().unwrap() >= 4, "{st}");
    assert_eq!(st["permanent"], 0, "401 is not a dead letter: {st}");
    assert!(st["credentials_refused"].as_u64().unwrap() >= 1, "{st}");
    let status = home.cmd().args(["spool", "status"]).output().unwrap();
    assert!(text(&status.stdout).contains("credentials were refused"), "{}", text(&status.stdout));
    let doctor = home.cmd().arg("doctor").output().unwrap();
    let d = text(&doctor.stdout);
    assert!(d.contains("FAIL server token: refused (HTTP 401"), "{d}");
    assert!(!d.contains(&server.host_token) && !text(&status.stdout).contains(&server.host_token));

    // A new token in the file: the same records go through.
    let fresh = server.token("host1b", "host");
    std::fs::write(server.token_file(), format!("{fresh}\n")).unwrap();
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(server.cast(&id) == cast);
    let d = text(&home.cmd().arg("doctor").output().unwrap().stdout);
    assert!(d.contains("ok   server token: accepted"), "{d}");
}

#[test]
#[serial]
fn a_permanent_refusal_is_a_dead_letter_and_later_records_still_go() {
    let server = Server::start_with(&[("DDCOTERMD_LIMITS__MAX_CHUNK_BYTES", "4096")]);
    let home = Home::new();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 10s\n{}", server.client_config()),
    )
    .unwrap();
    // ~40 KB in one chunk: over the server's limit (413).
    let out = home.cmd().args(["--", "sh", "-c", "seq 1 8000"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = status_json(&home);
    let dead = st["dead_letters"].as_array().unwrap();
    assert!(!dead.is_empty(), "{st}");
    assert!(dead.iter().all(|d| d["kind"] == "session.chunk"), "{st}");
    assert!(
        dead.iter().any(|d| d["status"] == 413 && d["message"].as_str().unwrap().contains("413")),
        "{st}"
    );
    assert_eq!(st["count"], 0, "nothing waits behind the dead letter: {st}");
    let status = text(&home.cmd().args(["spool", "status"]).output().unwrap().stdout);
    assert!(status.contains("dead letter(s)") && status.contains("413"), "{status}");

    // A later small session is not held up.
    std::fs::remove_dir_all(home.home().join("recordings")).unwrap();
    let out = home.cmd().args(["--", "sh", "-c", "echo small"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (id, cast) = only_cast(&home);
    assert!(server.cast(&id) == cast);
    assert_eq!(server.session(&id).unwrap()["state"], "complete");
}

#[test]
#[serial]
fn without_a_server_the_recording_stays_local_and_the_end_line_says_where() {
    let home = Home::new();
    let out = home.cmd().args(["--", "sh", "-c", "echo local only"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (id, _) = only_cast(&home);
    let err = text(&out.stderr);
    let path = home.home().join("recordings").join(format!("{id}.cast"));
    assert!(err.contains(&format!("recording kept locally at {}", path.display())), "{err}");
    assert_eq!(err.matches("kept locally").count(), 1, "said once: {err}");
    assert!(!err.to_lowercase().contains("warn"), "no warning storm: {err}");
    assert!(spooled(&home).is_empty(), "no records for a destination that does not exist");
}

#[test]
#[serial]
fn an_unreadable_token_file_keeps_the_recording_spooled_until_it_is_fixed() {
    let server = Server::start();
    let home = Home::new();
    std::fs::remove_file(server.token_file()).unwrap();
    std::fs::write(home.home().join("config.yaml"), server.client_config()).unwrap();
    let out = home.cmd().args(["--", "sh", "-c", "echo no token yet"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("server.token_file: cannot read"), "the end line says why: {err}");
    let kinds = spooled(&home);
    assert!(kinds.iter().any(|k| k == "session.chunk"), "recorded, so queued for the server: {kinds:?}");
    let (id, cast) = only_cast(&home);

    std::fs::write(server.token_file(), format!("{}\n", server.host_token)).unwrap();
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(server.cast(&id) == cast);
}

#[test]
#[serial]
fn a_server_serving_tls_itself_gets_the_session_once_its_ca_is_trusted_and_nothing_before() {
    let server = Server::start_tls();
    let ca = server.ca.clone().unwrap();
    let home = Home::new();
    std::fs::write(
        home.home().join("config.yaml"),
        format!("spool:\n  flush_timeout: 5s\n{}", server.client_config()),
    )
    .unwrap();
    assert!(server.url.starts_with("https://localhost:"), "{}", server.url);

    // The system roots do not know the org's CA: the handshake fails, nothing is sent, all stays spooled.
    let out = home
        .cmd()
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["--", "sh", "-c", "echo over tls"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("certificate") || err.contains("not sent yet"), "the end line says why: {err}");
    let (id, cast) = only_cast(&home);
    assert!(spooled(&home).iter().any(|k| k == "session.chunk"), "{:?}", spooled(&home));
    assert!(server.session(&id).is_none(), "nothing reached the server through an untrusted handshake");

    // The org's CA installed (here through SSL_CERT_FILE): the spool delivers it, byte for byte.
    let out = home
        .cmd()
        .env_remove("SSL_CERT_DIR")
        .env("SSL_CERT_FILE", &ca)
        .args(["spool", "flush"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(spooled(&home).is_empty(), "{:?}", spooled(&home));
    assert!(server.cast(&id) == cast);
    assert_eq!(server.session(&id).unwrap()["state"], "complete");
    assert!(server.verify(&id).status.success());
}
