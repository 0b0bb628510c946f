//! `ddcoterm-shim`: the statically linked binary that shim links point at when it is installed beside
//! `ddcoterm` (docs/policy.md, "The static shim binary").
//!
//! A guarded call whose policy decision is plain (no action, no warning, no message: most `kubectl` calls)
//! is decided and exec'd here, without the dynamic loader, libc.so.6 or symbol look-ups: about 0.15 ms less
//! per call than the dynamically linked `ddcoterm`. Every other call, and any call that would need a user
//! or group look-up (which static glibc cannot do reliably), is handed over, before anything is printed or
//! done, to the full `ddcoterm` in the same directory, exec'd with the same arguments and environment, which
//! then runs it exactly as it runs any shim call. Run by its own name it only answers `--version`.
#![cfg_attr(all(target_os = "linux", target_env = "gnu"), no_main)]

use ddcoterm::error::Exit;
use std::os::unix::process::CommandExt;

ddcoterm::entry_point!(dispatch);

fn dispatch() -> anyhow::Result<i32> {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    match ddcoterm::shim::shim_name(&argv0) {
        Some(name) => ddcoterm::guard::shim_plain_only(&name, args.collect(), hand_over),
        None => called_by_name(args.next()),
    }
}

/// `ddcoterm-shim --version`; anything else is a usage error that says what the binary is for.
fn called_by_name(first: Option<std::ffi::OsString>) -> anyhow::Result<i32> {
    if first.as_deref().is_some_and(|a| a == "--version" || a == "-V") {
        println!("{} {}", ddcoterm::shim::SHIM_BINARY, env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    Err(Exit::usage(format!(
        "{} is what shim links point at, not a command to run by name: create shims with `{} shim create \
         kubectl`, and run everything else through `{}`",
        ddcoterm::shim::SHIM_BINARY,
        ddcoterm::shim::FULL_BINARY,
        ddcoterm::shim::FULL_BINARY
    ))
    .into())
}

/// Replaces this process with the full `ddcoterm`, with this process's argv (argv[0] included, so it runs
/// as the same shim), environment and pid (a re-entry marker keeps its meaning). An exec that fails is the
/// end of the call: 127 when the full binary is missing, 126 when it cannot be run. It never falls back to
/// running the command unguarded.
fn hand_over() -> ! {
    // By its own name, not as `resolve::sibling`: this binary may be installed under another name.
    let full = ddcoterm::shim::resolve::beside_self(ddcoterm::shim::FULL_BINARY).unwrap_or_default();
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let err = std::process::Command::new(&full).arg0(argv0).args(args).exec();
    eprintln!(
        "ddcoterm: {} cannot hand this call over to {}: {err} (install both binaries in one directory)",
        ddcoterm::shim::SHIM_BINARY,
        full.display()
    );
    std::process::exit(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
}
