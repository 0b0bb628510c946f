//! Compiled Luau (bytecode) for batches of organisation snippets, kept in the organisation's cache
//! ([`OrgCache`]) under the SHA-256 of the exact batch source and the compiler settings.
//!
//! Bytecode is code: Luau does not verify it, so a forged chunk could make any rule return anything, or
//! worse. It is therefore read only from the organisation's cache directory (root's, or the owner's of a
//! personal install; [`OrgCache`] refuses anything others can write) and only for a batch in which every
//! snippet is the organisation's. A batch holding a user's snippet is always compiled from its text.

use crate::config::org_cache::{self, OrgCache};

/// Names the derivation: bump when the batch layout or the compiler settings below change.
const KIND: &str = "luau-v1";

/// The compiler every snippet goes through. Snippets run once per call: compiling fast matters more than
/// optimising code that runs for microseconds (level 0 roughly halves compile time; line info is kept for
/// error messages).
pub fn compiler() -> mlua::Compiler {
    mlua::Compiler::new().set_optimization_level(0).set_debug_level(1)
}

/// The bytecode of `src`: from `cache` when a trusted entry exists, else compiled now (and stored when this
/// process may write the organisation's cache). `luau` is the state's `_VERSION` (bytecode of another Luau
/// must not be loaded). `None` when `src` does not compile.
pub fn bytecode(cache: &OrgCache, luau: &str, src: &str) -> Option<Vec<u8>> {
    let key = org_cache::key(&[env!("CARGO_PKG_VERSION").as_bytes(), luau.as_bytes(), src.as_bytes()]);
    if let Some(code) = cache.get(KIND, &key) {
        return Some(code);
    }
    let code = compiler().compile(src).ok()?;
    cache.put(KIND, &key, &code);
    Some(code)
}
