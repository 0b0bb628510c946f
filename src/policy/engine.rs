//! Runs an invocation's lints and rules into a [`Decision`]: action hierarchy, the organisation-rule union
//! with CLI flags, and fail-closed handling of snippets that error, time out or run out of memory.

use super::context;
use super::flags::parse_flags;
use super::invocation::Invocation;
use super::sandbox::{self, Globals, Libraries, Sandbox};
use crate::config::org_cache::OrgCache;
use crate::config::settings::PolicySettings;
use crate::config::{PolicySet, SnippetRef};
use crate::error::ConfigError;
use crate::model::ActionSet;
use mlua::{Function, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A lint's output: a message to confirm, or a lint that failed (shown as a warning that must be confirmed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LintWarning {
    pub at: SnippetRef,
    pub message: String,
    /// The lint errored, did not compile or ran over its budget: `message` is the error.
    pub failed: bool,
}

/// Which level of the hierarchy decided the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionSource {
    /// `--actions` on the command line (an organisation rule's actions are still added).
    Cli,
    /// The first applicable rule.
    Rule,
    /// `process_config.default_actions` of some layer.
    Default,
    /// The built-in `[record, logs, process_info]`.
    Builtin,
}

impl DecisionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionSource::Cli => "command-line --actions",
            DecisionSource::Rule => "rule",
            DecisionSource::Default => "default_actions",
            DecisionSource::Builtin => "built-in default",
        }
    }
}

/// Everything the shim needs to act on an invocation, and what `check` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub warnings: Vec<LintWarning>,
    /// The first applicable rule (a rule that failed counts as applicable).
    pub rule: Option<SnippetRef>,
    pub actions: ActionSet,
    pub source: DecisionSource,
    pub user_message: Option<String>,
    pub approver_message: Option<String>,
    /// Rule errors, timeouts and memory overruns, each naming its rule (the rule then applied: fail closed).
    pub errors: Vec<String>,
    /// The context variables that were computed (`k8s_context`...), for display and approval binding.
    pub context: BTreeMap<String, String>,
}

/// Lints and rules ready to evaluate, with the sandbox limits resolved from settings.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    policy: PolicySet,
    timeout: Duration,
    memory_limit: usize,
    /// Leave the Lua state for process exit to reclaim (see [`PolicyEngine::one_shot`]).
    one_shot: bool,
    /// Where compiled organisation snippets are kept ([`PolicyEngine::org_code_cache`]).
    code_cache: Option<OrgCache>,
}

impl PolicyEngine {
    /// Resolves the sandbox limits (`policy.snippet_timeout`, `policy.memory_limit`). Snippets are compiled
    /// lazily by [`evaluate`](Self::evaluate), for the invoked executable only; [`validate_all`](Self::validate_all)
    /// compiles everything.
    pub fn from_settings(policy: &PolicySet, settings: &PolicySettings) -> Result<PolicyEngine, ConfigError> {
        // Parsed (and refused at zero) when the config was loaded.
        let timeout = settings.snippet_timeout.get();
        if settings.memory_limit < 1024 * 1024 {
            return Err(ConfigError::Policy(format!(
                "policy.memory_limit is {} bytes; at least 1048576 (1 MiB) is needed to run snippets",
                settings.memory_limit
            )));
        }
        Ok(PolicyEngine {
            policy: policy.clone(),
            timeout,
            memory_limit: settings.memory_limit,
            one_shot: false,
            code_cache: None,
        })
    }

    /// For a process that evaluates once and then execs or exits (the shim): closing a Lua state costs a
    /// tenth of a shim call, so each evaluation's state is left for the kernel to reclaim.
    pub fn one_shot(mut self) -> Self {
        self.one_shot = true;
        self
    }

    /// Takes the compiled bytecode of a command's snippets from the organisation's cache under `system` (the
    /// system config directory) when every one of them is the organisation's, and stores it there when this
    /// process may write it ([`crate::policy::code_cache`]). A batch holding a user snippet is compiled from
    /// text.
    pub fn org_code_cache(mut self, system: &std::path::Path) -> Self {
        self.code_cache = Some(OrgCache::new(system));
        self
    }

