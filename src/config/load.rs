//! The one place that knows the layer order. Lowest to highest:
//!
//! 1. built-in defaults (`Settings::default()`)
//! 2. system `<system>/config.yaml`
//! 3. rule bundles `<system>/bundles/*.yaml` (policy only, signature-verified)
//! 4. team files `<system>/teams/<team>.yaml` for each team whose unix groups the user is in
//! 5. user `<home>/config.yaml`
//! 6. environment `DDCOTERM_*` (`__` nests), `DD_API_KEY`, `DD_APP_KEY`, `DD_SITE`
//! 7. flags (`--set key=value`)
//!
//! figment merges values (later wins). On top: the policy floor ([`PolicySet::compose`]) for lints, rules and
//! default actions; `locked:` keys of the system layer are restored from layers 1-4 with a warning; safety
//! keys ([`super::safety`]) may be tightened by layers 5-7, never loosened; `teams`, `locked`,
//! `bundles.trusted_keys`, `ssh` and `agent` are honoured from the system layer only.

use super::bundle_layer::{self, BundleFile};
use super::file_layer::{self, LayerFile, Trust};
use super::lines::Lines;
use super::org_cache::OrgCache;
use super::policy_set::{PolicyLayer, PolicySet};
use super::safety;
use super::settings::{ProcessConfig, Settings};
use crate::dirs::Dirs;
use crate::error::ConfigError;
use crate::model::Origin;
use figment::providers::{Env, Serialized};
use figment::Figment;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `DDCOTERM_*` variables that are not config keys.
pub const NON_CONFIG_ENV: [&str; 5] = ["home", "system_dir", "session", "shim_active", "log"];

/// Inputs to [`load`]: where the layers are and the flag layer.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dirs: Dirs,
    /// `KEY=VALUE` pairs from `--set`.
    pub sets: Vec<String>,
}

impl LoadOptions {
    pub fn from_env() -> Self {
        LoadOptions { dirs: Dirs::from_env(), sets: Vec::new() }
    }
}

/// A layer file that was looked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInfo {
    pub layer: String,
    pub path: PathBuf,
    pub exists: bool,
}

/// The merged result with provenance.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Merged settings; `process_config` holds the composed policy (org commands first).
    pub settings: Settings,
    pub policy: PolicySet,
    /// What each layer set, for [`Loaded::origins`] (computed only when asked: `config show --origin`).
    sources: Vec<OriginSource>,
    origins: std::sync::OnceLock<BTreeMap<String, Origin>>,
    /// Problems that did not stop loading (shown once on stderr).
    pub warnings: Vec<String>,
    /// Files looked for, in layer order.
    pub layers: Vec<LayerInfo>,
    /// Installed bundles that are in force.
    pub bundles: Vec<BundleFile>,
    pub dirs: Dirs,
    /// Where things are, resolved once from the settings and [`Loaded::dirs`].
    pub paths: Paths,
}

/// The directories a command works in, each the configured key or its default, resolved once at load (every
/// configured path was checked to be absolute, by the layer that set it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `recording.dir`, else `~/.ddcoterm/recordings`.
    pub recordings: PathBuf,
    /// `spool.dir`, else `~/.ddcoterm/spool`.
    pub spool: PathBuf,
    /// `shims.dir`, else `~/.ddcoterm/overrides`.
    pub user_shims: PathBuf,
    /// `shims.system_dir`, else `/usr/local/lib/ddcoterm/overrides`.
    pub system_shims: PathBuf,
}

impl Paths {
    fn resolve(s: &Settings, dirs: &Dirs) -> Paths {
        Paths {
            recordings: s.recording.dir.clone().unwrap_or_else(|| dirs.recordings()),
            spool: s.spool.dir.clone().unwrap_or_else(|| dirs.spool()),
            user_shims: s.shims.dir.clone().unwrap_or_else(|| dirs.user_shims()),
            system_shims: s.shims.system_dir.clone().unwrap_or_else(|| crate::dirs::SYSTEM_SHIM_DIR.into()),
        }
    }
}

/// One layer's values, kept to compute provenance on demand.
#[derive(Debug, Clone)]
struct OriginSource {
    origin: Origin,
    value: Arc<serde_yaml::Value>,
    lines: Option<Arc<Lines>>,
}

