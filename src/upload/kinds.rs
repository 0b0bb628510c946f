//! Record kinds and their builders: what a session, a process event, a log batch or an audit record looks like
//! in the spool, so that a resend (flush, recovery, agent) sends exactly the bytes of the first attempt.
//!
//! Session-server kinds (DESIGN.md §12) carry `session_id` in their meta and sit in the session's spool group
//! (FIFO: the create before chunk 0 before chunk 1...). Every chunk carries `seq` and `prev_sha256` (the hash
//! chain link, fixed at write time) and is stored plain; the sender gzips it just before the upload.

use crate::datadog::payload;
use crate::model::{ProcessEvent, SessionMeta};
use crate::spool::{Class, Record};
use ddcoterm_wire as wire;

/// `POST /api/v1/sessions`; body: the exact [`create_body`] bytes (chunk 0's `prev_sha256` is their hash).
pub const KIND_SESSION_CREATE: &str = "session.create";
/// `PUT /api/v1/sessions/{id}/chunks/{seq}`; body: asciicast lines, plain (see [`META_ENCODING`]).
pub const KIND_SESSION_CHUNK: &str = "session.chunk";
/// `POST /api/v1/sessions/{id}/events`; body: JSON array of wire `ProcessEvent`.
pub const KIND_SESSION_EVENTS: &str = "session.events";
/// `POST /api/v1/sessions/{id}/end`; body: wire `EndSession`.
pub const KIND_SESSION_END: &str = "session.end";
/// Datadog Events API, one finished command (`coterm_process_info`).
pub const KIND_EVENT: &str = "event.process";
/// Datadog Events API, one recorded session (`coterm_session`), sent at its end.
pub const KIND_SESSION_EVENT: &str = "event.session";
/// Datadog Logs API, a gzip JSON array of terminal snapshots.
pub const KIND_LOGS: &str = "logs.batch";
/// `audit.<what>` records are written by `audit.rs` (body: `AuditEvent` JSON), sent as Events API events.
pub const KIND_AUDIT_PREFIX: &str = "audit.";

/// Meta keys.
pub const META_SESSION: &str = "session_id";
pub const META_SEQ: &str = "seq";
/// SHA-256 hex of what precedes the chunk (wire `PREV_HASH_HEADER`): computed once, when the chunk is written.
pub const META_PREV: &str = "prev_sha256";
/// How a chunk body is stored: [`ENCODING_PLAIN`] is the only value this version writes or reads.
pub const META_ENCODING: &str = "encoding";
pub const ENCODING_PLAIN: &str = "plain";

/// A record of session `session_id`: ordered in its group, after its create.
pub fn session_record(kind: &str, class: Class, session_id: &str, body: Vec<u8>) -> Record {
    Record::new(kind, class, body).in_group(group_of(session_id)).with_meta(META_SESSION, session_id)
}

/// Session ids are uuids; anything else is made safe for a spool group name.
pub fn group_of(session_id: &str) -> String {
    let g: String = session_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(100)
        .collect();
    if g.is_empty() {
        "session".into()
    } else {
        g
    }
}

