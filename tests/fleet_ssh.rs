//! `ddcoterm ssh-login` behind a real OpenSSH server: a bastion container (Debian's sshd with the ForceCommand
//! drop-in the Ansible role writes) and a target container, reached with the host's `ssh`, `scp`, `sftp` and
//! `git` (rsync runs in the target container). Interactive logins and remote commands are recorded with the
//! client address and key fingerprint; exit codes and shell quoting match a plain sshd; scp, sftp, rsync and
//! git pass through byte-exact and unrecorded at the throughput of a plain sshd; ProxyJump works; a lint fires
//! inside the session.
//!
//! Needs docker and the local base image (`make base-image`). Skips only when docker is absent.

mod fleet_common;

use fleet_common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use testcontainers::core::ImageExt;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage};

const LINT: &str = "kubectl scale without --context";
const SYSTEM_CONFIG: &str = r#"process_config:
  commands:
    - command: kubectl
      lints:
        - |
          if has_arg("scale") and flags.context == nil then
            return "kubectl scale without --context"
          end
"#;
/// What the Ansible role writes with its defaults (ddcoterm_ssh_force_command: true, no groups).
const DROP_IN: &str =
    "ExposeAuthInfo yes\n\nMatch Group *\n    ForceCommand /usr/local/bin/ddcoterm ssh-login\n";
const TRANSFER_MB: usize = 50;
/// The tests of this file run one at a time: the throughput comparison must not share the CPU with the other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Rounds of every transfer through each server: at least the first, more (up to the second) while the
/// ratio misses the bound. Load from other processes only ever adds time, so more rounds of both sides move
/// best-of towards the unloaded figure and never flatter one side.
const ROUNDS: (usize, usize) = (3, 8);

/// The host side: a client key, an ssh config every client (and ProxyJump's inner ssh) reads, free ports.
struct Client {
    dir: tempfile::TempDir,
    forced: u16,
    plain: u16,
    internal: u16,
    target: u16,
}

