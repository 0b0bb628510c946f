//! When `recording.retention` runs: at the start of a recorded session and in `spool flush`, at most once per
//! interval, never in bastion mode, and never over a recording whose records still wait in the spool. What it
//! deletes is `recorder::retention`'s job.

/// Applies `recording.retention` to the local recordings directory when a sweep is due (at most once per
/// `recording.retention.interval`): called when a recorded session starts and by `ddcoterm spool flush`.
/// Never fails its caller: an I/O error is reported on stderr and nothing is deleted.
pub fn sweep_if_due(loaded: &crate::config::Loaded) {
    use crate::recorder::retention;
    if loaded.settings.agent.enabled {
        return; // Bastion mode: the agent holds the evidence, and nothing is evicted.
    }
    let policy = retention::Policy::from_settings(&loaded.settings.recording.retention);
    if policy.is_off() {
        return;
    }
    let dir = loaded.paths.recordings.clone();
    let now = std::time::SystemTime::now();
    if !retention::due(&dir, policy.interval, now) {
        return;
    }
    // Sessions with records still in the spool (waiting or dead letters) keep their recording.
    let spool_dir = crate::upload::spool_dir(loaded);
    let mut pending = std::collections::HashSet::new();
    if spool_dir.is_dir() {
        match crate::spool::Spool::open(&spool_dir, loaded.settings.spool.max_bytes) {
            Ok(spool) => {
                match spool.entries() {
                    Ok(entries) => pending.extend(entries.into_iter().filter_map(|e| e.group)),
                    Err(e) => {
                        eprintln!("ddcoterm: retention: {e}; no recording deleted");
                        return;
                    }
                }
                if let Ok(dead) = spool.dead_letters() {
                    pending.extend(dead.into_iter().filter_map(|d| d.session_id.or(d.group)));
                }
            }
            Err(e) => {
                eprintln!("ddcoterm: retention: {e}; no recording deleted");
                return;
            }
        }
    }
    let upload_pending =
        |id: &str| pending.contains(id) || pending.contains(&crate::upload::kinds::group_of(id));
    let report = retention::sweep(&dir, &policy, now, &upload_pending);
    for line in report.to_string().lines() {
        eprintln!("ddcoterm: {line}");
    }
}
