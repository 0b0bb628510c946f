//! Line numbers of keys in a config file, computed only when someone asks: the shim path never needs them
//! unless it has a warning or error to show, and parsing positions costs more than the config itself.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A file's text and, once asked for, its key path -> 1-based line map.
pub struct Lines {
    text: Arc<str>,
    map: OnceLock<BTreeMap<String, usize>>,
}

impl Lines {
    pub fn new(text: &str) -> Arc<Lines> {
        Arc::new(Lines { text: Arc::from(text), map: OnceLock::new() })
    }

    /// Line of a dotted key path (`process_config.commands[0].rules[1]`).
    pub fn get(&self, key: &str) -> Option<usize> {
        self.map.get_or_init(|| super::file_layer::line_map(&self.text)).get(key).copied()
    }
}

impl crate::model::KeyLines for Lines {
    fn line_of(&self, key: &str) -> Option<usize> {
        self.get(key)
    }
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lines({} bytes)", self.text.len())
    }
}

impl PartialEq for Lines {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Lines {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_on_first_use() {
        let l = Lines::new("a:\n  b: 1\n");
        assert!(l.map.get().is_none());
        assert_eq!(l.get("a.b"), Some(2));
        assert_eq!(l.get("nope"), None);
    }
}