impl Client {
    fn new(user: &str) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "fleet-ssh-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client) on the host");
        assert!(st.success());
        std::fs::write(
            dir.path().join("config"),
            format!(
                "Host *\n  User {user}\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
                 UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n  ConnectTimeout 20\n",
                key.display()
            ),
        )
        .unwrap();
        let ports = free_ports(4);
        Client { dir, forced: ports[0], plain: ports[1], internal: ports[2], target: ports[3] }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    fn pubkey(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("id.pub")).unwrap()
    }
    /// `ssh-keygen -lf id.pub`'s fingerprint: what the recording must name.
    fn fingerprint(&self) -> String {
        let o = Command::new("ssh-keygen").arg("-lf").arg(self.dir.path().join("id.pub")).output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).unwrap().to_string()
    }
    fn ssh(&self, port: u16) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(self.config()).args(["-p", &port.to_string(), "127.0.0.1"]);
        c
    }
    fn run(&self, port: u16, remote: &str) -> Output {
        self.ssh(port).arg(remote).stdin(Stdio::null()).output().expect("run ssh")
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A container on the host network (sshd on the ports chosen above) with alice and the client's key.
fn start(name: &str, pubkey: &str) -> Container<GenericImage> {
    let c = GenericImage::new(BASE_IMAGE.0, BASE_IMAGE.1)
        .with_entrypoint("sleep")
        .with_cmd(["infinity"])
        .with_network("host")
        .with_label("ddcoterm.test", format!("fleet_ssh_{name}"))
        .start()
        .expect("start container");
    exec(
        c.id(),
        "root",
        &[("PUBKEY", pubkey.trim())],
        &[
            "sh",
            "-ec",
            "ssh-keygen -A >/dev/null && mkdir -p /run/sshd \
             && groupadd sre && useradd -m -s /bin/bash -G sre alice \
             && install -d -m 700 -o alice -g alice /home/alice/.ssh \
             && printf '%s\\n' \"$PUBKEY\" > /home/alice/.ssh/authorized_keys \
             && chown alice:alice /home/alice/.ssh/authorized_keys && chmod 600 /home/alice/.ssh/authorized_keys",
        ],
    )
    .ok("prepare container");
    c
}

fn sshd(c: &str, config: &str, port: u16) {
    let log = format!("/var/log/sshd-{port}.log");
    exec(c, "root", &[], &["/usr/sbin/sshd", "-f", config, "-p", &port.to_string(), "-E", &log])
        .ok("start sshd");
    // sshd listens before it forks into the background; this only guards against a slow exec.
    wait_port(port);
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bastion: ddcoterm (the binary under test) with a system config holding a kubectl lint, a real kubectl
/// behind a system-wide shim, and three sshds: the drop-in's (ForceCommand), a plain one (the same config
/// without the drop-in: the baseline), and one serving sftp in-process (`internal-sftp`) behind the drop-in.
fn setup_bastion(c: &str, client: &Client) {
    let copy = Command::new("docker")
        .args(["cp", env!("CARGO_BIN_EXE_ddcoterm"), &format!("{c}:/usr/local/bin/ddcoterm")])
        .status()
        .unwrap();
    assert!(copy.success(), "docker cp ddcoterm");
    exec(
        c,
        "root",
        &[("SYSTEM_CONFIG", SYSTEM_CONFIG), ("DROP_IN", DROP_IN)],
        &[
            "sh",
            "-ec",
            "chown root:root /usr/local/bin/ddcoterm && chmod 755 /usr/local/bin/ddcoterm \
             && printf '#!/bin/sh\\necho \"fake-kubectl $*\"\\n' > /usr/bin/kubectl && chmod 755 /usr/bin/kubectl \
             && mkdir -p /etc/ddcoterm && printf '%s' \"$SYSTEM_CONFIG\" > /etc/ddcoterm/config.yaml \
             && ddcoterm shim create --system kubectl >/dev/null \
             && printf '%s' \"$DROP_IN\" > /etc/ssh/sshd_config.d/ddcoterm.conf \
             && grep -v '^Include' /etc/ssh/sshd_config > /etc/ssh/sshd_config.plain \
             && sed 's|^Subsystem.*|Subsystem sftp internal-sftp|' /etc/ssh/sshd_config > /etc/ssh/sshd_config.internal \
             && for f in sshd_config sshd_config.plain sshd_config.internal; do sshd -t -f /etc/ssh/$f; done",
        ],
    )
    .ok("prepare the bastion");
    sshd(c, "/etc/ssh/sshd_config", client.forced);
    sshd(c, "/etc/ssh/sshd_config.plain", client.plain);
    sshd(c, "/etc/ssh/sshd_config.internal", client.internal);
}

fn casts(c: &str) -> Vec<String> {
    let r = exec(
        c,
        "root",
        &[],
        &["sh", "-c", "ls -t /home/alice/.ddcoterm/recordings/*.cast 2>/dev/null || true"],
    );
    r.stdout.lines().map(str::to_string).collect()
}

fn newest_cast(c: &str) -> (serde_json::Value, String) {
    let newest = casts(c).into_iter().next().expect("a recording");
    let text = exec(c, "root", &[], &["cat", &newest]).ok("cat cast").stdout;
    let header = serde_json::from_str(text.lines().next().unwrap()).expect("cast header");
    (header, text)
}

fn sha256_local(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    text(&o.stdout).split_whitespace().next().unwrap().to_string()
}

fn sha256_remote(c: &str, p: &str) -> String {
    exec(c, "root", &[], &["sha256sum", p])
        .ok("sha256sum")
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn timed(mut c: Command, what: &str) -> f64 {
    let start = Instant::now();
    let o = c.stdin(Stdio::null()).output().unwrap();
    let took = start.elapsed().as_secs_f64();
    assert!(o.status.success(), "{what}: {}\n{}", text(&o.stdout), text(&o.stderr));
    took
}

/// (a) An interactive login over a PTY: the login shell is recorded (typed command's output, client address,
/// key fingerprint), shims are on PATH in it, and a lint fires on a shimmed command typed there.
fn interactive_login(c: &str, client: &Client) {
    let before = casts(c).len();
    let mut cmd = client.ssh(client.forced);
    cmd.arg("-tt");
    let mut s = expectrl::Session::spawn(cmd).expect("spawn ssh on a PTY");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect("recording session").expect("ssh-login records the login");
    s.expect("$ ").expect("a shell prompt");
    s.send("echo typed-$((6*7)); command -v kubectl\r").unwrap();
    s.expect("typed-42").unwrap();
    s.expect("/usr/local/lib/ddcoterm/overrides/kubectl")
        .expect("the shim is first on PATH in the login shell");
    s.send("kubectl scale deploy/web --replicas=0\r").unwrap();
    s.expect(LINT).expect("the lint fires inside the login shell");
    s.expect("(y/n)").unwrap();
    s.send("n\r").unwrap();
    s.expect("not run").unwrap();
    s.send("exit 5\r").unwrap();
    s.expect("ended (exit 5)").expect("the session ends with the shell's status");
    let status = s.get_process_mut().wait().unwrap();
    assert!(
        matches!(status, expectrl::WaitStatus::Exited(_, 5)),
        "ssh returns the login shell's status: {status:?}"
    );

    assert_eq!(casts(c).len(), before + 1, "one recording for the login");
    let (h, cast) = newest_cast(c);
    assert_eq!(h["command"], "/bin/bash", "{h}");
    assert_eq!(h["ddcoterm"]["user"], "alice", "{h}");
    let ssh = &h["ddcoterm"]["ssh"];
    assert_eq!(ssh["client_addr"], "127.0.0.1", "{h}");
    assert_eq!(ssh["server_port"], client.forced, "{h}");
    assert_eq!(ssh["auth_method"], "publickey", "{h}");
    assert_eq!(ssh["key_type"], "ssh-ed25519", "{h}");
    assert_eq!(ssh["key_fingerprint"], client.fingerprint(), "the fingerprint ssh-keygen -l prints: {h}");
    assert!(cast.lines().skip(1).any(|l| l.contains("\"o\"") && l.contains("typed-42")), "{cast}");
    assert!(cast.contains(LINT), "the lint prompt is part of the recording");
    assert!(!cast.contains("fake-kubectl"), "the real kubectl never ran");
}

/// (b) Remote commands behave as under a plain sshd (exit codes, quoting, the user's shell and its level)
/// and each is recorded.
fn remote_commands(c: &str, client: &Client) {
    let cases = [
        "exit 7",
        r#"printf '%s|' "a b" c 'd;e'; echo"#,
        r#"echo "$0 $SHLVL $HOME $USER $SHELL""#,
        "cd /tmp && pwd; false || echo fallback",
        "echo 'quoted ; not a separator' \"$(echo substituted)\" && exit 3",
        "kubectl get pods -A",
    ];
    for remote in cases {
        let before = casts(c).len();
        let forced = client.run(client.forced, remote);
        let plain = client.run(client.plain, remote);
        // kubectl resolves to the shim only under ddcoterm (the plain sshd has no shim dir on PATH).
        assert_eq!(
            (forced.status.code(), text(&forced.stdout)),
            (plain.status.code(), text(&plain.stdout)),
            "`{remote}` differs from a plain sshd; ddcoterm's stderr: {}",
            text(&forced.stderr)
        );
        assert_eq!(casts(c).len(), before + 1, "`{remote}` is recorded: {}", text(&forced.stderr));
        let (h, _) = newest_cast(c);
        assert!(h["command"].as_str().unwrap().starts_with("bash -c "), "{h}");
        assert_eq!(h["ddcoterm"]["ssh"]["key_fingerprint"], client.fingerprint(), "{h}");
    }
    let o = client.run(client.forced, "exit 7");
    assert_eq!(o.status.code(), Some(7));

    // (e) The lint over ssh: no terminal -> refused with a clear message; `ssh -tt` -> asked, `n` -> not run.
    let o = client.run(client.forced, "kubectl scale deploy/web --replicas=0");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "refused without a terminal: {err}");
    assert!(err.contains(LINT) && err.contains("ssh -t"), "says why and how: {err}");
    assert!(!text(&o.stdout).contains("fake-kubectl"));

    let mut cmd = client.ssh(client.forced);
    cmd.args(["-tt", "kubectl", "scale", "deploy/web", "--replicas=0"]);
    let mut s = expectrl::Session::spawn(cmd).expect("spawn ssh -tt");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect(LINT).expect("the lint fires for a remote command");
    s.expect("Do you want to continue? (y/n)").unwrap();
    s.send("n\r").unwrap();
    s.expect("not run").unwrap();
    let status = s.get_process_mut().wait().unwrap();
    assert!(matches!(status, expectrl::WaitStatus::Exited(_, 1)), "{status:?}");

    let mut cmd = client.ssh(client.forced);
    cmd.args(["-tt", "kubectl", "scale", "deploy/web", "--replicas=0"]);
    let mut s = expectrl::Session::spawn(cmd).expect("spawn ssh -tt");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect("(y/n)").unwrap();
    s.send("y\r").unwrap();
    // Judged once: the shim inside the recorded shell does not ask again.
    let after = s.expect("fake-kubectl scale deploy/web --replicas=0").expect("runs after yes");
    assert!(!String::from_utf8_lossy(after.before()).contains("(y/n)"));
    let status = s.get_process_mut().wait().unwrap();
    assert!(matches!(status, expectrl::WaitStatus::Exited(_, 0)), "{status:?}");
    let (_, cast) = newest_cast(c);
    assert!(cast.contains("fake-kubectl scale"), "the remote command's output is recorded");
}

/// (c) scp (legacy protocol: `scp -t`/`-f`) and sftp (the subsystem; scp's default protocol too) round-trip
/// a 50 MB file byte-identical, unrecorded, at the throughput of the plain sshd (best of 3 rounds each).
fn transfers(c: &str, client: &Client) {
    let data = client.dir.path().join("data.bin");
    let mut f = std::fs::File::create(&data).unwrap();
    std::io::copy(
        &mut std::io::Read::take(std::fs::File::open("/dev/urandom").unwrap(), (TRANSFER_MB << 20) as u64),
        &mut f,
    )
    .unwrap();
    drop(f);
    let want = sha256_local(&data);
    let before = casts(c).len();

    let scp = |port: u16, from: &str, to: &str| {
        let mut cmd = Command::new("scp");
        cmd.arg("-F").arg(client.config()).args(["-O", "-q", "-P", &port.to_string(), from, to]);
        cmd
    };
    let sftp = |port: u16, batch: &Path| {
        let mut cmd = Command::new("sftp");
        cmd.arg("-F")
            .arg(client.config())
            .args(["-q", "-P", &port.to_string(), "-b"])
            .arg(batch)
            .arg("127.0.0.1");
        cmd
    };
    let data_s = data.to_string_lossy().into_owned();
    let mut best = std::collections::BTreeMap::<(&str, &str), f64>::new();
    let mb = 2.0 * TRANSFER_MB as f64;
    let ratio = |best: &std::collections::BTreeMap<(&str, &str), f64>, proto: &str| {
        (mb / best[&(proto, "forced")]) / (mb / best[&(proto, "plain")])
    };
    let mut rounds = 0;
    while rounds < ROUNDS.0 || (rounds < ROUNDS.1 && ["scp", "sftp"].iter().any(|p| ratio(&best, p) < 0.90)) {
        let round = rounds;
        rounds += 1;
        // Alternate which server goes first so that neither always gets the warm cache.
        let order = if round % 2 == 0 {
            [("plain", client.plain), ("forced", client.forced)]
        } else {
            [("forced", client.forced), ("plain", client.plain)]
        };
        for (label, port) in order {
            let back = client.dir.path().join(format!("back-{label}.bin"));
            let _ = std::fs::remove_file(&back);
            let up =
                timed(scp(port, &data_s, &format!("127.0.0.1:/home/alice/scp-{label}.bin")), "scp -O upload")
                    + timed(
                        scp(port, &format!("127.0.0.1:/home/alice/scp-{label}.bin"), &back.to_string_lossy()),
                        "scp -O download",
                    );
            assert_eq!(sha256_local(&back), want, "scp -O round trip through {label} is byte-identical");
            let e = best.entry(("scp", label)).or_insert(f64::MAX);
            *e = e.min(up);

            let _ = std::fs::remove_file(&back);
            let batch = client.dir.path().join(format!("batch-{label}"));
            std::fs::write(
                &batch,
                format!(
                    "put {data_s} /home/alice/sftp-{label}.bin\nget /home/alice/sftp-{label}.bin {}\n",
                    back.display()
                ),
            )
            .unwrap();
            let t = timed(sftp(port, &batch), "sftp put+get");
            assert_eq!(sha256_local(&back), want, "sftp round trip through {label} is byte-identical");
            let e = best.entry(("sftp", label)).or_insert(f64::MAX);
            *e = e.min(t);
        }
    }
    assert_eq!(sha256_remote(c, "/home/alice/scp-forced.bin"), want);
    assert_eq!(sha256_remote(c, "/home/alice/sftp-forced.bin"), want);
    assert_eq!(casts(c).len(), before, "transfers are not recorded");

    for proto in ["scp", "sftp"] {
        let (forced, plain) = (best[&(proto, "forced")], best[&(proto, "plain")]);
        let ratio = ratio(&best, proto);
        fleet_common::report(&format!(
            "fleet numbers: ssh {proto} {TRANSFER_MB} MB up+down, best of {rounds}: through ssh-login {:.0} MB/s ({forced:.3}s), \
             plain sshd {:.0} MB/s ({plain:.3}s): {ratio:.3}x",
            mb / forced,
            mb / plain
        ));
        assert!(
            ratio >= 0.90,
            "{proto} through ssh-login must keep >= 90% of a plain sshd's throughput: {ratio:.3}x"
        );
    }

    // sftp with sshd's in-process server (`internal-sftp`): ssh-login runs the sftp-server binary instead.
    let batch = client.dir.path().join("batch-internal");
    let back = client.dir.path().join("back-internal.bin");
    std::fs::write(
        &batch,
        format!("put {data_s} /home/alice/internal.bin\nget /home/alice/internal.bin {}\n", back.display()),
    )
    .unwrap();
    timed(sftp(client.internal, &batch), "sftp through internal-sftp");
    assert_eq!(sha256_local(&back), want, "internal-sftp round trip is byte-identical");
    assert_eq!(casts(c).len(), before, "internal-sftp is not recorded");

    // No relay: while an sftp session is open, sftp-server is sshd's child and no ddcoterm process is left.
    let mut open = Command::new("sftp");
    open.arg("-F").arg(client.config()).args(["-q", "-P", &client.forced.to_string(), "127.0.0.1"]);
    let mut child = open.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tree = loop {
        let ps = exec(c, "root", &[], &["ps", "-u", "alice", "-o", "pid=,ppid=,comm="]).stdout;
        if ps.contains("sftp-server") || Instant::now() > deadline {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(child.stdin.take());
    let _ = child.wait();
    let server =
        tree.lines().find(|l| l.contains("sftp-server")).unwrap_or_else(|| panic!("no sftp-server: {tree}"));
    let ppid = server.split_whitespace().nth(1).unwrap();
    let parent = exec(c, "root", &[], &["ps", "-o", "comm=", "-p", ppid]).stdout;
    assert_eq!(parent.trim(), "sshd", "sftp-server runs under sshd directly:\n{tree}");
    assert!(!tree.contains("ddcoterm"), "nothing of ddcoterm stays around a passthrough:\n{tree}");
}

/// (d) rsync (from the target container, which has the client) and git over ssh: byte-exact, unrecorded.
fn rsync_and_git(c: &str, target: &str, client: &Client) {
    let before = casts(c).len();
    // rsync's client side runs in the target container with the same key and config.
    for (src, dst) in [(client.dir.path().join("id"), "/root/id"), (client.config(), "/root/ssh_config")] {
        let st = Command::new("docker")
            .args(["cp", &src.to_string_lossy(), &format!("{target}:{dst}")])
            .status()
            .unwrap();
        assert!(st.success());
    }
    exec(
        target,
        "root",
        &[],
        &[
            "sh",
            "-ec",
            "chmod 600 /root/id && sed -i 's|IdentityFile .*|IdentityFile /root/id|' /root/ssh_config \
             && mkdir -p /root/rs && head -c 3000000 /dev/urandom > /root/rs/blob && echo small > '/root/rs/with space'",
        ],
    )
    .ok("prepare the rsync client");
    let e = format!("ssh -F /root/ssh_config -p {}", client.forced);
    exec(target, "root", &[], &["rsync", "-a", "-e", &e, "/root/rs/", "127.0.0.1:rs-up/"]).ok("rsync upload");
    exec(target, "root", &[], &["rsync", "-a", "-e", &e, "127.0.0.1:rs-up/", "/root/rs-back/"])
        .ok("rsync download");
    let sums = |cmd: &str| exec(target, "root", &[], &["sh", "-c", cmd]).ok("sha256sum").stdout;
    assert_eq!(
        sums("cd /root/rs && sha256sum blob 'with space'"),
        sums("cd /root/rs-back && sha256sum blob 'with space'"),
        "rsync round trip is byte-identical"
    );

    // git over ssh with the host's git: push to a bare repository on the bastion, clone it back.
    exec(c, "alice", &[], &["git", "init", "-q", "--bare", "/home/alice/repo with space.git"])
        .ok("git init --bare");
    let work = client.dir.path().join("work");
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .current_dir(dir)
            .env("GIT_SSH_COMMAND", format!("ssh -F {}", client.config().display()))
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    };
    let url = format!("ssh://alice@127.0.0.1:{}/home/alice/repo with space.git", client.forced);
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("f.bin"), (0..=255u8).cycle().take(200_000).collect::<Vec<u8>>()).unwrap();
    git(&work, &["add", "f.bin"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["push", "-q", &url, "HEAD:refs/heads/main"]);
    git(client.dir.path(), &["clone", "-q", &url, "cloned"]);
    assert_eq!(
        std::fs::read(work.join("f.bin")).unwrap(),
        std::fs::read(client.dir.path().join("cloned/f.bin")).unwrap(),
        "git round trip"
    );
    git(client.dir.path(), &["archive", "--remote", &url, "-o", "a.tar", "main"]);
    assert_eq!(casts(c).len(), before, "rsync and git are not recorded");
}

/// (f) Passthrough is configurable: without `scp` in `ssh.passthrough`, scp is recorded and still exact.
fn configurable_passthrough(c: &str, client: &Client) {
    exec(
        c,
        "root",
        &[],
        &["sh", "-c", "printf 'ssh:\\n  passthrough: [sftp-server]\\n' >> /etc/ddcoterm/config.yaml"],
    )
    .ok("edit the system config");
    let small = client.dir.path().join("small.bin");
    std::fs::write(&small, (0..=255u8).cycle().take(100_000).collect::<Vec<u8>>()).unwrap();
    let before = casts(c).len();
    let mut cmd = Command::new("scp");
    cmd.arg("-F")
        .arg(client.config())
        .args(["-O", "-q", "-P", &client.forced.to_string()])
        .arg(&small)
        .arg("127.0.0.1:/home/alice/small.bin");
    timed(cmd, "scp -O with scp recorded");
    assert_eq!(sha256_remote(c, "/home/alice/small.bin"), sha256_local(&small));
    assert_eq!(casts(c).len(), before + 1, "scp is recorded once it is not in ssh.passthrough");
    let (h, _) = newest_cast(c);
    assert!(h["command"].as_str().unwrap().contains("scp -t"), "{h}");
    exec(
        c,
        "root",
        &[("SYSTEM_CONFIG", SYSTEM_CONFIG)],
        &["sh", "-c", "printf '%s' \"$SYSTEM_CONFIG\" > /etc/ddcoterm/config.yaml"],
    )
    .ok("restore the system config");
}

#[test]
fn ssh_bastion_records_sessions_and_passes_transfers_through() {
    if !docker_available("fleet_ssh") {
        return;
    }
    require_image(BASE_IMAGE);
    let started = Instant::now();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let client = Client::new("alice");
    let bastion = start("bastion", &client.pubkey());
    let target = start("target", &client.pubkey());
    setup_bastion(bastion.id(), &client);
    exec(target.id(), "root", &[], &["sh", "-c", "echo target-marker > /etc/target-marker"]).ok("marker");
    sshd(target.id(), "/etc/ssh/sshd_config", client.target);
    let b = bastion.id();

    interactive_login(b, &client);
    remote_commands(b, &client);

    // ProxyJump through the bastion (direct-tcpip, no ForceCommand): no recording, the target answers.
    let before = casts(b).len();
    let o = Command::new("ssh")
        .arg("-F")
        .arg(client.config())
        .args([
            "-J",
            &format!("alice@127.0.0.1:{}", client.forced),
            "-p",
            &client.target.to_string(),
            "127.0.0.1",
        ])
        .arg("cat /etc/target-marker")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "ssh -J through the bastion: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "target-marker");
    assert_eq!(casts(b).len(), before, "a jump is not a session on the bastion");

    transfers(b, &client);
    rsync_and_git(b, target.id(), &client);
    configurable_passthrough(b, &client);
    fleet_common::report(&format!(
        "fleet numbers: ssh bastion test took {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// The Helm chart's bastion with `bastion.sshd.enabled`: the runtime image runs the chart's sshd files
/// (helm/ddcoterm/files: sshd_config, the ddcoterm.conf drop-in, sshd-start.sh) the way the pod does: as uid
/// 10001 on a read-only root filesystem, all capabilities dropped, no privilege escalation, emptyDir-like
/// tmpfs mounts. Sessions are recorded with the key fingerprint, the Datadog key reaches them, sftp works.
#[test]
fn helm_bastion_sshd_runs_unprivileged_with_the_drop_in() {
    if !docker_available("fleet_ssh") {
        return;
    }
    require_image(IMAGE);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let client = Client::new("coterm");
    // The ConfigMap mounted at /etc/ddcoterm-sshd: the chart's files as the chart renders them by default.
    let conf = client.dir.path().join("sshd-conf");
    std::fs::create_dir(&conf).unwrap();
    let files = repo().join("helm/ddcoterm/files");
    for (from, to) in [
        ("sshd_config", "sshd_config"),
        ("sshd-ddcoterm.conf", "ddcoterm.conf"),
        ("sshd-start.sh", "start.sh"),
    ] {
        std::fs::copy(files.join(from), conf.join(to)).unwrap();
    }
    std::fs::write(conf.join("authorized_keys"), client.pubkey()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [client.dir.path(), conf.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let port = client.forced;
    let pod = GenericImage::new(IMAGE.0, IMAGE.1)
        .with_entrypoint("/bin/sh")
        .with_cmd(["/etc/ddcoterm-sshd/start.sh"])
        .with_network("host")
        .with_user("10001:10001")
        .with_readonly_rootfs(true)
        .with_cap_drop("ALL")
        .with_security_opt("no-new-privileges")
        .with_env_var("SSHD_PORT", port.to_string())
        .with_env_var("DD_API_KEY", "fleet-helm-test-key")
        .with_mount(testcontainers::core::Mount::bind_mount(conf.to_string_lossy(), "/etc/ddcoterm-sshd"))
        // The pod's emptyDirs, writable by its user.
        .with_host_config_modifier(|hc| {
            hc.tmpfs = Some(
                [
                    ("/run/ddcoterm-sshd", "uid=10001,gid=10001,mode=0700"),
                    ("/home/coterm", "uid=10001,gid=10001,mode=0755"),
                    ("/tmp", "mode=1777"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            )
        })
        .with_label("ddcoterm.test", "fleet_ssh_helm")
        .start()
        .expect("run the image as the chart's bastion");
    let p = pod.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let logs = Command::new("docker").args(["logs", p]).output().unwrap();
        assert!(
            Instant::now() < deadline,
            "sshd never listened: {}{}",
            text(&logs.stdout),
            text(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let o = client.run(port, r#"echo "$USER $DD_API_KEY"; exit 3"#);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "coterm fleet-helm-test-key\n", "the Datadog key reaches sessions");
    let list = exec(p, "10001", &[], &["sh", "-c", "ls -t /home/coterm/.ddcoterm/recordings/*.cast"])
        .ok("list casts");
    let newest = list.stdout.lines().next().unwrap().to_string();
    let cast = exec(p, "10001", &[], &["cat", &newest]).ok("cat cast").stdout;
    let h: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(h["ddcoterm"]["ssh"]["key_fingerprint"], client.fingerprint(), "{h}");
    assert!(cast.contains("coterm fleet-helm-test-key"), "the output is recorded: {cast}");

    // sftp through the passthrough, byte-identical, unrecorded.
    let data = client.dir.path().join("data.bin");
    std::fs::write(&data, (0..=255u8).cycle().take(1 << 20).collect::<Vec<u8>>()).unwrap();
    let back = client.dir.path().join("back.bin");
    let batch = client.dir.path().join("batch");
    std::fs::write(&batch, format!("put {} up.bin\nget up.bin {}\n", data.display(), back.display()))
        .unwrap();
    let mut sftp = Command::new("sftp");
    sftp.arg("-F")
        .arg(client.config())
        .args(["-q", "-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg("127.0.0.1");
    timed(sftp, "sftp to the chart's bastion");
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&data).unwrap());
    let again = exec(p, "10001", &[], &["sh", "-c", "ls /home/coterm/.ddcoterm/recordings/*.cast | wc -l"])
        .ok("count");
    assert_eq!(again.stdout.trim(), "1", "only the remote command was recorded");
}
