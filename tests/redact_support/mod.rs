//! Shared by the redaction corpus tests: one sample per kind, the ways a terminal can cut a secret apart,
//! and the leak check.
#![allow(dead_code)]

pub mod samples;

pub use samples::SAMPLES;

/// What a reader of the recording could reassemble: escape sequences and line breaks taken out (a secret cut
/// by a wrap or a colour change is still found whole), JSON-decoded text expected.
pub fn visible(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0x1b if b.get(i + 1) == Some(&b'[') => {
                i += 2;
                while i < b.len() && !(0x40..=0x7e).contains(&b[i]) {
                    i += 1;
                }
                i += 1;
            }
            0x1b if b.get(i + 1) == Some(&b']') => {
                while i < b.len() && b[i] != 0x07 && !(b[i] == b'\\' && b[i - 1] == 0x1b) {
                    i += 1;
                }
                i += 1;
            }
            0x1b => i += 2,
            b' ' if b.get(i + 1) == Some(&b'\r') => i += 2,
            b'\r' | b'\n' => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Fixed, documented prefixes of token formats: not secret.
const PUBLIC: &[&str] = &[
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "pypi-AgEIcHlwaS5vcmc",
    "AGE-SECRET-KEY-1",
    "eyJhbGciOiJIUzI1NiJ9.eyJ",
];

/// A piece of `secret` (any 12 consecutive bytes, or all of a shorter one) found in `hay`, if any.
pub fn leak<'a>(hay: &str, secret: &'a str) -> Option<&'a str> {
    let secret = secret.trim();
    let w = secret.len().min(12);
    (0..=secret.len() - w).map(|i| &secret[i..i + w]).find(|piece| {
        // A window of public framing says nothing: PEM header and footer lines, and the fixed prefixes of
        // some formats, which an idle flush may let out before the token is complete (docs/redact.md).
        let public = piece.contains("--") || PUBLIC.iter().any(|p| p.contains(piece));
        !public && piece.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 8 && hay.contains(piece)
    })
}

/// Every sample's secret that leaks into `hay` (already passed through `visible`), as `kind: piece`.
pub fn leaks(hay: &str) -> Vec<String> {
    SAMPLES.iter().filter_map(|(kind, _, secret)| leak(hay, secret).map(|p| format!("{kind}: {p}"))).collect()
}

/// `text` hard-wrapped at `width` columns the way a program does it: `\r\n` after every `width` bytes of a
/// line (ASCII samples: a byte is a column).
pub fn hard_wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        let b = line.as_bytes();
        let mut rows: Vec<&str> = b.chunks(width).map(|c| std::str::from_utf8(c).unwrap()).collect();
        if rows.is_empty() {
            rows.push("");
        }
        out.push_str(&rows.join("\r\n"));
        out.push_str("\r\n");
    }
    out
}

/// The sample inside ANSI colour, with a colour change in the middle of the secret too.
pub fn coloured(line: &str, secret: &str) -> String {
    let at = line.find(secret).unwrap() + secret.len() / 2;
    let at = (at..).find(|&i| line.is_char_boundary(i)).unwrap();
    format!("\x1b[1;32m{}\x1b[0;31m{}\x1b[0m", &line[..at], &line[at..])
}

/// What bash's readline echoes when `typed` is typed one key at a time after `prompt` on a `width`-column
/// terminal: each key's echo, and ` \r` after the key that reaches the right margin.
pub fn readline_echo(prompt: &str, typed: &str, width: usize) -> Vec<String> {
    let mut col = prompt.len();
    let mut keys = Vec::new();
    for c in typed.chars() {
        let mut echo = c.to_string();
        col += 1;
        if col == width {
            echo.push_str(" \r");
            col = 0;
        }
        keys.push(echo);
    }
    keys
}
