//! The fleet end to end on real containers: three bastion containers and one session-server container,
//! installed from bare base containers by `ansible/site.yml` (the `ddcoterm_server` role on
//! `session_servers`, the `ddcoterm` role in bastion mode on `bastions`, each bastion with its own host token
//! created on the server), the server on PostgreSQL + S3 (SeaweedFS) over TLS. PostgreSQL and SeaweedFS run
//! on the CI host (the binaries `make tools` installs), bound to the docker network's gateway address, which
//! the server container reaches; everything else runs in the containers.
//!
//! Users log in over real `ssh` (sshd's `ForceCommand ddcoterm ssh-login` from the role) and run recorded
//! commands, guarded ones (a lint refusing `kubectl scale` without a terminal) and interactive shells; the
//! server container is `docker kill`ed while shells are open and started again; one bastion loses its
//! network for 30 s while its users keep recording. At the end every session of every bastion is complete on
//! the server, its cast byte-identical to the bastion agent's (`GET .../cast`), `ddcoterm-server verify`
//! passes, and no agent's spool holds anything.
//!
//! The playbook commands and the example variables come from docs/fleet.md (the blocks marked
//! `fleet_e2e`), so the documented rollout is the one CI runs. The numbers `bench/fleet.sh` prints are
//! measured here and written to `target/tmp/fleet-numbers.txt`: rollout time, second-run `changed`,
//! sessions recorded vs on the server, and the time from a session's end to its being complete on the server
//! (p50/p99) without and with the server killed.
//!
//! Needs docker, the base image (`make base-image`), the Python tools (`make py-tools`), PostgreSQL and
//! SeaweedFS (`make tools`); without one of them it prints "skipped: <why>".

#[path = "support/certs.rs"]
#[allow(dead_code)] // make_certs (localhost) is for the other suites
mod certs;
mod fleet_common;
#[path = "support/server.rs"]
#[allow(dead_code)]
mod server_support;

use fleet_common::*;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BASTIONS: [&str; 3] = ["bastion-1", "bastion-2", "bastion-3"];
const SERVER_HOST: &str = "sessions";
const SERVER_PORT: u16 = 7443;
const USERS: [&str; 2] = ["alice", "bob"];
const STATE: &str = "/var/spool/ddcoterm";
const BUCKET: &str = "ddcoterm";
const S3_KEY_ID: &str = "ddcoterm-e2e";
const S3_SECRET: &str = "ddcoterm-e2e-secret";
/// What ssh-login says when a lint needs an answer and the session has no terminal.
const NO_TTY: &str = "has no terminal to ask on";
/// How long the bastion stays off the network.
const OFFLINE: Duration = Duration::from_secs(30);

