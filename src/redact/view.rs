//! The text a secret is matched on: the raw bytes with terminal escape sequences and line wraps taken out,
//! mapped back.
//!
//! `AKIA\x1b[0mIOSFODNN7EXAMPLE` is one key on screen; matching on this view and redacting the original
//! span (escapes inside it included) catches it. CSI, two-byte and charset escapes, DCS/SOS/PM/APC strings
//! are removed; an OSC string (titles, hyperlinks, shell-integration marks) keeps its payload, framed by
//! spaces, because a hyperlink target can itself hold credentials.
//!
//! Wraps are joined the same way (`View::joined`): a line editor's soft wrap at the right margin (readline
//! writes ` \r` there, other editors a bare `\r`; the cursor moves around it are escapes, already gone) and a
//! program's hard wrap at the terminal width (a line exactly as wide as the terminal, then `\r\n` or `\n`).
//! `DB_PASSWO \rRD=x` is matched as `DB_PASSWORD=x`. See docs/redact.md.

use std::borrow::Cow;

const ESC: u8 = 0x1b;
/// Longest escape sequence recognised; beyond it the ESC is treated as a plain byte.
const MAX_SEQ: usize = 4096;

/// The escape-free text of a buffer and where each of its bytes came from.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// `map[i]` is the offset in the raw buffer of view byte `i`; `None` means the identity.
    map: Option<Vec<u32>>,
    raw_len: usize,
}

impl<'a> View<'a> {
    /// Borrows the buffer unchanged when it holds no ESC (the common, fast case).
    pub(crate) fn new(raw: &'a [u8]) -> View<'a> {
        let Some(first) = memchr::memchr(ESC, raw) else {
            return View { bytes: Cow::Borrowed(raw), map: None, raw_len: raw.len() };
        };
        let mut bytes = Vec::with_capacity(raw.len());
        let mut map: Vec<u32> = Vec::with_capacity(raw.len());
        let copy = |bytes: &mut Vec<u8>, map: &mut Vec<u32>, from: usize, to: usize| {
            bytes.extend_from_slice(&raw[from..to]);
            map.extend((from as u32)..(to as u32));
        };
        copy(&mut bytes, &mut map, 0, first);
        let mut i = first;
        while i < raw.len() {
            match sequence(raw, i) {
                Seq::Drop(end) => i = end,
                Seq::Osc { payload, end } => {
                    bytes.push(b' ');
                    map.push(i as u32);
                    copy(&mut bytes, &mut map, payload.0, payload.1);
                    bytes.push(b' ');
                    map.push(payload.1 as u32);
                    i = end;
                }
                Seq::Plain => {
                    bytes.push(ESC);
                    map.push(i as u32);
                    i += 1;
                }
            }
            let next = memchr::memchr(ESC, &raw[i..]).map_or(raw.len(), |k| i + k);
            copy(&mut bytes, &mut map, i, next);
            i = next;
        }
        View { bytes: Cow::Owned(bytes), map: Some(map), raw_len: raw.len() }
    }

    /// This view with soft and hard wraps taken out (see the module doc). `width` is the terminal's: without
    /// it only soft wraps are joined. Returns `self` unchanged (and unallocated) when nothing is joined.
    pub(crate) fn joined(self, width: Option<usize>) -> View<'a> {
        let drops = wrap_drops(&self.bytes, width);
        if drops.is_empty() {
            return self;
        }
        let v: &[u8] = &self.bytes;
        let kept = v.len() - drops.iter().map(|(a, b)| b - a).sum::<usize>();
        let mut bytes = Vec::with_capacity(kept);
        let mut map: Vec<u32> = Vec::with_capacity(kept);
        let mut at = 0;
        for &(a, b) in drops.iter().chain(std::iter::once(&(v.len(), v.len()))) {
            bytes.extend_from_slice(&v[at..a]);
            match &self.map {
                None => map.extend((at as u32)..(a as u32)),
                Some(m) => map.extend_from_slice(&m[at..a]),
            }
            at = b;
        }
        View { bytes: Cow::Owned(bytes), map: Some(map), raw_len: self.raw_len }
    }

    /// Raw offset where view byte `v` starts (escapes just before it belong to the earlier part).
    pub(crate) fn raw_at(&self, v: usize) -> usize {
        match &self.map {
            None => v,
            Some(m) => m.get(v).map_or(self.raw_len, |&o| o as usize),
        }
    }

    /// Raw span of view span `[a, b)`: from the first byte to just after the last, escapes inside included.
    pub(crate) fn raw_span(&self, a: usize, b: usize) -> (usize, usize) {
        match &self.map {
            None => (a, b),
            Some(m) if b > a => (m[a] as usize, m[b - 1] as usize + 1),
            Some(_) => (self.raw_at(a), self.raw_at(a)),
        }
    }

