//! The `flags` table of DESIGN.md §4: `--k v`, `--k=v`, boolean `--k`, short `-n v`, stop at `--`, last wins.
//!
//! The ambiguity of `--flag value` versus a boolean flag followed by a positional argument is resolved as
//! CoTerm does: the next argument is the flag's value unless it starts with `-`. Two refinements: a lone `-`
//! (stdin, as in `kubectl apply -f -`) and a negative number (`--replicas -1`) are values, not flags.
//! A single-dash token names one flag with everything after the dash (`-it` is the flag `it`), since the
//! engine cannot know which tools bundle short options.

use std::collections::BTreeMap;

/// A flag's value: a string, or `true` for a flag given without a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum FlagValue {
    Bool(bool),
    Str(String),
}

/// Parses `args` (after the executable) into flag name -> value, the last occurrence winning.
pub fn parse_flags(args: &[String]) -> BTreeMap<String, FlagValue> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        let Some(body) = flag_body(a) else { continue };
        if let Some((k, v)) = body.split_once('=') {
            if !k.is_empty() {
                out.insert(k.to_string(), FlagValue::Str(v.to_string()));
            }
            continue;
        }
        match args.get(i) {
            Some(next) if next != "--" && !is_flag(next) => {
                out.insert(body.to_string(), FlagValue::Str(next.clone()));
                i += 1;
            }
            _ => {
                out.insert(body.to_string(), FlagValue::Bool(true));
            }
        }
    }
    out
}

/// The part after `--` or `-`, when `a` is a flag.
fn flag_body(a: &str) -> Option<&str> {
    if !is_flag(a) {
        return None;
    }
    let body = a.strip_prefix("--").unwrap_or_else(|| &a[1..]);
    (!body.is_empty()).then_some(body)
}

/// `-x`, `--x`: a flag; `-`, `-1`, `-0.5`: a value.
fn is_flag(a: &str) -> bool {
    let Some(rest) = a.strip_prefix('-') else { return false };
    if rest.is_empty() {
        return false;
    }
    !(rest.parse::<f64>().is_ok() && rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> FlagValue {
        FlagValue::Str(v.into())
    }
    const T: FlagValue = FlagValue::Bool(true);

    /// (name, args, expected flags)
    type Row<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, FlagValue)]);

    #[test]
    fn table() {
        let cases: &[Row] = &[
            ("long with value", &["scale", "--context", "prod"], &[("context", s("prod"))]),
            ("long with =", &["--context=prod-eu"], &[("context", s("prod-eu"))]),
            ("= with empty value", &["--context="], &[("context", s(""))]),
            ("= value containing =", &["--set=a=b"], &[("set", s("a=b"))]),
            ("boolean at end", &["delete", "--force"], &[("force", T)]),
            ("boolean before flag", &["--force", "--now"], &[("force", T), ("now", T)]),
            ("ambiguity: next non-dash arg is the value", &["--force", "pod/x"], &[("force", s("pod/x"))]),
            ("short with value", &["-n", "kube-system"], &[("n", s("kube-system"))]),
            ("short boolean", &["-A"], &[("A", T)]),
            ("short =", &["-n=web"], &[("n", s("web"))]),
            ("bundled short is one name", &["-it", "pod"], &[("it", s("pod"))]),
            ("repeated: last wins", &["--context", "a", "--context=b"], &[("context", s("b"))]),
            ("repeated boolean then value", &["--v", "--v=3"], &[("v", s("3"))]),
            ("stop at --", &["exec", "-n", "x", "--", "sh", "--context", "evil"], &[("n", s("x"))]),
            ("-- right after flag keeps it boolean", &["--dry-run", "--", "x"], &[("dry-run", T)]),
            ("stdin dash is a value", &["apply", "-f", "-"], &[("f", s("-"))]),
            ("negative number is a value", &["--replicas", "-1"], &[("replicas", s("-1"))]),
            ("quoted value with spaces", &["--message", "hello world"], &[("message", s("hello world"))]),
            ("unicode key and value", &["--ñame", "zürich-プロッド"], &[("ñame", s("zürich-プロッド"))]),
            ("lone dashes ignored", &["---"], &[("-", T)]),
            ("no flags", &["get", "pods"], &[]),
            ("positional after value", &["--context", "p", "scale"], &[("context", s("p"))]),
        ];
        for (name, args, want) in cases {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let got = parse_flags(&args);
            let want: BTreeMap<String, FlagValue> =
                want.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            assert_eq!(got, want, "case `{name}`");
        }
    }
}
