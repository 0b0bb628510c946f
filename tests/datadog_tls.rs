//! HTTPS end to end: the Datadog client over real TLS (rustls and the platform verifier) to the fake behind a
//! TLS-terminating proxy, with a certificate authority made for the test. Trusted: `init` validates and a
//! recorded session uploads. Not trusted: nothing reaches the server, the error says why, nothing is lost.

mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::certs::make_certs;
use support::{contains, Fake, Home, API_KEY, APP_KEY};

/// The fake, behind `https://localhost:PORT`.
struct TlsFake {
    fake: Fake,
    proxy: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsFake {
    fn start() -> TlsFake {
        let fake = Fake::start();
        let dir = tempfile::tempdir().unwrap();
        make_certs(dir.path());
        let upstream = fake.uri().rsplit(':').next().unwrap().to_string();
        let port_file = dir.path().join("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_support/proxy.py");
        let proxy = Command::new("python3")
            .arg(script)
            .args([dir.path().join("server.pem"), dir.path().join("server.key")])
            .arg(&upstream)
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the TLS proxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        TlsFake { fake, proxy, port, dir }
    }

    fn host(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsFake {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `SSL_CERT_FILE` replaces the system roots with the test CA (rustls-native-certs honours it).
fn trusting(cmd: &mut Command, ca: Option<&Path>) {
    cmd.env_remove("SSL_CERT_DIR");
    match ca {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
}

#[test]
fn init_validates_keys_over_https_and_refuses_an_untrusted_certificate() {
    let tls = TlsFake::start();
    let home = Home::new();
    let init = |ca: Option<&Path>| {
        let mut c = home.cmd();
        trusting(&mut c, ca);
        c.args([
            "init",
            "--non-interactive",
            "--site",
            &tls.host(),
            "--api-key",
            API_KEY,
            "--app-key",
            APP_KEY,
        ]);
        c.output().unwrap()
    };

    // The certificate's issuer is not trusted: the handshake fails before any request is sent.
    let other_ca = tempfile::tempdir().unwrap();
    make_certs(other_ca.path());
    let out = init(Some(&other_ca.path().join("ca.pem")));
    assert!(!out.status.success(), "an untrusted certificate must fail");
    let err = text(&out.stderr).to_lowercase();
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(err.contains("did not answer") && !err.contains("not accepted"), "not blamed on the key: {err}");
    assert!(tls.fake.requests().is_empty(), "nothing reached the server");
    assert!(!text(&out.stdout).contains(API_KEY) && !err.contains(&API_KEY.to_lowercase()), "key leaked");

    let out = init(Some(&tls.ca()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let paths: Vec<String> = tls.fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, vec!["GET /api/v1/validate", "GET /api/v2/current_user"]);
}

#[test]
fn a_session_s_events_go_over_https_and_stay_spooled_when_tls_fails() {
    let tls = TlsFake::start();

    // Untrusted: the session still runs; everything stays in the spool with the reason.
    let home = Home::new();
    home.config(&tls.host(), API_KEY, "spool:\n  flush_timeout: 5s\n");
    let mut c = home.cmd();
    trusting(&mut c, Some(Path::new("/dev/null")));
    let out = c.args(["--", "sh", "-c", "echo over tls"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over tls\n");
    assert!(tls.fake.requests().is_empty(), "nothing reached the server");
    assert!(text(&out.stderr).contains("kept in the spool"), "{}", text(&out.stderr));
    assert!(contains(&home.spool_bytes(), "over tls"), "the process event is kept in the spool");

    // Trusted: `spool flush` delivers what was kept, over TLS (recordings go to the session server; Datadog
    // gets the process event and the session event).
    let mut c = home.cmd();
    trusting(&mut c, Some(&tls.ca()));
    let out = c.args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<_> =
        tls.fake.accepted_path_prefix("/api/v1/events").into_iter().map(|r| r.json()).collect();
    assert!(
        events.iter().any(|e| e["source_type_name"] == "coterm_process_info"
            && e["text"].as_str().unwrap().contains("over tls")),
        "the process event arrived: {events:?}"
    );
    assert!(!contains(&home.spool_bytes(), "over tls"), "and left the spool");
}
