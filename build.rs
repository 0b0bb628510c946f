//! Link settings for the ddcoterm binary only (dependencies are unaffected).

fn main() {
    // The shim path runs on every guarded command, and most of a short run's start-up went to resolving every
    // dynamic symbol up front (`-z now`, rustc's default). Lazy binding resolves only the symbols a run uses.
    // RELRO stays on for the data it protects.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,lazy");
    println!("cargo:rerun-if-changed=build.rs");
}
