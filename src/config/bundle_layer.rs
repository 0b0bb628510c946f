//! Reads installed rule bundles as an organisation layer, verifying each detached ed25519 signature.
//!
//! Lives in `config` (layer 0) because loading policy must verify bundles; `bundle/` (keygen, sign, pull,
//! install) builds on these primitives. A bundle whose installed copy no longer verifies falls back to the
//! last good copy that `bundle pull` keeps in `<bundles>/.last-good/`; with none, loading fails closed.

use super::file_layer::yaml_error;
use super::settings::ProcessConfig;
use crate::error::ConfigError;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// Sub-directory of the bundle dir holding the last copy of each bundle that verified at install time.
pub const LAST_GOOD_DIR: &str = ".last-good";

/// The bundle document format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleDoc {
    /// Also the installed file name (`<name>.yaml`): letters, digits, `-`, `_`, `.`.
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
    /// The file actually in force (the last-good copy when the installed one failed).
    pub path: PathBuf,
    pub doc: BundleDoc,
    pub lines: std::sync::Arc<super::lines::Lines>,
    /// Key id of the trusted key that verified it; `None` when unsigned (allowed only with no trusted keys).
    pub signer: Option<String>,
    /// Set when the installed file failed verification and the last good copy is in force instead: the
    /// warning to show (the loader must surface it; policy is still the organisation's).
    pub fallback: Option<String>,
}

/// Path of the detached signature for a bundle file.
pub fn sig_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Where `bundle pull` keeps the last good copy of the bundle installed as `installed`.
pub fn last_good_path(installed: &Path) -> PathBuf {
    let dir = installed.parent().unwrap_or(Path::new("."));
    dir.join(LAST_GOOD_DIR).join(installed.file_name().unwrap_or_default())
}

/// Short, stable id of a public key: first 16 hex chars of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let d = sha2::Sha256::digest(key.as_bytes());
    hex::encode(&d[..8])
}

/// The one meaningful line of a key or signature file: blank lines and `#` comment lines are skipped.
fn payload(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// Decodes a base64 (standard) 32-byte ed25519 public key as written in `bundles.trusted_keys` or a
/// `.pub` file (whose `#` comment lines are ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload(text))
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not a valid ed25519 key: {e}"))
}

/// Verifies `data` against the base64 signature text and any of `keys`; returns the signer's key id.
pub fn verify_detached(data: &[u8], sig_text: &str, keys: &[VerifyingKey]) -> Result<String, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload(sig_text))
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let sig = Signature::from_slice(&raw).map_err(|e| format!("malformed signature: {e}"))?;
    keys.iter()
        .find(|k| k.verify(data, &sig).is_ok())
        .map(key_id)
        .ok_or_else(|| "signature does not verify against any trusted key".to_string())
}

/// Parses every entry of `bundles.trusted_keys`; an error names the bad entry.
pub fn parse_trusted_keys(trusted_keys: &[String]) -> Result<Vec<VerifyingKey>, ConfigError> {
    trusted_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            parse_public_key(k).map_err(|m| ConfigError::Policy(format!("bundles.trusted_keys[{i}]: {m}")))
        })
        .collect()
}

/// A bundle name becomes a file name: refuse anything that could escape the bundle dir or hide.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key `name`: `{name}` is not a valid bundle name (1-100 of letters, digits, `-`, `_`, `.`; not \
             starting with `.`)"
        ))
    }
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
    let lines = super::lines::Lines::new(text);
    check_name(&doc.name).map_err(|m| ConfigError::invalid(path, lines.get("name"), None, m))?;
    Ok(BundleFile { path: path.into(), doc, lines, signer, fallback: None })
}

/// Reads `path` and its `.sig` (if any) and verifies them; permission problems are errors.
pub fn read_verified(path: &Path, keys: &[VerifyingKey]) -> Result<BundleFile, ConfigError> {
    let io = |e: std::io::Error| ConfigError::Io { path: path.into(), msg: e.to_string() };
    super::trust::check_org(path, "bundle")?;
    let data = std::fs::read(path).map_err(io)?;
    let sig = match std::fs::read_to_string(sig_path(path)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ConfigError::Io { path: sig_path(path), msg: e.to_string() }),
    };
    parse_verified(path, &data, sig.as_deref(), keys)
}

/// Checks that a directory holding org policy cannot be rewritten by group or others.
fn check_dir(dir: &Path, what: &'static str) -> Result<(), ConfigError> {
    super::trust::check_org(dir, what)
}

/// Loads one installed bundle; when it fails verification, the last good copy (verified again) stands in,
/// with a warning in `fallback`. No good copy: the original error, so that org policy fails closed.
pub fn load_one(path: &Path, keys: &[VerifyingKey]) -> Result<BundleFile, ConfigError> {
    match read_verified(path, keys) {
        Ok(b) => Ok(b),
        Err(e @ (ConfigError::Untrusted { .. } | ConfigError::Io { .. })) => Err(e),
        Err(e) => {
            let good = last_good_path(path);
            if !good.exists() {
                return Err(ConfigError::invalid(
                    path,
                    None,
                    None,
                    format!(
                        "{}; no last good copy at {} (run `ddcoterm bundle pull` or reinstall the bundle)",
                        strip_path(&e, path),
                        good.display()
                    ),
                ));
            }
            if let Some(parent) = good.parent() {
                check_dir(parent, "bundle directory")?;
            }
            let mut b = read_verified(&good, keys).map_err(|e2| {
                ConfigError::invalid(
                    path,
                    None,
                    None,
                    format!("{}; the last good copy failed too: {e2}", strip_path(&e, path)),
                )
            })?;
            b.fallback = Some(format!(
                "{}; using the last good copy {} (bundle {} r{})",
                e,
                good.display(),
                b.doc.name,
                b.doc.revision
            ));
            Ok(b)
        }
    }
}