impl Loaded {
    /// Leaf key path -> where its effective value came from (lists count as one leaf).
    pub fn origins(&self) -> &BTreeMap<String, Origin> {
        self.origins.get_or_init(|| origins_of(&self.sources))
    }
}

/// Every key starts as the built-in default; each layer's keys then replace theirs.
fn origins_of(sources: &[OriginSource]) -> BTreeMap<String, Origin> {
    let mut out = BTreeMap::new();
    let builtin = Origin::new("default", "built-in", None);
    flatten_into(&mut out, &to_yaml(&Settings::default()), "", &builtin, None);
    for src in sources {
        flatten_into(&mut out, &src.value, "", &src.origin, src.lines.as_ref());
    }
    out
}

/// What a broken user-controlled layer (the user's file, a `DDCOTERM_*` variable) does to loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserLayerErrors {
    /// An error, exit 78: `config show`, `check` and every other command, so the user sees and fixes it.
    Fail,
    /// Reported as a warning naming the file, line and key (or the variable) and skipped: the guard path,
    /// where the organisation's layers, which parsed, still decide (DESIGN.md §3.3).
    Skip,
}

/// Loads and merges every layer. Errors name file, line, column and key; they map to exit 78.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    load_layers(opts, UserLayerErrors::Fail)
}

/// [`load`] for the guard path (shims, `ddcoterm -- CMD`, `approve`, `ssh-login`): a user layer that does not
/// parse (`~/.ddcoterm/config.yaml`, a `DDCOTERM_*` variable) is reported in [`Loaded::warnings`] and skipped,
/// so one typo in the user's own file does not block every guarded command. The organisation's layers are
/// not the user's to break: an error in one still fails closed, and so does a `--set` flag, which was typed
/// on this very command line.
pub fn load_guarded(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    load_layers(opts, UserLayerErrors::Skip)
}

