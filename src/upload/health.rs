//! Health of the session server for `ddcoterm doctor`: it answers `/readyz` and accepts the host token.

use super::server::{self, ServerClient, ServerError, ServerOptions};
use crate::config::Loaded;
use crate::model::Finding;
use std::time::Duration;

/// The session server answers `/readyz` and accepts the host token (an ingest call that reads and writes
/// nothing; `ServerClient::check_token`). Not configured: recordings stay local, which is said, not failed.
pub fn check_server(l: &Loaded) -> Vec<Finding> {
    if l.settings.agent.enabled {
        return vec![Finding::ok("server", "bastion mode: the agent holds the server token and uploads")];
    }
    let (base, token) = match server::configured(&l.settings.server) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return vec![Finding::ok(
                "server",
                "no session server configured (server.url): recordings stay local",
            )]
        }
        Err(e) => return vec![Finding::fail("server", e.to_string())],
    };
    let opts = ServerOptions { connect_timeout: Duration::from_secs(3), timeout: Duration::from_secs(5) };
    let c = match ServerClient::new(base.clone(), token, opts) {
        Ok(c) => c,
        Err(e) => return vec![Finding::fail("server", e.to_string())],
    };
    if let Err(e) = c.ready() {
        return vec![Finding::fail("server", format!("{e}; recordings wait in the spool until it answers"))];
    }
    let token = match c.check_token() {
        Ok(()) => Finding::ok("server token", "accepted as a host token"),
        Err(ServerError::Http { status: s @ (401 | 403), message, .. }) => Finding::fail(
            "server token",
            format!(
                "refused (HTTP {s}: {message}): the token in server.token_file is unknown, revoked or not a host token; recordings wait in the spool until it is replaced"
            ),
        ),
        Err(e) => Finding::fail("server token", e.to_string()),
    };
    vec![Finding::ok("server", format!("{base} is ready")), token]
}
