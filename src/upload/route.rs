//! Which destination a record kind goes to: the session server (recordings and their process events) or
//! Datadog (events, logs, audit). One table, so that writers and the deliverer agree.

use super::kinds::*;

/// A place records are delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `ddcoterm-server` (`server.url`, DESIGN.md §12).
    Server,
    /// Datadog's public APIs (`connection_config`).
    Datadog,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Destination::Server => "the session server",
            Destination::Datadog => "Datadog",
        })
    }
}

/// Where records of `kind` go; `None` for a kind this version does not know (written by a newer ddcoterm).
pub fn destination(kind: &str) -> Option<Destination> {
    match kind {
        KIND_SESSION_CREATE | KIND_SESSION_CHUNK | KIND_SESSION_EVENTS | KIND_SESSION_END => {
            Some(Destination::Server)
        }
        KIND_EVENT | KIND_SESSION_EVENT | KIND_LOGS => Some(Destination::Datadog),
        k if k.starts_with(KIND_AUDIT_PREFIX) => Some(Destination::Datadog),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_destination() {
        for k in [KIND_SESSION_CREATE, KIND_SESSION_CHUNK, KIND_SESSION_EVENTS, KIND_SESSION_END] {
            assert_eq!(destination(k), Some(Destination::Server), "{k}");
        }
        for k in [KIND_EVENT, KIND_SESSION_EVENT, KIND_LOGS, "audit.break_glass"] {
            assert_eq!(destination(k), Some(Destination::Datadog), "{k}");
        }
        assert_eq!(destination("mystery"), None);
    }
}
