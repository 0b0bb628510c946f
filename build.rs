//! Link settings for the ddcoterm binary only (dependencies are unaffected).

fn main() {
    // The shim path runs on every guarded command, and most of a short run's start-up went to resolving every
    // dynamic symbol up front (`-z now`, rustc's default). Lazy binding resolves only the symbols a run uses.
    // RELRO stays on for the data it protects.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,lazy");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    // A position-independent executable makes the dynamic loader apply ~21,000 relocations at every start,
    // writing (and so copying) about 100 pages of the binary: 0.3 ms of every shim call, an eighth of its cost.
    // Linked at a fixed address instead, like the Go binaries it guards (kubectl, helm, terraform); shared
    // libraries, heap, stack and mmap stay randomised. `--features pie` restores a PIE where policy wants one.
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var_os("CARGO_FEATURE_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
