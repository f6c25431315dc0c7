//! The boot port's HTTP/1.1 connections: requests go to the boot router, and
//! file bodies go from the page cache to the socket with sendfile(2).
//!
//! hyper owns its socket for a connection's whole life, so it cannot let the
//! kernel send a file; this loop parses request heads with `httparse`, calls
//! the router as a tower service, and writes the responses itself. A
//! response offering a [`SendFile`] gets its head written and its bytes moved
//! by the kernel; any other body (scripts, errors) is written as it comes.
//!
//! Kept alive as HTTP/1.1 says (HTTP/1.0 only when asked), pipelined requests
//! answered in order. Request bodies are read when they have a length the
//! router accepts; a larger one is left to the router to refuse (413), and a
//! chunked one is refused here (411): no boot client sends either.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, HttpBody as _};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::http::{Uri, Version};
use axum::response::Response;
use axum::Router;
use bytes::{Buf as _, BytesMut};
use futures_lite::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// Longest request head read; boot clients send a few hundred bytes.
const HEAD_LIMIT: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// What one sendfile call moves at most before the connection yields.
const SLICE: u64 = 512 * 1024;
/// Unsent bytes a connection's socket may hold (TCP_NOTSENT_LOWAT), iPXE's
/// window: more waits in the file, not in the kernel. Most bytes a
/// download's window opens for then go out when the daemon's own sendfile
/// call makes them, on its core, rather than from the queue when the
/// client's ACK is processed, on whichever core took that ACK. On a veth
/// both ends' receive work runs on the sending core, and without the limit
/// the lab's downloads fell, some runs, into doing all the TCP work on the
/// client's core (README, Benchmarks: HTTP alone). On a real link it bounds
/// the kernel memory a thousand downloads pin in unsent queues (autotuned
/// send buffers reach megabytes each).
const NOTSENT_LOWAT: libc::c_int = 256 * 1024;

/// The default `boot.http_backlog`: a rack's machines connecting at once
/// wait in the kernel's queue, not for a SYN retransmission. The kernel caps
/// it at net.core.somaxconn (4096 by default since Linux 5.4).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// A listener on `addr` whose kernel queue holds `backlog` connections not
/// yet accepted. The usual bind takes 128: when more machines connect
/// within one turn of the accept loop, the rest have their SYN dropped and
/// come back after 1 s, or 3, 7, 15 and 31 s when that one is dropped too.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted daemon binds again while its old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(cap) = somaxconn.filter(|&cap| cap < backlog) {
        tracing::warn!(
            "boot.http_backlog = {backlog}, but net.core.somaxconn = {cap} caps it: \
             raise the sysctl for a storm of more than {cap} machines"
        );
    }
    socket.listen(backlog)
}

/// Offered, as a response extension, by a response whose body is bytes of a
/// file: the connection sends them with sendfile(2) and drops the body
/// unread. The body stays a correct stream of the same bytes, so the router
/// is still right under any other server.
#[derive(Clone)]
pub struct SendFile {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
    /// Bytes handed to the socket so far, by whichever path sent them: the
    /// boot timeline's count, read when the body is dropped.
    pub sent: Arc<AtomicU64>,
}

