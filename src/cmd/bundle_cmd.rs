//! `ddcoterm bundle keygen|sign|verify|pull|list`.
//!
//! Keys and sources are read from the system layer alone (the only layer whose `bundles.trusted_keys` count),
//! so that `pull` and `list` still work when an installed bundle makes the full configuration fail to load.

use crate::bundle::{self, fetch, keys, list, pull, validate, BundleError};
use crate::cli::{BundleCommand, GlobalArgs, ListFormat};
use crate::config::bundle_layer::{parse_trusted_keys, parse_verified, sig_path};
use crate::config::file_layer::{self, Trust};
use crate::config::settings::BundleSettings;
use crate::dirs::Dirs;
use crate::error::{exit, Exit};
use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use std::path::Path;

pub fn run(_g: &GlobalArgs, c: BundleCommand) -> anyhow::Result<i32> {
    match c {
        BundleCommand::Keygen { out } => keygen(&out),
        BundleCommand::Sign { file, key } => sign(&file, &key),
        BundleCommand::Verify { file, pubkey } => verify(&file, pubkey.as_deref()),
        BundleCommand::Pull { dir } => run_pull(dir),
        BundleCommand::List { format, json } => run_list(format.or_json(json) == ListFormat::Json),
    }
}

/// `bundles:` of the system config (missing file: defaults).
fn system_bundle_settings(dirs: &Dirs) -> anyhow::Result<BundleSettings> {
    let mut warnings = Vec::new();
    let sys = file_layer::read(&dirs.system_config(), Trust::Org, &mut warnings)?;
    Ok(sys.map(|s| s.settings.bundles).unwrap_or_default())
}

fn system_keys(dirs: &Dirs) -> anyhow::Result<Vec<VerifyingKey>> {
    let settings = system_bundle_settings(dirs)?;
    parse_trusted_keys(&settings.trusted_keys)
        .with_context(|| format!("in {}", dirs.system_config().display()))
}

fn keygen(prefix: &Path) -> anyhow::Result<i32> {
    let key = keys::generate()?;
    let (k, p) = keys::write_key_pair(prefix, &key).map_err(refused_io)?;
    let vk = key.verifying_key();
    println!("private key: {} (0600; keep it secret, off the fleet)", k.display());
    println!("public key:  {} (key id {})", p.display(), bundle::key_id(&vk));
    println!("add to the system config (/etc/ddcoterm/config.yaml):");
    println!(
        "  bundles:\n    trusted_keys:\n      - {}",
        keys::public_key_text(&vk).lines().nth(1).unwrap_or_default()
    );
    Ok(0)
}

fn sign(file: &Path, key_path: &Path) -> anyhow::Result<i32> {
    let data = std::fs::read(file).map_err(|e| Exit::io(format!("{}: {e}", file.display())))?;
    let b = validate::check(file, &data)
        .map_err(|e| Exit::data(format!("refusing to sign an invalid bundle: {e}")))?;
    let key = keys::read_signing_key(key_path).map_err(|e| Exit::usage(e.to_string()))?;
    let sig = keys::sign(&key, &data);
    let out = sig_path(file);
    bundle::fsutil::atomic_write(&out, sig.as_bytes(), 0o644).map_err(refused_io)?;
    println!(
        "signed bundle {} r{} with key {}: {}",
        b.doc.name,
        b.doc.revision,
        bundle::key_id(&key.verifying_key()),
        out.display()
    );
    Ok(0)
}

fn verify(file: &Path, pubkey: Option<&Path>) -> anyhow::Result<i32> {
    let keys = match pubkey {
        Some(p) => vec![keys::read_public_key(p).map_err(|e| Exit::usage(e.to_string()))?],
        None => system_keys(&Dirs::from_env())?,
    };
    if keys.is_empty() {
        return Err(Exit::usage(
            "no key to verify with: pass --pubkey FILE or set bundles.trusted_keys in the system config",
        )
        .into());
    }
    let data = std::fs::read(file).map_err(|e| Exit::io(format!("{}: {e}", file.display())))?;
    let sig = std::fs::read_to_string(sig_path(file)).ok();
    let result = parse_verified(file, &data, sig.as_deref(), &keys)
        .map_err(|e| BundleError::Invalid(e.to_string()))
        .and_then(|b| validate::check(file, &data).map(|_| b));
    match result {
        Ok(b) => {
            println!(
                "ok: {}: bundle {} r{} signed by key {}",
                file.display(),
                b.doc.name,
                b.doc.revision,
                b.signer.unwrap_or_default()
            );
            Ok(0)
        }
        Err(e) => Err(Exit::refused(format!("bundle verification FAILED: {e}")).into()),
    }
}

