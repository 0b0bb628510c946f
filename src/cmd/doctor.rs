//! `ddcoterm doctor`: config layers, shims on PATH, keys, the session server and its token, spool health and
//! clock skew; one verdict per line.

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions, Loaded};
use crate::datadog::{Client, ClientOptions};
use crate::dirs::{self, Dirs};
use crate::spool::{self, Spool};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Default)]
struct Report {
    fails: usize,
    warns: usize,
}

impl Report {
    fn line(&mut self, v: Verdict, what: &str, msg: impl AsRef<str>) {
        let tag = match v {
            Verdict::Ok => "ok  ",
            Verdict::Warn => {
                self.warns += 1;
                "warn"
            }
            Verdict::Fail => {
                self.fails += 1;
                "FAIL"
            }
        };
        println!("{tag} {what}: {}", msg.as_ref());
    }
}

pub fn run(g: &GlobalArgs) -> anyhow::Result<i32> {
    let mut r = Report::default();
    let mut opts = LoadOptions::from_env();
    opts.sets = g.set.clone();
    let loaded = match config::load(&opts) {
        Ok(l) => {
            check_config(&mut r, &l);
            Some(l)
        }
        Err(e) => {
            r.line(Verdict::Fail, "config", format!("{e}"));
            None
        }
    };
    let dirs = loaded.as_ref().map(|l| l.dirs.clone()).unwrap_or_else(Dirs::from_env);
    let user_shims = loaded.as_ref().map(|l| l.paths.user_shims.clone()).unwrap_or_else(|| dirs.user_shims());
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let path: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    check_shims(&mut r, "shims (user)", &user_shims, &path, false);
    check_shims(&mut r, "shims (system)", Path::new(dirs::SYSTEM_SHIM_DIR), &path, true);
    let system_shims =
        loaded.as_ref().map(crate::guard::locate::system_dir).unwrap_or_else(|| dirs::SYSTEM_SHIM_DIR.into());
    check_ssh_login(&mut r, Path::new("/etc/ssh"), &system_shims);
    match &loaded {
        Some(l) => {
            check_keys_and_clock(&mut r, l);
            check_server(&mut r, l);
            check_spool(&mut r, l);
            check_mode(&mut r, l);
        }
        None => r.line(Verdict::Warn, "keys, spool, clock", "skipped: the configuration did not load"),
    }
    if r.fails > 0 {
        println!("{} check(s) failed", r.fails);
        return Ok(1);
    }
    Ok(0)
}

fn check_config(r: &mut Report, l: &Loaded) {
    for layer in &l.layers {
        let state = if layer.exists { "found" } else { "not present" };
        r.line(Verdict::Ok, "config", format!("{} layer {} ({state})", layer.layer, layer.path.display()));
    }
    for w in &l.warnings {
        r.line(Verdict::Warn, "config", w);
    }
}

/// Shims work only when their directory comes before every other directory holding the same command.
fn check_shims(r: &mut Report, what: &str, dir: &Path, path: &[PathBuf], skip_if_missing: bool) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            let mut v: Vec<String> =
                rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if names.is_empty() {
        if !skip_if_missing {
            r.line(Verdict::Ok, what, format!("no shims in {}", dir.display()));
        }
        return;
    }
    let same = |p: &Path| p == dir || p.canonicalize().ok() == dir.canonicalize().ok();
    let Some(pos) = path.iter().position(|p| same(p)) else {
        r.line(
            Verdict::Fail,
            what,
            format!(
                "{} is not on PATH: shims for {} are inactive; add it first on PATH",
                dir.display(),
                names.join(", ")
            ),
        );
        return;
    };
    let mut shadowed = Vec::new();
    for n in &names {
        if let Some(before) = path[..pos].iter().find(|p| is_executable(&p.join(n))) {
            shadowed.push(format!("{n} (found first in {})", before.display()));
        }
    }
    if shadowed.is_empty() {
        r.line(Verdict::Ok, what, format!("{} comes first on PATH for {}", dir.display(), names.join(", ")));
    } else {
        r.line(
            Verdict::Fail,
            what,
            format!("{} is on PATH too late: {}; move it to the front", dir.display(), shadowed.join(", ")),
        );
    }
}

