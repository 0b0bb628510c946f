//! The recorder's side of bastion mode: a connection to the agent, the session's [`Output`] that streams to
//! it, and the one-shot calls (`ping` for doctor, audit records, the nesting check's [`live_recorder`]).

use super::proto::{self, codes, Audit, End, Open, ProtoError, Reply, Request};
use crate::audit::AuditRecord;
use crate::model::{Output, ProcessEvent, SessionMeta, Snapshot};
use std::io::{BufReader, BufWriter};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one stored-and-acknowledged round trip may take before the connection is given up: an agent
/// that hangs must not hang the user's command forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the agent could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the recording agent at {socket} does not answer ({source}); is ddcoterm-agent running?", socket = socket.display())]
    Unreachable { socket: PathBuf, source: std::io::Error },
    #[error("this user may not connect to the recording agent at {socket} (permission denied: agent.socket_group says who may record here)", socket = socket.display())]
    Forbidden { socket: PathBuf },
    #[error("talking to the recording agent at {socket}: {source}", socket = socket.display())]
    Protocol { socket: PathBuf, source: ProtoError },
    #[error("the recording agent refused ({code}): {message}")]
    Refused { code: String, message: String },
}

impl AgentError {
    fn refused(r: &Reply) -> AgentError {
        AgentError::Refused {
            code: r.code.clone().unwrap_or_else(|| "refused".into()),
            message: r.message.clone().unwrap_or_default(),
        }
    }
}

/// One connection; after any protocol error it is broken for good (a late reply would answer the wrong
/// request).
pub struct AgentConn {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
    broken: bool,
}

impl AgentConn {
    pub fn connect(socket: &Path) -> Result<AgentConn, AgentError> {
        let unreachable = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::PermissionDenied => AgentError::Forbidden { socket: socket.to_path_buf() },
            _ => AgentError::Unreachable { socket: socket.to_path_buf(), source },
        };
        let stream = UnixStream::connect(socket).map_err(unreachable)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(unreachable)?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(unreachable)?;
        let reader = BufReader::new(stream.try_clone().map_err(unreachable)?);
        Ok(AgentConn { socket: socket.to_path_buf(), reader, writer: BufWriter::new(stream), broken: false })
    }

    /// Sends `req` and waits for its reply (which the agent sends once the frame is stored).
    pub fn call(&mut self, req: &Request) -> Result<Reply, AgentError> {
        let proto_err = |source| AgentError::Protocol { socket: self.socket.clone(), source };
        if self.broken {
            return Err(proto_err(ProtoError::Malformed("the connection broke earlier".into())));
        }
        let res =
            proto::write_request(&mut self.writer, req).and_then(|()| proto::read_reply(&mut self.reader));
        res.map_err(|e| {
            self.broken = true;
            proto_err(e)
        })
    }

    /// [`AgentConn::call`], a refusal turned into an error.
    pub fn call_ok(&mut self, req: &Request) -> Result<Reply, AgentError> {
        let r = self.call(req)?;
        if r.ok {
            Ok(r)
        } else {
            Err(AgentError::refused(&r))
        }
    }
}

/// What [`open_session`] got from the agent.
pub enum Opened {
    /// Stored: stream the session through this output; the agent writes the recording at `cast_path`.
    Recording { output: AgentOutput, cast_path: String },
    /// The agent is full and its `when_full` lets the command run unrecorded (the audit record is stored).
    RunUnrecorded { message: String },
}

/// Opens a session on the agent before anything runs: unreachable or refused means the command must not
/// run (the caller fails closed), except a full agent whose `when_full` is `run_unrecorded`.
pub fn open_session(socket: &Path, open: Open) -> Result<Opened, AgentError> {
    let mut conn = AgentConn::connect(socket)?;
    let session_id = open.meta.session_id.clone();
    let r = conn.call(&Request::Open(Box::new(open)))?;
    if r.ok {
        let cast_path = r.detail.unwrap_or_default();
        return Ok(Opened::Recording { output: AgentOutput { conn, session_id, told: false }, cast_path });
    }
    if r.code.as_deref() == Some(codes::FULL) && r.run_unrecorded {
        return Ok(Opened::RunUnrecorded { message: r.message.unwrap_or_default() });
    }
    Err(AgentError::refused(&r))
}

