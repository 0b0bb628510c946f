//! Builds the session's Datadog outputs (spool-backed) from the decided actions.
use crate::config::Loaded;
use crate::model::{ActionSet, Output};
/// Outputs that send the session to Datadog for `actions`; empty until the Datadog client exists.
pub fn build(_loaded: &Loaded, _actions: &ActionSet) -> anyhow::Result<Vec<Box<dyn Output>>> {
    Ok(Vec::new())
}
