//! BPF_PROG_TEST_RUN fixtures: each case runs one frame through the loaded
//! XDP program and checks the verdict and, for XDP_TX, the reply decoded
//! field by field. Every reply must also equal, byte for byte, what the
//! userspace renderer produces for the same request, and what the userspace
//! dataplane (`dataplane = "userspace"`) sends for the same frame; where the
//! program sends nothing, neither does the userspace dataplane for a
//! reserved machine.
//!
//! Privileged: loading BPF needs root (CI is root). Without it these fail.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};

use stormboot::dataplane::Dataplane;
use stormboot::frame::{self, Addressing, BROADCAST_MAC};
use stormboot::render::tables;
use stormboot::render::{self, Transaction};
use stormboot::slowpath;
use stormboot_common::bucket::Limit;
use stormboot_common::counters::Counter;
use stormboot_common::layout::msg;

use stormboot_common::maps::Iface;
use stormboot_testbed::lab::fixtures::{
    broadcast_frame, client_frame, config, encode, relayed_frame, request, Loaded, Setup,
    Templates, CONFIG, NODE1, NODE1_IP, OPTION_82, RELAY, RELAY_MAC, REMOTE, REMOTE_IP, SERVER,
    SERVER_MAC, TEST_RUN_IFINDEX, UNKNOWN, XDP_DROP, XDP_PASS, XDP_TX,
};

/// The program loaded with a configuration, beside that configuration.
type Fixture = Loaded;

/// The fixtures' configuration: one reservation on the link, one behind a
/// relay.
fn fixture() -> Fixture {
    fixture_from(CONFIG, "fixture.toml")
}

/// `text` loaded into a fresh program, which runs as if on loopback.
fn fixture_from(text: &str, name: &str) -> Fixture {
    stormboot_testbed::require_root();
    let cfg = config(text, name).unwrap_or_else(|e| panic!("{e:#}"));
    Loaded::new(cfg, Setup::default()).expect("the XDP program loads and passes the verifier")
}

/// What the reply must be: built by the userspace renderer, independently
/// of the program, from the request and the expected addressing.
fn expected_reply(f: &Fixture, mac: [u8; 6], t: &Transaction<'_>, addr: Addressing) -> Vec<u8> {
    let block = if t.msg_type == msg::NAK {
        tables::subnet_entries(&f.cfg).unwrap()[0].nak
    } else {
        let r = f.cfg.reservations.iter().find(|r| r.mac == mac).unwrap();
        tables::reservation_block(&f.cfg, r, stormboot_common::maps::variant::PLAIN).unwrap()
    };
    frame::build(&addr, &render::complete(&block, t).unwrap())
}

fn run(f: &Fixture, input: &[u8]) -> (u32, Vec<u8>) {
    f.dp.test_run(input).expect("BPF_PROG_TEST_RUN works")
}

/// What the userspace dataplane sends for `input`, received on the same
/// interface as the program's test runs, by a server with no leases.
fn userspace(f: &Fixture, input: &[u8]) -> Option<Vec<u8>> {
    f.userspace(input).0
}

/// Runs `input`, expects XDP_TX, and returns the decoded reply and its
/// addressing (checksums verified by frame::parse).
fn reply(f: &Fixture, input: &[u8]) -> (Message, Addressing, Vec<u8>) {
    let (action, out) = run(f, input);
    assert_eq!(action, XDP_TX, "expected XDP_TX");
    assert_eq!(
        userspace(f, input).as_deref(),
        Some(&out[..]),
        "the userspace dataplane's frame differs from the XDP program's"
    );
    let parsed = frame::parse(&out).expect("reply frame parses with valid IPv4 and UDP checksums");
    assert!(!parsed.udp_csum_absent, "UDP checksum must be filled in");
    assert_eq!(parsed.ttl, 64);
    let m =
        Message::decode(&mut Decoder::new(parsed.payload)).expect("reply decodes with dhcproto");
    let addr = parsed.addr;
    (m, addr, out)
}

fn counter(f: &Fixture, c: Counter) -> u64 {
    f.dp.counters().unwrap()[c as usize]
}

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn discover_gets_offer_unicast_to_chaddr() {
    let f = fixture();
    let req = request(NODE1, MessageType::Discover);
    let (m, a, out) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(m.xid(), 0x1234_5678);
    assert_eq!(m.yiaddr(), NODE1_IP);
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.giaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(&m.chaddr()[..6], &NODE1);
    assert!(!m.flags().broadcast());
    // RFC 2131 4.1: no broadcast bit, no giaddr, no ciaddr: unicast to
    // yiaddr at chaddr.
    assert_eq!((a.eth_dst, a.eth_src), (NODE1, SERVER_MAC));
    assert_eq!(
        (a.ip_src, a.ip_dst, a.sport, a.dport),
        (SERVER, NODE1_IP, 67, 68)
    );
    assert!(
        matches!(opt(&m, OptionCode::ServerIdentifier), Some(DhcpOption::ServerIdentifier(s)) if *s == SERVER)
    );
    assert!(matches!(
        opt(&m, OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(3600))
    ));
    assert!(matches!(
        opt(&m, OptionCode::Renewal),
        Some(DhcpOption::Renewal(1800))
    ));
    assert!(matches!(
        opt(&m, OptionCode::Rebinding),
        Some(DhcpOption::Rebinding(3150))
    ));
    assert!(
        matches!(opt(&m, OptionCode::SubnetMask), Some(DhcpOption::SubnetMask(s)) if *s == Ipv4Addr::new(255, 255, 255, 0))
    );
    assert!(matches!(opt(&m, OptionCode::Router), Some(DhcpOption::Router(r)) if r == &[SERVER]));
    assert!(
        matches!(opt(&m, OptionCode::DomainNameServer), Some(DhcpOption::DomainNameServer(d)) if d == &[SERVER, Ipv4Addr::new(10, 50, 0, 2)])
    );
    assert!(matches!(opt(&m, OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "node1"));
    assert!(
        matches!(opt(&m, OptionCode::DomainName), Some(DhcpOption::DomainName(d)) if d == "rack1.example")
    );
    let t = Transaction {
        msg_type: msg::OFFER,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: NODE1,
        relay_info: &[],
    };
    assert_eq!(
        out,
        expected_reply(&f, NODE1, &t, a),
        "XDP and userspace renderings differ"
    );
    assert_eq!(counter(&f, Counter::Offer), 1);
}

/// Every reply the program sends is reported to the daemon (the lease it
/// records, the boot timeline) through the reply ring, and a ring the
/// daemon has not drained costs events, counted, never a reply.
#[test]
fn every_reply_is_reported_and_a_full_ring_loses_events_not_replies() {
    use stormboot_common::events::{ReplyEvent, RING_SLOTS};
    let mut f = fixture();
    let mut ring = f.dp.take_events().expect("the reply ring maps");
    assert!(ring.next().is_none(), "a fresh ring is empty");
    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(NODE1_IP));
    let input = broadcast_frame(&req);
    let (action, _) = run(&f, &input);
    assert_eq!(action, XDP_TX);
    assert_eq!(
        ring.next(),
        Some(ReplyEvent {
            mac: NODE1,
            msg_type: msg::ACK,
            _pad: 0,
            ip: NODE1_IP.octets(),
            xid: 0x1234_5678u32.to_be_bytes(),
            ifindex: TEST_RUN_IFINDEX,
        })
    );
    assert!(ring.next().is_none(), "one reply, one event");

    // Every test run on one CPU, so that they fill its region.
    stormboot_testbed::lab::xdpbench::pin_to_current_cpu().expect("pinning the test thread");
    let lost = counter(&f, Counter::EventLost);
    for _ in 0..RING_SLOTS + 3 {
        assert_eq!(run(&f, &input).0, XDP_TX, "a full ring still answers");
    }
    assert_eq!(counter(&f, Counter::EventLost) - lost, 3);
    let mut read = 0;
    for ev in ring.by_ref() {
        assert_eq!((ev.mac, ev.msg_type), (NODE1, msg::ACK));
        read += 1;
    }
    assert_eq!(read, RING_SLOTS);
    run(&f, &input);
    assert!(ring.next().is_some(), "a drained ring takes events again");
}

