//! Durable file writes for the spool and the user's config file: temp file, fsync, rename, fsync of the
//! directory; 0600 files, 0700 dirs. Below both, so neither imports the other for it. And the one test of
//! whether a path is a program one could run, which the shims, `doctor` and ssh passthroughs share.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// True when `p` resolves to a regular file with an execute bit set (for anyone).
pub fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

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
    atomic_write_parts_then(tmp_dir, dest, parts, None)
}

/// The temp file [`atomic_write_parts`] uses for `dest`: `<tmp_dir>/<file name>.<pid>.tmp`.
pub fn tmp_path(tmp_dir: &Path, file_name: &str, pid: u32) -> std::path::PathBuf {
    tmp_dir.join(format!("{file_name}.{pid}.tmp"))
}

/// The pid that owns a temp file, from its name (`<file name>.<pid>.tmp`).
pub fn tmp_owner(tmp_file_name: &str) -> Option<u32> {
    let stem = tmp_file_name.strip_suffix(".tmp")?;
    stem.rsplit_once('.')?.1.parse().ok()
}

/// [`atomic_write_parts`] calling `before_rename` once the temp file is complete and fsync'd, just before it
/// is renamed into place: a journal written there names a record that is either published or still whole
/// in `tmp_dir`, never half-written. Once the hook has been called the temp file is kept on any error
/// (the journal may already name it), for recovery to publish or sweep.
pub fn atomic_write_parts_then(
    tmp_dir: &Path,
    dest: &Path,
    parts: &[&[u8]],
    before_rename: Option<&mut dyn FnMut() -> io::Result<()>>,
) -> io::Result<()> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tmp_path(tmp_dir, &name, std::process::id());
    let mut journaled = false;
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        drop(f);
        if let Some(hook) = before_rename {
            // From here the journal may name the file (even if the hook fails half-way): keep it on any error.
            journaled = true;
            hook()?;
        }
        fs::rename(&tmp, dest)?;
        if let Some(parent) = dest.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    // Once a journal names the temp file it is kept: recovery publishes it.
    if res.is_err() && !journaled {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// fsyncs a directory, so that a rename into or out of it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
