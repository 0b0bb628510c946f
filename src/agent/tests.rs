//! The agent end to end in one process: a real unix socket, a real state dir, the recorder's client.

use super::client::{self, open_session, AgentConn, Opened};
use super::proto::{codes, Open, Request};
use super::server::{self, Agent};
use super::store::{Destinations, Limits, Store};
use crate::config::settings::WhenFull;
use crate::model::{Output, ProcessEvent, SessionMeta};
use crate::spool::Spool;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Running {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    state: PathBuf,
}

fn limits(max_bytes: u64, user_quota_bytes: u64, when_full: WhenFull) -> Limits {
    Limits { max_bytes, user_quota_bytes, when_full }
}

/// Both destinations configured; nothing delivers (the records stay in the spool to be looked at).
fn dests() -> Destinations {
    Destinations { server: Some("https://sessions.example".into()), datadog: true }
}

fn start(l: Limits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("agent.sock");
    let store = Store::open(&state, l, dests(), None).unwrap();
    let listener = server::bind(&socket, None).unwrap();
    let agent = Arc::new(Agent::new(store));
    std::thread::spawn(move || server::serve(listener, agent));
    Running { _dir: dir, socket, state }
}

fn open(id: &str, claimed_user: &str) -> Open {
    let meta = SessionMeta {
        session_id: id.into(),
        command: "kubectl get pods".into(),
        user: claimed_user.into(),
        hostname: "forged-host".into(),
        width: 80,
        height: 24,
        tags: vec!["user:root".into(), "host:forged-host".into(), "team:sre".into()],
        ..Default::default()
    };
    Open { meta, shell: "/bin/bash".into(), term: "xterm".into() }
}

fn me() -> String {
    super::store::Peer::new(nix::unistd::getuid().as_raw(), 0, 0).user
}

/// The kinds of the records in the agent's spool, oldest first.
fn spooled(state: &Path) -> Vec<(String, Option<String>)> {
    let spool = Spool::open(state.join("spool"), 0).unwrap();
    let mut out = Vec::new();
    for e in spool.entries().unwrap() {
        let h = spool.header(&e).unwrap();
        out.push((h.kind, h.meta.get("seq").cloned()));
    }
    out
}

fn recording(state: &Path, id: &str) -> String {
    std::fs::read_to_string(state.join("recordings").join(me()).join(format!("{id}.cast"))).unwrap()
}

#[test]
fn a_session_is_stored_under_the_peers_name_then_acknowledged() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    let Opened::Recording { mut output, cast_path } = open_session(&r.socket, open("s-1", "root")).unwrap()
    else {
        panic!("refused")
    };
    assert!(cast_path.ends_with(&format!("recordings/{}/s-1.cast", me())), "{cast_path}");
    output.cast_chunk(0, b"[0.100000, \"o\", \"hello\\r\\n\"]\n").unwrap();
    output.cast_chunk_vec(1, b"[0.200000, \"m\", \"exit 0\"]\n".to_vec()).unwrap();
    // Out of order or not asciicast lines: refused, nothing stored.
    assert!(output.cast_chunk(5, b"[0.3, \"o\", \"x\"]\n").is_err());
    let ev = ProcessEvent {
        session_id: "other".into(),
        command: "kubectl get pods".into(),
        executable: "kubectl".into(),
        cwd: "/".into(),
        user: "root".into(),
        hostname: "h".into(),
        exit_code: Some(0),
        started_at_ms: 0,
        duration_ms: 1,
        tags: vec![],
    };
    output.process_event(&ev).unwrap();
    output.session_end(&SessionMeta::default(), 0, 200).unwrap();
    let cast = recording(&r.state, "s-1");
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["ddcoterm"]["user"], me(), "filed under the peer, not the claimed `root`: {header}");
    assert_eq!(
        header["ddcoterm"]["host"],
        crate::dirs::host_name(),
        "the agent's host name, not the claimed one"
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["[0.100000, \"o\", \"hello\\r\\n\"]", "[0.200000, \"m\", \"exit 0\"]"]
    );
    let kinds = spooled(&r.state);
    assert_eq!(header["ddcoterm"]["tags"], serde_json::json!(["team:sre"]), "claimed identity tags dropped");
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    for k in
        ["session.create", "session.chunk", "session.events", "event.process", "session.end", "event.session"]
    {
        assert!(names.contains(&k), "{k} in {names:?}");
    }
    assert_eq!(names.iter().filter(|k| **k == "session.chunk").count(), 3, "the header and 2 chunks");
    assert_chain(&r.state, "s-1");
}

