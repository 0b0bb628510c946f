//! `ddcoterm init`: pick the site, take and validate the keys, write `~/.ddcoterm/config.yaml` (0600).

use crate::cli::{GlobalArgs, InitArgs};
use crate::datadog::{Client, ClientOptions, Secret, Site};
use crate::dirs::Dirs;
use crate::error::{exit, Exit};
use crate::spool::fsutil;
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

const DEFAULT_SITE: &str = "app.datadoghq.com";

pub fn run(_g: &GlobalArgs, a: InitArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::from_env();
    let path = dirs.user_config();
    if path.exists() && !a.force {
        anyhow::bail!(Exit::new(
            exit::REFUSED,
            format!("{} already exists; rerun with --force to update its connection_config", path.display())
        ));
    }
    let mut tty = if a.non_interactive {
        None
    } else {
        OpenOptions::new().read(true).write(true).open("/dev/tty").ok()
    };
    let no_tty = |what: &str| {
        Exit::new(
            exit::USAGE,
            format!("{what} is required: pass it as a flag (or environment variable) with --non-interactive, or run `ddcoterm init` in a terminal"),
        )
    };

    let default_site =
        std::env::var("DD_SITE").ok().filter(|s| !s.trim().is_empty()).unwrap_or(DEFAULT_SITE.into());
    let site_in = match (&a.site, tty.as_mut()) {
        (Some(s), _) => s.clone(),
        (None, Some(t)) => {
            let s = prompt(t, &format!("Datadog site [{default_site}]: "), false)?;
            if s.is_empty() {
                default_site
            } else {
                s
            }
        }
        (None, None) => default_site,
    };
    let site = Site::resolve(&site_in, 443).map_err(|e| Exit::new(exit::USAGE, format!("--site: {e}")))?;

    let api_key = match (nonempty(&a.api_key), tty.as_mut()) {
        (Some(k), _) => k,
        (None, Some(t)) => {
            let k = prompt(t, "Datadog API key: ", true)?;
            if k.is_empty() {
                anyhow::bail!(no_tty("an API key (--api-key or DD_API_KEY)"));
            }
            k
        }
        (None, None) => anyhow::bail!(no_tty("an API key (--api-key or DD_API_KEY)")),
    };
    let app_key = match (nonempty(&a.app_key), tty.as_mut()) {
        (Some(k), _) => Some(k),
        (None, Some(t)) => {
            let k = prompt(t, "Application key (needed for approvals; Enter to skip): ", true)?;
            (!k.is_empty()).then_some(k)
        }
        (None, None) => None,
    };
    let api = Secret::new(api_key);
    let app = app_key.map(Secret::new);

    if !a.skip_validation {
        let client = Client::new(
            site.clone(),
            Some(api.clone()),
            app.clone(),
            ClientOptions { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(15) },
        )?;
        client.validate().map_err(|e| {
            // A key is "not accepted" only when Datadog answered; a connection or TLS failure never sent it.
            let what = if matches!(e, crate::datadog::ApiError::Http { .. }) {
                format!("API key {api} was not accepted")
            } else {
                format!("could not check API key {api}: {} did not answer", site.api)
            };
            Exit::new(
                exit::REFUSED,
                format!("{what} ({e}); nothing written (--skip-validation writes anyway)"),
            )
        })?;
        println!("API key {api}: valid on {}", site.api);
        if let Some(app) = &app {
            let user = client.current_user().map_err(|e| {
                Exit::new(
                    exit::REFUSED,
                    format!("application key {app} was not accepted ({e}); nothing written"),
                )
            })?;
            let who = if user.handle.is_empty() { user.id } else { user.handle };
            println!("application key {app}: acts as {who}");
        }
    }

    write_config(&path, &site.app, &api, app.as_ref(), a.force)?;
    println!(
        "wrote {} (site {}, API key {api}, application key {})",
        path.display(),
        site.app,
        app.as_ref().map_or("not set".to_string(), |k| k.to_string())
    );
    Ok(0)
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Sets `connection_config.{host,api_key,app_key}` in the user file. An existing file (`--force`) is edited as
/// text, only on the lines of those keys (and `port`, which the host now carries): its comments, layout and
/// every other key stay as they were. An application key not given is left as it is.
fn write_config(
    path: &Path,
    host: &str,
    api: &Secret,
    app: Option<&Secret>,
    merge: bool,
) -> anyhow::Result<()> {
    let mut edits = vec![("host", Some(host)), ("port", None), ("api_key", Some(api.expose()))];
    if let Some(k) = app {
        edits.push(("app_key", Some(k.expose())));
    }
    let text = if merge && path.exists() {
        let old = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        set_connection_keys(&old, &edits)
            .map_err(|e| Exit::new(exit::CONFIG, format!("{}: {e}; nothing written", path.display())))?
    } else {
        set_connection_keys("# Written by `ddcoterm init`; holds keys: keep it 0600.\n", &edits)
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("{}: no parent directory", path.display()))?;
    fsutil::ensure_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    fsutil::atomic_write(dir, path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Edits `text` so that `connection_config.<key>` is `Some(value)` or absent (`None`), changing only those
/// lines (a missing key is added right under `connection_config:`, a missing section at the end). The result
/// is checked by parsing it: the keys hold what was asked and everything else is what it was, else an error.
fn set_connection_keys(text: &str, edits: &[(&str, Option<&str>)]) -> Result<String, String> {
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

/// Asks on the terminal; a secret is read with echo off.
fn prompt(tty: &mut File, question: &str, secret: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    tty.write_all(question.as_bytes())?;
    tty.flush()?;
    let saved = if secret { tcgetattr(tty.as_fd()).ok() } else { None };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(tty.as_fd(), SetArg::TCSANOW, &quiet)?;
    }
    // Byte by byte: nothing typed ahead for the next question is swallowed by a buffer.
    let mut buf = Vec::new();
    let read = (|| -> std::io::Result<()> {
        let mut b = [0u8; 1];
        while (&*tty).read(&mut b)? == 1 && b[0] != b'\n' {
            buf.push(b[0]);
        }
        Ok(())
    })();
    let line = String::from_utf8_lossy(&buf).into_owned();
    if let Some(t) = &saved {
        let _ = tcsetattr(tty.as_fd(), SetArg::TCSANOW, t);
        let _ = tty.write_all(b"\n");
    }
    read.context("reading from /dev/tty")?;
    Ok(line.trim().to_string())
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
