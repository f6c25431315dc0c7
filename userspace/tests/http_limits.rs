//! Oversized requests to the boot HTTP port and to the API: a huge header,
//! a flood of headers, a huge URL and a huge body are each refused with a
//! 4xx, on a real TCP connection, and the server goes on serving the
//! requests that follow (and one sent while a huge body is still being
//! refused).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use stormboot::boot::web::{self, WebState};
use stormboot::stats::Snapshot;
use stormboot::timeline::Timeline;
use tokio_util::sync::CancellationToken;

/// Sends `head` then `body_len` bytes of body (stopping when the server
/// stops reading) and returns the response's status code.
fn status_of(addr: SocketAddr, head: &[u8], body_len: usize) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before all of it is sent: a write
    // error here is the refusal, read below.
    let _ = s.write_all(head);
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the status line (and whatever else comes) until the server
    // closes or stops sending.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let line = String::from_utf8_lossy(&resp);
    let code = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    code.unwrap_or_else(|| panic!("no HTTP status in {:?}", line.lines().next()))
}

fn get(addr: SocketAddr, path: &str) -> u16 {
    status_of(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        0,
    )
}

/// Every kind of oversized request to `path` on `addr`, each refused with
/// a 4xx, then `path` still served with 200.
fn refuses_oversized(addr: SocketAddr, path: &str) {
    let huge_header = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let huge_url = format!(
        "GET {path}?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "q".repeat(1 << 20)
    );
    let huge_body = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    let huge_body_on_get = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    for (what, head, body) in [
        ("a 1 MiB header", huge_header, 0),
        ("500 headers", many_headers, 0),
        ("a 1 MiB URL", huge_url, 0),
        ("a 1 GiB body (POST)", huge_body, 8 << 20),
        ("a 1 GiB body (GET)", huge_body_on_get, 8 << 20),
    ] {
        let code = status_of(addr, head.as_bytes(), body);
        assert!(
            (400..500).contains(&code),
            "{path} with {what}: {code}, not a 4xx"
        );
        assert_eq!(get(addr, path), 200, "{path} after {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_http_refuses_oversized_requests_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ipxe.efi"), b"MZ-efi").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (events, mut rx) = tokio::sync::mpsc::channel(16);
    // Drain the events as the daemon would.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let state = Arc::new(WebState {
        artifacts_dir: dir.path().to_path_buf(),
        binaries_dir: dir.path().to_path_buf(),
        base_url: format!("http://{addr}"),
        lookup: Arc::new(|_| None),
        default_profile: None,
        events,
        cache: Arc::new(stormboot::filecache::FileCache::new(
            1 << 20,
            Arc::default(),
        )),
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(web::serve(listener, state, shutdown.clone()));
    tokio::task::spawn_blocking(move || refuses_oversized(addr, "/ipxe.efi"))
        .await
        .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_oversized_requests_and_keeps_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let timeline = Arc::new(Timeline::default());
    let hub = stormboot::dashboard::Hub::new(
        timeline.clone(),
        Arc::new(Snapshot::default),
        Arc::new(|_| Default::default()),
        Vec::new(),
        std::time::Duration::from_secs(60),
    );
    let app = stormboot::api::router(
        stormboot::api::AppState::new(None, Arc::new(Snapshot::default), timeline, hub),
        Default::default(),
    );
    let task = tokio::spawn(stormboot::http::serve_router(
        listener,
        app,
        shutdown.clone(),
    ));
    tokio::task::spawn_blocking(move || {
        refuses_oversized(addr, "/healthz");
        refuses_oversized(addr, "/api/v1/stats");
    })
    .await
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
