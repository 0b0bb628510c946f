//! Objects in a local directory (`--data-dir`/objects, the embedded default).
//!
//! `object_store`'s `LocalFileSystem` renames into place without fsync, so a 2xx could name bytes still only
//! in the page cache; this store adds the syncs. A group-commit round ([`Objects::make_durable`]) makes a
//! whole batch durable at once: a small batch by `fdatasync` of each file and `fsync` of each directory
//! holding one, a batch of `limits.syncfs_min_batch` files or more by ONE `syncfs(2)` of the objects'
//! filesystem. Under load the per-file way costs two opens, two syncs and a thread hand-off per chunk, more
//! kernel time than the data; one `syncfs` writes the same dirty pages and commits the journal once
//! (PostgreSQL's `recovery_init_sync_method=syncfs` is the same trade). Since Linux 5.8 `syncfs` reports
//! writeback errors to every open descriptor of the filesystem, so a failed write is still a failed round.

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore as _, PutPayload};

use super::{get_range, unavailable, ObjectError, Objects, Put, Result};

/// Objects in a local directory, synced before every acknowledgement.
pub struct LocalDir {
    root: PathBuf,
    fs: LocalFileSystem,
    /// Directories whose own entry in their parent is known to be durable.
    synced_dirs: Arc<Mutex<HashSet<PathBuf>>>,
    /// The root, kept open: `syncfs` names the filesystem through it, and a writeback error that happens
    /// between two rounds is reported on it at the next one.
    root_handle: Arc<std::fs::File>,
    /// Rounds of at least this many files use `syncfs` (0: never).
    syncfs_min_batch: usize,
}

impl LocalDir {
    /// Opens (creating) `root`. `syncfs_min_batch`: `limits.syncfs_min_batch`.
    pub fn open(root: &FsPath, syncfs_min_batch: usize) -> std::io::Result<LocalDir> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(std::io::Error::other)?;
        let root_handle = Arc::new(std::fs::File::open(&root)?);
        Ok(LocalDir { root, fs, synced_dirs: Arc::default(), root_handle, syncfs_min_batch })
    }

    fn key(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|e| ObjectError::Unavailable(format!("bad object key {key:?}: {e}")))
    }

    /// Syncs the file and its directory (the file's new entry), then makes each new directory's own entry
    /// durable by syncing its parent, climbing until a directory already known to be durable.
    async fn sync(&self, key: &str) -> Result<()> {
        let file = self.root.join(key);
        sync_files(self.root.clone(), vec![file], self.synced_dirs.clone()).await
    }
}

/// Creates `path` (and its missing directories) with `bytes`, unless it exists. A failed write removes
/// the file again.
fn write_new(path: &FsPath, bytes: &[u8]) -> std::io::Result<Put> {
    use std::io::Write as _;
    let open = || std::fs::OpenOptions::new().write(true).create_new(true).open(path);
    let opened = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()
        }
        r => r,
    };
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Put::Exists),
        Err(e) => return Err(e),
    };
    if let Err(e) = file.write_all(bytes) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(Put::Created)
}

/// Most blocking-pool threads one per-file sync round uses: enough for the journal to merge the batch's
/// syncs into few commits.
const SYNC_THREADS: usize = 32;

