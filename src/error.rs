//! Typed errors that carry their own exit code, so `main` alone maps failures to process status.

use std::path::PathBuf;

/// sysexits(3) codes and shell conventions we return: the README's exit-code table, one constant a row.
/// The guarded command's own status passes through unchanged and is not listed here.
pub mod exit {
    /// Success (`--help` and `--version` included).
    pub const OK: i32 = 0;
    /// Usage error (bad argument, unknown subcommand or flag, `--set` value of the wrong type).
    pub const USAGE: i32 = 64;
    /// Bad input data (policy test file, cast file).
    pub const DATAERR: i32 = 65;
    /// Internal software error.
    pub const SOFTWARE: i32 = 70;
    /// I/O error on a file we own.
    pub const IOERR: i32 = 74;
    /// Temporary failure: `spool flush` left records for a destination that did not answer.
    pub const TEMPFAIL: i32 = 75;
    /// Configuration error: file, line, key.
    pub const CONFIG: i32 = 78;
    /// Command found but not executable (shell convention).
    pub const NOT_EXECUTABLE: i32 = 126;
    /// Command not found (shell convention).
    pub const NOT_FOUND: i32 = 127;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: i32 = 130;
    /// Refused by policy, the user or an approver.
    pub const REFUSED: i32 = 1;
}

/// A configuration problem; always names where it is so that fleet operators can fix it from the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}{loc}: {msg}", loc = fmt_loc(*line, *column))]
    Invalid { path: PathBuf, line: Option<usize>, column: Option<usize>, msg: String },
    #[error("{source_name}: key `{key}`: {msg}")]
    Env { source_name: String, key: String, msg: String },
    #[error("{path}: refusing a {what} that may not speak for the organisation: {reason}", path = path.display())]
    Untrusted { path: PathBuf, what: &'static str, reason: String },
    #[error("{path}: {msg}", path = path.display())]
    Io { path: PathBuf, msg: String },
    #[error("policy: {0}")]
    Policy(String),
    /// A `--set KEY=VALUE` the settings cannot take: a usage error (64), not a broken file.
    #[error("--set {key}={value}: {msg}")]
    Flag { key: String, value: String, msg: String },
}

fn fmt_loc(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl ConfigError {
    pub fn invalid(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        msg: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid { path: path.into(), line, column, msg: msg.into() }
    }
}

/// An error that knows which exit status it deserves; anything else exits 70.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Exit {
    pub code: i32,
    pub msg: String,
}

impl Exit {
    /// An error with an explicit code from [`exit`]; prefer the named constructors below.
    pub fn new(code: i32, msg: impl Into<String>) -> Self {
        Exit { code, msg: msg.into() }
    }
    /// An error already shown to the user (clap's usage message): `main` prints nothing more.
    pub fn shown(code: i32) -> Self {
        Self::new(code, String::new())
    }
    /// Whether the message was already shown (see [`Exit::shown`]).
    pub fn is_shown(&self) -> bool {
        self.msg.is_empty()
    }
    /// Bad argument or flag (64).
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(exit::USAGE, msg)
    }
    /// Bad input data: a test table, a cast file, a bundle (65).
    pub fn data(msg: impl Into<String>) -> Self {
        Self::new(exit::DATAERR, msg)
    }
    /// An I/O error on a file ddcoterm owns (74).
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(exit::IOERR, msg)
    }
    /// Records left for a destination that did not answer; a later try may succeed (75).
    pub fn temp_fail(msg: impl Into<String>) -> Self {
        Self::new(exit::TEMPFAIL, msg)
    }
    /// A configuration problem that is not a [`ConfigError`] (78).
    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(exit::CONFIG, msg)
    }
    /// Refused by policy, the user or an approver (1).
    pub fn refused(msg: impl Into<String>) -> Self {
        Self::new(exit::REFUSED, msg)
    }
    /// Interrupted by Ctrl-C (130).
    pub fn interrupted(msg: impl Into<String>) -> Self {
        Self::new(exit::INTERRUPTED, msg)
    }
    /// The command to run does not exist (127).
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(exit::NOT_FOUND, msg)
    }
    /// Starting `what` failed with `err`: 127 when it does not exist, 126 when it exists but cannot be
    /// executed (permissions, not an executable format), as shells do.
    pub fn launch(what: impl std::fmt::Display, err: &std::io::Error) -> Self {
        let code =
            if err.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::NOT_EXECUTABLE };
        Self::new(code, format!("{what}: {err}"))
    }
}

/// Maps an error chain to an exit status: the first typed error found decides.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<ConfigError>() {
            return match e {
                ConfigError::Flag { .. } => exit::USAGE,
                _ => exit::CONFIG,
            };
        }
    }
    exit::SOFTWARE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_errors_are_internal() {
        assert_eq!(exit_code(&anyhow::anyhow!("something unexpected")), exit::SOFTWARE);
    }

    #[test]
    fn the_first_typed_error_in_the_chain_decides() {
        let e = anyhow::Error::from(Exit::not_found("x: command not found")).context("running x");
        assert_eq!(exit_code(&e), exit::NOT_FOUND);
        let e = anyhow::Error::from(ConfigError::invalid("/etc/c.yaml", Some(3), None, "bad"));
        assert_eq!(exit_code(&e), exit::CONFIG);
        let flag =
            ConfigError::Flag { key: "a.b".into(), value: "x".into(), msg: "expected an integer".into() };
        assert_eq!(exit_code(&flag.into()), exit::USAGE);
    }

    #[test]
    fn launch_failures_follow_the_shell() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Exit::launch("x", &nf).code, exit::NOT_FOUND);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Exit::launch("x", &denied).code, exit::NOT_EXECUTABLE);
    }
}
