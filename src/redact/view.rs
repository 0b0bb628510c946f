//! The text a secret is matched on: the raw bytes with terminal escape sequences taken out, mapped back.
//!
//! `AKIA\x1b[0mIOSFODNN7EXAMPLE` is one key on screen; matching on this view and redacting the original
//! span (escapes inside it included) catches it. CSI, two-byte and charset escapes, DCS/SOS/PM/APC strings
//! are removed; an OSC string (titles, hyperlinks, shell-integration marks) keeps its payload, framed by
//! spaces, because a hyperlink target can itself hold credentials.

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

    #[test]
    fn cut_sequence_at_end_is_dropped() {
        assert_eq!(&View::new(b"ab\x1b[3").bytes[..], b"ab");
        assert_eq!(&View::new(b"ab\x1b").bytes[..], b"ab");
    }
}
