//! The typed values behind config's human durations (`50ms`, `3s`, `30m`) and sizes (`2GiB`): parsed when a
//! layer is deserialized, so a bad value is an error at load naming the file, line and key (DESIGN.md §3.3),
//! the variable or the `--set` flag, never a surprise in the middle of a session. Each keeps the text as
//! written, which is what `config show` prints back and what the layers merge.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Parses one duration as config writes it: `0` (no unit) is zero; anything else needs a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let v = text.trim();
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. 50ms, 3s, 30m, 90d"))
}

/// A duration from config (zero allowed: for most keys it means "off" or "no limit").
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigDuration {
    text: String,
    value: Duration,
}

impl ConfigDuration {
    /// Parses `text`; the error says what is wrong and gives examples (serde adds file, line and key).
    pub fn parse(text: &str) -> Result<ConfigDuration, String> {
        Ok(ConfigDuration { value: parse_duration(text)?, text: text.trim().to_string() })
    }

    /// For defaults written in code: `text` must parse.
    pub(crate) fn lit(text: &str) -> ConfigDuration {
        ConfigDuration::parse(text).unwrap_or_else(|e| panic!("built-in default: {e}"))
    }

    /// The value.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// The text as written in the layer it came from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for ConfigDuration {
    /// For tests and defaults; panics on a value that does not parse.
    fn from(text: &str) -> Self {
        ConfigDuration::lit(text)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Reads a config scalar and parses it in place (so that serde names the key of a bad value): text (`30m`,
/// `2GiB`) or a bare number, which `parse` receives as text and refuses or accepts (`0`, a number of bytes).
struct Scalar<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<'de, T> Visitor<'de> for Scalar<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

/// A bare number is a duration only when it is `0`: anything else needs a unit.
fn number_needs_unit(text: &str) -> Result<(), String> {
    if text.trim() != "0" && text.trim().parse::<i64>().is_ok() {
        return Err(format!("`{}` has no unit; write e.g. {0}ms, {0}s or {0}m", text.trim()));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Scalar {
            expecting: "a duration such as 50ms, 3s, 30m or 90d",
            parse: |t| number_needs_unit(t).and_then(|()| ConfigDuration::parse(t)),
        })
    }
}

/// A duration from config that must be greater than zero (a timeout, a poll interval, a request's lifetime).
#[derive(Clone, PartialEq, Eq)]
pub struct PositiveDuration(ConfigDuration);

impl PositiveDuration {
    /// Parses `text`, refusing zero.
    pub fn parse(text: &str) -> Result<PositiveDuration, String> {
        let d = ConfigDuration::parse(text)?;
        if d.get().is_zero() {
            return Err(format!("`{text}` must be greater than zero (e.g. 50ms, 3s, 30m)"));
        }
        Ok(PositiveDuration(d))
    }

    /// The value, never zero.
    pub fn get(&self) -> Duration {
        self.0.get()
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for PositiveDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PositiveDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<&str> for PositiveDuration {
    /// For tests and defaults; panics on a value that does not parse or is zero.
    fn from(text: &str) -> Self {
        PositiveDuration::parse(text).unwrap_or_else(|e| panic!("built-in default: {e}"))
    }
}

impl Serialize for PositiveDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Scalar {
            expecting: "a duration greater than zero, such as 50ms, 3s or 30m",
            parse: |t| number_needs_unit(t).and_then(|()| PositiveDuration::parse(t)),
        })
    }
}

/// A size from config (`2GiB`, `500MB`, or a number of bytes); `0` is zero.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigSize {
    text: String,
    bytes: u64,
}

impl ConfigSize {
    /// Parses `text` as a size.
    pub fn parse(text: &str) -> Result<ConfigSize, String> {
        let bytes = text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| format!("`{text}` is not a size ({e}); use e.g. 2GiB, 500MB, 0"))?;
        Ok(ConfigSize { text: text.trim().to_string(), bytes: bytes.0 })
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ConfigSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for ConfigSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for ConfigSize {
    /// For tests and defaults; panics on a value that does not parse.
    fn from(text: &str) -> Self {
        ConfigSize::parse(text).unwrap_or_else(|e| panic!("built-in default: {e}"))
    }
}

impl Serialize for ConfigSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ConfigSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Scalar {
            expecting: "a size such as 2GiB, 500MB or a number of bytes",
            parse: |t| {
                if t.trim().starts_with('-') {
                    return Err(format!("`{t}` is negative; a size is 0 or more"));
                }
                ConfigSize::parse(t)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(ConfigDuration::parse("50ms").unwrap().get(), Duration::from_millis(50));
        assert_eq!(ConfigDuration::parse("30m").unwrap().get(), Duration::from_secs(1800));
        assert_eq!(ConfigDuration::parse("0").unwrap().get(), Duration::ZERO);
        assert_eq!(ConfigDuration::parse("0s").unwrap().get(), Duration::ZERO);
        assert_eq!(ConfigDuration::parse(" 3s ").unwrap().as_str(), "3s");
    }

    #[test]
    fn error_names_the_value_and_gives_examples() {
        let e = ConfigDuration::parse("soon").unwrap_err();
        assert!(e.contains("`soon`") && e.contains("30m"), "{e}");
        let e = PositiveDuration::parse("0s").unwrap_err();
        assert!(e.contains("greater than zero"), "{e}");
        assert!(ConfigSize::parse("lots").unwrap_err().contains("`lots` is not a size"));
    }

    #[test]
    fn deserializes_text_and_bare_zero_and_refuses_a_unitless_number() {
        let d: ConfigDuration = serde_yaml::from_str("0").unwrap();
        assert!(d.get().is_zero());
        let d: ConfigDuration = serde_yaml::from_str("2h").unwrap();
        assert_eq!(d.get(), Duration::from_secs(7200));
        let e = serde_yaml::from_str::<ConfigDuration>("10").unwrap_err().to_string();
        assert!(e.contains("`10` has no unit"), "{e}");
        assert!(serde_yaml::from_str::<PositiveDuration>("0").is_err());
        let s: ConfigSize = serde_yaml::from_str("1024").unwrap();
        assert_eq!(s.bytes(), 1024);
        let s: ConfigSize = serde_yaml::from_str("2GiB").unwrap();
        assert_eq!(s.bytes(), 2 << 30);
    }

    #[test]
    fn serializes_as_written() {
        let d = ConfigDuration::parse("90d").unwrap();
        assert_eq!(serde_yaml::to_string(&d).unwrap().trim(), "90d");
        let back: ConfigDuration = serde_yaml::from_str(&serde_yaml::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