/// Serves `app` on `listener` until `shutdown`, then lets the requests in
/// progress finish (idle connections are closed) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(connection(stream, peer, app.clone(), shutdown.clone()));
            }
            // The peer gave up before it was accepted: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
            // Out of descriptors, most likely: retrying at once would spin.
            Err(e) => {
                tracing::warn!("boot HTTP port: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Socket options of a boot connection.
fn tune(stream: &TcpStream) -> io::Result<()> {
    // Heads and short answers go out at once; a file's head is held back
    // for its first bytes by MSG_MORE instead.
    stream.set_nodelay(true)?;
    let lowat = NOTSENT_LOWAT;
    // SAFETY: the descriptor is the stream's, open for the call; the value
    // is a live c_int of the length given.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const lowat).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut app: Router,
    shutdown: CancellationToken,
) {
    if let Err(e) = tune(&stream) {
        tracing::debug!(%peer, "boot HTTP connection options: {e}");
    }
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        match exchange(&mut stream, peer, &mut app, &mut buf, &shutdown).await {
            Ok(Next::Request) => continue,
            Ok(next) => break next,
            Err(e) => {
                // A client going away mid-answer is ordinary; its download's
                // event tells what it got.
                tracing::debug!(%peer, "boot HTTP connection ended: {e}");
                return;
            }
        }
    };
    if let Next::Close = end {
        linger(&mut stream).await;
    }
}

enum Next {
    Request,
    /// This side ends the connection (its answer said so).
    Close,
    /// The client closed it, or the daemon stops while it is idle.
    Gone,
}

/// One request and its answer; leftover bytes (pipelined requests) stay in
/// `buf` for the next.
async fn exchange(
    stream: &mut TcpStream,
    peer: SocketAddr,
    app: &mut Router,
    buf: &mut BytesMut,
    shutdown: &CancellationToken,
) -> io::Result<Next> {
    let head = loop {
        if !buf.is_empty() {
            match parse_head(buf) {
                Parsed::Head(h) => break h,
                Parsed::Partial if buf.len() < HEAD_LIMIT => {}
                Parsed::Partial => {
                    let why = format!("request head longer than {HEAD_LIMIT} bytes");
                    return refuse(stream, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, &why).await;
                }
                Parsed::Refused(status, why) => return refuse(stream, status, &why).await,
            }
        }
        buf.reserve(4096);
        let read = tokio::select! {
            r = stream.read_buf(buf) => r?,
            // Only between requests: one being read is answered.
            _ = shutdown.cancelled(), if buf.is_empty() => return Ok(Next::Gone),
        };
        if read == 0 {
            return Ok(Next::Gone);
        }
    };
    buf.advance(head.len);
    let mut keep_alive = head.keep_alive;
    let body = if head.body_len > super::web::BODY_LIMIT as u64 {
        // The router refuses it by its Content-Length; its bytes are never
        // read, so nothing after them can be.
        keep_alive = false;
        Body::empty()
    } else {
        let len = head.body_len as usize;
        if buf.len() < len && head.expect_continue {
            send_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n", false).await?;
        }
        while buf.len() < len {
            buf.reserve(len - buf.len());
            if stream.read_buf(buf).await? == 0 {
                return Ok(Next::Gone);
            }
        }
        Body::from(buf.split_to(len).freeze())
    };
    let mut req = head.req.map(|()| body);
    req.extensions_mut().insert(ConnectInfo(peer));
    let is_head = req.method() == Method::HEAD;
    let version = req.version();
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(app, cx))
        .await
        .unwrap_or_else(|e| match e {});
    let resp = app.call(req).await.unwrap_or_else(|e| match e {});
    // A stopping daemon finishes this answer and takes no more.
    let keep_alive = keep_alive && !shutdown.is_cancelled();
    write_response(stream, resp, is_head, version, keep_alive).await?;
    Ok(if keep_alive {
        Next::Request
    } else {
        Next::Close
    })
}

struct Head {
    req: Request<()>,
    /// Bytes of the head in the buffer.
    len: usize,
    body_len: u64,
    keep_alive: bool,
    expect_continue: bool,
}

enum Parsed {
    Head(Box<Head>),
    Partial,
    Refused(StatusCode, String),
}

