//! The server's behaviour, request by request (RFC 2131 section 4.3), with
//! requests built and replies decoded by dhcproto.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use dhcproto::v4::{relay, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stormboot_common::layout::{msg, opt, FLAG_BROADCAST, OPTIONS_OFF};
use stormboot_common::rules::{self, EthDest};

use super::*;
use crate::config::Config;
use crate::leases::{Lease, LeaseAction, LeaseChange, LeaseState};
use crate::render::tables;
use crate::render::{self, Transaction};

const T0: u64 = 1_700_000_000;
const OURS: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);

const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
domain = "rack1.example"
pool = ["10.50.0.100-10.50.0.199"]
exclude = ["10.50.0.150"]
ntp = ["10.50.0.2"]
mtu = 9000
domain_search = ["eng.apple.com", "marketing.apple.com"]
routes = [{ destination = "10.60.0.0/16", gateway = "10.50.0.1" }]

[[subnet.option]]
code = 150
type = "ipv4"
value = "10.50.0.3"

[[subnet.option]]
code = 224
type = "string"
value = "rack1"

[[subnet]]
cidr = "10.60.0.0/24"
routers = ["10.60.0.1"]
pool = ["10.60.0.100-10.60.0.109"]

[[subnet]]
cidr = "10.70.0.0/24"
pool = ["10.70.0.10-10.70.0.20"]
authoritative = false
interface = "sb1"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"

[[reservation.option]]
code = 150
type = "ipv4"
value = "10.50.0.4"

[[reservation.option]]
code = 26
type = "u16"
value = "1500"

[[reservation]]
mac = "52:54:00:00:00:02"
ip = "10.50.0.120"
"#;

fn cfg() -> Arc<Config> {
    Arc::new(Config::from_str(CONFIG, Path::new("stormboot.toml")).unwrap())
}

fn server() -> Server {
    Server::new(cfg(), Vec::new(), T0)
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn sb0() -> Ingress {
    Ingress {
        ifindex: 2,
        iface_name: "sb0".into(),
        iface_addr: OURS,
    }
}

fn mac(n: u32) -> [u8; 6] {
    let [_, a, b, c] = n.to_be_bytes();
    [0x02, 0, 0, a, b, c]
}

const RESERVED: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const RESERVED_IN_POOL: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

/// A request of type `t` from `chaddr`.
pub(super) fn req(chaddr: [u8; 6], t: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x1000 + u32::from(chaddr[5]), z, z, z, z, &chaddr);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(t));
    m
}

fn with(mut m: Message, o: DhcpOption) -> Message {
    m.opts_mut().insert(o);
    m
}

fn discover(chaddr: [u8; 6]) -> Message {
    req(chaddr, MessageType::Discover)
}

/// REQUEST in SELECTING: option 54 and option 50.
fn select(chaddr: [u8; 6], addr: Ipv4Addr, server: Ipv4Addr) -> Message {
    let m = req(chaddr, MessageType::Request);
    let m = with(m, DhcpOption::ServerIdentifier(server));
    with(m, DhcpOption::RequestedIpAddress(addr))
}

/// REQUEST in INIT-REBOOT: option 50, no 54, no ciaddr.
fn init_reboot(chaddr: [u8; 6], addr: Ipv4Addr) -> Message {
    with(
        req(chaddr, MessageType::Request),
        DhcpOption::RequestedIpAddress(addr),
    )
}

/// REQUEST in RENEWING (REBINDING is the same, broadcast): ciaddr only.
fn renew(chaddr: [u8; 6], addr: Ipv4Addr) -> Message {
    let mut m = req(chaddr, MessageType::Request);
    m.set_ciaddr(addr);
    m
}

fn relayed(mut m: Message, giaddr: Ipv4Addr) -> Message {
    m.set_giaddr(giaddr);
    m
}

/// Where a client without an address sends from.
const CLIENT_PORT: std::net::SocketAddrV4 = std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);

fn handle(s: &mut Server, m: &Message, now: u64) -> Outcome {
    handle_on(s, m, None, &sb0(), now)
}

fn handle_on(
    s: &mut Server,
    m: &Message,
    relay_info: Option<&[u8]>,
    ingress: &Ingress,
    now: u64,
) -> Outcome {
    s.handle(
        &Request {
            msg: m,
            relay_info,
            ingress,
            src: CLIENT_PORT,
            dport: 67,
        },
        now,
    )
}

fn decode(r: &Reply) -> Message {
    Message::decode(&mut Decoder::new(&r.payload)).unwrap()
}

/// The raw value of option `code` in an encoded reply.
fn raw_option(payload: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut pos = OPTIONS_OFF;
    let mut found: Option<Vec<u8>> = None;
    while pos < payload.len() {
        match payload[pos] {
            opt::END => break,
            opt::PAD => pos += 1,
            c => {
                let len = usize::from(payload[pos + 1]);
                if c == code {
                    found
                        .get_or_insert_with(Vec::new)
                        .extend(&payload[pos + 2..pos + 2 + len]);
                }
                pos += 2 + len;
            }
        }
    }
    found
}

/// Codes of the options of an encoded reply, in order.
fn option_codes(payload: &[u8]) -> Vec<u8> {
    let mut pos = OPTIONS_OFF;
    let mut out = Vec::new();
    while pos < payload.len() {
        match payload[pos] {
            opt::END => break,
            opt::PAD => pos += 1,
            c => {
                out.push(c);
                pos += 2 + usize::from(payload[pos + 1]);
            }
        }
    }
    out
}

/// DISCOVER, OFFER, REQUEST, ACK; the address.
fn dora(s: &mut Server, chaddr: [u8; 6], now: u64) -> Ipv4Addr {
    let o = handle(s, &discover(chaddr), now);
    assert_eq!(o.note, "offer");
    let offered = o.reply.unwrap().yiaddr;
    let a = handle(s, &select(chaddr, offered, OURS), now);
    assert_eq!(a.note, "ack", "{a:?}");
    assert_eq!(a.reply.unwrap().yiaddr, offered);
    offered
}

fn upserts(o: &Outcome) -> Vec<&Lease> {
    o.changes
        .iter()
        .filter_map(|c| match c {
            LeaseChange::Upsert(l) => Some(l),
            LeaseChange::Remove(_) => None,
        })
        .collect()
}

fn removes(o: &Outcome) -> Vec<Ipv4Addr> {
    o.changes
        .iter()
        .filter_map(|c| match c {
            LeaseChange::Remove(l) => Some(l.ip),
            LeaseChange::Upsert(_) => None,
        })
        .collect()
}

/// The addresses `changes` free; every change must be a removal.
fn removed(changes: &[LeaseChange]) -> Vec<Ipv4Addr> {
    changes
        .iter()
        .map(|c| match c {
            LeaseChange::Remove(l) => l.ip,
            LeaseChange::Upsert(l) => panic!("not a removal: {l:?}"),
        })
        .collect()
}