/// Where sshd runs `ddcoterm ssh-login` (a ForceCommand in `sshd_config` or a drop-in), per-command rules
/// only see what system-wide shims show them: a remote command arrives as `$SHELL -c ...`, and what is typed
/// in a login shell reaches no rule at all without a shim. Warns when that is the case.
fn check_ssh_login(r: &mut Report, sshd_dir: &Path, system_shims: &Path) {
    let mut files = vec![sshd_dir.join("sshd_config")];
    if let Ok(rd) = std::fs::read_dir(sshd_dir.join("sshd_config.d")) {
        let mut more: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect();
        more.sort();
        files.extend(more);
    }
    let forced = files.iter().find(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().map(str::trim).any(|l| {
                !l.starts_with('#')
                    && l.to_ascii_lowercase().starts_with("forcecommand")
                    && l.contains("ssh-login")
            })
        })
    });
    let Some(file) = forced else { return };
    let shims = std::fs::read_dir(system_shims).map(|rd| rd.flatten().count()).unwrap_or(0);
    if shims == 0 {
        r.line(
            Verdict::Warn,
            "ssh-login",
            format!(
                "sshd runs `ddcoterm ssh-login` ({}) but {} holds no system-wide shims: per-command rules then \
                 only see remote commands as `$SHELL -c ...` and nothing typed in a login shell; run \
                 `ddcoterm shim create --system kubectl` (and the other guarded commands)",
                file.display(),
                system_shims.display()
            ),
        );
    } else {
        r.line(
            Verdict::Ok,
            "ssh-login",
            format!(
                "sshd runs `ddcoterm ssh-login` ({}); {shims} system-wide shim(s) in {}",
                file.display(),
                system_shims.display()
            ),
        );
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn check_keys_and_clock(r: &mut Report, l: &Loaded) {
    let opts = ClientOptions { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(10) };
    let client = match Client::from_settings(&l.settings.connection_config, opts) {
        Ok(c) => c,
        Err(e) => {
            r.line(Verdict::Fail, "site", e.to_string());
            return;
        }
    };
    r.line(Verdict::Ok, "site", format!("API {} (app {})", client.site().api, client.site().app));
    let Some(api) = client.api_key().cloned() else {
        r.line(
            Verdict::Fail,
            "API key",
            "not set: connection_config.api_key or DD_API_KEY (`ddcoterm init`)",
        );
        return;
    };
    match client.validate() {
        Ok(resp) => {
            r.line(Verdict::Ok, "API key", format!("{api} accepted"));
            match resp.date {
                Some(server) => clock(r, server, SystemTime::now()),
                None => r.line(Verdict::Warn, "clock", "the server sent no Date header; skew unknown"),
            }
        }
        Err(e) => {
            r.line(Verdict::Fail, "API key", format!("{api}: {e}"));
            r.line(Verdict::Warn, "clock", "skew unknown (no answer from the API)");
        }
    }
    match client.app_key().cloned() {
        None => {
            r.line(Verdict::Warn, "application key", "not set: approvals and incidents need one (DD_APP_KEY)")
        }
        Some(app) => match client.current_user() {
            Ok(u) => r.line(
                Verdict::Ok,
                "application key",
                format!("{app} acts as {}", if u.handle.is_empty() { u.id } else { u.handle }),
            ),
            Err(e) => r.line(Verdict::Fail, "application key", format!("{app}: {e}")),
        },
    }
}

fn clock(r: &mut Report, server: SystemTime, local: SystemTime) {
    let (ahead, d) = match local.duration_since(server) {
        Ok(d) => ("ahead of", d),
        Err(e) => ("behind", e.duration()),
    };
    let s = d.as_secs();
    // The Date header has one-second resolution.
    let v = if s < 10 {
        Verdict::Ok
    } else if s < 300 {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    r.line(v, "clock", format!("local clock is {s}s {ahead} the server's"));
}

/// Bastion mode (the agent holds the evidence) or personal mode (the user's spool and recordings).
fn check_mode(r: &mut Report, l: &Loaded) {
    let a = &l.settings.agent;
    if !a.enabled {
        r.line(Verdict::Ok, "mode", "personal: spool and recordings in the user's own directories");
        return;
    }
    match crate::agent::client::ping(&a.socket) {
        Ok(reply) => r.line(
            Verdict::Ok,
            "mode",
            format!(
                "bastion: the agent at {} answers and files this user's sessions as `{}`",
                a.socket.display(),
                reply.detail.unwrap_or_default()
            ),
        ),
        Err(e) => r.line(
            Verdict::Fail,
            "mode",
            format!("bastion: {e}; recorded commands are refused until it answers"),
        ),
    }
}

/// The session server answers `/readyz` and accepts the host token (an ingest call that reads and writes
/// nothing; `ServerClient::check_token`). Not configured: recordings stay local, which is said, not failed.
fn check_server(r: &mut Report, l: &Loaded) {
    use crate::upload::server::{self, ServerClient, ServerError, ServerOptions};
    if l.settings.agent.enabled {
        r.line(Verdict::Ok, "server", "bastion mode: the agent holds the server token and uploads");
        return;
    }
    let (base, token) = match server::configured(&l.settings.server) {
        Ok(Some(c)) => c,
        Ok(None) => {
            r.line(Verdict::Ok, "server", "no session server configured (server.url): recordings stay local");
            return;
        }
        Err(e) => {
            r.line(Verdict::Fail, "server", e.to_string());
            return;
        }
    };
    let opts = ServerOptions { connect_timeout: Duration::from_secs(3), timeout: Duration::from_secs(5) };
    let c = match ServerClient::new(base.clone(), token, opts) {
        Ok(c) => c,
        Err(e) => {
            r.line(Verdict::Fail, "server", e.to_string());
            return;
        }
    };
    match c.ready() {
        Ok(()) => r.line(Verdict::Ok, "server", format!("{base} is ready")),
        Err(e) => {
            r.line(Verdict::Fail, "server", format!("{e}; recordings wait in the spool until it answers"));
            return;
        }
    }
    match c.check_token() {
        Ok(()) => r.line(Verdict::Ok, "server token", "accepted as a host token"),
        Err(ServerError::Http { status: s @ (401 | 403), message, .. }) => r.line(
            Verdict::Fail,
            "server token",
            format!(
                "refused (HTTP {s}: {message}): the token in server.token_file is unknown, revoked or not a host token; recordings wait in the spool until it is replaced"
            ),
        ),
        Err(e) => r.line(Verdict::Fail, "server token", e.to_string()),
    }
}

fn check_spool(r: &mut Report, l: &Loaded) {
    let dir = crate::upload::spool_dir(l);
    let Ok(md) = std::fs::metadata(&dir) else {
        r.line(Verdict::Ok, "spool", format!("{} not created yet (nothing waits)", dir.display()));
        return;
    };
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        r.line(
            Verdict::Fail,
            "spool",
            format!(
                "{} is mode {mode:o}: recordings would be readable by others; run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ),
        );
    }
    let spool = match Spool::open(&dir, l.settings.spool.max_bytes) {
        Ok(s) => s,
        Err(e) => {
            r.line(Verdict::Fail, "spool", e.to_string());
            return;
        }
    };
    let entries = match spool.entries() {
        Ok(e) => e,
        Err(e) => {
            r.line(Verdict::Fail, "spool", e.to_string());
            return;
        }
    };
    let creds: Vec<_> = entries
        .iter()
        .filter(|e| e.state.as_ref().is_some_and(|s| matches!(s.status, Some(401 | 403))))
        .collect();
    if let Some(last) = creds.last().and_then(|e| e.state.as_ref()) {
        r.line(
            Verdict::Fail,
            "spool",
            format!(
                "{} record(s) wait because their credentials were refused (last: {}); nothing is discarded: fix the token or key, then `ddcoterm spool flush`",
                creds.len(),
                last.last_error
            ),
        );
    }
    match spool.dead_letters() {
        Ok(dead) if !dead.is_empty() => r.line(
            Verdict::Warn,
            "spool",
            format!(
                "{} dead letter(s) refused for good (last: {}); `ddcoterm spool status` lists them",
                dead.len(),
                dead.last().map(|d| d.state.last_error.as_str()).unwrap_or_default()
            ),
        ),
        Ok(_) => {}
        Err(e) => r.line(Verdict::Fail, "spool", e.to_string()),
    }
    let refused: Vec<_> = entries.iter().filter(|e| e.state.as_ref().is_some_and(|s| s.permanent)).collect();
    if let Some(last) = refused.last().and_then(|e| e.state.as_ref()) {
        r.line(
            Verdict::Fail,
            "spool",
            format!(
                "{} record(s) refused (last: {}); fix it, then `ddcoterm spool flush`",
                refused.len(),
                last.last_error
            ),
        );
    }
    let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    match entries.iter().map(|e| e.id.created_ms()).min() {
        None => r.line(Verdict::Ok, "spool", format!("{} is empty", dir.display())),
        Some(oldest) => {
            let age = Duration::from_millis(spool::now_ms().saturating_sub(oldest));
            let v = if age > Duration::from_secs(3600) { Verdict::Warn } else { Verdict::Ok };
            r.line(
                v,
                "spool",
                format!(
                    "{} record(s) pending ({bytes} bytes), oldest {} old",
                    entries.len(),
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                ),
            );
        }
    }
    let dropped = spool.dropped().len();
    if dropped > 0 {
        r.line(
            Verdict::Warn,
            "spool",
            format!("{dropped} record(s) were dropped because spool.max_bytes was reached"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_verdicts() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for (local_off, fails) in [(0i64, 0usize), (5, 0), (-30, 0), (400, 1), (-400, 1)] {
            let mut r = Report::default();
            let local = if local_off >= 0 {
                t + Duration::from_secs(local_off as u64)
            } else {
                t - Duration::from_secs((-local_off) as u64)
            };
            clock(&mut r, t, local);
            assert_eq!(r.fails, fails, "{local_off}");
        }
    }

    #[test]
    fn ssh_login_without_system_shims_warns() {
        let t = tempfile::tempdir().unwrap();
        let sshd = t.path().join("ssh");
        let shims = t.path().join("overrides");
        std::fs::create_dir_all(sshd.join("sshd_config.d")).unwrap();
        std::fs::create_dir_all(&shims).unwrap();
        let mut r = Report::default();
        check_ssh_login(&mut r, &sshd, &shims);
        assert_eq!(r.warns, 0, "no ForceCommand: nothing to say");
        std::fs::write(
            sshd.join("sshd_config.d/ddcoterm.conf"),
            "Match Group users\n    ForceCommand /usr/local/bin/ddcoterm ssh-login\n",
        )
        .unwrap();
        check_ssh_login(&mut r, &sshd, &shims);
        assert_eq!(r.warns, 1);
        std::os::unix::fs::symlink("/bin/true", shims.join("kubectl")).unwrap();
        check_ssh_login(&mut r, &sshd, &shims);
        assert_eq!(r.warns, 1, "with a system shim it is fine");
    }

    #[test]
    fn shims_not_on_path_or_shadowed_fail() {
        let t = tempfile::tempdir().unwrap();
        let shims = t.path().join("overrides");
        let real = t.path().join("bin");
        std::fs::create_dir_all(&shims).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        for d in [&shims, &real] {
            let p = d.join("kubectl");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut r = Report::default();
        check_shims(&mut r, "s", &shims, std::slice::from_ref(&real), false);
        assert_eq!(r.fails, 1, "not on PATH");
        let mut r = Report::default();
        check_shims(&mut r, "s", &shims, &[real.clone(), shims.clone()], false);
        assert_eq!(r.fails, 1, "shadowed");
        let mut r = Report::default();
        check_shims(&mut r, "s", &shims, &[shims.clone(), real.clone()], false);
        assert_eq!(r.fails, 0);
    }
}
