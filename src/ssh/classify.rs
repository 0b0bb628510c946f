//! What an SSH session asks for, from `SSH_ORIGINAL_COMMAND` (set by sshd when a `ForceCommand` replaces the
//! client's command or subsystem): a login, the server side of a file transfer or git, or a remote command.

use super::words::plain_words;
use std::ffi::{OsStr, OsString};

/// The transfer and git servers whose server-side invocation ssh-login recognises, by their `ssh.passthrough`
/// name. `sftp-server` covers sshd's `internal-sftp` too. Other configured names pass on the program name
/// alone.
pub const KNOWN_SERVERS: [&str; 6] =
    ["scp", "sftp-server", "rsync", "git-upload-pack", "git-receive-pack", "git-upload-archive"];

/// One session's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// No command: sshd would have started the login shell.
    Login,
    /// The server side of a transfer that `ssh.passthrough` lets through: run `words` directly (no shell, no
    /// PTY, no recording). `name` is the passthrough entry that matched.
    Passthrough { name: String, words: Vec<String> },
    /// Anything else: the user's shell runs `command`, as sshd would. `words` when the line is plain (see
    /// [`plain_words`]): what the policy judges, instead of `$SHELL -c ...`.
    Remote { command: OsString, words: Option<Vec<String>> },
}

/// Classifies `original` (`SSH_ORIGINAL_COMMAND`, `None` when unset) against the `ssh.passthrough` names.
pub fn classify(original: Option<&OsStr>, passthrough: &[String]) -> Request {
    let Some(original) = original else { return Request::Login };
    let words = original.to_str().and_then(plain_words);
    if let Some(w) = &words {
        if let Some(name) = server_name(w) {
            if passthrough.contains(&name) {
                return Request::Passthrough { name, words: w.clone() };
            }
        }
    }
    Request::Remote { command: original.to_os_string(), words }
}

/// The passthrough name this invocation goes by: for a known program only when it is its server side
/// (`scp -t`, not `scp a b`), for any other program its basename. `None` for a known program run as a client.
pub fn server_name(words: &[String]) -> Option<String> {
    let (first, rest) = words.split_first()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    let known = |n: &str| Some(n.to_string());
    match base {
        "scp" => scp_is_server(rest).then(|| "scp".to_string()),
        "sftp-server" => known("sftp-server"),
        // sshd's in-process server, named without a path.
        "internal-sftp" if first == "internal-sftp" => known("sftp-server"),
        "rsync" => rsync_is_server(rest).then(|| "rsync".to_string()),
        "git-upload-pack" | "git-receive-pack" | "git-upload-archive" => known(base),
        "git" => match rest.first().map(String::as_str) {
            Some(sub @ ("upload-pack" | "receive-pack" | "upload-archive")) => Some(format!("git-{sub}")),
            _ => known("git"),
        },
        _ => known(base),
    }
}

/// scp's server side is `-t` (sink) or `-f` (source), possibly in a cluster (`-dt`); the letters that take a
/// value end a cluster and consume the next argument when they are last.
fn scp_is_server(args: &[String]) -> bool {
    const WITH_VALUE: &str = "DFJPSXcilo";
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) else { continue };
        for (i, ch) in cluster.char_indices() {
            if WITH_VALUE.contains(ch) {
                if i + ch.len_utf8() == cluster.len() {
                    it.next();
                }
                break;
            }
            if ch == 't' || ch == 'f' {
                return true;
            }
        }
    }
    false
}