#[test]
fn full_dora_for_a_pool_client() {
    let mut s = server();
    let c = mac(1);
    let o = handle(&mut s, &discover(c), T0);
    assert_eq!(o.note, "offer");
    let r = o.reply.clone().unwrap();
    assert_eq!(r.msg_type, msg::OFFER);
    assert_eq!(r.yiaddr, ip(10, 50, 0, 100), "the lowest free address");
    assert_eq!(
        (r.dest.ip, r.dest.port, r.dest.eth),
        (u32::from(r.yiaddr), 68, EthDest::Chaddr)
    );
    let held = upserts(&o);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].state, LeaseState::Offered);
    assert_eq!(held[0].expires, T0 + 30, "offer_hold default");
    assert_eq!(held[0].client_id, [1, 2, 0, 0, 0, 0, 1]);
    assert_eq!(held[0].mac, c);

    let m = decode(&r);
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), 0x1001);
    assert_eq!(m.yiaddr(), r.yiaddr);
    assert_eq!(m.chaddr(), &c);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert!(r.payload.len() >= 300);
    // dhcproto's code order, extras merged in.
    assert_eq!(
        option_codes(&r.payload),
        [1, 3, 6, 15, 26, 28, 42, 51, 53, 54, 58, 59, 119, 121, 150, 224]
    );
    assert_eq!(raw_option(&r.payload, 54).unwrap(), OURS.octets());
    assert_eq!(raw_option(&r.payload, 51).unwrap(), 3600u32.to_be_bytes());
    assert_eq!(raw_option(&r.payload, 58).unwrap(), 1800u32.to_be_bytes());
    assert_eq!(raw_option(&r.payload, 59).unwrap(), 3150u32.to_be_bytes());
    assert_eq!(raw_option(&r.payload, 1).unwrap(), [255, 255, 255, 0]);
    assert_eq!(raw_option(&r.payload, 28).unwrap(), [10, 50, 0, 255]);
    assert_eq!(raw_option(&r.payload, 15).unwrap(), b"rack1.example");

    let a = handle(&mut s, &select(c, r.yiaddr, OURS), T0 + 1);
    assert_eq!(a.note, "ack");
    let ack = a.reply.clone().unwrap();
    assert_eq!(ack.msg_type, msg::ACK);
    assert_eq!(decode(&ack).opts().msg_type(), Some(MessageType::Ack));
    let bound = upserts(&a);
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].state, LeaseState::Bound);
    assert_eq!(bound[0].expires, T0 + 1 + 3600);
    let leases: Vec<_> = s.leases().collect();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].state, LeaseState::Bound);
    assert_eq!(s.pool_usage()[0].1, 1);
}

#[test]
fn extra_options_are_encoded_per_rfc_and_type() {
    let mut s = server();
    let r = handle(&mut s, &discover(mac(1)), T0).reply.unwrap();
    let p = &r.payload;
    assert_eq!(raw_option(p, 26).unwrap(), 9000u16.to_be_bytes());
    assert_eq!(raw_option(p, 42).unwrap(), [10, 50, 0, 2]);
    // RFC 3397 section 4's example.
    let search: &[u8] = &[
        3, b'e', b'n', b'g', 5, b'a', b'p', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 9, b'm',
        b'a', b'r', b'k', b'e', b't', b'i', b'n', b'g', 0xc0, 0x04,
    ];
    assert_eq!(raw_option(p, 119).unwrap(), search);
    // RFC 3442: 10.60.0.0/16 via 10.50.0.1 is 16.10.60 + router.
    assert_eq!(raw_option(p, 121).unwrap(), [16, 10, 60, 10, 50, 0, 1]);
    assert_eq!(raw_option(p, 150).unwrap(), [10, 50, 0, 3]);
    assert_eq!(raw_option(p, 224).unwrap(), b"rack1");
    // dhcproto decodes them as the options they are.
    let m = decode(&r);
    assert!(matches!(
        m.opts().get(OptionCode::InterfaceMtu),
        Some(DhcpOption::InterfaceMtu(9000))
    ));
    match m.opts().get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(routes)) => {
            assert_eq!(
                routes,
                &[("10.60.0.0/16".parse().unwrap(), ip(10, 50, 0, 1))]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn per_reservation_options_win() {
    let c = cfg();
    let r = &c.reservations[0];
    let extra = c.subnets[0].extra_options(Some(r));
    let find = |code| {
        extra
            .iter()
            .find(|o| o.code == code)
            .map(|o| o.data.clone())
    };
    assert_eq!(find(150), Some(vec![10, 50, 0, 4]), "reservation's 150");
    assert_eq!(find(26), Some(1500u16.to_be_bytes().to_vec()), "over mtu");
    assert_eq!(
        find(224),
        Some(b"rack1".to_vec()),
        "the subnet's others stay"
    );
    let codes: Vec<u8> = extra.iter().map(|o| o.code).collect();
    assert_eq!(codes, [26, 42, 119, 121, 150, 224], "sorted, one each");
    let plain = c.subnets[0].extra_options(None);
    assert_eq!(
        plain.iter().find(|o| o.code == 150).unwrap().data,
        [10, 50, 0, 3]
    );

    // The userspace replies of that machine that are not rendered for the
    // program (INFORM) carry them too, with its host name.
    let mut s = server();
    let mut m = req(RESERVED, MessageType::Inform);
    m.set_ciaddr(ip(10, 50, 0, 11));
    let o = handle(&mut s, &m, T0);
    let p = o.reply.unwrap().payload;
    assert_eq!(raw_option(&p, 150).unwrap(), [10, 50, 0, 4]);
    assert_eq!(raw_option(&p, 26).unwrap(), 1500u16.to_be_bytes());
    assert_eq!(raw_option(&p, 12).unwrap(), b"node1");
}

#[test]
fn same_client_gets_the_same_address_again() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let b = dora(&mut s, mac(2), T0);
    assert_ne!(a, b);
    // Again while bound: the bound lease is offered and stays bound.
    let o = handle(&mut s, &discover(mac(1)), T0 + 10);
    assert_eq!(o.reply.as_ref().unwrap().yiaddr, a);
    assert!(upserts(&o).is_empty(), "no downgrade to offered");

    // By client identifier, whatever the chaddr.
    let id = DhcpOption::ClientIdentifier(b"machine-7".to_vec());
    let o = handle(&mut s, &with(discover(mac(7)), id.clone()), T0);
    let c = o.reply.unwrap().yiaddr;
    let a7 = handle(&mut s, &with(select(mac(7), c, OURS), id.clone()), T0);
    assert_eq!(a7.note, "ack");
    assert_eq!(upserts(&a7)[0].client_id, b"machine-7");
    let o = handle(&mut s, &with(discover(mac(8)), id.clone()), T0 + 5);
    assert_eq!(o.reply.unwrap().yiaddr, c, "same id, other NIC");

    // After a restart from the stored leases.
    let stored: Vec<Lease> = s.leases().cloned().collect();
    let mut s = Server::new(cfg(), stored, T0 + 20);
    assert_eq!(s.pool_usage()[0].1, 3);
    let o = handle(&mut s, &discover(mac(2)), T0 + 20);
    assert_eq!(o.reply.unwrap().yiaddr, b);
    let o = handle(&mut s, &with(discover(mac(9)), id), T0 + 20);
    assert_eq!(o.reply.unwrap().yiaddr, c);
    let o = handle(&mut s, &discover(mac(3)), T0 + 20);
    let fresh = o.reply.unwrap().yiaddr;
    assert!(![a, b, c].contains(&fresh));
}

#[test]
fn previous_address_is_offered_again_after_release() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let b = dora(&mut s, mac(2), T0);
    for (chaddr, addr) in [(mac(1), a), (mac(2), b)] {
        let mut m = req(chaddr, MessageType::Release);
        m.set_ciaddr(addr);
        assert_eq!(handle(&mut s, &m, T0 + 1).note, "released");
    }
    // b's client comes back first: it gets b, not the lower a.
    let o = handle(&mut s, &discover(mac(2)), T0 + 2);
    assert_eq!(o.reply.unwrap().yiaddr, b);
}

#[test]
fn requested_address_is_offered_when_free_and_in_the_pool() {
    let mut s = server();
    let want = ip(10, 50, 0, 177);
    let o = handle(
        &mut s,
        &with(discover(mac(1)), DhcpOption::RequestedIpAddress(want)),
        T0,
    );
    assert_eq!(o.reply.unwrap().yiaddr, want);
    for not_free in [ip(10, 50, 0, 177), ip(10, 50, 0, 150), ip(10, 50, 0, 50)] {
        let o = handle(
            &mut s,
            &with(discover(mac(2)), DhcpOption::RequestedIpAddress(not_free)),
            T0,
        );
        assert_eq!(o.reply.unwrap().yiaddr, ip(10, 50, 0, 100), "{not_free}");
    }
}

