//! Plain data shared across layers: actions, decisions and the records a session produces.
//!
//! Kept free of behaviour so that every module (policy, recorder, datadog, spool) can agree on shapes
//! without depending on each other.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What ddcoterm does around a guarded command. Names are CoTerm's, so existing configs parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Record the terminal session (asciicast, streamed upload).
    Record,
    /// Send searchable terminal snapshots to the Logs API.
    Logs,
    /// Send one process event per command (Events API).
    ProcessInfo,
    /// Require a second person's approval through Case Management before running.
    Approval,
    /// Offer to link the approval case / session to an active incident.
    Incidents,
}

impl Action {
    /// Every action, in the order they are displayed.
    pub const ALL: [Action; 5] =
        [Action::Record, Action::Logs, Action::ProcessInfo, Action::Approval, Action::Incidents];

    /// The config spelling (`process_info`), used in messages and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Record => "record",
            Action::Logs => "logs",
            Action::ProcessInfo => "process_info",
            Action::Approval => "approval",
            Action::Incidents => "incidents",
        }
    }

    /// Parses the config spelling; used for CLI flags where serde is not in the loop.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s.trim())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of actions kept sorted and de-duplicated, so comparisons and unions are order-independent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSet(Vec<Action>);

impl ActionSet {
    pub fn new(actions: impl IntoIterator<Item = Action>) -> Self {
        let mut v: Vec<Action> = actions.into_iter().collect();
        v.sort();
        v.dedup();
        ActionSet(v)
    }
    pub fn contains(&self, a: Action) -> bool {
        self.0.contains(&a)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn insert(&mut self, a: Action) {
        if !self.contains(a) {
            self.0.push(a);
            self.0.sort();
        }
    }
    pub fn union(&self, other: &ActionSet) -> ActionSet {
        ActionSet::new(self.0.iter().chain(other.0.iter()).copied())
    }
    pub fn iter(&self) -> impl Iterator<Item = Action> + '_ {
        self.0.iter().copied()
    }
    pub fn as_slice(&self) -> &[Action] {
        &self.0
    }
    /// True when the command must run under the recorder rather than be exec'd directly.
    pub fn needs_recorder(&self) -> bool {
        self.contains(Action::Record) || self.contains(Action::Logs) || self.contains(Action::ProcessInfo)
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("[] (run without recording)");
        }
        let names: Vec<&str> = self.0.iter().map(|a| a.as_str()).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

/// Finds the line of a dotted key path in a config file's text, when asked (`config::lines::Lines`): an
/// [`Origin`] holds one so that the shim path never computes positions it does not show.
pub trait KeyLines: fmt::Debug + Send + Sync {
    /// The 1-based line of `key` (`process_config.commands[0].rules[1]`), if the file has it.
    fn line_of(&self, key: &str) -> Option<usize>;
}

/// Where a piece of policy came from: shown by `check`, `config show --origin` and sent with approvals.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Layer name: `default`, `system`, `bundle`, `team`, `user`, `env`, `flags`.
    pub layer: String,
    /// The file (or env var / flag) that set it.
    pub source: String,
    /// 1-based line in `source` when known up front.
    pub line: Option<usize>,
    /// What else identifies the layer (a bundle's `name rREVISION`).
    pub detail: Option<String>,
    /// The key path in `source`, resolved to a line only when displayed.
    lazy: Option<(std::sync::Arc<dyn KeyLines>, String)>,
}

/// Two origins are equal when they name the same place: layer, source, line (resolved) and detail.
impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.layer == other.layer
            && self.source == other.source
            && self.detail == other.detail
            && self.line() == other.line()
    }
}

impl Eq for Origin {}

