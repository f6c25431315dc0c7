//! Renders replies: the one encoder behind both dataplanes.
//!
//! `reply_block`/`nak_block` produce the blocks the XDP program replays
//! (`tables` makes the shared templates of them); `assemble` writes what is
//! one machine's own into a template and `complete` fills the
//! per-transaction fields, each exactly as the program does, so the
//! userspace dataplane sends byte-identical frames.

pub mod tables;

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, DhcpOptions, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};
use stormboot_common::{
    csum,
    layout::{
        msg, opt, reply_len, BLOCK_LEN, OFF_CHADDR, OFF_CIADDR, OFF_FLAGS, OFF_GIADDR, OFF_XID,
        OFF_YIADDR, OPTIONS_OFF,
    },
    maps::{mac_text, Block, Machine, MAC_TEXT_LEN},
};

/// What an OFFER/ACK for one client says, besides per-transaction fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplySpec<'a> {
    pub server_id: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub subnet_mask: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub routers: &'a [Ipv4Addr],
    pub dns: &'a [Ipv4Addr],
    pub hostname: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub lease_time: Duration,
    pub renew_time: Duration,
    pub rebind_time: Duration,
    /// Further options (26, 42, 119, 121, custom), already encoded.
    pub extra: Vec<crate::config::CustomOption>,
    /// Boot file and options, for a machine with a boot profile.
    pub boot: Option<crate::bootfile::BootSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("reply is {0} bytes, more than the {BLOCK_LEN} a reply may have")]
    TooLong(usize),
    #[error("cannot encode reply: {0}")]
    Encode(String),
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl<'a> ReplySpec<'a> {
    /// What a reply from `subnet` says to a client with address `yiaddr`
    /// and host name `hostname`; a reservation's own options win over the
    /// subnet's.
    pub fn new(
        cfg: &'a crate::config::Config,
        subnet: &'a crate::config::Subnet,
        reservation: Option<&crate::config::Reservation>,
        yiaddr: Ipv4Addr,
        hostname: Option<&'a str>,
    ) -> Self {
        ReplySpec {
            server_id: cfg.server.address,
            yiaddr,
            subnet_mask: subnet.net.netmask(),
            broadcast: subnet.net.broadcast(),
            routers: &subnet.routers,
            dns: &subnet.dns,
            hostname,
            domain: subnet.domain.as_deref(),
            lease_time: subnet.lease_time,
            renew_time: subnet.renew_time,
            rebind_time: subnet.rebind_time,
            extra: subnet.extra_options(reservation),
            boot: None,
        }
    }

    /// The same with the boot part of `boot`, and the subnet's boot lease
    /// when it has one.
    pub fn with_boot(
        mut self,
        subnet: &crate::config::Subnet,
        boot: Option<crate::bootfile::BootSpec>,
    ) -> Self {
        (self.lease_time, self.renew_time, self.rebind_time) = subnet.lease_times(boot.is_some());
        self.boot = boot;
        self
    }
}

/// The options of an OFFER or ACK, without option 82 and END: the one list
/// both dataplanes send. `lease` is false for an ACK to an INFORM, which
/// carries no lease times (RFC 2131 section 4.3.5).
pub fn reply_options(spec: &ReplySpec<'_>, msg_type: MessageType, lease: bool) -> DhcpOptions {
    let mut o = DhcpOptions::new();
    o.insert(DhcpOption::MessageType(msg_type));
    o.insert(DhcpOption::ServerIdentifier(spec.server_id));
    if lease {
        o.insert(DhcpOption::AddressLeaseTime(secs(spec.lease_time)));
        o.insert(DhcpOption::Renewal(secs(spec.renew_time)));
        o.insert(DhcpOption::Rebinding(secs(spec.rebind_time)));
    }
    o.insert(DhcpOption::SubnetMask(spec.subnet_mask));
    o.insert(DhcpOption::BroadcastAddr(spec.broadcast));
    if !spec.routers.is_empty() {
        o.insert(DhcpOption::Router(spec.routers.to_vec()));
    }
    if !spec.dns.is_empty() {
        o.insert(DhcpOption::DomainNameServer(spec.dns.to_vec()));
    }
    if let Some(h) = spec.hostname {
        o.insert(DhcpOption::Hostname(h.to_string()));
    }
    if let Some(d) = spec.domain {
        o.insert(DhcpOption::DomainName(d.to_string()));
    }
    for x in &spec.extra {
        o.insert(x.to_dhcproto());
    }
    if let Some(b) = &spec.boot {
        for x in crate::bootfile::options(b) {
            o.insert(x);
        }
    }
    o
}

/// The OFFER/ACK block for one reservation.
pub fn reply_block(spec: &ReplySpec<'_>) -> Result<Block, RenderError> {
    let mut m = skeleton(spec.yiaddr);
    if let Some(b) = &spec.boot {
        m.set_siaddr(b.next_server);
        m.set_fname_str(&b.file);
    }
    // The type is patched per reply; Offer is a placeholder.
    m.set_opts(reply_options(spec, MessageType::Offer, true));
    block_of(&m)
}

