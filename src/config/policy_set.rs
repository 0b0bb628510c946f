//! The policy floor: composes lints, rules and default actions from every layer so that organisation
//! policy (system, bundles, teams) cannot be removed or reordered by the user, env or flags.

use super::lines::Lines;
use super::settings::{CommandPolicy, ProcessConfig};
use crate::model::{Action, ActionSet, Origin};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Lint or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnippetKind {
    Lint,
    Rule,
}

/// Names one snippet the way a person finds it again: command, list index and file:line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnippetRef {
    pub command: String,
    pub kind: SnippetKind,
    /// Index within its command's `lints`/`rules` list in its own file.
    pub index: usize,
    pub origin: Origin,
}

impl fmt::Display for SnippetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = match self.kind {
            SnippetKind::Lint => "lints",
            SnippetKind::Rule => "rules",
        };
        write!(f, "{} {}[{}] at {}", self.command, list, self.index, self.origin)
    }
}

/// A lint with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcedLint {
    pub at: SnippetRef,
    pub lua: String,
}

/// A rule with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcedRule {
    pub at: SnippetRef,
    pub lua: String,
    pub actions: ActionSet,
}

/// The effective policy, in evaluation order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySet {
    /// Organisation lints first, then the user's; all of them run.
    pub lints: Vec<SourcedLint>,
    /// Organisation rules first (first match wins), then the user's.
    pub rules: Vec<SourcedRule>,
    /// Union of every layer's `default_actions`; the built-in default when no layer sets any.
    pub default_actions: ActionSet,
    /// The layers that contributed to `default_actions` (empty: built-in).
    pub default_actions_from: Vec<Origin>,
    /// Union of the organisation layers' `default_actions`: the floor under any decision that no organisation
    /// rule made (a user rule `true -> []` must not switch off the org's default recording).
    pub org_default_actions: ActionSet,
}

/// The built-in actions when nothing else decides (CoTerm's default).
pub fn builtin_default_actions() -> ActionSet {
    ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo])
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet {
            lints: Vec::new(),
            rules: Vec::new(),
            default_actions: builtin_default_actions(),
            default_actions_from: Vec::new(),
            org_default_actions: ActionSet::default(),
        }
    }
}

/// One layer's policy contribution.
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    /// Layer name (`system`, `bundle`, `team`, `user`, `env`, `flags`).
    pub layer: String,
    /// File, env var or flag that holds it.
    pub source: String,
    pub process_config: ProcessConfig,
    /// The file's lines, resolved lazily (none for env/flags).
    pub lines: Option<Arc<Lines>>,
    /// Extra label for the origin (a bundle's `name rN`).
    pub detail: Option<String>,
}

impl PolicyLayer {
    /// The origin of `key` in this layer; its line is looked up only if displayed.
    pub fn origin(&self, key: String) -> Origin {
        let o = Origin::new(&self.layer, self.source.clone(), None).at_key(self.lines.as_ref(), key);
        match &self.detail {
            Some(d) => o.with_detail(d.clone()),
            None => o,
        }
    }
}

impl PolicySet {
    /// Composes layers given lowest first. Organisation layers keep their relative order and always come
    /// before the others, whatever order the caller passes.
    pub fn compose(layers: &[PolicyLayer]) -> PolicySet {
        let (org, mine): (Vec<&PolicyLayer>, Vec<&PolicyLayer>) =
            layers.iter().partition(|l| Origin::new(&l.layer, "", None).is_org());
        let mut set = PolicySet { default_actions: ActionSet::default(), ..PolicySet::default() };
        let mut any_default = false;
        for layer in org.into_iter().chain(mine) {
            for (ci, cmd) in layer.process_config.commands.iter().enumerate() {
                add_command(&mut set, layer, ci, cmd);
            }
            if let Some(d) = &layer.process_config.default_actions {
                any_default = true;
                let d = ActionSet::new(d.iter().copied());
                if layer_is_org(layer) {
                    set.org_default_actions = set.org_default_actions.union(&d);
                }
                set.default_actions = set.default_actions.union(&d);
                set.default_actions_from.push(layer.origin("process_config.default_actions".into()));
            }
        }
        if !any_default {
            set.default_actions = builtin_default_actions();
        }
        set
    }

