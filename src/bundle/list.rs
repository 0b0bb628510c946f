//! `bundle list`: every installed bundle with its revision, signer, source, fetch time and whether it is in
//! force, plus sources whose last pull failed.

use super::state::{State, Status};
use super::BundleError;
use crate::config::bundle_layer::{installed_paths, load_one};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use std::path::Path;

/// One row of `bundle list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Bundle name (the file stem when the file does not parse).
    pub name: String,
    /// Revision in force (`None` when nothing verifies).
    pub revision: Option<u64>,
    /// Installed file.
    pub file: Option<String>,
    /// Key id that verified the copy in force.
    pub signer: Option<String>,
    pub source: Option<String>,
    pub fetched_at: Option<String>,
    /// `ok` when the installed file verifies and its last pull succeeded; else `failed`.
    pub status: &'static str,
    /// Why `failed`: a verification error, a fallback to the last good copy, or the last pull error.
    pub error: Option<String>,
}

/// Builds the listing of `dir` against `keys`.
pub fn list(dir: &Path, keys: &[VerifyingKey]) -> Result<Vec<Entry>, BundleError> {
    let state = State::load(dir)?;
    let paths = installed_paths(dir).map_err(|e| BundleError::Invalid(e.to_string()))?;
    let mut out = Vec::new();
    for path in &paths {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut e = Entry {
            name: stem.clone(),
            revision: None,
            file: Some(path.display().to_string()),
            signer: None,
            source: None,
            fetched_at: None,
            status: "ok",
            error: None,
        };
        match load_one(path, keys) {
            Ok(b) => {
                e.name = b.doc.name.clone();
                e.revision = Some(b.doc.revision);
                e.signer = b.signer.clone();
                if let Some(w) = b.fallback {
                    e.status = "failed";
                    e.error = Some(w);
                }
            }
            Err(err) => {
                e.status = "failed";
                e.error = Some(format!("{err}; this bundle makes the configuration fail to load"));
            }
        }
        let src = state.sources.iter().find(|(_, s)| s.bundle.as_deref() == Some(e.name.as_str()));
        if let Some((url, s)) = src {
            e.source = Some(url.clone());
            e.fetched_at = s.fetched_at.clone();
            if s.status == Status::Failed && e.status == "ok" {
                e.status = "failed";
                e.error =
                    s.error.as_ref().map(|m| format!("last pull failed ({m}); this revision stays in force"));
            }
        } else if let Some(i) = state.installed.get(&e.name) {
            e.source = Some(i.source.clone());
        }
        out.push(e);
    }
    // Sources that never delivered a bundle that is installed now.
    for (url, s) in &state.sources {
        let shown = out.iter().any(|e| e.source.as_deref() == Some(url.as_str()));
        if !shown && s.status == Status::Failed {
            out.push(Entry {
                name: s.bundle.clone().unwrap_or_else(|| "-".into()),
                revision: None,
                file: None,
                signer: None,
                source: Some(url.clone()),
                fetched_at: s.fetched_at.clone(),
                status: "failed",
                error: s.error.clone(),
            });
        }
    }
    Ok(out)
}
