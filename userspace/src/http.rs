//! The daemon's own read handlers (the router is `crate::api::router`): `/healthz`, `/metrics` (Prometheus),
//! `/api/v1/stats` (JSON, read by `stormboot stats`) and the boot timeline,
//! `/api/v1/machines` and `/api/v1/machines/{mac}`.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json, Router,
};
use tokio_util::sync::CancellationToken;

use crate::stats::Snapshot;
use crate::timeline::{Machine, Timeline};

/// Produces a fresh snapshot on demand.
pub type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) snapshot: SnapshotFn,
    pub(crate) timeline: Arc<Timeline>,
}

impl Api {
    pub(crate) fn new(snapshot: SnapshotFn, timeline: Arc<Timeline>) -> Self {
        Api { snapshot, timeline }
    }
}

/// Largest request body the API accepts; a larger one is refused (413)
/// before it is read.
pub const API_BODY_LIMIT: usize = 16 * 1024 * 1024;

#[utoipa::path(get, path = "/healthz", tag = "daemon",
    responses((status = 200, description = "The daemon runs", body = String)))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/metrics", tag = "daemon",
    responses((status = 200, description = "Counters in the Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(a): State<Api>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        (a.snapshot)().prometheus(),
    )
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "daemon",
    responses((status = 200, description = "Counters of both dataplanes and the store", body = Snapshot)))]
pub(crate) async fn stats(State(a): State<Api>) -> Json<Snapshot> {
    Json((a.snapshot)())
}

#[utoipa::path(get, path = "/api/v1/machines", tag = "machines",
    responses((status = 200, description = "Every machine seen, with its boot timeline", body = [Machine])))]
pub(crate) async fn machines(State(a): State<Api>) -> Json<Vec<Machine>> {
    Json(a.timeline.machines())
}

#[utoipa::path(get, path = "/api/v1/machines/{mac}", tag = "machines",
    params(("mac" = String, Path, description = "The machine's MAC address")),
    responses(
        (status = 200, description = "The machine's boot timeline", body = Machine),
        (status = 404, description = "Nothing heard from this MAC", body = crate::api::types::ApiError),
        (status = 422, description = "Not a MAC address", body = crate::api::types::ApiError),
    ))]
pub(crate) async fn machine(
    State(a): State<Api>,
    Path(mac): Path<String>,
) -> Result<Json<Machine>, (StatusCode, Json<crate::api::types::ApiError>)> {
    let err = |status, message: String| {
        (
            status,
            Json(crate::api::types::ApiError {
                error: format!("mac: {message}"),
                field: Some("mac".into()),
            }),
        )
    };
    let m = crate::frame::parse_mac(&mac).ok_or_else(|| {
        err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{mac:?} is not a MAC address"),
        )
    })?;
    a.timeline
        .machine(m)
        .map(Json)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no events for {mac}")))
}

/// Serves `router` (the whole API, see `crate::api::router`) until
/// `shutdown`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
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

/// A minimal HTTP/1.1 request for the CLI: status and body, whatever the
/// status, so the caller can read an error body. `headers` are sent as given.
pub fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
        .map_err(|e| anyhow::anyhow!("cannot reach the stormboot daemon at {addr}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP response from {addr}"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP status line from {addr}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// A chunked body's data (extensions and trailers ignored).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let (Some(data), Some(after)) = (tail.get(..size), tail.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(data);
        rest = after.strip_prefix("\r\n").unwrap_or(after);
    }
    out
}
