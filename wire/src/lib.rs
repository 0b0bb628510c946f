//! JSON bodies of the session server API v1 (DESIGN.md §12), shared by the client's uploader and the server.
//!
//! Serde only, so the client can use these types without linking any of the server's dependencies. Field
//! names are the wire contract: renaming one is an API change.

use serde::{Deserialize, Serialize};

/// Request header carrying the hash of what came before a chunk: on chunk 0 the [`chain_root`] of the
/// session's create body, on every later chunk the [`chunk_hash`] of chunk `seq - 1`. The body stays the
/// cast's bytes, so the chain is checked without parsing the recording, and the metadata the session was
/// created with (user, host, command) is bound to its recording.
pub const PREV_HASH_HEADER: &str = "x-ddcoterm-prev-sha256";

/// The root of a session's hash chain: SHA-256 (lowercase hex) of the exact create request body as sent
/// (after gzip decoding). Chunk 0 carries it in [`PREV_HASH_HEADER`].
pub fn chain_root(create_body: &[u8]) -> String {
    sha256_hex(create_body)
}

/// A chunk's link in the chain: SHA-256 (lowercase hex) of its decoded body. Chunk `seq + 1` carries it.
pub fn chunk_hash(chunk_body: &[u8]) -> String {
    sha256_hex(chunk_body)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

/// `POST /api/v1/sessions`: the session's metadata as the host saw it at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub id: String,
    /// RFC 3339.
    pub started_at: String,
    /// The host's own claim; the server also stamps the host name bound to the token.
    pub host: String,
    pub user: String,
    pub command: String,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub approval: Option<String>,
    #[serde(default)]
    pub ssh: Option<SshOrigin>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The matching rule's message to the user (redacted by the client), shown on the session page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_message: Option<String>,
    /// Who approved the command (the Datadog handle or e-mail on the case): the server lets the user with
    /// this name or e-mail open the session read-only (DESIGN.md §12 per-session grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The incident linked to the run, and its responders, who may open the session read-only too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentLink>,
    /// Why break glass was used (redacted by the client), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
}

/// An incident linked to a session: its public number (or id) and the identities (Datadog handles or
/// e-mails) of its commander and responders when the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentLink {
    pub id: String,
    #[serde(default)]
    pub responders: Vec<String>,
}

/// Where an SSH session came from (`ddcoterm ssh-login`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshOrigin {
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Answer to a create: the link to show the user and how far the server already holds the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAnswer {
    pub id: String,
    pub url: String,
    /// Highest seq with every lower seq stored; `None` until chunk 0 is stored.
    pub committed_seq: Option<u64>,
}

/// Answer to a chunk PUT, an events POST and an end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitAnswer {
    pub committed_seq: Option<u64>,
    /// `live`, `complete` or `abandoned`.
    pub state: String,
}

/// One process event: a command typed in a recorded shell (shell markers) or the wrapped command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessEvent {
    /// The command line, already redacted by the host.
    pub command: String,
    #[serde(default)]
    pub cwd: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// `POST /api/v1/sessions/{id}/end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndSession {
    /// RFC 3339.
    pub ended_at: String,
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// The last chunk's seq: the session completes once chunks 0..=last_seq are stored.
    pub last_seq: u64,
}

/// One session as the read API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    /// `live`, `complete` or `abandoned`.
    pub state: String,
    pub url: String,
    /// The host name bound to the token that created the session (the server's word).
    pub host: String,
    /// The host name the client claimed (kept beside, never trusted).
    pub claimed_host: Option<String>,
    pub user: Option<String>,
    pub command: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub exit_status: Option<i32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub rule: Option<String>,
    pub actions: Vec<String>,
    pub break_glass: bool,
    pub approval: Option<String>,
    pub ssh: Option<SshOrigin>,
    pub tags: Vec<String>,
    /// The matching rule's message to the user.
    #[serde(default)]
    pub rule_message: Option<String>,
    /// Who approved the command (also from the `approved_by:`/`approver:` tags of older clients).
    #[serde(default)]
    pub approver: Option<String>,
    #[serde(default)]
    pub incident: Option<IncidentLink>,
    #[serde(default)]
    pub break_glass_reason: Option<String>,
    /// When the server first heard of the session, RFC 3339 (server clock).
    pub received_at: String,
    /// When the server last received anything for it, RFC 3339 (server clock).
    pub last_activity: String,
    pub committed_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub bytes: u64,
    pub legal_hold: bool,
    /// With a search (`q=`): where in the output it first matched, so a reviewer opens the player there.
    /// Absent without a search, when only the command matched, or for output indexed before times were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_match: Option<SearchMatch>,
}

/// The first place a search matched a session's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Seconds into the recording at which the matching output has been printed.
    pub t: f64,
    /// The normalised words around the match (lower case, punctuation as spaces), for showing it.
    pub snippet: String,
}

/// `GET /api/v1/sessions/{id}`: metadata and process events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionInfo,
    pub events: Vec<ProcessEvent>,
}

/// `GET /api/v1/sessions`: one page, newest first; pass `next_cursor` as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionInfo>,
    pub next_cursor: Option<String>,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable (`bad_request`, `unauthorized`, `conflict`, ...).
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_unknown_fields_so_typos_fail_loudly() {
        let err = serde_json::from_str::<CreateSession>(
            r#"{"id":"a","started_at":"2026-01-01T00:00:00Z","host":"h","user":"u","command":"c","width":80,"height":24,"colour":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(chunk_hash(b"abc"), abc);
        assert_eq!(chain_root(b"abc"), abc);
    }

    #[test]
    fn create_fills_optional_fields() {
        let c: CreateSession = serde_json::from_str(
            r#"{"id":"a","started_at":"2026-01-01T00:00:00Z","host":"h","user":"u","command":"c","width":80,"height":24}"#,
        )
        .unwrap();
        assert!(c.actions.is_empty() && !c.break_glass && c.ssh.is_none());
    }
}
