//! Health of the spool for `ddcoterm doctor`: its mode, records whose credentials or payload were refused,
//! dead letters, the age of the oldest waiting record and records dropped for lack of room.

use super::{now_ms, Spool};
use crate::model::{Finding, Verdict};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Waiting longer than this is worth a warning: the destinations have not answered for an hour.
const OLD: Duration = Duration::from_secs(3600);

/// Reads the spool at `dir` (without creating it) and says what needs attention.
pub fn check(dir: &Path, max_bytes: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(md) = std::fs::metadata(dir) else {
        out.push(Finding::ok("spool", format!("{} not created yet (nothing waits)", dir.display())));
        return out;
    };
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push(Finding::fail(
            "spool",
            format!(
                "{} is mode {mode:o}: recordings would be readable by others; run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ),
        ));
    }
    let spool = match Spool::open(dir, max_bytes) {
        Ok(s) => s,
        Err(e) => {
            out.push(Finding::fail("spool", e.to_string()));
            return out;
        }
    };
    let entries = match spool.entries() {
        Ok(e) => e,
        Err(e) => {
            out.push(Finding::fail("spool", e.to_string()));
            return out;
        }
    };
    let creds: Vec<_> = entries
        .iter()
        .filter(|e| e.state.as_ref().is_some_and(|s| matches!(s.status, Some(401 | 403))))
        .collect();
    if let Some(last) = creds.last().and_then(|e| e.state.as_ref()) {
        out.push(Finding::fail(
            "spool",
            format!(
                "{} record(s) wait because their credentials were refused (last: {}); nothing is discarded: fix the token or key, then `ddcoterm spool flush`",
                creds.len(),
                last.last_error
            ),
        ));
    }
    match spool.dead_letters() {
        Ok(dead) if !dead.is_empty() => out.push(Finding::warn(
            "spool",
            format!(
                "{} dead letter(s) refused for good (last: {}); `ddcoterm spool status` lists them",
                dead.len(),
                dead.last().map(|d| d.state.last_error.as_str()).unwrap_or_default()
            ),
        )),
        Ok(_) => {}
        Err(e) => out.push(Finding::fail("spool", e.to_string())),
    }
    let refused: Vec<_> = entries.iter().filter(|e| e.state.as_ref().is_some_and(|s| s.permanent)).collect();
    if let Some(last) = refused.last().and_then(|e| e.state.as_ref()) {
        out.push(Finding::fail(
            "spool",
            format!(
                "{} record(s) refused (last: {}); fix it, then `ddcoterm spool flush`",
                refused.len(),
                last.last_error
            ),
        ));
    }
    let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    out.push(match entries.iter().map(|e| e.id.created_ms()).min() {
        None => Finding::ok("spool", format!("{} is empty", dir.display())),
        Some(oldest) => {
            let age = Duration::from_millis(now_ms().saturating_sub(oldest));
            Finding::new(
                if age > OLD { Verdict::Warn } else { Verdict::Ok },
                "spool",
                format!(
                    "{} record(s) pending ({bytes} bytes), oldest {} old",
                    entries.len(),
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                ),
            )
        }
    });
    let dropped = spool.dropped().len();
    if dropped > 0 {
        out.push(Finding::warn(
            "spool",
            format!("{dropped} record(s) were dropped because spool.max_bytes was reached"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Class, Record};

    #[test]
    fn missing_empty_open_and_pending_spools() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("spool");
        let f = check(&dir, 1 << 20);
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("not created yet"), "{f:?}");
        let spool = Spool::open(&dir, 1 << 20).unwrap();
        let f = check(&dir, 1 << 20);
        assert!(f.iter().all(|f| f.verdict == Verdict::Ok) && f[0].detail.ends_with("is empty"), "{f:?}");
        spool.enqueue(Record::new("logs", Class::Normal, b"x".to_vec())).unwrap();
        let f = check(&dir, 1 << 20);
        assert!(f.iter().any(|f| f.detail.starts_with("1 record(s) pending")), "{f:?}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = check(&dir, 1 << 20);
        assert!(f.iter().any(|f| f.verdict == Verdict::Fail && f.detail.contains("chmod 700")), "{f:?}");
    }
}
