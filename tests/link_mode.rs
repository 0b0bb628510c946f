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

/// `readelf --dynamic` of the binary: the shared libraries it asks the dynamic loader for.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn dynamic_section() -> String {
    let out = std::process::Command::new("readelf")
        .args(["--dynamic", env!("CARGO_BIN_EXE_ddcoterm")])
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GCC's unwinder is linked in (build.rs), not loaded from libgcc_s.so.1 at every start: the binary does
/// not ask for it, and a panic still unwinds to `catch_unwind` in a process linked the same way (this test's
/// own binary, which has no libgcc_s mapped).
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_unwinder_is_linked_in_and_panics_still_unwind() {
    let dynamic = dynamic_section();
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

/// The C math functions come from the `libm` crate (src/cmath.rs), so the binary does not need libm.so.6:
/// one shared library fewer for the dynamic loader at every start. A math function not listed there brings
/// it back; add it to src/cmath.rs (`nm -D --undefined-only` names it). Their values are checked through the
/// binary in `tests/policy_cli.rs`.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_binary_does_not_need_libm() {
    let dynamic = dynamic_section();
    assert!(dynamic.contains("libc.so"), "{dynamic}");
    assert!(!dynamic.contains("libm.so"), "ddcoterm needs libm.so.6 again: {dynamic}");
}

/// The shim path's functions are laid out together at the start of the text (build.rs, link/shim-order.ld):
/// its entry points must land in that section. When a refactoring renames them this fails, and
/// `bench/shim-order.sh` regenerates the list (docs/policy.md).
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_shim_path_is_laid_out_together() {
    let bin = env!("CARGO_BIN_EXE_ddcoterm");
    let sections =
        std::process::Command::new("readelf").args(["-SW", bin]).output().expect("readelf (binutils)");
    let sections = String::from_utf8_lossy(&sections.stdout);
    let line = sections
        .lines()
        .find(|l| l.contains(".text.ddcoterm_shim_path"))
        .unwrap_or_else(|| panic!("no .text.ddcoterm_shim_path section in {bin}:\n{sections}"));
    // `[Nr] Name Type Address Off Size ...`: the fields after the name.
    let fields: Vec<&str> = line.split(']').nth(1).unwrap().split_whitespace().collect();
    let start = u64::from_str_radix(fields[2], 16).unwrap();
    let size = u64::from_str_radix(fields[4], 16).unwrap();
    assert!(size > 0 && size < 8 << 20, "the section holds {size} bytes");
    let symbols = std::process::Command::new("nm").arg(bin).output().expect("nm (binutils)");
    let symbols = String::from_utf8_lossy(&symbols.stdout);
    for entry in [
        "main",
        "_ZN8ddcoterm5guard4shim17h",
        "_ZN8ddcoterm6config4load11load_layers17h",
        "_ZN8ddcoterm6policy7sandbox7Sandbox3new17h",
        "lua_newstate",
    ] {
        let addr = symbols
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
                let named = name == entry || (entry.ends_with("17h") && name.starts_with(entry));
                (named && matches!(kind, "T" | "t")).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
            })
            .next()
            .unwrap_or_else(|| panic!("{entry} is not a function of {bin}"));
        // Both are link-time addresses, in a PIE too.
        assert!(
            (start..start + size).contains(&addr),
            "{entry} at {addr:#x} is outside the shim path's section {start:#x}+{size:#x}: regenerate \
             link/shim-order.ld with bench/shim-order.sh"
        );
    }
}

/// `ddcoterm-shim` is linked statically (build.rs): no program interpreter and no dynamic section, so no
/// dynamic loader runs at a shim call; a fixed address by default, position-independent with `pie`. It runs.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_shim_binary_is_static() {
    let bin = env!("CARGO_BIN_EXE_ddcoterm-shim");
    let out =
        std::process::Command::new("readelf").args(["--program-headers", "--dynamic", bin]).output().unwrap();
    let headers = String::from_utf8_lossy(&out.stdout);
    assert!(!headers.contains("INTERP"), "ddcoterm-shim asks for a dynamic loader:\n{headers}");
    assert!(!headers.contains("(NEEDED)"), "ddcoterm-shim needs shared libraries:\n{headers}");
    let want = if cfg!(feature = "pie") { 3 } else { 2 };
    assert_eq!(elf_type(bin), want);
    let out = std::process::Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ddcoterm-shim {}\n", env!("CARGO_PKG_VERSION"))
    );
}
