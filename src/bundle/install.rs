//! Installs a verified bundle into the bundle dir: anti-rollback decision, then both copies (installed and
//! last good) written atomically, bundle before signature, last good first.

use super::state::{InstalledState, State};
use super::{fsutil, sha256_hex, BundleError};
use crate::config::bundle_layer::{
    check_name, last_good_path, read_verified, sig_path, BundleFile, LAST_GOOD_DIR,
};
use ed25519_dalek::VerifyingKey;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A revision already known for a bundle name, with the hash of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub revision: u64,
    pub sha256: String,
}

/// What to do with a fetched bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Newer than anything known (or the first): install it.
    Install,
    /// The same revision and content we installed, but the installed copy is missing or broken: rewrite it.
    Repair,
    /// Already installed and intact.
    UpToDate,
}

/// The anti-rollback rule. `known` holds every revision we can still prove was installed (state file,
/// installed file, last good copy); `intact` says whether the installed file verifies with `new`'s content.
pub fn decide(known: &[Known], new: &Known, intact: bool) -> Result<Decision, String> {
    let Some(floor) = known.iter().map(|k| k.revision).max() else { return Ok(Decision::Install) };
    if new.revision < floor {
        return Err(format!(
            "revision {} is lower than the installed revision {floor}: rollback refused",
            new.revision
        ));
    }
    if new.revision > floor {
        return Ok(Decision::Install);
    }
    if known.iter().any(|k| k.revision == floor && k.sha256 == new.sha256) {
        return Ok(if intact { Decision::UpToDate } else { Decision::Repair });
    }
    Err(format!(
        "revision {floor} is already installed with different content: a changed bundle needs a higher revision"
    ))
}

/// Where a bundle named `name` is installed in `dir`.
pub fn installed_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.yaml"))
}

/// Revisions of `name` that we can still prove were installed in `dir`.
pub fn known_revisions(dir: &Path, name: &str, state: &State, keys: &[VerifyingKey]) -> Vec<Known> {
    let mut known = Vec::new();
    if let Some(s) = state.installed.get(name) {
        known.push(Known { revision: s.revision, sha256: s.sha256.clone() });
    }
    let path = installed_path(dir, name);
    for p in [path.clone(), last_good_path(&path)] {
        if let (Ok(b), Ok(data)) = (read_verified(&p, keys), std::fs::read(&p)) {
            if b.signer.is_some() {
                known.push(Known { revision: b.doc.revision, sha256: sha256_hex(&data) });
            }
        }
    }
    known
}

/// Is the installed copy of `name` exactly `sha256` and verifying?
pub fn is_intact(dir: &Path, name: &str, sha256: &str, keys: &[VerifyingKey]) -> bool {
    let path = installed_path(dir, name);
    read_verified(&path, keys).is_ok() && std::fs::read(&path).is_ok_and(|d| sha256_hex(&d) == sha256)
}

/// Refuses a bundle dir that others could write (the loader would refuse it too).
pub fn check_dir_secure(dir: &Path) -> Result<(), BundleError> {
    let meta = std::fs::metadata(dir).map_err(|e| BundleError::io(dir, e))?;
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(BundleError::Setup(format!(
            "{}: bundle directory is writable by group or others (mode {:o}); run `chmod go-w {}`",
            dir.display(),
            mode & 0o7777,
            dir.display()
        )));
    }
    Ok(())
}

/// Decides and, when needed, installs `bundle` (already verified against `keys`) with its signature text.
/// Records the new floor in `state` (the caller saves it).
pub fn install(
    dir: &Path,
    bundle: &BundleFile,
    data: &[u8],
    sig: &str,
    source: &str,
    state: &mut State,
    keys: &[VerifyingKey],
) -> Result<Decision, BundleError> {
    let name = &bundle.doc.name;
    check_name(name).map_err(BundleError::Invalid)?;
    let new = Known { revision: bundle.doc.revision, sha256: sha256_hex(data) };
    let intact = is_intact(dir, name, &new.sha256, keys);
    let decision = decide(&known_revisions(dir, name, state, keys), &new, intact)
        .map_err(|m| BundleError::Refused(format!("bundle {name}: {m}")))?;
    let path = installed_path(dir, name);
    let good = last_good_path(&path);
    // A loader running meanwhile sees the old installed pair, or (between the two renames of the installed
    // pair) a mismatch that makes it fall back to the already-updated last good copy.
    if decision != Decision::UpToDate || !last_good_matches(&good, &new.sha256) {
        fsutil::ensure_dir(&dir.join(LAST_GOOD_DIR))?;
        fsutil::atomic_write(&good, data, 0o644)?;
        fsutil::atomic_write(&sig_path(&good), sig.as_bytes(), 0o644)?;
    }
    if decision != Decision::UpToDate {
        fsutil::atomic_write(&path, data, 0o644)?;
        fsutil::atomic_write(&sig_path(&path), sig.as_bytes(), 0o644)?;
    }
    let keep = state.installed.get(name).filter(|s| decision == Decision::UpToDate && s.sha256 == new.sha256);
    let installed_at = keep.map(|s| s.installed_at.clone()).unwrap_or_else(super::now_rfc3339);
    state.installed.insert(
        name.clone(),
        InstalledState {
            revision: new.revision,
            sha256: new.sha256,
            source: source.to_string(),
            signer: bundle.signer.clone().unwrap_or_default(),
            installed_at,
        },
    );
    Ok(decision)
}

fn last_good_matches(good: &Path, sha: &str) -> bool {
    std::fs::read(good).is_ok_and(|d| sha256_hex(&d) == sha) && sig_path(good).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(revision: u64, sha: &str) -> Known {
        Known { revision, sha256: sha.into() }
    }

    type Case = (&'static str, Vec<Known>, Known, bool, Result<Decision, &'static str>);

    #[test]
    fn anti_rollback_table() {
        // (name, known, new, intact, expected Ok decision or Err substring)
        let cases: Vec<Case> = vec![
            ("first install", vec![], k(1, "a"), false, Ok(Decision::Install)),
            ("newer", vec![k(1, "a")], k(2, "b"), true, Ok(Decision::Install)),
            ("same, intact", vec![k(2, "b")], k(2, "b"), true, Ok(Decision::UpToDate)),
            ("same, tampered on disk", vec![k(2, "b")], k(2, "b"), false, Ok(Decision::Repair)),
            ("rollback", vec![k(3, "c")], k(2, "b"), true, Err("rollback refused")),
            (
                "rollback below state floor",
                vec![k(3, "c"), k(1, "a")],
                k(2, "b"),
                false,
                Err("lower than the installed revision 3"),
            ),
            ("same revision, other content", vec![k(2, "b")], k(2, "x"), true, Err("different content")),
        ];
        for (name, known, new, intact, want) in cases {
            let got = decide(&known, &new, intact);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{name}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{name}: {g}"),
                (w, g) => panic!("{name}: wanted {w:?}, got {g:?}"),
            }
        }
    }
}
