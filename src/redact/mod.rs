//! Streaming secret redaction: pure, no I/O. Bytes in, bytes safe for disk and network out.
//!
//! `Redactor::from_settings` compiles the built-in kinds (`kinds.rs`) and `redaction.patterns` once;
//! `Redactor::stream` gives one `StreamRedactor` per byte stream (`stream.rs`), which holds back a bounded
//! tail so that a secret split across reads, escape sequences, hard-wrapped lines or a multi-line private key
//! block is still caught. Every secret becomes `[REDACTED:<kind>]`. See `docs/redact.md`.

mod kinds;
mod scan;
mod stream;
mod view;

use std::sync::Arc;

use regex::bytes::Regex;

use crate::config::settings::RedactionSettings;
use crate::error::ConfigError;

pub use stream::StreamRedactor;

/// Compiled patterns, shared by every stream it hands out (cheap to clone).
#[derive(Debug, Clone)]
pub struct Redactor {
    engine: Arc<scan::Engine>,
    enabled: bool,
}

impl Redactor {
    /// Builds the built-in kinds plus `redaction.patterns`. A bad user pattern is a configuration error that
    /// names `redaction.patterns[i]` and the pattern's name, so it is fixed before any session starts.
    pub fn from_settings(s: &RedactionSettings) -> Result<Redactor, ConfigError> {
        let mut user = Vec::with_capacity(s.patterns.len());
        for (i, p) in s.patterns.iter().enumerate() {
            let bad = |msg: String| ConfigError::Env {
                source_name: "configuration".into(),
                key: format!("redaction.patterns[{i}]"),
                msg,
            };
            let name_ok = !p.name.is_empty()
                && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_ok {
                return Err(bad(format!(
                    "pattern name `{}` must be non-empty and use only letters, digits, `_`, `-` or `.` \
                     (it becomes `[REDACTED:<name>]`)",
                    p.name
                )));
            }
            let re =
                Regex::new(&p.regex).map_err(|e| bad(format!("pattern `{}`: invalid regex: {e}", p.name)))?;
            if re.is_match(b"") {
                return Err(bad(format!(
                    "pattern `{}`: the regex matches the empty string; make it require at least one character",
                    p.name
                )));
            }
            user.push((p.name.clone(), re));
        }
        Ok(Redactor { engine: Arc::new(scan::Engine::new(user)), enabled: s.enabled })
    }

    /// Redacts a complete buffer (command lines, event fields): a stream fed in reads and finished, which
    /// keeps the working set in cache for large buffers.
    pub fn redact_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut s = self.stream();
        let mut out = Vec::with_capacity(data.len() + 64);
        for chunk in data.chunks(64 * 1024) {
            s.push_into(chunk, &mut out);
        }
        out.extend(s.finish());
        out
    }

    /// Redacts a complete string; the result is valid UTF-8 because only whole ASCII-bounded spans change.
    pub fn redact_str(&self, s: &str) -> String {
        match String::from_utf8(self.redact_bytes(s.as_bytes())) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// A fresh stream state for one byte stream (one per PTY direction).
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor::new(self.engine.clone(), self.enabled)
    }

    /// Whether redaction is on (`redaction.enabled`); when off, streams pass bytes through untouched.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Names of the built-in kinds, in priority order (the `<kind>` of `[REDACTED:<kind>]`).
    pub fn builtin_kinds() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for k in kinds::KINDS {
            if !names.contains(&k.name) {
                names.push(k.name);
            }
        }
        names
    }

    /// Every kind this redactor can emit: the built-in ones, then the names of `redaction.patterns`.
    pub fn kinds(&self) -> Vec<&str> {
        self.engine.names.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::RedactionPattern;

    fn with(patterns: &[(&str, &str)]) -> Result<Redactor, ConfigError> {
        let patterns = patterns
            .iter()
            .map(|(n, r)| RedactionPattern { name: n.to_string(), regex: r.to_string() })
            .collect();
        Redactor::from_settings(&RedactionSettings { enabled: true, patterns })
    }

    #[test]
    fn builtin_kinds_are_unique_and_listed() {
        let k = Redactor::builtin_kinds();
        assert!(k.contains(&"aws_access_key_id") && k.contains(&"private_key") && k.contains(&"password"));
        let r = with(&[("employee_id", r"EMP-\d{6}")]).unwrap();
        assert_eq!(r.kinds().len(), k.len() + 1);
        assert_eq!(r.kinds().last(), Some(&"employee_id"));
    }

    #[test]
    fn bad_user_patterns_name_their_index_and_name() {
        let e = with(&[("ok", "x+"), ("broken", "(unclosed")]).unwrap_err().to_string();
        assert!(e.contains("redaction.patterns[1]") && e.contains("broken"), "{e}");
        let e = with(&[("empty", "a*")]).unwrap_err().to_string();
        assert!(e.contains("redaction.patterns[0]") && e.contains("empty string"), "{e}");
        let e = with(&[("bad name]", "x")]).unwrap_err().to_string();
        assert!(e.contains("redaction.patterns[0]") && e.contains("bad name]"), "{e}");
    }

    #[test]
    fn disabled_passes_everything_through() {
        let r = Redactor::from_settings(&RedactionSettings { enabled: false, patterns: vec![] }).unwrap();
        let s = "password=hunter2 AKIAIOSFODNN7EXAMPLE";
        assert_eq!(r.redact_str(s), s);
        let mut st = r.stream();
        assert_eq!(st.push(s.as_bytes()), s.as_bytes());
    }
}
