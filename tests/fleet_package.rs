//! The .deb packages (`make package`) on a bare container from the local base: installed with `dpkg -i`,
//! the binaries, users, directories, units, man pages and completions in place; the server started as its
//! own user answers `/readyz`; remove keeps the data, purge leaves the filesystem as it was before.
//!
//! Needs docker, the base image (`make base-image`) and the packages (`make package`; `make test` builds
//! them first). Skips only when docker is absent.

mod fleet_common;

use fleet_common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use testcontainers::core::ImageExt;
use testcontainers::runners::SyncRunner;
use testcontainers::GenericImage;

/// The two .deb files of `make package` (scripts/package.sh), for this checkout's versions.
fn packages() -> Vec<PathBuf> {
    let dir = repo().join("target/package");
    let mut debs: Vec<PathBuf> = ["ddcoterm_", "ddcoterm-server_"]
        .iter()
        .map(|prefix| {
            let found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}: run `make package` first", dir.display()))
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with(prefix) && name.ends_with(".deb")
                })
                .collect();
            assert_eq!(
                found.len(),
                1,
                "one {prefix}*.deb in {}: {found:?} (run `make package`)",
                dir.display()
            );
            found.into_iter().next().unwrap()
        })
        .collect();
    debs.sort();
    debs
}

/// Every path on the container's filesystem except what any package installation changes (dpkg's own
/// database and logs, the passwd tools' backups, caches) and the test's scratch directory, with its owner and
/// mode: what must look the same after a purge as before the install.
const SNAPSHOT: &str =
    "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
     -o -path /var/lib/dpkg -o -path /var/log -o -path /var/cache -o -path /var/backups \\) -prune \
     -o -printf '%p %u:%g %m\\n' | grep -v -E '^/etc/(passwd|group|shadow|gshadow)- ' | sort";

