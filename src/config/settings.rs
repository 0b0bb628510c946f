//! The plain serde shape of `config.yaml`: CoTerm's keys plus our own sections, every field defaulted.
//!
//! `deny_unknown_fields` everywhere: a typo in a fleet config must be an error that names the key, not a
//! silently ignored policy.

use super::durations::{ConfigDuration, ConfigSize, PositiveDuration};
use crate::model::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything a layer may set. Each layer file is deserialized into this alone first (for located errors),
/// then all layers are merged by figment into one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub connection_config: ConnectionConfig,
    /// CoTerm's telemetry switch; accepted for compatibility, ddcoterm sends no telemetry of its own.
    pub enable_telemetry: bool,
    /// CoTerm's ptrace switch; accepted, process events come from shell integration instead.
    pub enable_ptrace: bool,
    pub process_config: ProcessConfig,
    pub recording: RecordingSettings,
    pub redaction: RedactionSettings,
    pub approval: ApprovalSettings,
    pub break_glass: BreakGlassSettings,
    pub spool: SpoolSettings,
    /// The session server recordings are uploaded to (DESIGN.md §12); unset: recordings stay local.
    pub server: ServerSettings,
    pub bundles: BundleSettings,
    pub shims: ShimSettings,
    pub lints: LintSettings,
    pub policy: PolicySettings,
    /// `ddcoterm ssh-login` on bastions. Read from the system layer only.
    pub ssh: SshSettings,
    /// Bastion mode: evidence held by `ddcoterm agent` (docs/bastion.md). Read from the system layer only.
    pub agent: AgentSettings,
    /// Team name -> unix groups whose members load `teams/<team>.yaml`. Read from the system layer only.
    pub teams: BTreeMap<String, Vec<String>>,
    /// Dotted key paths (`redaction.enabled`) that layers below the system layer cannot change.
    pub locked: Vec<String>,
}

/// Where Datadog is and how to authenticate. **[compat]**
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Site UI host (`https://app.datadoghq.com`, `app.datadoghq.eu`...) or `http://127.0.0.1:PORT` for a fake.
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    pub app_key: Option<String>,
    /// Allow a loopback host (`http://127.0.0.1:PORT`, `localhost`). Off by default: a server of the user's own
    /// on loopback could answer approval polls. Only the organisation layers can turn it on.
    pub allow_loopback: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            host: "https://app.datadoghq.com".into(),
            port: 443,
            api_key: None,
            app_key: None,
            allow_loopback: false,
        }
    }
}

/// Lints and rules per command. **[compat]**
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// Actions when no rule matches. `None` = not set in this layer (built-in default applies).
    pub default_actions: Option<Vec<Action>>,
    pub commands: Vec<CommandPolicy>,
}

/// Policy for one executable (matched on basename).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandPolicy {
    pub command: String,
    pub lints: Vec<String>,
    pub rules: Vec<RuleConfig>,
}

/// One rule: a Lua snippet returning `applicable, user_message, approver_message`, and its actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Lua source. YAML `true`/`false` are accepted as the snippets `true`/`false` (CoTerm writes `rule: true`).
    #[serde(deserialize_with = "de_snippet")]
    pub rule: String,
    pub actions: Vec<Action>,
}

fn de_snippet<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Snip {
        S(String),
        B(bool),
    }
    Ok(match Snip::deserialize(d)? {
        Snip::S(s) => s,
        Snip::B(b) => b.to_string(),
    })
}

impl Settings {
    /// The first path key set to a relative path (`recs`, `~/recs`), which would name a different place in
    /// every working directory: refused at load, with its key, by the layer that set it.
    pub fn relative_path(&self) -> Option<(&'static str, &std::path::Path)> {
        let keys: [(&'static str, Option<&PathBuf>); 9] = [
            ("recording.dir", self.recording.dir.as_ref()),
            ("spool.dir", self.spool.dir.as_ref()),
            ("server.token_file", self.server.token_file.as_ref()),
            ("shims.dir", self.shims.dir.as_ref()),
            ("shims.system_dir", self.shims.system_dir.as_ref()),
            ("shims.profile_script", self.shims.profile_script.as_ref()),
            ("agent.socket", Some(&self.agent.socket)),
            ("agent.state_dir", Some(&self.agent.state_dir)),
            ("agent.credentials_file", self.agent.credentials_file.as_ref()),
        ];
        keys.into_iter().find_map(|(k, p)| p.filter(|p| !p.is_absolute()).map(|p| (k, p.as_path())))
    }
}

/// Terminal recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingSettings {
    /// Where `.cast` files go; default `~/.ddcoterm/recordings`.
    pub dir: Option<PathBuf>,
    /// Shell for interactive sessions; default `$SHELL`, else `/bin/bash`.
    pub shell: Option<String>,
    /// Record keystrokes (`i` events); never while the terminal has echo off.
    pub input: bool,
    /// Merge PTY reads into one event for at most this long (e.g. `10ms`).
    pub merge_window: ConfigDuration,
    /// ...or until this many bytes are buffered.
    pub merge_bytes: usize,
    /// Inject shell-integration markers (per-command process events for bash/zsh).
    pub shell_integration: bool,
    /// When local recordings are deleted (docs/recorder.md, "Retention").
    pub retention: RetentionSettings,
}

