//! Streaming secret redaction: pure, no I/O. Bytes in, bytes safe for disk and network out.

use crate::config::settings::RedactionSettings;

/// Compiled patterns; cheap to clone a stream from.
#[derive(Debug, Clone)]
pub struct Redactor {
    patterns: Vec<(String, regex::bytes::Regex)>,
    enabled: bool,
}

impl Redactor {
    /// Builds the built-in kinds plus `redaction.patterns`; a bad user regex names its pattern.
    pub fn from_settings(s: &RedactionSettings) -> Result<Redactor, crate::error::ConfigError> {
        let mut patterns = Vec::new();
        for (i, p) in s.patterns.iter().enumerate() {
            let re = regex::bytes::Regex::new(&p.regex).map_err(|e| {
                crate::error::ConfigError::Policy(format!("redaction.patterns[{i}] `{}`: {e}", p.name))
            })?;
            patterns.push((p.name.clone(), re));
        }
        Ok(Redactor { patterns, enabled: s.enabled })
    }

    /// Redacts a complete buffer (command lines, event fields).
    pub fn redact_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut s = self.stream();
        let mut out = s.push(data);
        out.extend(s.finish());
        out
    }

    /// Redacts a complete string.
    pub fn redact_str(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.redact_bytes(s.as_bytes())).into_owned()
    }

    /// A stream state for one byte stream (one per PTY direction).
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor { redactor: self.clone(), pending: Vec::new() }
    }
}

/// Holds back a bounded tail so that a secret split across pushes is still caught.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl StreamRedactor {
    /// Feeds bytes; returns the redacted bytes that are now safe to emit (possibly fewer than fed).
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let cut = match memchr::memrchr(b'\n', &self.pending) {
            Some(i) => i + 1,
            None if self.pending.len() > 64 * 1024 => self.pending.len(),
            None => return Vec::new(),
        };
        let rest = self.pending.split_off(cut);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.apply(&ready)
    }

    /// Flushes everything held back (end of stream).
    pub fn finish(&mut self) -> Vec<u8> {
        let ready = std::mem::take(&mut self.pending);
        self.apply(&ready)
    }

    fn apply(&self, data: &[u8]) -> Vec<u8> {
        if !self.redactor.enabled {
            return data.to_vec();
        }
        let mut out = data.to_vec();
        for (name, re) in &self.redactor.patterns {
            let rep = format!("[REDACTED:{name}]");
            out = re.replace_all(&out, rep.as_bytes()).into_owned();
        }
        out
    }
}
