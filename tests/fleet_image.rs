//! The runtime image as a recorded debug shell: `ddcoterm -- sh -c 'echo hi'` in the container (host
//! network) records the session to disk, uploads it to the REAL session server on 127.0.0.1, and sends its
//! events and logs to a wiremock fake of Datadog.
//!
//! Needs docker and the image from `make image`. Skips only when docker is absent.

mod fleet_common;
// support/server.rs finds its certificate maker as a sibling module (`super::certs`).
#[path = "support/certs.rs"]
#[allow(dead_code)]
mod certs;
#[path = "support/server.rs"]
#[allow(dead_code)]
mod server_support;

use fleet_common::*;
use std::process::Command;
use testcontainers::core::wait::ExitWaitStrategy;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "fleet-image-test-api-key";
const UID: u32 = 10001;

/// A small fake of the Datadog endpoints a recorded command uses (DESIGN §6), answering like the real API.
async fn datadog_fake() -> MockServer {
    let server = MockServer::start().await;
    let json = |status: u16, body: serde_json::Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/api/v1/events"))
        .respond_with(json(202, serde_json::json!({"status": "ok"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/logs"))
        .respond_with(json(202, serde_json::json!({})))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shell_image_records_a_command_and_uploads_it_to_the_session_server() {
    if !docker_available("fleet_image") {
        return;
    }
    require_image(IMAGE);
    let size = image_size(IMAGE);
    fleet_common::report(&format!(
        "fleet numbers: image {}:{} is {} MiB ({size} bytes)",
        IMAGE.0,
        IMAGE.1,
        size / 1024 / 1024
    ));

    // The image's contract: non-root user, ddcoterm as entrypoint, OCI labels.
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}|{{index .Config.Labels \"org.opencontainers.image.title\"}}",
            &format!("{}:{}", IMAGE.0, IMAGE.1),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), r#"coterm|["ddcoterm"]|ddcoterm"#);

    let fake = datadog_fake().await;
    let port = fake.address().port();

    // ~/.ddcoterm of the container user is a host directory, so the recording outlives the container.
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(UID), Some(UID))
        .expect("chown the mounted home (run as root)");

    // The organisation layer allows the loopback fake (only an organisation layer can).
    let org = tempfile::tempdir().unwrap();
    let org_config = org.path().join("config.yaml");
    // The session server is real; its host token is a file only the organisation layer names.
    let sessions = tokio::task::spawn_blocking(server_support::Server::start).await.unwrap();
    let token_copy = org.path().join("server.token");
    std::fs::copy(sessions.token_file(), &token_copy).unwrap();
    std::fs::set_permissions(&token_copy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(
        &org_config,
        format!(
            "connection_config:\n  allow_loopback: true\nserver:\n  url: {}\n  token_file: /etc/ddcoterm/server.token\n",
            sessions.url
        ),
    )
    .unwrap();
    std::fs::set_permissions(org.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&org_config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let container = GenericImage::new(IMAGE.0, IMAGE.1)
        .with_wait_for(WaitFor::Exit(ExitWaitStrategy::new()))
        .with_cmd(["--", "sh", "-c", "echo hi"])
        .with_network("host")
        .with_env_var("DD_API_KEY", API_KEY)
        .with_env_var("DDCOTERM_CONNECTION_CONFIG__HOST", format!("http://127.0.0.1:{port}"))
        .with_env_var("DDCOTERM_CONNECTION_CONFIG__PORT", port.to_string())
        .with_mount(Mount::bind_mount(home.path().to_string_lossy(), "/home/coterm/.ddcoterm"))
        .with_mount(Mount::bind_mount(org_config.to_string_lossy(), "/etc/ddcoterm/config.yaml"))
        .with_mount(Mount::bind_mount(token_copy.to_string_lossy(), "/etc/ddcoterm/server.token"))
        .with_label("ddcoterm.test", "fleet_image")
        .start()
        .await
        .expect("run the image");
    let code = container.exit_code().await.unwrap();
    let stdout = String::from_utf8_lossy(&container.stdout_to_vec().await.unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&container.stderr_to_vec().await.unwrap()).into_owned();
    assert_eq!(
        code,
        Some(0),
        "ddcoterm -- sh -c 'echo hi' in the image:\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("hi"), "the command's output passes through: {stdout:?}");

    // The recording, on disk, as asciicast v2.
    let recordings = home.path().join("recordings");
    let casts: Vec<_> = std::fs::read_dir(&recordings)
        .unwrap_or_else(|e| panic!("{}: {e}\nstderr: {stderr}", recordings.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cast"))
        .collect();
    assert_eq!(casts.len(), 1, "one recording in {}: {casts:?}", recordings.display());
    let cast = std::fs::read_to_string(&casts[0]).unwrap();
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).expect("cast header");
    assert_eq!(header["version"], 2, "{header}");
    assert!(cast.lines().skip(1).any(|l| l.contains("\"o\"") && l.contains("hi")), "output event: {cast}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&casts[0]).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "recordings are private (0600): {mode:o}");

    // The session server holds the recording, byte for byte, with its link printed to the user.
    let id = casts[0].file_stem().unwrap().to_string_lossy().into_owned();
    assert!(stderr.contains(&format!("{}/sessions/{id}", sessions.url)), "the link is printed: {stderr}");
    let stored = tokio::task::spawn_blocking({
        let id = id.clone();
        move || {
            let cast = sessions.cast(&id);
            let verify = sessions.verify(&id);
            (cast, verify)
        }
    })
    .await
    .unwrap();
    assert_eq!(stored.0, cast.as_bytes(), "the server's cast is the local .cast");
    assert!(stored.1.status.success(), "verify: {}", String::from_utf8_lossy(&stored.1.stdout));

    // What reached Datadog: the process event, the session event, logs; never a recording.
    let requests = fake.received_requests().await.unwrap_or_default();
    let seen: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.url.path())).collect();
    for r in &requests {
        assert_eq!(
            r.headers.get("dd-api-key").and_then(|v| v.to_str().ok()),
            Some(API_KEY),
            "{} {} carries the API key",
            r.method,
            r.url.path()
        );
    }
    let has = |m: &str, re: &str| {
        let re = regex::Regex::new(re).unwrap();
        requests.iter().any(|r| r.method.as_str() == m && re.is_match(r.url.path()))
    };
    assert!(!has("PUT", r"."), "no recording goes to Datadog: {seen:?}");
    assert!(has("POST", r"^/api/v1/events$"), "process event sent: {seen:?}");
    assert!(has("POST", r"^/api/v2/logs$"), "logs sent: {seen:?}");
    fleet_common::report(&format!("fleet numbers: Datadog requests from the container: {seen:?}"));
}
