//! The boot HTTP port: per-machine iPXE scripts, the iPXE binaries and the
//! artifacts directory (kernels, initrds), with one `WebEvent` per request for
//! the boot timeline. Connections are `super::http1`'s.
//!
//! Routes:
//! - `GET /auto.ipxe`: the script of the machine at the TCP peer's address;
//! - `GET /{mac}/auto.ipxe`: the script of the machine with that MAC;
//! - `GET|HEAD /artifacts/{*path}`: files under `artifacts_dir`, with ranges;
//! - `GET|HEAD /{file}`: the iPXE binaries in `binaries_dir` (the TFTP root).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, BodyDataStream, Bytes, HttpBody as _};
use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{header, Extensions, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_lite::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::http1::SendFile;
use super::script::{render_known, Known};
use super::{MachineInfo, Profile};
use crate::filecache::FileCache;
use crate::frame::{format_mac, parse_mac};

pub struct WebState {
    /// Kernels and initrds, served under `/artifacts/`.
    pub artifacts_dir: PathBuf,
    /// The iPXE binaries (the TFTP root), served at the top level so HTTP-boot
    /// firmware and chainloads can fetch them too.
    pub binaries_dir: PathBuf,
    /// How machines reach this port, e.g. `http://10.50.0.1:8080`; scripts
    /// point at `{base_url}/artifacts/...`.
    pub base_url: String,
    /// Finds a machine by MAC or by the address it connects from.
    pub lookup: Arc<dyn Fn(Lookup) -> Option<MachineInfo> + Send + Sync>,
    /// Used for machines without a profile of their own, known or not.
    pub default_profile: Option<Arc<Profile>>,
    /// One event per request; sent with `try_send` so a slow consumer costs
    /// events, never requests.
    pub events: mpsc::Sender<WebEvent>,
    /// Where files are opened (by the rules the TFTP server's are).
    pub cache: Arc<FileCache>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Mac([u8; 6]),
    Ip(Ipv4Addr),
}

#[derive(Clone, Debug)]
pub struct WebEvent {
    pub peer: SocketAddr,
    /// The machine, when the path names it or its address is known.
    pub mac: Option<[u8; 6]>,
    pub path: String,
    pub status: u16,
    /// Body bytes actually handed to the connection; less than the length
    /// announced when the client went away mid-download (0 for HEAD).
    pub bytes: u64,
}

pub fn router(state: Arc<WebState>) -> Router {
    // `{name}` is one name for both single-segment routes: the router
    // refuses two different parameter names at the same position.
    Router::new()
        .route("/auto.ipxe", get(script_by_ip))
        .route("/{name}/auto.ipxe", get(script_by_mac))
        .route("/artifacts/{*path}", get(artifact))
        .route("/{name}", get(binary))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        // No route reads a body: a request announcing a large one is
        // refused (413) before it is read.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .with_state(state)
}

/// Largest request body accepted (none is ever needed here).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Serves until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    super::http1::serve(listener, router(state), shutdown).await
}

/// The machine a response was about, for the event; set by handlers that
/// know it better than the peer's address does.
#[derive(Clone, Copy)]
struct EventMac([u8; 6]);

fn peer_of(ext: &Extensions) -> SocketAddr {
    // Absent when the router is driven without `serve` (no connection).
    ext.get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0)
}

fn peer_v4(peer: SocketAddr) -> Option<Ipv4Addr> {
    match peer.ip() {
        IpAddr::V4(ip) => Some(ip),
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    }
}

async fn record(State(s): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let peer = peer_of(req.extensions());
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let mac = resp
        .extensions()
        .get::<EventMac>()
        .map(|m| m.0)
        .or_else(|| (s.lookup)(Lookup::Ip(peer_v4(peer)?)).map(|m| m.mac));
    let mut event = WebEvent {
        peer,
        mac,
        path,
        status: resp.status().as_u16(),
        bytes: 0,
    };
    if let Some(len) = resp.body().size_hint().exact() {
        // Scripts, errors, HEAD: the whole body is already in memory.
        event.bytes = len;
        emit(&s.events, event);
        return resp;
    }
    // A file: count what is sent and report when the body is done with, so
    // an aborted download shows as such. Sent by sendfile, the connection
    // counts into the offer's counter and drops the body after; streamed,
    // this body counts into the same one. Content-Length stays in the
    // headers, so the framing does not change.
    let sent = resp
        .extensions()
        .get::<SendFile>()
        .map(|f| f.sent.clone())
        .unwrap_or_default();
    let (parts, body) = resp.into_parts();
    let counted = Counted {
        inner: body.into_data_stream(),
        sent,
        event: Some(event),
        events: s.events.clone(),
    };
    Response::from_parts(parts, Body::from_stream(counted))
}

