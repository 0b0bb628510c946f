//! `ddcoterm init`: pick the site, take and validate the keys, write `~/.ddcoterm/config.yaml` (0600).

use crate::cli::{GlobalArgs, InitArgs};
use crate::config::edit;
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
        edit::set_connection_keys(&old, &edits)
            .map_err(|e| Exit::new(exit::CONFIG, format!("{}: {e}; nothing written", path.display())))?
    } else {
        edit::set_connection_keys("# Written by `ddcoterm init`; holds keys: keep it 0600.\n", &edits)
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("{}: no parent directory", path.display()))?;
    fsutil::ensure_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    fsutil::atomic_write(dir, path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
