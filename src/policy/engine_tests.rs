//! Policy specification tests: the documentation's examples, the action hierarchy and sandbox attacks.

use super::*;
use crate::config::file_layer;
use crate::config::policy_set::PolicyLayer;
use crate::model::Action;
use std::path::Path;

const LINT_DOC: &str = include_str!("../../tests/policy_fixtures/coterm-lint.yaml");
const RULES_DOC: &str = include_str!("../../tests/policy_fixtures/coterm-rules.yaml");

fn layer(name: &str, yaml: &str) -> PolicyLayer {
    let path = format!("/cfg/{name}.yaml");
    let f = file_layer::parse(Path::new(&path), yaml).unwrap();
    PolicyLayer {
        layer: name.into(),
        source: path,
        process_config: f.settings.process_config,
        lines: Some(f.lines),
        detail: None,
    }
}

fn engine(layers: &[(&str, &str)]) -> PolicyEngine {
    let ls: Vec<PolicyLayer> = layers.iter().map(|(n, y)| layer(n, y)).collect();
    let set = PolicySet::compose(&ls);
    let e = PolicyEngine::from_settings(&set, &PolicySettings::default()).unwrap();
    assert!(e.validate_all().is_empty(), "{:?}", e.validate_all());
    e
}

struct Home(tempfile::TempDir);

fn inv(home: &Home, cmd: &[&str], env: &[(&str, &str)], kubeconfig: Option<&str>) -> Invocation {
    if let Some(k) = kubeconfig {
        std::fs::create_dir_all(home.0.path().join(".kube")).unwrap();
        std::fs::write(home.0.path().join(".kube/config"), k).unwrap();
    } else {
        let _ = std::fs::remove_file(home.0.path().join(".kube/config"));
    }
    let mut e: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    e.insert("HOME".into(), home.0.path().display().to_string());
    Invocation {
        executable: cmd[0].into(),
        args: cmd[1..].iter().map(|s| s.to_string()).collect(),
        env: e,
        cwd: home.0.path().into(),
        user: "alice".into(),
        hostname: "bastion-1".into(),
    }
}

fn acts(a: &[Action]) -> ActionSet {
    ActionSet::new(a.iter().copied())
}

use Action::{Approval as A, Logs as L, ProcessInfo as P, Record as R};

/// One specification row.
struct Case {
    name: &'static str,
    config: Vec<(&'static str, String)>,
    cmd: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    kubeconfig: Option<&'static str>,
    cli: Option<&'static [Action]>,
    actions: &'static [Action],
    source: DecisionSource,
    /// Substring of the deciding rule's ref; `None` = no rule.
    rule: Option<&'static str>,
    /// Substrings, one per expected warning, in order.
    warnings: &'static [&'static str],
    failed_lint: bool,
    /// Substring expected in `errors` (empty: no errors).
    error: &'static str,
    user_message: Option<&'static str>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            config: vec![],
            cmd: &["kubectl", "get", "pods"],
            env: &[],
            kubeconfig: None,
            cli: None,
            actions: &[R, L, P],
            source: DecisionSource::Builtin,
            rule: None,
            warnings: &[],
            failed_lint: false,
            error: "",
            user_message: None,
        }
    }
}

fn rules(body: &str) -> String {
    format!("process_config:\n  commands:\n    - command: kubectl\n      rules:\n{body}")
}
fn lints(body: &str) -> String {
    format!("process_config:\n  commands:\n    - command: kubectl\n      lints:\n{body}")
}

