//! Command line and settings: config errors exit 78 naming key and file, unsupported backends are named,
//! retention deletes what is past `retention.days` except sessions on legal hold.

mod support;

use std::process::Command;

use support::{chunks, Server, BIN};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN).args(args).envs(env.iter().copied()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn configuration_errors_exit_78_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.yaml");
    std::fs::write(&file, "listen: 127.0.0.1:0\nretention:\n  dayz: 3\n").unwrap();
    let (code, err) = run(&["--config", file.to_str().unwrap(), "token", "list"], &[]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("dayz") && err.contains("server.yaml"), "{err}");

    std::fs::write(&file, "listen: [unclosed\n").unwrap();
    let (code, err) = run(&["--config", file.to_str().unwrap(), "token", "list"], &[]);
    assert_eq!(code, 78);
    assert!(err.contains("line 1"), "{err}");

    let (code, err) = run(&["token", "list"], &[("DDCOTERMD_LOG_FORMAT", "xml")]);
    assert_eq!(code, 78);
    assert!(err.contains("log_format"), "{err}");
    let (code, err) = run(&["--config", "/nonexistent.yaml", "token", "list"], &[]);
    assert_eq!(code, 78);
    assert!(err.contains("/nonexistent.yaml"), "{err}");
}

#[test]
fn unknown_backends_are_refused_by_name_and_passwords_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, err) =
        run(&["--data-dir", d, "--database-url", "mysql://u:secret@db/x", "token", "list"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("expected sqlite:") && !err.contains("secret"), "{err}");
    // A PostgreSQL that does not answer: named by host, not by password.
    let url = "postgres://u:secret@127.0.0.1:1/x";
    let (code, err) = run(&["--data-dir", d, "--database-url", url, "token", "list"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("127.0.0.1:1/x") && !err.contains("secret"), "{err}");
    let (code, err) =
        run(&["--data-dir", d, "serve", "--listen", "127.0.0.1:0", "--object-store", "ftp://b/p"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("object_store"), "{err}");
}

#[test]
fn retention_deletes_old_sessions_but_never_one_on_legal_hold() {
    let mut s = Server::start();
    let host = s.token("h", "host");
    let aud = s.token("a", "auditor");
    let c = chunks(1);
    for id in ["old1", "kept"] {
        assert_eq!(s.create(&host, id, "alice").status(), 201);
        assert_eq!(s.chunk(&host, id, 0, &c[0], None).status(), 201);
        assert_eq!(s.chunk(&host, id, 1, &c[1], Some(&c[0])).status(), 201);
    }
    assert_eq!(s.end(&host, "kept", 1).status(), 200);
    let out = s.cli(&["hold", "kept"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s.cli(&["hold", "nosuch"]).status.success());
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/kept").1["legal_hold"], true);
    // retention.days = 0: everything first seen before now is past retention.
    s.env.push(("DDCOTERMD_RETENTION__DAYS".into(), "0".into()));
    s.env.push(("DDCOTERMD_COMPLETER__INTERVAL".into(), "200ms".into()));
    s.restart();
    s.wait_for("old1 deleted", || s.get_json(&aud, "/api/v1/sessions/old1").0 == 404);
    assert_eq!(s.get_json(&aud, "/api/v1/sessions/kept").0, 200);
    assert_eq!(s.cast(&aud, "kept"), c.concat());
    let keys: Vec<String> = s.objects().into_iter().map(|o| o.0).collect();
    assert!(keys.iter().all(|k| !k.contains("old1")), "{keys:?}");
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[test]
fn public_url_goes_into_links_and_logs_can_be_json() {
    let s = Server::start_with(&[
        ("DDCOTERMD_PUBLIC_URL", "https://sessions.example.com/"),
        ("DDCOTERMD_LOG_FORMAT", "json"),
    ]);
    let host = s.token("h", "host");
    let r = s.create(&host, "p1", "alice");
    assert_eq!(r.json::<serde_json::Value>().unwrap()["url"], "https://sessions.example.com/sessions/p1");
    let log = s.log();
    let first = log.lines().next().expect("a log line");
    let v: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["fields"]["message"], "ddcoterm-server listening");
    assert!(!log.contains(&host), "tokens are never logged");
}

#[test]
fn healthcheck_exits_0_on_a_ready_server_and_1_with_the_reason_otherwise() {
    let s = Server::start();
    let out = Command::new(BIN).args(["healthcheck", "--url", &s.url]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, format!("healthy: {}/readyz answered 200\n", s.url));
    // Without --url it asks the configured listen address (a wildcard bind is asked on loopback).
    let port = s.url.rsplit(':').next().unwrap();
    let out = Command::new(BIN)
        .arg("healthcheck")
        .env("DDCOTERMD_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("http://127.0.0.1:{port}/readyz")));

    let (code, err) = run(&["healthcheck", "--url", &format!("{}/no-such-page", s.url)], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/no-such-page answered 404"), "{err}");
    // A port that accepts nothing (a listener bound and dropped) and a bad flag value.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, err) = run(&["healthcheck", "--url", &format!("http://{free}")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("connecting to {free}")), "{err}");
    let (code, err) = run(&["healthcheck", "--timeout", "soon"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--timeout") && err.contains("soon"), "{err}");
    // A server that accepts the connection but never answers is unhealthy within the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (code, err) = run(&["healthcheck", "--url", &format!("http://{addr}"), "--timeout", "300ms"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no answer") && err.contains(&addr.to_string()), "{err}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_tree_without_any_configuration() {
    for (shell, marker) in [
        ("bash", "complete -F _ddcoterm__server"),
        ("zsh", "#compdef ddcoterm-server"),
        ("fish", "complete -c ddcoterm-server"),
    ] {
        // A config file that does not exist would be an error for any other command.
        let out = Command::new(BIN)
            .args(["completions", shell])
            .env("DDCOTERMD_CONFIG", "/nonexistent.yaml")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {marker} in\n{script}");
        assert!(script.contains("healthcheck") && script.contains("token"), "{shell} knows the subcommands");
    }
    let (code, err) = run(&["completions", "tcsh"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let (code, err) = run(&["manpages", "--out", out.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "ddcoterm-server.1",
        "ddcoterm-server-serve.1",
        "ddcoterm-server-token-create.1",
        "ddcoterm-server-healthcheck.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("manpages")), "the hidden generator has no page: {pages:?}");
    let serve = std::fs::read_to_string(out.join("ddcoterm-server-serve.1")).unwrap();
    assert!(serve.starts_with(".ie") || serve.contains(".TH ddcoterm-server-serve 1"), "{serve}");
    assert!(serve.contains("listen"), "the options are documented: {serve}");
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let (code, err) = run(&["token", "create"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("<NAME>"), "{err}");
    let (code, err) = run(&["serve", "--no-such-flag"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, err) = run(&["--help"], &[]);
    assert_eq!(code, 0, "{err}");
}
