//! proxyDHCP in the kernel: boot information only (no address) to a
//! reserved machine's PXE, HTTP boot or iPXE DISCOVER on port 67 and its
//! REQUEST on the boot-server port 4011, from the blocks rendered per boot
//! variant. A REQUEST on 67 selects the server that offered an address,
//! never the proxy: it is passed up, and userspace stays silent too.
//! The same decisions as the userspace proxy (`dhcp::proxy`); anything
//! else is passed up, where the proxy stays silent too.

use aya_ebpf::programs::XdpContext;
use stormboot_common::{
    counters::Counter,
    layout::{msg, FLAG_BROADCAST},
    maps::{variant, Scratch},
    rules::{self, Destination, EthDest},
};

use crate::{parse::Request, reply::Decision};

#[inline(always)]
pub fn decide<'a>(
    ctx: &XdpContext,
    req: &Request,
    scratch: *mut Scratch,
) -> Result<Decision<'a>, Counter> {
    let reply_type = match (req.fields.msg_type, req.to_boot_port) {
        (msg::DISCOVER, false) => msg::OFFER,
        (msg::REQUEST, true) => msg::ACK,
        _ => return Err(Counter::PassOtherDhcp),
    };
    if req.variant == variant::PLAIN {
        return Err(Counter::PassNotBooting);
    }
    let (m, subnet) = crate::reply::machine(req, scratch)?;
    // Only the variant's own template: a proxy has nothing to say to a
    // machine with no boot file for what it asks.
    let block = crate::reply::template(m.set, req.variant).ok_or(Counter::PassUnknownMac)?;
    let iface = crate::reply::on_network(ctx, req, subnet, scratch)?;

    let ciaddr = rules::reply_ciaddr(reply_type, req.fields.ciaddr);
    let dest = if req.to_boot_port {
        // Back to where the boot-server request came from.
        Destination {
            ip: req.ip_src,
            port: req.sport,
            eth: EthDest::RequestSource,
            flags: req.flags,
        }
    } else {
        // No address is offered, so nothing to unicast to: broadcast
        // unless the client already has an address.
        let flags = if ciaddr == 0 {
            req.flags | FLAG_BROADCAST
        } else {
            req.flags
        };
        rules::destination(reply_type, req.giaddr, ciaddr, flags, 0)
    };
    Ok(Decision {
        reply_type,
        block,
        yiaddr: 0,
        named: None,
        dest,
        ours: u32::from_be_bytes(subnet.server_id),
        src_mac: iface.mac,
        // PXE clients match replies by their UUID: option 97 is echoed.
        echo_off: req.uuid_off as usize,
        echo_len: req.uuid_len as usize,
    })
}
