//! Finds the real binary behind a shim by walking PATH, skipping shim dirs and anything that is ddcoterm.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Walks `path_var` for an executable `name`, skipping `skip_dirs` (shim directories) and any candidate whose
/// canonical path is `self_exe` (a copy or link of ddcoterm elsewhere on PATH would loop forever).
pub fn find_real(name: &str, path_var: &OsStr, skip_dirs: &[PathBuf], self_exe: &Path) -> Option<PathBuf> {
    let skip: Vec<PathBuf> = skip_dirs.iter().map(|d| canonical(d)).collect();
    for dir in std::env::split_paths(path_var) {
        if dir.as_os_str().is_empty() {
            continue; // an empty entry means cwd: never resolve a guarded command from the cwd
        }
        let cdir = canonical(&dir);
        if skip.contains(&cdir) {
            continue;
        }
        let cand = dir.join(name);
        let Ok(meta) = std::fs::metadata(&cand) else { continue };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if canonical(&cand) == self_exe {
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
        let found = find_real("kubectl", &path, std::slice::from_ref(&shims), &canonical(&me)).unwrap();
        assert_eq!(found, real.join("kubectl"));
    }

    #[test]
    fn none_when_only_shims_exist() {
        let t = tempfile::tempdir().unwrap();
        let me = t.path().join("ddcoterm");
        exe(&me);
        symlink(&me, t.path().join("kubectl")).unwrap();
        let path = std::env::join_paths([t.path()]).unwrap();
        assert_eq!(find_real("kubectl", &path, &[], &canonical(&me)), None);
    }
}
