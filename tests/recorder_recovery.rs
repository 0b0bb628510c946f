//! A killed recorder loses nothing (issue 16, item 7): `kill -9` mid-session, then the next run or `spool
//! flush` sends the `.cast` tail, the end and the process event, exactly once; a recovery killed between any
//! two of its steps is resumed without duplicates; stale spool temp files go. Recordings are checked on the
//! REAL `ddcoterm-server` (the stored cast equals the local `.cast` byte for byte, its hash chain verifies);
//! process and session events on the Datadog fake.

mod harness;
mod support;

use ddcoterm::model::{Action, ProcessEvent, SessionMeta};
use ddcoterm::recorder::recovery::{self as rec, Claimed, Entry, Journal, RecorderInfo, RecorderLock};
use ddcoterm::spool::{Record, Spool};
use ddcoterm::upload::kinds::{self, Chain};
use ddcoterm::upload::recovery;
use serial_test::serial;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::server::Server;
use support::{Fake, Home, API_KEY};

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().map(|d| d.path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect()
        })
        .unwrap_or_default()
}

/// A home whose recordings go to `server` and whose events go to the Datadog `fake`.
fn home_for(fake: &Fake, server: &Server) -> Home {
    let home = Home::new();
    home.config(&fake.uri(), API_KEY, &format!("spool:\n  flush_timeout: 20s\n{}", server.client_config()));
    home
}

/// Records a command that prints a line every 10 ms, waits until the server holds some of its chunks and
/// the `.cast` has lines no chunk holds yet, then kills the recorder (and its command) with SIGKILL.
/// Returns the session id.
fn record_then_kill(home: &Home, server: &Server) -> String {
    let pidfile = home.root().join("child.pid");
    let script = "echo $$ > \"$PIDFILE\"; i=0; while :; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done";
    let mut child = home
        .cmd()
        .env("PIDFILE", &pidfile)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Chunk 0 is the header: two event chunks are stored once seq 2 is committed.
    server.wait_for("two event chunks at the server", || {
        server.sessions().first().and_then(|s| s["committed_seq"].as_u64()).is_some_and(|c| c >= 2)
    });
    let id = server.sessions()[0]["id"].as_str().unwrap().to_string();
    // Half a chunk interval: the recorder holds lines it has written to the .cast but not cut yet.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pidfile).unwrap_or_default().trim().parse::<i32>() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert_eq!(server.session(&id).unwrap()["state"], "live", "the killed recorder sent no end");
    id
}

