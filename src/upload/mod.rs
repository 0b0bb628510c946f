//! The only place that joins the spool to a destination (DESIGN.md §2, §7, §12): the session server gets the
//! recordings (create, chunks, process events, end), Datadog gets events, log batches and audit records.
//!
//! How a session uses it (`guard/session.rs`):
//! 1. `let up = Arc::new(Uploader::new(loaded)?);` — owned by the session, passed down; no global state.
//! 2. `up.session_output(&actions, header, journal)` gives the recorder's [`crate::model::Output`]; it only
//!    writes spool records (never the network); the uploader's sender thread delivers them meanwhile.
//! 3. after `session_end`, `up.finish()` waits at most `spool.flush_timeout` (and not at all once a
//!    destination refuses connections); what is left stays spooled and a background `ddcoterm spool flush
//!    --background` delivers it (`flush.rs`).

pub mod datadog;
pub mod deliver;
pub mod flush;
pub mod health;
pub mod kinds;
pub mod output;
pub mod recovery;
pub mod route;
pub mod server;

pub use datadog::DatadogDeliver;
pub use deliver::{Deliverer, ServerDeliver};
pub use flush::FinishReport;
pub use route::Destination;

use crate::config::Loaded;
use crate::spool::{Record, RecordId, Sender, SenderOptions, Spool};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `spool.dir`, else `~/.ddcoterm/spool`.
pub fn spool_dir(loaded: &Loaded) -> PathBuf {
    loaded.paths.spool.clone()
}

/// Opens the configured spool (creating it 0700).
pub fn open_spool(loaded: &Loaded) -> anyhow::Result<Spool> {
    Ok(Spool::open(spool_dir(loaded), loaded.settings.spool.max_bytes)?)
}

/// `spool.flush_timeout` (parsed when the config was loaded).
pub fn flush_timeout(loaded: &Loaded) -> Duration {
    loaded.settings.spool.flush_timeout.get()
}

/// The configured server's base URL (`server.url`, checked), if any.
pub fn server_url(loaded: &Loaded) -> Option<String> {
    let url = loaded.settings.server.url.as_deref().filter(|u| !u.trim().is_empty())?;
    server::parse_url(url).ok()
}

/// Where a reviewer opens a session: `<server.url>/sessions/<id>`; `None` without a server.
pub fn session_link(loaded: &Loaded, session_id: &str) -> Option<String> {
    server_url(loaded).map(|b| server::session_link(&b, session_id))
}

/// Builds the deliverer of `loaded`'s destinations; a destination that cannot be set up is left out, with the
/// reason (its records stay spooled).
pub fn deliverer(
    loaded: &Loaded,
    dd: crate::datadog::ClientOptions,
    srv: server::ServerOptions,
) -> Deliverer {
    let mut d = Deliverer {
        server_url_set: loaded.settings.server.url.as_deref().is_some_and(|u| !u.trim().is_empty()),
        ..Default::default()
    };
    match server::configured(&loaded.settings.server) {
        Ok(Some((base, token))) => d.server = Some(ServerDeliver::new(base, token, srv)),
        Ok(None) => {}
        Err(e) => d.no_server = Some(e.to_string()),
    }
    match DatadogDeliver::from_loaded(loaded, dd) {
        Ok(x) => d.datadog = Some(x),
        Err(e) => d.no_datadog = Some(format!("{e:#}")),
    }
    d
}

/// This process's handle on the spool and its destinations. Created once by the command that needs it and
/// passed down (a session, its recovery sweep, a break-glass audit); [`Uploader::finish`] ends it.
pub struct Uploader {
    spool: Arc<Spool>,
    deliver: Arc<Deliverer>,
    sender: Mutex<Option<Sender>>,
    /// Records written for a destination this process cannot send to (kept for a later flush).
    kept: Mutex<Vec<String>>,
    flush_timeout: Duration,
    /// The `ddcoterm` binary that runs the background flush (`None`: no background flush, e.g. in tests).
    flusher: Option<flush::Flusher>,
}

impl Uploader {
    /// Opens the spool and sets up the configured destinations; starts the sender when there is one.
    pub fn new(loaded: &Loaded) -> anyhow::Result<Uploader> {
        Self::with_options(loaded, Default::default(), Default::default())
    }