    /// First view byte at or after raw offset `r`.
    pub(crate) fn view_at(&self, r: usize) -> usize {
        match &self.map {
            None => r,
            Some(m) => m.partition_point(|&o| (o as usize) < r),
        }
    }
}

/// Bytes a secret token is made of (base64, base64url, hex, and the separators tokens use).
fn is_tok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=')
}

/// The byte ranges of `v` (escape-free text) that are wraps, sorted and disjoint.
///
/// Soft wrap: a `\r` not followed by `\n` (and not the last byte: what follows decides) is dropped when it
/// follows a space that follows some text (readline's ` \r`, whatever character reached the margin: a space
/// typed after `password:` too), with that space; and when it follows a token byte (editors that write a bare
/// `\r`). A `\r` after anything else (`45%\r`, a prompt redrawn) still separates, so such progress bars stay
/// lines of their own.
/// Hard wrap (only with a known `width`): a `\n` or `\r\n` that is not the last byte, ending a line exactly
/// `width` columns wide. A line of exactly that width that really ended there is joined too: matching may
/// then take a few bytes of the next line into a secret (more redacted, never less).
fn wrap_drops(v: &[u8], width: Option<usize>) -> Vec<(usize, usize)> {
    let mut drops = Vec::new();
    for i in memchr::memchr_iter(b'\r', v) {
        if i == 0 || i + 1 >= v.len() || v[i + 1] == b'\n' {
            continue;
        }
        let p = v[i - 1];
        if p == b' ' && i >= 2 && !matches!(v[i - 2], b'\n' | b'\r') {
            drops.push((i - 1, i + 1));
        } else if is_tok(p) {
            drops.push((i, i + 1));
        }
    }
    let Some(w) = width.filter(|&w| w > 1) else { return drops };
    let soft = drops.len();
    let mut line_start = 0;
    for i in memchr::memchr_iter(b'\n', v) {
        let start = line_start;
        line_start = i + 1;
        if i + 1 >= v.len() {
            break;
        }
        let end = if i > start && v[i - 1] == b'\r' { i - 1 } else { i };
        if columns(&v[start..end], &drops[..soft], start) == w {
            drops.push((end, i + 1));
        }
    }
    if soft > 0 && drops.len() > soft {
        drops.sort_unstable();
    }
    drops
}

/// Display columns of one line of escape-free text: tabs advance to the next multiple of 8, a kept `\r`
/// returns to column 0, UTF-8 continuation bytes take no column (a wide character counts one: such a line
/// is not taken for a wrapped one). `soft` (sorted drops, offsets from `base`) take no column. A plain ASCII
/// line is its length; otherwise one pass over the line and its drops.
fn columns(line: &[u8], soft: &[(usize, usize)], base: usize) -> usize {
    let first = soft.partition_point(|&(_, b)| b <= base);
    let soft = &soft[first..soft.partition_point(|&(a, _)| a < base + line.len())];
    let special = memchr::memchr2(b'\t', b'\r', line).is_some() || !line.is_ascii();
    if !special && soft.is_empty() {
        return line.len();
    }
    let mut drops = soft.iter().map(|&(a, b)| (a.saturating_sub(base), b - base)).peekable();
    let mut col = 0;
    let mut i = 0;
    while i < line.len() {
        if let Some(&(a, b)) = drops.peek() {
            if i >= a {
                i = i.max(b);
                drops.next();
                continue;
            }
        }
        match line[i] {
            b'\t' => col = (col / 8 + 1) * 8,
            b'\r' => col = 0,
            c if c & 0xc0 == 0x80 => {}
            _ => col += 1,
        }
        i += 1;
    }
    col
}

enum Seq {
    /// Remove raw bytes up to (excluding) this offset.
    Drop(usize),
    /// Keep the payload (raw span), remove the framing; continue at `end`.
    Osc { payload: (usize, usize), end: usize },
    /// Not a sequence we recognise: keep the ESC as text.
    Plain,
}