/// A model of who may hold each address, checked against every reply.
#[derive(Default)]
struct Model {
    /// ip -> (client, expires, bound)
    held: HashMap<Ipv4Addr, (u32, u64, bool)>,
}

impl Model {
    fn owner(&self, ip: Ipv4Addr, now: u64) -> Option<u32> {
        self.held
            .get(&ip)
            .filter(|&&(_, exp, _)| exp > now)
            .map(|&(c, _, _)| c)
    }

    fn give(&mut self, client: u32, ip: Ipv4Addr, expires: u64, bound: bool, now: u64) {
        if let Some(other) = self.owner(ip, now) {
            assert_eq!(
                other, client,
                "{ip} given to {client} while {other} holds it"
            );
        }
        self.held.retain(|&a, (c, _, _)| *c != client || a == ip);
        let e = self.held.entry(ip).or_insert((client, expires, bound));
        if e.0 == client && e.2 && !bound {
            return; // a bound lease offered again stays bound
        }
        *e = (client, expires, bound);
    }
}

#[test]
fn two_clients_never_get_the_same_address() {
    let mut s = server();
    let mut rng = StdRng::seed_from_u64(2131);
    let mut model = Model::default();
    let mut now = T0;
    let relay = ip(10, 60, 0, 1);
    let pool = 10;
    let mut exhausted = 0;
    let mut notes: HashMap<&str, usize> = HashMap::new();
    const DECLINER: u32 = u32::MAX;
    for _ in 0..5_000 {
        now += rng.gen_range(0..8);
        let client = rng.gen_range(0..40u32);
        let chaddr = mac(client);
        let mine = model
            .held
            .iter()
            .find(|(_, &(c, exp, _))| c == client && exp > now)
            .map(|(&a, &(_, _, b))| (a, b));
        let m = match rng.gen_range(0..10) {
            0..=3 => discover(chaddr),
            4..=6 => {
                let a = mine.map_or(ip(10, 60, 0, rng.gen_range(100..110)), |(a, _)| a);
                select(chaddr, a, OURS)
            }
            7 => {
                let a = mine.map_or(ip(10, 60, 0, rng.gen_range(98..112)), |(a, _)| a);
                renew(chaddr, a)
            }
            8 => {
                let mut m = req(chaddr, MessageType::Release);
                m.set_ciaddr(mine.map_or(ip(10, 60, 0, 100), |(a, _)| a));
                m
            }
            _ => {
                if rng.gen_bool(0.2) {
                    let a = mine.map_or(ip(10, 60, 0, 101), |(a, _)| a);
                    with(
                        with(
                            req(chaddr, MessageType::Decline),
                            DhcpOption::RequestedIpAddress(a),
                        ),
                        DhcpOption::ServerIdentifier(OURS),
                    )
                } else {
                    select(chaddr, ip(10, 60, 0, 100), ip(10, 60, 0, 9))
                }
            }
        };
        let m = relayed(m, relay);
        let o = handle(&mut s, &m, now);
        *notes.entry(o.note).or_insert(0) += 1;
        match (o.note, &o.reply) {
            ("offer", Some(r)) => model.give(client, r.yiaddr, now + 30, false, now),
            ("ack", Some(r)) => model.give(client, r.yiaddr, now + 3600, true, now),
            ("released", None) => {
                model.held.retain(|_, (c, _, _)| *c != client);
            }
            ("declined", None) => {
                let a = match m.opts().get(OptionCode::RequestedIpAddress) {
                    Some(DhcpOption::RequestedIpAddress(a)) => *a,
                    _ => unreachable!(),
                };
                model.held.insert(a, (DECLINER, now + 600, true));
            }
            ("other-server", None) => {
                model.held.retain(|_, (c, _, bound)| *c != client || *bound);
            }
            ("no-free-address", None) => {
                exhausted += 1;
                let busy = (100..110)
                    .filter(|&d| model.owner(ip(10, 60, 0, d), now).is_some())
                    .count();
                assert_eq!(busy, pool, "no free address with free ones left");
            }
            (note, reply) => {
                assert!(
                    reply.as_ref().is_none_or(|r| r.msg_type == msg::NAK),
                    "{note}"
                );
            }
        }
        // The server's own view agrees: one lease per address (by
        // construction), one per client, and the pool counts them.
        let leases: Vec<&Lease> = s.leases().collect();
        let mut clients: Vec<&[u8]> = leases
            .iter()
            .filter(|l| l.state != LeaseState::Declined)
            .map(|l| l.client_id.as_slice())
            .collect();
        clients.sort_unstable();
        let n = clients.len();
        clients.dedup();
        assert_eq!(clients.len(), n, "a client with two addresses");
        let in_pool = leases
            .iter()
            .filter(|l| (ip(10, 60, 0, 100)..=ip(10, 60, 0, 109)).contains(&l.ip))
            .count();
        assert_eq!(s.pool_usage()[1].1, in_pool);
    }
    assert!(exhausted > 0, "the storm should exhaust a 10-address pool");
    for note in [
        "offer",
        "ack",
        "released",
        "declined",
        "other-server",
        "nak-address-in-use",
    ] {
        assert!(
            notes.get(note).is_some_and(|&n| n > 10),
            "{note}: {notes:?}"
        );
    }
}

#[test]
fn pool_exhaustion_and_in_pool_reservations() {
    let mut s = server();
    // 100 addresses, less one excluded and one reserved.
    assert_eq!(s.pool_usage()[0], ("10.50.0.0/24".parse().unwrap(), 0, 98));
    let mut seen = std::collections::HashSet::new();
    for n in 0..98 {
        let a = dora(&mut s, mac(n), T0);
        assert!(seen.insert(a), "{a} twice");
        assert_ne!(a, ip(10, 50, 0, 120), "a reserved address");
        assert_ne!(a, ip(10, 50, 0, 150), "an excluded address");
    }
    let o = handle(&mut s, &discover(mac(1000)), T0);
    assert_eq!((o.note, o.reply.is_none()), ("no-free-address", true));
    assert!(o.changes.is_empty());
    // The reserved machine still gets its in-pool address.
    let o = handle(&mut s, &discover(RESERVED_IN_POOL), T0);
    assert_eq!(o.reply.unwrap().yiaddr, ip(10, 50, 0, 120));
}

#[test]
fn offer_hold_expiry_frees_the_address() {
    let mut s = server();
    let o = handle(&mut s, &discover(mac(1)), T0);
    let a = o.reply.unwrap().yiaddr;
    let o = handle(&mut s, &discover(mac(2)), T0 + 29);
    assert_ne!(o.reply.unwrap().yiaddr, a, "held for 30s");
    assert!(s.expire(T0 + 29).is_empty());
    assert_eq!(removed(&s.expire(T0 + 30)), [a]);
    let o = handle(&mut s, &discover(mac(3)), T0 + 31);
    assert_eq!(o.reply.unwrap().yiaddr, a);

    // handle() expires what is due by itself, and says so.
    let mut s = server();
    handle(&mut s, &discover(mac(1)), T0);
    let o = handle(&mut s, &discover(mac(3)), T0 + 100);
    assert_eq!(removes(&o), [a]);
    assert_eq!(o.reply.unwrap().yiaddr, a);
    // A REQUEST after the hold ended still gets the address while free.
    let o = handle(&mut s, &select(mac(3), a, OURS), T0 + 1000);
    assert_eq!(o.note, "ack");
}