fn load_layers(opts: &LoadOptions, user_errors: UserLayerErrors) -> Result<Loaded, ConfigError> {
    let dirs = &opts.dirs;
    let mut warnings = Vec::new();
    if dirs.system_override_refused {
        warnings.push(format!(
            "DDCOTERM_SYSTEM_DIR is ignored: {} holds organisation layers and only root may move them",
            dirs.system.display()
        ));
    }
    let mut infos = Vec::new();
    let mut sources = Vec::new();

    // Organisation files are read and checked on every call; their parse comes from the org cache.
    let cache = OrgCache::new(&dirs.system);
    let system = file_layer::read_cached(&dirs.system_config(), Trust::Org, &mut warnings, Some(&cache))?;
    infos.push(LayerInfo { layer: "system".into(), path: dirs.system_config(), exists: system.is_some() });
    let sys_settings = system.as_ref().map(|s| s.settings.clone()).unwrap_or_default();
    validate_locked(&sys_settings, dirs)?;

    let bundles = bundle_layer::load_dir(&dirs.bundles(), &sys_settings.bundles.trusted_keys)?;
    warnings.extend(bundles.iter().filter_map(|b| b.fallback.clone()));
    for b in &bundles {
        infos.push(LayerInfo { layer: "bundle".into(), path: b.path.clone(), exists: true });
    }

    let mut teams = Vec::new();
    let groups = if sys_settings.teams.is_empty() { Vec::new() } else { user_groups() };
    for (team, team_groups) in &sys_settings.teams {
        if team_groups.iter().any(|g| groups.contains(g)) {
            let path = dirs.teams().join(format!("{team}.yaml"));
            let file = file_layer::read_cached(&path, Trust::Org, &mut warnings, Some(&cache))?;
            infos.push(LayerInfo { layer: "team".into(), path: path.clone(), exists: file.is_some() });
            teams.extend(file);
        }
    }

    let user = match file_layer::read(&dirs.user_config(), Trust::User, &mut warnings) {
        Ok(user) => user,
        Err(e) if user_errors == UserLayerErrors::Skip => {
            warnings.push(format!(
                "{e}; your own config is skipped for this command and the organisation's policy still \
                 applies (fix it, then check with `ddcoterm config show`)"
            ));
            None
        }
        Err(e) => return Err(e),
    };
    infos.push(LayerInfo { layer: "user".into(), path: dirs.user_config(), exists: user.is_some() });

    let mut files: Vec<(&str, &LayerFile)> = Vec::new();
    files.extend(system.iter().map(|s| ("system", s)));
    files.extend(teams.iter().map(|t| ("team", t)));
    let org_files = files.len();
    files.extend(user.iter().map(|u| ("user", u)));
    for (name, f) in &files {
        sources.push(OriginSource {
            origin: Origin::new(name, f.path.display().to_string(), None),
            value: f.value.clone(),
            lines: Some(f.lines.clone()),
        });
    }
    let (top, top_sources) = env_and_flags(&opts.sets, user_errors, &mut warnings)?;
    let has_top = !top_sources.is_empty();
    sources.extend(top_sources);

    // The env/flag layer's policy joins the policy floor below as the lowest-trust layer.
    let env_policy = if has_top { top.extract_inner::<ProcessConfig>("process_config").ok() } else { None };
    let user_layers = files.len() > org_files || has_top;
    let mut settings = if files.len() <= 1 && !has_top {
        // One layer over the defaults: each file was already deserialized on its own with every missing key
        // defaulted, which is exactly what merging it over the defaults gives (and no lower layer can hold a
        // locked value). Skipping figment here is a third of the shim's config cost.
        files.first().map(|(_, f)| f.settings.clone()).unwrap_or_default()
    } else {
        let (settings, relocked) = merge_layers(
            &files[..org_files],
            &files[org_files..],
            top,
            &sys_settings,
            &sources,
            dirs,
            &mut warnings,
        )?;
        if !relocked.is_empty() {
            let mut value = serde_yaml::Mapping::new();
            for key in &relocked {
                // A leaf under the locked key marks it as the system layer's in provenance.
                value.insert(serde_yaml::Value::String(key.clone()), serde_yaml::Value::Null);
            }
            sources.push(OriginSource {
                origin: Origin::new("system", dirs.system_config().display().to_string(), None),
                value: Arc::new(serde_yaml::Value::Mapping(value)),
                lines: system.as_ref().map(|s| s.lines.clone()),
            });
        }
        settings
    };
    if user_layers {
        // Safety keys: the user's layers may tighten them, never loosen them (config/safety.rs).
        let floor = match &files[..org_files] {
            [] => Settings::default(),
            [(_, only)] => only.settings.clone(),
            many => org_floor(many)?,
        };
        let org = safety::OrgValues { files: files[..org_files].iter().map(|(_, f)| &*f.value).collect() };
        safety::enforce(&floor, &org, &mut settings, &mut warnings);
    }
    // System-only keys.
    for (key, differs) in [
        ("teams", settings.teams != sys_settings.teams),
        ("locked", settings.locked != sys_settings.locked),
        ("bundles.trusted_keys", settings.bundles.trusted_keys != sys_settings.bundles.trusted_keys),
        ("ssh", settings.ssh != sys_settings.ssh),
        ("agent", settings.agent != sys_settings.agent),
    ] {
        if differs {
            warnings.push(format!(
                "`{key}` is honoured from {} only; other layers' values are ignored",
                dirs.system_config().display()
            ));
        }
    }
    settings.teams = sys_settings.teams.clone();
    settings.locked = sys_settings.locked.clone();
    settings.bundles.trusted_keys = sys_settings.bundles.trusted_keys.clone();
    settings.ssh = sys_settings.ssh.clone();
    settings.agent = sys_settings.agent.clone();

    // Policy floor.
    let mut layers = Vec::new();
    if let Some(s) = &system {
        layers.push(policy_layer(
            "system",
            s.path.display().to_string(),
            &s.settings.process_config,
            Some(&s.lines),
        ));
    }
    for b in &bundles {
        let mut l =
            policy_layer("bundle", b.path.display().to_string(), &b.doc.process_config, Some(&b.lines));
        l.detail = Some(format!("{} r{}", b.doc.name, b.doc.revision));
        layers.push(l);
    }
    for t in &teams {
        layers.push(policy_layer(
            "team",
            t.path.display().to_string(),
            &t.settings.process_config,
            Some(&t.lines),
        ));
    }
    let lock_cmds = is_locked(&sys_settings, "process_config.commands");
    let lock_defaults = is_locked(&sys_settings, "process_config.default_actions");
    let mut below = Vec::new();
    if let Some(u) = &user {
        below.push(policy_layer(
            "user",
            u.path.display().to_string(),
            &u.settings.process_config,
            Some(&u.lines),
        ));
    }
    if let Some(pc) = env_policy {
        below.push(policy_layer("env", "environment/flags".into(), &pc, None));
    }
    for mut l in below {
        if lock_cmds && !l.process_config.commands.is_empty() {
            warnings.push(format!(
                "{}: `process_config.commands` is locked by the system layer; ignored",
                l.source
            ));
            l.process_config.commands.clear();
        }
        if lock_defaults && l.process_config.default_actions.is_some() {
            warnings.push(format!(
                "{}: `process_config.default_actions` is locked by the system layer; ignored",
                l.source
            ));
            l.process_config.default_actions = None;
        }
        layers.push(l);
    }
    let policy = PolicySet::compose(&layers);
    settings.process_config = effective_process_config(&layers, &policy);
    if settings.enable_ptrace {
        warnings.push("enable_ptrace is accepted for CoTerm compatibility; ddcoterm takes process events from shell integration instead".into());
    }

    Ok(Loaded {
        paths: Paths::resolve(&settings, dirs),
        settings,
        policy,
        sources,
        origins: Default::default(),
        warnings,
        layers: infos,
        bundles,
        dirs: dirs.clone(),
    })
}