#[test]
fn broadcast_flag_gets_broadcast_reply() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Discover);
    req.set_flags(Flags::default().set_broadcast());
    let (m, a, out) = reply(&f, &broadcast_frame(&req));
    assert!(m.flags().broadcast());
    assert_eq!(
        (a.eth_dst, a.ip_dst, a.dport),
        (BROADCAST_MAC, Ipv4Addr::BROADCAST, 68)
    );
    let t = Transaction {
        msg_type: msg::OFFER,
        xid: 0x1234_5678,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: NODE1,
        relay_info: &[],
    };
    assert_eq!(out, expected_reply(&f, NODE1, &t, a));
}

#[test]
fn request_selecting_gets_ack() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(NODE1_IP));
    let (m, a, out) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), NODE1_IP);
    assert_eq!((a.eth_dst, a.ip_dst), (NODE1, NODE1_IP));
    let t = Transaction {
        msg_type: msg::ACK,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: NODE1,
        relay_info: &[],
    };
    assert_eq!(out, expected_reply(&f, NODE1, &t, a));
    assert_eq!(counter(&f, Counter::Ack), 1);
}

#[test]
fn request_init_reboot_gets_ack() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(NODE1_IP));
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), NODE1_IP);
}

#[test]
fn request_renewing_gets_unicast_ack_with_ciaddr() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Request);
    req.set_ciaddr(NODE1_IP);
    let input = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: NODE1_IP,
            ip_dst: SERVER,
            sport: 68,
            dport: 67,
        },
        &encode(&req),
    );
    let (m, a, out) = reply(&f, &input);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(
        m.ciaddr(),
        NODE1_IP,
        "ACK repeats ciaddr (RFC 2131 table 3)"
    );
    assert_eq!((a.eth_dst, a.ip_dst, a.dport), (NODE1, NODE1_IP, 68));
    let t = Transaction {
        msg_type: msg::ACK,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: NODE1_IP,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: NODE1,
        relay_info: &[],
    };
    assert_eq!(out, expected_reply(&f, NODE1, &t, a));
}

#[test]
fn wrong_requested_address_gets_broadcast_nak() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 50, 0, 99)));
    let (m, a, out) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(
        matches!(opt(&m, OptionCode::ServerIdentifier), Some(DhcpOption::ServerIdentifier(s)) if *s == SERVER)
    );
    assert!(
        opt(&m, OptionCode::AddressLeaseTime).is_none(),
        "a NAK carries no lease (RFC 2131 table 3)"
    );
    assert_eq!((a.eth_dst, a.ip_dst), (BROADCAST_MAC, Ipv4Addr::BROADCAST));
    let t = Transaction {
        msg_type: msg::NAK,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: NODE1,
        relay_info: &[],
    };
    assert_eq!(out, expected_reply(&f, NODE1, &t, a));
    assert_eq!(counter(&f, Counter::Nak), 1);
}

#[test]
fn request_for_another_server_gets_no_reply() {
    let f = fixture();
    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut()
        .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 50, 0, 254)));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 50, 0, 77)));
    let (action, _) = run(&f, &broadcast_frame(&req));
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        userspace(&f, &broadcast_frame(&req)),
        None,
        "userspace must not answer either"
    );
    assert_eq!(counter(&f, Counter::DropOtherServer), 1);
}

/// A relay agent's frame without option 82 (`relayed_frame` appends it):
/// from the relay's MAC and address, to the server.
fn relayed_without_82(m: &Message) -> Vec<u8> {
    frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: RELAY_MAC,
            vlan: None,
            ip_src: RELAY,
            ip_dst: SERVER,
            sport: 67,
            dport: 67,
        },
        &encode(m),
    )
}

#[test]
fn relayed_discover_goes_back_to_the_relay_with_option_82() {
    let f = fixture();
    let mut req = request(REMOTE, MessageType::Discover);
    req.set_giaddr(RELAY);
    req.set_hops(1);
    let input = relayed_frame(&req);
    let (m, a, out) = reply(&f, &input);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(m.yiaddr(), REMOTE_IP);
    assert_eq!(m.giaddr(), RELAY);
    assert_eq!(
        (a.eth_dst, a.ip_dst, a.dport),
        (RELAY_MAC, RELAY, 67),
        "relayed: back to the relay's port 67"
    );
    assert!(
        opt(&m, OptionCode::RelayAgentInformation).is_some(),
        "option 82 echoed (RFC 3046)"
    );
    assert!(
        matches!(opt(&m, OptionCode::Router), Some(DhcpOption::Router(r)) if r == &[RELAY]),
        "options of the relay's subnet"
    );
    let payload = frame::parse(&out).unwrap().payload.to_vec();
    let at = payload
        .windows(OPTION_82.len())
        .position(|w| w == OPTION_82)
        .expect("option 82 bytes echoed unchanged");
    assert_eq!(
        payload[at + OPTION_82.len()],
        255,
        "option 82 is the last option"
    );
    let t = Transaction {
        msg_type: msg::OFFER,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: RELAY,
        chaddr: REMOTE,
        relay_info: &OPTION_82,
    };
    assert_eq!(out, expected_reply(&f, REMOTE, &t, a));
}

#[test]
fn relayed_nak_sets_the_broadcast_bit() {
    let f = fixture();
    let mut req = request(REMOTE, MessageType::Request);
    req.set_giaddr(RELAY);
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(
            10, 51, 0, 200,
        )));
    let (m, a, _) = reply(&f, &relayed_without_82(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Nak));
    assert!(
        m.flags().broadcast(),
        "RFC 2131 4.1: a relayed NAK asks the relay to broadcast"
    );
    assert_eq!((a.ip_dst, a.dport), (RELAY, 67));
}

#[test]
fn vlan_tag_is_kept() {
    let f = fixture();
    let req = request(NODE1, MessageType::Discover);
    let input = client_frame(NODE1, Some(42), &encode(&req));
    let (m, a, _) = reply(&f, &input);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(a.vlan, Some(42));
}

/// Runs `input`, expects XDP_PASS with the frame unchanged and `why` counted.
fn passes(f: &Fixture, input: &[u8], why: Counter) {
    let before = counter(f, why);
    let (action, out) = run(f, input);
    assert_eq!(action, XDP_PASS, "expected XDP_PASS ({why:?})");
    assert_eq!(out, input, "a passed frame must be unchanged");
    assert_eq!(counter(f, why), before + 1, "{why:?} counted");
}

#[test]
fn unknown_mac_is_passed_up() {
    let f = fixture();
    passes(
        &f,
        &broadcast_frame(&request(UNKNOWN, MessageType::Discover)),
        Counter::PassUnknownMac,
    );
}

#[test]
fn other_message_types_are_passed_up() {
    let f = fixture();
    for t in [
        MessageType::Inform,
        MessageType::Release,
        MessageType::Decline,
    ] {
        let mut req = request(NODE1, t);
        req.set_ciaddr(NODE1_IP);
        passes(&f, &broadcast_frame(&req), Counter::PassOtherDhcp);
    }
}

#[test]
fn reservation_on_another_network_is_passed_up() {
    let f = fixture();
    // REMOTE's reservation is in 10.51.0.0/24, but this request arrived
    // unrelayed on the 10.50.0.0/24 interface.
    passes(
        &f,
        &broadcast_frame(&request(REMOTE, MessageType::Discover)),
        Counter::PassWrongNetwork,
    );
}

/// The program keeps a per-CPU copy of the receiving interface's entry:
/// a rewritten entry must still count from the very next request on the
/// CPU that holds the old copy.
#[test]
fn a_rewritten_interface_entry_counts_from_the_next_request() {
    let mut f = fixture();
    // One CPU for every run, so that the runs after the rewrite meet the
    // copy the first one left.
    // SAFETY: plain libc calls on this thread's own affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(libc::sched_getcpu() as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning the test to its CPU"
        );
    }
    let discover = broadcast_frame(&request(NODE1, MessageType::Discover));
    let (_, a, _) = reply(&f, &discover);
    assert_eq!(a.eth_src, SERVER_MAC);
    // The interface now on the relay's network: NODE1 is not on it.
    f.dp.set_iface(
        TEST_RUN_IFINDEX,
        Iface {
            ip: RELAY.octets(),
            mac: SERVER_MAC,
            _pad: [0; 2],
        },
    )
    .unwrap();
    passes(&f, &discover, Counter::PassWrongNetwork);
    // Back on NODE1's network, with another MAC address: the reply is sent
    // from it.
    let new_mac = [0x02, 0x5b, 0, 0, 0, 0x77];
    f.dp.set_iface(
        TEST_RUN_IFINDEX,
        Iface {
            ip: SERVER.octets(),
            mac: new_mac,
            _pad: [0; 2],
        },
    )
    .unwrap();
    let (action, out) = run(&f, &discover);
    assert_eq!(action, XDP_TX);
    assert_eq!(frame::parse(&out).unwrap().addr.eth_src, new_mac);
}

