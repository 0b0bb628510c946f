//! Durable before acknowledged, shown at the syscall level: `kill -9` keeps the page cache, so this traces
//! the server (every thread: the group commit syncs a batch's files and directories on its own threads, then
//! commits the batch's rows) and checks that the chunk file, its directory and the database commit are synced
//! before the 201 is written to the socket. Without the sync round the file's fdatasync is missing and this
//! fails. The background WAL checkpointer's syncs (told apart by its thread also syncing the main database
//! file) do not count as the commit's.

mod support;

use support::{chunks, Server};

#[test]
fn a_chunk_is_fsynced_and_its_row_committed_before_the_201() {
    if support::backends::enabled() {
        println!("skipped: the syscall trace covers the local directory and SQLite (S3 and PostgreSQL sync themselves)");
        return;
    }
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        println!("skipped: strace is not installed (make tools installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let trace_s = trace.to_str().unwrap();
    let s = Server::start_wrapped(&[
        "strace",
        "-f",
        "-qq",
        "-y",
        "-s",
        "16",
        "-e",
        "trace=fsync,fdatasync,write,writev,sendto,sendmsg",
        "-o",
        trace_s,
    ]);
    if s.log().contains("Operation not permitted") {
        println!("skipped: ptrace is not permitted here");
        return;
    }
    let host = s.token("h", "host");
    let c = chunks(1);
    assert_eq!(s.create(&host, "d1", "alice").status(), 201);
    assert_eq!(s.chunk(&host, "d1", 0, &c[0], None).status(), 201);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = std::fs::read_to_string(&trace).unwrap().len();
    assert_eq!(s.chunk(&host, "d1", 1, &c[1], Some(&c[0])).status(), 201);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text[start..].lines().collect();
    let find = |what: &str, pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{}", lines.join("\n")))
    };
    let sync = |l: &str| l.contains("fsync(") || l.contains("fdatasync(");
    // The background WAL checkpointer (its own connection, so its own thread) also syncs the WAL, and then
    // the main database file, which no committing connection ever syncs: its threads are told apart by that.
    let thread = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    // (Within this window only: at start, switching to WAL syncs the database file from a pool connection.)
    let checkpointers: Vec<String> =
        lines.iter().filter(|l| sync(l) && l.contains("ddcoterm.db>")).map(|l| thread(l)).collect();
    let file = find("fsync of the chunk file", &|l| sync(l) && l.contains("/d1/00000001>"));
    let dir = find("fsync of the session directory", &|l| sync(l) && l.contains("/d1>"));
    let commit = find("sync of the database WAL by the commit", &|l| {
        sync(l) && l.contains("ddcoterm.db-wal>") && !checkpointers.contains(&thread(l))
    });
    let answer = find("the 201 on the socket", &|l| l.contains("HTTP/1.1 201"));
    assert!(file < commit && dir < commit, "object synced after the row committed:\n{}", lines.join("\n"));
    assert!(commit < answer, "answered before the commit was synced:\n{}", lines.join("\n"));
    println!(
        "trace order: chunk fsync line {file}, dir fsync {dir}, WAL sync {commit}, 201 written {answer}"
    );

    // The first chunk of a new session also creates its directory: the day directory holding that new
    // entry is synced too, before the answer.
    let start = std::fs::read_to_string(&trace).unwrap().len();
    assert_eq!(s.chunk(&host, "d2", 0, &c[0], None).status(), 201);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text[start..].lines().collect();
    let day_dir = |l: &str| {
        let Some(path) = l.split('<').nth(1).and_then(|p| p.split('>').next()) else { return false };
        path.split("/objects/sessions/").nth(1).is_some_and(|rest| rest.split('/').count() == 3)
    };
    let day = lines.iter().position(|l| sync(l) && day_dir(l));
    let answer = lines.iter().position(|l| l.contains("HTTP/1.1 201"));
    match (day, answer) {
        (Some(d), Some(a)) => assert!(d < a, "day directory synced after the answer:\n{}", lines.join("\n")),
        _ => panic!("no day-directory sync before the 201:\n{}", lines.join("\n")),
    }
}
