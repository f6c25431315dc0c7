//! Read-only TFTP server for the boot directory: the first thing a firmware
//! client fetches (OVMF's `ipxe.efi`, a BIOS ROM's `undionly.kpxe`).
//!
//! Speaks RFC 1350 with option negotiation (RFC 2347), `blksize` (RFC 2348,
//! capped by [`TftpOptions::max_block_size`]), `tsize` and `timeout`
//! (RFC 2349) and `windowsize` (RFC 7440). Each transfer runs in its own task
//! on its own ephemeral socket, connected to the client, so the kernel keeps
//! other hosts' packets away from it. The server and its transfers run on a
//! thread of their own (a single-threaded runtime), not among the daemon's
//! other tasks: a transfer waits for the server at every window, and behind
//! a thousand HTTP downloads each of those waits would be the length of the
//! runtime's queue. A window goes out in one sendmmsg(2), its blocks sliced
//! from the shared copy of the file.
//!
//! In a storm: at most `max_transfers` run at once; a request beyond that
//! waits (up to [`TftpOptions::busy_wait`]) for one to finish, and is
//! refused with "server busy" only after that. Firmware retransmits an
//! unanswered RRQ on its own clock (OVMF every 4 s, 6 times), and the
//! retransmissions of a waiting request are ignored, so a short wait turns
//! a burst into a queue. An ERROR, by contrast, ends the boot attempt in both
//! OVMF and iPXE; it is kept for an overload the wait does not absorb, where
//! a clear message in the console beats a silent timeout. Files come from
//! `crate::filecache`, so a thousand transfers of `ipxe.efi` read the disk
//! once, and a transfer holds at most one window of blocks.
//!
//! Why not async-tftp 0.4 (tried, and no longer a dependency): it does negotiate
//! `windowsize`, but a transfer's result is swallowed inside the crate
//! (`ReadRequest::handle` returns `()`), so there is no way to report bytes,
//! duration and outcome per transfer for the boot timeline; it ignores an
//! ERROR sent in answer to its OACK, so each OVMF size probe would leave a
//! task resending the OACK for up to 100 tries x 3 s; and it runs on its own
//! executor with no way to stop transfers in flight at shutdown. The protocol
//! is small enough that owning it is cheaper than working around all three.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, BufReader, Interest};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{error::TrySendError, Sender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::filecache::{FileCache, Source};
use crate::metrics::ServiceCounters;

#[cfg(test)]
mod tests;

/// One completed (or failed) transfer, for the machine's boot timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub peer: SocketAddr,
    /// The name as the client sent it (before resolution against the root).
    pub file: String,
    /// Payload bytes the client acknowledged.
    pub bytes: u64,
    pub duration: Duration,
    pub outcome: Result<(), String>,
}

#[derive(Clone)]
pub struct TftpOptions {
    /// Directory served; nothing outside it is ever read.
    pub root: PathBuf,
    /// Cap on the negotiated `blksize`: 1468 fills a 1500-byte Ethernet frame
    /// without IP fragmentation, which some firmware cannot reassemble.
    pub max_block_size: u16,
    /// Transfers running at once (`boot.tftp_max_transfers`): each holds a
    /// task, a socket and one window of blocks.
    pub max_transfers: usize,
    /// How long a request beyond `max_transfers` waits for a slot before it
    /// is refused with "server busy".
    pub busy_wait: Duration,
    /// Where files are read from; shared with the HTTP server.
    pub cache: Arc<FileCache>,
    /// Transfers in flight, waiting and refused are counted here.
    pub counters: Arc<ServiceCounters>,
}

/// The default `boot.tftp_max_transfers`: a rack booting at once, each
/// transfer costing a socket and at most `MAX_WINDOW` blocks.
pub const DEFAULT_MAX_TRANSFERS: usize = 1024;
/// Well within OVMF's RRQ retransmissions (4 s x 6), so a request that
/// waited is still being listened for when it is answered.
pub const DEFAULT_BUSY_WAIT: Duration = Duration::from_secs(5);

