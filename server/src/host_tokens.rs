//! Host tokens seen in the last second, so a chunk request (the ingest path's most frequent call) does not
//! read its token's row from the database every time: under saturated ingest that read was one of the
//! three database round trips per chunk. Only host tokens are kept (they write, never read), only while
//! valid, and only for [`TTL`]: a host token revoked from another process (the CLI, another replica) stops
//! being accepted within that second; one revoked in this process (the admin page) at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Role, TokenRow};

/// How long a looked-up host token is trusted without reading it again.
pub const TTL: Duration = Duration::from_secs(1);

/// Most tokens kept: a fleet's bastions, with room; past it the cache starts over.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct HostTokens {
    entries: Mutex<HashMap<String, (TokenRow, Instant)>>,
}

impl HostTokens {
    /// The row of the host token with this hash, if looked up less than [`TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<TokenRow> {
        let entries = self.entries.lock().ok()?;
        let (row, at) = entries.get(hash)?;
        (at.elapsed() < TTL).then(|| row.clone())
    }

    /// Keeps `row` (just read from the database) if it is a valid host token.
    pub fn put(&self, hash: &str, row: &TokenRow) {
        if row.role != Role::Host || row.revoked_at.is_some() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hash.to_string(), (row.clone(), Instant::now()));
        }
    }

    /// Forgets every token: called when this process revokes one.
    pub fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: Role, revoked: bool) -> TokenRow {
        TokenRow {
            id: 1,
            name: "b".into(),
            role,
            host: None,
            created_at: 0,
            last_seen: None,
            revoked_at: revoked.then_some(5),
        }
    }

    #[test]
    fn only_valid_host_tokens_are_kept_and_revocation_here_forgets_them() {
        let c = HostTokens::default();
        c.put("h", &row(Role::Host, false));
        c.put("a", &row(Role::Admin, false));
        c.put("r", &row(Role::Host, true));
        assert!(c.get("h").is_some());
        assert!(c.get("a").is_none(), "reviewer tokens are read every time");
        assert!(c.get("r").is_none(), "a revoked token is never kept");
        c.forget_all();
        assert!(c.get("h").is_none());
    }

    #[test]
    fn an_entry_expires_after_the_ttl() {
        let c = HostTokens::default();
        c.put("h", &row(Role::Host, false));
        if let Ok(mut e) = c.entries.lock() {
            e.get_mut("h").unwrap().1 = Instant::now() - TTL;
        }
        assert!(c.get("h").is_none());
    }
}
