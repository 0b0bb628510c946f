//! Request shapes: events and log batches, built from the shared model (pure, no I/O). Recordings go to the
//! session server (`upload/`), never to a Datadog endpoint that is not documented.

use super::client::{Method, Request};
use super::site::Api;
use crate::model::{ProcessEvent, SessionMeta, Snapshot};
use flate2::write::GzEncoder;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;

/// Datadog's per-request limits for `POST /api/v2/logs`.
pub const MAX_LOG_ITEMS: usize = 1000;
/// Uncompressed payload limit (5 MB).
pub const MAX_LOG_PAYLOAD: usize = 5 * 1000 * 1000;
/// A single log above 1 MB is truncated by Datadog; we cut it ourselves, on a char boundary.
pub const MAX_LOG_ENTRY: usize = 1000 * 1000;

/// `source_type_name` of process and audit events.
pub const SOURCE_TYPE: &str = "coterm_process_info";
/// `source_type_name` of the one event per recorded session.
pub const SESSION_SOURCE_TYPE: &str = "coterm_session";

/// Every Datadog call ddcoterm makes for a session; `request(body)` gives path, API, content type and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `POST /api/v1/events` (process, session and audit events).
    Event,
    /// `POST /api/v2/logs` (gzip JSON array).
    Logs,
}

impl Call {
    pub fn request(&self, body: Vec<u8>) -> Request {
        let (api, path, gzip) = match self {
            Call::Event => (Api::Api, "/api/v1/events", false),
            Call::Logs => (Api::Logs, "/api/v2/logs", true),
        };
        Request {
            api,
            method: Method::Post,
            path: path.to_string(),
            content_type: "application/json",
            gzip,
            app_key: false,
            body,
        }
    }
}

