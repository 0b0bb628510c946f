//! Picks and opens the two stores from the settings (`--database-url`, `--object-store`, `--data-dir`).

use std::sync::Arc;

use anyhow::{bail, Context as _};

use crate::config::Resolved;
use crate::objects::s3::S3;
use crate::objects::{LocalDir, Objects};
use crate::store::postgres::Postgres;
use crate::store::sqlite::Sqlite;
use crate::store::MetaStore;

pub async fn open_meta(s: &Resolved) -> anyhow::Result<Arc<dyn MetaStore>> {
    match s.raw.database_url.as_deref() {
        None => {
            std::fs::create_dir_all(&s.raw.data_dir)
                .with_context(|| format!("creating the data directory {}", s.raw.data_dir.display()))?;
            let path = s.raw.data_dir.join("ddcoterm.db");
            let db = Sqlite::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            Ok(Arc::new(db))
        }
        Some(url) if url.starts_with("sqlite:") => {
            Ok(Arc::new(Sqlite::open_url(url).await.with_context(|| format!("opening database_url {url}"))?))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // The URL may hold a password: errors name only what follows the '@'.
            let shown = url.rsplit('@').next().unwrap_or("");
            Ok(Arc::new(
                Postgres::open_url(url)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {shown}"))?,
            ))
        }
        Some(url) => bail!(
            "database_url {:?}: expected sqlite:... or postgres://...",
            url.split('@').next_back().unwrap_or(url)
        ),
    }
}

pub fn open_objects(s: &Resolved) -> anyhow::Result<Arc<dyn Objects>> {
    let dir = match s.raw.object_store.as_deref() {
        None => s.raw.data_dir.join("objects"),
        Some(url) => match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path.into(),
            _ if url.starts_with("s3://") => return Ok(Arc::new(S3::open(url)?)),
            _ => bail!("object_store {url:?}: expected file:///absolute/path or s3://bucket/prefix"),
        },
    };
    let store = LocalDir::open(&dir, s.raw.limits.syncfs_min_batch)
        .with_context(|| format!("opening the object directory {}", dir.display()))?;
    Ok(Arc::new(store))
}
