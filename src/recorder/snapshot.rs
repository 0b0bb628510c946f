//! Text snapshots of the virtual screen for the `logs` action, rendered by `avt` from the redacted output
//! and redacted again after rendering.
//!
//! Rendering re-joins what the stream saw apart: a line the terminal wrapped becomes one line again, and the
//! rows of a program's hard wrap sit one under the other. So the rendered lines go through the redactor once
//! more (rows exactly as wide as the screen joined, as in the stream) before any leaves.
//!
//! Output is fed to the virtual terminal lazily, when a snapshot is taken (idle, clear-screen, resize, end).
//! Between two snapshots at most `tail_cap` bytes are kept: with more, the older part has scrolled far off
//! the screen (and out of the scrollback we read) before anyone could see it, so rendering it would only cost
//! CPU on bulk output.

use crate::model::Snapshot;
use crate::redact::Redactor;
use std::collections::HashSet;

const CLEARS: [&str; 3] = ["\x1b[2J", "\x1b[3J", "\x1bc"];

/// Keeps the virtual terminal and the lines already sent.
pub struct Snapshotter {
    term: avt::Terminal,
    rows: usize,
    pending: String,
    tail_cap: usize,
    sent: HashSet<String>,
    session_id: String,
    cols: u16,
    redactor: Redactor,
}

impl Snapshotter {
    /// A `cols` x `rows` screen with a few screens of scrollback (lines that scrolled off since the last
    /// snapshot are still searchable).
    pub fn new(cols: u16, rows: u16, session_id: &str, redactor: Redactor) -> Snapshotter {
        let width = cols.max(1);
        let (cols, rows) = (cols.max(1) as usize, rows.max(1) as usize);
        let term = avt::Terminal::with_scrollback(cols, rows, Some(rows * 4))
            .unwrap_or_else(|_| avt::Terminal::with_scrollback(80, 24, Some(96)).expect("80x24 is valid"));
        Snapshotter {
            term,
            rows,
            pending: String::new(),
            tail_cap: 128 * 1024,
            sent: HashSet::new(),
            session_id: session_id.to_string(),
            cols: width,
            redactor,
        }
    }

    /// Adds redacted output. A clear-screen in it first snapshots what was on screen before it.
    pub fn push(&mut self, text: &str, now_ms: u64, out: &mut Vec<Snapshot>) {
        let mut rest = text;
        // Bulk text rarely holds an ESC at all: one memchr pass decides whether to look for clears.
        while memchr::memchr(0x1b, rest.as_bytes()).is_some() {
            let Some(at) =
                CLEARS.iter().filter_map(|c| memchr::memmem::find(rest.as_bytes(), c.as_bytes())).min()
            else {
                break;
            };
            self.append(&rest[..at]);
            out.extend(self.snapshot(now_ms));
            self.append(&rest[at..at + 1]);
            rest = &rest[at + 1..];
        }
        self.append(rest);
    }

    fn append(&mut self, text: &str) {
        if text.len() >= self.tail_cap {
            // Only the tail can matter: do not copy the rest.
            self.pending.clear();
            let mut cut = text.len() - self.tail_cap;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            self.reserve();
            self.pending.push_str(&text[cut..]);
            return;
        }
        if self.pending.len() + text.len() > self.tail_cap * 2 {
            // Keep `tail_cap` bytes in all, starting at a line boundary when there is one, so that the first
            // rendered line is whole; `pending` never outgrows its first allocation.
            let mut cut = (self.pending.len() + text.len() - self.tail_cap).min(self.pending.len());
            while !self.pending.is_char_boundary(cut) {
                cut += 1;
            }
            if let Some(nl) = self.pending[cut..].find('\n') {
                cut += nl + 1;
            }
            self.pending.drain(..cut);
        }
        self.reserve();
        self.pending.push_str(text);
    }