#[test]
fn packages_install_run_the_server_and_purge_to_nothing() {
    if !docker_available("fleet_package") {
        return;
    }
    require_image(BASE_IMAGE);
    let debs = packages();
    let version = env!("CARGO_PKG_VERSION");

    let c = GenericImage::new(BASE_IMAGE.0, BASE_IMAGE.1)
        .with_entrypoint("sleep")
        .with_cmd(["infinity"])
        .with_label("ddcoterm.test", "fleet_package")
        .start()
        .expect("start a bare container");
    let id = c.id().to_string();
    let root = |script: &str| exec(&id, "root", &[], &["sh", "-ec", script]);

    // A systemd host's unit directories exist before any package (the packages enable their units there).
    root("mkdir -p /etc/systemd/system /etc/systemd/user /tmp/pkgs").ok("prepare");
    let before = root(SNAPSHOT).ok("snapshot before").stdout;
    let accounts = "cat /etc/passwd /etc/group /etc/shadow /etc/gshadow";
    let accounts_before = root(accounts).ok("accounts before").stdout;

    for deb in &debs {
        let st = Command::new("docker")
            .arg("cp")
            .arg(deb)
            .arg(format!("{id}:/tmp/pkgs/"))
            .status()
            .expect("docker cp");
        assert!(st.success(), "docker cp {}", deb.display());
    }
    let start = Instant::now();
    let install = root("dpkg -i /tmp/pkgs/*.deb").ok("dpkg -i both packages");
    report(&format!(
        "fleet numbers: dpkg -i ddcoterm + ddcoterm-server: {:.1}s, packages {} KiB",
        start.elapsed().as_secs_f64(),
        debs.iter().map(|d| std::fs::metadata(d).unwrap().len()).sum::<u64>() / 1024
    ));
    assert!(!install.stderr.contains("warning"), "dpkg warnings: {}", install.stderr);

    // The binaries, in /usr/bin, on PATH.
    let v = root("ddcoterm --version; ddcoterm-server --version").ok("--version").stdout;
    assert!(v.contains(&format!("ddcoterm {version}")), "{v}");
    assert!(v.contains("ddcoterm-server "), "{v}");
    assert_eq!(
        root("command -v ddcoterm; command -v ddcoterm-shim; command -v ddcoterm-server").ok("which").stdout,
        "/usr/bin/ddcoterm\n/usr/bin/ddcoterm-shim\n/usr/bin/ddcoterm-server\n"
    );
    // `shim create` links to the static shim binary installed beside ddcoterm.
    let shim = root("ddcoterm shim create --system --no-rc kubectl >/dev/null && readlink /usr/local/lib/ddcoterm/overrides/kubectl && rm -r /usr/local/lib/ddcoterm")
        .ok("shim create")
        .stdout;
    assert_eq!(shim, "/usr/bin/ddcoterm-shim\n");

    // Users, groups and directories of the maintainer scripts.
    let who = root(
        "getent passwd ddcoterm-server ddcoterm-agent | cut -d: -f1,6,7; id -nG ddcoterm-agent; \
         stat -c '%n %U:%G %a' /var/lib/ddcoterm-server /var/spool/ddcoterm /etc/ddcoterm-server/config.yaml",
    )
    .ok("accounts and dirs")
    .stdout;
    for want in [
        "ddcoterm-server:/var/lib/ddcoterm-server:/usr/sbin/nologin",
        "ddcoterm-agent:/nonexistent:/usr/sbin/nologin",
        "ddcoterm-agent ddcoterm\n",
        "/var/lib/ddcoterm-server ddcoterm-server:ddcoterm-server 750",
        "/var/spool/ddcoterm ddcoterm-agent:ddcoterm-agent 700",
        "/etc/ddcoterm-server/config.yaml root:ddcoterm-server 640",
    ] {
        assert!(who.contains(want), "{want:?} in:\n{who}");
    }
    let conffiles = root("cat /var/lib/dpkg/info/ddcoterm-server.conffiles").ok("conffiles").stdout;
    assert_eq!(conffiles.trim(), "/etc/ddcoterm-server/config.yaml");

    // Units: the server's hardening, the binary path rewritten for /usr/bin, the timers enabled.
    let unit = root("cat /usr/lib/systemd/system/ddcoterm-server.service").ok("server unit").stdout;
    for line in [
        "User=ddcoterm-server",
        "ExecStart=/usr/bin/ddcoterm-server serve",
        "Environment=DDCOTERMD_CONFIG=/etc/ddcoterm-server/config.yaml",
        "StateDirectory=ddcoterm-server",
        "ReadWritePaths=/var/lib/ddcoterm-server",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the server unit:\n{unit}");
    }
    let units = root(
        "grep -h '^ExecStart=' /usr/lib/systemd/system/ddcoterm-*.service /usr/lib/systemd/user/ddcoterm-*.service; \
         readlink /etc/systemd/system/multi-user.target.wants/ddcoterm-server.service \
           /etc/systemd/system/timers.target.wants/ddcoterm-spool-flush.timer \
           /etc/systemd/user/timers.target.wants/ddcoterm-spool-flush.timer",
    )
    .ok("units")
    .stdout;
    assert!(!units.contains("/usr/local/"), "no unit names /usr/local: {units}");
    for want in [
        "ExecStart=/usr/bin/ddcoterm agent",
        "ExecStart=/usr/bin/ddcoterm spool flush --background",
        "/usr/lib/systemd/system/ddcoterm-server.service",
        "/usr/lib/systemd/system/ddcoterm-spool-flush.timer",
        "/usr/lib/systemd/user/ddcoterm-spool-flush.timer",
    ] {
        assert!(units.contains(want), "{want} in:\n{units}");
    }

    // Man pages (one per command, gzipped roff) and completions where each shell looks.
    let man = root(
        "cd /usr/share/man/man1 && ls && zcat ddcoterm.1.gz | head -3 && zcat ddcoterm-server-token-create.1.gz | head -3",
    )
    .ok("man pages")
    .stdout;
    for page in [
        "ddcoterm.1.gz",
        "ddcoterm-completions.1.gz",
        "ddcoterm-spool-flush.1.gz",
        "ddcoterm-server.1.gz",
        "ddcoterm-server-healthcheck.1.gz",
        "ddcoterm-server-token-create.1.gz",
    ] {
        assert!(man.lines().any(|l| l == page), "{page} installed:\n{man}");
    }
    assert!(!man.contains("ddcoterm-manpages"), "the hidden generator has no page:\n{man}");
    assert!(man.contains(".TH ddcoterm 1") && man.contains(".TH ddcoterm-server-token-create 1"), "{man}");
    let completions = root(
        "bash -c '. /usr/share/bash-completion/completions/ddcoterm; \
           . /usr/share/bash-completion/completions/ddcoterm-server; complete -p ddcoterm ddcoterm-server'; \
         head -1 /usr/share/zsh/vendor-completions/_ddcoterm /usr/share/zsh/vendor-completions/_ddcoterm-server; \
         grep -c 'complete -c ddcoterm-server' /usr/share/fish/vendor_completions.d/ddcoterm-server.fish; \
         grep -c 'complete -c ddcoterm ' /usr/share/fish/vendor_completions.d/ddcoterm.fish",
    )
    .ok("completions")
    .stdout;
    assert!(completions.contains("-F _ddcoterm ddcoterm\n"), "{completions}");
    assert!(completions.contains("-F _ddcoterm__server ddcoterm-server\n"), "{completions}");
    assert!(
        completions.contains("#compdef ddcoterm\n") && completions.contains("#compdef ddcoterm-server\n"),
        "{completions}"
    );

    // The embedded player's licence notice ships with the server (Apache-2.0 requires it).
    let notice = root("grep -c 'Apache License' /usr/share/doc/ddcoterm-server/LICENSE-asciinema-player")
        .ok("player notice")
        .stdout;
    assert!(notice.trim().parse::<u32>().unwrap_or(0) > 0, "{notice}");

    // The server, as its own user with the packaged config, becomes ready; its data is its own.
    let st = Command::new("docker")
        .args(["exec", "-d", "-u", "ddcoterm-server", "-w", "/var/lib/ddcoterm-server"])
        .args(["-e", "DDCOTERMD_CONFIG=/etc/ddcoterm-server/config.yaml"])
        .args([
            &id,
            "sh",
            "-c",
            "echo $$ > /tmp/server.pid; exec ddcoterm-server serve >> /tmp/server.log 2>&1",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "start the server");
    let t = Instant::now();
    loop {
        let h = exec(
            &id,
            "root",
            &[],
            &["ddcoterm-server", "--config", "/etc/ddcoterm-server/config.yaml", "healthcheck"],
        );
        if h.code == 0 {
            assert!(h.stdout.contains("http://127.0.0.1:7780/readyz answered 200"), "{}", h.stdout);
            break;
        }
        assert_eq!(h.code, 1, "unhealthy is exit 1: {h:?}");
        let log = root("cat /tmp/server.log").stdout;
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the packaged server never became ready: {h:?}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    report(&format!("fleet numbers: packaged server ready in {:.1}s", t.elapsed().as_secs_f64()));
    let data = root("stat -c '%n %U' /var/lib/ddcoterm-server/*").ok("data").stdout;
    assert!(data.contains("/var/lib/ddcoterm-server/ddcoterm.db ddcoterm-server"), "{data}");
    let down = exec(
        &id,
        "root",
        &[],
        &["ddcoterm-server", "healthcheck", "--url", "http://127.0.0.1:1/readyz", "--timeout", "2s"],
    );
    assert_eq!(down.code, 1, "nothing listening is unhealthy: {down:?}");
    assert!(down.stderr.contains("connecting to 127.0.0.1:1"), "{}", down.stderr);
    root("kill $(cat /tmp/server.pid); while kill -0 $(cat /tmp/server.pid) 2>/dev/null; do sleep 0.1; done")
        .ok("stop the server");

    // Installing again runs the maintainer scripts again: idempotent.
    root("dpkg -i /tmp/pkgs/*.deb").ok("dpkg -i again");

    // Remove keeps the data and the edited config; purge takes everything of ours.
    root("echo '# edited' >> /etc/ddcoterm-server/config.yaml && dpkg -r ddcoterm-server ddcoterm")
        .ok("dpkg -r");
    let kept = root("ls /var/lib/ddcoterm-server /var/spool/ddcoterm >/dev/null && tail -1 /etc/ddcoterm-server/config.yaml && ! test -e /usr/bin/ddcoterm && ! test -e /etc/systemd/system/multi-user.target.wants/ddcoterm-server.service && echo gone")
        .ok("after remove")
        .stdout;
    assert_eq!(kept, "# edited\ngone\n");
    root("dpkg --purge ddcoterm-server ddcoterm").ok("dpkg --purge");
    root("rm -rf /tmp/pkgs /tmp/server.pid /tmp/server.log").ok("scratch");

    let after = root(SNAPSHOT).ok("snapshot after").stdout;
    let added: Vec<&str> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
    let removed: Vec<&str> = before.lines().filter(|l| !after.lines().any(|a| a == *l)).collect();
    assert!(added.is_empty() && removed.is_empty(), "after purge, added: {added:#?}\nremoved: {removed:#?}");
    assert_eq!(root(accounts).ok("accounts after").stdout, accounts_before, "users and groups as before");
}
