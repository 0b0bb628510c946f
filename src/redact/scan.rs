//! Finds secret spans in a view: literal-anchor prefilter, anchored regex per hit, PEM blocks, wrapped tokens.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};
use regex::bytes::Regex;
use std::sync::OnceLock;

use super::kinds::{KindDef, KINDS, PEM_END, PRIVATE_KEY};

/// A private key block whose END has not arrived is held back at most this long (then redacted whole).
pub(crate) const PEM_MAX: usize = 64 * 1024;
/// Longest token run followed across hard-wrapped lines.
pub(crate) const WRAP_MAX: usize = 4096;
/// A line narrower than this is not taken for one a program hard-wrapped.
const WRAP_MIN_WIDTH: usize = 32;
/// At most this many line breaks are joined inside one wrapped token.
const WRAP_LINES: usize = 64;

/// A secret span in view coordinates and the index of its kind name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    /// Priority: lower wins when two built-in spans start at the same byte (built-ins in order, then user
    /// patterns, which never take bytes away from a built-in span: see `union`).
    pub prio: usize,
    /// Index into `Engine::names`.
    pub name: usize,
}

/// What one scan learnt.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Non-overlapping, sorted by start.
    pub found: Vec<Found>,
    /// Start of the first private key block whose END is not in the buffer yet (its header may be in the
    /// already-emitted context: the body is held all the same).
    pub open_pem: Option<usize>,
}

#[derive(Debug)]
struct Kind {
    def: &'static KindDef,
    /// Compiled on the first anchor hit: most sessions never meet most kinds, and compiling all of them up
    /// front cost every recording a few milliseconds and a couple of MiB (a unit test compiles them all).
    re: OnceLock<Regex>,
    name: usize,
}

impl Kind {
    fn re(&self) -> &Regex {
        self.re.get_or_init(|| Regex::new(self.def.regex).expect("built-in regexes compile"))
    }
}

/// A literal-anchor automaton and, for each of its patterns, the kinds to try there.
#[derive(Debug)]
struct Anchors {
    ac: AhoCorasick,
    kinds: Vec<Vec<usize>>,
}

/// Most literals one case-sensitive automaton gets: its SIMD (Teddy) prefilter slows down sharply as the
/// pattern count grows (with all ~75 anchors in one automaton the stream ran at a third of its speed), so the
/// anchors are split into groups of at most this many, each searched with its own fast prefilter.
const GROUP_LITERALS: usize = 24;

impl Anchors {
    /// The case-sensitive anchors, in groups of at most `GROUP_LITERALS` literals (a kind's anchors stay in
    /// one group).
    fn build_groups() -> Vec<Anchors> {
        let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
        let mut count = 0;
        for (k, def) in KINDS.iter().enumerate().filter(|(_, d)| !d.ci) {
            if count + def.anchors.len() > GROUP_LITERALS && count > 0 {
                groups.push(Vec::new());
                count = 0;
            }
            groups.last_mut().expect("one group at least").push(k);
            count += def.anchors.len();
        }
        groups.iter().map(|g| Anchors::build(false, g)).collect()
    }

    /// The anchors of `only` (kind indices; all kinds of this case sensitivity when empty).
    fn build(ci: bool, only: &[usize]) -> Anchors {
        let mut literals: Vec<&'static str> = Vec::new();
        let mut kinds: Vec<Vec<usize>> = Vec::new();
        for (k, def) in
            KINDS.iter().enumerate().filter(|(k, d)| d.ci == ci && (only.is_empty() || only.contains(k)))
        {
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
            .start_kind(if ci { StartKind::Anchored } else { StartKind::Unanchored })
            .build(&literals)
            .expect("built-in anchors are valid literals");
        Anchors { ac, kinds }
    }
}

/// Finds the case-insensitive anchors (`password`, `Bearer`, `API_KEY`...) quickly.
///
/// An ASCII-case-insensitive automaton gets no SIMD prefilter, which made it most of the cost. Instead a
/// SIMD (packed) search looks for the 3-byte prefixes of the anchors as written in practice (`pas`, `PAS`,
/// `Pas`: lower, upper or capitalised; camelCase later in the word is fine), and the case-insensitive
/// automaton only confirms, anchored, at those few places.
#[derive(Debug)]
struct CiFinder {
    prefixes: AhoCorasick,
}

impl CiFinder {
    fn build() -> CiFinder {
        let mut pats: Vec<String> = Vec::new();
        for def in KINDS.iter().filter(|d| d.ci) {
            for a in def.anchors {
                let lower = a[..3].to_ascii_lowercase();
                let mut cap = lower.clone();
                cap[..1].make_ascii_uppercase();
                for p in [lower.clone(), lower.to_ascii_uppercase(), cap] {
                    if !pats.contains(&p) {
                        pats.push(p);
                    }
                }
            }
        }
        let prefixes = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&pats)
            .expect("anchor prefixes are valid literals");
        CiFinder { prefixes }
    }

