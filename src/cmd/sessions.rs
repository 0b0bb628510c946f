//! `ddcoterm sessions [--json]`: the local recordings, oldest first.

use crate::cli::{GlobalArgs, SessionsArgs};
use crate::recorder::library;
use std::io::Write;

pub fn run(g: &GlobalArgs, a: SessionsArgs) -> anyhow::Result<i32> {
    let loaded = crate::cmd::context::load(g)?;
    let dir = loaded.settings.recording.dir.clone().unwrap_or_else(|| loaded.dirs.recordings());
    let list = library::list(&dir)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if a.json {
        for s in &list {
            serde_json::to_writer(&mut out, s)?;
            out.write_all(b"\n")?;
        }
        return Ok(0);
    }
    if list.is_empty() {
        writeln!(out, "no recordings in {}", dir.display())?;
        return Ok(0);
    }
    writeln!(out, "{:<36}  {:<20}  {:>9}  {:>9}  COMMAND", "ID", "DATE (UTC)", "DURATION", "SIZE")?;
    for s in &list {
        writeln!(
            out,
            "{:<36}  {:<20}  {:>9}  {:>9}  {}",
            s.id,
            date(s.started_at),
            format!("{:.1}s", s.duration_secs),
            size(s.size_bytes),
            s.command
        )?;
    }
    Ok(0)
}

fn date(ts: Option<u64>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| "-".into())
}

fn size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(size(512), "512B");
        assert_eq!(size(1536), "1.5K");
        assert_eq!(size(3 << 20), "3.0M");
        assert_eq!(date(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(date(None), "-");
    }
}
