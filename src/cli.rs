//! The command-line surface as data: clap derive structs whose doc comments are the help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Record terminal sessions and guard commands with CoTerm-compatible Lua policy.
///
/// With no subcommand, `ddcoterm` records an interactive login shell; `ddcoterm -- CMD...` records one
/// command (after evaluating it against lints and rules, like a shim would).
///
/// Examples:
///   ddcoterm                          # record an interactive shell
///   ddcoterm -- kubectl get pods      # evaluate policy, then record one command
///   ddcoterm shim create kubectl      # guard every `kubectl` call
///   ddcoterm check -- kubectl scale deploy/web --replicas=0
#[derive(Debug, Parser)]
#[command(
    name = "ddcoterm",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    verbatim_doc_comment
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub run: RunArgs,

    /// The command to record (after `--`); none records an interactive shell. Arguments pass through as
    /// bytes (non-UTF-8 included).
    #[arg(last = true, value_name = "CMD", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub cmd: Vec<std::ffi::OsString>,
}

/// Flags every subcommand accepts; they form the highest config layer.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Override a config key for this run (highest layer), e.g. `--set recording.input=true`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub set: Vec<String>,

    /// More diagnostics on stderr (`-v` info, `-vv` debug). Keys are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// How a guarded command runs: shared by `ddcoterm -- CMD`, `check` and `approve`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Actions to take instead of the rule's (comma-separated: record,logs,process_info,approval,incidents;
    /// empty for none). An organisation rule's actions are still applied on top: flags cannot weaken them.
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 0..)]
    pub actions: Option<Vec<String>>,

    /// Answer "yes" to lint warnings (for scripts); the warnings are still printed.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the policy decision for a command without running it.
    ///
    /// Example: ddcoterm check -- kubectl scale deploy/web --replicas=3 --context prod-eu
    Check(CheckArgs),
    /// Show the effective configuration and where each value came from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Test lints and rules against a table of invocations before pushing them.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create, remove and list the shims that guard commands.
    #[command(subcommand)]
    Shim(ShimCommand),
    /// Replay a recording in this terminal.
    ///
    /// Example: ddcoterm play ~/.ddcoterm/recordings/<id>.cast --speed 2 --idle-limit 1
    Play(PlayArgs),
    /// List local recordings.
    Sessions(SessionsArgs),
    /// Inspect or send the durable outbox of records waiting for Datadog.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// Write ~/.ddcoterm/config.yaml and validate the Datadog keys.
    Init(InitArgs),
    /// Check config layers, shims on PATH, keys, spool and clock; one verdict per line.
    Doctor,
    /// Request approval for a command (or for this session) through Case Management.
    Approve(ApproveArgs),
    /// Create, sign, verify, pull and list signed rule bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// What sshd runs for every session on a bastion (`ForceCommand /usr/local/bin/ddcoterm ssh-login`).
    ///
    /// A login records the user's login shell; a remote command (`SSH_ORIGINAL_COMMAND`) is judged by policy
    /// and recorded, run by the user's shell as sshd would; scp, sftp, rsync and git servers (`ssh.passthrough`)
    /// run directly, unrecorded and byte-exact.
    ///
    /// Example: SSH_ORIGINAL_COMMAND='scp -t /tmp' ddcoterm ssh-login --dry-run
    SshLogin(SshLoginArgs),
    /// Bastion mode: hold the spool, audit log, recordings and upload credentials for every user's recorder.
    ///
    /// Runs as its own system user (deploy/systemd/ddcoterm-agent.service); recorders stream to it over
    /// `agent.socket` and it files each session under the user the kernel says is connected. Everything it
    /// reads comes from the system layer (`agent:` in /etc/ddcoterm/config.yaml); see docs/bastion.md.
    ///
    /// Example: sudo -u ddcoterm-agent ddcoterm agent
    Agent,
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    ///
    /// Example: source <(ddcoterm completions bash)
    Completions(CompletionsArgs),
    /// Write one man page per command into a directory (packaging: `make gen`).
    ///
    /// Example: ddcoterm manpages --out target/gen/man
    #[command(hide = true)]
    Manpages(ManpagesArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells the packages ship completions for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write `ddcoterm.1`, `ddcoterm-<command>.1`, ... into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SshLoginArgs {
    /// Print what this session would do (from SSH_ORIGINAL_COMMAND and the config) and exit.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command to evaluate.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged configuration (keys masked).
    ///
    /// Example: ddcoterm config show --origin
    Show {
        /// Print, for every key, the file and line its value came from.
        #[arg(long)]
        origin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Print the config files that are read, in layer order, and whether each exists.
    Paths,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run a YAML table of invocations against the effective policy (plus extra config files) and report.
    ///
    /// Example: ddcoterm policy test deploy/bundles/sre-baseline.tests.yaml
    Test {
        /// The test table.
        file: PathBuf,
        /// Policy files to test (a config or bundle); default: the test file's own `config:` entries, else the
        /// effective configuration.
        #[arg(long = "config", value_name = "FILE")]
        configs: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Put shims for these commands first on PATH.
    ///
    /// Example: ddcoterm shim create kubectl terraform helm
    Create {
        #[arg(required = true, value_name = "CMD")]
        commands: Vec<String>,
        /// System-wide (/usr/local/lib/ddcoterm/overrides and /etc/profile.d/ddcoterm.sh); needs root.
        #[arg(long)]
        system: bool,
        /// Do not touch shell rc files (print the PATH line instead).
        #[arg(long)]
        no_rc: bool,
    },
    /// Remove shims.
    Remove {
        #[arg(required = true, value_name = "CMD")]
        commands: Vec<String>,
        #[arg(long)]
        system: bool,
    },
    /// List shims, the real binary each resolves to, and whether its directory is first on PATH.
    List {
        #[arg(long)]
        system: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The .cast file (or a session id from `ddcoterm sessions`).
    pub file: String,
    /// Playback speed multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Cap idle pauses at this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub idle_limit: Option<f64>,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// What waits in the spool and why.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Send everything waiting now.
    Flush {
        /// Show a progress bar.
        #[arg(long)]
        progress: bool,
        /// Run as the background flusher a finished command starts: quietly, and not at all when another
        /// flush of this spool is running.
        #[arg(long)]
        background: bool,
        /// Put the dead letters (records refused for good) back first, once their cause is fixed.
        #[arg(long)]
        dead_letters: bool,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Datadog site UI host, e.g. app.datadoghq.eu (default app.datadoghq.com).
    #[arg(long)]
    pub site: Option<String>,
    /// API key (else prompted, or DD_API_KEY).
    #[arg(long, env = "DD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Application key (needed for approvals; else prompted, or DD_APP_KEY).
    #[arg(long, env = "DD_APP_KEY", hide_env_values = true)]
    pub app_key: Option<String>,
    /// Never prompt (fleet use): take everything from flags and environment.
    #[arg(long)]
    pub non_interactive: bool,
    /// Write the file without validating the keys against Datadog.
    #[arg(long)]
    pub skip_validation: bool,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Why the approval is needed (shown to approvers).
    #[arg(long)]
    pub reason: Option<String>,
    /// The command to approve; none approves this session.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Create an ed25519 key pair (private key 0600).
    ///
    /// Example: ddcoterm bundle keygen --out org-signing
    Keygen {
        /// Path prefix: writes PREFIX.key and PREFIX.pub.
        #[arg(long, default_value = "ddcoterm-bundle")]
        out: PathBuf,
    },
    /// Sign a bundle: writes FILE.sig beside it.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a bundle against the trusted keys (or --pubkey).
    Verify {
        file: PathBuf,
        #[arg(long)]
        pubkey: Option<PathBuf>,
    },
    /// Fetch bundles from `bundles.sources`, verify and install them.
    Pull {
        /// Install into this directory instead of the system bundle dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Installed bundles: revision, signer, source, fetched-at, status.
    List {
        #[arg(long)]
        json: bool,
    },
}
