//! The Ansible role on three real bastion containers: rollout, shims in login shells, the org lint, team
//! layers, idempotence, and a user who tries to weaken the organisation's policy. Every run is the documented
//! `ansible-playbook` line (docs/fleet.md, block `role`) with this test's inventory and secrets file in place
//! of the documented ones and its own binary layered on top.
//!
//! Needs docker and the local base image (`make base-image`), and the Python tools (`scripts/py-tools.sh`).
//! Skips only when docker is absent.

mod fleet_common;

use fleet_common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use testcontainers::core::ImageExt;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage};

const BASTIONS: usize = 3;
const LINT: &str = "No kubectl context specified (effective context: 'dev-cluster')";
const SRE_LINT: &str = "`kubectl delete --all` removes every object";
const FAKE_KUBECTL: &str = "#!/bin/sh\necho \"fake-kubectl $*\"\n";
/// Bastion users have a kubeconfig; the lint reads its current-context (never by running kubectl).
const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: dev-cluster\ncontexts: []\n";

fn venv_bin(tool: &str) -> PathBuf {
    let venv =
        std::env::var_os("FLEET_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".build/venv"));
    let p = venv.join("bin").join(tool);
    assert!(
        p.exists(),
        "{} is missing: run scripts/py-tools.sh (make ansible-lint installs it)",
        p.display()
    );
    p
}

fn start_bastion(i: usize) -> Container<GenericImage> {
    let c = GenericImage::new(BASE_IMAGE.0, BASE_IMAGE.1)
        .with_entrypoint("sleep")
        .with_cmd(["infinity"])
        .with_hostname(format!("bastion-{i}"))
        .with_label("ddcoterm.test", "fleet_ansible")
        .start()
        .expect("start bastion container");
    let id = c.id().to_string();
    // What a bastion has before Ansible: users in unix groups, and the real kubectl (a fake that echoes).
    exec(
        &id,
        "root",
        &[],
        &[
            "sh",
            "-ec",
            &format!(
                "groupadd sre && useradd -m -s /bin/bash -G sre alice && useradd -m -s /bin/bash bob \
                 && printf '%s' '{FAKE_KUBECTL}' > /usr/bin/kubectl && chmod 0755 /usr/bin/kubectl \
                 && for u in alice bob; do install -d -o $u -g $u /home/$u/.kube \
                 && printf '%s' '{KUBECONFIG}' > /home/$u/.kube/config && chown $u /home/$u/.kube/config; done"
            ),
        ],
    )
    .ok("prepare bastion");
    c
}

/// Runs site.yml against the containers with `extra` arguments; returns the raw output.
fn playbook(inventory: &Path, extra: &[&str]) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_ddcoterm");
    let venv_bin_dir = venv_bin("ansible-playbook").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", venv_bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // The documented command (docs/fleet.md, "Ansible role"), with this test's inventory and secrets file,
    // and its own binary layered on top.
    let secrets = inventory.with_file_name("secrets.yml");
    std::fs::write(&secrets, "ddcoterm_api_key: fleet-test-api-key\n").unwrap();
    let (before, documented) = documented_playbook(
        "fleet_ansible",
        "role",
        &[
            ("inventory/example.ini", inventory.display().to_string()),
            ("@secrets.yml", format!("@{}", secrets.display())),
        ],
    );
    assert!(before.is_empty(), "{before:?}");
    Command::new(venv_bin("ansible-playbook"))
        .current_dir(repo().join("ansible"))
        .env("PATH", path)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .args(&documented)
        .args(["-e", &format!("ddcoterm_binary_src={bin}")])
        .args(extra)
        .output()
        .expect("run ansible-playbook")
}

/// Runs site.yml against the containers; returns the PLAY RECAP `changed=` count per host and the time.
fn run_playbook(inventory: &Path) -> (BTreeMap<String, u32>, f64) {
    let (changed, took) = run_playbook_with(inventory, &[]);
    assert_eq!(changed.len(), BASTIONS, "recap for every bastion: {changed:?}");
    (changed, took)
}

