//! `ddcoterm-server`: parse the command line, load settings, run one command, map errors to exit codes.

mod admission;
mod api;
mod auth;
mod backends;
mod cli;
mod cmd;
mod commit;
mod completer;
mod config;
mod connlimit;
mod error;
mod indexer;
mod ingest;
mod live;
mod login;
mod metrics;
mod objects;
mod search;
mod state;
mod store;
mod web;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::config::Overrides;

/// Exit code for a configuration error (EX_CONFIG), as the client uses.
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
        ..Default::default()
    };
    if let Command::Serve(a) = &cli.command {
        overrides.listen = a.listen.clone();
        overrides.public_url = a.public_url.clone();
        overrides.object_store = a.object_store.clone();
        overrides.log_format = a.log_format.clone();
        overrides.metrics_listen = a.metrics_listen.clone();
    }
    let settings = match config::load(cli.global.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ddcoterm-server: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // Few blocking threads: file writes and syncs go through them, and every extra thread is stack and a
    // malloc arena of resident memory (DESIGN.md §11: server RSS <= 150 MiB under 200 hosts).
    let rt = match tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ddcoterm-server: starting the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(_) => cmd::serve::run(settings).await,
            Command::Token(c) => cmd::token::run(&cmd::state(settings).await?, c).await,
            Command::User(c) => cmd::user::run(&cmd::state(settings).await?, c).await,
            Command::Verify { id } => cmd::verify::run(&cmd::state(settings).await?, &id).await,
            Command::Hold { id, release } => cmd::hold::run(&cmd::state(settings).await?, &id, release).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddcoterm-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