fn emit(events: &mpsc::Sender<WebEvent>, event: WebEvent) {
    if events.try_send(event).is_err() {
        tracing::debug!("boot web event dropped: receiver full or gone");
    }
}

struct Counted {
    inner: BodyDataStream,
    sent: Arc<AtomicU64>,
    event: Option<WebEvent>,
    events: mpsc::Sender<WebEvent>,
}

impl Stream for Counted {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(mut event) = self.event.take() {
            event.bytes = self.sent.load(Ordering::Relaxed);
            emit(&self.events, event);
        }
    }
}

async fn script_by_ip(State(s): State<Arc<WebState>>, req: Request) -> Response {
    let peer = peer_of(req.extensions());
    let Some(ip) = peer_v4(peer) else {
        return not_found(format!(
            "no machine at {}: only IPv4 peers are looked up; use /<mac>/auto.ipxe",
            peer.ip()
        ));
    };
    let found = (s.lookup)(Lookup::Ip(ip));
    script_for(&s, found, None, Some(ip))
}

async fn script_by_mac(State(s): State<Arc<WebState>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(mac) = parse_mac(&name) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "`{name}` is not a MAC address (like 52:54:00:00:00:01 or 52-54-00-00-00-01)\n"
            ),
        )
            .into_response();
    };
    let found = (s.lookup)(Lookup::Mac(mac));
    script_for(&s, found, Some(mac), None)
}

/// `path_mac`: the MAC the URL named; `peer_ip`: the address the request
/// came from, when it identified the machine (the `/auto.ipxe` route).
fn script_for(
    s: &WebState,
    found: Option<MachineInfo>,
    path_mac: Option<[u8; 6]>,
    peer_ip: Option<Ipv4Addr>,
) -> Response {
    let (known, profile) = match &found {
        Some(m) => {
            let known = Known {
                mac: Some(m.mac),
                ip: m.ip.or(peer_ip),
                hostname: m.hostname.as_deref(),
            };
            let Some(profile) = m.profile.as_ref().or(s.default_profile.as_ref()) else {
                return with_mac(
                    not_found(format!(
                        "no boot profile for {}: add `profile = ...` to its reservation or set boot.default_profile",
                        format_mac(&m.mac)
                    )),
                    Some(m.mac),
                );
            };
            (known, profile)
        }
        None => {
            let known = Known {
                mac: path_mac,
                ip: peer_ip,
                hostname: None,
            };
            let Some(profile) = s.default_profile.as_ref() else {
                let who = match (path_mac, peer_ip) {
                    (Some(mac), _) => format_mac(&mac),
                    (None, Some(ip)) => ip.to_string(),
                    (None, None) => "this machine".to_owned(),
                };
                return with_mac(
                    not_found(format!(
                        "unknown machine {who}: no reservation matches it and boot.default_profile is not set"
                    )),
                    path_mac,
                );
            };
            (known, profile)
        }
    };
    let script = render_known(profile, &known, &s.base_url);
    let resp = (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            // Per machine and changing with its reservation: never cached.
            (header::CACHE_CONTROL, "no-store"),
        ],
        script,
    )
        .into_response();
    with_mac(resp, known.mac)
}

fn with_mac(mut resp: Response, mac: Option<[u8; 6]>) -> Response {
    if let Some(mac) = mac {
        resp.extensions_mut().insert(EventMac(mac));
    }
    resp
}

fn not_found(reason: String) -> Response {
    // The operator reads this in the server log; curl users in the body.
    tracing::warn!("boot script: {reason}");
    (StatusCode::NOT_FOUND, reason + "\n").into_response()
}