/// The proxyDHCP block of reservation `mac` for boot variant `v`
/// (`dhcp::proxy::reply_options`, no address); None when `v` gets no boot
/// file. The option 97 a client sends is echoed at `end_off`.
pub fn proxy_block(
    cfg: &crate::config::Config,
    mac: [u8; 6],
    v: u16,
) -> Result<Option<Block>, RenderError> {
    let Some((opts, boot)) = crate::dhcp::proxy::reply_options(cfg, v, mac, msg::OFFER) else {
        return Ok(None);
    };
    let mut m = skeleton(Ipv4Addr::UNSPECIFIED);
    m.set_siaddr(boot.next_server);
    m.set_fname_str(&boot.file);
    m.set_opts(opts);
    block_of(&m).map(Some)
}

/// The NAK block of a subnet: RFC 2131 table 3 allows only the server
/// identifier (and a message) beside the type.
pub fn nak_block(server_id: Ipv4Addr) -> Result<Block, RenderError> {
    let mut m = skeleton(Ipv4Addr::UNSPECIFIED);
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Nak));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server_id));
    block_of(&m)
}

fn skeleton(yiaddr: Ipv4Addr) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0, z, yiaddr, z, z, &[0; 6]);
    m.set_opcode(Opcode::BootReply);
    m
}

/// Encodes and turns the message into a block: type byte and END zeroed,
/// their offsets recorded, and the partial checksum of the rest.
fn block_of(m: &Message) -> Result<Block, RenderError> {
    let mut bytes = Vec::with_capacity(BLOCK_LEN);
    m.encode(&mut Encoder::new(&mut bytes))
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    if bytes.len() > BLOCK_LEN {
        return Err(RenderError::TooLong(bytes.len()));
    }
    let mut b = Block::zeroed();
    b.bytes[..bytes.len()].copy_from_slice(&bytes);
    let mut pos = OPTIONS_OFF;
    let (mut type_off, mut end_off) = (None, None);
    while pos < bytes.len() {
        match bytes[pos] {
            opt::END => {
                end_off = Some(pos);
                break;
            }
            opt::PAD => pos += 1,
            code => {
                if code == opt::MESSAGE_TYPE {
                    type_off = Some(pos + 2);
                }
                pos += 2 + bytes[pos + 1] as usize;
            }
        }
    }
    let (Some(type_off), Some(end_off)) = (type_off, end_off) else {
        return Err(RenderError::Encode(
            "encoder left out option 53 or END".into(),
        ));
    };
    b.bytes[type_off] = 0;
    b.bytes[end_off] = 0;
    b.type_off = type_off as u16;
    b.end_off = end_off as u16;
    b.csum = csum::sum_bytes(&b.bytes);
    Ok(b)
}

/// Per-transaction fields of one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transaction<'a> {
    pub msg_type: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Option 82 of the request (code and length bytes included), echoed.
    pub relay_info: &'a [u8],
}

/// The UDP payload of a reply: the block completed, and cut to length,
/// exactly as the XDP program does it.
pub fn complete(block: &Block, t: &Transaction<'_>) -> Result<Vec<u8>, RenderError> {
    let end = block.end_off as usize + t.relay_info.len();
    if end >= BLOCK_LEN {
        return Err(RenderError::TooLong(end + 1));
    }
    let mut p = block.bytes[..reply_len(end)].to_vec();
    for off in block.mac_off.into_iter().filter(|o| *o != 0) {
        let off = off as usize;
        p[off..off + MAC_TEXT_LEN].copy_from_slice(&mac_text(&t.chaddr));
    }
    p[OFF_XID..OFF_XID + 4].copy_from_slice(&t.xid.to_be_bytes());
    p[OFF_FLAGS..OFF_FLAGS + 2].copy_from_slice(&t.flags.to_be_bytes());
    p[OFF_CIADDR..OFF_CIADDR + 4].copy_from_slice(&t.ciaddr.octets());
    p[OFF_GIADDR..OFF_GIADDR + 4].copy_from_slice(&t.giaddr.octets());
    p[OFF_CHADDR..OFF_CHADDR + 6].copy_from_slice(&t.chaddr);
    p[block.type_off as usize] = t.msg_type;
    p[block.end_off as usize..end].copy_from_slice(t.relay_info);
    p[end] = opt::END;
    Ok(p)
}

