//! ed25519 key pairs for signing bundles: generation, key files (base64 with `#` comments), signing.
//!
//! File format: one base64 line (32-byte private seed in `.key`, 32-byte public key in `.pub`); blank lines
//! and lines starting with `#` are comments. A `.pub` line is exactly what goes into
//! `bundles.trusted_keys`.

use super::{fsutil, BundleError};
use crate::config::bundle_layer::{key_id, parse_public_key};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A new key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey, BundleError> {
    use rand::TryRngCore as _;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| BundleError::Setup(format!("no OS randomness for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `PREFIX.key` and `PREFIX.pub`.
pub fn key_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".key"), with(".pub"))
}

/// The text of a `.pub` file: a comment naming the key id, then the base64 key.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!(
        "# ddcoterm bundle signing key (ed25519), key id {}\n{}\n",
        key_id(key),
        B64.encode(key.as_bytes())
    )
}

/// Writes `PREFIX.key` (0600, never overwriting) and `PREFIX.pub` (0644); returns both paths.
pub fn write_key_pair(prefix: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), BundleError> {
    let (priv_path, pub_path) = key_paths(prefix);
    if pub_path.exists() {
        return Err(BundleError::io(&pub_path, "already exists; refusing to overwrite a key"));
    }
    let vk = key.verifying_key();
    let private = format!(
        "# ddcoterm bundle PRIVATE signing key (ed25519), key id {}; keep secret\n{}\n",
        key_id(&vk),
        B64.encode(key.to_bytes())
    );
    fsutil::create_new(&priv_path, private.as_bytes(), 0o600)?;
    fsutil::create_new(&pub_path, public_key_text(&vk).as_bytes(), 0o644)?;
    Ok((priv_path, pub_path))
}

/// Reads a private key file; refuses one that group or others can read (like ssh does).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, BundleError> {
    let key_err = |msg: String| BundleError::Key { path: path.into(), msg };
    let meta = std::fs::metadata(path).map_err(|e| key_err(e.to_string()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(key_err(format!(
            "private key is accessible by group or others (mode {:o}); run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| key_err(e.to_string()))?;
    let line: String = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let raw = B64.decode(line).map_err(|e| key_err(format!("not a ddcoterm private key (base64: {e})")))?;
    let seed: [u8; 32] =
        raw.try_into().map_err(|_| key_err("not a ddcoterm private key (expected 32 bytes)".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a `.pub` file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, BundleError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BundleError::Key { path: path.into(), msg: e.to_string() })?;
    parse_public_key(&text).map_err(|msg| BundleError::Key { path: path.into(), msg })
}

/// The detached signature file content for `data`: base64 of the 64-byte signature and a newline.
pub fn sign(key: &SigningKey, data: &[u8]) -> String {
    format!("{}\n", B64.encode(key.sign(data).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::bundle_layer::verify_detached;

    #[test]
    fn key_files_round_trip_and_sign_verifies() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path().join("org");
        let key = generate().unwrap();
        let (k, p) = write_key_pair(&prefix, &key).unwrap();
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        let sk = read_signing_key(&k).unwrap();
        let vk = read_public_key(&p).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        let sig = sign(&sk, b"bundle bytes");
        assert_eq!(verify_detached(b"bundle bytes", &sig, &[vk]).unwrap(), key_id(&vk));
        assert!(verify_detached(b"bundle bytez", &sig, &[vk]).is_err());
        // The pub line is exactly a trusted_keys entry.
        let line = std::fs::read_to_string(&p).unwrap().lines().nth(1).unwrap().to_string();
        assert_eq!(parse_public_key(&line).unwrap(), vk);
        // Never overwrite.
        assert!(write_key_pair(&prefix, &key).is_err());
    }

    #[test]
    fn refuses_an_open_private_key_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("open.key");
        std::fs::write(&p, "AAAA\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_signing_key(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_signing_key(&p).unwrap_err().to_string();
        assert!(e.contains("expected 32 bytes"), "{e}");
    }
}