#[test]
fn renew_and_rebind_extend_the_lease() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let o = handle(&mut s, &renew(mac(1), a), T0 + 1800);
    assert_eq!(o.note, "ack");
    let r = o.reply.clone().unwrap();
    assert_eq!(r.yiaddr, a);
    assert_eq!(
        (r.dest.ip, r.dest.port, r.dest.eth),
        (u32::from(a), 68, EthDest::RequestSource),
        "unicast to ciaddr"
    );
    assert_eq!(decode(&r).ciaddr(), a, "ACK repeats ciaddr");
    assert_eq!(upserts(&o)[0].expires, T0 + 1800 + 3600);

    let mut m = renew(mac(1), a);
    m.set_flags(Flags::default().set_broadcast());
    let o = handle(&mut s, &m, T0 + 3200);
    assert_eq!(o.note, "ack");
    assert_eq!(upserts(&o)[0].expires, T0 + 3200 + 3600);
    let r = o.reply.unwrap();
    assert_eq!(r.dest.flags, FLAG_BROADCAST);

    // Someone else's address: NAK.
    let b = dora(&mut s, mac(2), T0 + 3200);
    let o = handle(&mut s, &renew(mac(1), b), T0 + 3300);
    assert_eq!(o.note, "nak-address-in-use");
    // Option 50 beside ciaddr (a common MUST NOT): ciaddr wins.
    let m = with(renew(mac(2), b), DhcpOption::RequestedIpAddress(a));
    assert_eq!(handle(&mut s, &m, T0 + 3300).note, "ack");
}

#[test]
fn lease_recovery_for_free_pool_addresses() {
    // No lease (a lost database): a client renewing or rebooting with a
    // free pool address keeps it.
    let mut s = server();
    let o = handle(&mut s, &renew(mac(1), ip(10, 50, 0, 140)), T0);
    assert_eq!(o.note, "ack");
    assert_eq!(upserts(&o)[0].ip, ip(10, 50, 0, 140));
    let o = handle(&mut s, &init_reboot(mac(2), ip(10, 50, 0, 141)), T0);
    assert_eq!(o.note, "ack");
}

#[test]
fn release_frees() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let mut m = req(mac(2), MessageType::Release);
    m.set_ciaddr(a);
    assert_eq!(handle(&mut s, &m, T0 + 1).note, "ignored-not-ours");
    let mut m = with(
        req(mac(1), MessageType::Release),
        DhcpOption::ServerIdentifier(OURS),
    );
    m.set_ciaddr(a);
    let o = handle(&mut s, &m, T0 + 1);
    assert_eq!((o.note, o.reply.is_none()), ("released", true));
    assert_eq!(removed(&o.changes), [a]);
    assert_eq!(s.leases().count(), 0);
    assert_eq!(s.pool_usage()[0].1, 0);
}

#[test]
fn decline_quarantines_the_address() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let decline = |c, addr| {
        with(
            with(
                req(c, MessageType::Decline),
                DhcpOption::RequestedIpAddress(addr),
            ),
            DhcpOption::ServerIdentifier(OURS),
        )
    };
    assert_eq!(
        handle(&mut s, &decline(mac(2), a), T0).note,
        "ignored-not-ours"
    );
    let o = handle(&mut s, &decline(mac(1), a), T0 + 1);
    assert_eq!((o.note, o.reply.is_none()), ("declined", true));
    let q = upserts(&o);
    assert_eq!(q[0].state, LeaseState::Declined);
    assert_eq!(q[0].expires, T0 + 1 + 600, "decline_quarantine default");
    // Skipped while quarantined, by the same client too.
    let o = handle(&mut s, &discover(mac(1)), T0 + 2);
    let b = o.reply.unwrap().yiaddr;
    assert_ne!(b, a);
    let o = handle(&mut s, &discover(mac(2)), T0 + 2);
    assert_ne!(o.reply.unwrap().yiaddr, a);
    assert_eq!(
        handle(&mut s, &init_reboot(mac(3), a), T0 + 3).note,
        "nak-address-in-use"
    );
    // Free again afterwards.
    let o = handle(&mut s, &discover(mac(3)), T0 + 601);
    assert!(removes(&o).contains(&a));
    assert_eq!(o.reply.unwrap().yiaddr, a);
}

