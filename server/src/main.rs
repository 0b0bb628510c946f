//! `ddcoterm-server`: parse the command line, load settings, run one command, map errors to exit codes.

mod admission;
mod api;
mod auth;
mod backends;
mod castread;
mod cli;
mod client_addr;
mod cmd;
mod commit;
mod completer;
mod config;
mod connlimit;
mod error;
mod grants;
mod host_tokens;
mod indexer;
mod ingest;
mod keyframes;
mod live;
mod login;
mod metrics;
mod objects;
mod oidc;
mod packs;
mod replay;
mod search;
mod searchmatch;
mod serve_lock;
mod state;
mod store;
mod tails;
mod tls;
mod web;
mod window;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::config::Overrides;

/// Exit code for a configuration error (EX_CONFIG), as the client uses.
const EX_CONFIG: u8 = 78;
/// Exit code for a command line clap refuses (EX_USAGE), as the client uses: scripts that drive both
/// binaries read one table (README, "Exit codes").
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` are clap "errors" printed to stdout: they succeeded.
            return if e.use_stderr() { ExitCode::from(EX_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    // Generated from the command tree alone: no configuration is read, so they work anywhere (packaging).
    let generated = match &cli.command {
        Command::Completions { shell } => Some(cmd::completions::run(*shell)),
        Command::Manpages { out } => Some(cmd::completions::manpages(out)),
        _ => None,
    };
    if let Some(result) = generated {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ddcoterm-server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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
        overrides.tls.cert_file = a.tls_cert.clone();
        overrides.tls.key_file = a.tls_key.clone();
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
            Command::Healthcheck(a) => cmd::healthcheck::run(&a, &settings.raw.listen).await,
            Command::Completions { .. } | Command::Manpages { .. } => Ok(()),
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
