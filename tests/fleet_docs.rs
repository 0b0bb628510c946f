//! docs/fleet.md runs in CI. Every fenced `sh` block carries a `<!-- RUNNER: NAME -->` marker naming the test
//! that runs it (`tests/RUNNER.rs`, which reads the block with `doc_block("NAME")`), or `helm-check` for the
//! Helm section (scripts/helm-check.py renders its `helm` lines; its `kubectl` lines need a cluster), so a
//! new command nobody runs fails here. The blocks this file claims run literally, line by line, exactly as
//! written: the Debian packages on a systemd container (`dpkg -i`, `systemctl status`, `healthcheck`,
//! `token create`), the server image on the CI host's Docker (its fixed name, volume and port 7780, cleaned
//! up before and after), the client image (`-it` under a pseudo-terminal).
//!
//! The container tests need docker and the images (`make base-image image server-image systemd-image
//! package`; `make test` builds them first); without docker they print "skipped:" and return.

mod fleet_common;

use fleet_common::*;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runner name of the blocks scripts/helm-check.py renders.
const HELM: &str = "helm-check";
/// The section of docs/fleet.md helm-check reads its commands from.
const HELM_SECTION: &str = "## Helm chart";

/// What is wrong with the claims of `doc` (empty: every `sh` block is claimed by a runner that reads it).
/// `source(runner)` is the runner's text (`tests/RUNNER.rs`, or helm-check's script), `None` when absent.
fn claim_problems(doc: &str, source: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let helm_start = doc.find(HELM_SECTION).map(|o| doc[..o].lines().count() + 1);
    let helm_end = helm_start.and_then(|s| {
        doc.lines().enumerate().skip(s).find(|(_, l)| l.starts_with("## ")).map(|(i, _)| i + 1)
    });
    for b in doc_blocks(doc) {
        let first = doc_commands(&b.body).into_iter().next().unwrap_or_default();
        let at = format!("docs/fleet.md:{} ({first:?})", b.line);
        let Some((runner, name)) = &b.marker else {
            if b.lang == "sh" {
                problems.push(format!(
                    "{at}: no test runs this sh block: put `<!-- TEST: NAME -->` above it, naming the test \
                     (tests/TEST.rs) that reads it with doc_block(\"NAME\") and runs it"
                ));
            }
            continue;
        };
        if !seen.insert((runner.clone(), name.clone())) {
            problems.push(format!("{at}: a second block marked <!-- {runner}: {name} -->"));
        }
        let Some(text) = source(runner) else {
            problems.push(format!("{at}: marked <!-- {runner}: {name} --> but there is no such test"));
            continue;
        };
        if runner == HELM {
            let inside =
                matches!((helm_start, helm_end), (Some(s), e) if b.line > s && e.is_none_or(|e| b.line < e));
            if !inside {
                problems.push(format!("{at}: helm-check reads only the {HELM_SECTION:?} section"));
            }
            if !text.contains("\"docs\" / \"fleet.md\"") {
                problems.push(format!("{at}: helm-check no longer reads docs/fleet.md"));
            }
            for cmd in doc_commands(&b.body) {
                let ok = cmd.starts_with("helm install ")
                    || cmd.starts_with("helm upgrade ")
                    || cmd.starts_with("kubectl ");
                if !ok {
                    problems.push(format!(
                        "{at}: {cmd:?}: helm-check renders helm install/upgrade only (kubectl needs a cluster)"
                    ));
                }
            }
            if doc_commands(&b.body).iter().any(|c| c.starts_with("kubectl "))
                && !doc.contains("the `kubectl` lines need a cluster")
            {
                problems.push(format!("{at}: kubectl lines, and the doc no longer says they need a cluster"));
            }
            continue;
        }
        // Read with fleet_common's doc_block or documented_playbook (formatting aside).
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let reads = [
            format!("doc_block(\"{name}\")"),
            format!("doc_block(\"{runner}\",\"{name}\")"),
            format!("documented_playbook(\"{runner}\",\"{name}\""),
        ];
        if !reads.iter().any(|r| text.contains(r.as_str())) {
            problems.push(format!(
                "{at}: tests/{runner}.rs does not read block {name:?} (doc_block(\"{name}\"))"
            ));
        }
    }
    problems
}

fn runner_source(runner: &str) -> Option<String> {
    let path = if runner == HELM {
        repo().join("scripts/helm-check.py")
    } else {
        repo().join(format!("tests/{runner}.rs"))
    };
    std::fs::read_to_string(path).ok()
}

