//! Text snapshots of the virtual screen for the `logs` action, rendered by `avt` from the redacted output.
//!
//! Output is fed to the virtual terminal lazily, when a snapshot is taken (idle, clear-screen, resize, end).
//! Between two snapshots at most `tail_cap` bytes are kept: with more, the older part has scrolled far off
//! the screen (and out of the scrollback we read) before anyone could see it, so rendering it would only cost
//! CPU on bulk output.

use crate::model::Snapshot;
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
}

impl Snapshotter {
    /// A `cols` x `rows` screen with a few screens of scrollback (lines that scrolled off since the last
    /// snapshot are still searchable).
    pub fn new(cols: u16, rows: u16, session_id: &str) -> Snapshotter {
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
        let lines: Vec<String> = self.term.screen().text();
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

    /// The real terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16, now_ms: u64, out: &mut Vec<Snapshot>) {
        out.extend(self.snapshot(now_ms));
        self.rows = rows.max(1) as usize;
        self.term.resize(cols.max(1) as usize, self.rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escapes_and_dedups() {
        let mut s = Snapshotter::new(40, 5, "s");
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
        let mut s = Snapshotter::new(20, 3, "s");
        let mut out = Vec::new();
        s.push("before\r\n\x1b[H\x1b[2Jafter", 7, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lines, vec!["before"]);
        assert_eq!(s.snapshot(8).unwrap().lines, vec!["after"]);
    }

    #[test]
    fn bulk_output_keeps_only_a_tail() {
        let mut s = Snapshotter::new(80, 24, "s");
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
