//! Signed rule bundles: key pairs, signing, validation, pulling from `bundles.sources` and installing.
//!
//! Reading installed bundles as a config layer lives in `config::bundle_layer` (layer 0); this module is
//! everything that creates or changes bundles (DESIGN.md §9).

pub mod fetch;
pub mod fsutil;
pub mod install;
pub mod keys;
pub mod list;
pub mod pull;
pub mod sign;
pub mod state;
pub mod system;
pub mod validate;

pub use crate::config::bundle_layer::{key_id, sig_path, BundleDoc, BundleFile};

use std::path::PathBuf;

/// What went wrong with a bundle operation; each message names the file, key or URL to look at.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file we read or write.
    #[error("{path}: {msg}", path = path.display())]
    Io { path: PathBuf, msg: String },
    /// A key file that is missing, malformed or too open.
    #[error("{path}: {msg}", path = path.display())]
    Key { path: PathBuf, msg: String },
    /// A bundle that does not parse, does not compile, or is not signed by a trusted key.
    #[error("{0}")]
    Invalid(String),
    /// A source URL that could not be fetched.
    #[error("{url}: {msg}")]
    Fetch { url: String, msg: String },
    /// A fetched bundle that verified but may not replace the installed one (rollback).
    #[error("{0}")]
    Refused(String),
    /// Nothing to work with (no keys, no sources).
    #[error("{0}")]
    Setup(String),
}

impl BundleError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        BundleError::Io { path: path.into(), msg: e.to_string() }
    }
}

/// The exit status of a bundle command that failed: I/O 74, setup or key 64, anything else refused (1).
impl From<BundleError> for crate::error::Exit {
    fn from(e: BundleError) -> crate::error::Exit {
        use crate::error::Exit;
        let msg = e.to_string();
        match e {
            BundleError::Io { .. } => Exit::io(msg),
            BundleError::Setup(_) | BundleError::Key { .. } => Exit::usage(msg),
            _ => Exit::refused(msg),
        }
    }
}

/// Current UTC time as RFC 3339, for `fetched_at` / `checked_at`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Lower-case hex SHA-256 of bundle bytes: identifies content for the anti-rollback check.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
