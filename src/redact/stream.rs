//! One byte stream's redaction state: what is held back, and when it becomes safe to emit.
//!
//! The buffer is `context ++ pending`: the last `CONTEXT` emitted bytes are kept (never emitted again) so
//! that a key emitted earlier (`password: `, `Authorization: Bearer `) still gives meaning to a value that
//! arrives later. Pending bytes are emitted up to a cut that no future byte can change: the end of the last
//! complete line, moved back before an unfinished private key block, a line that may continue a hard-wrapped
//! token, or a secret that straddles it. Every hold is bounded, so memory stays flat on endless output.

use std::sync::Arc;

use super::scan::{union, Engine, Found, PEM_MAX};
use super::view::View;

/// Emitted bytes kept as look-behind for the next scan.
const CONTEXT: usize = 512;
/// A line without a newline is held at most this long; beyond it, all but its last `TOKEN_HOLD` bytes go.
pub(crate) const LINE_MAX: usize = 16 * 1024;
/// Tail of an over-long line still held (the longest token we promise to catch inside such a line).
const TOKEN_HOLD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Push,
    Idle,
    Finish,
}

/// Redaction state for one byte stream; feed it with `push`, and `finish` at the end.
#[derive(Debug)]
pub struct StreamRedactor {
    engine: Arc<Engine>,
    enabled: bool,
    buf: Vec<u8>,
    /// `buf[..emitted]` is look-behind context, already emitted.
    emitted: usize,
    /// The pending part holds a line break (so a hold other than "partial line" may be in force).
    pending_break: bool,
    /// The terminal's width in columns, when the stream is a terminal's: lines exactly this wide are joined
    /// with the next one before matching (a program hard-wrapping its output at the terminal width).
    width: Option<usize>,
}

impl StreamRedactor {
    pub(crate) fn new(engine: Arc<Engine>, enabled: bool) -> StreamRedactor {
        StreamRedactor { engine, enabled, buf: Vec::new(), emitted: 0, pending_break: false, width: None }
    }

    /// The terminal this stream is shown on is `cols` wide (at the start and after every resize); see `width`.
    pub fn set_width(&mut self, cols: u16) {
        self.width = (cols > 1).then_some(cols as usize);
    }

    /// Feeds bytes; returns the redacted bytes that are now safe to emit (possibly fewer than fed: the
    /// current partial line and any unfinished secret are held back until more arrives).
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.push_into(data, &mut out);
        out
    }

    /// `push`, appending to `out` (saves a copy when redacting a large buffer).
    pub(crate) fn push_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.enabled {
            out.extend_from_slice(data);
            return;
        }
        self.buf.extend_from_slice(data);
        let breaks = memchr::memchr2(b'\n', b'\r', data).is_some();
        if breaks || self.pending_break || self.held_back() > LINE_MAX {
            self.process(Mode::Push, out);
        }
    }

    /// Output has been idle (the recorder's merge window passed): emits what can be emitted without knowing
    /// what comes next, so that a prompt without a newline is not held until the next output.
    ///
    /// Still held: an unfinished private key block, a line that may continue a hard-wrapped token, and the
    /// trailing run of non-blank bytes when the current line holds an anchor of some kind (`password=hun`,
    /// `Bearer abc`, `ghp_12`) or when user patterns exist (their shape is unknown). A prompt like
    /// `Password: ` or `$ ` ends in a blank and goes out whole; the value typed after it is still matched
    /// later thanks to the look-behind context. The trade-off: a strict prefix of an anchor literal (`gh`,
    /// `AKI`) at the very end may go out, and if the token completes later only its remainder is replaced.
    /// Such a prefix is the public part of the format and carries none of the secret.
    pub fn flush_idle(&mut self) -> Vec<u8> {
        if !self.enabled || self.held_back() == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.process(Mode::Idle, &mut out);
        out
    }

    /// Flushes everything held back (end of stream); an unfinished private key block is redacted whole.
    /// The stream starts afresh afterwards.
    pub fn finish(&mut self) -> Vec<u8> {
        if !self.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.process(Mode::Finish, &mut out);
        self.buf.clear();
        self.emitted = 0;
        self.pending_break = false;
        out
    }

    /// Bytes fed but not emitted yet (bounded: about `PEM_MAX` plus one push at most).
    pub fn held_back(&self) -> usize {
        self.buf.len() - self.emitted
    }

    fn process(&mut self, mode: Mode, out: &mut Vec<u8>) {
        let engine = &*self.engine;
        let view = View::new(&self.buf).joined(self.width);
        let v: &[u8] = &view.bytes;
        let len = v.len();
        let from = view.view_at(self.emitted);
        let scan = engine.scan(v);
        let mut found = scan.found;

        let mut cut = match mode {
            Mode::Finish => len,
            Mode::Push => push_cut(v, from),
            Mode::Idle => idle_cut(engine, v, from),
        };
        if mode != Mode::Finish {
            if let Some(h) = self.width.and_then(|w| full_row_at_end(v, from, cut, w)) {
                cut = h;
            }
            if let Some(i) = memchr::memrchr(b'\n', &v[from..cut]) {
                if let Some(h) = engine.wrap_hold(v, from + i + 1) {
                    cut = cut.min(h.max(from));
                }
            }
        }
        if let Some(b) = scan.open_pem {
            let forced = mode == Mode::Finish || len - b > PEM_MAX;
            if forced && cut > b {
                // END never came within the bound: everything held from BEGIN is the key.
                found.retain(|f| f.start < b);
                let block = Found { start: b, end: cut, prio: 0, name: engine.private_key_name() };
                found = union(vec![block], found);
            } else {
                cut = cut.min(b.max(from));
            }
        }
        for f in found.iter().rev() {
            if f.start < cut && f.end > cut && f.start >= from {
                cut = f.start;
            }
        }

        let raw_cut = view.raw_at(cut);
        out.reserve(raw_cut - self.emitted + 64);
        let mut pos = self.emitted;
        for f in &found {
            let (a, b) = view.raw_span(f.start, f.end);
            if b <= pos || a >= raw_cut || pos >= raw_cut {
                continue;
            }
            out.extend_from_slice(&self.buf[pos..a.max(pos)]);
            out.extend_from_slice(&engine.replacements[f.name]);
            pos = b.min(raw_cut);
        }
        out.extend_from_slice(&self.buf[pos..raw_cut]);
        drop(view);

        let keep = raw_cut.saturating_sub(CONTEXT);
        self.buf.drain(..keep);
        self.emitted = raw_cut - keep;
        self.pending_break = memchr::memchr2(b'\n', b'\r', &self.buf[self.emitted..]).is_some();
    }
}