#[test]
fn inform_has_no_lease_options() {
    let mut s = server();
    let mut m = req(mac(1), MessageType::Inform);
    m.set_ciaddr(ip(10, 50, 0, 77));
    let o = handle(&mut s, &m, T0);
    assert_eq!(o.note, "inform");
    assert!(o.changes.is_empty());
    let r = o.reply.unwrap();
    assert_eq!(r.msg_type, msg::ACK);
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!((r.dest.ip, r.dest.port), (u32::from(ip(10, 50, 0, 77)), 68));
    let d = decode(&r);
    assert_eq!(d.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(d.ciaddr(), ip(10, 50, 0, 77));
    for code in [51, 58, 59, 12] {
        assert!(raw_option(&r.payload, code).is_none(), "option {code}");
    }
    for code in [53, 54, 1, 3, 6, 15, 121] {
        assert!(raw_option(&r.payload, code).is_some(), "option {code}");
    }
    assert_eq!(s.leases().count(), 0);
}

#[test]
fn nak_rules() {
    let mut s = server();
    let a = dora(&mut s, mac(1), T0);
    let nak_block = tables::subnet_entries(&cfg()).unwrap()[0].nak;

    // SELECTING us for an address we did not offer and cannot give.
    let o = handle(&mut s, &select(mac(2), a, OURS), T0);
    assert_eq!(o.note, "nak-wrong-address");
    let r = o.reply.unwrap();
    assert_eq!(r.msg_type, msg::NAK);
    assert_eq!(
        (r.dest.ip, r.dest.port, r.dest.eth),
        (rules::BROADCAST_IP, 68, EthDest::Broadcast)
    );
    assert_eq!(decode(&r).opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(option_codes(&r.payload), [53, 54], "RFC 2131 table 3");
    // The same bytes as the program's NAK.
    let m = select(mac(2), a, OURS);
    let want = render::complete(
        &nak_block,
        &Transaction {
            msg_type: msg::NAK,
            xid: m.xid(),
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: mac(2),
            relay_info: &[],
        },
    )
    .unwrap();
    assert_eq!(r.payload, want);

    // INIT-REBOOT on the wrong network, out of the pool, someone else's.
    let cases = [
        (ip(10, 60, 0, 105), "nak-wrong-subnet"),
        (ip(10, 50, 0, 50), "nak-wrong-address"),
        (ip(10, 50, 0, 150), "nak-wrong-address"),
        (a, "nak-address-in-use"),
        (ip(10, 50, 0, 11), "nak-address-in-use"),
    ];
    for (addr, note) in cases {
        let o = handle(&mut s, &init_reboot(mac(3), addr), T0);
        assert_eq!(o.note, note, "{addr}");
        assert_eq!(o.reply.unwrap().msg_type, msg::NAK);
        assert!(o.changes.is_empty());
    }
    // A client that holds another address is NAKed for a free one.
    let o = handle(&mut s, &init_reboot(mac(1), ip(10, 50, 0, 190)), T0);
    assert_eq!(o.note, "nak-wrong-address");
    assert_eq!(
        handle(&mut s, &init_reboot(mac(1), a), T0).note,
        "ack",
        "its own"
    );

    // Relayed: to the relay, broadcast bit set.
    let m = relayed(init_reboot(mac(3), ip(10, 50, 0, 50)), ip(10, 60, 0, 1));
    let o = handle(&mut s, &m, T0);
    assert_eq!(o.note, "nak-wrong-subnet");
    let r = o.reply.unwrap();
    assert_eq!(
        (r.dest.ip, r.dest.port, r.dest.flags),
        (u32::from(ip(10, 60, 0, 1)), 67, FLAG_BROADCAST)
    );
}

#[test]
fn not_authoritative_stays_silent_about_the_unknown() {
    let mut s = server();
    let sb1 = Ingress {
        ifindex: 3,
        iface_name: "sb1".into(),
        iface_addr: ip(10, 99, 0, 1),
    };
    let on_sb1 = |s: &mut Server, m: &Message| handle_on(s, m, None, &sb1, T0);
    for addr in [ip(10, 50, 0, 100), ip(10, 70, 0, 200), ip(10, 70, 0, 5)] {
        let o = on_sb1(&mut s, &init_reboot(mac(1), addr));
        assert_eq!(
            (o.note, o.reply.is_none()),
            ("ignored-not-authoritative", true),
            "{addr}"
        );
        let o = on_sb1(&mut s, &renew(mac(1), addr));
        assert_eq!(o.note, "ignored-not-authoritative", "{addr}");
    }
    // What it knows it still answers: a free pool address, and a NAK for
    // an address leased to another client.
    let o = on_sb1(&mut s, &discover(mac(2)));
    let a = o.reply.unwrap().yiaddr;
    assert_eq!(a, ip(10, 70, 0, 10));
    assert_eq!(on_sb1(&mut s, &select(mac(2), a, OURS)).note, "ack");
    let o = on_sb1(&mut s, &init_reboot(mac(3), a));
    assert_eq!(o.note, "nak-address-in-use");
    assert_eq!(
        on_sb1(&mut s, &init_reboot(mac(4), ip(10, 70, 0, 11))).note,
        "ack"
    );
}

#[test]
fn selecting_another_server_releases_the_hold() {
    let mut s = server();
    let o = handle(&mut s, &discover(mac(1)), T0);
    let a = o.reply.unwrap().yiaddr;
    let o = handle(&mut s, &select(mac(1), a, ip(10, 50, 0, 9)), T0 + 1);
    assert_eq!((o.note, o.reply.is_none()), ("other-server", true));
    assert_eq!(removed(&o.changes), [a]);
    let o = handle(&mut s, &discover(mac(2)), T0 + 2);
    assert_eq!(o.reply.unwrap().yiaddr, a, "free at once");
    // A bound lease is not dropped that way.
    let b = dora(&mut s, mac(3), T0 + 3);
    let o = handle(&mut s, &select(mac(3), b, ip(10, 50, 0, 9)), T0 + 4);
    assert_eq!(o.note, "other-server");
    assert!(o.changes.is_empty());
}

#[test]
fn subnet_selection() {
    let c = cfg();
    let idx = select::SubnetIndex::new(&c);
    let z = Ipv4Addr::UNSPECIFIED;
    let sb0 = sb0();
    let link: &[u8] = &[82, 6, 5, 4, 10, 60, 0, 0];
    let sel = Some(ip(10, 70, 0, 0));
    let relay = ip(10, 50, 0, 254);
    assert_eq!(
        select::subnet(&idx, z, None, None, &sb0),
        Some((0, select::By::Interface))
    );
    assert_eq!(
        select::subnet(&idx, ip(10, 60, 0, 1), None, None, &sb0),
        Some((1, select::By::Giaddr))
    );
    assert_eq!(
        select::subnet(&idx, relay, None, sel, &sb0),
        Some((2, select::By::SubnetSelection))
    );
    assert_eq!(
        select::subnet(&idx, relay, Some(link), sel, &sb0),
        Some((1, select::By::LinkSelection)),
        "82/5 over 118 over giaddr"
    );
    let named = Ingress {
        ifindex: 9,
        iface_name: "sb1".into(),
        iface_addr: OURS,
    };
    assert_eq!(
        select::subnet(&idx, z, None, None, &named),
        Some((2, select::By::Interface))
    );
    let elsewhere = Ingress {
        ifindex: 9,
        iface_name: "sb9".into(),
        iface_addr: ip(192, 0, 2, 1),
    };
    assert_eq!(select::subnet(&idx, z, None, None, &elsewhere), None);
    assert_eq!(
        select::subnet(&idx, ip(192, 0, 2, 1), None, None, &sb0),
        None
    );

    // Through the handler.
    let mut s = server();
    let offer = |s: &mut Server, m: &Message, relay: Option<&[u8]>, ingress: &Ingress| {
        let o = handle_on(s, m, relay, ingress, T0);
        (o.note, o.reply.map(|r| (r.yiaddr, r.dest.ip, r.dest.port)))
    };
    let gi = ip(10, 60, 0, 1);
    assert_eq!(
        offer(&mut s, &relayed(discover(mac(1)), gi), None, &sb0),
        ("offer", Some((ip(10, 60, 0, 100), u32::from(gi), 67)))
    );
    assert_eq!(
        offer(&mut s, &relayed(discover(mac(2)), relay), Some(link), &sb0)
            .1
            .unwrap()
            .0,
        ip(10, 60, 0, 101)
    );
    let m = with(
        discover(mac(3)),
        DhcpOption::SubnetSelection(ip(10, 60, 0, 0)),
    );
    assert_eq!(
        offer(&mut s, &m, None, &sb0).1.unwrap().0,
        ip(10, 60, 0, 102)
    );
    assert_eq!(
        offer(&mut s, &discover(mac(4)), None, &named).1.unwrap().0,
        ip(10, 70, 0, 10)
    );
    assert_eq!(
        offer(&mut s, &discover(mac(5)), None, &elsewhere),
        ("ignored-no-subnet", None)
    );
    // The reply's own subnet parameters follow the selection.
    let o = handle_on(&mut s, &relayed(discover(mac(6)), gi), None, &sb0, T0);
    let p = o.reply.unwrap().payload;
    assert_eq!(raw_option(&p, 3).unwrap(), [10, 60, 0, 1]);
    assert!(raw_option(&p, 150).is_none());
}

#[test]
fn option_82_is_echoed_last() {
    let mut s = server();
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(b"eth1/7".to_vec()));
    let relay_info: &[u8] = &[82, 8, 1, 6, b'e', b't', b'h', b'1', b'/', b'7'];
    let gi = ip(10, 60, 0, 1);
    let m = relayed(
        with(discover(mac(1)), DhcpOption::RelayAgentInformation(info)),
        gi,
    );
    let check = |r: &Reply| {
        let p = &r.payload;
        let end = p.iter().rposition(|&b| b == opt::END).unwrap();
        assert_eq!(*option_codes(p).last().unwrap(), 82);
        assert_eq!(&p[end - relay_info.len()..end], relay_info);
        assert!(p[end + 1..].iter().all(|&b| b == 0));
        assert!(p.len() >= 300);
    };
    let o = handle_on(&mut s, &m, Some(relay_info), &sb0(), T0);
    let offer = o.reply.unwrap();
    check(&offer);
    // NAK and reserved replies too.
    let nak = relayed(init_reboot(mac(2), ip(10, 50, 0, 9)), gi);
    let o = handle_on(&mut s, &nak, Some(relay_info), &sb0(), T0);
    check(&o.reply.unwrap());
    let res = relayed(discover(RESERVED), ip(10, 50, 0, 254));
    let o = handle_on(&mut s, &res, Some(relay_info), &sb0(), T0);
    let r = o.reply.unwrap();
    assert_eq!(r.yiaddr, ip(10, 50, 0, 11));
    check(&r);
    // Without it, nothing is echoed.
    let o = handle_on(&mut s, &relayed(discover(mac(3)), gi), None, &sb0(), T0);
    assert!(raw_option(&o.reply.unwrap().payload, 82).is_none());
}

/// What the XDP program would send: the reservation's block completed by
/// `render::complete` with the fields the program patches.
fn program_reply(c: &Config, m: &Message, reply_type: u8, relay_info: &[u8]) -> Vec<u8> {
    let r = &c.reservations[0];
    let block = if reply_type == msg::NAK {
        tables::subnet_entries(c).unwrap()[usize::from(r.subnet)].nak
    } else {
        tables::reservation_block(c, r, stormboot_common::maps::variant::PLAIN).unwrap()
    };
    let yiaddr = if reply_type == msg::NAK {
        0
    } else {
        u32::from(r.ip)
    };
    let dest = rules::destination(
        reply_type,
        m.giaddr().into(),
        m.ciaddr().into(),
        m.flags().into(),
        yiaddr,
    );
    let mut chaddr = [0; 6];
    chaddr.copy_from_slice(m.chaddr());
    render::complete(
        &block,
        &Transaction {
            msg_type: reply_type,
            xid: m.xid(),
            flags: dest.flags,
            ciaddr: Ipv4Addr::from(rules::reply_ciaddr(reply_type, m.ciaddr().into())),
            giaddr: m.giaddr(),
            chaddr,
            relay_info,
        },
    )
    .unwrap()
}

#[test]
fn reservation_replies_are_the_programs_bytes() {
    let c = cfg();
    let mut s = server();
    let reserved = ip(10, 50, 0, 11);
    let relay_info: &[u8] = &[82, 6, 1, 4, b'p', b'o', b'r', b't'];
    let mut broadcast = discover(RESERVED);
    broadcast.set_flags(Flags::default().set_broadcast());
    let cases: Vec<(Message, Option<&[u8]>, u8, &str)> = vec![
        (discover(RESERVED), None, msg::OFFER, "offer"),
        (broadcast, None, msg::OFFER, "offer"),
        (select(RESERVED, reserved, OURS), None, msg::ACK, "ack"),
        (
            select(RESERVED, ip(10, 50, 0, 12), OURS),
            None,
            msg::NAK,
            "nak-wrong-address",
        ),
        (init_reboot(RESERVED, reserved), None, msg::ACK, "ack"),
        (
            init_reboot(RESERVED, ip(10, 50, 0, 100)),
            None,
            msg::NAK,
            "nak-wrong-address",
        ),
        (renew(RESERVED, reserved), None, msg::ACK, "ack"),
        (
            renew(RESERVED, ip(10, 50, 0, 12)),
            None,
            msg::NAK,
            "nak-wrong-address",
        ),
        (
            relayed(discover(RESERVED), ip(10, 50, 0, 254)),
            Some(relay_info),
            msg::OFFER,
            "offer",
        ),
        (
            relayed(select(RESERVED, reserved, OURS), ip(10, 50, 0, 254)),
            Some(relay_info),
            msg::ACK,
            "ack",
        ),
    ];
    for (m, relay, reply_type, note) in cases {
        let o = handle_on(&mut s, &m, relay, &sb0(), T0);
        assert_eq!(o.note, note, "{m:?}");
        let r = o.reply.clone().unwrap();
        assert_eq!(r.msg_type, reply_type);
        assert_eq!(
            r.payload,
            program_reply(&c, &m, reply_type, relay.unwrap_or(&[])),
            "{note}: bytes differ from the program's"
        );
        let d = decode(&r);
        if reply_type != msg::NAK {
            assert_eq!(d.yiaddr(), reserved);
            assert_eq!(raw_option(&r.payload, 12).unwrap(), b"node1");
        }
        // ACKs become bound leases; nothing else changes the table.
        let bound = upserts(&o);
        if reply_type == msg::ACK {
            assert_eq!(bound.len(), 1);
            assert_eq!(
                (bound[0].ip, bound[0].state, bound[0].expires),
                (reserved, LeaseState::Bound, T0 + 3600)
            );
            assert_eq!(bound[0].hostname.as_deref(), Some("node1"));
        } else {
            assert!(bound.is_empty());
        }
    }
    // Another server chosen: silence, as in the kernel.
    let o = handle(&mut s, &select(RESERVED, reserved, ip(10, 50, 0, 9)), T0);
    assert_eq!((o.note, o.reply.is_none()), ("other-server", true));
    // On another network the reservation does not apply: a pool address.
    let o = handle(&mut s, &relayed(discover(RESERVED), ip(10, 60, 0, 1)), T0);
    assert_eq!(o.reply.unwrap().yiaddr, ip(10, 60, 0, 100));
}

#[test]
fn ignored_requests() {
    let mut s = server();
    let mut m = discover(mac(1));
    m.set_opcode(Opcode::BootReply);
    assert_eq!(handle(&mut s, &m, T0).note, "ignored-not-request");
    let mut m = discover(mac(1));
    m.opts_mut().remove(OptionCode::MessageType);
    assert_eq!(handle(&mut s, &m, T0).note, "ignored-bootp");
    assert_eq!(
        handle(&mut s, &req(mac(1), MessageType::Offer), T0).note,
        "ignored-message-type"
    );
    assert_eq!(
        handle(&mut s, &req(mac(1), MessageType::Request), T0).note,
        "ignored-malformed"
    );
    // Every note is one of NOTES.
    for note in ["ignored-not-request", "ignored-bootp", "offer", "inform"] {
        assert!(NOTES.contains(&note));
    }
}

#[test]
fn oversized_options_are_refused_not_truncated() {
    let text = CONFIG.replace(
        "[[subnet.option]]\ncode = 224\ntype = \"string\"\nvalue = \"rack1\"",
        &format!(
            "[[subnet.option]]\ncode = 224\ntype = \"string\"\nvalue = \"{}\"\n\n\
             [[subnet.option]]\ncode = 225\ntype = \"string\"\nvalue = \"{}\"",
            "x".repeat(200),
            "y".repeat(200)
        ),
    );
    let c = Arc::new(Config::from_str(&text, Path::new("t.toml")).unwrap());
    let mut s = Server::new(c, Vec::new(), T0);
    let o = handle(&mut s, &discover(mac(1)), T0);
    assert_eq!((o.note, o.reply.is_none()), ("reply-too-long", true));
    assert!(o.changes.is_empty(), "no hold without an offer");
    // A client that accepts more gets it.
    let m = with(discover(mac(1)), DhcpOption::MaxMessageSize(1500));
    let o = handle(&mut s, &m, T0);
    assert_eq!(o.note, "offer");
    assert!(o.reply.unwrap().payload.len() > 548);
}

#[test]
fn stale_leases_expire_on_start() {
    let old = Lease {
        ip: ip(10, 50, 0, 100),
        client_id: vec![1, 2, 0, 0, 0, 0, 1],
        mac: mac(1),
        state: LeaseState::Bound,
        expires: T0 - 1,
        updated: T0 - 3601,
        hostname: None,
    };
    let live = Lease {
        ip: ip(10, 50, 0, 101),
        expires: T0 + 100,
        client_id: vec![1, 2, 0, 0, 0, 0, 2],
        ..old.clone()
    };
    let mut s = Server::new(cfg(), vec![old.clone(), live], T0);
    assert_eq!(s.pool_usage()[0].1, 1);
    assert_eq!(s.expire(T0), [LeaseChange::Remove(old.clone())]);
    assert!(s.expire(T0).is_empty(), "handed out once");
    // The expired client comes back to its old address.
    let o = handle(&mut s, &discover(mac(1)), T0 + 1);
    assert_eq!(o.reply.unwrap().yiaddr, old.ip);
}

#[test]
fn a_lease_on_an_address_reserved_since_ends() {
    // Leased from the pool before the reservation of 10.50.0.120 existed.
    let stale = Lease {
        ip: ip(10, 50, 0, 120),
        client_id: vec![1, 2, 0, 0, 0, 0, 5],
        mac: mac(5),
        state: LeaseState::Bound,
        expires: T0 + 1000,
        updated: T0 - 100,
        hostname: None,
    };
    let mut s = Server::new(cfg(), vec![stale.clone()], T0);
    let o = handle(&mut s, &renew(mac(5), stale.ip), T0);
    assert_eq!(o.note, "nak-address-in-use");
    let o = handle(&mut s, &select(mac(5), stale.ip, OURS), T0);
    assert_eq!(o.note, "nak-wrong-address");
    let o = handle(&mut s, &discover(mac(5)), T0);
    assert_ne!(o.reply.as_ref().unwrap().yiaddr, stale.ip);
    assert_eq!(removes(&o), [stale.ip], "the old lease ends");
    // The reserved machine gets it.
    let o = handle(&mut s, &select(RESERVED_IN_POOL, stale.ip, OURS), T0);
    assert_eq!(o.note, "ack");
}

#[test]
fn fast_path_acks_become_bound_leases() {
    let mut s = server();
    let changes = s.record_fast_path_ack(RESERVED_IN_POOL, ip(10, 50, 0, 120), T0);
    let [LeaseChange::Upsert(l)] = changes.as_slice() else {
        panic!("one upsert expected: {changes:?}");
    };
    assert_eq!(
        (l.ip, l.mac, l.state),
        (ip(10, 50, 0, 120), RESERVED_IN_POOL, LeaseState::Bound)
    );
    assert_eq!(l.client_id, [&[1u8][..], &RESERVED_IN_POOL].concat());
    assert!(l.expires > T0);
    assert!(s
        .leases()
        .any(|x| x.ip == ip(10, 50, 0, 120) && x.state == LeaseState::Bound));
    // A reserved address inside a pool stays out of the pool while bound.
    for n in 0..150 {
        let out = s.handle(
            &Request {
                msg: &discover(mac(9000 + n)),
                relay_info: None,
                ingress: &sb0(),
                src: CLIENT_PORT,
                dport: 67,
            },
            T0,
        );
        if let Some(r) = out.reply {
            assert_ne!(
                r.yiaddr,
                ip(10, 50, 0, 120),
                "a bound reserved address was offered to another client"
            );
        }
    }
    // Events that match no reservation, or another address, change nothing.
    assert!(s
        .record_fast_path_ack(mac(77), ip(10, 50, 0, 150), T0)
        .is_empty());
    assert!(s
        .record_fast_path_ack(RESERVED, ip(10, 50, 0, 12), T0)
        .is_empty());
}

#[test]
fn fast_path_renewals_within_the_cache_threshold_are_not_written_again() {
    // Default lease 1 h (T1 30 min): a quarter of it is 900 s.
    let text = CONFIG.replace(
        "pool = [\"10.50.0.100-10.50.0.199\"]",
        "pool = [\"10.50.0.100-10.50.0.199\"]\ncache_threshold = 0.25",
    );
    let c = Config::from_str(&text, Path::new("stormboot.toml")).unwrap();
    assert_eq!(
        c.subnets[0].renewal_cache,
        std::time::Duration::from_secs(900)
    );
    let mut s = Server::new(Arc::new(c), Vec::new(), T0);
    let r = ip(10, 50, 0, 11);
    let written = |changes: &[LeaseChange]| match changes {
        [LeaseChange::Upsert(l)] => Some(l.updated),
        [] => None,
        other => panic!("one upsert or nothing expected: {other:?}"),
    };
    assert_eq!(written(&s.record_fast_path_ack(RESERVED, r, T0)), Some(T0));
    // Renewed 10 s and 899 s later: the lease written at T0 stands.
    assert_eq!(written(&s.record_fast_path_ack(RESERVED, r, T0 + 10)), None);
    assert_eq!(
        written(&s.record_fast_path_ack(RESERVED, r, T0 + 899)),
        None
    );
    let held = s.leases().find(|l| l.ip == r).unwrap();
    assert_eq!((held.updated, held.expires), (T0, T0 + 3600));
    // 900 s after the write: written again, and cached from then on.
    assert_eq!(
        written(&s.record_fast_path_ack(RESERVED, r, T0 + 900)),
        Some(T0 + 900)
    );
    assert_eq!(
        written(&s.record_fast_path_ack(RESERVED, r, T0 + 901)),
        None
    );
    // Without the key every renewal is written (the server() default).
    let mut plain = server();
    for t in [T0, T0 + 1, T0 + 2] {
        assert_eq!(
            written(&plain.record_fast_path_ack(RESERVED, r, t)),
            Some(t)
        );
    }
}

#[test]
fn a_cache_threshold_past_what_t1_leaves_is_refused_by_name() {
    for (value, ok) in [
        ("0.0", true),
        ("0.49", true),
        ("0.5", false),
        ("-0.1", false),
    ] {
        let text = CONFIG.replace(
            "pool = [\"10.50.0.100-10.50.0.199\"]",
            &format!("pool = [\"10.50.0.100-10.50.0.199\"]\ncache_threshold = {value}"),
        );
        let got = Config::from_str(&text, Path::new("stormboot.toml"));
        match (ok, got) {
            (true, Ok(_)) => {}
            (false, Err(e)) => {
                let e = e.to_string();
                assert!(e.contains("subnet[0].cache_threshold"), "{e}");
                assert!(e.contains("0.500"), "names the bound: {e}");
            }
            (ok, got) => panic!("cache_threshold = {value}: expected ok={ok}, got {got:?}"),
        }
    }
}

/// CONFIG with `[hooks]`, which makes the server record lease events.
fn server_with_hooks() -> Server {
    let text = format!("{CONFIG}\n[hooks]\ncommand = \"/bin/sh\"\n");
    let c = Config::from_str(&text, Path::new("stormboot.toml")).unwrap();
    Server::new(Arc::new(c), Vec::new(), T0)
}

/// (action, ip, mac) of each event since the last call.
fn events(s: &mut Server) -> Vec<(&'static str, Ipv4Addr, [u8; 6])> {
    s.take_events()
        .into_iter()
        .map(|e| (e.action.as_str(), e.lease.ip, e.lease.mac))
        .collect()
}

#[test]
fn lease_events_commit_renew_release_decline_expiry() {
    let mut s = server_with_hooks();
    // The offer is no event; the ACK is a new binding.
    let a = dora(&mut s, mac(1), T0);
    assert_eq!(events(&mut s), [("commit", a, mac(1))]);
    // RENEWING and INIT-REBOOT of the same address: renewals.
    assert_eq!(handle(&mut s, &renew(mac(1), a), T0 + 10).note, "ack");
    assert_eq!(handle(&mut s, &init_reboot(mac(1), a), T0 + 20).note, "ack");
    assert_eq!(events(&mut s), [("renew", a, mac(1)), ("renew", a, mac(1))]);
    // A refused request changes nothing, so says nothing.
    assert_eq!(
        handle(&mut s, &init_reboot(mac(2), a), T0 + 20).note,
        "nak-address-in-use"
    );
    assert_eq!(events(&mut s), []);

    let mut m = with(
        req(mac(1), MessageType::Release),
        DhcpOption::ServerIdentifier(OURS),
    );
    m.set_ciaddr(a);
    assert_eq!(handle(&mut s, &m, T0 + 30).note, "released");
    let ev = s.take_events();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].action, ev[0].lease.ip), (LeaseAction::Release, a));

    // Bound again (after a release: a commit), then declined.
    let b = dora(&mut s, mac(1), T0 + 40);
    assert_eq!(events(&mut s), [("commit", b, mac(1))]);
    let decline = with(
        with(
            req(mac(1), MessageType::Decline),
            DhcpOption::RequestedIpAddress(b),
        ),
        DhcpOption::ServerIdentifier(OURS),
    );
    assert_eq!(handle(&mut s, &decline, T0 + 41).note, "declined");
    let ev = s.take_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, LeaseAction::Decline);
    assert_eq!(ev[0].lease.expires, T0 + 41 + 600);

    // A bound lease that runs out expires; the quarantine and an unclaimed
    // offer end silently.
    let c = dora(&mut s, mac(3), T0 + 50);
    let o = handle(&mut s, &discover(mac(4)), T0 + 50);
    assert_eq!(o.note, "offer");
    assert_eq!(events(&mut s), [("commit", c, mac(3))]);
    s.expire(T0 + 50 + 3_600 + 700);
    assert_eq!(events(&mut s), [("expiry", c, mac(3))]);
}

