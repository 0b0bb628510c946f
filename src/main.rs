//! Entry point: shim dispatch on argv[0] first (the hot path), then the CLI; exit codes decided here only.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A shim is a symlink named after the guarded command: nothing else may run before this check.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if let Some(name) = ddcoterm::shim::shim_name(&argv0) {
        let rest: Vec<std::ffi::OsString> = args.collect();
        return finish(ddcoterm::cmd::intercept::run(&name, &argv0, rest));
    }
    finish(ddcoterm::cmd::main())
}

fn finish(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("ddcoterm: {}", render(&err));
            ExitCode::from(ddcoterm::error::exit_code(&err).clamp(1, 255) as u8)
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
