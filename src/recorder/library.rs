//! The local recordings directory: list sessions (id, date, command, user, host, duration, exit, size),
//! filter them, give each a short id that is unique among them, and find one by a full or short id.

use super::player;
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;

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
    /// Who recorded it and where (ddcoterm's header metadata; `None` for other recorders' files).
    pub user: Option<String>,
    pub host: Option<String>,
    pub cwd: Option<String>,
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
    let meta = |k: &str| header.raw["ddcoterm"][k].as_str().map(str::to_string);
    Some(SessionInfo {
        id,
        started_at: header.timestamp,
        command: header.command.clone().unwrap_or_default(),
        duration_secs,
        size_bytes,
        exit_code,
        user: meta("user"),
        host: meta("host"),
        cwd: meta("cwd"),
        path: path.to_path_buf(),
    })
}

impl SessionInfo {
    /// The JSON of `ddcoterm sessions --format json` and `sessions show --format json`: full id, start as
    /// RFC 3339, numbers as numbers (a documented interface: field names do not change).
    pub fn to_json(&self) -> serde_json::Value {
        let started_at = self
            .started_at
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
            .and_then(|d| d.format(&Rfc3339).ok())
            .map_or(serde_json::Value::Null, serde_json::Value::String);
        serde_json::json!({
            "id": self.id,
            "started_at": started_at,
            "duration_secs": self.duration_secs,
            "exit_code": self.exit_code,
            "size_bytes": self.size_bytes,
            "user": self.user,
            "host": self.host,
            "cwd": self.cwd,
            "command": self.command,
            "path": self.path,
        })
    }
}

/// Every `.cast` in `dir`, newest first. A missing directory is an empty list.
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
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    Ok(out)
}

/// What `ddcoterm sessions` may narrow the list to; every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub user: Option<String>,
    pub host: Option<String>,
    /// A substring of the command line.
    pub command: Option<String>,
    /// Unix seconds: started at or after.
    pub since: Option<u64>,
    /// Unix seconds: started before.
    pub until: Option<u64>,
    pub exit: Option<i32>,
}

impl Filter {
    pub fn matches(&self, s: &SessionInfo) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        eq(&self.user, &s.user)
            && eq(&self.host, &s.host)
            && self.command.as_ref().is_none_or(|c| s.command.contains(c.as_str()))
            && self.since.is_none_or(|t| s.started_at.is_some_and(|at| at >= t))
            && self.until.is_none_or(|t| s.started_at.is_some_and(|at| at < t))
            && self.exit.is_none_or(|e| s.exit_code == Some(e))
    }
}

/// `--since`/`--until` (named by `flag` in the error): RFC 3339, or a duration before `now` (`2h`, `7d`,
/// `30m`); Unix seconds. Anything else is a usage error (exit 64) that shows both forms.
pub fn parse_time(flag: &str, v: &str, now: u64) -> anyhow::Result<u64> {
    if let Ok(t) = time::OffsetDateTime::parse(v.trim(), &Rfc3339) {
        return Ok(t.unix_timestamp().max(0) as u64);
    }
    match humantime::parse_duration(v.trim()) {
        Ok(d) => Ok(now.saturating_sub(d.as_secs())),
        Err(_) => Err(crate::error::Exit::new(
            crate::error::exit::USAGE,
            format!("{flag} `{v}`: not an RFC 3339 time (2026-05-01T09:00:00Z) nor a duration ago (2h, 7d)"),
        )
        .into()),
    }
}

/// The recordings of a directory that a [`Filter`] keeps, newest first, each with its short id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Recordings in the directory before filtering (to tell "none" from "none match").
    pub total: usize,
    pub rows: Vec<(SessionInfo, String)>,
}

/// Lists `dir` and keeps what `filter` matches. Short ids are unique among every recording in the
/// directory (not only the rows kept), so each one also resolves in `play` and `sessions show`.
pub fn listing(dir: &Path, filter: &Filter) -> anyhow::Result<Listing> {
    let all = list(dir)?;
    let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    let short = short_ids(&ids);
    let total = all.len();
    let rows = all.into_iter().zip(short).filter(|(s, _)| filter.matches(s)).collect();
    Ok(Listing { total, rows })
}

