//! Turns a byte stream into text without splitting a character across two events (asciicast data is UTF-8).

/// Holds the incomplete character at the end of one push until the next; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    tail: Vec<u8>,
}

impl Utf8Carry {
    /// Appends the text decodable so far to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut String) {
        if self.tail.is_empty() {
            let keep = incomplete_suffix(data);
            decode_lossy(&data[..data.len() - keep], out);
            self.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            let mut buf = std::mem::take(&mut self.tail);
            buf.extend_from_slice(data);
            let keep = incomplete_suffix(&buf);
            decode_lossy(&buf[..buf.len() - keep], out);
            self.tail = buf[buf.len() - keep..].to_vec();
        }
    }

    /// [`Utf8Carry::push`] without a copy in the common case: the text decodable so far, borrowed from `data`
    /// when it is valid UTF-8 and nothing was carried over, else built in `spill`. `end`: also decode what is
    /// carried (end of stream).
    pub fn decode<'a>(&mut self, data: &'a [u8], spill: &'a mut String, end: bool) -> &'a str {
        if self.tail.is_empty() && !end {
            let keep = incomplete_suffix(data);
            let body = &data[..data.len() - keep];
            if let Ok(s) = std::str::from_utf8(body) {
                self.tail.extend_from_slice(&data[body.len()..]);
                return s;
            }
        }
        spill.clear();
        self.push(data, spill);
        if end {
            self.finish(spill);
        }
        spill
    }

    /// End of stream: a dangling partial character becomes U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        let tail = std::mem::take(&mut self.tail);
        decode_lossy(&tail, out);
    }
}

/// Length of a trailing, possibly valid but unfinished UTF-8 sequence (0..=3 bytes).
fn incomplete_suffix(data: &[u8]) -> usize {
    let n = data.len();
    for back in 1..=3.min(n) {
        let b = data[n - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: look further back for the lead
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

fn decode_lossy(bytes: &[u8], out: &mut String) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined() {
        let text = "héllo → 🎉 done";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut c = Utf8Carry::default();
            let mut out = String::new();
            c.push(&bytes[..cut], &mut out);
            c.push(&bytes[cut..], &mut out);
            c.finish(&mut out);
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn decode_borrows_when_it_can_and_agrees_with_push() {
        let text = "héllo → 🎉 done\r\n";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut c = Utf8Carry::default();
            let (mut s1, mut s2) = (String::new(), String::new());
            let mut out = c.decode(&bytes[..cut], &mut s1, false).to_string();
            out.push_str(c.decode(&bytes[cut..], &mut s2, true));
            assert_eq!(out, text, "cut at {cut}");
        }
        let mut c = Utf8Carry::default();
        let mut spill = String::new();
        let data = b"plain\r\n";
        let s = c.decode(data, &mut spill, false);
        assert_eq!(s.as_ptr(), data.as_ptr(), "valid text is not copied");
        let mut spill = String::new();
        assert_eq!(c.decode(b"a\xffb", &mut spill, false), "a\u{fffd}b");
    }

    #[test]
    fn invalid_bytes_become_replacement() {
        let mut c = Utf8Carry::default();
        let mut out = String::new();
        c.push(b"a\xffb\xe2\x82", &mut out);
        assert_eq!(out, "a\u{fffd}b");
        c.finish(&mut out);
        assert_eq!(out, "a\u{fffd}b\u{fffd}");
    }
}