fn run(cmd: &mut Command) -> Run {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn docker(args: &[&str]) -> Run {
    run(Command::new("docker").args(args))
}

fn root(c: &str, script: &str) -> Run {
    exec(c, "root", &[], &["sh", "-ec", script])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn venv_bin(tool: &str) -> Option<PathBuf> {
    let venv =
        std::env::var_os("FLEET_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".build/venv"));
    let p = venv.join("bin").join(tool);
    p.exists().then_some(p)
}

fn pg_bin() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("initdb").exists())
}

fn weed_bin() -> PathBuf {
    std::env::var_os("DDCOTERM_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".build/server-venv/bin/weed"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Everything the test started, removed when it ends (passed or not): containers, network, host services.
struct Fleet {
    net: String,
    gateway: String,
    containers: Vec<String>,
    services: Vec<Child>,
    pg_stop: Option<Command>,
    dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", c]).output();
        }
        let _ = Command::new("docker").args(["network", "rm", &self.net]).output();
        if let Some(mut stop) = self.pg_stop.take() {
            let _ = stop.output();
        }
        for s in &mut self.services {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Fleet {
    fn name(&self, host: &str) -> String {
        format!("{}-{host}", self.net)
    }

    /// The container's address on the fleet network (it may change when the container restarts).
    fn ip(&self, host: &str) -> String {
        let f = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.net);
        docker(&["inspect", "-f", &f, &self.name(host)]).ok("docker inspect").stdout.trim().to_string()
    }

    fn start_container(&mut self, host: &str) {
        let name = self.name(host);
        let mut args = vec!["run", "-d", "--name", &name, "--hostname", host, "--network", &self.net];
        args.extend(["--network-alias", host, "--label", "ddcoterm.test=fleet_e2e"]);
        let image = format!("{}:{}", BASE_IMAGE.0, BASE_IMAGE.1);
        args.extend([image.as_str(), "sleep", "infinity"]);
        docker(&args).ok("docker run");
        self.containers.push(name);
    }

    /// PostgreSQL as the `postgres` user (when root), listening on the network's gateway address only;
    /// the fleet's subnet may connect (trust: a throwaway cluster).
    fn start_postgres(&mut self, pg: &Path, subnet: &str) -> String {
        let data = self.dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        let as_pg = |tool: &str| -> Command {
            if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(pg.join(tool));
                c
            } else {
                Command::new(pg.join(tool))
            }
        };
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data)).ok("chown");
        }
        run(as_pg("initdb").arg("-D").arg(data.join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]))
        .ok("initdb");
        let hba = data.join("data/pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap();
        text.push_str(&format!("host all all {subnet} trust\n"));
        std::fs::write(&hba, text).unwrap();
        let port = free_port();
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let child = as_pg("postgres")
            .arg("-D")
            .arg(data.join("data"))
            .args(["-p", &port.to_string(), "-h", &self.gateway, "-k"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.services.push(child);
        let mut stop = as_pg("pg_ctl");
        stop.arg("-D").arg(data.join("data")).args(["-m", "immediate", "stop"]);
        self.pg_stop = Some(stop);
        let gw = self.gateway.clone();
        wait_until("PostgreSQL", Duration::from_secs(60), || {
            std::net::TcpStream::connect((gw.as_str(), port)).is_ok()
        });
        run(as_pg("createdb").arg("-h").arg(&data).args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "ddcoterm",
        ]))
        .ok("createdb");
        format!("postgres://postgres@{}:{port}/ddcoterm", self.gateway)
    }

    /// SeaweedFS (`weed mini`: S3 with signature checks) on the gateway address; returns the S3 endpoint.
    fn start_seaweedfs(&mut self, weed: &Path) -> String {
        let dir = self.dir.path().join("weed");
        std::fs::create_dir(&dir).unwrap();
        let [s3, master, volume, filer, admin] = [(); 5].map(|_| free_port());
        let log = std::fs::File::create(self.dir.path().join("weed.log")).unwrap();
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .arg(format!("-ip={}", self.gateway))
            .arg(format!("-ip.bind={}", self.gateway))
            .args([
                format!("-s3.port={s3}"),
                format!("-master.port={master}"),
                format!("-volume.port={volume}"),
                format!("-filer.port={filer}"),
                format!("-admin.port={admin}"),
            ])
            .args(["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-bucket={BUCKET}"))
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start weed");
        self.services.push(child);
        let gw = self.gateway.clone();
        wait_until("SeaweedFS S3", Duration::from_secs(60), || {
            std::net::TcpStream::connect((gw.as_str(), s3)).is_ok()
        });
        format!("http://{}:{s3}", self.gateway)
    }
}

/// A fenced block of docs/fleet.md that follows the line `<!-- fleet_e2e: NAME -->`.
fn doc_block(name: &str) -> String {
    fleet_common::doc_block("fleet_e2e", name)
}

