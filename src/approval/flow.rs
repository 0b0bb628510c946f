//! The approval wait: create the case, poll it with backoff until someone else approves, it is refused,
//! it expires or the user presses Ctrl-C (which cancels the case).

use super::api::{ApiFailure, CaseApi, CaseInfo, Incident, UserRef};
use super::error::ApprovalError;
use super::request::ApprovalRequest;
use super::ui::Progress;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Status that lets the command run (when set by someone other than the requester).
pub const APPROVED: &str = "APPROVED";
/// Statuses that refuse.
pub const REFUSING: [&str; 3] = ["DECLINED", "CANCELLED", "CLOSED"];

/// Timings, resolved from `approval.*` settings (tests shorten them).
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// `approval.project_id`; else the first project of `GET /api/v2/cases/projects`.
    pub project_id: Option<String>,
    /// `approval.request_ttl`: how long to wait for a decision.
    pub request_ttl: Duration,
    /// `approval.poll_interval`: the first delay between polls; it grows up to `max_poll_interval`.
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    /// Longest wait after a failed call (the server's `Retry-After` still wins, within the TTL).
    pub max_error_backoff: Duration,
    /// Give up (fail closed) when every call has failed for this long while polling.
    pub unreachable_after: Duration,
    /// Attempts for the calls that start the request (who am I, project, create the case).
    pub start_attempts: u32,
    /// `approval.requester_handle` with `{user}` filled in: with an organisation-held key, the Datadog handle
    /// that stands for the requester (their approval does not count).
    pub requester_handle: Option<String>,
}

impl FlowOptions {
    /// From settings (durations were parsed, and refused at zero, when the config was loaded); the error is
    /// a `requester_handle` without its `{user}` placeholder.
    pub fn from_settings(
        s: &crate::config::settings::ApprovalSettings,
    ) -> Result<FlowOptions, crate::error::ConfigError> {
        let request_ttl = s.request_ttl.get();
        let poll_interval = s.poll_interval.get();
        let requester_handle = match s.requester_handle.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if !t.contains("{user}") => {
                return Err(crate::error::ConfigError::Policy(format!(
                    "approval.requester_handle `{t}` must contain `{{user}}` (e.g. `{{user}}@example.com`): \
                     otherwise every user maps to the same Datadog handle"
                )))
            }
            Some(t) => Some(t.replace("{user}", &crate::dirs::user_name())),
            None => None,
        };
        Ok(FlowOptions {
            requester_handle,
            project_id: s.project_id.clone().filter(|p| !p.trim().is_empty()),
            request_ttl,
            poll_interval,
            max_poll_interval: (poll_interval * 5)
                .max(Duration::from_secs(10))
                .min(Duration::from_secs(30))
                .max(poll_interval),
            max_error_backoff: Duration::from_secs(30),
            unreachable_after: Duration::from_secs(120),
            start_attempts: 3,
        })
    }
}

/// A granted approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub case: CaseInfo,
    /// Who approved, when the API said.
    pub approver: Option<String>,
}

