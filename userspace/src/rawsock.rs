//! A nonblocking AF_PACKET socket on one interface: whole Ethernet frames
//! in and out. The storm client simulates machines with it; the userspace
//! dataplane answers clients that have no address yet with it, and sends
//! frames byte-identical to the XDP program's.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{bail, ensure, Context};

/// Receive buffer size: a jumbo frame.
pub const MAX_FRAME: usize = 9216;

/// A nonblocking AF_PACKET socket bound to one interface.
pub struct RawSocket {
    fd: OwnedFd,
    ifname: CString,
}

/// One received frame's metadata.
pub struct RecvMeta {
    pub len: usize,
    pub pkttype: u8,
    /// The kernel has not filled in the transport checksum yet (a locally
    /// generated frame crossing a veth keeps CHECKSUM_PARTIAL), so the UDP
    /// checksum field holds only the pseudo-header sum and cannot be checked.
    pub csum_not_ready: bool,
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl RawSocket {
    /// Opens a socket on `interface` for `proto` (an ETH_P_* value).
    /// `promiscuous`: also see unicast frames to other MACs (a client
    /// simulating many machines needs it; a server does not).
    pub fn open(interface: &str, proto: u16, promiscuous: bool) -> anyhow::Result<Self> {
        let name = CString::new(interface).context("interface name contains NUL")?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("interface {interface}: {}", io::Error::last_os_error());
        }
        let proto = proto.to_be();
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("AF_PACKET socket (needs CAP_NET_RAW)");
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // A storm answers in bursts of the whole window; a small buffer would
        // drop replies and show up as retransmits that are the client's fault.
        // The FORCE variants ignore rmem_max but need CAP_NET_ADMIN.
        let rcvbuf: libc::c_int = 16 << 20;
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf).context("SO_RCVBUF")?;
        }
        let sndbuf: libc::c_int = 4 << 20;
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf).context("SO_SNDBUF")?;
        }
        let on: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &on).context("PACKET_AUXDATA")?;

        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("bind to {interface}"));
        }

        if promiscuous {
            // The membership ends with the socket.
            // SAFETY: all-zero is a valid packet_mreq.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = ifindex as libc::c_int;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .context("PACKET_ADD_MEMBERSHIP promiscuous")?;
        }

        let sock = Self { fd, ifname: name };
        ensure!(sock.is_up()?, "interface {interface} is down");
        // Before bind the socket saw every interface; drop what it queued.
        let mut buf = vec![0u8; MAX_FRAME];
        while sock.recv(&mut buf)?.is_some() {}
        Ok(sock)
    }

    pub fn is_up(&self) -> anyhow::Result<bool> {
        // SAFETY: all-zero is a valid ifreq.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        let name = self.ifname.as_bytes_with_nul();
        ensure!(name.len() <= ifr.ifr_name.len(), "interface name too long");
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(name) {
            *dst = src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the
        // flags member of this ifreq.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } != 0 {
            return Err(io::Error::last_os_error()).context("SIOCGIFFLAGS");
        }
        // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        Ok(i32::from(flags) & libc::IFF_UP != 0)
    }

    /// Ok(false) when the kernel has no room right now; the caller queues.
    pub fn send(&self, frame: &[u8]) -> anyhow::Result<bool> {
        // SAFETY: `frame` is a live buffer of the length given.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc >= 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOBUFS) => Ok(false),
            // A device without a queue that finds its peer full (a veth whose
            // peer runs XDP) refuses the frame; a wire would have lost it, and
            // the retransmission timer treats it the same way.
            Some(libc::ENETDOWN) if self.is_up()? => Ok(true),
            Some(libc::EINTR) => self.send(frame),
            _ => Err(err).context("send on AF_PACKET socket"),
        }
    }

    /// None when nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> anyhow::Result<Option<RecvMeta>> {
        // SAFETY: all-zero is valid for these plain C structs.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // u64 storage keeps the control buffer aligned for cmsghdr.
        let mut control = [0u64; 8];
        // SAFETY: all-zero is a valid msghdr; the pointers are set below.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = size_of_val(&control);
        // SAFETY: every pointer in `hdr` refers to a live buffer of the stated length.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut hdr, libc::MSG_TRUNC) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(None),
                _ => Err(err).context("recvmsg on AF_PACKET socket"),
            };
        }
        let csum_not_ready = csum_not_ready(&hdr);
        Ok(Some(RecvMeta {
            len: n as usize,
            pkttype: sll.sll_pkttype,
            csum_not_ready,
        }))
    }

    /// Waits until readable or `timeout` passes.
    pub fn poll(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a timer due in 0.3 ms does not turn into a busy loop.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err).context("poll");
            }
        }
        Ok(())
    }
}

