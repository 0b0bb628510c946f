//! `bundle pull`: for each source, fetch (ETag), verify the signature before anything touches the bundle
//! dir, apply the anti-rollback rule, install, and record the outcome in the state sidecar.

use super::fetch::{check_url, sig_url, Fetched, Fetcher};
use super::install::{self, Decision};
use super::state::State;
use super::{fsutil, validate, BundleError};
use crate::config::bundle_layer::parse_verified;
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one pull works on.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The bundle dir to install into (the system one unless `--dir`).
    pub dir: PathBuf,
    /// `bundles.sources`.
    pub sources: Vec<String>,
    /// `bundles.trusted_keys` of the system layer, parsed.
    pub keys: Vec<VerifyingKey>,
    /// Whole-request timeout per file.
    pub timeout: Duration,
}

/// What happened to one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new revision is in force.
    Installed { name: String, revision: u64, previous: Option<u64> },
    /// The installed copy was missing or tampered and has been rewritten from the source.
    Repaired { name: String, revision: u64 },
    /// The source serves what is installed.
    UpToDate { name: String, revision: u64 },
    /// 304 for the ETag of what is installed.
    NotModified { name: String },
    /// Nothing changed on disk; the last good bundle stays in force.
    Failed { error: String },
}

/// One line of the pull report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub url: String,
    pub outcome: Outcome,
}

impl SourceReport {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// Spool record kind of a failed bundle pull (sent as an Events API event, `alert_type: error`).
pub const KIND_PULL_FAILED: &str = "audit.bundle_pull_failed";

impl SourceReport {
    /// The audit record of a failed pull (spooled first: delivered later when Datadog is down), so the
    /// fleet sees a host that stays on an older bundle.
    pub fn failure_record(&self, now_ms: u64) -> Result<crate::spool::Record, serde_json::Error> {
        let event = crate::datadog::payload::AuditEvent {
            user: crate::dirs::user_name(),
            hostname: crate::dirs::host_name(),
            command: format!("ddcoterm bundle pull {}", self.url),
            reason: Some(self.to_string()),
            timestamp_ms: now_ms,
            tags: vec!["bundle_pull:failed".into()],
            ..Default::default()
        };
        Ok(crate::spool::Record::new(
            KIND_PULL_FAILED,
            crate::spool::Class::Audit,
            serde_json::to_vec(&event)?,
        ))
    }
}

impl std::fmt::Display for SourceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Installed { name, revision, previous: Some(p) } => {
                write!(f, "{}: installed bundle {name} r{revision} (was r{p})", self.url)
            }
            Outcome::Installed { name, revision, previous: None } => {
                write!(f, "{}: installed bundle {name} r{revision}", self.url)
            }
            Outcome::Repaired { name, revision } => {
                write!(
                    f,
                    "{}: repaired bundle {name} r{revision} (the installed copy did not verify)",
                    self.url
                )
            }
            Outcome::UpToDate { name, revision } => {
                write!(f, "{}: bundle {name} r{revision} is up to date", self.url)
            }
            Outcome::NotModified { name } => write!(f, "{}: bundle {name} not modified", self.url),
            Outcome::Failed { error } => {
                write!(f, "{}: FAILED: {error}; the last good bundle stays in force", self.url)
            }
        }
    }
}

/// Pulls every source. Setup problems (no key, no source, insecure dir, corrupt state) are errors; a failing
/// source is a `Failed` outcome, recorded in `<dir>/.state.json`, and the other sources still run.
pub fn pull(opts: &PullOptions) -> Result<Vec<SourceReport>, BundleError> {
    if opts.keys.is_empty() {
        return Err(BundleError::Setup(
            "bundles.trusted_keys is empty in the system config: refusing to install unverified policy from the \
             network (add the signing public key, see `ddcoterm bundle keygen`)"
                .into(),
        ));
    }
    if opts.sources.is_empty() {
        return Err(BundleError::Setup(
            "bundles.sources is empty in the system config: nothing to pull".into(),
        ));
    }
    fsutil::ensure_dir(&opts.dir)?;
    install::check_dir_secure(&opts.dir)?;
    let _lock = lock(&opts.dir)?;
    let mut state = State::load(&opts.dir)?;
    let fetcher = Fetcher::new(opts.timeout).map_err(BundleError::Setup)?;
    let mut reports = Vec::new();
    for url in &opts.sources {
        let outcome = match pull_one(opts, &fetcher, url, &mut state) {
            Ok(o) => o,
            Err(e) => {
                // The report and the state file are keyed by URL already: do not repeat it.
                let full = e.to_string();
                let error = full.strip_prefix(&format!("{url}: ")).map(str::to_string).unwrap_or(full);
                state.record_failure(url, &error);
                Outcome::Failed { error }
            }
        };
        state.save(&opts.dir)?;
        reports.push(SourceReport { url: url.clone(), outcome });
    }
    Ok(reports)
}

