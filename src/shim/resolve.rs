//! Finds the real binary behind a shim by walking PATH, skipping shim dirs and anything that is ddcoterm.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where two paths name the same file: through symlinks, hard links or bind mounts alike. Comparing
/// identities costs one `stat` per path, where comparing canonical paths costs a `readlink` per component.
pub type FileId = (u64, u64);

/// The identity of the file `path` resolves to; `None` when it cannot be read.
pub fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The identity of the running binary (on Linux one `stat` of `/proc/self/exe`).
pub fn self_id() -> Option<FileId> {
    file_id(Path::new("/proc/self/exe")).or_else(|| std::env::current_exe().ok().and_then(|p| file_id(&p)))
}

/// The identities of this installation's two binaries: the running one and its sibling (`ddcoterm` beside
/// `ddcoterm-shim`, or the other way round), when there. A shim link elsewhere on PATH points at either.
pub fn our_ids() -> Vec<FileId> {
    let mut ids: Vec<FileId> = self_id().into_iter().collect();
    if let Some(id) = sibling().and_then(|p| file_id(&p)) {
        ids.push(id);
    }
    ids
}

/// The other binary of this installation, in the running binary's directory: `ddcoterm-shim` when running
/// `ddcoterm` (under any name), `ddcoterm` when running `ddcoterm-shim`.
pub fn sibling() -> Option<PathBuf> {
    let exe = running_binary()?;
    let other = if exe.file_name()? == super::SHIM_BINARY { super::FULL_BINARY } else { super::SHIM_BINARY };
    Some(exe.parent()?.join(other))
}

/// The file called `name` in the running binary's directory (the real one, whatever link started it).
pub fn beside_self(name: &str) -> Option<PathBuf> {
    Some(running_binary()?.parent()?.join(name))
}

/// The running binary's real path: `/proc/self/exe` read as a link (one `readlink`, no canonicalisation).
fn running_binary() -> Option<PathBuf> {
    std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe()).ok()
}

/// Walks `path_var` for an executable `name`, skipping `skip_dirs` (shim directories) and any candidate that
/// is one of `ours` ([`our_ids`]: a link of ddcoterm elsewhere on PATH would loop forever).
///
/// Not the `which` crate (issue #20 asked; kept ours on purpose): `which_in_all` knows neither the shim
/// directories nor ddcoterm itself, so both would still be filtered here, PATH rebuilt without the skipped
/// directories and without empty entries (which `which` resolves against the working directory on Unix), and
/// each hit stat'ed again for its identity; `which` also pays an `access(2)` per candidate on top of its
/// `stat`. This walk is one `stat` per candidate and per shim directory, on every shim call.
pub fn find_real(name: &str, path_var: &OsStr, skip_dirs: &[PathBuf], ours: &[FileId]) -> Option<PathBuf> {
    let skip: Vec<FileId> = skip_dirs.iter().filter_map(|d| file_id(d)).collect();
    for dir in std::env::split_paths(path_var) {
        if dir.as_os_str().is_empty() {
            continue; // an empty entry means cwd: never resolve a guarded command from the cwd
        }
        if !skip.is_empty() && file_id(&dir).is_some_and(|id| skip.contains(&id)) {
            continue;
        }
        let cand = dir.join(name);
        let Ok(meta) = std::fs::metadata(&cand) else { continue };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if ours.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        return Some(cand);
    }
    None
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The running binary, canonical (the target every shim points at).
pub fn self_exe() -> PathBuf {
    std::env::current_exe().map(|p| canonical(&p)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn ids(p: &Path) -> Vec<FileId> {
        file_id(p).into_iter().collect()
    }

    fn exe(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn skips_shim_dirs_self_links_and_non_executables() {
        let t = tempfile::tempdir().unwrap();
        let (shims, other, noexec, real) =
            (t.path().join("shims"), t.path().join("other"), t.path().join("noexec"), t.path().join("real"));
        for d in [&shims, &other, &noexec, &real] {
            std::fs::create_dir(d).unwrap();
        }
        let me = t.path().join("ddcoterm");
        exe(&me);
        symlink(&me, shims.join("kubectl")).unwrap();
        symlink(&me, other.join("kubectl")).unwrap(); // ddcoterm under another name: skipped
        std::fs::write(noexec.join("kubectl"), "x").unwrap(); // not executable: skipped
        exe(&real.join("kubectl"));
        let path = std::env::join_paths([&shims, &other, &noexec, &real]).unwrap();
        let found = find_real("kubectl", &path, std::slice::from_ref(&shims), &ids(&me)).unwrap();
        assert_eq!(found, real.join("kubectl"));
    }

    #[test]
    fn none_when_only_shims_exist() {
        let t = tempfile::tempdir().unwrap();
        let me = t.path().join("ddcoterm");
        exe(&me);
        symlink(&me, t.path().join("kubectl")).unwrap();
        let path = std::env::join_paths([t.path()]).unwrap();
        assert_eq!(find_real("kubectl", &path, &[], &ids(&me)), None);
    }

    #[test]
    fn a_hard_link_of_ddcoterm_and_a_bind_of_the_shim_dir_are_skipped_too() {
        let t = tempfile::tempdir().unwrap();
        let (shims, alias, linked, real) =
            (t.path().join("shims"), t.path().join("alias"), t.path().join("linked"), t.path().join("real"));
        for d in [&shims, &linked, &real] {
            std::fs::create_dir(d).unwrap();
        }
        symlink(&shims, &alias).unwrap(); // the shim dir under another name
        let me = t.path().join("ddcoterm");
        exe(&me);
        symlink(&me, shims.join("kubectl")).unwrap();
        std::fs::hard_link(&me, linked.join("kubectl")).unwrap(); // same file, no symlink to follow
        exe(&real.join("kubectl"));
        let path = std::env::join_paths([&alias, &linked, &real]).unwrap();
        let found = find_real("kubectl", &path, std::slice::from_ref(&shims), &ids(&me));
        assert_eq!(found, Some(real.join("kubectl")));
    }

    #[test]
    fn self_id_is_the_running_test_binary() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(self_id(), file_id(&exe));
        assert!(self_id().is_some());
    }
}
