//! Subcommand implementations: the only glue between modules, and the only owner of a tokio runtime.

pub mod agent;
pub mod approval_gate;
pub mod approve;
pub mod bundle_cmd;
pub mod check;
pub mod completions;
pub mod config_cmd;
pub mod context;
pub mod doctor;
pub mod guard;
pub mod init;
pub mod intercept;
pub mod lint_prompt;
pub mod play;
pub mod policy_cmd;
pub mod record;
pub mod recovery;
pub mod session;
pub mod sessions;
pub mod shim_cmd;
pub mod spool_cmd;
pub mod ssh_login;

use crate::cli::{Cli, Command};
use clap::Parser;

/// Runs the CLI (not the shim path); returns the process exit status.
pub fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
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
        Some(Command::Doctor) => doctor::run(&g),
        Some(Command::Approve(a)) => approve::run(&g, a),
        Some(Command::Bundle(c)) => bundle_cmd::run(&g, c),
        Some(Command::SshLogin(a)) => ssh_login::run(&g, a),
        Some(Command::Agent) => agent::run(&g),
        Some(Command::Completions(a)) => completions::run(a),
        Some(Command::Manpages(a)) => completions::manpages(a),
    }
}