/// Bastion mode's start of a session (`guard/session.rs`): the open is stored by the agent before anything
/// runs. `Some((output, where the agent writes the recording))`; `None`: the agent is full and lets the
/// command run unrecorded (its audit record is already stored); an error (unreachable, refused) means the
/// command must not run.
pub fn session_output(
    settings: &crate::config::settings::AgentSettings,
    meta: &SessionMeta,
    shell: &Path,
) -> anyhow::Result<Option<(AgentOutput, String)>> {
    let open = Open {
        meta: meta.clone(),
        shell: shell.to_string_lossy().into_owned(),
        term: std::env::var("TERM").unwrap_or_default(),
    };
    match open_session(&settings.socket, open) {
        Ok(Opened::Recording { output, cast_path }) => Ok(Some((output, cast_path))),
        Ok(Opened::RunUnrecorded { message }) => {
            eprintln!("ddcoterm: {message}; running unrecorded (agent.when_full: run_unrecorded, audit record stored)");
            Ok(None)
        }
        Err(e) => Err(crate::error::Exit::refused(format!(
            "bastion mode: {e}; the command was not run (recording is required on this host)"
        ))
        .into()),
    }
}

/// The session's only output in bastion mode: every record goes to the agent, nothing to the user's disk.
pub struct AgentOutput {
    conn: AgentConn,
    session_id: String,
    /// The user was told that the agent stopped taking the session.
    told: bool,
}

impl AgentOutput {
    fn send(&mut self, req: Request) -> anyhow::Result<()> {
        let res = self.conn.call_ok(&req);
        if let Err(e) = &res {
            if !self.told {
                // Said on the terminal itself (the shim path has no log output); `\r` for a raw-mode terminal.
                eprint!(
                    "\r\nddcoterm: the recording agent did not store part of session {}: {e}\r\n",
                    self.session_id
                );
                self.told = true;
            }
        }
        res.map(|_| ()).map_err(|e| anyhow::anyhow!("session {}: {e}", self.session_id))
    }
}

impl Output for AgentOutput {
    /// The session was opened (and stored) by [`open_session`] before the command started.
    fn session_start(&mut self, _meta: &SessionMeta) -> anyhow::Result<()> {
        Ok(())
    }
    fn cast_chunk(&mut self, seq: u64, lines: &[u8]) -> anyhow::Result<()> {
        self.send(Request::Chunk { seq, lines: lines.to_vec() })
    }
    fn cast_chunk_vec(&mut self, seq: u64, lines: Vec<u8>) -> anyhow::Result<()> {
        self.send(Request::Chunk { seq, lines })
    }
    fn process_event(&mut self, event: &ProcessEvent) -> anyhow::Result<()> {
        self.send(Request::Event(event.clone()))
    }
    fn snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.send(Request::Snapshot(snapshot.clone()))
    }
    fn session_end(&mut self, _meta: &SessionMeta, exit_code: i32, duration_ms: u64) -> anyhow::Result<()> {
        self.send(Request::End(End { exit_code, duration_ms }))
    }
}

/// Stores an audit record with the agent (`audit.<what>`); returns once it is on the agent's disk.
pub fn send_audit(socket: &Path, what: &str, record: &AuditRecord) -> Result<(), AgentError> {
    let mut conn = AgentConn::connect(socket)?;
    conn.call_ok(&Request::Audit(Audit { what: what.into(), record: record.clone() })).map(|_| ())
}

/// Asks the agent who it thinks we are (doctor): `Reply::detail` is the user name, `pid` ours.
pub fn ping(socket: &Path) -> Result<Reply, AgentError> {
    AgentConn::connect(socket)?.call_ok(&Request::Ping)
}

/// The pid of the process streaming `session_id` to the agent (its `SO_PEERCRED` pid), or `None` when no live
/// session has that id (or it belongs to another user). For the nesting check: proof that an outer recorder
/// really exists, which an environment variable is not.
pub fn live_recorder(socket: &Path, session_id: &str) -> std::io::Result<Option<u32>> {
    let to_io = |e: AgentError| match e {
        AgentError::Unreachable { source, .. } => source,
        AgentError::Forbidden { .. } => {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
        }
        other => std::io::Error::other(other.to_string()),
    };
    let mut conn = AgentConn::connect(socket).map_err(to_io)?;
    let r = conn.call_ok(&Request::Live { session_id: session_id.into() }).map_err(to_io)?;
    Ok(r.pid)
}
