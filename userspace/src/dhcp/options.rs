//! The options and bytes of the replies the pools answer (reservations
//! are rendered by `crate::render`, as for the XDP program).
//!
//! The option list is `render::reply_options`, the same the reservation
//! blocks are rendered from; then the echoed option 82 and END, padded to
//! the BOOTP minimum exactly as `render::complete` pads, so a pool reply
//! and a reserved reply are laid out alike. Option 55 does not reorder or
//! filter them.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOptions, Flags, HType, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};
use stormboot_common::layout::{opt, reply_len, BLOCK_LEN, OPTIONS_OFF};

use crate::config::{Config, Reservation, Subnet};
use crate::render;

/// Replies longer than this are never sent: the largest Ethernet payload
/// less the IPv4 and UDP headers.
const MAX_LEN: usize = 1500 - 28;

/// What an OFFER or ACK from a pool, or an ACK to an INFORM, says.
pub struct Spec<'a> {
    pub cfg: &'a Config,
    pub subnet: &'a Subnet,
    /// The client's reservation in this subnet (INFORM only: offers and
    /// acks of reserved clients are rendered like the XDP program's).
    pub reservation: Option<&'a Reservation>,
    pub msg_type: MessageType,
    /// Host name (option 12): the reservation's, else the client's.
    pub hostname: Option<&'a str>,
    /// Include 51, 58 and 59; false for an ACK to an INFORM (RFC 2131
    /// 4.3.5: no lease time).
    pub lease: bool,
    /// What the client boots, when its subnet (or the default) has a profile.
    pub boot: Option<crate::bootfile::BootSpec>,
}

pub fn build(spec: &Spec<'_>) -> DhcpOptions {
    let rs = render::ReplySpec::new(
        spec.cfg,
        spec.subnet,
        spec.reservation,
        Ipv4Addr::UNSPECIFIED,
        spec.hostname,
    )
    .with_boot(spec.subnet, spec.boot.clone());
    render::reply_options(&rs, spec.msg_type, spec.lease)
}

/// The per-transaction fields of a reply.
pub struct Header<'a> {
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub htype: HType,
    pub chaddr: &'a [u8],
    /// Option 82 of the request, code and length included; echoed last.
    pub relay_info: &'a [u8],
    /// Option 57 of the request, if any.
    pub max_size: Option<u16>,
    /// Next server and file name for the BOOTP header.
    pub boot: Option<&'a crate::bootfile::BootSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// Longer than the client accepts (548 bytes unless option 57 says
    /// more) or than an Ethernet frame carries.
    TooLong(usize),
    Encoder,
}

/// The UDP payload: dhcproto's encoding with the echoed option 82 put
/// before END, ending after END, at least 300 bytes.
pub fn encode(h: &Header<'_>, opts: DhcpOptions) -> Result<Vec<u8>, EncodeError> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(h.xid, h.ciaddr, h.yiaddr, z, h.giaddr, h.chaddr);
    m.set_opcode(Opcode::BootReply);
    m.set_htype(h.htype);
    m.set_flags(Flags::new(h.flags));
    if let Some(b) = h.boot {
        m.set_siaddr(b.next_server);
        m.set_fname_str(&b.file);
    }
    m.set_opts(opts);
    let mut bytes = Vec::with_capacity(BLOCK_LEN);
    m.encode(&mut Encoder::new(&mut bytes))
        .map_err(|_| EncodeError::Encoder)?;
    let end = end_offset(&bytes).ok_or(EncodeError::Encoder)?;
    bytes.truncate(end);
    bytes.extend_from_slice(h.relay_info);
    bytes.push(opt::END);
    let len = reply_len(bytes.len() - 1);
    let limit = h
        .max_size
        .map_or(BLOCK_LEN, |m| usize::from(m).saturating_sub(28))
        .clamp(BLOCK_LEN, MAX_LEN);
    if len > limit {
        return Err(EncodeError::TooLong(len));
    }
    bytes.resize(len, opt::PAD);
    Ok(bytes)
}

/// Offset of the END option of an encoded message.
fn end_offset(bytes: &[u8]) -> Option<usize> {
    let mut pos = OPTIONS_OFF;
    while pos < bytes.len() {
        match bytes[pos] {
            opt::END => return Some(pos),
            opt::PAD => pos += 1,
            _ => pos += 2 + usize::from(*bytes.get(pos + 1)?),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::DhcpOption;
    use dhcproto::{Decodable, Decoder};

    fn header<'a>(relay: &'a [u8], max_size: Option<u16>) -> Header<'a> {
        Header {
            xid: 0x1234_5678,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::new(10, 50, 0, 100),
            giaddr: Ipv4Addr::new(10, 60, 0, 1),
            htype: HType::Eth,
            chaddr: &[2, 0, 0, 0, 0, 1],
            relay_info: relay,
            max_size,
            boot: None,
        }
    }

    fn ack() -> DhcpOptions {
        let mut o = DhcpOptions::new();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 50, 0, 1)));
        o
    }

    #[test]
    fn relay_info_last_and_padded() {
        let relay = [82, 6, 1, 4, b'p', b'o', b'r', b't'];
        let p = encode(&header(&relay, None), ack()).unwrap();
        assert_eq!(p.len(), 300);
        // 53 (3 bytes), 54 (6 bytes), then 82, then END.
        let at = OPTIONS_OFF + 3 + 6;
        assert_eq!(&p[at..at + relay.len()], relay);
        assert_eq!(p[at + relay.len()], opt::END);
        assert!(p[at + relay.len() + 1..].iter().all(|&b| b == 0));
        let m = Message::decode(&mut Decoder::new(&p)).unwrap();
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), 0x1234_5678);
        assert_eq!(m.giaddr(), Ipv4Addr::new(10, 60, 0, 1));
        assert!(m
            .opts()
            .get(dhcproto::v4::OptionCode::RelayAgentInformation)
            .is_some());
    }

    #[test]
    fn length_limits_follow_option_57() {
        let mut o = ack();
        o.insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
            200.into(),
            vec![7; 250],
        )));
        o.insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
            201.into(),
            vec![7; 250],
        )));
        assert!(matches!(
            encode(&header(&[], None), o.clone()),
            Err(EncodeError::TooLong(_))
        ));
        assert!(matches!(
            encode(&header(&[], Some(576)), o.clone()),
            Err(EncodeError::TooLong(_))
        ));
        let p = encode(&header(&[], Some(1500)), o).unwrap();
        assert_eq!(*p.last().unwrap(), opt::END);
    }
}
