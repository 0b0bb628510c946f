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
