//! The guard sequence, whichever way it is entered (a shim, `ddcoterm -- CMD`, `approve`, `ssh-login`):
//! decide -> confirm -> approve / break glass -> launch, with one launch site (DESIGN.md §1, §2).
//!
//! - [`decide`]: the policy's [`Decision`] for an invocation (lints, rules, `--actions`);
//! - [`confirm`]: lint warnings shown and confirmed once on the terminal;
//! - [`gate`]: approval through Case Management, break glass (audited), incidents; fails closed;
//! - [`launch`]: exec(2) when no action needs the recorder, else the recorder session (`session.rs`), for
//!   the [`plan::Launch`] the steps before decided.
//!
//! Entered by [`shim`] (argv[0] named a guarded command), [`run`] / [`run_judged`] (`ddcoterm -- CMD`,
//! `ssh-login` remote commands), [`approve_command`] / [`approve_session`] (`ddcoterm approve`) and
//! [`launch::launch`] directly for what policy does not judge (an interactive shell, an SSH login).

pub mod confirm;
pub mod decide;
pub mod gate;
pub mod launch;
pub mod locate;
pub mod plan;
pub mod retention;
mod session;

pub use plan::{Launch, Target};
pub use session::prove_outer;

use crate::config::{self, LoadOptions, Loaded};
use crate::dirs::{ENV_SESSION, ENV_SHIM_ACTIVE};
use crate::error::Exit;
use crate::model::{Action, ActionSet};
use crate::policy::{Decision, DecisionSource, Invocation};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// A command about to run: the name the user typed (argv[0] for the child) and the real program behind it.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// How one run of the sequence behaves, from the command line (all defaults on the shim path).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--actions`: replaces the rule's actions (an organisation rule's still apply on top).
    pub actions: Option<ActionSet>,
    /// `--yes`: lint warnings are printed but not asked about.
    pub yes: bool,
    /// `--quiet`: no informational lines on stderr (warnings, errors, prompts and the review link stay).
    pub quiet: bool,
}

/// The shim path: loads the configuration, finds the real `name` past the shim directories, and runs the
/// sequence for it (or execs it directly when our parent already guarded it). No tokio runtime, no logging.
pub fn shim(name: &str, args: Vec<OsString>) -> anyhow::Result<i32> {
    let loaded = load_guarded_config(LoadOptions::from_env())?;
    let program = locate::find_real(&loaded, name).ok_or_else(|| {
        Exit::not_found(format!(
            "{name}: command not found (ddcoterm shim: no real `{name}` on PATH after skipping the shim directories)"
        ))
    })?;
    let cmd = Guarded { name: name.to_string(), program, args };
    if let Some(times) = reentries(name) {
        if times >= MAX_REENTRIES {
            return Err(Exit::not_found(format!(
                "{name}: the shim was entered {times} times in a row without reaching the real program: {} is \
                 another ddcoterm's shim; remove one of the two installations from PATH",
                cmd.program.display()
            ))
            .into());
        }
        mark_active(name, times + 1);
        return launch::exec(&Target::Command(cmd), &loaded);
    }
    run(&loaded, cmd, &Options::default())
}

/// The static shim binary's path (`ddcoterm-shim`): [`shim`] for a call whose decision is plain
/// ([`decide::is_plain`]), which it execs; `hand_over` (exec the full `ddcoterm`, which never returns) for
/// everything else, before anything has been printed, asked, sent or marked: a configuration warning or
/// error, no real program, a re-entry loop, any action, lint warning, rule message or snippet error, and any
/// user or group look-up ([`crate::nss`]). Returns only when the exec of the real program fails.
pub fn shim_plain_only(name: &str, args: Vec<OsString>, hand_over: fn() -> !) -> anyhow::Result<i32> {
    crate::nss::refuse_with(hand_over);
    let loaded = match config::load::load_guarded(&LoadOptions::from_env()) {
        Ok(l) if l.warnings.is_empty() => l,
        _ => hand_over(),
    };
    let Some(program) = locate::find_real(&loaded, name) else { hand_over() };
    let cmd = Guarded { name: name.to_string(), program, args };
    if let Some(times) = reentries(name) {
        if times >= MAX_REENTRIES {
            hand_over();
        }
        mark_active(name, times + 1);
        return launch::exec(&Target::Command(cmd), &loaded);
    }
    let inv = Invocation::from_process(&cmd.name, &cmd.args);
    match decide::evaluate(&loaded, &inv, None) {
        Ok(d) if decide::is_plain(&d) => {}
        _ => hand_over(),
    }
    mark_active(name, 0);
    launch::exec(&Target::Command(cmd), &loaded)
}

/// Loads the layered configuration and prints its warnings once on stderr (every entry point starts here).
pub fn load_config(opts: LoadOptions) -> anyhow::Result<Loaded> {
    let loaded = config::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("ddcoterm: warning: {w}");
    }
    Ok(loaded)
}

/// [`load_config`] for a guarded command: a broken user layer or `DDCOTERM_*` variable is reported and
/// skipped (the command is still guarded by the organisation's layers); a broken org layer still fails closed
/// ([`config::load::load_guarded`]).
pub fn load_guarded_config(opts: LoadOptions) -> anyhow::Result<Loaded> {
    let loaded = config::load::load_guarded(&opts)?;
    for w in &loaded.warnings {
        eprintln!("ddcoterm: warning: {w}");
    }
    Ok(loaded)
}

