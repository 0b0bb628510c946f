//! One file per subcommand: argument handling and printing; the work is in the modules they call.

pub mod completions;
pub mod healthcheck;
pub mod hold;
pub mod serve;
pub mod token;
pub mod user;
pub mod verify;

use crate::config::Resolved;
use crate::state::AppState;

/// Opens both stores for a one-shot command (links in its output use `public_url` or the listen address).
pub async fn state(settings: Resolved) -> anyhow::Result<AppState> {
    let meta = crate::backends::open_meta(&settings).await?;
    let objects = crate::backends::open_objects(&settings)?;
    let public = settings.raw.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.raw.listen));
    Ok(AppState::new(meta, objects, settings, public))
}