/// Runs site.yml with `extra` arguments; it must succeed. Returns `changed=` per host in the recap and the time.
fn run_playbook_with(inventory: &Path, extra: &[&str]) -> (BTreeMap<String, u32>, f64) {
    let start = Instant::now();
    let out = playbook(inventory, extra);
    let took = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ansible-playbook failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut changed = BTreeMap::new();
    for line in stdout.lines().skip_while(|l| !l.starts_with("PLAY RECAP")).skip(1) {
        let Some((host, stats)) = line.split_once(" : ") else { continue };
        let get = |k: &str| -> u32 {
            stats
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k}= in recap line {line:?}"))
        };
        assert_eq!((get("failed"), get("unreachable")), (0, 0), "recap: {line}");
        changed.insert(host.trim().to_string(), get("changed"));
    }
    assert!(!changed.is_empty(), "no recap in:\n{stdout}");
    (changed, took)
}

fn write_inventory(dir: &Path, containers: &[Container<GenericImage>]) -> PathBuf {
    let inv = dir.join("inventory");
    std::fs::create_dir_all(inv.join("group_vars")).unwrap();
    // The example group settings as shipped (deploy/ configs, bundles when present), unchanged.
    std::fs::copy(
        repo().join("ansible/inventory/group_vars/bastions.yml"),
        inv.join("group_vars/bastions.yml"),
    )
    .unwrap();
    let mut hosts = String::from("[bastions]\n");
    for (i, c) in containers.iter().enumerate() {
        hosts.push_str(&format!(
            "bastion-{} ansible_connection=community.docker.docker ansible_host={}\n",
            i + 1,
            c.id()
        ));
    }
    std::fs::write(inv.join("hosts.ini"), hosts).unwrap();
    // bastion-1 also routes SSH sessions through ddcoterm ssh-login: sre members, breakglass exempt.
    std::fs::create_dir_all(inv.join("host_vars")).unwrap();
    std::fs::write(
        inv.join("host_vars/bastion-1.yml"),
        "ddcoterm_ssh_force_command: true\nddcoterm_ssh_match_groups: [sre]\nddcoterm_ssh_exempt_groups: [breakglass]\n",
    )
    .unwrap();
    inv.join("hosts.ini")
}

/// What bastion-1 runs before Ansible: sshd with host keys (so that the role's reload has a daemon to reach)
/// and keys for alice (sre), bob (no group) and carol (sre and breakglass).
fn start_sshd(c: &str) {
    exec(
        c,
        "root",
        &[],
        &[
            "sh",
            "-ec",
            "ssh-keygen -A >/dev/null && mkdir -p /run/sshd && groupadd breakglass \
             && useradd -m -s /bin/bash -G sre,breakglass carol \
             && ssh-keygen -q -t ed25519 -N '' -f /root/id \
             && for u in alice bob carol; do install -d -m 700 -o $u -g $u /home/$u/.ssh \
                && install -m 600 -o $u -g $u /root/id.pub /home/$u/.ssh/authorized_keys; done \
             && /usr/sbin/sshd -E /var/log/sshd.log",
        ],
    )
    .ok("start sshd on bastion-1");
}

/// `ssh user@localhost CMD` inside the container (sshd as configured by the role).
fn ssh_as(c: &str, user: &str, cmd: &str) -> Run {
    exec(
        c,
        "root",
        &[],
        &[
            "ssh",
            "-i",
            "/root/id",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            &format!("{user}@127.0.0.1"),
            cmd,
        ],
    )
}

/// Through ssh-login, a remote command runs in a recorded session (DDCOTERM_SESSION set); without, not.
fn recorded_over_ssh(c: &str, user: &str) -> bool {
    let r = ssh_as(c, user, "echo \"session=$DDCOTERM_SESSION\"").ok(&format!("ssh as {user}"));
    let line = r.stdout.lines().find(|l| l.starts_with("session=")).unwrap_or_default().to_string();
    line.len() > "session=".len()
}

