//! Full-text search, the part both database backends share: what text is indexed (terminal output with
//! escape sequences stripped, and commands), how it is cut into index rows, and the `q=` syntax.
//!
//! Both backends index the same normalised text: lower case, every run of characters that are not letters or
//! digits turned into one space. SQLite FTS5 (`unicode61`) and PostgreSQL (`to_tsvector('simple', ..)`) then
//! both see plain words, so a query finds the same sessions on either.

/// Largest index row, in bytes of normalised text. PostgreSQL refuses a tsvector over 1 MB and records word
/// positions only up to 16383 (phrases past it would not match): 64 KiB of text stays far below both.
pub const DOC_BYTES: usize = 64 * 1024;
/// Words of the previous row repeated at the start of the next, so a phrase cut by a row boundary (or a chunk
/// boundary) is still found whole in one row.
const OVERLAP_WORDS: usize = 16;
/// Longest unfinished word carried to the next pass; a longer run without a space is indexed as it is.
const MAX_CARRY: usize = 1024;

const MAX_Q_BYTES: usize = 512;
const MAX_TERMS: usize = 16;
const MAX_PHRASE_WORDS: usize = 32;

/// Lower-cases and replaces every run of non-alphanumeric characters with one space.
pub fn normalise(text: &str, out: &mut String) {
    let mut space = out.is_empty() || out.ends_with(' ');
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
}

/// Removes terminal escape sequences from output, keeping its text. State survives across calls, so a
/// sequence split between two events is still removed.
#[derive(Default)]
pub struct Stripper {
    state: Esc,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Esc {
    #[default]
    Text,
    /// After ESC.
    Start,
    /// Inside a CSI (`ESC [`) until its final byte.
    Csi,
    /// Inside an OSC/DCS/APC/PM/SOS string until BEL or `ESC \`.
    Str,
    /// ESC seen inside a string (maybe its `ESC \` terminator).
    StrEnd,
    /// `ESC (` and friends: one more character (the charset).
    Charset,
}

impl Stripper {
    /// Appends the visible text of `data` to `out`; control characters become spaces.
    pub fn push(&mut self, data: &str, out: &mut String) {
        for c in data.chars() {
            self.state = match (self.state, c) {
                (Esc::Text, '\x1b') => Esc::Start,
                (Esc::Text, '\u{9b}') => Esc::Csi,
                (Esc::Text, c) => {
                    out.push(if c.is_control() { ' ' } else { c });
                    Esc::Text
                }
                (Esc::Start, '[') => Esc::Csi,
                (Esc::Start, ']' | 'P' | '_' | '^' | 'X') => Esc::Str,
                (Esc::Start, '(' | ')' | '*' | '+' | '#' | '%') => Esc::Charset,
                (Esc::Start, _) => Esc::Text,
                (Esc::Charset, _) => Esc::Text,
                (Esc::Csi, c) if ('\x40'..='\x7e').contains(&c) => Esc::Text,
                (Esc::Csi, _) => Esc::Csi,
                (Esc::Str, '\x07') => Esc::Text,
                (Esc::Str, '\x1b') => Esc::StrEnd,
                (Esc::Str, _) => Esc::Str,
                (Esc::StrEnd, '\\') => Esc::Text,
                (Esc::StrEnd, _) => Esc::Str,
            };
        }
    }
}

/// When words of the normalised output were printed: after the event at `ms` (milliseconds into the
/// recording), the first `words` words of the text were whole on the screen. Counts and times only grow.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    pub words: u64,
    pub ms: u64,
}

/// The visible output of asciicast lines (the `"o"` events), normalised, and when its words were printed.
/// The header line and other event codes (input, resize, markers) are skipped. Word counts are of the whole
/// text (the carried tail it starts with included), counting a word once the separator after it is there;
/// a word finished by a later event's separator is credited to the event that printed its last letter.
pub struct TimedText {
    pub text: String,
    pub marks: Vec<Mark>,
    strip: Stripper,
    /// Words of `text` followed by a space.
    words: u64,
    /// The mark of the last event that printed letters, while the word it printed is unfinished.
    open_word: Option<usize>,
}

impl TimedText {
    /// Starts from `text` (already normalised: the tail carried from the previous pass).
    pub fn new(text: String) -> TimedText {
        let words = text.matches(' ').count() as u64;
        TimedText { text, marks: Vec::new(), strip: Stripper::default(), words, open_word: None }
    }

