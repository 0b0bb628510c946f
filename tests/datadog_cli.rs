//! `ddcoterm init` and `ddcoterm doctor` against the fake.

mod harness;
mod support;

use std::os::unix::fs::PermissionsExt;
use support::{contains, Fake, Home, API_KEY, APP_KEY};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_non_interactive_validates_and_writes_a_private_config() {
    let fake = Fake::start();
    let home = Home::new();
    let out = home
        .cmd()
        .args([
            "init",
            "--non-interactive",
            "--site",
            &fake.uri(),
            "--api-key",
            API_KEY,
            "--app-key",
            APP_KEY,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let so = text(&out.stdout);
    assert!(so.contains("valid") && so.contains("acts as requester@example.com"), "{so}");
    for o in [&out.stdout, &out.stderr] {
        assert!(!contains(o, API_KEY) && !contains(o, APP_KEY), "key leaked");
    }
    let paths: Vec<String> = fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, vec!["GET /api/v1/validate", "GET /api/v2/current_user"]);
    assert_eq!(fake.requests()[1].header("dd-application-key"), Some(APP_KEY));

    let cfg = home.home().join("config.yaml");
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);
    let l = home.loaded();
    assert_eq!(l.settings.connection_config.host, fake.uri());
    assert_eq!(l.settings.connection_config.api_key.as_deref(), Some(API_KEY));
    assert_eq!(l.settings.connection_config.app_key.as_deref(), Some(APP_KEY));
}

#[test]
fn init_env_keys_and_real_site_names() {
    let home = Home::new();
    let out = home
        .cmd()
        .env("DD_API_KEY", API_KEY)
        .args(["init", "--non-interactive", "--skip-validation", "--site", "datadoghq.eu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l = home.loaded();
    assert_eq!(l.settings.connection_config.host, "https://app.datadoghq.eu");
    assert_eq!(l.settings.connection_config.app_key, None);
}

#[test]
fn init_refuses_a_rejected_key_and_writes_nothing() {
    let fake = Fake::start();
    let home = Home::new();
    let wrong = "wrongkey-00112233445566778899aabb";
    let out = home
        .cmd()
        .args(["init", "--non-interactive", "--site", &fake.uri(), "--api-key", wrong])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(e.contains("403") && e.contains("Forbidden") && e.contains("nothing written"), "{e}");
    assert!(!contains(&out.stderr, wrong) && !contains(&out.stdout, wrong));
    assert!(!home.home().join("config.yaml").exists());
}

#[test]
fn init_usage_errors() {
    let home = Home::new();
    let out = home.cmd().args(["init", "--non-interactive"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("API key"));
    let out = home
        .cmd()
        .args(["init", "--non-interactive", "--site", "app.datadoghq.cmo", "--api-key", "k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("unknown Datadog site"), "{}", text(&out.stderr));
}

#[test]
fn init_keeps_an_existing_file_unless_forced_and_then_keeps_other_keys() {
    let home = Home::new();
    let cfg = home.home().join("config.yaml");
    let original = concat!(
        "# my settings, by hand\n",
        "recording:\n",
        "  input: true      # keystrokes too\n",
        "\n",
        "# Datadog, EU first, now US5\n",
        "connection_config:\n",
        "  host: app.datadoghq.com   # old site\n",
        "  port: 443\n",
        "  api_key: 0123456789abcdef0123456789abcdef  # rotated yearly\n",
        "  app_key: fedcba9876543210fedcba9876543210fedcba98\n",
        "spool:\n",
        "  max_bytes: 1073741824   # 1 GiB\n",
    );
    std::fs::write(&cfg, original).unwrap();
    let args = [
        "init",
        "--non-interactive",
        "--skip-validation",
        "--site",
        "us5.datadoghq.com",
        "--api-key",
        API_KEY,
    ];
    let out = home.cmd().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), original, "untouched without --force");
    let out = home.cmd().args(args).arg("--force").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l = home.loaded();
    assert!(l.settings.recording.input, "other keys kept");
    assert_eq!(l.settings.connection_config.host, "https://us5.datadoghq.com");
    assert_eq!(l.settings.connection_config.api_key.as_deref(), Some(API_KEY));
    assert_eq!(
        l.settings.connection_config.app_key.as_deref(),
        Some("fedcba9876543210fedcba9876543210fedcba98"),
        "an application key not given is kept"
    );
    // Only the lines of the keys init writes changed; every comment stayed.
    let want = original
        .replace("  host: app.datadoghq.com   # old site", "  host: https://us5.datadoghq.com   # old site")
        .replace("  port: 443\n", "")
        .replace("0123456789abcdef0123456789abcdef", API_KEY);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), want);
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);

    // A layout init cannot edit line by line is refused, and the file is left alone.
    std::fs::write(&cfg, "connection_config: {host: app.datadoghq.com}\n").unwrap();
    let out = home.cmd().args(args).arg("--force").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("edit it by hand"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "connection_config: {host: app.datadoghq.com}\n");
}

