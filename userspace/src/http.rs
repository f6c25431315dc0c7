//! The daemon's HTTP endpoint: `/healthz`, `/metrics` (Prometheus) and
//! `/api/v1/stats` (JSON, read by `stormboot stats`).

use std::sync::Arc;

use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use tokio_util::sync::CancellationToken;

use crate::stats::Snapshot;

/// Produces a fresh snapshot on demand.
pub type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

pub fn router(snapshot: SnapshotFn) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(stats))
        .with_state(snapshot)
}

async fn metrics(State(s): State<SnapshotFn>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s().prometheus(),
    )
}

async fn stats(State(s): State<SnapshotFn>) -> Json<Snapshot> {
    Json(s())
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshot: SnapshotFn,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(snapshot))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A minimal HTTP/1.1 GET for the CLI: the daemon is local, so a client
/// library would be the larger part of the binary for one request.
pub fn fetch(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
        .map_err(|e| anyhow::anyhow!("cannot reach the stormboot daemon at {addr}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP response from {addr}"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        anyhow::bail!("{addr}{path}: {status}");
    }
    Ok(body.to_string())
}
