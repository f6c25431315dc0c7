//! The production frames of a link: a packet socket on the interface,
//! filtered in the kernel to the DHCP server's ports, read whole (the
//! source MAC and the VLAN tag matter for the answer) and written whole
//! (replies reach clients that have no address yet, RFC 2131 4.1, and equal
//! the XDP program's byte for byte). A UDP socket bound to each port on the
//! interface only keeps the kernel from answering unicast requests with
//! ICMP port-unreachable; a filter drops everything it would receive, so a
//! request costs no second copy and no second read. Replies leave in
//! batches: whatever the daemon has queued goes out in one sendmmsg(2).
//!
//! The link's task ends when the daemon drops its ends, or on an error,
//! which it logs; the daemon then sees the link's frames end.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::link::{self, Link, Wire};
use crate::rawsock::{self, RawSocket, MAX_FRAME};
use crate::slowpath::Endpoint;

/// A link on `endpoint`'s interface for UDP datagrams to `ports` (one or
/// two: 67, and 4011 for a proxy).
pub fn open(endpoint: Endpoint, ports: &[u16]) -> anyhow::Result<Link> {
    let name = endpoint.ingress.iface_name.clone();
    let first = *ports
        .first()
        .ok_or_else(|| anyhow::anyhow!("no port to serve"))?;
    let raw = RawSocket::open(&name, libc::ETH_P_IP as u16, false)?;
    raw.filter_udp_ports(first, *ports.last().unwrap_or(&first))?;
    // SAFETY: the AsyncFd owns the socket, so the descriptor stays open
    // while registered.
    let sock = unsafe { AsyncFd::register(raw) }
        .map_err(|e| anyhow::anyhow!("registering the packet socket on {name}: {e}"))?;
    let mut udp = Vec::with_capacity(ports.len());
    for &port in ports {
        udp.push(
            bind_udp(&name, port)
                .map_err(|e| anyhow::anyhow!("binding UDP port {port} on {name}: {e}"))
                .and_then(|u| rawsock::drop_everything(&u).map(|()| u))?,
        );
    }
    let (link, wire) = link::pair(endpoint);
    tokio::spawn(async move {
        if let Err(e) = run(&sock, udp, wire).await {
            tracing::error!(interface = %name, error = %e, "the packet socket failed");
        }
    });
    Ok(link)
}

/// Moves frames between the socket and the daemon until the daemon drops
/// its ends or the socket fails.
async fn run(
    sock: &AsyncFd<RawSocket>,
    udp: Vec<std::net::UdpSocket>,
    wire: Wire,
) -> std::io::Result<()> {
    let Wire { arrive, mut sent } = wire;
    let sending = async {
        let mut batch = Vec::with_capacity(SEND_BATCH);
        while let Some(f) = sent.recv().await {
            batch.push(f);
            while batch.len() < SEND_BATCH {
                match sent.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(_) => break,
                }
            }
            send(sock, &batch).await;
            batch.clear();
        }
        Ok(())
    };
    let r = tokio::select! {
        r = receive(sock, &arrive) => r,
        r = sending => r,
    };
    // Held open until here: their ports stay taken while the link runs.
    drop(udp);
    r
}

/// Replies sent in one sendmmsg(2) at most.
const SEND_BATCH: usize = 64;

/// Reads frames into the daemon's channel.
async fn receive(sock: &AsyncFd<RawSocket>, arrive: &mpsc::Sender<Vec<u8>>) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let mut guard = tokio::select! {
            g = sock.readable() => g?,
            _ = arrive.closed() => return Ok(()),
        };
        loop {
            let meta = match guard.get_inner().recv(&mut buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(std::io::Error::other(e)),
            };
            if meta.pkttype == libc::PACKET_OUTGOING || meta.len > buf.len() {
                continue;
            }
            let f = &mut buf[..meta.len];
            rawsock::clear_partial_checksum(f, &meta);
            if arrive.send(f.to_vec()).await.is_err() {
                return Ok(());
            }
        }
        guard.clear_ready();
    }
}

/// Sends `frames` in order, as many in each sendmmsg(2) as the kernel
/// takes; when its queue is full, waits a moment, three times at most
/// before the rest is dropped.
async fn send(sock: &AsyncFd<RawSocket>, frames: &[Vec<u8>]) {
    let mut at = 0;
    let mut waits = 0;
    while at < frames.len() {
        let batch: Vec<&[u8]> = frames[at..].iter().map(Vec::as_slice).collect();
        match sock.get_ref().send_many(&batch) {
            Ok(0) if waits < 3 => {
                waits += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(0) => {
                tracing::warn!(
                    replies = frames.len() - at,
                    "replies dropped: the interface's send queue stayed full"
                );
                return;
            }
            Ok(n) => {
                at += n;
                waits = 0;
            }
            Err(e) => {
                tracing::warn!(error = %e, replies = frames.len() - at, "sending replies failed");
                return;
            }
        }
    }
}

/// Binds 0.0.0.0:`port` on the interface. Bound to the interface, so
/// several daemons (or tests) can serve different interfaces of one host.
pub fn bind_udp(interface: &str, port: u16) -> std::io::Result<std::net::UdpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(interface),
    )?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
    )?;
    // SAFETY: we own the descriptor and hand it over.
    Ok(unsafe { std::net::UdpSocket::from_raw_fd(fd.into_raw_fd()) })
}
