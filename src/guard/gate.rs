//! The approve / break glass step of the guard sequence: break glass (audited), reusable grants, the Case
//! Management wait with Ctrl-C cancel, and incident linking. Fails closed: no grant, no run.

use crate::approval::http::HttpCaseApi;
use crate::approval::incidents::pick_on_tty;
use crate::approval::ui::{Progress, Spinner};
use crate::approval::{
    ApprovalError, ApprovalRequest, Approver, CaseApprover, CaseInfo, CaseRef, FlowOptions, GrantStore,
    Incident,
};
use crate::audit::{self, AuditRecord};
use crate::config::Loaded;
use crate::datadog::{Client, ClientOptions};
use crate::error::Exit;
use crate::model::{Action, ActionSet, Review};
use crate::policy::{Decision, Invocation};
use crate::redact::Redactor;
use crate::upload::Uploader;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the gate hands back to the guard sequence when the command may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateOutcome {
    /// Actions to add to the decided ones: break glass forces `record` and `process_info`.
    pub force: ActionSet,
    /// Session tags: `break_glass:true`, `approval_case:<KEY>`, `approved_by:<who>`, `incident:<id>`.
    pub tags: Vec<String>,
    /// The same facts for the session server (approver, incident and responders, break-glass reason):
    /// structured, because the server grants the approver and responders access from them.
    pub review: Review,
}

impl GateOutcome {
    /// The decided actions with the forced ones added.
    pub fn actions(&self, decided: &ActionSet) -> ActionSet {
        decided.union(&self.force)
    }
}

/// Runs whatever the decision asks of this step: approval (with incidents when `incidents` is decided or
/// `approval.offer_incidents` is on), or incidents alone. Nothing to do returns an empty outcome.
pub fn gate(loaded: &Loaded, inv: &Invocation, decision: &Decision) -> anyhow::Result<GateOutcome> {
    let rule = rule_name(decision);
    if decision.actions.contains(Action::Approval) {
        return require(loaded, inv, decision, &rule, None);
    }
    if decision.actions.contains(Action::Incidents) {
        return Ok(incidents_only(loaded));
    }
    Ok(GateOutcome::default())
}

/// How a decision names the rule that required approval.
pub fn rule_name(decision: &Decision) -> String {
    decision.rule.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "--actions approval".into())
}

/// The approval step (`decision.actions` contains `approval`), with the reason given to `ddcoterm approve
/// --reason`. Ok = the command may run, with the outcome's forced actions and tags; Err = refused, with an
/// [`Exit`] status (1 refused, 130 Ctrl-C, 78 configuration).
pub fn require(
    loaded: &Loaded,
    inv: &Invocation,
    decision: &Decision,
    rule: &str,
    reason: Option<String>,
) -> anyhow::Result<GateOutcome> {
    let req = request_for(loaded, inv, decision, rule, reason)?;
    if audit::break_glass_requested() {
        return break_glass(loaded, &req);
    }
    let opts = FlowOptions::from_settings(&loaded.settings.approval)?;
    let grant_ttl = loaded.settings.approval.grant_ttl.get();
    let want_incidents =
        decision.actions.contains(Action::Incidents) || loaded.settings.approval.offer_incidents;
    let cancel = Arc::new(AtomicBool::new(false));
    // Ctrl-C while waiting sets the flag (instead of killing us) so that the case is cancelled first.
    let sig = signal_hook::flag::register(signal_hook::consts::SIGINT, cancel.clone())
        .map_err(|e| anyhow::anyhow!("cannot watch for Ctrl-C: {e}"))?;
    let mut spinner = Spinner::new();
    let mut pick = |list: &[Incident]| match pick_on_tty(list) {
        Ok(Some(choice)) => choice,
        Ok(None) => {
            eprintln!("ddcoterm: no terminal to choose an incident on; not linking one");
            None
        }
        Err(e) => {
            eprintln!("ddcoterm: cannot ask which incident to link: {e}");
            None
        }
    };
    let mut deps = GateDeps {
        make_approver: &mut || http_approver(loaded, rule, &opts),
        grants: GrantStore::in_home(&loaded.dirs.home),
        grant_ttl,
        progress: &mut spinner,
        cancel: &cancel,
        want_incidents,
        pick: &mut pick,
    };
    let result = approve_with(&mut deps, &req);
    signal_hook::low_level::unregister(sig);
    result.map_err(|e| Exit::new(e.exit_code(), e.to_string()).into())
}

