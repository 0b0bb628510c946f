//! Reads asciicast files (v2, ours or asciinema's; v3 too) and writes their output safely at once
//! (`playback.rs` replays it in real time under the viewer's keys).

use super::termfilter::SafeFilter;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::Path;

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    #[error("{path}: {msg}")]
    Bad { path: String, msg: String },
    #[error("{path}:{line}: not an asciicast event: {text}")]
    BadLine { path: String, line: usize, text: String },
}

/// What the header says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u64,
    pub width: u64,
    pub height: u64,
    pub timestamp: Option<u64>,
    pub command: Option<String>,
    pub raw: Value,
}

/// One event with its absolute time (v3 intervals are summed).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub code: String,
    pub data: String,
}

/// Parses the header line.
pub fn parse_header(path: &str, line: &str) -> Result<Header, CastError> {
    let bad = |msg: String| CastError::Bad { path: path.to_string(), msg };
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("header is not JSON ({e})")))?;
    let version = v["version"].as_u64().ok_or_else(|| bad("header has no `version`".into()))?;
    let (width, height) = match version {
        2 => (v["width"].as_u64(), v["height"].as_u64()),
        3 => (v["term"]["cols"].as_u64(), v["term"]["rows"].as_u64()),
        n => return Err(bad(format!("asciicast version {n} is not supported (2 or 3)"))),
    };
    Ok(Header {
        version,
        width: width.unwrap_or(80),
        height: height.unwrap_or(24),
        timestamp: v["timestamp"].as_u64(),
        command: v["command"].as_str().map(str::to_string),
        raw: v,
    })
}

/// Reads a whole file: header and events. A bad *last* line (a recorder killed mid-write) is dropped;
/// a bad line anywhere else is an error naming the line.
pub fn read(path: &Path) -> anyhow::Result<(Header, Vec<Event>)> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let first = lines
        .next()
        .ok_or_else(|| CastError::Bad { path: name.clone(), msg: "empty file".into() })?
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let header = parse_header(&name, &first)?;
    let mut events = Vec::new();
    let mut pending_error: Option<CastError> = None;
    let mut clock = 0.0;
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = pending_error.take() {
            return Err(e.into());
        }
        match super::cast::parse_event(&line) {
            Some((t, code, data)) => {
                let time = if header.version == 3 { clock + t } else { t };
                clock = time;
                events.push(Event { time, code, data });
            }
            None => {
                let text: String = line.chars().take(60).collect();
                pending_error = Some(CastError::BadLine { path: name.clone(), line: i + 2, text });
            }
        }
    }
    Ok((header, events))
}

/// Writes the `o` events to `out` at once, through the [`SafeFilter`] (no terminal query, clipboard or title
/// sequence survives): what `play` does when stdout is not a terminal.
pub fn write_safe(events: &[Event], out: &mut dyn Write) -> std::io::Result<()> {
    let mut filter = SafeFilter::new();
    let mut buf = String::new();
    for ev in events.iter().filter(|e| e.code == "o") {
        filter.push(&ev.data, &mut buf);
        if buf.len() >= 64 * 1024 {
            out.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    buf.push_str(&filter.restore());
    out.write_all(buf.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn truncated_last_line_is_tolerated() {
        let f =
            write("{\"version\": 2, \"width\": 10, \"height\": 5}\n[0.5, \"o\", \"hi\"]\n[1.0, \"o\", \"cut");
        let (h, ev) = read(f.path()).unwrap();
        assert_eq!((h.width, h.height), (10, 5));
        assert_eq!(ev, vec![Event { time: 0.5, code: "o".into(), data: "hi".into() }]);
    }

    #[test]
    fn bad_middle_line_names_the_line() {
        let f = write("{\"version\": 2, \"width\": 10, \"height\": 5}\n[0.5, \"o\", \"hi\"]\ngarbage\n[1, \"o\", \"x\"]\n");
        let e = read(f.path()).unwrap_err().to_string();
        assert!(e.contains(":3: not an asciicast event"), "{e}");
    }

    #[test]
    fn bad_header_is_an_error() {
        let f = write("hello\n");
        assert!(read(f.path()).unwrap_err().to_string().contains("header is not JSON"));
        let f = write("{\"version\": 1}\n");
        assert!(read(f.path()).unwrap_err().to_string().contains("version 1 is not supported"));
    }

    #[test]
    fn v3_intervals_become_times() {
        let f = write("{\"version\": 3, \"term\": {\"cols\": 7, \"rows\": 3}}\n[0.5, \"o\", \"a\"]\n[0.25, \"o\", \"b\"]\n");
        let (h, ev) = read(f.path()).unwrap();
        assert_eq!(h.width, 7);
        assert_eq!(ev[1].time, 0.75);
    }

    #[test]
    fn write_safe_drops_queries_and_keeps_text() {
        let ev = vec![
            Event { time: 1.0, code: "o".into(), data: "a\x1b[6".into() },
            Event { time: 1.5, code: "i".into(), data: "typed".into() },
            Event { time: 2.0, code: "o".into(), data: "nb\x1b]52;c;eA==\x07c".into() },
        ];
        let mut out = Vec::new();
        write_safe(&ev, &mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
