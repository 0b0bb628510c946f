//! `ddcoterm agent`: the bastion-mode agent (docs/bastion.md), run by systemd as its own system user.

use crate::agent::credentials;
use crate::agent::server::{self, Agent};
use crate::agent::store::{Limits, Store};
use crate::cli::GlobalArgs;
use crate::spool::Deliver;
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
    let deliver = deliver(&loaded, &s)?;
    let limits =
        Limits { max_bytes: s.max_bytes, user_quota_bytes: s.user_quota_bytes, when_full: s.when_full };
    let store = Store::open(&s.state_dir, limits, deliver)
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

/// Datadog with the keys of `agent.credentials_file` (else of the agent's own config); none: records stay
/// in the agent's spool until keys are configured.
fn deliver(
    loaded: &crate::config::Loaded,
    s: &crate::config::settings::AgentSettings,
) -> anyhow::Result<Option<Arc<dyn Deliver>>> {
    let mut loaded = loaded.clone();
    if let Some(path) = &s.credentials_file {
        let c = credentials::read(path)?;
        if c.api_key.is_some() {
            loaded.settings.connection_config.api_key = c.api_key;
        }
        if c.app_key.is_some() {
            loaded.settings.connection_config.app_key = c.app_key;
        }
    }
    // TODO(E, upload-api.md): the server token from `agent.credentials_file` (`server_token`).
    let d = crate::upload::deliverer(&loaded, Default::default(), Default::default());
    if let Some(why) = &d.no_datadog {
        eprintln!("ddcoterm agent: not sending to Datadog ({why}); its records stay in the agent's spool");
    }
    if let Some(why) = &d.no_server {
        eprintln!("ddcoterm agent: not uploading recordings ({why}); they stay in the agent's spool");
    }
    if d.server.is_none() && d.datadog.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(d)))
}