#[test]
fn non_dhcp_frames_are_passed_up() {
    let f = fixture();
    let dns = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: NODE1_IP,
            ip_dst: SERVER,
            sport: 5353,
            dport: 53,
        },
        b"not dhcp at all",
    );
    passes(&f, &dns, Counter::PassNotDhcp);
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&NODE1);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    passes(&f, &arp, Counter::PassNotDhcp);
}

#[test]
fn truncated_and_garbage_frames_never_get_a_reply() {
    let f = fixture();
    let whole = broadcast_frame(&request(NODE1, MessageType::Discover));
    for cut in [14, 34, 42, 100, 250, 281, 283, 290] {
        let (action, out) = run(&f, &whole[..cut]);
        assert_ne!(action, XDP_TX, "truncated at {cut}: no reply");
        assert_eq!(out, &whole[..cut]);
    }
    // A datagram that claims more bytes than the frame has.
    let mut lying = whole.clone();
    lying.truncate(300);
    let (action, _) = run(&f, &lying);
    assert_ne!(action, XDP_TX);
    // An option whose length runs past the end.
    let mut req = encode(&request(NODE1, MessageType::Discover));
    let end = req.len() - 1;
    req[end] = 61;
    req.push(200);
    let bad = client_frame(NODE1, None, &req);
    passes(&f, &bad, Counter::Malformed);
    // Pseudo-random garbage, with and without a DHCP-looking prefix.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..200 {
        // The kernel hands XDP nothing shorter than an Ethernet header
        // (and BPF_PROG_TEST_RUN refuses it).
        let len = 14 + (i * 7) % 700;
        let mut g: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if i % 2 == 0 && g.len() > 300 {
            g[..42].copy_from_slice(&whole[..42]);
        }
        let (action, out) = run(&f, &g);
        assert_ne!(action, XDP_TX, "garbage #{i} must not be answered");
        assert_eq!(out, g);
    }
}

#[test]
fn many_options_are_walked_and_too_many_are_passed_up() {
    let f = fixture();
    // 40 options before the message type: a real client never sends that
    // many, but the walk must still find option 53 behind them.
    let mut req = request(NODE1, MessageType::Discover);
    for code in 224..=254u8 {
        req.opts_mut()
            .insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
                code.into(),
                vec![code],
            )));
    }
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    // Over the walk's bound (64): passed up, not guessed at.
    let mut bytes = encode(&request(NODE1, MessageType::Discover));
    let end = bytes.len() - 1;
    bytes.splice(end..end, std::iter::repeat_n([0xe0u8, 0], 70).flatten());
    let input = client_frame(NODE1, None, &bytes);
    passes(&f, &input, Counter::PassUnsupported);
}

/// UEFI x64 PXE firmware's DISCOVER from NODE1.
fn uefi_discover() -> Message {
    firmware(
        NODE1,
        MessageType::Discover,
        b"PXEClient:Arch:00007:UNDI:003000",
        7,
        None,
    )
}

/// A firmware request: `request` with options 60, 93 and (for iPXE) 77.
fn firmware(
    mac: [u8; 6],
    t: MessageType,
    vendor: &[u8],
    arch: u16,
    user_class: Option<&[u8]>,
) -> Message {
    let mut m = request(mac, t);
    m.opts_mut()
        .insert(DhcpOption::ClassIdentifier(vendor.to_vec()));
    m.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(arch.into()));
    if let Some(u) = user_class {
        m.opts_mut().insert(DhcpOption::UserClass(u.to_vec()));
    }
    m
}

fn bytes_opt(m: &Message, code: OptionCode) -> Option<Vec<u8>> {
    match m.opts().get(code)? {
        DhcpOption::ClassIdentifier(v)
        | DhcpOption::TFTPServerName(v)
        | DhcpOption::BootfileName(v) => Some(v.clone()),
        DhcpOption::VendorExtensions(v) => Some(v.clone()),
        DhcpOption::Unknown(u) => Some(u.data().to_vec()),
        _ => None,
    }
}