/// Shortest length of a short id.
pub const MIN_SHORT: usize = 8;

/// One short id per session: the shortest common length (at least [`MIN_SHORT`]) of the ids' *ends* that is
/// unique among `ids`. UUIDv7 ids begin with their creation time, so sessions of the same hour share a long
/// prefix; their random part is at the end. An id shorter than the length is shown whole.
pub fn short_ids(ids: &[&str]) -> Vec<String> {
    let longest = ids.iter().map(|i| i.len()).max().unwrap_or(0);
    let mut len = MIN_SHORT.min(longest);
    loop {
        let ends: Vec<&str> = ids.iter().map(|i| tail(i, len)).collect();
        let unique = ends.iter().collect::<std::collections::HashSet<_>>().len() == ends.len();
        if unique || len >= longest {
            return ends.into_iter().map(str::to_string).collect();
        }
        len += 1;
    }
}

fn tail(id: &str, len: usize) -> &str {
    let mut at = id.len().saturating_sub(len);
    while !id.is_char_boundary(at) {
        at += 1;
    }
    &id[at..]
}

/// A path as given, else `<dir>/<id>.cast`, else the one recording whose id starts or ends with `id` (the
/// short ids `sessions` shows are ends). More than one: an error listing them.
pub fn resolve(dir: &Path, id_or_path: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(id_or_path);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let usage = |msg: String| anyhow::Error::from(crate::error::Exit::new(crate::error::exit::USAGE, msg));
    if id_or_path.is_empty() || id_or_path.contains('/') {
        return Err(usage(format!("{id_or_path:?}: no such file, and not a session id")));
    }
    let exact = dir.join(format!("{id_or_path}.cast"));
    if exact.is_file() {
        return Ok(exact);
    }
    let matches: Vec<SessionInfo> = list(dir)?
        .into_iter()
        .filter(|s| s.id.starts_with(id_or_path) || s.id.ends_with(id_or_path))
        .collect();
    match matches.len() {
        1 => Ok(matches[0].path.clone()),
        0 => Err(usage(format!(
            "{id_or_path}: no such file, and no recording with that id in {}",
            dir.display()
        ))),
        n => {
            let list: Vec<String> =
                matches.iter().map(|s| format!("  {}  {}", s.id, printable(&s.command, 60))).collect();
            Err(usage(format!(
                "{id_or_path}: {n} recordings match this id; give more of it:\n{}",
                list.join("\n")
            )))
        }
    }
}

