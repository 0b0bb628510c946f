//! The runtime image as a recorded debug shell: `ddcoterm -- sh -c 'echo hi'` in the container (host
//! network) records the session to disk and sends it to a wiremock fake of Datadog on 127.0.0.1.
//!
//! Needs docker and the image from `make image`. Skips only when docker is absent.

mod fleet_common;

use flate2::read::GzDecoder;
use fleet_common::*;
use std::io::Read;
use std::process::Command;
use testcontainers::core::wait::ExitWaitStrategy;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const API_KEY: &str = "fleet-image-test-api-key";
const UID: u32 = 10001;

/// A small fake of the Datadog endpoints a recorded command uses (DESIGN §6), answering like the real API.
async fn datadog_fake() -> MockServer {
    let server = MockServer::start().await;
    let json = |status: u16, body: serde_json::Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/api/unstable/coterm/sessions"))
        .respond_with(move |req: &Request| {
            let v: serde_json::Value = serde_json::from_slice(&decoded(req)).unwrap_or_default();
            let id = v["session_id"].as_str().unwrap_or("unknown").to_string();
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"data": {"id": id, "type": "coterm_session"}}))
        })
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(r"^/api/unstable/coterm/sessions/[^/]+/chunks/\d+$"))
        .respond_with(json(200, serde_json::json!({"seq": 0})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/unstable/coterm/sessions/[^/]+/end$"))
        .respond_with(json(200, serde_json::json!({"data": {"type": "coterm_session"}})))
        .mount(&server)
        .await;
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

/// The request body, gunzipped when it is gzip (chunks and logs are).
fn decoded(req: &Request) -> Vec<u8> {
    if req.body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&req.body[..]).read_to_end(&mut out).expect("gzip body");
        out
    } else {
        req.body.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shell_image_records_a_command_and_sends_it_to_datadog() {
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
    std::fs::write(&org_config, "connection_config:\n  allow_loopback: true\n").unwrap();
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

    // What reached Datadog: the session (meta, chunks with the output, end), the process event, logs.
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
    assert!(has("POST", r"^/api/unstable/coterm/sessions$"), "session created: {seen:?}");
    assert!(has("POST", r"^/api/unstable/coterm/sessions/[^/]+/end$"), "session ended: {seen:?}");
    let chunk_text: String = requests
        .iter()
        .filter(|r| r.method.as_str() == "PUT" && r.url.path().contains("/chunks/"))
        .map(|r| String::from_utf8_lossy(&decoded(r)).into_owned())
        .collect();
    assert!(chunk_text.contains("hi"), "the output reached Datadog in session chunks: {seen:?}");
    assert!(has("POST", r"^/api/v1/events$"), "process event sent: {seen:?}");
    assert!(has("POST", r"^/api/v2/logs$"), "logs sent: {seen:?}");
    fleet_common::report(&format!("fleet numbers: Datadog requests from the container: {seen:?}"));
}