#[test]
fn lease_events_of_reservations_on_both_paths() {
    let mut s = server_with_hooks();
    let r = ip(10, 50, 0, 11);
    // The program's ACK: a commit, then a renewal.
    s.record_fast_path_ack(RESERVED, r, T0);
    s.record_fast_path_ack(RESERVED, r, T0 + 5);
    let ev = s.take_events();
    let got: Vec<_> = ev.iter().map(|e| e.action).collect();
    assert_eq!(got, [LeaseAction::Commit, LeaseAction::Renew]);
    assert_eq!(ev[0].lease.hostname.as_deref(), Some("node1"));
    // The userspace answer to the same machine renews it too.
    let o = handle(&mut s, &init_reboot(RESERVED, r), T0 + 10);
    assert_eq!(o.note, "ack");
    assert_eq!(events(&mut s), [("renew", r, RESERVED)]);
    // An event for an address the machine is not reserved is ignored.
    s.record_fast_path_ack(RESERVED, ip(10, 50, 0, 12), T0 + 11);
    assert_eq!(events(&mut s), []);
}

#[test]
fn no_lease_events_without_hooks() {
    let mut s = server();
    dora(&mut s, mac(1), T0);
    s.record_fast_path_ack(RESERVED, ip(10, 50, 0, 11), T0);
    assert!(s.take_events().is_empty());
}