/// After the last line break (a `\r` only when something follows it, since it may start `\r\n`); a line
/// longer than `LINE_MAX` is cut before its last `TOKEN_HOLD` bytes, at a blank when there is one.
fn push_cut(v: &[u8], from: usize) -> usize {
    let len = v.len();
    let mut end = len;
    let mut cut = from;
    while let Some(i) = memchr::memrchr2(b'\n', b'\r', &v[from..end]) {
        let i = from + i;
        if v[i] == b'\r' && i + 1 == len {
            end = i;
            continue;
        }
        cut = i + 1;
        break;
    }
    if len - cut <= LINE_MAX {
        return cut;
    }
    let target = len - TOKEN_HOLD;
    let floor = target.saturating_sub(1024).max(cut);
    if let Some(i) = v[floor..target].iter().rposition(|b| b.is_ascii_whitespace()) {
        return floor + i + 1;
    }
    let mut c = target;
    while c > cut && (v[c] & 0xc0) == 0x80 {
        c -= 1; // never split a UTF-8 sequence
    }
    c
}

/// When `v[..cut]` ends with a line break that is the last byte seen, after a row exactly `width` columns
/// wide (or several joined ones): where that line starts, since the next byte may continue it (hard wrap).
fn full_row_at_end(v: &[u8], from: usize, cut: usize, width: usize) -> Option<usize> {
    if cut != v.len() || cut <= from || v[cut - 1] != b'\n' {
        return None;
    }
    let mut end = cut - 1;
    if end > 0 && v[end - 1] == b'\r' {
        end -= 1;
    }
    // The whole row counts, also a part an idle flush already let out (it is in the look-behind context).
    let start = memchr::memrchr2(b'\n', b'\r', &v[..end]).map_or(0, |i| i + 1);
    let line = &v[start..end];
    let cols = if line.is_ascii() && memchr::memchr(b'\t', line).is_none() {
        line.len()
    } else {
        line.iter().filter(|&&b| b & 0xc0 != 0x80).count()
    };
    // A chain of joined rows is held like any long line: its last `TOKEN_HOLD` bytes at most.
    (cols > 0 && cols % width == 0).then_some(start.max(end.saturating_sub(TOKEN_HOLD)).max(from))
}

/// Everything, except the trailing non-blank run when it may be the start of a secret (see `flush_idle`).
/// A soft wrap at the very end (`ghp_12 \r`, `ghp_12\r`: the next byte decides) does not end the run.
fn idle_cut(engine: &Engine, v: &[u8], from: usize) -> usize {
    let len = v.len();
    let mut e = len;
    if e > from && v[e - 1] == b'\r' {
        e -= 1;
        if e > from && v[e - 1] == b' ' {
            e -= 1;
        }
        if e <= from || v[e - 1].is_ascii_whitespace() {
            e = len;
        }
    }
    let mut r = e;
    while r > from && !v[r - 1].is_ascii_whitespace() {
        r -= 1;
    }
    if r == e && e == len {
        return len;
    }
    let line_start = memchr::memrchr(b'\n', &v[..r]).map_or(0, |i| i + 1);
    if engine.has_user_patterns() || engine.has_anchor(&v[line_start..len]) {
        r
    } else {
        len
    }
}
