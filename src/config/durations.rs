//! Parses the human durations config uses (`50ms`, `3s`, `30m`), naming the key when one is wrong.

use crate::error::ConfigError;
use std::time::Duration;

/// Parses `value` for config key `key`; `0`/`0s` is zero.
pub fn parse(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let v = value.trim();
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(v).map_err(|e| ConfigError::Env {
        source_name: "configuration".into(),
        key: key.into(),
        msg: format!("`{value}` is not a duration ({e}); use e.g. 50ms, 3s, 30m"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("a", "50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse("a", "30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("a", "0").unwrap(), Duration::ZERO);
        assert_eq!(parse("a", "0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn error_names_key_and_value() {
        let e = parse("approval.request_ttl", "soon").unwrap_err().to_string();
        assert!(e.contains("approval.request_ttl") && e.contains("`soon`"), "{e}");
    }
}
