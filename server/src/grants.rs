//! Per-session grants (DESIGN.md §12): who besides the session's own user may open it read-only, from the
//! metadata its host sent (the approver of its command, the responders of its linked incident).

use ddcoterm_wire::CreateSession;

use crate::error::{ApiError, ApiResult};
use crate::store::SessionRow;

/// Tag an early server convention used for the approver (`approver:<user name>`); still honoured for
/// sessions stored with it.
pub const APPROVER_TAG: &str = "approver:";
/// Tag the client wrote before the create body had an `approver` field (`approved_by:<handle>`); still
/// honoured for sessions stored with it.
pub const APPROVED_BY_TAG: &str = "approved_by:";

/// Longest identity, message or incident id the server keeps from a create body.
const MAX_TEXT: usize = 2048;
/// Most responders one incident may name.
const MAX_RESPONDERS: usize = 200;

/// The grants a session carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub approver: Option<String>,
    pub incident: Option<String>,
    pub responders: Vec<String>,
}

/// Why a grant lets someone open a session (listed on the session page and in the audit log's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    Approver,
    Responder,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Approver => "approver",
            GrantKind::Responder => "responder",
        }
    }
}

impl Grants {
    /// The grants in a create body: its structured fields, else the tags older clients wrote.
    pub fn of_meta(meta: &CreateSession) -> Grants {
        let tag = |prefix: &str| {
            meta.tags
                .iter()
                .find_map(|t| t.strip_prefix(prefix))
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        };
        let approver = meta
            .approver
            .clone()
            .filter(|a| !a.is_empty())
            .or_else(|| tag(APPROVED_BY_TAG))
            .or_else(|| tag(APPROVER_TAG));
        let (incident, responders) = match &meta.incident {
            Some(i) => (Some(i.id.clone()), i.responders.iter().filter(|r| !r.is_empty()).cloned().collect()),
            None => (tag("incident:"), Vec::new()),
        };
        Grants { approver, incident, responders }
    }

    /// The grants of a stored session (none until its create arrived).
    pub fn of_row(s: &SessionRow) -> Grants {
        s.meta_json
            .as_deref()
            .and_then(|m| serde_json::from_str::<CreateSession>(m).ok())
            .map(|m| Grants::of_meta(&m))
            .unwrap_or_default()
    }

    /// Which grant, if any, names this user: by user name (exactly) or by e-mail (ignoring ASCII case).
    pub fn allows(&self, name: &str, email: Option<&str>) -> Option<GrantKind> {
        let is = |id: &str| id == name || email.is_some_and(|e| !e.is_empty() && id.eq_ignore_ascii_case(e));
        if self.approver.as_deref().is_some_and(is) {
            return Some(GrantKind::Approver);
        }
        self.responders.iter().any(|r| is(r)).then_some(GrantKind::Responder)
    }

    /// "approver X; responders of incident N: Y, Z" (empty when there are no grants).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.approver {
            parts.push(format!("approver {a}"));
        }
        if !self.responders.is_empty() {
            let of = self.incident.as_deref().map(|i| format!(" of incident {i}")).unwrap_or_default();
            parts.push(format!("responders{of}: {}", self.responders.join(", ")));
        }
        parts.join("; ")
    }
}

/// Refuses a create body whose grant or review fields are empty, oversized or hold control characters.
pub fn validate(meta: &CreateSession) -> ApiResult<()> {
    let text = |field: &str, v: &str| -> ApiResult<()> {
        if v.is_empty() || v.len() > MAX_TEXT || v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(ApiError::invalid(format!(
                "field `{field}`: 1-{MAX_TEXT} bytes without control characters"
            )));
        }
        Ok(())
    };
    let ident = |field: &str, v: &str| -> ApiResult<()> {
        text(field, v)?;
        if v.contains(['\n', '\t']) {
            return Err(ApiError::invalid(format!("field `{field}`: {v:?} is not a user name or e-mail")));
        }
        Ok(())
    };
    if let Some(m) = &meta.rule_message {
        text("rule_message", m)?;
    }
    if let Some(r) = &meta.break_glass_reason {
        text("break_glass_reason", r)?;
    }
    if let Some(a) = &meta.approver {
        ident("approver", a)?;
    }
    if let Some(i) = &meta.incident {
        ident("incident.id", &i.id)?;
        if i.responders.len() > MAX_RESPONDERS {
            return Err(ApiError::invalid(format!(
                "field `incident.responders`: {} entries, at most {MAX_RESPONDERS}",
                i.responders.len()
            )));
        }
        for r in &i.responders {
            ident("incident.responders[]", r)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddcoterm_wire::IncidentLink;

    fn meta(extra: &str) -> CreateSession {
        serde_json::from_str(&format!(
            r#"{{"id":"a","started_at":"2026-01-01T00:00:00Z","host":"h","user":"u","command":"c","width":80,"height":24{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn structured_fields_win_over_old_tags() {
        let g = Grants::of_meta(&meta(r#","approver":"Bob@Example.com","tags":["approved_by:eve"]"#));
        assert_eq!(g.approver.as_deref(), Some("Bob@Example.com"));
        assert_eq!(g.allows("bob", Some("bob@example.com")), Some(GrantKind::Approver));
        assert_eq!(g.allows("eve", None), None);
    }

    #[test]
    fn old_tags_still_grant() {
        assert_eq!(
            Grants::of_meta(&meta(r#","tags":["approved_by:carol"]"#)).allows("carol", None),
            Some(GrantKind::Approver)
        );
        assert_eq!(
            Grants::of_meta(&meta(r#","tags":["approver:dan"]"#)).allows("dan", None),
            Some(GrantKind::Approver)
        );
    }

    #[test]
    fn names_match_exactly_and_emails_ignore_case() {
        let mut m = meta("");
        m.incident =
            Some(IncidentLink { id: "42".into(), responders: vec!["Ops@Example.com".into(), "ana".into()] });
        let g = Grants::of_meta(&m);
        assert_eq!(g.allows("x", Some("ops@example.COM")), Some(GrantKind::Responder));
        assert_eq!(g.allows("ana", None), Some(GrantKind::Responder));
        assert_eq!(g.allows("Ana", None), None, "user names are exact");
        assert_eq!(g.allows("ops@example.com", None), None, "a user name is not an e-mail");
        assert_eq!(g.allows("x", Some("")), None);
        assert_eq!(g.describe(), "responders of incident 42: Ops@Example.com, ana");
    }

    #[test]
    fn validation_names_the_field() {
        let mut m = meta("");
        m.approver = Some("a\u{1b}b".into());
        assert!(validate(&m).unwrap_err().message.contains("approver"));
        m.approver = None;
        m.incident = Some(IncidentLink { id: "1".into(), responders: vec![String::new()] });
        assert!(validate(&m).unwrap_err().message.contains("incident.responders"));
    }
}