#[test]
fn leases_that_ran_out_while_stopped_are_expiry_events() {
    let text = format!("{CONFIG}\n[hooks]\ncommand = \"/bin/sh\"\n");
    let c = Arc::new(Config::from_str(&text, Path::new("stormboot.toml")).unwrap());
    let lease = |last, state, expires| Lease {
        ip: ip(10, 50, 0, last),
        client_id: vec![1, 2, 0, 0, 0, 0, last],
        mac: mac(u32::from(last)),
        state,
        expires,
        updated: T0 - 7_200,
        hostname: None,
    };
    let mut s = Server::new(
        c,
        vec![
            lease(100, LeaseState::Bound, T0 - 10),
            lease(101, LeaseState::Offered, T0 - 10),
            lease(102, LeaseState::Bound, T0 + 3_600),
        ],
        T0,
    );
    assert_eq!(events(&mut s), [("expiry", ip(10, 50, 0, 100), mac(100))]);
}

/// A request to `dport` from `src`, as the daemon hands it over.
fn handle_sent_to(s: &mut Server, m: &Message, src: std::net::SocketAddrV4, dport: u16) -> Outcome {
    s.handle(
        &Request {
            msg: m,
            relay_info: None,
            ingress: &sb0(),
            src,
            dport,
        },
        T0,
    )
}

