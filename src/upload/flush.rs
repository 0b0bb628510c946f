//! Draining at the end of a command, and the background flusher that takes over what is left: the user's
//! command waits at most `spool.flush_timeout`, and not at all once a destination refuses connections.
//!
//! The background flusher is `ddcoterm spool flush --background`, spawned detached (its own session, stdio
//! on /dev/null) when records are left; one at a time per spool, through [`BackgroundLock`].

use super::Uploader;
use crate::config::Loaded;
use crate::spool::DrainReport;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The lock file a background flush holds in the spool directory.
pub const LOCK_FILE: &str = "flush.lock";

/// What [`Uploader::finish`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    pub drain: DrainReport,
    /// Records written for a destination this process cannot send to, with the reason.
    pub kept: usize,
    pub kept_why: Option<String>,
    /// True when the wait was cut short: the session server refused the connection or the token.
    pub unreachable: bool,
    /// True when a background flush was started for what is left.
    pub background: bool,
}

impl FinishReport {
    /// This process's records left in the spool.
    pub fn left(&self) -> usize {
        self.drain.pending + self.drain.permanent + self.kept
    }

    /// True when the user should be told something (records left behind).
    pub fn needs_attention(&self) -> bool {
        self.left() > 0
    }
}

impl std::fmt::Display for FinishReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.drain.pending + self.drain.permanent > 0 {
            parts.push(self.drain.to_string());
        }
        if self.kept > 0 {
            parts.push(format!(
                "{} record(s) kept in the spool, not sent: {}",
                self.kept,
                self.kept_why.as_deref().unwrap_or("no destination configured")
            ));
        }
        if parts.is_empty() {
            parts.push("all records delivered".into());
        }
        write!(f, "{}", parts.join("; "))?;
        if self.background {
            write!(f, "; sending continues in the background")?;
        }
        Ok(())
    }
}

/// Drains `up`'s sender until `deadline`, stopping early when a destination is unreachable; starts the
/// background flusher when records are left.
pub(super) fn finish(up: &Uploader, deadline: Instant) -> FinishReport {
    let sender = up.sender.lock().ok().and_then(|mut g| g.take());
    let mut rep = FinishReport::default();
    if let Some(s) = sender {
        let deliver = up.deliver.clone();
        rep.drain = s.drain_while(deadline, &|| !deliver.stalled());
        rep.unreachable = up.deliver.stalled();
    }
    let kept = up.kept.lock().map(|k| k.clone()).unwrap_or_default();
    rep.kept = kept.len();
    if rep.kept > 0 {
        let mut why = Vec::new();
        if let Some(w) = &up.deliver.no_server {
            why.push(w.clone());
        }
        if let Some(w) = &up.deliver.no_datadog {
            if kept.iter().any(|k| super::route::destination(k) == Some(super::Destination::Datadog)) {
                why.push(w.clone());
            }
        }
        rep.kept_why = Some(if why.is_empty() { "no destination configured".into() } else { why.join("; ") });
    }
    // Only what a destination may still take is worth a background run.
    if rep.drain.pending > 0 {
        if let Some(f) = &up.flusher {
            rep.background = f.spawn();
        }
    }
    rep
}

/// The destinations `ddcoterm spool flush` sends to, or why nothing can be sent (neither the session server
/// nor Datadog can be set up: every reason, joined).
pub fn flush_deliverer(loaded: &Loaded) -> Result<super::Deliverer, String> {
    let d = super::deliverer(loaded, crate::datadog::ClientOptions::default(), Default::default());
    if d.server.is_none() && d.datadog.is_none() {
        let why: Vec<&str> =
            [d.no_server.as_deref(), d.no_datadog.as_deref()].into_iter().flatten().collect();
        return Err(why.join("; "));
    }
    Ok(d)
}

/// Starts `ddcoterm spool flush --background` for a spool.
#[derive(Debug, Clone)]
pub struct Flusher {
    exe: PathBuf,
    spool_dir: PathBuf,
}

impl Flusher {
    /// The current binary, unless `spool.background_flush` is off.
    pub fn for_loaded(loaded: &Loaded) -> Option<Flusher> {
        if !loaded.settings.spool.background_flush {
            return None;
        }
        let exe = std::env::current_exe().ok()?;
        // Only the real binary: a test harness or another program embedding the library has no `spool` command.
        if exe.file_name().is_none_or(|n| n != "ddcoterm") {
            return None;
        }
        Some(Flusher { exe, spool_dir: super::spool_dir(loaded) })
    }

    /// Spawns the flusher detached unless one already runs; true when one runs now. It inherits the
    /// environment (HOME, `DDCOTERM_*`), so it loads the same configuration.
    pub fn spawn(&self) -> bool {
        if BackgroundLock::held(&self.spool_dir) {
            return true;
        }
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(["spool", "flush", "--background"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        match cmd.spawn() {
            // Not waited for: it outlives this process; init reaps it.
            Ok(_child) => true,
            Err(e) => {
                tracing::warn!("cannot start the background flush ({e}); `ddcoterm spool flush` sends later");
                false
            }
        }
    }
}

/// The one-at-a-time lock of background flushes in a spool directory (an advisory lock, released when its
/// holder exits, however it exits).
pub struct BackgroundLock {
    _file: std::fs::File,
}

impl BackgroundLock {
    /// Takes the lock, or `None` when another flush holds it.
    pub fn try_take(spool_dir: &Path) -> std::io::Result<Option<BackgroundLock>> {
        use fs4::fs_std::FileExt;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(spool_dir.join(LOCK_FILE))?;
        match file.try_lock_exclusive() {
            Ok(true) => Ok(Some(BackgroundLock { _file: file })),
            Ok(false) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when a flush holds the lock now.
    pub fn held(spool_dir: &Path) -> bool {
        matches!(Self::try_take(spool_dir), Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_background_flush_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let first = BackgroundLock::try_take(d.path()).unwrap();
        assert!(first.is_some());
        assert!(BackgroundLock::held(d.path()));
        drop(first);
        assert!(!BackgroundLock::held(d.path()));
    }

    #[test]
    fn reports_say_what_is_left_and_why() {
        let r = FinishReport { kept: 2, kept_why: Some("no API key".into()), ..Default::default() };
        assert!(r.needs_attention());
        assert!(r.to_string().contains("2 record(s) kept") && r.to_string().contains("no API key"));
        assert!(!FinishReport::default().needs_attention());
    }
}
