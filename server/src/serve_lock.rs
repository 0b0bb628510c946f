//! One `serve` per data directory. The embedded store (SQLite and a local directory) belongs to a single
//! server process: ingest keeps what it last committed per session in memory ([`crate::tails`]), which only
//! that process may write. A second `serve` on the same `--data-dir` is refused, naming the directory;
//! several replicas need PostgreSQL and an object store. The other subcommands (`token`, `user`, `verify`,
//! `hold`) do not take the lock and run beside a server as before.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The lock file inside the data directory.
const LOCK_FILE: &str = "serve.lock";

/// How long a start waits for the lock: a server just killed (`kill -9`, a crash) releases it only once the
/// kernel has closed its files, which can lag a restart by a moment.
const WAIT: Duration = Duration::from_secs(5);

/// Takes the data directory's lock for this process's lifetime (released when the returned file is
/// dropped or the process exits, however it exits).
pub fn acquire(data_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let started = Instant::now();
    loop {
        // flock(2): held by the open file, so released by the kernel however the process ends.
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => bail!(
                "another ddcoterm-server is already serving the data directory {} (it holds {}); run one \
                 server per data directory, or PostgreSQL (--database-url) and an object store \
                 (--object-store) for several replicas",
                data_dir.display(),
                path.display()
            ),
            Err(e) => {
                return Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_directory_and_the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        let started = Instant::now();
        let e = acquire(dir.path()).unwrap_err().to_string();
        assert!(started.elapsed() >= WAIT, "waited for a dying holder first");
        assert!(
            e.contains("already serving the data directory") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
        drop(first);
        acquire(dir.path()).unwrap();
    }
}
