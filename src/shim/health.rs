//! Whether a shim directory works for `ddcoterm doctor`: on PATH, and before every other directory that holds
//! the same command. Not on the shim path itself.

use crate::model::Finding;
use std::path::{Path, PathBuf};

/// Shims work only when their directory comes before every other directory holding the same command.
/// `None` when `dir` holds no shims and `skip_if_missing` (the system directory is optional).
pub fn check(what: &str, dir: &Path, path: &[PathBuf], skip_if_missing: bool) -> Option<Finding> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            let mut v: Vec<String> =
                rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if names.is_empty() {
        return (!skip_if_missing).then(|| Finding::ok(what, format!("no shims in {}", dir.display())));
    }
    let same = |p: &Path| p == dir || p.canonicalize().ok() == dir.canonicalize().ok();
    let Some(pos) = path.iter().position(|p| same(p)) else {
        return Some(Finding::fail(
            what,
            format!(
                "{} is not on PATH: shims for {} are inactive; add it first on PATH",
                dir.display(),
                names.join(", ")
            ),
        ));
    };
    let mut shadowed = Vec::new();
    for n in &names {
        if let Some(before) = path[..pos].iter().find(|p| crate::fsutil::is_executable(&p.join(n))) {
            shadowed.push(format!("{n} (found first in {})", before.display()));
        }
    }
    Some(if shadowed.is_empty() {
        Finding::ok(what, format!("{} comes first on PATH for {}", dir.display(), names.join(", ")))
    } else {
        Finding::fail(
            what,
            format!("{} is on PATH too late: {}; move it to the front", dir.display(), shadowed.join(", ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shims_not_on_path_or_shadowed_fail() {
        let t = tempfile::tempdir().unwrap();
        let shims = t.path().join("overrides");
        let real = t.path().join("bin");
        std::fs::create_dir_all(&shims).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        for d in [&shims, &real] {
            let p = d.join("kubectl");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let verdict = |path: &[PathBuf]| check("s", &shims, path, false).unwrap().verdict;
        assert_eq!(verdict(std::slice::from_ref(&real)), Verdict::Fail, "not on PATH");
        assert_eq!(verdict(&[real.clone(), shims.clone()]), Verdict::Fail, "shadowed");
        assert_eq!(verdict(&[shims.clone(), real.clone()]), Verdict::Ok);
    }

    #[test]
    fn an_empty_optional_directory_says_nothing() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(check("s", t.path(), &[], true), None);
        assert_eq!(check("s", t.path(), &[], false).unwrap().verdict, Verdict::Ok);
    }
}
