//! `ddcoterm sessions [filters] [--format table|json]` and `ddcoterm sessions show ID`: the local
//! recordings, newest first, with short ids that `play` and `sessions show` accept.

use crate::cli::{GlobalArgs, SessionsArgs, SessionsCommand};
use crate::error::{exit, Exit};
use crate::recorder::library::{self, parse_time, Filter, SessionInfo};
use std::io::Write;

pub fn run(g: &GlobalArgs, a: SessionsArgs) -> anyhow::Result<i32> {
    let json = a.json || a.format == "json";
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let filter = Filter {
        user: a.user,
        host: a.host,
        command: a.command,
        since: a.since.as_deref().map(|v| parse_time("--since", v, now)).transpose()?,
        until: a.until.as_deref().map(|v| parse_time("--until", v, now)).transpose()?,
        exit: a.exit,
    };
    let loaded = crate::cmd::context::load(g)?;
    let dir = loaded.paths.recordings.clone();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(SessionsCommand::Show { id }) = a.show {
        let path = library::resolve(&dir, &id)?;
        let s = library::info(&path).ok_or_else(|| {
            Exit::new(exit::DATAERR, format!("{}: not an asciicast recording", path.display()))
        })?;
        if json {
            serde_json::to_writer_pretty(&mut out, &s.to_json())?;
            writeln!(out)?;
        } else {
            show(&mut out, &s)?;
        }
        return Ok(0);
    }
    let listing = library::listing(&dir, &filter)?;
    if json {
        let list: Vec<serde_json::Value> = listing.rows.iter().map(|(s, _)| s.to_json()).collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(0);
    }
    if listing.rows.is_empty() {
        let what = if listing.total == 0 { "no recordings" } else { "no recordings match" };
        writeln!(out, "{what} in {}", dir.display())?;
        return Ok(0);
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header(vec![
        "ID",
        "START (UTC)",
        "DURATION",
        "EXIT",
        "SIZE",
        "USER",
        "HOST",
        "COMMAND",
    ]);
    for (s, id) in &listing.rows {
        table.add_row(vec![
            id.to_string(),
            start(s.started_at),
            duration(s.duration_secs),
            s.exit_code.map_or("-".to_string(), |c| c.to_string()),
            size(s.size_bytes),
            library::printable(s.user.as_deref().unwrap_or("-"), 32),
            library::printable(s.host.as_deref().unwrap_or("-"), 32),
            library::printable(&s.command, 80),
        ]);
    }
    for i in [2, 3, 4] {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim())?;
    }
    Ok(0)
}

fn show(out: &mut dyn Write, s: &SessionInfo) -> std::io::Result<()> {
    let p = |v: &Option<String>| library::printable(v.as_deref().unwrap_or("-"), 200);
    writeln!(out, "id        {}", s.id)?;
    writeln!(out, "start     {} (UTC)", start(s.started_at))?;
    writeln!(out, "duration  {}", duration(s.duration_secs))?;
    writeln!(out, "exit      {}", s.exit_code.map_or("-".to_string(), |c| c.to_string()))?;
    writeln!(out, "user      {}", p(&s.user))?;
    writeln!(out, "host      {}", p(&s.host))?;
    writeln!(out, "cwd       {}", p(&s.cwd))?;
    writeln!(out, "command   {}", library::printable(&s.command, 4096))?;
    writeln!(out, "size      {}", size(s.size_bytes))?;
    writeln!(out, "file      {}", s.path.display())
}

fn start(ts: Option<u64>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| "-".into())
}

/// `4.2s`, `3m05s`, `2h07m`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let whole = s as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// Short sizes (`1.5K`) to keep the table narrow.
fn size(b: u64) -> String {
    bytesize::ByteSize(b).display().iec_short().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_sizes_and_dates() {
        assert_eq!(duration(4.24), "4.2s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(7620.0), "2h07m");
        assert_eq!(size(512), "512B");
        assert_eq!(size(1536), "1.5K");
        assert_eq!(size(3 << 20), "3.0M");
        assert_eq!(start(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(start(None), "-");
    }
}
