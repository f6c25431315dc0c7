//! proxyDHCP (PXE specification 2.1, section 2.2.4): beside a DHCP server
//! that gives the addresses, answer PXE and iPXE clients with boot
//! information only: an OFFER without an address to their DISCOVER on port
//! 67, and an ACK to the REQUEST PXE firmware sends the boot server on port
//! 4011. A REQUEST on 67 selects the DHCP server that offered the address
//! and is never answered (as dnsmasq's proxy: it answers REQUESTs on 4011
//! only). Clients that are not booting get no answer at all.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, DhcpOptions, MessageType, OptionCode};
use stormboot_common::layout::{msg, FLAG_BROADCAST};
use stormboot_common::maps::variant;
use stormboot_common::rules::{self, Destination, EthDest};

use super::options::{self, Header};
use super::Reply;
use crate::bootfile;
use crate::config::Config;
use crate::reservation::book::Book;

/// Where a proxy request came from.
pub struct ProxyRequest<'a> {
    pub msg: &'a dhcproto::v4::Message,
    pub mac: [u8; 6],
    /// Sent to the PXE boot-server port (4011) rather than 67.
    pub to_boot_port: bool,
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
}

/// The proxy's answer and why (a note, as `Outcome::note`).
pub fn answer(book: &Book, r: &ProxyRequest<'_>) -> (Option<Reply>, &'static str) {
    let cfg: &Config = book.config();
    let m = r.msg;
    let reply_type = match (m.opts().msg_type(), r.to_boot_port) {
        (Some(MessageType::Discover), false) => msg::OFFER,
        (Some(MessageType::Request), true) => msg::ACK,
        (Some(MessageType::Request), false) => return (None, "proxy-request-on-67"),
        _ => return (None, "ignored-message-type"),
    };
    let v = bootfile::variant_of(m, &cfg.boot.ipxe_user_class);
    if v == variant::PLAIN {
        return (None, "proxy-not-booting");
    }
    let reserved = book.reservation(&r.mac);
    if reserved.is_some_and(|x| !x.allow_pxe) {
        return (None, "proxy-pxe-not-allowed");
    }
    let profile = reserved
        .and_then(|x| bootfile::reservation_profile(cfg, x))
        .or(cfg.boot.default_profile);
    if profile.is_none() {
        return (None, "proxy-no-profile");
    }
    let Some((mut o, boot)) = reply_options(cfg, v, r.mac, reply_type) else {
        return (None, "proxy-not-booting");
    };
    // PXE clients match replies by their UUID (option 97): echo it. It has
    // the highest code of a proxy reply's options, so it comes last, where
    // the XDP program echoes it into a rendered block.
    if let Some(DhcpOption::ClientMachineIdentifier(id)) =
        m.opts().get(OptionCode::ClientMachineIdentifier)
    {
        o.insert(DhcpOption::ClientMachineIdentifier(id.clone()));
    }

    let ciaddr = if reply_type == msg::ACK {
        m.ciaddr()
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let flags = m.flags().into();
    let dest = if r.to_boot_port {
        // Back to where the boot-server request came from.
        Destination {
            ip: u32::from(r.src_ip),
            port: r.src_port,
            eth: EthDest::RequestSource,
            flags,
        }
    } else {
        // No address is offered, so nothing to unicast to: broadcast unless
        // the client already has an address.
        let flags = if ciaddr.is_unspecified() {
            flags | FLAG_BROADCAST
        } else {
            flags
        };
        rules::destination(
            reply_type,
            u32::from(m.giaddr()),
            u32::from(ciaddr),
            flags,
            0,
        )
    };
    let header = Header {
        xid: m.xid(),
        flags: dest.flags,
        ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: m.giaddr(),
        htype: m.htype(),
        chaddr: m.chaddr(),
        relay_info: &[],
        max_size: None,
        boot: Some(&boot),
    };
    match options::encode(&header, o) {
        Ok(payload) => (
            Some(Reply {
                payload,
                dest,
                msg_type: reply_type,
                yiaddr: Ipv4Addr::UNSPECIFIED,
            }),
            if reply_type == msg::OFFER {
                "proxy-offer"
            } else {
                "proxy-ack"
            },
        ),
        Err(_) => (None, "reply-too-long"),
    }
}

/// What a proxy reply of `reply_type` to `mac`'s request for boot variant
/// `v` says, but for the echoed option 97, and its boot part; None when
/// `v` gets no boot file. The userspace proxy and the blocks the XDP
/// program replays (`render::proxy_block`) are both built from this.
pub fn reply_options(
    cfg: &Config,
    v: u16,
    mac: [u8; 6],
    reply_type: u8,
) -> Option<(DhcpOptions, bootfile::BootSpec)> {
    let mut boot = bootfile::boot_spec(cfg, v, mac)?;
    // The proxy is the ProxyDHCP offer: telling iPXE not to wait for one
    // would be telling it to ignore us.
    boot.ipxe_no_proxydhcp = false;

    let mut o = DhcpOptions::new();
    o.insert(DhcpOption::MessageType(MessageType::from(reply_type)));
    o.insert(DhcpOption::ServerIdentifier(cfg.server.address));
    for x in bootfile::options(&boot) {
        o.insert(x);
    }
    // Firmware takes an offer without an address as ProxyDHCP only when it
    // says PXEClient, whatever booted it.
    o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
    if o.get(OptionCode::VendorExtensions).is_none() {
        o.insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
    }
    Some((o, boot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{Message, Opcode};
    use dhcproto::{Decodable, Decoder};
    use std::path::Path;

    const CFG: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\nmode = \"proxy\"\n\n\
                       [boot]\ndefault_profile = \"d\"\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n\n\
                       [[subnet]]\ncidr = \"10.50.0.0/24\"\n";
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 9];

    fn client(t: MessageType, vendor: Option<&[u8]>, arch: Option<u16>) -> Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(7, z, z, z, z, &MAC);
        m.set_opcode(Opcode::BootRequest);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        if let Some(v) = vendor {
            m.opts_mut().insert(DhcpOption::ClassIdentifier(v.to_vec()));
        }
        if let Some(a) = arch {
            m.opts_mut()
                .insert(DhcpOption::ClientSystemArchitecture(a.into()));
        }
        m.opts_mut()
            .insert(DhcpOption::ClientMachineIdentifier(vec![0, 1, 2, 3]));
        m
    }

    fn ask(m: &Message, to_boot_port: bool) -> (Option<Reply>, &'static str) {
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        answer(
            &Book::of_config(&cfg),
            &ProxyRequest {
                msg: m,
                mac: MAC,
                to_boot_port,
                src_ip: Ipv4Addr::new(10, 50, 0, 77),
                src_port: 4011,
            },
        )
    }

    #[test]
    fn pxe_discover_gets_boot_information_without_an_address() {
        let (r, note) = ask(
            &client(
                MessageType::Discover,
                Some(b"PXEClient:Arch:00007:UNDI:003000"),
                Some(7),
            ),
            false,
        );
        let r = r.expect("an offer");
        assert_eq!(note, "proxy-offer");
        let m = Message::decode(&mut Decoder::new(&r.payload)).unwrap();
        assert_eq!(
            m.yiaddr(),
            Ipv4Addr::UNSPECIFIED,
            "a proxy never offers an address"
        );
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 50, 0, 1));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
        assert!(
            matches!(m.opts().get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(v)) if v == b"PXEClient")
        );
        assert!(
            matches!(m.opts().get(OptionCode::ClientMachineIdentifier), Some(DhcpOption::ClientMachineIdentifier(v)) if v == &[0, 1, 2, 3])
        );
        assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert_eq!(
            r.dest.ip,
            u32::MAX,
            "broadcast: the client has no address yet"
        );
    }

    #[test]
    fn a_machine_not_allowed_to_pxe_boot_gets_nothing() {
        let text = format!(
            "{CFG}\n[[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.9\"\nallow_pxe = false\n"
        );
        let cfg = Config::from_str(&text, Path::new("stormboot.toml")).unwrap();
        let m = client(
            MessageType::Discover,
            Some(b"PXEClient:Arch:00007:UNDI:003000"),
            Some(7),
        );
        let req = ProxyRequest {
            msg: &m,
            mac: MAC,
            to_boot_port: false,
            src_ip: Ipv4Addr::UNSPECIFIED,
            src_port: 68,
        };
        let (r, note) = answer(&Book::of_config(&cfg), &req);
        assert!(r.is_none());
        assert_eq!(note, "proxy-pxe-not-allowed");
        // The same machine, allowed, is answered.
        let cfg = Config::from_str(
            &text.replace("allow_pxe = false", "allow_pxe = true"),
            Path::new("stormboot.toml"),
        )
        .unwrap();
        assert!(answer(&Book::of_config(&cfg), &req).0.is_some());
    }

    #[test]
    fn boot_server_request_is_answered_where_it_came_from() {
        let mut m = client(
            MessageType::Request,
            Some(b"PXEClient:Arch:00007:UNDI:003000"),
            Some(7),
        );
        m.set_ciaddr(Ipv4Addr::new(10, 50, 0, 77));
        let (r, note) = ask(&m, true);
        let r = r.expect("an ack");
        assert_eq!(note, "proxy-ack");
        assert_eq!(
            (r.dest.ip, r.dest.port),
            (u32::from(Ipv4Addr::new(10, 50, 0, 77)), 4011)
        );
        let m = Message::decode(&mut Decoder::new(&r.payload)).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(m.ciaddr(), Ipv4Addr::new(10, 50, 0, 77));
    }

    #[test]
    fn ipxe_gets_its_script_and_plain_clients_get_nothing() {
        let mut m = client(
            MessageType::Discover,
            Some(b"PXEClient:Arch:00000:UNDI:002001"),
            Some(0),
        );
        m.opts_mut().insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        let (r, _) = ask(&m, false);
        let m = Message::decode(&mut Decoder::new(&r.unwrap().payload)).unwrap();
        assert!(String::from_utf8_lossy(m.fname().unwrap())
            .starts_with("http://10.50.0.1/52:54:00:00:00:09/auto.ipxe"));
        assert!(
            m.opts().get(OptionCode::Unknown(175)).is_none(),
            "the proxy must not tell iPXE to skip proxies"
        );
        assert_eq!(
            ask(&client(MessageType::Discover, None, None), false).1,
            "proxy-not-booting"
        );
        assert_eq!(
            ask(
                &client(MessageType::Release, Some(b"PXEClient"), Some(0)),
                false
            )
            .1,
            "ignored-message-type"
        );
    }
}
