//! Server settings: built-in defaults, then a YAML file, then `DDCOTERMD_*` variables, then flags (figment).
//!
//! Its own variable prefix because the client's `DDCOTERM_*` namespace refuses unknown keys. Unknown keys
//! here are an error naming the key and where it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use figment::providers::{Env, Format as _, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub object_store: Option<String>,
    pub public_url: Option<String>,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client for the
    /// sign-in throttle (`crate::client_addr`). A list, or one comma-separated string (the variable).
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// Write each group commit's chunks as one pack object instead of one object per chunk. Unset: on for
    /// an S3-compatible store (one PUT per batch instead of per chunk), off for a local directory
    /// (`crate::packs`).
    pub pack_chunks: Option<bool>,
    pub log_format: String,
    pub metrics_listen: Option<String>,
    pub tls: Tls,
    pub limits: Limits,
    pub completer: Completer,
    pub retention: Retention,
    pub search: Search,
    /// Single sign-on with an OpenID Connect provider (`crate::oidc`); unset: local users only.
    pub oidc: Option<Oidc>,
}

/// `oidc:`: the provider, this server's client registration there, and how its claims become roles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Oidc {
    /// The provider's issuer URL, exactly as its discovery document states it (`iss` of its ID tokens).
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (one line). Unset: a public client (PKCE only).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for; `openid` is always added.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim whose value becomes the ddcoterm user name (a viewer sees the sessions recorded under it).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim listing the user's groups (a string or a list of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Group (a value of `roles_claim`) -> role (`viewer`, `auditor` or `admin`); the highest match wins.
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, String>,
    /// The role of a user no group matched: `viewer`, `auditor`, `admin`, or `deny` (no sign-in).
    #[serde(default = "default_role")]
    pub default_role: String,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_roles_claim() -> String {
    "groups".into()
}
fn default_role() -> String {
    "deny".into()
}

/// TLS on the listener: both files or neither (then plain HTTP, for loopback or behind a TLS proxy).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain, leaf first. Re-read when it changes (no restart for a renewal).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest chunk body, after gzip decoding (413 above).
    pub max_chunk_bytes: u64,
    /// Largest JSON body (create, events, end).
    pub max_json_bytes: u64,
    /// Most process events in one POST.
    pub max_events: usize,
    /// Request bodies held in memory at once, all ingest requests together; past it ingest answers 503
    /// with `Retry-After` (hosts' spools retry).
    pub max_inflight_bytes: u64,
    /// Most chunks made durable in one sync round by the group commit.
    pub max_commit_batch: usize,
    /// On a local objects directory, a sync round of at least this many chunk files syncs the whole
    /// filesystem once (`syncfs`) instead of each file and directory; 0 never does. A data directory on
    /// a filesystem shared with other busy writers may prefer 0 (a `syncfs` writes their dirty pages too),
    /// and so may one on a network filesystem.
    pub syncfs_min_batch: usize,
    /// Open client connections at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Completer {
    /// A live session with nothing received for this long becomes `abandoned` (humantime: `15m`, `2h`).
    pub grace: String,
    /// How often the completer and the retention sweep run.
    pub interval: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Sessions first seen more than this many days ago are deleted (rows and objects), unless on legal
    /// hold. Unset: nothing is ever deleted.
    pub days: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:7780".into(),
            data_dir: PathBuf::from("./ddcoterm-data"),
            database_url: None,
            object_store: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            pack_chunks: None,
            log_format: "text".into(),
            metrics_listen: None,
            tls: Tls::default(),
            limits: Limits::default(),
            completer: Completer::default(),
            retention: Retention::default(),
            search: Search::default(),
            oidc: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_chunk_bytes: 4 << 20,
            max_json_bytes: 1 << 20,
            max_events: 1000,
            max_inflight_bytes: 16 << 20,
            max_commit_batch: 1024,
            syncfs_min_batch: 2,
            max_connections: 2048,
        }
    }
}

impl Default for Completer {
    fn default() -> Self {
        Completer { grace: "15m".into(), interval: "1m".into() }
    }
}