/// figment: the defaults, then the organisation's files, the user's file and the env/flag layer (later wins);
/// then each `locked:` key of the system layer is restored to the organisation's value, with a warning naming
/// the layer that tried to change it. Returns the settings and the keys that were restored.
fn merge_layers(
    org_files: &[(&str, &LayerFile)],
    user_files: &[(&str, &LayerFile)],
    top: Figment,
    sys_settings: &Settings,
    sources: &[OriginSource],
    dirs: &Dirs,
    warnings: &mut Vec<String>,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let mut org = Figment::from(Serialized::defaults(Settings::default()));
    for (_, f) in org_files {
        org = org.merge(Serialized::defaults(&*f.value));
    }
    let mut full = org.clone();
    for (_, f) in user_files {
        full = full.merge(Serialized::defaults(&*f.value));
    }
    full = full.merge(top);

    let mut relocked = Vec::new();
    for key in &sys_settings.locked {
        let want = org.find_value(key).ok();
        let have = full.find_value(key).ok();
        if want != have {
            let below = origins_of(sources);
            if let Some(o) = below
                .iter()
                .find(|(k, _)| k.as_str() == key || k.starts_with(&format!("{key}.")))
                .map(|(_, o)| o)
            {
                warnings.push(format!(
                    "{o}: `{key}` is locked by {}; the lower-layer value is ignored",
                    dirs.system_config().display()
                ));
            }
            full = match want {
                Some(v) => full.merge(Serialized::default(key, v)),
                None => full,
            };
            relocked.push(key.clone());
        }
    }
    let settings = full.extract().map_err(figment_error)?;
    // Freeing figment's value trees costs a tenth of a shim call; ddcoterm loads config once per process,
    // so let the process exit reclaim them.
    std::mem::forget(full);
    std::mem::forget(org);
    Ok((settings, relocked))
}

/// The defaults merged with the organisation's files alone: the floor that safety keys are held to.
fn org_floor(org_files: &[(&str, &LayerFile)]) -> Result<Settings, ConfigError> {
    let mut org = Figment::from(Serialized::defaults(Settings::default()));
    for (_, f) in org_files {
        org = org.merge(Serialized::defaults(&*f.value));
    }
    org.extract().map_err(figment_error)
}

fn policy_layer(layer: &str, source: String, pc: &ProcessConfig, lines: Option<&Arc<Lines>>) -> PolicyLayer {
    PolicyLayer {
        layer: layer.into(),
        source,
        process_config: pc.clone(),
        lines: lines.cloned(),
        detail: None,
    }
}

/// The composed policy written back as config (org commands first), for `config show`.
fn effective_process_config(layers: &[PolicyLayer], policy: &PolicySet) -> ProcessConfig {
    let (org, mine): (Vec<&PolicyLayer>, Vec<&PolicyLayer>) =
        layers.iter().partition(|l| Origin::new(&l.layer, "", None).is_org());
    ProcessConfig {
        default_actions: Some(policy.default_actions.iter().collect()),
        commands: org.into_iter().chain(mine).flat_map(|l| l.process_config.commands.clone()).collect(),
    }
}

fn is_locked(sys: &Settings, key: &str) -> bool {
    sys.locked.iter().any(|l| l == key || l == "process_config" || key.starts_with(&format!("{l}.")))
}

