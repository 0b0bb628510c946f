//! The launch step, the sequence's one launch site: exec(2) the program when no action needs the recorder
//! (zero overhead after the decision) or when the recorder declines (inside a proven outer recording, or a
//! bastion agent that lets the session run unrecorded); the recorder session otherwise.

use super::plan::{shell_path, Launch, Target};
use crate::config::Loaded;
use crate::error::Exit;
use std::os::unix::process::CommandExt;

/// Runs `l`: returns the child's exit status when recorded, never returns when exec'd.
pub fn launch(loaded: &Loaded, l: Launch) -> anyhow::Result<i32> {
    if l.actions.needs_recorder() {
        if let Some(code) = super::session::run(loaded, &l)? {
            return Ok(code);
        }
    }
    exec(&l.target, loaded)
}

/// Replaces this process with the target: the program under the name the user typed, or the login shell.
/// An exec that returns failed: 127 when the program does not exist, 126 when it cannot be executed.
pub fn exec(target: &Target, loaded: &Loaded) -> anyhow::Result<i32> {
    let err = match target {
        Target::Command(c) => std::process::Command::new(&c.program).arg0(&c.name).args(&c.args).exec(),
        Target::Shell => std::process::Command::new(shell_path(loaded)).arg("-l").exec(),
    };
    let what = match target {
        Target::Command(c) => format!("{}: cannot execute {}", c.name, c.program.display()),
        Target::Shell => format!("cannot start the shell {}", shell_path(loaded).display()),
    };
    Err(Exit::launch(what, &err).into())
}
