//! What an SSH session on a bastion will do, decided before anything runs: record the login shell, let a
//! trusted transfer server through unrecorded, or have the user's shell run a remote command that policy
//! judges. `ssh-login --dry-run` prints the [`Plan`]; the guard sequence carries it out.

use super::classify::Request;
use super::trust;
use crate::config::Loaded;
use crate::error::ConfigError;
use crate::policy::invocation::shell_word;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where `internal-sftp` is served from when `ssh.sftp_server` is not set: Debian/Ubuntu, RHEL/Fedora/SUSE,
/// Arch, Alpine.
const SFTP_SERVERS: [&str; 4] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
];

/// What this session will do, decided before anything runs (`--dry-run` prints it).
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Record the login shell: under a PTY with shell integration when the client asked for one, else
    /// `SHELL -l` on pipes (a script piped into `ssh -T host`).
    Login { shell: PathBuf, pty: bool },
    /// Exec `program` (argv[0] `argv0`) with `args`: unrecorded.
    Passthrough { name: String, program: PathBuf, argv0: String, args: Vec<String> },
    /// The user's shell runs `command`; the policy judges `judged` (the command's own words when it is a plain
    /// command line, else the shell invocation itself).
    Remote { shell: PathBuf, command: OsString, judged: (String, Vec<OsString>), record: bool },
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Login { shell, pty } => {
                let how = if *pty { "under a PTY" } else { "on pipes (no PTY requested)" };
                write!(f, "login: record the login shell {} {how}", shell.display())
            }
            Plan::Passthrough { name, program, args, .. } => {
                write!(f, "passthrough ({name}): exec {}", program.display())?;
                for a in args {
                    write!(f, " {}", shell_word(a))?;
                }
                write!(f, ", unrecorded")
            }
            Plan::Remote { shell, command, judged, record } => {
                let (name, args) = judged;
                let judged_args = args.iter().map(|a| shell_word(&a.to_string_lossy()));
                write!(
                    f,
                    "remote command: {} -c {}; the policy judges `{}`; {}",
                    shell.display(),
                    shell_word(&command.to_string_lossy()),
                    std::iter::once(shell_word(name)).chain(judged_args).collect::<Vec<_>>().join(" "),
                    if *record {
                        "recorded (ssh.record_remote_commands), rules may add approval"
                    } else {
                        "the policy's actions decide whether it is recorded"
                    }
                )
            }
        }
    }
}

/// Decides what runs. A passthrough whose program is not trusted (see `ssh::trust`) becomes a recorded
/// remote command, with a notice: it still works, it is just not let through unrecorded.
pub fn plan(loaded: &Loaded, request: Request, shell: &Path) -> Plan {
    let ssh = &loaded.settings.ssh;
    let remote = |command: OsString, words: Option<Vec<String>>| {
        let judged = match words.as_deref() {
            Some([first, rest @ ..]) => (first.clone(), rest.iter().map(OsString::from).collect()),
            _ => (shell.to_string_lossy().into_owned(), vec![OsString::from("-c"), command.clone()]),
        };
        Plan::Remote { shell: shell.to_path_buf(), command, judged, record: ssh.record_remote_commands }
    };
    match request {
        Request::Login => {
            Plan::Login { shell: shell.to_path_buf(), pty: crate::recorder::tty::interactive() }
        }
        Request::Remote { command, words } => remote(command, words),
        Request::Passthrough { name, words } => {
            let first = words[0].clone();
            let program = if first == "internal-sftp" {
                let candidates: Vec<PathBuf> = match &ssh.sftp_server {
                    Some(p) => vec![p.clone()],
                    None => SFTP_SERVERS.iter().map(PathBuf::from).collect(),
                };
                trust::first_trusted(&candidates)
            } else {
                trust::trusted_program(&first, &ssh.trusted_path)
            };
            match program {
                Ok(program) => Plan::Passthrough { name, program, argv0: first, args: words[1..].to_vec() },
                Err(why) => {
                    eprintln!("ddcoterm: {name} is not let through unrecorded ({why}); recording it instead");
                    let line = words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ");
                    remote(OsString::from(line), Some(words))
                }
            }
        }
    }
}

/// Passthrough names are program names; anything else in the list is a config error naming the entry.
pub fn validate(loaded: &Loaded) -> Result<(), ConfigError> {
    for (i, name) in loaded.settings.ssh.passthrough.iter().enumerate() {
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                loaded.dirs.system_config(),
                None,
                None,
                format!("key `ssh.passthrough[{i}]`: {name:?} is not a program name (no path, no spaces)"),
            ));
        }
    }
    if let Some(p) = &loaded.settings.ssh.sftp_server {
        if !p.is_absolute() {
            return Err(ConfigError::invalid(
                loaded.dirs.system_config(),
                None,
                None,
                format!("key `ssh.sftp_server`: {} is not an absolute path", p.display()),
            ));
        }
    }
    Ok(())
}

