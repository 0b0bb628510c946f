//! asciicast v2 encoding: the header line, event lines, and the 0600 append-only file they go to.

use crate::model::SessionMeta;
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The header line (with its newline): width, height, timestamp, command, env SHELL/TERM and our metadata.
pub fn header_line(meta: &SessionMeta, shell: &str, term: &str) -> Vec<u8> {
    let mut header = json!({
        "version": 2,
        "width": meta.width,
        "height": meta.height,
        "timestamp": meta.started_at,
        "command": meta.command,
        "env": { "SHELL": shell, "TERM": term },
        "ddcoterm": {
            "session_id": meta.session_id,
            "user": meta.user,
            "host": meta.hostname,
            "cwd": meta.cwd,
            "actions": meta.actions,
            "rule": meta.rule,
            "tags": meta.tags,
        },
    });
    if let Some(ssh) = &meta.ssh {
        header["ddcoterm"]["ssh"] = json!(ssh);
    }
    let mut line = serde_json::to_vec(&header).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Appends one event line `[t, "code", "data"]\n` to `out`; `t` is seconds since the start, microseconds.
pub fn push_event(out: &mut Vec<u8>, t: f64, code: &str, data: &str) {
    use std::io::Write as _;
    let _ = write!(out, "[{t:.6}, \"{code}\", ");
    push_json_str(out, data);
    out.extend_from_slice(b"]\n");
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` (little-endian) that is a control character, `"` or a backslash. Only the
/// lowest set bit is exact (a borrow can flag the byte after a real one), which is all the caller uses.
#[inline]
fn escape_mask(w: u64) -> u64 {
    let ctl = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * b'"' as u64);
    let b = w ^ (ONES * b'\\' as u64);
    (ctl | (q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b)) & HIGHS
}

fn push_escaped(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]])
        }
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does (`\n`, `\r`, `\t`, `\b`, `\f`, `\"`,
/// `\\`, other control characters as `\u00xx`; everything else as is). Terminal output is mostly plain
/// text: clean runs are skipped sixteen bytes at a time and copied whole (about three times serde_json's
/// speed, which made this as costly as redaction).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.len();
    out.reserve(n + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while let (Some(lo), Some(hi)) = (b.get(i..i + 8), b.get(i + 8..i + 16)) {
        let m0 = escape_mask(u64::from_le_bytes(lo.try_into().unwrap_or_default()));
        let m1 = escape_mask(u64::from_le_bytes(hi.try_into().unwrap_or_default()));
        if m0 | m1 == 0 {
            i += 16;
            continue;
        }
        let j = if m0 != 0 {
            i + (m0.trailing_zeros() / 8) as usize
        } else {
            i + 8 + (m1.trailing_zeros() / 8) as usize
        };
        out.extend_from_slice(&b[run..j]);
        push_escaped(out, b[j]);
        run = j + 1;
        i = j + 1;
    }
    while i < n {
        let c = b[i];
        if c < 0x20 || c == b'"' || c == b'\\' {
            out.extend_from_slice(&b[run..i]);
            push_escaped(out, c);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Data of a resize event: `COLSxROWS`.
pub fn resize_data(cols: u16, rows: u16) -> String {
    format!("{cols}x{rows}")
}

/// Data of the exit marker written last: `exit <status>`.
pub fn exit_marker(code: i32) -> String {
    format!("exit {code}")
}

/// Creates `dir` (0700 for what it creates) and makes sure it is private even if it existed.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| anyhow::anyhow!("chmod 700 {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Creates a new file 0600 (never follows or reuses an existing one).
pub fn create_private(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))
}

/// The session's `.cast` file: every write goes straight to the kernel, so `kill -9` leaves a playable prefix.
pub struct CastFile {
    file: File,
    path: PathBuf,
}

impl CastFile {
    /// Creates `<dir>/<session_id>.cast` and writes the header.
    pub fn create(path: PathBuf, header: &[u8]) -> anyhow::Result<CastFile> {
        let mut file = create_private(&path)?;
        file.write_all(header).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        Ok(CastFile { file, path })
    }

    /// Appends complete event lines (one `write(2)` per call).
    pub fn append(&mut self, lines: &[u8]) -> anyhow::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.file.write_all(lines).map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Parses one event line into `(time, code, data)`; `None` for anything else (a truncated last line).
pub fn parse_event(line: &str) -> Option<(f64, String, String)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let a = v.as_array()?;
    if a.len() < 3 {
        return None;
    }
    Some((a[0].as_f64()?, a[1].as_str()?.to_string(), a[2].as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_escape_and_round_trip() {
        let mut out = Vec::new();
        push_event(&mut out, 1.5, "o", "a\"b\\c\r\n\x1b[0m\u{7}é");
        let line = std::str::from_utf8(&out).unwrap();
        assert!(line.ends_with("]\n") && line.starts_with("[1.500000, \"o\", "), "{line}");
        let (t, code, data) = parse_event(line.trim_end()).unwrap();
        assert_eq!((t, code.as_str(), data.as_str()), (1.5, "o", "a\"b\\c\r\n\x1b[0m\u{7}é"));
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain text that is long enough for several words".into(),
            "\x1b[31mred\x1b[0m \"q\" back\\slash\r\n\t\u{8}\u{c}\u{7f}é→🎉".into(),
            (0u8..0x80).map(char::from).collect(),
        ];
        // Every special byte at every offset of a word, between clean bytes and multi-byte characters.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é'] {
            for at in 0..34 {
                let mut s: String = "abcdefghijklmnopq".chars().take(at).collect();
                s.push(special);
                s.push_str("→xyz0123456789");
                cases.push(s);
            }
        }
        // Pseudo-random mixes of plain, special and multi-byte characters.
        let alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\r', '\u{1b}', '\u{0}', '\u{7f}', 'é', '→', '🎉'];
        let mut x: u64 = 42;
        for len in 0..300 {
            let s: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Mostly plain, so that long clean runs and isolated specials both occur.
                    let r = (x >> 33) as usize;
                    if r.is_multiple_of(4) {
                        alphabet[r / 4 % alphabet.len()]
                    } else {
                        'x'
                    }
                })
                .collect();
            cases.push(s);
        }
        for c in cases {
            let mut out = Vec::new();
            push_json_str(&mut out, &c);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&c).unwrap(), "{c:?}");
        }
    }

    #[test]
    fn header_has_v2_fields_and_metadata() {
        let meta = SessionMeta {
            session_id: "id1".into(),
            command: "ls -l".into(),
            width: 100,
            height: 30,
            started_at: 42,
            actions: vec![crate::model::Action::Record],
            ..SessionMeta::default()
        };
        let h: Value = serde_json::from_slice(&header_line(&meta, "/bin/bash", "xterm")).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(h["width"], 100);
        assert_eq!(h["height"], 30);
        assert_eq!(h["timestamp"], 42);
        assert_eq!(h["command"], "ls -l");
        assert_eq!(h["env"]["TERM"], "xterm");
        assert_eq!(h["ddcoterm"]["session_id"], "id1");
        assert_eq!(h["ddcoterm"]["actions"][0], "record");
        assert!(h["ddcoterm"].get("ssh").is_none(), "no ssh object outside an SSH session: {h}");
    }

    #[test]
    fn header_carries_the_ssh_origin() {
        let meta = SessionMeta {
            ssh: Some(crate::model::SshOrigin {
                client_addr: "192.0.2.7".into(),
                client_port: 50022,
                server_addr: "10.0.0.1".into(),
                server_port: 22,
                auth_method: Some("publickey".into()),
                key_type: Some("ssh-ed25519".into()),
                key_fingerprint: Some("SHA256:abc".into()),
            }),
            ..SessionMeta::default()
        };
        let h: Value = serde_json::from_slice(&header_line(&meta, "/bin/bash", "xterm")).unwrap();
        let ssh = &h["ddcoterm"]["ssh"];
        assert_eq!(ssh["client_addr"], "192.0.2.7");
        assert_eq!(ssh["client_port"], 50022);
        assert_eq!(ssh["key_fingerprint"], "SHA256:abc");
        assert_eq!(ssh["auth_method"], "publickey");
    }

    #[test]
    fn truncated_line_is_not_an_event() {
        assert!(parse_event("[0.1, \"o\", \"abc").is_none());
        assert!(parse_event("{\"version\": 2}").is_none());
    }

    #[test]
    fn files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("rec");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let f = CastFile::create(dir.join("x.cast"), b"{}\n").unwrap();
        assert_eq!(std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(CastFile::create(dir.join("x.cast"), b"{}\n").is_err(), "never reuses a file");
    }
}
