//! Bastion mode with real unprivileged users in a container: `ddcoterm agent` runs as its own system user
//! (`ddcoterm-agent`), alice and bob record sessions through it, and neither can read the upload
//! credentials, delete, alter or evict what the agent holds (also by filling their quota), get a session
//! filed under another name, or gain a privilege by being recorded; `kill -9` of a recorder loses nothing
//! the agent acknowledged. The agent uploads to a REAL `ddcoterm-server` in the container with a host token
//! only it can read; the server's copy of a killed session is the agent's cast byte for byte.
//!
//! Needs docker and the local base image (`make base-image`). Skips only when docker is absent.

mod fleet_common;

use fleet_common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use testcontainers::core::ImageExt;
use testcontainers::runners::SyncRunner;
use testcontainers::GenericImage;

const STATE: &str = "/var/spool/ddcoterm";
const SOCKET: &str = "/run/ddcoterm/agent.sock";
const CREDENTIALS: &str = "/etc/ddcoterm/agent-credentials.yaml";
const SECRET: &str = "dd-api-key-only-the-agent-reads";
/// A user's quota: one large session fits, then their new sessions are refused.
const QUOTA: u64 = 200_000;

/// The session server inside the container (loopback), and its data directory.
const SERVER: &str = "http://127.0.0.1:7780";
const SERVER_DATA: &str = "/var/lib/ddcoterm-server";

fn system_config() -> String {
    format!(
        "connection_config:\n  host: http://127.0.0.1:9\nserver:\n  url: {SERVER}\nagent:\n  enabled: true\n  \
         socket_group: bastion\n  credentials_file: {CREDENTIALS}\n  user_quota_bytes: {QUOTA}\n  when_full: refuse\n"
    )
}

/// Reads `path` of the session server with the auditor token (as root): the body, or `HTTP <status>`.
const SERVER_GET: &str = r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1] + sys.argv[2], headers={'Authorization': 'Bearer ' + open('/root/auditor.token').read().strip()})
try:
    sys.stdout.write(urllib.request.urlopen(req).read().decode())
except urllib.error.HTTPError as e:
    print('HTTP %d' % e.code)
"#;

fn server_get(c: &str, path: &str) -> String {
    root(c, &format!("python3 /usr/local/bin/server-get.py {SERVER} '{path}'")).stdout
}

/// Speaks the agent's protocol directly, as a hostile user would: opens a session with the id and user
/// name given, sends one chunk naming the claimed user, ends it. Prints each reply as a JSON line.
const RAW_CLIENT: &str = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
def recv(n):
    b = b''
    while len(b) < n:
        more = s.recv(n - len(b))
        if not more:
            raise SystemExit('agent closed the connection')
        b += more
    return b
def call(t, payload):
    s.sendall(struct.pack('>IB', len(payload) + 1, t) + payload)
    n, _ = struct.unpack('>IB', recv(5))
    return json.loads(recv(n - 1))
meta = dict(session_id=sys.argv[2], command='forged', user=sys.argv[3], hostname='forged', cwd='/',
            actions=['record'], rule=None, started_at=0, width=80, height=24, tags=[])
r = call(1, json.dumps(dict(meta=meta, shell='/bin/sh', term='xterm')).encode())
print(json.dumps(r))
if r.get('ok'):
    line = ('[0.1, "o", "forged-by-%s"]\n' % sys.argv[3]).encode()
    print(json.dumps(call(2, struct.pack('>Q', 0) + line)))
    print(json.dumps(call(6, json.dumps(dict(exit_code=0, duration_ms=1)).encode())))
"#;

fn root(c: &str, script: &str) -> Run {
    exec(c, "root", &[], &["sh", "-c", script])
}

fn as_user(c: &str, user: &str, script: &str) -> Run {
    exec(c, user, &[], &["sh", "-c", script])
}

/// The session id a recorder printed (`ddcoterm: recording session <id> -> ...`).
fn session_id(stderr: &str) -> String {
    let rest =
        stderr.split("recording session ").nth(1).unwrap_or_else(|| panic!("no session line: {stderr}"));
    rest.split_whitespace().next().unwrap().to_string()
}

fn cast_of(c: &str, user: &str, id: &str) -> String {
    root(c, &format!("cat {STATE}/recordings/{user}/{id}.cast")).ok("read the cast").stdout
}

