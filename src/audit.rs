//! Break glass and its audit record: detection, reason, banner, and the record written durably to the
//! spool (class `audit`: never dropped) before the command runs. No setting turns any of this off.

use crate::redact::Redactor;
use crate::spool::{Class, Record, RecordId, Spool, SpoolError};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// Set to a truthy value to run without waiting for approval (audited).
pub const ENV_BREAK_GLASS: &str = "COTERM_BREAK_GLASS";
/// Why the glass was broken (else asked on the terminal when `break_glass.require_reason: true`).
pub const ENV_BREAK_GLASS_REASON: &str = "COTERM_BREAK_GLASS_REASON";
/// Spool kind of the break-glass audit record (delivered as an Events API event, `alert_type: warning`).
pub const KIND_BREAK_GLASS: &str = "audit.break_glass";

/// `true`, `1`, `yes` in any case (and surrounding spaces) are truthy; anything else is not.
pub fn is_truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// Whether this process was started with break glass on.
pub fn break_glass_requested() -> bool {
    std::env::var(ENV_BREAK_GLASS).map(|v| is_truthy(&v)).unwrap_or(false)
}

/// The audit record, in the JSON shape the spool deliverer turns into an Events API event (fields of the
/// datadog payload's `AuditEvent`; extra fields are ignored there and kept for the local log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub user: String,
    pub hostname: String,
    /// Redacted command line.
    pub command: String,
    pub cwd: String,
    /// The rule that required approval.
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub session_id: Option<String>,
    /// Unix milliseconds.
    pub timestamp_ms: u64,
    /// `break_glass:true`, `rule:...`, `user:...`, `host:...`.
    pub tags: Vec<String>,
}

impl AuditRecord {
    /// A break-glass record with its tags filled in. The command line and the reason go through `redactor`
    /// here, whatever the caller did: a reason is free text typed in a hurry (`rotated DB_PASSWORD=...`), and
    /// this record goes to the spool, the audit log and Datadog.
    pub fn break_glass(
        redactor: &Redactor,
        user: &str,
        hostname: &str,
        command: &str,
        cwd: &str,
        rule: &str,
        reason: Option<String>,
    ) -> AuditRecord {
        let mut tags =
            vec!["break_glass:true".to_string(), format!("user:{user}"), format!("host:{hostname}")];
        tags.push(format!("rule:{}", tag_value(rule)));
        AuditRecord {
            user: user.into(),
            hostname: hostname.into(),
            command: redactor.redact_str(command),
            cwd: cwd.into(),
            rule: Some(rule.into()),
            reason: reason.map(|r| redactor.redact_str(&r)),
            session_id: None,
            timestamp_ms: now_ms(),
            tags,
        }
    }
}

/// Datadog tag values: no spaces or commas; long values are cut.
fn tag_value(s: &str) -> String {
    s.chars().map(|c| if c.is_whitespace() || c == ',' { '_' } else { c }).take(180).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a break-glass run cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "break glass needs a reason (break_glass.require_reason is on) and there is no terminal to ask on: \
         set COTERM_BREAK_GLASS_REASON=\"why\"; not run"
    )]
    ReasonRequired,
    #[error("break glass needs a reason; none given, not run")]
    EmptyReason,
    #[error("cannot write the break-glass audit record, so the command does not run: {0}")]
    Spool(#[from] SpoolError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// The reason: `COTERM_BREAK_GLASS_REASON` when set, else asked on `tty` when `required`.
/// Without a terminal a required reason refuses the run.
pub fn reason(
    env_reason: Option<String>,
    required: bool,
    tty: Option<(&mut dyn BufRead, &mut dyn Write)>,
) -> Result<Option<String>, AuditError> {
    if let Some(r) = env_reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()) {
        return Ok(Some(r));
    }
    if !required {
        return Ok(None);
    }
    let Some((input, out)) = tty else { return Err(AuditError::ReasonRequired) };
    write!(out, "Break glass: why are you running this without approval? ")?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    let r = line.trim().to_string();
    if r.is_empty() {
        return Err(AuditError::EmptyReason);
    }
    Ok(Some(r))
}

/// The banner printed on stderr before the command runs.
pub fn banner(rec: &AuditRecord) -> String {
    let line = "!".repeat(72);
    format!(
        "{line}\n!! BREAK GLASS: running without approval ({ENV_BREAK_GLASS} is set).\n!! Rule: {}\n\
         !! This run is recorded and an audit event is sent to your Datadog organisation.\n!! Reason: {}\n{line}",
        rec.rule.as_deref().unwrap_or("-"),
        rec.reason.as_deref().unwrap_or("(none given)"),
    )
}

