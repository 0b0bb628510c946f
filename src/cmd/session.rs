//! Runs a command (or an interactive shell) with its decided actions: recorder + outputs.

use crate::config::Loaded;
use crate::model::ActionSet;
use std::ffi::OsString;
use std::path::PathBuf;

/// Everything the session needs, decided before it starts.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The program to run (already resolved past shims) and its arguments; `None` = interactive shell.
    pub program: Option<PathBuf>,
    pub args: Vec<OsString>,
    /// argv[0] to show the child (the name the user typed, e.g. `kubectl`).
    pub display_name: String,
    pub actions: ActionSet,
    /// `SnippetRef` display of the deciding rule, if any.
    pub rule: Option<String>,
    /// Extra session tags (break_glass:true, incident:..., ssh client...).
    pub tags: Vec<String>,
}

/// Runs the session and returns the child's exit status (128+signal when killed).
pub fn run(loaded: &Loaded, req: SessionRequest) -> anyhow::Result<i32> {
    let _ = (loaded, req);
    anyhow::bail!("recording is not wired yet")
}