const DROP_IN: &str = "/etc/ssh/sshd_config.d/ddcoterm.conf";

/// The role's sshd drop-in on bastion-1: content, `sshd -t`, the reload reached sshd, Match scope, exemption.
fn assert_force_command(c: &str) -> String {
    let dropin = exec(c, "root", &[], &["cat", DROP_IN]).ok("cat the drop-in").stdout;
    let lines: Vec<&str> = dropin.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(
        lines,
        [
            "ExposeAuthInfo yes",
            "Match Group sre,!breakglass",
            "    ForceCommand /usr/local/bin/ddcoterm ssh-login"
        ],
        "drop-in:\n{dropin}"
    );
    exec(c, "root", &[], &["sshd", "-t"]).ok("sshd -t with the drop-in");
    let mode = exec(c, "root", &[], &["stat", "-c", "%a %U:%G", DROP_IN]).ok("stat").stdout;
    assert_eq!(mode.trim(), "644 root:root");
    // The role reloaded sshd: new sessions of sre members go through ssh-login, others' do not.
    assert!(recorded_over_ssh(c, "alice"), "alice (sre) is recorded over ssh");
    assert!(!recorded_over_ssh(c, "bob"), "bob (not in sre) is not matched");
    assert!(!recorded_over_ssh(c, "carol"), "carol (breakglass) is exempt");
    dropin
}

