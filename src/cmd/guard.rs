//! The guard sequence shared by shims and `ddcoterm -- CMD`: policy -> lint prompt -> approval -> exec or
//! record. Approval fails closed; `exec` replaces this process when no action needs the recorder.

use crate::cli::RunArgs;
use crate::config::Loaded;
use crate::dirs::ENV_SHIM_ACTIVE;
use crate::error::{exit, Exit};
use crate::model::ActionSet;
use crate::policy::{Invocation, PolicyEngine};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// A command about to run: the name the user typed and the real program behind it.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// Parses `--actions` (empty list allowed: "no actions"); an unknown name is a usage error naming it.
pub fn cli_actions(run: &RunArgs) -> anyhow::Result<Option<ActionSet>> {
    super::check::parse_actions(run.actions.as_deref())
}

/// Evaluates policy for `cmd` and runs it accordingly; returns its exit status (or never returns on exec).
pub fn run(loaded: &Loaded, cmd: Guarded, run: &RunArgs) -> anyhow::Result<i32> {
    let inv = Invocation::from_process(&cmd.name, &cmd.args);
    run_judged(loaded, &inv, cmd, run)
}

/// [`run`] with the policy judging `inv` while `cmd` is what runs: `ssh-login` judges a remote command's own
/// words and lets the user's shell run the line, as sshd would. A shim for `inv`'s executable that `cmd`
/// starts directly counts as guarded already, so nothing is judged (or approved) twice.
pub fn run_judged(loaded: &Loaded, inv: &Invocation, cmd: Guarded, run: &RunArgs) -> anyhow::Result<i32> {
    let engine = PolicyEngine::from_settings(&loaded.policy, &loaded.settings.policy)?
        .one_shot()
        .org_code_cache(&loaded.dirs.system);
    let decision = engine.evaluate(inv, cli_actions(run)?.as_ref());
    for e in &decision.errors {
        eprintln!("ddcoterm: policy error, failing closed: {e}");
    }
    if !decision.warnings.is_empty()
        && !super::lint_prompt::confirm(&decision.warnings, run.yes, loaded.settings.lints.non_interactive)?
    {
        eprintln!("ddcoterm: `{}` not run: you answered no to the warning(s) above", cmd.name);
        return Ok(exit::REFUSED);
    }
    if let Some(m) = &decision.user_message {
        eprintln!("ddcoterm: {m}");
    }
    // Approval and/or incidents; break glass hands back forced actions (record, process_info) and tags.
    let gate = super::approval_gate::gate(loaded, inv, &decision)?;
    let actions = gate.actions(&decision.actions);
    mark_active(&inv.executable);
    if actions.needs_recorder() {
        let req = super::session::SessionRequest {
            program: Some(cmd.program),
            args: cmd.args,
            display_name: cmd.name,
            actions,
            rule: decision.rule.as_ref().map(|r| r.to_string()),
            forced: gate.force.clone(),
            tags: gate.tags,
        };
        return super::session::run(loaded, req);
    }
    exec_marked(&cmd)
}

/// Replaces this process with the real binary: zero overhead after the decision.
pub fn exec(cmd: &Guarded) -> anyhow::Result<i32> {
    mark_active(&cmd.name);
    exec_marked(cmd)
}

fn exec_marked(cmd: &Guarded) -> anyhow::Result<i32> {
    let err = std::process::Command::new(&cmd.program).arg0(&cmd.name).args(&cmd.args).exec();
    Err(Exit::new(126, format!("{}: cannot execute {}: {err}", cmd.name, cmd.program.display())).into())
}

/// Marks `name` as guarded by this process, so the real binary (or a wrapper script of it) calling `name`
/// again reaches the real binary instead of looping through the shim.
fn mark_active(name: &str) {
    std::env::set_var(ENV_SHIM_ACTIVE, format!("{name}:{}", std::process::id()));
}

/// True when our parent is a process that already guarded `name` (a wrapper re-invoking itself).
pub fn already_guarded(name: &str) -> bool {
    let Ok(v) = std::env::var(ENV_SHIM_ACTIVE) else { return false };
    let Some((n, pid)) = v.rsplit_once(':') else { return false };
    // Our parent (a wrapper that runs `name` as a child) or ourselves (a wrapper that `exec`s `name`).
    let pid = pid.parse::<i32>().ok();
    n == name && (pid == Some(nix::unistd::getppid().as_raw()) || pid == Some(nix::unistd::getpid().as_raw()))
}
