//! `ddcoterm-server completions SHELL` and the hidden `manpages --out DIR`: both generated from the clap tree.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionShell};

/// Prints the completion script; the package installs the same text (`make gen`).
pub fn run(shell: CompletionShell) -> anyhow::Result<()> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics on a write error, and `| head` is no error.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ddcoterm-server", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the completion script to stdout"),
    }
}

/// Writes one roff page per visible command (`ddcoterm-server.1`, `ddcoterm-server-token-create.1`, ...).
pub fn manpages(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    clap_mangen::generate_to(Cli::command(), out)
        .with_context(|| format!("writing man pages into {}", out.display()))
}
