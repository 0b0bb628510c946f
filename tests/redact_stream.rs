//! Streaming behaviour: escapes inside secrets, private key blocks, wrapped tokens, idle flushes, bounds.

use ddcoterm::config::settings::{RedactionPattern, RedactionSettings};
use ddcoterm::redact::{Redactor, StreamRedactor};

fn redactor() -> Redactor {
    Redactor::from_settings(&RedactionSettings::default()).unwrap()
}

fn feed(s: &mut StreamRedactor, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.push(c));
    }
    out.extend(s.finish());
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn escape_sequences_inside_a_secret_are_redacted_with_it() {
    let r = redactor();
    let cases: &[(&str, &str)] = &[
        ("AKIA\x1b[0mIOSFODNN7EXAMPLE\r\n", "[REDACTED:aws_access_key_id]\r\n"),
        (
            "key \x1b[1;31mghp_16C7e42F292c\x1b[0m6912E7710c838347Ae178B4a!\r\n",
            "key \x1b[1;31m[REDACTED:github_token]!\r\n",
        ),
        ("\x1b[32mAKIAIOSFODNN7EXAMPLE\x1b[0m\n", "\x1b[32m[REDACTED:aws_access_key_id]\x1b[0m\n"),
        ("pass\x1b[0mword=hun\x1b[7mter2\n", "pass\x1b[0mword=[REDACTED:password]\n"),
        (
            "\x1b]0;title\x07postgres://u:pw\x1b[0md@h/db\n",
            "\x1b]0;title\x07postgres://u:[REDACTED:url_credentials]@h/db\n",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(text(&r.redact_bytes(input.as_bytes())), *expected, "{input:?}");
        for i in 0..=input.len() {
            let out = feed(&mut r.stream(), &[&input.as_bytes()[..i], &input.as_bytes()[i..]]);
            assert_eq!(text(&out), *expected, "split at {i} of {input:?}");
        }
    }
}

#[test]
fn escapes_around_ordinary_text_pass_through_unchanged() {
    let r = redactor();
    let input =
        "\x1b[?2004h\x1b]133;A\x07$ ls --color\r\n\x1b[0m\x1b[01;34msrc\x1b[0m  Cargo.toml\r\n\x1b(B\x1b=";
    assert_eq!(text(&r.redact_bytes(input.as_bytes())), input);
}

#[test]
fn a_private_key_block_is_held_until_its_end_and_redacted_whole() {
    let r = redactor();
    let mut s = r.stream();
    let mut out = s.push(b"$ cat id_ed25519\r\n-----BEGIN OPENSSH PRIVATE KEY-----\r\n");
    assert_eq!(text(&out), "$ cat id_ed25519\r\n");
    for line in ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r\n"; 20] {
        assert!(s.push(line.as_bytes()).is_empty(), "nothing of the block may be emitted before END");
    }
    assert!(s.flush_idle().is_empty(), "an idle flush does not release an open key block");
    out.extend(s.push(b"-----END OPENSSH PRIVATE KEY-----\r\n$ "));
    out.extend(s.finish());
    assert_eq!(text(&out), "$ cat id_ed25519\r\n[REDACTED:private_key]\r\n$ ");
}

#[test]
fn a_private_key_block_without_end_is_redacted_after_the_bound_then_the_stream_resumes() {
    let r = redactor();
    let mut s = r.stream();
    assert!(s.push(b"-----BEGIN RSA PRIVATE KEY-----\n").is_empty());
    let body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n";
    let mut pushed = 0;
    let out = loop {
        let out = s.push(body.as_bytes());
        pushed += body.len();
        assert!(s.held_back() <= 64 * 1024 + body.len(), "held {}", s.held_back());
        if !out.is_empty() {
            break out;
        }
        assert!(pushed < 70 * 1024, "the hold is bounded");
    };
    assert!(pushed >= 64 * 1024 - body.len(), "held until the bound, released after {pushed}");
    assert_eq!(text(&out), "[REDACTED:private_key]", "everything held from BEGIN is redacted as the key");
    let mut rest = s.push(b"after the bound\n");
    rest.extend(s.finish());
    assert_eq!(text(&rest), "after the bound\n", "then the stream resumes");
}

#[test]
fn an_unfinished_key_block_at_end_of_stream_is_redacted() {
    let r = redactor();
    let out = r.redact_str("ok\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n");
    assert_eq!(out, "ok\n[REDACTED:private_key]");
}

