//! Whether a file may speak for the organisation: checked by owner, not just by mode bits.
//!
//! An org file (system config, bundle, team file) and every directory above it, up to `/`, must be owned by
//! root or by the effective user running ddcoterm (the one that installed a personal or test setup), and must
//! not be writable by group or others. A sticky directory (`/tmp`) may be world-writable: nobody can replace
//! what another user owns in it, and whatever a user creates there fails the owner check. A symlink is
//! followed only when the link itself passes and its target passes the same checks, so a link to a file in a
//! user's home is refused. A refusal names the path and the reason, and org policy fails closed on it.

use crate::error::ConfigError;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const STICKY: u32 = 0o1000;

/// Checks `path` (a file or directory holding org policy), its symlinks and every directory above it.
///
/// One `lstat` per path component on the usual layout (no symlink anywhere): this runs on every shim call.
pub fn check_org(path: &Path, what: &'static str) -> Result<(), ConfigError> {
    let euid = nix::unistd::geteuid().as_raw();
    let io = |p: &Path, e: std::io::Error| ConfigError::Io { path: p.into(), msg: e.to_string() };
    let lexical = chain(path, |p| std::fs::symlink_metadata(p)).map_err(|(p, e)| io(&p, e))?;
    if !lexical.iter().any(|(_, m)| m.file_type().is_symlink()) {
        return check_chain(path, &lexical, euid, what, None);
    }
    // A symlink on the way: each link must be ours or root's (its own mode bits mean nothing), the places the
    // links sit in must pass, and so must the file it resolves to and every directory above that.
    for (p, m) in &lexical {
        if m.file_type().is_symlink() {
            owned_by_trusted(p, m, euid).map_err(|r| untrusted(path, what, format!("the symlink {r}")))?;
        }
    }
    let dirs: Vec<_> = lexical.into_iter().skip(1).filter(|(_, m)| !m.file_type().is_symlink()).collect();
    check_chain(path, &dirs, euid, what, Some(1))?;
    let real = path.canonicalize().map_err(|e| io(path, e))?;
    let resolved = chain(&real, |p| std::fs::metadata(p)).map_err(|(p, e)| io(&p, e))?;
    check_chain(path, &resolved, euid, what, None)
}

/// `path` and each of its ancestors with `meta` of each, the path itself first.
fn chain(
    path: &Path,
    meta: fn(&Path) -> std::io::Result<std::fs::Metadata>,
) -> Result<Vec<(PathBuf, std::fs::Metadata)>, (PathBuf, std::io::Error)> {
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| meta(p).map(|m| (p.to_path_buf(), m)).map_err(|e| (p.to_path_buf(), e)))
        .collect()
}

/// Owner and mode of each entry; the first is the file itself unless `first_dir` says where directories start.
fn check_chain(
    path: &Path,
    entries: &[(PathBuf, std::fs::Metadata)],
    euid: u32,
    what: &'static str,
    first_dir: Option<usize>,
) -> Result<(), ConfigError> {
    let first_dir = first_dir.unwrap_or(1);
    for (i, (p, m)) in entries.iter().enumerate() {
        let is_target = i == 0 && first_dir == 1;
        owned_by_trusted(p, m, euid).map_err(|r| {
            let reason = if !is_target {
                format!("a directory above it {r}")
            } else if p != path {
                format!("its target {r}")
            } else {
                format!("it {r}")
            };
            untrusted(path, what, reason)
        })?;
        let mode = m.mode();
        let sticky_dir = m.is_dir() && mode & STICKY != 0 && !is_target;
        if mode & 0o022 != 0 && !sticky_dir {
            let who = if mode & 0o002 != 0 { "everyone" } else { "its group" };
            let reason = format!(
                "{} is writable by {who} (mode {:o}); run `chmod go-w {}`",
                p.display(),
                mode & 0o7777,
                p.display()
            );
            return Err(untrusted(path, what, reason));
        }
    }
    Ok(())
}

fn untrusted(path: &Path, what: &'static str, reason: String) -> ConfigError {
    ConfigError::Untrusted { path: path.into(), what, reason }
}

fn owned_by_trusted(p: &Path, m: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    let uid = m.uid();
    if uid == 0 || uid == euid {
        return Ok(());
    }
    let owner = crate::nss::user_by_uid(uid.into()).map(|u| u.name).unwrap_or_else(|| uid.to_string());
    Err(format!("{} is owned by {owner}, not by root or the user running ddcoterm", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("system");
        std::fs::create_dir(&sys).unwrap();
        let f = sys.join("config.yaml");
        std::fs::write(&f, "{}\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        (tmp, f)
    }

    #[test]
    fn a_file_owned_by_us_in_private_dirs_passes() {
        let (_t, f) = setup();
        check_org(&f, "policy file").unwrap();
    }

    #[test]
    fn world_or_group_writable_files_and_dirs_are_refused() {
        let (_t, f) = setup();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = check_org(&f, "policy file").unwrap_err().to_string();
        assert!(e.contains("writable by its group") && e.contains("config.yaml"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = f.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_org(&f, "policy file").unwrap_err().to_string();
        assert!(e.contains("writable by everyone") && e.contains("system"), "{e}");
        // Sticky and world-writable (like /tmp): entries of others cannot be replaced, so it passes.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_org(&f, "policy file").unwrap();
    }

    #[test]
    fn a_file_or_directory_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: changing a file's owner needs root");
            return;
        }
        let (_t, f) = setup();
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let e = check_org(&f, "policy file").unwrap_err().to_string();
        assert!(e.contains("not by root or the user running ddcoterm") && e.contains("config.yaml"), "{e}");
        std::os::unix::fs::chown(&f, Some(0), None).unwrap();
        // A symlink owned by another user, even to a good file.
        let link = f.parent().unwrap().join("link.yaml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let e = check_org(&link, "policy file").unwrap_err().to_string();
        assert!(e.contains("the symlink") && e.contains("link.yaml is owned by"), "{e}");
        std::os::unix::fs::chown(f.parent().unwrap(), Some(65534), None).unwrap();
        let e = check_org(&f, "policy file").unwrap_err().to_string();
        assert!(e.contains("a directory above it") && e.contains("system is owned by"), "{e}");
    }

    #[test]
    fn a_symlink_is_followed_only_to_a_trusted_target() {
        let (t, f) = setup();
        let link = f.parent().unwrap().join("link.yaml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        check_org(&link, "policy file").unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let target = open.join("evil.yaml");
        std::fs::write(&target, "{}\n").unwrap();
        let link2 = f.parent().unwrap().join("link2.yaml");
        std::os::unix::fs::symlink(&target, &link2).unwrap();
        let e = check_org(&link2, "policy file").unwrap_err().to_string();
        assert!(e.contains("link2.yaml") && e.contains("writable by everyone"), "{e}");
    }
}
