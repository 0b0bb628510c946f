//! `ddcoterm` and `ddcoterm -- CMD...`: records an interactive shell or one command.
//!
//! Temporary wiring: actions are the configuration's default actions; the policy step (lints, rules,
//! `--actions`) goes in front of `session::run` when the policy stream lands.

use crate::cli::{GlobalArgs, RunArgs};
use crate::cmd::{context, session};
use crate::error::{exit, Exit};
use std::path::{Path, PathBuf};

pub fn run(g: &GlobalArgs, _r: &RunArgs, cmd: Vec<String>) -> anyhow::Result<i32> {
    let loaded = context::load(g)?;
    let (program, args, display_name) = match cmd.split_first() {
        None => (None, Vec::new(), String::new()),
        Some((name, rest)) => {
            let program = resolve_program(name)
                .ok_or_else(|| Exit::new(exit::NOT_FOUND, format!("{name}: command not found")))?;
            (Some(program), rest.iter().map(Into::into).collect(), name.clone())
        }
    };
    let req = session::SessionRequest {
        program,
        args,
        display_name,
        actions: loaded.policy.default_actions.clone(),
        rule: None,
        tags: Vec::new(),
    };
    session::run(&loaded, req)
}

/// `name` itself when it has a slash, else the first executable on PATH that is not a ddcoterm shim.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let me = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p) && (me.is_none() || p.canonicalize().ok() != me))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