/// Builds the request from the invocation: redacted command line, context, messages, session link.
pub fn request_for(
    loaded: &Loaded,
    inv: &Invocation,
    decision: &Decision,
    rule: &str,
    reason: Option<String>,
) -> anyhow::Result<ApprovalRequest> {
    let redactor = Redactor::from_settings(&loaded.settings.redaction)?;
    let argv: Vec<String> = if inv.executable.is_empty() {
        Vec::new()
    } else {
        std::iter::once(inv.executable.clone()).chain(inv.args.iter().cloned()).collect()
    };
    let session_link =
        std::env::var(crate::dirs::ENV_SESSION).ok().filter(|s| !s.is_empty()).and_then(|marker| {
            crate::upload::session_link(loaded, crate::recorder::nesting::session_id(&marker))
        });
    Ok(ApprovalRequest {
        command_line: if argv.is_empty() { String::new() } else { redactor.redact_str(&inv.command_line()) },
        argv,
        user: inv.user.get().to_string(),
        hostname: inv.hostname.get().to_string(),
        cwd: inv.cwd.display().to_string(),
        context: decision.context.iter().map(|(k, v)| (k.clone(), redactor.redact_str(v))).collect(),
        rule: rule.to_string(),
        user_message: decision.user_message.as_ref().map(|m| redactor.redact_str(m)),
        approver_message: decision.approver_message.as_ref().map(|m| redactor.redact_str(m)),
        reason: reason.map(|r| redactor.redact_str(&r)),
        session_link,
    })
}

/// Everything the approval step uses, injectable so that it is tested without HTTP or a terminal.
pub struct GateDeps<'a> {
    /// Builds the approver when one is needed (a reused grant needs none, nor keys).
    pub make_approver: &'a mut dyn FnMut() -> Result<Box<dyn Approver + 'a>, ApprovalError>,
    pub grants: GrantStore,
    pub grant_ttl: Duration,
    pub progress: &'a mut dyn Progress,
    pub cancel: &'a AtomicBool,
    pub want_incidents: bool,
    /// Chooses an incident (index into the list), or none.
    pub pick: &'a mut dyn FnMut(&[Incident]) -> Option<usize>,
}

/// Grant reuse (confirmed with the approval system, never taken from the grant file alone), else the approval
/// wait, then incidents; the tags say how the run was allowed.
pub fn approve_with(deps: &mut GateDeps<'_>, req: &ApprovalRequest) -> Result<GateOutcome, ApprovalError> {
    let binding = req.binding();
    let mut approver = (deps.make_approver)()?;
    if !deps.grant_ttl.is_zero() {
        match deps.grants.find(&binding, SystemTime::now()) {
            Ok(Some(g)) => match approver.confirm_grant(g.case_ref(), req, deps.grant_ttl)? {
                Ok(approved) => {
                    let who = approved.approver.as_deref().unwrap_or("another user");
                    deps.progress.note(&format!(
                        "reusing approval {} (granted by {who} for this exact command, context, user and host; confirmed with Datadog)",
                        approved.case.key
                    ));
                    let mut tags = vec![
                        format!("approval_case:{}", approved.case.key),
                        "approval_reused:true".to_string(),
                    ];
                    if let Some(a) = &approved.approver {
                        tags.push(format!("approved_by:{a}"));
                    }
                    let review = Review { approver: approved.approver.clone(), ..Review::default() };
                    return Ok(GateOutcome { force: ActionSet::default(), tags, review });
                }
                Err(why) => deps.progress.note(&format!("not reusing saved approval {}: {why}", g.case_key)),
            },
            Ok(None) => {}
            Err(e) => deps.progress.note(&format!("ignoring saved approvals: {e}")),
        }
    }
    let approved = approver.approve(req, deps.progress, deps.cancel)?;
    let who = approved.approver.clone().unwrap_or_else(|| "another user".into());
    deps.progress.note(&format!("approved: {} by {who}", approved.case.key));
    let mut tags = vec![format!("approval_case:{}", approved.case.key)];
    if let Some(a) = &approved.approver {
        tags.push(format!("approved_by:{a}"));
    }
    let case_ref = CaseRef { id: approved.case.id.clone(), key: approved.case.key.clone() };
    if let Err(e) = deps.grants.record(
        (&binding, &case_ref, approved.approver.as_deref()),
        deps.grant_ttl,
        SystemTime::now(),
    ) {
        deps.progress.note(&format!("could not save the approval for reuse: {e}"));
    }
    let mut review = Review { approver: approved.approver.clone(), ..Review::default() };
    if deps.want_incidents {
        if let Some(inc) = link_incident(approver.as_mut(), Some(&approved.case), deps.pick, deps.progress) {
            tags.push(incident_tag(&inc));
            review.incident = Some(inc.number());
            review.responders = inc.responders;
        }
    }
    Ok(GateOutcome { force: ActionSet::default(), tags, review })
}

