//! What the guard sequence launches once it has decided: the target (a command or the login shell), its
//! actions and how the gate let it through.

use super::gate::GateOutcome;
use super::Guarded;
use crate::config::Loaded;
use crate::model::ActionSet;
use std::path::PathBuf;

/// What runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// A program (already resolved past the shims) with its arguments.
    Command(Guarded),
    /// The user's interactive login shell (`recording.shell`, else `$SHELL`, else `/bin/bash`).
    Shell,
}

/// Everything decided before the launch.
#[derive(Debug, Clone)]
pub struct Launch {
    pub target: Target,
    /// The decided actions, with the ones the gate forced (break glass: `record`, `process_info`) added.
    pub actions: ActionSet,
    /// `SnippetRef` display of the deciding rule, if any.
    pub rule: Option<String>,
    /// How the gate let the run through: forced actions and session tags (`break_glass:true`...). A forced
    /// `record` is never skipped because an outer recording exists.
    pub gate: GateOutcome,
    /// `--quiet`: the session's informational lines are not printed.
    pub quiet: bool,
}

/// `recording.shell`, else `$SHELL`, else `/bin/bash`.
pub fn shell_path(loaded: &Loaded) -> PathBuf {
    loaded
        .settings
        .recording
        .shell
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("SHELL").ok().filter(|s| !s.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/bash"))
}