/// Classifies the escape sequence starting at `raw[i] == ESC`. A sequence cut by the end of the buffer is
/// dropped (the stream holds back the partial line it is on, so it is parsed whole next time).
fn sequence(raw: &[u8], i: usize) -> Seq {
    let n = raw.len();
    let Some(&kind) = raw.get(i + 1) else { return Seq::Drop(n) };
    let limit = n.min(i + MAX_SEQ);
    match kind {
        b'[' => {
            let mut j = i + 2;
            while j < limit && (0x20..=0x3f).contains(&raw[j]) {
                j += 1;
            }
            if j < limit && (0x40..=0x7e).contains(&raw[j]) {
                Seq::Drop(j + 1)
            } else if j == n {
                Seq::Drop(n)
            } else {
                Seq::Drop(j)
            }
        }
        b']' | b'P' | b'X' | b'^' | b'_' => {
            let start = i + 2;
            let mut j = start;
            while j < limit {
                match raw[j] {
                    0x07 => return string_end(kind, start, j, j + 1),
                    ESC if raw.get(j + 1) == Some(&b'\\') => return string_end(kind, start, j, j + 2),
                    ESC if j + 1 == n => return Seq::Drop(n),
                    _ => j += 1,
                }
            }
            if limit == n {
                Seq::Drop(n)
            } else {
                Seq::Plain
            }
        }
        0x20..=0x2f => {
            let mut j = i + 1;
            while j < limit && (0x20..=0x2f).contains(&raw[j]) {
                j += 1;
            }
            if j < n {
                Seq::Drop((j + 1).min(n))
            } else {
                Seq::Drop(n)
            }
        }
        0x30..=0x7e => Seq::Drop(i + 2),
        _ => Seq::Plain,
    }
}

fn string_end(kind: u8, start: usize, term: usize, end: usize) -> Seq {
    if kind == b']' {
        Seq::Osc { payload: (start, term), end }
    } else {
        Seq::Drop(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        let v = View::new(b"hello");
        assert!(matches!(v.bytes, Cow::Borrowed(_)));
        assert_eq!(v.raw_span(1, 3), (1, 3));
    }

    #[test]
    fn csi_is_removed_and_mapped_back() {
        let raw = b"AK\x1b[0;31mIA!";
        let v = View::new(raw);
        assert_eq!(&v.bytes[..], b"AKIA!");
        assert_eq!(v.raw_span(0, 4), (0, 11));
        assert_eq!(v.raw_at(2), 9);
        assert_eq!(v.view_at(3), 2);
    }

    #[test]
    fn osc_keeps_payload_between_spaces() {
        let v = View::new(b"a\x1b]8;;https://u:p@h\x07b");
        assert_eq!(&v.bytes[..], b"a 8;;https://u:p@h b");
    }

    fn joined(raw: &[u8], width: Option<usize>) -> (Vec<u8>, Vec<usize>) {
        let v = View::new(raw).joined(width);
        let map = (0..v.bytes.len()).map(|i| v.raw_at(i)).collect();
        (v.bytes.to_vec(), map)
    }

    #[test]
    fn readline_soft_wrap_is_joined() {
        assert_eq!(joined(b"$ export DB_PASSWO \rRD=x\r\n", None).0, b"$ export DB_PASSWORD=x\r\n");
        assert_eq!(joined(b"DB_PASSWO\rRD=x", None).0, b"DB_PASSWORD=x");
        assert_eq!(joined(b"password:  \rhunter2", None).0, b"password: hunter2");
        let (text, map) = joined(b"ab\x1b[0m \rcd", None);
        assert_eq!(text, b"abcd");
        assert_eq!(map, vec![0, 1, 8, 9]);
    }

    #[test]
    fn progress_bars_and_a_final_cr_stay_apart() {
        assert_eq!(joined(b"45%\r50%\r", Some(80)).0, b"45%\r50%\r");
        assert_eq!(joined(b"\n \rab", None).0, b"\n \rab", "a blank line is no wrap");
        assert_eq!(joined(b"abc\r", None).0, b"abc\r");
        assert_eq!(joined(b"abc\r\n", None).0, b"abc\r\n");
    }

    #[test]
    fn hard_wrap_at_the_terminal_width_is_joined() {
        let raw = b"0123456789\r\nabcdef\nxyz\n";
        assert_eq!(joined(raw, Some(10)).0, b"0123456789abcdef\nxyz\n");
        assert_eq!(joined(raw, Some(11)).0, raw.to_vec(), "a narrower line is not a wrap");
        assert_eq!(joined(raw, None).0, raw.to_vec(), "no width: no hard-wrap join");
        assert_eq!(joined(b"0123456789\r\n", Some(10)).0, b"0123456789\r\n", "what follows decides");
        let coloured = b"\x1b[1m01234\x1b[0m56789\r\nab";
        assert_eq!(joined(coloured, Some(10)).0, b"0123456789ab", "escapes take no column");
    }

    #[test]
    fn cut_sequence_at_end_is_dropped() {
        assert_eq!(&View::new(b"ab\x1b[3").bytes[..], b"ab");
        assert_eq!(&View::new(b"ab\x1b").bytes[..], b"ab");
    }
}
