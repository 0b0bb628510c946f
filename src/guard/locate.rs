//! Where the real program behind a guarded name is: PATH minus the shim directories and ddcoterm itself.

use crate::config::Loaded;
use crate::error::Exit;
use crate::shim::resolve;
use std::path::PathBuf;

/// The user's shim directory (`shims.dir`, else `~/.ddcoterm/overrides`).
pub fn user_dir(loaded: &Loaded) -> PathBuf {
    loaded.paths.user_shims.clone()
}

/// The system shim directory (`shims.system_dir`, else /usr/local/lib/ddcoterm/overrides).
pub fn system_dir(loaded: &Loaded) -> PathBuf {
    loaded.paths.system_shims.clone()
}

/// The real `name` on this process's PATH, skipping both shim directories and both ddcoterm binaries: what a shim
/// (or `ddcoterm -- name`) runs once policy allows it.
pub fn find_real(loaded: &Loaded, name: &str) -> Option<PathBuf> {
    let skip = [user_dir(loaded), system_dir(loaded)];
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    resolve::find_real(name, &path_var, &skip, &resolve::our_ids())
}

/// The program a command word names: a path as given, else [`find_real`]; 127 when there is none.
pub fn program(loaded: &Loaded, word: &str) -> Result<PathBuf, Exit> {
    if word.contains('/') {
        return Ok(PathBuf::from(word));
    }
    find_real(loaded, word).ok_or_else(|| Exit::not_found(format!("{word}: command not found on PATH")))
}
