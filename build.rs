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
    // libgcc_s.so.1 is the only shared library besides libc and libm, loaded for the unwinder alone: its
    // loading and its constructor (which probes the CPU with CPUID, ~10 us each under virtualisation) were
    // about 0.1 ms of every shim call. A linker script named `libgcc_s.so`, found before the system's, makes
    // `-lgcc_s` (from rustc and from the gcc driver) link the same unwinder statically from libgcc_eh.a; Luau
    // and libstdc++ are static already, so the process has exactly one unwinder.
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux && gnu {
        let dir =
            std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("libgcc");
        std::fs::create_dir_all(&dir).expect("create OUT_DIR/libgcc");
        std::fs::write(
            dir.join("libgcc_s.so"),
            "/* ddcoterm build.rs: the unwinder, statically */\nINPUT(-lgcc_eh)\n",
        )
        .expect("write OUT_DIR/libgcc/libgcc_s.so");
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