#[test]
fn hold_back_stays_bounded_on_endless_output_without_newlines() {
    let r = redactor();
    let mut s = r.stream();
    let chunk: Vec<u8> =
        (0..4096u32).map(|i| b"abcdefghij klmnopqrstuvwxyz0123456789"[(i % 37) as usize]).collect();
    let mut emitted = 0;
    for _ in 0..2000 {
        emitted += s.push(&chunk).len();
        assert!(s.held_back() <= 16 * 1024 + chunk.len(), "held {}", s.held_back());
    }
    emitted += s.finish().len();
    assert_eq!(emitted, 2000 * chunk.len());

    // Binary noise with no blank at all: cut anyway, never inside a UTF-8 sequence.
    let mut s = r.stream();
    let noise: Vec<u8> = "é".repeat(3000).into_bytes();
    let mut out = Vec::new();
    for _ in 0..20 {
        let part = s.push(&noise);
        assert!(part.is_empty() || std::str::from_utf8(&part).is_ok(), "UTF-8 split");
        out.extend(part);
        assert!(s.held_back() <= 16 * 1024 + noise.len());
    }
    out.extend(s.finish());
    assert_eq!(out, noise.repeat(20));
}

/// Joined wraps never make a line without end: soft wraps (` \r` after every few bytes, a progress bar
/// redrawn forever) and rows exactly as wide as the terminal are held like any line, at most 16 KiB.
#[test]
fn joined_wraps_stay_bounded_and_lose_nothing() {
    let r = redactor();
    let soft: Vec<u8> = b"working ".iter().chain(b"x \r").copied().cycle().take(4096).collect();
    let rows: Vec<u8> = (0..50).flat_map(|_| [&[b'='; 80][..], b"\r\n"].concat()).collect();
    for (name, chunk) in [("soft wraps", soft), ("full-width rows", rows)] {
        let mut s = r.stream();
        s.set_width(80);
        let mut emitted = 0;
        for _ in 0..500 {
            emitted += s.push(&chunk).len();
            emitted += s.flush_idle().len();
            assert!(s.held_back() <= 16 * 1024 + chunk.len(), "{name}: held {}", s.held_back());
        }
        emitted += s.finish().len();
        assert_eq!(emitted, 500 * chunk.len(), "{name}: every byte comes out");
    }
}

#[test]
fn binary_noise_passes_through_except_matches() {
    let r = redactor();
    let mut data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    data.extend_from_slice(b" AKIAIOSFODNN7EXAMPLE ");
    data.extend((0..=255u8).rev().cycle().take(10_000));
    let out = r.redact_bytes(&data);
    let mut expected: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    expected.extend_from_slice(b" [REDACTED:aws_access_key_id] ");
    expected.extend((0..=255u8).rev().cycle().take(10_000));
    assert_eq!(out, expected);
}

#[test]
fn hard_wrapped_tokens_are_joined_across_lines() {
    let r = redactor();
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let wrapped: String = {
        let line = format!("token {jwt}");
        let b = line.as_bytes();
        b.chunks(40).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n")
    };
    let input = format!("{wrapped}\r\n$ ");
    let out = r.redact_str(&input);
    assert_eq!(out, "token [REDACTED:jwt]\r\n$ ");
    for i in 0..=input.len() {
        let got = feed(&mut r.stream(), &[&input.as_bytes()[..i], &input.as_bytes()[i..]]);
        assert_eq!(text(&got), out, "split at {i}");
    }
    let key = "aws configure list: access key id AKIAIOSFOD\r\nNN7EXAMPLE done\r\n";
    assert_eq!(r.redact_str(key), "aws configure list: access key id [REDACTED:aws_access_key_id] done\r\n");
    let gh = "export GITHUB_TOKEN=ghp_16C7e42F292c6912E7\n710c838347Ae178B4a\n";
    assert_eq!(r.redact_str(gh), "export GITHUB_TOKEN=[REDACTED:github_token]\n");
}

