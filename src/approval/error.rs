//! Why a command was not approved: each variant says what happened and what the user can do.

use crate::error::exit;
use std::time::Duration;

/// The approval did not end in a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Approvals act as a user through the application key; an API key alone cannot create cases.
    #[error(
        "approval required by {rule}, but no application key is configured (approvals create a Case Management \
         case as you): set connection_config.app_key or DD_APP_KEY (`ddcoterm init`); not run"
    )]
    MissingAppKey { rule: String },
    /// The API key is missing entirely.
    #[error("approval required by {rule}, but no Datadog API key is configured: set connection_config.api_key or DD_API_KEY; not run")]
    MissingApiKey { rule: String },
    #[error("approval required by {rule}, but there is no Case Management project to file it in: set approval.project_id; not run")]
    NoProject { rule: String },
    /// Datadog could not be reached (or kept failing): fail closed, and say how to get out in an emergency.
    #[error(
        "cannot reach Datadog to {doing} ({msg}); refusing to run without approval (fail closed). \
         In an emergency, set COTERM_BREAK_GLASS=true (with COTERM_BREAK_GLASS_REASON=\"why\") to run \
         without waiting: the run is recorded and audited"
    )]
    Unreachable { doing: String, msg: String },
    /// Datadog refused a call for good (bad key, no permission, bad project).
    #[error("Datadog refused the approval request while trying to {doing}: {msg}")]
    Rejected { doing: String, msg: String },
    /// An approver said no (or the case was closed/cancelled by someone).
    #[error("{}", declined_msg(key, status, by.as_deref(), comment.as_deref()))]
    Declined { key: String, status: String, by: Option<String>, comment: Option<String> },
    #[error("approval request {key} expired after {} without a decision; not run", humantime::format_duration(*ttl))]
    Expired { key: String, ttl: Duration },
    /// Ctrl-C while waiting: the case was cancelled.
    #[error("approval request {key} cancelled (Ctrl-C); not run")]
    Cancelled { key: String },
}

fn declined_msg(key: &str, status: &str, by: Option<&str>, comment: Option<&str>) -> String {
    let mut s = match status {
        "DECLINED" => format!("approval DECLINED: {key} was declined"),
        "CANCELLED" => format!("approval CANCELLED: {key} was cancelled"),
        _ => format!("approval refused: {key} was {}", status.to_ascii_lowercase()),
    };
    if let Some(b) = by {
        s.push_str(&format!(" by {b}"));
    }
    match comment {
        Some(c) => s.push_str(&format!("; approver's comment: \"{c}\"")),
        None => s.push_str(" (no comment)"),
    }
    s.push_str("; not run");
    s
}

impl ApprovalError {
    /// The process status: 130 for Ctrl-C, 1 for every refusal (missing keys included: the command is
    /// refused, fail closed, like any approval that cannot be obtained).
    pub fn exit_code(&self) -> i32 {
        match self {
            ApprovalError::Cancelled { .. } => exit::INTERRUPTED,
            _ => exit::REFUSED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_distinct_and_actionable() {
        let declined = ApprovalError::Declined {
            key: "COTERM-3".into(),
            status: "DECLINED".into(),
            by: Some("bob".into()),
            comment: Some("no rollback plan".into()),
        };
        let m = declined.to_string();
        assert!(m.contains("DECLINED") && m.contains("bob") && m.contains("no rollback plan"), "{m}");
        let expired =
            ApprovalError::Expired { key: "COTERM-3".into(), ttl: Duration::from_secs(1800) }.to_string();
        assert!(expired.contains("expired after 30m"), "{expired}");
        let down =
            ApprovalError::Unreachable { doing: "create the case".into(), msg: "connection refused".into() };
        assert!(down.to_string().contains("COTERM_BREAK_GLASS=true"));
        let key = ApprovalError::MissingAppKey { rule: "kubectl rules[0]".into() }.to_string();
        assert!(key.contains("kubectl rules[0]") && key.contains("DD_APP_KEY"), "{key}");
        assert_eq!(ApprovalError::Cancelled { key: "k".into() }.exit_code(), 130);
        assert_eq!(declined.exit_code(), 1);
        assert_eq!(ApprovalError::MissingAppKey { rule: "r".into() }.exit_code(), 1);
    }
}