fn cases() -> Vec<Case> {
    let lint_doc = || vec![("user", LINT_DOC.to_string())];
    let rules_doc = || vec![("user", RULES_DOC.to_string())];
    let one_rule =
        |r: &str| vec![("user", rules(&format!("        - rule: {r}\n          actions: [approval]\n")))];
    vec![
        // -- the documentation's lint example
        Case {
            name: "lint doc: scale without --context warns with the effective context",
            config: lint_doc(),
            cmd: &["kubectl", "scale", "deploy/web", "--replicas=0"],
            kubeconfig: Some("current-context: prod-eu\n"),
            warnings: &["No kubectl context specified (effective context: 'prod-eu')"],
            ..Default::default()
        },
        Case {
            name: "lint doc: scale with --context does not warn",
            config: lint_doc(),
            cmd: &["kubectl", "scale", "deploy/web", "--context", "dev"],
            ..Default::default()
        },
        Case {
            name: "lint doc: other verbs do not warn",
            config: lint_doc(),
            cmd: &["kubectl", "get", "pods"],
            kubeconfig: Some("current-context: prod-eu\n"),
            ..Default::default()
        },
        Case {
            name: "lint doc: no kubeconfig at all -> k8s_context nil is formatted as 'nil' (Lua 5.4 %s)",
            config: lint_doc(),
            cmd: &["kubectl", "scale", "deploy/web"],
            warnings: &["effective context: 'nil'"],
            ..Default::default()
        },
        // -- the documentation's rules example
        Case {
            name: "rules doc: scale in a prod context needs approval, with messages",
            config: rules_doc(),
            cmd: &["kubectl", "scale", "deploy/web", "--replicas=3"],
            kubeconfig: Some("current-context: prod-eu\n"),
            actions: &[R, L, P, A],
            source: DecisionSource::Rule,
            rule: Some("kubectl rules[0] at /cfg/user.yaml:"),
            user_message: Some("Proceed with caution"),
            ..Default::default()
        },
        Case {
            name: "rules doc: --context prod overrides a dev kubeconfig",
            config: rules_doc(),
            cmd: &["kubectl", "--context=prod-us", "scale", "deploy/web"],
            kubeconfig: Some("current-context: dev\n"),
            actions: &[R, L, P, A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            user_message: Some("caution"),
            ..Default::default()
        },
        Case {
            name: "rules doc: scale elsewhere records without approval",
            config: rules_doc(),
            cmd: &["kubectl", "scale", "deploy/web"],
            kubeconfig: Some("current-context: dev\n"),
            actions: &[R, L, P],
            source: DecisionSource::Rule,
            rule: Some("rules[1]"),
            ..Default::default()
        },
        Case {
            name: "rules doc: everything else runs with no recording",
            config: rules_doc(),
            cmd: &["kubectl", "get", "pods"],
            actions: &[],
            source: DecisionSource::Rule,
            rule: Some("rules[2]"),
            ..Default::default()
        },
        Case {
            name: "rules doc: KUBECONFIG list merge picks the first current-context",
            config: rules_doc(),
            cmd: &["kubectl", "scale", "x"],
            env: &[("KUBECONFIG", "/nonexistent:/dev/null")],
            kubeconfig: Some("current-context: prod\n"),
            actions: &[R, L, P],
            source: DecisionSource::Rule,
            rule: Some("rules[1]"),
            ..Default::default()
        },
        Case {
            name: "other executables are not affected",
            config: rules_doc(),
            cmd: &["helm", "upgrade"],
            ..Default::default()
        },
        // -- hierarchy
        Case {
            name: "default_actions when no rule matches",
            config: vec![("user", "process_config:\n  default_actions: [record]\n".into())],
            actions: &[R],
            source: DecisionSource::Default,
            ..Default::default()
        },
        Case {
            name: "CLI actions beat a user rule",
            config: one_rule("true"),
            cli: Some(&[]),
            actions: &[],
            source: DecisionSource::Cli,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "CLI actions cannot remove an org rule's approval",
            config: vec![("system", rules("        - rule: true\n          actions: [approval, record]\n"))],
            cli: Some(&[L]),
            actions: &[A, R, L],
            source: DecisionSource::Cli,
            rule: Some("(system)"),
            ..Default::default()
        },
        Case {
            name: "org rule first even when a user rule also matches",
            config: vec![
                ("user", rules("        - rule: true\n          actions: []\n")),
                ("team", rules("        - rule: has_arg('delete')\n          actions: [approval]\n")),
            ],
            cmd: &["kubectl", "delete", "ns", "x"],
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("(team)"),
            ..Default::default()
        },
        // -- rule return values
        Case { name: "rule false", config: one_rule("false"), ..Default::default() },
        Case { name: "rule nil", config: one_rule("nil"), ..Default::default() },
        Case {
            name: "rule truthy number follows Lua truthiness (0 is true)",
            config: one_rule("\"0\""),
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "rule returning a string is applicable",
            config: one_rule("\"'yes'\""),
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "flags table: boolean and short flags",
            config: one_rule("\"flags.force == true and flags.n == 'kube-system' and flags.A == nil\""),
            cmd: &["kubectl", "delete", "-n", "kube-system", "pod", "x", "--force"],
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "has_arg is exact and sees args after --",
            config: one_rule("\"has_arg('sh') and not has_arg('s') and args[1] == 'exec'\""),
            cmd: &["kubectl", "exec", "pod", "--", "sh"],
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "unicode args and env",
            config: one_rule("\"has_arg('zürich-プロッド') and env.TEAM == 'óps' and user == 'alice' and hostname == 'bastion-1'\""),
            cmd: &["kubectl", "get", "zürich-プロッド"],
            env: &[("TEAM", "óps")],
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "aws_profile and terraform_workspace are available",
            config: one_rule("\"aws_profile == 'prod' and terraform_workspace == 'default' and gcloud_configuration == nil\""),
            env: &[("AWS_PROFILE", "prod")],
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "safe standard library functions work",
            config: one_rule("\"string.format('%s', 'a') == 'a' and table.concat({'a', 'b'}) == 'ab' and math.max(1, 2) == 2 and os.time() > 0 and utf8.len('é') == 1 and select('#', 1, 2) == 2 and ('x'):upper() == 'X' and pcall(error, 'e') == false\""),
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            ..Default::default()
        },
        Case {
            name: "globals set by one snippet are not seen by the next",
            config: vec![("user", rules("        - rule: \"leak = 1 return false\"\n          actions: []\n        - rule: leak == 1\n          actions: [approval]\n"))],
            ..Default::default()
        },
        // -- lints
        Case {
            name: "all lints run, in order, org first",
            config: vec![
                ("user", lints("        - return 'from user'\n        - return nil\n")),
                ("system", lints("        - \"'from system'\"\n")),
            ],
            warnings: &["from system", "from user"],
            ..Default::default()
        },
        Case {
            name: "a lint that does not compile is a failed warning",
            config: vec![("user", lints("        - \"return (\"\n"))],
            warnings: &["does not compile"],
            failed_lint: true,
            ..Default::default()
        },
        // -- fail closed
        Case {
            name: "a rule that errors applies with its approval",
            config: one_rule("\"nil + 1\""),
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            error: "fail closed",
            ..Default::default()
        },
        Case {
            name: "a rule that does not compile applies",
            config: one_rule("\"if then\""),
            actions: &[A],
            source: DecisionSource::Rule,
            rule: Some("rules[0]"),
            error: "does not compile",
            ..Default::default()
        },
        // -- sandbox attacks: each is a rule that must fail closed (approval applies)
        attack("infinite loop times out", "while true do end", "time budget"),
        attack("pcall cannot swallow the budget", "while true do pcall(function() while true do end end) end", "time budget"),
        attack("string.rep bomb hits the memory limit", "return #string.rep('x', 1e9) > 0", "memory"),
        attack("table growth bomb hits the memory limit", "local t = {} for i = 1, 1e9 do t[i] = i end", ""),
        attack("pattern bomb times out", "return string.find(string.rep('a', 1e5), '.-.-.-.-.-b')", "time budget"),
        attack("unbounded recursion is stopped", "local function f() return f() + 1 end return f()", ""),
        attack("string concatenation bomb", "local s = 'x' while true do s = s .. s end", ""),
        attack("io is absent", "return io.open('/etc/passwd')", "nil"),
        attack("os.execute is absent", "return os.execute('touch /tmp/pwned')", "nil"),
        attack("load is absent", "return load('return 1')()", "nil"),
        attack("loadstring is absent", "return loadstring('return 1')()", "nil"),
        attack("require is absent", "return require('os')", "nil"),
        attack("getfenv is absent", "return getfenv(1)", "nil"),
        attack("setfenv is absent", "setfenv(1, {}) return true", "nil"),
        attack("debug is absent", "return debug.traceback()", "nil"),
        attack("collectgarbage is absent", "collectgarbage('collect') return true", "nil"),
        attack("newproxy is absent", "return newproxy(true)", "nil"),
        attack("print is absent (stdout is the user's)", "print('x') return true", "nil"),
        attack("coroutine is absent", "return coroutine.create(function() end)", "nil"),
        attack("string library is read-only", "string.upper = function() return 'x' end return true", "readonly"),
        attack("args is read-only", "args[1] = 'x' return true", "readonly"),
        attack("env is read-only", "env.PATH = 'x' return true", "readonly"),
        attack("_G is read-only", "_G.has_arg = nil return true", "readonly"),
        attack("binary chunk refused", "\u{6}\u{3}return true", "binary chunk"),
    ]
}

fn attack(name: &'static str, lua: &'static str, error: &'static str) -> Case {
    let body =
        format!("        - rule: {}\n          actions: [approval]\n", serde_json::to_string(lua).unwrap());
    Case {
        name,
        config: vec![("user", rules(&body))],
        actions: &[A],
        source: DecisionSource::Rule,
        rule: Some("rules[0]"),
        error: if error.is_empty() { "fail closed" } else { error },
        ..Default::default()
    }
}

#[test]
fn specification() {
    let home = Home(tempfile::tempdir().unwrap());
    let mut failures = Vec::new();
    for c in cases() {
        let cfg: Vec<(&str, &str)> = c.config.iter().map(|(n, y)| (*n, y.as_str())).collect();
        let ls: Vec<PolicyLayer> = cfg.iter().map(|(n, y)| layer(n, y)).collect();
        let set = PolicySet::compose(&ls);
        let e = PolicyEngine::from_settings(&set, &PolicySettings::default()).unwrap();
        let i = inv(&home, c.cmd, c.env, c.kubeconfig);
        let cli = c.cli.map(acts);
        let d = e.evaluate(&i, cli.as_ref());
        let mut why = Vec::new();
        if d.actions != acts(c.actions) {
            why.push(format!("actions {} != {}", d.actions, acts(c.actions)));
        }
        if d.source != c.source {
            why.push(format!("source {:?} != {:?}", d.source, c.source));
        }
        match (&d.rule, c.rule) {
            (None, None) => {}
            (Some(r), Some(want)) if r.to_string().contains(want) => {}
            (got, want) => why.push(format!("rule {:?} != {want:?}", got.as_ref().map(|r| r.to_string()))),
        }
        if d.warnings.len() != c.warnings.len()
            || !d.warnings.iter().zip(c.warnings).all(|(w, want)| w.message.contains(want))
        {
            why.push(format!("warnings {:?} != {:?}", d.warnings, c.warnings));
        }
        if d.warnings.iter().any(|w| w.failed) != c.failed_lint {
            why.push(format!("failed lint flag != {}", c.failed_lint));
        }
        let errs = d.errors.join(" | ");
        if c.error.is_empty() != d.errors.is_empty() || !errs.contains(c.error) {
            why.push(format!("errors `{errs}` should contain `{}`", c.error));
        }
        if let Some(m) = c.user_message {
            if !d.user_message.as_deref().unwrap_or_default().contains(m) {
                why.push(format!("user_message {:?} lacks {m:?}", d.user_message));
            }
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}", c.name, why.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn no_snippets_means_no_lua_and_no_context() {
    let e = engine(&[("user", RULES_DOC)]);
    let home = Home(tempfile::tempdir().unwrap());
    let d = e.evaluate(&inv(&home, &["terraform", "plan"], &[], None), None);
    assert_eq!(d.source, DecisionSource::Builtin);
    assert!(d.context.is_empty());
}

#[test]
fn decision_reports_computed_context() {
    let e = engine(&[("user", RULES_DOC)]);
    let home = Home(tempfile::tempdir().unwrap());
    let d = e.evaluate(&inv(&home, &["kubectl", "get"], &[], Some("current-context: c1\n")), None);
    assert_eq!(d.context.get("k8s_current_context").map(String::as_str), Some("c1"));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["source"], "rule");
    assert_eq!(json["rule"]["index"], 2);
}

#[test]
fn budget_and_memory_come_from_settings() {
    // A bad or zero `snippet_timeout` is refused when the config is loaded (tests/config_settings.rs).
    let tiny = PolicySettings { memory_limit: 10, ..Default::default() };
    assert!(PolicyEngine::from_settings(&PolicySet::default(), &tiny)
        .unwrap_err()
        .to_string()
        .contains("memory_limit"));

    // A 200ms budget lets a 100ms busy loop finish; the 50ms default does not.
    let busy = "local t = os.clock() while os.clock() - t < 0.1 do end return true";
    let y = rules(&format!(
        "        - rule: {}\n          actions: [approval]\n",
        serde_json::to_string(busy).unwrap()
    ));
    let set = PolicySet::compose(&[layer("user", &y)]);
    let home = Home(tempfile::tempdir().unwrap());
    let i = inv(&home, &["kubectl"], &[], None);
    let slow = PolicySettings { snippet_timeout: "300ms".into(), ..Default::default() };
    let d = PolicyEngine::from_settings(&set, &slow).unwrap().evaluate(&i, None);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let d = PolicyEngine::from_settings(&set, &PolicySettings::default()).unwrap().evaluate(&i, None);
    assert!(d.errors[0].contains("time budget"), "{:?}", d.errors);
}

#[test]
fn validate_all_names_command_index_file_and_lua_message() {
    let y = "process_config:\n  commands:\n    - command: helm\n      lints:\n        - return 1\n        - \"if x then\"\n";
    let set = PolicySet::compose(&[layer("system", y)]);
    let e = PolicyEngine::from_settings(&set, &PolicySettings::default()).unwrap();
    let errs = e.validate_all();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let m = &errs[0];
    assert!(
        m.contains("helm lints[1] at /cfg/system.yaml:6 (system)")
            && m.contains("helm lints[1]:1: Expected 'end'"),
        "{m}"
    );
}

#[test]
fn a_library_is_there_when_some_snippet_names_it_and_string_methods_always_are() {
    let home = Home(tempfile::tempdir().unwrap());
    let i = inv(&home, &["kubectl", "get"], &[], None);
    // No snippet names `math`, `table`, `utf8`, `bit32` or `os`: reached without their names they are nil;
    // `string`, and so every string's methods, is always there.
    let hidden = engine(&[(
        "user",
        &rules(concat!(
            "        - rule: |\n",
            "            for _, n in ipairs({'ma' .. 'th', 'ta' .. 'ble', 'ut' .. 'f8', 'bi' .. 't32', 'o' .. 's'}) do\n",
            "              if _G[n] ~= nil then return false end\n",
            "            end\n",
            "            return ('x'):upper() == 'X' and string.rep('a', 2) == 'aa'\n",
            "          actions: [approval]\n",
        )),
    )]);
    assert_eq!(hidden.evaluate(&i, None).actions, acts(&[A]), "libraries nobody names are not opened");
    // One snippet naming a library opens it for all of the command's snippets.
    let named = engine(&[(
        "user",
        &rules(concat!(
            "        - rule: math.floor(2.5) == 3\n",
            "          actions: [record]\n",
            "        - rule: _G['ma' .. 'th'].max(1, 2) == 2 and table.concat({'a', 'b'}) == 'ab' and os.time() > 0\n",
            "          actions: [approval]\n",
        )),
    )]);
    assert_eq!(named.evaluate(&i, None).actions, acts(&[A]));
}
