//! Test certificates made with openssl(1): a CA and a `localhost`/127.0.0.1 server certificate it signed,
//! for the HTTPS tests (Datadog behind a TLS proxy, the session server serving TLS itself).

use std::path::Path;
use std::process::Command;

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a CA and a `localhost`/127.0.0.1 server
/// certificate signed by it (EC P-256).
pub fn make_certs(dir: &Path) {
    make_certs_for(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
}

/// As [`make_certs`], for a server named `common_name` with the subjectAltName entries `san` (for example
/// `DNS:sessions` for a container reached by that name).
pub fn make_certs_for(dir: &Path, common_name: &str, san: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl(1) runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=ddcoterm test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    run(&ca);
    let subject = format!("/CN={common_name}");
    let mut csr = vec!["req", "-subj", subject.as_str()];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
             subjectAltName={san}\n"
        ),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}
