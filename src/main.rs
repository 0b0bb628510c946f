//! Entry point: shim dispatch on argv[0] first (the hot path), then the CLI; exit codes decided here only.
//!
//! With glibc, ddcoterm brings its own C `main` instead of Rust's runtime start-up, which reads and parses
//! `/proc/self/maps` on every start to locate the main thread's stack guard (0.1 ms of a 2 ms shim call, for
//! a "thread has overflowed its stack" message). What else that start-up does is done here: standard fds
//! 0-2 that were closed are reopened on /dev/null, SIGPIPE is ignored (a closed pipe is an error ddcoterm
//! handles, never a silent death that loses a recording), a panic exits 101, and stdout is flushed at exit.
//! glibc hands `argc`/`argv` to the standard library on its own, so `std::env::args` works unchanged.
#![cfg_attr(all(target_os = "linux", target_env = "gnu"), no_main)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod cmath;

ddcoterm::entry_point!(dispatch);

fn dispatch() -> anyhow::Result<i32> {
    // A shim is a symlink named after the guarded command: nothing else may run before this check.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if let Some(name) = ddcoterm::shim::shim_name(&argv0) {
        let rest: Vec<std::ffi::OsString> = args.collect();
        return ddcoterm::cmd::intercept::run(&name, rest);
    }
    ddcoterm::cmd::main()
}
