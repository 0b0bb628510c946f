//! Where a search matched, in time: each output index row keeps its normalised words and when they were
//! printed (compressed, beside the row), so a hit can say "first matched at 12.3 s" and show the words around
//! it, and the list can open the player at that moment. Both database backends store the same bytes.

use std::io::{Read, Write as _};

use ddcoterm_wire::SearchMatch;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::search::Mark;

/// Words shown on each side of a match.
const SNIPPET_WORDS: usize = 8;
/// A stored row is never inflated past this (a row holds at most `DOC_BYTES` of text and its marks): a
/// damaged or hostile blob cannot make a list request allocate without bound.
const MAX_INFLATED: u64 = 4 << 20;

/// One output row's text and times; `marks` count words from the row's first word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowTimes {
    pub text: String,
    pub marks: Vec<Mark>,
}

/// The marks of a row that starts at word `first` of the pass's text and has `len` words, counted from the
/// row's first word: those that completed one of its words, and the one that completed its last word.
pub fn row_marks(marks: &[Mark], first: u64, len: u64) -> Vec<Mark> {
    let mut out = Vec::new();
    for m in marks.iter().filter(|m| m.words > first) {
        out.push(Mark { words: (m.words - first).min(len), ms: m.ms });
        if m.words >= first + len {
            break;
        }
    }
    out
}

/// The stored form: JSON, deflated.
pub fn encode(row: &RowTimes) -> Vec<u8> {
    // Serialised first, then deflated in one write: serde_json writes token by token, and flate2 zeroes its
    // whole 32 KiB output buffer on every write (6% of the server's CPU under saturated ingest went there).
    let json = serde_json::to_vec(row).unwrap_or_default();
    let mut e = DeflateEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(&json);
    e.finish().unwrap_or_default()
}

