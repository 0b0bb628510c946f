//! Context variables computed the way each tool resolves them, by reading files only (never running the tool),
//! and only when a snippet mentions them: this is the hot path of every shimmed command.

use super::flags::FlagValue;
use super::invocation::Invocation;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lazily computed context names, in display order.
pub const NAMES: [&str; 5] =
    ["k8s_current_context", "k8s_context", "aws_profile", "gcloud_configuration", "terraform_workspace"];

/// Computes the context variables that any of `sources` mentions (a substring check). Values that resolve to
/// nothing are absent (nil in Lua).
pub fn compute(
    inv: &Invocation,
    flags: &BTreeMap<String, FlagValue>,
    sources: &[&str],
) -> BTreeMap<&'static str, String> {
    let mentions = |name: &str| sources.iter().any(|s| s.contains(name));
    let mut out = BTreeMap::new();
    let flag_context = flag_str(flags, "context");
    let want_current = mentions("k8s_current_context");
    let want_context = mentions("k8s_context");
    let current = if want_current || (want_context && flag_context.is_none()) {
        k8s_current_context(inv, flags)
    } else {
        None
    };
    if want_current {
        if let Some(c) = &current {
            out.insert("k8s_current_context", c.clone());
        }
    }
    if want_context {
        if let Some(c) = flag_context.map(str::to_string).or(current) {
            out.insert("k8s_context", c);
        }
    }
    if mentions("aws_profile") {
        if let Some(p) = aws_profile(inv, flags) {
            out.insert("aws_profile", p);
        }
    }
    if mentions("gcloud_configuration") {
        if let Some(c) = gcloud_configuration(inv, flags) {
            out.insert("gcloud_configuration", c);
        }
    }
    if mentions("terraform_workspace") {
        out.insert("terraform_workspace", terraform_workspace(inv, flags));
    }
    out
}

fn flag_str<'a>(flags: &'a BTreeMap<String, FlagValue>, key: &str) -> Option<&'a str> {
    match flags.get(key) {
        Some(FlagValue::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn env_nonempty<'a>(inv: &'a Invocation, key: &str) -> Option<&'a str> {
    inv.env.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn resolve(inv: &Invocation, p: &str) -> PathBuf {
    let p = expand_tilde(inv, p);
    if p.is_absolute() {
        p
    } else {
        inv.cwd.join(p)
    }
}

fn expand_tilde(inv: &Invocation, p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), env_nonempty(inv, "HOME")) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn home(inv: &Invocation) -> Option<PathBuf> {
    env_nonempty(inv, "HOME").map(PathBuf::from)
}

/// kubectl's rule: `--kubeconfig` wins (that file only); else each `KUBECONFIG` entry in order, the first file
/// with a non-empty `current-context` winning; else `~/.kube/config`.
pub fn k8s_current_context(inv: &Invocation, flags: &BTreeMap<String, FlagValue>) -> Option<String> {
    if let Some(path) = flag_str(flags, "kubeconfig") {
        return read_current_context(&resolve(inv, path));
    }
    if let Some(list) = env_nonempty(inv, "KUBECONFIG") {
        return list
            .split(':')
            .filter(|p| !p.is_empty())
            .find_map(|p| read_current_context(&resolve(inv, p)));
    }
    read_current_context(&home(inv)?.join(".kube").join("config"))
}

fn read_current_context(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    current_context_of(&text)
}

/// Extracts the top-level `current-context` from kubeconfig text without parsing the rest (a kubeconfig can
/// hold large embedded certificates). Handles YAML and JSON kubeconfigs.
pub fn current_context_of(text: &str) -> Option<String> {
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        return v.get("current-context")?.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    }
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("current-context") else { continue };
        let rest = rest.trim_start();
        let Some(value) = rest.strip_prefix(':') else { continue };
        let v = yaml_scalar(value.trim());
        return (!v.is_empty()).then_some(v);
    }
    None
}

