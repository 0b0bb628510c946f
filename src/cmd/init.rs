//! `ddcoterm init`: pick the site, take and validate the keys, write `~/.ddcoterm/config.yaml` (0600).

use crate::cli::{GlobalArgs, InitArgs};
use crate::config::edit;
use crate::datadog::{Client, ClientOptions, Secret, Site};
use crate::dirs::Dirs;
use crate::error::{exit, Exit};

use super::ui;
use std::fs::OpenOptions;
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
            let s = ui::prompt(t, &format!("Datadog site [{default_site}]: "), false)?;
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
            let k = ui::prompt(t, "Datadog API key: ", true)?;
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
            let k = ui::prompt(t, "Application key (needed for approvals; Enter to skip): ", true)?;
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

    edit::write_connection_keys(&path, &site.app, api.expose(), app.as_ref().map(Secret::expose), a.force)
        .map_err(|e| match e {
            edit::WriteError::Edit { .. } => anyhow::Error::new(Exit::new(exit::CONFIG, e.to_string())),
            edit::WriteError::Io { .. } => anyhow::Error::new(e),
        })?;
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
