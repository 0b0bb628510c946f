//! `ddcoterm approve [--reason TEXT] [-- CMD...]`: ask for approval by hand, for one command (then run it
//! with its decided actions) or for a terminal session (then record it).

use crate::cli::{ApproveArgs, GlobalArgs};
use crate::guard::{self, Guarded};
use crate::policy::invocation::basename;
use std::ffi::OsString;

/// Requests approval (Case Management, or break glass), then runs the command or the session.
pub fn run(g: &GlobalArgs, a: ApproveArgs) -> anyhow::Result<i32> {
    let loaded = super::context::load_guarded(g)?;
    let opts = guard::Options { quiet: g.quiet, ..Default::default() };
    let Some((first, rest)) = a.cmd.split_first() else {
        return guard::approve_session(&loaded, a.reason, &opts);
    };
    // Resolved before asking anyone: an approval for a command that does not exist helps nobody.
    let program = guard::locate::program(&loaded, first)?;
    let cmd = Guarded { name: basename(first), program, args: rest.iter().map(OsString::from).collect() };
    guard::approve_command(&loaded, cmd, a.reason, &opts)
}
