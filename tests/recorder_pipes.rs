//! The recorder through the real binary without a terminal (pipes, CI, `ssh host cmd`).

mod harness;
mod recorder_support;

use recorder_support::{mode, output, read_cast, Env, BIN};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_with_stdin(env: &Env, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = env.cmd();
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut si = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = si.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn piped_stdin_reaches_the_command_byte_exact_and_ends_with_eof() {
    let env = Env::new();
    let out = run_with_stdin(&env, &["--", "cat"], b"a\nb\n");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"a\nb\n");
    let (_, events) = env.only_cast();
    assert_eq!(output(&events), "a\nb\n");
}

#[test]
fn piped_stdout_is_byte_exact_for_binary_data() {
    let env = Env::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let file = env.root().join("blob");
    std::fs::write(&file, &data).unwrap();
    let out = env.cmd().args(["--", "cat"]).arg(&file).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == data, "relayed bytes differ ({} vs {} bytes)", out.stdout.len(), data.len());
    // Stdout stays clean: the start and end lines are on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ddcoterm: recording session ") && err.contains(" ended (exit 0)"), "{err}");
}

#[test]
fn exit_codes_and_signals_pass_through() {
    let env = Env::new();
    for (script, code) in [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 143), ("kill -KILL $$", 137)] {
        let st = env.cmd().args(["--", "sh", "-c", script]).stderr(Stdio::null()).status().unwrap();
        assert_eq!(st.code(), Some(code), "{script}");
    }
    let casts = env.casts();
    let last_markers: Vec<String> = casts.iter().map(|c| read_cast(c).1.last().unwrap().2.clone()).collect();
    for code in ["exit 0", "exit 7", "exit 143", "exit 137"] {
        assert!(last_markers.iter().any(|m| m == code), "{code} in {last_markers:?}");
    }
}

#[test]
fn a_missing_command_is_127() {
    let env = Env::new();
    let out = env.cmd().args(["--", "no-such-command-xyz"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command-xyz: command not found"));
}

#[test]
fn sigterm_to_ddcoterm_is_forwarded_to_the_command() {
    let env = Env::new();
    let mut child = env.cmd().args(["--", "sleep", "30"]).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(143), "ddcoterm returns the child's 128+SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn nested_sessions_inside_a_real_recording_are_not_recorded_twice() {
    let env = Env::new();
    // ddcoterm records `ddcoterm -- sh ...`: the inner one finds its proven outer recording and execs.
    let out = env
        .cmd()
        .args(["--", BIN, "--", "sh", "-c", "echo inner:$DDCOTERM_SESSION"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (header, _) = env.only_cast();
    let id = header["ddcoterm"]["session_id"].as_str().unwrap().to_string();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("inner:{id}:")),
        "the marker names the session and its recorder: {stdout}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not an outer ddcoterm recording"));
}

#[test]
fn a_forged_nesting_marker_does_not_switch_recording_off() {
    let env = Env::new();
    // Attack (issue 16, item 2): set the marker by hand, to anything, or to a real but unrelated process.
    for forged in
        ["outer", "0193aaaa-0000-7000-8000-000000000000:1", &format!("0193aaaa-0000:{}", std::process::id())]
    {
        let before = env.casts().len();
        let out = env
            .cmd()
            .env("DDCOTERM_SESSION", forged)
            .args(["--", "sh", "-c", "echo ran"])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ran\n");
        assert_eq!(env.casts().len(), before + 1, "{forged}: recorded anyway");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("DDCOTERM_SESSION is not an outer ddcoterm recording"), "{forged}: {err}");
    }
}