impl Default for TftpOptions {
    fn default() -> Self {
        let counters = Arc::new(ServiceCounters::default());
        TftpOptions {
            root: PathBuf::from("/usr/lib/ipxe"),
            max_block_size: 1468,
            max_transfers: DEFAULT_MAX_TRANSFERS,
            busy_wait: DEFAULT_BUSY_WAIT,
            cache: Arc::new(FileCache::new(
                crate::filecache::DEFAULT_BUDGET_MB << 20,
                counters.clone(),
            )),
            counters,
        }
    }
}

/// The outcome of a transfer the client ended right after the OACK that
/// carried `tsize`: OVMF does this to learn a file's size before it
/// downloads it, so the daemon can show it as a probe, not a failure.
pub const SIZE_PROBE: &str = "size probe: client aborted after the OACK";

/// Events dropped because the daemon's channel was full.
static DROPPED_EVENTS: AtomicU64 = AtomicU64::new(0);

/// How many transfer events were dropped (channel full) since start, over
/// every server in this process.
pub fn dropped_events() -> u64 {
    DROPPED_EVENTS.load(Ordering::Relaxed)
}

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

const DEFAULT_BLOCK_SIZE: u16 = 512;
/// RFC 2348's range for `blksize`.
const BLOCK_SIZE_RANGE: std::ops::RangeInclusive<u16> = 8..=65464;
/// Bounds the burst one client can ask for and the blocks held per
/// transfer; firmware asks for 4.
const MAX_WINDOW: u16 = 64;
/// Retransmission timeout unless the client asks for another (RFC 2349).
/// Firmware on a LAN answers in microseconds, so a lost packet should cost
/// a boot one second, not the three or five of classic servers.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Sends of the same window (or OACK) before giving up on a silent client;
/// with the default timeout a vanished client holds its task about 5 s.
const MAX_TRIES: u32 = 5;
/// Largest request accepted: RFC 1350's 512 plus generous room for options.
const MAX_REQUEST: usize = 2048;

/// TFTP error codes (RFC 1350, RFC 2347).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
}

/// Serves until `shutdown` is cancelled; every transfer is reported on
/// `events` (if the channel is full the event is dropped and counted, see
/// [`dropped_events`]: a transfer never waits for the daemon).
///
/// The server starts on its own thread when this is called (see the
/// module's doc); the future returned ends with it. On shutdown, transfers
/// in flight and requests waiting are told so with an ERROR packet and
/// reported before the future completes.
pub fn serve(
    socket: std::net::UdpSocket,
    opts: TftpOptions,
    events: Sender<Transfer>,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
    // Started now, not when the future is first polled: the server must
    // not wait for the caller's runtime even once.
    let stop = shutdown.child_token();
    let stop_on_drop = stop.clone().drop_guard();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("tftp".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("TFTP runtime")
                .and_then(|rt| rt.block_on(serve_here(socket, opts, events, stop)));
            let _ = done_tx.send(result);
        });
    async move {
        // Dropping this future (the caller's task aborted) stops the thread.
        let _stop_on_drop = stop_on_drop;
        spawned.context("TFTP thread")?;
        done_rx
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the TFTP thread ended without a result")))
    }
}

