//! Subcommand implementations: the only glue between modules, and the only owner of a tokio runtime.

pub mod agent;
pub mod approve;
pub mod bundle_cmd;
pub mod check;
pub mod completions;
pub mod config_cmd;
pub mod context;
pub mod doctor;
pub mod init;
pub mod intercept;
pub mod play;
pub mod policy_cmd;
pub mod record;
pub mod sessions;
pub mod shim_cmd;
pub mod spool_cmd;
pub mod ssh_login;
pub mod ui;

pub use ui::report_error;

use crate::cli::{Cli, Command};
use crate::error::{exit, Exit};
use clap::Parser;

/// Runs the CLI (not the shim path); returns the process exit status.
pub fn main() -> anyhow::Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failed(e),
    };
    if cli.command.is_some() && (cli.run.actions.is_some() || cli.run.yes || !cli.cmd.is_empty()) {
        return Err(Exit::usage(
            "--actions, --yes and `-- CMD` belong to `ddcoterm [--actions LIST] [--yes] -- CMD` or go after the subcommand that takes them (`ddcoterm check --yes -- CMD`)",
        )
        .into());
    }
    context::init_logging(cli.global.verbose);
    let g = cli.global;
    match cli.command {
        None => record::run(&g, &cli.run, cli.cmd),
        Some(Command::Check(a)) => check::run(&g, a),
        Some(Command::Config(c)) => config_cmd::run(&g, c),
        Some(Command::Policy(c)) => policy_cmd::run(&g, c),
        Some(Command::Shim(c)) => shim_cmd::run(&g, c),
        Some(Command::Play(a)) => play::run(&g, a),
        Some(Command::Sessions(a)) => sessions::run(&g, a),
        Some(Command::Spool(c)) => spool_cmd::run(&g, c),
        Some(Command::Init(a)) => init::run(&g, a),
        Some(Command::Doctor(a)) => doctor::run(&g, a),
        Some(Command::Approve(a)) => approve::run(&g, a),
        Some(Command::Bundle(c)) => bundle_cmd::run(&g, c),
        Some(Command::SshLogin(a)) => ssh_login::run(&g, a),
        Some(Command::Agent) => agent::run(&g),
        Some(Command::Completions(a)) => completions::run(a),
        Some(Command::Manpages(a)) => completions::manpages(a),
    }
}

/// clap's own outcome when the arguments are not a command to run: `--help` and `--version` print on stdout
/// and succeed; anything else (unknown subcommand or flag, missing or bad value) is printed by clap, with its
/// suggestion, and exits 64 like every other usage error (clap alone would exit 2).
fn parse_failed(e: clap::Error) -> anyhow::Result<i32> {
    let e = subcommand_suggestion(&e).unwrap_or(e);
    let _ = e.print();
    if e.use_stderr() {
        return Err(Exit::shown(exit::USAGE).into());
    }
    Ok(exit::OK)
}

/// A mistyped subcommand at the top level reaches clap as an argument (the `-- CMD` positional is there),
/// which clap reports without its did-you-mean. Parsed again against the subcommands alone, clap says
/// `unrecognized subcommand 'chek'` with `a similar subcommand exists: 'check'`.
fn subcommand_suggestion(e: &clap::Error) -> Option<clap::Error> {
    use clap::error::{ContextKind, ErrorKind};
    use clap::CommandFactory;
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let word = e.get(ContextKind::InvalidArg)?.to_string();
    if word.starts_with('-') {
        return None;
    }
    let full = Cli::command();
    let probe = clap::Command::new("ddcoterm").subcommands(full.get_subcommands().cloned());
    let err = probe.try_get_matches_from(["ddcoterm", word.as_str()]).err()?;
    (err.kind() == ErrorKind::InvalidSubcommand).then_some(err)
}