#[test]
fn without_destinations_the_agent_writes_no_records_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let l = limits(u64::MAX, u64::MAX, WhenFull::Refuse);
    let store = Store::open(&state, l, Destinations::default(), None).unwrap();
    let peer = super::store::Peer::new(nix::unistd::getuid().as_raw(), 0, 1);
    let mut s = store.open_session(&peer, open("quiet-1", "me")).unwrap();
    assert!(store.chunk(&mut s, 0, b"[0.1, \"o\", \"kept locally\"]\n".to_vec()).ok);
    assert!(store.end(&mut s, super::proto::End { exit_code: 0, duration_ms: 1 }).ok);
    assert!(spooled(&state).is_empty(), "{:?}", spooled(&state));
    assert!(recording(&state, "quiet-1").contains("kept locally"));
}

#[test]
fn an_id_already_used_is_refused() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    let first = open_session(&r.socket, open("dup", "me")).unwrap();
    let again = open_session(&r.socket, open("dup", "me"));
    assert!(matches!(again, Err(client::AgentError::Refused { ref code, .. }) if code == codes::ID_TAKEN));
    drop(first);
    assert!(open_session(&r.socket, open("../escape", "me")).is_err(), "ids are file names: validated");
}

#[test]
fn live_recorder_names_the_streaming_pid_until_the_session_ends() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    assert_eq!(super::live_recorder(&r.socket, "live-1").unwrap(), None);
    let Ok(Opened::Recording { mut output, .. }) = open_session(&r.socket, open("live-1", "me")) else {
        panic!()
    };
    assert_eq!(super::live_recorder(&r.socket, "live-1").unwrap(), Some(std::process::id()));
    assert_eq!(super::live_recorder(&r.socket, "live-2").unwrap(), None);
    output.session_end(&SessionMeta::default(), 0, 1).unwrap();
    assert_eq!(super::live_recorder(&r.socket, "live-1").unwrap(), None);
    let gone = r.socket.with_file_name("nobody.sock");
    assert!(super::live_recorder(&gone, "live-1").is_err(), "no agent is an error, not `no session`");
}

#[test]
fn a_full_agent_refuses_new_sessions_and_keeps_the_old_ones() {
    let r = start(limits(u64::MAX, 1, WhenFull::Refuse));
    // The quota counts what is stored: the first session fits, the second finds the quota used.
    let Ok(Opened::Recording { mut output, .. }) = open_session(&r.socket, open("old", "me")) else {
        panic!()
    };
    output.cast_chunk(0, b"[0.1, \"o\", \"evidence\"]\n").unwrap();
    output.session_end(&SessionMeta::default(), 0, 1).unwrap();
    let before = spooled(&r.state);
    match open_session(&r.socket, open("new", "me")) {
        Err(client::AgentError::Refused { code, message }) => {
            assert_eq!(code, codes::FULL);
            assert!(message.contains("agent.user_quota_bytes"), "{message}");
        }
        _ => panic!("a new session past the quota must be refused"),
    }
    assert_eq!(spooled(&r.state), before, "nothing evicted, nothing added");
    assert!(recording(&r.state, "old").contains("evidence"));
}