/// The message of `e` without its leading `path:` (to avoid naming the file twice).
fn strip_path(e: &ConfigError, path: &Path) -> String {
    let s = e.to_string();
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
}

/// The installed bundle files in `dir` (`*.yaml`/`*.yml`, sorted by name); a missing dir is none.
pub fn installed_paths(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::Io { path: dir.into(), msg: e.to_string() }),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Loads every `*.yaml` bundle in `dir` (sorted by file name). A missing dir is no bundles. Bundles in
/// force from their last good copy carry the warning in [`BundleFile::fallback`].
pub fn load_dir(dir: &Path, trusted_keys: &[String]) -> Result<Vec<BundleFile>, ConfigError> {
    let keys = parse_trusted_keys(trusted_keys)?;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    check_dir(dir, "bundle directory")?;
    installed_paths(dir)?.iter().map(|p| load_one(p, &keys)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use std::os::unix::fs::PermissionsExt;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        key: SigningKey,
        trusted: Vec<String>,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundles");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let trusted = vec![B64.encode(key.verifying_key().as_bytes())];
        Fixture { _tmp: tmp, dir, key, trusted }
    }

    fn doc(rev: u64) -> String {
        format!("name: org\nrevision: {rev}\nprocess_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: true\n          actions: [approval]\n")
    }

    fn put(f: &Fixture, path: &Path, text: &str, signed: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        if signed {
            let sig = B64.encode(f.key.sign(text.as_bytes()).to_bytes());
            std::fs::write(sig_path(path), format!("{sig}\n")).unwrap();
        }
    }

    #[test]
    fn signed_bundle_loads_with_its_signer() {
        let f = fixture();
        put(&f, &f.dir.join("org.yaml"), &doc(3), true);
        let b = load_dir(&f.dir, &f.trusted).unwrap();
        assert_eq!((b[0].doc.revision, b[0].fallback.is_none()), (3, true));
        assert_eq!(b[0].signer.as_deref(), Some(key_id(&f.key.verifying_key()).as_str()));
    }

    #[test]
    fn tampered_install_falls_back_to_last_good_with_a_warning() {
        let f = fixture();
        let p = f.dir.join("org.yaml");
        put(&f, &last_good_path(&p), &doc(3), true);
        put(&f, &p, &doc(3), true);
        std::fs::write(&p, doc(3).replace("rule: true", "rule: false")).unwrap();
        let b = load_dir(&f.dir, &f.trusted).unwrap();
        assert_eq!(b[0].path, last_good_path(&p));
        let w = b[0].fallback.clone().unwrap();
        assert!(w.contains("does not verify") && w.contains(".last-good"), "{w}");
        assert_eq!(b[0].doc.process_config.commands[0].rules[0].rule, "true");
    }

    #[test]
    fn tampered_install_without_good_copy_fails_closed() {
        let f = fixture();
        let p = f.dir.join("org.yaml");
        put(&f, &p, &doc(3), true);
        std::fs::write(&p, doc(4)).unwrap();
        let e = load_dir(&f.dir, &f.trusted).unwrap_err().to_string();
        assert!(e.contains("org.yaml") && e.contains("no last good copy"), "{e}");
    }

    #[test]
    fn unsigned_refused_with_keys_and_accepted_without() {
        let f = fixture();
        put(&f, &f.dir.join("org.yaml"), &doc(1), false);
        let e = load_dir(&f.dir, &f.trusted).unwrap_err().to_string();
        assert!(e.contains("unsigned bundle refused"), "{e}");
        assert_eq!(load_dir(&f.dir, &[]).unwrap()[0].signer, None);
    }

    #[test]
    fn writable_by_others_is_refused_for_dir_and_file() {
        let f = fixture();
        let p = f.dir.join("org.yaml");
        put(&f, &p, &doc(1), true);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load_dir(&f.dir, &f.trusted).unwrap_err();
        assert!(matches!(e, ConfigError::Untrusted { .. }), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&f.dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = load_dir(&f.dir, &f.trusted).unwrap_err().to_string();
        assert!(e.contains("bundle directory") && e.contains("chmod go-w"), "{e}");
    }

    #[test]
    fn bad_trusted_key_and_key_comments() {
        let e = load_dir(Path::new("/nonexistent"), &["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("bundles.trusted_keys[0]"), "{e}");
        let k = SigningKey::from_bytes(&[1u8; 32]).verifying_key();
        let text = format!("# comment\n\n{}\n", B64.encode(k.as_bytes()));
        assert_eq!(parse_public_key(&text).unwrap(), k);
    }

    #[test]
    fn hidden_and_temp_files_are_not_bundles() {
        let f = fixture();
        put(&f, &f.dir.join("org.yaml"), &doc(1), true);
        put(&f, &f.dir.join(".org.yaml.abc.tmp"), "garbage: [", false);
        put(&f, &f.dir.join(".hidden.yaml"), "garbage: [", false);
        assert_eq!(load_dir(&f.dir, &f.trusted).unwrap().len(), 1);
    }
}
