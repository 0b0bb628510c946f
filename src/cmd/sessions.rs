//! `ddcoterm sessions [filters] [--format table|json]` and `ddcoterm sessions show ID`: the local
//! recordings, newest first, with short ids that `play` and `sessions show` accept.

use crate::cli::{GlobalArgs, SessionsArgs, SessionsCommand};
use crate::error::{exit, Exit};
use crate::recorder::library::{self, Filter, SessionInfo};
use serde_json::{json, Value};
use std::io::Write;
use time::format_description::well_known::Rfc3339;

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
            serde_json::to_writer_pretty(&mut out, &to_json(&s))?;
            writeln!(out)?;
        } else {
            show(&mut out, &s)?;
        }
        return Ok(0);
    }
    let all = library::list(&dir)?;
    // Short ids are unique among every recording in the directory, so each one also resolves in `play`.
    let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    let short = library::short_ids(&ids);
    let rows: Vec<(&SessionInfo, &String)> =
        all.iter().zip(&short).filter(|(s, _)| filter.matches(s)).collect();
    if json {
        let list: Vec<Value> = rows.iter().map(|(s, _)| to_json(s)).collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(0);
    }
    if rows.is_empty() {
        let what = if all.is_empty() { "no recordings" } else { "no recordings match" };
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
    for (s, id) in &rows {
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

/// `--since`/`--until`: RFC 3339, or a duration before `now` (`2h`, `7d`, `30m`). Unix seconds.
fn parse_time(flag: &str, v: &str, now: u64) -> anyhow::Result<u64> {
    if let Ok(t) = time::OffsetDateTime::parse(v.trim(), &Rfc3339) {
        return Ok(t.unix_timestamp().max(0) as u64);
    }
    match humantime::parse_duration(v.trim()) {
        Ok(d) => Ok(now.saturating_sub(d.as_secs())),
        Err(_) => Err(Exit::new(
            exit::USAGE,
            format!("{flag} `{v}`: not an RFC 3339 time (2026-05-01T09:00:00Z) nor a duration ago (2h, 7d)"),
        )
        .into()),
    }
}

fn rfc3339(ts: Option<u64>) -> Value {
    ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|d| d.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn to_json(s: &SessionInfo) -> Value {
    json!({
        "id": s.id,
        "started_at": rfc3339(s.started_at),
        "duration_secs": s.duration_secs,
        "exit_code": s.exit_code,
        "size_bytes": s.size_bytes,
        "user": s.user,
        "host": s.host,
        "cwd": s.cwd,
        "command": s.command,
        "path": s.path,
    })
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

    #[test]
    fn since_and_until_take_rfc3339_or_a_duration_ago() {
        assert_eq!(parse_time("--since", "1970-01-02T00:00:00Z", 0).unwrap(), 86400);
        assert_eq!(parse_time("--since", "2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(parse_time("--since", "7d", 1_000_000).unwrap(), 1_000_000 - 7 * 86400);
        let e = parse_time("--until", "yesterday-ish", 0).unwrap_err().to_string();
        assert!(e.contains("--until `yesterday-ish`"), "{e}");
    }

    #[test]
    fn json_has_full_ids_rfc3339_and_numbers() {
        let s = SessionInfo {
            id: "0193b7e2-aaaa-7000-8000-00000000a1b2".into(),
            started_at: Some(86400),
            command: "ls".into(),
            duration_secs: 2.5,
            size_bytes: 300,
            exit_code: Some(3),
            user: Some("ann".into()),
            host: None,
            cwd: None,
            path: "/r/x.cast".into(),
        };
        let v = to_json(&s);
        assert_eq!(v["id"], "0193b7e2-aaaa-7000-8000-00000000a1b2");
        assert_eq!(v["started_at"], "1970-01-02T00:00:00Z");
        assert_eq!((v["exit_code"].as_i64(), v["size_bytes"].as_u64()), (Some(3), Some(300)));
        assert_eq!(v["duration_secs"].as_f64(), Some(2.5));
    }
}