#[test]
fn run_unrecorded_stores_an_audit_record_first() {
    let r = start(limits(1, u64::MAX, WhenFull::RunUnrecorded));
    // Audit records are stored whatever the limits: this one fills the agent.
    let bg = crate::audit::AuditRecord { command: "earlier break glass".into(), ..Default::default() };
    client::send_audit(&r.socket, "break_glass", &bg).unwrap();
    match open_session(&r.socket, open("u-1", "me")).ok() {
        Some(Opened::RunUnrecorded { message }) => assert!(message.contains("agent.max_bytes"), "{message}"),
        _ => panic!("expected run_unrecorded"),
    }
    let kinds = spooled(&r.state);
    assert_eq!(kinds, [("audit.break_glass".to_string(), None), ("audit.unrecorded".to_string(), None)]);
    let log = std::fs::read_to_string(r.state.join("audit/audit.log")).unwrap();
    assert!(log.contains("kubectl get pods") && log.contains("unrecorded:true"), "{log}");
}

#[test]
fn a_recorder_that_disappears_is_finalised_from_what_was_acknowledged() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    let Ok(Opened::Recording { mut output, .. }) = open_session(&r.socket, open("k-1", "me")) else {
        panic!()
    };
    output.cast_chunk(0, b"[1.500000, \"o\", \"before the kill\"]\n").unwrap();
    drop(output); // the connection closes without `end`, as with kill -9
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !spooled(&r.state).iter().any(|(k, _)| k == "session.end") {
        assert!(std::time::Instant::now() < deadline, "the agent did not finalise the session");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let cast = recording(&r.state, "k-1");
    assert!(cast.contains("before the kill"), "{cast}");
    assert!(cast.lines().last().unwrap().contains("recorder lost"), "{cast}");
    let chunks: Vec<_> = spooled(&r.state).into_iter().filter(|(k, _)| k == "session.chunk").collect();
    assert_eq!(chunks.len(), 3, "the header, the acked chunk and the closing marker: {chunks:?}");
    assert_chain(&r.state, "k-1");
}

#[test]
fn frames_outside_a_session_and_broken_frames_are_refused() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    let mut c = AgentConn::connect(&r.socket).unwrap();
    let reply = c.call(&Request::Chunk { seq: 0, lines: b"[0, \"o\", \"x\"]\n".to_vec() }).unwrap();
    assert_eq!(reply.code.as_deref(), Some(codes::BAD_REQUEST));
    let ping = c.call_ok(&Request::Ping).unwrap();
    assert_eq!(ping.pid, Some(std::process::id()));
    assert_eq!(ping.detail.as_deref(), Some(me().as_str()));
    // Garbage on the wire: the agent answers with an error and closes; it keeps serving others.
    use std::io::Write;
    let mut raw = std::os::unix::net::UnixStream::connect(&r.socket).unwrap();
    raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1]).unwrap();
    assert!(client::ping(&r.socket).is_ok());
}

#[test]
fn a_stale_socket_is_replaced_but_nothing_else_is() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("not-a-socket");
    std::fs::write(&file, "x").unwrap();
    assert!(server::bind(&file, None).unwrap_err().to_string().contains("not a socket"));
    let sock = d.path().join("s.sock");
    drop(server::bind(&sock, None).unwrap());
    assert!(server::bind(&sock, None).is_ok(), "the socket of a previous run is replaced");
}

