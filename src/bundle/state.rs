//! The pull state sidecar `<bundles>/.state.json`: per-source ETag, fetch times and last error, and the
//! highest revision ever installed per bundle (the anti-rollback floor that survives a deleted file).

use super::{fsutil, BundleError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the sidecar inside the bundle dir (starts with `.`: never read as a bundle).
pub const STATE_FILE: &str = ".state.json";

/// Outcome of the last pull of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

/// What the last pulls of one source URL did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// Bundle name this source last delivered.
    #[serde(default)]
    pub bundle: Option<String>,
    /// ETag of the content that is installed; cleared on failure so that the next pull fetches again.
    #[serde(default)]
    pub etag: Option<String>,
    /// Last time the source's content was confirmed installed (200 installed or up to date, or 304).
    #[serde(default)]
    pub fetched_at: Option<String>,
    /// Last attempt, successful or not.
    pub checked_at: String,
    pub status: Status,
    /// Why the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// The installed revision of one bundle, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledState {
    pub revision: u64,
    /// SHA-256 of the installed bytes: the same revision with other content is refused.
    pub sha256: String,
    pub source: String,
    pub signer: String,
    pub installed_at: String,
}

/// The whole sidecar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub sources: BTreeMap<String, SourceState>,
    #[serde(default)]
    pub installed: BTreeMap<String, InstalledState>,
}

/// `<dir>/.state.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

impl State {
    /// Reads the sidecar; missing is empty. A corrupt sidecar is an error (it holds the rollback floor).
    pub fn load(dir: &Path) -> Result<State, BundleError> {
        let path = state_path(dir);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                BundleError::io(&path, format!("corrupt pull state ({e}); fix or remove it, then pull again"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(BundleError::io(&path, e)),
        }
    }

    /// Writes the sidecar atomically (0644: it holds no secret).
    pub fn save(&self, dir: &Path) -> Result<(), BundleError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| BundleError::io(state_path(dir), e))?;
        json.push(b'\n');
        fsutil::atomic_write(&state_path(dir), &json, 0o644)
    }

    /// Records a failed attempt for `url`: keeps what is installed, forgets the ETag.
    pub fn record_failure(&mut self, url: &str, error: &str) {
        let now = super::now_rfc3339();
        let e = self.sources.entry(url.to_string()).or_insert_with(|| SourceState {
            bundle: None,
            etag: None,
            fetched_at: None,
            checked_at: now.clone(),
            status: Status::Failed,
            error: None,
        });
        e.etag = None;
        e.checked_at = now;
        e.status = Status::Failed;
        e.error = Some(error.to_string());
    }

    /// Records a successful attempt for `url`.
    pub fn record_success(&mut self, url: &str, bundle: &str, etag: Option<String>) {
        let now = super::now_rfc3339();
        self.sources.insert(
            url.to_string(),
            SourceState {
                bundle: Some(bundle.to_string()),
                etag,
                fetched_at: Some(now.clone()),
                checked_at: now,
                status: Status::Ok,
                error: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_clears_etag_and_keeps_bundle_then_success_clears_error() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::default();
        s.record_success("https://x/b.yaml", "b", Some("\"v1\"".into()));
        s.record_failure("https://x/b.yaml", "bad signature");
        s.save(d.path()).unwrap();
        let s2 = State::load(d.path()).unwrap();
        let e = &s2.sources["https://x/b.yaml"];
        assert_eq!((e.status, e.etag.as_deref(), e.bundle.as_deref()), (Status::Failed, None, Some("b")));
        assert_eq!(e.error.as_deref(), Some("bad signature"));
        assert!(e.fetched_at.is_some(), "fetched_at is the last good fetch");
        let mut s3 = s2.clone();
        s3.record_success("https://x/b.yaml", "b", None);
        assert_eq!(s3.sources["https://x/b.yaml"].error, None);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(state_path(d.path()), "{not json").unwrap();
        let e = State::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(".state.json") && e.contains("corrupt"), "{e}");
    }
}
