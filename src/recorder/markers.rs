//! Shell-integration markers: finds and strips ddcoterm's own OSC 133 sequences in the output stream.
//!
//! The generated rc files (see `shell.rs`) print `ESC ] 133 ; C ; ddcoterm ; <cwd> US <command> BEL` when a
//! typed command starts and `ESC ] 133 ; D ; <status> ; ddcoterm BEL` when it ends. Other programs' OSC 133
//! sequences (a terminal's own integration) pass through untouched.

use memchr::memmem;

const PREFIX: &[u8] = b"\x1b]133;";
/// A marker longer than this is not ours: it is passed through instead of being held back.
const MAX_MARKER: usize = 16 * 1024;

/// What a marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// A typed command is about to run.
    CommandStart { cwd: String, command: String },
    /// The last command finished with this status.
    CommandEnd { status: i32 },
}

/// Streaming scanner; holds back at most one unfinished marker between pushes.
#[derive(Debug, Default)]
pub struct MarkerScanner {
    held: Vec<u8>,
}

impl MarkerScanner {
    /// Returns `data` without our markers (plus anything held from before), appending the markers found.
    pub fn scan(&mut self, data: &[u8], markers: &mut Vec<Marker>) -> Vec<u8> {
        let joined;
        let buf: &[u8] = if self.held.is_empty() {
            data
        } else {
            let mut b = std::mem::take(&mut self.held);
            b.extend_from_slice(data);
            joined = b;
            &joined
        };
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        while let Some(i) = memmem::find(&buf[pos..], PREFIX) {
            let start = pos + i;
            out.extend_from_slice(&buf[pos..start]);
            let body = &buf[start + PREFIX.len()..];
            let end = body
                .iter()
                .position(|&b| b == 0x07)
                .map(|e| (e, 1))
                .or_else(|| memmem::find(body, b"\x1b\\").map(|e| (e, 2)));
            match end {
                Some((e, term_len)) => {
                    let seq_end = start + PREFIX.len() + e + term_len;
                    match parse(&body[..e]) {
                        Some(m) => markers.push(m),
                        None => out.extend_from_slice(&buf[start..seq_end]),
                    }
                    pos = seq_end;
                }
                None if buf.len() - start <= MAX_MARKER => {
                    self.held = buf[start..].to_vec();
                    return out;
                }
                None => {
                    out.extend_from_slice(&buf[start..start + PREFIX.len()]);
                    pos = start + PREFIX.len();
                }
            }
        }
        // A prefix of PREFIX at the very end may be the start of a marker.
        let rest = &buf[pos..];
        let keep =
            (1..PREFIX.len()).rev().find(|&k| rest.len() >= k && rest.ends_with(&PREFIX[..k])).unwrap_or(0);
        out.extend_from_slice(&rest[..rest.len() - keep]);
        self.held = rest[rest.len() - keep..].to_vec();
        out
    }

    /// End of stream: whatever was held is plain output.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

fn parse(body: &[u8]) -> Option<Marker> {
    if let Some(rest) = body.strip_prefix(b"C;ddcoterm;") {
        let sep = rest.iter().position(|&b| b == 0x1f)?;
        let cwd = String::from_utf8_lossy(&rest[..sep]).into_owned();
        // The PTY turned newlines of a multi-line command into CR LF.
        let command = String::from_utf8_lossy(&rest[sep + 1..]).replace("\r\n", "\n");
        return Some(Marker::CommandStart { cwd, command });
    }
    let rest = body.strip_prefix(b"D;")?;
    let status = rest.strip_suffix(b";ddcoterm")?;
    let status = std::str::from_utf8(status).ok()?.trim().parse().ok()?;
    Some(Marker::CommandEnd { status })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] =
        b"$ \x1b]133;C;ddcoterm;/tmp\x1fls -l\x07file\r\n\x1b]133;D;2;ddcoterm\x07\x1b]133;A\x07$ ";

    fn scan_split(data: &[u8], cut: usize) -> (Vec<u8>, Vec<Marker>) {
        let mut s = MarkerScanner::default();
        let mut m = Vec::new();
        let mut out = s.scan(&data[..cut], &mut m);
        out.extend(s.scan(&data[cut..], &mut m));
        out.extend(s.finish());
        (out, m)
    }

    #[test]
    fn strips_ours_keeps_foreign_at_every_split() {
        for cut in 0..=STREAM.len() {
            let (out, m) = scan_split(STREAM, cut);
            assert_eq!(out, b"$ file\r\n\x1b]133;A\x07$ ".to_vec(), "cut {cut}");
            assert_eq!(
                m,
                vec![
                    Marker::CommandStart { cwd: "/tmp".into(), command: "ls -l".into() },
                    Marker::CommandEnd { status: 2 }
                ],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn st_terminator_and_unterminated_garbage() {
        let (out, m) = scan_split(b"x\x1b]133;D;0;ddcoterm\x1b\\y", 3);
        assert_eq!(out, b"xy".to_vec());
        assert_eq!(m, vec![Marker::CommandEnd { status: 0 }]);
        let (out, m) = scan_split(b"a\x1b]133;never ends", 4);
        assert_eq!(out, b"a\x1b]133;never ends".to_vec());
        assert!(m.is_empty());
    }
}