/// A locked key must exist in the schema: a typo would silently lock nothing.
fn validate_locked(sys: &Settings, dirs: &Dirs) -> Result<(), ConfigError> {
    if sys.locked.is_empty() {
        return Ok(());
    }
    let schema = to_yaml(&Settings::default());
    for (i, key) in sys.locked.iter().enumerate() {
        let mut node = &schema;
        for part in key.split('.') {
            node = match node.get(part) {
                Some(n) => n,
                None => {
                    return Err(ConfigError::invalid(
                        dirs.system_config(),
                        None,
                        None,
                        format!("key `locked[{i}]`: `{key}` is not a config key"),
                    ))
                }
            };
        }
    }
    Ok(())
}

/// The env and flag layers as one figment, with the origin of each key they set. With
/// [`UserLayerErrors::Skip`], a `DDCOTERM_*` variable whose value does not fit its key is left out with a
/// warning naming it (the environment is the user's, like their file); `--set` errors stay errors.
fn env_and_flags(
    sets: &[String],
    user_errors: UserLayerErrors,
    warnings: &mut Vec<String>,
) -> Result<(Figment, Vec<OriginSource>), ConfigError> {
    if sets.is_empty() && !env_sets_config() {
        return Ok((Figment::new(), Vec::new()));
    }
    let mut ignored: Vec<String> = NON_CONFIG_ENV.iter().map(|s| s.to_string()).collect();
    if user_errors == UserLayerErrors::Skip {
        for (key, e) in broken_env_vars() {
            let var = format!("DDCOTERM_{}", key.to_uppercase().replace('.', "__"));
            warnings.push(format!(
                "environment variable {var}: key `{key}`: {e}; ignored for this command and the \
                 organisation's policy still applies (fix or unset it, then check with `ddcoterm config show`)"
            ));
            ignored.push(key);
        }
    }
    let ignored: Vec<&str> = ignored.iter().map(String::as_str).collect();
    let env = Env::prefixed("DDCOTERM_").split("__").ignore(&ignored);
    let mut origins = Vec::new();
    let leaf = |key: &str, origin: Origin| OriginSource { origin, value: Arc::new(nest(key)), lines: None };
    for (k, _) in env.iter() {
        let var = format!("DDCOTERM_{}", k.as_str().to_uppercase().replace('.', "__"));
        origins.push(leaf(k.as_str(), Origin::new("env", var, None)));
    }
    let mut fig = Figment::new().merge(env);
    for (var, key) in [
        ("DD_SITE", "connection_config.host"),
        ("DD_API_KEY", "connection_config.api_key"),
        ("DD_APP_KEY", "connection_config.app_key"),
    ] {
        // Read as raw strings: a numeric-looking key must stay a string.
        if let Some(v) = Env::var(var).filter(|v| !v.is_empty()) {
            fig = fig.merge(Serialized::default(key, v));
            origins.push(leaf(key, Origin::new("env", var, None)));
        }
    }
    for s in sets {
        let (key, raw) = s.split_once('=').ok_or_else(|| ConfigError::Env {
            source_name: "--set".into(),
            key: s.clone(),
            msg: "expected KEY=VALUE, e.g. --set recording.input=true".into(),
        })?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(raw).unwrap_or(serde_yaml::Value::String(raw.into()));
        check_flag(key.trim(), raw, &value)?;
        fig = fig.merge(Serialized::default(key.trim(), value));
        origins.push(leaf(key.trim(), Origin::new("flags", format!("--set {}", key.trim()), None)));
    }
    // Validate now so that the error names the variable or flag rather than the merged result (skipped on
    // the usual shim call, which has neither).
    if !origins.is_empty() {
        let check = Figment::from(Serialized::defaults(Settings::default())).merge(fig.clone());
        let settings = check.extract::<Settings>().map_err(figment_error)?;
        if let Some((key, p)) = settings.relative_path() {
            return Err(ConfigError::Env {
                source_name: "environment/flags".into(),
                key: key.into(),
                msg: format!("`{}` is not an absolute path; write it in full (no `~`)", p.display()),
            });
        }
    }
    Ok((fig, origins))
}

