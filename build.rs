//! Link settings for the two binaries only (dependencies are unaffected): `ddcoterm`, dynamically linked,
//! and `ddcoterm-shim`, statically linked.

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
        static_shim_binary();
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

/// Links `ddcoterm-shim` statically, with no second build of the crate: the same objects, linked once more
/// against glibc's and libstdc++'s archives. rustc names its system libraries with `-Bdynamic` in force, so
/// `-static` alone would not do; for this binary only, a directory searched first holds a linker script named
/// like each shared library (`libc.so`...) that names its archive instead. No dynamic loader, no libc.so.6
/// to map and relocate, no symbol look-ups: 0.15 ms of every shim call (docs/policy.md). The binary makes no
/// user or group look-up (static glibc cannot load the host's NSS modules reliably; src/nss.rs).
fn static_shim_binary() {
    const BIN: &str = "ddcoterm-shim";
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("static-libc");
    std::fs::create_dir_all(&out).expect("create the static-libc directory");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    for lib in ["c", "m", "stdc++", "pthread", "dl", "rt", "util"] {
        let archive = std::process::Command::new(&cc)
            .arg(format!("-print-file-name=lib{lib}.a"))
            .output()
            .ok()
            .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.is_absolute() && p.exists());
        let Some(archive) = archive else {
            assert!(!matches!(lib, "c" | "m"), "{BIN}: `{cc} -print-file-name=lib{lib}.a` found no archive (install the C library's static archives: libc6-dev)");
            continue;
        };
        std::fs::write(
            out.join(format!("lib{lib}.so")),
            format!(
                "/* ddcoterm build.rs: {BIN} links lib{lib} statically */\nGROUP ( {} )\n",
                archive.display()
            ),
        )
        .expect("write a static-libc linker script");
    }
    println!("cargo:rustc-link-arg-bin={BIN}=-L{}", out.display());
    // A fixed address like `ddcoterm` by default (build.rs's `-no-pie` above), position-independent with `pie`.
    let pie = std::env::var_os("CARGO_FEATURE_PIE").is_some();
    println!("cargo:rustc-link-arg-bin={BIN}={}", if pie { "-static-pie" } else { "-static" });
}
