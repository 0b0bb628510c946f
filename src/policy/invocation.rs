//! What is being run, by whom and where: the only input the policy engine reads (no global state).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One guarded command invocation. Policy reads only this, so `policy test` can fabricate it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// Basename of the executable (`kubectl`), what `process_config.commands[].command` matches.
    pub executable: String,
    /// Arguments after the executable.
    pub args: Vec<String>,
    /// The environment the command would see.
    pub env: BTreeMap<String, String>,
    /// Working directory (relative paths in flags and env resolve against it).
    pub cwd: PathBuf,
    pub user: ProcessFact,
    pub hostname: ProcessFact,
}

/// A fact about the calling process that costs system calls to learn (the user name goes through NSS and
/// reads /etc/passwd): learnt on first use, so a shim call whose snippets never ask pays nothing for it.
#[derive(Clone)]
pub struct ProcessFact {
    value: OnceCell<String>,
    learn: fn() -> String,
}

impl ProcessFact {
    /// Learnt by calling `learn` the first time it is read.
    pub fn lazy(learn: fn() -> String) -> ProcessFact {
        ProcessFact { value: OnceCell::new(), learn }
    }

    pub fn get(&self) -> &str {
        self.value.get_or_init(self.learn)
    }
}

impl From<&str> for ProcessFact {
    fn from(s: &str) -> Self {
        ProcessFact { value: OnceCell::from(s.to_string()), learn: String::new }
    }
}

impl Default for ProcessFact {
    fn default() -> Self {
        "".into()
    }
}

impl PartialEq for ProcessFact {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for ProcessFact {}

impl std::fmt::Debug for ProcessFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.get(), f)
    }
}

impl Invocation {
    /// Builds the invocation of this process: `executable` may be a path (its basename is kept); arguments that
    /// are not UTF-8 are converted lossily (policy sees U+FFFD; the real command still gets the original bytes).
    pub fn from_process(executable: &str, args: &[OsString]) -> Invocation {
        Invocation {
            executable: basename(executable),
            args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            env: std::env::vars_os()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            user: ProcessFact::lazy(crate::dirs::user_name),
            hostname: ProcessFact::lazy(crate::dirs::host_name),
        }
    }

    /// The command line for display (`kubectl scale deploy/x`), arguments with spaces quoted.
    pub fn command_line(&self) -> String {
        std::iter::once(self.executable.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|a| {
                if a.is_empty() || a.contains(char::is_whitespace) || a.contains('\'') {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `/usr/bin/kubectl` -> `kubectl`.
pub fn basename(exe: &str) -> String {
    Path::new(exe).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| exe.to_string())
}

/// `a` as a shell word for display (a recording's command line, `ssh-login --dry-run`): bare when that is
/// unambiguous, else single-quoted. Unlike `shlex` it leaves `=`, `,` and `%` bare, so `--replicas=0` reads
/// as typed in the recordings reviewers open.
pub fn shell_word(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn from_process_keeps_basename_and_converts_lossily() {
        let inv = Invocation::from_process(
            "/usr/local/bin/kubectl",
            &[OsString::from("get"), OsString::from_vec(vec![b'a', 0xff, b'b'])],
        );
        assert_eq!(inv.executable, "kubectl");
        assert_eq!(inv.args, ["get", "a\u{fffd}b"]);
        assert!(!inv.user.get().is_empty());
        assert_eq!(inv.user.get(), crate::dirs::user_name());
        assert!(inv.cwd.is_absolute());
    }

    #[test]
    fn command_line_quotes_spaces() {
        let inv = Invocation {
            executable: "echo".into(),
            args: vec!["a b".into(), "c".into()],
            ..Default::default()
        };
        assert_eq!(inv.command_line(), "echo 'a b' c");
    }
}
