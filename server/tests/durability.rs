//! Durable before acknowledged, shown at the syscall level: `kill -9` keeps the page cache, so this traces
//! the server (every thread: the group commit makes a batch's objects durable on its own threads, then
//! commits the batch's rows) and checks that the chunk's object is made durable and the database commit
//! synced before the 201 is written to the socket, in both ways a sync round works on a local directory:
//! per file (`fdatasync` of the chunk file, `fsync` of its directory and of a new session's day directory)
//! and per filesystem (one `syncfs`, what rounds of `limits.syncfs_min_batch` files or more use). Without
//! the sync round the object's sync is missing and this fails. The background WAL checkpointer's syncs
//! (told apart by its thread also syncing the main database file) do not count as the commit's.

mod support;

use support::{chunks, Server};

/// The trace lines of one request's window, and helpers to find lines in it.
struct Window(Vec<String>);

impl Window {
    fn find(&self, what: &str, pred: &dyn Fn(&str) -> bool) -> usize {
        self.0
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{}", self.0.join("\n")))
    }

    /// The sync of the database WAL by the group commit: the background WAL checkpointer (its own
    /// connection, so its own thread) also syncs the WAL, and then the main database file, which no
    /// committing connection ever syncs: its threads are told apart by that.
    fn commit(&self) -> usize {
        let thread = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
        let checkpointers: Vec<String> =
            self.0.iter().filter(|l| sync(l) && l.contains("ddcoterm.db>")).map(|l| thread(l)).collect();
        self.find("sync of the database WAL by the commit", &|l| {
            sync(l) && l.contains("ddcoterm.db-wal>") && !checkpointers.contains(&thread(l))
        })
    }

    fn answer(&self) -> usize {
        self.find("the 201 on the socket", &|l| l.contains("HTTP/1.1 201"))
    }

    fn text(&self) -> String {
        self.0.join("\n")
    }
}

fn sync(l: &str) -> bool {
    l.contains("fsync(") || l.contains("fdatasync(")
}

/// The server under `strace` with `syncfs_min_batch` set; `None` when tracing is not possible here.
fn traced(syncfs_min_batch: &str) -> Option<(Server, std::path::PathBuf, tempfile::TempDir)> {
    if support::backends::enabled() {
        println!("skipped: the syscall trace covers the local directory and SQLite (S3 and PostgreSQL sync themselves)");
        return None;
    }
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        println!("skipped: strace is not installed (make tools installs it)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let trace_s = trace.to_str().unwrap();
    let s = Server::start_wrapped(
        &[
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "16",
            "-e",
            "trace=fsync,fdatasync,syncfs,write,writev,sendto,sendmsg",
            "-o",
            trace_s,
        ],
        &[("DDCOTERMD_LIMITS__SYNCFS_MIN_BATCH", syncfs_min_batch)],
    );
    if s.log().contains("Operation not permitted") {
        println!("skipped: ptrace is not permitted here");
        return None;
    }
    Some((s, trace, tmp))
}

/// Sends one chunk and returns the trace lines written while it was answered.
fn window(s: &Server, trace: &std::path::Path, send: impl FnOnce(&Server)) -> Window {
    let start = std::fs::read_to_string(trace).unwrap().len();
    send(s);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(trace).unwrap();
    Window(text[start..].lines().map(str::to_string).collect())
}

#[test]
fn a_chunk_is_fsynced_and_its_row_committed_before_the_201() {
    let Some((s, trace, _tmp)) = traced("0") else { return };
    let host = s.token("h", "host");
    let c = chunks(1);
    assert_eq!(s.create(&host, "d1", "alice").status(), 201);
    assert_eq!(s.chunk(&host, "d1", 0, &c[0], None).status(), 201);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let w = window(&s, &trace, |s| assert_eq!(s.chunk(&host, "d1", 1, &c[1], Some(&c[0])).status(), 201));
    let file = w.find("fsync of the chunk file", &|l| sync(l) && l.contains("/d1/00000001>"));
    let dir = w.find("fsync of the session directory", &|l| sync(l) && l.contains("/d1>"));
    let (commit, answer) = (w.commit(), w.answer());
    assert!(file < commit && dir < commit, "object synced after the row committed:\n{}", w.text());
    assert!(commit < answer, "answered before the commit was synced:\n{}", w.text());
    assert!(!w.text().contains("syncfs("), "syncfs_min_batch 0 never syncs the filesystem:\n{}", w.text());
    println!(
        "trace order: chunk fsync line {file}, dir fsync {dir}, WAL sync {commit}, 201 written {answer}"
    );

    // The first chunk of a new session also creates its directory: the day directory holding that new
    // entry is synced too, before the answer.
    let w = window(&s, &trace, |s| assert_eq!(s.chunk(&host, "d2", 0, &c[0], None).status(), 201));
    let day_dir = |l: &str| {
        let Some(path) = l.split('<').nth(1).and_then(|p| p.split('>').next()) else { return false };
        path.split("/objects/sessions/").nth(1).is_some_and(|rest| rest.split('/').count() == 3)
    };
    let day = w.find("day-directory sync", &|l| sync(l) && day_dir(l));
    assert!(day < w.answer(), "day directory synced after the answer:\n{}", w.text());
}

#[test]
fn a_round_that_syncs_the_filesystem_does_so_before_the_commit_and_the_201() {
    let Some((s, trace, _tmp)) = traced("1") else { return };
    let host = s.token("h", "host");
    let c = chunks(1);
    assert_eq!(s.create(&host, "f1", "alice").status(), 201);
    // A new session's first chunk (new directories) and a later one: each is made durable by one syncfs
    // of the objects' filesystem, before the WAL commit and the answer.
    let w = window(&s, &trace, |s| assert_eq!(s.chunk(&host, "f1", 0, &c[0], None).status(), 201));
    let w2 = window(&s, &trace, |s| assert_eq!(s.chunk(&host, "f1", 1, &c[1], Some(&c[0])).status(), 201));
    for w in [w, w2] {
        let fs =
            w.find("syncfs of the objects directory", &|l| l.contains("syncfs(") && l.contains("/objects>"));
        let (commit, answer) = (w.commit(), w.answer());
        assert!(fs < commit, "objects synced after the row committed:\n{}", w.text());
        assert!(commit < answer, "answered before the commit was synced:\n{}", w.text());
        assert!(
            !w.0.iter().any(|l| sync(l) && l.contains("/objects/")),
            "a syncfs round syncs no file on its own:\n{}",
            w.text()
        );
        println!("trace order: syncfs line {fs}, WAL sync {commit}, 201 written {answer}");
    }
}
