//! The recorder through the real binary on a real terminal (expectrl gives it a PTY as its terminal).

mod harness;
mod recorder_support;

use expectrl::Session;
use recorder_support::{output, Env};
use std::process::Command;
use std::time::Duration;

fn spawn(env: &Env, args: &[&str], extra_env: &[(&str, &str)]) -> Session {
    let mut c = env.cmd();
    c.args(args).current_dir(env.user_home());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let mut s = Session::spawn(c).expect("spawn ddcoterm on a PTY");
    s.set_expect_timeout(Some(Duration::from_secs(15)));
    s
}

/// The exit status as the terminal's parent sees it.
fn exit_code(s: &Session) -> i32 {
    let st = format!("{:?}", s.get_process().wait().unwrap());
    // `Exited(Pid(123), 7)`
    st.rsplit(", ").next().unwrap().trim_end_matches(')').parse().unwrap_or_else(|_| panic!("{st}"))
}

#[test]
fn exit_status_and_terminal_size_under_a_pty() {
    let env = Env::new();
    let mut s = spawn(&env, &["--", "sh", "-c", "read x; stty size; exit 3"], &[]);
    s.get_process_mut().set_window_size(100, 30).unwrap();
    s.expect("recording session").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.send("\r").unwrap();
    s.expect("ended (exit 3)").unwrap();
    assert_eq!(exit_code(&s), 3);
    let (h, events) = env.only_cast();
    assert!(output(&events).contains("30 100"), "{events:?}");
    // The size is in the header, or (when the resize raced the start) in a resize event.
    let last_size = events
        .iter()
        .rfind(|e| e.1 == "r")
        .map(|e| e.2.clone())
        .unwrap_or_else(|| format!("{}x{}", h["width"], h["height"]));
    assert_eq!(last_size, "100x30");
}

#[test]
fn a_signal_kill_is_128_plus_signal() {
    let env = Env::new();
    let mut s = spawn(&env, &["--", "sh", "-c", "kill -TERM $$"], &[]);
    s.expect("ended (exit 143)").unwrap();
    assert_eq!(exit_code(&s), 143);
}

#[test]
fn resize_reaches_the_command_and_is_recorded() {
    let env = Env::new();
    let mut s = spawn(&env, &["--", "sh", "-c", "echo ready; read x; stty size"], &[]);
    s.get_process_mut().set_window_size(80, 24).unwrap();
    s.expect("ready").unwrap();
    s.get_process_mut().set_window_size(120, 40).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.send("\r").unwrap();
    s.expect("40 120").unwrap();
    s.expect("ended (exit 0)").unwrap();
    let (_, events) = env.only_cast();
    assert!(events.iter().any(|e| e.1 == "r" && e.2 == "120x40"), "{events:?}");
}

#[test]
fn input_is_recorded_only_while_echo_is_on() {
    let env = Env::new();
    let script = r#"read -rs -p "pw: " pw; echo; read -r -p "name: " name; echo "ok $name ${#pw}""#;
    let mut s = spawn(&env, &["--set", "recording.input=true", "--", "bash", "-c", script], &[]);
    s.expect("pw: ").unwrap();
    s.send("hunter2\r").unwrap();
    s.expect("name: ").unwrap();
    s.send("alice\r").unwrap();
    s.expect("ok alice 7").unwrap();
    s.expect("ended (exit 0)").unwrap();
    let (_, events) = env.only_cast();
    let typed: String = events.iter().filter(|e| e.1 == "i").map(|e| e.2.as_str()).collect();
    assert!(typed.contains("alice"), "typed with echo on is recorded: {events:?}");
    assert!(!typed.contains("hunter2"), "typed with echo off is not: {typed:?}");
    let raw = std::fs::read_to_string(&env.casts()[0]).unwrap();
    assert!(!raw.contains("hunter2"));
}

#[test]
fn no_input_events_by_default() {
    let env = Env::new();
    let mut s = spawn(&env, &["--", "sh", "-c", "read x; echo got $x"], &[]);
    s.send("typed\r").unwrap();
    s.expect("got typed").unwrap();
    s.expect("ended (exit 0)").unwrap();
    let (_, events) = env.only_cast();
    assert!(!events.iter().any(|e| e.1 == "i"), "{events:?}");
}

