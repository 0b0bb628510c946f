//! The shim path: argv[0] named a guarded command; the guard sequence does the rest ([`crate::guard::shim`]).
//! No tokio runtime and no logging set-up here unless an action needs them.

use std::ffi::OsString;

/// Runs the shim for `name` with the user's arguments; returns the exit status (or execs).
pub fn run(name: &str, args: Vec<OsString>) -> anyhow::Result<i32> {
    crate::guard::shim(name, args)
}