/// Every distinct directory holding one of `files`.
fn dirs_of(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files.iter().filter_map(|f| f.parent().map(FsPath::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// What one per-file sync round syncs: every file, and every distinct directory holding one.
fn sync_work(files: Vec<PathBuf>) -> (Vec<(PathBuf, bool)>, Vec<PathBuf>) {
    let dirs = dirs_of(&files);
    let work = files.into_iter().map(|f| (f, true)).chain(dirs.iter().cloned().map(|d| (d, false))).collect();
    (work, dirs)
}

/// `fdatasync` of each file and `fsync` of each directory of `part`, in order, on the calling thread.
fn sync_part(part: &[(PathBuf, bool)]) -> std::io::Result<()> {
    for (path, is_file) in part {
        let f = std::fs::File::open(path)?;
        if *is_file {
            f.sync_data()?;
        } else {
            f.sync_all()?;
        }
    }
    Ok(())
}

/// Remembers `dir` as durable; one entry per session directory, bounded by forgetting now and then (the
/// cost is one extra directory sync per session afterwards).
fn remember(durable: &Mutex<HashSet<PathBuf>>, dir: PathBuf) {
    if let Ok(mut s) = durable.lock() {
        if s.len() >= 100_000 {
            s.clear();
        }
        s.insert(dir);
    }
}

/// Climbs from each of `dirs` towards `root` until a directory already known to be durable, remembering
/// each one passed as durable. `sync_parents`: first make the directory's own entry durable by syncing its
/// parent (a per-file round must); after a `syncfs` every entry already is.
fn climb_new_dirs(
    root: &FsPath,
    dirs: Vec<PathBuf>,
    durable: &Mutex<HashSet<PathBuf>>,
    sync_parents: bool,
) -> std::io::Result<()> {
    for mut dir in dirs {
        while dir != root && dir.starts_with(root) {
            if durable.lock().map(|s| s.contains(&dir)).unwrap_or(false) {
                break;
            }
            let Some(parent) = dir.parent().map(FsPath::to_path_buf) else { break };
            if sync_parents {
                std::fs::File::open(&parent)?.sync_all()?;
            }
            remember(durable, dir.clone());
            dir = parent;
        }
    }
    Ok(())
}

/// The per-file round: `fdatasync` of every file and `fsync` of every distinct directory holding one,
/// spread over up to [`SYNC_THREADS`] threads of Tokio's blocking pool (kept between rounds), then new
/// directories' own entries (climbing to a known one).
async fn sync_files(root: PathBuf, files: Vec<PathBuf>, durable: Arc<Mutex<HashSet<PathBuf>>>) -> Result<()> {
    let (work, dirs) = sync_work(files);
    let per = work.len().div_ceil(SYNC_THREADS).max(1);
    // Every part is started before any is awaited, so their syncs are in flight together.
    let handles: Vec<_> = work
        .chunks(per)
        .map(<[_]>::to_vec)
        .map(|part| tokio::task::spawn_blocking(move || sync_part(&part)))
        .collect();
    for h in handles {
        h.await.map_err(unavailable)?.map_err(unavailable)?;
    }
    let known = durable.lock().map(|s| dirs.iter().all(|d| s.contains(d))).unwrap_or(false);
    if known {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || climb_new_dirs(&root, dirs, &durable, true))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}

/// The whole-filesystem round: one `syncfs` covers every file, every directory entry and every new
/// directory of the batch; afterwards the batch's directories (and their parents up to the root) are
/// known durable, so a later small round does not sync them again.
async fn sync_filesystem(
    root: PathBuf,
    handle: Arc<std::fs::File>,
    files: Vec<PathBuf>,
    durable: Arc<Mutex<HashSet<PathBuf>>>,
) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        rustix::fs::syncfs(&*handle).map_err(|e| unavailable(format!("syncfs {}: {e}", root.display())))?;
        climb_new_dirs(&root, dirs_of(&files), &durable, false).map_err(unavailable)
    })
    .await
    .map_err(unavailable)?
}

#[async_trait]
impl Objects for LocalDir {
    async fn put_create(&self, key: &str, bytes: Bytes) -> Result<Put> {
        let put = self.put_create_staged(key, bytes).await?;
        if put == Put::Created {
            self.sync(key).await?;
        }
        Ok(put)
    }

