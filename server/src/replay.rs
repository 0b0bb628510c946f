//! A virtual terminal driven by asciicast v2 lines, as the keyframe builder, windows and `/screen` all run it:
//! one parser of event lines, one rule for times (never backwards), one size clamp, and the round trip of a
//! screen through a keyframe (avt dump, gzip) and back.

use std::io::{Read as _, Write as _};

use crate::error::{ApiError, ApiResult};
use crate::store::Keyframe;

/// The terminal is at most this big, whatever the recording says (a hostile header or resize must not make
/// the server allocate a 10000x10000 screen); the same bounds as live follow.
pub const MAX_COLS: usize = 1000;
pub const MAX_ROWS: usize = 500;

/// One event line: `[time, code, data]`. Lines of any other shape (garbage, a header) are `None` and are
/// skipped by every reader alike, so a window never shows what the server's own rendering did not apply.
pub fn parse_event(line: &[u8]) -> Option<(f64, String, String)> {
    serde_json::from_slice::<(f64, String, String)>(line).ok()
}

/// `"COLSxROWS"` of a resize event, clamped.
fn parse_size(data: &str) -> Option<(usize, usize)> {
    let (c, r) = data.split_once('x')?;
    let cols = c.trim().parse::<usize>().ok()?.clamp(1, MAX_COLS);
    let rows = r.trim().parse::<usize>().ok()?.clamp(1, MAX_ROWS);
    Some((cols, rows))
}

pub struct Replay {
    pub vt: avt::Terminal,
    /// Time of the last event applied (never decreasing: an event stamped earlier counts as "now").
    pub time: f64,
}

impl Replay {
    /// The empty terminal the cast's header line describes (80x24 for what is not a header with a size: a
    /// broken recording still gets windows, as it still gets `/cast`).
    pub fn from_header(line: &[u8]) -> Replay {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        let dim = |k: &str, default: usize, max: usize| {
            v.get(k).and_then(|n| n.as_u64()).map_or(default, |n| (n as usize).clamp(1, max))
        };
        let (cols, rows) = (dim("width", 80, MAX_COLS), dim("height", 24, MAX_ROWS));
        let vt = avt::Terminal::new(cols, rows).expect("clamped to at least 1x1");
        Replay { vt, time: 0.0 }
    }

    /// The terminal as it was at a keyframe.
    pub fn from_keyframe(kf: &Keyframe) -> ApiResult<Replay> {
        let cols = (kf.cols as usize).clamp(1, MAX_COLS);
        let rows = (kf.rows as usize).clamp(1, MAX_ROWS);
        let mut vt = avt::Terminal::new(cols, rows).map_err(|e| ApiError::unavailable(e.to_string()))?;
        vt.feed(screen_text(kf)?.as_str());
        Ok(Replay { vt, time: kf.t })
    }

    /// The time this event counts at: its own, or the last one's when it goes backwards.
    pub fn time_of(&self, t: f64) -> f64 {
        t.max(self.time)
    }

    /// Applies one event: output to the terminal, a resize to its size; input and markers change nothing.
    pub fn apply(&mut self, t: f64, code: &str, data: &str) {
        self.time = self.time_of(t);
        match code {
            "o" => self.vt.feed(data),
            "r" => {
                if let Some((cols, rows)) = parse_size(data) {
                    self.vt.resize(cols, rows);
                }
            }
            _ => {}
        }
    }

    /// The current screen as a keyframe at cast offset `offset`.
    pub fn keyframe(&self, idx: i64, offset: u64) -> Keyframe {
        let (cols, rows) = self.vt.size();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(self.vt.dump().as_bytes());
        let screen = gz.finish().unwrap_or_default();
        Keyframe { idx, t: self.time, offset, cols: cols as u32, rows: rows as u32, screen }
    }

    /// The visible lines as text, trailing blanks trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.vt.screen().visible_lines().map(|l| l.text().trim_end().to_string()).collect()
    }
}

/// The keyframe's screen as escape sequences that paint it on a terminal of its size.
pub fn screen_text(kf: &Keyframe) -> ApiResult<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(&kf.screen[..])
        .take(64 << 20)
        .read_to_string(&mut s)
        .map_err(|e| ApiError::unavailable(format!("keyframe {} does not decode: {e}", kf.idx)))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Replay) -> (Vec<String>, avt::Cursor) {
        (r.lines(), r.vt.cursor())
    }

    /// A terminal restored from a keyframe goes on exactly as the one it was taken from, whatever state the
    /// keyframe caught: the alternate screen over a filled main one, a hidden cursor, an escape sequence cut
    /// in half, a resize.
    #[test]
    fn a_keyframe_restores_the_terminal_it_was_taken_from() {
        let states: &[&[(&str, &str)]] = &[
            &[("o", "one\r\ntwo\r\n\x1b[?1049h\x1b[2J\x1b[Hfull screen")],
            &[("o", "\x1b[?25lhidden"), ("o", "\x1b[3")],
            &[("o", "wide line of text"), ("r", "40x10"), ("o", "\x1b[31mred")],
        ];
        let after: &[(&str, &str)] =
            &[("o", "1mgreen?\r\n"), ("o", "\x1b[?1049lback\r\n\x1b[?25h"), ("r", "30x12")];
        for events in states {
            let mut a = Replay::from_header(br#"{"version":2,"width":60,"height":8}"#);
            for (i, (code, data)) in events.iter().enumerate() {
                a.apply(i as f64, code, data);
            }
            let kf = a.keyframe(3, 100);
            assert_eq!((kf.idx, kf.offset, kf.t), (3, 100, events.len() as f64 - 1.0));
            let mut b = Replay::from_keyframe(&kf).unwrap();
            assert_eq!(text(&a), text(&b), "{events:?}");
            for (code, data) in after {
                a.apply(9.0, code, data);
                b.apply(9.0, code, data);
                assert_eq!(text(&a), text(&b), "{events:?} then {data:?}");
            }
        }
    }

    #[test]
    fn event_lines_sizes_and_times() {
        assert_eq!(parse_event(br#"[1.5,"o","hi"]"#), Some((1.5, "o".into(), "hi".into())));
        for bad in
            [&b"{\"version\":2}"[..], b"[1,\"o\"]", b"[\"1\",\"o\",\"x\"]", b"[1,\"o\",{}]", b"garbage"]
        {
            assert_eq!(parse_event(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_size("100x30"), Some((100, 30)));
        assert_eq!(parse_size("99999x0"), Some((MAX_COLS, 1)));
        assert_eq!(parse_size("wide"), None);
        let r = Replay::from_header(br#"{"width":100000,"height":-1}"#);
        assert_eq!(r.vt.size(), (MAX_COLS, 24));
        let mut r = Replay::from_header(b"not a header");
        assert_eq!(r.vt.size(), (80, 24));
        r.apply(5.0, "o", "a");
        r.apply(2.0, "o", "b");
        assert_eq!(r.time, 5.0, "times never go backwards");
    }
}