/// The documented playbook commands (block `rollout`): each `ansible-playbook` line, with the documented
/// inventory and variables file replaced by the test's.
fn documented_playbook_runs(inventory: &Path, vars: &Path, overrides: &Path) -> Vec<Vec<String>> {
    let block = doc_block("rollout");
    let mut runs = Vec::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "cd ansible" {
            continue;
        }
        assert!(
            line.starts_with("ansible-playbook "),
            "docs/fleet.md rollout block: unexpected line {line:?}"
        );
        let mut argv: Vec<String> = Vec::new();
        let (mut inv, mut var) = (false, false);
        for w in line.split_whitespace() {
            match w {
                "inventory/fleet.ini" => {
                    inv = true;
                    argv.push(inventory.display().to_string());
                }
                "@fleet-vars.yml" => {
                    var = true;
                    argv.push(format!("@{}", vars.display()));
                    argv.push("-e".into());
                    argv.push(format!("@{}", overrides.display()));
                }
                w => argv.push(w.to_string()),
            }
        }
        assert!(
            inv && var,
            "docs/fleet.md rollout: {line:?} must use -i inventory/fleet.ini -e @fleet-vars.yml"
        );
        runs.push(argv);
    }
    assert_eq!(runs.len(), 2, "docs/fleet.md rollout: the rollout and its second run");
    runs
}

/// Runs one playbook command; returns (changed per host, stdout). Fails on failed/unreachable hosts.
fn playbook(argv: &[String]) -> (BTreeMap<String, u32>, String) {
    let bin = venv_bin("ansible-playbook").unwrap();
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(&bin)
        .current_dir(repo().join("ansible"))
        .env("PATH", path)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .args(&argv[1..])
        .output()
        .expect("run ansible-playbook");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{argv:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut changed = BTreeMap::new();
    for l in stdout.lines().skip_while(|l| !l.starts_with("PLAY RECAP")).skip(1) {
        let Some((host, stats)) = l.split_once(':') else { continue };
        let get = |k: &str| -> u32 {
            stats
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k}= in {l:?}"))
        };
        assert_eq!((get("failed"), get("unreachable")), (0, 0), "{l}");
        changed.insert(host.trim().to_string(), get("changed"));
    }
    assert_eq!(changed.len(), 4, "a recap line per host:\n{stdout}");
    (changed, stdout)
}

/// Host-side reads of the server's API over TLS (curl, the test CA, the auditor token).
struct Api {
    ca: PathBuf,
    token: String,
    ip: Arc<Mutex<String>>,
    tmp: PathBuf,
}

