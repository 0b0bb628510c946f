//! The REAL `ddcoterm-server` for the client's tests: started on a free port with its own data directory
//! (SQLite + a local directory), a host token in a file for the client, and an auditor token to read back.
//!
//! The binary is `target/debug/ddcoterm-server` beside the client's; `make test` builds it first, and a test
//! run without it builds it once (`cargo build --locked -p ddcoterm-server`).

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary, built on first use when missing.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let client = PathBuf::from(env!("CARGO_BIN_EXE_ddcoterm"));
        let bin = client.with_file_name("ddcoterm-server");
        if !bin.exists() {
            let st = Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "ddcoterm-server"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build -p ddcoterm-server");
            assert!(st.success(), "building ddcoterm-server failed");
        }
        assert!(bin.exists(), "{} is missing after the build", bin.display());
        bin
    })
    .clone()
}

/// One running server.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// A host token (for `host1`), also written to [`Server::token_file`].
    pub host_token: String,
    /// An auditor token, to read sessions back.
    pub auditor: String,
    child: Option<Child>,
    listen: String,
    env: Vec<(String, String)>,
    /// Set by [`Server::start_tls`]: the CA that signed the server's certificate.
    pub ca: Option<PathBuf>,
    tls_dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the server with extra `DDCOTERMD_*` variables (e.g. `DDCOTERMD_LIMITS__MAX_CHUNK_BYTES`).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server {
            dir,
            url: String::new(),
            host_token: String::new(),
            auditor: String::new(),
            child: None,
            listen: "127.0.0.1:0".into(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ca: None,
            tls_dir: None,
        };
        s.host_token = s.token("host1", "host");
        s.auditor = s.token("reviewer", "auditor");
        std::fs::write(s.token_file(), format!("{}\n", s.host_token)).unwrap();
        s.spawn();
        s
    }

    /// Serves https itself (`tls.cert_file`/`tls.key_file`), with a certificate for `localhost` signed by a
    /// test CA ([`Server::ca`]); [`Server::url`] is `https://localhost:PORT`.
    pub fn start_tls() -> Server {
        let dir = tempfile::tempdir().unwrap();
        super::certs::make_certs(dir.path());
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        let env = [
            ("DDCOTERMD_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("DDCOTERMD_TLS__KEY_FILE", key.to_str().unwrap()),
        ];
        let mut s = Self::start_with(&env);
        s.ca = Some(dir.path().join("ca.pem"));
        s.url = s.url.replacen("http://127.0.0.1", "https://localhost", 1);
        s.tls_dir = Some(dir);
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.arg("--data-dir").arg(self.data()).args(["serve", "--listen", &self.listen]);
        cmd.env_remove("DDCOTERMD_LISTEN").env_remove("DDCOTERMD_DATABASE_URL");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("server.log"))
                .unwrap(),
        ));
        let mut child = cmd.spawn().expect("start ddcoterm-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server did not start: {line:?}\n{}", self.log()))
            .to_string();
        // A restart comes back on the same port, as a real server would.
        self.listen = addr.clone();
        self.url = match self.ca {
            Some(_) => format!("https://localhost:{}", addr.rsplit(':').next().unwrap()),
            None => format!("http://{addr}"),
        };
        self.child = Some(child);
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file holding the host token (`server.token_file`).
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("host.token")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The `server:` section of a client configuration for this server.
    pub fn client_config(&self) -> String {
        format!("server:\n  url: {}\n  token_file: {}\n", self.url, self.token_file().display())
    }

    /// Stops the server (SIGKILL); [`Server::restart`] brings it back on the same port and data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the server process: a stopped server still accepts
    /// connections (the kernel completes them) but answers nothing, like a server stuck under load.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
        assert!(ok.success(), "kill -{signal} {pid}");
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `ddcoterm-server ARGS` on this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn token(&self, name: &str, role: &str) -> String {
        let out = self.cli(&["token", "create", name, "--role", role]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        ddcoterm::datadog::tls::install_provider();
        let mut c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).unwrap();
            c = c.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
        }
        let c = c.build().unwrap();
        let r = c.get(format!("{}{path}", self.url)).bearer_auth(&self.auditor).send().unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().unwrap().to_vec())
    }

    /// `GET /api/v1/sessions` (auditor): every session, newest first.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/v1/sessions?limit=500");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// `GET /api/v1/sessions/{id}` (auditor), `None` when unknown.
    pub fn session(&self, id: &str) -> Option<serde_json::Value> {
        let (status, body) = self.get(&format!("/api/v1/sessions/{id}"));
        (status == 200).then(|| serde_json::from_slice(&body).unwrap())
    }

    /// `GET /api/v1/sessions/{id}/cast` (auditor).
    pub fn cast(&self, id: &str) -> Vec<u8> {
        let (status, body) = self.get(&format!("/api/v1/sessions/{id}/cast"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        body
    }

    /// Waits up to 30 s for `f`.
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ddcoterm-server verify ID`: the stored chunks, hash chain and compacted cast check out.
    pub fn verify(&self, id: &str) -> std::process::Output {
        self.cli(&["verify", id])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
