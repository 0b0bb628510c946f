//! `ddcoterm-server healthcheck`: one `GET /readyz` over plain HTTP/1.1; healthy only on a 200 answer.
//!
//! The server image has no curl (and needs none): Docker's HEALTHCHECK and Kubernetes exec probes run this.
//! It speaks just enough HTTP for one request on a fresh connection, so it adds no client dependency.

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cli::HealthcheckArgs;

/// Where to ask: `authority` (host:port) and the request path.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub authority: String,
    pub path: String,
}

/// Checks readiness; an `Err` (exit 1) says why the server is not healthy.
pub async fn run(args: &HealthcheckArgs, listen: &str) -> anyhow::Result<()> {
    let timeout = humantime::parse_duration(&args.timeout)
        .with_context(|| format!("--timeout: bad duration {:?}", args.timeout))?;
    let target = match &args.url {
        Some(url) => parse_url(url)?,
        None => Target { authority: loopback_for(listen), path: "/readyz".into() },
    };
    let status = tokio::time::timeout(timeout, ask(&target))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {} within {timeout:?}", target.authority))??;
    if status != 200 {
        bail!("http://{}{} answered {status}", target.authority, target.path);
    }
    println!("healthy: http://{}{} answered 200", target.authority, target.path);
    Ok(())
}

async fn ask(target: &Target) -> anyhow::Result<u16> {
    let mut conn = tokio::net::TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connecting to {}", target.authority))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ddcoterm-server-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    conn.write_all(request.as_bytes()).await.context("sending the request")?;
    // The status line is all that is needed; 1 KiB holds it whatever the server's headers.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = conn.read(&mut buf).await.context("reading the answer")?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    status_of(&head)
}

/// The status code of an HTTP/1.x status line.
pub fn status_of(head: &[u8]) -> anyhow::Result<u16> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => bail!("not an HTTP answer: {:?}", line.chars().take(80).collect::<String>()),
    }
}

/// `http://host:port[/path]`; a URL without a path asks `/readyz`.
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!(
            "--url {url:?}: only http:// is supported (the server speaks plain HTTP; ask it, not its proxy)"
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/readyz"),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("--url {url:?}: needs a host[:port] and no credentials");
    }
    let authority = if has_port(authority) { authority.to_string() } else { format!("{authority}:80") };
    let path = if path == "/" { "/readyz" } else { path };
    Ok(Target { authority, path: path.to_string() })
}

fn has_port(authority: &str) -> bool {
    match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    }
}

/// The configured listen address as something to connect to: a wildcard bind is asked on loopback.
pub fn loopback_for(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_an_authority_and_a_path_or_name_the_problem() {
        let cases = [
            ("http://127.0.0.1:7780", "127.0.0.1:7780", "/readyz"),
            ("http://127.0.0.1:7780/", "127.0.0.1:7780", "/readyz"),
            ("http://localhost:9/healthz", "localhost:9", "/healthz"),
            ("http://sessions.internal", "sessions.internal:80", "/readyz"),
            ("http://[::1]:7780/readyz", "[::1]:7780", "/readyz"),
            ("http://[::1]/readyz", "[::1]:80", "/readyz"),
        ];
        for (url, authority, path) in cases {
            assert_eq!(
                parse_url(url).unwrap(),
                Target { authority: authority.into(), path: path.into() },
                "{url}"
            );
        }
        for bad in ["https://x:1", "127.0.0.1:7780", "http://", "http://u:p@x:1/readyz"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("--url"), "{bad}: {e}");
        }
    }

    #[test]
    fn wildcard_listen_addresses_are_asked_on_loopback() {
        assert_eq!(loopback_for("0.0.0.0:7780"), "127.0.0.1:7780");
        assert_eq!(loopback_for("[::]:7780"), "[::1]:7780");
        assert_eq!(loopback_for("10.0.0.5:7780"), "10.0.0.5:7780");
    }

    #[test]
    fn status_lines_give_their_code_and_anything_else_is_refused() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n").unwrap(), 200);
        assert_eq!(status_of(b"HTTP/1.0 503 Service Unavailable\r\n").unwrap(), 503);
        assert!(status_of(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(status_of(b"").is_err());
    }
}