/// The server itself, on the current (dedicated) thread's runtime.
async fn serve_here(
    socket: std::net::UdpSocket,
    opts: TftpOptions,
    events: Sender<Transfer>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Canonical once, so the per-request prefix check compares like with like.
    let root = std::fs::canonicalize(&opts.root)
        .with_context(|| format!("TFTP root {}", opts.root.display()))?;
    widen_receive_buffer(&socket);
    socket.set_nonblocking(true).context("TFTP socket")?;
    let socket = UdpSocket::from_std(socket).context("TFTP socket")?;
    let local_ip = socket.local_addr().context("TFTP socket")?.ip();
    let ctx = Arc::new(Ctx {
        root,
        max_block_size: opts.max_block_size,
        local_ip,
        events,
        cache: opts.cache,
    });
    let counters = opts.counters;
    let max_transfers = opts.max_transfers.max(1);
    tracing::info!(addr = %socket.local_addr()?, root = %ctx.root.display(), "TFTP server up");

    let mut tasks = JoinSet::new();
    let mut task_peer = HashMap::new();
    // A client that retransmits its RRQ before our first answer arrives must
    // not start a second transfer of the same file.
    let mut busy_peers = HashSet::new();
    // Requests beyond `max_transfers`, oldest first, with their deadline;
    // up to `WAITING_PER_SLOT` per transfer slot.
    let mut waiting: VecDeque<(SocketAddr, Request, tokio::time::Instant)> = VecDeque::new();
    let mut buf = vec![0u8; MAX_REQUEST];
    let refuse = |peer: SocketAddr, file: String, err: TransferError| {
        let socket = &socket;
        let ctx = &ctx;
        async move {
            if let Some((code, msg)) = err.wire() {
                let _ = socket.send_to(&encode_error(code, msg), peer).await;
            }
            finish(ctx, peer, file, 0, Instant::now(), Err(err));
        }
    };
    let gauge = |n: usize, g: &AtomicU64| g.store(n as u64, Ordering::Relaxed);
    loop {
        gauge(tasks.len(), &counters.tftp_in_flight);
        gauge(waiting.len(), &counters.tftp_waiting);
        let next_deadline = waiting.front().map(|w| w.2);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(tokio::time::Instant::now)),
                if next_deadline.is_some() => {
                let now = tokio::time::Instant::now();
                while waiting.front().is_some_and(|w| w.2 <= now) {
                    let Some((peer, req, _)) = waiting.pop_front() else { break };
                    busy_peers.remove(&peer);
                    counters.tftp_busy.fetch_add(1, Ordering::Relaxed);
                    // Before the refusal goes out: whoever it reaches sees
                    // the request no longer waiting.
                    gauge(waiting.len(), &counters.tftp_waiting);
                    refuse(peer, req.file, TransferError::Busy).await;
                }
            }
            Some(done) = tasks.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "TFTP transfer task failed");
                        e.id()
                    }
                };
                if let Some(peer) = task_peer.remove(&id) {
                    busy_peers.remove(&peer);
                }
                while tasks.len() < max_transfers {
                    let Some((peer, req, _)) = waiting.pop_front() else { break };
                    let handle = tasks.spawn(run_transfer(ctx.clone(), peer, req, shutdown.clone()));
                    task_peer.insert(handle.id(), peer);
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (len, peer) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        // UDP receive errors are per-datagram; keep serving,
                        // but do not spin if the error repeats.
                        tracing::warn!(error = %e, "TFTP receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let req = match parse_request(&buf[..len]) {
                    Ok(r) => r,
                    Err(e) => {
                        // No answer: a reply to garbage is an amplifier.
                        tracing::debug!(%peer, error = %e, "TFTP packet ignored");
                        continue;
                    }
                };
                if busy_peers.contains(&peer) {
                    tracing::debug!(%peer, file = %req.file, "retransmitted TFTP request ignored");
                    continue;
                }
                if tasks.len() >= max_transfers {
                    if waiting.len() >= max_transfers * WAITING_PER_SLOT {
                        counters.tftp_busy.fetch_add(1, Ordering::Relaxed);
                        refuse(peer, req.file, TransferError::Busy).await;
                    } else {
                        tracing::debug!(%peer, file = %req.file, "TFTP request waits for a slot");
                        waiting.push_back((peer, req, tokio::time::Instant::now() + opts.busy_wait));
                        busy_peers.insert(peer);
                    }
                    continue;
                }
                let handle = tasks.spawn(run_transfer(ctx.clone(), peer, req, shutdown.clone()));
                task_peer.insert(handle.id(), peer);
                busy_peers.insert(peer);
            }
        }
    }
    for (peer, req, _) in waiting.drain(..) {
        refuse(peer, req.file, TransferError::Shutdown).await;
    }
    // Transfers watch the same token: let them say goodbye and report.
    while tasks.join_next().await.is_some() {}
    counters.tftp_in_flight.store(0, Ordering::Relaxed);
    counters.tftp_waiting.store(0, Ordering::Relaxed);
    tracing::info!("TFTP server stopped");
    Ok(())
}