/// Ids in paths (sessions, cases) are uuids or keys; anything else is percent-encoded so it cannot change
/// the path.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// gzip at the fastest level: terminal text still shrinks several times at level 1, and the default level
/// cost several times the CPU. Session chunks are compressed by the sender just before their upload, never on
/// the recorder's thread.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// The Events API body for one finished command.
pub fn process_event(ev: &ProcessEvent) -> Vec<u8> {
    let exit = ev.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
    let mut tags = vec![
        format!("session_id:{}", ev.session_id),
        format!("executable:{}", ev.executable),
        format!("exit_code:{exit}"),
        format!("user:{}", ev.user),
        format!("host:{}", ev.hostname),
        "source:coterm".to_string(),
    ];
    tags.extend(ev.tags.iter().cloned());
    let failed = ev.exit_code.is_some_and(|c| c != 0);
    let body = json!({
        "title": truncate(&format!("{} ran `{}`", ev.user, ev.command), 100),
        "text": truncate(
            &format!(
                "%%% \n`{}`\n\n- exit code: {exit}\n- duration: {} ms\n- cwd: `{}`\n- user: {}\n- host: {}\n- session: {}\n %%%",
                ev.command, ev.duration_ms, ev.cwd, ev.user, ev.hostname, ev.session_id
            ),
            4000
        ),
        "source_type_name": SOURCE_TYPE,
        "alert_type": if failed { "error" } else { "info" },
        "host": ev.hostname,
        "date_happened": ev.started_at_ms / 1000,
        "aggregation_key": ev.session_id,
        "tags": tags,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What an audit record carries in the spool (written by `audit.rs` as JSON, kind `audit.<what>`):
/// converted into an Events API body when sent. Unknown fields are ignored so that writers can add context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct AuditEvent {
    pub user: String,
    pub hostname: String,
    /// The redacted command line.
    pub command: String,
    /// `file:index` of the rule that required approval.
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub session_id: Option<String>,
    /// Unix milliseconds.
    pub timestamp_ms: u64,
    pub tags: Vec<String>,
}

/// The Events API body for an audit record; `what` is the kind suffix (`break_glass`, `decision`...).
/// Break glass is `alert_type: warning` with the tag `break_glass:true` (DESIGN.md §8).
pub fn audit_event(what: &str, a: &AuditEvent) -> Vec<u8> {
    let break_glass = what == "break_glass";
    let mut tags = vec![
        format!("audit:{what}"),
        format!("user:{}", a.user),
        format!("host:{}", a.hostname),
        "source:coterm".to_string(),
    ];
    if break_glass {
        tags.push("break_glass:true".into());
    }
    if let Some(s) = &a.session_id {
        tags.push(format!("session_id:{s}"));
    }
    tags.extend(a.tags.iter().cloned());
    let title = if break_glass {
        format!("Break glass: {} ran `{}` without approval", a.user, a.command)
    } else {
        format!("ddcoterm audit ({what}): {} `{}`", a.user, a.command)
    };
    let body = json!({
        "title": truncate(&title, 100),
        "text": truncate(&format!(
            "%%% \n`{}`\n\n- user: {}\n- host: {}\n- rule: {}\n- reason: {}\n- session: {}\n %%%",
            a.command, a.user, a.hostname,
            a.rule.as_deref().unwrap_or("-"), a.reason.as_deref().unwrap_or("-"), a.session_id.as_deref().unwrap_or("-"),
        ), 4000),
        "source_type_name": SOURCE_TYPE,
        "alert_type": if break_glass { "warning" } else if what.ends_with("_failed") { "error" } else { "info" },
        "host": a.hostname,
        "date_happened": a.timestamp_ms / 1000,
        "tags": tags,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The Events API body of one recorded session (`coterm_session`): who ran what where, how it ended, and the
/// session server's link when there is one. `exit_code` is `None` when unknown (a recovered session).
pub fn session_event(
    meta: &SessionMeta,
    exit_code: Option<i32>,
    duration_ms: u64,
    link: Option<&str>,
) -> Vec<u8> {
    let exit = exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
    let mut tags = vec![
        format!("session_id:{}", meta.session_id),
        format!("exit_code:{exit}"),
        format!("user:{}", meta.user),
        format!("host:{}", meta.hostname),
        "source:coterm".to_string(),
    ];
    tags.extend(meta.tags.iter().cloned());
    let link_line = link.map(|l| format!("\n- recording: {l}")).unwrap_or_default();
    let body = json!({
        "title": truncate(&format!("{} recorded `{}` on {}", meta.user, meta.command, meta.hostname), 100),
        "text": truncate(
            &format!(
                "%%% \n`{}`\n\n- exit code: {exit}\n- duration: {duration_ms} ms\n- user: {}\n- host: {}\n- session: {}{link_line}\n %%%",
                meta.command, meta.user, meta.hostname, meta.session_id
            ),
            4000
        ),
        "source_type_name": SESSION_SOURCE_TYPE,
        "alert_type": if exit_code.is_some_and(|c| c != 0) { "error" } else { "info" },
        "host": meta.hostname,
        "date_happened": meta.started_at,
        "aggregation_key": meta.session_id,
        "tags": tags,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One log entry for a terminal snapshot.
pub fn log_entry(meta: &SessionMeta, snap: &Snapshot) -> Value {
    let mut tags = vec![format!("session_id:{}", snap.session_id), format!("user:{}", meta.user)];
    tags.extend(meta.tags.iter().cloned());
    json!({
        "ddsource": "coterm",
        "service": "ddcoterm",
        "hostname": meta.hostname,
        "ddtags": tags.join(","),
        "message": truncate(&snap.lines.join("\n"), MAX_LOG_ENTRY),
        "timestamp": snap.timestamp_ms,
        "session_id": snap.session_id,
        "command": meta.command,
        "usr": { "name": meta.user },
    })
}

/// Accumulates log entries into payloads within Datadog's limits (<= 1000 items, <= 5 MB uncompressed).
#[derive(Debug, Default)]
pub struct LogBatcher {
    items: Vec<Vec<u8>>,
    bytes: usize,
}

impl LogBatcher {
    /// Adds an entry; returns a finished (uncompressed) JSON array when adding it would cross a limit.
    pub fn push(&mut self, entry: &Value) -> Option<Vec<u8>> {
        let enc = serde_json::to_vec(entry).unwrap_or_default();
        // 2 for the brackets, 1 per separating comma.
        let would = self.bytes + enc.len() + 1 + 2;
        let out = if !self.items.is_empty() && (self.items.len() >= MAX_LOG_ITEMS || would > MAX_LOG_PAYLOAD)
        {
            self.take()
        } else {
            None
        };
        self.bytes += enc.len() + 1;
        self.items.push(enc);
        if self.items.len() >= MAX_LOG_ITEMS {
            return out.or_else(|| self.take());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The pending entries as one JSON array, if any.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.items.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.bytes + 2);
        out.push(b'[');
        for (i, it) in self.items.drain(..).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(it.as_slice());
        }
        out.push(b']');
        self.bytes = 0;
        Some(out)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn meta() -> SessionMeta {
        SessionMeta {
            session_id: "0193-abc".into(),
            command: "kubectl get pods".into(),
            user: "ana".into(),
            hostname: "bastion-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn session_event_names_the_link_only_when_there_is_one() {
        let v: Value = serde_json::from_slice(&session_event(&meta(), Some(0), 1200, None)).unwrap();
        assert_eq!(v["source_type_name"], "coterm_session");
        assert!(!v["text"].as_str().unwrap().contains("recording:"), "{v}");
        let v: Value =
            serde_json::from_slice(&session_event(&meta(), Some(2), 5, Some("https://s.example/sessions/x")))
                .unwrap();
        assert_eq!(v["alert_type"], "error");
        assert!(v["text"].as_str().unwrap().contains("https://s.example/sessions/x"), "{v}");
    }

    #[test]
    fn calls_map_to_exact_paths_and_headers() {
        let cases = [
            (Call::Event, Api::Api, Method::Post, "/api/v1/events", false),
            (Call::Logs, Api::Logs, Method::Post, "/api/v2/logs", true),
        ];
        for (call, api, method, path, gz) in cases {
            let r = call.request(vec![]);
            assert_eq!(
                (r.api, r.method, r.path.as_str(), r.gzip, r.app_key),
                (api, method, path, gz, false),
                "{call:?}"
            );
        }
    }

    #[test]
    fn process_event_shape() {
        let ev = ProcessEvent {
            session_id: "s1".into(),
            command: "kubectl delete pod x".into(),
            executable: "kubectl".into(),
            cwd: "/tmp".into(),
            user: "ana".into(),
            hostname: "h1".into(),
            exit_code: Some(1),
            started_at_ms: 1_700_000_000_123,
            duration_ms: 42,
            tags: vec!["team:sre".into()],
        };
        let v: Value = serde_json::from_slice(&process_event(&ev)).unwrap();
        assert_eq!(v["source_type_name"], "coterm_process_info");
        assert_eq!(v["alert_type"], "error");
        assert_eq!(v["date_happened"], 1_700_000_000u64);
        let tags: Vec<&str> = v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        for t in ["session_id:s1", "executable:kubectl", "exit_code:1", "user:ana", "host:h1", "team:sre"] {
            assert!(tags.contains(&t), "{t} in {tags:?}");
        }
    }

    #[test]
    fn break_glass_audit_is_a_warning_tagged_break_glass() {
        let a =
            AuditEvent { user: "ana".into(), command: "kubectl delete ns prod".into(), ..Default::default() };
        let v: Value = serde_json::from_slice(&audit_event("break_glass", &a)).unwrap();
        assert_eq!(v["alert_type"], "warning");
        assert!(v["tags"].as_array().unwrap().iter().any(|t| t == "break_glass:true"));
        let v: Value = serde_json::from_slice(&audit_event("decision", &a)).unwrap();
        assert_eq!(v["alert_type"], "info");
    }

    #[test]
    fn log_batches_respect_item_and_size_limits() {
        let m = meta();
        let mut b = LogBatcher::default();
        let mut batches = Vec::new();
        for i in 0..2500u64 {
            let s = Snapshot { session_id: "s".into(), timestamp_ms: i, lines: vec![format!("line {i}")] };
            batches.extend(b.push(&log_entry(&m, &s)));
        }
        batches.extend(b.take());
        let sizes: Vec<usize> =
            batches.iter().map(|x| serde_json::from_slice::<Vec<Value>>(x).unwrap().len()).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);

        let big = "x".repeat(900_000);
        let mut b = LogBatcher::default();
        let mut out = Vec::new();
        for i in 0..12 {
            let s = Snapshot { session_id: "s".into(), timestamp_ms: i, lines: vec![big.clone()] };
            out.extend(b.push(&log_entry(&m, &s)));
        }
        out.extend(b.take());
        assert!(out.len() >= 3);
        for p in &out {
            assert!(p.len() <= MAX_LOG_PAYLOAD, "{}", p.len());
        }
        let total: usize = out.iter().map(|x| serde_json::from_slice::<Vec<Value>>(x).unwrap().len()).sum();
        assert_eq!(total, 12);
    }

    #[test]
    fn log_entry_fields_and_truncation() {
        let s = Snapshot { session_id: "s".into(), timestamp_ms: 5, lines: vec!["é".repeat(600_000)] };
        let v = log_entry(&meta(), &s);
        assert_eq!(v["service"], "ddcoterm");
        assert_eq!(v["ddsource"], "coterm");
        assert!(v["message"].as_str().unwrap().len() <= MAX_LOG_ENTRY);
    }

    #[test]
    fn gzip_round_trips() {
        let mut out = String::new();
        GzDecoder::new(gzip(b"[0.1, \"o\", \"hi\"]\n").as_slice()).read_to_string(&mut out).unwrap();
        assert_eq!(out, "[0.1, \"o\", \"hi\"]\n");
    }
}