/// `incident:<number>`: how the session's tags name its incident.
pub fn incident_tag(inc: &Incident) -> String {
    format!("incident:{}", inc.number())
}

/// The outcome of linking `inc` (or nothing) without an approval: its tag, number and responders.
fn incident_outcome(inc: Option<Incident>) -> GateOutcome {
    let Some(inc) = inc else { return GateOutcome::default() };
    GateOutcome {
        force: ActionSet::default(),
        tags: vec![incident_tag(&inc)],
        review: Review { incident: Some(inc.number()), responders: inc.responders, ..Review::default() },
    }
}

/// Offers the user's active incidents; links the chosen one to `case` when there is one, and returns it.
/// Never blocks the run: a failure is a note.
pub fn link_incident(
    approver: &mut dyn Approver,
    case: Option<&CaseInfo>,
    pick: &mut dyn FnMut(&[Incident]) -> Option<usize>,
    progress: &mut dyn Progress,
) -> Option<Incident> {
    let list = match approver.incidents() {
        Ok(l) => l,
        Err(e) => {
            progress.note(&format!("cannot list active incidents ({e}); not linking one"));
            return None;
        }
    };
    if list.is_empty() {
        progress.note("no active incident lists you as a responder; nothing to link");
        return None;
    }
    let i = pick(&list).filter(|i| *i < list.len())?;
    let inc = list.into_iter().nth(i)?;
    if let Some(c) = case {
        match approver.link_incident(c, &inc) {
            Ok(()) => progress.note(&format!("linked {} to incident {}", c.key, inc.label())),
            Err(e) => progress.note(&format!("could not link {} to incident {}: {e}", c.key, inc.label())),
        }
    }
    Some(inc)
}

/// The `incidents` action without approval: tag the session with a chosen incident (no case to link).
pub fn incidents_only(loaded: &Loaded) -> GateOutcome {
    let rule = "incidents";
    let opts = match FlowOptions::from_settings(&loaded.settings.approval) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ddcoterm: incidents: {e}");
            return GateOutcome::default();
        }
    };
    let mut approver = match http_approver(loaded, rule, &opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ddcoterm: incidents action skipped: {e}");
            return GateOutcome::default();
        }
    };
    let mut pick = |list: &[Incident]| pick_on_tty(list).ok().flatten().flatten();
    let mut spinner = Spinner::new();
    incident_outcome(link_incident(approver.as_mut(), None, &mut pick, &mut spinner))
}

/// The production approver: keys checked first (the error names the rule), then the HTTP client.
fn http_approver<'a>(
    loaded: &Loaded,
    rule: &str,
    opts: &FlowOptions,
) -> Result<Box<dyn Approver + 'a>, ApprovalError> {
    let conn = &loaded.settings.connection_config;
    let set = |k: &Option<String>| k.as_deref().is_some_and(|k| !k.trim().is_empty());
    if !set(&conn.api_key) {
        return Err(ApprovalError::MissingApiKey { rule: rule.into() });
    }
    if !set(&conn.app_key) {
        return Err(ApprovalError::MissingAppKey { rule: rule.into() });
    }
    let client = Client::from_settings(conn, client_options()).map_err(|e| ApprovalError::Rejected {
        doing: "set up the Datadog client".into(),
        msg: e.to_string(),
    })?;
    Ok(Box::new(CaseApprover::new(HttpCaseApi::new(client), opts.clone(), rule)))
}

/// Approval calls are small: fail fast so that the wait loop's own retry and fail-closed logic decides.
fn client_options() -> ClientOptions {
    ClientOptions { connect_timeout: Duration::from_secs(3), timeout: Duration::from_secs(10) }
}

