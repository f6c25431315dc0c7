//! What the lab's programs and tests share: the fixtures' configuration
//! and its machines, the one builder of a client's request and of the
//! frame it travels in, and the XDP program loaded with a configuration
//! beside the userspace server for the same one.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder};
use stormboot::config::Config;
use stormboot::dataplane::{Dataplane, LoadOptions};
use stormboot::dhcp::{self, Ingress};
use stormboot::frame::{self, Addressing, BROADCAST_MAC};
use stormboot::slowpath::{self, Endpoint};
use stormboot_common::bucket::Limit;
use stormboot_common::layout::{CLIENT_PORT, SERVER_PORT};
use stormboot_common::maps::Iface;

/// The fixed configuration the benchmark, the BPF_PROG_TEST_RUN fixtures
/// and the differential run load: one reservation on the link, one behind
/// a relay.
pub const CONFIG: &str = r#"
[server]
interface = "lo"
address = "10.50.0.1"

[boot]
http_port = 8080

[[profile]]
name = "debian"
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0,115200n8"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1", "10.50.0.2"]
domain = "rack1.example"
lease_time = "1h"

[[subnet]]
cidr = "10.51.0.0/24"
routers = ["10.51.0.1"]
lease_time = "2h"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
profile = "debian"

[[reservation]]
mac = "52:54:00:00:01:01"
ip = "10.51.0.21"
hostname = "remote1"
"#;

// The machines of `CONFIG`.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);
pub const SERVER_MAC: [u8; 6] = [0x02, 0x5b, 0, 0, 0, 1];
pub const NODE1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x01];
pub const NODE1_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 11);
pub const REMOTE: [u8; 6] = [0x52, 0x54, 0, 0, 1, 0x01];
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(10, 51, 0, 21);
pub const RELAY: Ipv4Addr = Ipv4Addr::new(10, 51, 0, 1);
pub const RELAY_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 9];
/// A MAC without a reservation: its requests are the slow path's.
pub const UNKNOWN: [u8; 6] = [0x52, 0x54, 0, 0, 9, 0x99];
/// The transaction id of every request built by [`request`].
pub const XID: u32 = 0x1234_5678;
/// Relay agent information as a relay appends it: circuit id and remote id.
pub const OPTION_82: [u8; 18] = [
    82, 16, 1, 6, b'e', b't', b'h', b'0', b'/', b'7', 2, 6, 0x02, 0x77, 0, 0, 0, 9,
];
/// BPF_PROG_TEST_RUN without a context runs the program as if the frame
/// arrived on the loopback device of the caller's namespace.
pub const TEST_RUN_IFINDEX: u32 = 1;
/// The time the userspace server answers at (the program has no clock).
pub const NOW: u64 = 1_700_000_000;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The name of an XDP action.
pub fn action_name(a: u32) -> &'static str {
    match a {
        0 => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "other",
    }
}

/// `text` as a validated configuration, named `name` in its errors.
pub fn config(text: &str, name: &str) -> anyhow::Result<Config> {
    Config::from_str(text, Path::new(name)).with_context(|| format!("{name} is not valid"))
}

/// A client's request: option 53, a client identifier and a parameter
/// request list, transaction [`XID`].
pub fn request(mac: [u8; 6], t: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(XID, z, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(t));
    m.opts_mut()
        .insert(DhcpOption::ClientIdentifier([&[1u8][..], &mac].concat()));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::Hostname,
        OptionCode::DomainName,
    ]));
    m
}

/// The message's bytes.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut b = Vec::new();
    m.encode(&mut Encoder::new(&mut b))
        .expect("a message built here encodes");
    b
}

/// `payload` as a client without an address sends it: broadcast from
/// 0.0.0.0, port 68 to 67, with an 802.1Q tag when `vlan` is given.
pub fn client_frame(mac: [u8; 6], vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    frame::build(
        &Addressing {
            eth_dst: BROADCAST_MAC,
            eth_src: mac,
            vlan,
            ip_src: Ipv4Addr::UNSPECIFIED,
            ip_dst: Ipv4Addr::BROADCAST,
            sport: CLIENT_PORT,
            dport: SERVER_PORT,
        },
        payload,
    )
}

/// `m` in the frame its client sends on the link (chaddr is the source).
pub fn broadcast_frame(m: &Message) -> Vec<u8> {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&m.chaddr()[..6]);
    client_frame(mac, None, &encode(m))
}

/// `msg` as a relay forwards it to the server: option 82 appended last
/// before END, from the relay's address to port 67.
pub fn relayed_frame(msg: &Message) -> Vec<u8> {
    let mut bytes = encode(msg);
    let end = bytes.len() - 1;
    bytes.splice(end..end, OPTION_82);
    let relay = Relay {
        mac: RELAY_MAC,
        ip: RELAY,
        server_mac: SERVER_MAC,
        server: SERVER,
    };
    relay_frame(&relay, &bytes)
}

/// A relay agent and the server it forwards to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relay {
    pub mac: [u8; 6],
    /// Its address: the giaddr of what it forwards, where replies go.
    pub ip: Ipv4Addr,
    pub server_mac: [u8; 6],
    pub server: Ipv4Addr,
}