/// A drop-in sshd rejects is not left in place: the role fails, the previous one is back, sshd still works.
fn assert_bad_dropin_rolled_back(inventory: &Path, c: &str, good: &str) {
    let out = playbook(
        inventory,
        &["--limit", "bastion-1", "-e", r#"{"ddcoterm_ssh_extra_config": "NoSuchOption yes"}"#],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "an invalid sshd option must fail the play:\n{stdout}");
    assert!(stdout.contains("sshd -t rejected"), "the failure names the validation:\n{stdout}");
    assert!(stdout.contains("NoSuchOption"), "and sshd's complaint:\n{stdout}");
    let now = exec(c, "root", &[], &["cat", DROP_IN]).ok("cat the drop-in").stdout;
    assert_eq!(now, good, "the previous drop-in is back in place");
    exec(c, "root", &[], &["sshd", "-t"]).ok("sshd -t after the rollback");
    assert!(recorded_over_ssh(c, "alice"), "sessions still go through ssh-login");
}

fn assert_installed(c: &str) {
    let stat =
        |p: &str| exec(c, "root", &[], &["stat", "-c", "%a %U:%G %F", p]).ok(p).stdout.trim().to_string();
    assert_eq!(stat("/usr/local/bin/ddcoterm"), "755 root:root regular file");
    assert_eq!(stat("/usr/local/bin/ddcoterm-shim"), "755 root:root regular file");
    assert_eq!(stat("/etc/ddcoterm/config.yaml"), "644 root:root regular file");
    assert_eq!(stat("/etc/ddcoterm/teams/sre.yaml"), "644 root:root regular file");
    assert_eq!(stat("/etc/ddcoterm/teams/developers.yaml"), "644 root:root regular file");
    assert_eq!(stat("/etc/ddcoterm/datadog.env"), "600 root:root regular file", "keys are 0600");
    assert_eq!(stat("/etc/profile.d/ddcoterm.sh"), "644 root:root regular file");
    for shim in ["kubectl", "helm", "terraform"] {
        let link = exec(c, "root", &[], &["readlink", &format!("/usr/local/lib/ddcoterm/overrides/{shim}")]);
        assert_eq!(link.ok(shim).stdout.trim(), "/usr/local/bin/ddcoterm-shim", "shim {shim}");
    }
    if repo().join("deploy/bundles/sre-baseline.yaml").exists() {
        assert_eq!(stat("/etc/ddcoterm/bundles/sre-baseline.yaml"), "644 root:root regular file");
        assert_eq!(stat("/etc/ddcoterm/bundles/sre-baseline.yaml.sig"), "644 root:root regular file");
    }
    // Not readable by users: a bastion user cannot read the org's keys.
    let r = exec(c, "bob", &[], &["cat", "/etc/ddcoterm/datadog.env"]);
    assert_ne!(r.code, 0, "bob read datadog.env: {}", r.stdout);
}

/// The role filled the organisation's policy cache (root's, 0644 entries) for the shims, and a shimmed call
/// finds every entry it needs there: run by root, who could write a missing one, it adds none.
fn assert_cache_warm(c: &str) {
    let list = || {
        let out =
            exec(c, "root", &[], &["sh", "-c", "ls /etc/ddcoterm/cache | sort"]).ok("ls the cache").stdout;
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let before = list();
    assert!(before.iter().any(|e| e.starts_with("luau-")), "compiled Luau cached: {before:?}");
    assert!(before.iter().any(|e| e.starts_with("yaml-")), "parsed layers cached: {before:?}");
    let modes = exec(c, "root", &[], &["sh", "-c", "stat -c '%a %U' /etc/ddcoterm/cache/* | sort -u"]);
    assert_eq!(modes.ok("stat the entries").stdout.trim(), "644 root", "entries only root can write");
    login_shell(c, "root", &[], "/usr/local/lib/ddcoterm/overrides/kubectl get pods --context dev")
        .ok("a shimmed call as root");
    assert_eq!(list(), before, "the shim's call found every entry warmed by the role");
}

fn assert_guarded(c: &str) {
    let which = login_shell(c, "alice", &[], "command -v kubectl").ok("command -v kubectl");
    assert_eq!(which.stdout.trim(), "/usr/local/lib/ddcoterm/overrides/kubectl", "the shim is first on PATH");

    // The org lint fires; with no terminal to ask on, the command is refused and the real kubectl never runs.
    let r = login_shell(c, "alice", &[], "kubectl scale deploy/web --replicas=2");
    assert_ne!(r.code, 0, "kubectl scale without --context must be refused without a tty: {r:?}");
    assert!(r.stderr.contains(LINT) || r.stdout.contains(LINT), "org lint shown: {r:?}");
    assert!(!r.stdout.contains("fake-kubectl"), "the real kubectl must not run: {r:?}");

    // A command the lint does not object to runs the real binary (through the recorder: default actions).
    let r = login_shell(c, "alice", &[], "kubectl scale deploy/web --replicas=2 --context dev");
    let r = r.ok("kubectl with --context");
    assert!(r.stdout.contains("fake-kubectl scale deploy/web --replicas=2 --context dev"), "{r:?}");

    // Team layer: alice is in `sre`, bob is not.
    let r = login_shell(c, "alice", &[], "kubectl delete pods --all --context dev");
    assert!(r.stderr.contains(SRE_LINT) || r.stdout.contains(SRE_LINT), "sre team lint for alice: {r:?}");
    assert_ne!(r.code, 0, "{r:?}");
    // (Other org lints, e.g. the signed baseline bundle's, may still refuse it without a tty.)
    let r = login_shell(c, "bob", &[], "kubectl delete pods --all --context dev");
    assert!(!r.stderr.contains(SRE_LINT) && !r.stdout.contains(SRE_LINT), "bob is not in sre: {r:?}");
}

/// (c) A user cannot weaken the organisation's policy from their own config or environment.
fn assert_policy_floor(c: &str) {
    let weaken = "process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      lints: []\n\
                  lints:\n  non_interactive: allow\nredaction:\n  enabled: false\nrecording:\n  input: true\n";
    exec(
        c,
        "alice",
        &[],
        &["sh", "-ec", &format!("mkdir -p ~/.ddcoterm && printf '%s' '{weaken}' > ~/.ddcoterm/config.yaml")],
    )
    .ok("write user config");
    let r = login_shell(c, "alice", &[], "kubectl scale deploy/web --replicas=0");
    assert!(r.stderr.contains(LINT) || r.stdout.contains(LINT), "lint survives the user layer: {r:?}");
    assert_ne!(r.code, 0, "locked lints.non_interactive: deny still refuses without a tty: {r:?}");
    assert!(!r.stdout.contains("fake-kubectl"), "{r:?}");

    let r =
        login_shell(c, "alice", &[("DDCOTERM_LINTS__NON_INTERACTIVE", "allow")], "kubectl scale deploy/web");
    assert_ne!(r.code, 0, "the environment cannot unlock a locked key either: {r:?}");
    assert!(!r.stdout.contains("fake-kubectl"), "{r:?}");

    // default_actions: [] in the user layer does not remove the org's `record`: the session is recorded.
    login_shell(c, "alice", &[], "rm -rf ~/.ddcoterm/recordings; kubectl get pods --context dev")
        .ok("kubectl get pods");
    let casts = login_shell(c, "alice", &[], "ls ~/.ddcoterm/recordings/ | grep -c '\\.cast$'");
    assert_eq!(casts.stdout.trim(), "1", "one recording despite default_actions: [] ({casts:?})");
}

#[test]
fn ansible_rolls_out_to_three_bastions_idempotently_and_the_org_policy_holds() {
    if !docker_available("fleet_ansible") {
        return;
    }
    require_image(BASE_IMAGE);
    let tmp = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let containers: Vec<_> = (1..=BASTIONS).map(start_bastion).collect();
    start_sshd(containers[0].id());
    let boot = started.elapsed().as_secs_f64();
    let inventory = write_inventory(tmp.path(), &containers);

    let (first, rollout) = run_playbook(&inventory);
    assert!(first.values().all(|&n| n > 0), "the first run installs something on every host: {first:?}");
    for c in &containers {
        assert_installed(c.id());
        assert_cache_warm(c.id());
    }
    let (second, rerun) = run_playbook(&inventory);
    let second_changed: u32 = second.values().sum();

    fleet_common::report(&format!(
        "fleet numbers: {BASTIONS} bastion containers started in {boot:.1}s; rollout (first run) {rollout:.1}s; \
         second run {rerun:.1}s with changed={second_changed} ({second:?})"
    ));
    assert_eq!(second_changed, 0, "second run must report changed=0 on every host: {second:?}");

    for c in &containers {
        assert_guarded(c.id());
    }
    for c in &containers[1..] {
        let r = exec(c.id(), "root", &[], &["test", "-e", DROP_IN]);
        assert_ne!(r.code, 0, "no sshd drop-in where ddcoterm_ssh_force_command is off");
    }
    let good = assert_force_command(containers[0].id());
    assert_bad_dropin_rolled_back(&inventory, containers[0].id(), &good);
    assert_policy_floor(containers[0].id());

    // A policy push touches only the configuration (tag), and changes nothing that is already in place.
    let (tagged, _) = run_playbook_with(&inventory, &["--tags", "ddcoterm_config"]);
    assert!(tagged.values().all(|&n| n == 0), "--tags ddcoterm_config on an up-to-date fleet: {tagged:?}");

    assert_bastion_mode_then_removal(&inventory, &containers);
}

fn stat(c: &str, path: &str) -> Option<String> {
    let r = exec(c, "root", &[], &["stat", "-c", "%a %U:%G %F", path]);
    (r.code == 0).then(|| r.stdout.trim().to_string())
}

fn has_account(c: &str, db: &str, name: &str) -> bool {
    exec(c, "root", &[], &["getent", db, name]).code == 0
}

/// Bastion mode on bastion-2 (its user, groups, private state, 0600 credentials), then `ddcoterm_state=absent`
/// everywhere: sshd first (bastion-1's users log in to a plain shell again, sshd still answering), nothing of
/// ddcoterm left but the agent's spool, a second run `changed=0`; then `ddcoterm_purge` takes the spool, the
/// user and the groups, twice as well.
fn assert_bastion_mode_then_removal(inventory: &Path, containers: &[Container<GenericImage>]) {
    const SPOOL: &str = "/var/spool/ddcoterm";
    const CREDENTIALS: &str = "/etc/ddcoterm/agent-credentials.yaml";
    let b2 = containers[1].id();
    let agent = [
        "--limit",
        "bastion-2",
        "-e",
        r#"{"ddcoterm_agent_enabled": true, "ddcoterm_agent_users": ["alice"]}"#,
    ];
    run_playbook_with(inventory, &agent);
    assert_eq!(stat(b2, SPOOL).as_deref(), Some("700 ddcoterm-agent:ddcoterm-agent directory"));
    assert_eq!(stat(b2, CREDENTIALS).as_deref(), Some("600 ddcoterm-agent:ddcoterm-agent regular file"));
    let groups = exec(b2, "root", &[], &["id", "-nG", "alice"]).ok("id alice").stdout;
    assert!(groups.split_whitespace().any(|g| g == "ddcoterm"), "alice joined the socket group: {groups}");
    let (again, _) = run_playbook_with(inventory, &agent);
    assert_eq!(again.values().sum::<u32>(), 0, "bastion mode is idempotent: {again:?}");
    exec(b2, "root", &[], &["sh", "-c", &format!("echo queued > {SPOOL}/left-behind")]).ok("a spooled file");

    let absent = ["-e", "ddcoterm_state=absent"];
    let (removed, _) = run_playbook_with(inventory, &absent);
    assert!(removed.values().all(|&n| n > 0), "absent removes something on every host: {removed:?}");
    let b1 = containers[0].id();
    assert_eq!(stat(b1, DROP_IN), None, "the sshd drop-in is gone");
    assert!(
        !recorded_over_ssh(b1, "alice"),
        "alice logs in to a plain shell: sshd was reloaded, not stopped"
    );
    for c in containers {
        let c = c.id();
        for gone in [
            "/usr/local/bin/ddcoterm",
            "/usr/local/bin/ddcoterm-shim",
            "/etc/ddcoterm",
            "/usr/local/lib/ddcoterm/overrides",
            "/etc/profile.d/ddcoterm.sh",
        ] {
            assert_eq!(stat(c, gone), None, "{gone} removed");
        }
        let which = login_shell(c, "alice", &[], "command -v kubectl").ok("command -v kubectl");
        assert_eq!(which.stdout.trim(), "/usr/bin/kubectl", "the real kubectl again");
    }
    assert_eq!(
        exec(b2, "root", &[], &["cat", &format!("{SPOOL}/left-behind")]).ok("spool kept").stdout.trim(),
        "queued",
        "absent without purge keeps what the agent had not uploaded"
    );
    assert!(has_account(b2, "passwd", "ddcoterm-agent"), "the agent's user stays without purge");
    let (again, _) = run_playbook_with(inventory, &absent);
    assert_eq!(again.values().sum::<u32>(), 0, "absent twice: {again:?}");

    let purge = ["--limit", "bastion-2", "-e", "ddcoterm_state=absent", "-e", "ddcoterm_purge=true"];
    run_playbook_with(inventory, &purge);
    assert_eq!(stat(b2, SPOOL), None, "purge deletes the spool");
    assert!(!has_account(b2, "passwd", "ddcoterm-agent"), "purge removes the agent's user");
    for g in ["ddcoterm-agent", "ddcoterm"] {
        assert!(!has_account(b2, "group", g), "purge removes group {g}");
    }
    let (again, _) = run_playbook_with(inventory, &purge);
    assert_eq!(again.values().sum::<u32>(), 0, "purge twice: {again:?}");
}
