//! Finds secret spans in a view: literal-anchor prefilter, anchored regex per hit, PEM blocks, wrapped tokens.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use super::kinds::{KindDef, KINDS, PEM_END, PRIVATE_KEY};

/// A private key block whose END has not arrived is held back at most this long (then redacted whole).
pub(crate) const PEM_MAX: usize = 64 * 1024;
/// Longest token run followed across hard-wrapped lines.
pub(crate) const WRAP_MAX: usize = 4096;
/// At most this many line breaks are joined inside one wrapped token.
const WRAP_LINES: usize = 64;

/// A secret span in view coordinates and the index of its kind name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    /// Priority: lower wins when two spans start at the same byte.
    pub prio: usize,
    /// Index into `Engine::names`.
    pub name: usize,
}

/// What one scan learnt.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Non-overlapping, sorted by start.
    pub found: Vec<Found>,
    /// Start of the first private key block (at or after `from`) whose END is not in the buffer yet.
    pub open_pem: Option<usize>,
}

#[derive(Debug)]
struct Kind {
    def: &'static KindDef,
    re: Regex,
    name: usize,
}

/// A literal-anchor automaton and, for each of its patterns, the kinds to try there.
#[derive(Debug)]
struct Anchors {
    ac: AhoCorasick,
    kinds: Vec<Vec<usize>>,
}

