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
    // serde_json escapes control characters and quotes; the string is valid UTF-8 by construction.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"]\n");
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