#[test]
fn doctor_all_good() {
    let fake = Fake::start();
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, "");
    let out = home.cmd().arg("doctor").output().unwrap();
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}{}", text(&out.stderr));
    for needle in [
        "ok   config: user layer",
        "ok   API key: ***",
        "ok   application key: ***",
        "acts as requester@example.com",
        "ok   clock:",
        "ok   spool:",
    ] {
        assert!(so.contains(needle), "{needle} in\n{so}");
    }
    assert!(!contains(&out.stdout, API_KEY) && !contains(&out.stdout, APP_KEY));
}

#[test]
fn doctor_fails_on_bad_key_unreachable_server_refused_records_and_bad_spool_mode() {
    let fake = Fake::start();
    let home = Home::new();
    let wrong = "wrongkey-00112233445566778899aabb";
    home.config(&fake.uri(), wrong, "");
    let out = home.cmd().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    assert!(so.contains("FAIL API key") && so.contains("Forbidden"), "{so}");
    assert!(!contains(&out.stdout, wrong));

    home.config(&support::closed_port_uri(), API_KEY, "");
    let s = ddcoterm::spool::Spool::open(home.spool(), 0).unwrap();
    s.enqueue(ddcoterm::spool::Record::new("event.process", ddcoterm::spool::Class::Normal, b"{}".to_vec()))
        .unwrap();
    let e = s.entries().unwrap().remove(0);
    let c = s.claim(&e).unwrap().unwrap();
    c.set_state(&ddcoterm::spool::State {
        permanent: true,
        attempts: 1,
        last_error: "HTTP 413: too big".into(),
        ..Default::default()
    })
    .unwrap();
    drop(c);
    std::fs::set_permissions(home.spool(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = home.cmd().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    assert!(so.contains("FAIL API key") && so.contains("cannot connect"), "{so}");
    assert!(so.contains("FAIL spool") && so.contains("HTTP 413: too big"), "{so}");
    assert!(so.contains("mode 755"), "{so}");
}

#[test]
fn doctor_reports_a_broken_config_and_still_checks_the_rest() {
    let home = Home::new();
    std::fs::write(home.home().join("config.yaml"), "connection_config:\n  hots: x\n").unwrap();
    let out = home.cmd().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    assert!(so.contains("FAIL config") && so.contains("hots"), "{so}");
    assert!(so.contains("shims (user)"), "{so}");
}

#[test]
fn doctor_json_lists_every_check_with_its_verdict_and_the_same_exit_status() {
    let home = Home::new();
    std::fs::write(home.home().join("config.yaml"), "connection_config:\n  hots: x\n").unwrap();
    let out = home.cmd().args(["doctor", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let fails = checks.iter().filter(|c| c["verdict"] == "fail").count();
    assert!(fails >= 1 && v["failed"].as_u64() == Some(fails as u64), "{v}");
    assert_eq!((&checks[0]["verdict"], &checks[0]["what"]), (&"fail".into(), &"config".into()), "{v}");
    assert!(checks[0]["detail"].as_str().unwrap().contains("hots"), "{v}");
    assert!(checks.iter().any(|c| c["what"] == "shims (user)"), "{v}");
    assert_eq!(checks.last().unwrap()["verdict"], "warn", "the checks that need a config are skipped: {v}");
}

#[test]
fn init_interactive_prompts_on_the_terminal_without_echoing_keys() {
    let fake = Fake::start();
    let home = Home::new();
    let mut cmd = home.cmd();
    cmd.arg("init");
    let mut s = expectrl::Session::spawn(cmd).unwrap();
    s.set_expect_timeout(Some(std::time::Duration::from_secs(20)));
    s.expect("Datadog site [app.datadoghq.com]: ").unwrap();
    s.send_line(fake.uri()).unwrap();
    s.expect("Datadog API key: ").unwrap();
    s.send_line(API_KEY).unwrap();
    let c = s.expect("Application key").unwrap();
    assert!(!contains(c.before(), API_KEY), "API key echoed");
    s.send_line(APP_KEY).unwrap();
    let c = s.expect("wrote ").unwrap();
    assert!(!contains(c.before(), APP_KEY), "app key echoed");
    assert!(text(c.before()).contains("acts as requester@example.com"), "{}", text(c.before()));
    let cfg = home.home().join("config.yaml");
    let start = std::time::Instant::now();
    while !cfg.exists() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let l = home.loaded();
    assert_eq!(l.settings.connection_config.host, fake.uri());
    assert_eq!(l.settings.connection_config.app_key.as_deref(), Some(APP_KEY));
}
