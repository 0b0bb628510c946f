//! Recording objects: the trait the ingest path writes through, and its local-directory implementation.
//!
//! The local store is `object_store`'s `LocalFileSystem` plus what it leaves out: it renames into place
//! without fsync, so a 2xx could name bytes still only in the page cache. `put` here returns only after the
//! file and every directory on its path are synced (DESIGN.md §12 "A 2xx means durable").

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore as _, PutMode, PutOptions, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object {0} not found")]
    NotFound(String),
    /// The store is down or refused the write: the caller answers 503 and the host retries.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, ObjectError>;

/// How a create-only put ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    /// An object was already there (left by an earlier attempt); nothing was written.
    Exists,
}

#[async_trait]
pub trait Objects: Send + Sync {
    /// Writes `key` only if absent; durable when this returns.
    async fn put_create(&self, key: &str, bytes: Bytes) -> Result<Put>;
    /// Writes `key` only if absent, without waiting for durability: the commit queue calls
    /// [`Objects::make_durable`] for a whole batch of keys before any row naming them commits.
    async fn put_create_staged(&self, key: &str, bytes: Bytes) -> Result<Put> {
        self.put_create(key, bytes).await
    }
    /// Makes every key written by `put_create_staged` (or left by an earlier attempt) durable, in one round.
    /// Stores whose writes are durable when acknowledged (S3) have nothing to do.
    async fn make_durable(&self, _keys: &[String]) -> Result<()> {
        Ok(())
    }
    /// Writes `key` whether or not it exists; durable when this returns. Only for objects no row names yet.
    async fn put_overwrite(&self, key: &str, bytes: Bytes) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// Bytes `range` of `key` (end exclusive, clamped to the object's end): what readers of long recordings
    /// use so that a window or an index build never holds a whole 200 MB cast in memory.
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes>;
    /// Deleting an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;
}

/// Objects in a local directory (`--data-dir`/objects), synced before every acknowledgement.
pub struct LocalDir {
    root: PathBuf,
    fs: LocalFileSystem,
    /// Directories whose own entry in their parent is known to be durable.
    synced_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

fn unavailable(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(e.to_string())
}

impl LocalDir {
    pub fn open(root: &FsPath) -> std::io::Result<LocalDir> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(std::io::Error::other)?;
        Ok(LocalDir { root, fs, synced_dirs: Arc::default() })
    }

    fn key(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|e| ObjectError::Unavailable(format!("bad object key {key:?}: {e}")))
    }

    /// Syncs the file and its directory (the file's new entry), then makes each new directory's own entry
    /// durable by syncing its parent, climbing until a directory already known to be durable.
    async fn sync(&self, key: &str) -> Result<()> {
        self.make_durable(&[key.to_string()]).await
    }
}

/// Most blocking-pool threads one sync round uses: enough for the journal to merge the batch's syncs into few
/// commits.
const SYNC_THREADS: usize = 32;

/// What one sync round syncs: every file, and every distinct directory holding one.
fn sync_work(files: Vec<PathBuf>) -> (Vec<(PathBuf, bool)>, Vec<PathBuf>) {
    let mut dirs: Vec<PathBuf> = files.iter().filter_map(|f| f.parent().map(FsPath::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
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

/// Makes each new directory's own entry durable by syncing its parent, climbing until a directory already
/// known to be durable.
fn sync_new_dirs(
    root: &FsPath,
    dirs: Vec<PathBuf>,
    durable: &Mutex<HashSet<PathBuf>>,
) -> std::io::Result<()> {
    for mut dir in dirs {
        while dir != root && dir.starts_with(root) {
            if durable.lock().map(|s| s.contains(&dir)).unwrap_or(false) {
                break;
            }
            let Some(parent) = dir.parent().map(FsPath::to_path_buf) else { break };
            std::fs::File::open(&parent)?.sync_all()?;
            if let Ok(mut s) = durable.lock() {
                // One entry per session directory: bounded by forgetting now and then (the cost is one
                // extra directory sync per session afterwards).
                if s.len() >= 100_000 {
                    s.clear();
                }
                s.insert(dir.clone());
            }
            dir = parent;
        }
    }
    Ok(())
}

/// One sync round: `fdatasync` of every file and `fsync` of every distinct directory holding one, spread
/// over up to [`SYNC_THREADS`] threads of Tokio's blocking pool, then new directories' own entries (climbing
/// to a known one). The pool keeps its threads between rounds: a round used to start (and end) a thread per
/// file and directory, which under load cost more kernel time per acknowledgement than the syncs.
async fn sync_round(root: PathBuf, files: Vec<PathBuf>, durable: Arc<Mutex<HashSet<PathBuf>>>) -> Result<()> {
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
    tokio::task::spawn_blocking(move || sync_new_dirs(&root, dirs, &durable))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}

#[async_trait]
impl Objects for LocalDir {
    async fn put_create(&self, key: &str, bytes: Bytes) -> Result<Put> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.fs.put_opts(&Self::key(key)?, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(Put::Exists),
            Err(e) => return Err(unavailable(e)),
        }
        self.sync(key).await?;
        Ok(Put::Created)
    }

    async fn put_create_staged(&self, key: &str, bytes: Bytes) -> Result<Put> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.fs.put_opts(&Self::key(key)?, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Exists),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn make_durable(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for k in keys {
            Self::key(k)?;
        }
        let files: Vec<PathBuf> = keys.iter().map(|k| self.root.join(k)).collect();
        sync_round(self.root.clone(), files, self.synced_dirs.clone()).await
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

/// A ranged read through `object_store`, clamped to the object's size (one HEAD first: asking past the end
/// is an error for some stores) so a reader may ask for "up to N bytes from here".
pub(crate) async fn get_range(
    store: &dyn object_store::ObjectStore,
    path: &Path,
    key: &str,
    range: std::ops::Range<u64>,
) -> Result<Bytes> {
    let missing = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound(key.to_string()),
        e => unavailable(e),
    };
    let size = store.head(path).await.map_err(missing)?.size;
    let (start, end) = (range.start.min(size), range.end.min(size));
    if start >= end {
        return Ok(Bytes::new());
    }
    store.get_range(path, start..end).await.map_err(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_only_put_keeps_the_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path()).unwrap();
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
}