pub fn decode(blob: &[u8]) -> Option<RowTimes> {
    let mut json = Vec::new();
    DeflateDecoder::new(blob).take(MAX_INFLATED).read_to_end(&mut json).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The first place in `row` where one of `terms` (each a word or a phrase, normalised) occurs: when it was
/// printed (the event that completed its last word) and the words around it.
pub fn locate(row: &RowTimes, terms: &[Vec<String>]) -> Option<SearchMatch> {
    let words: Vec<&str> = row.text.split(' ').collect();
    let (start, end) = (0..words.len()).find_map(|i| {
        terms.iter().find_map(|t| {
            let hit =
                !t.is_empty() && t.iter().enumerate().all(|(k, w)| words.get(i + k) == Some(&w.as_str()));
            hit.then(|| (i, i + t.len() - 1))
        })
    })?;
    let ms = row.marks.iter().find(|m| m.words > end as u64).or(row.marks.last())?.ms;
    let from = start.saturating_sub(SNIPPET_WORDS);
    let to = (end + 1 + SNIPPET_WORDS).min(words.len());
    let mut snippet = String::new();
    if from > 0 {
        snippet.push_str("… ");
    }
    snippet.push_str(&words[from..to].join(" "));
    if to < words.len() {
        snippet.push_str(" …");
    }
    Some(SearchMatch { t: ms as f64 / 1000.0, snippet })
}

/// Rows read per index query while looking for a term's first occurrence.
const CANDIDATE_PAGE: i64 = 8;
/// Rows read at most for one term: a word in every row of a long session is found in the first page anyway;
/// only a phrase whose words are everywhere but which is rare (PostgreSQL's lossy phrases) reads more.
const MAX_CANDIDATES: i64 = 256;

/// The earliest match of any of `terms` in the session's output, if its rows were indexed with times.
pub async fn first_match(
    st: &crate::state::AppState,
    id: &str,
    terms: &[Vec<String>],
) -> Result<Option<SearchMatch>, crate::error::ApiError> {
    let mut best: Option<SearchMatch> = None;
    for term in terms {
        if let Some(m) = first_in_rows(st, id, term).await? {
            if best.as_ref().is_none_or(|b| m.t < b.t) {
                best = Some(m);
            }
        }
    }
    Ok(best)
}

/// Candidate rows come from the index, earliest first ([`crate::store::MetaStore::index_times_candidates`]);
/// the first whose own text holds `term` gives the match. Reading stops after [`MAX_CANDIDATES`] rows.
async fn first_in_rows(
    st: &crate::state::AppState,
    id: &str,
    term: &Vec<String>,
) -> Result<Option<SearchMatch>, crate::error::ApiError> {
    let mut skip = 0;
    while skip < MAX_CANDIDATES {
        let page = st.meta.index_times_candidates(id, term, skip, CANDIDATE_PAGE).await?;
        for blob in &page {
            let Some(row) = decode(blob) else {
                tracing::warn!(session = %id, "a search row's stored times do not decode");
                continue;
            };
            if let Some(m) = locate(&row, std::slice::from_ref(term)) {
                return Ok(Some(m));
            }
        }
        if (page.len() as i64) < CANDIDATE_PAGE {
            break;
        }
        skip += CANDIDATE_PAGE;
    }
    Ok(None)
}

/// Deflated bytes for `row`, checked to round-trip (used by the indexer before storing).
pub fn encode_checked(row: &RowTimes) -> Vec<u8> {
    let blob = encode(row);
    debug_assert_eq!(decode(&blob).as_ref(), Some(row));
    blob
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{rows_at, TimedText};

    fn ev(t: f64, s: &str) -> String {
        format!("{}\n", serde_json::json!([t, "o", s]))
    }

    fn timed(cast: &str) -> (String, Vec<Mark>) {
        let mut t = TimedText::new(String::new());
        t.push_cast(cast.as_bytes());
        (t.text, t.marks)
    }

    fn t(v: &[&str]) -> Vec<Vec<String>> {
        v.iter().map(|p| p.split(' ').map(str::to_string).collect()).collect()
    }

    #[test]
    fn a_match_is_timed_by_the_event_that_finished_it() {
        let cast = [ev(0.5, "$ make\r\n"), ev(2.0, "\x1b[1mbuild"), ev(6.25, "ing DONE"), ev(7.0, "\r\nbye")]
            .concat();
        let (text, marks) = timed(&cast);
        assert_eq!(text, "make building done bye");
        let row = RowTimes { text, marks };
        let m = locate(&row, &t(&["building done"])).unwrap();
        assert_eq!(m.t, 6.25, "{:?}", row.marks);
        // "make" was whole once the newline after it came, in the same event.
        assert_eq!(locate(&row, &t(&["make"])).unwrap().t, 0.5);
        // The last word has no separator after it: the last event's time.
        assert_eq!(locate(&row, &t(&["bye"])).unwrap().t, 7.0);
        // The earliest of several terms wins.
        assert_eq!(locate(&row, &t(&["bye", "building"])).unwrap().t, 6.25);
        assert!(locate(&row, &t(&["nothing"])).is_none());
        assert_eq!(m.snippet, "make building done bye");
    }

    #[test]
    fn rows_keep_their_own_times_and_the_blob_round_trips() {
        let mut cast = String::new();
        for i in 0..30_000 {
            cast.push_str(&ev(i as f64, &format!("w{i} ")));
        }
        let (text, marks) = timed(&cast);
        let total = text.split_whitespace().count() as u64;
        let rows = rows_at(&text);
        assert!(rows.len() > 2);
        for (row, first) in rows {
            let len = row.split(' ').count() as u64;
            let r = RowTimes { marks: row_marks(&marks, first, len), text: row };
            let back = decode(&encode_checked(&r)).unwrap();
            assert_eq!(back, r);
            let last = r.text.rsplit(' ').next().unwrap().to_string();
            let n: u64 = last[1..].parse().unwrap();
            let m = locate(&r, &[vec![last.clone()]]).unwrap();
            assert_eq!(m.t, n as f64, "{last} at {first}");
            assert!(m.snippet.ends_with(&last) && m.snippet.starts_with("… "), "{}", m.snippet);
            assert!(first + len <= total);
        }
        assert!(decode(b"not deflate").is_none());
    }
}