fn parse_head(buf: &[u8]) -> Parsed {
    let bad = |why: String| Parsed::Refused(StatusCode::BAD_REQUEST, why);
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {MAX_HEADERS} header fields"),
            )
        }
        Err(e) => return bad(format!("malformed request head: {e}")),
    };
    // Complete heads always have all three.
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return bad("malformed request line".into());
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return bad(format!("`{method}` is not a method"));
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return bad(format!("`{target}` is not a request target"));
    };
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for f in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(f.name.as_bytes()),
            HeaderValue::from_bytes(f.value),
        ) else {
            return bad(format!("header field `{}` is malformed", f.name));
        };
        headers.append(name, value);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Parsed::Refused(
            StatusCode::LENGTH_REQUIRED,
            "a request body needs a Content-Length here".into(),
        );
    }
    let mut body_len = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n = v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok());
        match (n, body_len) {
            (Some(n), None) => body_len = Some(n),
            (Some(n), Some(seen)) if n == seen => {}
            // Two lengths are how requests are smuggled past proxies.
            _ => return bad("Content-Length is not one number".into()),
        }
    }
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = !has(header::CONNECTION, "close")
        && (version == Version::HTTP_11 || has(header::CONNECTION, "keep-alive"));
    let expect_continue = version == Version::HTTP_11 && has(header::EXPECT, "100-continue");
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    Parsed::Head(Box::new(Head {
        req,
        len,
        body_len: body_len.unwrap_or(0),
        keep_alive,
        expect_continue,
    }))
}

/// Answers a request that cannot be taken, and ends the connection (where
/// the next request would start is unknown).
async fn refuse(stream: &mut TcpStream, status: StatusCode, why: &str) -> io::Result<Next> {
    let body = format!("{why}\n");
    let mut out = status_line(status);
    push_header(&mut out, "content-type", b"text/plain; charset=utf-8");
    push_header(
        &mut out,
        "content-length",
        body.len().to_string().as_bytes(),
    );
    push_header(&mut out, "connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    send_all(stream, &out, false).await?;
    Ok(Next::Close)
}

async fn write_response(
    stream: &mut TcpStream,
    resp: Response,
    is_head: bool,
    version: Version,
    keep_alive: bool,
) -> io::Result<()> {
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    let mut out = status_line(status);
    for (name, value) in &parts.headers {
        push_header(&mut out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(SystemTime::now());
        push_header(&mut out, "date", now.as_bytes());
    }
    if !keep_alive {
        push_header(&mut out, "connection", b"close");
    } else if version == Version::HTTP_10 {
        push_header(&mut out, "connection", b"keep-alive");
    }
    let bodiless = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        out.extend_from_slice(b"\r\n");
        return send_all(stream, &out, false).await;
    }
    if let Some(file) = parts.extensions.remove::<SendFile>().filter(|f| f.len > 0) {
        out.extend_from_slice(b"\r\n");
        send_all(stream, &out, true).await?;
        let sent = send_file(stream, &file).await;
        // Dropping the body reports the download, with `file.sent`.
        drop(body);
        return sent;
    }
    let in_memory = body.size_hint().exact().is_some_and(|n| n <= 64 * 1024);
    let announced = match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) if !in_memory => v.to_str().ok().and_then(|s| s.parse::<u64>().ok()),
        _ => None,
    };
    let Some(announced) = announced else {
        // Scripts and errors: small, and whole in memory already, so head
        // and body leave in one write.
        let data = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(io::Error::other)?;
        if !parts.headers.contains_key(header::CONTENT_LENGTH) {
            let len = data.len().to_string();
            push_header(&mut out, "content-length", len.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&data);
        return send_all(stream, &out, false).await;
    };
    // A long stream with its length announced: written as it comes.
    out.extend_from_slice(b"\r\n");
    send_all(stream, &out, false).await?;
    let mut written = 0u64;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(io::Error::other)?;
        written += chunk.len() as u64;
        send_all(stream, &chunk, false).await?;
    }
    if written != announced {
        // The client cannot tell where this answer ends: close.
        return Err(io::Error::other(format!(
            "response body had {written} of {announced} bytes"
        )));
    }
    Ok(())
}

