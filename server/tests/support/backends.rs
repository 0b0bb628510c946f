//! PostgreSQL and S3 (SeaweedFS) for the test suite, started once per test binary when
//! `DDCOTERM_SERVER_BACKEND=postgres-s3`: a throwaway cluster (`initdb` + `pg_ctl`, as the `postgres` user
//! when running as root) and `weed mini`, each on free loopback ports, each stopped by a watchdog shell when
//! the test process exits. Every server gets its own database and its own key prefix in one bucket.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::ObjectStore as _;

const BUCKET: &str = "ddcoterm";
const KEY_ID: &str = "ddcoterm-test";
const SECRET: &str = "ddcoterm-test-secret";

struct Services {
    dir: tempfile::TempDir,
    /// The watchdog shells: they outlive this process on purpose (to stop the services after it exits).
    _watchdogs: Vec<std::process::Child>,
    pg_port: u16,
    pg_bin: PathBuf,
    s3_endpoint: String,
    /// The shell line that starts SeaweedFS again after [`stop_s3`].
    start_weed: String,
}

static SERVICES: OnceLock<Services> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

pub fn enabled() -> bool {
    std::env::var("DDCOTERM_SERVER_BACKEND").as_deref() == Ok("postgres-s3")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Five free ports for `weed mini` (S3, master, volume, filer, admin). It also listens on a port's gRPC twin,
/// the port + 10000, and refuses to start when one chosen port is another's twin ("port ... is reserved for
/// gRPC calculation"): a rare collision of random ports that used to leave a test binary waiting on S3.
fn weed_ports() -> [u16; 5] {
    loop {
        let ports = [(); 5].map(|_| free_port());
        let twins_ok = ports.iter().all(|&p| {
            let twin = u32::from(p) + 10_000;
            twin <= 65_535
                && !ports.contains(&(twin as u16))
                && TcpListener::bind(("127.0.0.1", twin as u16)).is_ok()
        });
        let distinct = (1..ports.len()).all(|i| !ports[..i].contains(&ports[i]));
        if twins_ok && distinct {
            return ports;
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (the server refuses to run as root).
fn pg_cmd(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Starts `start` (a shell command line) in the background with a watchdog that, once this test process has
/// exited, runs `stop`, ends the service and removes `cleanup` (its data). A service that has not exited 10 s
/// after SIGTERM gets SIGKILL: a SeaweedFS that hung in its shutdown outlived its test run (and the watchdog
/// waited on it forever).
fn with_watchdog(start: &str, stop: &str, cleanup: &Path, log: &Path) -> std::process::Child {
    let me = std::process::id();
    let script = format!(
        "{start} & child=$!; while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {stop}; kill $child 2>/dev/null; \
         i=0; while [ $i -lt 20 ] && kill -0 $child 2>/dev/null; do sleep 0.5; i=$((i+1)); done; \
         kill -9 $child 2>/dev/null; wait; rm -rf {}",
        sh_quote(&cleanup.to_string_lossy())
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::from(std::fs::OpenOptions::new().append(true).open(log).unwrap()))
        .spawn()
        .expect("start sh")
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start() -> Services {
    let dir = tempfile::tempdir().unwrap();
    let pg_bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path().join("bin")).find(|p| p.join("initdb").exists()))
        .expect("PostgreSQL is not installed (make tools installs it)");
    // PostgreSQL: data and socket directory owned by the user it runs as.
    let pg_dir = dir.path().join("pg");
    std::fs::create_dir(&pg_dir).unwrap();
    if is_root() {
        assert!(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success());
    }
    let out = pg_cmd(&pg_bin, "initdb")
        .args(["-D"])
        .arg(pg_dir.join("data"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let pg_port = free_port();
    let data = pg_dir.join("data");
    let postgres = {
        let c = pg_cmd(&pg_bin, "postgres");
        let mut v: Vec<String> = vec![c.get_program().to_string_lossy().into()];
        v.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        v.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    };
    let start_pg = format!(
        "{postgres} -D {} -p {pg_port} -h 127.0.0.1 -k {}",
        sh_quote(&data.to_string_lossy()),
        sh_quote(&pg_dir.to_string_lossy())
    );
    let pg_log = dir.path().join("postgres.log");
    std::fs::File::create(&pg_log).unwrap();
    let stop_pg = {
        let c = pg_cmd(&pg_bin, "pg_ctl");
        let mut v: Vec<String> = vec![c.get_program().to_string_lossy().into()];
        v.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        v.extend([
            "-D".into(),
            data.to_string_lossy().into_owned(),
            "-m".into(),
            "immediate".into(),
            "stop".into(),
        ]);
        v.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    };
    let pg_watch = with_watchdog(&start_pg, &stop_pg, &pg_dir, &pg_log);
    wait_port(pg_port, "PostgreSQL", &pg_log);

    // SeaweedFS: every port chosen free; keys make it check signatures.
    let weed = weed_bin();
    assert!(weed.exists(), "{} is missing (make tools installs SeaweedFS)", weed.display());
    let weed_dir = dir.path().join("weed");
    std::fs::create_dir(&weed_dir).unwrap();
    let [s3, master, volume, filer, admin] = weed_ports();
    let start_weed = format!(
        "AWS_ACCESS_KEY_ID={KEY_ID} AWS_SECRET_ACCESS_KEY={SECRET} {} mini -dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 \
         -s3.port={s3} -master.port={master} -volume.port={volume} -filer.port={filer} -admin.port={admin} \
         -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -bucket={BUCKET}",
        sh_quote(&weed.to_string_lossy()),
        sh_quote(&weed_dir.to_string_lossy())
    );
    let weed_log = dir.path().join("weed.log");
    std::fs::File::create(&weed_log).unwrap();
    let weed_watch = with_watchdog(&start_weed, "true", &weed_dir, &weed_log);
    wait_port(s3, "SeaweedFS S3", &weed_log);
    let s3_endpoint = format!("http://127.0.0.1:{s3}");
    wait_s3_ready(&s3_endpoint);
    Services { dir, _watchdogs: vec![pg_watch, weed_watch], pg_port, pg_bin, s3_endpoint, start_weed }
}

/// Ready when a signed request to the bucket is answered.
fn wait_s3_ready(endpoint: &str) {
    let store = s3_store(endpoint);
    let start = Instant::now();
    loop {
        match block_on(store.head(&Key::from("ready-probe"))) {
            Err(object_store::Error::NotFound { .. }) | Ok(_) => break,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(60), "SeaweedFS not ready: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The SeaweedFS processes serving `dir`: their command line starts with the binary (unlike the watchdog
/// shells, whose script merely mentions it).
fn weed_pids(dir: &Path) -> Vec<String> {
    let pattern = format!("^{} mini -dir={}", weed_bin().display(), dir.display());
    let out = Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
}

fn weed_bin() -> PathBuf {
    std::env::var("DDCOTERM_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.build/server-venv/bin/weed"))
}

/// Outage drills: stops this test binary's SeaweedFS (SIGKILL of its processes, found by their data
/// directory, which is unique to this binary).
pub fn stop_s3() {
    let s = services();
    let pids = weed_pids(&s.dir.path().join("weed"));
    assert!(!pids.is_empty(), "no SeaweedFS process found to stop");
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }
    let port: u16 = s.s3_endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "SeaweedFS still listening after kill");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts SeaweedFS again on the same ports and data (with its own watchdog), and waits until it answers.
pub fn start_s3() {
    let s = services();
    let log = s.dir.path().join("weed-restart.log");
    std::fs::File::create(&log).unwrap();
    // Its watchdog process stays running until this test binary exits, then stops it.
    let watchdog = with_watchdog(&s.start_weed, "true", &s.dir.path().join("weed-restarted"), &log);
    std::mem::forget(watchdog);
    wait_s3_ready(&s.s3_endpoint);
}

/// Stops this binary's PostgreSQL (`pg_ctl stop -m immediate`: like a crash).
pub fn stop_pg() {
    let s = services();
    let out = pg_cmd(&s.pg_bin, "pg_ctl")
        .arg("-D")
        .arg(s.dir.path().join("pg/data"))
        .args(["-m", "immediate", "-w", "stop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts PostgreSQL again on the same port and data, and waits until it accepts connections.
pub fn start_pg() {
    let s = services();
    let pg_dir = s.dir.path().join("pg");
    let opts = format!("-p {} -h 127.0.0.1 -k {}", s.pg_port, pg_dir.display());
    let out = pg_cmd(&s.pg_bin, "pg_ctl")
        .arg("-D")
        .arg(pg_dir.join("data"))
        .args(["-o", &opts, "-l"])
        .arg(s.dir.path().join("postgres-restart.log"))
        .args(["-w", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success(), "pg_ctl start failed");
    wait_port(s.pg_port, "PostgreSQL (restarted)", &s.dir.path().join("postgres-restart.log"));
}

fn services() -> &'static Services {
    SERVICES.get_or_init(start)
}

fn s3_store(endpoint: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id(KEY_ID)
        .with_secret_access_key(SECRET)
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The variables that point one new server at its own database and key prefix (empty when disabled).
pub fn server_env() -> Vec<(String, String)> {
    if !enabled() {
        return vec![];
    }
    let s = services();
    let db = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    let out = pg_cmd(&s.pg_bin, "createdb")
        .args(["-h", "127.0.0.1", "-p", &s.pg_port.to_string(), "-U", "postgres", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
    vec![
        ("DDCOTERMD_DATABASE_URL".into(), format!("postgres://postgres@127.0.0.1:{}/{db}", s.pg_port)),
        ("DDCOTERMD_OBJECT_STORE".into(), format!("s3://{BUCKET}/{db}")),
        ("AWS_ENDPOINT_URL".into(), s.s3_endpoint.clone()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
    ]
}

fn prefix_of(env: &[(String, String)]) -> Option<String> {
    env.iter()
        .find(|(k, _)| k == "DDCOTERMD_OBJECT_STORE")
        .and_then(|(_, v)| v.strip_prefix(&format!("s3://{BUCKET}/")).map(str::to_string))
}

/// Every object under this server's prefix (keys relative to it), or `None` for a local-directory server.
pub fn objects(env: &[(String, String)]) -> Option<Vec<(String, Vec<u8>)>> {
    let prefix = prefix_of(env)?;
    let store = s3_store(&services().s3_endpoint);
    let mut out = block_on(async {
        use futures::TryStreamExt as _;
        let metas: Vec<_> = store.list(Some(&Key::from(prefix.as_str()))).try_collect().await.unwrap();
        let mut v = Vec::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap().to_vec();
            let key = m.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap().to_string();
            v.push((key, bytes));
        }
        v
    });
    out.sort();
    Some(out)
}

/// Overwrites an object under this server's prefix; false for a local-directory server.
pub fn write_object(env: &[(String, String)], key: &str, bytes: &[u8]) -> bool {
    let Some(prefix) = prefix_of(env) else { return false };
    let store = s3_store(&services().s3_endpoint);
    block_on(store.put(&Key::from(format!("{prefix}/{key}")), bytes.to_vec().into())).unwrap();
    true
}

/// A new database holding `dump` (plain SQL from pg_dump, restored with psql; any error fails) and a new key
/// prefix holding every file under `objects` (keys relative to it): the variables a server started on them
/// needs. For data written by an earlier release (server/tests/upgrade.rs).
pub fn restore(dump: &Path, objects: &Path) -> Vec<(String, String)> {
    let env = server_env();
    let url = &env.iter().find(|(k, _)| k == "DDCOTERMD_DATABASE_URL").unwrap().1;
    let out = pg_cmd(&services().pg_bin, "psql")
        .args(["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", url])
        .stdin(std::fs::File::open(dump).unwrap_or_else(|e| panic!("{}: {e}", dump.display())))
        .output()
        .unwrap();
    assert!(out.status.success(), "psql < {}: {}", dump.display(), String::from_utf8_lossy(&out.stderr));
    fn walk(root: &Path, dir: &Path, env: &[(String, String)]) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, env);
            } else {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                assert!(write_object(env, &key, &std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(objects, objects, &env);
    env
}

/// One value from a query on a server's database (`env` as [`server_env`] or [`restore`] returned it).
pub fn query(env: &[(String, String)], sql: &str) -> String {
    let url = &env.iter().find(|(k, _)| k == "DDCOTERMD_DATABASE_URL").expect("a PostgreSQL server").1;
    let out = pg_cmd(&services().pg_bin, "psql").args(["-X", "-tAc", sql, "-d", url]).output().unwrap();
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