/// Whether the kernel's PACKET_AUXDATA in a received message's control
/// buffer says the transport checksum is not filled in yet.
fn csum_not_ready(hdr: &libc::msghdr) -> bool {
    let mut not_ready = false;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel just
    // filled, within msg_controllen; the auxdata payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                not_ready = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    not_ready
}

/// Frames one `send_many` or `recv_many` call moves at most (the kernel's
/// UIO_MAXIOV).
pub const MAX_BATCH: usize = 1024;

impl RawSocket {
    /// Sends frames straight to the device's driver, past the queueing
    /// discipline (PACKET_QDISC_BYPASS): a load generator wants its frames
    /// on the wire, not queued behind its own.
    pub fn bypass_qdisc(&self) -> anyhow::Result<()> {
        let on: libc::c_int = 1;
        setsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &on)
            .context("PACKET_QDISC_BYPASS")
    }

    /// Sends up to [`MAX_BATCH`] of `frames` in one sendmmsg(2); how many
    /// the kernel took (0 when it has no room right now; a frame a veth
    /// peer refused counts as taken, as in [`RawSocket::send`]).
    pub fn send_many(&self, frames: &[&[u8]]) -> anyhow::Result<usize> {
        let n = frames.len().min(MAX_BATCH);
        let mut iov: Vec<libc::iovec> = frames[..n]
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: all-zero is a valid msghdr; the iovec is set below.
                let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                hdr.msg_iov = v;
                hdr.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        loop {
            // SAFETY: every header points at one live iovec over a live frame.
            let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS) => Ok(0),
                Some(libc::ENETDOWN) if self.is_up()? => Ok(1),
                Some(libc::EINTR) => continue,
                _ => Err(err).context("sendmmsg on AF_PACKET socket"),
            };
        }
    }

    /// Receives up to `bufs.len()` (at most [`MAX_BATCH`]) frames in one
    /// recvmmsg(2), frame i into `bufs[i]`; their metadata replaces
    /// `metas`' contents (empty when nothing is queued).
    pub fn recv_many(&self, bufs: &mut [Vec<u8>], metas: &mut Vec<RecvMeta>) -> anyhow::Result<()> {
        metas.clear();
        let n = bufs.len().min(MAX_BATCH);
        // SAFETY: all-zero is valid for these plain C structs.
        let mut sll: Vec<libc::sockaddr_ll> = vec![unsafe { std::mem::zeroed() }; n];
        let mut control = vec![[0u64; 8]; n];
        let mut iov: Vec<libc::iovec> = bufs[..n]
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                // SAFETY: all-zero is a valid msghdr; the pointers are set below.
                let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                hdr.msg_name = (&mut sll[i] as *mut libc::sockaddr_ll).cast();
                hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                hdr.msg_iov = &mut iov[i];
                hdr.msg_iovlen = 1;
                hdr.msg_control = control[i].as_mut_ptr().cast();
                hdr.msg_controllen = size_of_val(&control[i]);
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every header's pointers refer to live buffers of the
        // stated lengths, which outlive the call.
        let rc = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(()),
                _ => Err(err).context("recvmmsg on AF_PACKET socket"),
            };
        }
        for (m, addr) in msgs.iter().zip(&sll).take(rc as usize) {
            metas.push(RecvMeta {
                len: m.msg_len as usize,
                pkttype: addr.sll_pkttype,
                csum_not_ready: csum_not_ready(&m.msg_hdr),
            });
        }
        Ok(())
    }
}