/// Writes the audit record durably (temp file, fsync, rename) to the spool. Returns its id so the caller
/// can send it right away; when sending fails it stays for `ddcoterm spool flush`.
pub fn spool_record(spool: &Spool, rec: &AuditRecord) -> Result<RecordId, AuditError> {
    Ok(spool.enqueue(record(rec))?)
}

/// The spool record of a break-glass audit record (class audit: never evicted, never dropped).
pub fn record(rec: &AuditRecord) -> Record {
    Record::new(KIND_BREAK_GLASS, Class::Audit, serde_json::to_vec(rec).unwrap_or_default())
}

/// Appends one JSON line to `<home>/audit.log` (0600): the local trace of every break glass.
pub fn append_log(home: &Path, rec: &AuditRecord) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(home)?;
    let path = home.join("audit.log");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
    let mut line = serde_json::to_vec(&serde_json::json!({"event": "break_glass", "record": rec}))?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_values() {
        for v in ["true", "TRUE", " yes ", "1", "Yes"] {
            assert!(is_truthy(v), "{v}");
        }
        for v in ["", "0", "false", "no", "on", "y", "2"] {
            assert!(!is_truthy(v), "{v}");
        }
    }

    fn redactor() -> Redactor {
        Redactor::from_settings(&crate::config::settings::RedactionSettings::default()).unwrap()
    }

    #[test]
    fn break_glass_reason_and_command_are_redacted() {
        let rec = AuditRecord::break_glass(
            &redactor(),
            "alice",
            "h1",
            "mysql --password=hunter2 prod",
            "/",
            "r",
            Some(
                "rotated DB_PASSWORD=s3cr3t-v4lue and token ghp_16C7e42F292c6912E7710c838347Ae178B4a".into(),
            ),
        );
        let json = serde_json::to_string(&rec).unwrap();
        for leak in ["hunter2", "s3cr3t-v4lue", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"] {
            assert!(!json.contains(leak), "{leak} in {json}");
        }
        assert!(rec.reason.unwrap().contains("[REDACTED:password]"));
    }

    #[test]
    fn reason_sources() {
        assert_eq!(reason(Some(" outage ".into()), true, None).unwrap().as_deref(), Some("outage"));
        assert_eq!(reason(None, false, None).unwrap(), None);
        assert!(matches!(reason(None, true, None), Err(AuditError::ReasonRequired)));
        assert!(matches!(reason(Some("  ".into()), true, None), Err(AuditError::ReasonRequired)));
        let mut out = Vec::new();
        let mut input: &[u8] = b"db on fire\n";
        let r = reason(None, true, Some((&mut input, &mut out))).unwrap();
        assert_eq!(r.as_deref(), Some("db on fire"));
        assert!(String::from_utf8(out).unwrap().contains("why"));
        let mut input: &[u8] = b"\n";
        assert!(matches!(
            reason(None, true, Some((&mut input, &mut Vec::new()))),
            Err(AuditError::EmptyReason)
        ));
    }

    #[test]
    fn record_is_spooled_as_audit_and_logged_privately() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::open(t.path().join("spool"), 0).unwrap();
        let rec = AuditRecord::break_glass(
            &redactor(),
            "alice",
            "h1",
            "kubectl scale",
            "/",
            "kubectl rules[0] at x (system)",
            None,
        );
        assert!(rec.tags.contains(&"break_glass:true".to_string()));
        assert!(rec.tags.contains(&"rule:kubectl_rules[0]_at_x_(system)".to_string()), "{:?}", rec.tags);
        let id = spool_record(&spool, &rec).unwrap();
        let e = spool.entries().unwrap();
        assert_eq!((e.len(), e[0].class, &e[0].id), (1, Class::Audit, &id));
        let mut claim = spool.claim(&e[0]).unwrap().unwrap();
        let stored = claim.read().unwrap();
        assert_eq!(stored.kind, KIND_BREAK_GLASS);
        let back: AuditRecord = serde_json::from_slice(&stored.body).unwrap();
        assert_eq!(back, rec);
        append_log(t.path(), &rec).unwrap();
        let mode = std::fs::metadata(t.path().join("audit.log")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(banner(&rec).contains("BREAK GLASS"));
    }
}
