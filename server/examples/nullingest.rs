//! Bench-only "null ingest" server: the ingest routes on the same axum/hyper/Tokio stack as
//! `ddcoterm-server`, with no storage, no database and no sync, to measure the ceiling of the HTTP path.
//!
//! `bench/server.sh` drives it with `loadgen --saturate` and prints its MB/s beside `dd` and the real server:
//! what this reaches on the same cores (with the load generator beside it) is the most any storage design
//! could give, so it tells whether a target such as "1.0x dd" is reachable at all. It reads every body (as
//! the server does, up to the same 16 MiB chunk limit), checks the bearer token, and answers with the same
//! JSON shapes; it stores nothing. Never used outside benchmarks.
//!
//! Usage: nullingest [ADDR] (default 127.0.0.1:0); prints `listening on ADDR` and the token `bench`.

use axum::body::{to_bytes, Body};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The server's default `limits.max_chunk_bytes`.
const MAX_BODY: usize = 16 << 20;

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer bench")
}

async fn create(headers: HeaderMap, body: Body) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "token"})));
    }
    let Ok(raw) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": "body"})));
    };
    let id = serde_json::from_slice::<Value>(&raw).ok().and_then(|v| v["id"].as_str().map(str::to_string));
    (StatusCode::CREATED, Json(json!({"id": id, "url": "", "committed_seq": null})))
}

async fn chunk(
    Path((_id, seq)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "token"})));
    }
    if to_bytes(body, MAX_BODY).await.is_err() {
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": "body"})));
    }
    (StatusCode::CREATED, Json(json!({"committed_seq": seq, "state": "live"})))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    // The same runtime shape as `ddcoterm-server serve`.
    let rt = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new()
            .route("/api/v1/sessions", post(create))
            .route("/api/v1/sessions/{id}/chunks/{seq}", put(chunk));
        axum::serve(listener, app).await
    })
}
