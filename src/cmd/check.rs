//! `ddcoterm check -- CMD...`: prints the policy decision for a command without running anything.

use crate::cli::{CheckArgs, GlobalArgs, OutputFormat};
use crate::guard::confirm;
use crate::guard::decide::parse_actions;
use crate::policy::{Decision, Invocation, PolicyEngine};
use std::ffi::OsString;
use std::fmt::Write as _;

pub fn run(g: &GlobalArgs, a: CheckArgs) -> anyhow::Result<i32> {
    let loaded = crate::cmd::context::load(g)?;
    let engine = PolicyEngine::from_settings(&loaded.policy, &loaded.settings.policy)?
        .org_code_cache(&loaded.dirs.system);
    for e in engine.validate_all() {
        eprintln!("ddcoterm: warning: {e}");
    }
    let cli = parse_actions(a.run.actions.as_deref())?;
    let args: Vec<OsString> = a.cmd[1..].iter().map(OsString::from).collect();
    let inv = Invocation::from_process(&a.cmd[0], &args);
    let d = engine.evaluate(&inv, cli.as_ref());
    if a.json || a.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&inv, &d));
    }
    Ok(0)
}

/// The human report: command, context, warnings, rule, messages, errors, actions and where they came from.
pub fn render(inv: &Invocation, d: &Decision) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "command:   {}", inv.command_line());
    for (k, v) in &d.context {
        let _ = writeln!(s, "context:   {k} = {v}");
    }
    if d.warnings.is_empty() {
        let _ = writeln!(s, "warnings:  none");
    }
    for w in &d.warnings {
        let _ = writeln!(s, "warning:   {}", confirm::render(w));
        if !w.failed {
            let _ = writeln!(s, "           (from {})", w.at);
        }
    }
    match &d.rule {
        Some(r) => {
            let _ = writeln!(s, "rule:      {r}");
        }
        None => {
            let _ = writeln!(s, "rule:      none matched");
        }
    }
    if let Some(m) = &d.user_message {
        let _ = writeln!(s, "user message:     {m}");
    }
    if let Some(m) = &d.approver_message {
        let _ = writeln!(s, "approver message: {m}");
    }
    for e in &d.errors {
        let _ = writeln!(s, "error:     {e}");
    }
    let _ = writeln!(s, "actions:   {} (from {})", d.actions, d.source.as_str());
    s
}
