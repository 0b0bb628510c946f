//! Command-line interface of `ddcoterm-server` (clap structs only; each command's work is in `cmd/`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Self-hosted session server for ddcoterm recordings.
///
/// Settings come from built-in defaults, then the YAML file (--config), then DDCOTERMD_* variables
/// (`__` nests: DDCOTERMD_RETENTION__DAYS=90), then flags.
#[derive(Debug, Parser)]
#[command(name = "ddcoterm-server", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// YAML configuration file.
    #[arg(long, global = true, env = "DDCOTERMD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database and the recordings (default ./ddcoterm-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database instead of <data-dir>/ddcoterm.db, e.g. sqlite:///var/lib/ddcoterm/meta.db.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    ///
    /// Example: ddcoterm-server serve --listen 0.0.0.0:7780 --public-url https://sessions.example.com
    Serve(ServeArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage local users (password sign-in for reviewers).
    #[command(subcommand)]
    User(UserCmd),
    /// Re-check a stored session end to end: every chunk's hash, the hash chain, the compacted cast.
    ///
    /// Example: ddcoterm-server verify 0192f0c4-7a1e-7c3e-9f55-1d2e3f4a5b6c
    Verify {
        /// Session id.
        id: String,
    },
    /// Put a session on legal hold (retention never deletes it) or release it.
    ///
    /// Example: ddcoterm-server hold 0192f0c4-7a1e-7c3e-9f55-1d2e3f4a5b6c --release
    Hold {
        /// Session id.
        id: String,
        /// Release the hold instead of setting it.
        #[arg(long)]
        release: bool,
    },
    /// Exit 0 when the server answers `GET /readyz` with 200 (database and recordings reachable), else 1.
    ///
    /// For container HEALTHCHECKs and probes on images without curl. Without --url it asks the address
    /// the configuration listens on (0.0.0.0 and [::] become loopback).
    ///
    /// Example: ddcoterm-server healthcheck --url http://127.0.0.1:7780/readyz
    Healthcheck(HealthcheckArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    ///
    /// Example: source <(ddcoterm-server completions bash)
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write one man page per command into a directory (packaging: `make gen`).
    ///
    /// Example: ddcoterm-server manpages --out target/gen/man
    #[command(hide = true)]
    Manpages {
        /// Directory to write `ddcoterm-server.1`, `ddcoterm-server-<command>.1`, ... into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The shells the packages ship completions for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Address to ask (http:// only; the server speaks plain HTTP). A URL without a path asks /readyz.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up (unhealthy) after this long (humantime: `3s`, `500ms`).
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:7780).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Base address put in session links when the server sits behind a proxy (default http://<listen>).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Where recordings go instead of <data-dir>/objects, e.g. file:///srv/recordings.
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    /// Log lines as text (default) or JSON.
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<String>,
    /// Serve /metrics without a token on this separate address (keep it off the public network).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Serve https with this PEM certificate chain (needs --tls-key; re-read when the file changes).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once (only its hash is stored).
    ///
    /// Example: ddcoterm-server token create bastion-1 --role host --host bastion-1.prod
    Create {
        /// Unique name; for a viewer token, the user name whose sessions it may read.
        name: String,
        /// host (writes its own sessions, never reads), viewer, auditor or admin.
        #[arg(long, default_value = "host")]
        role: String,
        /// Host name stamped on the sessions a host token creates (default: the token's name).
        #[arg(long)]
        host: Option<String>,
    },
    /// List tokens with role, host and when each was last seen.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: every later request with it gets 401.
    Revoke {
        /// Token name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; the password is asked on the terminal or read from stdin.
    ///
    /// Example: echo "$PW" | ddcoterm-server user add alice --role auditor --email alice@example.com --password-stdin
    Add {
        name: String,
        /// viewer (own sessions), auditor (all sessions) or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// The user's e-mail: sessions whose approver or incident responder is this address (any case) open
        /// for them too.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove { name: String },
    /// Set or clear (`--clear`) a user's e-mail.
    ///
    /// Example: ddcoterm-server user email alice alice@example.com
    Email {
        name: String,
        /// The address; omit it with --clear.
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        email: Option<String>,
        #[arg(long)]
        clear: bool,
    },
    /// List users: name, role, e-mail, how they sign in (tab-separated).
    List,
}
