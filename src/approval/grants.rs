//! Pointers to granted approvals that may be reused for the identical invocation within `approval.grant_ttl`
//! (a 0600 JSON file under the ddcoterm home; default TTL 0 keeps nothing: every run asks again).
//!
//! The file is the user's, so it is never the truth: it only says which case to ask about. A grant is
//! honoured after the approval system confirms that case again (`Approver::confirm_grant`).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One reusable grant, keyed by the request's binding (argv, context, user, host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub binding: String,
    /// The case UUID to confirm with (files written before it existed hold only the key, which works too).
    #[serde(default)]
    pub case_id: String,
    pub case_key: String,
    pub approver: Option<String>,
    /// Unix seconds.
    pub granted_at: u64,
    pub expires_at: u64,
}

/// Which case a grant points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRef {
    pub id: String,
    pub key: String,
}

impl Grant {
    /// What to ask the approval system about: the UUID, or the key for older files.
    pub fn case_ref(&self) -> &str {
        if self.case_id.is_empty() {
            &self.case_key
        } else {
            &self.case_id
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GrantFile {
    grants: Vec<Grant>,
}

/// The grant file. Reads tolerate a missing file; a corrupt one is an error naming it (we never guess).
#[derive(Debug, Clone)]
pub struct GrantStore {
    path: PathBuf,
}

impl GrantStore {
    /// `<home>/approvals.json`.
    pub fn in_home(home: &Path) -> GrantStore {
        GrantStore { path: home.join("approvals.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A live grant for this binding, if any.
    pub fn find(&self, binding: &str, now: SystemTime) -> anyhow::Result<Option<Grant>> {
        let now = unix(now);
        Ok(self.read()?.grants.into_iter().find(|g| g.binding == binding && g.expires_at > now))
    }

    /// Stores a grant valid for `ttl` from `now`; expired grants are pruned on the way. `ttl == 0` stores nothing.
    pub fn record(
        &self,
        grant_for: (&str, &CaseRef, Option<&str>),
        ttl: Duration,
        now: SystemTime,
    ) -> anyhow::Result<()> {
        if ttl.is_zero() {
            return Ok(());
        }
        let (binding, case, approver) = grant_for;
        let t = unix(now);
        let mut file = self.read()?;
        file.grants.retain(|g| g.expires_at > t && g.binding != binding);
        file.grants.push(Grant {
            binding: binding.into(),
            case_id: case.id.clone(),
            case_key: case.key.clone(),
            approver: approver.map(str::to_string),
            granted_at: t,
            expires_at: t.saturating_add(ttl.as_secs().max(1)),
        });
        self.write(&file)
    }

    fn read(&self) -> anyhow::Result<GrantFile> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a valid approvals file ({e}); delete it to forget saved grants",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GrantFile::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", self.path.display())),
        }
    }

    /// Atomic replace; the temp file is created 0600 (tempfile's default), so the grant file always is.
    fn write(&self, file: &GrantFile) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        serde_json::to_writer_pretty(&mut tmp, file)?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        Ok(())
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn grants_are_reused_within_ttl_only_for_the_same_binding() {
        let dir = tempfile::tempdir().unwrap();
        let store = GrantStore::in_home(dir.path());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(store.find("b1", t0).unwrap(), None, "missing file = no grants");
        let c1 = CaseRef { id: "uuid-1".into(), key: "COTERM-1".into() };
        store.record(("b1", &c1, Some("bob")), Duration::from_secs(600), t0).unwrap();
        let g = store.find("b1", t0 + Duration::from_secs(599)).unwrap().unwrap();
        assert_eq!((g.case_key.as_str(), g.approver.as_deref()), ("COTERM-1", Some("bob")));
        assert_eq!(g.case_ref(), "uuid-1");
        assert_eq!(store.find("b2", t0).unwrap(), None, "another binding");
        assert_eq!(store.find("b1", t0 + Duration::from_secs(600)).unwrap(), None, "expired");
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = GrantStore::in_home(dir.path());
        let c = CaseRef { id: "u".into(), key: "C-1".into() };
        store.record(("b1", &c, None), Duration::ZERO, SystemTime::now()).unwrap();
        assert!(!store.path().exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = GrantStore::in_home(dir.path());
        std::fs::write(store.path(), "{not json").unwrap();
        let e = store.find("b", SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("approvals.json"), "{e}");
    }
}
