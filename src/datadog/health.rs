//! Health of the Datadog connection for `ddcoterm doctor`: the site, the API and application keys (each
//! tried against the API), and the local clock against the API's `Date` header.

use super::{Client, ClientOptions};
use crate::config::settings::ConnectionConfig;
use crate::model::{Finding, Verdict};
use std::time::{Duration, SystemTime};

/// Tries the site and both keys (two short API calls); the key is shown masked, never in full.
pub fn check(conn: &ConnectionConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let opts = ClientOptions { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(10) };
    let client = match Client::from_settings(conn, opts) {
        Ok(c) => c,
        Err(e) => return vec![Finding::fail("site", e.to_string())],
    };
    out.push(Finding::ok("site", format!("API {} (app {})", client.site().api, client.site().app)));
    let Some(api) = client.api_key().cloned() else {
        out.push(Finding::fail(
            "API key",
            "not set: connection_config.api_key or DD_API_KEY (`ddcoterm init`)",
        ));
        return out;
    };
    match client.validate() {
        Ok(resp) => {
            out.push(Finding::ok("API key", format!("{api} accepted")));
            out.push(match resp.date {
                Some(server) => clock(server, SystemTime::now()),
                None => Finding::warn("clock", "the server sent no Date header; skew unknown"),
            });
        }
        Err(e) => {
            out.push(Finding::fail("API key", format!("{api}: {e}")));
            out.push(Finding::warn("clock", "skew unknown (no answer from the API)"));
        }
    }
    out.push(match client.app_key().cloned() {
        None => Finding::warn("application key", "not set: approvals and incidents need one (DD_APP_KEY)"),
        Some(app) => match client.current_user() {
            Ok(u) => Finding::ok(
                "application key",
                format!("{app} acts as {}", if u.handle.is_empty() { u.id } else { u.handle }),
            ),
            Err(e) => Finding::fail("application key", format!("{app}: {e}")),
        },
    });
    out
}

/// Clock skew against the server's `Date`: under 10 s is fine (the header has one-second resolution),
/// under 5 minutes a warning, beyond that a failure (signed requests and timestamps go wrong).
pub fn clock(server: SystemTime, local: SystemTime) -> Finding {
    let (ahead, d) = match local.duration_since(server) {
        Ok(d) => ("ahead of", d),
        Err(e) => ("behind", e.duration()),
    };
    let s = d.as_secs();
    let v = if s < 10 {
        Verdict::Ok
    } else if s < 300 {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    Finding::new(v, "clock", format!("local clock is {s}s {ahead} the server's"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_verdicts() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for (local_off, want) in [
            (0i64, Verdict::Ok),
            (5, Verdict::Ok),
            (-30, Verdict::Warn),
            (400, Verdict::Fail),
            (-400, Verdict::Fail),
        ] {
            let local = if local_off >= 0 {
                t + Duration::from_secs(local_off as u64)
            } else {
                t - Duration::from_secs((-local_off) as u64)
            };
            assert_eq!(clock(t, local).verdict, want, "{local_off}");
        }
    }

    #[test]
    fn a_missing_api_key_fails_without_a_request() {
        let conn = ConnectionConfig { api_key: None, app_key: None, ..Default::default() };
        let f = check(&conn);
        assert!(f.iter().any(|f| f.what == "API key" && f.verdict == Verdict::Fail), "{f:?}");
    }
}
