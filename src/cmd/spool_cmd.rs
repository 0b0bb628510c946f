//! `ddcoterm spool status|flush`: what waits in the spool and why; send it now.

use super::{context, ui};
use crate::cli::{GlobalArgs, ListFormat, SpoolCommand};
use crate::config::Loaded;
use crate::error::Exit;
use crate::spool::status::{RecordView, Status};
use crate::spool::{self, Entry, FlushOptions, Outcome, Spool};
use crate::upload;

pub fn run(g: &GlobalArgs, c: SpoolCommand) -> anyhow::Result<i32> {
    let loaded = context::load(g)?;
    let spool = upload::open_spool(&loaded)?;
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
            match upload::flush::BackgroundLock::try_take(spool.dir())? {
                Some(_lock) => flush(&loaded, &spool, false),
                None => Ok(0),
            }
        }
    }
}

fn status(spool: &Spool, json: bool) -> anyhow::Result<i32> {
    let v = Status::of(spool)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("spool: {}", v.dir);
    if v.count == 0 {
        println!("empty: nothing waits");
    } else {
        let age = v.oldest_age_ms().map(fmt_age).unwrap_or_default();
        println!(
            "{} record(s), {} (max {}), oldest {age} old",
            v.count,
            ui::size(v.bytes),
            ui::size(v.max_bytes)
        );
        let rows = v.by_kind.iter().map(|(k, c)| [k.clone(), c.count.to_string(), ui::size(c.bytes)]);
        println!("{}", ui::table(&["KIND", "RECORDS", "SIZE"], rows));
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
            let err = r.last_error.as_deref().unwrap_or_default();
            println!("  {} {} ({} attempt(s), {what}): {err}", r.id, r.kind, r.attempts);
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

fn flush(loaded: &Loaded, spool: &Spool, progress: bool) -> anyhow::Result<i32> {
    // Sessions of recorders that died are finished first, so that this flush sends them; retention runs
    // after, so that it sees their records waiting and keeps their recordings.
    eprint!("{}", upload::recovery::sweep(loaded, &upload::recovery::via_spool(spool)));
    crate::guard::retention::sweep_if_due(loaded);
    let total = spool.entries()?.len();
    if total == 0 {
        println!("spool is empty: nothing to send");
        return Ok(0);
    }
    let deliver = upload::flush::flush_deliverer(loaded)
        .map_err(|why| Exit::config(format!("nothing can be sent: {why}")))?;
    let bar = progress.then(|| ui::progress_bar(total as u64, "records"));
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
    if let Some((_, last)) = report.pending.last() {
        anyhow::bail!(Exit::temp_fail(format!(
            "{} record(s) are still waiting (last error: {last}); try again later",
            report.pending.len()
        )));
    }
    Ok(0)
}
