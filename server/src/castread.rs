//! Streaming reads of a stored recording from any byte offset, line by line: the same offsets whether the
//! session is still chunks or already compacted into `<id>.cast` (the cast is the chunks concatenated), with
//! ranged reads of at most one block at a time, so memory stays bounded whatever the recording's size.

use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::ingest::cast_key;
use crate::objects::ObjectError;
use crate::packs;
use crate::state::AppState;
use crate::store::{ChunkRow, SessionRow};

/// The first read asks for this much (a window or a screen often needs little), later reads double it.
const FIRST_BLOCK: u64 = 64 << 10;
/// Largest single ranged read.
const MAX_BLOCK: u64 = 1 << 20;
/// A line longer than this is not an event any terminal produced: it is skipped (to its newline) rather
/// than buffered, so a hostile cast cannot make a reader hold more than this.
pub const MAX_LINE: usize = 8 << 20;

/// Where the bytes are: one object, or chunks (own objects or packs) at known offsets.
enum Source {
    Compacted {
        key: String,
    },
    /// (chunk row, offset of its first byte in the cast): chunks `0..=committed_seq`.
    Chunks(Vec<(ChunkRow, u64)>),
}

/// Reads the committed part of a session's cast as lines, from a given offset.
pub struct CastReader<'a> {
    st: &'a AppState,
    row: SessionRow,
    source: Source,
    /// End of the readable cast: every committed byte.
    end: u64,
    /// Next byte to fetch from the store.
    fetched: u64,
    /// Bytes fetched; `buf[cur..]` are not returned yet and `buf[cur]` is at cast offset `buf_start`.
    buf: Vec<u8>,
    cur: usize,
    buf_start: u64,
    /// `buf[cur..searched]` holds no newline.
    searched: usize,
    block: u64,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
}

impl<'a> CastReader<'a> {
    /// A reader positioned at `offset`. The layout is read once: chunks committed after this call are not
    /// seen (the caller reads again later).
    pub async fn open(st: &'a AppState, row: &SessionRow, offset: u64) -> ApiResult<CastReader<'a>> {
        let (source, end) = layout(st, row).await?;
        Ok(CastReader {
            st,
            row: row.clone(),
            source,
            end,
            fetched: offset.min(end),
            buf: Vec::new(),
            cur: 0,
            buf_start: offset.min(end),
            searched: 0,
            block: FIRST_BLOCK,
            skipping: false,
        })
    }

    /// Bytes of the cast this reader can see.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Cast offset just past the last line returned.
    pub fn position(&self) -> u64 {
        self.buf_start
    }

    /// The next complete line (without its newline) and the cast offset just past it. At the end, a last
    /// line without a newline is returned only when `final_` (a complete session): in a live one it may be
    /// the first half of a line whose rest has not arrived.
    pub async fn next_line(&mut self, final_: bool) -> ApiResult<Option<(Vec<u8>, u64)>> {
        loop {
            if let Some(i) = self.buf[self.searched..].iter().position(|&b| b == b'\n') {
                let nl = self.searched + i;
                let line = self.buf[self.cur..nl].to_vec();
                self.buf_start += (nl + 1 - self.cur) as u64;
                self.cur = nl + 1;
                self.searched = self.cur;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                return Ok(Some((line, self.buf_start)));
            }
            self.searched = self.buf.len();
            if self.buf.len() - self.cur > MAX_LINE {
                self.buf_start += (self.buf.len() - self.cur) as u64;
                self.cur = self.buf.len();
                self.skipping = true;
            }
            if self.fetched >= self.end {
                if final_ && self.cur < self.buf.len() && !self.skipping {
                    let line = self.buf[self.cur..].to_vec();
                    self.buf_start += line.len() as u64;
                    self.cur = self.buf.len();
                    self.searched = self.cur;
                    return Ok(Some((line, self.buf_start)));
                }
                return Ok(None);
            }
            let more = self.fetch().await?;
            // Drop what was returned before growing: the buffer holds one partial line plus one block.
            self.buf.drain(..self.cur);
            self.searched -= self.cur;
            self.cur = 0;
            self.buf.extend_from_slice(&more);
        }
    }

    /// One ranged read from `fetched`, within one object.
    async fn fetch(&mut self) -> ApiResult<Bytes> {
        let want = self.block.min(self.end - self.fetched);
        self.block = (self.block * 2).min(MAX_BLOCK);
        let got = match &self.source {
            Source::Compacted { key } => {
                self.st.objects.get_range(key, self.fetched..self.fetched + want).await?
            }
            Source::Chunks(chunks) => {
                let i = chunks.partition_point(|(c, start)| start + c.len <= self.fetched);
                let (c, start) = &chunks[i];
                let from = self.fetched - start;
                match packs::read_range(self.st, &self.row, c, from..(from + want).min(c.len)).await {
                    Ok(b) => b,
                    // Compacted since the layout was read (the chunk objects go once the cast is written):
                    // the same offsets are in the cast.
                    Err(ObjectError::NotFound(_)) => {
                        let fresh = self.st.meta.session_get(&self.row.id).await?;
                        match fresh {
                            Some(r) if r.compacted => {
                                self.source = Source::Compacted { key: cast_key(&r) };
                                self.row = r;
                                return Box::pin(self.fetch()).await;
                            }
                            _ => return Err(ObjectError::NotFound(format!("chunk {}", c.seq)).into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if got.is_empty() {
            return Err(ApiError::unavailable(format!(
                "session {}: the stored recording ends at byte {} but its rows say {}",
                self.row.id, self.fetched, self.end
            )));
        }
        self.fetched += got.len() as u64;
        Ok(got)
    }
}

/// The session's readable bytes: the compacted cast, or the contiguous committed chunks.
async fn layout(st: &AppState, row: &SessionRow) -> ApiResult<(Source, u64)> {
    if row.compacted {
        return Ok((Source::Compacted { key: cast_key(row) }, row.bytes));
    }
    let Some(committed) = row.committed_seq else { return Ok((Source::Chunks(Vec::new()), 0)) };
    let mut chunks = Vec::new();
    let mut at = 0u64;
    for c in st.meta.chunks_between(&row.id, 0, committed).await? {
        if c.seq > committed || c.seq != chunks.len() as u64 {
            break;
        }
        let len = c.len;
        chunks.push((c, at));
        at += len;
    }
    Ok((Source::Chunks(chunks), at))
}