/// `text` safe to print on a terminal (control characters escaped: a command line is the recorded user's
/// text), cut to `max` characters with an ellipsis.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
        assert_eq!(l[0].user, None, "no ddcoterm user metadata in this header");
    }

    fn cast(dir: &Path, id: &str, ts: u64, cmd: &str, user: &str, exit: i32) {
        std::fs::write(
            dir.join(format!("{id}.cast")),
            format!("{{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":{ts},\"command\":\"{cmd}\",\"ddcoterm\":{{\"session_id\":\"{id}\",\"user\":\"{user}\",\"host\":\"h1\"}}}}\n[0.5, \"o\", \"x\"]\n[1.0, \"m\", \"exit {exit}\"]\n"),
        )
        .unwrap();
    }

    #[test]
    fn newest_first_filters_and_short_ids_that_resolve() {
        let d = tempfile::tempdir().unwrap();
        // UUIDv7 ids of the same second: a 20-character common prefix.
        let ids = [
            "0193b7e2-aaaa-7000-8000-00000000a1b2",
            "0193b7e2-aaaa-7000-8000-00000000c3d4",
            "0193b7e2-aaaa-7000-8000-00010000a1b2",
        ];
        cast(d.path(), ids[0], 100, "kubectl get pods", "ann", 0);
        cast(d.path(), ids[1], 300, "terraform apply", "bob", 1);
        cast(d.path(), ids[2], 200, "kubectl delete pod x", "ann", 0);
        let l = list(d.path()).unwrap();
        assert_eq!(l.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![ids[1], ids[2], ids[0]]);
        assert_eq!((l[0].user.as_deref(), l[0].host.as_deref()), (Some("bob"), Some("h1")));

        let f = |f: Filter| l.iter().filter(|s| f.matches(s)).map(|s| s.id.as_str()).collect::<Vec<_>>();
        assert_eq!(f(Filter { user: Some("ann".into()), ..Default::default() }), vec![ids[2], ids[0]]);
        assert_eq!(
            f(Filter { command: Some("kubectl".into()), exit: Some(0), ..Default::default() }),
            vec![ids[2], ids[0]]
        );
        assert_eq!(f(Filter { exit: Some(1), ..Default::default() }), vec![ids[1]]);
        assert_eq!(f(Filter { since: Some(150), until: Some(300), ..Default::default() }), vec![ids[2]]);
        assert_eq!(f(Filter { host: Some("other".into()), ..Default::default() }), Vec::<&str>::new());

        let short = short_ids(&ids);
        // 8 characters would be "0000a1b2" twice: one more makes them unique.
        assert_eq!(short, vec!["00000a1b2", "00000c3d4", "10000a1b2"]);
        for (s, id) in short.iter().zip(ids) {
            assert_eq!(resolve(d.path(), s).unwrap(), d.path().join(format!("{id}.cast")));
        }
        // The shared time prefix, or an end two sessions have, is ambiguous: the candidates are listed.
        let e = resolve(d.path(), "0193b7e2").unwrap_err().to_string();
        assert!(
            e.contains("3 recordings match") && e.contains(ids[0]) && e.contains("terraform apply"),
            "{e}"
        );
        let e = resolve(d.path(), "a1b2").unwrap_err().to_string();
        assert!(e.contains("2 recordings match") && !e.contains(ids[1]), "{e}");
        assert!(resolve(d.path(), "../x").is_err());
    }

    #[test]
    fn a_listing_keeps_short_ids_unique_among_all_recordings() {
        let d = tempfile::tempdir().unwrap();
        cast(d.path(), "0193b7e2-aaaa-7000-8000-00000000a1b2", 100, "ls", "ann", 0);
        cast(d.path(), "0193b7e2-aaaa-7000-8000-00010000a1b2", 200, "ls", "bob", 0);
        let l = listing(d.path(), &Filter { user: Some("ann".into()), ..Default::default() }).unwrap();
        assert_eq!(l.total, 2);
        // Alone, ann's session would get "0000a1b2"; beside bob's it needs one more character.
        assert_eq!(l.rows.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), vec!["00000a1b2"]);
        assert_eq!(listing(&d.path().join("none"), &Filter::default()).unwrap(), Listing::default());
    }

    #[test]
    fn since_and_until_take_rfc3339_or_a_duration_ago() {
        assert_eq!(parse_time("--since", "1970-01-02T00:00:00Z", 0).unwrap(), 86400);
        assert_eq!(parse_time("--since", "2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(parse_time("--since", "7d", 1_000_000).unwrap(), 1_000_000 - 7 * 86400);
        let e = parse_time("--until", "yesterday-ish", 0).unwrap_err().to_string();
        assert!(e.contains("--until `yesterday-ish`"), "{e}");
    }

    #[test]
    fn json_has_full_ids_rfc3339_and_numbers() {
        let s = SessionInfo {
            id: "0193b7e2-aaaa-7000-8000-00000000a1b2".into(),
            started_at: Some(86400),
            command: "ls".into(),
            duration_secs: 2.5,
            size_bytes: 300,
            exit_code: Some(3),
            user: Some("ann".into()),
            host: None,
            cwd: None,
            path: "/r/x.cast".into(),
        };
        let v = s.to_json();
        assert_eq!(v["id"], "0193b7e2-aaaa-7000-8000-00000000a1b2");
        assert_eq!(v["started_at"], "1970-01-02T00:00:00Z");
        assert_eq!((v["exit_code"].as_i64(), v["size_bytes"].as_u64()), (Some(3), Some(300)));
        assert_eq!(v["duration_secs"].as_f64(), Some(2.5));
    }

    #[test]
    fn printable_escapes_controls_and_cuts() {
        assert_eq!(printable("a\x1b]0;x\x07b", 80), "a\\u{1b}]0;x\\u{7}b");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
