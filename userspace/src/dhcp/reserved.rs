//! Replies to reserved machines, made exactly as the XDP program makes
//! them: the same rules (`stormboot_common::rules`), the same rendered
//! blocks (`render::tables`), completed by `render::complete`, which
//! does in userspace what the program does in the kernel. The two
//! dataplanes' frames are therefore byte-identical.

use std::net::Ipv4Addr;

use stormboot_common::layout::msg;
use stormboot_common::maps::Block;
use stormboot_common::rules::{self, Verdict};

use crate::config::{Config, Reservation};
use crate::render::tables;
use crate::render::{self, Transaction};

use super::Reply;

/// The request fields the program reads.
pub struct Fields<'a> {
    pub msg_type: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub chaddr: [u8; 6],
    pub relay_info: &'a [u8],
    /// The boot variant the request asks for (`bootfile::variant_of`).
    pub variant: u16,
}

/// The verdict for a reserved client. `Pass` (the program leaves these to
/// the full server) is refined here: a REQUEST with ciaddr and option 50
/// both set breaks RFC 2131's MUST NOT but is common; it is taken as
/// RENEWING/REBINDING, ciaddr being the address in use.
pub fn verdict(f: &Fields<'_>, reserved: Ipv4Addr, ours: Ipv4Addr) -> Verdict {
    let ip = |a: Option<Ipv4Addr>| a.map_or(0, u32::from);
    let req = rules::Request {
        msg_type: f.msg_type,
        ciaddr: u32::from(f.ciaddr),
        requested_ip: ip(f.requested_ip),
        server_id: ip(f.server_id),
    };
    match rules::verdict(&req, u32::from(reserved), u32::from(ours)) {
        Verdict::Pass if f.msg_type == msg::REQUEST && !f.ciaddr.is_unspecified() => {
            if f.ciaddr == reserved {
                Verdict::Ack
            } else {
                Verdict::Nak
            }
        }
        v => v,
    }
}

/// The reply of type `reply_type` (OFFER, ACK or NAK) for reservation `r`.
/// `nak` is the subnet's NAK block, as in the program's subnet map.
pub fn reply(
    cfg: &Config,
    r: &Reservation,
    nak: Option<&Block>,
    f: &Fields<'_>,
    reply_type: u8,
) -> Result<Reply, String> {
    let yiaddr = if reply_type == msg::NAK {
        Ipv4Addr::UNSPECIFIED
    } else {
        r.ip
    };
    let dest = rules::destination(
        reply_type,
        u32::from(f.giaddr),
        u32::from(f.ciaddr),
        f.flags,
        u32::from(yiaddr),
    );
    let t = Transaction {
        msg_type: reply_type,
        xid: f.xid,
        flags: dest.flags,
        ciaddr: Ipv4Addr::from(rules::reply_ciaddr(reply_type, u32::from(f.ciaddr))),
        giaddr: f.giaddr,
        chaddr: f.chaddr,
        relay_info: f.relay_info,
    };
    let payload = if reply_type == msg::NAK {
        let block = nak.ok_or("no NAK block")?;
        render::complete(block, &t)
    } else {
        // The variant's reply, else the plain one: the program's lookup.
        let block = tables::reservation_block(cfg, r, f.variant).map_err(|e| e.to_string())?;
        render::complete(&block, &t)
    }
    .map_err(|e| e.to_string())?;
    Ok(Reply {
        payload,
        dest,
        msg_type: reply_type,
        yiaddr,
    })
}
