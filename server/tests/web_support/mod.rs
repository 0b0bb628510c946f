//! Web UI test support: sign-in helpers over plain HTTP (cookies by hand, no redirects followed), sessions
//! uploaded through the real ingest API, and a real headless Chromium driven through chromedriver
//! (fantoccini), started on an ephemeral port per test with its own profile directory.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value as Json;

use crate::support::{sha256, Server};

/// Adds a local user with a password through the real CLI.
pub fn add_user(s: &Server, name: &str, role: &str, password: &str) {
    add_user_with(s, &["user", "add", name, "--role", role, "--password-stdin"], password);
}

/// Runs `args` (a `user add ... --password-stdin` with any other flags) through the real CLI, the password
/// on stdin.
pub fn add_user_with(s: &Server, args: &[&str], password: &str) {
    use std::io::Write as _;
    let mut c = Command::new(crate::support::BIN)
        .arg("--data-dir")
        .arg(s.data())
        .args(args)
        .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A form body (`application/x-www-form-urlencoded`), as a browser encodes it.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes().fold(String::new(), |mut o, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                o.push(b as char)
            } else {
                o.push_str(&format!("%{b:02X}"))
            }
            o
        })
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// An HTTP client that shows redirects instead of following them.
pub fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Signs in through `POST /login` as a browser on the server's own page would (Origin set); returns the
/// cookie pair `name=value` to send back.
pub fn sign_in(s: &Server, user: &str, password: &str) -> String {
    let r = http()
        .post(format!("{}/login", s.url))
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("user", user), ("password", password), ("next", "/")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in of {user}: {}", r.text().unwrap_or_default());
    let c = r.headers()["set-cookie"].to_str().unwrap();
    c.split(';').next().unwrap().to_string()
}

/// A session through the real ingest API: create (with `meta` merged into the default body), chunk 0 (the
/// header) and the `events` chunks, process events, and the end unless `live`. Returns the cast's bytes.
pub struct Upload<'a> {
    pub s: &'a Server,
    pub host: &'a str,
}

impl Upload<'_> {
    pub fn create(&self, id: &str, meta: Json) -> Vec<u8> {
        let mut body = crate::support::create_body(id, "alice");
        for (k, v) in meta.as_object().unwrap() {
            body[k] = v.clone();
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = self
            .s
            .req("POST", "/api/v1/sessions", self.host)
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
        bytes
    }

    /// PUTs chunk `seq` with the hash of what came before it (`prev`: the create body for chunk 0).
    pub fn chunk(&self, id: &str, seq: u64, body: &[u8], prev: &[u8]) {
        let r = self
            .s
            .req("PUT", &format!("/api/v1/sessions/{id}/chunks/{seq}"), self.host)
            .header("content-type", "application/x-asciicast")
            .header("x-ddcoterm-prev-sha256", sha256(prev))
            .body(body.to_vec())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "chunk {seq}: {} {}", r.status(), r.text().unwrap_or_default());
    }

    pub fn events(&self, id: &str, events: Json) {
        let r = self
            .s
            .req("POST", &format!("/api/v1/sessions/{id}/events"), self.host)
            .json(&events)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "events: {}", r.text().unwrap_or_default());
    }

    /// The whole session: header with `width`x`height`, one chunk per element of `chunks` (asciicast event
    /// lines), then the end (unless `live`).
    pub fn session(&self, id: &str, meta: Json, chunks: &[String], live: bool) -> Vec<u8> {
        let create = self.create(id, meta);
        let header = b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1767225600}\n".to_vec();
        self.chunk(id, 0, &header, &create);
        let mut prev = header.clone();
        let mut cast = header;
        for (i, c) in chunks.iter().enumerate() {
            self.chunk(id, i as u64 + 1, c.as_bytes(), &prev);
            prev = c.as_bytes().to_vec();
            cast.extend_from_slice(c.as_bytes());
        }
        if !live {
            let r = self.s.end(self.host, id, chunks.len() as u64);
            assert!(r.status().is_success(), "end: {}", r.text().unwrap_or_default());
        }
        cast
    }
}

/// One asciicast output event line.
pub fn out(t: f64, text: &str) -> String {
    format!("{}\n", serde_json::to_string(&serde_json::json!([t, "o", text])).unwrap())
}

/// Waits for the search indexer to have indexed `q` for an auditor.
pub fn wait_indexed(s: &Server, token: &str, q: &str, id: &str) {
    s.wait_for(&format!("{id} found by q={q}"), || {
        let (_, v) = s.get_json(token, &format!("/api/v1/sessions?q={}", q.replace(' ', "+")));
        v["sessions"].as_array().is_some_and(|a| a.iter().any(|x| x["id"] == id))
    });
}

