//! A string that must never be printed: API and application keys.

use std::fmt;

/// Holds a key; `Debug` and `Display` show only a mask (`***` + last 4 characters of long keys), so a key
/// cannot leak through logs, error chains or `{:?}` of a struct that contains it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The real value, for the one place that needs it: the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What users see: enough to tell two keys apart, never enough to use one.
    pub fn masked(&self) -> String {
        let n = self.0.chars().count();
        if n >= 16 {
            let tail: String = self.0.chars().skip(n - 4).collect();
            format!("***{tail}")
        } else {
            "***".to_string()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = "0123456789abcdef0123456789abcdef";
        let s = Secret::new(key);
        for shown in [format!("{s}"), format!("{s:?}"), format!("{:?}", Some(&s)), s.masked()] {
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        assert_eq!(s.masked(), "***cdef");
        assert_eq!(s.expose(), key);
    }

    #[test]
    fn short_keys_are_fully_masked() {
        assert_eq!(Secret::new("abc").to_string(), "***");
        assert_eq!(format!("{:?}", Secret::new("abcdefgh")), "Secret(***)");
    }
}
