//! The one isolated-environment builder of the integration tests: a temp HOME, `DDCOTERM_HOME`, system dir,
//! shim dir and fake real binaries, and the environment a command runs with there. Every other test helper
//! (`support` for the Datadog fake, `recorder_support` for casts, `bundle_support` for signing) builds its
//! world with this one, so there is one place that decides what "isolated" means.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An isolated world: `etc/` (system layer), `home/` (HOME and DDCOTERM_HOME's parent), `real/` (the real
/// binaries behind shims), `shims/` (the user shim dir, first on PATH).
pub struct World {
    pub root: tempfile::TempDir,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ddcoterm"))
}

/// The static shim binary, built beside [`bin`] (what `ddcoterm shim create` links to when it is there).
pub fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ddcoterm-shim"))
}

pub fn reference(name: &str) -> String {
    // Byte-identical copies of the CoTerm reference configs (shared/reference), kept in the repo.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_fixtures").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

impl World {
    /// A world whose organisation config allows the loopback Datadog fake (see [`World::system_config`]).
    pub fn new() -> World {
        let w = World::bare();
        w.system_config("");
        w
    }
    /// A world with no organisation config at all (built-in defaults under the user's layers).
    pub fn bare() -> World {
        let root = tempfile::tempdir().unwrap();
        for d in ["etc", "home/.ddcoterm", "real", "shims"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::set_permissions(root.path().join("etc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        World { root }
    }
    /// The temp dir everything lives in (the working directory of [`World::cmd`]).
    pub fn root(&self) -> &Path {
        self.root.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    /// `HOME`.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }
    /// `DDCOTERM_HOME` (`~/.ddcoterm`): the user layer, recordings, spool.
    pub fn ddhome(&self) -> PathBuf {
        self.path("home/.ddcoterm")
    }
    /// The system dir (`DDCOTERM_SYSTEM_DIR`): the organisation's layers.
    pub fn system(&self) -> PathBuf {
        self.path("etc")
    }
    /// `~/.ddcoterm/recordings`.
    pub fn recordings(&self) -> PathBuf {
        self.ddhome().join("recordings")
    }
    /// The directories as the library sees them, for tests that load the configuration in-process.
    pub fn dirs(&self) -> ddcoterm::dirs::Dirs {
        ddcoterm::dirs::Dirs::at(self.system(), self.ddhome())
    }
    pub fn write(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
    /// The organisation's config: `text` plus `connection_config.allow_loopback: true`, which only the
    /// organisation can set and which the Datadog fake on 127.0.0.1 needs.
    pub fn system_config(&self, text: &str) -> &Self {
        let loopback = "connection_config:\n  allow_loopback: true\n";
        let text = if text.contains("connection_config:") {
            text.replacen("connection_config:\n", loopback, 1)
        } else {
            format!("{loopback}{text}")
        };
        self.write("etc/config.yaml", &text, 0o644);
        self
    }
    pub fn user_config(&self, text: &str) -> &Self {
        self.write("home/.ddcoterm/config.yaml", text, 0o600);
        self
    }
    pub fn kubeconfig(&self, context: &str) -> &Self {
        self.write(
            "home/.kube/config",
            &format!("apiVersion: v1\nkind: Config\ncurrent-context: {context}\n"),
            0o600,
        );
        self
    }
    /// A fake real binary: a shell script in `real/` (prints `REAL <name> <args>` and exits with $FAKE_EXIT).
    pub fn fake(&self, name: &str) -> &Self {
        self.fake_script(name, &format!("#!/bin/sh\nprintf 'REAL {name}'\nfor a in \"$@\"; do printf ' [%s]' \"$a\"; done\nprintf '\\n'\nexit ${{FAKE_EXIT:-0}}\n"))
    }
    pub fn fake_script(&self, name: &str, script: &str) -> &Self {
        self.write(&format!("real/{name}"), script, 0o755);
        self
    }
    /// A shim for `name` as `ddcoterm shim create` makes it: a link to the static shim binary, which decides
    /// plain calls itself and hands every other call over to `ddcoterm` beside it.
    pub fn shim(&self, name: &str) -> PathBuf {
        self.shim_to(name, &shim_bin())
    }
    /// A shim for `name` that links to the full `ddcoterm` (an installation without the static binary).
    pub fn shim_of_full_binary(&self, name: &str) -> PathBuf {
        self.shim_to(name, &bin())
    }
    fn shim_to(&self, name: &str, binary: &Path) -> PathBuf {
        let link = self.path(&format!("shims/{name}"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(binary, &link).unwrap();
        link
    }
    /// A command with the world's environment (and nothing of the caller's DDCOTERM_*/DD_* variables).
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        self.apply(&mut c);
        c
    }
    /// Gives `c` the world's environment: HOME, DDCOTERM_HOME, the system and shim dirs, a PATH of the shims,
    /// the fake real binaries and the system's, `TERM=xterm`, the world as working directory, and none of the
    /// caller's DDCOTERM_*, DD_*, COTERM_* or KUBECONFIG variables.
    pub fn apply(&self, c: &mut Command) {
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("DDCOTERM_")
                || k.starts_with("DD_")
                || k.starts_with("COTERM_")
                || k == "KUBECONFIG"
            {
                c.env_remove(k);
            }
        }
        c.env("HOME", self.home())
            .env("DDCOTERM_HOME", self.ddhome())
            .env("DDCOTERM_SYSTEM_DIR", self.path("etc"))
            .env("DDCOTERM_SHIMS__DIR", self.path("shims"))
            .env(
                "PATH",
                format!(
                    "{}:{}:/usr/local/bin:/usr/bin:/bin",
                    self.path("shims").display(),
                    self.path("real").display()
                ),
            )
            .env("TERM", "xterm")
            .current_dir(self.root.path());
    }
    pub fn ddcoterm(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(bin());
        c.args(args);
        c
    }
}

/// Runs without a controlling terminal (setsid), stdin closed: the CI situation.
pub fn no_tty(mut c: Command) -> Output {
    let prog = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let mut s = Command::new("setsid");
    s.arg("-w").arg(prog).args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        s.current_dir(d);
    }
    s.stdin(std::process::Stdio::null());
    let _ = &mut c;
    s.output().unwrap()
}

pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// `c` running in a fresh PTY, with a generous expect timeout for loaded CI machines.
pub fn pty(c: Command) -> expectrl::Session {
    let mut s = expectrl::Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(std::time::Duration::from_secs(30)));
    s
}

/// The exit status of a PTY session's process (panics on a signal death: tests expect an exit).
pub fn exit_code(s: &mut expectrl::Session) -> i32 {
    match s.get_process_mut().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, c) => c,
        other => panic!("unexpected wait status {other:?}"),
    }
}