/// `recording.retention`: how long and how much of the local recordings directory is kept. A recording still
/// being written, awaiting recovery, or whose upload is still spooled is never deleted. Safety keys: a user
/// layer may keep more, never less, than the organisation (src/config/safety.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Delete recordings last written longer ago than this (`90d`, `12h`); `0`: no age limit.
    pub max_age: ConfigDuration,
    /// Then delete the oldest until the directory holds at most this much (`2GiB`, `500MB`); `0`: no limit.
    pub max_total: ConfigSize,
    /// Look at the directory at most this often (at session start and `spool flush`).
    pub interval: ConfigDuration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            max_age: ConfigDuration::lit("90d"),
            max_total: ConfigSize::from("2GiB"),
            interval: ConfigDuration::lit("1h"),
        }
    }
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            dir: None,
            shell: None,
            input: false,
            merge_window: ConfigDuration::lit("10ms"),
            merge_bytes: 64 * 1024,
            shell_integration: true,
            retention: RetentionSettings::default(),
        }
    }
}

/// Secret redaction before anything reaches disk or network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionSettings {
    pub enabled: bool,
    /// Extra patterns: `{ name, regex }`, replaced by `[REDACTED:<name>]`.
    pub patterns: Vec<RedactionPattern>,
}

impl Default for RedactionSettings {
    fn default() -> Self {
        RedactionSettings { enabled: true, patterns: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionPattern {
    pub name: String,
    pub regex: String,
}

/// Case Management approvals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    pub project_id: Option<String>,
    /// How long an approval request waits for a decision (> 0).
    pub request_ttl: PositiveDuration,
    /// How long an approval is reused for the same command; `0s`: never.
    pub grant_ttl: ConfigDuration,
    /// How often the case is polled (> 0; backs off to five times this).
    pub poll_interval: PositiveDuration,
    pub offer_incidents: bool,
    /// With an organisation-held application key (a service account), the requester's Datadog handle:
    /// `{user}` is replaced by the unix login name (`{user}@example.com`). An approval by that handle, or by
    /// the key's own account, is refused. Unset: the requester is the key's user (`GET /api/v2/current_user`).
    pub requester_handle: Option<String>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            project_id: None,
            request_ttl: PositiveDuration::from("30m"),
            grant_ttl: ConfigDuration::lit("0s"),
            poll_interval: PositiveDuration::from("2s"),
            offer_incidents: false,
            requester_handle: None,
        }
    }
}

/// Break glass; there is deliberately no switch to turn its audit off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakGlassSettings {
    pub require_reason: bool,
}

/// The durable outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSettings {
    /// Default `~/.ddcoterm/spool`.
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
    /// How long a finished command may wait for uploads before leaving the rest spooled.
    pub flush_timeout: ConfigDuration,
    /// Start `ddcoterm spool flush --background` (detached, one at a time) for what a command leaves behind.
    pub background_flush: bool,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: None,
            max_bytes: 512 * 1024 * 1024,
            flush_timeout: ConfigDuration::lit("3s"),
            background_flush: true,
        }
    }
}

/// `server.*`: where recordings go (DESIGN.md §12). Safety keys: set by the organisation, a user cannot
/// point them elsewhere (src/config/safety.rs), so nobody redirects the recordings of a fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Base URL of `ddcoterm-server` (`https://sessions.example.com`); links are `<url>/sessions/<id>`.
    pub url: Option<String>,
    /// File holding the host token (one line). The token is read only from this file, never from a
    /// configuration value or a variable, so it never sits in a shell's environment or a config dump.
    pub token_file: Option<PathBuf>,
}

