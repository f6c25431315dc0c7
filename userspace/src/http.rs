//! The daemon's HTTP endpoint: `/healthz`, `/metrics` (Prometheus),
//! `/api/v1/stats` (JSON, read by `stormboot stats`) and the boot timeline,
//! `/api/v1/machines` and `/api/v1/machines/{mac}`.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use tokio_util::sync::CancellationToken;

use crate::stats::Snapshot;
use crate::timeline::{Machine, Timeline};

/// Produces a fresh snapshot on demand.
pub type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

#[derive(Clone)]
struct Api {
    snapshot: SnapshotFn,
    timeline: Arc<Timeline>,
}

pub fn router(snapshot: SnapshotFn, timeline: Arc<Timeline>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/machines/{mac}", get(machine))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            API_BODY_LIMIT,
        ))
        .with_state(Api { snapshot, timeline })
}

/// Largest request body the API accepts; a larger one is refused (413)
/// before it is read.
pub const API_BODY_LIMIT: usize = 16 * 1024 * 1024;

async fn metrics(State(a): State<Api>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        (a.snapshot)().prometheus(),
    )
}

async fn stats(State(a): State<Api>) -> Json<Snapshot> {
    Json((a.snapshot)())
}

async fn machines(State(a): State<Api>) -> Json<Vec<Machine>> {
    Json(a.timeline.machines())
}

async fn machine(
    State(a): State<Api>,
    Path(mac): Path<String>,
) -> Result<Json<Machine>, (StatusCode, String)> {
    let m = crate::frame::parse_mac(&mac).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("{mac:?} is not a MAC address\n"),
        )
    })?;
    a.timeline
        .machine(m)
        .map(Json)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no events for {mac}\n")))
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshot: SnapshotFn,
    timeline: Arc<Timeline>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(snapshot, timeline))
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
