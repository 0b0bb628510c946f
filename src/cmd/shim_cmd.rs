//! `ddcoterm shim create|remove|list`: manage the symlinks that route guarded commands through ddcoterm.

use crate::cli::{GlobalArgs, ShimCommand};
use crate::config::Loaded;
use crate::error::Exit;
use crate::guard::locate::{system_dir, user_dir};
use crate::shim::manage::{self, Outcome, ShimError, ShimScope, Targets};
use crate::shim::resolve;
use std::path::PathBuf;

/// The user or system scope from config.
pub fn scope(loaded: &Loaded, system: bool) -> ShimScope {
    if system {
        ShimScope {
            dir: system_dir(loaded),
            rc_files: vec![loaded
                .settings
                .shims
                .profile_script
                .clone()
                .unwrap_or_else(|| PathBuf::from("/etc/profile.d/ddcoterm.sh"))],
        }
    } else {
        let home = crate::dirs::user_home();
        ShimScope { dir: user_dir(loaded), rc_files: vec![home.join(".bashrc"), home.join(".zshrc")] }
    }
}

pub fn run(g: &GlobalArgs, c: ShimCommand) -> anyhow::Result<i32> {
    let loaded = super::context::load(g)?;
    let targets = Targets::of_this_installation();
    let target = &targets.link_to;
    match c {
        ShimCommand::Create { commands, system, no_rc } => {
            let mut sc = scope(&loaded, system);
            if no_rc {
                sc.rc_files.clear();
            }
            let out = manage::create(&sc, &commands, &targets).map_err(shim_error)?;
            let path_var = std::env::var_os("PATH").unwrap_or_default();
            for o in &out {
                match o {
                    Outcome::Created(p) => println!("created {} -> {}", p.display(), target.display()),
                    Outcome::AlreadyThere(p) => println!("already there: {}", p.display()),
                    Outcome::Relinked(p) => println!("relinked {} -> {}", p.display(), target.display()),
                    _ => {}
                }
            }
            let ours: Vec<_> = targets.ours.iter().filter_map(|p| resolve::file_id(p)).collect();
            for name in &commands {
                if resolve::find_real(name, &path_var, &[sc.dir.clone()], &ours).is_none() {
                    eprintln!("ddcoterm: warning: no real `{name}` on PATH yet; the shim will exit 127 until one is installed");
                }
            }
            for rc in &sc.rc_files {
                println!("PATH block in {}", rc.display());
            }
            if !manage::first_on_path(&sc.dir, &path_var) {
                println!(
                    "\n{} is not first on PATH in this shell. Open a new shell, or run:\n  export PATH=\"{}:$PATH\"\nfish: fish_add_path -m {}   other shells: put {} first on PATH in their startup file.",
                    sc.dir.display(),
                    sc.dir.display(),
                    sc.dir.display(),
                    sc.dir.display()
                );
            }
            Ok(0)
        }
        ShimCommand::Remove { commands, system } => {
            let sc = scope(&loaded, system);
            for o in manage::remove(&sc, &commands, &targets).map_err(shim_error)? {
                match o {
                    Outcome::Removed(p) => println!("removed {}", p.display()),
                    Outcome::NotThere(p) => println!("no shim at {}", p.display()),
                    _ => {}
                }
            }
            Ok(0)
        }
        ShimCommand::List { system } => {
            let sc = scope(&loaded, system);
            let shims = manage::list(&sc, &targets).map_err(shim_error)?;
            let path_var = std::env::var_os("PATH").unwrap_or_default();
            let first = manage::first_on_path(&sc.dir, &path_var);
            println!("{} ({})", sc.dir.display(), if first { "first on PATH" } else { "NOT first on PATH" });
            if shims.is_empty() {
                println!("  no shims; create one with `ddcoterm shim create kubectl`");
            }
            for s in shims {
                let real = s
                    .real
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(no real binary on PATH)".into());
                println!("  {:<16} -> {real}", s.name);
            }
            Ok(0)
        }
    }
}

fn shim_error(e: ShimError) -> anyhow::Error {
    let msg = e.to_string();
    match e {
        ShimError::BadName(_) | ShimError::Occupied(_) => Exit::usage(msg),
        ShimError::Io { .. } => Exit::io(msg),
    }
    .into()
}
