//! The userspace socket on port 67: what the XDP program passes up arrives
//! here. It is counted and logged; answering it is the userspace server's.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::frame::format_mac;
use crate::stats::UserCounters;

/// Binds 0.0.0.0:67 on `interface` only, so several daemons (or tests) can
/// serve different interfaces of one host.
pub fn bind(interface: &str) -> std::io::Result<UdpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::Broadcast, &true)?;
    socket::setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(interface),
    )?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67)),
    )?;
    // SAFETY: we own the descriptor and hand it over.
    let std = unsafe { std::net::UdpSocket::from_raw_fd(fd.into_raw_fd()) };
    UdpSocket::from_std(std)
}

pub async fn run(
    sock: UdpSocket,
    counters: Arc<UserCounters>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => r?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match Message::decode(&mut Decoder::new(&buf[..n])) {
            Ok(m) => {
                let t = m.opts().msg_type().map(u8::from).unwrap_or(0);
                UserCounters::bump(&counters.slow_path, t);
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&m.chaddr()[..6.min(m.chaddr().len())]);
                tracing::info!(
                    mac = %format_mac(&mac),
                    %from,
                    xid = format_args!("{:#010x}", m.xid()),
                    path = "userspace",
                    "{} passed up by XDP: no reservation matches, not answered",
                    crate::render::type_name(t)
                );
            }
            Err(e) => {
                UserCounters::bump(&counters.slow_path, 0);
                tracing::warn!(%from, len = n, error = %e, "malformed DHCP packet dropped");
            }
        }
    }
}
