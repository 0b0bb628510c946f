//! Creates, removes and lists shim symlinks and keeps the PATH block in rc files in step with them.

use super::path_block;
use super::resolve;
use std::io;
use std::path::{Path, PathBuf};

/// Where shims go and which files get the PATH block.
#[derive(Debug, Clone)]
pub struct ShimScope {
    /// The shim directory.
    pub dir: PathBuf,
    /// Files that get the PATH block (`~/.bashrc`, `~/.zshrc`, or `/etc/profile.d/ddcoterm.sh`).
    pub rc_files: Vec<PathBuf>,
}

/// The binaries a shim link of this installation may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// What new links point at: the static shim binary when it is installed beside ddcoterm (a plain call
    /// then costs no dynamic loading), else ddcoterm itself.
    pub link_to: PathBuf,
    /// Every binary of this installation, canonical: a link to any of them is one of our shims.
    pub ours: Vec<PathBuf>,
}

impl Targets {
    /// Links point at `binary`, the only one that counts as ours.
    pub fn single(binary: PathBuf) -> Targets {
        Targets { link_to: binary.clone(), ours: vec![binary] }
    }

    /// The running ddcoterm and, when it is installed beside it, the static shim binary (which new links
    /// then point at).
    pub fn of_this_installation() -> Targets {
        let full = resolve::self_exe();
        let static_shim = resolve::sibling()
            .filter(|p| p.file_name().is_some_and(|n| n == super::SHIM_BINARY))
            .and_then(|p| std::fs::canonicalize(p).ok())
            .filter(|p| crate::fsutil::is_executable(p));
        match static_shim {
            Some(s) => Targets { link_to: s.clone(), ours: vec![s, full] },
            None => Targets::single(full),
        }
    }

    fn ids(&self) -> Vec<resolve::FileId> {
        self.ours.iter().filter_map(|p| resolve::file_id(p)).collect()
    }
}

/// What happened to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(PathBuf),
    AlreadyThere(PathBuf),
    /// It pointed at the other binary of this installation (ddcoterm before the static shim was installed).
    Relinked(PathBuf),
    Removed(PathBuf),
    NotThere(PathBuf),
}

/// An error that names the command or file; maps to exit 64 (bad argument) or 74 (I/O).
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("`{0}` is not a command name (no slashes, no leading dash, not `ddcoterm`)")]
    BadName(String),
    #[error("{0}: exists and is not a ddcoterm shim; refusing to replace it")]
    Occupied(PathBuf),
    #[error("{path}: {err}", path = path.display())]
    Io { path: PathBuf, err: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ShimError + '_ {
    move |err| ShimError::Io { path: path.to_path_buf(), err }
}

/// Validates a command name given on the command line.
pub fn check_name(name: &str) -> Result<(), ShimError> {
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('-')
        || name == "."
        || name == ".."
        || super::shim_name(name.as_ref()).is_none()
    {
        return Err(ShimError::BadName(name.to_string()));
    }
    Ok(())
}

/// True when `path` is a symlink to one of this installation's binaries.
pub fn is_our_shim(path: &Path, targets: &Targets) -> bool {
    path.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false)
        && std::fs::canonicalize(path).map(|p| targets.ours.contains(&p)).unwrap_or(false)
}

/// True when the symlink `link` names a file called like one of ddcoterm's binaries (an older or moved
/// installation's shim, or a dangling one).
fn points_at_a_ddcoterm(link: &Path) -> bool {
    link.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false)
        && std::fs::read_link(link)
            .ok()
            .and_then(|t| t.file_name().map(|f| f == super::FULL_BINARY || f == super::SHIM_BINARY))
            .unwrap_or(false)
}