/// Requests that may wait per transfer slot: a waiting request costs a few
/// hundred bytes, and a storm several times the cap should queue, not be
/// refused.
const WAITING_PER_SLOT: usize = 8;

/// A rack's RRQs arrive within milliseconds of each other; the default
/// buffer (about 200 KiB, some 300 requests) would drop the rest, and
/// each drop costs that machine its firmware's retransmission delay.
const REQUEST_BUFFER: usize = 4 << 20;

fn widen_receive_buffer(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    // The FORCE variant passes net.core.rmem_max but needs CAP_NET_ADMIN;
    // without it the kernel caps the plain one at rmem_max.
    if setsockopt(socket, sockopt::RcvBufForce, &REQUEST_BUFFER).is_err() {
        if let Err(e) = setsockopt(socket, sockopt::RcvBuf, &REQUEST_BUFFER) {
            tracing::warn!(error = %e, "TFTP socket: cannot widen the receive buffer");
        }
    }
}

struct Ctx {
    root: PathBuf,
    max_block_size: u16,
    local_ip: IpAddr,
    events: Sender<Transfer>,
    cache: Arc<FileCache>,
}

#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error("write request refused: read-only server")]
    WriteRefused,
    #[error("unsupported mode {0:?}")]
    Mode(String),
    #[error("file not found")]
    NotFound,
    #[error("access violation: {0}")]
    AccessViolation(&'static str),
    #[error("{}", SIZE_PROBE)]
    SizeProbe,
    #[error("client aborted: error {code}: {message}")]
    ClientAborted { code: u16, message: String },
    #[error("no answer from the client after {0} tries")]
    TimedOut(u32),
    #[error("server shutting down")]
    Shutdown,
    #[error("too many transfers in progress")]
    Busy,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl TransferError {
    /// The ERROR packet the client gets, if any: none when the client ended
    /// the transfer itself or is gone.
    fn wire(&self) -> Option<(ErrorCode, &'static str)> {
        match self {
            TransferError::WriteRefused => Some((ErrorCode::AccessViolation, "read-only server")),
            TransferError::Mode(_) => Some((ErrorCode::IllegalOperation, "unsupported mode")),
            TransferError::NotFound => Some((ErrorCode::FileNotFound, "file not found")),
            TransferError::AccessViolation(_) => {
                Some((ErrorCode::AccessViolation, "access violation"))
            }
            TransferError::Shutdown => Some((ErrorCode::NotDefined, "server shutting down")),
            TransferError::Busy => Some((ErrorCode::NotDefined, "server busy")),
            TransferError::Io(_) => Some((ErrorCode::NotDefined, "read error")),
            TransferError::SizeProbe
            | TransferError::ClientAborted { .. }
            | TransferError::TimedOut(_) => None,
        }
    }
}

async fn run_transfer(ctx: Arc<Ctx>, peer: SocketAddr, req: Request, cancel: CancellationToken) {
    let start = Instant::now();
    let mut bytes = 0;
    let result = transfer(&ctx, peer, &req, &cancel, &mut bytes).await;
    finish(&ctx, peer, req.file, bytes, start, result);
}

fn finish(
    ctx: &Ctx,
    peer: SocketAddr,
    file: String,
    bytes: u64,
    start: Instant,
    result: Result<(), TransferError>,
) {
    let duration = start.elapsed();
    match &result {
        Ok(()) => tracing::info!(%peer, %file, bytes, ?duration, "TFTP transfer done"),
        Err(TransferError::SizeProbe) => tracing::debug!(%peer, %file, "TFTP size probe"),
        Err(e) => {
            tracing::info!(%peer, %file, bytes, ?duration, error = %e, "TFTP transfer failed")
        }
    }
    let event = Transfer {
        peer,
        file,
        bytes,
        duration,
        outcome: result.map_err(|e| e.to_string()),
    };
    match ctx.events.try_send(event) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(_)) => {
            DROPPED_EVENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn transfer(
    ctx: &Ctx,
    peer: SocketAddr,
    req: &Request,
    cancel: &CancellationToken,
    bytes: &mut u64,
) -> Result<(), TransferError> {
    // RFC 1350: every answer, refusals included, comes from a fresh port
    // (the transfer ID); the listening port only ever takes requests.
    let sock = UdpSocket::bind((ctx.local_ip, 0)).await?;
    sock.connect(peer).await?;
    let result = send_file(ctx, &sock, req, cancel, bytes).await;
    if let Err(e) = &result {
        if let Some((code, msg)) = e.wire() {
            // Best effort: errors are never retransmitted (RFC 1350).
            let _ = sock.send(&encode_error(code, msg)).await;
        }
    }
    result
}

async fn send_file(
    ctx: &Ctx,
    sock: &UdpSocket,
    req: &Request,
    cancel: &CancellationToken,
    bytes: &mut u64,
) -> Result<(), TransferError> {
    if req.write {
        return Err(TransferError::WriteRefused);
    }
    // netascii is served as octet: boot clients never ask for it, and a
    // desktop `tftp` client left in its default ascii mode still gets the
    // (binary) file it wants.
    if !matches!(req.mode.as_str(), "octet" | "netascii") {
        return Err(TransferError::Mode(req.mode.clone()));
    }
    let path = resolve(&ctx.root, &req.file).await?;
    // The path was canonical when checked; the cache refuses a symlink
    // swapped in since then.
    let file = ctx.cache.open(&path).await.map_err(fs_error)?;
    let neg = negotiate(&req.options, file.len, ctx.max_block_size);
    let mut link = Link {
        sock,
        timeout: neg.timeout,
        cancel,
    };
    if !neg.oack.is_empty() {
        let oack = encode_oack(&neg.oack);
        let probe = neg.oack.iter().any(|(name, _)| *name == "tsize");
        match link
            .send_until_ack(&[(&oack, &[])], |ack| (ack == 0).then_some(()))
            .await
        {
            Ok(()) => {}
            Err(TransferError::ClientAborted { .. }) if probe => {
                return Err(TransferError::SizeProbe)
            }
            Err(e) => return Err(e),
        }
    }
    let mut blocks = match file.body {
        Source::Memory(data) => Blocks::Memory(data),
        // Large reads: tokio's file reads hop to a blocking thread each time.
        Source::File(file) => Blocks::File(BufReader::with_capacity(64 * 1024, file)),
    };
    let block_size = usize::from(neg.block_size);
    // Payloads sent but not yet acknowledged, oldest first; `acked` counts
    // blocks from 1 without wrapping, the wire number is its low 16 bits.
    let mut window: VecDeque<Bytes> = VecDeque::new();
    let mut acked: u64 = 0;
    let mut eof = false;
    loop {
        while !eof && window.len() < usize::from(neg.window) {
            let block = acked + window.len() as u64 + 1;
            let payload = blocks.read(block, block_size).await?;
            // A short block, possibly empty, ends the transfer (RFC 1350).
            eof = payload.len() < block_size;
            window.push_back(payload);
        }
        let sent = acked + window.len() as u64;
        let heads: Vec<[u8; 4]> = (acked + 1..=sent).map(data_header).collect();
        let packets: Vec<(&[u8], &[u8])> = heads
            .iter()
            .zip(&window)
            .map(|(h, p)| (&h[..], &p[..]))
            .collect();
        let newly = link
            .send_until_ack(&packets, |ack| ack_to_block(ack, acked, sent))
            .await?;
        for payload in window.drain(..(newly - acked) as usize) {
            *bytes += payload.len() as u64;
        }
        acked = newly;
        if eof && window.is_empty() {
            return Ok(());
        }
    }
}

/// Where a transfer's blocks come from.
enum Blocks {
    /// The shared in-memory copy: a block is a slice of it, not a copy.
    Memory(Bytes),
    /// Too large for the cache: read in order as the transfer goes.
    File(BufReader<tokio::fs::File>),
}

impl Blocks {
    /// The payload of absolute block `block` (from 1): `block_size` bytes,
    /// fewer (possibly none) at the end. Blocks are asked for in order.
    async fn read(&mut self, block: u64, block_size: usize) -> io::Result<Bytes> {
        match self {
            Blocks::Memory(data) => {
                let len = data.len() as u64;
                let start = ((block - 1) * block_size as u64).min(len) as usize;
                let end = (start + block_size).min(data.len());
                Ok(data.slice(start..end))
            }
            Blocks::File(reader) => {
                let mut payload = vec![0; block_size];
                let mut filled = 0;
                while filled < block_size {
                    match reader.read(&mut payload[filled..]).await? {
                        0 => break,
                        n => filled += n,
                    }
                }
                payload.truncate(filled);
                Ok(Bytes::from(payload))
            }
        }
    }
}

/// The header of absolute block `block`'s DATA packet; its wire number
/// wraps to 0 after 65535, as tftp-hpa, curl and iPXE expect.
fn data_header(block: u64) -> [u8; 4] {
    let [a, b] = DATA.to_be_bytes();
    let [c, d] = (block as u16).to_be_bytes();
    [a, b, c, d]
}

/// One transfer's connected socket with its retransmission policy.
struct Link<'a> {
    sock: &'a UdpSocket,
    timeout: Duration,
    cancel: &'a CancellationToken,
}

impl Link<'_> {
    /// Sends `packets` and waits for an ACK that `accept` maps to a value;
    /// resends them all on timeout. Other ACKs (duplicates of older ones) are
    /// ignored rather than answered, which avoids the Sorcerer's Apprentice
    /// bug of RFC 1350.
    async fn send_until_ack<T>(
        &mut self,
        packets: &[(&[u8], &[u8])],
        accept: impl Fn(u16) -> Option<T>,
    ) -> Result<T, TransferError> {
        let mut buf = [0u8; 1024];
        for _ in 0..MAX_TRIES {
            send_batch(self.sock, packets).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            loop {
                let len = tokio::select! {
                    _ = self.cancel.cancelled() => return Err(TransferError::Shutdown),
                    r = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)) => match r {
                        Err(_elapsed) => break,
                        Ok(Err(e)) if refused(&e) => continue,
                        Ok(r) => r?,
                    },
                };
                match parse_reply(&buf[..len]) {
                    Some(Reply::Ack(block)) => {
                        if let Some(v) = accept(block) {
                            return Ok(v);
                        }
                    }
                    Some(Reply::Error { code, message }) => {
                        return Err(TransferError::ClientAborted { code, message })
                    }
                    None => {}
                }
            }
        }
        Err(TransferError::TimedOut(MAX_TRIES))
    }
}

