//! `ddcoterm bundle keygen|sign|verify|pull|list`.
//!
//! Keys and sources are read from the system layer alone (`bundle::system`), so that `pull` and `list`
//! still work when an installed bundle makes the full configuration fail to load.

use crate::bundle::{self, fetch, keys, list, pull, sign, system, BundleError};
use crate::cli::{BundleCommand, GlobalArgs, ListFormat};
use crate::dirs::Dirs;
use crate::error::{exit, Exit};
use std::path::Path;

pub fn run(_g: &GlobalArgs, c: BundleCommand) -> anyhow::Result<i32> {
    match c {
        BundleCommand::Keygen { out } => keygen(&out),
        BundleCommand::Sign { file, key } => {
            let s = sign::sign_file(&file, &key).map_err(Exit::from)?;
            println!("signed bundle {} r{} with key {}: {}", s.name, s.revision, s.key_id, s.sig.display());
            Ok(0)
        }
        BundleCommand::Verify { file, pubkey } => verify(&file, pubkey.as_deref()),
        BundleCommand::Pull { dir } => run_pull(dir),
        BundleCommand::List { format, json } => run_list(format.or_json(json) == ListFormat::Json),
    }
}

fn keygen(prefix: &Path) -> anyhow::Result<i32> {
    let key = keys::generate()?;
    let (k, p) = keys::write_key_pair(prefix, &key).map_err(Exit::from)?;
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

fn verify(file: &Path, pubkey: Option<&Path>) -> anyhow::Result<i32> {
    let keys = match pubkey {
        Some(p) => vec![keys::read_public_key(p).map_err(|e| Exit::usage(e.to_string()))?],
        None => system::keys(&Dirs::from_env())?,
    };
    if keys.is_empty() {
        return Err(Exit::usage(
            "no key to verify with: pass --pubkey FILE or set bundles.trusted_keys in the system config",
        )
        .into());
    }
    match sign::verify_file(file, &keys) {
        Ok(b) => {
            let (name, rev) = (&b.doc.name, b.doc.revision);
            println!(
                "ok: {}: bundle {name} r{rev} signed by key {}",
                file.display(),
                b.signer.unwrap_or_default()
            );
            Ok(0)
        }
        Err(e @ BundleError::Io { .. }) => Err(Exit::from(e).into()),
        Err(e) => Err(Exit::refused(format!("bundle verification FAILED: {e}")).into()),
    }
}

fn run_pull(dir: Option<std::path::PathBuf>) -> anyhow::Result<i32> {
    let dirs = Dirs::from_env();
    let settings = system::settings(&dirs)?;
    let opts = pull::PullOptions {
        dir: dir.unwrap_or_else(|| dirs.bundles()),
        keys: system::trusted_keys(&dirs, &settings)?,
        sources: settings.sources,
        timeout: fetch::REQUEST_TIMEOUT,
    };
    let reports = pull::pull(&opts).map_err(Exit::from)?;
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

/// Spools each failed source as an audit event, so the fleet sees a host that stays on an older bundle.
/// The last good bundle stays in force either way.
fn report_failures(failed: &[&pull::SourceReport]) {
    let loaded = match super::context::load(&GlobalArgs::default()) {
        Ok(l) => l,
        Err(e) => return eprintln!("ddcoterm: bundle pull: the failure is not sent to Datadog: {e:#}"),
    };
    let up = match crate::upload::Uploader::new(&loaded) {
        Ok(u) => u,
        Err(e) => {
            return eprintln!("ddcoterm: bundle pull: could not open the spool for the failure events: {e:#}")
        }
    };
    let now_ms = crate::spool::now_ms();
    for r in failed {
        let record = r.failure_record(now_ms).map_err(anyhow::Error::from).and_then(|rec| up.enqueue(rec));
        if let Err(e) = record {
            eprintln!("ddcoterm: bundle pull: could not spool the failure event: {e:#}");
        }
    }
    let rep = up.finish();
    if rep.needs_attention() {
        eprintln!("ddcoterm: {rep}");
    }
}

fn run_list(json: bool) -> anyhow::Result<i32> {
    let dirs = Dirs::from_env();
    let entries = list::list(&dirs.bundles(), &system::keys(&dirs)?).map_err(Exit::from)?;
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