/// `search:`: the full-text index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Search {
    /// Run the search indexer in this replica. Replicas share the work through the database, so with
    /// several, some may leave it to the others and keep their cores for acknowledgements; with none
    /// running it, new output is not searchable (everything else works, and indexing resumes where it
    /// stopped once one runs it again).
    pub indexer: bool,
}

impl Default for Search {
    fn default() -> Self {
        Search { indexer: true }
    }
}

/// Flag values that override every other layer; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "TlsOverrides::is_empty")]
    pub tls: TlsOverrides,
}

/// `--tls-cert` / `--tls-key`: each overrides its own key only.
#[derive(Debug, Default, Serialize)]
pub struct TlsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl TlsOverrides {
    fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// Settings after resolving: durations parsed, choices checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub raw: Settings,
    pub grace: Duration,
    pub interval: Duration,
    pub json_logs: bool,
    /// `oidc:` checked, its secret read.
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// `trusted_proxies` parsed.
    pub trusted_proxies: crate::client_addr::TrustedProxies,
}

/// A list in YAML (`[10.0.0.0/8, 127.0.0.1]`), or one string of comma-separated entries, which is how a
/// `DDCOTERMD_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1` variable arrives.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        One(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(l) => l,
        ListOrString::One(s) => {
            s.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect()
        }
    })
}

pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Resolved> {
    let mut fig = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        // Figment silently skips a missing file; a named config file that is not there is a mistake.
        if !file.is_file() {
            bail!("config file {} does not exist", file.display());
        }
        // Parse once ourselves for an error with line and column (figment's YAML errors have none).
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
            bail!("{}: {e}", file.display());
        }
        fig = fig.merge(Yaml::file_exact(file));
    }
    fig = fig
        // `DDCOTERMD_LOG` is the log filter (read by `serve`), not a setting: refusing it as an unknown key
        // made the documented `DDCOTERMD_LOG=debug` stop the server at start.
        .merge(Env::prefixed("DDCOTERMD_").ignore(&["config", "log"]).split("__"))
        .merge(Serialized::defaults(overrides));
    let raw: Settings = fig.extract().map_err(|e| {
        let msgs: Vec<String> = e
            .into_iter()
            .map(|e| {
                let key =
                    if e.path.is_empty() { String::new() } else { format!("key `{}`: ", e.path.join(".")) };
                let from =
                    e.metadata.as_ref().map(|m| format!(" (from {})", describe(m))).unwrap_or_default();
                format!("{key}{}{from}", e.kind)
            })
            .collect();
        anyhow::anyhow!("configuration: {}", msgs.join("; "))
    })?;
    resolve(raw)
}

fn describe(m: &figment::Metadata) -> String {
    match &m.source {
        Some(figment::Source::File(p)) => p.display().to_string(),
        _ => m.name.to_string(),
    }
}

