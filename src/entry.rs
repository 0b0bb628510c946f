//! Process start-up and exit shared by both binaries (`ddcoterm` and the static `ddcoterm-shim`): what
//! Rust's runtime start-up would do, done cheaply (src/main.rs says why it is skipped), and the one place an
//! error becomes a message and an exit code.

use std::io::Write;
use std::os::fd::AsRawFd;

/// Defines a binary's `main` around `dispatch` ([`start`]): with glibc a C `main` (the binary carries
/// `#![no_main]`; src/main.rs says why), elsewhere Rust's. Both binaries use it, so the two cannot drift.
#[macro_export]
macro_rules! entry_point {
    ($dispatch:path) => {
        /// The C entry point: the C runtime calls it with the arguments std already captured.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        #[allow(unsafe_code)] // `no_mangle` only names the symbol the C runtime calls; nothing unsafe runs.
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            i32::from($crate::entry::start($dispatch))
        }

        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        fn main() -> ::std::process::ExitCode {
            ::std::process::ExitCode::from($crate::entry::start($dispatch))
        }
    };
}

/// Runtime set-up, then `dispatch` with a panic turned into exit 101 (the message is printed by the hook);
/// returns the process's exit code.
pub fn start(dispatch: fn() -> anyhow::Result<i32>) -> u8 {
    reopen_closed_std_fds();
    ignore_sigpipe();
    let code = std::panic::catch_unwind(|| finish(dispatch())).unwrap_or(101);
    let _ = std::io::stdout().flush();
    code
}

/// Started with stdin, stdout or stderr closed, the next file opened (a recording, a spool record) would
/// take that number and stray output would be written into it. /dev/null fills each hole, lowest first.
fn reopen_closed_std_fds() {
    loop {
        let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") else { return };
        let fd = null.as_raw_fd();
        if fd > 2 {
            return; // all three open; this one is closed again
        }
        // It is now stdin, stdout or stderr for good, for the commands ddcoterm starts too: not close-on-exec.
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
        std::mem::forget(null);
    }
}

/// Writes to a closed pipe return EPIPE instead of killing the process. Children start with SIGPIPE at its
/// default again: `std::process::Command` resets it before every exec (the shim's exec included).
fn ignore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety requirement applies.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// The exit code for `result`, with the error reported on stderr (once) when there is one.
fn finish(result: anyhow::Result<i32>) -> u8 {
    match result {
        Ok(code) => code.clamp(0, 255) as u8,
        Err(err) => {
            if is_broken_pipe(&err) {
                return 0;
            }
            let shown = err.downcast_ref::<crate::error::Exit>().is_some_and(|e| e.is_shown());
            if !shown {
                crate::cmd::report_error(&render(&err));
            }
            crate::error::exit_code(&err).clamp(1, 255) as u8
        }
    }
}

/// `err: context: cause` on one line; each layer adds where, the innermost says what.
fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