#[test]
fn break_glass_inside_a_real_recording_is_recorded_again() {
    let env = Env::new();
    // The inner run needs approval and takes break glass: its forced `record` is never skipped.
    let out = env
        .cmd()
        .env("COTERM_BREAK_GLASS", "true")
        .env("COTERM_BREAK_GLASS_REASON", "drill")
        .args(["--", BIN, "--actions", "approval", "--", "sh", "-c", "echo glass"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        env.casts().len(),
        2,
        "the outer and the break-glass run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("this run's recording is required"));
}

#[test]
fn files_are_private_and_the_header_carries_metadata() {
    let env = Env::new();
    let st = env
        .cmd()
        .args(["--", "sh", "-c", "echo hi"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mode(&env.recordings()), 0o700);
    let cast = &env.casts()[0];
    assert_eq!(mode(cast), 0o600);
    assert_eq!(mode(&env.files("events.jsonl")[0]), 0o600);
    let (h, events) = env.only_cast();
    assert_eq!(h["version"], 2);
    assert_eq!(h["command"], "sh -c 'echo hi'");
    assert!(h["width"].as_u64().unwrap() > 0 && h["timestamp"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(h["env"]["TERM"], "xterm");
    assert_eq!(h["ddcoterm"]["actions"], serde_json::json!(["record", "logs", "process_info"]));
    assert!(h["ddcoterm"]["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(output(&events), "hi\n");
    let ev = env.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["command"], "sh -c 'echo hi'");
    assert_eq!(ev[0]["executable"], "sh");
    assert_eq!(ev[0]["exit_code"], 0);
    assert_eq!(ev[0]["session_id"], h["ddcoterm"]["session_id"]);
}

#[test]
fn a_secret_written_in_two_parts_is_redacted_on_disk() {
    let env = Env::new();
    env.config("redaction:\n  patterns:\n    - name: demo_token\n      regex: 'tok_[a-z0-9]{16}'\n");
    let script = "printf 'token=tok_abcd1234'; sleep 0.3; printf 'efgh5678 ok\\n'";
    let out = env.cmd().args(["--", "sh", "-c", script]).output().unwrap();
    assert_eq!(out.stdout, b"token=tok_abcd1234efgh5678 ok\n", "the live output is not redacted");
    let (_, events) = env.only_cast();
    let recorded = output(&events);
    assert_eq!(recorded, "token=[REDACTED:demo_token] ok\n");
}

#[test]
fn kill_9_leaves_a_playable_prefix() {
    let env = Env::new();
    let pidfile = env.root().join("child.pid");
    let script = "echo $$ > \"$PIDFILE\"; i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.02; done; exec sleep 30";
    let mut child = env
        .cmd()
        .env("PIDFILE", &pidfile)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = env.casts().first().map(|c| std::fs::read_to_string(c).unwrap()).unwrap_or_default();
        if text.contains("line 39") {
            break;
        }
        assert!(Instant::now() < deadline, "output never reached the file: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let cast = env.casts()[0].clone();
    // Every line parses (header + events), and play reads it.
    let (_, events) = read_cast(&cast);
    assert!(output(&events).contains("line 39\n"));
    let out = Command::new(BIN).args(["play", "--speed", "1000"]).arg(&cast).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("line 0\nline 1\n"));
    // A torn last line, as a crash mid-write would leave, is tolerated too.
    let mut f = std::fs::OpenOptions::new().append(true).open(&cast).unwrap();
    f.write_all(b"[12.5, \"o\", \"torn").unwrap();
    let out = Command::new(BIN).args(["play", "--speed", "1000"]).arg(&cast).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The grandchild keeps running after kill -9 of ddcoterm; end it.
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn sessions_lists_and_play_finds_by_id() {
    let env = Env::new();
    env.cmd().args(["--", "sh", "-c", "echo listed; exit 4"]).output().unwrap();
    let out = env.cmd().args(["sessions", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = &list[0];
    assert_eq!(line["command"], "sh -c 'echo listed; exit 4'");
    assert_eq!(line["exit_code"], 4);
    let id = line["id"].as_str().unwrap().to_string();
    let table = env.cmd().arg("sessions").output().unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains(&id[id.len() - 8..]) && table.contains("echo listed"), "{table}");
    let out = env.cmd().args(["play", &id[..13], "--speed", "100"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"listed\n");
}

#[test]
fn play_rejects_bad_input_clearly() {
    let env = Env::new();
    let bad = env.root().join("bad.cast");
    std::fs::write(&bad, "{\"version\": 2, \"width\": 80, \"height\": 24}\nnot json\n[1.0, \"o\", \"x\"]\n")
        .unwrap();
    let out = env.cmd().arg("play").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.cast:2: not an asciicast event"));
    let out = env.cmd().args(["play", "nope-no-such-id"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = env.cmd().arg("play").arg(&bad).args(["--speed", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed"));
}

#[test]
fn asciinema_reads_our_files() {
    if Command::new("asciinema").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must install asciinema (apt-get install -y asciinema)");
        eprintln!("asciinema is not installed; skipping (CI installs it)");
        return;
    }
    let env = Env::new();
    env.cmd().args(["--", "sh", "-c", "printf 'from ddcoterm\\n'; exit 3"]).output().unwrap();
    let cast = env.casts()[0].clone();
    // `asciinema cat` opens /dev/tty: give it one with script(1).
    let out = Command::new("script")
        .args(["-qec", &format!("asciinema cat {}", cast.display()), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from ddcoterm"));
}

#[test]
fn a_shell_fed_from_a_pipe_is_recorded_and_its_markers_stay_out_of_its_output() {
    let env = Env::new();
    let out =
        run_with_stdin(&env, &["--set", "recording.shell=/bin/bash"], b"echo piped-in\nfalse\nexit 4\n");
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"piped-in\n", "stdout carries the commands' output only");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("133;"), "bash prompts (stderr) lose the markers");
    let (_, events) = env.only_cast();
    assert!(!output(&events).contains("133;"));
    let got: Vec<(String, Option<i64>)> = env
        .events()
        .iter()
        .map(|e| (e["command"].as_str().unwrap().to_string(), e["exit_code"].as_i64()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("echo piped-in".to_string(), Some(0)),
            ("false".to_string(), Some(1)),
            ("exit 4".to_string(), None)
        ]
    );
}
