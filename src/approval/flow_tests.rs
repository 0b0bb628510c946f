//! The approval wait driven through an in-memory [`CaseApi`]: outcomes, self-approval, retries, cancel.

use super::api::{ApiFailure, CaseApi, CaseInfo, Incident, UserRef};
use super::error::ApprovalError;
use super::flow::{Approver, CaseApprover, FlowOptions};
use super::request::ApprovalRequest;
use super::ui::Recorded;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Polls answer from `polls` in order (the last one repeats); every call is logged.
#[derive(Default)]
struct Script {
    polls: RefCell<VecDeque<Result<CaseInfo, ApiFailure>>>,
    create: RefCell<VecDeque<Result<CaseInfo, ApiFailure>>>,
    comment: Option<String>,
    log: RefCell<Vec<String>>,
}

fn case(status: &str, by: Option<&str>) -> CaseInfo {
    CaseInfo {
        id: "c-1".into(),
        key: "COTERM-1".into(),
        status: status.into(),
        modified_by: by.map(str::to_string),
        modified_by_name: by.map(|b| format!("{b}@example.com")),
        link: "http://x/cases/COTERM-1".into(),
        ..Default::default()
    }
}

impl Script {
    fn new(polls: Vec<Result<CaseInfo, ApiFailure>>) -> Script {
        Script { polls: RefCell::new(polls.into()), ..Default::default() }
    }
    fn calls(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

impl CaseApi for &Script {
    fn current_user(&self) -> Result<UserRef, ApiFailure> {
        Ok(UserRef { id: "me".into(), handle: "alice".into() })
    }
    fn first_project(&self) -> Result<Option<String>, ApiFailure> {
        self.log.borrow_mut().push("projects".into());
        Ok(Some("p-1".into()))
    }
    fn create_case(&self, project_id: &str, _t: &str, _d: &str) -> Result<CaseInfo, ApiFailure> {
        self.log.borrow_mut().push(format!("create {project_id}"));
        self.create.borrow_mut().pop_front().unwrap_or_else(|| Ok(case("PENDING_APPROVAL", Some("me"))))
    }
    fn get_case(&self, _id: &str) -> Result<CaseInfo, ApiFailure> {
        self.log.borrow_mut().push("poll".into());
        let mut q = self.polls.borrow_mut();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        }
    }
    fn user_handles(&self, id: &str) -> Result<Vec<String>, ApiFailure> {
        self.log.borrow_mut().push(format!("user {id}"));
        Ok(vec![format!("{id}@example.com")])
    }
    fn approver_comment(&self, _id: &str, requester: &str) -> Result<Option<String>, ApiFailure> {
        assert_eq!(requester, "me");
        Ok(self.comment.clone())
    }
    fn set_status(&self, _id: &str, status: &str) -> Result<(), ApiFailure> {
        self.log.borrow_mut().push(format!("status {status}"));
        Ok(())
    }
    fn comment(&self, _id: &str, _text: &str) -> Result<(), ApiFailure> {
        self.log.borrow_mut().push("comment".into());
        Ok(())
    }
    fn active_incidents(&self, _u: &UserRef) -> Result<Vec<Incident>, ApiFailure> {
        Ok(vec![])
    }
    fn link_incident(&self, _c: &str, _i: &str) -> Result<(), ApiFailure> {
        Ok(())
    }
}

fn opts() -> FlowOptions {
    FlowOptions {
        project_id: None,
        request_ttl: Duration::from_secs(20),
        poll_interval: Duration::from_millis(5),
        max_poll_interval: Duration::from_millis(10),
        max_error_backoff: Duration::from_millis(20),
        unreachable_after: Duration::from_millis(300),
        start_attempts: 3,
        requester_handle: None,
    }
}

fn run(s: &Script, o: FlowOptions) -> (Result<super::flow::Approved, ApprovalError>, Recorded) {
    let mut progress = Recorded::default();
    let mut a = CaseApprover::new(s, o, "kubectl rules[0]");
    let r = a.approve(&ApprovalRequest::default(), &mut progress, &AtomicBool::new(false));
    (r, progress)
}

#[test]
fn approved_by_someone_else_after_some_polls() {
    let s = Script::new(vec![
        Ok(case("PENDING_APPROVAL", Some("me"))),
        Ok(case("PENDING_APPROVAL", Some("me"))),
        Ok(case("APPROVED", Some("bob"))),
    ]);
    let (r, p) = run(&s, opts());
    let ok = r.unwrap();
    assert_eq!(ok.approver.as_deref(), Some("bob@example.com"));
    assert_eq!(p.created, ["COTERM-1"]);
    assert_eq!(p.polls, 3);
    assert!(p.finished);
    assert_eq!(s.calls(), ["projects", "create p-1", "poll", "poll", "poll"]);
}

#[test]
fn configured_project_skips_the_lookup() {
    let s = Script::new(vec![Ok(case("APPROVED", Some("bob")))]);
    let mut o = opts();
    o.project_id = Some("p-9".into());
    run(&s, o).0.unwrap();
    assert_eq!(s.calls()[0], "create p-9");
}

#[test]
fn self_approval_is_ignored_with_a_note() {
    let s = Script::new(vec![
        Ok(case("APPROVED", Some("me"))),
        Ok(case("APPROVED", Some("me"))),
        Ok(case("APPROVED", Some("carol"))),
    ]);
    let (r, p) = run(&s, opts());
    assert_eq!(r.unwrap().approver.as_deref(), Some("carol@example.com"));
    assert_eq!(p.notes.len(), 1, "said once: {:?}", p.notes);
    assert!(p.notes[0].contains("does not count"));
}

#[test]
fn refusals_carry_status_and_comment() {
    for status in ["DECLINED", "CANCELLED", "CLOSED", "declined"] {
        let mut s = Script::new(vec![Ok(case(status, Some("bob")))]);
        s.comment = Some("no rollback plan".into());
        match run(&s, opts()).0.unwrap_err() {
            ApprovalError::Declined { status: st, comment, by, .. } => {
                assert_eq!(st, status.to_ascii_uppercase());
                assert_eq!(comment.as_deref(), Some("no rollback plan"));
                assert_eq!(by.as_deref(), Some("bob@example.com"));
            }
            e => panic!("{status}: {e:?}"),
        }
    }
}

#[test]
fn expiry_refuses_and_cancels_the_case() {
    let s = Script::new(vec![Ok(case("PENDING_APPROVAL", Some("me")))]);
    let mut o = opts();
    o.request_ttl = Duration::from_millis(60);
    let e = run(&s, o).0.unwrap_err();
    assert!(matches!(e, ApprovalError::Expired { .. }), "{e:?}");
    let calls = s.calls();
    assert!(calls.ends_with(&["comment".to_string(), "status CANCELLED".to_string()]), "{calls:?}");
}

#[test]
fn transient_poll_failures_are_retried() {
    let mut rate_limited = ApiFailure::transient("HTTP 429");
    rate_limited.retry_after = Some(Duration::from_millis(10));
    let s = Script::new(vec![
        Err(rate_limited),
        Err(ApiFailure::transient("HTTP 503")),
        Ok(case("PENDING_APPROVAL", Some("me"))),
        Err(ApiFailure::transient("HTTP 500")),
        Ok(case("APPROVED", Some("bob"))),
    ]);
    run(&s, opts()).0.unwrap();
    assert_eq!(s.calls().iter().filter(|c| *c == "poll").count(), 5);
}

#[test]
fn polling_that_keeps_failing_fails_closed_naming_break_glass() {
    let s = Script::new(vec![Err(ApiFailure::transient("connection refused"))]);
    let e = run(&s, opts()).0.unwrap_err();
    assert!(matches!(e, ApprovalError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("COTERM_BREAK_GLASS"));
}

#[test]
fn creation_failures_fail_closed_or_are_rejected() {
    let s = Script::new(vec![Ok(case("APPROVED", Some("bob")))]);
    s.create.borrow_mut().extend([
        Err(ApiFailure::transient("down")),
        Err(ApiFailure::transient("down")),
        Err(ApiFailure::transient("down")),
    ]);
    let e = run(&s, opts()).0.unwrap_err();
    assert!(matches!(e, ApprovalError::Unreachable { .. }), "{e:?}");
    assert_eq!(s.calls().iter().filter(|c| c.starts_with("create")).count(), 3);

    let s = Script::new(vec![Ok(case("APPROVED", Some("bob")))]);
    s.create.borrow_mut().push_back(Err(ApiFailure::permanent("HTTP 403: Forbidden")));
    let e = run(&s, opts()).0.unwrap_err();
    assert!(matches!(e, ApprovalError::Rejected { .. }), "{e:?}");
    assert!(e.to_string().contains("Forbidden"));
}

#[test]
fn cancel_flag_cancels_the_case() {
    let s = Script::new(vec![Ok(case("PENDING_APPROVAL", Some("me")))]);
    let cancel = AtomicBool::new(false);
    let mut progress = Recorded::default();
    let mut a = CaseApprover::new(&s, opts(), "r");
    let r = std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        a.approve(&ApprovalRequest::default(), &mut progress, &cancel)
    });
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), 130);
    assert!(s.calls().contains(&"status CANCELLED".to_string()), "{:?}", s.calls());
}

