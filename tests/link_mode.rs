//! How the ddcoterm binary is linked (build.rs): at a fixed address by default, for shim start-up time, and
//! as a position-independent executable with `--features pie`. `make ci` runs this test both ways.

/// `e_type` of the ELF header: 2 = ET_EXEC (fixed address), 3 = ET_DYN (PIE).
fn elf_type(path: &str) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not an ELF file");
    assert_eq!(bytes[5], 1, "little-endian ELF expected");
    u16::from_le_bytes([bytes[16], bytes[17]])
}

#[test]
#[cfg(target_os = "linux")]
fn the_binary_is_linked_as_configured() {
    let want = if cfg!(feature = "pie") { 3 } else { 2 };
    assert_eq!(elf_type(env!("CARGO_BIN_EXE_ddcoterm")), want);
    // Either way it runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcoterm")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ddcoterm "));
}

/// GCC's unwinder is linked in (build.rs), not loaded from libgcc_s.so.1 at every start: the binary does
/// not ask for it, and a panic still unwinds to `catch_unwind` in a process linked the same way (this test's
/// own binary, which has no libgcc_s mapped).
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_unwinder_is_linked_in_and_panics_still_unwind() {
    let out = std::process::Command::new("readelf")
        .args(["--dynamic", env!("CARGO_BIN_EXE_ddcoterm")])
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("(NEEDED)") && dynamic.contains("libc.so"), "{dynamic}");
    assert!(!dynamic.contains("libgcc_s"), "ddcoterm still needs libgcc_s: {dynamic}");

    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("libgcc_s"), "this test binary loaded libgcc_s:\n{maps}");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        let v: Vec<u8> = std::hint::black_box(Vec::new());
        v[3]
    });
    std::panic::set_hook(hook);
    assert!(caught.is_err(), "the panic was not caught");
}