    fn reserve(&mut self) {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(self.tail_cap * 2);
        }
    }

    /// True when output arrived since the last snapshot.
    pub fn dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Renders pending output and returns the screen lines not sent before (none: no snapshot).
    pub fn snapshot(&mut self, now_ms: u64) -> Option<Snapshot> {
        if !self.pending.is_empty() {
            self.term.feed(self.pending.as_str());
            self.pending.clear();
        }
        let lines = self.redact(self.term.screen().text());
        let current: HashSet<String> = lines.iter().filter(|l| !l.trim().is_empty()).cloned().collect();
        let mut seen = HashSet::new();
        let new: Vec<String> = lines
            .into_iter()
            .filter(|l| !l.trim().is_empty() && !self.sent.contains(l) && seen.insert(l.clone()))
            .collect();
        self.sent = current;
        if new.is_empty() {
            return None;
        }
        Some(Snapshot { session_id: self.session_id.clone(), timestamp_ms: now_ms, lines: new })
    }

    /// The rendered lines, redacted as one text (a secret split over rows is matched whole).
    fn redact(&self, lines: Vec<String>) -> Vec<String> {
        if !self.redactor.enabled() {
            return lines;
        }
        let mut s = self.redactor.stream();
        s.set_width(self.cols);
        let text = lines.join("\n");
        let mut out = s.push(text.as_bytes());
        out.extend(s.finish());
        String::from_utf8_lossy(&out).split('\n').map(str::to_string).collect()
    }

    /// The real terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16, now_ms: u64, out: &mut Vec<Snapshot>) {
        out.extend(self.snapshot(now_ms));
        self.rows = rows.max(1) as usize;
        self.cols = cols.max(1);
        self.term.resize(cols.max(1) as usize, self.rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::RedactionSettings;

    fn redactor() -> Redactor {
        Redactor::from_settings(&RedactionSettings::default()).unwrap()
    }

    /// The stream saw `DB_PASSWO \rRD=` only if its wrap joining failed; rendering joins the line on screen, so
    /// the snapshot is redacted again whatever the stream did.
    #[test]
    fn a_secret_rendering_rejoins_is_redacted_again() {
        let mut s = Snapshotter::new(20, 5, "s", redactor());
        let mut out = Vec::new();
        // 20 columns: the terminal wraps this line itself; the row break is not in the bytes.
        s.push("$ export DB_PASSWORD=hunter2hunter2\r\n", 1, &mut out);
        let lines = s.snapshot(2).unwrap().lines;
        assert!(lines.iter().all(|l| !l.contains("hunter2")), "{lines:?}");
        // A program hard-wrapping a token at the screen width: two rows, joined before matching.
        let mut s = Snapshotter::new(20, 5, "s", redactor());
        s.push("ghp_16C7e42F292c6912\r\nE7710c838347Ae178B4a\r\n", 1, &mut out);
        let lines = s.snapshot(2).unwrap().lines;
        assert!(lines.iter().all(|l| !l.contains("E7710c838347")), "{lines:?}");
    }

    #[test]
    fn renders_escapes_and_dedups() {
        let mut s = Snapshotter::new(40, 5, "s", redactor());
        let mut out = Vec::new();
        s.push("\x1b[31mred\x1b[0m text\r\nline two\r\n", 1, &mut out);
        assert!(out.is_empty());
        let snap = s.snapshot(2).unwrap();
        assert_eq!(snap.lines, vec!["red text", "line two"]);
        assert_eq!(snap.timestamp_ms, 2);
        assert!(s.snapshot(3).is_none(), "nothing new, no snapshot");
        s.push("line three\r\n", 4, &mut out);
        assert_eq!(s.snapshot(5).unwrap().lines, vec!["line three"]);
    }

    #[test]
    fn clear_screen_snapshots_what_was_there() {
        let mut s = Snapshotter::new(20, 3, "s", redactor());
        let mut out = Vec::new();
        s.push("before\r\n\x1b[H\x1b[2Jafter", 7, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lines, vec!["before"]);
        assert_eq!(s.snapshot(8).unwrap().lines, vec!["after"]);
    }

    #[test]
    fn bulk_output_keeps_only_a_tail() {
        let mut s = Snapshotter::new(80, 24, "s", redactor());
        let mut out = Vec::new();
        for i in 0..200_000 {
            s.push(&format!("log line {i}\r\n"), 1, &mut out);
        }
        assert!(s.pending.len() <= 2 * 128 * 1024);
        assert_eq!(s.pending.capacity(), 2 * 128 * 1024, "one allocation, never grown");
        let snap = s.snapshot(2).unwrap();
        assert_eq!(snap.lines.last().unwrap(), "log line 199999");
    }
}