/// RFC 3339 (UTC, seconds) of unix milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The create body: a pure function of the session's metadata, so that a recovery or an agent restart rebuilds
/// the same bytes (and so the same chain root) from the same `SessionMeta`.
pub fn create_body(meta: &SessionMeta) -> Vec<u8> {
    let body = wire::CreateSession {
        id: meta.session_id.clone(),
        started_at: rfc3339_ms(meta.started_at.saturating_mul(1000)),
        host: meta.hostname.clone(),
        user: meta.user.clone(),
        command: meta.command.clone(),
        width: meta.width.into(),
        height: meta.height.into(),
        rule: meta.rule.clone(),
        actions: meta.actions.iter().map(|a| a.as_str().to_string()).collect(),
        break_glass: meta.tags.iter().any(|t| t == "break_glass:true"),
        approval: meta.tags.iter().find_map(|t| {
            t.strip_prefix("approval_case:").or_else(|| t.strip_prefix("approval:")).map(str::to_string)
        }),
        ssh: meta.ssh.as_ref().map(|s| wire::SshOrigin {
            client: Some(format!("{}:{}", s.client_addr, s.client_port)),
            fingerprint: s.key_fingerprint.clone(),
        }),
        tags: meta.tags.clone(),
        rule_message: meta.review.rule_message.clone(),
        approver: meta.review.approver.clone(),
        incident: meta
            .review
            .incident
            .as_ref()
            .map(|id| wire::IncidentLink { id: id.clone(), responders: meta.review.responders.clone() }),
        break_glass_reason: meta.review.break_glass_reason.clone(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The session's create record and its hash-chain root (chunk 0's `prev_sha256`).
pub fn create_record(meta: &SessionMeta) -> (Record, String) {
    let body = create_body(meta);
    let root = wire::chain_root(&body);
    (session_record(KIND_SESSION_CREATE, Class::Normal, &meta.session_id, body), root)
}

/// Chunk `seq` (0 = the asciicast header line, then event lines) with the hash of what precedes it.
pub fn chunk_record(session_id: &str, seq: u64, lines: Vec<u8>, prev_sha256: &str) -> Record {
    session_record(KIND_SESSION_CHUNK, Class::Bulk, session_id, lines)
        .with_meta(META_SEQ, seq.to_string())
        .with_meta(META_PREV, prev_sha256)
        .with_meta(META_ENCODING, ENCODING_PLAIN)
}

/// The hash chain of one session as its chunks are written: which seq comes next and what it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev: String,
}

impl Chain {
    /// A chain whose chunk 0 comes next, rooted in the create body's hash.
    pub fn new(root: String) -> Chain {
        Chain { next_seq: 0, prev: root }
    }

    /// Resumes after chunk `last_seq` whose body hashed to `last_hash` (agent restart, recovery).
    pub fn resume(last_seq: u64, last_hash: String) -> Chain {
        Chain { next_seq: last_seq + 1, prev: last_hash }
    }

    /// The next chunk's record; advances the chain over `lines`.
    pub fn chunk(&mut self, session_id: &str, lines: Vec<u8>) -> Record {
        let seq = self.next_seq;
        let hash = wire::chunk_hash(&lines);
        let rec = chunk_record(session_id, seq, lines, &self.prev);
        self.next_seq += 1;
        self.prev = hash;
        rec
    }

    /// The seq the next chunk gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The `prev_sha256` the next chunk carries.
    pub fn prev(&self) -> &str {
        &self.prev
    }
}

/// A process event as the session server takes it.
pub fn wire_event(ev: &ProcessEvent) -> wire::ProcessEvent {
    wire::ProcessEvent {
        command: ev.command.clone(),
        cwd: Some(ev.cwd.clone()).filter(|c| !c.is_empty()),
        started_at: Some(rfc3339_ms(ev.started_at_ms)),
        exit_code: ev.exit_code,
        duration_ms: Some(ev.duration_ms),
    }
}

/// One process event for the session server (its own record: events are idempotent on the server).
pub fn events_record(ev: &ProcessEvent) -> Record {
    let body = serde_json::to_vec(&[wire_event(ev)]).unwrap_or_default();
    session_record(KIND_SESSION_EVENTS, Class::Normal, &ev.session_id, body)
}

/// The end: complete once chunks `0..=last_seq` are stored; `exit_status` is `None` when unknown (recovery).
pub fn end_record(session_id: &str, ended_at_ms: u64, exit_status: Option<i32>, last_seq: u64) -> Record {
    let body = wire::EndSession { ended_at: rfc3339_ms(ended_at_ms), exit_status, last_seq };
    session_record(KIND_SESSION_END, Class::Normal, session_id, serde_json::to_vec(&body).unwrap_or_default())
}

/// The Datadog event of one finished command.
pub fn datadog_event_record(ev: &ProcessEvent) -> Record {
    Record::new(KIND_EVENT, Class::Normal, payload::process_event(ev))
}

/// The Datadog event of one recorded session (`coterm_session`), with the server link when there is one.
pub fn datadog_session_record(
    meta: &SessionMeta,
    exit_code: Option<i32>,
    duration_ms: u64,
    link: Option<&str>,
) -> Record {
    Record::new(KIND_SESSION_EVENT, Class::Normal, payload::session_event(meta, exit_code, duration_ms, link))
}

/// A gzip JSON array of log entries.
pub fn logs_record(batch: &[u8]) -> Record {
    Record::new(KIND_LOGS, Class::Normal, payload::gzip(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;

    fn meta() -> SessionMeta {
        SessionMeta {
            session_id: "0193b7e2-aaaa".into(),
            command: "kubectl get pods".into(),
            user: "ana".into(),
            hostname: "bastion-1".into(),
            actions: vec![Action::Record],
            started_at: 1_700_000_000,
            width: 80,
            height: 24,
            tags: vec!["break_glass:true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn create_body_is_the_wire_shape_and_deterministic() {
        let b = create_body(&meta());
        let c: wire::CreateSession = serde_json::from_slice(&b).unwrap();
        assert_eq!(c.started_at, "2023-11-14T22:13:20Z");
        assert_eq!((c.width, c.height, c.break_glass), (80, 24, true));
        assert_eq!(c.actions, vec!["record"]);
        assert_eq!(create_body(&meta()), b, "a rebuild gives the same bytes, so the same chain root");
        assert!(
            !String::from_utf8(b).unwrap().contains("approver"),
            "no review fields when there is nothing to say"
        );
    }

    #[test]
    fn create_body_carries_the_approval_and_its_grants() {
        let mut m = meta();
        m.tags = vec!["approval_case:COTERM-7".into(), "approved_by:bob@example.com".into()];
        m.review = crate::model::Review {
            rule_message: Some("prod: be careful".into()),
            approver: Some("bob@example.com".into()),
            incident: Some("42".into()),
            responders: vec!["lead@example.com".into()],
            break_glass_reason: None,
        };
        let c: wire::CreateSession = serde_json::from_slice(&create_body(&m)).unwrap();
        assert_eq!(c.approval.as_deref(), Some("COTERM-7"));
        assert_eq!(c.approver.as_deref(), Some("bob@example.com"));
        assert_eq!(c.rule_message.as_deref(), Some("prod: be careful"));
        let inc = c.incident.unwrap();
        assert_eq!(
            (inc.id.as_str(), inc.responders.as_slice()),
            ("42", &["lead@example.com".to_string()][..])
        );
    }

    #[test]
    fn chain_links_each_chunk_to_the_one_before() {
        let (create, root) = create_record(&meta());
        assert_eq!(root, wire::chain_root(&create.body));
        let mut chain = Chain::new(root.clone());
        let c0 = chain.chunk("s", b"{\"version\":2}\n".to_vec());
        let c1 = chain.chunk("s", b"[0.1,\"o\",\"x\"]\n".to_vec());
        assert_eq!(c0.meta[META_SEQ], "0");
        assert_eq!(c0.meta[META_PREV], root);
        assert_eq!(c1.meta[META_SEQ], "1");
        assert_eq!(c1.meta[META_PREV], wire::chunk_hash(b"{\"version\":2}\n"));
        assert_eq!(c1.meta[META_ENCODING], ENCODING_PLAIN);
        let resumed = Chain::resume(1, wire::chunk_hash(&c1.body));
        assert_eq!(resumed, chain);
    }

    #[test]
    fn group_names_are_safe() {
        assert_eq!(group_of("0193b7e2-aaaa"), "0193b7e2-aaaa");
        assert_eq!(group_of("a/b c"), "a_b_c");
        assert_eq!(group_of(""), "session");
    }
}