fn status_line(status: StatusCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes all of `data`; with `more`, the kernel holds it back to share a
/// packet with what follows (a file head with its first bytes).
async fn send_all(stream: &TcpStream, mut data: &[u8], more: bool) -> io::Result<()> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    while !data.is_empty() {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: the descriptor is the stream's, open for the call, and
            // the pointer and length are those of a live slice.
            let n =
                unsafe { libc::send(stream.as_raw_fd(), data.as_ptr().cast(), data.len(), flags) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(n) => data = &data[n..],
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The file's range straight from the page cache to the socket, counting
/// each call's bytes as they go so an aborted download reports what it got.
async fn send_file(stream: &TcpStream, f: &SendFile) -> io::Result<()> {
    let end = f.offset + f.len;
    let mut offset = f.offset as libc::off_t;
    while (offset as u64) < end {
        // One turn moves at most a slice, then lets the other connections
        // (and the accept loop) run: a call may otherwise refill a whole
        // socket buffer, megabytes, while a new machine waits for its script.
        let want = (end - offset as u64).min(SLICE) as usize;
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (the stream
            // and the file are borrowed), and `offset` is a live `off_t`.
            let n = unsafe {
                libc::sendfile(stream.as_raw_fd(), f.file.as_raw_fd(), &mut offset, want)
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n > 0 && (n as usize) < want {
                // Fewer bytes than asked: the socket's buffer is full. Wait
                // for room as EAGAIN would say, without another call (and
                // another pass over the ACKs queued meanwhile) only to hear
                // it: the bytes that went are counted here.
                f.sent.fetch_add(n as u64, Ordering::Relaxed);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n as u64)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than when it was opened",
                ))
            }
            Ok(n) => {
                f.sent.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Ends a connection this side chose to end without losing the last
/// answer: closing with unread request bytes makes the kernel reset it,
/// and a reset can discard the answer before the client read it. So the
/// write side is shut and what the client still sends is read and dropped,
/// for a second at most.
async fn linger(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 16 * 1024];
    let drain = async { while let Ok(1..) = stream.read(&mut sink).await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    /// A boot connection sends at once and keeps at most NOTSENT_LOWAT
    /// unsent bytes in its socket.
    #[tokio::test]
    async fn a_boot_connection_holds_few_unsent_bytes_and_does_not_wait_for_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        let (stream, _) = accepted.unwrap();
        let read = |opt| {
            let mut v: libc::c_int = -1;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: the descriptor is open; v and len are live and sized.
            let r = unsafe {
                libc::getsockopt(
                    stream.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    opt,
                    (&raw mut v).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0, "{}", io::Error::last_os_error());
            v
        };
        assert_eq!(read(libc::TCP_NOTSENT_LOWAT), 0, "the kernel's default");
        tune(&stream).unwrap();
        assert_eq!(read(libc::TCP_NOTSENT_LOWAT), 256 * 1024);
        assert_eq!(read(libc::TCP_NODELAY), 1);
    }

    /// What the test file holds, and the body its offer carries instead: a
    /// client that gets the first was sent the file by sendfile.
    const IN_FILE: &[u8] = b"sendfile-bytes!";
    const IN_BODY: &[u8] = b"streamed-bytes!";

    struct Server {
        addr: SocketAddr,
        /// Every offer's counter.
        sent: Arc<AtomicU64>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<io::Result<()>>,
        _dir: tempfile::TempDir,
    }

    impl Server {
        async fn start() -> Server {
            Server::serving(IN_FILE, IN_BODY.to_vec()).await
        }

        /// /file offers `in_file` to sendfile, with `in_body` as its body.
        async fn serving(in_file: &[u8], in_body: Vec<u8>) -> Server {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, in_file).unwrap();
            let file = Arc::new(std::fs::File::open(&path).unwrap());
            let sent = Arc::<AtomicU64>::default();
            let offer = SendFile {
                file,
                offset: 0,
                len: in_file.len() as u64,
                sent: sent.clone(),
            };
            let in_body = bytes::Bytes::from(in_body);
            let app = Router::new()
                .route(
                    "/file",
                    get(move || {
                        let offer = offer.clone();
                        let in_body = in_body.clone();
                        async move {
                            let len = in_body.len();
                            let mut r = Response::new(Body::from(in_body));
                            r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
                            r.extensions_mut().insert(offer);
                            r
                        }
                    }),
                )
                .route("/text", get(|| async { "hello" }))
                .route("/echo", post(|body: bytes::Bytes| async move { body }));
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(serve(listener, app, shutdown.clone()));
            Server {
                addr,
                sent,
                shutdown,
                task,
                _dir: dir,
            }
        }

        /// Sends `request` on a new connection and reads until the server
        /// closes it.
        async fn talk(&self, request: &[u8]) -> Vec<u8> {
            let mut c = TcpStream::connect(self.addr).await.unwrap();
            c.write_all(request).await.unwrap();
            let mut raw = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut raw))
                .await
                .expect("the server closes the connection")
                .unwrap();
            raw
        }

        async fn stop(self) {
            self.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("stops in time")
                .unwrap()
                .unwrap();
        }
    }

    #[derive(Debug)]
    struct Answer {
        status: u16,
        /// Lowercased `name: value` lines.
        head: String,
        body: Vec<u8>,
    }

    /// Splits `raw` into one answer per request (`true`: a HEAD, without
    /// body), insisting that nothing is left over.
    fn answers(mut raw: &[u8], heads: &[bool]) -> Vec<Answer> {
        let mut out = Vec::new();
        for &is_head in heads {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(n)) = r.parse(raw) else {
                panic!("no answer in {:?}", String::from_utf8_lossy(raw));
            };
            let mut head = String::new();
            let mut len = 0;
            for f in r.headers.iter() {
                let line = format!("{}: {}\n", f.name, String::from_utf8_lossy(f.value));
                head.push_str(&line.to_lowercase());
                if f.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(f.value).unwrap().parse().unwrap();
                }
            }
            let len = if is_head { 0 } else { len };
            out.push(Answer {
                status: r.code.unwrap(),
                head,
                body: raw[n..n + len].to_vec(),
            });
            raw = &raw[n + len..];
        }
        assert!(
            raw.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(raw)
        );
        out
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_on_one_connection() {
        let s = Server::start().await;
        let raw = s
            .talk(
                b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n\
                  HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /text HTTP/1.1\r\nHost: t\r\n\r\n\
                  POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
                  GET /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .await;
        let a = answers(&raw, &[false, true, false, false, false]);
        assert!(a.iter().all(|a| a.status == 200), "{a:?}");
        assert_eq!(a[0].body, IN_FILE);
        assert!(a[1].head.contains("content-length: 15"), "{a:?}");
        assert_eq!(a[2].body, b"hello");
        assert_eq!(a[3].body, b"abc");
        assert_eq!(a[4].body, IN_FILE);
        assert!(a[4].head.contains("connection: close"), "{a:?}");
        assert!(a[..4].iter().all(|a| !a.head.contains("connection:")));
        // Two GETs sent the file; HEAD sent nothing.
        assert_eq!(s.sent.load(Ordering::Relaxed), 2 * IN_FILE.len() as u64);
        s.stop().await;
    }

    #[tokio::test]
    async fn http10_is_kept_alive_only_when_asked() {
        let s = Server::start().await;
        let a = answers(&s.talk(b"GET /file HTTP/1.0\r\n\r\n").await, &[false]);
        assert_eq!((a[0].status, &a[0].body[..]), (200, IN_FILE));
        assert!(a[0].head.contains("connection: close"), "{a:?}");

        // Asked: the connection stays for a second request.
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        let ask = b"GET /text HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut raw = vec![0u8; 4096];
        for _ in 0..2 {
            c.write_all(ask).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut raw))
                .await
                .unwrap()
                .unwrap();
            let a = answers(&raw[..n], &[false]);
            assert_eq!((a[0].status, &a[0].body[..]), (200, &b"hello"[..]));
            assert!(a[0].head.contains("connection: keep-alive"), "{a:?}");
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn a_body_is_read_after_100_continue() {
        let s = Server::start().await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut interim = [0u8; 25];
        c.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(b"body").await.unwrap();
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).await.unwrap();
        assert_eq!(answers(&raw, &[false])[0].body, b"body");
        s.stop().await;
    }

    #[tokio::test]
    async fn malformed_heads_are_refused_and_others_still_served() {
        let s = Server::start().await;
        // Half a head, never finished: it holds no one else up.
        let mut stalled = TcpStream::connect(s.addr).await.unwrap();
        stalled.write_all(b"GET /text HT").await.unwrap();
        let oversize = format!(
            "GET /text HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(HEAD_LIMIT)
        );
        let many = format!(
            "GET /text HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        for (request, status) in [
            (&b"\x16\x03\x01\x02\x00garbage\r\n\r\n"[..], 400),
            (b"GET /text HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            (
                b"GET /text HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                400,
            ),
            (b"GET /text HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
                411,
            ),
            (oversize.as_bytes(), 431),
            (many.as_bytes(), 431),
        ] {
            let raw = s.talk(request).await;
            let a = answers(&raw, &[false]);
            assert_eq!(
                a[0].status,
                status,
                "{:?}: {a:?}",
                String::from_utf8_lossy(request)
            );
            assert!(a[0].head.contains("connection: close"), "{a:?}");
            let ok = s
                .talk(b"GET /text HTTP/1.1\r\nConnection: close\r\n\r\n")
                .await;
            assert_eq!(answers(&ok, &[false])[0].body, b"hello");
        }
        // The stalled request is still answered when it completes.
        stalled
            .write_all(b"TP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        stalled.read_to_end(&mut raw).await.unwrap();
        assert_eq!(answers(&raw, &[false])[0].body, b"hello");
        s.stop().await;
    }

    /// A rack's machines connecting before the daemon accepts any wait in
    /// the kernel's queue; past the queue a SYN is dropped and its machine
    /// is back only after the retransmission a second later.
    #[tokio::test]
    async fn machines_connecting_at_once_wait_in_the_queue_not_for_a_retransmission() {
        const MACHINES: usize = 400;
        let listener = listen("127.0.0.1:0".parse().unwrap(), DEFAULT_BACKLOG).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: every connection has to be complete in the queue
        // well before the first SYN retransmission (1 s).
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..MACHINES {
            connects.spawn(tokio::time::timeout(
                Duration::from_millis(800),
                TcpStream::connect(addr),
            ));
        }
        let mut held = Vec::new();
        while let Some(r) = connects.join_next().await {
            if let Ok(Ok(stream)) = r.unwrap() {
                held.push(stream);
            }
        }
        assert_eq!(
            held.len(),
            MACHINES,
            "connections waiting for a SYN retransmission"
        );
        drop(listener);
    }

    /// Far more than a socket's buffer, to a reader that pauses: sendfile
    /// fills the buffer, the connection waits for room, and every byte
    /// arrives once, counted once.
    #[tokio::test]
    async fn a_file_larger_than_the_socket_buffer_reaches_a_slow_reader_whole() {
        let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
        // The same bytes as the body: the counter says sendfile sent them.
        let server = Server::serving(&data, data.clone()).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /file HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let body = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(got.starts_with(b"HTTP/1.1 200"));
        assert_eq!(got.len() - body, data.len());
        assert!(got[body..] == data[..], "the body differs from the file");
        assert_eq!(server.sent.load(Ordering::Relaxed), data.len() as u64);
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections() {
        let s = Server::start().await;
        let mut idle = TcpStream::connect(s.addr).await.unwrap();
        idle.write_all(b"GET /text HTTP/1.1\r\n\r\n").await.unwrap();
        let mut raw = vec![0u8; 4096];
        let n = idle.read(&mut raw).await.unwrap();
        assert_eq!(answers(&raw[..n], &[false])[0].body, b"hello");
        // Kept alive, idle: stopping the server ends it.
        s.stop().await;
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
            .await
            .expect("closed by the server")
            .unwrap();
        assert!(rest.is_empty());
    }
}
