//! Signing a bundle file (`ddcoterm bundle sign`) and verifying one against trusted keys (`bundle verify`):
//! a bundle is signed only when it validates, and verifies only when its signature and its rules both hold.

use super::{keys, validate, BundleError, BundleFile};
use crate::config::bundle_layer::{parse_verified, sig_path};
use crate::error::Exit;
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};

/// A bundle that was signed: what it is and where its signature went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub name: String,
    pub revision: u64,
    pub key_id: String,
    pub sig: PathBuf,
}

/// Why a bundle was not signed; the step tells the exit status (unreadable 74, invalid 65).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0}")]
    Read(BundleError),
    #[error("refusing to sign an invalid bundle: {0}")]
    Invalid(BundleError),
    /// The signing key could not be read (a usage error, 64).
    #[error("{0}")]
    Key(BundleError),
    #[error("{0}")]
    Write(BundleError),
}

impl From<SignError> for Exit {
    fn from(e: SignError) -> Exit {
        match e {
            SignError::Read(_) => Exit::io(e.to_string()),
            SignError::Invalid(_) => Exit::data(e.to_string()),
            SignError::Key(_) => Exit::usage(e.to_string()),
            SignError::Write(b) => b.into(),
        }
    }
}

/// Validates `file`, then reads the key at `key_path` and writes the detached signature beside the file
/// (`<file>.sig`, mode 0644, atomically), in that order: the bundle's errors come first.
pub fn sign_file(file: &Path, key_path: &Path) -> Result<Signed, SignError> {
    let data = std::fs::read(file).map_err(|e| SignError::Read(BundleError::io(file, e)))?;
    let b = validate::check(file, &data).map_err(SignError::Invalid)?;
    let key = keys::read_signing_key(key_path).map_err(SignError::Key)?;
    let key = &key;
    let sig = keys::sign(key, &data);
    let out = sig_path(file);
    super::fsutil::atomic_write(&out, sig.as_bytes(), 0o644).map_err(SignError::Write)?;
    Ok(Signed {
        name: b.doc.name,
        revision: b.doc.revision,
        key_id: super::key_id(&key.verifying_key()),
        sig: out,
    })
}

/// Reads `file` and its `.sig` and checks both the signature (by one of `keys`) and the rules.
/// An unreadable file is [`BundleError::Io`]; anything else is [`BundleError::Invalid`].
pub fn verify_file(file: &Path, keys: &[VerifyingKey]) -> Result<BundleFile, BundleError> {
    let data = std::fs::read(file).map_err(|e| BundleError::io(file, e))?;
    let sig = std::fs::read_to_string(sig_path(file)).ok();
    let b =
        parse_verified(file, &data, sig.as_deref(), keys).map_err(|e| BundleError::Invalid(e.to_string()))?;
    validate::check(file, &data)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str =
        "name: team\nrevision: 3\nprocess_config:\n  commands:\n    - command: kubectl\n      rules: []\n";

    #[test]
    fn signs_a_valid_bundle_and_verifies_it_only_with_its_key() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("team.yaml");
        std::fs::write(&file, BUNDLE).unwrap();
        let key = keys::generate().unwrap();
        let (key_file, _) = keys::write_key_pair(&t.path().join("k"), &key).unwrap();
        let s = sign_file(&file, &key_file).unwrap();
        assert_eq!((s.name.as_str(), s.revision, s.sig.clone()), ("team", 3, sig_path(&file)));
        let b = verify_file(&file, &[key.verifying_key()]).unwrap();
        assert_eq!(b.signer.as_deref(), Some(s.key_id.as_str()));
        let other = keys::generate().unwrap();
        assert!(matches!(verify_file(&file, &[other.verifying_key()]), Err(BundleError::Invalid(_))));
        assert!(matches!(verify_file(&t.path().join("none.yaml"), &[]), Err(BundleError::Io { .. })));
    }

    #[test]
    fn an_invalid_or_missing_bundle_is_not_signed() {
        let t = tempfile::tempdir().unwrap();
        let key = t.path().join("no-such.key");
        let file = t.path().join("bad.yaml");
        std::fs::write(&file, "name: bad\nrevision: 1\nnot_a_key: 1\n").unwrap();
        let e = sign_file(&file, &key).unwrap_err();
        assert!(matches!(e, SignError::Invalid(_)), "{e}");
        assert_eq!(Exit::from(e).code, crate::error::exit::DATAERR);
        let e = sign_file(&t.path().join("none.yaml"), &key).unwrap_err();
        assert_eq!(Exit::from(e).code, crate::error::exit::IOERR);
        assert!(!sig_path(&file).exists());
    }
}