#[test]
fn every_sh_block_of_the_fleet_doc_is_claimed_by_a_test_that_runs_it() {
    let doc = std::fs::read_to_string(repo().join("docs/fleet.md")).unwrap();
    let problems = claim_problems(&doc, &runner_source);
    assert!(problems.is_empty(), "docs/fleet.md:\n{}", problems.join("\n"));
    let sh = doc_blocks(&doc).iter().filter(|b| b.lang == "sh").count();
    assert!(sh >= 8, "the fleet doc's sh blocks were found ({sh})");

    // The check fails where it must: an unclaimed block, an unknown runner, a runner that does not read the
    // block, a second block with the same marker, and a command helm-check cannot run.
    let fake = |r: &str| match r {
        "t" => Some("doc_block(\"a\")".to_string()),
        HELM => Some("ROOT / \"docs\" / \"fleet.md\"".to_string()),
        _ => None,
    };
    let bad = [
        "```sh\necho unclaimed\n```\n",
        "<!-- nosuch: a -->\n```sh\necho hi\n```\n",
        "<!-- t: b -->\n```sh\necho hi\n```\n",
        "<!-- t: a -->\n```sh\necho hi\n```\n<!-- t: a -->\n```sh\necho hi\n```\n",
        "## Helm chart\n\n<!-- helm-check: x -->\n```sh\nhelm install a b\ndocker run x\n```\n",
        "## Other\n\n<!-- helm-check: x -->\n```sh\nhelm install a b\n```\n",
    ];
    for d in bad {
        assert!(!claim_problems(d, &fake).is_empty(), "not caught:\n{d}");
    }
    let good =
        "<!-- t: a -->\n```sh\necho hi\n```\n```yaml\nk: v\n```\n## Helm chart\n\n<!-- helm-check: x -->\n\
                ```sh\nhelm upgrade a b \\\n  --set x=1\n```\n";
    assert_eq!(claim_problems(good, &fake), Vec::<String>::new());
}

// ------------------------------------------------------------------------------------------------------
// Running the blocks.