/// The session on the server is complete and is the local `.cast`, byte for byte, with a verified chain.
fn assert_on_server(server: &Server, id: &str, cast: &[u8]) -> serde_json::Value {
    server.wait_for(&format!("session {id} complete"), || {
        server.session(id).is_some_and(|s| s["state"] == "complete")
    });
    let stored = server.cast(id);
    assert!(
        stored == cast,
        "the server's cast ({} bytes) differs from the local .cast ({} bytes)",
        stored.len(),
        cast.len()
    );
    let v = server.verify(id);
    assert!(
        v.status.success(),
        "verify {id}: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    server.session(id).unwrap()
}

/// The server holds exactly the local recording of session `id`, complete with an unknown exit status and
/// its process event once; Datadog got one process event and one session event for it.
fn assert_recovered_exactly_once(home: &Home, fake: &Fake, server: &Server, id: &str) {
    let recordings = home.home().join("recordings");
    let cast = std::fs::read(recordings.join(format!("{id}.cast"))).unwrap();
    let text = String::from_utf8_lossy(&cast);
    assert!(
        text.ends_with(&format!("\"m\", \"{}\"]\n", rec::EXIT_UNKNOWN)),
        "recovered exit marker: {text:.200}"
    );
    let s = assert_on_server(server, id, &cast);
    let dead = std::fs::read_dir(home.spool().join("dead")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(dead, 0, "nothing refused for good (a re-cut chunk or a broken chain would be a 409)");
    assert_eq!(s["exit_status"], serde_json::Value::Null, "{s}");
    let events = s["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "one process event on the server: {events:?}");
    assert_eq!(events[0]["exit_code"], serde_json::Value::Null, "{}", events[0]);
    // Datadog: the process event and the session event, each once.
    let dd: Vec<serde_json::Value> = fake
        .accepted()
        .iter()
        .filter(|r| r.path == "/api/v1/events")
        .map(|r| r.json())
        .filter(|e| e["tags"].to_string().contains(&format!("session_id:{id}")))
        .collect();
    let sessions = dd.iter().filter(|e| e["source_type_name"] == "coterm_session").count();
    assert_eq!(sessions, 1, "one session event: {dd:?}");
    assert_eq!(dd.len(), 2, "and one process event: {dd:?}");
    assert!(dd.iter().all(|e| e["tags"].to_string().contains("exit_code:unknown")), "{dd:?}");
    assert!(files_with_ext(&recordings, rec::LOCK_EXT).is_empty(), "the recorder lock is gone");
    assert!(files_with_ext(&recordings, rec::JOURNAL_EXT).is_empty(), "the journal is gone");
}

#[test]
#[serial]
fn a_killed_recorder_is_recovered_by_the_next_run() {
    let fake = Fake::start();
    let server = Server::start();
    let home = home_for(&fake, &server);
    let id = record_then_kill(&home, &server);
    let out = home.cmd().args(["--", "true"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("recovered session {id}")), "{stderr}");
    assert!(!stderr.contains("(0 chunk(s)"), "the killed recorder left a tail to recover: {stderr}");
    assert_recovered_exactly_once(&home, &fake, &server, &id);
    // The next run's own session is complete and untouched by the recovery.
    let other: Vec<String> = server
        .sessions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .filter(|s| *s != id)
        .collect();
    assert_eq!(other.len(), 1);
    let local = std::fs::read(home.home().join("recordings").join(format!("{}.cast", other[0]))).unwrap();
    assert_eq!(assert_on_server(&server, &other[0], &local)["exit_status"], 0);
    // A second run finds nothing more to recover.
    let out = home.cmd().args(["--", "true"]).stdin(Stdio::null()).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("recovered"));
    assert_recovered_exactly_once(&home, &fake, &server, &id);
}

#[test]
#[serial]
fn a_killed_recorder_is_recovered_by_spool_flush() {
    let fake = Fake::start();
    let server = Server::start();
    let home = home_for(&fake, &server);
    let id = record_then_kill(&home, &server);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("recovered session {id}")), "{stderr}");
    assert!(!stderr.contains("(0 chunk(s)"), "the killed recorder left a tail to recover: {stderr}");
    assert_recovered_exactly_once(&home, &fake, &server, &id);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("recovered"));
    assert_recovered_exactly_once(&home, &fake, &server, &id);
}