fn resolve(raw: Settings) -> anyhow::Result<Resolved> {
    let dur = |key: &str, v: &str| {
        humantime::parse_duration(v).with_context(|| format!("configuration key `{key}`: bad duration {v:?}"))
    };
    let grace = dur("completer.grace", &raw.completer.grace)?;
    let interval = dur("completer.interval", &raw.completer.interval)?;
    if interval.is_zero() {
        bail!("configuration key `completer.interval`: must be more than 0");
    }
    let json_logs = match raw.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => bail!("configuration key `log_format`: {other:?} is neither `text` nor `json`"),
    };
    if raw.limits.max_commit_batch == 0 {
        bail!("configuration key `limits.max_commit_batch`: must be at least 1");
    }
    if raw.limits.max_connections == 0 {
        bail!("configuration key `limits.max_connections`: must be at least 1");
    }
    if raw.limits.max_inflight_bytes < 1024 {
        bail!("configuration key `limits.max_inflight_bytes`: must be at least 1024");
    }
    match (&raw.tls.cert_file, &raw.tls.key_file) {
        (Some(_), None) => {
            bail!("configuration key `tls.key_file`: missing; `tls.cert_file` needs its private key")
        }
        (None, Some(_)) => {
            bail!("configuration key `tls.cert_file`: missing; `tls.key_file` needs its certificate")
        }
        _ => {}
    }
    if let Some(url) = &raw.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("configuration key `public_url`: {url:?} must start with http:// or https://");
        }
    }
    let oidc = raw.oidc.as_ref().map(crate::oidc::OidcConfig::from_settings).transpose()?;
    let trusted_proxies = crate::client_addr::TrustedProxies::parse(&raw.trusted_proxies)?;
    Ok(Resolved { raw, grace, interval, json_logs, oidc, trusted_proxies })
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, which is large; only tests build them.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "s.yaml",
                "listen: 0.0.0.0:1\nretention:\n  days: 5\ncompleter:\n  grace: 2m\n",
            )?;
            jail.set_env("DDCOTERMD_LISTEN", "0.0.0.0:2");
            jail.set_env("DDCOTERMD_RETENTION__DAYS", "9");
            jail.set_env("DDCOTERMD_LOG", "ddcoterm_server::commit=debug");
            let r = load(Some(Path::new("s.yaml")), Overrides::default()).unwrap();
            assert_eq!(r.raw.listen, "0.0.0.0:2");
            assert_eq!(r.raw.retention.days, Some(9));
            assert_eq!(r.grace, Duration::from_secs(120));
            assert_eq!(r.raw.data_dir, PathBuf::from("./ddcoterm-data"));
            let flags = Overrides { listen: Some("0.0.0.0:3".into()), ..Default::default() };
            let r = load(Some(Path::new("s.yaml")), flags).unwrap();
            assert_eq!(r.raw.listen, "0.0.0.0:3");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named_with_its_file() {
        Jail::expect_with(|jail| {
            jail.create_file("s.yaml", "retention:\n  dayz: 5\n")?;
            let e = load(Some(Path::new("s.yaml")), Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("dayz") && e.contains("s.yaml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("DDCOTERMD_COMPLETER__GRACE", "soon");
            let e = load(None, Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("completer.grace"), "{e}");
            Ok(())
        });
        let flags = Overrides { log_format: Some("xml".into()), ..Default::default() };
        assert!(load(None, flags).unwrap_err().to_string().contains("log_format"));
    }

    #[test]
    fn tls_needs_both_files() {
        Jail::expect_with(|jail| {
            jail.set_env("DDCOTERMD_TLS__CERT_FILE", "/etc/ddcoterm-server/tls.crt");
            let e = load(None, Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("tls.key_file"), "{e}");
            let flags = Overrides {
                tls: TlsOverrides { key_file: Some("k.pem".into()), ..Default::default() },
                ..Default::default()
            };
            let r = load(None, flags).unwrap();
            assert_eq!(r.raw.tls.cert_file.as_deref(), Some(Path::new("/etc/ddcoterm-server/tls.crt")));
            assert_eq!(r.raw.tls.key_file.as_deref(), Some(Path::new("k.pem")));
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let e = load(Some(Path::new("/nonexistent/ddcoterm-server.yaml")), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ddcoterm-server.yaml"));
    }

    #[test]
    fn trusted_proxies_come_as_a_list_or_one_comma_separated_variable() {
        Jail::expect_with(|jail| {
            jail.create_file("s.yaml", "trusted_proxies: [10.0.0.0/8, 192.0.2.1]\n")?;
            let r = load(Some(Path::new("s.yaml")), Overrides::default()).unwrap();
            assert_eq!(r.raw.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
            jail.set_env("DDCOTERMD_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8,");
            let r = load(None, Overrides::default()).unwrap();
            assert_eq!(r.raw.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
            jail.set_env("DDCOTERMD_TRUSTED_PROXIES", "10.0.0.0/8,ingress-nginx");
            let e = load(None, Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("trusted_proxies[1]") && e.contains("ingress-nginx"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn pack_chunks_is_unset_unless_said() {
        Jail::expect_with(|jail| {
            assert_eq!(load(None, Overrides::default()).unwrap().raw.pack_chunks, None);
            jail.set_env("DDCOTERMD_PACK_CHUNKS", "true");
            assert_eq!(load(None, Overrides::default()).unwrap().raw.pack_chunks, Some(true));
            jail.set_env("DDCOTERMD_PACK_CHUNKS", "sometimes");
            let e = load(None, Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("pack_chunks"), "{e}");
            Ok(())
        });
    }
}