fn file_of(m: &Message) -> String {
    String::from_utf8_lossy(m.fname().unwrap_or_default())
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn pxe_bios_gets_undionly_over_tftp() {
    let f = fixture();
    let req = firmware(
        NODE1,
        MessageType::Discover,
        b"PXEClient:Arch:00000:UNDI:002001",
        0,
        None,
    );
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(m.siaddr(), SERVER, "next server");
    assert_eq!(file_of(&m), "undionly.kpxe");
    assert_eq!(
        bytes_opt(&m, OptionCode::BootfileName).as_deref(),
        Some(&b"undionly.kpxe"[..])
    );
    assert_eq!(
        bytes_opt(&m, OptionCode::TFTPServerName).as_deref(),
        Some(&b"10.50.0.1"[..])
    );
    assert_eq!(
        bytes_opt(&m, OptionCode::ClassIdentifier).as_deref(),
        Some(&b"PXEClient"[..]),
        "option 60 echoed"
    );
    assert_eq!(
        bytes_opt(&m, OptionCode::VendorExtensions).as_deref(),
        Some(&[6u8, 1, 8, 255][..]),
        "PXE discovery control 8"
    );
    assert_eq!(m.yiaddr(), NODE1_IP);
}

#[test]
fn uefi_pxe_gets_ipxe_efi() {
    let f = fixture();
    let mut req = uefi_discover();
    req.set_flags(Flags::default().set_broadcast());
    let (m, a, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(file_of(&m), "ipxe.efi");
    assert_eq!(a.ip_dst, Ipv4Addr::BROADCAST, "EDK2 sets the broadcast bit");
}

#[test]
fn ipxe_gets_its_script_url_and_no_proxydhcp_wait() {
    let f = fixture();
    // The bare string, as iPXE sends it, and RFC 3004 instances, the
    // marker first, after another, and before a cut-short one.
    for user_class in [
        &b"iPXE"[..],
        &b"\x04iPXE"[..],
        &b"\x03abc\x04iPXE"[..],
        &b"\x04iPXE\xff"[..],
    ] {
        let req = firmware(
            NODE1,
            MessageType::Request,
            b"PXEClient:Arch:00000:UNDI:002001",
            0,
            Some(user_class),
        );
        let mut req = req;
        req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(NODE1_IP));
        let (m, _, _) = reply(&f, &broadcast_frame(&req));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
        let url = "http://10.50.0.1:8080/52:54:00:00:00:01/auto.ipxe";
        assert_eq!(
            file_of(&m),
            url,
            "the script, never a binary: that ends the chainload loop"
        );
        assert_eq!(
            bytes_opt(&m, OptionCode::BootfileName).as_deref(),
            Some(url.as_bytes())
        );
        assert_eq!(
            bytes_opt(&m, OptionCode::Unknown(175)).as_deref(),
            Some(&[176u8, 1, 1][..])
        );
        assert_eq!(bytes_opt(&m, OptionCode::ClassIdentifier), None);
    }
}

/// EFI IA32 firmware (option 93 = 6) cannot run the x64 binary: it gets
/// `boot.efi_ia32_file` when one is configured, plain DHCP otherwise, from
/// both dataplanes alike (`reply` compares them byte for byte).
#[test]
fn uefi_ia32_gets_its_own_file_or_plain_dhcp() {
    let req = firmware(
        NODE1,
        MessageType::Discover,
        b"PXEClient:Arch:00006:UNDI:003016",
        6,
        None,
    );
    let f = fixture();
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(m.yiaddr(), NODE1_IP);
    assert_eq!(file_of(&m), "", "never the x64 binary");
    assert_eq!(bytes_opt(&m, OptionCode::BootfileName), None);
    let text = CONFIG.replacen(
        "http_port = 8080\n",
        "http_port = 8080\nefi_ia32_file = \"ipxe-ia32.efi\"\n",
        1,
    );
    let f = fixture_from(&text, "ia32.toml");
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(file_of(&m), "ipxe-ia32.efi");
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(
        bytes_opt(&m, OptionCode::ClassIdentifier).as_deref(),
        Some(&b"PXEClient"[..])
    );
    // x64 firmware on the same config still gets ipxe.efi.
    let (m, _, _) = reply(&f, &broadcast_frame(&uefi_discover()));
    assert_eq!(file_of(&m), "ipxe.efi");
}

#[test]
fn uefi_http_boot_gets_a_url_and_httpclient() {
    let f = fixture();
    let req = firmware(
        NODE1,
        MessageType::Discover,
        b"HTTPClient:Arch:00016:UNDI:003001",
        16,
        None,
    );
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(file_of(&m), "http://10.50.0.1:8080/ipxe.efi");
    assert_eq!(
        bytes_opt(&m, OptionCode::ClassIdentifier).as_deref(),
        Some(&b"HTTPClient"[..])
    );
}

#[test]
fn unknown_architecture_and_machines_without_profile_get_plain_dhcp() {
    let f = fixture();
    let req = firmware(
        NODE1,
        MessageType::Discover,
        b"PXEClient:Arch:00042:UNDI:003000",
        42,
        None,
    );
    let (m, _, _) = reply(&f, &broadcast_frame(&req));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(file_of(&m), "", "no boot file for an unknown architecture");
    assert_eq!(bytes_opt(&m, OptionCode::BootfileName), None);
    // remote1 has no profile: a PXE request gets plain DHCP.
    let mut req = firmware(
        REMOTE,
        MessageType::Discover,
        b"PXEClient:Arch:00000:UNDI:002001",
        0,
        None,
    );
    req.set_giaddr(RELAY);
    let (m, _, _) = reply(&f, &relayed_without_82(&req));
    assert_eq!(m.yiaddr(), REMOTE_IP);
    assert_eq!(bytes_opt(&m, OptionCode::BootfileName), None);
}

/// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns, which the
/// program's slow-path buckets run on.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `input`, expects XDP_DROP by the slow-path bucket, counted as such
/// and not as passed.
fn dropped_for_rate(f: &Fixture, input: &[u8], not: Counter) {
    let (drops, passed) = (counter(f, Counter::DropSlowpathRate), counter(f, not));
    let (action, _) = run(f, input);
    assert_eq!(action, XDP_DROP, "over its slow-path rate: dropped");
    assert_eq!(counter(f, Counter::DropSlowpathRate), drops + 1);
    assert_eq!(
        counter(f, not),
        passed,
        "a dropped request is not counted as passed"
    );
}

/// `burst` copies of `input` pass (counted as `why`), and the next is
/// dropped for the rate.
fn burst_then_drop(f: &Fixture, input: &[u8], burst: usize, why: Counter) {
    for _ in 0..burst {
        passes(f, input, why);
    }
    dropped_for_rate(f, input, why);
}

#[test]
fn a_flooding_mac_gets_its_burst_up_then_is_dropped_in_the_kernel() {
    let mut f = fixture();
    // The defaults: 20 requests a second, bursts of 40.
    assert_eq!(
        (f.cfg.server.slowpath_rate, f.cfg.server.slowpath_burst),
        (20, 40)
    );
    // The burst of the defaults at one request a second, so that the
    // test's own pace (slow under load) adds no tokens.
    f.dp.set_slowpath_limit(Limit::new(1, 40)).unwrap();
    let flood = broadcast_frame(&request(UNKNOWN, MessageType::Discover));
    for _ in 0..40 {
        passes(&f, &flood, Counter::PassUnknownMac);
    }
    for _ in 0..5 {
        dropped_for_rate(&f, &flood, Counter::PassUnknownMac);
    }
    // Another client's requests still go up, and a reserved machine is
    // answered by the program whatever its rate: answers cost no tokens.
    let mut other = UNKNOWN;
    other[5] = 0x98;
    passes(
        &f,
        &broadcast_frame(&request(other, MessageType::Discover)),
        Counter::PassUnknownMac,
    );
    let discover = broadcast_frame(&request(NODE1, MessageType::Discover));
    for _ in 0..60 {
        assert_eq!(run(&f, &discover).0, XDP_TX);
    }
    assert_eq!(f.dp.slowpath_bucket(NODE1).unwrap(), None);

    // Time passing, as the bucket sees it: three requests' worth (3 s at
    // 1/s) of refill lets exactly three more through.
    let interval = 1_000_000_000;
    let full_at = f.dp.slowpath_bucket(UNKNOWN).unwrap().expect("a bucket");
    let now = monotonic_ns();
    assert!(
        full_at > now + 39 * interval - 1_000_000_000,
        "the bucket is about 40 requests (40 s) ahead of now: {}",
        full_at as i64 - now as i64
    );
    f.dp.set_slowpath_bucket(UNKNOWN, monotonic_ns() + 37 * interval)
        .unwrap();
    burst_then_drop(&f, &flood, 3, Counter::PassUnknownMac);
}

#[test]
fn the_bucket_refills_with_time_up_to_the_burst() {
    let mut f = fixture();
    // 5 a second (one per 200 ms), bursts of 3.
    f.dp.set_slowpath_limit(Limit::new(5, 3)).unwrap();
    let mut req = request(NODE1, MessageType::Inform);
    req.set_ciaddr(NODE1_IP);
    let inform = broadcast_frame(&req);
    burst_then_drop(&f, &inform, 3, Counter::PassOtherDhcp);
    // Far longer than three intervals: full again, and no fuller.
    std::thread::sleep(std::time::Duration::from_millis(700));
    burst_then_drop(&f, &inform, 3, Counter::PassOtherDhcp);
}

#[test]
fn relayed_clients_have_a_bucket_each_and_zero_disables_the_limit() {
    let mut f = fixture();
    f.dp.set_slowpath_limit(Limit::new(1, 2)).unwrap();
    // One relay, many clients: keyed by chaddr, not by the relay's MAC.
    for i in 0..10u8 {
        let mut req = request([0x52, 0x54, 0, 0, 8, i], MessageType::Discover);
        req.set_giaddr(RELAY);
        passes(&f, &relayed_without_82(&req), Counter::PassUnknownMac);
    }
    // A malformed request is held to its Ethernet source's bucket.
    let mut bytes = encode(&request(UNKNOWN, MessageType::Discover));
    let end = bytes.len() - 1;
    bytes[end] = 61;
    bytes.push(200);
    let bad = client_frame(UNKNOWN, None, &bytes);
    passes(&f, &bad, Counter::Malformed);
    passes(&f, &bad, Counter::Malformed);
    dropped_for_rate(&f, &bad, Counter::Malformed);

    f.dp.set_slowpath_limit(Limit::new(0, 0)).unwrap();
    for _ in 0..100 {
        passes(&f, &bad, Counter::Malformed);
    }
}

/// The fixture's configuration as a proxyDHCP server.
fn proxy_fixture() -> Fixture {
    let text = CONFIG.replacen("[server]\n", "[server]\nmode = \"proxy\"\n", 1);
    fixture_from(&text, "proxy.toml")
}

const UUID: [u8; 17] = [
    0, 0x4c, 0x4c, 0x45, 0x44, 0, 0x10, 0x38, 0x80, 0x4a, 0xb4, 0xc0, 0x4f, 0x51, 0x32, 0x31, 0x32,
];

/// PXE firmware's request: options 60, 93 and its UUID (97).
fn pxe(mac: [u8; 6], t: MessageType, vendor: &[u8], arch: u16, ipxe: bool) -> Message {
    let mut m = firmware(mac, t, vendor, arch, ipxe.then_some(&b"iPXE"[..]));
    m.opts_mut()
        .insert(DhcpOption::ClientMachineIdentifier(UUID.to_vec()));
    m
}

/// Checks what every proxy reply must be: XDP_TX, byte-identical to the
/// userspace proxy's frame (checked by `reply`), no address, PXEClient.
fn proxy_reply(f: &Fixture, input: &[u8], t: MessageType) -> (Message, Addressing) {
    let (m, a, _) = reply(f, input);
    assert_eq!(m.opts().msg_type(), Some(t));
    assert_eq!(
        m.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "a proxy offers no address"
    );
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(
        bytes_opt(&m, OptionCode::ClassIdentifier).as_deref(),
        Some(&b"PXEClient"[..])
    );
    assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(m.opts().get(OptionCode::SubnetMask).is_none());
    assert!(m.opts().get(OptionCode::Unknown(175)).is_none());
    (m, a)
}

#[test]
fn proxy_offers_boot_information_for_each_variant() {
    let f = proxy_fixture();
    let cases: [(&[u8], u16, bool, &str); 5] = [
        (
            b"PXEClient:Arch:00000:UNDI:002001",
            0,
            false,
            "undionly.kpxe",
        ),
        (b"PXEClient:Arch:00007:UNDI:003000", 7, false, "ipxe.efi"),
        (
            b"PXEClient:Arch:00011:UNDI:003000",
            11,
            false,
            "ipxe-arm64.efi",
        ),
        (
            b"HTTPClient:Arch:00016:UNDI:003001",
            16,
            false,
            "http://10.50.0.1:8080/ipxe.efi",
        ),
        (
            b"PXEClient:Arch:00000:UNDI:002001",
            0,
            true,
            "http://10.50.0.1:8080/52:54:00:00:00:01/auto.ipxe",
        ),
    ];
    for (vendor, arch, ipxe, file) in cases {
        let req = pxe(NODE1, MessageType::Discover, vendor, arch, ipxe);
        let (m, a) = proxy_reply(&f, &broadcast_frame(&req), MessageType::Offer);
        assert_eq!(file_of(&m), file, "{}", String::from_utf8_lossy(vendor));
        assert!(
            matches!(opt(&m, OptionCode::ClientMachineIdentifier), Some(DhcpOption::ClientMachineIdentifier(u)) if u == &UUID),
            "the UUID is echoed"
        );
        assert!(m.flags().broadcast(), "nothing to unicast to");
        assert_eq!(
            (a.eth_dst, a.ip_dst, a.dport),
            (BROADCAST_MAC, Ipv4Addr::BROADCAST, 68)
        );
        assert_eq!((a.ip_src, a.sport), (SERVER, 67));
    }
    assert_eq!(counter(&f, Counter::Offer), 5);
}

/// Port 67: the proxy answers PXE DISCOVERs only. The REQUEST a client
/// sends on 67 selects the DHCP server that offered it an address (PXE 2.1
/// section 2.2.4; dnsmasq's proxy answers a REQUEST only on 4011): neither
/// dataplane answers it, whoever's server identifier it carries, nor one
/// without any (INIT-REBOOT).
#[test]
fn proxy_answers_discovers_on_67_but_never_requests() {
    let f = proxy_fixture();
    let mut req = uefi_discover();
    let (m, _) = proxy_reply(&f, &broadcast_frame(&req), MessageType::Offer);
    assert!(opt(&m, OptionCode::ClientMachineIdentifier).is_none());
    req.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(
            10, 50, 0, 120,
        )));
    for server_id in [Some(Ipv4Addr::new(10, 50, 0, 254)), Some(SERVER), None] {
        let mut r = req.clone();
        match server_id {
            Some(id) => {
                r.opts_mut().insert(DhcpOption::ServerIdentifier(id));
            }
            None => {
                r.opts_mut().remove(OptionCode::ServerIdentifier);
            }
        }
        let input = broadcast_frame(&r);
        passes(&f, &input, Counter::PassOtherDhcp);
        assert_eq!(
            userspace(&f, &input),
            None,
            "userspace answered a REQUEST on 67 (server id {server_id:?})"
        );
    }
    assert_eq!(counter(&f, Counter::Ack), 0);
}

