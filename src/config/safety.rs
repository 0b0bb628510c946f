//! Safety keys: settings that weaken enforcement when loosened, so the user's layers (user file, environment,
//! flags) may only tighten them, never loosen them, whether or not the organisation listed them under `locked:`.
//!
//! The floor is the built-in defaults merged with the organisation's layers (system, bundles, teams). Each
//! key has one rule for what "tighter" means; the README's table ("Which settings a user can change") is this
//! file's table in prose, and `tests` below checks every row.
//!
//! | key | tighter means |
//! |---|---|
//! | `connection_config.host`, `.port`, `.api_key`, `.app_key` | set by the organisation: its value, always |
//! | `connection_config.allow_loopback` | `false` wins |
//! | `approval.project_id`, `approval.requester_handle` | set by the organisation: its value, always |
//! | `approval.request_ttl`, `approval.grant_ttl` | the shorter duration |
//! | `approval.offer_incidents`, `break_glass.require_reason` | `true` wins |
//! | `redaction.enabled` | `true` wins |
//! | `redaction.patterns` | union: the user's patterns are added to the organisation's |
//! | `spool.max_bytes` | the larger limit (a small spool would evict evidence) |
//! | `recording.retention.max_age`, `.max_total` | the longer age, the larger size; `0` (no limit) is the largest |
//! | `spool.dir`, `recording.dir` | set by the organisation: its value, always |
//! | `server.url`, `server.token_file` | set by the organisation: its value, always |
//! | `recording.input`, `recording.shell_integration` | `true` wins |

use super::settings::Settings;

/// What the organisation's layers set, as raw YAML trees (only the keys each file writes).
pub struct OrgValues<'a> {
    pub files: Vec<&'a serde_yaml::Value>,
}

impl OrgValues<'_> {
    /// True when any organisation file writes the dotted `key`.
    pub fn sets(&self, key: &str) -> bool {
        self.files.iter().any(|v| {
            let mut node = *v;
            for part in key.split('.') {
                match node.get(part) {
                    Some(n) => node = n,
                    None => return false,
                }
            }
            !node.is_null()
        })
    }
}

