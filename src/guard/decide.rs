//! The decide step: the policy's [`Decision`] for an invocation, and `--actions` read into an action set.

use crate::config::Loaded;
use crate::error::Exit;
use crate::model::{Action, ActionSet};
use crate::policy::{Decision, Invocation, PolicyEngine};

/// Evaluates lints and rules for `inv` (with `--actions` in place of the rule's, if given). A snippet that
/// fails is reported here and fails closed in the decision; a bad policy setting is a config error.
pub fn decide(
    loaded: &Loaded,
    inv: &Invocation,
    cli_actions: Option<&ActionSet>,
) -> anyhow::Result<Decision> {
    let decision = evaluate(loaded, inv, cli_actions)?;
    for e in &decision.errors {
        eprintln!("ddcoterm: policy error, failing closed: {e}");
    }
    Ok(decision)
}

/// [`decide`] without reporting the decision's errors (the static shim hands such a call over, and the full
/// binary reports them).
pub fn evaluate(
    loaded: &Loaded,
    inv: &Invocation,
    cli_actions: Option<&ActionSet>,
) -> anyhow::Result<Decision> {
    let engine = PolicyEngine::from_settings(&loaded.policy, &loaded.settings.policy)?
        .one_shot()
        .org_code_cache(&loaded.dirs.system);
    Ok(engine.evaluate(inv, cli_actions))
}

/// True when nothing but running the program follows from `d`: no action, no lint warning, no rule message,
/// no snippet error. The static shim execs such a call itself and hands every other one over.
pub fn is_plain(d: &Decision) -> bool {
    d.actions.is_empty() && d.warnings.is_empty() && d.errors.is_empty() && d.user_message.is_none()
}

/// `--actions` values (comma-separated, empty entries ignored) into a set; an unknown name is a usage error.
pub fn parse_actions(list: Option<&[String]>) -> Result<Option<ActionSet>, Exit> {
    let Some(list) = list else { return Ok(None) };
    let mut set = ActionSet::default();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let a = Action::parse(s).ok_or_else(|| {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            Exit::usage(format!("--actions: unknown action `{s}` (known: {})", known.join(", ")))
        })?;
        set.insert(a);
    }
    Ok(Some(set))
}
