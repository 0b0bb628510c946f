//! `ddcoterm-server serve`: logging, stores, the listener(s), the completer, graceful shutdown.

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::config::Resolved;
use crate::state::AppState;

fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_env("DDCOTERMD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(settings: Resolved) -> anyhow::Result<()> {
    init_logs(settings.json_logs);
    let listener = tokio::net::TcpListener::bind(&settings.raw.listen)
        .await
        .with_context(|| format!("listening on {}", settings.raw.listen))?;
    let addr = listener.local_addr()?;
    // Loaded before anything else starts: a bad certificate or key stops `serve` here, naming the file.
    let tls = match (&settings.raw.tls.cert_file, &settings.raw.tls.key_file) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(crate::tls::CertFiles { cert: cert.clone(), key: key.clone() })?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Held until `serve` returns: the embedded store is this process's alone.
    let data_dir_lock = match settings.raw.database_url {
        None => Some(crate::serve_lock::acquire(&settings.raw.data_dir)?),
        Some(_) => None,
    };
    let meta = crate::backends::open_meta(&settings).await?;
    let objects = crate::backends::open_objects(&settings)?;
    let public = settings.raw.public_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}"));
    let interval = settings.interval;
    let max_connections = settings.raw.limits.max_connections;
    let metrics_listen = settings.raw.metrics_listen.clone();
    let st = AppState::new(meta, objects, settings, public);
    let st = match &data_dir_lock {
        Some(lock) => st.with_session_tails(lock),
        None => st,
    };
    if let Some(m) = metrics_listen {
        let l =
            tokio::net::TcpListener::bind(&m).await.with_context(|| format!("listening on {m} (metrics)"))?;
        tracing::info!(addr = %l.local_addr()?, "metrics listening");
        let app = crate::api::metrics_router(st.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    tokio::spawn(crate::completer::run_forever(st.clone(), interval));
    if st.settings.raw.search.indexer {
        tokio::spawn(crate::indexer::run_forever(st.clone()));
    } else {
        tracing::info!("search indexer off in this replica (search.indexer: false)");
    }
    tokio::spawn(crate::keyframes::run_forever(st.clone()));
    tracing::info!(%addr, public_url = %st.public_url, tls = tls.is_some(), "ddcoterm-server listening");
    // Tests and scripts wait for this line to learn the port of `--listen 127.0.0.1:0`.
    println!("listening on {addr}");
    let listener = crate::connlimit::Limited::new(listener, max_connections);
    // The client address reaches handlers (the sign-in throttle counts failures per address).
    let app = crate::api::router(st.clone()).merge(crate::web::router(st));
    match tls {
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, app.into_make_service_with_connect_info::<crate::connlimit::PeerAddr>())
                .with_graceful_shutdown(shutdown())
                .await?;
        }
        None => {
            axum::serve(listener, app.into_make_service_with_connect_info::<crate::connlimit::PeerAddr>())
                .with_graceful_shutdown(shutdown())
                .await?
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
