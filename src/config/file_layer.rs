//! Reads one layer file: permission checks, located parse errors, and a key -> line map for provenance.

use super::lines::Lines;
use super::org_cache::OrgCache;
use super::settings::Settings;
use crate::error::ConfigError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One config file as read from disk, validated on its own so that errors point into it.
#[derive(Debug, Clone)]
pub struct LayerFile {
    pub path: PathBuf,
    /// The file alone, every missing key defaulted.
    pub settings: Settings,
    /// The file's own keys as a YAML tree (only what it sets), for merging and provenance.
    pub value: Arc<serde_yaml::Value>,
    /// Key path -> line, computed on first use.
    pub lines: Arc<Lines>,
}

/// Which permission rule a file is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Organisation policy: refused unless it and its directories are owned by root (or us) and writable by
    /// nobody else ([`super::trust`]).
    Org,
    /// The user's own file: warn when others can read secrets in it.
    User,
}

/// Reads and validates `path`. `Ok(None)` when it does not exist. Warnings (loose permissions on a user
/// file holding keys) are pushed to `warnings`.
pub fn read(path: &Path, trust: Trust, warnings: &mut Vec<String>) -> Result<Option<LayerFile>, ConfigError> {
    read_cached(path, trust, warnings, None)
}

/// [`read`], with an organisation file's parse taken from (or stored in) `cache`, keyed by the file's bytes.
/// The file is still read and its permissions checked on every call: only the parse is remembered.
pub fn read_cached(
    path: &Path,
    trust: Trust,
    warnings: &mut Vec<String>,
    cache: Option<&OrgCache>,
) -> Result<Option<LayerFile>, ConfigError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::Io { path: path.into(), msg: e.to_string() }),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Io { path: path.into(), msg: format!("cannot read: {e}") })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    if trust == Trust::Org {
        super::trust::check_org(path, "policy file")?;
    }
    let layer = match cache {
        Some(cache) if trust == Trust::Org => parse_cached(path, &text, cache)?,
        _ => parse(path, &text)?,
    };
    if trust == Trust::User
        && mode & 0o044 != 0
        && (layer.settings.connection_config.api_key.is_some()
            || layer.settings.connection_config.app_key.is_some())
    {
        warnings.push(format!(
            "{}: holds Datadog keys but is readable by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(Some(layer))
}

/// Parses YAML text as a layer; errors carry file, line, column and the key path.
pub fn parse(path: &Path, text: &str) -> Result<LayerFile, ConfigError> {
    let value: serde_yaml::Value = if text.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))?
    };
    let value = match value {
        serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
        v @ serde_yaml::Value::Mapping(_) => v,
        _ => {
            return Err(ConfigError::invalid(
                path,
                Some(1),
                Some(1),
                "the top level must be a mapping of keys",
            ));
        }
    };
    // One parse on the hot path; the located error comes from a second parse only when something is wrong.
    let settings: Settings = match <Settings as serde::Deserialize>::deserialize(&value) {
        Ok(s) => s,
        Err(e) => {
            return Err(match serde_yaml::from_str::<Settings>(text) {
                Err(located) => yaml_error(path, &located),
                Ok(_) => ConfigError::invalid(path, None, None, e.to_string()),
            })
        }
    };
    let lines = Lines::new(text);
    check_paths(path, &settings, &lines)?;
    Ok(LayerFile { path: path.into(), settings, value: Arc::new(value), lines })
}

/// A relative path in a layer is an error naming the file, line and key ([`Settings::relative_path`]).
fn check_paths(path: &Path, settings: &Settings, lines: &Lines) -> Result<(), ConfigError> {
    match settings.relative_path() {
        None => Ok(()),
        Some((key, p)) => Err(ConfigError::invalid(
            path,
            lines.get(key),
            None,
            format!("key `{key}`: `{}` is not an absolute path; write it in full (no `~`)", p.display()),
        )),
    }
}

/// Names cached parses; bump the version when what a parse yields changes (the schema of [`Settings`] is
/// checked again on every hit, so a new key or type is caught either way).
const PARSE_KIND: &str = "yaml-v1";

/// [`parse`] through the organisation's cache: the file's YAML tree is stored as JSON under the SHA-256 of
/// its text (a JSON parse is several times cheaper than libyaml's scanner), and [`Settings`] are deserialized
/// from the tree on every call, exactly as [`parse`] does. A tree that JSON cannot carry unchanged (a YAML
/// tag, a non-string key) is not cached; a miss, a corrupt entry or a tree that no longer fits the schema
/// falls back to [`parse`], which is also what names the error.
pub fn parse_cached(path: &Path, text: &str, cache: &OrgCache) -> Result<LayerFile, ConfigError> {
    let key = super::org_cache::key(&[text.as_bytes()]);
    if let Some(json) = cache.get(PARSE_KIND, &key) {
        if let Ok(value @ serde_yaml::Value::Mapping(_)) = serde_json::from_slice::<serde_yaml::Value>(&json)
        {
            if let Ok(settings) = <Settings as serde::Deserialize>::deserialize(&value) {
                let lines = Lines::new(text);
                check_paths(path, &settings, &lines)?;
                return Ok(LayerFile { path: path.into(), settings, value: Arc::new(value), lines });
            }
        }
    }
    let layer = parse(path, text)?;
    if let Ok(json) = serde_json::to_vec(&*layer.value) {
        if serde_json::from_slice::<serde_yaml::Value>(&json).is_ok_and(|back| back == *layer.value) {
            cache.put(PARSE_KIND, &key, &json);
        }
    }
    Ok(layer)
}