/// The user's login shell from the password database, as sshd takes it (`/bin/sh` when empty).
pub fn login_shell() -> PathBuf {
    crate::nss::user_by_uid(nix::unistd::getuid())
        .map(|u| u.shell)
        .filter(|s| !s.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, LoadOptions};
    use crate::dirs::Dirs;
    use crate::ssh::classify::classify;
    use std::ffi::OsStr;

    fn loaded(system: &str) -> (tempfile::TempDir, Loaded) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("home")).unwrap();
        std::fs::write(d.path().join("etc/config.yaml"), system).unwrap();
        let opts =
            LoadOptions { dirs: Dirs::at(d.path().join("etc"), d.path().join("home")), sets: Vec::new() };
        let l = load(&opts).unwrap();
        (d, l)
    }

    fn req(line: &str, l: &Loaded) -> Request {
        classify(Some(OsStr::new(line)), &l.settings.ssh.passthrough)
    }

    #[test]
    fn plans_for_each_kind_of_session() {
        // `cat` stands in for a transfer server: installed by root on every machine the tests run on.
        let (_d, l) = loaded("ssh:\n  passthrough: [cat]\n  trusted_path: [/usr/bin, /bin]\n");
        let sh = Path::new("/bin/bash");
        let p = plan(&l, req("cat -u 'a file'", &l), sh);
        assert_eq!(
            p,
            Plan::Passthrough {
                name: "cat".into(),
                program: PathBuf::from("/usr/bin/cat"),
                argv0: "cat".into(),
                args: vec!["-u".into(), "a file".into()]
            },
            "{p}"
        );
        assert_eq!(p.to_string(), "passthrough (cat): exec /usr/bin/cat -u 'a file', unrecorded");
        let p = plan(&l, req("kubectl get pods", &l), sh);
        let Plan::Remote { judged, record, command, .. } = &p else { panic!("{p}") };
        assert_eq!((judged.0.as_str(), judged.1.len(), *record), ("kubectl", 2, true));
        assert_eq!(command, "kubectl get pods");
        assert!(p.to_string().contains("the policy judges `kubectl get pods`"), "{p}");

        let p = plan(&l, req("kubectl get pods | wc -l", &l), sh);
        let Plan::Remote { judged, .. } = &p else { panic!("{p}") };
        assert_eq!(judged.0, "/bin/bash");
        assert_eq!(judged.1, vec![OsString::from("-c"), OsString::from("kubectl get pods | wc -l")]);
    }

    #[test]
    fn untrusted_transfer_programs_are_recorded_instead() {
        let (d, l) = loaded("ssh:\n  trusted_path: [/nonexistent]\n");
        let p = plan(&l, req("scp -t /tmp", &l), Path::new("/bin/bash"));
        let Plan::Remote { judged, command, .. } = &p else { panic!("{p}") };
        assert_eq!((judged.0.as_str(), command.to_string_lossy().as_ref()), ("scp", "scp -t /tmp"));
        // An absolute path outside root's directories is no better.
        let fake = d.path().join("sftp-server");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        let p = plan(&l, req(&fake.to_string_lossy(), &l), Path::new("/bin/bash"));
        assert!(matches!(p, Plan::Remote { .. }), "{p}");
    }

    #[test]
    fn config_switches_change_the_plan() {
        let (_d, l) = loaded("ssh:\n  passthrough: [rsync]\n  record_remote_commands: false\n");
        let p = plan(&l, req("scp -t /tmp", &l), Path::new("/bin/bash"));
        assert!(matches!(p, Plan::Remote { record: false, .. }), "{p}");
        assert!(p.to_string().contains("the policy's actions decide"), "{p}");
    }

    #[test]
    fn bad_passthrough_entries_are_config_errors() {
        for (yaml, key) in [
            ("ssh:\n  passthrough: [/usr/bin/scp]\n", "ssh.passthrough[0]"),
            ("ssh:\n  passthrough: [scp, 'git upload-pack']\n", "ssh.passthrough[1]"),
            ("ssh:\n  sftp_server: sftp-server\n", "ssh.sftp_server"),
        ] {
            let (_d, l) = loaded(yaml);
            let e = validate(&l).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("config.yaml"), "{e}");
        }
        let (_d, l) = loaded("ssh:\n  passthrough: [scp, borg]\n  sftp_server: /opt/ssh/sftp-server\n");
        validate(&l).unwrap();
    }

    #[test]
    fn ssh_settings_come_from_the_system_layer_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("home")).unwrap();
        std::fs::write(d.path().join("etc/config.yaml"), "ssh:\n  passthrough: [scp]\n").unwrap();
        std::fs::write(d.path().join("home/config.yaml"), "ssh:\n  passthrough: [scp, bash]\n").unwrap();
        let opts =
            LoadOptions { dirs: Dirs::at(d.path().join("etc"), d.path().join("home")), sets: Vec::new() };
        let l = load(&opts).unwrap();
        assert_eq!(l.settings.ssh.passthrough, vec!["scp".to_string()]);
        assert!(l.warnings.iter().any(|w| w.contains("`ssh` is honoured from")), "{:?}", l.warnings);
    }
}
