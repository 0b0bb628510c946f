//! TLS on the listener itself (`tls.cert_file` + `tls.key_file`), for servers reached without a proxy that
//! terminates TLS: hosts send recordings and their token only over https (the client refuses plain http to
//! anything but loopback). The certificate is re-read when its files change (cert-manager, ACME renewals), so a
//! rotation needs no restart; handshakes run off the accept loop, so a silent client cannot stall the others.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use axum::serve::Listener;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::connlimit::{Counted, Limited};

/// A client that has not finished its handshake by then is dropped (its connection slot freed).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a handshake may look at the files' change stamps (a `stat` of two small files).
const RELOAD_CHECK: Duration = Duration::from_secs(5);
/// Finished handshakes waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// The PEM certificate chain and private key a server presents.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads and checks the pair: errors name the file (a bad file must stop `serve` at start, not at the first
/// handshake).
pub fn load_certified_key(files: &CertFiles) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(&files.cert).with_context(|| format!("reading {}", files.cert.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate chain: {e:?}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks)", files.cert.display());
    }
    let key_pem = std::fs::read(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e:?}", files.key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("{}: unusable private key: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        anyhow::anyhow!("{} and {} do not belong together: {e}", files.cert.display(), files.key.display())
    })?;
    Ok(certified)
}

/// What identifies a version of the two files without reading them: (mtime, length) of each.
type Stamp = Option<[(SystemTime, u64); 2]>;

fn stamp(files: &CertFiles) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(&files.cert)?, one(&files.key)?])
}

/// Serves the current key pair and swaps in a new one when the files change. A pair that fails to load (a
/// renewal caught half-written) keeps the previous one and is tried again at the next check.
#[derive(Debug)]
struct Reloading {
    files: CertFiles,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
    last_check: Mutex<Instant>,
}

impl Reloading {
    fn new(files: CertFiles) -> anyhow::Result<Reloading> {
        let st = stamp(&files);
        let key = load_certified_key(&files)?;
        Ok(Reloading {
            files,
            current: RwLock::new((Arc::new(key), st)),
            last_check: Mutex::new(Instant::now()),
        })
    }

    fn maybe_reload(&self) {
        {
            let mut last = self.last_check.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < RELOAD_CHECK {
                return;
            }
            *last = Instant::now();
        }
        let now = stamp(&self.files);
        if now.is_none() || now == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return;
        }
        match load_certified_key(&self.files) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(key), now);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS certificate changed but does not load; keeping the previous one")
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.maybe_reload();
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone())
    }
}

/// The rustls configuration: safe default protocol versions (TLS 1.2 and 1.3), HTTP/1.1 (what the server
/// speaks), no client certificates (hosts authenticate with their bearer token).
pub fn server_config(files: CertFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let resolver = Reloading::new(files)?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that yields connections whose TLS handshake is done. Handshakes run in their own tasks (each
/// holding its connection slot from [`Limited`]), so one slow client delays nobody.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<Counted>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    pub fn new(mut inner: Limited, config: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let addr = inner.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (io, peer) = Listener::accept(&mut inner).await;
                if tx.is_closed() {
                    return;
                }
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, addr })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<Counted>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended only if the listener itself is gone: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for crate::connlimit::PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> crate::connlimit::PeerAddr {
        crate::connlimit::PeerAddr(*stream.remote_addr())
    }
}
