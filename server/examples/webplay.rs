//! Browser benchmark for `bench/web.sh` part 4 (issue #18 "Done when"): headless Chromium (chromedriver,
//! fantoccini) opens a session page with a cold cache and times how long the player takes to show the first
//! screen, then to show the right screen after each of N seeks to random moments. "Shown" means the text
//! of the player's terminal equals the server's own rendering of that moment (`/screen?at=`), so a fast
//! wrong screen never counts. Prints `key=value` lines with the target (<= 1000 ms) and pass/fail, and
//! exits non-zero when a screen is wrong.
//!
//! Usage: webplay URL USER PASSWORD READ_TOKEN ID [--seeks N]
//! Needs `chromium` and `chromedriver` on PATH (`make tools`); prints "skipped: <why>" without them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value as Json};

const TARGET_MS: f64 = 1000.0;
/// Longest wait for a screen before calling it wrong.
const GIVE_UP: Duration = Duration::from_secs(15);
/// The player's screen as text, one string per row, trailing blanks trimmed (the server's `/screen` form).
const PLAYER_LINES: &str = "return Array.from(document.querySelectorAll('#player .ap-line')).map(l => l.textContent.replace(/\\u00a0/g, ' ').trimEnd());";

fn usage() -> ! {
    eprintln!("usage: webplay URL USER PASSWORD READ_TOKEN ID [--seeks N]");
    std::process::exit(2)
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.is_file())
}

/// chromedriver's Chrome DevTools passthrough (`POST /session/{id}/goog/cdp/execute`): used to empty the
/// browser's cache before the timed page load.
#[derive(Debug)]
struct Cdp(&'static str);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"cmd": self.0, "params": {}}).to_string()))
    }
}

struct Bench {
    c: fantoccini::Client,
    http: reqwest::Client,
    url: String,
    token: String,
    id: String,
}

impl Bench {
    async fn js(&self, script: &str) -> Json {
        self.c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    async fn screen(&self, at: f64) -> Json {
        let r = self
            .http
            .get(format!("{}/api/v1/sessions/{}/screen?at={at}", self.url, self.id))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET /screen");
        assert!(r.status().is_success(), "GET /screen?at={at}: {}", r.status());
        r.json::<Json>().await.expect("screen JSON")["lines"].clone()
    }

    /// Polls the player until it shows `want`; the time since `start`, or `None` after [`GIVE_UP`].
    async fn until_shown(&self, want: &Json, start: Instant) -> Option<f64> {
        loop {
            if &self.js(PLAYER_LINES).await == want {
                return Some(start.elapsed().as_secs_f64() * 1000.0);
            }
            if start.elapsed() > GIVE_UP {
                eprintln!(
                    "wrong screen: the player shows {:#}\nthe server renders {want:#}",
                    self.js(PLAYER_LINES).await
                );
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn verdict(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms <= TARGET_MS => format!("{ms:.0} pass"),
        Some(ms) => format!("{ms:.0} FAIL"),
        None => "wrong-screen FAIL".into(),
    }
}

async fn run(b: &Bench, user: &str, password: &str, seeks: usize) -> bool {
    // Sign in on the list page (it loads neither the player nor a window), then empty the cache.
    b.c.goto(&format!("{}/login?next=/", b.url)).await.expect("the sign-in page");
    for (css, text) in [("#user", user), ("#password", password)] {
        b.c.find(fantoccini::Locator::Css(css)).await.expect(css).send_keys(text).await.expect(css);
    }
    b.c.find(fantoccini::Locator::Css("#signin")).await.expect("#signin").click().await.expect("sign in");
    let t0 = Instant::now();
    while b.js("return location.pathname;").await != json!("/") {
        assert!(t0.elapsed() < GIVE_UP, "sign-in as {user} failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.c.issue_cmd(Cdp("Network.clearBrowserCache")).await.expect("clear the browser cache");

    let first = b.screen(0.0).await;
    let start = Instant::now();
    b.c.goto(&format!("{}/sessions/{}", b.url, b.id)).await.expect("the session page");
    let first_ms = b.until_shown(&first, start).await;
    let windowed = b.js("return document.getElementById('player').dataset.windows || '';").await;
    println!("browser_windowed={}", windowed != json!(""));
    println!("browser_first_screen_ms={} target_ms={TARGET_MS}", verdict(first_ms));
    let duration =
        b.c.execute_async(
            "const done = arguments[arguments.length - 1]; window.ddcotermPlayer.getDuration().then(done);",
            vec![],
        )
        .await
        .expect("the player's duration")
        .as_f64()
        .unwrap_or(0.0);
    println!("browser_duration_s={duration}");

    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut all = vec![first_ms];
    let mut times = Vec::new();
    for k in 0..seeks {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % (duration.max(1.0) * 1000.0) as u64) as f64 / 1000.0;
        let want = b.screen(at).await;
        let start = Instant::now();
        b.js(&format!("window.ddcotermPlayer.seek({at}); return 1;")).await;
        let ms = b.until_shown(&want, start).await;
        println!("browser_seek={k} at_s={at} ms={}", verdict(ms));
        all.push(ms);
        times.extend(ms);
    }
    times.sort_by(f64::total_cmp);
    if let (Some(p50), Some(max)) = (times.get(times.len() / 2), times.last()) {
        println!("browser_seeks={seeks} seek_p50_ms={p50:.0} seek_max_ms={max:.0} target_ms={TARGET_MS}");
    }
    let pass = all.iter().all(|m| m.is_some_and(|ms| ms <= TARGET_MS));
    println!("browser_result={}", if pass { "pass" } else { "FAIL" });
    all.iter().all(Option::is_some)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.len() < 5 {
        usage();
    }
    let seeks = match all.get(5).map(String::as_str) {
        None => 10,
        Some("--seeks") => all.get(6).and_then(|n| n.parse().ok()).unwrap_or_else(|| usage()),
        Some(_) => usage(),
    };
    let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
        println!("browser: skipped: chromium or chromedriver is not on PATH (make tools installs them)");
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,800", format!("--user-data-dir={}", profile.path().display()),
                     "--no-first-run", "--disable-extensions"],
        }),
    );
    let c = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromedriver session");
    let b = Bench {
        c,
        http: reqwest::Client::new(),
        url: all[0].trim_end_matches('/').to_string(),
        token: all[3].clone(),
        id: all[4].clone(),
    };
    let correct = run(&b, &all[1], &all[2], seeks).await;
    let _ = b.c.clone().close().await;
    let _ = child.kill();
    let _ = child.wait();
    if !correct {
        std::process::exit(1);
    }
}
