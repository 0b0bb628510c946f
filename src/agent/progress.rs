//! A session's progress on the agent's disk (`sessions/<id>.at`): how many chunks are stored, where the last
//! one starts and ends in the cast and the hash-chain link it carries, so that an agent restarted after a
//! crash can close the sessions it held with chunks the session server accepts (DESIGN.md §12).
//!
//! One fixed-size line rewritten in place (`pwrite` at offset 0, then fdatasync) after each chunk reaches the
//! cast and before it is spooled: recovery cuts the cast back to `len` (lines past it were never
//! acknowledged) and spools the chunk `[prev_len, len)` again with the same seq and the same `prev_sha256`,
//! which the server takes as a repeat (same seq, same bytes) when it was already sent. Chunk 0 is the cast's
//! header line, so a stored session always has one chunk: `next_seq >= 1`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes of the record on disk: three u64 (20 digits each), the state word and a SHA-256 hex, with room.
const WIDTH: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The seq the next chunk carries (= chunks stored, the header included).
    pub next_seq: u64,
    /// Where the last stored chunk starts in the cast (0 when it is the header).
    pub prev_len: u64,
    /// The cast's length with every stored chunk.
    pub len: u64,
    /// The session's end is spooled: nothing to recover.
    pub ended: bool,
    /// The `prev_sha256` the last stored chunk was spooled with (lowercase hex): its repeat must carry it too.
    pub prev_sha256: String,
}

impl Progress {
    fn encode(&self) -> [u8; WIDTH] {
        let text = format!(
            "{} {} {} {} {}",
            self.next_seq,
            self.prev_len,
            self.len,
            if self.ended { "ended" } else { "open" },
            self.prev_sha256
        );
        let mut out = [b' '; WIDTH];
        out[..text.len()].copy_from_slice(text.as_bytes());
        out[WIDTH - 1] = b'\n';
        out
    }

    fn parse(b: &[u8]) -> Option<Progress> {
        let text = std::str::from_utf8(b).ok()?;
        let mut w = text.split_whitespace();
        let next_seq = w.next()?.parse().ok()?;
        let prev_len = w.next()?.parse().ok()?;
        let len = w.next()?.parse().ok()?;
        let ended = match w.next()? {
            "ended" => true,
            "open" => false,
            _ => return None,
        };
        let prev_sha256 = w.next()?.to_string();
        let hex = prev_sha256.len() == 64
            && prev_sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (prev_len <= len && next_seq >= 1 && hex && w.next().is_none()).then_some(Progress {
            next_seq,
            prev_len,
            len,
            ended,
            prev_sha256,
        })
    }
}

/// Rewrites the record and waits until it is on disk.
pub fn write(f: &File, p: &Progress) -> std::io::Result<()> {
    f.write_all_at(&p.encode(), 0)?;
    f.sync_data()
}

/// The record at `path`; an unreadable one is an error naming the file.
pub fn read(path: &Path) -> std::io::Result<Progress> {
    let b = std::fs::read(path)?;
    Progress::parse(&b).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: not a progress record (`<next_seq> <prev_len> <len> open|ended <prev_sha256>`; one without the hash was written by an agent older than the session server upload)",
                path.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_rewritten_in_place_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.at");
        let f = File::create(&path).unwrap();
        let hash = "ab".repeat(32);
        let big = Progress {
            next_seq: u64::MAX,
            prev_len: u64::MAX - 1,
            len: u64::MAX,
            ended: false,
            prev_sha256: hash.clone(),
        };
        write(&f, &big).unwrap();
        let small = Progress { next_seq: 1, prev_len: 10, len: 20, ended: true, prev_sha256: "0".repeat(64) };
        write(&f, &small).unwrap();
        assert_eq!(read(&path).unwrap(), small, "a shorter record leaves nothing of the longer one");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), WIDTH as u64);
        for bad in [
            format!("1 20 10 open {hash}"),
            format!("0 0 10 open {hash}"),
            "1 0 10 open".to_string(),
            format!("1 0 10 open {}", "AB".repeat(32)),
            format!("1 0 10 open {hash} extra"),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(read(&path).unwrap_err().to_string().contains("s.at"), "refused: {bad}");
        }
    }
}
