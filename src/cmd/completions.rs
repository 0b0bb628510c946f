//! `ddcoterm completions SHELL` and the hidden `ddcoterm manpages --out DIR`: both generated from the clap tree.

use std::io::Write as _;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionShell, CompletionsArgs, ManpagesArgs};

/// Prints the completion script; the packages install the same text (`make gen`).
pub fn run(a: CompletionsArgs) -> anyhow::Result<i32> {
    let shell = match a.shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics on a write error, and `| head` is no error.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ddcoterm", &mut script);
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is no error: main maps BrokenPipe to exit 0.
    out.write_all(&script).and_then(|()| out.flush()).context("writing the completion script to stdout")?;
    Ok(0)
}

/// Writes one roff page per visible command (`ddcoterm.1`, `ddcoterm-spool-flush.1`, ...).
pub fn manpages(a: ManpagesArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &a.out)
        .with_context(|| format!("writing man pages into {}", a.out.display()))?;
    Ok(0)
}