#[test]
fn with_an_org_held_key_the_mapped_requester_cannot_approve() {
    // The key acts as a service account ("me"); the org maps this unix user to bob@example.com.
    let s = Script::new(vec![Ok(case("APPROVED", Some("bob"))), Ok(case("APPROVED", Some("carol")))]);
    let o = FlowOptions { requester_handle: Some("BOB@example.com".into()), ..opts() };
    let (r, p) = run(&s, o);
    assert_eq!(r.unwrap().approver.as_deref(), Some("carol@example.com"));
    assert!(p.notes.iter().any(|n| n.contains("by you (the requester)")), "{:?}", p.notes);
    assert_eq!(s.calls(), ["projects", "create p-1", "poll", "user bob", "poll", "user carol"]);
}

/// A case as Datadog would hold it for `req`, approved by `by` at `at`.
fn held_case(req: &ApprovalRequest, status: &str, by: &str, at: time::OffsetDateTime) -> CaseInfo {
    CaseInfo {
        title: req.title(),
        description: req.description(),
        modified_at: Some(at.format(&time::format_description::well_known::Rfc3339).unwrap()),
        ..case(status, Some(by))
    }
}

#[test]
fn a_saved_grant_counts_only_when_the_approval_system_confirms_it() {
    let req = ApprovalRequest {
        argv: vec!["kubectl".into(), "delete".into()],
        user: "alice".into(),
        ..Default::default()
    };
    let now = time::OffsetDateTime::now_utc();
    let ttl = Duration::from_secs(600);
    let mut other = req.clone();
    other.argv.push("ns".into());
    let cases: Vec<(&str, CaseInfo, Option<&str>)> = vec![
        (
            "approved by bob 1 minute ago",
            held_case(&req, "APPROVED", "bob", now - time::Duration::minutes(1)),
            None,
        ),
        ("declined", held_case(&req, "DECLINED", "bob", now), Some("is DECLINED")),
        (
            "approved by the requester",
            held_case(&req, "APPROVED", "me", now),
            Some("approved by the requester"),
        ),
        (
            "another command's case",
            held_case(&other, "APPROVED", "bob", now),
            Some("not requested for this exact"),
        ),
        (
            "older than grant_ttl",
            held_case(&req, "APPROVED", "bob", now - time::Duration::hours(2)),
            Some("longer than approval.grant_ttl"),
        ),
        (
            "no approval time",
            CaseInfo { modified_at: None, ..held_case(&req, "APPROVED", "bob", now) },
            Some("does not say when"),
        ),
    ];
    for (name, c, refusal) in cases {
        let s = Script::new(vec![Ok(c)]);
        let mut a = CaseApprover::new(&s, opts(), "kubectl rules[0]");
        let r = a.confirm_grant("c-1", &req, ttl).unwrap();
        match refusal {
            None => assert_eq!(r.unwrap().approver.as_deref(), Some("bob@example.com"), "{name}"),
            Some(why) => assert!(r.unwrap_err().contains(why), "{name}"),
        }
    }
}

#[test]
fn a_requester_handle_without_the_user_placeholder_is_a_config_error_naming_the_key() {
    let mut s = crate::config::settings::ApprovalSettings {
        requester_handle: Some("oncall@example.com".into()),
        ..Default::default()
    };
    let e = FlowOptions::from_settings(&s).unwrap_err().to_string();
    assert!(e.contains("approval.requester_handle") && e.contains("{user}"), "{e}");
    s.requester_handle = Some("{user}@example.com".into());
    let o = FlowOptions::from_settings(&s).unwrap();
    assert_eq!(o.requester_handle, Some(format!("{}@example.com", crate::dirs::user_name())));
}