impl Api {
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let body = self.tmp.join(format!("body-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let ip = self.ip.lock().unwrap().clone();
        let o = run(Command::new("curl")
            .args(["-sS", "--connect-timeout", "1", "--max-time", "10", "--cacert"])
            .arg(&self.ca)
            .args(["--resolve", &format!("{SERVER_HOST}:{SERVER_PORT}:{ip}")])
            .args(["-H", &format!("Authorization: Bearer {}", self.token), "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .arg(format!("https://{SERVER_HOST}:{SERVER_PORT}{path}")));
        let bytes = std::fs::read(&body).unwrap_or_default();
        let _ = std::fs::remove_file(&body);
        (o.stdout.trim().parse().unwrap_or(0), bytes)
    }

    fn complete(&self, id: &str) -> bool {
        let (code, body) = self.get(&format!("/api/v1/sessions/{id}"));
        code == 200 && String::from_utf8_lossy(&body).contains("\"state\":\"complete\"")
    }
}

/// Session ids the agent of `bastion` holds (its casts), per user.
fn casts(f: &Fleet, bastion: &str) -> Vec<(String, String)> {
    let out = root(&f.name(bastion), &format!("cd {STATE}/recordings && ls -1 */*.cast 2>/dev/null || true"))
        .ok("list casts")
        .stdout;
    out.lines()
        .filter_map(|l| {
            let (user, file) = l.split_once('/')?;
            Some((user.to_string(), file.strip_suffix(".cast")?.to_string()))
        })
        .collect()
}

/// Measures, in a background thread, when each ended session is complete on the server.
#[derive(Default)]
struct Latencies {
    pending: Vec<(String, Instant, bool)>,
    done: Vec<(String, Duration, bool)>,
}

fn new_ids(f: &Fleet, bastion: &str, before: &[(String, String)]) -> Vec<String> {
    casts(f, bastion).into_iter().filter(|c| !before.contains(c)).map(|(_, id)| id).collect()
}

struct Ssh {
    dir: tempfile::TempDir,
}

impl Ssh {
    fn new() -> Ssh {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "fleet-e2e", "-f"])
            .arg(&key))
        .ok("ssh-keygen");
        std::fs::write(
            dir.path().join("config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
                 UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n  ConnectTimeout 20\n",
                key.display()
            ),
        )
        .unwrap();
        Ssh { dir }
    }
    fn pubkey(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("id.pub")).unwrap()
    }
    fn cmd(&self, user: &str, ip: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(self.dir.path().join("config")).arg(format!("{user}@{ip}"));
        c
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(d: &[(String, Duration, bool)], killed: bool) -> (usize, f64, f64) {
    let mut v: Vec<f64> = d.iter().filter(|x| x.2 == killed).map(|x| x.1.as_secs_f64()).collect();
    v.sort_by(f64::total_cmp);
    assert!(!v.is_empty(), "no session measured (killed={killed})");
    (v.len(), percentile(&v, 0.5), percentile(&v, 0.99))
}

/// Starts the server the way its unit does (no systemd in a container): the unit's user, command,
/// environment and EnvironmentFile, in its working directory.
fn start_server(f: &Fleet) {
    let c = f.name(SERVER_HOST);
    let unit = root(&c, "cat /etc/systemd/system/ddcoterm-server.service").ok("unit").stdout;
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in the unit"))
            .to_string()
    };
    let env_file = value("EnvironmentFile=");
    let env_file = env_file.trim_start_matches('-');
    let mut args: Vec<String> = vec!["exec".into(), "-d".into(), "-u".into(), value("User=")];
    args.extend(["-w".into(), value("WorkingDirectory="), "-e".into(), value("Environment=")]);
    for line in root(&c, &format!("cat {env_file}")).ok("environment file").stdout.lines() {
        let (k, v) = line.split_once('=').expect("KEY=value");
        let v: String = serde_json::from_str(v).expect("a quoted value");
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    args.extend([c.clone(), "sh".into(), "-c".into()]);
    args.push(format!("exec {} >>/tmp/server.log 2>&1", value("ExecStart=")));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv).ok("start the server");
}

/// Starts a bastion's agent the way its unit does: the unit's user and command, `/run/ddcoterm` as its
/// RuntimeDirectory.
fn start_agent(f: &Fleet, bastion: &str) {
    let c = f.name(bastion);
    let unit = root(&c, "cat /etc/systemd/system/ddcoterm-agent.service").ok("agent unit").stdout;
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in the unit"))
            .to_string()
    };
    let user = value("User=");
    root(&c, &format!("install -d -o {user} -g {user} -m 0755 /run/ddcoterm")).ok("runtime dir");
    docker(&[
        "exec",
        "-d",
        "-u",
        &user,
        &c,
        "sh",
        "-c",
        &format!("umask 077; exec {} >>/tmp/agent.log 2>&1", value("ExecStart=")),
    ])
    .ok("start the agent");
    wait_until("the agent's socket", Duration::from_secs(30), || {
        root(&c, "test -S /run/ddcoterm/agent.sock").code == 0
    });
}

/// A recorded remote command over ssh; returns when it ended.
fn ssh_command(ssh: &Ssh, user: &str, ip: &str, remote: &str) -> (Run, Instant) {
    let r = run(ssh.cmd(user, ip).arg(remote).stdin(Stdio::null()));
    (r, Instant::now())
}