    /// [`Uploader::new`] with explicit client timeouts.
    pub fn with_options(
        loaded: &Loaded,
        dd: crate::datadog::ClientOptions,
        srv: server::ServerOptions,
    ) -> anyhow::Result<Uploader> {
        let flush_timeout = flush_timeout(loaded);
        let spool = Arc::new(open_spool(loaded).context("opening the spool")?);
        let deliver = Arc::new(deliverer(loaded, dd, srv));
        if let Some(why) = &deliver.no_server {
            tracing::warn!("not uploading recordings: {why}");
        }
        let sender = (deliver.server.is_some() || deliver.datadog.is_some()).then(|| {
            Sender::spawn(
                spool.clone(),
                deliver.clone() as Arc<dyn crate::spool::Deliver>,
                SenderOptions::default(),
            )
        });
        Ok(Uploader {
            spool,
            deliver,
            sender: Mutex::new(sender),
            kept: Mutex::new(Vec::new()),
            flush_timeout,
            flusher: flush::Flusher::for_loaded(loaded),
        })
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Whether records for `d` are delivered by this process (records for a destination that is not
    /// configured are not written at all, except audit records).
    pub fn sends_to(&self, d: Destination) -> bool {
        self.deliver.has(d)
    }

    /// Whether the session's records for `d` are written (see [`Deliverer::writes_for`]).
    pub fn writes_for(&self, d: Destination) -> bool {
        self.deliver.writes_for(d)
    }

    /// Why recordings are not uploaded although `server.url` is set (unreadable token file...), if so.
    pub fn server_problem(&self) -> Option<&str> {
        self.deliver.no_server.as_deref()
    }

    /// The configured server's base URL.
    pub fn server_base(&self) -> Option<&str> {
        self.deliver.server.as_ref().map(|s| s.base())
    }

    /// The link of `session_id`: the server's own answer once its create was delivered, else the configured one.
    pub fn session_link(&self, session_id: &str) -> Option<String> {
        let s = self.deliver.server.as_ref()?;
        Some(s.link(session_id).unwrap_or_else(|| server::session_link(s.base(), session_id)))
    }

    /// Spools `record` (durably, before returning) and wakes the sender. Never touches the network.
    pub fn enqueue(&self, record: Record) -> anyhow::Result<RecordId> {
        self.enqueue_with(record, None)
    }

    /// [`Uploader::enqueue`] through `Spool::enqueue_journaled`: `journal` gets the record's file name just
    /// before it is published (session recovery).
    pub fn enqueue_journaled(
        &self,
        record: Record,
        journal: &mut dyn FnMut(&str) -> std::io::Result<()>,
    ) -> anyhow::Result<RecordId> {
        self.enqueue_with(record, Some(journal))
    }

    fn enqueue_with(
        &self,
        record: Record,
        journal: Option<&mut dyn FnMut(&str) -> std::io::Result<()>>,
    ) -> anyhow::Result<RecordId> {
        let sendable = route::destination(&record.kind).is_some_and(|d| self.deliver.has(d));
        let guard = self.sender.lock().map_err(|_| anyhow::anyhow!("uploader state poisoned"))?;
        match (guard.as_ref(), sendable) {
            (Some(s), true) => Ok(match journal {
                Some(j) => s.enqueue_journaled(record, j)?,
                None => s.enqueue(record)?,
            }),
            _ => {
                let kind = record.kind.clone();
                let id = match journal {
                    Some(j) => self.spool.enqueue_journaled(record, j)?.0,
                    None => self.spool.enqueue_noting_drops(record)?.0,
                };
                if let Ok(mut k) = self.kept.lock() {
                    k.push(kind);
                }
                Ok(id)
            }
        }
    }

    /// Waits at most `spool.flush_timeout` for this process's records, and stops waiting as soon as a
    /// destination refuses connections; then stops the sender and starts the background flush for what is
    /// left. Call once, at the end.
    pub fn finish(&self) -> FinishReport {
        flush::finish(self, std::time::Instant::now() + self.flush_timeout)
    }
}