/// `sha256sum` of every file the agent holds (recordings, audit, claims, progress), as root; the spool is left
/// out: its records leave it as the session server acknowledges them.
fn evidence(c: &str) -> String {
    root(
        c,
        &format!(
            "cd {STATE} && find . -path ./spool -prune -o -type f ! -name '*.tmp' -print | sort | xargs -r sha256sum"
        ),
    )
    .ok("hash the evidence")
    .stdout
}

#[test]
fn bastion_users_cannot_touch_the_evidence_the_agent_holds() {
    if !docker_available("fleet_bastion") {
        return;
    }
    require_image(BASE_IMAGE);
    let container = GenericImage::new(BASE_IMAGE.0, BASE_IMAGE.1)
        .with_entrypoint("sleep")
        .with_cmd(["infinity"])
        .with_label("ddcoterm.test", "fleet_bastion")
        .start()
        .expect("start container");
    let c = container.id();
    let copy = Command::new("docker")
        .args(["cp", env!("CARGO_BIN_EXE_ddcoterm"), &format!("{c}:/usr/local/bin/ddcoterm")])
        .status()
        .unwrap();
    assert!(copy.success(), "docker cp ddcoterm");
    let server_bin = std::path::Path::new(env!("CARGO_BIN_EXE_ddcoterm")).with_file_name("ddcoterm-server");
    let copy = Command::new("docker")
        .args(["cp", &server_bin.to_string_lossy(), &format!("{c}:/usr/local/bin/ddcoterm-server")])
        .status()
        .unwrap();
    assert!(copy.success(), "docker cp ddcoterm-server ({}; make server)", server_bin.display());
    let sys = system_config();
    exec(
        c,
        "root",
        &[
            ("SYSTEM_CONFIG", sys.as_str()),
            ("SECRET", SECRET),
            ("RAW_CLIENT", RAW_CLIENT),
            ("SERVER_GET", SERVER_GET),
            ("DATA", SERVER_DATA),
        ],
        &[
            "sh",
            "-ec",
            "chown root:root /usr/local/bin/ddcoterm && chmod 755 /usr/local/bin/ddcoterm \
             && groupadd bastion && useradd -r -s /usr/sbin/nologin -d /nonexistent ddcoterm-agent \
             && useradd -m -s /bin/bash -G bastion alice && useradd -m -s /bin/bash -G bastion bob \
             && useradd -m -s /bin/bash mallory \
             && mkdir -p /etc/ddcoterm && printf '%s' \"$SYSTEM_CONFIG\" > /etc/ddcoterm/config.yaml \
             && ddcoterm-server --data-dir \"$DATA\" token create bastion --role host > /root/host.token \
             && ddcoterm-server --data-dir \"$DATA\" token create reviewer --role auditor > /root/auditor.token \
             && (ddcoterm-server --data-dir \"$DATA\" serve --listen 127.0.0.1:7780 >/tmp/server.log 2>&1 &) \
             && printf 'api_key: %s\\nserver_token: %s\\n' \"$SECRET\" \"$(cat /root/host.token)\" \
                > /etc/ddcoterm/agent-credentials.yaml \
             && chown ddcoterm-agent /etc/ddcoterm/agent-credentials.yaml \
             && chmod 600 /etc/ddcoterm/agent-credentials.yaml \
             && usermod -a -G bastion ddcoterm-agent \
             && install -d -o ddcoterm-agent -g ddcoterm-agent -m 0755 /run/ddcoterm \
             && install -d -o ddcoterm-agent -g ddcoterm-agent -m 0700 /var/spool/ddcoterm \
             && printf '%s' \"$RAW_CLIENT\" > /usr/local/bin/raw-agent-client.py \
             && printf '%s' \"$SERVER_GET\" > /usr/local/bin/server-get.py",
        ],
    )
    .ok("prepare the bastion");
    // What systemd's unit does: the agent as its own user.
    exec(
        c,
        "root",
        &[],
        &["sh", "-c", "su -s /bin/sh ddcoterm-agent -c 'ddcoterm agent >/tmp/agent.log 2>&1 &'"],
    )
    .ok("start the agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while root(c, &format!("test -S {SOCKET}")).code != 0 {
        assert!(Instant::now() < deadline, "no agent socket: {}", root(c, "cat /tmp/agent.log").stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent_user = root(c, "ps -o user:32= -C ddcoterm").ok("ps").stdout;
    assert_eq!(agent_user.trim(), "ddcoterm-agent", "the agent runs as its own user");

    // 1. A recorded command runs with the user's own uid and groups, nothing more.
    let direct = as_user(c, "alice", "id -u; id -G").ok("id").stdout;
    let rec =
        as_user(c, "alice", "ddcoterm -- sh -c 'echo alice-was-here; id -u; id -G'").ok("alice records");
    assert!(rec.stdout.contains("alice-was-here"), "{}", rec.stdout);
    assert!(rec.stdout.contains(direct.trim()), "same uid and groups: {} vs {direct}", rec.stdout);
    let alice_id = session_id(&rec.stderr);
    let cast = cast_of(c, "alice", &alice_id);
    assert!(cast.contains("alice-was-here"), "{cast}");
    assert_eq!(
        as_user(c, "alice", "ls -A ~/.ddcoterm/recordings ~/.ddcoterm/spool 2>/dev/null").stdout.trim(),
        "",
        "nothing in alice's home"
    );
    let doctor = as_user(c, "alice", "ddcoterm doctor").stdout;
    assert!(doctor.contains("mode: bastion") && doctor.contains("as `alice`"), "{doctor}");

    // Outside agent.socket_group no session can be opened, so nothing runs recorded or not.
    let outsider = as_user(c, "mallory", "ddcoterm -- touch /tmp/mallory-ran");
    assert_eq!(outsider.code, 1, "{}", outsider.stderr);
    assert!(outsider.stderr.contains("may not connect to the recording agent"), "{}", outsider.stderr);
    assert_ne!(root(c, "test -e /tmp/mallory-ran").code, 0);

    // 2. The upload credentials and the agent's state are out of reach.
    for (what, script) in [
        ("read the credentials", format!("cat {CREDENTIALS}")),
        ("list the state dir", format!("ls {STATE}")),
        ("read her own recording", format!("cat {STATE}/recordings/alice/{alice_id}.cast")),
        ("delete the spool", format!("rm -rf {STATE}/spool")),
        ("append to her recording", format!("echo forged >> {STATE}/recordings/alice/{alice_id}.cast")),
        ("read the agent's environment", "cat /proc/$(pgrep -u ddcoterm-agent ddcoterm)/environ".to_string()),
    ] {
        let r = as_user(c, "alice", &script);
        assert_ne!(r.code, 0, "alice could {what}: {}", r.stdout);
        assert!(!r.stdout.contains(SECRET), "{what} leaked the key");
    }
    let rec_env = as_user(c, "alice", "ddcoterm -- env").ok("env under the recorder").stdout;
    let host_token = root(c, "cat /root/host.token").ok("host token").stdout.trim().to_string();
    assert!(!host_token.is_empty());
    assert!(!rec_env.contains(SECRET), "the key reached the user's session");
    assert!(!rec_env.contains(&host_token), "the server token reached the user's session");

    // 3. No session is filed under another user's name, and bob's session id cannot be taken over.
    let bob = as_user(c, "bob", "ddcoterm -- echo bob-was-here").ok("bob records");
    let bob_id = session_id(&bob.stderr);
    let bob_cast = cast_of(c, "bob", &bob_id);
    let forged = as_user(c, "alice", "USER=bob LOGNAME=bob ddcoterm -- echo claims-to-be-bob");
    let forged_id = session_id(&forged.ok("alice claiming bob").stderr);
    assert!(cast_of(c, "alice", &forged_id).contains("\"user\":\"alice\""), "filed under the peer's name");
    assert_ne!(root(c, &format!("test -e {STATE}/recordings/bob/{forged_id}.cast")).code, 0);
    let raw =
        as_user(c, "alice", &format!("python3 /usr/local/bin/raw-agent-client.py {SOCKET} {bob_id} bob"));
    assert!(raw.stdout.contains("\"id_taken\""), "bob's id: {} {}", raw.stdout, raw.stderr);
    assert_eq!(cast_of(c, "bob", &bob_id), bob_cast, "bob's recording unchanged");
    let raw = as_user(c, "alice", &format!("python3 /usr/local/bin/raw-agent-client.py {SOCKET} raw-1 bob"));
    let first: serde_json::Value = serde_json::from_str(raw.stdout.lines().next().unwrap_or("")).unwrap();
    assert_eq!(first["ok"], true, "a fresh id opens: {} {}", raw.stdout, raw.stderr);
    let raw_cast = cast_of(c, "alice", "raw-1");
    assert!(raw_cast.contains("forged-by-bob") && raw_cast.contains("\"user\":\"alice\""), "{raw_cast}");

    // 4. kill -9 of the recorder: what the agent acknowledged stays, and the session is closed for it.
    exec(
        c,
        "alice",
        &[],
        &["sh", "-c", "ddcoterm -- sh -c 'echo before-the-kill; sleep 600' >/dev/null 2>/tmp/killed.err &"],
    )
    .ok("start a session to kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    let killed_id = loop {
        let err = as_user(c, "alice", "cat /tmp/killed.err").stdout;
        if err.contains("recording session ") {
            let id = session_id(&err);
            if cast_of(c, "alice", &id).contains("before-the-kill") {
                break id;
            }
        }
        assert!(Instant::now() < deadline, "the session never reached the agent");
        std::thread::sleep(Duration::from_millis(200));
    };
    let claim = root(c, &format!("cat {STATE}/sessions/{killed_id}")).ok("claim").stdout;
    let pid = claim.split("pid=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    as_user(c, "alice", &format!("kill -9 {pid}")).ok("alice kills her recorder");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cast_of(c, "alice", &killed_id).contains("recorder lost") {
        assert!(Instant::now() < deadline, "the agent did not close the killed session");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cast_of(c, "alice", &killed_id).contains("before-the-kill"));
    let progress = root(c, &format!("cat {STATE}/sessions/{killed_id}.at")).ok("progress").stdout;
    assert!(progress.contains(" ended "), "the killed session is closed: {progress}");
    // The server got it all, uploaded with the agent's token: the agent's cast byte for byte, complete.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let meta = server_get(c, &format!("/api/v1/sessions/{killed_id}"));
        if meta.contains("\"state\":\"complete\"") {
            assert!(meta.contains("\"user\":\"alice\""), "{meta}");
            break;
        }
        assert!(Instant::now() < deadline, "the killed session never completed on the server: {meta}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let stored = server_get(c, &format!("/api/v1/sessions/{killed_id}/cast"));
    assert_eq!(stored, cast_of(c, "alice", &killed_id), "the server's copy is the agent's cast");
    root(c, &format!("ddcoterm-server --data-dir {SERVER_DATA} verify {killed_id}")).ok("verify the chain");

    // 5. Filling the quota: new sessions refused, nothing evicted, other users unaffected.
    as_user(c, "alice", &format!("ddcoterm -- sh -c 'head -c {QUOTA} /dev/zero | od -v | head -c {QUOTA}'"))
        .ok("a large session within the quota");
    let before = evidence(c);
    let full = as_user(c, "alice", "ddcoterm -- sh -c 'touch /tmp/ran-unrecorded'");
    assert_eq!(full.code, 1, "{}", full.stderr);
    assert!(full.stderr.contains("agent.user_quota_bytes"), "{}", full.stderr);
    assert_ne!(root(c, "test -e /tmp/ran-unrecorded").code, 0, "the command ran unrecorded");
    assert_eq!(evidence(c), before, "a refused session changes nothing the agent holds");
    for id in [&alice_id, &forged_id, &killed_id] {
        assert!(root(c, &format!("test -s {STATE}/recordings/alice/{id}.cast")).code == 0, "{id} kept");
    }
    as_user(c, "bob", "ddcoterm -- echo bob-still-records").ok("bob is not affected by alice's quota");

    // 6. Nothing the agent holds was changed by anything alice tried above.
    assert!(cast_of(c, "alice", &alice_id).starts_with(&cast), "alice's first recording is intact");
    assert_eq!(
        root(c, &format!("cat {CREDENTIALS}")).stdout.trim(),
        format!("api_key: {SECRET}\nserver_token: {host_token}")
    );
    let log = root(c, "cat /tmp/agent.log").stdout;
    assert!(!log.contains(SECRET) && !log.contains(&host_token), "the keys are never logged: {log}");
    report(&format!("fleet_bastion: agent log {} lines", log.lines().count()));
}