/// One machine's OFFER/ACK block made from its template: its address in
/// yiaddr and its host name as option 12 where the template's options
/// end, as the program writes them. A name that leaves no room for END is
/// refused, as a whole reply that long would be.
pub fn assemble(template: &Block, m: &Machine) -> Result<Block, RenderError> {
    let mut b = *template;
    b.bytes[OFF_YIADDR..OFF_YIADDR + 4].copy_from_slice(&m.ip);
    let n = m.name_len as usize;
    if n != 0 {
        let at = b.end_off as usize;
        if at + 2 + n >= BLOCK_LEN {
            return Err(RenderError::TooLong(at + 2 + n + 1));
        }
        b.bytes[at] = opt::HOSTNAME;
        b.bytes[at + 1] = m.name_len;
        b.bytes[at + 2..at + 2 + n].copy_from_slice(&m.name[..n]);
        b.end_off += 2 + m.name_len as u16;
    }
    b.csum = csum::sum_bytes(&b.bytes);
    Ok(b)
}

/// Human name of a message type, for logs.
pub fn type_name(t: u8) -> &'static str {
    match t {
        msg::DISCOVER => "DHCPDISCOVER",
        msg::OFFER => "DHCPOFFER",
        msg::REQUEST => "DHCPREQUEST",
        msg::DECLINE => "DHCPDECLINE",
        msg::ACK => "DHCPACK",
        msg::NAK => "DHCPNAK",
        msg::RELEASE => "DHCPRELEASE",
        msg::INFORM => "DHCPINFORM",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::{Decodable, Decoder};

    fn spec<'a>(routers: &'a [Ipv4Addr], dns: &'a [Ipv4Addr]) -> ReplySpec<'a> {
        ReplySpec {
            server_id: Ipv4Addr::new(10, 50, 0, 1),
            yiaddr: Ipv4Addr::new(10, 50, 0, 11),
            subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            broadcast: Ipv4Addr::new(10, 50, 0, 255),
            routers,
            dns,
            hostname: Some("node1"),
            domain: Some("rack1.example"),
            lease_time: Duration::from_secs(3600),
            renew_time: Duration::from_secs(1800),
            rebind_time: Duration::from_secs(3150),
            extra: Vec::new(),
            boot: None,
        }
    }

    #[test]
    fn replies_end_after_end_but_not_below_the_bootp_minimum() {
        let b = nak_block(Ipv4Addr::new(10, 50, 0, 1)).unwrap();
        let t = Transaction {
            msg_type: msg::NAK,
            xid: 1,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [2, 0, 0, 0, 0, 1],
            relay_info: &[],
        };
        assert_eq!(complete(&b, &t).unwrap().len(), 300);
        let relay = [82u8, 100]
            .into_iter()
            .chain(std::iter::repeat_n(7, 100))
            .collect::<Vec<_>>();
        let t = Transaction {
            relay_info: &relay,
            ..t
        };
        let p = complete(&b, &t).unwrap();
        assert_eq!(p.len(), b.end_off as usize + relay.len() + 1);
        assert_eq!(*p.last().unwrap(), opt::END);
    }

    #[test]
    fn completed_block_decodes_to_the_reply() {
        let r = [Ipv4Addr::new(10, 50, 0, 1)];
        let b = reply_block(&spec(&r, &r)).unwrap();
        let relay = [82, 6, 1, 4, b'p', b'o', b'r', b't'];
        let t = Transaction {
            msg_type: msg::ACK,
            xid: 0xdeadbeef,
            flags: 0x8000,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::new(10, 51, 0, 1),
            chaddr: [0x52, 0x54, 0, 0, 0, 1],
            relay_info: &relay,
        };
        let p = complete(&b, &t).unwrap();
        let m = Message::decode(&mut Decoder::new(&p)).unwrap();
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), 0xdeadbeef);
        assert!(m.flags().broadcast());
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 50, 0, 11));
        assert_eq!(m.giaddr(), Ipv4Addr::new(10, 51, 0, 1));
        assert_eq!(m.chaddr(), &[0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
        let o = m.opts();
        assert!(
            matches!(o.get(dhcproto::v4::OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "node1")
        );
        assert!(matches!(
            o.get(dhcproto::v4::OptionCode::AddressLeaseTime),
            Some(DhcpOption::AddressLeaseTime(3600))
        ));
        assert!(o
            .get(dhcproto::v4::OptionCode::RelayAgentInformation)
            .is_some());
        // The option 82 echo is last before END (RFC 3046 2.2).
        assert_eq!(p[b.end_off as usize], 82);
        assert_eq!(p[b.end_off as usize + relay.len()], opt::END);
    }

    #[test]
    fn partial_checksum_covers_everything_but_the_patched_fields() {
        let b = nak_block(Ipv4Addr::new(10, 50, 0, 1)).unwrap();
        let mut zeroed = b.bytes;
        zeroed[b.type_off as usize] = 0;
        assert_eq!(b.csum, csum::sum_bytes(&zeroed));
        assert_eq!(b.bytes[b.end_off as usize], 0);
    }

    #[test]
    fn oversized_reply_is_refused() {
        let many: Vec<Ipv4Addr> = (0..70).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert!(matches!(
            reply_block(&spec(&many, &many)),
            Err(RenderError::TooLong(_))
        ));
    }
}
