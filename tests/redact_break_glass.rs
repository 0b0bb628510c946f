//! The break-glass reason is free text typed in a hurry: a secret in it is redacted in the spooled audit
//! record, the local audit log, the Datadog event and the session tags, like any recorded byte.

mod harness;
mod support;

use ddcoterm::guard::gate;
use ddcoterm::model::{Action, ActionSet};
use ddcoterm::policy::{Decision, DecisionSource, Invocation};
use serial_test::serial;
use std::collections::BTreeMap;
use support::{Fake, Home, API_KEY};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const PASSWORD: &str = "Tr0ub4dor-and-3";

fn invocation() -> Invocation {
    Invocation {
        executable: "mysql".into(),
        args: vec![format!("--password={PASSWORD}"), "prod".into()],
        env: BTreeMap::new(),
        cwd: "/srv".into(),
        user: "alice".into(),
        hostname: "bastion-1".into(),
    }
}

fn decision() -> Decision {
    Decision {
        warnings: Vec::new(),
        rule: None,
        actions: ActionSet::new([Action::Approval]),
        source: DecisionSource::Rule,
        user_message: None,
        approver_message: None,
        errors: Vec::new(),
        context: BTreeMap::new(),
    }
}

#[test]
#[serial]
fn a_secret_in_the_break_glass_reason_is_redacted_everywhere_it_goes() {
    let fake = Fake::start();
    let h = Home::new();
    h.config(&fake.uri(), API_KEY, "");
    std::env::set_var("COTERM_BREAK_GLASS", "yes");
    std::env::set_var("COTERM_BREAK_GLASS_REASON", format!("rotating DB_PASSWORD={PASSWORD} with {TOKEN}"));
    let out = gate::require(&h.loaded(), &invocation(), &decision(), "mysql rules[0]", None);
    std::env::remove_var("COTERM_BREAK_GLASS");
    std::env::remove_var("COTERM_BREAK_GLASS_REASON");
    let out = out.expect("break glass lets the command run");

    let events = fake.accepted_path_prefix("/api/v1/events");
    assert_eq!(events.len(), 1, "the audit event was sent");
    let sent = String::from_utf8_lossy(&events[0].decoded()).into_owned();
    let log = std::fs::read_to_string(h.home().join("audit.log")).unwrap();
    let spool = String::from_utf8_lossy(&h.spool_bytes()).into_owned();
    let tags = out.tags.join(",");
    for (place, text) in
        [("Datadog event", &sent), ("audit.log", &log), ("spool", &spool), ("session tags", &tags)]
    {
        for secret in [PASSWORD, TOKEN] {
            assert!(!text.contains(secret), "{secret} in the {place}: {text}");
        }
    }
    assert!(
        sent.contains("rotating") && sent.contains("[REDACTED:"),
        "the rest of the reason is kept: {sent}"
    );
    assert!(log.contains("[REDACTED:github_token]"), "{log}");
}