async fn artifact(
    State(s): State<Arc<WebState>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> Response {
    serve_file(&s, &s.artifacts_dir, &path, req).await
}

async fn binary(
    State(s): State<Arc<WebState>>,
    UrlPath(name): UrlPath<String>,
    req: Request,
) -> Response {
    // One segment only: the binaries are a flat directory.
    if name.contains('/') {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve_file(&s, &s.binaries_dir, &name, req).await
}

async fn serve_file(s: &WebState, root: &Path, rel: &str, req: Request) -> Response {
    let path = match confine(root, rel) {
        Ok(path) => path,
        Err(status) => return status.into_response(),
    };
    // Sent by sendfile from the page cache: a copy in memory would be idle.
    match s.cache.open_unread(&path).await {
        Ok(file) => super::fileserve::respond(file, req.method(), req.headers()).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        // A symlink swapped in since `confine` looked.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => StatusCode::FORBIDDEN.into_response(),
        Err(e) => {
            tracing::warn!("serving {}: {e}", path.display());
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Resolves the (already percent-decoded) `rel` under `root`, refusing
/// anything that could leave it: `..`, `.`, absolute paths, and symlinks
/// whose target lies outside `root`. Symlinks inside `root` are fine, so an
/// artifacts directory can point `current` at a release.
///
/// The check and the open are not atomic; that matters only to someone who
/// can already write into `root`.
fn confine(root: &Path, rel: &str) -> Result<PathBuf, StatusCode> {
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() {
        return Err(StatusCode::NOT_FOUND);
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(StatusCode::FORBIDDEN);
    }
    let root = root.canonicalize().map_err(|_| StatusCode::NOT_FOUND)?;
    let full = root
        .join(rel)
        .canonicalize()
        .map_err(|_| StatusCode::NOT_FOUND)?;
    if !full.starts_with(&root) {
        return Err(StatusCode::FORBIDDEN);
    }
    if !full.is_file() {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const KNOWN: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const NO_PROFILE: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

    fn debian() -> Arc<Profile> {
        Arc::new(Profile {
            name: "debian".into(),
            kernel: "vmlinuz".into(),
            initrd: Some("initrd.img".into()),
            cmdline: "console=ttyS0".into(),
            script: None,
        })
    }

    fn rescue() -> Arc<Profile> {
        Arc::new(Profile {
            name: "rescue".into(),
            kernel: "rescue/vmlinuz".into(),
            initrd: None,
            cmdline: String::new(),
            script: Some("#!ipxe\necho ${mac} ${ip} ${net0/mac}\n".into()),
        })
    }

    /// Two reservations: KNOWN at 127.0.0.1 with a profile, NO_PROFILE
    /// without one.
    fn lookup(l: Lookup) -> Option<MachineInfo> {
        let known = MachineInfo {
            mac: KNOWN,
            ip: Some(Ipv4Addr::LOCALHOST),
            hostname: Some("node1".into()),
            profile: Some(debian()),
            label: None,
        };
        match l {
            Lookup::Mac(KNOWN) | Lookup::Ip(Ipv4Addr::LOCALHOST) => Some(known),
            Lookup::Mac(NO_PROFILE) => Some(MachineInfo {
                mac: NO_PROFILE,
                ip: None,
                hostname: None,
                profile: None,
                label: None,
            }),
            _ => None,
        }
    }

    struct Server {
        base: String,
        events: mpsc::Receiver<WebEvent>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
        dir: tempfile::TempDir,
        cache: Arc<FileCache>,
    }

    impl Server {
        async fn start(
            lookup: fn(Lookup) -> Option<MachineInfo>,
            default_profile: Option<Arc<Profile>>,
        ) -> Server {
            let dir = tempfile::tempdir().unwrap();
            let artifacts = dir.path().join("artifacts");
            let binaries = dir.path().join("tftp");
            std::fs::create_dir_all(artifacts.join("sub")).unwrap();
            std::fs::create_dir_all(&binaries).unwrap();
            let kernel: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(artifacts.join("vmlinuz"), &kernel).unwrap();
            std::fs::write(artifacts.join("sub/initrd.img"), b"initrd").unwrap();
            std::fs::write(binaries.join("ipxe.efi"), b"MZ-efi").unwrap();
            std::fs::write(dir.path().join("secret"), b"outside").unwrap();
            std::os::unix::fs::symlink(dir.path().join("secret"), artifacts.join("escape"))
                .unwrap();
            std::os::unix::fs::symlink("vmlinuz", artifacts.join("current")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("secret"), binaries.join("escape.efi"))
                .unwrap();

            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (tx, events) = mpsc::channel(64);
            let cache = Arc::new(FileCache::new(
                64 << 20,
                Arc::new(crate::metrics::ServiceCounters::default()),
            ));
            let state = Arc::new(WebState {
                artifacts_dir: artifacts,
                binaries_dir: binaries,
                base_url: base.clone(),
                lookup: Arc::new(lookup),
                default_profile,
                events: tx,
                cache: cache.clone(),
            });
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(serve(listener, state, shutdown.clone()));
            Server {
                base,
                events,
                shutdown,
                task,
                dir,
                cache,
            }
        }

        /// Runs curl with `args` then the URL `base + path`; returns
        /// (status, headers, body). `-i` output is split at the blank line.
        async fn curl(&self, args: &[&str], path: &str) -> (u16, String, Vec<u8>) {
            let out = tokio::process::Command::new("curl")
                .args(["-sS", "-i", "--path-as-is", "--max-time", "10"])
                .args(args)
                .arg(format!("{}{path}", self.base))
                .output()
                .await
                .expect("curl runs");
            assert!(out.status.success(), "curl {args:?} {path}: {out:?}");
            let raw = out.stdout;
            let split = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("header end");
            let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
            let status = head[9..12].parse().unwrap();
            (status, head, raw[split + 4..].to_vec())
        }

        async fn event(&mut self) -> WebEvent {
            tokio::time::timeout(Duration::from_secs(5), self.events.recv())
                .await
                .expect("event in time")
                .expect("channel open")
        }

        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap().unwrap();
            drop(self.dir);
        }
    }

    fn text(body: &[u8]) -> &str {
        std::str::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn script_by_mac_path_any_spelling() {
        let mut s = Server::start(lookup, None).await;
        let expected = format!(
            "#!ipxe\nkernel {0}/artifacts/vmlinuz initrd=initrd.img console=ttyS0\n\
             initrd {0}/artifacts/initrd.img\nboot\n",
            s.base
        );
        for path in [
            "/52:54:00:00:00:01/auto.ipxe",
            "/52-54-00-00-00-01/auto.ipxe",
        ] {
            let (status, head, body) = s.curl(&[], path).await;
            assert_eq!(status, 200, "{path}");
            assert!(head.contains("content-type: text/plain"), "{head}");
            assert_eq!(text(&body), expected);
            let e = s.event().await;
            assert_eq!((e.mac, e.status, e.path.as_str()), (Some(KNOWN), 200, path));
            assert_eq!(e.bytes, expected.len() as u64);
            assert_eq!(e.peer.ip(), Ipv4Addr::LOCALHOST);
        }
        let (status, _, body) = s.curl(&[], "/52-54-00-00-00-0A/auto.ipxe").await;
        assert_eq!(status, 404, "{}", text(&body));
        let (status, _, body) = s.curl(&[], "/not-a-mac/auto.ipxe").await;
        assert_eq!(status, 400);
        assert!(text(&body).contains("not a MAC address"));
        s.stop().await;
    }

    #[tokio::test]
    async fn script_by_peer_ip() {
        let mut s = Server::start(lookup, None).await;
        let (status, head, body) = s.curl(&[], "/auto.ipxe").await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/plain"), "{head}");
        assert!(
            text(&body).starts_with("#!ipxe\nkernel "),
            "{}",
            text(&body)
        );
        let e = s.event().await;
        assert_eq!((e.mac, e.status), (Some(KNOWN), 200));
        // HEAD gets the same length and no body.
        let (status, head, body) = s.curl(&["-I"], "/auto.ipxe").await;
        assert_eq!(status, 200);
        assert!(body.is_empty());
        let _ = s.event().await;
        let got = s.curl(&[], "/auto.ipxe").await.2.len();
        assert!(head.contains(&format!("content-length: {got}")), "{head}");
        s.stop().await;
    }

    #[tokio::test]
    async fn missing_profile_is_404_with_reason() {
        let mut s = Server::start(lookup, None).await;
        let (status, _, body) = s.curl(&[], "/52:54:00:00:00:02/auto.ipxe").await;
        assert_eq!(status, 404);
        assert_eq!(
            text(&body),
            "no boot profile for 52:54:00:00:00:02: add `profile = ...` to its reservation \
             or set boot.default_profile\n"
        );
        let e = s.event().await;
        assert_eq!((e.mac, e.status), (Some(NO_PROFILE), 404));
        let (status, _, body) = s.curl(&[], "/52:54:00:00:00:09/auto.ipxe").await;
        assert_eq!(status, 404);
        assert!(text(&body).starts_with("unknown machine 52:54:00:00:00:09"));
        s.stop().await;

        // Nobody is known by address here.
        let s = Server::start(|_| None, None).await;
        let (status, _, body) = s.curl(&[], "/auto.ipxe").await;
        assert_eq!(status, 404);
        assert!(
            text(&body).starts_with("unknown machine 127.0.0.1:"),
            "{}",
            text(&body)
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn default_profile_for_unprofiled_and_unknown_machines() {
        let mut s = Server::start(lookup, Some(rescue())).await;
        // Known, no profile of its own: the default, with what is known.
        let (status, _, body) = s.curl(&[], "/52:54:00:00:00:02/auto.ipxe").await;
        assert_eq!(status, 200);
        assert_eq!(
            text(&body),
            "#!ipxe\necho 52:54:00:00:00:02 ${ip} ${net0/mac}\n"
        );
        assert_eq!(s.event().await.mac, Some(NO_PROFILE));
        // Unknown MAC: the default with the MAC from the path.
        let (status, _, body) = s.curl(&[], "/52:54:00:00:00:09/auto.ipxe").await;
        assert_eq!(status, 200);
        assert_eq!(
            text(&body),
            "#!ipxe\necho 52:54:00:00:00:09 ${ip} ${net0/mac}\n"
        );
        // A profile of its own wins over the default.
        let (_, _, body) = s.curl(&[], "/52:54:00:00:00:01/auto.ipxe").await;
        assert!(text(&body).contains("initrd=initrd.img"));
        s.stop().await;

        // Unknown address: the MAC is left for iPXE, the address is known.
        let mut s = Server::start(|_| None, Some(rescue())).await;
        let (status, _, body) = s.curl(&[], "/auto.ipxe").await;
        assert_eq!(status, 200);
        assert_eq!(text(&body), "#!ipxe\necho ${mac} 127.0.0.1 ${net0/mac}\n");
        assert_eq!(s.event().await.mac, None);
        s.stop().await;
    }

    #[tokio::test]
    async fn artifacts_with_ranges_and_head() {
        let mut s = Server::start(lookup, None).await;
        let (status, head, body) = s.curl(&["-r", "0-99"], "/artifacts/vmlinuz").await;
        assert_eq!(status, 206, "{head}");
        assert_eq!(body.len(), 100);
        assert_eq!(body, (0..100u8).collect::<Vec<_>>());
        assert!(head.contains("content-range: bytes 0-99/4096"), "{head}");
        // Counting the streamed bytes keeps the framing ServeFile chose.
        assert!(head.contains("content-length: 100"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        let e = s.event().await;
        assert_eq!((e.status, e.bytes, e.mac), (206, 100, Some(KNOWN)));
        assert_eq!(e.path, "/artifacts/vmlinuz");

        let (status, head, body) = s.curl(&["-r", "4000-"], "/artifacts/vmlinuz").await;
        assert_eq!((status, body.len()), (206, 96), "{head}");
        assert_eq!(s.event().await.bytes, 96);

        let (status, head, body) = s.curl(&["-I"], "/artifacts/vmlinuz").await;
        assert_eq!(status, 200);
        assert!(head.contains("content-length: 4096"), "{head}");
        assert!(head.contains("accept-ranges: bytes"), "{head}");
        assert!(body.is_empty());
        let e = s.event().await;
        assert_eq!((e.status, e.bytes), (200, 0));

        let (status, _, body) = s.curl(&[], "/artifacts/sub/initrd.img").await;
        assert_eq!((status, text(&body)), (200, "initrd"));
        assert_eq!(s.event().await.bytes, 6);
        // A symlink that stays inside the directory is served.
        let (status, _, body) = s.curl(&[], "/artifacts/current").await;
        assert_eq!((status, body.len()), (200, 4096));
        assert_eq!(s.event().await.bytes, 4096);

        // The last bytes; a range past the end; several ranges (the whole
        // file, not a multipart answer).
        let (status, head, body) = s.curl(&["-r", "-10"], "/artifacts/vmlinuz").await;
        assert_eq!((status, body.len()), (206, 10), "{head}");
        assert_eq!(
            body,
            (4086..4096u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
        );
        assert!(
            head.contains("content-range: bytes 4086-4095/4096"),
            "{head}"
        );
        let (status, head, body) = s.curl(&["-r", "4096-"], "/artifacts/vmlinuz").await;
        assert_eq!((status, body.len()), (416, 0), "{head}");
        assert!(head.contains("content-range: bytes */4096"), "{head}");
        let (status, head, body) = s.curl(&["-r", "0-1,10-11"], "/artifacts/vmlinuz").await;
        assert_eq!((status, body.len()), (200, 4096), "{head}");
        for _ in 0..3 {
            s.event().await;
        }

        let (status, _, _) = s.curl(&[], "/artifacts/nope").await;
        assert_eq!(status, 404);
        let (status, _, _) = s.curl(&[], "/artifacts/sub").await;
        assert_eq!(status, 404);
        s.stop().await;
    }

    /// A file under `artifacts/` larger than the socket buffers, so it
    /// takes many sendfile calls; returns its content.
    fn big_artifact(s: &Server, len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
            .collect();
        std::fs::write(s.dir.path().join("artifacts/big"), &data).unwrap();
        data
    }

    #[tokio::test]
    async fn large_downloads_are_byte_identical() {
        let mut s = Server::start(lookup, None).await;
        let data = big_artifact(&s, 24 << 20);
        let (status, head, body) = s.curl(&[], "/artifacts/big").await;
        assert_eq!(status, 200, "{head}");
        assert!(body == data, "{} bytes differ from the file", body.len());
        assert_eq!(s.event().await.bytes, data.len() as u64);

        let (status, head, body) = s.curl(&["-r", "1000000-9999999"], "/artifacts/big").await;
        assert_eq!(status, 206, "{head}");
        assert!(body == data[1_000_000..10_000_000], "{} bytes", body.len());
        assert_eq!(s.event().await.bytes, 9_000_000);

        let (status, head, body) = s.curl(&["-I"], "/artifacts/big").await;
        assert_eq!(status, 200);
        assert!(
            head.contains(&format!("content-length: {}", 24 << 20)),
            "{head}"
        );
        assert!(body.is_empty());
        assert_eq!(s.event().await.bytes, 0);
        // Sent from the page cache: no copy was made in memory, though
        // the file fits the budget.
        assert_eq!(s.cache.used(), 0);
        s.stop().await;
    }

    #[tokio::test]
    async fn an_aborted_download_counts_what_was_sent() {
        let mut s = Server::start(lookup, None).await;
        let len = 64 << 20;
        big_artifact(&s, len);
        let addr = s.base.strip_prefix("http://").unwrap().parse().unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(64 * 1024).unwrap();
        let mut c = sock.connect(addr).await.unwrap();
        c.write_all(b"GET /artifacts/big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < 1 << 20 {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {got} bytes");
            got += n;
        }
        drop(c);
        let e = s.event().await;
        assert_eq!((e.status, e.path.as_str()), (200, "/artifacts/big"));
        // What the client read, and at most what both sockets' buffers
        // held besides (about 4 MB here): far from the whole file.
        assert!(
            e.bytes >= got as u64 && e.bytes < len as u64 / 4,
            "{} of {len} bytes counted, {got} read",
            e.bytes
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn conditional_requests_and_changed_files() {
        let mut s = Server::start(lookup, None).await;
        let (status, head, _) = s.curl(&["-I"], "/ipxe.efi").await;
        assert_eq!(status, 200);
        let mtime = std::fs::metadata(s.dir.path().join("tftp/ipxe.efi"))
            .and_then(|m| m.modified())
            .unwrap();
        let modified = httpdate::fmt_http_date(mtime);
        assert!(
            head.contains(&format!("last-modified: {}", modified.to_lowercase())),
            "{head}"
        );
        let since = format!("if-modified-since: {modified}");
        let (status, _, body) = s.curl(&["-H", &since], "/ipxe.efi").await;
        assert_eq!((status, body.len()), (304, 0));
        let older = "if-modified-since: Thu, 01 Jan 1970 00:00:00 GMT";
        let (status, _, body) = s.curl(&["-H", older], "/ipxe.efi").await;
        assert_eq!((status, text(&body)), (200, "MZ-efi"));
        let unmodified = "if-unmodified-since: Thu, 01 Jan 1970 00:00:00 GMT";
        let (status, _, _) = s.curl(&["-H", unmodified], "/ipxe.efi").await;
        assert_eq!(status, 412);

        // Rewritten on disk (a clock tick later): the new content.
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(s.dir.path().join("tftp/ipxe.efi"), b"MZ-new").unwrap();
        let (status, _, body) = s.curl(&[], "/ipxe.efi").await;
        assert_eq!((status, text(&body)), (200, "MZ-new"));
        for _ in 0..5 {
            s.event().await;
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn connections_are_kept_alive() {
        let s = Server::start(lookup, None).await;
        let url = |p: &str| format!("{}{p}", s.base);
        let out = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "-v",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
            ])
            .args([
                url("/ipxe.efi"),
                url("/artifacts/vmlinuz"),
                url("/ipxe.efi"),
            ])
            .output()
            .await
            .expect("curl runs");
        assert!(out.status.success(), "{out:?}");
        let log = String::from_utf8_lossy(&out.stderr);
        // One connection for the three downloads.
        assert_eq!(log.matches("Connected to").count(), 1, "{log}");
        assert_eq!(log.matches("< HTTP/1.1 200").count(), 3, "{log}");
        s.stop().await;
    }

    #[tokio::test]
    async fn binaries_served_flat() {
        let mut s = Server::start(lookup, None).await;
        let (status, _, body) = s.curl(&[], "/ipxe.efi").await;
        assert_eq!((status, text(&body)), (200, "MZ-efi"));
        let e = s.event().await;
        assert_eq!((e.path.as_str(), e.status, e.bytes), ("/ipxe.efi", 200, 6));
        let (status, head, _) = s.curl(&["-I"], "/ipxe.efi").await;
        assert_eq!(status, 200);
        assert!(head.contains("content-length: 6"), "{head}");
        let (status, _, _) = s.curl(&[], "/undionly.kpxe").await;
        assert_eq!(status, 404);
        s.stop().await;
    }

    #[tokio::test]
    async fn escapes_refused() {
        let mut s = Server::start(lookup, None).await;
        for path in [
            "/artifacts/../../etc/passwd",
            "/artifacts/../secret",
            "/artifacts/%2e%2e/secret",
            "/artifacts/sub/../../secret",
            "/artifacts/%2fetc%2fpasswd",
            "/artifacts//etc/passwd",
            "/artifacts/./vmlinuz",
            "/artifacts/escape",
            "/../etc/passwd",
            "/..",
            "/%2e%2e",
            "/%2e%2e%2fsecret",
            "/%2fetc%2fpasswd",
            "/escape.efi",
        ] {
            let (status, _, body) = s.curl(&[], path).await;
            assert!(
                status == 403 || status == 404,
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                !body.starts_with(b"outside") && !body.starts_with(b"root:"),
                "{path}"
            );
        }
        // Each refusal is an event too, with its status.
        let e = s.event().await;
        assert_eq!(
            (e.path.as_str(), e.status),
            ("/artifacts/../../etc/passwd", 403)
        );
        s.stop().await;
    }

    #[test]
    fn confine_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert!(confine(dir.path(), "f").is_ok());
        assert_eq!(confine(dir.path(), ""), Err(StatusCode::NOT_FOUND));
        assert_eq!(
            confine(dir.path(), "/etc/passwd"),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(confine(dir.path(), "../f"), Err(StatusCode::FORBIDDEN));
        assert_eq!(confine(dir.path(), "./f"), Err(StatusCode::FORBIDDEN));
        assert_eq!(confine(dir.path(), "missing"), Err(StatusCode::NOT_FOUND));
    }
}
