//! Subcommand implementations: the only glue between modules, and the only owner of a tokio runtime.

pub mod intercept;

use crate::cli::Cli;
use clap::Parser;

/// Runs the CLI (not the shim path); returns the process exit status.
pub fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let _ = cli;
    anyhow::bail!("not wired yet")
}