/// Turns serde_yaml's `a.b[1]: message at line L column C` into a located, key-naming error.
pub fn yaml_error(path: &Path, e: &serde_yaml::Error) -> ConfigError {
    let loc = e.location();
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let msg = match msg.split_once(": ") {
        Some((key, rest)) if !key.contains(' ') && !key.is_empty() => format!("key `{key}`: {rest}"),
        _ => msg,
    };
    ConfigError::invalid(path, loc.as_ref().map(|l| l.line()), loc.as_ref().map(|l| l.column()), msg)
}

/// Maps each key path to the line it is written on; empty when the YAML uses features the marked parser
/// does not support (provenance then shows the file without a line).
pub fn line_map(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok(node) = marked_yaml::parse_yaml(0, text) {
        walk(&node, String::new(), &mut out);
    }
    out
}

fn walk(node: &marked_yaml::Node, prefix: String, out: &mut BTreeMap<String, usize>) {
    match node {
        marked_yaml::Node::Mapping(m) => {
            for (k, v) in m.iter() {
                let key = if prefix.is_empty() {
                    k.as_str().to_string()
                } else {
                    format!("{prefix}.{}", k.as_str())
                };
                if let Some(s) = k.span().start() {
                    out.insert(key.clone(), s.line());
                }
                walk(v, key, out);
            }
        }
        marked_yaml::Node::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                let key = format!("{prefix}[{i}]");
                if let Some(st) = v.span().start() {
                    out.insert(key.clone(), st.line());
                }
                walk(v, key, out);
            }
        }
        marked_yaml::Node::Scalar(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("/etc/ddcoterm/config.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_file_line_column_and_path() {
        let e = err("process_config:\n  commands:\n    - command: kubectl\n      lintz: []\n");
        assert!(e.starts_with("/etc/ddcoterm/config.yaml:4:7: key `process_config.commands[0]`"), "{e}");
        assert!(e.contains("unknown field `lintz`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key() {
        let e = err("connection_config:\n  port: https\n");
        assert!(e.contains(":2:9: key `connection_config.port`: invalid type"), "{e}");
    }

    #[test]
    fn unknown_action_is_rejected() {
        let e = err("process_config:\n  default_actions: [record, recrod]\n");
        assert!(e.contains("key `process_config.default_actions[1]`"), "{e}");
        assert!(e.contains("unknown variant `recrod`"), "{e}");
    }

    #[test]
    fn bad_yaml_is_located() {
        let e = err("a: [\n");
        assert!(e.starts_with("/etc/ddcoterm/config.yaml:"), "{e}");
    }

    #[test]
    fn a_relative_path_names_file_line_and_key() {
        let e = err("recording:\n  input: true\n  dir: recs\n");
        assert!(
            e.starts_with("/etc/ddcoterm/config.yaml:3: key `recording.dir`: `recs` is not an absolute"),
            "{e}"
        );
        let e = err("server:\n  token_file: ~/token\n");
        assert!(e.contains(":2: key `server.token_file`"), "{e}");
        assert!(parse(Path::new("x"), "spool:\n  dir: /var/spool/x\n").is_ok());
    }

    #[test]
    fn top_level_must_be_mapping() {
        assert!(err("- a\n- b\n").contains("top level must be a mapping"));
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_layers() {
        for t in ["", "# nothing\n", "\n\n"] {
            let l = parse(Path::new("x.yaml"), t).unwrap();
            assert_eq!(l.settings, Settings::default());
        }
    }

    #[test]
    fn line_map_points_at_keys_and_items() {
        let m = line_map("a:\n  b: 1\n  c:\n    - x\n    - y: 2\n");
        assert_eq!(m["a"], 1);
        assert_eq!(m["a.b"], 2);
        assert_eq!(m["a.c[1]"], 5);
        assert_eq!(m["a.c[1].y"], 5);
    }

    #[test]
    fn a_cached_parse_is_the_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("etc");
        std::fs::create_dir(&sys).unwrap();
        std::fs::set_permissions(&sys, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let cache = OrgCache::new(&sys);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_fixtures");
        let mut texts: Vec<String> = std::fs::read_dir(&fixtures)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        texts.push(
            "connection_config:\n  port: 8443\nrecording:\n  input: true\nteams: {sre: [ops]}\n".into(),
        );
        for text in &texts {
            let fresh = parse(Path::new("x.yaml"), text).unwrap();
            let stored = parse_cached(Path::new("x.yaml"), text, &cache).unwrap();
            let hit = parse_cached(Path::new("x.yaml"), text, &cache).unwrap();
            for got in [&stored, &hit] {
                assert_eq!(got.settings, fresh.settings, "{text}");
                assert_eq!(got.value, fresh.value, "{text}");
            }
        }
        let key = crate::config::org_cache::key(&[texts[0].as_bytes()]);
        assert!(cache.get(PARSE_KIND, &key).is_some(), "stored");
        // A YAML tag does not survive JSON: such a file is parsed every time, never cached wrongly.
        let tagged = "recording:\n  shell: !custom bash\n";
        let _ = parse_cached(Path::new("t.yaml"), tagged, &cache);
        assert!(cache.get(PARSE_KIND, &crate::config::org_cache::key(&[tagged.as_bytes()])).is_none());
        // A parse error is the same located error, cached or not.
        let bad = "process_config:\n  commands:\n    - command: kubectl\n      lintz: []\n";
        assert_eq!(
            parse_cached(Path::new("b.yaml"), bad, &cache).unwrap_err().to_string(),
            parse(Path::new("b.yaml"), bad).unwrap_err().to_string()
        );
    }

    #[test]
    fn coterm_rule_true_is_a_snippet() {
        let l = parse(Path::new("x"), "process_config:\n  commands:\n    - command: k\n      rules:\n        - rule: true\n          actions: []\n").unwrap();
        assert_eq!(l.settings.process_config.commands[0].rules[0].rule, "true");
    }
}