#[test]
#[serial]
fn a_guarded_call_that_execs_directly_does_not_recover() {
    let fake = Fake::start();
    let server = Server::start();
    let home = home_for(&fake, &server);
    let id = record_then_kill(&home, &server);
    // Actions [] exec the command directly: nothing else runs on that path.
    std::fs::write(home.system().join("config.yaml"), "process_config:\n  default_actions: []\n").unwrap();
    let out = home.cmd().args(["--", "true"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.session(&id).unwrap()["state"], "live", "the exec path did not recover");
    assert_eq!(files_with_ext(&home.home().join("recordings"), rec::LOCK_EXT).len(), 1);
}

// ---- the recovery itself, killed between every two steps ----

/// A dead recorder's session as the recorder leaves it: the `.cast` with the create, chunk 0 (the header)
/// and `sent` event chunks journaled and spooled, and `tail` event lines after them that no chunk holds.
struct DeadSession {
    dir: PathBuf,
    spool: PathBuf,
    id: String,
    cast: PathBuf,
    meta: SessionMeta,
}

fn dead_session(root: &Path, sent: usize, tail: usize) -> DeadSession {
    let dir = root.join("recordings");
    let spool_dir = root.join("spool");
    std::fs::create_dir_all(&dir).unwrap();
    let spool = Spool::open(&spool_dir, 0).unwrap();
    let id = "0193b7e2-dead-7000-8000-000000000001".to_string();
    let meta = SessionMeta {
        session_id: id.clone(),
        command: "sh -c loop".into(),
        actions: vec![Action::Record, Action::ProcessInfo],
        ..SessionMeta::default()
    };
    let header = ddcoterm::recorder::cast::header_line(&meta, "/bin/sh", "xterm");
    let cast = dir.join(format!("{id}.cast"));
    let mut bytes = header.clone();
    // A child that exits at once stands for the dead recorder: its pid no longer runs.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = c.id();
    c.wait().unwrap();
    let info = RecorderInfo {
        v: 1,
        pid: dead_pid,
        pid_start: Some(1),
        started_at_ms: 1,
        meta: meta.clone(),
        cast: Some(cast.clone()),
        header_len: header.len() as u64,
        event: Some(ProcessEvent {
            session_id: id.clone(),
            command: "sh -c loop".into(),
            executable: "sh".into(),
            cwd: "/".into(),
            user: "u".into(),
            hostname: "h".into(),
            exit_code: None,
            started_at_ms: 1,
            duration_ms: 0,
            tags: vec![],
        }),
    };
    drop(RecorderLock::acquire(&dir, &info).unwrap());
    let mut journal = Journal::open(&rec::journal_path(&dir, &id)).unwrap();
    // What the recorder writes (upload/output.rs): the create, then chunk 0 = the header line.
    let (create, root) = kinds::create_record(&meta);
    spool
        .enqueue_journaled(create, &mut |f| journal.append(&Entry::Create { file: f.into(), pid: dead_pid }))
        .unwrap();
    let mut chain = Chain::new(root);
    let hl = header.len() as u64;
    spool
        .enqueue_journaled(chain.chunk(&id, header.clone()), &mut |f| {
            journal.append(&Entry::Chunk { seq: 0, start: 0, end: hl, file: f.into(), pid: dead_pid })
        })
        .unwrap();
    let mut line_no = 0;
    let mut line = |bytes: &mut Vec<u8>| {
        line_no += 1;
        ddcoterm::recorder::cast::push_event(
            bytes,
            line_no as f64 / 10.0,
            "o",
            &format!("line {line_no}\r\n"),
        );
    };
    for _ in 0..sent {
        let start = bytes.len() as u64;
        for _ in 0..3 {
            line(&mut bytes);
        }
        let end = bytes.len() as u64;
        let seq = chain.next_seq();
        let chunk = chain.chunk(&id, bytes[start as usize..].to_vec());
        spool
            .enqueue_journaled(chunk, &mut |f| {
                journal.append(&Entry::Chunk { seq, start, end, file: f.into(), pid: dead_pid })
            })
            .unwrap();
    }
    for _ in 0..tail {
        line(&mut bytes);
    }
    // The recorder died in the middle of a write.
    bytes.extend_from_slice(b"[9.9, \"o\", \"torn");
    std::fs::write(&cast, &bytes).unwrap();
    DeadSession { dir, spool: spool_dir, id, cast, meta }
}

/// A recovery for a host with both destinations configured.
fn both() -> recovery::Targets {
    recovery::Targets { server: Some("https://sessions.example".into()), datadog: true }
}

/// Where a simulated kill lands in the `n`-th spool write of a recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kill {
    /// Before the record is written at all.
    Before,
    /// After the journal line, before the record is published (it stays whole under tmp/).
    Journaled,
    /// After the record is published, before the next step.
    Published,
}

/// Runs one recovery of `s` that dies at spool write `n` (`None`: runs to the end). Returns whether it ran
/// to the end.
///
/// Every test of this file that takes these flocks (recoveries, spool claims) or spawns a program is
/// `#[serial]`: a child of a concurrent test holds a copy of every open descriptor between its fork and its
/// exec, and with it the lock of a recovery that has just finished, so the next step here found the session
/// still locked (twice in clean-clone CI runs).
fn recover_once(s: &DeadSession, kill: Option<(usize, Kill)>) -> bool {
    let spool = Spool::open(&s.spool, 0).unwrap();
    let Some(claimed) = Claimed::dead(&rec::lock_path(&s.dir, &s.id)).unwrap() else {
        return true;
    };
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let enqueue = |r: Record, j: &mut dyn FnMut(&str) -> std::io::Result<()>| -> anyhow::Result<()> {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match kill {
            Some((at, Kill::Before)) if at == n => anyhow::bail!("killed before write {n}"),
            Some((at, Kill::Journaled)) if at == n => {
                let mut die = |f: &str| {
                    j(f)?;
                    Err(std::io::Error::other("killed after the journal line"))
                };
                let _ = spool.enqueue_journaled(r, &mut die);
                anyhow::bail!("killed after journaling write {n}")
            }
            _ => {
                spool.enqueue_journaled(r, j)?;
                if kill == Some((n, Kill::Published)) {
                    anyhow::bail!("killed after write {n}");
                }
                Ok(())
            }
        }
    };
    // Dropping the claim on error releases its lock, as the kernel does for a killed process.
    recovery::recover(&spool, claimed, &enqueue, &both()).is_ok()
}

