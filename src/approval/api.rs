//! The Case Management calls the approval flow needs, as a trait: HTTP in production, in-memory in tests.

use std::time::Duration;

/// Who the application key acts as (the requester: their own APPROVED does not count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRef {
    pub id: String,
    pub handle: String,
}

/// What a poll tells us about a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseInfo {
    /// The case UUID (used in API paths).
    pub id: String,
    /// Human key (`COTERM-12`), printed to the user.
    pub key: String,
    /// Upper-case status name (`PENDING_APPROVAL`, `APPROVED`, `DECLINED`...).
    pub status: String,
    /// User id of the last person who changed the case.
    pub modified_by: Option<String>,
    /// Handle or name of that person when the API says it (for messages).
    pub modified_by_name: Option<String>,
    /// Where an approver opens the case.
    pub link: String,
    /// The case title and description as Datadog holds them (a saved grant is checked against them).
    pub title: String,
    pub description: String,
    /// When the case last changed (RFC 3339), i.e. when it was approved; a saved grant's age counts from it.
    pub modified_at: Option<String>,
}

/// An active incident the user could link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incident {
    /// The incident UUID (relationship id).
    pub id: String,
    /// The public number (`#123`) when known.
    pub public_id: Option<u64>,
    pub title: String,
    pub severity: Option<String>,
    /// Handles (or e-mails) of its commander and responders, from the search's included users.
    pub responders: Vec<String>,
}

impl Incident {
    /// The public number when known, else the id: how sessions and tags name the incident.
    pub fn number(&self) -> String {
        self.public_id.map(|n| n.to_string()).unwrap_or_else(|| self.id.clone())
    }

    /// `#123 (SEV-2) Checkout is down`.
    pub fn label(&self) -> String {
        let mut s = match self.public_id {
            Some(n) => format!("#{n}"),
            None => self.id.clone(),
        };
        if let Some(sev) = &self.severity {
            s.push_str(&format!(" ({sev})"));
        }
        s.push(' ');
        s.push_str(&self.title);
        s
    }
}

/// A failed call, already classified: the flow retries `retry_later` failures and stops on the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub msg: String,
    /// Connection errors, timeouts, 408, 429, 5xx.
    pub retry_later: bool,
    /// The server's hint (`X-RateLimit-Reset`, `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The HTTP status when there was a response.
    pub status: Option<u16>,
}

impl ApiFailure {
    pub fn permanent(msg: impl Into<String>) -> ApiFailure {
        ApiFailure { msg: msg.into(), retry_later: false, retry_after: None, status: None }
    }
    pub fn transient(msg: impl Into<String>) -> ApiFailure {
        ApiFailure { msg: msg.into(), retry_later: true, retry_after: None, status: None }
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Case Management as the approval flow uses it (DESIGN.md §6). Implementations never log keys.
pub trait CaseApi {
    /// `GET /api/v2/current_user`.
    fn current_user(&self) -> Result<UserRef, ApiFailure>;
    /// `GET /api/v2/cases/projects`: the first project, when `approval.project_id` is not set.
    fn first_project(&self) -> Result<Option<String>, ApiFailure>;
    /// `POST /api/v2/cases` in `project_id`, status `PENDING_APPROVAL`.
    fn create_case(&self, project_id: &str, title: &str, description: &str) -> Result<CaseInfo, ApiFailure>;
    /// `GET /api/v2/cases/{id}`.
    fn get_case(&self, id: &str) -> Result<CaseInfo, ApiFailure>;
    /// `GET /api/v2/users/{id}`: the user's handle (and email), to tell a mapped requester from an approver.
    fn user_handles(&self, id: &str) -> Result<Vec<String>, ApiFailure>;
    /// The most recent comment on the case by someone other than `requester_id` (the approver's reason).
    fn approver_comment(&self, id: &str, requester_id: &str) -> Result<Option<String>, ApiFailure>;
    /// `POST /api/v2/cases/{id}/status`.
    fn set_status(&self, id: &str, status: &str) -> Result<(), ApiFailure>;
    /// `POST /api/v2/cases/{id}/comment`.
    fn comment(&self, id: &str, text: &str) -> Result<(), ApiFailure>;
    /// `GET /api/v2/incidents/search?query=state:active`, kept to the incidents `user` responds to.
    fn active_incidents(&self, user: &UserRef) -> Result<Vec<Incident>, ApiFailure>;
    /// `POST /api/v2/cases/{id}/relationships/incidents`.
    fn link_incident(&self, case_id: &str, incident_id: &str) -> Result<(), ApiFailure>;
}
