//! `ddcoterm` (record an interactive shell) and `ddcoterm -- CMD...` (guard and record one command).

use crate::cli::{GlobalArgs, RunArgs};
use crate::config::policy_set::builtin_default_actions;
use crate::guard::{self, Guarded, Launch, Target};
use std::ffi::OsString;
use std::path::Path;

pub fn run(g: &GlobalArgs, r: &RunArgs, cmd: Vec<OsString>) -> anyhow::Result<i32> {
    let loaded = super::context::load_guarded(g)?;
    let opts = super::context::guard_options(g, r)?;
    let Some((first, rest)) = cmd.split_first() else {
        // An interactive shell was asked for explicitly: record it even where the org default is [].
        let actions = match opts.actions {
            Some(a) => a,
            None => builtin_default_actions().union(&loaded.policy.default_actions),
        };
        let l = Launch {
            target: Target::Shell,
            actions,
            rule: None,
            gate: Default::default(),
            quiet: opts.quiet,
        };
        return guard::launch::launch(&loaded, l);
    };
    let name = Path::new(first).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let program = guard::locate::program(&loaded, &first.to_string_lossy())?;
    guard::run(&loaded, Guarded { name, program, args: rest.to_vec() }, &opts)
}