impl RawSocket {
    /// Keeps only IPv4 UDP datagrams to `port` or `also` (not fragments),
    /// in the kernel: a boot server's interface also carries TFTP and HTTP,
    /// which the DHCP socket should never have to look at. (`also` is the
    /// PXE boot-server port 4011 in proxy mode, else `port` again.)
    pub fn filter_udp_ports(&self, port: u16, also: u16) -> anyhow::Result<()> {
        let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        // Classic BPF; the frame is seen without VLAN tag (the kernel strips
        // it into metadata before packet sockets see it). Jumps count the
        // instructions they skip: accept is at 10, drop at 11.
        let prog = [
            ins(0x28, 0, 0, 12),              // 0: ldh [12]          ethertype
            ins(0x15, 0, 9, 0x0800),          // 1: jne #IPv4, drop
            ins(0x30, 0, 0, 23),              // 2: ldb [23]          protocol
            ins(0x15, 0, 7, 17),              // 3: jne #UDP, drop
            ins(0x28, 0, 0, 20),              // 4: ldh [20]          fragment
            ins(0x45, 5, 0, 0x1fff),          // 5: jset #offset, drop
            ins(0xb1, 0, 0, 14),              // 6: ldxb 4*([14]&0xf) IP header length
            ins(0x48, 0, 0, 16),              // 7: ldh [x + 16]      UDP destination port
            ins(0x15, 1, 0, u32::from(port)), // 8: jeq #port, accept
            ins(0x15, 0, 1, u32::from(also)), // 9: jne #also, drop
            ins(0x06, 0, 0, 0x0004_0000),     // 10: accept: ret whole frame
            ins(0x06, 0, 0, 0),               // 11: drop: ret 0
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .context("SO_ATTACH_FILTER")?;
        // Frames queued before the filter was attached are not filtered.
        let mut buf = vec![0u8; MAX_FRAME];
        while self.recv(&mut buf)?.is_some() {}
        Ok(())
    }
}

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Makes `socket` read nothing: a filter that drops every datagram before
/// it is queued. A UDP socket bound only so that the kernel finds a socket
/// for a port (and sends no ICMP port-unreachable) then costs no queueing,
/// no wakeup and no read per datagram.
pub fn drop_everything(socket: &impl AsRawFd) -> anyhow::Result<()> {
    let prog = [libc::sock_filter {
        code: 0x06, // ret #0: keep nothing
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at a live one-instruction program for the
    // length given; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_ATTACH_FILTER");
    }
    Ok(())
}

/// Makes a received frame checkable: a locally generated frame crossing a
/// veth may carry only a partial UDP checksum (`csum_not_ready`); zero means
/// "no checksum" to `frame::parse`, which is the truth for such a frame.
pub fn clear_partial_checksum(f: &mut [u8], meta: &RecvMeta) {
    if !meta.csum_not_ready {
        return;
    }
    let mut ip = 14;
    if f.get(12..14) == Some(&[0x81, 0x00]) {
        ip += 4;
    }
    let Some(&ver_ihl) = f.get(ip) else { return };
    let udp_csum = ip + usize::from(ver_ihl & 0x0f) * 4 + 6;
    if let Some(c) = f.get_mut(udp_csum..udp_csum + 2) {
        c.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_socket_that_drops_everything_reads_nothing_and_its_port_stays_quiet() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        drop_everything(&quiet).unwrap();
        quiet.set_nonblocking(true).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(quiet.local_addr().unwrap()).unwrap();
        for _ in 0..3 {
            client.send(b"request").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 64];
        let err = quiet.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // A port without a socket answers with ICMP port-unreachable, which
        // a connected UDP socket reports as ECONNREFUSED on its next call.
        client.send(b"again").unwrap();
        client.set_nonblocking(true).unwrap();
        let err = client.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // The same with the socket gone: refused, so the check above can fail.
        let addr = quiet.local_addr().unwrap();
        drop(quiet);
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.connect(addr).unwrap();
        gone.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        gone.send(b"request").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let err = gone.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }
}
