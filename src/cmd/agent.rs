//! `ddcoterm agent`: the bastion-mode agent (docs/bastion.md), run by systemd as its own system user.

use crate::agent::credentials;
use crate::agent::server::{self, Agent};
use crate::agent::store::{Destinations, Limits, Store};
use crate::cli::GlobalArgs;
use crate::spool::Deliver;
use crate::upload::{server as upload_server, DatadogDeliver, Deliverer, ServerDeliver};
use anyhow::Context;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

pub fn run(g: &GlobalArgs) -> anyhow::Result<i32> {
    let loaded = super::context::load(g)?;
    let s = loaded.settings.agent.clone();
    if !s.enabled {
        eprintln!(
            "ddcoterm agent: warning: agent.enabled is not set in {}; recorders stay in personal mode and will not use this agent",
            loaded.dirs.system_config().display()
        );
    }
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "ddcoterm agent: warning: running as root; run it as its own system user (deploy/systemd/ddcoterm-agent.service)"
        );
    }
    let deliver = deliverer(&loaded, &s)?;
    let dests = Destinations {
        server: deliver.server.as_ref().map(|d| d.base().to_string()),
        datadog: deliver.datadog.is_some(),
    };
    match &dests.server {
        Some(base) => eprintln!("ddcoterm agent: uploading recordings to {base}"),
        None => eprintln!(
            "ddcoterm agent: no server.url: recordings stay in {}/recordings (not uploaded)",
            s.state_dir.display()
        ),
    }
    let deliver = (dests.server.is_some() || dests.datadog).then(|| Arc::new(deliver) as Arc<dyn Deliver>);
    let limits =
        Limits { max_bytes: s.max_bytes, user_quota_bytes: s.user_quota_bytes, when_full: s.when_full };
    let store = Store::open(&s.state_dir, limits, dests, deliver)
        .with_context(|| format!("agent.state_dir {}", s.state_dir.display()))?;
    if let Some(dir) = s.socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("agent.socket: creating {}", dir.display()))?;
    }
    let listener = server::bind(&s.socket, s.socket_group.as_deref())?;
    eprintln!("ddcoterm agent: listening on {}, evidence in {}", s.socket.display(), s.state_dir.display());
    server::serve(listener, Arc::new(Agent::new(store)))?;
    Ok(0)
}

/// The agent's destinations: the session server at `server.url` with the host token `server_token` of
/// `agent.credentials_file` (else `server.token_file` of the agent's own config), and Datadog with the keys of
/// the credentials file (else of the agent's config). A server URL without a token is an error: recordings
/// would be kept from the server the organisation named. No Datadog keys: its records are not written.
fn deliverer(
    loaded: &crate::config::Loaded,
    s: &crate::config::settings::AgentSettings,
) -> anyhow::Result<Deliverer> {
    let mut loaded = loaded.clone();
    let mut server_token = None;
    if let Some(path) = &s.credentials_file {
        let c = credentials::read(path)?;
        server_token = c.server_token();
        if c.api_key.is_some() {
            loaded.settings.connection_config.api_key = c.api_key;
        }
        if c.app_key.is_some() {
            loaded.settings.connection_config.app_key = c.app_key;
        }
    }
    let config_err = |e: &dyn std::fmt::Display| crate::error::Exit::config(format!("ddcoterm agent: {e}"));
    let mut d = Deliverer::default();
    let url = loaded.settings.server.url.as_deref().filter(|u| !u.trim().is_empty());
    match (url, server_token) {
        (Some(url), Some(token)) => {
            let base = upload_server::parse_url(url).map_err(|e| config_err(&e))?;
            d.server = Some(ServerDeliver::new(base, token, Default::default()));
        }
        (Some(_), None) => match upload_server::configured(&loaded.settings.server) {
            Ok(Some((base, token))) => d.server = Some(ServerDeliver::new(base, token, Default::default())),
            Ok(None) => {}
            Err(e) => {
                let hint = match &s.credentials_file {
                    Some(p) => format!("put `server_token: <host token>` in agent.credentials_file {}", p.display()),
                    None => "set agent.credentials_file to a file with `server_token: <host token>`".into(),
                };
                return Err(config_err(&format!("{e}; {hint}")).into());
            }
        },
        (None, Some(_)) => eprintln!(
            "ddcoterm agent: warning: agent.credentials_file has a server_token but server.url is not set; recordings are not uploaded"
        ),
        (None, None) => {}
    }
    match DatadogDeliver::from_loaded(&loaded, Default::default()) {
        Ok(x) => d.datadog = Some(x),
        Err(e) => {
            eprintln!("ddcoterm agent: not sending to Datadog ({e:#}); its records are not written");
            d.no_datadog = Some(format!("{e:#}"));
        }
    }
    Ok(d)
}
