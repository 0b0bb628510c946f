//! Recording objects: the trait the ingest path writes through (a local directory in `local`, any
//! S3-compatible store in `s3`). Every put that returns is durable, or made durable by
//! [`Objects::make_durable`] before any row names it (DESIGN.md §12 "A 2xx means durable").

mod local;
pub mod s3;

pub use local::LocalDir;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object {0} not found")]
    NotFound(String),
    /// The store is down or refused the write: the caller answers 503 and the host retries.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, ObjectError>;

fn unavailable(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(e.to_string())
}

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
    /// Exactly bytes `range` of `key`, a range the caller knows lies inside it (a chunk inside a pack, whose
    /// offset and length the database holds): one request, no size check first.
    async fn get_within(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.get_range(key, range).await
    }
    /// Whether the group commit should pack a batch's chunks into one object when the configuration does not
    /// say (`pack_chunks`): stores that charge per request (S3) want few, large objects; a local directory
    /// syncs one file per chunk as cheaply as one pack.
    fn packs_by_default(&self) -> bool {
        false
    }
    /// Deleting an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;
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