/// A spooled record: kind, seq, prev_sha256, body.
type Spooled = (String, Option<u64>, Option<String>, Vec<u8>);

/// The session's records in the spool, in delivery order.
fn spooled(s: &DeadSession) -> Vec<Spooled> {
    let spool = Spool::open(&s.spool, 0).unwrap();
    spool
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let mut c = spool.claim(e).unwrap()?;
            let r = c.read().unwrap();
            let seq = r.meta.get(kinds::META_SEQ).and_then(|v| v.parse().ok());
            Some((r.kind, seq, r.meta.get(kinds::META_PREV).cloned(), r.body))
        })
        .collect()
}

fn assert_complete(s: &DeadSession, what: &str) {
    let cast = std::fs::read(&s.cast).unwrap();
    let recs = spooled(s);
    let kinds: Vec<&str> = recs.iter().map(|r| r.0.as_str()).collect();
    let chunks: Vec<&Spooled> = recs.iter().filter(|r| r.0 == kinds::KIND_SESSION_CHUNK).collect();
    for k in [
        kinds::KIND_SESSION_CREATE,
        kinds::KIND_SESSION_END,
        kinds::KIND_SESSION_EVENTS,
        kinds::KIND_EVENT,
        kinds::KIND_SESSION_EVENT,
    ] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), 1, "{what}: one {k}: {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"session.end"), "{what}: the end comes last in its group: {kinds:?}");
    let seqs: Vec<u64> = chunks.iter().map(|c| c.1.unwrap()).collect();
    assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>(), "{what}: each seq once, in order");
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.3.clone()).collect();
    assert!(all == cast, "{what}: the chunks are exactly the .cast, its header line first");
    assert_eq!(chunks[0].3, cast[..cast.iter().position(|&b| b == b'\n').unwrap() + 1], "{what}: chunk 0");
    // The hash chain: chunk 0 carries the create body's hash, every later chunk the previous chunk's.
    let create = &recs.iter().find(|r| r.0 == kinds::KIND_SESSION_CREATE).unwrap().3;
    assert_eq!(create, &kinds::create_body(&s.meta), "{what}: the create is rebuilt byte for byte");
    let mut prev = ddcoterm_wire::chain_root(create);
    for c in &chunks {
        assert_eq!(c.2.as_deref(), Some(prev.as_str()), "{what}: chunk {:?} prev_sha256", c.1);
        prev = ddcoterm_wire::chunk_hash(&c.3);
    }
    let end: ddcoterm_wire::EndSession =
        serde_json::from_slice(&recs.iter().find(|r| r.0 == kinds::KIND_SESSION_END).unwrap().3).unwrap();
    assert_eq!((end.last_seq, end.exit_status), (chunks.len() as u64 - 1, None), "{what}: {end:?}");
    let text = String::from_utf8_lossy(&cast);
    assert!(!text.contains("torn"), "{what}: the torn line was cut");
    assert_eq!(text.matches(rec::EXIT_UNKNOWN).count(), 1, "{what}: one exit marker");
    assert!(!rec::lock_path(&s.dir, &s.id).exists() && !rec::journal_path(&s.dir, &s.id).exists(), "{what}");
    assert_eq!(std::fs::read_dir(s.spool.join("tmp")).unwrap().count(), 0, "{what}: no temp file left");
}

