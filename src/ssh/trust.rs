//! Which program a passthrough runs. It runs unrecorded, so it must be one the administrator installed: a
//! bare name is looked up in the configured trusted directories (never the user's `PATH`, which their shell
//! rc files can change), and the file and every directory above it must be owned by root and writable by
//! nobody else. Otherwise `~/bin/scp` or `/home/u/sftp-server` would be an unrecorded shell.

use crate::fsutil::is_executable;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Resolves `program` (a bare name or an absolute path) to a root-owned executable, or says why not.
pub fn trusted_program(program: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let path = if program.starts_with('/') {
        PathBuf::from(program)
    } else if program.contains('/') {
        return Err(format!("{program}: a relative path is never trusted"));
    } else {
        dirs.iter()
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
            .ok_or_else(|| format!("{program}: not found in {}", join(dirs)))?
    };
    let real = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
    if !is_executable(&real) {
        return Err(format!("{}: not an executable file", real.display()));
    }
    // The directories the name was found in (a symlink's own) and those of the file it resolves to.
    for p in path.parent().into_iter().flat_map(Path::ancestors).chain(real.ancestors()) {
        root_owned(p)?;
    }
    // The name the program was asked for (a symlink like git-upload-pack -> git keeps its meaning).
    Ok(path)
}

/// The first of `candidates` that is a trusted program: where `internal-sftp` is served from.
pub fn first_trusted(candidates: &[PathBuf]) -> Result<PathBuf, String> {
    let mut why = Vec::new();
    for c in candidates {
        match trusted_program(&c.to_string_lossy(), &[]) {
            Ok(p) => return Ok(p),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

fn root_owned(p: &Path) -> Result<(), String> {
    let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if m.uid() != 0 {
        return Err(format!("{} is not owned by root", p.display()));
    }
    // No exception for sticky directories: /tmp is no place for a program that runs unrecorded.
    if m.mode() & 0o022 != 0 {
        return Err(format!("{} is writable by group or others", p.display()));
    }
    Ok(())
}

fn join(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn system_programs_are_trusted_by_name_and_path() {
        let dirs = vec![PathBuf::from("/usr/bin"), PathBuf::from("/bin")];
        // `sh` is installed by root everywhere these tests run.
        assert_eq!(trusted_program("sh", &dirs).unwrap(), PathBuf::from("/usr/bin/sh"));
        assert!(trusted_program("/bin/sh", &dirs).is_ok());
        assert!(first_trusted(&[PathBuf::from("/nonexistent/sftp-server"), PathBuf::from("/bin/sh")]).is_ok());
    }

    #[test]
    fn user_places_are_not_trusted() {
        let dirs = vec![PathBuf::from("/usr/bin")];
        assert!(trusted_program("./scp", &dirs).unwrap_err().contains("relative"));
        assert!(trusted_program("bin/scp", &dirs).unwrap_err().contains("relative"));
        assert!(trusted_program("no-such-program-xyz", &dirs).unwrap_err().contains("not found"));

        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("sftp-server");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A temp dir hangs below /tmp, which is world-writable (sticky or not): never trusted.
        let err = trusted_program(&prog.to_string_lossy(), &dirs).unwrap_err();
        assert!(err.contains("writable") || err.contains("not owned by root"), "{err}");
        if is_root() {
            // Even a root-owned file in a private directory: the temp dir above it is world-writable.
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let err = trusted_program(&prog.to_string_lossy(), &[d.path().to_path_buf()]).unwrap_err();
            assert!(err.contains("is writable by group or others"), "{err}");
        }
        assert!(first_trusted(std::slice::from_ref(&prog)).is_err());

        // A symlink in an untrusted place to a trusted program is not trusted either: the name is the user's.
        let link = d.path().join("scp");
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
        assert!(trusted_program(&link.to_string_lossy(), &dirs).is_err());
    }
}
