//! `ddcoterm check` and `ddcoterm policy test` driven through the binary, with isolated config dirs.

mod harness;

use harness::World;
use std::path::PathBuf;
use std::process::Output;

const RULES_DOC: &str = include_str!("policy_fixtures/coterm-rules.yaml");
const LINT_DOC: &str = include_str!("policy_fixtures/coterm-lint.yaml");

/// An isolated world ([`World::bare`]: no organisation config unless a test writes one) with a `work/` dir
/// to run in, and variables to add.
struct Test {
    world: World,
    env: Vec<(String, String)>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Test {
    fn new() -> Test {
        let world = World::bare();
        std::fs::create_dir_all(world.path("work")).unwrap();
        Test { world, env: Vec::new() }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.world.path(rel)
    }
    fn write(&self, rel: &str, text: &str) -> &Test {
        self.world.write(rel, text, 0o644);
        self
    }
    fn user_config(&self, text: &str) -> &Test {
        self.write("home/.ddcoterm/config.yaml", text)
    }
    fn system_config(&self, text: &str) -> &Test {
        self.write("etc/config.yaml", text)
    }
    fn kubeconfig(&self, ctx: &str) -> &Test {
        self.write("home/.kube/config", &format!("apiVersion: v1\ncurrent-context: {ctx}\n"))
    }
    fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }
    fn run(&self, args: &[&str]) -> Run {
        let out: Output = self
            .world
            .ddcoterm(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.path("work"))
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }
}

