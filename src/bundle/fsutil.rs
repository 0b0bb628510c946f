//! Crash-safe file replacement (temp file in the same dir, fsync, rename, fsync dir) with explicit modes.

use super::BundleError;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `data` so that readers see the old or the new content, never a mix.
/// The temp file starts with `.` and ends in `.tmp`, so the bundle loader never picks it up.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> Result<(), BundleError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| BundleError::io(dir, format!("cannot create a temp file: {e}")))?;
    tmp.write_all(data).map_err(|e| BundleError::io(tmp.path(), e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| BundleError::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| BundleError::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| BundleError::io(path, e.error))?;
    sync_dir(dir)
}

/// Makes a rename durable.
pub fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| BundleError::io(dir, e))
}

/// Creates `dir` (and parents) as 0755 when missing, whatever the umask (every user's shim must read the
/// bundles); an existing dir is left as it is.
pub fn ensure_dir(dir: &Path) -> Result<(), BundleError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(|e| BundleError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| BundleError::io(dir, e))
}

/// Creates a new file with `mode` (never overwriting one), for key material.
pub fn create_new(path: &Path, data: &[u8], mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
            match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    BundleError::io(path, "already exists; refusing to overwrite a key")
                }
                _ => BundleError::io(path, e),
            }
        })?;
    // The umask may have narrowed the mode further; make it exact.
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| BundleError::io(path, e))?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(|e| BundleError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.yaml");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        let leftovers: Vec<_> = fs::read_dir(d.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn create_new_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.key");
        create_new(&p, b"secret", 0o600).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = create_new(&p, b"other", 0o600).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"secret");
    }
}
