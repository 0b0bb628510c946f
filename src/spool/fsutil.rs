//! Durable file writes for the spool: temp file, fsync, rename, fsync of the directory; 0600 files, 0700 dirs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `dest` atomically: readers see either nothing or the whole file, even after a crash.
/// `tmp_dir` must be on the same filesystem as `dest`.
pub fn atomic_write(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write_parts(tmp_dir, dest, &[bytes])
}

/// [`atomic_write`] of the concatenation of `parts`, without building it in memory.
pub fn atomic_write_parts(tmp_dir: &Path, dest: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tmp_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dest)?;
        if let Some(parent) = dest.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}