#[test]
fn fleet_end_to_end_on_real_containers() {
    if !docker_available("fleet_e2e") {
        println!("skipped: no docker engine");
        return;
    }
    require_image(BASE_IMAGE);
    let Some(pg) = pg_bin() else {
        println!("skipped: PostgreSQL is not installed (make tools)");
        return;
    };
    if !weed_bin().exists() {
        println!("skipped: SeaweedFS is missing at {} (make tools)", weed_bin().display());
        return;
    }
    if is_root() && run(Command::new("id").arg("postgres")).code != 0 {
        println!("skipped: running as root without a postgres user to run the cluster as");
        return;
    }
    assert!(venv_bin("ansible-playbook").is_some(), "the Python tools are missing: run make py-tools");
    let t0 = Instant::now();

    // The network, the host services on its gateway, four bare containers.
    let net = format!("ddcoterm-e2e-{}", std::process::id());
    docker(&["network", "create", "--label", "ddcoterm.test=fleet_e2e", &net]).ok("network create");
    let mut f = Fleet {
        net: net.clone(),
        gateway: String::new(),
        containers: vec![],
        services: vec![],
        pg_stop: None,
        dir: tempfile::tempdir().unwrap(),
    };
    let ipam = docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}} {{(index .IPAM.Config 0).Subnet}}",
        &net,
    ])
    .ok("network inspect")
    .stdout;
    let (gateway, subnet) = ipam.trim().split_once(' ').expect("gateway and subnet");
    f.gateway = gateway.to_string();
    let subnet = subnet.to_string();
    let database_url = f.start_postgres(&pg, &subnet);
    let s3 = f.start_seaweedfs(&weed_bin());
    for host in std::iter::once(SERVER_HOST).chain(BASTIONS) {
        f.start_container(host);
    }
    // What the site already has before ddcoterm: sshd, the users and their keys, a kubectl.
    let ssh = Ssh::new();
    for b in BASTIONS {
        exec(
            &f.name(b),
            "root",
            &[("PUBKEY", ssh.pubkey().trim())],
            &[
                "sh",
                "-ec",
                "ssh-keygen -A >/dev/null && mkdir -p /run/sshd \
                 && printf '#!/bin/sh\\necho \"fake-kubectl $*\"\\n' > /usr/bin/kubectl && chmod 755 /usr/bin/kubectl \
                 && for u in alice bob; do useradd -m -s /bin/bash $u \
                    && install -d -m 700 -o $u -g $u /home/$u/.ssh \
                    && printf '%s\\n' \"$PUBKEY\" > /home/$u/.ssh/authorized_keys \
                    && chown $u:$u /home/$u/.ssh/authorized_keys && chmod 600 /home/$u/.ssh/authorized_keys; done \
                 && /usr/sbin/sshd -E /var/log/sshd.log",
            ],
        )
        .ok("prepare the bastion");
    }

    // Inventory and variables: the documented example, with this run's paths and addresses on top.
    let certs_dir = f.dir.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    certs::make_certs_for(&certs_dir, SERVER_HOST, &format!("DNS:{SERVER_HOST}"));
    let inv_dir = f.dir.path().join("inventory");
    std::fs::create_dir_all(inv_dir.join("group_vars")).unwrap();
    for g in ["bastions.yml", "session_servers.yml"] {
        std::fs::copy(
            repo().join("ansible/inventory/group_vars").join(g),
            inv_dir.join("group_vars").join(g),
        )
        .unwrap();
    }
    let mut ini = format!(
        "[session_servers]\n{SERVER_HOST} ansible_connection=community.docker.docker ansible_host={}\n\n[bastions]\n",
        f.name(SERVER_HOST)
    );
    for b in BASTIONS {
        ini.push_str(&format!("{b} ansible_connection=community.docker.docker ansible_host={}\n", f.name(b)));
    }
    let inventory = inv_dir.join("fleet.ini");
    std::fs::write(&inventory, ini).unwrap();
    let vars = f.dir.path().join("fleet-vars.yml");
    std::fs::write(&vars, doc_block("vars")).unwrap();
    let client_bin = env!("CARGO_BIN_EXE_ddcoterm");
    let url = format!("https://{SERVER_HOST}:{SERVER_PORT}");
    let overrides = serde_json::json!({
        "ddcoterm_binary_src": client_bin,
        "ddcoterm_server_binary_src": server_support::bin(),
        "ddcoterm_server_url": url,
        "ddcoterm_server_ca_file": certs_dir.join("ca.pem"),
        "ddcoterm_server_tls_cert_src": certs_dir.join("server.pem"),
        "ddcoterm_server_tls_key_src": certs_dir.join("server.key"),
        "ddcoterm_server_config": {
            "public_url": url,
            "database_url": database_url,
            "object_store": format!("s3://{BUCKET}/e2e"),
        },
        "ddcoterm_server_environment": {
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_ENDPOINT_URL": s3,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
        },
    });
    let overrides_file = f.dir.path().join("test-overrides.json");
    std::fs::write(&overrides_file, overrides.to_string()).unwrap();
    let runs = documented_playbook_runs(&inventory, &vars, &overrides_file);

    // 1. Rollout from bare containers, then the same again: nothing changes.
    let start = Instant::now();
    let (changed, out) = playbook(&runs[0]);
    let rollout = start.elapsed().as_secs_f64();
    assert!(changed.values().all(|&c| c > 0), "the first run changes every host: {changed:?}");
    assert!(!out.contains(S3_SECRET), "the S3 secret is never printed");
    let (changed, out) = playbook(&runs[1]);
    let second: u32 = changed.values().sum();
    assert_eq!(second, 0, "second run changes nothing:\n{out}");
    report(&format!(
        "fleet_e2e: rollout of 3 bastions + server from bare containers {rollout:.1}s; second run changed={second}"
    ));

    // Each bastion holds its own host token, readable by the agent only; the server has one per bastion.
    let mut tokens = Vec::new();
    for b in BASTIONS {
        let c = f.name(b);
        let st = root(&c, "stat -c '%U:%G %a' /etc/ddcoterm/agent-credentials.yaml").ok("stat").stdout;
        assert_eq!(st.trim(), "ddcoterm-agent:ddcoterm-agent 600", "{b}");
        let t =
            root(&c, "sed -n 's/^server_token: \"\\(.*\\)\"$/\\1/p' /etc/ddcoterm/agent-credentials.yaml")
                .ok("token")
                .stdout
                .trim()
                .to_string();
        assert!(!t.is_empty(), "{b} has a host token");
        let alice = exec(&c, "alice", &[], &["cat", "/etc/ddcoterm/agent-credentials.yaml"]);
        assert_ne!(alice.code, 0, "a user reads the credentials on {b}");
        tokens.push(t);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "one token per bastion");
    let server = f.name(SERVER_HOST);
    let cli = |args: &str| -> Run {
        exec(
            &server,
            "ddcoterm-server",
            &[],
            &["sh", "-c", &format!("ddcoterm-server --config /etc/ddcoterm-server/config.yaml {args}")],
        )
    };
    let list = cli("token list").ok("token list").stdout;
    for b in BASTIONS {
        assert!(
            list.lines().any(|l| l.starts_with(b) && l.contains("host") && l.contains("active")),
            "{b}:\n{list}"
        );
    }

    // 2. The services, started as their units start them.
    start_server(&f);
    let auditor =
        cli("token create e2e-auditor --role auditor").ok("auditor token").stdout.trim().to_string();
    let api_tmp = f.dir.path().join("api");
    std::fs::create_dir(&api_tmp).unwrap();
    let api = Arc::new(Api {
        ca: certs_dir.join("ca.pem"),
        token: auditor,
        ip: Arc::new(Mutex::new(f.ip(SERVER_HOST))),
        tmp: api_tmp,
    });
    wait_until("the server's /readyz", Duration::from_secs(60), || api.get("/readyz").0 == 200);
    for b in BASTIONS {
        start_agent(&f, b);
    }

    // The latency poller: every pending session until it is complete.
    let lat = Arc::new(Mutex::new(Latencies::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (lat, api, stop) = (lat.clone(), api.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pending: Vec<(String, Instant, bool)> = lat.lock().unwrap().pending.clone();
                for (id, ended, killed) in pending {
                    if api.complete(&id) {
                        let took = ended.elapsed();
                        let mut l = lat.lock().unwrap();
                        l.pending.retain(|p| p.0 != id);
                        l.done.push((id, took, killed));
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let ended = |ids: Vec<String>, at: Instant, killed: bool| {
        assert!(!ids.is_empty(), "a session was recorded");
        let mut l = lat.lock().unwrap();
        for id in ids {
            l.pending.push((id, at, killed));
        }
    };

    // 3. Normal operation: recorded and guarded commands over ssh on every bastion.
    for round in 0..2 {
        for b in BASTIONS {
            let ip = f.ip(b);
            for u in USERS {
                let before = casts(&f, b);
                let (r, at) =
                    ssh_command(&ssh, u, &ip, &format!("echo e2e-{b}-{u}-{round}; kubectl get pods"));
                let r = r.ok("a recorded command over ssh");
                assert!(
                    r.stdout.contains(&format!("e2e-{b}-{u}-{round}"))
                        && r.stdout.contains("fake-kubectl get pods")
                );
                ended(new_ids(&f, b, &before), at, false);
            }
            // Guarded: the org's lint needs an answer, there is no terminal: refused, nothing ran.
            let before = casts(&f, b);
            let (r, _) = ssh_command(&ssh, "alice", &ip, "kubectl scale deploy/web --replicas=0");
            assert_ne!(r.code, 0, "the lint refuses without a terminal: {}", r.stdout);
            assert!(r.stderr.contains(NO_TTY), "{}", r.stderr);
            assert!(!r.stdout.contains("fake-kubectl"), "the guarded command did not run");
            assert!(new_ids(&f, b, &before).is_empty(), "a refused command runs nothing to record");
        }
    }

    // 4. Interactive shells; the server is killed under them; a bastion goes offline for 30 s.
    let mut shells = Vec::new();
    for b in &BASTIONS[..2] {
        let before = casts(&f, b);
        let mut cmd = ssh.cmd("bob", &f.ip(b));
        cmd.arg("-tt");
        let mut s = expectrl::Session::spawn(cmd).expect("spawn ssh on a PTY");
        s.set_expect_timeout(Some(Duration::from_secs(30)));
        s.expect("recording session").expect("ssh-login records the login");
        s.expect("$ ").expect("a shell prompt");
        s.send(format!("echo shell-on-{b}-$((6*7))\r")).unwrap();
        s.expect(format!("shell-on-{b}-42")).unwrap();
        let id = new_ids(&f, b, &before);
        assert_eq!(id.len(), 1, "one recording for the login on {b}: {id:?}");
        shells.push((s, id));
    }
    docker(&["kill", &server]).ok("docker kill the server");
    let killed_at = Instant::now();
    let offline = BASTIONS[2];
    docker(&["network", "disconnect", &net, &f.name(offline)]).ok("disconnect");
    let offline_at = Instant::now();
    for ((s, _), b) in shells.iter_mut().zip(BASTIONS) {
        s.send(format!("echo while-the-server-is-down-on-{b}\r")).unwrap();
        s.expect(format!("while-the-server-is-down-on-{b}")).unwrap();
    }
    for b in &BASTIONS[..2] {
        let before = casts(&f, b);
        let (r, at) = ssh_command(&ssh, "alice", &f.ip(b), "echo server-down; kubectl get nodes");
        r.ok("a recorded command while the server is down");
        ended(new_ids(&f, b, &before), at, true);
    }
    for i in 0..2 {
        let before = casts(&f, offline);
        let r = exec(
            &f.name(offline),
            "alice",
            &[],
            &["ddcoterm", "--", "sh", "-c", &format!("echo offline-{i}")],
        );
        let at = Instant::now();
        assert!(r.ok("recorded while offline").stdout.contains(&format!("offline-{i}")));
        ended(new_ids(&f, offline, &before), at, true);
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(killed_at.elapsed()));
    docker(&["start", &server]).ok("docker start the server");
    *api.ip.lock().unwrap() = f.ip(SERVER_HOST);
    start_server(&f);
    wait_until("the restarted server's /readyz", Duration::from_secs(60), || api.get("/readyz").0 == 200);
    for (mut s, id) in shells {
        s.send("echo after-the-restart; exit 3\r").unwrap();
        s.expect("ended (exit 3)").expect("the shell ends with its status");
        let at = Instant::now();
        ended(id, at, true);
    }
    std::thread::sleep(OFFLINE.saturating_sub(offline_at.elapsed()));
    docker(&["network", "connect", &net, &f.name(offline)]).ok("reconnect");

    // 5. Everything arrives: complete, byte-identical, verified; no spool holds anything.
    wait_until("every session complete on the server", Duration::from_secs(240), || {
        lat.lock().unwrap().pending.is_empty()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    let verify_env: Vec<String> = root(&server, "cat /etc/ddcoterm-server/environment")
        .ok("environment")
        .stdout
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            format!("{k}={}", serde_json::from_str::<String>(v).unwrap())
        })
        .collect();
    let mut recorded = 0;
    let mut with_events = 0;
    for b in BASTIONS {
        for (user, id) in casts(&f, b) {
            recorded += 1;
            let (code, meta) = api.get(&format!("/api/v1/sessions/{id}"));
            let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap_or_default();
            assert_eq!(code, 200, "{b}: {id} on the server");
            assert_eq!(meta["state"], "complete", "{b}: {id}: {meta}");
            assert_eq!(meta["user"], user.as_str(), "{b}: {id}: {meta}");
            assert_eq!(meta["host"], b, "{b}: {id}: filed under the bastion's own host token: {meta}");
            if meta["events"].as_array().is_some_and(|e| !e.is_empty()) {
                with_events += 1;
            }
            let local = docker(&["exec", &f.name(b), "cat", &format!("{STATE}/recordings/{user}/{id}.cast")]);
            let (code, stored) = api.get(&format!("/api/v1/sessions/{id}/cast"));
            assert_eq!(code, 200);
            assert!(
                stored == local.stdout.as_bytes(),
                "{b}: {id}: the server's cast is the agent's, byte for byte"
            );
            let mut args = vec!["exec".to_string(), "-u".into(), "ddcoterm-server".into()];
            for e in &verify_env {
                args.extend(["-e".into(), e.clone()]);
            }
            args.extend([
                server.clone(),
                "ddcoterm-server".into(),
                "--config".into(),
                "/etc/ddcoterm-server/config.yaml".into(),
                "verify".into(),
                id.clone(),
            ]);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            docker(&argv).ok(&format!("ddcoterm-server verify {id}"));
        }
        let spooled = root(&f.name(b), &format!("find {STATE}/spool -type f ! -name '*.lock' | wc -l"))
            .ok("spool")
            .stdout;
        assert_eq!(
            spooled.trim(),
            "0",
            "{b}: the spool is empty: {}",
            root(&f.name(b), &format!("find {STATE}/spool -type f")).stdout
        );
    }
    let (_, list) = api.get("/api/v1/sessions?limit=200");
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap_or_default();
    let on_server = list["sessions"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(on_server, recorded, "sessions recorded on the bastions vs on the server: {list}");
    assert!(with_events > 0, "process events reached the server");

    let l = lat.lock().unwrap();
    let (n, p50, p99) = summary(&l.done, false);
    report(&format!(
        "fleet_e2e: sessions recorded {recorded}, on the server {on_server} ({with_events} with process events)"
    ));
    report(&format!(
        "fleet_e2e: session end -> complete on the server: p50 {p50:.2}s p99 {p99:.2}s ({n} sessions)"
    ));
    let (n, p50, p99) = summary(&l.done, true);
    report(&format!(
        "fleet_e2e: same with the server killed once (10 s) and a bastion offline 30 s: p50 {p50:.2}s p99 {p99:.2}s ({n} sessions)"
    ));
    report(&format!("fleet_e2e: whole test {:.0}s", t0.elapsed().as_secs_f64()));
}
