//! Test harness: the real `ddcoterm-server` binary on a free port with its own data directory, and an HTTP
//! client for it. With `DDCOTERM_SERVER_BACKEND=postgres-s3` every server stores into a real PostgreSQL
//! cluster and a real S3 store (SeaweedFS), started once per test binary (`backends.rs`).
#![allow(dead_code)]

pub mod backends;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_ddcoterm-server");

pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub env: Vec<(String, String)>,
    /// A program (and its arguments) the server runs under, e.g. strace.
    pub wrapper: Vec<String>,
    child: Option<Child>,
    pub http: Client,
    /// The create bodies sent through [`Server::create`], by session id: chunk 0's chain root is their hash.
    created: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the server with extra `DDCOTERMD_*` variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.extend(backends::server_env());
        let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut s = Server {
            dir,
            url: String::new(),
            env,
            wrapper: vec![],
            child: None,
            http,
            created: Default::default(),
        };
        s.spawn();
        s
    }

    /// Starts the server on backends prepared by the caller (`env`: a database URL and object store already
    /// holding data, e.g. [`backends::restore`]d from an earlier release), without a fresh database.
    pub fn start_on_backends(env: Vec<(String, String)>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut s = Server {
            dir,
            url: String::new(),
            env,
            wrapper: vec![],
            child: None,
            http,
            created: Default::default(),
        };
        s.spawn();
        s
    }

    /// Starts the server on a copy of the data directory `src` (SQLite + local directory), e.g. one written by
    /// an earlier release.
    pub fn start_on_copy_of(src: &std::path::Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let copied = Command::new("cp").arg("-a").arg(src).arg(dir.path().join("data")).status().unwrap();
        assert!(copied.success(), "copy {}", src.display());
        let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut s = Server {
            dir,
            url: String::new(),
            env: vec![],
            wrapper: vec![],
            child: None,
            http,
            created: Default::default(),
        };
        s.spawn();
        s
    }

    /// A second server process on the same database and object store as `other` (replicas behind a balancer).
    pub fn start_sharing(other: &Server) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut s = Server {
            dir,
            url: String::new(),
            env: other.env.clone(),
            wrapper: vec![],
            child: None,
            http,
            created: Default::default(),
        };
        s.spawn();
        s
    }

    /// Starts the server under `wrapper` (the program, then its arguments, before the server's command line),
    /// with extra `DDCOTERMD_*` variables.
    pub fn start_wrapped(wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        let mut s = Server {
            dir,
            url: String::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            wrapper,
            child: None,
            http,
            created: Default::default(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["--data-dir"]).arg(self.data()).args(["serve", "--listen", "127.0.0.1:0"]);
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
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!("server did not start: {line:?}\n{}", self.log());
        });
        self.url = format!("http://{addr}");
        self.child = Some(child);
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush; what was acknowledged must already be on disk.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Under a wrapper (strace), the server is the wrapper's child and outlives a killed wrapper.
            if !self.wrapper.is_empty() {
                let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id()));
                for pid in children.unwrap_or_default().split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The server's process id (the wrapper's when started wrapped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Sets (or replaces) a `DDCOTERMD_*` variable for the next [`Server::restart`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM, as an orchestrator stops a replica: in-flight requests drain, then the process exits; then
    /// it is started again on the same data (the URL changes: a new port).
    pub fn restart_graceful(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let status = c.wait().unwrap();
            assert!(status.success(), "a SIGTERM'd server exits 0: {status}\n{}", self.log());
        }
        self.spawn();
    }

    /// Runs a CLI command against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn token(&self, name: &str, role: &str) -> String {
        let out = self.cli(&["token", "create", name, "--role", role]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn req(&self, method: &str, path: &str, token: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.http.request(m, format!("{}{path}", self.url));
        if token.is_empty() {
            r
        } else {
            r.bearer_auth(token)
        }
    }

    /// POSTs the create, remembering its exact bytes (chunk 0's chain root is their hash).
    pub fn create(&self, token: &str, id: &str, user: &str) -> Response {
        let bytes = create_bytes(id, user);
        self.created.lock().unwrap().insert(id.to_string(), bytes.clone());
        self.req("POST", "/api/v1/sessions", token)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .unwrap()
    }

    /// The chain root chunk 0 of `id` carries: the hash of the create body sent through [`Server::create`],
    /// else of `create_bytes(id, "alice")` (what a test sending chunk 0 first will create later).
    pub fn root(&self, id: &str) -> String {
        let created = self.created.lock().unwrap().get(id).cloned();
        sha256(&created.unwrap_or_else(|| create_bytes(id, "alice")))
    }

    /// PUTs chunk `seq` with the hash of `prev` in the chain header; chunk 0 without `prev` carries
    /// [`Server::root`].
    pub fn chunk(&self, token: &str, id: &str, seq: u64, body: &[u8], prev: Option<&[u8]>) -> Response {
        let r = self
            .req("PUT", &format!("/api/v1/sessions/{id}/chunks/{seq}"), token)
            .header("content-type", "application/x-asciicast")
            .body(body.to_vec());
        let hash = match (seq, prev) {
            (_, Some(p)) => Some(sha256(p)),
            (0, None) => Some(self.root(id)),
            (_, None) => None,
        };
        match hash {
            Some(h) => r.header("x-ddcoterm-prev-sha256", h),
            None => r,
        }
        .send()
        .unwrap()
    }

    pub fn end(&self, token: &str, id: &str, last_seq: u64) -> Response {
        self.req("POST", &format!("/api/v1/sessions/{id}/end"), token)
            .json(&serde_json::json!({"ended_at": "2026-01-01T00:10:00Z", "exit_status": 0, "last_seq": last_seq}))
            .send()
            .unwrap()
    }

    pub fn cast(&self, token: &str, id: &str) -> Vec<u8> {
        let r = self.req("GET", &format!("/api/v1/sessions/{id}/cast"), token).send().unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().unwrap().to_vec()
    }

    pub fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self.req("GET", path, token).send().unwrap();
        let s = r.status().as_u16();
        (s, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// Every stored object, key and bytes, whichever store the server uses.
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        if let Some(v) = backends::objects(&self.env) {
            return v;
        }
        fn walk(root: &Path, p: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out)
                } else {
                    let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.push((key, std::fs::read(&p).unwrap()))
                }
            }
        }
        let root = self.data().join("objects");
        let mut v = Vec::new();
        walk(&root, &root, &mut v);
        v.sort();
        v
    }

    /// Overwrites a stored object behind the server's back (tampering tests).
    pub fn write_object(&self, key: &str, bytes: &[u8]) {
        if backends::write_object(&self.env, key, bytes) {
            return;
        }
        std::fs::write(self.data().join("objects").join(key), bytes).unwrap();
    }

    /// Polls until `f` holds or 10 s pass.
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn create_body(id: &str, user: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "started_at": "2026-01-01T00:00:00Z", "host": "claimed-host", "user": user,
        "command": "kubectl scale deploy/web --replicas=3", "width": 80, "height": 24,
        "rule": "prod", "actions": ["record"], "break_glass": false, "tags": ["env:prod"]
    })
}

/// The create body as bytes, exactly as [`Server::create`] sends it.
pub fn create_bytes(id: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&create_body(id, user)).unwrap()
}

pub fn sha256(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

pub const HEADER: &[u8] = b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1767225600}\n";

/// A cast as a host would split it: chunk 0 the header, then `n` event chunks.
pub fn chunks(n: usize) -> Vec<Vec<u8>> {
    let mut v = vec![HEADER.to_vec()];
    for i in 1..=n {
        v.push(format!("[{}.5,\"o\",\"line {i} \\u001b[1mbold\\u001b[0m\\r\\n\"]\n", i).into_bytes());
    }
    v
}