/// The `DDCOTERM_*` config variables (as figment's key paths: `recording.input`) whose value does not extract
/// over the defaults, each tried alone, with the error. Cheap when there are none: one extraction.
fn broken_env_vars() -> Vec<(String, String)> {
    let env = || Env::prefixed("DDCOTERM_").split("__").ignore(&NON_CONFIG_ENV);
    let extract = |fig: Env| {
        Figment::from(Serialized::defaults(Settings::default())).merge(fig).extract::<Settings>().err()
    };
    if extract(env()).is_none() {
        return Vec::new();
    }
    let keys: Vec<String> = env().iter().map(|(k, _)| k.as_str().to_string()).collect();
    keys.into_iter()
        .filter_map(|key| extract(env().only(&[key.as_str()])).map(|e| (key, e.kind.to_string())))
        .collect()
}

/// Whether any variable of the env layer is set (one pass over the environment, names compared in place): most
/// calls have none, and building figment's env provider costs more than the rest of the env layer.
fn env_sets_config() -> bool {
    use std::os::unix::ffi::OsStrExt;
    std::env::vars_os().any(|(k, v)| {
        let k = k.as_bytes();
        if let Some(rest) = k.strip_prefix(b"DDCOTERM_") {
            // figment lower-cases names before its ignore list applies; so does this comparison.
            !NON_CONFIG_ENV.iter().any(|n| rest.eq_ignore_ascii_case(n.as_bytes()))
        } else {
            matches!(k, b"DD_SITE" | b"DD_API_KEY" | b"DD_APP_KEY") && !v.is_empty()
        }
    })
}

/// `a.b.c` as the nested mapping `{a: {b: {c: ~}}}`: a leaf at that path for provenance.
fn nest(key: &str) -> serde_yaml::Value {
    key.rsplit('.').fold(serde_yaml::Value::Null, |inner, part| {
        let mut m = serde_yaml::Mapping::new();
        m.insert(serde_yaml::Value::String(part.to_string()), inner);
        serde_yaml::Value::Mapping(m)
    })
}

/// One `--set` checked on its own over the defaults, so that its error names the flag, the key and the type
/// the key takes (`expected an integer`), not serde's names for it.
fn check_flag(key: &str, raw: &str, value: &serde_yaml::Value) -> Result<(), ConfigError> {
    let fig = Figment::from(Serialized::defaults(Settings::default())).merge(Serialized::default(key, value));
    let settings = fig.extract::<Settings>().map_err(|e| ConfigError::Flag {
        key: key.to_string(),
        value: raw.to_string(),
        msg: super::expected::describe(&e.kind),
    })?;
    match settings.relative_path() {
        None => Ok(()),
        Some((key, p)) => Err(ConfigError::Flag {
            key: key.to_string(),
            value: raw.to_string(),
            msg: format!("`{}` is not an absolute path; write it in full (no `~`)", p.display()),
        }),
    }
}

fn figment_error(e: figment::Error) -> ConfigError {
    let source_name = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(s) => format!("{} ({s})", m.name),
            None => m.name.to_string(),
        })
        .unwrap_or_else(|| "configuration".into());
    ConfigError::Env { source_name, key: e.path.join("."), msg: e.kind.to_string() }
}

fn to_yaml<T: serde::Serialize>(v: &T) -> serde_yaml::Value {
    serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null)
}

/// Records `origin` for every leaf under `prefix` (lists count as one leaf).
fn flatten_into(
    out: &mut BTreeMap<String, Origin>,
    v: &serde_yaml::Value,
    prefix: &str,
    origin: &Origin,
    lines: Option<&Arc<Lines>>,
) {
    match v {
        serde_yaml::Value::Mapping(m) if !m.is_empty() || prefix.is_empty() => {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                let key = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
                flatten_into(out, v, &key, origin, lines);
            }
        }
        _ => {
            // A new value replaces every origin recorded beneath it.
            out.retain(|k, _| !k.starts_with(&format!("{prefix}.")));
            out.insert(prefix.to_string(), origin.clone().at_key(lines, prefix));
        }
    }
}

/// Names of the unix groups of this process (primary and supplementary).
fn user_groups() -> Vec<String> {
    let mut gids = nix::unistd::getgroups().unwrap_or_default();
    gids.push(nix::unistd::getgid());
    if let Some(u) = crate::nss::user_by_uid(nix::unistd::getuid()) {
        gids.push(u.gid);
    }
    gids.sort_by_key(|g| g.as_raw());
    gids.dedup();
    gids.into_iter().filter_map(|g| crate::nss::group_by_gid(g).map(|g| g.name)).collect()
}
