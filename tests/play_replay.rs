//! `ddcoterm play` through a real PTY, inside a shell, with the test acting as the viewer's terminal: a
//! recording full of terminal queries, clipboard and title sequences reaches the terminal without any of
//! them, nothing lands in the shell's input (the `2RR84: command not found` of issue #20), and the terminal
//! leaves raw mode on every way out.

mod harness;
mod recorder_support;

use expectrl::{Regex, Session};
use recorder_support::{Env, BIN};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a terminal would answer to each query (xterm's answers), so a leak would type into the shell.
const QUERIES: &[(&str, &str)] = &[
    ("\x1b[6n", "\x1b[2;1R"),
    ("\x1b[5n", "\x1b[0n"),
    ("\x1b[c", "\x1b[?62;22c"),
    ("\x1b[>c", "\x1b[>41;390;0c"),
    ("\x1b[?2004$p", "\x1b[?2004;2$y"),
    ("\x1b[>0q", "\x1bP>|XTerm(390)\x1b\\"),
    ("\x1b]10;?\x07", "\x1b]10;rgb:ffff/ffff/ffff\x07"),
    ("\x1b]11;?\x1b\\", "\x1b]11;rgb:0000/0000/0000\x1b\\"),
    ("\x1bP$qm\x1b\\", "\x1bP1$r0m\x1b\\"),
    ("\x1b]52;c;?\x07", "\x1b]52;c;c2VjcmV0\x07"),
];

/// Sequences that act without answering: clipboard write, titles, hyperlink, notification, mouse reporting.
const ACTING: &[&str] = &[
    "\x1b]52;c;cm0gLXJmIH4K\x07",
    "\x1b]0;owned\x07",
    "\x1b]2;owned\x1b\\",
    "\x1b]8;;https://evil.example/\x1b\\",
    "\x1b]9;ping\x07",
    "\x1b[?1000h",
];

fn hostile_cast(dir: &Path) -> PathBuf {
    let mut events = Vec::new();
    let mut t = 0.0;
    let mut push = |data: String| {
        t += 0.01;
        events.push(serde_json::json!([t, "o", data]).to_string());
    };
    push("VISIBLE-ONE\r\n".into());
    for (q, _) in QUERIES {
        push(format!("{q}x"));
    }
    for a in ACTING {
        push(format!("{a}y"));
    }
    // A query split across two events, as a slow program's output would be recorded.
    push("\x1b[".into());
    push("6nVISIBLE-TWO\r\n".into());
    let path = dir.join("hostile.cast");
    std::fs::write(
        &path,
        format!("{{\"version\": 2, \"width\": 80, \"height\": 24}}\n{}\n", events.join("\n")),
    )
    .unwrap();
    path
}

fn shell(env: &Env) -> Session {
    let mut c = Command::new("bash");
    c.args(["--noprofile", "--norc", "-i"]);
    env.apply(&mut c);
    c.env("PS1", "PROMPT> ").env("PATH", "/usr/local/bin:/usr/bin:/bin").current_dir(env.user_home());
    let mut s = Session::spawn(c).expect("bash on a PTY");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect("PROMPT> ").unwrap();
    s
}

/// Terminal modes as `stty -a` lists them (`icanon`, `-icanon`...).
fn modes(s: &mut Session) -> String {
    s.send_line("stty -a | tr ' ;' '\\n\\n' | grep -E -x -e '-?(icanon|echo|isig)' | tr '\\n' ' '; printf 'MODES-%s\\n' END").unwrap();
    let m = s.expect("MODES-END").unwrap();
    String::from_utf8_lossy(m.before()).rsplit('\n').next().unwrap_or_default().to_string()
}

#[test]
fn replay_sends_no_query_to_the_terminal_and_nothing_reaches_the_shell() {
    let env = Env::new();
    let cast = hostile_cast(env.root());
    let mut s = shell(&env);
    let before = modes(&mut s);
    assert!(before.contains("icanon") && !before.contains("-icanon"), "{before:?}");
    s.send_line(format!(
        "printf 'BEGIN-%s\\n' PLAY; {BIN} play --idle-limit 0.01 {}; echo PLAY-EXIT=$?",
        cast.display()
    ))
    .unwrap();
    s.expect("BEGIN-PLAY").unwrap();
    let m = s.expect(Regex("PLAY-EXIT=[0-9]+")).unwrap();
    let seen = m.before().to_vec();
    let code = String::from_utf8_lossy(m.get(0).unwrap()).to_string();
    let text = String::from_utf8_lossy(&seen).to_string();
    assert!(text.contains("VISIBLE-ONE") && text.contains("VISIBLE-TWO"), "{text:?}");
    assert!(text.contains("xxxxxxxxxxyyyyyy"), "text around the sequences kept: {text:?}");
    // Be the terminal: answer every query that reached us, exactly as a real one would.
    let mut leaked = Vec::new();
    for (q, answer) in QUERIES {
        if text.contains(q) {
            leaked.push(format!("{q:?}"));
            s.send(answer).unwrap();
        }
    }
    for a in ACTING.iter().chain(["\x1b]", "\x1bP", "\x1b[6n"].iter()) {
        if text.contains(a) {
            leaked.push(format!("{a:?}"));
        }
    }
    assert!(leaked.is_empty(), "reached the terminal: {leaked:?} in {text:?}");
    assert_eq!(code, "PLAY-EXIT=0");
    // Whatever the shell received as input would run now, before this line.
    s.send_line("printf 'AFTER-%s\\n' PLAY").unwrap();
    let m = s.expect("AFTER-PLAY").unwrap();
    let after = String::from_utf8_lossy(m.before()).to_string();
    assert!(!after.contains("command not found") && !after.contains("R84"), "stray input ran: {after:?}");
    // And the terminal modes are what they were before (raw mode left).
    assert_eq!(modes(&mut s), before);
    s.send_line("exit").unwrap();
}

fn long_cast(dir: &Path) -> PathBuf {
    let path = dir.join("long.cast");
    std::fs::write(
        &path,
        "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"o\", \"\\u001b[?1049hSTARTED\\r\\n\"]\n[600.0, \"o\", \"NEVER-SHOWN\"]\n",
    )
    .unwrap();
    path
}

#[test]
fn q_and_ctrl_c_end_a_long_replay_and_restore_the_terminal() {
    let env = Env::new();
    let cast = long_cast(env.root());
    let mut s = shell(&env);
    let before = modes(&mut s);
    for (key, name) in [("q", "q"), ("\x03", "ctrl-c"), (" q", "pause then q")] {
        s.send_line(format!("{BIN} play {}; echo PLAY-EXIT=$?", cast.display())).unwrap();
        s.expect("STARTED").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.send(key).unwrap();
        let m = s.expect(Regex("PLAY-EXIT=[0-9]+")).unwrap();
        let text = String::from_utf8_lossy(m.before()).to_string();
        assert_eq!(String::from_utf8_lossy(m.get(0).unwrap()), "PLAY-EXIT=0", "{name}: {text:?}");
        assert!(!text.contains("NEVER-SHOWN"), "{name}");
        assert!(text.contains("\x1b[?1049l"), "{name}: the alternate screen is left: {text:?}");
        assert_eq!(modes(&mut s), before, "{name}: terminal modes restored");
    }
    s.send_line("exit").unwrap();
}

#[test]
fn keyboard_eof_while_paused_ends_the_replay() {
    // stdout on a PTY, stdin a pipe that closes: no keys, so a pause is impossible; it plays to the end.
    let env = Env::new();
    let cast = env.root().join("short.cast");
    std::fs::write(&cast, "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"o\", \"A\\u001b[6n\"]\n[0.3, \"o\", \"B\"]\n")
        .unwrap();
    let mut s = shell(&env);
    s.send_line(format!("{BIN} play {} </dev/null; echo PLAY-EXIT=$?", cast.display())).unwrap();
    let m = s.expect(Regex("PLAY-EXIT=[0-9]+")).unwrap();
    let text = String::from_utf8_lossy(m.before()).to_string();
    assert!(text.contains("AB") && !text.contains("\x1b[6n"), "{text:?}");
    s.send_line("exit").unwrap();
}

#[test]
fn without_a_terminal_play_writes_everything_at_once_and_safely() {
    let env = Env::new();
    let cast = long_cast(env.root());
    let mut child = Command::new(BIN)
        .arg("play")
        .arg(&cast)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keys are not read without a terminal: this `q` must not stop anything. Play never reads its stdin,
    // so it may already have finished and closed the pipe: a broken pipe here is that, not a failure.
    match child.stdin.take().unwrap().write_all(b"q") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing play's stdin: {e}"),
        _ => {}
    }
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "play waited out the recording's 600 s pause");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STARTED") && text.contains("NEVER-SHOWN"), "{text:?}");
}
