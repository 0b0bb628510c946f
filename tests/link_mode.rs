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
