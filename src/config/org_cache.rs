//! A content-addressed store of work derived from organisation policy (parsed layer files, compiled Luau),
//! kept where only the organisation can write: `<system dir>/cache/`.
//!
//! Every entry is named by the SHA-256 of exactly what it was derived from (a file's bytes, a snippet
//! batch's source) plus a kind that names the derivation and its version, so an entry can never be stale:
//! a changed input has another name. What the store must defend is who wrote an entry. Nothing in it is
//! trusted unless the cache directory and the entry pass the same owner and mode checks as the organisation's
//! own files ([`super::trust`]): owned by root or by the user running ddcoterm (the one who installed a
//! personal setup) and writable by nobody else. On a bastion `/etc/ddcoterm` is root's, so a user can neither
//! write an entry nor make ddcoterm read one from elsewhere: a forged "parse" of the org's file would be as
//! good as editing it. Entries are written by any ddcoterm run whose user may write the directory (root
//! after a deploy, or the owner of a personal install); everyone else computes the same result from the
//! files, correctly, just without the saving.
//!
//! Each entry carries the SHA-256 of its payload: a torn or corrupted entry is ignored (and rewritten by the
//! next run that may write), never an error for the user.

use super::trust;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// First line of every entry; a format change bumps it (old entries are then ignored).
const MAGIC: &str = "ddcoterm-org-cache 1";

/// The organisation's cache directory, checked once per process on first use.
#[derive(Debug, Clone)]
pub struct OrgCache {
    dir: PathBuf,
    /// `<system>`: may the cache directory be created (the system dir itself passes the org checks)?
    system: PathBuf,
    /// The directory check's result, made once per process (reset when this process creates it).
    trusted: std::cell::Cell<Option<bool>>,
}

/// The hex SHA-256 of `parts`, each length-prefixed so that no two lists of parts collide.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

impl OrgCache {
    /// The cache of the organisation layers under `system` (`/etc/ddcoterm` unless relocated).
    pub fn new(system: &Path) -> OrgCache {
        OrgCache { dir: system.join("cache"), system: system.to_path_buf(), trusted: Default::default() }
    }

    /// Where entries live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory may speak for the organisation: the org file checks on it and every directory
    /// above it. Checked once per process.
    fn dir_trusted(&self) -> bool {
        if let Some(t) = self.trusted.get() {
            return t;
        }
        let t = trust::check_org(&self.dir, "cache directory").is_ok();
        self.trusted.set(Some(t));
        t
    }

    fn entry(&self, kind: &str, key: &str) -> PathBuf {
        self.dir.join(format!("{kind}-{key}"))
    }

    /// The payload stored for (`kind`, `key`), if a trusted, intact entry exists.
    pub fn get(&self, kind: &str, key: &str) -> Option<Vec<u8>> {
        if !self.dir_trusted() {
            return None;
        }
        let path = self.entry(kind, key);
        // No symlink at the last component (the directory above is checked), and the entry itself must be
        // the organisation's: owner root or us, writable by nobody else.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .ok()?;
        let meta = file.metadata().ok()?;
        let euid = nix::unistd::geteuid().as_raw();
        if !meta.is_file() || (meta.uid() != 0 && meta.uid() != euid) || meta.mode() & 0o022 != 0 {
            return None;
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        // `take`: the size is known, so no second `fstat` for a size hint.
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, meta.len()), &mut data).ok()?;
        let nl = data.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&data[..nl]).ok()?;
        let (magic, digest) = header.rsplit_once(' ')?;
        let payload = &data[nl + 1..];
        if magic != MAGIC || digest != hex(&Sha256::digest(payload)) {
            return None;
        }
        Some(payload.to_vec())
    }

    /// Stores `payload` for (`kind`, `key`) when this process may write the organisation's cache; any
    /// failure is ignored (the next run computes the same result from the files).
    pub fn put(&self, kind: &str, key: &str, payload: &[u8]) {
        if !self.may_write() {
            return;
        }
        let _ = self.write(kind, key, payload);
    }

    /// Only a user trusted to write the organisation's files writes its cache: root, or the owner of the
    /// system directory (a personal install), and only when the directory passes the org checks.
    fn may_write(&self) -> bool {
        if !self.dir.exists() {
            if trust::check_org(&self.system, "system directory").is_err() {
                return false;
            }
            let created = std::fs::DirBuilder::new().mode(0o755).create(&self.dir);
            if created.is_err() {
                return false;
            }
            // The mode asked for is filtered by the umask; the checks want exactly "nobody else writes".
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
            self.trusted.set(None);
        }
        self.dir_trusted() && nix::unistd::access(&self.dir, nix::unistd::AccessFlags::W_OK).is_ok()
    }

    fn write(&self, kind: &str, key: &str, payload: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&self.dir)?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
        let header = format!("{MAGIC} {}\n", hex(&Sha256::digest(payload)));
        tmp.write_all(header.as_bytes())?;
        tmp.write_all(payload)?;
        tmp.persist(self.entry(kind, key)).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, OrgCache) {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("etc");
        std::fs::create_dir(&sys).unwrap();
        std::fs::set_permissions(&sys, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = OrgCache::new(&sys);
        (t, c)
    }

    #[test]
    fn round_trip_and_keys_separate_parts() {
        let (_t, c) = setup();
        assert_eq!(c.get("parse", "k"), None);
        c.put("parse", "k", b"payload");
        assert_eq!(c.get("parse", "k").as_deref(), Some(&b"payload"[..]));
        assert_eq!(c.get("luau", "k"), None, "kinds do not share entries");
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
    }

    #[test]
    fn a_corrupt_or_foreign_entry_is_ignored_and_rewritten() {
        let (_t, c) = setup();
        c.put("parse", "k", b"good");
        let path = c.entry("parse", "k");
        for bad in [&b"garbage"[..], b"ddcoterm-org-cache 1 00\nforged", b""] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(c.get("parse", "k"), None, "{bad:?}");
        }
        c.put("parse", "k", b"good");
        assert_eq!(c.get("parse", "k").as_deref(), Some(&b"good"[..]));
    }

    #[test]
    fn an_entry_or_directory_others_can_write_is_not_trusted() {
        let (_t, c) = setup();
        c.put("parse", "k", b"v");
        let path = c.entry("parse", "k");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(c.get("parse", "k"), None, "world-writable entry");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(c.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let fresh = OrgCache::new(c.dir().parent().unwrap());
        assert_eq!(fresh.get("parse", "k"), None, "world-writable cache directory");
        fresh.put("parse", "k2", b"v");
        assert!(!fresh.entry("parse", "k2").exists(), "nothing written into an untrusted directory");
    }

    #[test]
    fn a_symlinked_entry_is_not_followed() {
        let (t, c) = setup();
        c.put("parse", "k", b"v");
        let elsewhere = t.path().join("forged");
        std::fs::write(&elsewhere, std::fs::read(c.entry("parse", "k")).unwrap()).unwrap();
        std::fs::remove_file(c.entry("parse", "k")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, c.entry("parse", "k")).unwrap();
        assert_eq!(c.get("parse", "k"), None);
    }

    #[test]
    fn no_cache_directory_is_created_in_a_system_dir_others_can_write() {
        let (_t, c) = setup();
        std::fs::set_permissions(&c.system, std::fs::Permissions::from_mode(0o777)).unwrap();
        c.put("parse", "k", b"v");
        assert!(!c.dir().exists());
    }
}
