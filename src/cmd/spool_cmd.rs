//! `ddcoterm spool status|flush`: what waits in the spool and why; send it now.

use super::context;
use crate::cli::{GlobalArgs, ListFormat, SpoolCommand};
use crate::datadog::ClientOptions;
use crate::error::Exit;
use crate::spool::{self, Entry, FlushOptions, Outcome, Spool};
use serde::Serialize;
use std::collections::BTreeMap;

pub fn run(g: &GlobalArgs, c: SpoolCommand) -> anyhow::Result<i32> {
    let loaded = context::load(g)?;
    let spool = crate::upload::open_spool(&loaded)?;
    match c {
        SpoolCommand::Status { format, json } => status(&spool, format.or_json(json) == ListFormat::Json),
        SpoolCommand::Flush { progress, background: false, dead_letters } => {
            if dead_letters {
                let n = spool.requeue_dead()?;
                println!("{n} dead letter(s) put back in the spool");
            }
            flush(&loaded, &spool, progress)
        }
        SpoolCommand::Flush { background: true, .. } => {
            // One background flush per spool; a second one has nothing to add.
            match crate::upload::flush::BackgroundLock::try_take(spool.dir())? {
                Some(_lock) => flush(&loaded, &spool, false),
                None => Ok(0),
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct RecordView {
    id: String,
    kind: String,
    class: &'static str,
    group: Option<String>,
    bytes: u64,
    created_ms: u64,
    attempts: u32,
    permanent: bool,
    status: Option<u16>,
    last_error: Option<String>,
    next_attempt_ms: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
struct KindCount {
    count: usize,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct DeadView {
    id: String,
    kind: String,
    session_id: Option<String>,
    bytes: u64,
    status: Option<u16>,
    /// The receiver's message.
    message: String,
    refused_ms: u64,
}

#[derive(Debug, Serialize)]
struct StatusView {
    dir: String,
    /// Records waiting to be sent.
    count: usize,
    bytes: u64,
    max_bytes: u64,
    oldest_ms: Option<u64>,
    /// Dead letters plus waiting records marked permanent by an earlier version.
    permanent: usize,
    /// Waiting records whose credentials were refused (HTTP 401/403): they wait for a fixed token or key.
    credentials_refused: usize,
    dropped: usize,
    by_kind: BTreeMap<String, KindCount>,
    records: Vec<RecordView>,
    dead_letters: Vec<DeadView>,
}

fn view(spool: &Spool, e: &Entry) -> RecordView {
    let kind = spool.header(e).map(|h| h.kind).unwrap_or_else(|err| format!("? ({err})"));
    let st = e.state.clone();
    RecordView {
        id: e.id.0.clone(),
        kind,
        class: e.class.as_str(),
        group: e.group.clone(),
        bytes: e.bytes,
        created_ms: e.id.created_ms(),
        attempts: st.as_ref().map_or(0, |s| s.attempts),
        permanent: st.as_ref().is_some_and(|s| s.permanent),
        status: st.as_ref().and_then(|s| s.status),
        last_error: st.as_ref().map(|s| s.last_error.clone()),
        next_attempt_ms: st.as_ref().filter(|s| !s.permanent).map(|s| s.next_attempt_ms),
    }
}

fn status(spool: &Spool, json: bool) -> anyhow::Result<i32> {
    let entries = spool.entries()?;
    let records: Vec<RecordView> = entries.iter().map(|e| view(spool, e)).collect();
    let mut by_kind: BTreeMap<String, KindCount> = BTreeMap::new();
    for r in &records {
        let k = by_kind.entry(r.kind.clone()).or_default();
        k.count += 1;
        k.bytes += r.bytes;
    }
    let dead_letters: Vec<DeadView> = spool
        .dead_letters()?
        .into_iter()
        .map(|d| DeadView {
            id: d.id,
            kind: d.kind,
            session_id: d.session_id,
            bytes: d.bytes,
            status: d.state.status,
            message: d.state.last_error,
            refused_ms: d.state.updated_ms,
        })
        .collect();
    let v = StatusView {
        dir: spool.dir().display().to_string(),
        count: records.len(),
        bytes: records.iter().map(|r| r.bytes).sum(),
        max_bytes: spool.max_bytes(),
        oldest_ms: records.iter().map(|r| r.created_ms).min(),
        permanent: records.iter().filter(|r| r.permanent).count() + dead_letters.len(),
        credentials_refused: records.iter().filter(|r| matches!(r.status, Some(401 | 403))).count(),
        dropped: spool.dropped().len(),
        by_kind,
        records,
        dead_letters,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("spool: {}", v.dir);
    if v.count == 0 {
        println!("empty: nothing waits");
    } else {
        let age = v.oldest_ms.map(|t| fmt_age(spool::now_ms().saturating_sub(t))).unwrap_or_default();
        println!(
            "{} record(s), {} (max {}), oldest {age} old",
            v.count,
            super::ui::size(v.bytes),
            super::ui::size(v.max_bytes)
        );
        let rows = v.by_kind.iter().map(|(k, c)| [k.clone(), c.count.to_string(), super::ui::size(c.bytes)]);
        println!("{}", super::ui::table(&["KIND", "RECORDS", "SIZE"], rows));
    }
    if v.dropped > 0 {
        println!(
            "{} record(s) were dropped because the spool was full (see {}/dropped.log)",
            v.dropped, v.dir
        );
    }
    let failed: Vec<&RecordView> = v.records.iter().filter(|r| r.last_error.is_some()).collect();
    if !failed.is_empty() {
        println!("last errors:");
        for r in failed {
            let what = if r.permanent { "refused" } else { "will retry" };
            println!(
                "  {} {} ({} attempt(s), {what}): {}",
                r.id,
                r.kind,
                r.attempts,
                r.last_error.as_deref().unwrap_or_default()
            );
        }
    }
    if v.credentials_refused > 0 {
        println!(
            "{} record(s) wait because their credentials were refused (HTTP 401/403): fix the session server's host token (server.token_file) or the Datadog key; nothing is discarded",
            v.credentials_refused
        );
    }
    if !v.dead_letters.is_empty() {
        println!(
            "{} dead letter(s), refused for good (kept in {}/dead; `ddcoterm spool flush --dead-letters` puts them back once fixed):",
            v.dead_letters.len(),
            v.dir
        );
        for d in &v.dead_letters {
            let session = d.session_id.as_deref().map(|s| format!(" session {s}")).unwrap_or_default();
            println!("  {} {}{session}: {}", d.id, d.kind, d.message);
        }
    }
    Ok(0)
}

fn fmt_age(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

fn flush(loaded: &crate::config::Loaded, spool: &Spool, progress: bool) -> anyhow::Result<i32> {
    // Sessions of recorders that died are finished first, so that this flush sends them.
    let enqueue = |r, j: &mut dyn FnMut(&str) -> std::io::Result<()>| {
        spool.enqueue_journaled(r, j).map(|_| ()).map_err(anyhow::Error::from)
    };
    let recovered = crate::upload::recovery::sweep(loaded, &enqueue);
    eprint!("{recovered}");
    crate::guard::retention::sweep_if_due(loaded);
    let total = spool.entries()?.len();
    if total == 0 {
        println!("spool is empty: nothing to send");
        return Ok(0);
    }
    let deliver = crate::upload::deliverer(loaded, ClientOptions::default(), Default::default());
    if deliver.server.is_none() && deliver.datadog.is_none() {
        let why: Vec<&str> =
            [deliver.no_server.as_deref(), deliver.no_datadog.as_deref()].into_iter().flatten().collect();
        anyhow::bail!(Exit::config(format!("nothing can be sent: {}", why.join("; "))));
    }
    let bar = if progress {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} records {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Some(b)
    } else {
        None
    };
    let on = |_e: &Entry, o: &Outcome| {
        if let Some(b) = &bar {
            match o {
                Outcome::Delivered => b.inc(1),
                Outcome::Failed(f) => b.set_message(format!("(retrying: {})", f.message)),
            }
        }
    };
    if !progress {
        eprintln!("sending {total} record(s)...");
    }
    let report = spool::flush(spool, &deliver, &FlushOptions::default(), &on)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // The same words and numbers as `spool status`.
    println!(
        "delivered {} record(s); {} refused for good (dead letters); {} still waiting",
        report.delivered,
        report.permanent.len(),
        report.pending.len()
    );
    if !report.permanent.is_empty() {
        eprintln!("{} record(s) refused and moved to the dead letters:", report.permanent.len());
        for (id, err) in &report.permanent {
            eprintln!("  {id}: {err}");
        }
        anyhow::bail!(Exit::refused(format!(
            "{} record(s) could not be delivered (permanent error); `ddcoterm spool status` shows them",
            report.permanent.len()
        )));
    }
    if !report.pending.is_empty() {
        let last = report.pending.last().map(|(_, e)| e.clone()).unwrap_or_default();
        anyhow::bail!(Exit::temp_fail(format!(
            "{} record(s) are still waiting (last error: {last}); try again later",
            report.pending.len()
        )));
    }
    Ok(0)
}
