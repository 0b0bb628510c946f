//! The recorder <-> agent wire format: length-prefixed frames, one reply per request frame.
//!
//! A frame is `u32` big-endian length of what follows, one type byte, then the payload. Requests carry JSON
//! (or, for a chunk, a `u64` big-endian seq then the asciicast lines as they are); every request gets exactly
//! one [`Reply`] frame, sent only after what it carried is on disk (fsync'd): the recorder forgets nothing it
//! was not told is stored.

use crate::audit::AuditRecord;
use crate::model::{ProcessEvent, SessionMeta, Snapshot};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The largest frame either side accepts: a chunk is at most `recorder::fanout::CHUNK_BYTES` (1 MiB) plus
/// one event line, and a line is at most 6 times [`MAX_MERGE_BYTES`] (every byte escaped as `\u00XX`);
/// anything bigger is a broken or hostile peer, refused before allocating.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// `recording.merge_bytes` is capped at this in bastion mode, so that a user's setting cannot produce a
/// chunk the agent refuses (and the rest of the session unrecorded).
pub const MAX_MERGE_BYTES: usize = 512 * 1024;

const T_OPEN: u8 = 1;
const T_CHUNK: u8 = 2;
const T_EVENT: u8 = 3;
const T_SNAPSHOT: u8 = 4;
const T_AUDIT: u8 = 5;
const T_END: u8 = 6;
const T_LIVE: u8 = 7;
const T_PING: u8 = 8;
const T_REPLY: u8 = 128;

/// Opens a session. The agent overwrites `meta.user` and `meta.hostname` with what it knows itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Open {
    pub meta: SessionMeta,
    /// For the cast header's `env.SHELL` / `env.TERM`.
    pub shell: String,
    pub term: String,
}

/// An audit record (`audit.<what>` in the spool), e.g. a break glass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub what: String,
    pub record: AuditRecord,
}

/// The session's end, as the recorder saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub exit_code: i32,
    pub duration_ms: u64,
}

/// What a recorder (or `doctor`, or the nesting check) sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Boxed: the session metadata is most of the enum's size, and every other request is small.
    Open(Box<Open>),
    Chunk {
        seq: u64,
        lines: Vec<u8>,
    },
    Event(ProcessEvent),
    Snapshot(Snapshot),
    Audit(Audit),
    End(End),
    /// Is this session live, and which pid streams it? Answered only to the session's own user.
    Live {
        session_id: String,
    },
    Ping,
}

/// The agent's answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// On refusal: [`codes`]; the recorder decides what to do from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Live`: the pid streaming the session. `Ping`: the peer's own pid as the agent sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `Open`: where the agent writes the recording. `Ping`: the user name the agent files sessions under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A `full` refusal: the agent's `when_full` says the command may run unrecorded (audit already stored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_unrecorded: bool,
}

/// Refusal codes.
pub mod codes {
    /// Storage or the user's quota is exhausted; nothing was evicted.
    pub const FULL: &str = "full";
    /// The session id is already used (by this or another peer).
    pub const ID_TAKEN: &str = "id_taken";
    /// The frame makes no sense here (bad JSON, chunk out of order, no open session).
    pub const BAD_REQUEST: &str = "bad_request";
    /// The agent could not store it (disk error): nothing was acknowledged.
    pub const IO: &str = "io";
}

impl Reply {
    pub fn ok() -> Reply {
        Reply { ok: true, ..Reply::default() }
    }
    pub fn refused(code: &str, message: impl Into<String>) -> Reply {
        Reply { ok: false, code: Some(code.into()), message: Some(message.into()), ..Reply::default() }
    }
}

