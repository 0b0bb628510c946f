//! The system layer's `bundles:` section, read alone: the only layer whose `bundles.trusted_keys` count, and
//! readable when an installed bundle makes the full configuration fail to load (so `pull` can repair it).

use crate::config::bundle_layer::parse_trusted_keys;
use crate::config::file_layer::{self, Trust};
use crate::config::settings::BundleSettings;
use crate::dirs::Dirs;
use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;

/// `bundles:` of the system config (a missing file: the defaults, no keys and no sources).
pub fn settings(dirs: &Dirs) -> anyhow::Result<BundleSettings> {
    let mut warnings = Vec::new();
    let sys = file_layer::read(&dirs.system_config(), Trust::Org, &mut warnings)?;
    Ok(sys.map(|s| s.settings.bundles).unwrap_or_default())
}

/// The trusted keys of `settings`; a malformed key names the system config.
pub fn trusted_keys(dirs: &Dirs, settings: &BundleSettings) -> anyhow::Result<Vec<VerifyingKey>> {
    parse_trusted_keys(&settings.trusted_keys)
        .with_context(|| format!("in {}", dirs.system_config().display()))
}

/// The system config's trusted keys.
pub fn keys(dirs: &Dirs) -> anyhow::Result<Vec<VerifyingKey>> {
    trusted_keys(dirs, &settings(dirs)?)
}
