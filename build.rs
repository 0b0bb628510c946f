//! Link settings for the ddcoterm binary only (dependencies are unaffected).

fn main() {
    // The shim path runs on every guarded command, and most of a short run's start-up went to resolving every
    // dynamic symbol up front (`-z now`, rustc's default). Lazy binding resolves only the symbols a run uses.
    // RELRO stays on for the data it protects.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,lazy");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    // The functions of the shim path first in the text, together (link/shim-order.ld, bench/shim-order.sh):
    // about 40 fewer page faults per shim call. A section list with INSERT, so the rest of the layout is
    // the linker's default; entries whose functions no longer exist match nothing.
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}/link/shim-order.ld", env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=link/shim-order.ld");
    // A position-independent executable makes the dynamic loader apply ~21,000 relocations at every start,
    // writing (and so copying) about 100 pages of the binary: 0.3 ms of every shim call, an eighth of its cost.
    // Linked at a fixed address instead, like the Go binaries it guards (kubectl, helm, terraform); shared
    // libraries, heap, stack and mmap stay randomised. `--features pie` restores a PIE where policy wants one.
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var_os("CARGO_FEATURE_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if linux && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
        static_unwinder();
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// Links GCC's unwinder (libgcc_eh.a) into the binary instead of loading libgcc_s.so.1 at every start: one
/// shared library fewer for the dynamic loader to find, map and relocate, 0.10-0.12 ms of every shim call
/// on the reference machine (docs/policy.md). Rust's std asks for `-lgcc_s` by name, so a linker script of that name, found
/// first on the search path, stands in for it and names the static archive; `-static-libgcc` does the same
/// for the compiler driver's own libgcc. Panics still unwind (the unwinder is the same code, now inside).
fn static_unwinder() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("static-libgcc");
    std::fs::create_dir_all(&out).expect("create the static-libgcc directory");
    std::fs::write(
        out.join("libgcc_s.so"),
        "/* ddcoterm build.rs: GCC's unwinder, linked statically */\nINPUT(-lgcc_eh)\n",
    )
    .expect("write the libgcc_s linker script");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-arg-bins=-static-libgcc");
}
