//! `ddcoterm agent`'s listener: one thread per connection, the peer identified by `SO_PEERCRED`, each request
//! handed to the [`Store`] and answered only once it is stored.

use super::proto::{self, codes, Reply, Request};
use super::store::{Peer, Session, Store};
use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections one uid may hold open at once: a user cannot exhaust the agent's threads, or its memory (a
/// frame in flight per connection, `MAX_FRAME` at most), for everyone.
pub const MAX_CONNECTIONS_PER_UID: usize = 32;
/// A peer that stops reading its replies is dropped after this long instead of holding a thread.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A live session: who streams it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Live {
    uid: u32,
    pid: u32,
}

/// The shared state of every connection.
pub struct Agent {
    store: Store,
    live: Mutex<HashMap<String, Live>>,
    connections: Mutex<HashMap<u32, usize>>,
}

impl Agent {
    pub fn new(store: Store) -> Agent {
        Agent { store, live: Mutex::new(HashMap::new()), connections: Mutex::new(HashMap::new()) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one request of `peer`; `session` is the connection's open session, if any.
    pub fn handle(&self, peer: &Peer, session: &mut Option<Session>, req: Request) -> Reply {
        let no_session = || Reply::refused(codes::BAD_REQUEST, "no session is open on this connection");
        match req {
            Request::Ping => Reply { pid: Some(peer.pid), detail: Some(peer.user.clone()), ..Reply::ok() },
            Request::Live { session_id } => {
                let live = self.live.lock().ok().and_then(|l| l.get(&session_id).copied());
                // Only the session's own user learns that it exists.
                let pid = live.filter(|l| l.uid == peer.uid).map(|l| l.pid);
                Reply { pid, ..Reply::ok() }
            }
            Request::Audit(a) => match self.store.store_audit(peer, a) {
                Ok(()) => Reply::ok(),
                Err(r) => r,
            },
            Request::Open(open) => {
                if session.is_some() {
                    return Reply::refused(
                        codes::BAD_REQUEST,
                        "a session is already open on this connection",
                    );
                }
                match self.store.open_session(peer, *open) {
                    Ok(s) => {
                        if let Ok(mut l) = self.live.lock() {
                            l.insert(s.id.clone(), Live { uid: peer.uid, pid: peer.pid });
                        }
                        let reply = Reply { detail: Some(s.cast_path.display().to_string()), ..Reply::ok() };
                        *session = Some(s);
                        reply
                    }
                    Err(r) => r,
                }
            }
            Request::Chunk { seq, lines } => match session {
                Some(s) => self.store.chunk(s, seq, lines),
                None => no_session(),
            },
            Request::Event(ev) => match session {
                Some(s) => self.store.event(s, ev),
                None => no_session(),
            },
            Request::Snapshot(snap) => match session {
                Some(s) => self.store.snapshot(s, snap),
                None => no_session(),
            },
            Request::End(end) => match session {
                Some(s) => {
                    let r = self.store.end(s, end);
                    if s.ended {
                        self.forget(&s.id);
                    }
                    r
                }
                None => no_session(),
            },
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(id);
        }
    }

    /// The connection is gone: a session it left open is finalised from what was stored.
    fn closed(&self, peer: &Peer, session: Option<Session>) {
        if let Some(mut s) = session {
            if !s.ended {
                self.store.finalise_lost(&mut s, peer.pid);
            }
            self.forget(&s.id);
        }
    }

    fn admit(&self, uid: u32) -> bool {
        let Ok(mut c) = self.connections.lock() else { return false };
        let n = c.entry(uid).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_UID {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, uid: u32) {
        if let Ok(mut c) = self.connections.lock() {
            if let Some(n) = c.get_mut(&uid) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// The peer's credentials as the kernel recorded them at `connect(2)`.
pub fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let c = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    Ok(Peer::new(c.uid(), c.gid(), c.pid() as u32))
}

/// Serves one connection until the peer closes it (or breaks the protocol).
pub fn serve_connection(agent: &Agent, stream: UnixStream) {
    let peer = match peer_of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("connection without peer credentials refused: {e}");
            return;
        }
    };
    if !agent.admit(peer.uid) {
        tracing::warn!(uid = peer.uid, "too many connections from this uid; refused");
        // The refusal answers the peer's first request: closing before reading it would leave the peer a
        // broken pipe instead of the reason.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = proto::read_request(&mut BufReader::new(&stream));
        let mut w = &stream;
        let _ = proto::write_reply(
            &mut w,
            &Reply::refused(codes::FULL, format!("too many connections from uid {}", peer.uid)),
        );
        return;
    }
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut session = None;
    {
        let mut reader = BufReader::new(&stream);
        let mut writer = BufWriter::new(&stream);
        loop {
            let req = match proto::read_request(&mut reader) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(user = %peer.user, pid = peer.pid, "dropping connection: {e}");
                    let _ =
                        proto::write_reply(&mut writer, &Reply::refused(codes::BAD_REQUEST, e.to_string()));
                    break;
                }
            };
            let reply = agent.handle(&peer, &mut session, req);
            if proto::write_reply(&mut writer, &reply).is_err() {
                break;
            }
        }
    }
    agent.closed(&peer, session);
    agent.release(peer.uid);
}

/// Binds the socket: a stale socket file is replaced (anything else at the path is an error), mode 0660 with
/// `group` as its group, else 0666 (identity comes from the peer credentials, not from who may connect).
pub fn bind(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket; refusing to replace it", path.display());
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("removing the stale {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| anyhow::anyhow!("binding {}: {e}", path.display()))?;
    let mode = match group {
        Some(g) => {
            let gid = crate::nss::group_by_name(g)?
                .ok_or_else(|| anyhow::anyhow!("agent.socket_group: no group named `{g}`"))?
                .gid;
            nix::unistd::chown(path, None, Some(gid))
                .map_err(|e| anyhow::anyhow!("giving {} to group {g}: {e}", path.display()))?;
            0o660
        }
        None => 0o666,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: UnixListener, agent: Arc<Agent>) -> anyhow::Result<()> {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let a = agent.clone();
                let spawned = std::thread::Builder::new()
                    .name("ddcoterm-agent-conn".into())
                    .stack_size(256 * 1024)
                    .spawn(move || serve_connection(&a, stream));
                if let Err(e) = spawned {
                    tracing::error!("cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}