    /// Lints that apply to an executable basename, in run order.
    pub fn lints_for<'a>(&'a self, executable: &'a str) -> impl Iterator<Item = &'a SourcedLint> + 'a {
        self.lints.iter().filter(move |l| l.at.command == executable)
    }

    /// Rules that apply to an executable basename, in evaluation order.
    pub fn rules_for<'a>(&'a self, executable: &'a str) -> impl Iterator<Item = &'a SourcedRule> + 'a {
        self.rules.iter().filter(move |r| r.at.command == executable)
    }

    /// Commands that have any policy at all: what `shim create` suggests and `doctor` checks.
    pub fn commands(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lints
            .iter()
            .map(|l| l.at.command.clone())
            .chain(self.rules.iter().map(|r| r.at.command.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn layer_is_org(layer: &PolicyLayer) -> bool {
    Origin::new(&layer.layer, "", None).is_org()
}

fn add_command(set: &mut PolicySet, layer: &PolicyLayer, ci: usize, cmd: &CommandPolicy) {
    let at = |kind: SnippetKind, index: usize| {
        let list = if kind == SnippetKind::Lint { "lints" } else { "rules" };
        SnippetRef {
            command: cmd.command.clone(),
            kind,
            index,
            origin: layer.origin(format!("process_config.commands[{ci}].{list}[{index}]")),
        }
    };
    for (i, lua) in cmd.lints.iter().enumerate() {
        set.lints.push(SourcedLint { at: at(SnippetKind::Lint, i), lua: lua.clone() });
    }
    for (i, r) in cmd.rules.iter().enumerate() {
        set.rules.push(SourcedRule {
            at: at(SnippetKind::Rule, i),
            lua: r.rule.clone(),
            actions: ActionSet::new(r.actions.iter().copied()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::RuleConfig;

    fn layer(
        name: &str,
        cmd: &str,
        rule: &str,
        actions: &[Action],
        defaults: Option<Vec<Action>>,
    ) -> PolicyLayer {
        PolicyLayer {
            layer: name.into(),
            source: format!("{name}.yaml"),
            process_config: ProcessConfig {
                default_actions: defaults,
                commands: vec![CommandPolicy {
                    command: cmd.into(),
                    lints: vec![format!("return '{name}'")],
                    rules: vec![RuleConfig { rule: rule.into(), actions: actions.to_vec() }],
                }],
            },
            lines: None,
            detail: None,
        }
    }

    #[test]
    fn org_rules_come_first_even_if_passed_last() {
        let user = layer("user", "kubectl", "true", &[], None);
        let sys = layer("system", "kubectl", "has_arg('delete')", &[Action::Approval], None);
        let set = PolicySet::compose(&[user, sys]);
        let order: Vec<&str> = set.rules_for("kubectl").map(|r| r.at.origin.layer.as_str()).collect();
        assert_eq!(order, ["system", "user"]);
        let lints: Vec<&str> = set.lints_for("kubectl").map(|l| l.lua.as_str()).collect();
        assert_eq!(lints, ["return 'system'", "return 'user'"]);
    }

    #[test]
    fn default_actions_are_a_union_user_cannot_remove() {
        let sys = layer("system", "x", "false", &[], Some(vec![Action::Record]));
        let user = layer("user", "x", "false", &[], Some(vec![]));
        let set = PolicySet::compose(&[sys, user]);
        assert_eq!(set.default_actions, ActionSet::new([Action::Record]));
        assert_eq!(set.default_actions_from.len(), 2);
    }

    #[test]
    fn org_default_actions_form_a_floor_only_from_org_layers() {
        let sys = layer("system", "x", "false", &[], Some(vec![Action::Record]));
        let user = layer("user", "x", "false", &[], Some(vec![Action::Logs]));
        let set = PolicySet::compose(&[sys, user]);
        assert_eq!(set.org_default_actions, ActionSet::new([Action::Record]));
    }

    #[test]
    fn builtin_default_when_no_layer_sets_it() {
        let set = PolicySet::compose(&[layer("user", "x", "false", &[], None)]);
        assert_eq!(set.default_actions, builtin_default_actions());
        assert!(set.default_actions_from.is_empty());
    }

    #[test]
    fn org_may_turn_recording_off_by_default() {
        let set = PolicySet::compose(&[layer("system", "x", "false", &[], Some(vec![]))]);
        assert!(set.default_actions.is_empty());
    }

    #[test]
    fn snippet_ref_names_command_list_index_and_file() {
        let mut l = layer("team", "terraform", "true", &[], None);
        l.lines = Some(Lines::new("\n\n\n\nprocess_config:\n  commands:\n    - rules:\n        - x\n"));
        let set = PolicySet::compose(&[l]);
        assert_eq!(set.rules[0].at.to_string(), "terraform rules[0] at team.yaml:8 (team)");
    }
}
