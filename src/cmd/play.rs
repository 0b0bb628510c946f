//! `ddcoterm play FILE|ID [--speed N] [--idle-limit S]`.

use crate::cli::{GlobalArgs, PlayArgs};
use crate::error::{exit, Exit};
use crate::recorder::{library, player};

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
        let dir = loaded.settings.recording.dir.clone().unwrap_or_else(|| loaded.dirs.recordings());
        library::resolve(&dir, &a.file)?
    };
    let (_header, events) = player::read(&path).map_err(|e| Exit::new(exit::DATAERR, format!("{e:#}")))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    player::play(&events, a.speed, a.idle_limit, &mut out, std::thread::sleep)?;
    Ok(0)
}
