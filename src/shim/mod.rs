//! Shims: symlinks named after a guarded command that point at the ddcoterm binary.

use std::ffi::OsStr;
use std::path::Path;

/// The guarded command's name when the binary was started through a shim (argv[0] is not ddcoterm itself).
/// Called first thing in `main`, so it only looks at the string.
pub fn shim_name(argv0: &OsStr) -> Option<String> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    if base.is_empty() || base == "ddcoterm" || base.starts_with("ddcoterm-") || base.starts_with("ddcoterm.")
    {
        return None;
    }
    Some(base.to_string())
}
