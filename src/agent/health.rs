//! Which mode this host records in, for `ddcoterm doctor`: bastion (the agent answers on its socket) or
//! personal (the user's own spool and recordings).

use crate::config::settings::AgentSettings;
use crate::model::Finding;

/// Pings the agent when bastion mode is on; an agent that does not answer is a failure, since recorded
/// commands are then refused.
pub fn check(a: &AgentSettings) -> Finding {
    if !a.enabled {
        return Finding::ok("mode", "personal: spool and recordings in the user's own directories");
    }
    match super::client::ping(&a.socket) {
        Ok(reply) => Finding::ok(
            "mode",
            format!(
                "bastion: the agent at {} answers and files this user's sessions as `{}`",
                a.socket.display(),
                reply.detail.unwrap_or_default()
            ),
        ),
        Err(e) => {
            Finding::fail("mode", format!("bastion: {e}; recorded commands are refused until it answers"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;

    #[test]
    fn an_agent_that_does_not_answer_fails() {
        let t = tempfile::tempdir().unwrap();
        let a = AgentSettings { enabled: true, socket: t.path().join("no.sock"), ..Default::default() };
        assert_eq!(check(&a).verdict, Verdict::Fail);
        let off = AgentSettings { enabled: false, ..a };
        assert_eq!(check(&off).verdict, Verdict::Ok);
    }
}
