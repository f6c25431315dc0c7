//! Whether replies the program sends back out (XDP_TX) in driver mode leave
//! an interface at all, read from rtnetlink.
//!
//! A veth delivers a driver-mode XDP_TX frame only into its peer's XDP
//! receive queue, which exists only while the peer runs a driver-mode XDP
//! program; otherwise the kernel counts the frame in the veth's
//! `tx_dropped` and frees it. A veth whose peer is a bridge port (the usual
//! lab and container topology) has no such program, so driver mode answers
//! nobody there, while skb (generic) mode sends XDP_TX through the normal
//! transmit path. Netlink, not sysfs, because `/sys/class/net` shows the
//! namespace sysfs was mounted in, not the daemon's (`nsenter --net`).

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkHeader, LinkInfo, LinkMessage, LinkXdp,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// What rtnetlink says about one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "veth", "bridge", ...; None for physical devices.
    pub kind: Option<String>,
    /// The peer's index (a veth's other end); in `link_netnsid`'s namespace.
    pub link: Option<u32>,
    /// The namespace of `link`, as seen from the queried one; None: same.
    pub link_netnsid: Option<i32>,
    /// The bridge (or bond) the interface is a port of.
    pub master: Option<u32>,
    /// Id of the driver-mode XDP program, 0 when none.
    pub drv_prog: u32,
    /// Id of the skb-mode (generic) XDP program, 0 when none.
    pub skb_prog: u32,
    /// Frames the interface failed to send; for a veth this includes
    /// driver-mode XDP_TX frames its peer could not take.
    pub tx_dropped: u64,
}

/// Reads one interface, in this process's network namespace (`netnsid`
/// None) or in the namespace with that id as seen from it.
pub fn get(index: u32, netnsid: Option<i32>) -> std::io::Result<Link> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut msg = LinkMessage::default();
    msg.header = LinkHeader {
        index,
        ..Default::default()
    };
    if let Some(id) = netnsid {
        msg.attributes.push(LinkAttribute::IfNetnsId(id));
    }
    let mut req = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(msg)),
    );
    req.header.flags = NLM_F_REQUEST;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let (reply, _) = socket.recv_from_full()?;
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|e| std::io::Error::other(format!("rtnetlink reply: {e}")))?;
    match parsed.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => Ok(from_message(&m)),
        NetlinkPayload::Error(e) => Err(std::io::Error::from_raw_os_error(
            e.code.map_or(libc::EIO, |c| -c.get()),
        )),
        other => Err(std::io::Error::other(format!(
            "rtnetlink: unexpected reply {other:?}"
        ))),
    }
}

fn from_message(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        ..Default::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Link(i) => l.link = Some(*i),
            LinkAttribute::LinkNetNsId(i) => l.link_netnsid = Some(*i),
            LinkAttribute::Controller(i) => l.master = Some(*i),
            LinkAttribute::Stats64(s) => l.tx_dropped = s.tx_dropped,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(kind_name(k));
                    }
                }
            }
            LinkAttribute::Xdp(xs) => {
                for x in xs {
                    match x {
                        LinkXdp::DrvProgId(id) => l.drv_prog = *id,
                        LinkXdp::SkbProgId(id) => l.skb_prog = *id,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Veth => "veth".into(),
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Other(s) => s.clone(),
        k => format!("{k:?}").to_lowercase(),
    }
}

/// Why driver-mode XDP_TX from an interface reaches nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// The veth's other end, by name when it could be read.
    pub peer: String,
    /// The bridge the peer is a port of, when it is one.
    pub bridge: Option<String>,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it is a veth whose peer {} ", self.peer)?;
        if let Some(b) = &self.bridge {
            write!(f, "(a port of bridge {b}) ")?;
        }
        write!(
            f,
            "runs no XDP program, and a veth drops XDP_TX frames unless its peer runs one"
        )
    }
}

/// The rule, on what netlink said: a veth whose peer (read, or unreadable)
/// runs no driver-mode program drops driver-mode XDP_TX. `peer` is None
/// when the peer could not be read; `bridge` is the peer's master when it
/// is a bridge.
pub fn judge(own: &Link, peer: Option<&Link>, bridge: Option<&Link>) -> Option<Undelivered> {
    if own.kind.as_deref() != Some("veth") {
        return None;
    }
    match peer {
        Some(p) if p.drv_prog != 0 => None,
        Some(p) => Some(Undelivered {
            peer: p.name.clone(),
            bridge: bridge
                .filter(|b| b.kind.as_deref() == Some("bridge"))
                .map(|b| b.name.clone()),
        }),
        // A veth's peer hidden from us (no namespace id) is left to the
        // run-time watch: the drops will tell.
        None => None,
    }
}

/// Reads `index` and its veth peer (and the peer's bridge) and judges
/// whether driver-mode XDP_TX is delivered. Errors reading the peer count
/// as "cannot tell" (None).
pub fn check(index: u32) -> std::io::Result<(Link, Option<Undelivered>)> {
    let own = get(index, None)?;
    if own.kind.as_deref() != Some("veth") {
        return Ok((own, None));
    }
    let peer = own.link.and_then(|i| get(i, own.link_netnsid).ok());
    let bridge = peer
        .as_ref()
        .and_then(|p| p.master)
        .and_then(|m| get(m, own.link_netnsid).ok());
    let verdict = judge(&own, peer.as_ref(), bridge.as_ref());
    Ok((own, verdict))
}

/// The interface's `tx_dropped`, for the run-time watch.
pub fn tx_dropped(index: u32) -> std::io::Result<u64> {
    get(index, None).map(|l| l.tx_dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth(drv_prog: u32) -> Link {
        Link {
            kind: Some("veth".into()),
            name: "sb0".into(),
            drv_prog,
            ..Default::default()
        }
    }

    #[test]
    fn a_veth_into_a_bridge_does_not_deliver_and_says_where() {
        let peer = Link {
            name: "sb0-br".into(),
            ..veth(0)
        };
        let br = Link {
            kind: Some("bridge".into()),
            name: "br0".into(),
            ..Default::default()
        };
        let u = judge(&veth(0), Some(&peer), Some(&br)).unwrap();
        assert_eq!(u.bridge.as_deref(), Some("br0"));
        let text = u.to_string();
        assert!(text.contains("sb0-br") && text.contains("br0"), "{text}");
    }

    #[test]
    fn a_peer_with_a_program_or_a_device_that_is_no_veth_delivers() {
        assert_eq!(judge(&veth(0), Some(&veth(7)), None), None);
        let phys = Link {
            kind: None,
            ..Default::default()
        };
        assert_eq!(judge(&phys, None, None), None);
        assert_eq!(judge(&veth(0), None, None), None);
    }

    #[test]
    fn loopback_reads_as_a_device_that_is_no_veth() {
        let (lo, verdict) = check(1).unwrap();
        assert_eq!(lo.name, "lo");
        assert_eq!(verdict, None);
    }
}