/// In proxy mode the server decides as the PXE specification's proxy:
/// a booting client's DISCOVER on 67 gets boot information without an
/// address, its REQUEST on 67 (which selects the DHCP server) nothing, and
/// its REQUEST on 4011 an ACK back to where it came from. The address it
/// says it has is handed on for the boot services.
#[test]
fn proxy_mode_is_decided_by_the_server_from_the_port() {
    let text = CONFIG.replacen("[server]\n", "[server]\nmode = \"proxy\"\n", 1)
        + "\n[boot]\ndefault_profile = \"d\"\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n";
    let cfg = Arc::new(Config::from_str(&text, Path::new("stormboot.toml")).unwrap());
    let mut s = Server::new(cfg, Vec::new(), T0);
    let pxe = |t| {
        let m = with(
            req(mac(77), t),
            DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007:UNDI:003000".to_vec()),
        );
        with(m, DhcpOption::ClientSystemArchitecture(7u16.into()))
    };
    let unaddressed = std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);

    let out = handle_sent_to(&mut s, &pxe(MessageType::Discover), unaddressed, 67);
    assert_eq!(out.note, "proxy-offer");
    let offer = out.reply.expect("an offer");
    assert_eq!(offer.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(out.changes.is_empty(), "a proxy leases nothing");

    let out = handle_sent_to(&mut s, &pxe(MessageType::Request), unaddressed, 67);
    assert_eq!((out.reply, out.note), (None, "proxy-request-on-67"));

    let mut request = pxe(MessageType::Request);
    request.set_ciaddr(ip(10, 50, 0, 150));
    let from = std::net::SocketAddrV4::new(ip(10, 50, 0, 150), 4011);
    let out = handle_sent_to(&mut s, &request, from, 4011);
    assert_eq!(out.note, "proxy-ack");
    let ack = out.reply.expect("an ack");
    assert_eq!(
        (ack.dest.ip, ack.dest.port),
        (u32::from(ip(10, 50, 0, 150)), 4011)
    );
    assert_eq!(out.claimed, Some(ip(10, 50, 0, 150)));
}

/// An authoritative server answers on 67 only: a request to the PXE
/// boot-server port is not for it, even from a machine it would answer.
#[test]
fn authoritative_mode_ignores_the_boot_server_port() {
    let mut s = server();
    let unaddressed = std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let out = handle_sent_to(&mut s, &discover(RESERVED), unaddressed, 4011);
    assert_eq!((out.reply, out.note), (None, "ignored-boot-server-port"));
    let out = handle_sent_to(&mut s, &discover(RESERVED), unaddressed, 67);
    assert_eq!(out.note, "offer");
}

/// MAAS's habit: a machine that is network booting gets the subnet's
/// shorter boot lease, in its reply and in the lease kept; the same
/// machine asking plainly (its installed OS) gets the subnet's lease. A
/// reservation's boot replies carry it too, from the rendered entries both
/// dataplanes send.
#[test]
fn booting_machines_get_the_boot_lease() {
    let text = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\
                [boot]\ndefault_profile = \"d\"\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n\n\
                [[subnet]]\ncidr = \"10.50.0.0/24\"\npool = [\"10.50.0.100-10.50.0.199\"]\n\
                lease_time = \"1h\"\nboot_lease_time = \"10m\"\n\n\
                [[reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.50.0.11\"\n";
    let cfg = Arc::new(Config::from_str(text, Path::new("stormboot.toml")).unwrap());
    let mut s = Server::new(cfg, Vec::new(), T0);
    let pxe = |m: Message| {
        let m = with(
            m,
            DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
        );
        with(m, DhcpOption::ClientSystemArchitecture(0u16.into()))
    };
    let secs = |o: &Outcome, code: u8| {
        let v = raw_option(&o.reply.as_ref().unwrap().payload, code).unwrap();
        u32::from_be_bytes(v.try_into().unwrap())
    };
    for (client, booting) in [
        (mac(1), true),
        (mac(2), false),
        ([0x52, 0x54, 0, 0, 0, 1], true),
    ] {
        let ask = |m: Message| if booting { pxe(m) } else { m };
        let o = handle(&mut s, &ask(discover(client)), T0);
        assert_eq!(o.note, "offer", "{o:?}");
        let want = if booting { 600 } else { 3600 };
        assert_eq!(
            (secs(&o, 51), secs(&o, 58), secs(&o, 59)),
            (want, want / 2, want * 7 / 8)
        );
        let offered = o.reply.unwrap().yiaddr;
        let a = handle(&mut s, &ask(select(client, offered, OURS)), T0);
        assert_eq!(a.note, "ack", "{a:?}");
        assert_eq!(secs(&a, 51), want);
        let kept = upserts(&a)[0].expires;
        assert_eq!(
            kept,
            T0 + u64::from(want),
            "the lease kept ends with the one given"
        );
    }
}

mod cluster;
