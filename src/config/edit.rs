//! Edits the user's `config.yaml` as text (`ddcoterm init --force`): only the lines of the keys asked for
//! change, so the file's comments, layout and every other key stay as the user wrote them.

use crate::fsutil;
use std::path::{Path, PathBuf};

/// Edits `text` so that `connection_config.<key>` is `Some(value)` or absent (`None`), changing only those
/// lines (a missing key is added right under `connection_config:`, a missing section at the end). The result
/// is checked by parsing it: the keys hold what was asked and everything else is what it was, else an error.
pub fn set_connection_keys(text: &str, edits: &[(&str, Option<&str>)]) -> Result<String, String> {
    use serde_yaml::Value;
    let before: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML ({e})"))?
    };
    if !(before.is_null() || before.is_mapping()) {
        return Err("the top level is not a mapping".into());
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let section = lines.iter().position(|l| {
        l.strip_prefix("connection_config:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim().starts_with('#'))
    });
    match section {
        None => {
            if before.get("connection_config").is_some() {
                return Err("`connection_config` is not written as a block (`connection_config:` on its own line); edit it by hand".into());
            }
            lines.push("connection_config:".into());
            for (k, v) in edits {
                if let Some(v) = v {
                    lines.push(format!("  {k}: {}", scalar(v)));
                }
            }
        }
        Some(head) => {
            // The section's lines: blank, comment or indented, up to the next top-level line.
            let end = (head + 1..lines.len())
                .find(|&i| {
                    let l = &lines[i];
                    !(l.trim().is_empty() || l.starts_with(' ') || l.trim_start().starts_with('#'))
                })
                .unwrap_or(lines.len());
            let indent = (head + 1..end)
                .map(|i| &lines[i])
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map_or(2, |l| l.len() - l.trim_start().len());
            let pad = " ".repeat(indent);
            let mut missing = Vec::new();
            let mut remove = Vec::new();
            for (k, v) in edits {
                let at = (head + 1..end).find(|&i| {
                    lines[i].strip_prefix(&pad).and_then(|r| r.strip_prefix(k)).is_some_and(|r| {
                        !lines[i][indent..].starts_with(' ') && r.trim_start().starts_with(':')
                    })
                });
                match (at, v) {
                    (Some(i), Some(v)) => {
                        let comment = trailing_comment(&lines[i]);
                        lines[i] = format!("{pad}{k}: {}{comment}", scalar(v));
                        // A value continued on more-indented lines (a block scalar) is replaced whole.
                        remove.extend(continuation(&lines, i, end, indent));
                    }
                    (Some(i), None) => {
                        remove.push(i);
                        remove.extend(continuation(&lines, i, end, indent));
                    }
                    (None, Some(v)) => missing.push(format!("{pad}{k}: {}", scalar(v))),
                    (None, None) => {}
                }
            }
            remove.sort_unstable();
            for i in remove.into_iter().rev() {
                lines.remove(i);
            }
            for (n, l) in missing.into_iter().enumerate() {
                lines.insert(head + 1 + n, l);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    // Proof: exactly the asked keys changed.
    let after: Value = serde_yaml::from_str(&out).map_err(|e| format!("could not be edited safely ({e})"))?;
    let mut want = if before.is_null() { Value::Mapping(Default::default()) } else { before };
    if let Some(root) = want.as_mapping_mut() {
        let cc = root
            .entry(Value::from("connection_config"))
            .or_insert_with(|| Value::Mapping(Default::default()));
        if cc.is_null() {
            *cc = Value::Mapping(Default::default());
        }
        if let Some(m) = cc.as_mapping_mut() {
            for (k, v) in edits {
                match v {
                    Some(v) => m.insert(Value::from(*k), Value::from(*v)),
                    None => m.remove(Value::from(*k)),
                };
            }
        }
    }
    if after != want {
        return Err(
            "could not be edited safely (an unusual layout around `connection_config`); edit it by hand"
                .into(),
        );
    }
    Ok(out)
}

/// A YAML scalar for `v` (quoted when it needs to be).
fn scalar(v: &str) -> String {
    serde_yaml::to_string(v).map(|s| s.trim_end().to_string()).unwrap_or_else(|_| format!("{v:?}"))
}

/// The ` # comment` at the end of a `key: value` line (outside quotes), with its leading spaces.
fn trailing_comment(line: &str) -> String {
    let (mut single, mut double) = (false, false);
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single && (i == 0 || b[i - 1] != b'\\') => double = !double,
            b'#' if !single && !double && i > 0 && (b[i - 1] == b' ' || b[i - 1] == b'\t') => {
                let start = line[..i].trim_end().len();
                return line[start..].to_string();
            }
            _ => {}
        }
    }
    String::new()
}

/// Lines after `i` (before `end`) indented deeper than `indent`: the rest of a multi-line value.
fn continuation(lines: &[String], i: usize, end: usize, indent: usize) -> Vec<usize> {
    (i + 1..end)
        .take_while(|&j| {
            let l = &lines[j];
            !l.trim().is_empty() && l.len() - l.trim_start().len() > indent
        })
        .collect()
}

/// Why [`write_connection_keys`] wrote nothing.
#[derive(Debug)]
pub enum WriteError {
    /// The existing file could not be edited (not YAML, `connection_config` not a block...): the user's to fix.
    Edit {
        path: PathBuf,
        reason: String,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Edit { path, reason } => write!(f, "{}: {reason}; nothing written", path.display()),
            WriteError::Io { path, source } => write!(f, "writing {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for WriteError {}

/// Sets `connection_config.{host,api_key,app_key}` in the user file at `path` (0600, its directory 0700),
/// atomically. An existing file (`merge`) is edited as text, only on the lines of those keys (and `port`,
/// which the host now carries): its comments, layout and every other key stay as they were. An application
/// key not given is left as it is.
pub fn write_connection_keys(
    path: &Path,
    host: &str,
    api_key: &str,
    app_key: Option<&str>,
    merge: bool,
) -> Result<(), WriteError> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
        move |source| WriteError::Io { path: path.to_path_buf(), source }
    }
    let mut edits = vec![("host", Some(host)), ("port", None), ("api_key", Some(api_key))];
    if let Some(k) = app_key {
        edits.push(("app_key", Some(k)));
    }
    let text = if merge && path.exists() {
        let old = std::fs::read_to_string(path).map_err(io(path))?;
        set_connection_keys(&old, &edits)
            .map_err(|reason| WriteError::Edit { path: path.to_path_buf(), reason })?
    } else {
        set_connection_keys("# Written by `ddcoterm init`; holds keys: keep it 0600.\n", &edits)
            .map_err(|reason| WriteError::Edit { path: path.to_path_buf(), reason })?
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fsutil::ensure_private_dir(dir).map_err(io(dir))?;
    fsutil::atomic_write(dir, path, text.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENTED: &str = concat!(
        "# My ddcoterm settings (hand-written)\n",
        "recording:\n",
        "  input: true   # keystrokes too\n",
        "\n",
        "# Datadog\n",
        "connection_config:\n",
        "    # the EU site\n",
        "    host: app.datadoghq.eu\n",
        "    port: 443\n",
        "    api_key: \"old-api\"   # rotated yearly\n",
        "    app_key: old-app\n",
        "\n",
        "spool:\n",
        "  max_bytes: 1073741824 # 1 GiB\n",
    );

    #[test]
    fn force_edits_only_the_keys_it_writes() {
        let out = set_connection_keys(
            COMMENTED,
            &[("host", Some("https://us5.datadoghq.com")), ("port", None), ("api_key", Some("new-api"))],
        )
        .unwrap();
        assert_eq!(
            out,
            concat!(
                "# My ddcoterm settings (hand-written)\n",
                "recording:\n",
                "  input: true   # keystrokes too\n",
                "\n",
                "# Datadog\n",
                "connection_config:\n",
                "    # the EU site\n",
                "    host: https://us5.datadoghq.com\n",
                "    api_key: new-api   # rotated yearly\n",
                "    app_key: old-app\n",
                "\n",
                "spool:\n",
                "  max_bytes: 1073741824 # 1 GiB\n",
            )
        );
    }

    #[test]
    fn missing_keys_and_sections_are_added() {
        let out = set_connection_keys(
            "# mine\nconnection_config:\n  host: x  # a\n",
            &[("host", Some("h")), ("app_key", Some("k"))],
        )
        .unwrap();
        assert_eq!(out, "# mine\nconnection_config:\n  app_key: k\n  host: h  # a\n");
        let out = set_connection_keys(
            "# only a comment\nrecording:\n  input: true\n",
            &[("api_key", Some("k")), ("port", None)],
        )
        .unwrap();
        assert_eq!(out, "# only a comment\nrecording:\n  input: true\nconnection_config:\n  api_key: k\n");
        let out = set_connection_keys("", &[("api_key", Some("k"))]).unwrap();
        assert_eq!(out, "\nconnection_config:\n  api_key: k\n".trim_start());
    }

    #[test]
    fn values_are_quoted_when_yaml_needs_it() {
        let out = set_connection_keys("", &[("api_key", Some("#not-a-comment")), ("app_key", Some("yes"))])
            .unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(v["connection_config"]["api_key"], "#not-a-comment");
        assert_eq!(v["connection_config"]["app_key"], "yes");
    }

    #[test]
    fn unusual_layouts_are_refused_not_mangled() {
        let e = set_connection_keys("connection_config: {host: x}\n", &[("host", Some("h"))]).unwrap_err();
        assert!(e.contains("edit it by hand"), "{e}");
        let e = set_connection_keys("- a\n", &[("host", Some("h"))]).unwrap_err();
        assert!(e.contains("not a mapping"), "{e}");
        let e = set_connection_keys("a: [\n", &[("host", Some("h"))]).unwrap_err();
        assert!(e.contains("not valid YAML"), "{e}");
    }
}