#[test]
fn proxy_acks_the_boot_server_request_on_4011_where_it_came_from() {
    let f = proxy_fixture();
    let client_ip = Ipv4Addr::new(10, 50, 0, 77);
    let mut req = pxe(
        NODE1,
        MessageType::Request,
        b"PXEClient:Arch:00007:UNDI:003000",
        7,
        false,
    );
    req.set_ciaddr(client_ip);
    let input = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: client_ip,
            ip_dst: SERVER,
            sport: 68,
            dport: 4011,
        },
        &encode(&req),
    );
    let (m, a) = proxy_reply(&f, &input, MessageType::Ack);
    assert_eq!(m.ciaddr(), client_ip);
    assert!(!m.flags().broadcast());
    assert_eq!(
        (a.eth_dst, a.ip_dst, a.dport, a.sport),
        (NODE1, client_ip, 68, 67)
    );
    assert_eq!(file_of(&m), "ipxe.efi");

    // A DISCOVER has no business on the boot-server port.
    let mut d = req.clone();
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let payload = encode(&d);
    let fixed = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: client_ip,
            ip_dst: SERVER,
            sport: 68,
            dport: 4011,
        },
        &payload,
    );
    passes(&f, &fixed, Counter::PassOtherDhcp);
    assert_eq!(userspace(&f, &fixed), None);
}

#[test]
fn proxy_answers_a_relayed_pxe_client_through_its_relay() {
    stormboot_testbed::require_root();
    // remote1, behind the relay, with a boot profile this time.
    let mut f = proxy_fixture();
    let text = CONFIG
        .replacen("[server]\n", "[server]\nmode = \"proxy\"\n", 1)
        .replace(
            "hostname = \"remote1\"\n",
            "hostname = \"remote1\"\nprofile = \"debian\"\n",
        );
    f.cfg = Arc::new(config(&text, "proxy.toml").unwrap());
    f.dp.install(&f.cfg).unwrap();
    let mut req = pxe(
        REMOTE,
        MessageType::Discover,
        b"PXEClient:Arch:00007:UNDI:003000",
        7,
        false,
    );
    req.set_giaddr(RELAY);
    req.set_hops(1);
    let (m, a) = proxy_reply(&f, &relayed_without_82(&req), MessageType::Offer);
    assert_eq!(m.giaddr(), RELAY);
    assert_eq!(file_of(&m), "ipxe.efi");
    assert_eq!(
        (a.eth_dst, a.ip_dst, a.dport),
        (RELAY_MAC, RELAY, 67),
        "back to the relay"
    );
}

#[test]
fn proxy_passes_everything_but_reserved_boot_requests() {
    let f = proxy_fixture();
    // Plain DHCP, from a reserved machine too: the other server's (a
    // REQUEST on 67 is never a proxy's, booting or not).
    for (t, why) in [
        (MessageType::Discover, Counter::PassNotBooting),
        (MessageType::Request, Counter::PassOtherDhcp),
    ] {
        let input = broadcast_frame(&request(NODE1, t));
        passes(&f, &input, why);
        assert_eq!(userspace(&f, &input), None, "stormboot never answers it");
    }
    // A reserved machine with no profile, and a machine with no
    // reservation: userspace decides (here: nothing to boot either).
    let mut remote = pxe(
        REMOTE,
        MessageType::Discover,
        b"PXEClient:Arch:00000:UNDI:002001",
        0,
        false,
    );
    remote.set_giaddr(RELAY);
    let input = relayed_without_82(&remote);
    passes(&f, &input, Counter::PassUnknownMac);
    assert_eq!(userspace(&f, &input), None);
    let input = broadcast_frame(&pxe(
        UNKNOWN,
        MessageType::Discover,
        b"PXEClient:Arch:00000:UNDI:002001",
        0,
        false,
    ));
    passes(&f, &input, Counter::PassUnknownMac);
    assert_eq!(userspace(&f, &input), None);
    // Releases and informs are not a proxy's.
    let mut rel = pxe(
        NODE1,
        MessageType::Release,
        b"PXEClient:Arch:00000:UNDI:002001",
        0,
        false,
    );
    rel.set_ciaddr(NODE1_IP);
    passes(&f, &broadcast_frame(&rel), Counter::PassOtherDhcp);
    assert_eq!(counter(&f, Counter::Offer) + counter(&f, Counter::Ack), 0);
}

#[test]
fn authoritative_mode_leaves_port_4011_alone() {
    let f = fixture();
    let mut req = pxe(
        NODE1,
        MessageType::Request,
        b"PXEClient:Arch:00007:UNDI:003000",
        7,
        false,
    );
    req.set_ciaddr(NODE1_IP);
    let input = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: NODE1_IP,
            ip_dst: SERVER,
            sport: 68,
            dport: 4011,
        },
        &encode(&req),
    );
    passes(&f, &input, Counter::PassNotDhcp);
}

