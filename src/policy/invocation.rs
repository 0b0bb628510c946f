//! What is being run, by whom and where: the only input the policy engine reads (no global state).

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
    pub user: String,
    pub hostname: String,
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
            user: crate::dirs::user_name(),
            hostname: crate::dirs::host_name(),
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
        assert!(!inv.user.is_empty());
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