#[test]
fn ordinary_lines_are_not_joined() {
    let r = redactor();
    let keep = [
        "AKIAIOSFODNN7EXAMPLE\nABCDEF\n",
        "build 3f786850e387550fdab836ed7e6dc881de23001b\nDone\n",
        "sk-learn\n0123456789abcdef0123456789abcdef\n",
        "pip install scikit-learn and then sk-learn\n0123456789abcdef0123456789abcdef0123456789abcdef\n",
        "a long enough line ending with AKIAIOSFOD\nNN7EXAMPLE_and_more_text_that_is_wider_than_the_first_line\n",
        "AKIAX\nYZ\n",
    ];
    assert_eq!(r.redact_str(keep[0]), "[REDACTED:aws_access_key_id]\nABCDEF\n");
    for s in &keep[1..] {
        assert_eq!(r.redact_str(s), *s);
    }
}

#[test]
fn idle_flush_releases_prompts_but_not_secret_prefixes() {
    let r = redactor();
    let mut s = r.stream();
    assert!(s.push(b"alice@host:~$ ").is_empty(), "a partial line waits for more");
    assert_eq!(text(&s.flush_idle()), "alice@host:~$ ");

    assert!(s.push(b"Password: ").is_empty());
    assert_eq!(text(&s.flush_idle()), "Password: ");
    let mut out = s.push(b"hunter2\r\n");
    out.extend(s.finish());
    assert_eq!(text(&out), "[REDACTED:password]\r\n", "the emitted key still gives the value its meaning");

    let mut s = r.stream();
    assert!(s.push(b"export GH=ghp_16C7e42F292c").is_empty());
    assert_eq!(text(&s.flush_idle()), "export ", "a token prefix is never emitted");
    let mut out = s.push(b"6912E7710c838347Ae178B4a\n");
    out.extend(s.finish());
    assert_eq!(text(&out), "GH=[REDACTED:github_token]\n");

    let mut s = r.stream();
    s.push(b"Continue? [y/N]");
    assert_eq!(text(&s.flush_idle()), "Continue? [y/N]", "no anchor on the line: released whole");

    let mut s = r.stream();
    s.push(b"Authorization: Bearer ");
    assert_eq!(text(&s.flush_idle()), "Authorization: Bearer ");
    s.push(b"abc123def456ghi789");
    assert!(s.flush_idle().is_empty(), "the line holds an anchor: its trailing run waits");
    assert_eq!(text(&s.push(b"jkl\n")), "[REDACTED:bearer_token]\n");
}

#[test]
fn user_patterns_redact_with_their_name_and_first_group() {
    let r = Redactor::from_settings(&RedactionSettings {
        enabled: true,
        patterns: vec![
            RedactionPattern { name: "employee_id".into(), regex: r"\bEMP-\d{6}\b".into() },
            RedactionPattern { name: "vault".into(), regex: r"vault_token=(\w+)".into() },
        ],
    })
    .unwrap();
    assert_eq!(r.redact_str("user EMP-123456 logged in"), "user [REDACTED:employee_id] logged in");
    assert_eq!(r.redact_str("vault_token=s1234abcd ok"), "vault_token=[REDACTED:vault] ok");
    assert_eq!(r.redact_str("EMP-12345 is too short"), "EMP-12345 is too short");
    let input = "a EMP-654321 b\n";
    for i in 0..=input.len() {
        let out = feed(&mut r.stream(), &[&input.as_bytes()[..i], &input.as_bytes()[i..]]);
        assert_eq!(text(&out), "a [REDACTED:employee_id] b\n", "split at {i}");
    }
    assert!(r.kinds().contains(&"vault"));
}

#[test]
fn bad_user_regex_is_a_config_error_naming_the_pattern() {
    let err = Redactor::from_settings(&RedactionSettings {
        enabled: true,
        patterns: vec![
            RedactionPattern { name: "fine".into(), regex: "x+".into() },
            RedactionPattern { name: "ticket".into(), regex: "TICKET-[0-9".into() },
        ],
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("redaction.patterns[1]"), "{err}");
    assert!(err.contains("ticket"), "{err}");
}

#[test]
fn utf8_around_secrets_is_preserved() {
    let r = redactor();
    let input = "héllo wörld password=pässwörd 日本語 AKIAIOSFODNN7EXAMPLE ✓\n";
    let out = r.redact_str(input);
    assert_eq!(out, "héllo wörld password=[REDACTED:password] 日本語 [REDACTED:aws_access_key_id] ✓\n");
    for i in 0..=input.len() {
        let got = feed(&mut r.stream(), &[&input.as_bytes()[..i], &input.as_bytes()[i..]]);
        assert_eq!(text(&got), out, "split at {i}");
    }
}