/// Signed rule bundles (trusted keys are honoured from the system layer only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BundleSettings {
    pub sources: Vec<String>,
    /// Base64 ed25519 public keys.
    pub trusted_keys: Vec<String>,
}

/// Shim locations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShimSettings {
    /// Override the user shim dir (default `~/.ddcoterm/overrides`).
    pub dir: Option<PathBuf>,
    /// System-wide shim dir for `--system` (default `/usr/local/lib/ddcoterm/overrides`).
    pub system_dir: Option<PathBuf>,
    /// Profile script that puts the system shim dir on PATH (default `/etc/profile.d/ddcoterm.sh`).
    pub profile_script: Option<PathBuf>,
}

/// Lint prompting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LintSettings {
    /// With no terminal to ask on: `deny` (abort, default) or `allow` (print warnings and go on).
    pub non_interactive: NonInteractive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonInteractive {
    #[default]
    Deny,
    Allow,
}

/// Lua sandbox limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Wall-clock budget per snippet.
    pub snippet_timeout: PositiveDuration,
    /// Memory limit of the Lua state, bytes.
    pub memory_limit: usize,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { snippet_timeout: PositiveDuration::from("50ms"), memory_limit: 16 * 1024 * 1024 }
    }
}

/// `ddcoterm ssh-login`, the program sshd runs for every session (`ForceCommand`). System layer only: a
/// user must not be able to let their own commands through unrecorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSettings {
    /// Remote commands that run directly, unrecorded and byte-exact (no shell, PTY or relay), by program
    /// name: `scp`, `sftp-server` (also `internal-sftp`), `rsync`, `git-upload-pack`, `git-receive-pack`
    /// and `git-upload-archive` pass only as their server side (`scp -t`, `rsync --server`...); any other
    /// name passes whatever its arguments.
    pub passthrough: Vec<String>,
    /// `true`: every other remote command is recorded (rules may add approval, never drop the recording).
    /// `false`: the policy's actions decide, as for a shim (a rule with `[]` runs it unrecorded).
    pub record_remote_commands: bool,
    /// The SFTP server to run for sshd's `internal-sftp` (which cannot run under a ForceCommand); default:
    /// the first of the usual sftp-server locations that exists.
    pub sftp_server: Option<PathBuf>,
    /// Where passthrough programs named without a path are looked up (never the user's PATH). Every
    /// passthrough program must be root-owned and not group/world-writable, directories included.
    pub trusted_path: Vec<PathBuf>,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            passthrough: [
                "scp",
                "sftp-server",
                "rsync",
                "git-upload-pack",
                "git-receive-pack",
                "git-upload-archive",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            record_remote_commands: true,
            sftp_server: None,
            trusted_path: ["/usr/local/bin", "/usr/bin", "/bin"].iter().map(PathBuf::from).collect(),
        }
    }
}

/// Bastion mode (docs/bastion.md). System layer only: a user who could move the socket or the state dir could
/// point their recorder at an agent of their own, or keep the evidence where they can delete it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Recorders stream to the agent instead of the user's spool and recordings; unreachable = refuse.
    pub enabled: bool,
    /// The agent's unix socket.
    pub socket: PathBuf,
    /// Group that may connect (socket mode 0660); unset: every local user may (mode 0666). Either way the
    /// agent learns who is speaking from the socket's peer credentials.
    pub socket_group: Option<String>,
    /// The agent's own state: `spool/`, `recordings/<user>/`, `audit/`, `sessions/`.
    pub state_dir: PathBuf,
    /// YAML with `api_key`, `app_key` (Datadog): read by the agent alone, must not be group/world-readable.
    pub credentials_file: Option<PathBuf>,
    /// Spool plus recordings, all users: a new session is refused beyond it (nothing is evicted).
    pub max_bytes: u64,
    /// One user's recordings: their new sessions are refused beyond it.
    pub user_quota_bytes: u64,
    /// What a recorder does when the agent refuses a new session for want of space.
    pub when_full: WhenFull,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            enabled: false,
            socket: PathBuf::from("/run/ddcoterm/agent.sock"),
            socket_group: None,
            state_dir: PathBuf::from("/var/spool/ddcoterm"),
            credentials_file: None,
            max_bytes: 4 * 1024 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            when_full: WhenFull::Refuse,
        }
    }
}

/// `agent.when_full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The guarded command is not run (exit 1).
    #[default]
    Refuse,
    /// The command runs unrecorded; the agent stores an audit record saying so first.
    RunUnrecorded,
}