/// More reservations than one write batch holds, then a second install
/// without some of them: every written machine is answered, and the
/// removed ones are passed up as unknown.
#[test]
fn reservations_in_many_batches_and_a_reinstall_without_some() {
    stormboot_testbed::require_root();
    const N: u32 = 5000;
    let mac = |i: u32| [0x02, 0xaa, 0, 0, (i >> 8) as u8, i as u8];
    let ip = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 50, 100, 0)) + i);
    let many = |n: u32| {
        let mut text = CONFIG.replace("cidr = \"10.50.0.0/24\"", "cidr = \"10.50.0.0/16\"");
        for i in 0..n {
            text.push_str(&format!(
                "\n[[reservation]]\nmac = \"{}\"\nip = \"{}\"\n",
                frame::format_mac(&mac(i)),
                ip(i)
            ));
        }
        config(&text, "many.toml").expect("config is valid")
    };
    let Loaded { mut dp, .. } =
        Loaded::new(many(N), Setup::default()).expect("the XDP program loads");
    let offered = |dp: &Dataplane, i: u32| -> Option<Ipv4Addr> {
        let input = broadcast_frame(&request(mac(i), MessageType::Discover));
        let (action, out) = dp.test_run(&input).expect("BPF_PROG_TEST_RUN works");
        if action != XDP_TX {
            assert_eq!(action, XDP_PASS, "machine {i}");
            return None;
        }
        let p = frame::parse(&out).expect("a valid reply frame");
        let m = Message::decode(&mut Decoder::new(p.payload)).expect("a DHCP reply");
        assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
        Some(m.yiaddr())
    };
    for i in [0, 4095, 4096, N - 1] {
        assert_eq!(offered(&dp, i), Some(ip(i)), "machine {i}");
    }
    dp.install(&many(N - 100))
        .expect("maps accept the smaller tables");
    assert_eq!(offered(&dp, N - 1), None, "a removed reservation");
    assert_eq!(offered(&dp, N - 101), Some(ip(N - 101)));
    assert_eq!(offered(&dp, 0), Some(ip(0)));
    // The link's own reservation is still there too.
    assert_eq!(
        offered_mac(&dp, NODE1),
        Some(NODE1_IP),
        "inline reservations survive"
    );
}

fn offered_mac(dp: &Dataplane, mac: [u8; 6]) -> Option<Ipv4Addr> {
    let input = broadcast_frame(&request(mac, MessageType::Discover));
    let (action, out) = dp.test_run(&input).expect("BPF_PROG_TEST_RUN works");
    (action == XDP_TX).then(|| {
        let p = frame::parse(&out).expect("a valid reply frame");
        Message::decode(&mut Decoder::new(p.payload))
            .expect("a DHCP reply")
            .yiaddr()
    })
}

/// Builds the frame of `payload` from NODE1, then lets `edit` change it.
fn edited(payload: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = client_frame(NODE1, None, payload);
    edit(&mut f);
    f
}

/// Payload of a DISCOVER from NODE1 with `extra` inserted before END.
fn discover_with(extra: &[u8]) -> Vec<u8> {
    let mut p = encode(&request(NODE1, MessageType::Discover));
    let end = p.len() - 1;
    p.splice(end..end, extra.iter().copied());
    p
}

#[test]
fn frames_userspace_refuses_are_passed_up_not_answered() {
    // Each of these is refused by the userspace dataplane (bad headers)
    // or read differently by it (repeated or odd-length options); the
    // program must leave them to it rather than answer its own way.
    let f = fixture();
    let plain = discover_with(&[]);
    let bad_ip_checksum = edited(&plain, |f| f[24] ^= 0x10);
    passes(&f, &bad_ip_checksum, Counter::Malformed);
    // One bit of the options flipped: the UDP checksum no longer holds.
    let bad_udp_checksum = edited(&plain, |f| f[42 + 250] ^= 0x01);
    assert_eq!(
        slowpath::decode(&bad_udp_checksum).err(),
        Some(slowpath::DecodeError::Frame(frame::FrameError::UdpChecksum))
    );
    passes(&f, &bad_udp_checksum, Counter::Malformed);
    // No checksum at all (zero) is the sender's right (RFC 768), and the
    // partial checksum of an offload (a sender on this host, through a
    // veth) is what the slow path, told by the kernel, reads as none: both
    // answered.
    let (m, _, _) = reply(&f, &edited(&plain, |f| f[40..42].copy_from_slice(&[0, 0])));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    let partial = edited(&plain, |f| {
        stormboot_testbed::lab::mutate::set_partial_checksum(f)
    });
    assert!(slowpath::decode(&partial).is_err(), "not a valid checksum");
    let (action, _) = run(&f, &partial);
    assert_eq!(action, XDP_TX, "a partial checksum is answered");
    // IPv4 total length longer than the frame, and too short for the
    // datagram (checksum kept right).
    for ip_len in [2000u16, 100] {
        let lie = edited(&plain, |f| {
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f[24..26].copy_from_slice(&[0, 0]);
            let sum =
                stormboot_common::csum::finish_ip(stormboot_common::csum::sum_bytes(&f[14..34]));
            f[24..26].copy_from_slice(&sum.to_be_bytes());
        });
        assert!(slowpath::decode(&lie).is_err());
        passes(&f, &lie, Counter::Malformed);
    }
    // Subnet selection (RFC 3011) and option 82's link selection (RFC
    // 3527): the userspace server chooses the subnet by them.
    passes(
        &f,
        &edited(&discover_with(&[118, 4, 10, 51, 0, 99]), |_| {}),
        Counter::PassUnsupported,
    );
    passes(
        &f,
        &edited(
            &discover_with(&[82, 12, 1, 2, b'p', b'1', 5, 4, 10, 51, 0, 99, 2, 0]),
            |_| {},
        ),
        Counter::PassUnsupported,
    );
    // Two message types: userspace concatenates adjacent repeats (RFC
    // 3396) and keeps the last of others; the walk would keep the last.
    let twice = edited(&discover_with(&[53, 1, 3]), |_| {});
    passes(&f, &twice, Counter::PassUnsupported);
    // Option 50 of three bytes, option 53 of two, option 93 of one.
    for extra in [&[50u8, 3, 10, 50, 0][..], &[53, 2, 1, 1], &[93, 1, 0]] {
        let mut p = encode(&request(NODE1, MessageType::Discover));
        // Replace the message type option (first) when the extra is one.
        if extra[0] == 53 {
            p.drain(240..243);
        }
        let end = p.len() - 1;
        p.splice(end..end, extra.iter().copied());
        passes(&f, &edited(&p, |_| {}), Counter::Malformed);
    }
}

/// Machines that share one template set (same subnet, profile and
/// options) each get their own address, host name and boot URL from it,
/// byte for byte what the userspace dataplane sends: host names of every
/// length around the record's limit, one too long for the record (its
/// templates are its own), one with options of its own (likewise); on the
/// link asked plainly, as PXE firmware and as iPXE, and behind a relay,
/// where the echoed option 82 follows host names of either parity.
#[test]
fn machines_sharing_templates_get_their_own_address_name_and_url() {
    sharing_templates(None);
}

/// The same with the templates in the TEMPLATES hash map, where the daemon
/// puts them when it sizes for more sets than TEMPLATE_SLOTS should hold.
#[test]
fn machines_sharing_templates_from_the_hash_map_get_the_same_replies() {
    sharing_templates(Some(Templates {
        slotted: false,
        sets: 64,
    }));
}