/// The approval flow as the gate sees it: ask, wait, and link incidents. The gate is tested with a stub.
pub trait Approver {
    /// Creates the case and waits for a decision. `cancel` is set by the Ctrl-C handler.
    fn approve(
        &mut self,
        req: &ApprovalRequest,
        progress: &mut dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<Approved, ApprovalError>;
    /// Re-checks a saved grant with the approval system itself: `Ok(Ok(_))` when case `case_id` is still
    /// APPROVED, by someone other than the requester, for exactly this request, and was approved less than
    /// `ttl` ago; `Ok(Err(why))` when it no longer counts. Nothing on the user's disk can stand in for this.
    fn confirm_grant(
        &mut self,
        case_id: &str,
        req: &ApprovalRequest,
        ttl: Duration,
    ) -> Result<Result<Approved, String>, ApprovalError>;
    /// Active incidents the requesting user responds to.
    fn incidents(&mut self) -> Result<Vec<Incident>, ApprovalError>;
    /// Links an approval case to an incident.
    fn link_incident(&mut self, case: &CaseInfo, incident: &Incident) -> Result<(), ApprovalError>;
}

/// [`Approver`] over Case Management.
pub struct CaseApprover<A: CaseApi> {
    api: A,
    opts: FlowOptions,
    /// The rule that required approval (named in configuration errors).
    rule: String,
    me: Option<UserRef>,
}

impl<A: CaseApi> CaseApprover<A> {
    pub fn new(api: A, opts: FlowOptions, rule: impl Into<String>) -> Self {
        CaseApprover { api, opts, rule: rule.into(), me: None }
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    fn me(&mut self, cancel: &AtomicBool) -> Result<UserRef, ApprovalError> {
        if let Some(me) = &self.me {
            return Ok(me.clone());
        }
        let me =
            self.start_call("identify you (GET /api/v2/current_user)", cancel, |api| api.current_user())?;
        self.me = Some(me.clone());
        Ok(me)
    }

    /// A call that starts the request: retried a few times on transient failures, then fail closed.
    fn start_call<T>(
        &self,
        doing: &str,
        cancel: &AtomicBool,
        f: impl Fn(&A) -> Result<T, ApiFailure>,
    ) -> Result<T, ApprovalError> {
        let mut delay = self.opts.poll_interval.min(Duration::from_secs(2));
        let mut attempt = 1;
        loop {
            match f(&self.api) {
                Ok(v) => return Ok(v),
                Err(e) if e.retry_later && attempt < self.opts.start_attempts => {
                    let wait = e.retry_after.unwrap_or(delay).min(self.opts.max_error_backoff);
                    if sleep_unless_cancelled(wait, cancel) {
                        return Err(ApprovalError::Cancelled { key: "(no case created yet)".into() });
                    }
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) if e.retry_later => {
                    return Err(ApprovalError::Unreachable { doing: doing.into(), msg: e.msg });
                }
                Err(e) => return Err(ApprovalError::Rejected { doing: doing.into(), msg: e.msg }),
            }
        }
    }

    /// Whether the case's last change was made by the requester: the key's own user or, with an
    /// organisation-held key, the person the organisation maps this unix user to. Unknown counts as the
    /// requester (fail closed).
    fn by_requester(&self, case: &CaseInfo, me: &UserRef) -> bool {
        let Some(by) = case.modified_by.as_deref() else { return true };
        if by == me.id {
            return true;
        }
        let Some(mapped) = &self.opts.requester_handle else { return false };
        match self.api.user_handles(by) {
            Ok(handles) => handles.is_empty() || handles.iter().any(|h| h.eq_ignore_ascii_case(mapped)),
            Err(e) => {
                tracing::warn!("cannot tell who changed {} ({e}); not counting it as an approval", case.key);
                true
            }
        }
    }

    /// Who approved, as people know them: the case's included user name, else the handle of the user who
    /// changed it (`GET /api/v2/users/{id}`), else their bare id. The session server grants this identity
    /// access to the session, so a handle matters more than a UUID; a failed lookup never blocks the run.
    fn approver_identity(&self, case: &CaseInfo) -> Option<String> {
        if let Some(n) = &case.modified_by_name {
            return Some(n.clone());
        }
        let id = case.modified_by.clone()?;
        match self.api.user_handles(&id) {
            Ok(handles) => Some(handles.into_iter().next().unwrap_or(id)),
            Err(e) => {
                tracing::warn!("cannot look up who approved {} ({e}); naming them by id", case.key);
                Some(id)
            }
        }
    }

    fn cancel_case(&self, case: &CaseInfo, why: &str) {
        if let Err(e) = self.api.comment(&case.id, why) {
            tracing::warn!("could not comment on {}: {e}", case.key);
        }
        if let Err(e) = self.api.set_status(&case.id, "CANCELLED") {
            tracing::warn!("could not cancel {}: {e}", case.key);
        }
    }
}

impl<A: CaseApi> Approver for CaseApprover<A> {
    fn approve(
        &mut self,
        req: &ApprovalRequest,
        progress: &mut dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<Approved, ApprovalError> {
        let me = self.me(cancel)?;
        let project = match &self.opts.project_id {
            Some(p) => p.clone(),
            None => self
                .start_call("find a Case Management project (GET /api/v2/cases/projects)", cancel, |api| {
                    api.first_project()
                })?
                .ok_or_else(|| ApprovalError::NoProject { rule: self.rule.clone() })?,
        };
        let (title, description) = (req.title(), req.description());
        let case = self.start_call("create the approval case (POST /api/v2/cases)", cancel, |api| {
            api.create_case(&project, &title, &description)
        })?;
        progress.created(&case);
        let result = self.wait(case, &me, progress, cancel);
        progress.finish();
        result
    }

    fn confirm_grant(
        &mut self,
        case_id: &str,
        req: &ApprovalRequest,
        ttl: Duration,
    ) -> Result<Result<Approved, String>, ApprovalError> {
        let never = AtomicBool::new(false);
        let me = self.me(&never)?;
        let case = self.start_call("confirm a saved approval (GET /api/v2/cases/{id})", &never, |api| {
            api.get_case(case_id)
        })?;
        if case.status.to_ascii_uppercase() != APPROVED {
            return Ok(Err(format!("{} is {}", case.key, case.status)));
        }
        if case.title != req.title() || !case.description.contains(&format!("binding: {}", req.binding())) {
            return Ok(Err(format!(
                "{} was not requested for this exact command, context, user and host",
                case.key
            )));
        }
        if self.by_requester(&case, &me) {
            return Ok(Err(format!("{} was approved by the requester, which does not count", case.key)));
        }
        let approved_at = case.modified_at.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        let Some(approved_at) = approved_at else {
            return Ok(Err(format!("{} does not say when it was approved", case.key)));
        };
        // A timestamp slightly ahead of our clock is skew, not a future approval.
        let age = (time::OffsetDateTime::now_utc() - approved_at).max(time::Duration::ZERO);
        if age.unsigned_abs() >= ttl {
            return Ok(Err(format!(
                "{} was approved {} ago, longer than approval.grant_ttl ({})",
                case.key,
                humantime::format_duration(Duration::from_secs(age.unsigned_abs().as_secs())),
                humantime::format_duration(ttl)
            )));
        }
        Ok(Ok(Approved { approver: self.approver_identity(&case), case }))
    }

    fn incidents(&mut self) -> Result<Vec<Incident>, ApprovalError> {
        let never = AtomicBool::new(false);
        let me = self.me(&never)?;
        self.start_call("search active incidents (GET /api/v2/incidents/search)", &never, |api| {
            api.active_incidents(&me)
        })
    }

    fn link_incident(&mut self, case: &CaseInfo, incident: &Incident) -> Result<(), ApprovalError> {
        let never = AtomicBool::new(false);
        self.start_call("link the incident to the case", &never, |api| {
            api.link_incident(&case.id, &incident.id)
        })
    }
}

impl<A: CaseApi> CaseApprover<A> {
    fn wait(
        &self,
        mut case: CaseInfo,
        me: &UserRef,
        progress: &mut dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<Approved, ApprovalError> {
        let start = Instant::now();
        let deadline = start + self.opts.request_ttl;
        let mut delay = self.opts.poll_interval;
        let mut failing_since: Option<Instant> = None;
        let mut error_backoff = self.opts.poll_interval;
        let mut told_self_approval = false;
        loop {
            // First wait, then poll: a case is never decided the instant it is created.
            let now = Instant::now();
            let wait = if failing_since.is_some() { error_backoff } else { delay };
            let wait = wait.min(deadline.saturating_duration_since(now));
            if sleep_unless_cancelled(wait, cancel) {
                self.cancel_case(&case, "Cancelled by the requester (Ctrl-C) before a decision.");
                return Err(ApprovalError::Cancelled { key: case.key });
            }
            if Instant::now() >= deadline {
                let ttl = self.opts.request_ttl;
                self.cancel_case(
                    &case,
                    &format!(
                        "Expired: no decision within {}; the command was not run.",
                        humantime::format_duration(ttl)
                    ),
                );
                return Err(ApprovalError::Expired { key: case.key, ttl });
            }
            match self.api.get_case(&case.id) {
                Ok(c) => {
                    failing_since = None;
                    error_backoff = self.opts.poll_interval;
                    case = CaseInfo { link: if c.link.is_empty() { case.link } else { c.link.clone() }, ..c };
                    progress.waiting(&case, start.elapsed());
                    let status = case.status.to_ascii_uppercase();
                    if status == APPROVED {
                        let by_me = self.by_requester(&case, me);
                        if !by_me {
                            return Ok(Approved { approver: self.approver_identity(&case), case });
                        }
                        if !told_self_approval {
                            progress.note(&format!(
                                "{} was set to APPROVED by you (the requester); that does not count: someone else must approve",
                                case.key
                            ));
                            told_self_approval = true;
                        }
                    } else if REFUSING.contains(&status.as_str()) {
                        let comment = match self.api.approver_comment(&case.id, &me.id) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!("could not read the comments of {}: {e}", case.key);
                                None
                            }
                        };
                        return Err(ApprovalError::Declined {
                            key: case.key.clone(),
                            status,
                            by: case.modified_by_name.clone(),
                            comment,
                        });
                    }
                    delay = (delay.mul_f64(1.5)).min(self.opts.max_poll_interval);
                }
                Err(e) if e.retry_later => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.opts.unreachable_after {
                        return Err(ApprovalError::Unreachable {
                            doing: format!("check approval case {}", case.key),
                            msg: format!("failing for {}s: {}", since.elapsed().as_secs(), e.msg),
                        });
                    }
                    tracing::info!("polling {} failed, retrying: {}", case.key, e.msg);
                    error_backoff = match e.retry_after {
                        Some(hint) => hint.max(self.opts.poll_interval),
                        None => (error_backoff * 2).min(self.opts.max_error_backoff),
                    };
                    error_backoff = jitter(error_backoff);
                }
                Err(e) => {
                    return Err(ApprovalError::Rejected {
                        doing: format!("check approval case {}", case.key),
                        msg: e.msg,
                    })
                }
            }
        }
    }
}

/// Up to +20% so that many waiting shims do not poll in lockstep after an outage.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::random::<f64>() * 0.2)
}

/// Sleeps in short slices; returns true as soon as `cancel` is set.
pub fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(25)));
    }
}
