//! Shims: symlinks named after a guarded command that point at the ddcoterm binary, the PATH blocks that put
//! them first, and finding the real binary behind them.

pub mod health;
pub mod manage;
pub mod path_block;
pub mod resolve;

use std::ffi::OsStr;
use std::path::Path;

/// The full binary's file name: the CLI, and the shim for calls the static shim hands over.
pub const FULL_BINARY: &str = "ddcoterm";
/// The static shim binary's file name, installed beside [`FULL_BINARY`]: what new shim links point at when it
/// is there (it decides plain calls without the dynamic loader and hands everything else over).
pub const SHIM_BINARY: &str = "ddcoterm-shim";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_dispatch() {
        for (argv0, want) in [
            ("kubectl", Some("kubectl")),
            ("/home/u/.ddcoterm/overrides/kubectl", Some("kubectl")),
            ("ddcoterm", None),
            ("/usr/local/bin/ddcoterm", None),
            ("target/debug/ddcoterm-3f2a", None),
            ("ddcoterm.bak", None),
            ("", None),
        ] {
            assert_eq!(shim_name(OsStr::new(argv0)).as_deref(), want, "{argv0}");
        }
    }
}