    /// Calls `f(start, end, pattern)` for each case-insensitive anchor, leftmost-longest, non-overlapping.
    fn each(&self, anchors: &Anchors, v: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        let mut at = 0;
        while at < v.len() {
            let Some(pre) = self.prefixes.find(Input::new(v).range(at..)) else { return };
            let q = pre.start();
            match anchors.ac.find(Input::new(v).range(q..).anchored(Anchored::Yes)) {
                Some(m) => {
                    f(m.start(), m.end(), m.pattern().as_usize());
                    at = m.end();
                }
                None => at = q + 1,
            }
        }
    }
}

/// Everything compiled once per `Redactor`; shared by its streams.
#[derive(Debug)]
pub(crate) struct Engine {
    kinds: Vec<Kind>,
    cs: Vec<Anchors>,
    ci: Anchors,
    ci_finder: CiFinder,
    pem_end: OnceLock<Regex>,
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
            .map(|def| Kind { def, re: OnceLock::new(), name: name_of(def.name, &mut names) })
            .collect();
        let user = user.into_iter().map(|(n, re)| (re, name_of(&n, &mut names))).collect();
        let replacements = names.iter().map(|n| format!("[REDACTED:{n}]").into_bytes()).collect();
        Engine {
            kinds,
            cs: Anchors::build_groups(),
            ci: Anchors::build(true, &[]),
            ci_finder: CiFinder::build(),
            pem_end: OnceLock::new(),
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

    /// Finds every secret in `v`.
    pub(crate) fn scan(&self, v: &[u8]) -> Scan {
        let mut scan = Scan::default();
        let mut found = Vec::new();
        for cs in &self.cs {
            for m in cs.ac.find_iter(v) {
                for &k in &cs.kinds[m.pattern().as_usize()] {
                    self.try_kind(v, m.start(), k, &mut found, &mut scan.open_pem);
                }
            }
        }
        self.ci_finder.each(&self.ci, v, |start, _, pat| {
            for &k in &self.ci.kinds[pat] {
                self.try_kind(v, start, k, &mut found, &mut scan.open_pem);
            }
        });
        found.sort_unstable_by_key(|f| (f.start, f.prio, usize::MAX - f.end));
        let mut last_end = 0;
        for f in found {
            if f.start >= last_end {
                last_end = f.end;
                scan.found.push(f);
            }
        }
        if !self.user.is_empty() {
            let mut user = Vec::new();
            for (i, (re, name)) in self.user.iter().enumerate() {
                for caps in re.captures_iter(v) {
                    let m = secret_group(&caps);
                    if m.0 < m.1 {
                        user.push(Found { start: m.0, end: m.1, prio: KINDS.len() + i, name: *name });
                    }
                }
            }
            scan.found = union(std::mem::take(&mut scan.found), user);
        }
        scan
    }

    fn try_kind(&self, v: &[u8], p: usize, k: usize, found: &mut Vec<Found>, open_pem: &mut Option<usize>) {
        let kind = &self.kinds[k];
        let def = kind.def;
        if !def.before.allows(p.checked_sub(1).map(|i| v[i])) {
            return;
        }
        if def.name == PRIVATE_KEY {
            self.try_pem(v, p, k, found, open_pem);
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
        let caps = kind.re().captures(hay)?;
        let (s, e) = secret_group(&caps);
        let ok = e > s && kind.def.validate.is_none_or(|f| f(&hay[s..e]));
        ok.then_some((s, e))
    }

    /// A token hard-wrapped by a program: its run of token bytes continues at the start of the next line.
    /// Only accepted when the match really crosses a line break and the unjoined text did not match.
    fn joined(&self, kind: &Kind, v: &[u8], p: usize) -> Option<(usize, usize)> {
        let (text, map) = join_run(v, p, kind.def.max_len)?;
        let (s, e) = self.primary(kind, &text)?;
        let (vs, ve) = (map[s], map[e - 1] + 1);
        (ve - vs > e - s).then_some((vs, ve))
    }

    fn try_pem(&self, v: &[u8], p: usize, k: usize, found: &mut Vec<Found>, open_pem: &mut Option<usize>) {
        let kind = &self.kinds[k];
        let Some(head) = kind.re().find(&v[p..v.len().min(p + kind.def.max_len)]) else { return };
        let body_from = p + head.end();
        let limit = v.len().min(p + PEM_MAX);
        let mut at = body_from;
        let pem_end = || self.pem_end.get_or_init(|| Regex::new(PEM_END).expect("built-in regex compiles"));
        while let Some(i) = memchr::memmem::find(&v[at..limit], b"-----END ") {
            let q = at + i;
            if let Some(m) = pem_end().find(&v[q..v.len().min(q + 128)]) {
                found.push(Found { start: p, end: q + m.end(), prio: k, name: kind.name });
                return;
            }
            at = q + 1;
        }
        // A header already emitted (an idle flush let a typed `-----BEGIN ...-----` out before its line
        // ended) still holds its body back: it is in the look-behind context, and the block is open.
        if open_pem.is_none_or(|o| p < o) {
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
        let last_start = memchr::memrchr(b'\n', &v[floor..e]).map_or(floor, |i| floor + i + 1);
        if e - last_start < WRAP_MIN_WIDTH {
            return None; // a short line ends any wrap
        }
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
        for (cs, m) in self.cs.iter().flat_map(|cs| cs.ac.find_iter(&v[s..e]).map(move |m| (cs, m))) {
            let p = s + m.start();
            for &k in &cs.kinds[m.pattern().as_usize()] {
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
        let mut any = false;
        self.ci_finder.each(&self.ci, v, |_, _, _| any = true);
        any || self.cs.iter().any(|cs| cs.ac.is_match(v))
    }
}

/// Bytes a token may be made of (base64, base64url, hex, and the separators tokens use).
pub(crate) fn is_tok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=')
}

/// The run of token bytes from `p`, joined across `\n` / `\r\n` line breaks the way a program hard-wraps
/// at a fixed width: the first line is at least `WRAP_MIN_WIDTH` wide, every joined middle line has the
/// same width, the last fragment is no wider, and each continuation starts with a token byte. Returns the
/// joined text and, for each of its bytes, its offset in `v`; `None` when no break was crossed.
fn join_run(v: &[u8], p: usize, max: usize) -> Option<(Vec<u8>, Vec<usize>)> {
    let floor = p.saturating_sub(WRAP_MAX);
    let mut line_start = memchr::memrchr(b'\n', &v[floor..p]).map_or(floor, |i| floor + i + 1);
    let mut width: Option<usize> = None;
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
        let w = i - line_start;
        let same = match width {
            None => w >= WRAP_MIN_WIDTH,
            Some(first) => w == first,
        };
        if !same || breaks == WRAP_LINES || !v.get(after).is_some_and(|&b| is_tok(b)) {
            break;
        }
        width = Some(width.unwrap_or(w));
        breaks += 1;
        i = after;
        line_start = after;
    }
    let width = width?;
    (i - line_start <= width).then_some((text, map))
}

/// Every byte either list covers, as sorted non-overlapping spans: user patterns only add to the built-in
/// kinds (a user pattern that starts a byte before a private key block must not shorten what the block's
/// kind covers). Overlapping spans become one, named after the one that starts first (`extra` first on a
/// tie: a user's name for a secret the org also knows is the more specific).
pub(crate) fn union(base: Vec<Found>, extra: Vec<Found>) -> Vec<Found> {
    if extra.is_empty() {
        return base;
    }
    let mut all: Vec<(Found, bool)> = extra.into_iter().map(|f| (f, false)).collect();
    all.extend(base.into_iter().map(|f| (f, true)));
    all.sort_by_key(|(f, is_base)| (f.start, *is_base));
    let mut out: Vec<Found> = Vec::with_capacity(all.len());
    for (f, _) in all {
        match out.last_mut() {
            Some(last) if f.start < last.end => last.end = last.end.max(f.end),
            _ => out.push(f),
        }
    }
    out
}

/// The first participating capture group, else the whole match.
fn secret_group(caps: &regex::bytes::Captures<'_>) -> (usize, usize) {
    let m = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0)).expect("group 0 always exists");
    (m.start(), m.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built-in kinds compile lazily, at their first anchor hit: a typo must fail here, not in a recording.
    #[test]
    fn every_builtin_regex_compiles() {
        let e = Engine::new(Vec::new());
        assert_eq!(e.kinds.len(), KINDS.len());
        for k in &e.kinds {
            if let Err(err) = Regex::new(k.def.regex) {
                panic!("built-in kind {}: {err}", k.def.name);
            }
            k.re();
        }
        assert!(Regex::new(PEM_END).is_ok());
        assert!(e.kinds.iter().all(|k| k.re.get().is_some()), "all compiled once asked");
    }
}