impl Run {
    fn code(&self, want: i32) -> &Run {
        assert_eq!(self.code, want, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    fn stdout(&self, s: &str) -> &Run {
        assert!(self.stdout.contains(s), "stdout lacks {s:?}:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    fn stderr(&self, s: &str) -> &Run {
        assert!(self.stderr.contains(s), "stderr lacks {s:?}:\n{}", self.stderr);
        self
    }
}

#[test]
fn check_rules_doc_prod_scale_needs_approval_with_file_and_line() {
    let t = Test::new();
    t.user_config(RULES_DOC).kubeconfig("prod-eu");
    let cfg = t.path("home/.ddcoterm/config.yaml").display().to_string();
    t.run(&["check", "--", "kubectl", "scale", "deploy/web", "--replicas=0"])
        .code(0)
        .stdout(&format!("rule:      kubectl rules[0] at {cfg}:9 (user)"))
        .stdout("user message:     Proceed with caution.")
        .stdout("approver message: Ensure that the user has documented a rollback plan")
        .stdout("actions:   [record, logs, process_info, approval] (from rule)")
        .stdout("k8s_current_context = prod-eu");
    t.run(&["check", "--", "kubectl", "scale", "deploy/web", "--context", "dev"])
        .code(0)
        .stdout("rules[1]")
        .stdout("actions:   [record, logs, process_info] (from rule)");
    t.run(&["check", "--", "kubectl", "get", "pods"])
        .code(0)
        .stdout("rules[2]")
        .stdout("actions:   [] (run without recording)");
}

/// The binary takes the C math functions from the `libm` crate (src/cmath.rs) instead of libm.so.6: each one
/// Luau's `math` reaches, through the binary, against the correctly rounded value (within two ulps).
#[test]
fn check_math_functions_give_the_expected_values_through_the_binary() {
    let t = Test::new();
    t.user_config(concat!(
        "process_config:\n",
        "  commands:\n",
        "    - command: calc\n",
        "      lints:\n",
        "        - |\n",
        "          local function near(a, b) return a == b or math.abs(a - b) <= 4.5e-16 * math.max(1, math.abs(b)) end\n",
        "          local m, e = math.frexp(48)\n",
        "          local ip, fp = math.modf(-3.75)\n",
        "          local checks = {\n",
        "            acos = near(math.acos(0.5), 1.0471975511965979), asin = near(math.asin(0.5), 0.5235987755982989),\n",
        "            atan = near(math.atan(1), 0.7853981633974483), atan2 = near(math.atan2(1, -1), 2.356194490192345),\n",
        "            cos = near(math.cos(1), 0.5403023058681398), cosh = near(math.cosh(1), 1.5430806348152437),\n",
        "            exp = near(math.exp(1), 2.718281828459045), frexp = m == 0.75 and e == 6,\n",
        "            ldexp = math.ldexp(0.75, 6) == 48, log = near(math.log(10), 2.302585092994046),\n",
        "            log10 = math.log10(1000) == 3, log2 = math.log(1024, 2) == 10,\n",
        "            modf = ip == -3 and fp == -0.75, pow = near(2 ^ 0.5, 1.4142135623730951) and 2 ^ 10 == 1024,\n",
        "            sin = near(math.sin(1), 0.8414709848078965), sinh = near(math.sinh(1), 1.1752011936438014),\n",
        "            tan = near(math.tan(1), 1.5574077246549023), tanh = near(math.tanh(1), 0.7615941559557649),\n",
        "          }\n",
        "          local bad = {}\n",
        "          for name, ok in pairs(checks) do if not ok then table.insert(bad, name) end end\n",
        "          table.sort(bad)\n",
        "          if #bad > 0 then return 'wrong: ' .. table.concat(bad, ' ') end\n",
        "          local n = 0\n",
        "          for _ in pairs(checks) do n += 1 end\n",
        "          if n ~= 18 then return 'checked ' .. n .. ' functions, not 18' end\n",
    ));
    t.run(&["check", "--", "calc"]).code(0).stdout("warnings:  none");
}

#[test]
fn check_json_is_the_decision() {
    let t = Test::new();
    t.user_config(RULES_DOC).kubeconfig("dev").write("work/kc", "current-context: prod\n");
    let t = t.env("KUBECONFIG", "/nonexistent:kc");
    let r = t.run(&["check", "--json", "--", "kubectl", "scale", "x"]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["actions"], serde_json::json!(["record", "logs", "process_info", "approval"]));
    assert_eq!(v["source"], "rule");
    assert_eq!(v["rule"]["index"], 0);
    assert_eq!(v["context"]["k8s_current_context"], "prod");
}

#[test]
fn check_lint_doc_warns_with_effective_context() {
    let t = Test::new();
    t.user_config(LINT_DOC).kubeconfig("prod-eu");
    t.run(&["check", "--", "kubectl", "scale", "foo"])
        .code(0)
        .stdout("Warning from CoTerm: No kubectl context specified (effective context: 'prod-eu').")
        .stdout("actions:   [record, logs, process_info] (from built-in default)");
    t.run(&["check", "--", "kubectl", "scale", "foo", "--context=x"]).code(0).stdout("warnings:  none");
}

#[test]
fn check_runs_nothing() {
    let t = Test::new();
    let marker = t.path("work/ran");
    t.run(&["check", "--", "touch", marker.to_str().unwrap()]).code(0).stdout("(from built-in default)");
    assert!(!marker.exists());
}

#[test]
fn check_cli_actions_cannot_drop_an_org_rules_approval() {
    let t = Test::new();
    t.system_config("process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: has_arg('delete')\n          actions: [approval]\n");
    t.run(&["check", "--actions=", "--", "kubectl", "delete", "ns", "x"])
        .code(0)
        .stdout("actions:   [approval] (from command-line --actions)")
        .stdout("(system)");
    t.run(&["check", "--actions=record", "--", "kubectl", "get"])
        .code(0)
        .stdout("actions:   [record] (from command-line --actions)");
    t.run(&["check", "--actions=nope", "--", "kubectl"]).code(64).stderr("unknown action `nope`");
}

#[test]
fn check_failing_rule_fails_closed_and_says_so() {
    let t = Test::new();
    t.user_config("process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: while true do end\n          actions: [approval]\n");
    t.run(&["check", "--", "kubectl", "get"])
        .code(0)
        .stdout("error:     kubectl rules[0]")
        .stdout("time budget")
        .stdout("actions:   [approval] (from rule)");
    t.user_config("process_config:\n  commands:\n    - command: helm\n      rules:\n        - rule: if then\n          actions: []\n");
    t.run(&["check", "--", "kubectl", "get"]).code(0).stderr("helm rules[0] at ").stderr("does not compile");
}

#[test]
fn check_config_error_exits_78_naming_the_file() {
    let t = Test::new();
    t.user_config("process_config:\n  comands: []\n");
    t.run(&["check", "--", "kubectl"]).code(78).stderr("config.yaml:2");
}

const TESTS_OK: &str = r#"
config: [rules.yaml]
kubeconfig: |
  current-context: prod-eu
cases:
  - name: scale in prod needs approval
    command: [kubectl, scale, deploy/web, --replicas=0]
    expect:
      actions: [approval, record, logs, process_info]
      user_message_contains: caution
      approver_message_contains: rollback
      rule: "rules[0]"
  - name: scale in dev records only
    command: [kubectl, scale, deploy/web]
    kubeconfig: |
      current-context: dev
    expect:
      actions: [record, logs, process_info]
      rule: "rules[1]"
  - name: env is the case's own
    command: [aws, s3, ls]
    env: { AWS_PROFILE: prod }
    expect:
      rule: "aws rules[0]"
      actions: [record]
  - name: lint warns without context
    command: [kubectl, scale, x]
    expect:
      warnings: 1
      warning_contains: ["No kubectl context"]
  - name: get runs unrecorded
    command: [kubectl, get, pods]
    expect: { actions: [], warnings: 0 }
"#;

const POLICY: &str = r#"
process_config:
  commands:
    - command: kubectl
      lints:
        - |
          if has_arg("scale") and flags.context == nil then
            return string.format("No kubectl context specified (effective context: '%s').", k8s_context)
          end
      rules:
        - rule: |
            local k8s_context = flags.context or k8s_current_context or "unknown"
            return has_arg("scale") and k8s_context:match("prod"), "Proceed with caution.", "Ensure a rollback plan."
          actions: [record, logs, process_info, approval]
        - rule: has_arg("scale")
          actions: [record, logs, process_info]
        - rule: true
          actions: []
    - command: aws
      rules:
        - rule: aws_profile == "prod" and env.HOME ~= nil and env.PATH == nil
          actions: [record]
"#;

#[test]
fn policy_test_passes() {
    let t = Test::new();
    t.write("pt/rules.yaml", POLICY).write("pt/tests.yaml", TESTS_OK);
    let r = t.run(&["policy", "test", t.path("pt/tests.yaml").to_str().unwrap()]);
    r.code(0).stdout("PASS scale in prod needs approval").stdout("PASS env is the case's own");
    assert!(r.stdout.trim_end().ends_with("5 passed, 0 failed"), "{}", r.stdout);
}

#[test]
fn policy_test_failing_case_exits_1_with_expected_and_got() {
    let t = Test::new();
    let tests = "cases:\n  - name: wrong\n    command: [kubectl, get]\n    expect:\n      actions: [approval]\n      rule: none\n  - name: right\n    command: [kubectl, get]\n    expect: { actions: [] }\n";
    t.write("pt/rules.yaml", POLICY).write("pt/tests.yaml", tests);
    let r = t.run(&[
        "policy",
        "test",
        t.path("pt/tests.yaml").to_str().unwrap(),
        "--config",
        t.path("pt/rules.yaml").to_str().unwrap(),
    ]);
    r.code(1)
        .stdout("FAIL wrong: expected actions [approval], got [] (run without recording); expected rule \"none\", got kubectl rules[2]")
        .stdout("PASS right");
    assert!(r.stdout.trim_end().ends_with("1 passed, 1 failed"), "{}", r.stdout);
}

#[test]
fn policy_test_uses_effective_config_without_config_files() {
    let t = Test::new();
    t.user_config(RULES_DOC).write("pt/tests.yaml", "cases:\n  - name: default\n    command: [kubectl, get]\n    expect: { rule: \"(user)\", actions: [] }\n");
    t.run(&["policy", "test", t.path("pt/tests.yaml").to_str().unwrap()])
        .code(0)
        .stdout("1 passed, 0 failed");
}

#[test]
fn policy_test_loads_bundles_as_organisation_policy() {
    let t = Test::new();
    let bundle = "name: sre-baseline\nrevision: 3\nprocess_config:\n  commands:\n    - command: terraform\n      rules:\n        - rule: has_arg('destroy') and terraform_workspace == 'prod'\n          actions: [approval, record]\n";
    let tests = "config: [b.yaml]\ncases:\n  - name: destroy prod\n    command: [terraform, destroy]\n    env: { TF_WORKSPACE: prod }\n    expect: { actions: [approval, record], rule: \"terraform rules[0] at \" }\n  - name: destroy dev\n    command: [terraform, destroy]\n    cwd: ws\n    expect: { rule: none, actions: [record, logs, process_info] }\n";
    t.write("pt/b.yaml", bundle).write("pt/tests.yaml", tests).write("pt/ws/.terraform/environment", "dev\n");
    let r = t.run(&["policy", "test", t.path("pt/tests.yaml").to_str().unwrap()]);
    r.code(0).stdout("2 passed, 0 failed");
}

#[test]
fn policy_test_bad_file_exits_65_naming_file_line_and_key() {
    let t = Test::new();
    t.write("pt/rules.yaml", POLICY);
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown expect key", "config: [rules.yaml]\ncases:\n  - name: x\n    command: [kubectl]\n    expect:\n      action: [record]\n", &["tests.yaml:6", "unknown field `action`"]),
        ("unknown action", "config: [rules.yaml]\ncases:\n  - name: x\n    command: [kubectl]\n    expect: { actions: [recrod] }\n", &["tests.yaml:5", "recrod"]),
        ("empty command", "config: [rules.yaml]\ncases:\n  - name: x\n    command: []\n", &["tests.yaml:4", "cases[0].command"]),
        ("no cases", "config: [rules.yaml]\ncases: []\n", &["tests.yaml:2", "no cases"]),
        ("not yaml", "cases: [\n", &["tests.yaml"]),
    ];
    for (name, text, want) in cases {
        t.write("pt/tests.yaml", text);
        let r = t.run(&["policy", "test", t.path("pt/tests.yaml").to_str().unwrap()]);
        assert_eq!(r.code, 65, "{name}: {}", r.stderr);
        for w in *want {
            assert!(r.stderr.contains(w), "{name}: stderr lacks {w:?}: {}", r.stderr);
        }
    }
    let r = t.run(&["policy", "test", t.path("pt/missing.yaml").to_str().unwrap()]);
    r.code(65).stderr("missing.yaml");
}

#[test]
fn policy_test_bad_policy_file_is_a_config_error() {
    let t = Test::new();
    t.write("pt/rules.yaml", "process_config:\n  commandz: []\n")
        .write("pt/tests.yaml", "config: [rules.yaml]\ncases:\n  - name: x\n    command: [kubectl]\n");
    t.run(&["policy", "test", t.path("pt/tests.yaml").to_str().unwrap()]).code(78).stderr("rules.yaml:2");
}
