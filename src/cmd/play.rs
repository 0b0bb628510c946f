//! `ddcoterm play FILE|ID [--speed N] [--idle-limit S]`: replays a recording through the safe-output filter,
//! with keys on a terminal, at once when stdout is not one.

use crate::cli::{GlobalArgs, PlayArgs};
use crate::error::{exit, Exit};
use crate::recorder::{library, playback, player, tty};
use std::io::IsTerminal;

pub fn run(g: &GlobalArgs, a: PlayArgs) -> anyhow::Result<i32> {
    if !(a.speed.is_finite() && a.speed > 0.0) {
        return Err(Exit::new(exit::USAGE, format!("--speed {}: must be a positive number", a.speed)).into());
    }
    if let Some(l) = a.idle_limit {
        if !(l.is_finite() && l >= 0.0) {
            return Err(
                Exit::new(exit::USAGE, format!("--idle-limit {l}: must be zero or more seconds")).into()
            );
        }
    }
    let path = if std::path::Path::new(&a.file).is_file() {
        std::path::PathBuf::from(&a.file)
    } else {
        let loaded = crate::cmd::context::load(g)?;
        let dir = loaded.paths.recordings.clone();
        library::resolve(&dir, &a.file)?
    };
    let (header, events) = player::read(&path).map_err(|e| Exit::new(exit::DATAERR, format!("{e:#}")))?;
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        player::write_safe(&events, &mut stdout.lock())?;
        return Ok(0);
    }
    let opts = playback::Options {
        speed: a.speed,
        idle_limit: a.idle_limit,
        cols: header.width.min(u16::MAX as u64) as u16,
        rows: header.height.min(u16::MAX as u64) as u16,
    };
    // The console (raw mode, signal flags) is dropped before anything else is printed.
    let ended = {
        let mut console = tty::KeyConsole::open()?;
        playback::run(&events, opts, &mut console, &mut stdout.lock())?
    };
    if ended == playback::Ended::Quit {
        eprintln!("ddcoterm: replay stopped");
    }
    Ok(0)
}
