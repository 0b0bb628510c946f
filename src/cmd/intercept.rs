//! The shim path: argv[0] named a guarded command. Config -> policy -> prompt -> approval -> exec/record.
//! No tokio runtime and no logging set-up here unless an action needs them.

use super::guard::{self, Guarded};
use crate::cli::RunArgs;
use crate::error::{exit, Exit};
use std::ffi::OsString;

/// Runs the shim for `name` with the user's arguments; returns the exit status (or execs).
pub fn run(name: &str, _argv0: &OsString, args: Vec<OsString>) -> anyhow::Result<i32> {
    let loaded = super::context::load_guarded(&Default::default())?;
    let program = super::shim_cmd::find_real(&loaded, name).ok_or_else(|| {
        Exit::new(
            exit::NOT_FOUND,
            format!("{name}: command not found (ddcoterm shim: no real `{name}` on PATH after skipping the shim directories)"),
        )
    })?;
    let cmd = Guarded { name: name.to_string(), program, args };
    if guard::already_guarded(name) {
        return guard::exec(&cmd);
    }
    guard::run(&loaded, cmd, &RunArgs::default())
}