#[test]
fn one_user_cannot_hold_every_connection() {
    let r = start(limits(u64::MAX, u64::MAX, WhenFull::Refuse));
    let held: Vec<AgentConn> = (0..server::MAX_CONNECTIONS_PER_UID)
        .map(|_| {
            let mut c = AgentConn::connect(&r.socket).unwrap();
            c.call_ok(&Request::Ping).unwrap();
            c
        })
        .collect();
    let refused = client::ping(&r.socket).unwrap_err().to_string();
    assert!(refused.contains("too many connections"), "{refused}");
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while client::ping(&r.socket).is_err() {
        assert!(std::time::Instant::now() < deadline, "connections were not released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Spooled `(kind, seq, body, session, prev_sha256)`, oldest first.
fn spooled_bodies(state: &Path) -> Vec<(String, Option<String>, Vec<u8>, String, Option<String>)> {
    let spool = Spool::open(state.join("spool"), 0).unwrap();
    let mut out = Vec::new();
    for e in spool.entries().unwrap() {
        let mut claim = spool.claim(&e).unwrap().unwrap();
        let rec = claim.read().unwrap();
        let id = rec.meta.get("session_id").cloned().unwrap_or_default();
        let prev = rec.meta.get("prev_sha256").cloned();
        out.push((rec.kind, rec.meta.get("seq").cloned(), rec.body, id, prev));
    }
    out
}

/// Session `id`'s spooled chunks (a repeat must be identical, seq and prev_sha256 included) are its cast byte
/// for byte, header first, and form the server's hash chain from its create.
fn assert_chain(state: &Path, id: &str) {
    let recs: Vec<_> = spooled_bodies(state).into_iter().filter(|r| r.3 == id).collect();
    let creates: Vec<_> = recs.iter().filter(|r| r.0 == "session.create").collect();
    assert_eq!(creates.len(), 1, "{id}: one create");
    let mut chunks: std::collections::BTreeMap<u64, (Vec<u8>, String)> = Default::default();
    for r in recs.iter().filter(|r| r.0 == "session.chunk") {
        let seq: u64 = r.1.as_deref().unwrap().parse().unwrap();
        let this = (r.2.clone(), r.4.clone().unwrap());
        if let Some(first) = chunks.insert(seq, this.clone()) {
            assert_eq!(
                first, this,
                "{id}: chunk {seq} spooled again with other bytes or another prev_sha256"
            );
        }
    }
    assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), (0..chunks.len() as u64).collect::<Vec<_>>());
    let all: Vec<u8> = chunks.values().flat_map(|c| c.0.clone()).collect();
    assert_eq!(text(&all), recording(state, id), "{id}: the chunks are the cast");
    let mut prev = ddcoterm_wire::chain_root(&creates[0].2);
    for (seq, (body, p)) in &chunks {
        assert_eq!(*p, prev, "{id}: chunk {seq}'s prev_sha256");
        prev = ddcoterm_wire::chunk_hash(body);
    }
    let ends: Vec<ddcoterm_wire::EndSession> =
        recs.iter().filter(|r| r.0 == "session.end").map(|r| serde_json::from_slice(&r.2).unwrap()).collect();
    assert_eq!(ends.len(), 1, "{id}: one end");
    assert_eq!(ends[0].last_seq, chunks.len() as u64 - 1, "{id}: the end names the last chunk");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_restarted_agent_closes_the_sessions_it_held_from_what_it_had_stored() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let peer = super::store::Peer::new(nix::unistd::getuid().as_raw(), 0, 4242);
    let l = limits(u64::MAX, u64::MAX, WhenFull::Refuse);
    {
        let store = Store::open(&state, l, dests(), None).unwrap();
        // Cut off mid-session: two chunks stored, then the agent dies.
        let mut s = store.open_session(&peer, open("crash-1", "me")).unwrap();
        assert!(store.chunk(&mut s, 0, b"[0.5, \"o\", \"first\"]\n".to_vec()).ok);
        assert!(store.chunk(&mut s, 1, b"[1.250000, \"o\", \"second\"]\n".to_vec()).ok);
        // Cut off after the recorder's exit marker, before its end.
        let mut t = store.open_session(&peer, open("crash-2", "me")).unwrap();
        assert!(store.chunk(&mut t, 0, b"[0.1, \"o\", \"x\"]\n[0.200000, \"m\", \"exit 3\"]\n".to_vec()).ok);
        // Ended properly: nothing to do after the restart.
        let mut u = store.open_session(&peer, open("done-1", "me")).unwrap();
        assert!(store.chunk(&mut u, 0, b"[0.1, \"o\", \"y\"]\n".to_vec()).ok);
        assert!(store.end(&mut u, super::proto::End { exit_code: 0, duration_ms: 1 }).ok);
        // Cut off between the progress record and the spool: chunk 1 is in the cast and counted, not spooled.
        let mut v = store.open_session(&peer, open("crash-3", "me")).unwrap();
        assert!(store.chunk(&mut v, 0, b"[0.1, \"o\", \"z\"]\n".to_vec()).ok);
        std::mem::forget((s, t, u, v)); // no finalising: the process is gone
    }
    let cast3 = state.join("recordings").join(me()).join("crash-3.cast");
    let len0 = std::fs::metadata(&cast3).unwrap().len();
    let unspooled = b"[0.300000, \"o\", \"in the cast, not in the spool\"]\n";
    std::fs::OpenOptions::new().append(true).open(&cast3).unwrap().write_all(unspooled).unwrap();
    let at3 = std::fs::OpenOptions::new().write(true).open(state.join("sessions/crash-3.at")).unwrap();
    // Chunk 1 (the recorder's 0) is the last one spooled; the one that was not spooled follows it.
    let cast3_bytes = std::fs::read(&cast3).unwrap();
    let hl = cast3_bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let p = super::progress::Progress {
        next_seq: 3,
        prev_len: len0,
        len: len0 + unspooled.len() as u64,
        ended: false,
        prev_sha256: ddcoterm_wire::chunk_hash(&cast3_bytes[hl..len0 as usize]),
    };
    super::progress::write(&at3, &p).unwrap();
    // Bytes the dead agent wrote past what it recorded were never acknowledged.
    let cast1 = state.join("recordings").join(me()).join("crash-1.cast");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&cast1)
        .unwrap()
        .write_all(b"[2.0, \"o\", \"unacked")
        .unwrap();
    let before = spooled_bodies(&state).len();
    drop(Store::open(&state, l, dests(), None).unwrap());
    let after = spooled_bodies(&state);
    let mut new: Vec<_> =
        after[before..].iter().map(|(k, s, _, id, _)| (id.as_str(), k.as_str(), s.as_deref())).collect();
    new.sort();
    // Server seqs: chunk 0 is the header, the recorder's chunk n is n + 1.
    assert_eq!(
        new,
        [
            ("crash-1", "session.chunk", Some("2")), // its last chunk again (a repeat upstream)
            ("crash-1", "session.chunk", Some("3")), // the closing marker
            ("crash-1", "session.end", None),
            ("crash-2", "session.chunk", Some("1")), // its last chunk again
            ("crash-2", "session.end", None),        // only the end was missing
            ("crash-3", "session.chunk", Some("2")), // the chunk the spool never got
            ("crash-3", "session.chunk", Some("3")),
            ("crash-3", "session.end", None),
        ],
        "both sessions recovered once, done-1 left alone"
    );
    // Each session's chunks, repeats included, are its cast and one unbroken hash chain.
    for id in ["crash-1", "crash-2", "crash-3", "done-1"] {
        assert_chain(&state, id);
    }
    let cast = std::fs::read_to_string(&cast1).unwrap();
    assert!(!cast.contains("unacked"), "{cast}");
    assert!(
        cast.ends_with("\"recording interrupted: the agent stopped while the session was live\"]\n"),
        "{cast}"
    );
    let ends: Vec<serde_json::Value> = after
        .iter()
        .filter(|(k, ..)| k == "session.end")
        .map(|(_, _, b, _, _)| serde_json::from_slice(b).unwrap())
        .collect();
    assert!(ends.iter().any(|e| e["exit_status"] == 3 && e["last_seq"] == 1), "{ends:?}");
    assert!(ends.iter().any(|e| e["exit_status"].is_null() && e["last_seq"] == 3), "{ends:?}");
    let c3: Vec<_> =
        after.iter().filter(|(k, _, _, id, _)| k == "session.chunk" && id == "crash-3").collect();
    assert_eq!(c3[2].2, unspooled, "crash-3's chunk 2 reaches the spool from the cast");
    // A second restart finds nothing left to do.
    drop(Store::open(&state, l, dests(), None).unwrap());
    assert_eq!(spooled_bodies(&state).len(), after.len());
}