fn sharing_templates(templates: Option<Templates>) {
    stormboot_testbed::require_root();
    let names: [Option<String>; 7] = [
        None,
        Some("a".into()),
        Some("ab".into()),
        Some("n".repeat(31)),
        Some("m".repeat(32)),
        Some("l".repeat(33)),
        Some("opts".into()),
    ];
    // Group 0 on the link's subnet, group 1 behind the relay.
    let mac = |g: usize, i: usize| [0x02, 0xbb, 0, 0, g as u8, i as u8 + 1];
    let ip = |g: usize, i: usize| Ipv4Addr::new(10, 50 + g as u8, 0, 100 + i as u8);
    let mut text = CONFIG.to_string();
    for g in 0..2 {
        for (i, name) in names.iter().enumerate() {
            text.push_str(&format!(
                "\n[[reservation]]\nmac = \"{}\"\nip = \"{}\"\nprofile = \"debian\"\n",
                frame::format_mac(&mac(g, i)),
                ip(g, i)
            ));
            if let Some(n) = name {
                text.push_str(&format!("hostname = \"{n}\"\n"));
            }
            if name.as_deref() == Some("opts") {
                text.push_str(
                    "[[reservation.option]]\ncode = 150\ntype = \"ipv4\"\nvalue = \"10.51.0.4\"\n",
                );
            }
        }
    }
    let cfg = config(&text, "shared.toml").unwrap_or_else(|e| panic!("{e:#}"));
    let f = Loaded::new(
        cfg,
        Setup {
            templates,
            ..Default::default()
        },
    )
    .expect("the XDP program loads and passes the verifier");
    assert_eq!(
        f.dp.templates_slotted(),
        templates.is_none_or(|t| t.slotted)
    );
    // Per group: one set shared by five machines (and, in group 0, by
    // CONFIG's node1), and one each for the long name and the options;
    // CONFIG's remote1 has its own.
    assert_eq!(f.dp.template_sets(), 2 * 3 + 1, "template sets in the map");
    let vendor = b"PXEClient:Arch:00000:UNDI:002001";
    for g in 0..2 {
        for (i, name) in names.iter().enumerate() {
            let (m, addr) = (mac(g, i), ip(g, i));
            let url = format!("http://10.50.0.1:8080/{}/auto.ipxe", frame::format_mac(&m));
            let inputs = if g == 0 {
                let mut ipxe = firmware(m, MessageType::Request, vendor, 0, Some(b"iPXE"));
                ipxe.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
                ipxe.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
                vec![
                    ("plain", broadcast_frame(&request(m, MessageType::Discover))),
                    (
                        "pxe",
                        broadcast_frame(&firmware(m, MessageType::Discover, vendor, 0, None)),
                    ),
                    ("ipxe", broadcast_frame(&ipxe)),
                ]
            } else {
                let mut req = request(m, MessageType::Discover);
                req.set_giaddr(RELAY);
                let mut ipxe = firmware(m, MessageType::Discover, vendor, 0, Some(b"iPXE"));
                ipxe.set_giaddr(RELAY);
                vec![
                    ("relayed", relayed_frame(&req)),
                    ("relayed ipxe", relayed_frame(&ipxe)),
                ]
            };
            for (what, input) in inputs {
                let (action, out) = run(&f, &input);
                assert_eq!(action, XDP_TX, "machine {g}/{i} {what}");
                assert_eq!(
                    Some(&out),
                    userspace(&f, &input).as_ref(),
                    "machine {g}/{i} {what}: the program's reply is the userspace one"
                );
                let p = frame::parse(&out).expect("a valid reply frame, checksums included");
                let reply = Message::decode(&mut Decoder::new(p.payload)).expect("a DHCP reply");
                assert_eq!(reply.yiaddr(), addr, "machine {g}/{i} {what}");
                let hostname = match reply.opts().get(OptionCode::Hostname) {
                    Some(DhcpOption::Hostname(h)) => Some(h.clone()),
                    _ => None,
                };
                assert_eq!(&hostname, name, "machine {g}/{i} {what}");
                if what.contains("ipxe") {
                    assert_eq!(file_of(&reply), url, "machine {g}/{i} {what}");
                    assert_eq!(
                        bytes_opt(&reply, OptionCode::BootfileName).as_deref(),
                        Some(url.as_bytes())
                    );
                }
            }
        }
    }
}

/// Changes while running (the API's path): a machine added beside others of
/// its kind takes no new template set, one with options of its own brings
/// its set and takes it away when removed, and a changed host name is
/// answered at once from the same set.
#[test]
fn a_set_comes_and_goes_with_its_machines() {
    let mut f = fixture();
    let cfg = f.cfg.clone();
    assert_eq!(f.dp.template_sets(), 2, "node1's and remote1's");
    let node1 = cfg.reservations.iter().find(|r| r.mac == NODE1).unwrap();
    let put = |dp: &mut Dataplane, r: &stormboot::config::Reservation| {
        let rendered = tables::reservation_entries(&cfg, r).expect("renders");
        dp.put_reservation(r.mac, &rendered)
            .expect("the maps take it");
    };

    let mut twin = node1.clone();
    twin.mac = [0x02, 0xcc, 0, 0, 0, 1];
    twin.ip = Ipv4Addr::new(10, 50, 0, 201);
    put(&mut f.dp, &twin);
    assert_eq!(f.dp.template_sets(), 2, "node1's set serves its twin");
    assert_eq!(offered_mac(&f.dp, twin.mac), Some(twin.ip));

    let mut own = twin.clone();
    own.mac = [0x02, 0xcc, 0, 0, 0, 2];
    own.ip = Ipv4Addr::new(10, 50, 0, 202);
    own.options = stormboot::compact::List::from(vec![stormboot::config::CustomOption {
        code: 150,
        data: vec![10, 50, 0, 4],
    }]);
    put(&mut f.dp, &own);
    assert_eq!(f.dp.template_sets(), 3);
    assert_eq!(offered_mac(&f.dp, own.mac), Some(own.ip));
    f.dp.remove_reservation(own.mac).expect("removed");
    assert_eq!(f.dp.template_sets(), 2, "its set went with it");
    assert_eq!(offered_mac(&f.dp, own.mac), None, "passed up");

    let mut renamed = node1.clone();
    renamed.hostname = Some("renamed-node".into());
    put(&mut f.dp, &renamed);
    assert_eq!(f.dp.template_sets(), 2);
    // The fixture's configuration still says node1: decoded, not compared.
    let (action, out) = run(&f, &broadcast_frame(&request(NODE1, MessageType::Discover)));
    assert_eq!(action, XDP_TX);
    let p = frame::parse(&out).expect("a valid reply frame, checksums included");
    let m = Message::decode(&mut Decoder::new(p.payload)).expect("a DHCP reply");
    assert!(
        matches!(m.opts().get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "renamed-node")
    );
    // Moving the twin to the options' set and back frees nothing in use.
    put(
        &mut f.dp,
        &stormboot::config::Reservation {
            mac: twin.mac,
            ip: twin.ip,
            ..own.clone()
        },
    );
    assert_eq!(f.dp.template_sets(), 3);
    put(&mut f.dp, &twin);
    assert_eq!(f.dp.template_sets(), 2);
    assert_eq!(offered_mac(&f.dp, twin.mac), Some(twin.ip));
    assert_eq!(offered_mac(&f.dp, NODE1), Some(NODE1_IP));
}

/// A full TEMPLATE_SLOTS: a new set waits for a slot whose set lost its
/// last machine until the grace period is over (a program that read the
/// old record may still be copying its template), then takes it and is
/// answered from it, byte for byte the userspace reply; with no slot let
/// go of, the map says it is full.
#[test]
fn a_full_slot_map_reuses_a_slot_only_after_its_grace_period() {
    use stormboot::dataplane::{DataplaneError, SLOT_GRACE};
    stormboot_testbed::require_root();
    // Room for 8 sets (number 0 is never used): node1's, remote1's and 5.
    let sets = 8;
    let cfg = config(CONFIG, "fixture.toml").unwrap_or_else(|e| panic!("{e:#}"));
    let mut f = Loaded::new(
        cfg,
        Setup {
            templates: Some(Templates {
                slotted: true,
                sets,
            }),
            ..Default::default()
        },
    )
    .expect("the XDP program loads and passes the verifier");
    let cfg = f.cfg.clone();
    let node1 = cfg.reservations.iter().find(|r| r.mac == NODE1).unwrap();
    let put = |dp: &mut Dataplane, r: &stormboot::config::Reservation| {
        let rendered = tables::reservation_entries(&cfg, r).expect("renders");
        dp.put_reservation(r.mac, &rendered)
    };
    // Each with an option value of its own: a set of its own.
    let own = |i: u8| {
        let mut r = node1.clone();
        r.mac = [0x02, 0xdd, 0, 0, 0, i];
        r.ip = Ipv4Addr::new(10, 50, 0, 60 + i);
        r.hostname = None;
        r.options = stormboot::compact::List::from(vec![stormboot::config::CustomOption {
            code: 150,
            data: vec![10, 50, 0, i],
        }]);
        r
    };
    // Compared with the userspace server of a configuration that has the
    // machine (the fixture's has only node1 and remote1).
    let answered = |f: &Fixture, r: &stormboot::config::Reservation| {
        let input = broadcast_frame(&request(r.mac, MessageType::Discover));
        let (action, out) = run(f, &input);
        assert_eq!(action, XDP_TX, "{:?}", r.mac);
        let mut with = (*f.cfg).clone();
        with.reservations.push(r.clone());
        let (expected, note) = stormboot_testbed::lab::fixtures::userspace(&Arc::new(with), &input);
        assert_eq!(
            Some(&out),
            expected.as_ref(),
            "{:?}: the program's reply is the userspace one ({note})",
            r.mac
        );
    };
    let machines: Vec<_> = (0..5).map(own).collect();
    for r in &machines {
        put(&mut f.dp, r).expect("a free slot");
        answered(&f, r);
    }
    assert_eq!(f.dp.template_sets(), 7);
    assert!(
        matches!(
            put(&mut f.dp, &own(5)),
            Err(DataplaneError::TemplatesFull(_))
        ),
        "no slot free and none let go of: full"
    );

    f.dp.remove_reservation(machines[0].mac).expect("removed");
    let released = std::time::Instant::now();
    let late = own(6);
    put(&mut f.dp, &late).expect("the slot, once its grace period is over");
    assert!(
        released.elapsed() >= SLOT_GRACE,
        "taken {:?} after its set was let go of",
        released.elapsed()
    );
    answered(&f, &late);
    for r in &machines[1..] {
        answered(&f, r);
    }
    assert_eq!(offered_mac(&f.dp, machines[0].mac), None, "passed up");
}

