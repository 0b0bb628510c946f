//! What every command starts from: the loaded configuration (warnings printed once), logging, the guard's
//! options from the flags, and a tokio runtime for the commands that need the network.

use crate::cli::{GlobalArgs, RunArgs};
use crate::config::{LoadOptions, Loaded};
use crate::guard::{self, decide};

/// Loads the layered configuration for this invocation and prints its warnings once on stderr.
pub fn load(global: &GlobalArgs) -> anyhow::Result<Loaded> {
    guard::load_config(options(global))
}

/// [`load`] for the guard path (`--`, `approve`, `ssh-login`; the shim calls the guard directly): a broken
/// user layer is a warning and is skipped, the organisation's layers still decide.
pub fn load_guarded(global: &GlobalArgs) -> anyhow::Result<Loaded> {
    guard::load_guarded_config(options(global))
}

fn options(global: &GlobalArgs) -> LoadOptions {
    let mut opts = LoadOptions::from_env();
    opts.sets = global.set.clone();
    opts
}

/// The guard sequence's options from `--actions`, `--yes` and `--quiet` (an unknown action exits 64).
pub fn guard_options(global: &GlobalArgs, run: &RunArgs) -> anyhow::Result<guard::Options> {
    Ok(guard::Options {
        actions: decide::parse_actions(run.actions.as_deref())?,
        yes: run.yes,
        quiet: global.quiet,
    })
}

/// stderr logging for subcommands (never on the shim path); `DDCOTERM_LOG` overrides the level.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DDCOTERM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A current-thread tokio runtime, built only by commands that need the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