#[test]
fn a_bash_session_produces_one_event_per_command() {
    let env = Env::new();
    std::fs::write(env.user_home().join(".bashrc"), "PS1='prompt> '\nexport FROM_USER_RC=yes\n").unwrap();
    std::fs::write(env.user_home().join(".bash_profile"), ". ~/.bashrc\n").unwrap();
    let mut s = spawn(&env, &["--set", "recording.shell=/bin/bash"], &[]);
    s.expect("prompt> ").unwrap();
    s.send("echo \"rc $FROM_USER_RC\"\r").unwrap();
    s.expect("rc yes").unwrap();
    s.expect("prompt> ").unwrap();
    s.send("false\r").unwrap();
    s.expect("prompt> ").unwrap();
    s.send("cd /tmp && sh -c 'exit 5'\r").unwrap();
    s.expect("prompt> ").unwrap();
    s.send("exit\r").unwrap();
    s.expect("ended (exit 5)").unwrap();
    let events = env.events();
    let got: Vec<(String, Option<i64>)> = events
        .iter()
        .map(|e| (e["command"].as_str().unwrap().to_string(), e["exit_code"].as_i64()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("echo \"rc $FROM_USER_RC\"".to_string(), Some(0)),
            ("false".to_string(), Some(1)),
            ("cd /tmp && sh -c 'exit 5'".to_string(), Some(5)),
            ("exit".to_string(), None),
        ]
    );
    assert_eq!(events[2]["cwd"], env.user_home().display().to_string().as_str(), "cwd when it started");
    assert_eq!(events[3]["cwd"], "/tmp");
    let raw = std::fs::read_to_string(&env.casts()[0]).unwrap();
    assert!(!raw.contains("133;C;ddcoterm") && !raw.contains("133;D;"), "markers are stripped");
    assert!(raw.contains("rc yes"));
    // The user's files were sourced, not changed.
    assert_eq!(std::fs::read_to_string(env.user_home().join(".bash_profile")).unwrap(), ". ~/.bashrc\n");
}

#[test]
fn a_zsh_session_produces_one_event_per_command() {
    if Command::new("zsh").arg("-c").arg("true").status().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must install zsh");
        eprintln!("zsh is not installed; skipping");
        return;
    }
    let env = Env::new();
    std::fs::write(env.user_home().join(".zshrc"), "PROMPT='zprompt> '\nexport FROM_ZSHRC=yes\n").unwrap();
    let mut s = spawn(&env, &["--set", "recording.shell=/bin/zsh"], &[]);
    s.expect("zprompt> ").unwrap();
    s.send("echo \"z $FROM_ZSHRC\"\r").unwrap();
    s.expect("z yes").unwrap();
    s.expect("zprompt> ").unwrap();
    s.send("false\r").unwrap();
    s.expect("zprompt> ").unwrap();
    s.send("exit 2\r").unwrap();
    s.expect("ended (exit 2)").unwrap();
    let got: Vec<(String, Option<i64>)> = env
        .events()
        .iter()
        .map(|e| (e["command"].as_str().unwrap().to_string(), e["exit_code"].as_i64()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("echo \"z $FROM_ZSHRC\"".to_string(), Some(0)),
            ("false".to_string(), Some(1)),
            ("exit 2".to_string(), None),
        ]
    );
}

#[test]
fn nested_interactive_session_is_not_recorded_twice() {
    let env = Env::new();
    let mut s = spawn(&env, &["--set", "recording.shell=/bin/sh"], &[]);
    s.expect("recording session").unwrap();
    s.send(format!("{} --set recording.shell=/bin/sh\r", recorder_support::BIN)).unwrap();
    s.expect("already recording session").unwrap();
    s.send("echo inner-shell; exit\r").unwrap();
    s.expect("inner-shell").unwrap();
    s.send("exit\r").unwrap();
    let _ = s.get_process().wait();
    assert_eq!(env.casts().len(), 1, "only the outer session is recorded");
}

#[test]
fn a_forged_marker_does_not_stop_an_interactive_recording() {
    let env = Env::new();
    let mut s = spawn(&env, &["--set", "recording.shell=/bin/sh"], &[("DDCOTERM_SESSION", "outer-id")]);
    s.expect("is not an outer ddcoterm recording").unwrap();
    s.send("echo recorded-shell; exit\r").unwrap();
    s.expect("recorded-shell").unwrap();
    let _ = s.get_process().wait();
    assert_eq!(env.casts().len(), 1);
}

#[test]
fn sigterm_to_ddcoterm_under_a_pty_is_forwarded_and_the_terminal_restored() {
    let env = Env::new();
    let mut s = spawn(&env, &["--", "sh", "-c", "echo started; sleep 30"], &[]);
    s.expect("started").unwrap();
    let pid = s.get_process().pid();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    s.expect("ended (exit 143)").unwrap();
    assert_eq!(exit_code(&s), 143);
}