/// `payload` as `relay` sends it: unicast from its address, port 67 to
/// the server's port 67.
pub fn relay_frame(relay: &Relay, payload: &[u8]) -> Vec<u8> {
    frame::build(
        &Addressing {
            eth_dst: relay.server_mac,
            eth_src: relay.mac,
            vlan: None,
            ip_src: relay.ip,
            ip_dst: relay.server,
            sport: SERVER_PORT,
            dport: SERVER_PORT,
        },
        payload,
    )
}

/// The interface the fixtures' frames arrive on, for the userspace
/// dataplane: the one BPF_PROG_TEST_RUN runs the program as if on.
pub fn endpoint() -> Endpoint {
    Endpoint {
        ingress: Ingress {
            ifindex: TEST_RUN_IFINDEX,
            iface_name: "lo".into(),
            iface_addr: SERVER,
        },
        mac: SERVER_MAC,
        server_ip: SERVER,
    }
}

/// What the userspace dataplane sends for `input` (a received frame),
/// and why, from a fresh server with no leases for `cfg`, at [`NOW`].
pub fn userspace(cfg: &Arc<Config>, input: &[u8]) -> (Option<Vec<u8>>, String) {
    let rx = match slowpath::decode(input) {
        Ok(rx) => rx,
        Err(e) => return (None, format!("not decoded: {e}")),
    };
    let mut server = dhcp::Server::new(cfg.clone(), Vec::new(), NOW);
    let (frame, outcome) = slowpath::respond(&mut server, &rx, &endpoint(), NOW);
    (frame, outcome.note.to_string())
}

/// How [`Loaded::new`] sets the program up beyond the configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// aya-log level inside the program (0 off).
    pub log_level: u8,
    /// The slow-path bucket's limit; None keeps the configuration's.
    pub slowpath_limit: Option<Limit>,
    /// Where the templates go and how many: None sizes them as the daemon
    /// does for the configuration.
    pub templates: Option<Templates>,
}

/// A template map as `Setup::templates` asks for it.
#[derive(Clone, Copy, Debug)]
pub struct Templates {
    /// In TEMPLATE_SLOTS (else in TEMPLATES).
    pub slotted: bool,
    /// Sets the map holds.
    pub sets: u32,
}

/// The XDP program loaded with a configuration, running as if on loopback
/// with the fixtures' server address, beside that configuration.
pub struct Loaded {
    pub cfg: Arc<Config>,
    pub dp: Dataplane,
}

impl Loaded {
    /// Loads the program (root), installs `cfg` and the loopback interface.
    pub fn new(cfg: Config, setup: Setup) -> anyhow::Result<Loaded> {
        let mut opts = LoadOptions::sized(cfg.reservations.iter(), setup.log_level);
        if let Some(t) = setup.templates {
            opts.templates_slotted = t.slotted;
            opts.templates_capacity = t.sets * stormboot_common::maps::VARIANT_COUNT;
        }
        let mut dp = Dataplane::load(opts).context("loading the XDP program (needs root)")?;
        dp.install(&cfg).context("installing the configuration")?;
        if let Some(limit) = setup.slowpath_limit {
            dp.set_slowpath_limit(limit)?;
        }
        dp.set_iface(
            TEST_RUN_IFINDEX,
            Iface {
                ip: SERVER.octets(),
                mac: SERVER_MAC,
                _pad: [0; 2],
            },
        )?;
        Ok(Loaded {
            cfg: Arc::new(cfg),
            dp,
        })
    }

    /// The fixtures' configuration ([`CONFIG`]) loaded.
    pub fn fixtures(setup: Setup) -> anyhow::Result<Loaded> {
        Loaded::new(config(CONFIG, "fixture.toml")?, setup)
    }

    /// What the userspace dataplane sends for `input` with this
    /// configuration (see [`userspace`]).
    pub fn userspace(&self, input: &[u8]) -> (Option<Vec<u8>>, String) {
        userspace(&self.cfg, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_broadcast_requests_and_relayed_ones_carry_option_82() {
        let f = broadcast_frame(&request(NODE1, MessageType::Discover));
        let p = frame::parse(&f).unwrap();
        assert_eq!(p.addr.eth_src, NODE1);
        assert_eq!((p.addr.ip_dst, p.addr.dport), (Ipv4Addr::BROADCAST, 67));
        let mut m = request(REMOTE, MessageType::Discover);
        m.set_giaddr(RELAY);
        let f = relayed_frame(&m);
        let p = frame::parse(&f).unwrap();
        assert_eq!((p.addr.ip_src, p.addr.sport), (RELAY, 67));
        let at = p.payload.len() - 1 - OPTION_82.len();
        assert_eq!(&p.payload[at..p.payload.len() - 1], &OPTION_82);
    }

    #[test]
    fn the_userspace_server_answers_the_fixtures_machines_only() {
        let cfg = Arc::new(config(CONFIG, "fixture.toml").unwrap());
        let (reply, note) = userspace(
            &cfg,
            &broadcast_frame(&request(NODE1, MessageType::Discover)),
        );
        assert!(reply.is_some(), "{note}");
        let (reply, _) = userspace(
            &cfg,
            &broadcast_frame(&request(UNKNOWN, MessageType::Discover)),
        );
        assert_eq!(reply, None);
        let (reply, note) = userspace(&cfg, b"not a frame");
        assert_eq!(reply, None);
        assert!(note.starts_with("not decoded"), "{note}");
    }
}