/// Creates shims for `names` pointing at `targets.link_to`, idempotently (a shim pointing at this
/// installation's other binary is relinked), and adds the PATH block to each rc file.
pub fn create(scope: &ShimScope, names: &[String], targets: &Targets) -> Result<Vec<Outcome>, ShimError> {
    let target = &targets.link_to;
    for n in names {
        check_name(n)?;
    }
    std::fs::create_dir_all(&scope.dir).map_err(io_err(&scope.dir))?;
    let mut out = Vec::new();
    for n in names {
        let link = scope.dir.join(n);
        if link.symlink_metadata().is_ok() {
            if std::fs::canonicalize(&link).is_ok_and(|p| &p == target) {
                out.push(Outcome::AlreadyThere(link));
                continue;
            }
            // A shim of this installation's other binary, or of an older ddcoterm (moved, upgraded), is ours
            // to replace; anything else is not.
            let relinked = is_our_shim(&link, targets);
            if !relinked && !points_at_a_ddcoterm(&link) {
                return Err(ShimError::Occupied(link));
            }
            std::fs::remove_file(&link).map_err(io_err(&link))?;
            std::os::unix::fs::symlink(target, &link).map_err(io_err(&link))?;
            out.push(if relinked { Outcome::Relinked(link) } else { Outcome::Created(link) });
            continue;
        }
        std::os::unix::fs::symlink(target, &link).map_err(io_err(&link))?;
        out.push(Outcome::Created(link));
    }
    for rc in &scope.rc_files {
        let text = read_or_empty(rc)?;
        let new = path_block::upsert(&text, &scope.dir);
        if new != text {
            write_keep_mode(rc, &new)?;
        }
    }
    Ok(out)
}

/// Removes shims for `names` (only symlinks to ddcoterm); drops the PATH block when no shim is left.
pub fn remove(scope: &ShimScope, names: &[String], targets: &Targets) -> Result<Vec<Outcome>, ShimError> {
    for n in names {
        check_name(n)?;
    }
    let mut out = Vec::new();
    for n in names {
        let link = scope.dir.join(n);
        if is_our_shim(&link, targets) || is_dangling_shim(&link) {
            std::fs::remove_file(&link).map_err(io_err(&link))?;
            out.push(Outcome::Removed(link));
        } else if link.symlink_metadata().is_ok() {
            return Err(ShimError::Occupied(link));
        } else {
            out.push(Outcome::NotThere(link));
        }
    }
    if list(scope, targets)?.is_empty() {
        for rc in &scope.rc_files {
            let text = read_or_empty(rc)?;
            if path_block::present(&text) {
                write_keep_mode(rc, &path_block::remove(&text))?;
            }
        }
    }
    Ok(out)
}

fn is_dangling_shim(link: &Path) -> bool {
    !link.exists() && points_at_a_ddcoterm(link)
}

/// One listed shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimInfo {
    pub name: String,
    pub path: PathBuf,
    /// The real binary it resolves to on the current PATH, if any.
    pub real: Option<PathBuf>,
}

/// Shims in the scope's directory, sorted by name.
pub fn list(scope: &ShimScope, targets: &Targets) -> Result<Vec<ShimInfo>, ShimError> {
    let entries = match std::fs::read_dir(&scope.dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ShimError::Io { path: scope.dir.clone(), err: e }),
    };
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let ours = targets.ids();
    let mut out: Vec<ShimInfo> = entries
        .filter_map(|e| e.ok())
        .filter(|e| is_our_shim(&e.path(), targets))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let real = resolve::find_real(&name, &path_var, std::slice::from_ref(&scope.dir), &ours);
            ShimInfo { name, path: e.path(), real }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// True when `dir` comes before every other directory holding a real binary of a shimmed command, i.e. the
/// first PATH entry that is not ddcoterm's own.
pub fn first_on_path(dir: &Path, path_var: &std::ffi::OsStr) -> bool {
    let want = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::env::split_paths(path_var)
        .find(|p| !p.as_os_str().is_empty())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p) == want)
        .unwrap_or(false)
}

fn read_or_empty(path: &Path) -> Result<String, ShimError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ShimError::Io { path: path.into(), err: e }),
    }
}

