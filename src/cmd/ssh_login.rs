//! `ddcoterm ssh-login`: what sshd runs for every session on a bastion (`ForceCommand`). A login records the
//! user's login shell; a remote command is judged by policy and recorded while the user's shell runs it
//! exactly as sshd would have (`$SHELL -c "$SSH_ORIGINAL_COMMAND"`); the server side of a file transfer or
//! git (`ssh.passthrough`) replaces this process directly: no shell, PTY or relay, so bytes and throughput
//! are sshd's own.

use crate::cli::{GlobalArgs, SshLoginArgs};
use crate::config::policy_set::builtin_default_actions;
use crate::config::Loaded;
use crate::dirs::{ENV_SESSION, ENV_SHIM_ACTIVE};
use crate::error::exit;
use crate::guard::{self, Guarded, Launch, Target};
use crate::model::ActionSet;
use crate::policy::Invocation;
use crate::ssh::classify::classify;
use crate::ssh::plan::{login_shell, plan, validate, Plan};
use std::ffi::{OsStr, OsString};
use std::path::Path;

pub fn run(g: &GlobalArgs, a: SshLoginArgs) -> anyhow::Result<i32> {
    // A login starts afresh: no outer session or shim marker from the environment counts here.
    std::env::remove_var(ENV_SESSION);
    std::env::remove_var(ENV_SHIM_ACTIVE);
    // sshd starts the user's shell at level 1 (bash reads ~/.bashrc for an ssh command only then); the shell
    // that ran this ForceCommand raised it.
    std::env::remove_var("SHLVL");
    let loaded = super::context::load_guarded(g)?;
    validate(&loaded)?;
    let shell = login_shell();
    std::env::set_var("SHELL", &shell);
    prepend_system_shims(&loaded);

    let original = std::env::var_os("SSH_ORIGINAL_COMMAND");
    let request = classify(original.as_deref(), &loaded.settings.ssh.passthrough);
    let plan = plan(&loaded, request, &shell);
    if a.dry_run {
        println!("{plan}");
        return Ok(0);
    }
    execute(&loaded, plan, g.quiet)
}

fn execute(loaded: &Loaded, plan: Plan, quiet: bool) -> anyhow::Result<i32> {
    match plan {
        Plan::Login { shell, pty } => {
            // Like `ddcoterm` alone: a login is recorded even where the organisation's default is [].
            let actions = recorded(loaded);
            let target = if pty {
                Target::Shell
            } else {
                Target::Command(Guarded {
                    name: basename(&shell),
                    program: shell,
                    args: vec![OsString::from("-l")],
                })
            };
            guard::launch::launch(
                loaded,
                Launch { target, actions, rule: None, gate: Default::default(), quiet },
            )
        }
        Plan::Passthrough { program, argv0, args, .. } => {
            let cmd = Guarded { name: argv0, program, args: args.into_iter().map(OsString::from).collect() };
            guard::launch::exec(&Target::Command(cmd), loaded)
        }
        Plan::Remote { shell, command, judged, record } => {
            let inv = Invocation::from_process(&judged.0, &judged.1);
            let cmd =
                Guarded { name: basename(&shell), program: shell, args: vec![OsString::from("-c"), command] };
            let opts = guard::Options { actions: record.then(|| recorded(loaded)), yes: false, quiet };
            guard::run_judged(loaded, &inv, cmd, &opts).map_err(|e| {
                if crate::error::exit_code(&e) == exit::REFUSED && !has_terminal() {
                    e.context("this SSH session has no terminal to ask on (connect with `ssh -t` to answer prompts)")
                } else {
                    e
                }
            })
        }
    }
}

/// Every login and remote command is recorded: the built-in actions plus the organisation's defaults (for
/// a remote command as `--actions`: an organisation rule's actions still apply on top, approval stays).
fn recorded(loaded: &Loaded) -> ActionSet {
    builtin_default_actions().union(&loaded.policy.default_actions)
}

/// Puts the system shim directory first on PATH, so guarded commands inside a remote command or a login
/// shell go through their shims even before /etc/profile.d runs (remote commands never read it).
fn prepend_system_shims(loaded: &Loaded) {
    let dir = guard::locate::system_dir(loaded);
    if !dir.is_dir() {
        return;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == dir) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)));
    if let Ok(p) = joined {
        std::env::set_var("PATH", p);
    }
}

fn has_terminal() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

fn basename(p: &Path) -> String {
    p.file_name().unwrap_or(OsStr::new("sh")).to_string_lossy().into_owned()
}
