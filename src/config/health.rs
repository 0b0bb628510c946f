//! Health of the loaded configuration for `ddcoterm doctor`: which layers were found, and the warnings.

use super::Loaded;
use crate::model::Finding;

/// One finding per layer (found or not present) and one warning per load warning.
pub fn check(l: &Loaded) -> Vec<Finding> {
    let mut out: Vec<Finding> = l
        .layers
        .iter()
        .map(|layer| {
            let state = if layer.exists { "found" } else { "not present" };
            Finding::ok("config", format!("{} layer {} ({state})", layer.layer, layer.path.display()))
        })
        .collect();
    out.extend(l.warnings.iter().map(|w| Finding::warn("config", w)));
    out
}