/// Sends each `(header, payload)` as one datagram on the connected
/// `sock`, a whole window per sendmmsg(2) call: one system call where a
/// `send` per block would take four (OVMF's window), and the payload goes
/// from the shared copy to the kernel without being joined to its header
/// first.
async fn send_batch(sock: &UdpSocket, packets: &[(&[u8], &[u8])]) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let mut done = 0;
    while done < packets.len() {
        let rest = &packets[done..];
        let sent = sock
            .async_io(Interest::WRITABLE, || {
                let mut iovs: Vec<[libc::iovec; 2]> = rest
                    .iter()
                    .map(|(head, payload)| {
                        [
                            libc::iovec {
                                iov_base: head.as_ptr() as *mut libc::c_void,
                                iov_len: head.len(),
                            },
                            libc::iovec {
                                iov_base: payload.as_ptr() as *mut libc::c_void,
                                iov_len: payload.len(),
                            },
                        ]
                    })
                    .collect();
                let mut msgs: Vec<libc::mmsghdr> = iovs
                    .iter_mut()
                    .map(|iov| {
                        // SAFETY: an all-zero msghdr is valid (no address,
                        // no control data); the iovec fields are set next.
                        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                        hdr.msg_iov = iov.as_mut_ptr();
                        hdr.msg_iovlen = iov.len() as _;
                        libc::mmsghdr {
                            msg_hdr: hdr,
                            msg_len: 0,
                        }
                    })
                    .collect();
                // SAFETY: `msgs` and the iovecs and buffers they point to
                // live until the call returns, and the kernel only reads
                // them; the count is `msgs`' length.
                let n =
                    unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .await;
        match sent {
            // Never 0 for a non-empty batch; counted as one all the
            // same, so a surprise cannot spin.
            Ok(n) => done += n.max(1),
            // The datagram the error was reported on is lost like any
            // other: the retransmission covers it.
            Err(e) if refused(&e) => done += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An ICMP port unreachable reported on the connected socket: the client
/// closed its port, typically once it had the last block and a resend
/// (answering a stale ACK) reached it late. Its final ACK may still be
/// queued here, so this is no reason to stop listening; a client really
/// gone is found by the retry limit.
fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

/// Maps an ACK's 16-bit block number to the absolute block it acknowledges,
/// if that block is in flight (`acked` < block <= `sent`). The window is far
/// smaller than 65536 blocks, so the match is unique across wrap-around.
fn ack_to_block(ack: u16, acked: u64, sent: u64) -> Option<u64> {
    let ahead = u64::from(ack.wrapping_sub(acked as u16));
    (ahead >= 1 && ahead <= sent - acked).then_some(acked + ahead)
}

/// The client's name as a path relative to the root. A leading `/` (PXE
/// clients send one) means the root; `\` separates too, as Windows-style
/// boot files name their paths that way; `..` is refused outright rather
/// than resolved, so no name can climb out whatever the tree holds.
fn relative_path(requested: &str) -> Result<PathBuf, TransferError> {
    let mut rel = PathBuf::new();
    for part in requested.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(TransferError::AccessViolation("'..' in path")),
            part => rel.push(part),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(TransferError::NotFound);
    }
    Ok(rel)
}

/// The file to open: inside `root` (canonical) once every symlink is
/// followed, or refused.
async fn resolve(root: &Path, requested: &str) -> Result<PathBuf, TransferError> {
    let path = root.join(relative_path(requested)?);
    let canonical = tokio::fs::canonicalize(&path).await.map_err(fs_error)?;
    if !canonical.starts_with(root) {
        return Err(TransferError::AccessViolation("resolves outside the root"));
    }
    Ok(canonical)
}

fn fs_error(e: io::Error) -> TransferError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => TransferError::NotFound,
        io::ErrorKind::PermissionDenied => TransferError::AccessViolation("permission denied"),
        // O_NOFOLLOW on a symlink.
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            TransferError::AccessViolation("symlink swapped in")
        }
        io::ErrorKind::InvalidInput => TransferError::AccessViolation("not a regular file"),
        _ => TransferError::Io(e),
    }
}