/// Evaluates policy for `cmd` and runs it accordingly; returns its exit status (or never returns on exec).
pub fn run(loaded: &Loaded, cmd: Guarded, opts: &Options) -> anyhow::Result<i32> {
    let inv = Invocation::from_process(&cmd.name, &cmd.args);
    run_judged(loaded, &inv, cmd, opts)
}

/// [`run`] with the policy judging `inv` while `cmd` is what runs: `ssh-login` judges a remote command's own
/// words and lets the user's shell run the line, as sshd would. A shim for `inv`'s executable that `cmd`
/// starts directly counts as guarded already, so nothing is judged (or approved) twice.
pub fn run_judged(loaded: &Loaded, inv: &Invocation, cmd: Guarded, opts: &Options) -> anyhow::Result<i32> {
    let decision = decide::decide(loaded, inv, opts.actions.as_ref())?;
    confirm::accept(&decision, &cmd.name, opts.yes, loaded)?;
    // Approval and/or incidents; break glass hands back forced actions (record, process_info) and tags.
    let mut gate = gate::gate(loaded, inv, &decision)?;
    gate.review.rule_message = decision.user_message.clone();
    mark_active(&inv.executable, 0);
    let actions = gate.actions(&decision.actions);
    let rule = decision.rule.as_ref().map(|r| r.to_string());
    launch::launch(loaded, Launch { target: Target::Command(cmd), actions, rule, gate, quiet: opts.quiet })
}

/// `ddcoterm approve -- CMD`: the sequence with approval required whatever the rule says (the rule's own
/// approval reason is kept when it asks for one); approval and incidents are done before the launch.
pub fn approve_command(
    loaded: &Loaded,
    cmd: Guarded,
    reason: Option<String>,
    opts: &Options,
) -> anyhow::Result<i32> {
    let inv = Invocation::from_process(&cmd.name, &cmd.args);
    let mut decision = decide::decide(loaded, &inv, None)?;
    confirm::accept(&decision, &cmd.name, opts.yes, loaded)?;
    let rule = match &decision.rule {
        Some(r) if decision.actions.contains(Action::Approval) => r.to_string(),
        _ => "ddcoterm approve (requested by hand)".to_string(),
    };
    decision.actions.insert(Action::Approval);
    let mut gate = gate::require(loaded, &inv, &decision, &rule, reason)?;
    gate.review.rule_message = decision.user_message.clone();
    let actions = without_gate_actions(gate.actions(&decision.actions));
    mark_active(&cmd.name, 0);
    let rule = decision.rule.as_ref().map(|r| r.to_string());
    launch::launch(loaded, Launch { target: Target::Command(cmd), actions, rule, gate, quiet: opts.quiet })
}

/// `ddcoterm approve` with no command: approval for this terminal session, then the session is recorded
/// (or, already inside a proven recording, the approval joins it).
pub fn approve_session(loaded: &Loaded, reason: Option<String>, opts: &Options) -> anyhow::Result<i32> {
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
    let gate = gate::require(loaded, &inv, &decision, "ddcoterm approve (session)", reason)?;
    let claim = std::env::var(ENV_SESSION).unwrap_or_default();
    if !claim.is_empty() && prove_outer(loaded, &claim).is_ok() {
        // Already inside a recorded session: the approval is now part of it.
        eprintln!("ddcoterm: this session is approved ({})", gate.tags.join(", "));
        return Ok(0);
    }
    let actions = gate.actions(&ActionSet::new([Action::Record, Action::ProcessInfo]));
    launch::launch(loaded, Launch { target: Target::Shell, actions, rule: None, gate, quiet: opts.quiet })
}

/// Approval and incidents are done by now; the session only needs the recording actions.
fn without_gate_actions(a: ActionSet) -> ActionSet {
    ActionSet::new(a.iter().filter(|x| !matches!(x, Action::Approval | Action::Incidents)))
}

/// Marks `name` as guarded by this process, so the real binary (or a wrapper script of it) calling `name`
/// again reaches the real binary instead of looping through the shim. `reentries`: how many times in a row
/// this process has come back to a shim for `name` already ([`reentries`]).
fn mark_active(name: &str, reentries: u32) {
    std::env::set_var(ENV_SHIM_ACTIVE, format!("{name}:{}:{reentries}", std::process::id()));
}

/// How many times in a row one process may come back to a shim for the same name without reaching the real
/// program. A wrapper script of the real program that `exec`s its own name again comes back once or twice;
/// a second, different ddcoterm binary whose shim the first finds as "the real program" (and the other way
/// round) would exec back and forth forever, a core spinning for as long as nobody notices.
const MAX_REENTRIES: u32 = 8;

/// `Some(n)` when `name` was already guarded by our parent (a wrapper that runs `name` as a child: `n` is 0)
/// or by this very process before an exec (`n` is how many re-entries came before this one). The marker is
/// `name:pid:n` ([`mark_active`]); an older ddcoterm's `name:pid` is read as `n` = 0.
fn reentries(name: &str) -> Option<u32> {
    let v = std::env::var(ENV_SHIM_ACTIVE).ok()?;
    let (rest, last) = v.rsplit_once(':')?;
    let (n, pid, times) = match rest.rsplit_once(':').and_then(|(n, p)| Some((n, p.parse::<i32>().ok()?))) {
        Some((n, pid)) => (n, pid, last.parse::<u32>().ok()?),
        None => (rest, last.parse::<i32>().ok()?, 0),
    };
    if n != name {
        return None;
    }
    if pid == nix::unistd::getpid().as_raw() {
        Some(times)
    } else if pid == nix::unistd::getppid().as_raw() {
        Some(0)
    } else {
        None
    }
}
