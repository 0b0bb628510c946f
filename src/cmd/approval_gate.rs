//! The approval step of the guard sequence. Fails closed: without a working approval flow the command
//! does not run.

use crate::config::Loaded;
use crate::error::{exit, Exit};
use crate::policy::{Decision, Invocation};

/// Returns Ok when the command may run; otherwise an error with exit status 1 that says why.
pub fn require(_loaded: &Loaded, _inv: &Invocation, _decision: &Decision, rule: &str) -> anyhow::Result<()> {
    Err(Exit::new(
        exit::REFUSED,
        format!("approval required by {rule}, but this build has no Case Management approval flow; refusing (fail closed)"),
    )
    .into())
}