/// A parsed RRQ or WRQ.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    write: bool,
    file: String,
    /// Lowercased.
    mode: String,
    /// Names lowercased, in the client's order.
    options: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ParseError {
    #[error("packet too short")]
    Short,
    #[error("not a request (opcode {0})")]
    NotRequest(u16),
    #[error("field not NUL-terminated")]
    Unterminated,
}

fn parse_request(packet: &[u8]) -> Result<Request, ParseError> {
    if packet.len() < 4 {
        return Err(ParseError::Short);
    }
    let op = u16::from_be_bytes([packet[0], packet[1]]);
    if op != RRQ && op != WRQ {
        return Err(ParseError::NotRequest(op));
    }
    let body = &packet[2..];
    if body.last() != Some(&0) {
        return Err(ParseError::Unterminated);
    }
    // Names outside UTF-8 match no file here, so lossy is enough.
    let mut fields = body[..body.len() - 1]
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let file = fields.next().ok_or(ParseError::Short)?;
    let mode = fields.next().ok_or(ParseError::Short)?.to_ascii_lowercase();
    let mut options = Vec::new();
    // A trailing name without a value is ignored, as RFC 2347 lets a server
    // ignore what it does not understand.
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        options.push((name.to_ascii_lowercase(), value));
    }
    Ok(Request {
        write: op == WRQ,
        file,
        mode,
        options,
    })
}

