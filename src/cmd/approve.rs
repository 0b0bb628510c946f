//! `ddcoterm approve [--reason TEXT] [-- CMD...]`: ask for approval by hand, for one command (then run it
//! with its decided actions) or for a terminal session (then record it).

use super::approval_gate::{self, GateOutcome};
use super::guard::{self, Guarded};
use super::session::{self, SessionRequest};
use crate::cli::{ApproveArgs, GlobalArgs};
use crate::config::Loaded;
use crate::dirs::{ENV_SESSION, ENV_SHIM_ACTIVE};
use crate::error::{exit, Exit};
use crate::model::{Action, ActionSet};
use crate::policy::{Decision, DecisionSource, Invocation, PolicyEngine};
use std::collections::BTreeMap;
use std::ffi::OsString;

/// Requests approval (Case Management, or break glass), then runs the command or the session.
pub fn run(g: &GlobalArgs, a: ApproveArgs) -> anyhow::Result<i32> {
    let loaded = super::context::load_guarded(g)?;
    if a.cmd.is_empty() {
        return approve_session(&loaded, a.reason);
    }
    approve_command(&loaded, a.cmd, a.reason)
}

fn approve_command(loaded: &Loaded, cmd: Vec<String>, reason: Option<String>) -> anyhow::Result<i32> {
    let name = cmd[0].clone();
    let args: Vec<OsString> = cmd[1..].iter().map(OsString::from).collect();
    let inv = Invocation::from_process(&name, &args);
    let engine = PolicyEngine::from_settings(&loaded.policy, &loaded.settings.policy)?;
    let mut decision = engine.evaluate(&inv, None);
    for e in &decision.errors {
        eprintln!("ddcoterm: policy error, failing closed: {e}");
    }
    if !decision.warnings.is_empty()
        && !super::lint_prompt::confirm(&decision.warnings, false, loaded.settings.lints.non_interactive)?
    {
        eprintln!("ddcoterm: `{name}` not run: you answered no to the warning(s) above");
        return Ok(exit::REFUSED);
    }
    if let Some(m) = &decision.user_message {
        eprintln!("ddcoterm: {m}");
    }
    // Resolve before asking anyone: an approval for a command that does not exist helps nobody.
    let program = if name.contains('/') {
        std::path::PathBuf::from(&name)
    } else {
        super::shim_cmd::find_real(loaded, &name)
            .ok_or_else(|| Exit::new(exit::NOT_FOUND, format!("{name}: command not found on PATH")))?
    };
    let rule = match &decision.rule {
        Some(r) if decision.actions.contains(Action::Approval) => r.to_string(),
        _ => "ddcoterm approve (requested by hand)".to_string(),
    };
    decision.actions.insert(Action::Approval);
    let outcome = approval_gate::require_with(loaded, &inv, &decision, &rule, reason)?;
    let actions = without_gate_actions(outcome.actions(&decision.actions));
    let display_name = crate::policy::invocation::basename(&name);
    if actions.needs_recorder() {
        mark_active(&display_name);
        return session::run(
            loaded,
            SessionRequest {
                program: Some(program),
                args,
                display_name,
                actions,
                rule: decision.rule.as_ref().map(|r| r.to_string()),
                forced: outcome.force.clone(),
                tags: outcome.tags,
            },
        );
    }
    guard::exec(&Guarded { name: display_name, program, args })
}

fn approve_session(loaded: &Loaded, reason: Option<String>) -> anyhow::Result<i32> {
    let inv = Invocation { executable: String::new(), args: Vec::new(), ..Invocation::from_process("", &[]) };
    let decision = Decision {
        warnings: Vec::new(),
        rule: None,
        actions: ActionSet::new([Action::Approval]),
        source: DecisionSource::Cli,
        user_message: None,
        approver_message: None,
        errors: Vec::new(),
        context: BTreeMap::new(),
    };
    let outcome: GateOutcome =
        approval_gate::require_with(loaded, &inv, &decision, "ddcoterm approve (session)", reason)?;
    let claim = std::env::var(ENV_SESSION).unwrap_or_default();
    if !claim.is_empty() && session::prove_outer(loaded, &claim).is_ok() {
        // Already inside a recorded session: the approval is now part of it.
        eprintln!("ddcoterm: this session is approved ({})", outcome.tags.join(", "));
        return Ok(0);
    }
    let actions = outcome.actions(&ActionSet::new([Action::Record, Action::ProcessInfo]));
    session::run(
        loaded,
        SessionRequest {
            program: None,
            args: Vec::new(),
            display_name: "shell".into(),
            actions,
            rule: None,
            forced: outcome.force.clone(),
            tags: outcome.tags,
        },
    )
}

/// Approval and incidents are done by now; the session only needs the recording actions.
fn without_gate_actions(a: ActionSet) -> ActionSet {
    ActionSet::new(a.iter().filter(|x| !matches!(x, Action::Approval | Action::Incidents)))
}

/// Stops the shim of `name` from guarding the recorded command a second time (the guard sequence's marker).
fn mark_active(name: &str) {
    std::env::set_var(ENV_SHIM_ACTIVE, format!("{name}:{}", std::process::id()));
}