/// The lab generator's counting program (`stormboot_tally`, what
/// `stormboot-lab rate --tally` reads): it counts and drops exactly the
/// answers the generator's receive thread would count, and passes the rest.
#[test]
fn the_generators_tally_counts_its_runs_answers_and_passes_the_rest() {
    use aya::maps::{Array, PerCpuArray};
    use aya::programs::Xdp;
    use std::os::fd::AsFd;
    use stormboot_common::layout::{CLIENT_PORT, SERVER_PORT};
    use stormboot_common::maps::{names, PROGRAM_TALLY};
    use stormboot_common::tally::{mac_add, slot, xid, Run};
    use stormboot_testbed::lab::testrun;

    let mut ebpf = aya::EbpfLoader::new()
        .load(stormboot::dataplane::EBPF_OBJECT)
        .expect("loading the eBPF object (needs root)");
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_TALLY)
        .expect("the object has the tally program")
        .try_into()
        .unwrap();
    prog.load().expect("the tally program verifies");
    let fd = prog.fd().unwrap().as_fd().try_clone_to_owned().unwrap();
    let mut run_map: Array<_, Run> =
        Array::try_from(ebpf.take_map(names::TALLY_RUN).unwrap()).unwrap();
    let counts: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.take_map(names::TALLY_COUNTS).unwrap()).unwrap();
    let count = |s: u32| -> u64 { counts.get(&s, 0).unwrap().iter().sum() };

    let first_mac = [2, 0, 0, 0, 0, 0xfe];
    let first_ip = Ipv4Addr::new(10, 50, 4, 250);
    let nonce = 0x5a;
    let reply_to = |kind: MessageType, xid: u32, mac: [u8; 6], yiaddr: Ipv4Addr| {
        let u = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(xid, u, yiaddr, SERVER, u, &mac);
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        let mut payload = encode(&m);
        payload.resize(payload.len().max(300), 0);
        frame::build(
            &Addressing {
                eth_dst: mac,
                eth_src: SERVER_MAC,
                vlan: None,
                ip_src: SERVER,
                ip_dst: yiaddr,
                sport: SERVER_PORT,
                dport: CLIENT_PORT,
            },
            &payload,
        )
    };
    let reply = |kind: MessageType, xid: u32, index: u32, yiaddr: Ipv4Addr| {
        reply_to(kind, xid, mac_add(first_mac, index).unwrap(), yiaddr)
    };
    let ip_of = |i: u32| Ipv4Addr::from(u32::from(first_ip) + i);
    let mut out = vec![0u8; 4096];
    let mut action = |f: &[u8]| testrun::once(fd.as_fd(), f, 1, &mut out).unwrap().retval;

    // Machine 3's OFFER: its index carries it across a byte of the MAC.
    let offer = reply(MessageType::Offer, xid(nonce, false, 3), 3, ip_of(3));
    assert_eq!(
        action(&offer),
        XDP_PASS,
        "no run announced: everything passes"
    );
    assert_eq!(count(slot::OFFERS), 0);

    run_map
        .set(
            0,
            Run {
                active: 1,
                count: 10,
                first_mac,
                nonce,
                _pad: 0,
                first_ip: u32::from(first_ip),
            },
            0,
        )
        .unwrap();
    let counted = [
        (offer.clone(), slot::OFFERS),
        (
            reply(MessageType::Ack, xid(nonce, true, 3), 3, ip_of(3)),
            slot::ACKS,
        ),
        (
            reply(
                MessageType::Nak,
                xid(nonce, true, 9),
                9,
                Ipv4Addr::UNSPECIFIED,
            ),
            slot::NAKS,
        ),
    ];
    for (f, s) in &counted {
        assert_eq!(action(f), XDP_DROP, "slot {s}");
        assert_eq!(count(*s), 1, "slot {s}");
    }
    // An ACK with another machine's address: an answer, and a wrong one.
    let wrong = reply(MessageType::Ack, xid(nonce, true, 4), 4, ip_of(5));
    assert_eq!(action(&wrong), XDP_DROP);
    assert_eq!((count(slot::ACKS), count(slot::WRONG_ADDRESS)), (2, 1));
    // A reply to the run that is not the answer its request wanted:
    // dropped, counted nowhere.
    let ack_to_discover = reply(MessageType::Ack, xid(nonce, false, 2), 2, ip_of(2));
    assert_eq!(action(&ack_to_discover), XDP_DROP);
    // A damaged one: counted as such, never as an answer.
    let mut damaged = offer.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    assert_eq!(action(&damaged), XDP_DROP);
    assert_eq!(count(slot::BAD_CHECKSUM), 1);
    // Not the run's: another run's nonce, a machine past the count, a
    // chaddr that is not the index's machine. They pass to the stack.
    for f in [
        reply(MessageType::Offer, xid(nonce + 1, false, 3), 3, ip_of(3)),
        reply(MessageType::Offer, xid(nonce, false, 10), 10, ip_of(10)),
        reply_to(
            MessageType::Offer,
            xid(nonce, false, 3),
            mac_add(first_mac, 4).unwrap(),
            ip_of(3),
        ),
        client_frame(
            first_mac,
            None,
            &encode(&request(first_mac, MessageType::Discover)),
        ),
    ] {
        assert_eq!(action(&f), XDP_PASS);
    }
    assert_eq!(
        [
            slot::OFFERS,
            slot::ACKS,
            slot::NAKS,
            slot::WRONG_ADDRESS,
            slot::BAD_CHECKSUM
        ]
        .map(count),
        [1, 2, 1, 1, 1],
        "nothing else was counted"
    );
}

/// Machines whose MACs share a home slot in the reservation table: each is
/// found past the others and past a removed one, and one beyond the probe
/// limit is left to the daemon (passed up) until a slot frees.
#[test]
fn machines_sharing_a_home_slot_are_found_past_each_other_and_removals() {
    use stormboot_common::table::{home, PROBES};
    let mut f = fixture();
    let cfg = f.cfg.clone();
    let bits = f.dp.table_bits();
    let node1 = cfg.reservations.iter().find(|r| r.mac == NODE1).unwrap();
    let target = home(&[0x02, 0xdd, 0, 0, 0, 0], bits);
    let same: Vec<[u8; 6]> = (0u32..)
        .map(|i| {
            let b = i.to_be_bytes();
            [0x02, 0xdd, b[0], b[1], b[2], b[3]]
        })
        .filter(|m| home(m, bits) == target)
        .take(PROBES as usize + 1)
        .collect();
    let ip = |i: usize| Ipv4Addr::new(10, 50, 0, 100 + i as u8);
    for (i, mac) in same.iter().enumerate() {
        let mut r = node1.clone();
        r.mac = *mac;
        r.ip = ip(i);
        r.hostname = None;
        let rendered = tables::reservation_entries(&cfg, &r).expect("renders");
        f.dp.put_reservation(r.mac, &rendered)
            .expect("the maps take it");
    }
    assert_eq!(f.dp.unplaced(), 1, "one past the probe limit");
    let answered = |dp: &Dataplane| -> Vec<Option<Ipv4Addr>> {
        same.iter().map(|m| offered_mac(dp, *m)).collect()
    };
    let mut want: Vec<Option<Ipv4Addr>> = (0..same.len()).map(|i| Some(ip(i))).collect();
    want[PROBES as usize] = None;
    assert_eq!(answered(&f.dp), want, "the last is passed up");
    assert!(f.dp.machine(same[PROBES as usize]).unwrap().is_some());

    f.dp.remove_reservation(same[3]).expect("removed");
    want[3] = None;
    assert_eq!(answered(&f.dp), want, "found past the removed one");

    let mut r = node1.clone();
    r.mac = same[PROBES as usize];
    r.ip = ip(PROBES as usize);
    r.hostname = None;
    let rendered = tables::reservation_entries(&cfg, &r).expect("renders");
    f.dp.put_reservation(r.mac, &rendered)
        .expect("the maps take it");
    assert_eq!(f.dp.unplaced(), 0, "the removed one's slot took it");
    want[PROBES as usize] = Some(ip(PROBES as usize));
    assert_eq!(answered(&f.dp), want);
    assert_eq!(offered_mac(&f.dp, NODE1), Some(NODE1_IP));
}