/// What the server agreed to; `oack` lists the accepted options in the
/// order sent (empty: no OACK, data starts at once).
#[derive(Debug, PartialEq, Eq)]
struct Negotiated {
    block_size: u16,
    window: u16,
    timeout: Duration,
    oack: Vec<(&'static str, String)>,
}

/// RFC 2347: options with invalid values are left out of the OACK, so the
/// client falls back to the default for them instead of failing.
fn negotiate(options: &[(String, String)], file_size: u64, max_block_size: u16) -> Negotiated {
    let mut neg = Negotiated {
        block_size: DEFAULT_BLOCK_SIZE,
        window: 1,
        timeout: DEFAULT_TIMEOUT,
        oack: Vec::new(),
    };
    let cap = max_block_size.clamp(*BLOCK_SIZE_RANGE.start(), *BLOCK_SIZE_RANGE.end());
    for (name, value) in options {
        // Values above u16 are valid requests for "as much as you allow".
        let number = value.parse::<u64>().ok();
        let small = number.map(|n| u16::try_from(n).unwrap_or(u16::MAX));
        match (name.as_str(), small) {
            ("blksize", Some(n)) if n >= *BLOCK_SIZE_RANGE.start() => {
                neg.block_size = n.min(cap);
                neg.oack.push(("blksize", neg.block_size.to_string()));
            }
            ("windowsize", Some(n)) if n >= 1 => {
                neg.window = n.min(MAX_WINDOW);
                neg.oack.push(("windowsize", neg.window.to_string()));
            }
            ("timeout", Some(n)) if (1..=255).contains(&n) => {
                neg.timeout = Duration::from_secs(n.into());
                neg.oack.push(("timeout", n.to_string()));
            }
            // In an RRQ the client sends 0 and the server fills in the size.
            // Not for an empty file: curl fails on an OACK with tsize 0, and
            // RFC 2347 lets a server leave out any option.
            ("tsize", Some(_)) if file_size > 0 => neg.oack.push(("tsize", file_size.to_string())),
            _ => {}
        }
    }
    neg
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ack(u16),
    Error { code: u16, message: String },
}

/// An ACK or ERROR from the client; anything else is ignored.
fn parse_reply(packet: &[u8]) -> Option<Reply> {
    if packet.len() < 4 {
        return None;
    }
    let op = u16::from_be_bytes([packet[0], packet[1]]);
    let arg = u16::from_be_bytes([packet[2], packet[3]]);
    match op {
        ACK => Some(Reply::Ack(arg)),
        ERROR => {
            let text = &packet[4..];
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            Some(Reply::Error {
                code: arg,
                message: String::from_utf8_lossy(text).into_owned(),
            })
        }
        _ => None,
    }
}

fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&ERROR.to_be_bytes());
    p.extend_from_slice(&(code as u16).to_be_bytes());
    p.extend_from_slice(message.as_bytes());
    p.push(0);
    p
}

fn encode_oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut p = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        p.push(0);
    }
    p
}