fn pull_one(
    opts: &PullOptions,
    fetcher: &Fetcher,
    url: &str,
    state: &mut State,
) -> Result<Outcome, BundleError> {
    let fail = |msg: String| BundleError::Fetch { url: url.to_string(), msg };
    let parsed = check_url(url).map_err(fail)?;
    // Revalidate only when what we installed from this source is still intact on disk; otherwise fetch
    // the full body so that pull repairs it.
    let prior = state.sources.get(url).cloned();
    let etag = prior.as_ref().and_then(|p| {
        let name = p.bundle.as_deref()?;
        let inst = state.installed.get(name)?;
        install::is_intact(&opts.dir, name, &inst.sha256, &opts.keys).then(|| p.etag.clone()).flatten()
    });
    let (data, new_etag) = match fetcher.get(&parsed, etag.as_deref()).map_err(fail)? {
        Fetched::NotModified => {
            let name = prior.and_then(|p| p.bundle).unwrap_or_default();
            state.record_success(url, &name, etag);
            return Ok(Outcome::NotModified { name });
        }
        Fetched::NotFound => return Err(fail("HTTP 404 Not Found".into())),
        Fetched::Body { data, etag } => (data, etag),
    };
    let sig_u = sig_url(&parsed);
    let sig = match fetcher.get(&sig_u, None).map_err(|m| fail(format!("{sig_u}: {m}")))? {
        Fetched::Body { data, .. } => {
            String::from_utf8(data).map_err(|_| fail(format!("{sig_u}: not text")))?
        }
        Fetched::NotFound | Fetched::NotModified => {
            return Err(BundleError::Invalid(format!(
                "{url}: unsigned bundle refused: trusted keys are configured but {sig_u} was not found"
            )))
        }
    };
    // Verify before anything is written.
    let bundle = parse_verified(Path::new(url), &data, Some(&sig), &opts.keys)
        .map_err(|e| BundleError::Invalid(e.to_string()))?;
    validate::check(Path::new(url), &data)?;
    let name = bundle.doc.name.clone();
    let previous = state.installed.get(&name).map(|s| s.revision);
    let decision = install::install(&opts.dir, &bundle, &data, &sig, url, state, &opts.keys)?;
    state.record_success(url, &name, new_etag);
    let revision = bundle.doc.revision;
    Ok(match decision {
        Decision::Install => Outcome::Installed { name, revision, previous },
        Decision::Repair => Outcome::Repaired { name, revision },
        Decision::UpToDate => Outcome::UpToDate { name, revision },
    })
}

/// One pull at a time per bundle dir (a timer and an operator may race).
fn lock(dir: &Path) -> Result<std::fs::File, BundleError> {
    use fs4::fs_std::FileExt as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(".pull.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| BundleError::io(&path, e))?;
    f.lock_exclusive().map_err(|e| BundleError::io(&path, format!("cannot lock: {e}")))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_pull_becomes_an_audit_record_naming_the_source() {
        let r = SourceReport {
            url: "https://bundles.example/team.yaml".into(),
            outcome: Outcome::Failed { error: "HTTP 404".into() },
        };
        let rec = r.failure_record(1234).unwrap();
        assert_eq!((rec.kind.as_str(), rec.class), (KIND_PULL_FAILED, crate::spool::Class::Audit));
        let ev: crate::datadog::payload::AuditEvent = serde_json::from_slice(&rec.body).unwrap();
        assert_eq!(ev.command, "ddcoterm bundle pull https://bundles.example/team.yaml");
        assert_eq!((ev.timestamp_ms, ev.tags), (1234, vec!["bundle_pull:failed".to_string()]));
        assert!(ev.reason.unwrap().contains("HTTP 404"));
    }
}
