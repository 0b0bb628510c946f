//! The `ddcoterm policy test` table (docs/policy.md): parsing and checking it, loading the policy files it
//! names as the organisation layer, deciding each case in an isolated HOME and comparing with what it expects.
//! `cmd/policy_cmd.rs` prints the results.

use crate::config::policy_set::PolicyLayer;
use crate::config::settings::PolicySettings;
use crate::config::{bundle_layer, file_layer, PolicySet};
use crate::error::{ConfigError, Exit};
use crate::model::{Action, ActionSet};
use crate::policy::invocation::basename;
use crate::policy::{Decision, Invocation, PolicyEngine};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The test table (see docs/policy.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Policy files relative to the test file; loaded as the organisation layer.
    #[serde(default)]
    pub config: Vec<PathBuf>,
    /// Default kubeconfig content for every case.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    pub cases: Vec<TestCase>,
}

/// One case: an invocation and what its decision must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub command: Vec<String>,
    /// The only environment the case sees (plus HOME, a temp dir).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub expect: Expect,
}

/// What a case expects; unset fields are not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub actions: Option<Vec<Action>>,
    pub warnings: Option<usize>,
    #[serde(default)]
    pub warning_contains: Vec<String>,
    pub user_message_contains: Option<String>,
    pub approver_message_contains: Option<String>,
    /// Substring of the deciding rule's reference; `none`: no rule may match.
    pub rule: Option<String>,
}

/// Parses and checks the table; every problem is exit 65 naming the file, line and key.
pub fn parse_table(file: &Path, text: &str) -> anyhow::Result<TestFile> {
    let data_err = |e: ConfigError| Exit::data(format!("invalid policy test file: {e}"));
    let table: TestFile =
        serde_yaml::from_str(text).map_err(|e| data_err(file_layer::yaml_error(file, &e)))?;
    let lines = file_layer::line_map(text);
    if table.cases.is_empty() {
        return Err(data_err(ConfigError::invalid(
            file,
            lines.get("cases").copied(),
            None,
            "key `cases`: no cases",
        ))
        .into());
    }
    for (i, c) in table.cases.iter().enumerate() {
        let bad = |key: &str, msg: &str| {
            let path = format!("cases[{i}].{key}");
            let line = lines.get(&path).or_else(|| lines.get(&format!("cases[{i}]"))).copied();
            data_err(ConfigError::invalid(
                file,
                line,
                None,
                format!("key `{path}` (case `{}`): {msg}", c.name),
            ))
        };
        if c.command.first().is_none_or(|s| s.is_empty()) {
            return Err(bad("command", "must name an executable, e.g. [kubectl, get, pods]").into());
        }
        if c.name.trim().is_empty() {
            return Err(bad("name", "must not be empty").into());
        }
    }
    Ok(table)
}

/// Policy files as the organisation layer: a bundle (has `name` and `revision`) or a config file.
pub fn load_files(files: &[PathBuf]) -> anyhow::Result<(PolicySet, PolicySettings)> {
    let mut layers = Vec::new();
    let mut settings = PolicySettings::default();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.clone(),
            msg: format!("cannot read policy file: {e}"),
        })?;
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
        let is_bundle = value.get("name").is_some() && value.get("revision").is_some();
        if is_bundle {
            let b = bundle_layer::parse_verified(path, text.as_bytes(), None, &[])?;
            layers.push(PolicyLayer {
                layer: "bundle".into(),
                source: path.display().to_string(),
                detail: Some(format!("{} r{}", b.doc.name, b.doc.revision)),
                process_config: b.doc.process_config,
                lines: Some(b.lines),
            });
        } else {
            let f = file_layer::parse(path, &text)?;
            if value.get("policy").is_some() {
                settings = f.settings.policy.clone();
            }
            layers.push(PolicyLayer {
                layer: "system".into(),
                source: path.display().to_string(),
                process_config: f.settings.process_config,
                lines: Some(f.lines),
                detail: None,
            });
        }
    }
    Ok((PolicySet::compose(&layers), settings))
}

/// Decides one case: its command, environment and kubeconfig (in a fresh temp HOME), its cwd relative to
/// the table's directory.
pub fn run_case(
    engine: &PolicyEngine,
    table: &TestFile,
    case: &TestCase,
    base: &Path,
) -> anyhow::Result<Decision> {
    let home = tempfile::tempdir()?;
    if let Some(k) = case.kubeconfig.as_ref().or(table.kubeconfig.as_ref()) {
        std::fs::create_dir_all(home.path().join(".kube"))?;
        std::fs::write(home.path().join(".kube").join("config"), k)?;
    }
    let mut env = case.env.clone();
    env.insert("HOME".into(), home.path().display().to_string());
    let cwd = match &case.cwd {
        Some(c) => base.join(c),
        None => base.to_path_buf(),
    };
    let cwd = std::path::absolute(&cwd).unwrap_or(cwd);
    let inv = Invocation {
        executable: basename(&case.command[0]),
        args: case.command[1..].to_vec(),
        env,
        cwd,
        user: crate::policy::ProcessFact::lazy(crate::dirs::user_name),
        hostname: crate::policy::ProcessFact::lazy(crate::dirs::host_name),
    };
    Ok(engine.evaluate(&inv, None))
}

/// Every unmet expectation, as `expected .. got ..`.
pub fn compare(x: &Expect, d: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = &x.actions {
        let want = ActionSet::new(a.iter().copied());
        if want != d.actions {
            out.push(format!("expected actions {want}, got {}", d.actions));
        }
    }
    let messages: Vec<&str> = d.warnings.iter().map(|w| w.message.as_str()).collect();
    if let Some(n) = x.warnings {
        if n != d.warnings.len() {
            out.push(format!("expected {n} warning(s), got {} {messages:?}", d.warnings.len()));
        }
    }
    for s in &x.warning_contains {
        if !messages.iter().any(|m| m.contains(s.as_str())) {
            out.push(format!("expected a warning containing {s:?}, got {messages:?}"));
        }
    }
    for (what, want, got) in [
        ("user message", &x.user_message_contains, &d.user_message),
        ("approver message", &x.approver_message_contains, &d.approver_message),
    ] {
        if let Some(w) = want {
            if !got.as_deref().is_some_and(|g| g.contains(w.as_str())) {
                out.push(format!("expected {what} containing {w:?}, got {got:?}"));
            }
        }
    }
    if let Some(r) = &x.rule {
        let got = d.rule.as_ref().map(|r| r.to_string());
        let ok = match (r.as_str(), &got) {
            ("none", None) => true,
            ("none", Some(_)) => false,
            (want, Some(g)) => g.contains(want),
            (_, None) => false,
        };
        if !ok {
            out.push(format!("expected rule {r:?}, got {}", got.as_deref().unwrap_or("none")));
        }
    }
    out
}
