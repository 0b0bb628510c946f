//! The local recordings directory: list sessions (id, date, command, duration, size) and find one by id.

use super::player;
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One recording, as `ddcoterm sessions` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionInfo {
    pub id: String,
    /// Unix seconds from the header.
    pub started_at: Option<u64>,
    pub command: String,
    /// Time of the last complete event, seconds.
    pub duration_secs: f64,
    pub size_bytes: u64,
    pub exit_code: Option<i32>,
    pub path: PathBuf,
}

/// Reads header and tail of one file; `None` for files that are not asciicast.
pub fn info(path: &Path) -> Option<SessionInfo> {
    let mut file = std::fs::File::open(path).ok()?;
    let size_bytes = file.metadata().ok()?.len();
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).ok()?;
    let first = head[..n].split(|&b| b == b'\n').next()?;
    let header = player::parse_header(&path.display().to_string(), std::str::from_utf8(first).ok()?).ok()?;
    let tail_len = size_bytes.min(64 * 1024);
    file.seek(SeekFrom::End(-(tail_len as i64))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let mut duration_secs = 0.0;
    let mut exit_code = None;
    // v2 times are absolute: the last complete event line gives the duration.
    for line in text.lines().rev() {
        if let Some((t, code, data)) = super::cast::parse_event(line) {
            if header.version == 2 {
                duration_secs = t;
            }
            if code == "m" {
                exit_code = data.strip_prefix("exit ").and_then(|c| c.parse().ok());
            }
            break;
        }
    }
    let id = header.raw["ddcoterm"]["session_id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))?;
    Some(SessionInfo {
        id,
        started_at: header.timestamp,
        command: header.command.unwrap_or_default(),
        duration_secs,
        size_bytes,
        exit_code,
        path: path.to_path_buf(),
    })
}

/// Every `.cast` in `dir`, oldest first. A missing directory is an empty list.
pub fn list(dir: &Path) -> anyhow::Result<Vec<SessionInfo>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("{}: {e}", dir.display()),
    };
    let mut out: Vec<SessionInfo> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cast"))
        .filter_map(|p| info(&p))
        .collect();
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// A path as given, else `<dir>/<id>.cast`, else the one recording whose id starts with `id`.
pub fn resolve(dir: &Path, id_or_path: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(id_or_path);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let exact = dir.join(format!("{id_or_path}.cast"));
    if exact.is_file() {
        return Ok(exact);
    }
    let matches: Vec<PathBuf> =
        list(dir)?.into_iter().filter(|s| s.id.starts_with(id_or_path)).map(|s| s.path).collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(crate::error::Exit::new(
            crate::error::exit::USAGE,
            format!("{id_or_path}: no such file, and no recording with that id in {}", dir.display()),
        )
        .into()),
        n => Err(crate::error::Exit::new(
            crate::error::exit::USAGE,
            format!("{id_or_path}: {n} recordings start with this id; give more of it"),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_resolves_by_prefix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("0190abcd.cast"),
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":100,\"command\":\"ls\",\"ddcoterm\":{\"session_id\":\"0190abcd\"}}\n[0.1, \"o\", \"x\"]\n[2.5, \"m\", \"exit 3\"]\n",
        )
        .unwrap();
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        std::fs::write(d.path().join("broken.cast"), "nope\n").unwrap();
        let l = list(d.path()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].id.as_str(), l[0].command.as_str(), l[0].duration_secs), ("0190abcd", "ls", 2.5));
        assert_eq!(l[0].exit_code, Some(3));
        assert_eq!(resolve(d.path(), "0190").unwrap(), d.path().join("0190abcd.cast"));
        assert!(resolve(d.path(), "zzz").unwrap_err().to_string().contains("no recording with that id"));
    }
}