/// Runs one documented line with bash on the CI host, in the repository root.
fn host(line: &str) -> Run {
    let o = operator_shell(line)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("bash -c {line:?}: {e}"));
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Reruns a read-only check line until `ok` holds (a service being started, a health check's interval),
/// at most `limit`; the last result.
fn until(limit: Duration, mut run: impl FnMut() -> Run, ok: impl Fn(&Run) -> bool) -> Run {
    let start = Instant::now();
    loop {
        let r = run();
        if ok(&r) || start.elapsed() > limit {
            return r;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn docker(args: &[&str]) -> Run {
    let o = Command::new("docker").args(args).output().expect("docker");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Removes containers and volumes by name before a block runs (a leftover of an earlier run) and after.
struct Names {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Names {
    fn clean(&self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for v in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        self.clean();
    }
}

/// The blocks run one at a time: each starts with `make` targets that share cargo's target directory and the
/// base image, and the machine has two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The image the systemd tests run on (`make systemd-image`, scripts/systemd-image.sh).
const SYSTEMD_IMAGE: (&str, &str) = ("ddcoterm-systemd", "bookworm");

#[test]
fn the_debian_package_block_runs_as_written_on_a_systemd_host() {
    if !docker_available("fleet_docs") {
        println!("skipped: no docker engine");
        return;
    }
    let _serial = one_at_a_time();
    let image = format!("{}:{}", SYSTEMD_IMAGE.0, SYSTEMD_IMAGE.1);
    assert_eq!(
        docker(&["image", "inspect", "--format", "ok", &image]).stdout.trim(),
        "ok",
        "image {image} is missing: run `make systemd-image` (scripts/systemd-image.sh) first"
    );
    let block = doc_block("fleet_docs", "package");
    let mut cmds = doc_commands(&block).into_iter();
    // The first line builds the packages on the build machine, where the repository is.
    let make = cmds.next().expect("a command");
    assert_eq!(make, "make package", "the block starts by building the packages");
    let t = Instant::now();
    host(&make).ok(&make);
    let built = t.elapsed().as_secs_f64();

    // The rest runs on a systemd host, in a copy of the repository's target/package, as an operator with sudo.
    let name = format!("ddcoterm-docs-systemd-{}", std::process::id());
    let names = Names { containers: vec![name.clone()], volumes: vec![] };
    names.clean();
    let flags = host("bash scripts/systemd-image.sh --run-flags").ok("systemd run flags").stdout;
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    args.extend(flags.split_whitespace().map(str::to_string));
    args.extend(["--label".into(), "ddcoterm.test=fleet_docs".into()]);
    args.push(image);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv).ok("start the systemd container");
    let booted = until(
        Duration::from_secs(60),
        || exec(&name, "root", &[], &["systemctl", "is-system-running", "--wait"]),
        |r| matches!(r.stdout.trim(), "running" | "degraded"),
    );
    assert!(
        matches!(booted.stdout.trim(), "running" | "degraded"),
        "systemd did not boot: {booted:?}\n{}",
        docker(&["logs", &name]).stderr
    );
    let failed = exec(&name, "root", &[], &["systemctl", "--failed", "--no-legend", "--plain"]).stdout;
    assert!(failed.trim().is_empty(), "units failed at boot: {failed}");
    exec(
        &name,
        "root",
        &[],
        &[
            "sh",
            "-ec",
            "useradd -m -s /bin/bash deploy; echo 'deploy ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/deploy; \
             mkdir -p /home/deploy/ddcoterm/target",
        ],
    )
    .ok("an operator with sudo");
    docker(&[
        "cp",
        &repo().join("target/package").display().to_string(),
        &format!("{name}:/home/deploy/ddcoterm/target/"),
    ])
    .ok("copy the packages");
    exec(&name, "root", &[], &["chown", "-R", "deploy:", "/home/deploy/ddcoterm"]).ok("chown");
    let op = |line: &str| -> Run {
        let mut c = Command::new("docker");
        c.args(["exec", "-u", "deploy", "-w", "/home/deploy/ddcoterm", &name, "bash", "-lc", line]);
        let o = c.output().expect("docker exec");
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let mut ran = Vec::new();
    for cmd in cmds {
        let r = if cmd.contains("systemctl status") || cmd.contains(" healthcheck") {
            // Started by the postinst: `status` exits 0 only for an active unit, `healthcheck` once it listens.
            until(Duration::from_secs(20), || op(&cmd), |r| r.code == 0)
        } else {
            op(&cmd)
        };
        let r = r.ok(&cmd);
        if cmd.contains("dpkg -i") {
            assert!(r.stdout.contains("Setting up ddcoterm-server"), "{}", r.stdout);
        } else if cmd.contains("systemctl status ddcoterm-server") {
            assert!(r.stdout.contains("Active: active (running)"), "the unit is running:\n{}", r.stdout);
            assert!(r.stdout.contains("enabled;"), "the unit is enabled:\n{}", r.stdout);
        } else if cmd.contains(" healthcheck") {
            assert!(r.stdout.contains("http://127.0.0.1:7780/readyz answered 200"), "{}", r.stdout);
        } else if cmd.contains("token create bastion-1") {
            assert!(r.stdout.trim().len() >= 32 && !r.stdout.trim().contains(' '), "a token: {:?}", r.stdout);
        } else {
            panic!("docs/fleet.md package block: {cmd:?} has no check here; add one");
        }
        ran.push(cmd);
    }
    assert_eq!(ran.len(), 4, "{ran:#?}");
    // What the token lines did: the token exists, owned by the service's user's database.
    let list = exec(
        &name,
        "ddcoterm-server",
        &[],
        &["ddcoterm-server", "--config", "/etc/ddcoterm-server/config.yaml", "token", "list"],
    )
    .ok("token list");
    assert!(list.stdout.matches("bastion-1").count() >= 1, "{}", list.stdout);
    report(&format!(
        "fleet_docs: the package block ran as written on systemd ({} lines; make package {built:.1}s)",
        ran.len() + 1
    ));
}

#[test]
fn the_server_image_block_runs_as_written_on_the_ci_host() {
    if !docker_available("fleet_docs") {
        println!("skipped: no docker engine");
        return;
    }
    let _serial = one_at_a_time();
    let block = doc_block("fleet_docs", "server-image");
    // The names the block uses, removed before (a leftover of an earlier run) and after.
    let names = Names { containers: vec!["ddcoterm-server".into()], volumes: vec!["ddcoterm-data".into()] };
    names.clean();
    if let Ok(l) = std::net::TcpListener::bind("0.0.0.0:7780") {
        drop(l);
    } else {
        let who = host("ss -ltnp 'sport = :7780' 2>/dev/null").stdout;
        panic!(
            "port 7780, which the documented `docker run -p 7780:7780` needs, is taken on this host:\n{who}"
        );
    }
    let mut ran = 0;
    let t = Instant::now();
    for cmd in doc_commands(&block) {
        let r = if cmd.starts_with("until ") {
            // The documented wait for the HEALTHCHECK (every 10 s), bounded here.
            host(&format!("timeout 120 bash -c {}", shell_quote(&cmd)))
        } else {
            host(&cmd)
        };
        let r = r.ok(&cmd);
        if cmd.starts_with("make server-image") {
            assert!(r.stdout.contains("ddcoterm-server:dev"), "{}", r.stdout);
        } else if cmd.starts_with("docker volume create") {
            assert_eq!(r.stdout.trim(), "ddcoterm-data");
        } else if cmd.starts_with("docker run -d --name ddcoterm-server") {
            assert_eq!(r.stdout.trim().len(), 64, "a container id: {}", r.stdout);
        } else if cmd.starts_with("docker exec ddcoterm-server ddcoterm-server token create") {
            assert!(r.stdout.trim().len() >= 32 && !r.stdout.trim().contains(' '), "a token: {:?}", r.stdout);
        } else if cmd
            .starts_with("until [ \"$(docker inspect --format '{{.State.Health.Status}}' ddcoterm-server)\"")
        {
            let status =
                docker(&["inspect", "--format", "{{.State.Health.Status}}", "ddcoterm-server"]).stdout;
            assert_eq!(status.trim(), "healthy");
        } else {
            panic!("docs/fleet.md server-image block: {cmd:?} has no check here; add one");
        }
        ran += 1;
    }
    assert_eq!(ran, 5);
    // What the block promised: the published port answers on the host, with the data in the named volume.
    let ready = host(
        "ddcoterm_readyz() { exec 3<>/dev/tcp/127.0.0.1/7780; printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3; }; ddcoterm_readyz",
    );
    assert!(ready.stdout.contains(" 200"), "GET http://127.0.0.1:7780/readyz: {ready:?}");
    let mounts = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        "ddcoterm-server",
    ])
    .ok("inspect mounts")
    .stdout;
    assert!(mounts.contains("ddcoterm-data:/var/lib/ddcoterm-server"), "{mounts}");
    report(&format!(
        "fleet_docs: the server image block ran as written, healthy after {:.1}s",
        t.elapsed().as_secs_f64()
    ));
}

#[test]
fn the_client_image_block_runs_as_written() {
    if !docker_available("fleet_docs") {
        println!("skipped: no docker engine");
        return;
    }
    let _serial = one_at_a_time();
    let block = doc_block("fleet_docs", "client-image");
    let mut ran = 0;
    for cmd in doc_commands(&block) {
        if cmd.starts_with("make ") {
            let r = host(&cmd).ok(&cmd);
            if cmd == "make image" {
                assert!(r.stdout.contains("ddcoterm:dev"), "{}", r.stdout);
            }
        } else if cmd.starts_with("docker run -it ") {
            // Interactive: under a pseudo-terminal (script(1)), a command typed into the recorded shell.
            let mounted = Path::new("/etc/ddcoterm").exists();
            let r = pty(&cmd, "echo typed-into-the-recorded-shell-$((6*7))\nexit\n");
            if !mounted {
                // Docker created the missing bind source; the doc's operator has an /etc/ddcoterm.
                let _ = std::fs::remove_dir("/etc/ddcoterm");
            }
            assert_eq!(r.code, 0, "{cmd}: {r:?}");
            assert!(r.stdout.contains("typed-into-the-recorded-shell-42"), "{cmd}: {}", r.stdout);
        } else if cmd.starts_with("docker run --rm ddcoterm:dev") {
            let r = host(&cmd).ok(&cmd);
            assert_eq!(r.stdout.trim(), "hi", "{cmd}");
        } else {
            panic!("docs/fleet.md client-image block: {cmd:?} has no check here; add one");
        }
        ran += 1;
    }
    assert_eq!(ran, 4);
    report("fleet_docs: the client image block ran as written (the -it line under a pseudo-terminal)");
}

/// Runs `line` with a pseudo-terminal as its stdin/stdout (script(1)), typing `input`; its output.
fn pty(line: &str, input: &str) -> Run {
    let mut child = Command::new("script")
        .args(["-qefc", line, "/dev/null"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let typer = std::thread::spawn(move || {
        // Give the shell time to start before typing, as a person would.
        std::thread::sleep(Duration::from_secs(3));
        for l in input.lines() {
            let _ = stdin.write_all(format!("{l}\r").as_bytes());
            let _ = stdin.flush();
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let o = child.wait_with_output().expect("script");
    drop(typer);
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}
