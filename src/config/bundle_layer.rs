//! Reads installed rule bundles as an organisation layer, verifying each detached ed25519 signature.
//!
//! Lives in `config` (layer 0) because loading policy must verify bundles; `bundle/` (keygen, sign, pull,
//! install) builds on these primitives.

use super::file_layer::{check_not_writable_by_others, line_map, yaml_error};
use super::settings::ProcessConfig;
use crate::error::ConfigError;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The bundle document format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleDoc {
    pub name: String,
    /// Monotonically increasing; a lower revision than the installed one is refused (no rollback).
    pub revision: u64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub process_config: ProcessConfig,
}

/// A bundle as loaded from disk.
#[derive(Debug, Clone)]
pub struct BundleFile {
    pub path: PathBuf,
    pub doc: BundleDoc,
    pub lines: BTreeMap<String, usize>,
    /// Key id of the trusted key that verified it; `None` when unsigned (allowed only with no trusted keys).
    pub signer: Option<String>,
}

/// Path of the detached signature for a bundle file.
pub fn sig_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Short, stable id of a public key: first 16 hex chars of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let d = sha2::Sha256::digest(key.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Decodes a base64 (standard) 32-byte ed25519 public key as written in `bundles.trusted_keys`.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not a valid ed25519 key: {e}"))
}

/// Verifies `data` against the base64 signature text and any of `keys`; returns the signer's key id.
pub fn verify_detached(data: &[u8], sig_text: &str, keys: &[VerifyingKey]) -> Result<String, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig_text.trim())
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let sig = Signature::from_slice(&raw).map_err(|e| format!("malformed signature: {e}"))?;
    keys.iter()
        .find(|k| k.verify(data, &sig).is_ok())
        .map(key_id)
        .ok_or_else(|| "signature does not verify against any trusted key".to_string())
}

/// Parses and verifies bundle bytes; `path` is for messages only.
pub fn parse_verified(
    path: &Path,
    data: &[u8],
    sig_text: Option<&str>,
    keys: &[VerifyingKey],
) -> Result<BundleFile, ConfigError> {
    let signer = match (keys.is_empty(), sig_text) {
        (true, _) => None,
        (false, None) => {
            return Err(ConfigError::invalid(
                path,
                None,
                None,
                format!(
                    "unsigned bundle refused: trusted keys are configured but {} is missing",
                    sig_path(path).display()
                ),
            ))
        }
        (false, Some(sig)) => Some(
            verify_detached(data, sig, keys)
                .map_err(|m| ConfigError::invalid(path, None, None, format!("bundle refused: {m}")))?,
        ),
    };
    let text = std::str::from_utf8(data)
        .map_err(|_| ConfigError::invalid(path, None, None, "bundle is not UTF-8"))?;
    let doc: BundleDoc = serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))?;
    Ok(BundleFile { path: path.into(), doc, lines: line_map(text), signer })
}

/// Loads every `*.yaml` bundle in `dir` (sorted by file name). A missing dir is no bundles.
pub fn load_dir(dir: &Path, trusted_keys: &[String]) -> Result<Vec<BundleFile>, ConfigError> {
    let keys = trusted_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            parse_public_key(k).map_err(|m| ConfigError::Policy(format!("bundles.trusted_keys[{i}]: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::Io { path: dir.into(), msg: e.to_string() }),
    };
    let dir_meta =
        std::fs::metadata(dir).map_err(|e| ConfigError::Io { path: dir.into(), msg: e.to_string() })?;
    check_not_writable_by_others(
        dir,
        std::os::unix::fs::PermissionsExt::mode(&dir_meta.permissions()),
        "bundle directory",
    )?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(&path)
            .map_err(|e| ConfigError::Io { path: path.clone(), msg: e.to_string() })?;
        check_not_writable_by_others(
            &path,
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()),
            "bundle",
        )?;
        let data =
            std::fs::read(&path).map_err(|e| ConfigError::Io { path: path.clone(), msg: e.to_string() })?;
        let sig = std::fs::read_to_string(sig_path(&path)).ok();
        out.push(parse_verified(&path, &data, sig.as_deref(), &keys)?);
    }
    Ok(out)
}
