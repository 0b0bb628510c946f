//! What an approver is asked to approve: the invocation's facts, its binding fingerprint and the case text.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One request for approval. `argv` is the raw command (used only for the binding hash, never sent);
/// everything that leaves the machine uses `command_line`, which the caller has already redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// Executable name and arguments exactly as they will run; empty for a session approval.
    pub argv: Vec<String>,
    /// The redacted command line shown to approvers.
    pub command_line: String,
    pub user: String,
    pub hostname: String,
    pub cwd: String,
    /// Effective context values (`k8s_context`, `aws_profile`...) the decision was made with.
    pub context: BTreeMap<String, String>,
    /// The rule that required approval (`kubectl rules[0] at /etc/ddcoterm/config.yaml:7 (system)`).
    pub rule: String,
    pub user_message: Option<String>,
    pub approver_message: Option<String>,
    /// Why the user asks (`ddcoterm approve --reason`).
    pub reason: Option<String>,
    /// Where the session can be followed, when it is recorded.
    pub session_link: Option<String>,
}

impl ApprovalRequest {
    /// The fingerprint an approval is bound to: argv, effective context, user and host. Any change (one more
    /// flag, another kube context, another machine) needs a new approval. Fields are length-prefixed so that
    /// `["a b"]` and `["a", "b"]` differ.
    pub fn binding(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |tag: &str, v: &str| {
            h.update(tag.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        };
        field("user", &self.user);
        field("host", &self.hostname);
        for a in &self.argv {
            field("arg", a);
        }
        for (k, v) in &self.context {
            field("ctx.k", k);
            field("ctx.v", v);
        }
        let digest = h.finalize();
        hex::encode(digest)
    }

    /// True when this approves a whole session rather than one command.
    pub fn is_session(&self) -> bool {
        self.argv.is_empty()
    }

    /// The case title (Datadog truncates long titles; keep it readable).
    pub fn title(&self) -> String {
        let what = if self.is_session() {
            "a terminal session".to_string()
        } else {
            format!("`{}`", self.command_line)
        };
        let t = format!("Approval requested: {}@{} wants to run {what}", self.user, self.hostname);
        truncate(&t, 200)
    }

    /// The case description (Markdown): everything an approver needs to decide, nothing secret.
    pub fn description(&self) -> String {
        let mut d = String::new();
        d.push_str("ddcoterm asks for a second person's approval before running a command.\n\n");
        if self.is_session() {
            d.push_str("**Command:** (a whole terminal session)\n\n");
        } else {
            d.push_str(&format!("**Command:**\n```\n{}\n```\n\n", self.command_line));
        }
        d.push_str(&format!(
            "- **User:** {}\n- **Host:** {}\n- **Working directory:** `{}`\n",
            self.user, self.hostname, self.cwd
        ));
        d.push_str(&format!("- **Rule:** {}\n", self.rule));
        if !self.context.is_empty() {
            d.push_str("- **Effective context:**\n");
            for (k, v) in &self.context {
                d.push_str(&format!("  - `{k}` = `{v}`\n"));
            }
        }
        if let Some(m) = &self.reason {
            d.push_str(&format!("- **Reason given by the user:** {m}\n"));
        }
        if let Some(m) = &self.user_message {
            d.push_str(&format!("- **Message shown to the user:** {m}\n"));
        }
        if let Some(m) = &self.approver_message {
            d.push_str(&format!("\n**Note for the approver:** {m}\n"));
        }
        if let Some(l) = &self.session_link {
            d.push_str(&format!("\n**Session:** {l}\n"));
        }
        d.push_str(&format!(
            "\nSet the status to APPROVED to let it run, or DECLINED (with a comment saying why) to refuse. \
             Approval by the requester is ignored.\n\n`binding: {}`\n",
            self.binding()
        ));
        d
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ApprovalRequest {
        ApprovalRequest {
            argv: vec!["kubectl".into(), "scale".into(), "--context".into(), "prod-1".into()],
            command_line: "kubectl scale --context prod-1".into(),
            user: "alice".into(),
            hostname: "bastion-1".into(),
            cwd: "/home/alice".into(),
            context: BTreeMap::from([("k8s_context".to_string(), "prod-1".to_string())]),
            rule: "kubectl rules[0] at /etc/ddcoterm/config.yaml:5 (system)".into(),
            user_message: Some("Proceed with caution.".into()),
            approver_message: Some("Check the rollback plan.".into()),
            reason: None,
            session_link: None,
        }
    }

    #[test]
    fn binding_changes_with_each_bound_field_only() {
        let base = req();
        let b = base.binding();
        assert_eq!(b, req().binding(), "stable");
        assert_eq!(b.len(), 64);
        let mut cases: Vec<(&str, ApprovalRequest)> = Vec::new();
        let mut r = req();
        r.argv.push("--replicas=0".into());
        cases.push(("argv", r));
        let mut r = req();
        r.context.insert("k8s_context".into(), "prod-2".into());
        cases.push(("context", r));
        let mut r = req();
        r.user = "bob".into();
        cases.push(("user", r));
        let mut r = req();
        r.hostname = "bastion-2".into();
        cases.push(("host", r));
        let mut r = req();
        r.argv = vec!["kubectl".into(), "scale --context".into(), "prod-1".into()];
        cases.push(("argument boundaries", r));
        for (name, r) in cases {
            assert_ne!(r.binding(), b, "{name} must change the binding");
        }
        let mut r = req();
        r.cwd = "/tmp".into();
        r.reason = Some("why".into());
        assert_eq!(r.binding(), b, "cwd and reason are not bound");
    }

    #[test]
    fn description_carries_what_the_approver_needs() {
        let d = req().description();
        for needle in [
            "kubectl scale --context prod-1",
            "alice",
            "bastion-1",
            "/home/alice",
            "`k8s_context` = `prod-1`",
            "Proceed with caution.",
            "Check the rollback plan.",
            "kubectl rules[0]",
            "binding: ",
        ] {
            assert!(d.contains(needle), "missing {needle:?} in\n{d}");
        }
        assert!(req().title().contains("alice@bastion-1"));
    }

    #[test]
    fn session_requests_say_so() {
        let r = ApprovalRequest { user: "a".into(), hostname: "h".into(), ..Default::default() };
        assert!(r.is_session());
        assert!(r.title().contains("a terminal session"));
        assert!(r.description().contains("whole terminal session"));
    }
}
