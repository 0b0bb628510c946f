//! `ddcoterm` (record an interactive shell) and `ddcoterm -- CMD...` (guard and record one command).

use super::guard::{self, Guarded};
use crate::cli::{GlobalArgs, RunArgs};
use crate::config::policy_set::builtin_default_actions;
use crate::error::{exit, Exit};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub fn run(g: &GlobalArgs, r: &RunArgs, cmd: Vec<OsString>) -> anyhow::Result<i32> {
    let loaded = super::context::load_guarded(g)?;
    let Some((first, rest)) = cmd.split_first() else {
        // An interactive shell was asked for explicitly: record it even where the org default is [].
        let actions = match guard::cli_actions(r)? {
            Some(a) => a,
            None => builtin_default_actions().union(&loaded.policy.default_actions),
        };
        let req = super::session::SessionRequest {
            program: None,
            args: Vec::new(),
            display_name: "shell".into(),
            actions,
            rule: None,
            tags: Vec::new(),
            forced: Default::default(),
        };
        return super::session::run(&loaded, req);
    };
    let first_text = first.to_string_lossy().into_owned();
    let name = Path::new(first).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let program = if first_text.contains('/') {
        PathBuf::from(first)
    } else {
        super::shim_cmd::find_real(&loaded, &first_text)
            .ok_or_else(|| Exit::new(exit::NOT_FOUND, format!("{first_text}: command not found on PATH")))?
    };
    let cmd = Guarded { name, program, args: rest.to_vec() };
    guard::run(&loaded, cmd, r)
}