/// A headless Chromium under chromedriver, or `None` (having printed "skipped: <why>") when either is not
/// installed (`make tools` installs both).
pub struct Browser {
    pub rt: tokio::runtime::Runtime,
    pub c: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.is_file())
}

impl Browser {
    pub fn start(test: &str) -> Option<Browser> {
        let Some(chromium) = which("chromium") else {
            println!("skipped: {test}: no chromium on PATH (make tools installs it)");
            return None;
        };
        let Some(driver) = which("chromedriver") else {
            println!("skipped: {test}: no chromedriver on PATH (make tools installs chromium-driver)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,800", format!("--user-data-dir={}", profile.path().display()),
                         "--no-first-run", "--disable-extensions"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), serde_json::json!({"browser": "ALL"}));
        // Listening is not the same as ready: on a loaded machine chromedriver reset the first session request
        // (a CI run failed so). Up to three tries, a second apart; the last error fails the test.
        let mut tries = 0;
        let c = loop {
            tries += 1;
            let session = rt.block_on(async {
                let conn = hyper_util::client::legacy::connect::HttpConnector::new();
                fantoccini::ClientBuilder::new(conn)
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
            });
            match session {
                Err(e) if tries < 3 => {
                    eprintln!("{test}: chromedriver session, try {tries}: {e}; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => break other.expect("a chromedriver session"),
            }
        };
        Some(Browser { rt, c, driver: child, _profile: profile })
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c.goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub fn js(&self, script: &str) -> Json {
        self.rt.block_on(self.c.execute(script, vec![])).unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Runs an async script: its last argument is the callback to call with the result.
    pub fn js_async(&self, script: &str) -> Json {
        self.rt
            .block_on(self.c.execute_async(script, vec![]))
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// The element `css` selects, waiting up to 10 s for it to appear.
    async fn element(&self, css: &str) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
        self.c.wait().at_most(Duration::from_secs(10)).for_element(fantoccini::Locator::Css(css)).await
    }

    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async {
                let e = self.element(css).await?;
                e.click().await
            })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub fn fill(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                let e = self.element(css).await?;
                e.clear().await?;
                e.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("fill {css}: {e}"));
    }

    pub fn text(&self, css: &str) -> String {
        self.rt
            .block_on(async {
                let e = self.element(css).await?;
                e.text().await
            })
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Types `keys` into whatever element has the focus (WebDriver key codes for special keys).
    pub fn keys(&self, keys: &str) {
        self.rt
            .block_on(async { self.c.active_element().await?.send_keys(keys).await })
            .unwrap_or_else(|e| panic!("keys {keys:?}: {e}"));
    }

    pub fn url(&self) -> String {
        self.rt.block_on(self.c.current_url()).unwrap().to_string()
    }

    /// Polls `script` (an expression) until it is truthy, or panics after `secs`.
    pub fn wait_js(&self, what: &str, script: &str, secs: u64) -> Json {
        let start = Instant::now();
        loop {
            let v = self.js(&format!("return ({script});"));
            if !(v.is_null()
                || v == Json::Bool(false)
                || v == serde_json::json!("")
                || v == serde_json::json!(0))
            {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what} ({script})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's text (body).
    pub fn body(&self) -> String {
        self.js("return document.body.innerText;").as_str().unwrap_or_default().to_string()
    }

    /// The player's current time, seconds.
    pub fn player_time(&self) -> f64 {
        self.js_async("const done = arguments[arguments.length - 1]; window.ddcotermPlayer.getCurrentTime().then(done);")
            .as_f64()
            .unwrap_or(-1.0)
    }

    /// Saves a PNG under target/screenshots/ and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c.screenshot()).expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }

    pub fn resize(&self, w: u32, h: u32) {
        self.rt.block_on(self.c.set_window_size(w, h)).expect("window size");
    }

    /// The browser console's messages since the last call (chromedriver's log endpoint).
    pub fn console(&self) -> Vec<String> {
        let v = self.rt.block_on(self.c.issue_cmd(BrowserLog)).expect("chromedriver's browser log");
        v.as_array()
            .map(|a| a.iter().map(|e| e["message"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    }

    /// No alert, confirm or prompt is open.
    pub fn no_dialog(&self) -> bool {
        self.rt.block_on(self.c.get_alert_text()).is_err()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.c.clone().close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type":"browser"}`: console messages, CSP violations among them.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}