/// Break glass: reason, audit record durably in the spool *before* the command runs, banner, then an
/// immediate send attempt (the record stays spooled when Datadog cannot be reached).
fn break_glass(loaded: &Loaded, req: &ApprovalRequest) -> anyhow::Result<GateOutcome> {
    let refuse = |e: audit::AuditError| -> anyhow::Error { Exit::refused(e.to_string()).into() };
    let env_reason = std::env::var(audit::ENV_BREAK_GLASS_REASON).ok();
    let required = loaded.settings.break_glass.require_reason;
    let reason = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
        Ok(tty) if required && env_reason.as_deref().is_none_or(|r| r.trim().is_empty()) => {
            let mut out = tty.try_clone()?;
            let mut input = std::io::BufReader::new(tty);
            audit::reason(env_reason, required, Some((&mut input, &mut out))).map_err(refuse)?
        }
        _ => audit::reason(env_reason, required, None).map_err(refuse)?,
    };
    let redactor = Redactor::from_settings(&loaded.settings.redaction)?;
    let rec = AuditRecord::break_glass(
        &redactor,
        &req.user,
        &req.hostname,
        if req.is_session() { "(terminal session)" } else { &req.command_line },
        &req.cwd,
        &req.rule,
        reason,
    );
    if loaded.settings.agent.enabled {
        // Bastion mode: the agent stores the record (the user's spool and audit.log are theirs to delete).
        crate::agent::client::send_audit(&loaded.settings.agent.socket, BREAK_GLASS_WHAT, &rec)
            .map_err(|e| Exit::refused(format!("break glass refused: bastion mode: {e}")))?;
        eprintln!("{}", audit::banner(&rec));
        eprintln!("ddcoterm: break-glass audit record stored by the recording agent");
        return Ok(gate_outcome(&rec));
    }
    // Durably in the spool before the command may run; the uploader sends it at once and, when Datadog
    // cannot take it now, leaves it to the background flush (or the next `ddcoterm spool flush`).
    let up = Uploader::with_options(loaded, client_options(), Default::default())
        .map_err(|e| Exit::refused(format!("break glass refused: cannot store its audit record: {e:#}")))?;
    up.enqueue(audit::record(&rec))
        .map_err(|e| Exit::refused(format!("break glass refused: cannot store its audit record: {e:#}")))?;
    if let Err(e) = audit::append_log(&loaded.dirs.home, &rec) {
        eprintln!(
            "ddcoterm: warning: cannot append to {}: {e}",
            loaded.dirs.home.join("audit.log").display()
        );
    }
    tracing::warn!(user = %rec.user, host = %rec.hostname, rule = %req.rule, "break glass: running without approval");
    eprintln!("{}", audit::banner(&rec));
    let report = up.finish();
    if report.left() == 0 {
        eprintln!("ddcoterm: break-glass audit event sent to Datadog");
    } else {
        eprintln!(
            "ddcoterm: break-glass audit event kept in the spool ({report}); it is sent by the next `ddcoterm spool flush`"
        );
    }
    Ok(gate_outcome(&rec))
}

/// The agent's name for a break-glass audit record (it files it as `audit.break_glass`, as the spool does).
const BREAK_GLASS_WHAT: &str = "break_glass";