/// A one-line YAML scalar: quotes removed, trailing comment dropped.
fn yaml_scalar(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('"') {
        if let Some(end) = inner.find('"') {
            return inner[..end].replace("\\\"", "\"");
        }
    }
    if let Some(inner) = v.strip_prefix('\'') {
        if let Some(end) = inner.rfind('\'') {
            return inner[..end].replace("''", "'");
        }
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    let v = v.trim();
    if v == "~" || v == "null" {
        String::new()
    } else {
        v.to_string()
    }
}

/// `--profile`, else `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`; nil when none (the AWS CLI then uses `default`).
pub fn aws_profile(inv: &Invocation, flags: &BTreeMap<String, FlagValue>) -> Option<String> {
    flag_str(flags, "profile")
        .or_else(|| env_nonempty(inv, "AWS_PROFILE"))
        .or_else(|| env_nonempty(inv, "AWS_DEFAULT_PROFILE"))
        .map(str::to_string)
}

/// `--configuration`, else `CLOUDSDK_ACTIVE_CONFIG_NAME`, else the `active_config` file of the gcloud config dir
/// (`CLOUDSDK_CONFIG`, default `~/.config/gcloud`); nil when none.
pub fn gcloud_configuration(inv: &Invocation, flags: &BTreeMap<String, FlagValue>) -> Option<String> {
    if let Some(c) =
        flag_str(flags, "configuration").or_else(|| env_nonempty(inv, "CLOUDSDK_ACTIVE_CONFIG_NAME"))
    {
        return Some(c.to_string());
    }
    let dir = match env_nonempty(inv, "CLOUDSDK_CONFIG") {
        Some(d) => resolve(inv, d),
        None => home(inv)?.join(".config").join("gcloud"),
    };
    let text = std::fs::read_to_string(dir.join("active_config")).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `TF_WORKSPACE`, else `<data dir>/environment` (data dir `TF_DATA_DIR`, default `.terraform`, under the
/// working directory, which `-chdir=DIR` moves), else `default`, as terraform resolves it.
pub fn terraform_workspace(inv: &Invocation, flags: &BTreeMap<String, FlagValue>) -> String {
    if let Some(w) = env_nonempty(inv, "TF_WORKSPACE") {
        return w.to_string();
    }
    let base = match flag_str(flags, "chdir") {
        Some(d) => resolve(inv, d),
        None => inv.cwd.clone(),
    };
    let data = match env_nonempty(inv, "TF_DATA_DIR") {
        Some(d) if Path::new(d).is_absolute() => PathBuf::from(d),
        Some(d) => base.join(d),
        None => base.join(".terraform"),
    };
    std::fs::read_to_string(data.join("environment"))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::flags::parse_flags;
    use super::*;

    struct Fx {
        dir: tempfile::TempDir,
    }
    impl Fx {
        fn new() -> Fx {
            Fx { dir: tempfile::tempdir().unwrap() }
        }
        fn write(&self, rel: &str, text: &str) -> String {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        }
        fn inv(&self, env: &[(&str, &str)], args: &[&str]) -> Invocation {
            let mut e: BTreeMap<String, String> =
                env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            e.entry("HOME".into()).or_insert_with(|| self.dir.path().join("home").display().to_string());
            Invocation {
                executable: "kubectl".into(),
                args: args.iter().map(|a| a.to_string()).collect(),
                env: e,
                cwd: self.dir.path().to_path_buf(),
                user: "u".into(),
                hostname: "h".into(),
            }
        }
    }

    fn cur(inv: &Invocation) -> Option<String> {
        k8s_current_context(inv, &parse_flags(&inv.args))
    }

    /// (name, env, args, expected current context)
    type Row<'a> = (&'a str, Vec<(&'a str, String)>, Vec<&'a str>, Option<&'a str>);

    #[test]
    fn kubeconfig_merge_table() {
        let fx = Fx::new();
        let a = fx.write("a.yaml", "apiVersion: v1\nkind: Config\n");
        let b = fx.write("b.yaml", "current-context: \"prod-eu\" # pinned\n");
        let c = fx.write("c.yaml", "current-context: dev\n");
        let empty = fx.write("e.yaml", "current-context: \"\"\n");
        let json = fx.write("j.json", r#"{"kind":"Config","current-context":"from-json"}"#);
        fx.write("home/.kube/config", "users: []\ncurrent-context: home-ctx\ncontexts:\n- name: x\n  context:\n    current-context: nested\n");
        let missing = fx.dir.path().join("nope").display().to_string();
        let cases: Vec<Row> = vec![
            ("no KUBECONFIG: ~/.kube/config", vec![], vec![], Some("home-ctx")),
            (
                "first file with a context wins",
                vec![("KUBECONFIG", format!("{a}:{b}:{c}"))],
                vec![],
                Some("prod-eu"),
            ),
            ("order matters", vec![("KUBECONFIG", format!("{c}:{b}"))], vec![], Some("dev")),
            (
                "missing and empty entries skipped",
                vec![("KUBECONFIG", format!("{missing}::{empty}:{c}"))],
                vec![],
                Some("dev"),
            ),
            ("KUBECONFIG with no context: nil, home not read", vec![("KUBECONFIG", a.clone())], vec![], None),
            (
                "empty KUBECONFIG falls back to home",
                vec![("KUBECONFIG", String::new())],
                vec![],
                Some("home-ctx"),
            ),
            (
                "--kubeconfig wins over KUBECONFIG",
                vec![("KUBECONFIG", c.clone())],
                vec!["--kubeconfig", "b.yaml"],
                Some("prod-eu"),
            ),
            (
                "--kubeconfig= form",
                vec![],
                vec![format!("--kubeconfig={json}").leak() as &str],
                Some("from-json"),
            ),
            ("--kubeconfig missing file: nil", vec![], vec!["--kubeconfig", "nope.yaml"], None),
        ];
        for (name, env, args, want) in cases {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(cur(&fx.inv(&env, &args)).as_deref(), want, "case `{name}`");
        }
        let no_home = Invocation { env: BTreeMap::new(), ..fx.inv(&[], &[]) };
        assert_eq!(k8s_current_context(&no_home, &BTreeMap::new()), None);
    }

    #[test]
    fn k8s_context_prefers_flag_and_is_lazy() {
        let fx = Fx::new();
        fx.write("home/.kube/config", "current-context: home-ctx\n");
        let inv = fx.inv(&[], &["--context", "prod"]);
        let f = parse_flags(&inv.args);
        let got = compute(&inv, &f, &["return k8s_context"]);
        assert_eq!(got.get("k8s_context").map(String::as_str), Some("prod"));
        assert!(!got.contains_key("k8s_current_context"));
        let got = compute(&inv, &f, &["return has_arg('x')"]);
        assert!(got.is_empty(), "nothing mentioned, nothing computed: {got:?}");
        let got = compute(&fx.inv(&[], &[]), &BTreeMap::new(), &["k8s_context", "k8s_current_context"]);
        assert_eq!(got.get("k8s_context").map(String::as_str), Some("home-ctx"));
        assert_eq!(got.get("k8s_current_context").map(String::as_str), Some("home-ctx"));
    }

    #[test]
    fn cloud_contexts() {
        let fx = Fx::new();
        let f = |args: &[&str]| parse_flags(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let inv = fx.inv(&[("AWS_DEFAULT_PROFILE", "d")], &[]);
        assert_eq!(aws_profile(&inv, &f(&[])).as_deref(), Some("d"));
        let inv = fx.inv(&[("AWS_DEFAULT_PROFILE", "d"), ("AWS_PROFILE", "p")], &[]);
        assert_eq!(aws_profile(&inv, &f(&[])).as_deref(), Some("p"));
        assert_eq!(aws_profile(&inv, &f(&["--profile", "flag"])).as_deref(), Some("flag"));
        assert_eq!(aws_profile(&fx.inv(&[], &[]), &f(&[])), None);

        assert_eq!(gcloud_configuration(&fx.inv(&[], &[]), &f(&[])), None);
        fx.write("home/.config/gcloud/active_config", "staging\n");
        assert_eq!(gcloud_configuration(&fx.inv(&[], &[]), &f(&[])).as_deref(), Some("staging"));
        fx.write("gc/active_config", "other");
        let inv = fx.inv(&[("CLOUDSDK_CONFIG", "gc")], &[]);
        assert_eq!(gcloud_configuration(&inv, &f(&[])).as_deref(), Some("other"));
        let inv = fx.inv(&[("CLOUDSDK_ACTIVE_CONFIG_NAME", "env")], &[]);
        assert_eq!(gcloud_configuration(&inv, &f(&[])).as_deref(), Some("env"));
        assert_eq!(gcloud_configuration(&inv, &f(&["--configuration=fl"])).as_deref(), Some("fl"));

        assert_eq!(terraform_workspace(&fx.inv(&[], &[]), &f(&[])), "default");
        fx.write(".terraform/environment", "prod\n");
        assert_eq!(terraform_workspace(&fx.inv(&[], &[]), &f(&[])), "prod");
        fx.write("tfdata/environment", "data-dir");
        assert_eq!(terraform_workspace(&fx.inv(&[("TF_DATA_DIR", "tfdata")], &[]), &f(&[])), "data-dir");
        fx.write("infra/.terraform/environment", "chdir-ws");
        assert_eq!(terraform_workspace(&fx.inv(&[], &[]), &f(&["-chdir=infra", "plan"])), "chdir-ws");
        assert_eq!(terraform_workspace(&fx.inv(&[("TF_WORKSPACE", "w")], &[]), &f(&[])), "w");
    }

    #[test]
    fn current_context_parsing() {
        for (text, want) in [
            ("current-context: a\n", Some("a")),
            ("current-context: 'it''s'\n", Some("it's")),
            ("current-context:\n", None),
            ("current-context: null\n", None),
            ("  current-context: nested\n", None),
            ("current-context : spaced\n", Some("spaced")),
            ("{\"current-context\": \"\"}", None),
        ] {
            assert_eq!(current_context_of(text).as_deref(), want, "{text:?}");
        }
    }
}