#[test]
#[serial]
fn a_recovery_killed_between_any_two_steps_is_finished_by_the_next_without_duplicates() {
    // 2 event chunks sent, a tail of 5 lines. A full recovery writes: the tail chunk, the process event to
    // the server and to Datadog, the Datadog session event, the end (5 writes); chunk bytes are cut at 1 MiB,
    // so the tail is one chunk.
    const WRITES: usize = 5;
    let full = {
        let t = tempfile::tempdir().unwrap();
        let s = dead_session(t.path(), 2, 5);
        assert!(recover_once(&s, None));
        assert_complete(&s, "uninterrupted");
        spooled(&s).len()
    };
    assert_eq!(full, 1 + 4 + 3 + 1, "create, 4 chunks (header, 2 sent, the tail), 3 events, end");
    for n in 0..WRITES {
        for kill in [Kill::Before, Kill::Journaled, Kill::Published] {
            let t = tempfile::tempdir().unwrap();
            let s = dead_session(t.path(), 2, 5);
            assert!(!recover_once(&s, Some((n, kill))), "the simulated kill at {n} {kill:?} happened");
            // And a second kill in the resumed recovery, at every later point.
            for m in 0..WRITES {
                let _ = recover_once(&s, Some((m, Kill::Journaled)));
            }
            assert!(recover_once(&s, None));
            assert_complete(&s, &format!("killed at write {n} ({kill:?})"));
            assert_eq!(spooled(&s).len(), full, "killed at write {n} ({kill:?})");
        }
    }
}

#[test]
#[serial]
fn a_session_killed_before_its_create_was_spooled_is_created_by_the_recovery() {
    let t = tempfile::tempdir().unwrap();
    let s = dead_session(t.path(), 0, 4);
    // Forget the create the helper spooled, as if the recorder died before its writer thread ran.
    let spool = Spool::open(&s.spool, 0).unwrap();
    for e in spool.entries().unwrap() {
        spool.claim(&e).unwrap().unwrap().delete().unwrap();
    }
    std::fs::remove_file(rec::journal_path(&s.dir, &s.id)).unwrap();
    assert!(recover_once(&s, None));
    assert_complete(&s, "no create");
}

#[test]
#[serial]
fn stale_spool_temp_files_without_an_owner_are_removed_and_others_kept() {
    let home = Home::new();
    home.config("http://127.0.0.1:9", API_KEY, "");
    let tmp = home.spool().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let touch = |name: &str, when: std::time::SystemTime| {
        let p = tmp.join(name);
        std::fs::write(&p, b"half").unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(when).unwrap();
        p
    };
    let stale = touch(&format!("0000000000001-00000001-0000000001~b~s1.rec.{dead}.tmp"), old);
    let fresh = touch(
        &format!("0000000000002-00000001-0000000001~b~s1.rec.{dead}.tmp"),
        std::time::SystemTime::now(),
    );
    let owned = touch(&format!("0000000000003-00000001-0000000001~b~s1.rec.{}.tmp", std::process::id()), old);
    let out = home.cmd().args(["spool", "flush"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("removed 1 stale spool temp file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stale.exists(), "old, owner dead: removed");
    assert!(fresh.exists(), "recent: kept");
    assert!(owned.exists(), "owner alive: kept");
}

#[test]
#[serial]
fn a_lock_naming_another_file_is_refused_and_the_file_untouched() {
    let t = tempfile::tempdir().unwrap();
    let s = dead_session(t.path(), 1, 2);
    let victim = t.path().join("notes.txt");
    std::fs::write(&victim, b"keep me\n[0.1, \"o\", \"partial").unwrap();
    let lock = rec::lock_path(&s.dir, &s.id);
    let mut info: RecorderInfo = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    info.cast = Some(victim.clone());
    std::fs::write(&lock, serde_json::to_vec(&info).unwrap()).unwrap();
    let before = spooled(&s).len();
    assert!(!recover_once(&s, None), "refused");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me\n[0.1, \"o\", \"partial");
    assert_eq!(spooled(&s).len(), before, "nothing spooled");
    assert!(lock.exists(), "left for a person to look at");
}

#[test]
#[serial]
fn a_session_whose_recording_was_deleted_still_gets_its_end() {
    let t = tempfile::tempdir().unwrap();
    let s = dead_session(t.path(), 1, 2);
    std::fs::remove_file(&s.cast).unwrap();
    assert!(recover_once(&s, None));
    let kinds: Vec<String> = spooled(&s).into_iter().map(|r| r.0).collect();
    assert_eq!(
        kinds,
        [
            "session.create",
            "session.chunk",
            "session.chunk",
            "session.events",
            "event.process",
            "event.session",
            "session.end"
        ]
    );
    assert!(!rec::lock_path(&s.dir, &s.id).exists());
}
