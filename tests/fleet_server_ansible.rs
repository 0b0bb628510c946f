//! The Ansible role `ddcoterm_server` (site.yml, `session_servers`) on a bare container: binary, system
//! user, config, hardened unit, data directory, a first admin user who can sign in, the server started the way
//! the unit starts it answering `/readyz`; a second run with `changed=0`; `ddcoterm_server_state: absent`
//! removing it (the data kept unless `ddcoterm_server_purge`), idempotent too. Every run is the documented
//! one (docs/fleet.md, block `role`: the release build, then `ansible-playbook` with this test's inventory and
//! secrets file in place of the documented ones), and the documented host token block runs after it.
//!
//! Needs docker, the local base image (`make base-image`) and the Python tools (`scripts/py-tools.sh`).
//! Skips only when docker is absent.

mod fleet_common;

use fleet_common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testcontainers::core::ImageExt;
use testcontainers::runners::SyncRunner;
use testcontainers::GenericImage;

const ADMIN_PASSWORD: &str = "s3cret-admin-password-from-a-vault";

fn venv_bin(tool: &str) -> PathBuf {
    let venv =
        std::env::var_os("FLEET_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".build/venv"));
    let p = venv.join("bin").join(tool);
    assert!(p.exists(), "{} is missing: run scripts/py-tools.sh (make py-tools)", p.display());
    p
}

/// The documented run (docs/fleet.md, "Ansible role `ddcoterm_server`"): the commands before it (the release
/// build the group settings install), and the `ansible-playbook` words with this test's inventory and a
/// secrets file holding the admin password in place of the documented ones.
fn documented(inventory: &Path) -> (Vec<String>, Vec<String>) {
    let secrets = inventory.with_file_name("secrets.yml");
    std::fs::write(&secrets, format!("ddcoterm_server_admin_password: {ADMIN_PASSWORD}\n")).unwrap();
    documented_playbook(
        "fleet_server_ansible",
        "role",
        &[
            ("inventory/example.ini", inventory.display().to_string()),
            ("@secrets.yml", format!("@{}", secrets.display())),
        ],
    )
}

/// The documented `ansible-playbook` line against the inventory with `extra` variables; returns (changed,
/// stdout).
fn playbook(inventory: &Path, extra: &[&str]) -> (u32, String) {
    let path = format!(
        "{}:{}",
        venv_bin("ansible-playbook").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(venv_bin("ansible-playbook"));
    cmd.current_dir(repo().join("ansible"))
        .env("PATH", path)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .args(documented(inventory).1);
    for e in extra {
        cmd.args(["-e", e]);
    }
    let out = cmd.output().expect("run ansible-playbook");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ansible-playbook {extra:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(ADMIN_PASSWORD), "the admin password is never printed:\n{stdout}");
    let recap = stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.starts_with("sessions-1"))
        .unwrap_or_else(|| panic!("no recap for sessions-1:\n{stdout}"));
    let get = |k: &str| -> u32 {
        recap
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in {recap:?}"))
    };
    assert_eq!((get("failed"), get("unreachable")), (0, 0), "{recap}");
    (get("changed"), stdout)
}

#[test]
fn server_role_installs_runs_is_idempotent_and_uninstalls() {
    if !docker_available("fleet_server_ansible") {
        return;
    }
    require_image(BASE_IMAGE);
    let c = GenericImage::new(BASE_IMAGE.0, BASE_IMAGE.1)
        .with_entrypoint("sleep")
        .with_cmd(["infinity"])
        .with_hostname("sessions-1")
        .with_label("ddcoterm.test", "fleet_server_ansible")
        .start()
        .expect("start the server host");
    let id = c.id().to_string();
    let root = |script: &str| exec(&id, "root", &[], &["sh", "-ec", script]);

    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory");
    std::fs::create_dir_all(inv.join("group_vars")).unwrap();
    // The group settings as shipped, unchanged.
    std::fs::copy(
        repo().join("ansible/inventory/group_vars/session_servers.yml"),
        inv.join("group_vars/session_servers.yml"),
    )
    .unwrap();
    std::fs::write(
        inv.join("hosts.ini"),
        format!(
            "[session_servers]\nsessions-1 ansible_connection=community.docker.docker ansible_host={id}\n"
        ),
    )
    .unwrap();
    let hosts = inv.join("hosts.ini");

    // The documented commands before the play, as written (the release build the group settings install; a
    // no-op once `make package` built it).
    for line in documented(&hosts).0 {
        let st = operator_shell(&line).status().expect("bash");
        assert!(st.success(), "docs/fleet.md: {line:?} failed");
    }
    let start = Instant::now();
    let (changed, _) = playbook(&hosts, &[]);
    let took = start.elapsed().as_secs_f64();
    assert!(changed > 0, "the first run changes the host");

    // What the role installed.
    let files = root(
        "stat -c '%n %U:%G %a' /usr/local/bin/ddcoterm-server /etc/ddcoterm-server /etc/ddcoterm-server/config.yaml \
           /var/lib/ddcoterm-server /etc/systemd/system/ddcoterm-server.service; \
         getent passwd ddcoterm-server | cut -d: -f6,7; cat /etc/ddcoterm-server/config.yaml",
    )
    .ok("installed files")
    .stdout;
    for want in [
        "/usr/local/bin/ddcoterm-server root:root 755",
        "/etc/ddcoterm-server root:ddcoterm-server 750",
        "/etc/ddcoterm-server/config.yaml root:ddcoterm-server 640",
        "/var/lib/ddcoterm-server ddcoterm-server:ddcoterm-server 750",
        "/etc/systemd/system/ddcoterm-server.service root:root 644",
        "/var/lib/ddcoterm-server:/usr/sbin/nologin",
        "listen: 127.0.0.1:7780",
        "data_dir: /var/lib/ddcoterm-server",
        "public_url: https://sessions.example.com",
    ] {
        assert!(files.contains(want), "{want:?} in:\n{files}");
    }
    let unit = root("cat /etc/systemd/system/ddcoterm-server.service").ok("unit").stdout;
    for line in [
        "User=ddcoterm-server",
        "ExecStart=/usr/local/bin/ddcoterm-server serve",
        "Environment=DDCOTERMD_CONFIG=/etc/ddcoterm-server/config.yaml",
        "StateDirectory=ddcoterm-server",
        "ReadWritePaths=/var/lib/ddcoterm-server",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit:\n{unit}");
    }
    // The admin user was created by the service's user: the database is the service's, the password only hashed.
    let db = root("stat -c '%U' /var/lib/ddcoterm-server/ddcoterm.db").ok("db owner").stdout;
    assert_eq!(db.trim(), "ddcoterm-server");
    let leaked = root(&format!(
        "grep -rl -- '{ADMIN_PASSWORD}' /var/lib/ddcoterm-server /etc/ddcoterm-server || true"
    ))
    .ok("grep")
    .stdout;
    assert!(leaked.trim().is_empty(), "the password is stored nowhere in clear: {leaked}");

    // Started as the unit starts it (no systemd in a container): ready, and the admin signs in.
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in the unit"))
            .to_string()
    };
    let (user, exec_start, env) = (value("User="), value("ExecStart="), value("Environment="));
    let st = Command::new("docker")
        .args(["exec", "-d", "-u", &user, "-w", "/var/lib/ddcoterm-server", "-e", &env, &id, "sh", "-c"])
        .arg(format!("echo $$ > /tmp/server.pid; exec {exec_start} > /tmp/server.log 2>&1"))
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    while exec(
        &id,
        "root",
        &[],
        &["ddcoterm-server", "--config", "/etc/ddcoterm-server/config.yaml", "healthcheck"],
    )
    .code
        != 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the server never became ready:\n{}",
            root("cat /tmp/server.log").stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sign_in = |password: &str| -> String {
        let script = format!(
            "import base64, urllib.request, urllib.error\n\
             r = urllib.request.Request('http://127.0.0.1:7780/api/v1/sessions')\n\
             r.add_header('Authorization', 'Basic ' + base64.b64encode(b'admin:{password}').decode())\n\
             try:\n    print(urllib.request.urlopen(r).status)\n\
             except urllib.error.HTTPError as e:\n    print(e.code)\n"
        );
        exec(&id, "root", &[], &["python3", "-c", &script]).ok("sign in").stdout.trim().to_string()
    };
    assert_eq!(sign_in(ADMIN_PASSWORD), "200", "the admin reads the session list");
    assert_eq!(sign_in("not-the-password"), "401");
    root("kill $(cat /tmp/server.pid); while kill -0 $(cat /tmp/server.pid) 2>/dev/null; do sleep 0.1; done")
        .ok("stop the server");

    // The documented next step: a host token for a bastion, created as the service's user (docs/fleet.md).
    for line in doc_commands(&doc_block("fleet_server_ansible", "token")) {
        let token = exec(&id, "root", &[], &["bash", "-lc", &line]).ok(&line).stdout;
        assert!(token.trim().len() >= 32 && !token.trim().contains(' '), "{line}: a token: {token:?}");
    }
    let tokens = exec(
        &id,
        "ddcoterm-server",
        &[],
        &["ddcoterm-server", "--config", "/etc/ddcoterm-server/config.yaml", "token", "list"],
    )
    .ok("token list")
    .stdout;
    assert!(tokens.contains("bastion-1"), "{tokens}");

    // Idempotent.
    let (changed, out) = playbook(&hosts, &[]);
    assert_eq!(changed, 0, "second run changes nothing:\n{out}");
    report(&format!("fleet numbers: ddcoterm_server role rollout {took:.1}s, second run changed={changed}"));

    // Uninstall: the server goes, the recordings stay; purge takes them and the user; both idempotent.
    let (changed, _) = playbook(&hosts, &["ddcoterm_server_state=absent"]);
    assert!(changed > 0);
    let left = root(
        "for p in /usr/local/bin/ddcoterm-server /etc/ddcoterm-server /etc/systemd/system/ddcoterm-server.service \
           /var/lib/ddcoterm-server/ddcoterm.db; do test -e $p && echo \"present $p\" || echo \"absent $p\"; done; \
         getent passwd ddcoterm-server >/dev/null && echo user-kept",
    )
    .ok("after absent")
    .stdout;
    assert_eq!(
        left,
        "absent /usr/local/bin/ddcoterm-server\nabsent /etc/ddcoterm-server\n\
         absent /etc/systemd/system/ddcoterm-server.service\npresent /var/lib/ddcoterm-server/ddcoterm.db\nuser-kept\n"
    );
    let (changed, out) = playbook(&hosts, &["ddcoterm_server_state=absent"]);
    assert_eq!(changed, 0, "absent twice changes nothing:\n{out}");
    let (changed, _) = playbook(&hosts, &["ddcoterm_server_state=absent", "ddcoterm_server_purge=true"]);
    assert!(changed > 0);
    let gone = root("test ! -e /var/lib/ddcoterm-server && ! getent passwd ddcoterm-server && ! getent group ddcoterm-server && echo purged")
        .ok("after purge")
        .stdout;
    assert_eq!(gone, "purged\n");
    let (changed, out) = playbook(&hosts, &["ddcoterm_server_state=absent", "ddcoterm_server_purge=true"]);
    assert_eq!(changed, 0, "purge twice changes nothing:\n{out}");
}
