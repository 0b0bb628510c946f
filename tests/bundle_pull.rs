//! `bundle pull` against a wiremock source: every failure leaves the last good bundle in force and says why.

mod bundle_support;
mod harness;

use base64::Engine as _;
use bundle_support::*;
use std::io::{Read, Write};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Serves `text` at /sre.yaml with ETag `"r<rev>"` and `sig` at /sre.yaml.sig (404 when `None`).
async fn serve(server: &MockServer, text: &str, sig: Option<String>, etag: &str) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/sre.yaml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(text).insert_header("ETag", etag))
        .mount(server)
        .await;
    let sig_resp = match sig {
        Some(s) => ResponseTemplate::new(200).set_body_string(s),
        None => ResponseTemplate::new(404),
    };
    Mock::given(method("GET")).and(path("/sre.yaml.sig")).respond_with(sig_resp).mount(server).await;
}

async fn fleet_with_r1() -> (Fleet, MockServer, String) {
    let server = MockServer::start().await;
    let url = format!("{}/sre.yaml", server.uri());
    let f = Fleet::new(std::slice::from_ref(&url));
    let r1 = bundle_text("sre", 1);
    serve(&server, &r1, Some(f.sign(&r1)), "\"r1\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert!(out.status.success(), "first pull: {}", stderr(&out));
    (f, server, url)
}

/// The loader still runs r1, and `bundle list` says the last pull failed with `why`.
fn assert_r1_in_force_and_failure_listed(f: &Fleet, why: &str) {
    let (rev, rule) = f.in_force("sre");
    assert_eq!(rev, 1, "the last good bundle stays in force");
    assert!(rule.contains("(bundle sre r1)"), "{rule}");
    let list = f.list_json();
    let e = &list[0];
    assert_eq!(
        (e["name"].as_str(), e["revision"].as_u64(), e["status"].as_str()),
        (Some("sre"), Some(1), Some("failed"))
    );
    assert!(e["error"].as_str().unwrap_or_default().contains(why), "list error: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_pull_installs_verified_bundle_as_org_layer() {
    let (f, _server, url) = fleet_with_r1().await;
    let (rev, rule) = f.in_force("sre");
    assert_eq!(rev, 1);
    assert!(rule.contains("sre.yaml:") && rule.contains("(bundle sre r1)"), "{rule}");
    for p in [f.installed("sre"), f.bundles().join("sre.yaml.sig"), f.bundles().join(".last-good/sre.yaml")] {
        assert_eq!(mode(&p), 0o644, "{}", p.display());
    }
    for d in [f.bundles(), f.bundles().join(".last-good")] {
        assert_eq!(mode(&d), 0o755, "{}", d.display());
    }
    let list = f.list_json();
    let e = &list[0];
    assert_eq!(e["status"], "ok");
    assert_eq!(e["source"].as_str(), Some(url.as_str()));
    assert_eq!(e["signer"].as_str(), Some(ddcoterm::bundle::key_id(&f.key.verifying_key()).as_str()));
    assert!(e["fetched_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.bundles().join(".state.json")).unwrap()).unwrap();
    assert_eq!(state["sources"][&url]["etag"], "\"r1\"");
    assert_eq!(state["installed"]["sre"]["revision"], 1);

    // --dir installs elsewhere (e.g. a staging copy for a ConfigMap), with its own state.
    let other = f.root().join("staging");
    let out = f.run(&["bundle", "pull", "--dir", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed bundle sre r1"), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(other.join("sre.yaml")).unwrap(), bundle_text("sre", 1));
    assert!(other.join("sre.yaml.sig").exists() && other.join(".state.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn second_pull_sends_if_none_match_and_keeps_bundle_on_304() {
    let (f, server, _url) = fleet_with_r1().await;
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/sre.yaml"))
        .and(header("If-None-Match", "\"r1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    let out = f.run(&["bundle", "pull"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bundle sre not modified"), "{}", stdout(&out));
    server.verify().await;
    assert_eq!(f.in_force("sre").0, 1);
    assert_eq!(f.list_json()[0]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_revision_replaces_the_installed_one() {
    let (f, server, _url) = fleet_with_r1().await;
    let r2 = bundle_text("sre", 2);
    serve(&server, &r2, Some(f.sign(&r2)), "\"r2\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed bundle sre r2 (was r1)"), "{}", stdout(&out));
    let (rev, rule) = f.in_force("sre");
    assert_eq!(rev, 2);
    assert!(rule.contains("(bundle sre r2)"), "{rule}");
    assert_eq!(std::fs::read_to_string(f.bundles().join(".last-good/sre.yaml")).unwrap(), r2);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_a_lower_revision_is_refused() {
    let (f, server, _url) = fleet_with_r1().await;
    let r0 = bundle_text("sre", 0);
    serve(&server, &r0, Some(f.sign(&r0)), "\"r0\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("revision 0 is lower than the installed revision 1: rollback refused"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("the last good bundle stays in force"), "{}", stderr(&out));
    assert_r1_in_force_and_failure_listed(&f, "rollback refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_is_refused_even_after_the_installed_files_are_deleted() {
    let (f, server, _url) = fleet_with_r1().await;
    let r2 = bundle_text("sre", 2);
    serve(&server, &r2, Some(f.sign(&r2)), "\"r2\"").await;
    assert!(f.run(&["bundle", "pull"]).status.success());
    std::fs::remove_file(f.installed("sre")).unwrap();
    std::fs::remove_dir_all(f.bundles().join(".last-good")).unwrap();
    let r1 = bundle_text("sre", 1);
    serve(&server, &r1, Some(f.sign(&r1)), "\"r1\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rollback refused"), "{}", stderr(&out));
    assert!(!f.installed("sre").exists(), "nothing installed by a refused pull");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_revision_with_different_content_is_refused() {
    let (f, server, _url) = fleet_with_r1().await;
    let evil = bundle_text("sre", 1).replace("has_arg('delete')", "false");
    serve(&server, &evil, Some(f.sign(&evil)), "\"r1b\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already installed with different content"), "{}", stderr(&out));
    assert_r1_in_force_and_failure_listed(&f, "different content");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signature_is_refused_before_install() {
    let (f, server, _url) = fleet_with_r1().await;
    let r2 = bundle_text("sre", 2);
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let forged = format!("{}\n", B64.encode(ed25519_dalek::Signer::sign(&other, r2.as_bytes()).to_bytes()));
    serve(&server, &r2, Some(forged), "\"r2\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signature does not verify against any trusted key"), "{}", stderr(&out));
    assert_r1_in_force_and_failure_listed(&f, "signature does not verify");
    assert_eq!(
        std::fs::read_to_string(f.bundles().join(".last-good/sre.yaml")).unwrap(),
        bundle_text("sre", 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_bundle_is_refused_when_a_key_is_configured() {
    let (f, server, _url) = fleet_with_r1().await;
    serve(&server, &bundle_text("sre", 2), None, "\"r2\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsigned bundle refused") && stderr(&out).contains("sre.yaml.sig"),
        "{}",
        stderr(&out)
    );
    assert_r1_in_force_and_failure_listed(&f, "unsigned bundle refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_down_keeps_the_last_good_bundle() {
    let (f, server, url) = fleet_with_r1().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/sre.yaml", l.local_addr().unwrap())
    };
    f.configure(std::slice::from_ref(&dead));
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&dead) && stderr(&out).contains("fetch failed"), "{}", stderr(&out));
    assert_eq!(f.in_force("sre").0, 1);
    let list = f.list_json();
    assert!(
        list.as_array().unwrap().iter().any(|e| e["source"] == dead.as_str() && e["status"] == "failed"),
        "{list}"
    );

    // A 503 from the real source is a failure too, and so is the state file's record of it.
    f.configure(std::slice::from_ref(&url));
    server.reset().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HTTP 503"), "{}", stderr(&out));
    assert_r1_in_force_and_failure_listed(&f, "HTTP 503");
}

/// A server that announces more bytes than it sends, then hangs up.
fn truncating_server(body: String) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in l.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let half = &body.as_bytes()[..body.len() / 2];
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(half);
        }
    });
    format!("http://{addr}/sre.yaml")
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_download_is_refused() {
    let (f, server, url) = fleet_with_r1().await;
    let cut = truncating_server(bundle_text("sre", 2));
    f.configure(&[cut]);
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("download interrupted") || stderr(&out).contains("truncated"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.in_force("sre").0, 1);

    // A body cut short without a length to betray it still fails its signature.
    f.configure(&[url]);
    let r2 = bundle_text("sre", 2);
    serve(&server, &r2[..r2.len() - 20], Some(f.sign(&r2)), "\"r2\"").await;
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signature does not verify"), "{}", stderr(&out));
    assert_r1_in_force_and_failure_listed(&f, "signature does not verify");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_file_on_disk_falls_back_then_fails_closed_then_pull_repairs() {
    let (f, server, _url) = fleet_with_r1().await;
    let installed = f.installed("sre");
    std::fs::write(&installed, bundle_text("sre", 1).replace("has_arg('delete')", "false")).unwrap();

    // 1. The last good copy stands in, with a warning naming the tampered file.
    let l = f.load().unwrap();
    let b = &l.bundles[0];
    assert_eq!((b.doc.revision, b.path.ends_with(".last-good/sre.yaml")), (1, true));
    let warn = b.fallback.clone().unwrap();
    assert!(warn.contains(&installed.display().to_string()) && warn.contains("does not verify"), "{warn}");
    assert!(l.policy.rules[0].lua.contains("has_arg('delete')"), "org policy is the signed one");
    let e = &f.list_json()[0];
    assert_eq!(e["status"], "failed");
    assert!(e["error"].as_str().unwrap().contains("last good copy"), "{e}");

    // 2. No good copy: loading fails closed (exit 78) naming the file.
    let lg = f.bundles().join(".last-good");
    let keep = f.root().join("lg");
    std::fs::rename(&lg, &keep).unwrap();
    let err = f.load().unwrap_err();
    assert!(
        err.to_string().contains(&installed.display().to_string())
            && err.to_string().contains("no last good copy"),
        "{err}"
    );
    assert_eq!(ddcoterm::error::exit_code(&anyhow::Error::from(err)), 78);

    // 3. pull does not trust its ETag for a broken install: it refetches and repairs (a 304 would not).
    Mock::given(method("GET"))
        .and(path("/sre.yaml"))
        .and(header("If-None-Match", "\"r1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .expect(0)
        .mount(&server)
        .await;
    let out = f.run(&["bundle", "pull"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("repaired bundle sre r1"), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), bundle_text("sre", 1));
    assert_eq!(f.in_force("sre").0, 1);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_bundle_dir_and_missing_keys_are_setup_errors() {
    let (f, _server, url) = fleet_with_r1().await;
    std::fs::set_permissions(f.bundles(), std::os::unix::fs::PermissionsExt::from_mode(0o775)).unwrap();
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("writable by group or others"), "{}", stderr(&out));
    assert!(f.load().unwrap_err().to_string().contains("chmod go-w"));
    std::fs::set_permissions(f.bundles(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    std::fs::write(f.system.join("config.yaml"), format!("bundles:\n  sources: [{url}]\n")).unwrap();
    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("bundles.trusted_keys is empty"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pull_is_reported_to_datadog_as_an_error_event() {
    let (f, server, url) = fleet_with_r1().await;
    server.reset().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/events"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    f.configure(std::slice::from_ref(&url));
    let cfg = f.system.join("config.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "connection_config:\n  host: {}\n  allow_loopback: true\n  api_key: 0123456789abcdef0123456789abcdef\n",
        server.uri()
    ));
    std::fs::write(&cfg, text).unwrap();

    let out = f.run(&["bundle", "pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(f.in_force("sre").0, 1, "the last good bundle stays in force");
    let reqs = server.received_requests().await.unwrap();
    let ev = reqs.iter().find(|r| r.url.path() == "/api/v1/events").expect("the failure is sent as an event");
    let raw = if ev.headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(&ev.body[..]).read_to_end(&mut s).unwrap();
        s
    } else {
        ev.body.clone()
    };
    let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(body["alert_type"], "error", "{body}");
    let tags = body["tags"].to_string();
    assert!(tags.contains("bundle_pull:failed") && tags.contains("audit:bundle_pull_failed"), "{body}");
    assert!(body["text"].as_str().unwrap().contains("HTTP 503"), "{body}");
}
