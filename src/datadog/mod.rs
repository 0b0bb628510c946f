//! The Datadog HTTP client: sites, auth headers, request payloads and retry classes (knows nothing of the spool).

pub mod client;
pub mod error;
pub mod payload;
pub mod secret;
pub mod site;
pub mod tls;

pub use client::{Client, ClientOptions, ClientSetupError, CurrentUser, Method, Request, Response};
pub use error::{ApiError, Retry};
pub use payload::Call;
pub use secret::Secret;
pub use site::{Api, Site, SiteError};

use crate::config::Settings;

/// Where a viewer can follow a session: `<app host>/terminal-streams/<session-id>`, printed by the recorder at
/// start and end. An unusable host still yields a link built from the raw value, so the line is never lost.
pub fn session_link(settings: &Settings, session_id: &str) -> String {
    let c = &settings.connection_config;
    let app = match Site::resolve(&c.host, c.port) {
        Ok(site) => site.app,
        Err(_) => c.host.trim().trim_end_matches('/').to_string(),
    };
    format!("{app}/terminal-streams/{session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_links() {
        let mut s = Settings::default();
        assert_eq!(session_link(&s, "abc"), "https://app.datadoghq.com/terminal-streams/abc");
        s.connection_config.host = "us5.datadoghq.com".into();
        assert_eq!(session_link(&s, "abc"), "https://us5.datadoghq.com/terminal-streams/abc");
        s.connection_config.host = "http://127.0.0.1:9999".into();
        assert_eq!(session_link(&s, "x"), "http://127.0.0.1:9999/terminal-streams/x");
    }
}