/// Restores every safety key of `merged` that the user's layers loosened below `floor`, with one warning per
/// key naming it and both values. `from` names the layers that can loosen (for the warning).
pub fn enforce(floor: &Settings, org: &OrgValues<'_>, merged: &mut Settings, warnings: &mut Vec<String>) {
    let mut restore = |key: &str, have: String, want: String| {
        warnings.push(format!(
            "`{key}`: {have} from your own configuration is looser than the organisation's {want}; the organisation's value applies (README: \"Which settings a user can change\")"
        ));
    };

    // Pinned where the organisation set them: nobody below may point them elsewhere.
    macro_rules! pin {
        ($key:literal, $($field:ident).+) => {
            if org.sets($key) && merged.$($field).+ != floor.$($field).+ {
                restore($key, shown(&merged.$($field).+, $key), shown(&floor.$($field).+, $key));
                merged.$($field).+ = floor.$($field).+.clone();
            }
        };
    }
    pin!("connection_config.host", connection_config.host);
    pin!("connection_config.port", connection_config.port);
    pin!("connection_config.api_key", connection_config.api_key);
    pin!("connection_config.app_key", connection_config.app_key);
    pin!("approval.project_id", approval.project_id);
    pin!("approval.requester_handle", approval.requester_handle);
    pin!("spool.dir", spool.dir);
    pin!("recording.dir", recording.dir);
    pin!("server.url", server.url);
    pin!("server.token_file", server.token_file);

    // `true` is the tighter value (or `false`, for allow_loopback).
    macro_rules! true_wins {
        ($key:literal, $($field:ident).+) => {
            if floor.$($field).+ && !merged.$($field).+ {
                restore($key, "false".into(), "true".into());
                merged.$($field).+ = true;
            }
        };
    }
    true_wins!("approval.offer_incidents", approval.offer_incidents);
    true_wins!("break_glass.require_reason", break_glass.require_reason);
    true_wins!("redaction.enabled", redaction.enabled);
    true_wins!("recording.input", recording.input);
    true_wins!("recording.shell_integration", recording.shell_integration);
    if !floor.connection_config.allow_loopback && merged.connection_config.allow_loopback {
        restore("connection_config.allow_loopback", "true".into(), "false".into());
        merged.connection_config.allow_loopback = false;
    }

    // Durations: the shorter one (both were parsed at load).
    {
        let (have, want) = (&mut merged.approval.request_ttl, &floor.approval.request_ttl);
        if have.get() > want.get() {
            restore("approval.request_ttl", format!("`{have}`"), format!("`{want}`"));
            *have = want.clone();
        }
        let (have, want) = (&mut merged.approval.grant_ttl, &floor.approval.grant_ttl);
        if have.get() > want.get() {
            restore("approval.grant_ttl", format!("`{have}`"), format!("`{want}`"));
            *have = want.clone();
        }
    }

    if merged.spool.max_bytes < floor.spool.max_bytes {
        restore("spool.max_bytes", merged.spool.max_bytes.to_string(), floor.spool.max_bytes.to_string());
        merged.spool.max_bytes = floor.spool.max_bytes;
    }

    // Retention: keeping recordings longer (or without a limit, `0`) is the tighter side.
    let unlimited_if_zero = |v: u128| if v == 0 { u128::MAX } else { v };
    let r = &mut merged.recording.retention;
    let f = &floor.recording.retention;
    if unlimited_if_zero(r.max_age.get().as_millis()) < unlimited_if_zero(f.max_age.get().as_millis()) {
        restore("recording.retention.max_age", format!("`{}`", r.max_age), format!("`{}`", f.max_age));
        r.max_age = f.max_age.clone();
    }
    if unlimited_if_zero(r.max_total.bytes().into()) < unlimited_if_zero(f.max_total.bytes().into()) {
        restore("recording.retention.max_total", format!("`{}`", r.max_total), format!("`{}`", f.max_total));
        r.max_total = f.max_total.clone();
    }

    // Patterns only add: every organisation pattern stays, whatever the user's list says.
    let missing: Vec<_> =
        floor.redaction.patterns.iter().filter(|p| !merged.redaction.patterns.contains(p)).cloned().collect();
    if !missing.is_empty() {
        let mut all = missing;
        all.append(&mut merged.redaction.patterns);
        merged.redaction.patterns = all;
    }
}