fn run_pull(dir: Option<std::path::PathBuf>) -> anyhow::Result<i32> {
    let dirs = Dirs::from_env();
    let settings = system_bundle_settings(&dirs)?;
    let opts = pull::PullOptions {
        dir: dir.unwrap_or_else(|| dirs.bundles()),
        sources: settings.sources,
        keys: parse_trusted_keys(&settings.trusted_keys)
            .with_context(|| format!("in {}", dirs.system_config().display()))?,
        timeout: fetch::REQUEST_TIMEOUT,
    };
    let reports = pull::pull(&opts).map_err(refused_io)?;
    let mut code = 0;
    for r in &reports {
        if r.failed() {
            eprintln!("ddcoterm: bundle pull: {r}");
            code = exit::REFUSED;
        } else {
            println!("{r}");
        }
    }
    let failed: Vec<&pull::SourceReport> = reports.iter().filter(|r| r.failed()).collect();
    if !failed.is_empty() {
        report_failures(&failed);
    }
    Ok(code)
}

/// Sends each failed source as an audit event (spooled first: delivered later when Datadog is down), so the
/// fleet sees a host that stays on an older bundle. The last good bundle stays in force either way.
fn report_failures(failed: &[&pull::SourceReport]) {
    let loaded = match super::context::load(&GlobalArgs::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ddcoterm: bundle pull: the failure is not sent to Datadog: {e:#}");
            return;
        }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let up = match crate::upload::Uploader::new(&loaded) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("ddcoterm: bundle pull: could not open the spool for the failure events: {e:#}");
            return;
        }
    };
    for r in failed {
        let event = crate::datadog::payload::AuditEvent {
            user: crate::dirs::user_name(),
            hostname: crate::dirs::host_name(),
            command: format!("ddcoterm bundle pull {}", r.url),
            reason: Some(r.to_string()),
            timestamp_ms: now_ms,
            tags: vec!["bundle_pull:failed".into()],
            ..Default::default()
        };
        let record = serde_json::to_vec(&event).map_err(anyhow::Error::from).and_then(|body| {
            up.enqueue(crate::spool::Record::new(KIND_PULL_FAILED, crate::spool::Class::Audit, body))
        });
        if let Err(e) = record {
            eprintln!("ddcoterm: bundle pull: could not spool the failure event: {e:#}");
        }
    }
    let rep = up.finish();
    if rep.needs_attention() {
        eprintln!("ddcoterm: {rep}");
    }
}

/// Spool record kind of a failed bundle pull (sent as an Events API event, `alert_type: error`).
pub const KIND_PULL_FAILED: &str = "audit.bundle_pull_failed";

fn run_list(json: bool) -> anyhow::Result<i32> {
    let dirs = Dirs::from_env();
    let keys = system_keys(&dirs)?;
    let entries = list::list(&dirs.bundles(), &keys).map_err(refused_io)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    if entries.is_empty() {
        println!("no bundles installed in {}", dirs.bundles().display());
        return Ok(0);
    }
    let rows = entries.iter().map(|e| {
        let signer = match (&e.signer, e.revision) {
            (Some(s), _) => s.clone(),
            (None, Some(_)) => "unsigned".into(),
            (None, None) => "-".into(),
        };
        [
            e.name.clone(),
            e.revision.map(|r| format!("r{r}")).unwrap_or_else(|| "-".into()),
            signer,
            e.status.to_string(),
            e.fetched_at.clone().unwrap_or_else(|| "-".into()),
            e.source.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    println!("{}", super::ui::table(&["NAME", "REVISION", "SIGNER", "STATUS", "FETCHED", "SOURCE"], rows));
    for e in entries.iter().filter(|e| e.error.is_some()) {
        println!("why {} is {}: {}", e.name, e.status, e.error.as_deref().unwrap_or_default());
    }
    Ok(0)
}

/// Maps a bundle error to an exit status: I/O 74, setup/usage 64, everything else refused (1).
fn refused_io(e: BundleError) -> anyhow::Error {
    let msg = e.to_string();
    match &e {
        BundleError::Io { .. } => Exit::io(msg),
        BundleError::Setup(_) | BundleError::Key { .. } => Exit::usage(msg),
        _ => Exit::refused(msg),
    }
    .into()
}
