//! Typed errors that carry their own exit code, so `main` alone maps failures to process status.

use std::path::PathBuf;

/// sysexits(3) codes and shell conventions we return.
pub mod exit {
    /// Usage error (bad argument).
    pub const USAGE: i32 = 64;
    /// Bad input data (policy test file, cast file).
    pub const DATAERR: i32 = 65;
    /// Internal software error.
    pub const SOFTWARE: i32 = 70;
    /// I/O error on a file we own.
    pub const IOERR: i32 = 74;
    /// Configuration error: file, line, key.
    pub const CONFIG: i32 = 78;
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
    pub fn new(code: i32, msg: impl Into<String>) -> Self {
        Exit { code, msg: msg.into() }
    }
}

/// Maps an error chain to an exit status: the first typed error found decides.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return exit::CONFIG;
        }
    }
    exit::SOFTWARE
}