/// A value for a warning; credentials are never printed.
fn shown<T: std::fmt::Debug>(v: &T, key: &str) -> String {
    if key.ends_with("_key") {
        "a different key".into()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::RedactionPattern;

    fn yaml(s: &str) -> serde_yaml::Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn run(floor: &Settings, org_yaml: &str, merged: &mut Settings) -> Vec<String> {
        let v = yaml(org_yaml);
        let org = OrgValues { files: vec![&v] };
        let mut w = Vec::new();
        enforce(floor, &org, merged, &mut w);
        w
    }

    #[test]
    fn looser_values_are_restored_tighter_ones_kept() {
        // (key, floor change, merged change, expected merged check)
        let floor = {
            let mut s = Settings::default();
            s.approval.grant_ttl = "10m".into();
            s.approval.request_ttl = "30m".into();
            s.break_glass.require_reason = true;
            s.spool.max_bytes = 1000;
            s
        };
        let mut loose = floor.clone();
        loose.approval.grant_ttl = "3650d".into();
        loose.approval.request_ttl = "2h".into();
        loose.break_glass.require_reason = false;
        loose.redaction.enabled = false;
        loose.spool.max_bytes = 10;
        loose.recording.shell_integration = false;
        loose.connection_config.allow_loopback = true;
        loose.recording.retention.max_age = "1d".into();
        loose.recording.retention.max_total = "10MiB".into();
        let w = run(&floor, "{}", &mut loose);
        assert_eq!(loose, floor, "every loosened key restored");
        assert_eq!(w.len(), 9, "{w:#?}");
        assert!(w.iter().any(|m| m.contains("`recording.retention.max_age`") && m.contains("1d")), "{w:#?}");
        assert!(w.iter().any(|m| m.contains("`approval.grant_ttl`") && m.contains("3650d")), "{w:#?}");

        let mut tight = floor.clone();
        tight.approval.grant_ttl = "1m".into();
        tight.approval.request_ttl = "5m".into();
        tight.recording.input = true;
        tight.spool.max_bytes = 5000;
        tight.approval.offer_incidents = true;
        tight.recording.retention.max_age = "0".into();
        tight.recording.retention.max_total = "3GiB".into();
        let before = tight.clone();
        assert!(run(&floor, "{}", &mut tight).is_empty());
        assert_eq!(tight, before, "tightening is kept");
    }

    #[test]
    fn connection_is_pinned_only_where_the_organisation_set_it() {
        let mut floor = Settings::default();
        floor.connection_config.host = "app.datadoghq.eu".into();
        let mut merged = floor.clone();
        merged.connection_config.host = "http://127.0.0.1:9999".into();
        merged.connection_config.api_key = Some("mine".into());
        let w = run(&floor, "connection_config:\n  host: app.datadoghq.eu\n", &mut merged);
        assert_eq!(merged.connection_config.host, "app.datadoghq.eu");
        assert_eq!(
            merged.connection_config.api_key.as_deref(),
            Some("mine"),
            "not set by the org: the user's"
        );
        assert_eq!(w.len(), 1);

        let mut merged = Settings::default();
        merged.connection_config.host = "app.datadoghq.eu".into();
        assert!(run(&Settings::default(), "{}", &mut merged).is_empty(), "no org host: the user's own site");
    }

    #[test]
    fn server_is_pinned_where_the_organisation_set_it() {
        let mut floor = Settings::default();
        floor.server.url = Some("https://sessions.example.com".into());
        floor.server.token_file = Some("/etc/ddcoterm/server-token".into());
        let mut merged = floor.clone();
        merged.server.url = Some("http://127.0.0.1:9".into());
        merged.server.token_file = Some("/home/mallory/token".into());
        let org = "server:\n  url: https://sessions.example.com\n  token_file: /etc/ddcoterm/server-token\n";
        let w = run(&floor, org, &mut merged);
        assert_eq!(merged.server, floor.server, "a user cannot redirect recordings");
        assert_eq!(w.len(), 2, "{w:#?}");
        let mut merged = Settings::default();
        merged.server.url = Some("http://127.0.0.1:7780".into());
        assert!(run(&Settings::default(), "{}", &mut merged).is_empty(), "no org server: the user's own");
    }

    #[test]
    fn keys_are_never_printed() {
        let mut floor = Settings::default();
        floor.connection_config.api_key = Some("orgsecret".into());
        let mut merged = floor.clone();
        merged.connection_config.api_key = Some("usersecret".into());
        let w = run(&floor, "connection_config:\n  api_key: orgsecret\n", &mut merged);
        assert_eq!(merged.connection_config.api_key.as_deref(), Some("orgsecret"));
        assert!(!w[0].contains("secret"), "{w:?}");
    }

    #[test]
    fn redaction_patterns_only_add() {
        let org_p = RedactionPattern { name: "ticket".into(), regex: "TKT-[0-9]+".into() };
        let user_p = RedactionPattern { name: "mine".into(), regex: "x+".into() };
        let mut floor = Settings::default();
        floor.redaction.patterns = vec![org_p.clone()];
        let mut merged = Settings::default();
        merged.redaction.patterns = vec![user_p.clone()];
        run(&floor, "{}", &mut merged);
        assert_eq!(merged.redaction.patterns, vec![org_p, user_p]);
    }
}