/// Protocol errors: the connection is unusable after one.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooBig(usize),
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), ProtoError> {
    let len = payload.len() + 1;
    if len > MAX_FRAME {
        return Err(ProtoError::TooBig(len));
    }
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&(len as u32).to_be_bytes());
    head[4] = kind;
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
fn read_frame(r: &mut impl Read) -> Result<Option<(u8, Vec<u8>)>, ProtoError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..])?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooBig(len));
    }
    if len == 0 {
        return Err(ProtoError::Malformed("empty frame".into()));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind)?;
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload)?;
    Ok(Some((kind[0], payload)))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T, ProtoError> {
    serde_json::from_slice(payload).map_err(|e| ProtoError::Malformed(format!("{what}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Writes one request frame.
pub fn write_request(w: &mut impl Write, req: &Request) -> Result<(), ProtoError> {
    match req {
        Request::Open(o) => write_frame(w, T_OPEN, &to_json(o)),
        Request::Chunk { seq, lines } => {
            let mut p = Vec::with_capacity(8 + lines.len());
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(lines);
            write_frame(w, T_CHUNK, &p)
        }
        Request::Event(e) => write_frame(w, T_EVENT, &to_json(e)),
        Request::Snapshot(s) => write_frame(w, T_SNAPSHOT, &to_json(s)),
        Request::Audit(a) => write_frame(w, T_AUDIT, &to_json(a)),
        Request::End(e) => write_frame(w, T_END, &to_json(e)),
        Request::Live { session_id } => write_frame(w, T_LIVE, session_id.as_bytes()),
        Request::Ping => write_frame(w, T_PING, &[]),
    }
}

/// Reads one request frame; `Ok(None)` when the peer closed the connection between frames.
pub fn read_request(r: &mut impl Read) -> Result<Option<Request>, ProtoError> {
    let Some((kind, p)) = read_frame(r)? else { return Ok(None) };
    let req = match kind {
        T_OPEN => Request::Open(Box::new(json("open", &p)?)),
        T_CHUNK => {
            if p.len() < 8 {
                return Err(ProtoError::Malformed("chunk frame shorter than its seq".into()));
            }
            let seq = u64::from_be_bytes(p[..8].try_into().unwrap_or_default());
            let mut lines = p;
            lines.drain(..8);
            Request::Chunk { seq, lines }
        }
        T_EVENT => Request::Event(json("process event", &p)?),
        T_SNAPSHOT => Request::Snapshot(json("snapshot", &p)?),
        T_AUDIT => Request::Audit(json("audit", &p)?),
        T_END => Request::End(json("end", &p)?),
        T_LIVE => Request::Live {
            session_id: String::from_utf8(p).map_err(|_| ProtoError::Malformed("session id".into()))?,
        },
        T_PING => Request::Ping,
        other => return Err(ProtoError::UnknownType(other)),
    };
    Ok(Some(req))
}

pub fn write_reply(w: &mut impl Write, reply: &Reply) -> Result<(), ProtoError> {
    write_frame(w, T_REPLY, &to_json(reply))
}

/// Reads the reply to the request just sent; the agent closing the connection instead is an error.
pub fn read_reply(r: &mut impl Read) -> Result<Reply, ProtoError> {
    match read_frame(r)? {
        Some((T_REPLY, p)) => json("reply", &p),
        Some((other, _)) => Err(ProtoError::UnknownType(other)),
        None => Err(ProtoError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the agent closed the connection without answering",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: Request) {
        let mut buf = Vec::new();
        write_request(&mut buf, &req).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_request(&mut r).unwrap(), Some(req));
        assert!(read_request(&mut r).unwrap().is_none(), "one frame, nothing after it");
    }

    #[test]
    fn every_request_survives_the_wire() {
        let meta =
            SessionMeta { session_id: "s1".into(), command: "kubectl get pods".into(), ..Default::default() };
        round_trip(Request::Open(Box::new(Open { meta, shell: "/bin/bash".into(), term: "xterm".into() })));
        round_trip(Request::Chunk { seq: 7, lines: b"[0.1, \"o\", \"hi\"]\n".to_vec() });
        round_trip(Request::Chunk { seq: u64::MAX, lines: Vec::new() });
        round_trip(Request::Snapshot(Snapshot {
            session_id: "s1".into(),
            timestamp_ms: 3,
            lines: vec!["$ ls".into()],
        }));
        round_trip(Request::Audit(Audit { what: "unrecorded".into(), record: AuditRecord::default() }));
        round_trip(Request::End(End { exit_code: -1, duration_ms: 9 }));
        round_trip(Request::Live { session_id: "s1".into() });
        round_trip(Request::Ping);
    }

    #[test]
    fn replies_survive_the_wire() {
        let mut buf = Vec::new();
        let r = Reply { pid: Some(42), run_unrecorded: true, ..Reply::refused(codes::FULL, "no room") };
        write_reply(&mut buf, &r).unwrap();
        assert_eq!(read_reply(&mut &buf[..]).unwrap(), r);
        assert!(read_reply(&mut &b""[..]).is_err(), "a closed connection is no answer");
    }

    #[test]
    fn hostile_frames_are_refused_before_allocating() {
        let mut huge = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        huge.push(T_PING);
        assert!(matches!(read_request(&mut &huge[..]), Err(ProtoError::TooBig(_))));
        assert!(matches!(read_request(&mut &[0, 0, 0, 0][..]), Err(ProtoError::Malformed(_))));
        assert!(matches!(read_request(&mut &[0, 0, 0, 1, 99][..]), Err(ProtoError::UnknownType(99))));
        assert!(matches!(read_request(&mut &[0, 0, 0, 3, T_CHUNK, 0, 0][..]), Err(ProtoError::Malformed(_))));
        assert!(matches!(
            read_request(&mut &[0, 0, 0, 3, T_OPEN, b'{', b'x'][..]),
            Err(ProtoError::Malformed(_))
        ));
        // A frame cut short is an error, not a silently shorter frame.
        assert!(read_request(&mut &[0, 0, 0, 9, T_CHUNK, 0][..]).is_err());
    }
}
