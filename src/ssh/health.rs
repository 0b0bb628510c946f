//! Whether an sshd that runs `ddcoterm ssh-login` has system-wide shims, for `ddcoterm doctor`.

use crate::model::Finding;
use std::path::{Path, PathBuf};

/// Where sshd runs `ddcoterm ssh-login` (a ForceCommand in `sshd_config` or a drop-in), per-command rules
/// only see what system-wide shims show them: a remote command arrives as `$SHELL -c ...`, and what is typed
/// in a login shell reaches no rule at all without a shim. A warning when that is the case; `None` when sshd
/// does not run `ssh-login` at all.
pub fn check(sshd_dir: &Path, system_shims: &Path) -> Option<Finding> {
    let file = forced_command_file(sshd_dir)?;
    let shims = std::fs::read_dir(system_shims).map(|rd| rd.flatten().count()).unwrap_or(0);
    Some(if shims == 0 {
        Finding::warn(
            "ssh-login",
            format!(
                "sshd runs `ddcoterm ssh-login` ({}) but {} holds no system-wide shims: per-command rules then \
                 only see remote commands as `$SHELL -c ...` and nothing typed in a login shell; run \
                 `ddcoterm shim create --system kubectl` (and the other guarded commands)",
                file.display(),
                system_shims.display()
            ),
        )
    } else {
        Finding::ok(
            "ssh-login",
            format!(
                "sshd runs `ddcoterm ssh-login` ({}); {shims} system-wide shim(s) in {}",
                file.display(),
                system_shims.display()
            ),
        )
    })
}

/// `sshd_config`, then the `sshd_config.d/*.conf` drop-ins in order: the first with an uncommented
/// `ForceCommand ... ssh-login`.
fn forced_command_file(sshd_dir: &Path) -> Option<PathBuf> {
    let mut files = vec![sshd_dir.join("sshd_config")];
    if let Ok(rd) = std::fs::read_dir(sshd_dir.join("sshd_config.d")) {
        let mut more: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect();
        more.sort();
        files.extend(more);
    }
    files.into_iter().find(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().map(str::trim).any(|l| {
                !l.starts_with('#')
                    && l.to_ascii_lowercase().starts_with("forcecommand")
                    && l.contains("ssh-login")
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;

    #[test]
    fn ssh_login_without_system_shims_warns() {
        let t = tempfile::tempdir().unwrap();
        let sshd = t.path().join("ssh");
        let shims = t.path().join("overrides");
        std::fs::create_dir_all(sshd.join("sshd_config.d")).unwrap();
        std::fs::create_dir_all(&shims).unwrap();
        assert_eq!(check(&sshd, &shims), None, "no ForceCommand: nothing to say");
        std::fs::write(
            sshd.join("sshd_config.d/ddcoterm.conf"),
            "Match Group users\n    ForceCommand /usr/local/bin/ddcoterm ssh-login\n",
        )
        .unwrap();
        assert_eq!(check(&sshd, &shims).unwrap().verdict, Verdict::Warn);
        std::os::unix::fs::symlink("/bin/true", shims.join("kubectl")).unwrap();
        assert_eq!(check(&sshd, &shims).unwrap().verdict, Verdict::Ok, "with a system shim it is fine");
    }
}