    /// The policy this engine evaluates.
    pub fn policy(&self) -> &PolicySet {
        &self.policy
    }

    /// Decides an invocation. Never fails: every snippet problem is reported in the decision and fails closed.
    pub fn evaluate(&self, inv: &Invocation, cli_actions: Option<&ActionSet>) -> Decision {
        let lints: Vec<_> = self.policy.lints_for(&inv.executable).collect();
        let rules: Vec<_> = self.policy.rules_for(&inv.executable).collect();
        let mut d = Decision {
            warnings: Vec::new(),
            rule: None,
            actions: ActionSet::default(),
            source: DecisionSource::Builtin,
            user_message: None,
            approver_message: None,
            errors: Vec::new(),
            context: BTreeMap::new(),
        };
        let mut decided: Option<(SnippetRef, ActionSet)> = None;

        if !lints.is_empty() || !rules.is_empty() {
            let sources: Vec<&str> =
                lints.iter().map(|l| l.lua.as_str()).chain(rules.iter().map(|r| r.lua.as_str())).collect();
            let flags = parse_flags(&inv.args);
            let ctx = context::compute(inv, &flags, &sources);
            // Globals no snippet names are not built: `env` is a table of the whole environment, `user`
            // costs an NSS lookup. (A snippet reaching them without writing their name sees nil.)
            let mentions = |name: &str| sources.iter().any(|s| s.contains(name));
            d.context = ctx.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            let cwd = inv.cwd.to_string_lossy();
            let globals = Globals {
                libraries: Libraries::named_in(&sources),
                executable: &inv.executable,
                args: &inv.args,
                flags: &flags,
                env: mentions("env").then_some(&inv.env),
                user: mentions("user").then(|| inv.user.get()),
                hostname: mentions("hostname").then(|| inv.hostname.get()),
                cwd: &cwd,
                context: &ctx,
            };
            match Sandbox::new(self.memory_limit, self.timeout, &globals) {
                Ok(sb) => {
                    let items: Vec<(String, &str)> = lints
                        .iter()
                        .map(|l| (snippet_name(&l.at), l.lua.as_str()))
                        .chain(rules.iter().map(|r| (snippet_name(&r.at), r.lua.as_str())))
                        .collect();
                    let all_org = lints
                        .iter()
                        .map(|l| &l.at)
                        .chain(rules.iter().map(|r| &r.at))
                        .all(|at| at.origin.is_org());
                    let cache = self.code_cache.as_ref().filter(|_| all_org);
                    let mut compiled = sb.compile_all_cached(&items, cache).into_iter();
                    for l in &lints {
                        let f = compiled.next().unwrap_or_else(|| Err("not compiled".into()));
                        if let Some(w) = run_lint(&sb, &l.at, f) {
                            d.warnings.push(w);
                        }
                    }
                    for r in &rules {
                        let f = compiled.next().unwrap_or_else(|| Err("not compiled".into()));
                        match run_rule(&sb, &r.at, f) {
                            Ok(None) => continue,
                            Ok(Some((um, am))) => {
                                d.user_message = um;
                                d.approver_message = am;
                            }
                            Err(e) => d.errors.push(e),
                        }
                        decided = Some((r.at.clone(), r.actions.clone()));
                        break;
                    }
                    drop(compiled);
                    if self.one_shot {
                        std::mem::forget(sb);
                    }
                }
                Err(e) => {
                    // Cannot even build the sandbox: every lint is a failed warning and the first rule applies.
                    let msg = format!("cannot start the Lua sandbox: {}", sandbox::lua_message(&e));
                    for l in &lints {
                        d.warnings.push(LintWarning { at: l.at.clone(), message: msg.clone(), failed: true });
                    }
                    if let Some(r) = rules.first() {
                        d.errors.push(format!("{}: {msg}", r.at));
                        decided = Some((r.at.clone(), r.actions.clone()));
                    }
                }
            }
        }

        let (actions, source) = match (cli_actions, &decided) {
            (Some(cli), Some((at, ra))) if at.origin.is_org() => (cli.union(ra), DecisionSource::Cli),
            (Some(cli), _) => (cli.clone(), DecisionSource::Cli),
            (None, Some((_, ra))) => (ra.clone(), DecisionSource::Rule),
            (None, None) if !self.policy.default_actions_from.is_empty() => {
                (self.policy.default_actions.clone(), DecisionSource::Default)
            }
            (None, None) => (self.policy.default_actions.clone(), DecisionSource::Builtin),
        };
        // The org's default actions are a floor under anything an org rule did not decide.
        let org_decided = decided.as_ref().is_some_and(|(at, _)| at.origin.is_org());
        d.actions = if org_decided { actions } else { actions.union(&self.policy.org_default_actions) };
        d.source = source;
        d.rule = decided.map(|(at, _)| at);
        d
    }

