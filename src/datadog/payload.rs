//! Request shapes: events, log batches and our session endpoints, built from the shared model (pure, no I/O).

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

/// `source_type_name` of every event we send.
pub const SOURCE_TYPE: &str = "coterm_process_info";

/// Every call ddcoterm makes for a session; `request(body)` gives path, API, content type and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `POST /api/v1/events` (process events, audit events).
    Event,
    /// `POST /api/v2/logs` (gzip JSON array).
    Logs,
    /// `POST /api/unstable/coterm/sessions`.
    SessionCreate,
    /// `PUT /api/unstable/coterm/sessions/{id}/chunks/{seq}` (gzip asciicast lines, idempotent by seq).
    SessionChunk { session_id: String, seq: u64 },
    /// `POST /api/unstable/coterm/sessions/{id}/end`.
    SessionEnd { session_id: String },
}

impl Call {
    pub fn request(&self, body: Vec<u8>) -> Request {
        let (api, method, path, content_type, gzip) = match self {
            Call::Event => (Api::Api, Method::Post, "/api/v1/events".to_string(), "application/json", false),
            Call::Logs => (Api::Logs, Method::Post, "/api/v2/logs".to_string(), "application/json", true),
            Call::SessionCreate => (
                Api::Api,
                Method::Post,
                "/api/unstable/coterm/sessions".to_string(),
                "application/json",
                false,
            ),
            Call::SessionChunk { session_id, seq } => (
                Api::Api,
                Method::Put,
                format!("/api/unstable/coterm/sessions/{}/chunks/{seq}", path_segment(session_id)),
                "application/x-asciicast",
                true,
            ),
            Call::SessionEnd { session_id } => (
                Api::Api,
                Method::Post,
                format!("/api/unstable/coterm/sessions/{}/end", path_segment(session_id)),
                "application/json",
                false,
            ),
        };
        Request { api, method, path, content_type, gzip, app_key: false, body }
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

/// The session create body (our endpoint): the metadata the cast header also carries.
pub fn session_create(meta: &SessionMeta) -> Vec<u8> {
    let mut body = json!({
        "session_id": meta.session_id,
        "command": meta.command,
        "user": meta.user,
        "hostname": meta.hostname,
        "cwd": meta.cwd,
        "actions": meta.actions,
        "rule": meta.rule,
        "started_at": meta.started_at,
        "width": meta.width,
        "height": meta.height,
        "tags": meta.tags,
    });
    if let Some(ssh) = &meta.ssh {
        body["ssh"] = json!(ssh);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The session end body: how it ended and how many chunks the viewer should expect.
pub fn session_end(exit_code: i32, duration_ms: u64, chunks: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({ "exit_code": exit_code, "duration_ms": duration_ms, "chunks": chunks }))
        .unwrap_or_default()
}

/// The end body of a session finished by recovery after its recorder died: the exit status is `null` when the
/// recorder did not write it, and `recovered` says the end time is the last recorded event's.
pub fn session_end_recovered(exit_code: Option<i32>, duration_ms: u64, chunks: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "exit_code": exit_code,
        "duration_ms": duration_ms,
        "chunks": chunks,
        "recovered": true,
    }))
    .unwrap_or_default()
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
    fn session_create_carries_the_ssh_origin_only_under_sshd() {
        let v: Value = serde_json::from_slice(&session_create(&meta())).unwrap();
        assert_eq!(v["user"], "ana");
        assert!(v.get("ssh").is_none(), "{v}");
        let mut m = meta();
        m.ssh = Some(crate::model::SshOrigin {
            client_addr: "2001:db8::5".into(),
            client_port: 40000,
            server_addr: "10.0.0.1".into(),
            server_port: 22,
            auth_method: Some("publickey".into()),
            key_type: Some("ssh-ed25519".into()),
            key_fingerprint: Some("SHA256:Eic043cFKZcIsHM3Bq9AOdfK/dJ+FZRwTL/VWC0yZVo".into()),
        });
        let v: Value = serde_json::from_slice(&session_create(&m)).unwrap();
        assert_eq!(v["ssh"]["client_addr"], "2001:db8::5");
        assert_eq!(v["ssh"]["key_fingerprint"], "SHA256:Eic043cFKZcIsHM3Bq9AOdfK/dJ+FZRwTL/VWC0yZVo");
    }

    #[test]
    fn calls_map_to_exact_paths_and_headers() {
        let cases = [
            (Call::Event, Api::Api, Method::Post, "/api/v1/events", false),
            (Call::Logs, Api::Logs, Method::Post, "/api/v2/logs", true),
            (Call::SessionCreate, Api::Api, Method::Post, "/api/unstable/coterm/sessions", false),
            (
                Call::SessionChunk { session_id: "s1".into(), seq: 7 },
                Api::Api,
                Method::Put,
                "/api/unstable/coterm/sessions/s1/chunks/7",
                true,
            ),
            (
                Call::SessionEnd { session_id: "s1".into() },
                Api::Api,
                Method::Post,
                "/api/unstable/coterm/sessions/s1/end",
                false,
            ),
            (
                Call::SessionEnd { session_id: "a/../b".into() },
                Api::Api,
                Method::Post,
                "/api/unstable/coterm/sessions/a%2F..%2Fb/end",
                false,
            ),
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
