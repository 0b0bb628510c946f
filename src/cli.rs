//! The command-line surface as data: clap derive structs whose doc comments are the help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Record terminal sessions and guard commands with CoTerm-compatible Lua policy.
///
/// With no subcommand, `ddcoterm` records an interactive login shell; `ddcoterm -- CMD...` records one
/// command (after evaluating it against lints and rules, like a shim would). Global flags (`--set`, `-v`,
/// `-q`) go before or after the subcommand. Exit codes: see the README's table (64 for a usage error).
#[derive(Debug, Parser)]
#[command(
    name = "ddcoterm",
    version,
    propagate_version = true,
    verbatim_doc_comment,
    after_help = "Examples:\n  ddcoterm                          # record an interactive shell\n  ddcoterm -- kubectl get pods      # evaluate policy, then record one command\n  ddcoterm shim create kubectl      # guard every `kubectl` call\n  ddcoterm check -- kubectl scale deploy/web --replicas=0"
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

    /// No informational lines on stderr (a session's start line, progress notes). Warnings, errors,
    /// prompts, the break-glass banner and the line saying where a recording is are always printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    /// Evaluates lints and rules exactly as a shim would (context variables, the deciding rule with its file
    /// and line, messages, actions) and runs nothing. Exit 0 whatever the decision.
    #[command(
        after_help = "Examples:\n  ddcoterm check -- kubectl scale deploy/web --replicas=3 --context prod-eu\n  ddcoterm check --format json -- terraform apply"
    )]
    Check(CheckArgs),
    /// Show the effective configuration and where each value came from.
    ///
    /// The layers are merged in order (defaults, system, bundles, team, user, environment, --set); the
    /// organisation's policy floor cannot be loosened by the later ones.
    #[command(
        subcommand,
        after_help = "Examples:\n  ddcoterm config show --origin\n  ddcoterm config paths"
    )]
    Config(ConfigCommand),
    /// Test lints and rules against a table of invocations before pushing them.
    ///
    /// A YAML table of invocations and the decision each must get; exit 1 when one does not.
    #[command(
        subcommand,
        after_help = "Examples:\n  ddcoterm policy test deploy/bundles/sre-baseline.tests.yaml"
    )]
    Policy(PolicyCommand),
    /// Create, remove and list the shims that guard commands.
    ///
    /// A shim is a symlink named after the command, in a directory put first on PATH; it runs the guard
    /// sequence and then the real binary.
    #[command(
        subcommand,
        after_help = "Examples:\n  ddcoterm shim create kubectl terraform\n  ddcoterm shim list"
    )]
    Shim(ShimCommand),
    /// Replay a recording in this terminal, safely: terminal queries, clipboard, title and hyperlink
    /// sequences in the recording never reach your terminal.
    ///
    /// Keys: space pause/resume, `.` one event (paused), `+`/`-` speed, left/right 5 s back/on, `q` quit.
    /// When stdout is not a terminal the output is written at once, without keys.
    #[command(
        after_help = "Examples:\n  ddcoterm play 4f1c2a9e --speed 2 --idle-limit 1\n  ddcoterm play ~/.ddcoterm/recordings/<id>.cast | less -R"
    )]
    Play(PlayArgs),
    /// List local recordings, newest first (or show one).
    ///
    /// One line per recording: short id, start, duration, exit, size, user, host, command; filters narrow it.
    #[command(
        after_help = "Examples:\n  ddcoterm sessions --command kubectl --since 7d --exit 1\n  ddcoterm sessions --format json\n  ddcoterm sessions show 4f1c2a9e"
    )]
    Sessions(SessionsArgs),
    /// Inspect or send the durable outbox of records waiting for Datadog.
    ///
    /// Every record (session chunks, events, audit records) is written to the spool before it is sent, and
    /// leaves it only when its destination acknowledged it.
    #[command(
        subcommand,
        after_help = "Examples:\n  ddcoterm spool status\n  ddcoterm spool flush --progress"
    )]
    Spool(SpoolCommand),
    /// Write ~/.ddcoterm/config.yaml and validate the Datadog keys.
    ///
    /// Asks for the site and keys (or takes them from flags and DD_API_KEY / DD_APP_KEY) and writes the user
    /// configuration file 0600.
    #[command(
        after_help = "Examples:\n  ddcoterm init --site app.datadoghq.eu\n  DD_API_KEY=... ddcoterm init --non-interactive --skip-validation"
    )]
    Init(InitArgs),
    /// Check config layers, shims on PATH, keys, spool and clock; one verdict per line.
    ///
    /// Prints ok, warn or FAIL per check, with what to do about each; exit 1 on any FAIL.
    #[command(after_help = "Examples:\n  ddcoterm doctor\n  ddcoterm doctor --format json")]
    Doctor(DoctorArgs),
    /// Request approval for a command (or for this session) through Case Management.
    ///
    /// Opens a case and waits for an approver (Ctrl-C cancels it), then runs the command with its decided
    /// actions; with no command, records this terminal session once approved.
    #[command(
        after_help = "Examples:\n  ddcoterm approve --reason 'INC-42 rollback' -- kubectl rollout undo deploy/web\n  ddcoterm approve --reason 'prod debugging'"
    )]
    Approve(ApproveArgs),
    /// Create, sign, verify, pull and list signed rule bundles.
    ///
    /// A bundle is a policy file signed with an ed25519 key the organisation trusts; machines pull and verify
    /// bundles from `bundles.sources`.
    #[command(
        subcommand,
        after_help = "Examples:\n  ddcoterm bundle keygen --out org-signing\n  ddcoterm bundle list"
    )]
    Bundle(BundleCommand),
    /// What sshd runs for every session on a bastion (`ForceCommand /usr/local/bin/ddcoterm ssh-login`).
    ///
    /// A login records the user's login shell; a remote command (`SSH_ORIGINAL_COMMAND`) is judged by policy
    /// and recorded, run by the user's shell as sshd would; scp, sftp, rsync and git servers (`ssh.passthrough`)
    /// run directly, unrecorded and byte-exact.
    #[command(after_help = "Examples:\n  SSH_ORIGINAL_COMMAND='scp -t /tmp' ddcoterm ssh-login --dry-run")]
    SshLogin(SshLoginArgs),
    /// Bastion mode: hold the spool, audit log, recordings and upload credentials for every user's recorder.
    ///
    /// Runs as its own system user (deploy/systemd/ddcoterm-agent.service); recorders stream to it over
    /// `agent.socket` and it files each session under the user the kernel says is connected. Everything it
    /// reads comes from the system layer (`agent:` in /etc/ddcoterm/config.yaml); see docs/bastion.md.
    #[command(after_help = "Examples:\n  sudo -u ddcoterm-agent ddcoterm agent")]
    Agent,
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    ///
    /// Generated from the same command definitions as the help, so it always matches this binary. Packages
    /// install the scripts where each shell looks (`make install`, `make package`).
    #[command(
        after_help = "Examples:\n  source <(ddcoterm completions bash)\n  ddcoterm completions fish > ~/.config/fish/completions/ddcoterm.fish"
    )]
    Completions(CompletionsArgs),
    /// Write one man page per command into a directory (packaging: `make gen`).
    ///
    /// One roff page per command and subcommand, from the same definitions as the help.
    #[command(hide = true, after_help = "Examples:\n  ddcoterm manpages --out target/gen/man")]
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Same as `--format json` (kept for scripts).
    #[arg(long, hide = true)]
    pub json: bool,
    /// The command to evaluate.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged configuration (keys masked).
    ///
    /// Every key with its effective value; with --origin, the file and line each value came from.
    #[command(
        after_help = "Examples:\n  ddcoterm config show --origin\n  ddcoterm config show --format json"
    )]
    Show {
        /// Print, for every key, the file and line its value came from.
        #[arg(long)]
        origin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Print the config files that are read, in layer order, and whether each exists.
    ///
    /// One line per layer file; a missing optional file is not an error.
    #[command(after_help = "Examples:\n  ddcoterm config paths")]
    Paths,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// `ddcoterm doctor`.
#[derive(Debug, Clone, Default, Args)]
pub struct DoctorArgs {
    /// Output format: one verdict per line, or JSON (`checks`: `verdict`, `what`, `detail`; `failed`).
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// How a list is printed: a table for people, JSON for scripts.
#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

impl ListFormat {
    /// `--format`, with the hidden `--json` of earlier releases meaning `--format json`.
    pub fn or_json(self, json: bool) -> ListFormat {
        if json {
            ListFormat::Json
        } else {
            self
        }
    }
}

/// How a single report (a decision) is printed.
#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run a YAML table of invocations against the effective policy (plus extra config files) and report.
    ///
    /// Prints `N passed, N failed` with each failure's expected and actual decision; exit 1 on a failure,
    /// 65 when the table itself is malformed.
    #[command(
        after_help = "Examples:\n  ddcoterm policy test deploy/bundles/sre-baseline.tests.yaml\n  ddcoterm policy test tests.yaml --config team.yaml"
    )]
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
    /// Creates the symlinks and, unless --no-rc, adds the PATH line to ~/.bashrc and ~/.zshrc (or the
    /// system profile script with --system).
    #[command(
        after_help = "Examples:\n  ddcoterm shim create kubectl terraform helm\n  sudo ddcoterm shim create --system kubectl"
    )]
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
    ///
    /// Removes only symlinks that point at ddcoterm; anything else of that name is left alone.
    #[command(after_help = "Examples:\n  ddcoterm shim remove helm")]
    Remove {
        #[arg(required = true, value_name = "CMD")]
        commands: Vec<String>,
        #[arg(long)]
        system: bool,
    },
    /// List shims, the real binary each resolves to, and whether its directory is first on PATH.
    ///
    /// One line per shim; a shim whose real binary is missing is flagged.
    #[command(after_help = "Examples:\n  ddcoterm shim list\n  ddcoterm shim list --system")]
    List {
        #[arg(long)]
        system: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The .cast file, or a session id (full, or the short one `ddcoterm sessions` prints).
    pub file: String,
    /// Playback speed multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Cap idle pauses at this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub idle_limit: Option<f64>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub show: Option<SessionsCommand>,
    /// Only sessions of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only sessions recorded on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only sessions whose command line contains this text.
    #[arg(long)]
    pub command: Option<String>,
    /// Only sessions started at or after this time: RFC 3339 (2026-05-01T09:00:00Z) or a duration ago (2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only sessions started before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only sessions whose command exited with this status.
    #[arg(long, value_name = "STATUS", allow_negative_numbers = true)]
    pub exit: Option<i32>,
    /// Output format: a table for people, or JSON (full ids, RFC 3339 times, numbers as numbers).
    #[arg(long, value_name = "FORMAT", value_parser = ["table", "json"], default_value = "table", global = true)]
    pub format: String,
    /// Same as --format json.
    #[arg(long, hide = true, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Everything known about one recording (by full id, short id or path).
    ///
    /// Id, start, duration, exit, size, user, host, command and the .cast path; `--format json` for scripts.
    #[command(
        after_help = "Examples:\n  ddcoterm sessions show 4f1c2a9e\n  ddcoterm sessions show 4f1c2a9e --format json"
    )]
    Show {
        /// A session id (full or the short one `sessions` prints) or a .cast path.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// What waits in the spool and why.
    ///
    /// Records by kind and destination, with the last error of each that failed and the dead letters.
    #[command(after_help = "Examples:\n  ddcoterm spool status\n  ddcoterm spool status --format json")]
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Same as `--format json` (kept for scripts).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Send everything waiting now.
    ///
    /// Exit 0 when the spool is empty afterwards, 75 when records are left for a destination that did not
    /// answer (they are kept and retried).
    #[command(
        after_help = "Examples:\n  ddcoterm spool flush --progress\n  ddcoterm spool flush --dead-letters"
    )]
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
    /// Update an existing config file: only the `connection_config` keys init writes change; comments and
    /// every other key are kept.
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
    /// Writes PREFIX.key (keep it off the fleet) and PREFIX.pub (list it in `bundles.trusted_keys`).
    #[command(after_help = "Examples:\n  ddcoterm bundle keygen --out org-signing")]
    Keygen {
        /// Path prefix: writes PREFIX.key and PREFIX.pub.
        #[arg(long, default_value = "ddcoterm-bundle")]
        out: PathBuf,
    },
    /// Sign a bundle: writes FILE.sig beside it.
    ///
    /// The bundle is validated first: an invalid bundle is never signed (exit 65).
    #[command(after_help = "Examples:\n  ddcoterm bundle sign sre-baseline.yaml --key org-signing.key")]
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a bundle against the trusted keys (or --pubkey).
    ///
    /// Exit 0 when FILE.sig is a valid signature by a trusted key, 1 otherwise.
    #[command(after_help = "Examples:\n  ddcoterm bundle verify sre-baseline.yaml --pubkey org-signing.pub")]
    Verify {
        file: PathBuf,
        #[arg(long)]
        pubkey: Option<PathBuf>,
    },
    /// Fetch bundles from `bundles.sources`, verify and install them.
    ///
    /// A bundle that fails verification is not installed and the one installed before stays in force.
    #[command(
        after_help = "Examples:\n  sudo ddcoterm bundle pull\n  ddcoterm bundle pull --dir /tmp/bundles"
    )]
    Pull {
        /// Install into this directory instead of the system bundle dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Installed bundles: revision, signer, source, fetched-at, status.
    ///
    /// One entry per installed bundle, with why a bundle is not in force.
    #[command(after_help = "Examples:\n  ddcoterm bundle list\n  ddcoterm bundle list --format json")]
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Same as `--format json` (kept for scripts).
        #[arg(long, hide = true)]
        json: bool,
    },
}
