//! What every command starts from: the loaded configuration (warnings printed once) and logging.

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions, Loaded};

/// Loads the layered configuration for this invocation and prints its warnings once on stderr.
pub fn load(global: &GlobalArgs) -> anyhow::Result<Loaded> {
    load_with(global, config::load)
}

/// [`load`] for the guard path (shim, `--`, `approve`, `ssh-login`): a broken user layer is a warning and
/// is skipped, the organisation's layers still decide ([`config::load::load_guarded`]).
pub fn load_guarded(global: &GlobalArgs) -> anyhow::Result<Loaded> {
    load_with(global, config::load::load_guarded)
}

fn load_with(
    global: &GlobalArgs,
    loader: fn(&LoadOptions) -> Result<Loaded, crate::error::ConfigError>,
) -> anyhow::Result<Loaded> {
    let mut opts = LoadOptions::from_env();
    opts.sets = global.set.clone();
    let loaded = loader(&opts)?;
    for w in &loaded.warnings {
        eprintln!("ddcoterm: warning: {w}");
    }
    Ok(loaded)
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