/// Break glass forces recording and process events, and tags the session.
fn gate_outcome(rec: &AuditRecord) -> GateOutcome {
    let mut tags = vec!["break_glass:true".to_string()];
    if let Some(r) = &rec.reason {
        tags.push(format!("break_glass_reason:{}", r.chars().take(150).collect::<String>()));
    }
    // The session server keeps the whole (redacted) reason, not the tag's first 150 characters.
    let review = Review { break_glass_reason: rec.reason.clone(), ..Review::default() };
    GateOutcome { force: ActionSet::new([Action::Record, Action::ProcessInfo]), tags, review }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ui::Recorded;
    use crate::approval::Approved;
    use std::cell::RefCell;

    /// Approves every request and records what it was asked.
    struct Stub {
        log: std::rc::Rc<RefCell<Vec<String>>>,
        incidents: Vec<Incident>,
        /// What the approval system says when a saved grant is confirmed.
        grant_valid: bool,
    }

    impl Approver for Stub {
        fn approve(
            &mut self,
            req: &ApprovalRequest,
            _p: &mut dyn Progress,
            _c: &AtomicBool,
        ) -> Result<Approved, ApprovalError> {
            self.log.borrow_mut().push(format!("approve {}", req.command_line));
            Ok(Approved {
                case: CaseInfo {
                    id: "c1".into(),
                    key: "COTERM-7".into(),
                    status: "APPROVED".into(),
                    ..Default::default()
                },
                approver: Some("bob".into()),
            })
        }
        fn confirm_grant(
            &mut self,
            case_id: &str,
            _req: &ApprovalRequest,
            _ttl: Duration,
        ) -> Result<Result<Approved, String>, ApprovalError> {
            self.log.borrow_mut().push(format!("confirm {case_id}"));
            if !self.grant_valid {
                return Ok(Err("COTERM-7 is DECLINED".into()));
            }
            let case = CaseInfo { id: case_id.into(), key: "COTERM-7".into(), ..Default::default() };
            Ok(Ok(Approved { case, approver: Some("bob".into()) }))
        }
        fn incidents(&mut self) -> Result<Vec<Incident>, ApprovalError> {
            Ok(self.incidents.clone())
        }
        fn link_incident(&mut self, case: &CaseInfo, incident: &Incident) -> Result<(), ApprovalError> {
            self.log.borrow_mut().push(format!("link {} {}", case.key, incident.id));
            Ok(())
        }
    }

    fn req(args: &[&str]) -> ApprovalRequest {
        ApprovalRequest {
            argv: args.iter().map(|s| s.to_string()).collect(),
            command_line: args.join(" "),
            user: "alice".into(),
            hostname: "h".into(),
            ..Default::default()
        }
    }

    fn run(
        home: &std::path::Path,
        ttl: Duration,
        r: &ApprovalRequest,
        incidents: Vec<Incident>,
        pick: Option<usize>,
    ) -> (GateOutcome, Vec<String>) {
        run_with(home, ttl, r, incidents, pick, true)
    }

    fn run_with(
        home: &std::path::Path,
        ttl: Duration,
        r: &ApprovalRequest,
        incidents: Vec<Incident>,
        pick: Option<usize>,
        grant_valid: bool,
    ) -> (GateOutcome, Vec<String>) {
        let log = std::rc::Rc::new(RefCell::new(Vec::new()));
        let l2 = log.clone();
        let mut make = move || -> Result<Box<dyn Approver>, ApprovalError> {
            Ok(Box::new(Stub { log: l2.clone(), incidents: incidents.clone(), grant_valid }))
        };
        let mut progress = Recorded::default();
        let cancel = AtomicBool::new(false);
        let mut chooser = |_: &[Incident]| pick;
        let mut deps = GateDeps {
            make_approver: &mut make,
            grants: GrantStore::in_home(home),
            grant_ttl: ttl,
            progress: &mut progress,
            cancel: &cancel,
            want_incidents: pick.is_some(),
            pick: &mut chooser,
        };
        let out = approve_with(&mut deps, r).unwrap();
        let calls = log.borrow().clone();
        (out, calls)
    }

    #[test]
    fn grant_is_reused_within_ttl_for_the_identical_invocation_only() {
        let t = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(600);
        let (o, calls) = run(t.path(), ttl, &req(&["kubectl", "scale"]), vec![], None);
        assert_eq!(calls, ["approve kubectl scale"]);
        assert_eq!(o.tags, ["approval_case:COTERM-7", "approved_by:bob"]);
        let (o, calls) = run(t.path(), ttl, &req(&["kubectl", "scale"]), vec![], None);
        assert_eq!(calls, ["confirm c1"], "reused after the approval system confirmed it");
        assert!(o.tags.contains(&"approval_reused:true".to_string()));
        let (_, calls) = run(t.path(), ttl, &req(&["kubectl", "scale", "--replicas=0"]), vec![], None);
        assert_eq!(calls, ["approve kubectl scale --replicas=0"], "different argv asks again");
    }

    #[test]
    fn a_saved_grant_the_approval_system_does_not_confirm_is_not_reused() {
        let t = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(600);
        run(t.path(), ttl, &req(&["kubectl", "scale"]), vec![], None);
        let (o, calls) = run_with(t.path(), ttl, &req(&["kubectl", "scale"]), vec![], None, false);
        assert_eq!(calls, ["confirm c1", "approve kubectl scale"], "asked anew");
        assert!(!o.tags.contains(&"approval_reused:true".to_string()));
    }

    #[test]
    fn zero_ttl_asks_every_time() {
        let t = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let (_, calls) = run(t.path(), Duration::ZERO, &req(&["kubectl", "scale"]), vec![], None);
            assert_eq!(calls.len(), 1);
        }
    }

    #[test]
    fn picked_incident_is_linked_and_tagged() {
        let t = tempfile::tempdir().unwrap();
        let inc = Incident {
            id: "i-uuid".into(),
            public_id: Some(42),
            title: "db".into(),
            severity: None,
            responders: vec!["lead@example.com".into()],
        };
        let (o, calls) = run(t.path(), Duration::ZERO, &req(&["x"]), vec![inc], Some(0));
        assert_eq!(calls, ["approve x", "link COTERM-7 i-uuid"]);
        assert!(o.tags.contains(&"incident:42".to_string()), "{:?}", o.tags);
        assert_eq!(o.review.incident.as_deref(), Some("42"));
        assert_eq!(o.review.responders, ["lead@example.com"]);
    }

    #[test]
    fn outcome_adds_forced_actions() {
        let o = GateOutcome {
            force: ActionSet::new([Action::Record, Action::ProcessInfo]),
            tags: vec![],
            review: Review::default(),
        };
        assert_eq!(
            o.actions(&ActionSet::new([Action::Approval])).to_string(),
            "[record, process_info, approval]"
        );
    }
}
