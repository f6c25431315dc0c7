//! An opt-in IPv6 Router Advertisement on the boot segment (`[boot]
//! ipv6_ra = true`): router lifetime 0, no prefix, M=0, O=0. It says "no
//! IPv6 router here, and no address configuration", which ends iPXE's wait
//! for an IPv6 router (about 15 s per iPXE instance when nothing answers).
//! Sent at start, every few seconds, and in answer to each Router
//! Solicitation.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockProtocol, SockType};
use tokio_util::sync::CancellationToken;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
/// Unsolicited advertisements this often: a machine that powers on while
/// none is due still hears one well within iPXE's wait.
const EVERY: Duration = Duration::from_secs(3);

/// The advertisement: ICMPv6 type 134, code 0, checksum (filled in by the
/// kernel for ICMPv6 raw sockets), hop limit 0, flags 0 (M=0, O=0), router
/// lifetime 0, reachable time 0, retransmit timer 0, no options.
pub fn advertisement() -> [u8; 16] {
    let mut ra = [0u8; 16];
    ra[0] = ROUTER_ADVERTISEMENT;
    ra
}

/// Sends advertisements on `interface` until `shutdown`.
pub async fn run(interface: String, shutdown: CancellationToken) -> std::io::Result<()> {
    let fd = socket::socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )?;
    socket::setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(&interface),
    )?;
    // RFC 4861 6.1.2: hosts drop advertisements whose hop limit is not 255.
    socket::setsockopt(&fd, sockopt::Ipv6MulticastHops, &255)?;
    let ifindex =
        nix::net::if_::if_nametoindex(interface.as_str()).map_err(std::io::Error::from)?;
    let std_sock: std::net::UdpSocket = fd.into();
    // A raw socket, driven through tokio's UdpSocket for readiness only.
    let sock = tokio::net::UdpSocket::from_std(std_sock)?;
    let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, ifindex);
    let ra = advertisement();
    let mut tick = tokio::time::interval(EVERY);
    let mut buf = [0u8; 1500];
    tracing::info!(%interface, "sending IPv6 router advertisements (lifetime 0, no prefix)");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {
                if let Err(e) = sock.send_to(&ra, all_nodes).await {
                    tracing::debug!(error = %e, %interface, "router advertisement not sent");
                }
            }
            r = sock.recv_from(&mut buf) => {
                // Raw ICMPv6 sockets deliver the ICMPv6 message alone.
                if let Ok((n, from)) = r {
                    if n > 0 && buf[0] == ROUTER_SOLICITATION {
                        tracing::debug!(%from, "router solicitation: advertising");
                        let _ = sock.send_to(&ra, all_nodes).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn advertises_no_router_and_no_configuration() {
        let ra = super::advertisement();
        assert_eq!(ra[0], 134);
        assert_eq!(
            &ra[4..8],
            &[0, 0, 0, 0],
            "hop limit, flags M=0 O=0, router lifetime 0"
        );
        assert_eq!(
            ra.len(),
            16,
            "no options: no prefix, no source link-layer address"
        );
    }
}
