//! The session server image `ddcoterm-server:dev` (`make server-image`): its contract (non-root user, port,
//! volume, HEALTHCHECK, OCI labels), a container on a read-only root filesystem that becomes healthy,
//! accepts a recording from the host's client and serves it back byte for byte; and the debug-shell image's
//! HEALTHCHECK.
//!
//! Needs docker and the images (`make image server-image`; `make test` builds them first). Skips only when
//! docker is absent.

mod fleet_common;
mod harness;
mod support;

use fleet_common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Fake, Home, API_KEY};

/// The image built by `make server-image` (scripts/server-image.sh).
const SERVER_IMAGE: (&str, &str) = ("ddcoterm-server", "dev");

fn docker(args: &[&str]) -> Run {
    let o = Command::new("docker").args(args).output().expect("docker");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn inspect(image: &str, format: &str) -> String {
    docker(&["image", "inspect", "--format", format, image])
        .ok("docker image inspect")
        .stdout
        .trim()
        .to_string()
}

/// Removes the container and its volume however the test ends.
struct Cleanup {
    container: String,
    volume: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &self.container]).output();
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.volume]).output();
    }
}

#[test]
fn server_image_runs_read_only_becomes_healthy_and_stores_a_host_recording() {
    if !docker_available("fleet_server_image") {
        return;
    }
    require_image(SERVER_IMAGE);
    let image = format!("{}:{}", SERVER_IMAGE.0, SERVER_IMAGE.1);
    let size = image_size(SERVER_IMAGE);
    report(&format!("fleet numbers: image {image} is {} MiB ({size} bytes)", size / 1024 / 1024));

    // The contract docs/fleet.md promises (the Helm chart relies on it).
    assert_eq!(inspect(&image, "{{.Config.User}}"), "10002:10002");
    assert_eq!(
        inspect(&image, "{{json .Config.Entrypoint}}|{{json .Config.Cmd}}"),
        r#"["ddcoterm-server"]|["serve"]"#
    );
    assert_eq!(inspect(&image, "{{json .Config.ExposedPorts}}"), r#"{"7780/tcp":{}}"#);
    assert_eq!(inspect(&image, "{{json .Config.Volumes}}"), r#"{"/var/lib/ddcoterm-server":{}}"#);
    assert_eq!(
        inspect(&image, "{{json .Config.Healthcheck.Test}}"),
        r#"["CMD","ddcoterm-server","healthcheck"]"#
    );
    let env = inspect(&image, "{{json .Config.Env}}");
    assert!(
        env.contains("DDCOTERMD_LISTEN=0.0.0.0:7780")
            && env.contains("DDCOTERMD_DATA_DIR=/var/lib/ddcoterm-server"),
        "{env}"
    );
    let labels = inspect(&image, "{{json .Config.Labels}}");
    for key in ["title", "description", "licenses", "version", "revision", "created"] {
        assert!(labels.contains(&format!("\"org.opencontainers.image.{key}\"")), "OCI label {key}: {labels}");
    }
    assert!(labels.contains(r#""org.opencontainers.image.title":"ddcoterm-server""#), "{labels}");

    // Read-only root, the data in a volume, a tmpfs on /tmp; the port published on an ephemeral host port.
    let unique = format!("ddcoterm-test-server-{}-{}", std::process::id(), rand_suffix());
    let _cleanup = Cleanup { container: unique.clone(), volume: unique.clone() };
    docker(&["volume", "create", &unique]).ok("docker volume create");
    docker(&[
        "run",
        "-d",
        "--name",
        &unique,
        "--label",
        "ddcoterm.test=fleet_server_image",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        &format!("{unique}:/var/lib/ddcoterm-server"),
        "-p",
        "127.0.0.1::7780",
        // The image's HEALTHCHECK command, asked more often than its 10 s so that the test is quick.
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
        &image,
    ])
    .ok("docker run the server image");
    let t = Instant::now();
    loop {
        let status = docker(&["inspect", "--format", "{{.State.Health.Status}}|{{.State.Status}}", &unique])
            .ok("inspect")
            .stdout;
        if status.trim() == "healthy|running" {
            break;
        }
        let logs = docker(&["logs", &unique]);
        assert!(
            t.elapsed() < Duration::from_secs(60) && !status.contains("|exited"),
            "the container never became healthy ({status}):\n{}{}",
            logs.stdout,
            logs.stderr
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    report(&format!("fleet numbers: server container healthy in {:.1}s", t.elapsed().as_secs_f64()));
    let health =
        docker(&["inspect", "--format", "{{json .State.Health.Log}}", &unique]).ok("health log").stdout;
    assert!(health.contains("http://127.0.0.1:7780/readyz answered 200"), "{health}");

    // Non-root, and nothing outside the volume and /tmp can be written.
    assert_eq!(exec(&unique, "10002", &[], &["id", "-u"]).ok("id").stdout.trim(), "10002");
    let ro =
        exec(&unique, "10002", &[], &["sh", "-c", "touch /usr/local/bin/x || touch /etc/x || echo refused"]);
    assert!(ro.stdout.contains("refused") && ro.stderr.contains("Read-only file system"), "{ro:?}");

    // Tokens made inside the container (the CLI reads the same data dir).
    let token = |name: &str, role: &str| {
        exec(&unique, "10002", &[], &["ddcoterm-server", "token", "create", name, "--role", role])
            .ok("token create")
            .stdout
            .trim()
            .to_string()
    };
    let host_token = token("host-from-test", "host");
    let auditor = token("reviewer", "auditor");
    let port = docker(&["port", &unique, "7780/tcp"]).ok("docker port").stdout;
    let addr = port.lines().next().unwrap().trim().to_string();
    let url = format!("http://{addr}");

    // The host's client records a command and uploads it to the container.
    let fake = Fake::start();
    let home = Home::new();
    let token_file = home.home().join("server.token");
    std::fs::write(&token_file, format!("{host_token}\n")).unwrap();
    home.config(
        &fake.uri(),
        API_KEY,
        &format!(
            "spool:\n  flush_timeout: 20s\nserver:\n  url: {url}\n  token_file: {}\n",
            token_file.display()
        ),
    );
    let out = home.cmd().args(["--", "sh", "-c", "echo stored in the server image"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let casts: Vec<_> = std::fs::read_dir(home.home().join("recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cast"))
        .collect();
    assert_eq!(casts.len(), 1, "{casts:?}");
    let id = casts[0].file_stem().unwrap().to_string_lossy().into_owned();
    let local = std::fs::read(&casts[0]).unwrap();
    assert!(stderr.contains(&format!("{url}/sessions/{id}")), "the link names the container: {stderr}");

    // Served back from the container: complete, stamped with the token's host, byte for byte.
    ddcoterm::datadog::tls::install_provider();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let get = |path: &str| {
        let r = client.get(format!("{url}{path}")).bearer_auth(&auditor).send().unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    let (status, body) = get(&format!("/api/v1/sessions/{id}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["state"], "complete", "{meta}");
    assert_eq!(meta["host"], "host-from-test", "{meta}");
    let (status, cast) = get(&format!("/api/v1/sessions/{id}/cast"));
    assert_eq!(status, 200);
    assert!(cast == local, "the container's cast is the host's .cast byte for byte");
    let verify = exec(&unique, "10002", &[], &["ddcoterm-server", "verify", &id]);
    assert_eq!(verify.code, 0, "verify in the container: {verify:?}");

    // The recording is in the volume, so it outlives the container: a new container on the same volume
    // serves it.
    docker(&["rm", "-f", &unique]).ok("remove the first container");
    docker(&[
        "run",
        "-d",
        "--name",
        &unique,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        &format!("{unique}:/var/lib/ddcoterm-server"),
        &image,
    ])
    .ok("a second container on the same volume");
    let again = exec(&unique, "10002", &[], &["sh", "-c", "for i in $(seq 50); do ddcoterm-server healthcheck >/dev/null 2>&1 && break; sleep 0.2; done; ddcoterm-server verify \"$0\"", &id]);
    assert_eq!(again.code, 0, "the session survives the container: {again:?}");
}

#[test]
fn debug_shell_image_is_healthy_when_its_configuration_loads() {
    if !docker_available("fleet_server_image") {
        return;
    }
    require_image(IMAGE);
    let image = format!("{}:{}", IMAGE.0, IMAGE.1);
    let test = inspect(&image, "{{json .Config.Healthcheck.Test}}");
    assert_eq!(test, r#"["CMD","ddcoterm","config","show","--format","json"]"#);
    // The HEALTHCHECK command itself, in the image as it runs: a valid organisation layer passes, a broken
    // one (every recorded command would be refused) fails with the file named.
    let ok =
        docker(&["run", "--rm", "--entrypoint", "ddcoterm", &image, "config", "show", "--format", "json"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "recording: [not, a, mapping\n").unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("config.yaml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let bad = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/etc/ddcoterm:ro", dir.path().display()),
        "--entrypoint",
        "ddcoterm",
        &image,
        "config",
        "show",
        "--format",
        "json",
    ]);
    assert_ne!(bad.code, 0, "a broken organisation layer is unhealthy: {bad:?}");
    assert!(bad.stderr.contains("/etc/ddcoterm/config.yaml"), "{}", bad.stderr);
}

/// A few random hex digits so that parallel runs never share a container or volume name.
fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{nanos:08x}")
}
