//! Where things live on disk, relocatable by `DDCOTERM_SYSTEM_DIR` and `DDCOTERM_HOME` (tests, containers).

use std::path::PathBuf;

/// Environment variable that moves the organisation layers (system config, bundles, teams).
pub const ENV_SYSTEM_DIR: &str = "DDCOTERM_SYSTEM_DIR";
/// Environment variable that moves the user's layer and state (config, overrides, recordings, spool).
pub const ENV_HOME: &str = "DDCOTERM_HOME";
/// Set inside a recorded session: nested ddcoterm calls do not record twice.
pub const ENV_SESSION: &str = "DDCOTERM_SESSION";
/// Set by the shim path before exec'ing the real binary: stops shim recursion.
pub const ENV_SHIM_ACTIVE: &str = "DDCOTERM_SHIM_ACTIVE";

/// Default system-wide shim directory (root-owned; put on PATH by /etc/profile.d/ddcoterm.sh).
pub const SYSTEM_SHIM_DIR: &str = "/usr/local/lib/ddcoterm/overrides";

/// Resolved locations for one process; computed once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// `/etc/ddcoterm` unless relocated.
    pub system: PathBuf,
    /// `~/.ddcoterm` unless relocated.
    pub home: PathBuf,
    /// Set when `DDCOTERM_SYSTEM_DIR` was ignored because real organisation layers exist (a system config,
    /// bundles or team files) and the caller is not root: otherwise any user could point the organisation
    /// layers at an empty directory.
    pub system_override_refused: bool,
}

impl Dirs {
    /// Reads the two relocation variables; falls back to `/etc/ddcoterm` and `$HOME/.ddcoterm`.
    pub fn from_env() -> Dirs {
        let default_system = PathBuf::from("/etc/ddcoterm");
        let requested = std::env::var_os(ENV_SYSTEM_DIR).filter(|v| !v.is_empty()).map(PathBuf::from);
        let refuse = requested.as_ref().is_some_and(|r| *r != default_system)
            && !nix::unistd::geteuid().is_root()
            && holds_org_layers(&default_system);
        let system = match requested {
            Some(r) if !refuse => r,
            _ => default_system,
        };
        let home = std::env::var_os(ENV_HOME)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| user_home().join(".ddcoterm"));
        Dirs { system, home, system_override_refused: refuse }
    }

    /// Dirs rooted at explicit paths (tests, `policy test`).
    pub fn at(system: impl Into<PathBuf>, home: impl Into<PathBuf>) -> Dirs {
        Dirs { system: system.into(), home: home.into(), system_override_refused: false }
    }

    pub fn system_config(&self) -> PathBuf {
        self.system.join("config.yaml")
    }
    pub fn bundles(&self) -> PathBuf {
        self.system.join("bundles")
    }
    pub fn teams(&self) -> PathBuf {
        self.system.join("teams")
    }
    pub fn user_config(&self) -> PathBuf {
        self.home.join("config.yaml")
    }
    pub fn user_shims(&self) -> PathBuf {
        self.home.join("overrides")
    }
    pub fn recordings(&self) -> PathBuf {
        self.home.join("recordings")
    }
    pub fn spool(&self) -> PathBuf {
        self.home.join("spool")
    }
}

/// True when `dir` holds any organisation layer: a `config.yaml`, or a file in `bundles/` or `teams/`.
fn holds_org_layers(dir: &std::path::Path) -> bool {
    let non_empty = |d: PathBuf| std::fs::read_dir(d).is_ok_and(|mut rd| rd.next().is_some());
    dir.join("config.yaml").exists() || non_empty(dir.join("bundles")) || non_empty(dir.join("teams"))
}

/// The user's home directory: `$HOME`, else the passwd entry, else `/`.
pub fn user_home() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    crate::nss::user_by_uid(nix::unistd::getuid()).map(|u| u.dir).unwrap_or_else(|| PathBuf::from("/"))
}

/// The login name: passwd entry of the real uid, else `$USER`, else the numeric uid.
pub fn user_name() -> String {
    let uid = nix::unistd::getuid();
    crate::nss::user_by_uid(uid)
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}

/// This host's name, as sent in events and bound into approvals.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