    /// Appends the output events of `cast` (whole lines).
    pub fn push_cast(&mut self, cast: &[u8]) {
        let mut visible = String::new();
        for line in cast.split(|&b| b == b'\n').filter(|l| l.first() == Some(&b'[')) {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            if v.get(1).and_then(|c| c.as_str()) != Some("o") {
                continue;
            }
            let Some(d) = v.get(2).and_then(|d| d.as_str()) else { continue };
            let t = v.get(0).and_then(|t| t.as_f64()).unwrap_or(0.0);
            visible.clear();
            self.strip.push(d, &mut visible);
            self.push_event((t.max(0.0) * 1000.0).round() as u64, &visible);
        }
    }

    fn push_event(&mut self, ms: u64, visible: &str) {
        let before = self.text.len();
        normalise(visible, &mut self.text);
        let added = &self.text[before..];
        if added.is_empty() {
            return;
        }
        if added.starts_with(' ') {
            if let Some(i) = self.open_word.take() {
                self.marks[i].words += 1;
            }
        }
        self.words += added.matches(' ').count() as u64;
        let last = self.marks.last().copied().unwrap_or(Mark { words: 0, ms: 0 });
        let (words, ms) = (self.words.max(last.words), ms.max(last.ms));
        match self.marks.last_mut() {
            Some(m) if m.ms == ms => m.words = words,
            _ => self.marks.push(Mark { words, ms }),
        }
        self.open_word = (!self.text.ends_with(' ')).then(|| self.marks.len() - 1);
    }
}

/// Splits normalised text into index rows of at most `DOC_BYTES`, cut between words, each row after the
/// first starting with the last `OVERLAP_WORDS` words of the one before.
pub fn rows(text: &str) -> Vec<String> {
    rows_at(text).into_iter().map(|(r, _)| r).collect()
}

/// [`rows`], each with the position in `text` (counted in words) of its first word.
pub fn rows_at(text: &str) -> Vec<(String, u64)> {
    let lead = text.len() - text.trim_start().len();
    let lead_words = text[..lead].matches(' ').count() as u64;
    let text = text.trim();
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + DOC_BYTES).min(text.len());
        if end < text.len() {
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            // Cut at the last space; a row that is one giant word is cut where it is.
            if let Some(sp) = text[start..end].rfind(' ') {
                if sp > 0 {
                    end = start + sp;
                }
            }
        }
        let part = &text[start..end];
        let overlap = out.last().map(|_: &(String, u64)| overlap_before(text, start)).unwrap_or("");
        let overlap_words = if overlap.is_empty() { 0 } else { overlap.split(' ').count() as u64 };
        let first_word = lead_words + text[..start].matches(' ').count() as u64 - overlap_words;
        let mut row = String::with_capacity(overlap.len() + part.len() + 1);
        if !overlap.is_empty() {
            row.push_str(overlap);
            row.push(' ');
        }
        row.push_str(part.trim());
        out.push((row, first_word));
        start = end;
        while text[start..].starts_with(' ') {
            start += 1;
        }
    }
    out
}

/// The last `OVERLAP_WORDS` words of `text[..at]`.
fn overlap_before(text: &str, at: usize) -> &str {
    let before = text[..at].trim_end();
    let mut from = before.len();
    for _ in 0..OVERLAP_WORDS {
        match before[..from].trim_end().rfind(' ') {
            Some(sp) => from = sp,
            None => return before,
        }
    }
    before[from..].trim_start()
}

/// Splits this pass's text into what is indexed now and what is carried to the next pass: the unfinished
/// last word (it may continue in the next chunk) after the last `OVERLAP_WORDS` finished ones (so a phrase
/// across the chunk boundary is found). `last` says no more output will come: everything is indexed.
pub fn carry_split(text: &str, last: bool) -> (&str, String) {
    if last {
        return (text, String::new());
    }
    let Some(sp) = text.rfind(' ') else {
        return if text.len() > MAX_CARRY { (text, String::new()) } else { ("", text.to_string()) };
    };
    let (done, unfinished) = (&text[..sp], &text[sp + 1..]);
    if unfinished.len() > MAX_CARRY {
        return (text, String::new());
    }
    let context = overlap_before(done, done.len());
    let mut carry = String::with_capacity(context.len() + unfinished.len() + 1);
    carry.push_str(context);
    if !carry.is_empty() {
        carry.push(' ');
    }
    carry.push_str(unfinished);
    (done, carry)
}

