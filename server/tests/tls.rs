//! TLS on the listener (`--tls-cert`/`--tls-key`): https answers with the configured certificate, plain http on
//! the same port gets nothing, a renewed certificate is served without a restart, and a bad file stops `serve`
//! at start naming it. Certificates are made with openssl(1); requests go through curl(1) and `openssl
//! s_client`, clients independent of the server's own TLS stack.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A self-signed certificate for `localhost` and 127.0.0.1 with the given serial, written to `name`.pem/.key.
fn self_signed(dir: &Path, name: &str, serial: &str) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-days", "2", "-subj", "/CN=localhost", "-set_serial", serial])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", &format!("{name}.key"), "-out", &format!("{name}.pem")])
        .current_dir(dir)
        .output()
        .expect("openssl(1) runs (make tools installs it)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

fn serve(dir: &Path, cert: &str, key: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddcoterm-server"));
    cmd.arg("--data-dir").arg(dir.join("data"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key]);
    cmd.env_remove("DDCOTERMD_LISTEN").env_remove("DDCOTERMD_DATABASE_URL").current_dir(dir);
    cmd
}

struct Running(Child, u16);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path) -> Running {
    let mut child = serve(dir, "live.pem", "live.key")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ddcoterm-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port =
        line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
    Running(child, port)
}

/// The serial number of the certificate the server presents now.
fn served_serial(dir: &Path, port: u16) -> String {
    let hello = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut x509.stdin.take().unwrap(), &hello.stdout).unwrap();
    String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout).trim().to_string()
}

fn curl(args: &[&str]) -> (bool, String) {
    let out =
        Command::new("curl").args(["-sS", "--max-time", "5"]).args(args).output().expect("curl(1) runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn https_answers_plain_http_does_not_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    self_signed(d, "one", "1");
    self_signed(d, "two", "2");
    std::fs::copy(d.join("one.pem"), d.join("live.pem")).unwrap();
    std::fs::copy(d.join("one.key"), d.join("live.key")).unwrap();
    let server = start(d);
    let url = format!("https://localhost:{}/healthz", server.1);
    let (ok, body) = curl(&[
        "--cacert",
        d.join("one.pem").to_str().unwrap(),
        "--resolve",
        &format!("localhost:{}:127.0.0.1", server.1),
        &url,
    ]);
    assert!(ok, "https /healthz failed: {body}");
    assert!(body.contains("ok"), "{body}");
    // No plaintext on the TLS port: a request in clear gets no HTTP answer.
    let (ok, body) = curl(&[&format!("http://127.0.0.1:{}/healthz", server.1)]);
    assert!(!ok && !body.contains("ok"), "plain http was answered: {body}");
    assert_eq!(served_serial(d, server.1), "serial=01");

    // A renewal as cert-manager writes it: new files renamed over the old ones.
    std::fs::copy(d.join("two.pem"), d.join("new.pem")).unwrap();
    std::fs::copy(d.join("two.key"), d.join("new.key")).unwrap();
    std::fs::rename(d.join("new.key"), d.join("live.key")).unwrap();
    std::fs::rename(d.join("new.pem"), d.join("live.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while served_serial(d, server.1) != "serial=02" {
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 30 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ok, body) = curl(&[
        "--cacert",
        d.join("two.pem").to_str().unwrap(),
        "--resolve",
        &format!("localhost:{}:127.0.0.1", server.1),
        &url,
    ]);
    assert!(ok && body.contains("ok"), "https with the renewed certificate: {body}");

    // A renewal caught half-written keeps the previous pair.
    std::fs::write(d.join("live.pem"), "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(served_serial(d, server.1), "serial=02");
}

#[test]
fn a_bad_certificate_or_key_stops_serve_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    self_signed(d, "one", "1");
    self_signed(d, "two", "2");
    std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
    let cases = [
        ("garbage.pem", "one.key", "garbage.pem"),
        ("one.pem", "missing.key", "missing.key"),
        ("one.pem", "two.key", "do not belong together"),
    ];
    for (cert, key, expect) in cases {
        let out = serve(d, cert, key).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cert} + {key}: serve started");
        assert!(err.contains(expect), "{cert} + {key}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ddcoterm-server"))
        .arg("--data-dir")
        .arg(d.join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", "one.pem"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tls.key_file"), "{err}");
}