impl Origin {
    pub fn new(layer: &str, source: impl Into<String>, line: Option<usize>) -> Self {
        Origin { layer: layer.to_string(), source: source.into(), line, detail: None, lazy: None }
    }
    /// Resolves the line of `key` in the file's text lazily (see [`KeyLines`]).
    pub fn at_key<L: KeyLines + 'static>(
        mut self,
        lines: Option<&std::sync::Arc<L>>,
        key: impl Into<String>,
    ) -> Self {
        self.lazy = lines.map(|l| (l.clone() as std::sync::Arc<dyn KeyLines>, key.into()));
        self
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    /// The 1-based line, computing it on first use.
    pub fn line(&self) -> Option<usize> {
        self.line.or_else(|| self.lazy.as_ref().and_then(|(l, k)| l.line_of(k)))
    }
    /// Organisation layers are under the policy floor (DESIGN.md §3.2).
    pub fn is_org(&self) -> bool {
        matches!(self.layer.as_str(), "system" | "bundle" | "team")
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(l) = self.line() {
            write!(f, ":{l}")?;
        }
        match &self.detail {
            Some(d) => write!(f, " ({} {d})", self.layer),
            None => write!(f, " ({})", self.layer),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Origin", 4)?;
        st.serialize_field("layer", &self.layer)?;
        st.serialize_field("source", &self.source)?;
        st.serialize_field("line", &self.line())?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

/// Session metadata written in the cast header and sent to Datadog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub session_id: String,
    /// The command line as typed (already redacted).
    pub command: String,
    pub user: String,
    pub hostname: String,
    pub cwd: String,
    pub actions: Vec<Action>,
    /// `file:index` of the rule that decided the actions, when one did.
    pub rule: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
    pub width: u16,
    pub height: u16,
    /// Extra tags (incident, ssh client, break_glass...).
    pub tags: Vec<String>,
    /// Where the SSH connection came from, when the session runs under sshd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshOrigin>,
    /// How the run was allowed, for the session server's page and its per-session grants.
    #[serde(default, skip_serializing_if = "Review::is_empty")]
    pub review: Review,
}

/// What a reviewer of the session needs to know about how it was allowed: the rule's message, who approved
/// it, the linked incident and its responders (the server lets the approver and responders open the
/// session), the break-glass reason. Everything here is already redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_message: Option<String>,
    /// The approver's Datadog handle or e-mail, as the case names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The linked incident's public number (or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Handles/e-mails of the linked incident's commander and responders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
}

impl Review {
    pub fn is_empty(&self) -> bool {
        *self == Review::default()
    }
}

/// Who an SSH session came from, as sshd reports it (`SSH_CONNECTION`, and the `SSH_USER_AUTH` file with
/// `ExposeAuthInfo yes`). Audit metadata that ties a bastion recording to a client and a key, not proof: a
/// user can set these variables in a session that sshd did not start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshOrigin {
    pub client_addr: String,
    pub client_port: u16,
    pub server_addr: String,
    pub server_port: u16,
    /// The method that completed authentication (`publickey`, `password`, `keyboard-interactive`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The public key's type as sshd names it (`ssh-ed25519`, `ssh-ed25519-cert-v01@openssh.com`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it (for a certificate: of the certified key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

/// One command's life, from the wrapper or from shell-integration markers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    pub session_id: String,
    /// Redacted command line.
    pub command: String,
    pub executable: String,
    pub cwd: String,
    pub user: String,
    pub hostname: String,
    pub exit_code: Option<i32>,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub tags: Vec<String>,
}

/// A de-duplicated text snapshot of the virtual screen, for the `logs` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub session_id: String,
    /// Unix milliseconds.
    pub timestamp_ms: u64,
    pub lines: Vec<String>,
}

/// Receives what a session produces, already redacted. Implementations: the local event log, the spool-backed
/// Datadog outputs. Each output fails on its own: the recorder logs an output's error and carries on.
pub trait Output: Send {
    /// Once, before any chunk.
    fn session_start(&mut self, meta: &SessionMeta) -> anyhow::Result<()>;
    /// Newline-terminated asciicast v2 event lines (`[t, "o", "..."]\n`...), in order; `seq` counts from 0.
    fn cast_chunk(&mut self, seq: u64, lines: &[u8]) -> anyhow::Result<()>;
    /// [`Output::cast_chunk`] handing the buffer over, for an output that keeps the lines (the spool writes
    /// them as they are): saves a copy of every chunk. The default borrows.
    fn cast_chunk_vec(&mut self, seq: u64, lines: Vec<u8>) -> anyhow::Result<()> {
        self.cast_chunk(seq, &lines)
    }
    /// One finished command.
    fn process_event(&mut self, event: &ProcessEvent) -> anyhow::Result<()>;
    /// A terminal text snapshot (the `logs` action).
    fn snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()>;
    /// Once, when the session ends (also on error paths, so that nothing stays half-open).
    fn session_end(&mut self, meta: &SessionMeta, exit_code: i32, duration_ms: u64) -> anyhow::Result<()>;
}

/// How one health check of `ddcoterm doctor` came out; any `Fail` makes doctor exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One verdict of a health check: each module checks what it owns and returns these, so that the checks
/// can be tested without the CLI; only `ddcoterm doctor` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    /// What was checked (`spool`, `API key`, `server token`).
    pub what: String,
    /// What was found, and how to fix it when it is not ok.
    pub detail: String,
}

impl Finding {
    pub fn new(verdict: Verdict, what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding { verdict, what: what.into(), detail: detail.into() }
    }
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(Verdict::Ok, what, detail)
    }
    pub fn warn(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(Verdict::Warn, what, detail)
    }
    pub fn fail(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(Verdict::Fail, what, detail)
    }
}