/// A parsed `q`: every term must match the session; a term of several words is a phrase (the words in a
/// row). Words are normalised like the indexed text.
pub fn parse_query(q: &str) -> Result<Vec<Vec<String>>, String> {
    if q.len() > MAX_Q_BYTES {
        return Err(format!("longer than {MAX_Q_BYTES} bytes"));
    }
    if q.matches('"').count() % 2 == 1 {
        return Err("a \"quoted phrase\" is not closed".into());
    }
    let mut terms = Vec::new();
    for (i, piece) in q.split('"').enumerate() {
        let quoted = i % 2 == 1;
        let raw: Vec<&str> = if quoted { vec![piece] } else { piece.split_whitespace().collect() };
        for r in raw {
            let mut n = String::new();
            normalise(r, &mut n);
            let words: Vec<String> = n.split_whitespace().map(str::to_string).collect();
            if words.is_empty() {
                continue;
            }
            if words.len() > MAX_PHRASE_WORDS {
                return Err(format!("a phrase has more than {MAX_PHRASE_WORDS} words"));
            }
            terms.push(words);
        }
    }
    if terms.is_empty() {
        return Err("no word to search for (words are letters and digits)".into());
    }
    if terms.len() > MAX_TERMS {
        return Err(format!("more than {MAX_TERMS} words or phrases"));
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(parts: &[&str]) -> String {
        let mut s = Stripper::default();
        let mut out = String::new();
        for p in parts {
            s.push(p, &mut out);
        }
        out
    }

    #[test]
    fn escapes_are_removed_even_when_split() {
        assert_eq!(strip(&["a\x1b[1mb\x1b[0m"]), "ab");
        assert_eq!(strip(&["a\x1b[3", "8;5;1mb"]), "ab");
        assert_eq!(strip(&["\x1b]0;title\x07x", "\x1b]2;t\x1b\\y"]), "xy");
        assert_eq!(strip(&["\x1b(Bz\r\n"]), "z  ");
    }

    #[test]
    fn normalised_words() {
        let mut out = String::new();
        normalise("Deploy/WEB --replicas=3\r\nÉtat_ok", &mut out);
        assert_eq!(out, "deploy web replicas 3 état ok");
    }

    #[test]
    fn rows_are_bounded_and_overlap() {
        let text: String = (0..40_000).map(|i| format!("w{i} ")).collect();
        let rows = rows(&text);
        assert!(rows.len() > 1);
        for r in &rows {
            assert!(r.len() <= DOC_BYTES + 200, "{}", r.len());
        }
        // Every word of the text is in some row, and a phrase across each cut is in one row.
        for w in ["w0", "w39999", "w20000"] {
            assert!(rows.iter().any(|r| r.split(' ').any(|x| x == w)), "{w}");
        }
        for pair in rows.windows(2) {
            let last = pair[0].rsplit(' ').next().unwrap();
            assert!(pair[1].split(' ').any(|x| x == last), "the next row repeats {last}");
        }
    }

    #[test]
    fn the_unfinished_word_is_carried() {
        let (now, carry) = carry_split("alpha beta gam", false);
        assert_eq!(now, "alpha beta");
        assert_eq!(carry, "alpha beta gam");
        let (now, carry) = carry_split("alpha beta gam", true);
        assert_eq!((now, carry.as_str()), ("alpha beta gam", ""));
    }

    #[test]
    fn query_syntax() {
        assert_eq!(parse_query("Foo bar").unwrap(), vec![vec!["foo"], vec!["bar"]]);
        assert_eq!(parse_query("\"a b\" c").unwrap(), vec![vec!["a", "b"], vec!["c"]]);
        assert_eq!(parse_query("deploy/web").unwrap(), vec![vec!["deploy", "web"]]);
        assert!(parse_query("\"open").is_err());
        assert!(parse_query("--- ***").is_err());
        assert!(parse_query("").is_err());
        assert!(parse_query(&"x ".repeat(17)).is_err());
        assert!(parse_query(&"x".repeat(600)).is_err());
    }
}