    /// Written in place (`O_CREAT|O_EXCL`), not through a staging file linked into place as
    /// `LocalFileSystem` does: two fewer directory changes per chunk for the sync round to write. A file
    /// left half-written by a crash is never acknowledged (no row names it) and is found as `Exists` by the
    /// retry, which compares and replaces it (`ingest::put_chunk`).
    ///
    /// Written on the request's own task rather than the blocking pool: creating a file and copying one
    /// chunk into the page cache takes tens of microseconds (nothing is synced here: the sync round does
    /// that for a whole batch), less than the two thread hand-offs the pool costs. Saturated ingest took
    /// 8-10% less server CPU per acknowledgement this way (docs/server.md).
    async fn put_create_staged(&self, key: &str, bytes: Bytes) -> Result<Put> {
        Self::key(key)?;
        let path = self.root.join(key);
        write_new(&path, &bytes).map_err(|e| unavailable(format!("writing {key}: {e}")))
    }

    async fn make_durable(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for k in keys {
            Self::key(k)?;
        }
        let files: Vec<PathBuf> = keys.iter().map(|k| self.root.join(k)).collect();
        if self.syncfs_min_batch > 0 && files.len() >= self.syncfs_min_batch {
            let handle = self.root_handle.clone();
            return sync_filesystem(self.root.clone(), handle, files, self.synced_dirs.clone()).await;
        }
        sync_files(self.root.clone(), files, self.synced_dirs.clone()).await
    }

    async fn put_overwrite(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.fs.put(&Self::key(key)?, PutPayload::from_bytes(bytes)).await.map_err(unavailable)?;
        self.sync(key).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        match self.fs.get(&Self::key(key)?).await {
            Ok(r) => r.bytes().await.map_err(unavailable),
            Err(object_store::Error::NotFound { .. }) => Err(ObjectError::NotFound(key.to_string())),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        get_range(&self.fs, &Self::key(key)?, key, range).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.fs.delete(&Self::key(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(&self.root).await.map(|_| ()).map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_only_put_keeps_the_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path(), 8).unwrap();
        let key = "sessions/2026/01/02/s1/00000000";
        assert_eq!(store.put_create(key, Bytes::from_static(b"one\n")).await.unwrap(), Put::Created);
        assert_eq!(store.put_create(key, Bytes::from_static(b"two\n")).await.unwrap(), Put::Exists);
        assert_eq!(store.get(key).await.unwrap(), Bytes::from_static(b"one\n"));
        store.put_overwrite(key, Bytes::from_static(b"three\n")).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), Bytes::from_static(b"three\n"));
        assert_eq!(store.get_range(key, 1..3).await.unwrap(), Bytes::from_static(b"hr"));
        assert_eq!(store.get_range(key, 4..100).await.unwrap(), Bytes::from_static(b"e\n"));
        assert_eq!(store.get_range(key, 50..100).await.unwrap(), Bytes::new());
        store.delete(key).await.unwrap();
        assert!(matches!(store.get_range(key, 0..1).await, Err(ObjectError::NotFound(_))));
        store.delete(key).await.unwrap();
        assert!(matches!(store.get(key).await, Err(ObjectError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_large_round_syncs_the_filesystem_and_knows_its_directories_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path(), 3).unwrap();
        let keys: Vec<String> = (0..3).map(|i| format!("sessions/2026/01/02/s{i}/00000000")).collect();
        for k in &keys {
            assert_eq!(store.put_create_staged(k, Bytes::from_static(b"x\n")).await.unwrap(), Put::Created);
        }
        store.make_durable(&keys).await.unwrap();
        let known = store.synced_dirs.lock().unwrap().clone();
        for i in 0..3 {
            assert!(known.contains(&store.root.join(format!("sessions/2026/01/02/s{i}"))), "{known:?}");
        }
        assert!(known.contains(&store.root.join("sessions")), "{known:?}");
        assert!(!known.contains(&store.root), "the root itself is never climbed past: {known:?}");
        for k in &keys {
            assert_eq!(store.get(k).await.unwrap(), Bytes::from_static(b"x\n"));
        }
    }
}