/// Writes through a temp file and rename so a crash never leaves a half-written rc file.
fn write_keep_mode(path: &Path, text: &str) -> Result<(), ShimError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0o644);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ShimError::Io { path: path.into(), err: e.error })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, ShimScope, Targets) {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("ddcoterm");
        std::fs::write(&target, "#!/bin/sh\n").unwrap();
        let target = std::fs::canonicalize(target).unwrap();
        let scope = ShimScope {
            dir: t.path().join("overrides"),
            rc_files: vec![t.path().join(".bashrc"), t.path().join(".zshrc")],
        };
        std::fs::write(&scope.rc_files[0], "export EDITOR=vi\n").unwrap();
        (t, scope, Targets::single(target))
    }

    #[test]
    fn create_is_idempotent_and_writes_rc_blocks_once() {
        let (_t, scope, target) = setup();
        let names = vec!["kubectl".to_string(), "terraform".to_string()];
        let first = create(&scope, &names, &target).unwrap();
        assert!(matches!(first[0], Outcome::Created(_)));
        let second = create(&scope, &names, &target).unwrap();
        assert!(matches!(second[0], Outcome::AlreadyThere(_)));
        let bashrc = std::fs::read_to_string(&scope.rc_files[0]).unwrap();
        assert!(bashrc.starts_with("export EDITOR=vi\n"));
        assert_eq!(bashrc.matches(">>> ddcoterm shims >>>").count(), 1);
        assert!(std::fs::read_to_string(&scope.rc_files[1])
            .unwrap()
            .contains(&scope.dir.display().to_string()));
        let listed: Vec<String> = list(&scope, &target).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(listed, ["kubectl", "terraform"]);
    }

    #[test]
    fn refuses_to_clobber_a_real_file_and_bad_names() {
        let (_t, scope, target) = setup();
        std::fs::create_dir_all(&scope.dir).unwrap();
        std::fs::write(scope.dir.join("kubectl"), "real").unwrap();
        let e = create(&scope, &["kubectl".into()], &target).unwrap_err();
        assert!(e.to_string().contains("is not a ddcoterm shim"), "{e}");
        for bad in ["../x", "-rf", "ddcoterm", ""] {
            assert!(matches!(create(&scope, &[bad.into()], &target), Err(ShimError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn remove_drops_block_when_last_shim_goes() {
        let (_t, scope, target) = setup();
        create(&scope, &["kubectl".into(), "helm".into()], &target).unwrap();
        remove(&scope, &["kubectl".into()], &target).unwrap();
        assert!(path_block::present(&std::fs::read_to_string(&scope.rc_files[0]).unwrap()));
        let out = remove(&scope, &["helm".into(), "nope".into()], &target).unwrap();
        assert!(matches!(out[1], Outcome::NotThere(_)));
        assert_eq!(std::fs::read_to_string(&scope.rc_files[0]).unwrap(), "export EDITOR=vi\n");
    }

    #[test]
    fn a_shim_of_the_full_binary_is_relinked_to_the_static_one_and_both_count_as_ours() {
        let (t, scope, full) = setup();
        let stat = t.path().join("ddcoterm-shim");
        std::fs::write(&stat, "#!/bin/sh\n").unwrap();
        let stat = std::fs::canonicalize(stat).unwrap();
        let both = Targets { link_to: stat.clone(), ours: vec![stat.clone(), full.link_to.clone()] };
        create(&scope, &["kubectl".into()], &full).unwrap();
        let out = create(&scope, &["kubectl".into(), "helm".into()], &both).unwrap();
        assert!(matches!(out[0], Outcome::Relinked(_)), "{out:?}");
        assert!(matches!(out[1], Outcome::Created(_)), "{out:?}");
        assert_eq!(std::fs::canonicalize(scope.dir.join("kubectl")).unwrap(), stat);
        let again = create(&scope, &["kubectl".into()], &both).unwrap();
        assert!(matches!(again[0], Outcome::AlreadyThere(_)), "{again:?}");
        let listed: Vec<String> = list(&scope, &both).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(listed, ["helm", "kubectl"]);
        // The full binary alone does not claim links to the static one; the pair removes them.
        assert!(list(&scope, &full).unwrap().is_empty());
        remove(&scope, &["kubectl".into(), "helm".into()], &both).unwrap();
        assert!(list(&scope, &both).unwrap().is_empty());
    }
}
