//! Recording objects in any S3-compatible store (`--object-store s3://bucket/prefix`), through `object_store`.
//!
//! Endpoint, region and keys come from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). A PUT that
//! S3 answered 200 is durable, so nothing more is needed before the row commits. Create-only writes use
//! `If-None-Match: *`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

use super::{unavailable, ObjectError, Objects, Put, Result};

pub struct S3 {
    store: Arc<dyn ObjectStore>,
    /// Shown in errors and logs: `s3://bucket/prefix`, never the keys.
    url: String,
}

impl S3 {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub fn open(url: &str) -> anyhow::Result<S3> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| anyhow::anyhow!("{url:?} is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            anyhow::bail!("object_store {url:?}: no bucket name");
        }
        // Few, quick retries: with the store down, a request must come back as a 503 (the host's spool
        // retries) well within the host's own timeout, not after minutes of backoff.
        let retry =
            RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(5), ..Default::default() };
        let s3 = AmazonS3Builder::from_env()
            .with_retry(retry)
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| anyhow::anyhow!("object_store {url:?}: {e}"))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) };
        Ok(S3 { store, url: url.to_string() })
    }

    fn key(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|e| ObjectError::Unavailable(format!("bad object key {key:?}: {e}")))
    }
}

#[async_trait]
impl Objects for S3 {
    async fn put_create(&self, key: &str, bytes: Bytes) -> Result<Put> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&Self::key(key)?, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Put::Exists),
            Err(e) => Err(unavailable(format!("{}: {e}", self.url))),
        }
    }

    async fn put_overwrite(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Self::key(key)?, PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| unavailable(format!("{}: {e}", self.url)))
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        match self.store.get(&Self::key(key)?).await {
            Ok(r) => r.bytes().await.map_err(unavailable),
            Err(object_store::Error::NotFound { .. }) => Err(ObjectError::NotFound(key.to_string())),
            Err(e) => Err(unavailable(format!("{}: {e}", self.url))),
        }
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        super::get_range(self.store.as_ref(), &Self::key(key)?, key, range).await.map_err(|e| match e {
            ObjectError::Unavailable(m) => unavailable(format!("{}: {m}", self.url)),
            e => e,
        })
    }

    async fn get_within(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        match self.store.get_range(&Self::key(key)?, range).await {
            Ok(b) => Ok(b),
            Err(object_store::Error::NotFound { .. }) => Err(ObjectError::NotFound(key.to_string())),
            Err(e) => Err(unavailable(format!("{}: {e}", self.url))),
        }
    }

    fn packs_by_default(&self) -> bool {
        true
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Self::key(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(format!("{}: {e}", self.url))),
        }
    }

    async fn ping(&self) -> Result<()> {
        // A HEAD of a key that need not exist: any answer from the store but an error means it is reachable.
        match self.store.head(&Path::from("ddcoterm-readyz")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(format!("{}: {e}", self.url))),
        }
    }
}