/// rsync's server side starts with `--server`; `--daemon` (which runs the `pre-xfer exec` scripts of a
/// config file the client names) is not a transfer and is never let through.
fn rsync_is_server(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "--server")
        && !args.iter().any(|a| a == "--daemon" || a.starts_with("--config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        KNOWN_SERVERS.iter().map(|s| s.to_string()).collect()
    }

    fn classify_str(line: &str) -> Request {
        classify(Some(OsStr::new(line)), &defaults())
    }

    fn name_of(line: &str) -> Option<String> {
        match classify_str(line) {
            Request::Passthrough { name, .. } => Some(name),
            _ => None,
        }
    }

    #[test]
    fn transfer_servers_pass_through() {
        let cases = [
            ("scp -t /tmp", "scp"),
            ("scp -f /etc/hostname", "scp"),
            ("scp -v -d -t -- /srv/in", "scp"),
            ("scp -pt .", "scp"),
            ("scp -r -f 'dir with space'", "scp"),
            ("/usr/bin/scp -t x", "scp"),
            ("/usr/lib/openssh/sftp-server", "sftp-server"),
            ("/usr/libexec/openssh/sftp-server -l INFO", "sftp-server"),
            ("internal-sftp", "sftp-server"),
            ("internal-sftp -f AUTH -l VERBOSE", "sftp-server"),
            ("rsync --server -vlogDtpre.iLsfxCIvu . dest/", "rsync"),
            ("rsync --server --sender -vlogDtpre.iLsfxCIvu . 'src dir/'", "rsync"),
            ("git-upload-pack '/srv/git/repo.git'", "git-upload-pack"),
            ("git-receive-pack '~/repo.git'", "git-receive-pack"),
            ("git-upload-archive 'repo'", "git-upload-archive"),
            ("git-receive-pack 'it'\\''s here.git'", "git-receive-pack"),
            ("git upload-pack '/srv/repo.git'", "git-upload-pack"),
        ];
        for (line, want) in cases {
            assert_eq!(name_of(line).as_deref(), Some(want), "{line:?}");
        }
        assert_eq!(
            classify_str("git-receive-pack 'it'\\''s here.git'"),
            Request::Passthrough {
                name: "git-receive-pack".into(),
                words: vec!["git-receive-pack".into(), "it's here.git".into()]
            }
        );
    }

    #[test]
    fn clients_commands_and_shell_lines_are_remote_commands() {
        for line in [
            "scp a b",
            "scp -o StrictHostKeyChecking=no a b",
            "scp -i t -F f a b",
            "scp -- -t",
            "rsync -av a b",
            "rsync --server --daemon .",
            "rsync --server --config=/home/u/x.conf --daemon .",
            "git-upload-pack '/repo'; id",
            "scp -t /tmp && kubectl delete ns prod",
            "scp -t $HOME",
            "git log",
            "kubectl get pods",
            "exit 7",
            "sftp-server-evil",
        ] {
            assert!(matches!(classify_str(line), Request::Remote { .. }), "{line:?}");
        }
        // The internal-sftp alias needs the bare name sshd sends.
        assert!(matches!(classify_str("./internal-sftp"), Request::Remote { .. }));
    }

    #[test]
    fn remote_commands_keep_their_words_when_plain() {
        assert_eq!(
            classify_str("kubectl get pods"),
            Request::Remote {
                command: "kubectl get pods".into(),
                words: Some(vec!["kubectl".into(), "get".into(), "pods".into()])
            }
        );
        assert_eq!(
            classify_str("kubectl get pods | wc -l"),
            Request::Remote { command: "kubectl get pods | wc -l".into(), words: None }
        );
    }

    #[test]
    fn the_default_passthrough_list_is_every_known_server() {
        assert_eq!(crate::config::settings::SshSettings::default().passthrough, defaults());
    }

    #[test]
    fn no_command_is_a_login_and_the_list_is_configurable() {
        assert_eq!(classify(None, &defaults()), Request::Login);
        let only_git = vec!["git-upload-pack".to_string(), "borg".to_string()];
        assert!(matches!(classify(Some(OsStr::new("scp -t /tmp")), &only_git), Request::Remote { .. }));
        assert!(matches!(
            classify(Some(OsStr::new("git-upload-pack 'r'")), &only_git),
            Request::Passthrough { .. }
        ));
        // A program ssh-login does not know passes on its name alone.
        assert!(matches!(
            classify(Some(OsStr::new("borg serve --restrict-to-path /srv")), &only_git),
            Request::Passthrough { .. }
        ));
        assert!(matches!(
            classify(Some(OsStr::new("/usr/lib/openssh/sftp-server")), &[]),
            Request::Remote { .. }
        ));
    }

    #[test]
    fn non_utf8_commands_are_left_to_the_shell() {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b"scp -t /tmp/\xff");
        assert_eq!(
            classify(Some(raw), &defaults()),
            Request::Remote { command: raw.to_os_string(), words: None }
        );
    }
}