impl Anchors {
    fn build(ci: bool) -> Anchors {
        let mut literals: Vec<&'static str> = Vec::new();
        let mut kinds: Vec<Vec<usize>> = Vec::new();
        for (k, def) in KINDS.iter().enumerate().filter(|(_, d)| d.ci == ci) {
            for a in def.anchors {
                let lower = |s: &str| if ci { s.to_ascii_lowercase() } else { s.to_string() };
                match literals.iter().position(|l| lower(l) == lower(a)) {
                    Some(i) => kinds[i].push(k),
                    None => {
                        literals.push(a);
                        kinds.push(vec![k]);
                    }
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(ci)
            .build(&literals)
            .expect("built-in anchors are valid literals");
        Anchors { ac, kinds }
    }
}

/// Everything compiled once per `Redactor`; shared by its streams.
#[derive(Debug)]
pub(crate) struct Engine {
    kinds: Vec<Kind>,
    cs: Anchors,
    ci: Anchors,
    pem_end: Regex,
    user: Vec<(Regex, usize)>,
    /// Kind names: built-in names first (deduplicated), then user pattern names.
    pub names: Vec<String>,
    /// `[REDACTED:<name>]` per name.
    pub replacements: Vec<Vec<u8>>,
}

impl Engine {
    /// Compiles the built-in kinds and the given user patterns (already validated by the caller).
    pub(crate) fn new(user: Vec<(String, Regex)>) -> Engine {
        let mut names: Vec<String> = Vec::new();
        let name_of = |n: &str, names: &mut Vec<String>| match names.iter().position(|x| x == n) {
            Some(i) => i,
            None => {
                names.push(n.to_string());
                names.len() - 1
            }
        };
        let kinds = KINDS
            .iter()
            .map(|def| Kind {
                def,
                re: Regex::new(def.regex).expect("built-in regexes compile"),
                name: name_of(def.name, &mut names),
            })
            .collect();
        let user = user.into_iter().map(|(n, re)| (re, name_of(&n, &mut names))).collect();
        let replacements = names.iter().map(|n| format!("[REDACTED:{n}]").into_bytes()).collect();
        Engine {
            kinds,
            cs: Anchors::build(false),
            ci: Anchors::build(true),
            pem_end: Regex::new(PEM_END).expect("built-in regex compiles"),
            user,
            names,
            replacements,
        }
    }

    /// Name index of the private key kind (used when a block is redacted without its END).
    pub(crate) fn private_key_name(&self) -> usize {
        self.kinds.iter().find(|k| k.def.name == PRIVATE_KEY).map_or(0, |k| k.name)
    }

    pub(crate) fn has_user_patterns(&self) -> bool {
        !self.user.is_empty()
    }

    /// Finds every secret in `v`. Unclosed private key headers before `from` (already emitted) are ignored.
    pub(crate) fn scan(&self, v: &[u8], from: usize) -> Scan {
        let mut scan = Scan::default();
        let mut found = Vec::new();
        for anchors in [&self.cs, &self.ci] {
            for m in anchors.ac.find_iter(v) {
                for &k in &anchors.kinds[m.pattern().as_usize()] {
                    self.try_kind(v, m.start(), k, from, &mut found, &mut scan.open_pem);
                }
            }
        }
        let prio_base = self.kinds.len();
        for (i, (re, name)) in self.user.iter().enumerate() {
            for caps in re.captures_iter(v) {
                let m = secret_group(&caps);
                if m.0 < m.1 {
                    found.push(Found { start: m.0, end: m.1, prio: prio_base + i, name: *name });
                }
            }
        }
        found.sort_unstable_by_key(|f| (f.start, f.prio, usize::MAX - f.end));
        let mut last_end = 0;
        for f in found {
            if f.start >= last_end {
                last_end = f.end;
                scan.found.push(f);
            }
        }
        scan
    }

    fn try_kind(
        &self,
        v: &[u8],
        p: usize,
        k: usize,
        from: usize,
        found: &mut Vec<Found>,
        open_pem: &mut Option<usize>,
    ) {
        let kind = &self.kinds[k];
        let def = kind.def;
        if !def.before.allows(p.checked_sub(1).map(|i| v[i])) {
            return;
        }
        if def.name == PRIVATE_KEY {
            self.try_pem(v, p, k, from, found, open_pem);
            return;
        }
        let hay = &v[p..v.len().min(p + def.max_len)];
        if let Some((s, e)) = self.primary(kind, hay) {
            found.push(Found { start: p + s, end: p + e, prio: k, name: kind.name });
        } else if def.token {
            if let Some((s, e)) = self.joined(kind, v, p) {
                found.push(Found { start: s, end: e, prio: k, name: kind.name });
            }
        }
    }

    /// The secret span of kind `kind` anchored at the start of `hay`, if it matches and validates.
    fn primary(&self, kind: &Kind, hay: &[u8]) -> Option<(usize, usize)> {
        let caps = kind.re.captures(hay)?;
        let (s, e) = secret_group(&caps);
        let ok = e > s && kind.def.validate.is_none_or(|f| f(&hay[s..e]));
        ok.then_some((s, e))
    }

    /// A token hard-wrapped by a program: its run of token bytes continues at the start of the next line.
    /// Only accepted when the match really crosses a line break and the unjoined text did not match.
    fn joined(&self, kind: &Kind, v: &[u8], p: usize) -> Option<(usize, usize)> {
        let (text, map) = join_run(v, p, kind.def.max_len);
        if map.last().is_none_or(|&last| last + 1 - p == map.len()) {
            return None; // no line break crossed
        }
        let (s, e) = self.primary(kind, &text)?;
        let (vs, ve) = (map[s], map[e - 1] + 1);
        (ve - vs > e - s).then_some((vs, ve))
    }

    fn try_pem(
        &self,
        v: &[u8],
        p: usize,
        k: usize,
        from: usize,
        found: &mut Vec<Found>,
        open_pem: &mut Option<usize>,
    ) {
        let kind = &self.kinds[k];
        let Some(head) = kind.re.find(&v[p..v.len().min(p + kind.def.max_len)]) else { return };
        let body_from = p + head.end();
        let limit = v.len().min(p + PEM_MAX);
        let mut at = body_from;
        while let Some(i) = memchr::memmem::find(&v[at..limit], b"-----END ") {
            let q = at + i;
            if let Some(m) = self.pem_end.find(&v[q..v.len().min(q + 128)]) {
                found.push(Found { start: p, end: q + m.end(), prio: k, name: kind.name });
                return;
            }
            at = q + 1;
        }
        if p >= from && open_pem.is_none_or(|o| p < o) {
            *open_pem = Some(p);
        }
    }

    /// Where a held-back wrapped token starts: the last line ending at `line_end` (the byte after its `\n`)
    /// ends in a run of token bytes, possibly continued from earlier lines, holding a token anchor whose
    /// token is not complete. Such a line may continue on the next one, so it is not emitted yet.
    pub(crate) fn wrap_hold(&self, v: &[u8], line_end: usize) -> Option<usize> {
        let mut e = line_end.checked_sub(1)?;
        if e > 0 && v[e - 1] == b'\r' {
            e -= 1;
        }
        let floor = e.saturating_sub(WRAP_MAX);
        let mut s = e;
        loop {
            while s > floor && is_tok(v[s - 1]) {
                s -= 1;
            }
            if s > floor && s < e && v[s - 1] == b'\n' {
                let mut pe = s - 1;
                if pe > 0 && v[pe - 1] == b'\r' {
                    pe -= 1;
                }
                if pe > floor && is_tok(v[pe - 1]) {
                    s = pe;
                    continue;
                }
            }
            break;
        }
        if s == e {
            return None;
        }
        for m in self.cs.ac.find_iter(&v[s..e]) {
            let p = s + m.start();
            for &k in &self.cs.kinds[m.pattern().as_usize()] {
                let kind = &self.kinds[k];
                if !kind.def.token || !kind.def.before.allows(p.checked_sub(1).map(|i| v[i])) {
                    continue;
                }
                if self.primary(kind, &v[p..e.min(p + kind.def.max_len)]).is_none() {
                    return Some(s);
                }
            }
        }
        None
    }

    /// Whether `v` contains an anchor of any kind (used to decide what an idle flush may emit).
    pub(crate) fn has_anchor(&self, v: &[u8]) -> bool {
        self.cs.ac.is_match(v) || self.ci.ac.is_match(v)
    }
}

/// Bytes a token may be made of (base64, base64url, hex, and the separators tokens use).
pub(crate) fn is_tok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=')
}

/// The run of token bytes from `p`, joined across `\n` / `\r\n` line breaks when the next line starts with
/// a token byte; returns the joined text and, for each of its bytes, its offset in `v`.
fn join_run(v: &[u8], p: usize, max: usize) -> (Vec<u8>, Vec<usize>) {
    let mut text = Vec::new();
    let mut map = Vec::new();
    let mut i = p;
    let mut breaks = 0;
    while text.len() < max {
        if i < v.len() && is_tok(v[i]) {
            text.push(v[i]);
            map.push(i);
            i += 1;
            continue;
        }
        let after = match v.get(i..i + 2) {
            Some([b'\r', b'\n']) => i + 2,
            _ if v.get(i) == Some(&b'\n') => i + 1,
            _ => break,
        };
        if breaks == WRAP_LINES || !v.get(after).is_some_and(|&b| is_tok(b)) {
            break;
        }
        breaks += 1;
        i = after;
    }
    (text, map)
}

/// The first participating capture group, else the whole match.
fn secret_group(caps: &regex::bytes::Captures<'_>) -> (usize, usize) {
    let m = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0)).expect("group 0 always exists");
    (m.start(), m.end())
}
