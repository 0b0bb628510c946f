//! Maps `connection_config.host` + `port` to the base URL of each Datadog API (DESIGN.md §6).

use std::net::IpAddr;

/// Datadog sites we know, by their bare domain (`app.` stripped).
pub const KNOWN_SITES: [&str; 7] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
];

/// Which API a request goes to; each has its own base URL on a real Datadog site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `api.<site>`: events v1, cases, users, validate, our session endpoints.
    Api,
    /// `http-intake.logs.<site>`: `POST /api/v2/logs`.
    Logs,
    /// `event-management-intake.<site>`: Event Management v2 intake (not used by the v1 events we send).
    EventIntake,
}

/// Base URLs (scheme, host, optional port; no trailing slash) resolved from the configured host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The UI host: session links start with it.
    pub app: String,
    pub api: String,
    pub logs: String,
    pub event_intake: String,
    /// True when every API is served by the one configured server (loopback fake, self-hosted server).
    pub single_server: bool,
    /// True for `localhost` and loopback addresses: refused unless `connection_config.allow_loopback`.
    pub loopback: bool,
}

/// Why a host cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("connection_config.host is empty; set it to your Datadog site, e.g. app.datadoghq.com")]
    Empty,
    #[error("connection_config.host `{host}`: {msg}")]
    Invalid { host: String, msg: String },
    #[error("connection_config.host `{host}` is a loopback address, where any local user could run a server that answers for Datadog (approvals included); refused unless the organisation sets connection_config.allow_loopback: true in its system layer")]
    Loopback { host: String },
}

impl Site {
    /// Resolves a site from the UI host as users write it (`https://app.datadoghq.eu`, `us5.datadoghq.com`,
    /// `datadoghq.eu` from `DD_SITE`, `http://127.0.0.1:8126`). Keys travel in headers, so plain `http` is only
    /// accepted for loopback hosts.
    pub fn resolve(host: &str, port: u16) -> Result<Site, SiteError> {
        let raw = host.trim().trim_end_matches('/');
        if raw.is_empty() {
            return Err(SiteError::Empty);
        }
        let bad = |msg: &str| SiteError::Invalid { host: host.to_string(), msg: msg.to_string() };
        let (scheme, rest) = match raw.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, raw),
        };
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("expected a host name (and optional port), not a URL with a path"));
        }
        let (name, explicit_port) = split_port(rest).map_err(|m| bad(&m))?;
        let name = name.to_ascii_lowercase();
        if name.is_empty() {
            return Err(bad("missing host name"));
        }
        let loopback = name == "localhost"
            || name
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        let scheme = match scheme.as_deref() {
            None if loopback => "http",
            None | Some("https") => "https",
            Some("http") => "http",
            Some(other) => return Err(bad(&format!("unsupported scheme `{other}` (use https)"))),
        };
        if scheme == "http" && !loopback {
            return Err(bad(
                "refusing plain http to a non-loopback host: API keys would travel in clear; use https",
            ));
        }
        let port = explicit_port.unwrap_or(port);
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port_suffix = if port == default_port { String::new() } else { format!(":{port}") };

        let bare = name.strip_prefix("app.").unwrap_or(&name);
        if KNOWN_SITES.contains(&bare) {
            if scheme != "https" {
                return Err(bad("Datadog sites are https only"));
            }
            // us3/us5/ap1/ap2 serve the UI on the site host itself; the others on `app.`.
            let app = if bare.matches('.').count() >= 2 { bare.to_string() } else { format!("app.{bare}") };
            return Ok(Site {
                app: format!("https://{app}{port_suffix}"),
                api: format!("https://api.{bare}{port_suffix}"),
                logs: format!("https://http-intake.logs.{bare}{port_suffix}"),
                event_intake: format!("https://event-management-intake.{bare}{port_suffix}"),
                single_server: false,
                loopback: false,
            });
        }
        if name.contains("datadoghq") || name.contains("ddog-gov") {
            return Err(bad(&format!("unknown Datadog site; known sites: {}", KNOWN_SITES.join(", "))));
        }
        let base = format!("{scheme}://{name}{port_suffix}");
        Ok(Site {
            app: base.clone(),
            api: base.clone(),
            logs: base.clone(),
            event_intake: base,
            single_server: true,
            loopback,
        })
    }

    /// [`Site::resolve`] for the configured connection: a loopback host only with `allow_loopback`.
    pub fn for_connection(conn: &crate::config::settings::ConnectionConfig) -> Result<Site, SiteError> {
        let site = Site::resolve(&conn.host, conn.port)?;
        if site.loopback && !conn.allow_loopback {
            return Err(SiteError::Loopback { host: conn.host.clone() });
        }
        Ok(site)
    }

    /// The base URL for `api`.
    pub fn base(&self, api: Api) -> &str {
        match api {
            Api::Api => &self.api,
            Api::Logs => &self.logs,
            Api::EventIntake => &self.event_intake,
        }
    }
}

fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let parse = |p: &str| p.parse::<u16>().map_err(|_| format!("bad port `{p}`"));
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 host")?;
        let _ = inside;
        let name = &s[..inside.len() + 2];
        return match after.strip_prefix(':') {
            Some(p) => Ok((name, Some(parse(p)?))),
            None if after.is_empty() => Ok((name, None)),
            None => Err(format!("unexpected `{after}` after IPv6 host")),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(parse(p)?))),
        None => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (host, port, app, api, logs, event intake)
    const TABLE: &[(&str, u16, &str, &str, &str, &str)] = &[
        (
            "https://app.datadoghq.com",
            443,
            "https://app.datadoghq.com",
            "https://api.datadoghq.com",
            "https://http-intake.logs.datadoghq.com",
            "https://event-management-intake.datadoghq.com",
        ),
        (
            "app.datadoghq.com",
            443,
            "https://app.datadoghq.com",
            "https://api.datadoghq.com",
            "https://http-intake.logs.datadoghq.com",
            "https://event-management-intake.datadoghq.com",
        ),
        (
            "datadoghq.com",
            443,
            "https://app.datadoghq.com",
            "https://api.datadoghq.com",
            "https://http-intake.logs.datadoghq.com",
            "https://event-management-intake.datadoghq.com",
        ),
        (
            "https://app.datadoghq.eu/",
            443,
            "https://app.datadoghq.eu",
            "https://api.datadoghq.eu",
            "https://http-intake.logs.datadoghq.eu",
            "https://event-management-intake.datadoghq.eu",
        ),
        (
            "datadoghq.eu",
            443,
            "https://app.datadoghq.eu",
            "https://api.datadoghq.eu",
            "https://http-intake.logs.datadoghq.eu",
            "https://event-management-intake.datadoghq.eu",
        ),
        (
            "https://us3.datadoghq.com",
            443,
            "https://us3.datadoghq.com",
            "https://api.us3.datadoghq.com",
            "https://http-intake.logs.us3.datadoghq.com",
            "https://event-management-intake.us3.datadoghq.com",
        ),
        (
            "us5.datadoghq.com",
            443,
            "https://us5.datadoghq.com",
            "https://api.us5.datadoghq.com",
            "https://http-intake.logs.us5.datadoghq.com",
            "https://event-management-intake.us5.datadoghq.com",
        ),
        (
            "HTTPS://AP1.datadoghq.com",
            443,
            "https://ap1.datadoghq.com",
            "https://api.ap1.datadoghq.com",
            "https://http-intake.logs.ap1.datadoghq.com",
            "https://event-management-intake.ap1.datadoghq.com",
        ),
        (
            "ap2.datadoghq.com",
            443,
            "https://ap2.datadoghq.com",
            "https://api.ap2.datadoghq.com",
            "https://http-intake.logs.ap2.datadoghq.com",
            "https://event-management-intake.ap2.datadoghq.com",
        ),
        (
            "app.ddog-gov.com",
            443,
            "https://app.ddog-gov.com",
            "https://api.ddog-gov.com",
            "https://http-intake.logs.ddog-gov.com",
            "https://event-management-intake.ddog-gov.com",
        ),
        (
            "app.datadoghq.com",
            8443,
            "https://app.datadoghq.com:8443",
            "https://api.datadoghq.com:8443",
            "https://http-intake.logs.datadoghq.com:8443",
            "https://event-management-intake.datadoghq.com:8443",
        ),
        (
            "http://127.0.0.1:8126",
            443,
            "http://127.0.0.1:8126",
            "http://127.0.0.1:8126",
            "http://127.0.0.1:8126",
            "http://127.0.0.1:8126",
        ),
        (
            "http://127.0.0.1",
            9000,
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000",
        ),
        (
            "localhost:7000",
            443,
            "http://localhost:7000",
            "http://localhost:7000",
            "http://localhost:7000",
            "http://localhost:7000",
        ),
        (
            "http://[::1]:7001",
            443,
            "http://[::1]:7001",
            "http://[::1]:7001",
            "http://[::1]:7001",
            "http://[::1]:7001",
        ),
        (
            "https://coterm.internal.example",
            443,
            "https://coterm.internal.example",
            "https://coterm.internal.example",
            "https://coterm.internal.example",
            "https://coterm.internal.example",
        ),
    ];

    #[test]
    fn site_table() {
        for (host, port, app, api, logs, ev) in TABLE {
            let s = Site::resolve(host, *port).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(
                (s.app.as_str(), s.api.as_str(), s.logs.as_str(), s.event_intake.as_str()),
                (*app, *api, *logs, *ev),
                "{host}:{port}"
            );
            assert_eq!(s.base(Api::Logs), *logs);
        }
    }

    #[test]
    fn loopback_is_single_server_and_real_sites_are_not() {
        assert!(Site::resolve("http://127.0.0.1:1", 443).unwrap().single_server);
        assert!(!Site::resolve("app.datadoghq.com", 443).unwrap().single_server);
    }

    #[test]
    fn rejects_bad_hosts_with_the_key_named() {
        for (host, needle) in [
            ("", "empty"),
            ("http://app.datadoghq.com", "plain http"),
            ("http://10.0.0.5:8080", "plain http"),
            ("app.datadoghq.cmo", "unknown Datadog site"),
            ("https://app.datadoghq.com/path", "not a URL with a path"),
            ("ftp://x.example", "unsupported scheme"),
            ("127.0.0.1:notaport", "bad port"),
        ] {
            let e = Site::resolve(host, 443).unwrap_err().to_string();
            assert!(e.contains(needle), "{host}: {e}");
            if !host.is_empty() {
                assert!(e.contains("connection_config.host"), "{e}");
            }
        }
    }
}