    /// Compiles every snippet of every command; one message per snippet that does not compile, naming the
    /// command, the lints/rules index, file:line and the Lua message.
    pub fn validate_all(&self) -> Vec<String> {
        let lints = self.policy.lints.iter().map(|l| (&l.at, &l.lua));
        let rules = self.policy.rules.iter().map(|r| (&r.at, &r.lua));
        lints
            .chain(rules)
            .filter_map(|(at, src)| {
                sandbox::check_compiles(&snippet_name(at), src)
                    .err()
                    .map(|e| format!("{at}: Lua snippet does not compile: {e}"))
            })
            .collect()
    }
}

/// The chunk name Lua messages start with (`kubectl rules[0]:3: ...`).
fn snippet_name(at: &SnippetRef) -> String {
    let list = match at.kind {
        crate::config::SnippetKind::Lint => "lints",
        crate::config::SnippetKind::Rule => "rules",
    };
    format!("{} {}[{}]", at.command, list, at.index)
}

fn run_lint(sb: &Sandbox, at: &SnippetRef, compiled: Result<Function, String>) -> Option<LintWarning> {
    let failed = |m: String| Some(LintWarning { at: at.clone(), message: m, failed: true });
    let f = match compiled {
        Ok(f) => f,
        Err(e) => return failed(format!("does not compile: {e}")),
    };
    match sb.run(&f) {
        Err(e) => failed(format!("failed: {e}")),
        Ok(vals) => match vals.into_iter().next() {
            Some(Value::String(s)) => {
                Some(LintWarning { at: at.clone(), message: s.to_string_lossy(), failed: false })
            }
            Some(Value::Integer(n)) => {
                Some(LintWarning { at: at.clone(), message: n.to_string(), failed: false })
            }
            Some(Value::Number(n)) => {
                Some(LintWarning { at: at.clone(), message: n.to_string(), failed: false })
            }
            _ => None,
        },
    }
}

/// `Ok(None)`: not applicable; `Ok(Some(messages))`: applicable; `Err`: failed (applies, fail closed).
type RuleOutcome = Result<Option<(Option<String>, Option<String>)>, String>;

fn run_rule(sb: &Sandbox, at: &SnippetRef, compiled: Result<Function, String>) -> RuleOutcome {
    let f = compiled.map_err(|e| format!("{at}: does not compile: {e}; the rule applies (fail closed)"))?;
    let vals = sb.run(&f).map_err(|e| format!("{at}: {e}; the rule applies (fail closed)"))?;
    let mut it = vals.into_iter();
    let applicable = match it.next() {
        None | Some(Value::Nil) | Some(Value::Boolean(false)) => false,
        Some(_) => true,
    };
    if !applicable {
        return Ok(None);
    }
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s.to_string_lossy()),
        Some(Value::Integer(n)) => Some(n.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let um = text(it.next());
    let am = text(it.next());
    Ok(Some((um, am)))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
