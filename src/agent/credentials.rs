//! The upload credentials only the agent reads (`agent.credentials_file`): refused unless private to it.

use serde::Deserialize;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `agent.credentials_file`: YAML with the Datadog keys and the session server's host token. The agent alone
/// reads it; the values never reach a user's environment, a log line or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub api_key: Option<String>,
    pub app_key: Option<String>,
    /// The host token the agent uploads recordings to `server.url` with (`ddcoterm-server token create
    /// HOST --role host`).
    pub server_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Credentials")
            .field("api_key", &set(&self.api_key))
            .field("app_key", &set(&self.app_key))
            .field("server_token", &set(&self.server_token))
            .finish()
    }
}

impl Credentials {
    /// The host token, trimmed; `None` when unset or blank.
    pub fn server_token(&self) -> Option<crate::datadog::Secret> {
        let t = self.server_token.as_deref()?.trim();
        (!t.is_empty()).then(|| crate::datadog::Secret::new(t))
    }
}

/// Reads the file, refusing one that another user owns or that the group or others can read or write: the
/// keys must never be readable by the bastion's users.
pub fn read(path: &Path) -> anyhow::Result<Credentials> {
    let m = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("agent.credentials_file {}: {e}", path.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if m.uid() != euid && m.uid() != 0 {
        anyhow::bail!(
            "agent.credentials_file {} is owned by uid {}; it must belong to the agent's user (uid {euid}) or root",
            path.display(),
            m.uid()
        );
    }
    if m.mode() & 0o077 != 0 {
        anyhow::bail!(
            "agent.credentials_file {} has mode {:o}; other users could read the keys: chmod 600 it",
            path.display(),
            m.mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("agent.credentials_file {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| {
        let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        anyhow::anyhow!("agent.credentials_file {}{at}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_readable_by_others_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("credentials.yaml");
        std::fs::write(&p, "api_key: abc\napp_key: def\nserver_token: ddct_host_secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("credentials.yaml"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = read(&p).unwrap();
        assert_eq!(c.api_key.as_deref(), Some("abc"));
        assert_eq!(c.server_token().map(|t| t.expose().to_string()).as_deref(), Some("ddct_host_secret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("abc") && !shown.contains("ddct_host_secret"), "{shown}");
        std::fs::write(&p, "api_key: abc\nsite: x\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("site") && e.contains(":2:"), "unknown keys name the line: {e}");
        assert!(read(&d.path().join("missing")).unwrap_err().to_string().contains("missing"));
    }
}
