//! `ddcoterm doctor`: collects the health checks of each module (config layers, shims on PATH, ssh-login,
//! keys and clock, the session server and its token, spool health, bastion mode) and prints one verdict per
//! line (or JSON); exits 1 when any check failed.

use crate::cli::{DoctorArgs, GlobalArgs, ListFormat};
use crate::config::{self, LoadOptions};
use crate::dirs::{self, Dirs};
use crate::model::{Finding, Verdict};
use std::path::{Path, PathBuf};

pub fn run(g: &GlobalArgs, a: DoctorArgs) -> anyhow::Result<i32> {
    let findings = collect(g);
    let fails = findings.iter().filter(|f| f.verdict == Verdict::Fail).count();
    let code = if fails > 0 { 1 } else { 0 };
    if a.format == ListFormat::Json {
        let v = serde_json::json!({ "failed": fails, "checks": findings });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(code);
    }
    for f in &findings {
        let tag = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        println!("{tag} {}: {}", f.what, f.detail);
    }
    if fails > 0 {
        println!("{fails} check(s) failed");
    }
    Ok(code)
}

/// Every check, in the order they are printed; a configuration that does not load skips those that need it.
fn collect(g: &GlobalArgs) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut opts = LoadOptions::from_env();
    opts.sets = g.set.clone();
    let loaded = match config::load(&opts) {
        Ok(l) => {
            out.extend(config::health::check(&l));
            Some(l)
        }
        Err(e) => {
            out.push(Finding::fail("config", format!("{e}")));
            None
        }
    };
    let dirs = loaded.as_ref().map(|l| l.dirs.clone()).unwrap_or_else(Dirs::from_env);
    let user_shims = loaded.as_ref().map(|l| l.paths.user_shims.clone()).unwrap_or_else(|| dirs.user_shims());
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let path: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    out.extend(crate::shim::health::check("shims (user)", &user_shims, &path, false));
    out.extend(crate::shim::health::check("shims (system)", Path::new(dirs::SYSTEM_SHIM_DIR), &path, true));
    let system_shims =
        loaded.as_ref().map(crate::guard::locate::system_dir).unwrap_or_else(|| dirs::SYSTEM_SHIM_DIR.into());
    out.extend(crate::ssh::health::check(Path::new("/etc/ssh"), &system_shims));
    match &loaded {
        Some(l) => {
            out.extend(crate::datadog::health::check(&l.settings.connection_config));
            out.extend(crate::upload::health::check_server(l));
            out.extend(crate::spool::health::check(&crate::upload::spool_dir(l), l.settings.spool.max_bytes));
            out.push(crate::agent::health::check(&l.settings.agent));
        }
        None => out.push(Finding::warn("keys, spool, clock", "skipped: the configuration did not load")),
    }
    out
}
