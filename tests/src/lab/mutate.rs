//! Real DHCP request frames and a deterministic mutator for them: the seeds
//! of the fuzz targets' corpus and of the XDP differential run
//! (`xdpdiff`). The same seed number always gives the same frames, so a
//! frame that breaks something is found again from its index alone.
//!
//! The seeds are the requests the BPF_PROG_TEST_RUN fixtures send (built
//! with dhcproto by `fixtures::request`) for the fixtures' configuration
//! (`fixtures::CONFIG`). Mutations work on the frame's known layout, so
//! that most mutants still reach the code that reads DHCP: byte and bit
//! flips, truncation, extension, option length lies, rewrites of the
//! BOOTP header and of the options the fast path reads, options added and
//! removed, and IPv4/UDP/802.1Q header changes. Most mutants get their
//! lengths and checksums repaired afterwards, as a sane but odd sender
//! would send them; the rest keep whatever the mutation left.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, MessageType};
use stormboot_common::csum;
use stormboot_common::layout::{
    opt, ETH_LEN, ETH_P_8021Q, ETH_P_IP, IP_LEN, OFF_CHADDR, OFF_CIADDR, OFF_FLAGS, OFF_GIADDR,
    OFF_HLEN, OFF_HOPS, OFF_HTYPE, OFF_OP, OFF_SECS, OFF_SIADDR, OFF_XID, OFF_YIADDR, OPTIONS_OFF,
    UDP_LEN, VLAN_LEN,
};

use stormboot::frame::{self, Addressing};

use super::fixtures::{
    client_frame as client, encode, relayed_frame as relayed, request, NODE1, NODE1_IP, OPTION_82,
    RELAY, REMOTE, REMOTE_IP, SERVER, SERVER_MAC, UNKNOWN,
};

/// SplitMix64: small, fast, and the same sequence everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// One named seed frame.
#[derive(Clone, Debug)]
pub struct Seed {
    pub name: &'static str,
    pub frame: Vec<u8>,
}

fn firmware(mac: [u8; 6], t: MessageType, vendor: &[u8], arch: u16, uc: Option<&[u8]>) -> Vec<u8> {
    let mut m = request(mac, t);
    m.opts_mut()
        .insert(DhcpOption::ClassIdentifier(vendor.to_vec()));
    m.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(arch.into()));
    if let Some(u) = uc {
        m.opts_mut().insert(DhcpOption::UserClass(u.to_vec()));
    }
    client(mac, None, &encode(&m))
}

/// The fixtures' requests: every state of RFC 2131 the fast path answers,
/// relayed, tagged, firmware of each boot variant, and the ones it passes
/// up or drops.
pub fn seeds() -> Vec<Seed> {
    use MessageType::{Discover, Inform, Release, Request};
    let with = |mac, t, opts: &[DhcpOption]| {
        let mut m = request(mac, t);
        for o in opts {
            m.opts_mut().insert(o.clone());
        }
        m
    };
    let mut out = vec![
        Seed {
            name: "discover",
            frame: client(NODE1, None, &encode(&request(NODE1, Discover))),
        },
        Seed {
            name: "discover-broadcast-flag",
            frame: {
                let mut m = request(NODE1, Discover);
                m.set_flags(Flags::default().set_broadcast());
                client(NODE1, None, &encode(&m))
            },
        },
        Seed {
            name: "request-selecting",
            frame: client(
                NODE1,
                None,
                &encode(&with(
                    NODE1,
                    Request,
                    &[
                        DhcpOption::ServerIdentifier(SERVER),
                        DhcpOption::RequestedIpAddress(NODE1_IP),
                    ],
                )),
            ),
        },
        Seed {
            name: "request-init-reboot",
            frame: client(
                NODE1,
                None,
                &encode(&with(
                    NODE1,
                    Request,
                    &[DhcpOption::RequestedIpAddress(NODE1_IP)],
                )),
            ),
        },
        Seed {
            name: "request-wrong-address",
            frame: client(
                NODE1,
                None,
                &encode(&with(
                    NODE1,
                    Request,
                    &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 50, 0, 99))],
                )),
            ),
        },
        Seed {
            name: "request-other-server",
            frame: client(
                NODE1,
                None,
                &encode(&with(
                    NODE1,
                    Request,
                    &[
                        DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 50, 0, 254)),
                        DhcpOption::RequestedIpAddress(NODE1_IP),
                    ],
                )),
            ),
        },
        Seed {
            name: "request-renewing",
            frame: {
                let mut m = request(NODE1, Request);
                m.set_ciaddr(NODE1_IP);
                frame::build(
                    &Addressing {
                        eth_dst: SERVER_MAC,
                        eth_src: NODE1,
                        vlan: None,
                        ip_src: NODE1_IP,
                        ip_dst: SERVER,
                        sport: 68,
                        dport: 67,
                    },
                    &encode(&m),
                )
            },
        },
        Seed {
            name: "relayed-discover",
            frame: {
                let mut m = request(REMOTE, Discover);
                m.set_giaddr(RELAY);
                m.set_hops(1);
                relayed(&m)
            },
        },
        Seed {
            name: "relayed-request-nak",
            frame: {
                let mut m = with(
                    REMOTE,
                    Request,
                    &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 51, 0, 99))],
                );
                m.set_giaddr(RELAY);
                m.set_hops(1);
                relayed(&m)
            },
        },
        Seed {
            name: "vlan-discover",
            frame: client(NODE1, Some(42), &encode(&request(NODE1, Discover))),
        },
        Seed {
            name: "unknown-mac-discover",
            frame: client(UNKNOWN, None, &encode(&request(UNKNOWN, Discover))),
        },
        Seed {
            name: "inform",
            frame: client(NODE1, None, &encode(&request(NODE1, Inform))),
        },
        Seed {
            name: "release",
            frame: {
                let mut m = with(NODE1, Release, &[DhcpOption::ServerIdentifier(SERVER)]);
                m.set_ciaddr(NODE1_IP);
                client(NODE1, None, &encode(&m))
            },
        },
        Seed {
            name: "pxe-bios",
            frame: firmware(
                NODE1,
                Discover,
                b"PXEClient:Arch:00000:UNDI:002001",
                0,
                None,
            ),
        },
        Seed {
            name: "pxe-uefi",
            frame: firmware(
                NODE1,
                Discover,
                b"PXEClient:Arch:00007:UNDI:003016",
                7,
                None,
            ),
        },
        Seed {
            name: "ipxe",
            frame: firmware(
                NODE1,
                Request,
                b"PXEClient:Arch:00000:UNDI:002001",
                0,
                Some(b"iPXE"),
            ),
        },
        Seed {
            name: "ipxe-rfc3004",
            frame: firmware(
                NODE1,
                Discover,
                b"PXEClient:Arch:00007:UNDI:003016",
                7,
                Some(b"\x04iPXE"),
            ),
        },
        Seed {
            name: "uefi-http",
            frame: firmware(
                NODE1,
                Discover,
                b"HTTPClient:Arch:00016:UNDI:003001",
                16,
                None,
            ),
        },
    ];
    // INIT-REBOOT from the renewing seed's client, with the
    // option-50 form, tagged: covers the tag on a REQUEST.
    let tagged = client(
        NODE1,
        Some(7),
        &encode(&with(
            NODE1,
            Request,
            &[DhcpOption::RequestedIpAddress(NODE1_IP)],
        )),
    );
    out.push(Seed {
        name: "vlan-request",
        frame: tagged,
    });
    out
}

/// Where the layers of a frame start, as far as it has them.
#[derive(Clone, Copy, Debug)]
struct Layout {
    l3: usize,
    udp: usize,
    bootp: usize,
}

fn layout(f: &[u8]) -> Layout {
    let tagged = f.get(12..14) == Some(&ETH_P_8021Q.to_be_bytes()[..]);
    let l3 = ETH_LEN + if tagged { VLAN_LEN } else { 0 };
    Layout {
        l3,
        udp: l3 + IP_LEN,
        bootp: l3 + IP_LEN + UDP_LEN,
    }
}

/// Offsets of the options (code byte) in the option area, walked the way
/// a reader walks them, stopping at END or where a length runs out.
fn options(f: &[u8], bootp: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = bootp + OPTIONS_OFF;
    while let Some(&c) = f.get(i) {
        if c == opt::END {
            out.push(i);
            break;
        }
        if c == opt::PAD {
            i += 1;
            continue;
        }
        out.push(i);
        let Some(&len) = f.get(i + 1) else { break };
        i += 2 + len as usize;
    }
    out
}

fn be16_at(f: &mut [u8], at: usize, v: u16) {
    if let Some(s) = f.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn bytes_at(f: &mut [u8], at: usize, v: &[u8]) {
    if let Some(s) = f.get_mut(at..at + v.len()) {
        s.copy_from_slice(v);
    }
}

/// Sets the IPv4 total length and UDP length to what the frame holds, as
/// a sender that builds its headers last would.
pub fn fix_lengths(f: &mut [u8]) {
    let l = layout(f);
    if f.len() < l.bootp {
        return;
    }
    let ip_len = (f.len() - l.l3).min(u16::MAX as usize) as u16;
    be16_at(f, l.l3 + 2, ip_len);
    be16_at(f, l.udp + 4, ip_len.saturating_sub(IP_LEN as u16));
}

/// Recomputes the IPv4 header checksum and the UDP checksum over the UDP
/// length the header claims (when it fits the frame).
pub fn fix_checksums(f: &mut [u8]) {
    let l = layout(f);
    if f.len() < l.udp {
        return;
    }
    be16_at(f, l.l3 + 10, 0);
    let ip = csum::finish_ip(csum::sum_bytes(&f[l.l3..l.udp]));
    be16_at(f, l.l3 + 10, ip);
    if f.len() < l.bootp {
        return;
    }
    let udp_len = u16::from_be_bytes([f[l.udp + 4], f[l.udp + 5]]) as usize;
    if udp_len < UDP_LEN || l.udp + udp_len > f.len() {
        return;
    }
    be16_at(f, l.udp + 6, 0);
    let src = u32::from_be_bytes([f[l.l3 + 12], f[l.l3 + 13], f[l.l3 + 14], f[l.l3 + 15]]);
    let dst = u32::from_be_bytes([f[l.l3 + 16], f[l.l3 + 17], f[l.l3 + 18], f[l.l3 + 19]]);
    let sum =
        csum::pseudo_header(src, dst, udp_len as u16) + csum::sum_bytes(&f[l.udp..l.udp + udp_len]);
    be16_at(f, l.udp + 6, csum::finish_udp(sum));
}

/// The UDP checksum field as this host's stack leaves it on a frame whose
/// checksum is offloaded (CHECKSUM_PARTIAL): the pseudo-header's sum, to
/// be completed by hardware. Over a veth the receiver gets it as is.
fn partial_checksum(f: &[u8]) -> Option<(usize, u16)> {
    let l = layout(f);
    let ip = f.get(l.l3..l.udp)?;
    let udp_len = u16::from_be_bytes([*f.get(l.udp + 4)?, *f.get(l.udp + 5)?]);
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    Some((
        l.udp + 6,
        csum::fold(csum::pseudo_header(src, dst, udp_len)),
    ))
}

/// Writes the partial checksum of an offloading sender (see
/// `partial_checksum`).
pub fn set_partial_checksum(f: &mut [u8]) {
    if let Some((at, v)) = partial_checksum(f) {
        be16_at(f, at, v);
    }
}

/// Whether the UDP checksum field holds exactly the partial checksum: such
/// a frame from this host's stack is flagged by the kernel, and the slow
/// path reads it as sent without a checksum (`rawsock`).
pub fn has_partial_checksum(f: &[u8]) -> bool {
    partial_checksum(f).is_some_and(|(at, v)| f.get(at..at + 2) == Some(&v.to_be_bytes()[..]))
}

/// `f` with its UDP checksum field zero ("not computed").
pub fn without_udp_checksum(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    let at = layout(&f).udp + 6;
    be16_at(&mut f, at, 0);
    f
}

/// What a mutation did, for the tallies and for reproducing a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    FlipByte,
    FlipBit,
    Truncate,
    Extend,
    OptionLength,
    BootpField,
    OptionValue,
    AddOption,
    RemoveOption,
    IpUdpField,
    VlanTag,
}

const KINDS: [Kind; 11] = [
    Kind::FlipByte,
    Kind::FlipBit,
    Kind::Truncate,
    Kind::Extend,
    Kind::OptionLength,
    Kind::BootpField,
    Kind::OptionValue,
    Kind::AddOption,
    Kind::RemoveOption,
    Kind::IpUdpField,
    Kind::VlanTag,
];

/// Addresses that make the rules take their branches.
fn interesting_ip(rng: &mut Rng) -> [u8; 4] {
    let r = rng.next_u64().to_be_bytes();
    rng.pick(&[
        [0, 0, 0, 0],
        SERVER.octets(),
        NODE1_IP.octets(),
        REMOTE_IP.octets(),
        RELAY.octets(),
        [10, 50, 0, 99],
        [10, 51, 0, 99],
        [255, 255, 255, 255],
        [10, 50, 0, 254],
        [r[0], r[1], r[2], r[3]],
    ])
}

/// Mutants are kept within an Ethernet frame's size; BPF_PROG_TEST_RUN
/// refuses frames shorter than an Ethernet header.
const MAX_FRAME: usize = 1514;

/// Applies one to three mutations to `seed` and returns the mutant and the
/// first mutation's kind.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> (Vec<u8>, Kind) {
    let mut f = seed.to_vec();
    let first = rng.pick(&KINDS);
    apply(rng, &mut f, first);
    for _ in 0..rng.below(3) {
        let k = rng.pick(&KINDS);
        apply(rng, &mut f, k);
    }
    f.truncate(MAX_FRAME);
    if f.len() < ETH_LEN {
        f.resize(ETH_LEN, 0);
    }
    // Most senders get their own lengths and checksums right; the fast
    // path and the server must also cope with the ones that do not.
    let structural = matches!(
        first,
        Kind::Truncate | Kind::Extend | Kind::AddOption | Kind::RemoveOption | Kind::VlanTag
    );
    if structural && rng.chance(70) {
        fix_lengths(&mut f);
    }
    if rng.chance(85) {
        fix_checksums(&mut f);
    } else if rng.chance(30) {
        set_partial_checksum(&mut f);
    }
    (f, first)
}

fn apply(rng: &mut Rng, f: &mut Vec<u8>, kind: Kind) {
    let l = layout(f);
    // Random values for the lists of interesting ones below.
    let r = rng.next_u64();
    let (r8, r16) = (r as u8, (r >> 8) as u16);
    match kind {
        Kind::FlipByte => {
            if !f.is_empty() {
                // Mostly where the fast path looks: the headers, the
                // BOOTP fields and the first options.
                let span = if rng.chance(70) {
                    f.len().min(l.bootp + OPTIONS_OFF + 40)
                } else {
                    f.len()
                };
                let i = rng.below(span);
                f[i] = rng.byte();
            }
        }
        Kind::FlipBit => {
            if !f.is_empty() {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
        }
        Kind::Truncate => {
            let at = match rng.below(3) {
                // Inside the option area, the usual cut.
                0 => l.bootp + OPTIONS_OFF + rng.below(64),
                // Inside the headers or the BOOTP header.
                1 => ETH_LEN + rng.below(l.bootp + OPTIONS_OFF),
                _ => f.len().saturating_sub(1 + rng.below(8)),
            };
            f.truncate(at.max(ETH_LEN));
        }
        Kind::Extend => {
            let most = if rng.chance(20) { 1200 } else { 64 };
            let n = 1 + rng.below(most);
            let fill = rng.below(3);
            for _ in 0..n {
                f.push(match fill {
                    0 => 0,
                    1 => opt::PAD,
                    _ => rng.byte(),
                });
            }
        }
        Kind::OptionLength => {
            let opts = options(f, l.bootp);
            if let Some(&at) = opts.get(rng.below(opts.len().max(1))) {
                let lie = match rng.below(4) {
                    0 => 0,
                    1 => 255,
                    2 => f.get(at + 1).map_or(0, |v| v.wrapping_add(1)),
                    _ => rng.byte(),
                };
                if let Some(b) = f.get_mut(at + 1) {
                    *b = lie;
                }
            }
        }
        Kind::BootpField => {
            let b = l.bootp;
            match rng.below(11) {
                0 => bytes_at(f, b + OFF_OP, &[rng.pick(&[0, 1, 2, 3, r8])]),
                1 => bytes_at(f, b + OFF_HTYPE, &[rng.pick(&[0, 1, 6, r8])]),
                2 => bytes_at(f, b + OFF_HLEN, &[rng.pick(&[0, 6, 16, 17, r8])]),
                3 => bytes_at(f, b + OFF_HOPS, &[rng.byte()]),
                4 => bytes_at(f, b + OFF_XID, &rng.next_u64().to_be_bytes()[..4]),
                5 => bytes_at(f, b + OFF_SECS, &[rng.byte(), rng.byte()]),
                6 => bytes_at(
                    f,
                    b + OFF_FLAGS,
                    &rng.pick(&[0u16, 0x8000, 0x7fff, 0xffff]).to_be_bytes(),
                ),
                7 => bytes_at(
                    f,
                    b + rng.pick(&[OFF_CIADDR, OFF_YIADDR, OFF_SIADDR]),
                    &interesting_ip(rng),
                ),
                8 => bytes_at(f, b + OFF_GIADDR, &interesting_ip(rng)),
                9 => {
                    let mac = rng.pick(&[NODE1, REMOTE, UNKNOWN, [0; 6], [0xff; 6]]);
                    bytes_at(f, b + OFF_CHADDR, &mac)
                }
                _ => {
                    // The cookie.
                    let i = b + OPTIONS_OFF - 4 + rng.below(4);
                    bytes_at(f, i, &[rng.byte()])
                }
            }
        }
        Kind::OptionValue => {
            let opts = options(f, l.bootp);
            let Some(&at) = opts.get(rng.below(opts.len().max(1))) else {
                return;
            };
            let code = f[at];
            let len = f.get(at + 1).copied().unwrap_or(0) as usize;
            match (code, len) {
                (opt::MESSAGE_TYPE, 1) => {
                    bytes_at(f, at + 2, &[rng.pick(&[0, 1, 2, 3, 4, 5, 7, 8, 13, 255])])
                }
                (opt::REQUESTED_IP | opt::SERVER_ID, 4) => {
                    bytes_at(f, at + 2, &interesting_ip(rng))
                }
                _ => {
                    if rng.chance(30) {
                        // Turn the option into another one the fast path
                        // reads.
                        bytes_at(
                            f,
                            at,
                            &[rng.pick(&[53, 50, 54, 60, 77, 82, 93, 52, 255, 0])],
                        );
                    } else if len > 0 {
                        let i = at + 2 + rng.below(len);
                        bytes_at(f, i, &[rng.byte()]);
                    }
                }
            }
        }
        Kind::AddOption => {
            let opts = options(f, l.bootp);
            let at = opts
                .iter()
                .copied()
                .find(|&i| f[i] == opt::END)
                .or_else(|| opts.get(rng.below(opts.len().max(1))).copied())
                .unwrap_or(f.len());
            let new: Vec<u8> = match rng.below(10) {
                0 => vec![53, 1, rng.pick(&[1, 3, 4, 7, 8])],
                1 => [&[50u8, 4][..], &interesting_ip(rng)].concat(),
                2 => [&[54u8, 4][..], &interesting_ip(rng)].concat(),
                3 => OPTION_82.to_vec(),
                4 => [&[60u8, 9][..], b"PXEClient"].concat(),
                5 => [&[77u8, 4][..], b"iPXE"].concat(),
                6 => vec![93, 2, 0, rng.pick(&[0, 6, 7, 9, 16, 255])],
                7 => vec![52, 1, rng.pick(&[1, 2, 3])],
                8 => vec![opt::PAD; 1 + rng.below(40)],
                _ => {
                    let most = if rng.chance(10) { 255 } else { 16 };
                    let len = rng.below(most);
                    let mut v = vec![rng.byte(), len as u8];
                    v.extend((0..len).map(|_| rng.byte()));
                    v
                }
            };
            let at = at.min(f.len());
            f.splice(at..at, new);
        }
        Kind::RemoveOption => {
            let opts = options(f, l.bootp);
            if let Some(&at) = opts.get(rng.below(opts.len().max(1))) {
                let end = if f[at] == opt::END {
                    at + 1
                } else {
                    at + 2 + f.get(at + 1).copied().unwrap_or(0) as usize
                };
                f.drain(at..end.min(f.len()));
            }
        }
        Kind::IpUdpField => match rng.below(9) {
            0 => bytes_at(f, l.l3, &[rng.pick(&[0x45, 0x46, 0x44, 0x65, 0x4f, r8])]),
            1 => be16_at(f, l.l3 + 2, rng.pick(&[0, 20, 27, 28, 300, 0xffff, r16])),
            2 => be16_at(f, l.l3 + 6, rng.pick(&[0x2000, 0x0001, 0x4000, 0x3fff])),
            3 => bytes_at(f, l.l3 + 9, &[rng.pick(&[6, 17, 1, 0])]),
            4 => be16_at(f, l.udp, rng.pick(&[67, 68, 4011, 0])),
            5 => be16_at(f, l.udp + 2, rng.pick(&[67, 68, 4011, 0])),
            6 => be16_at(
                f,
                l.udp + 4,
                rng.pick(&[0, 7, 8, 247, 248, 249, 0xffff, r16]),
            ),
            7 => be16_at(f, l.udp + 6, 0),
            _ => be16_at(f, 12, rng.pick(&[ETH_P_IP, 0x86dd, 0x0806, ETH_P_8021Q])),
        },
        Kind::VlanTag => {
            if l.l3 == ETH_LEN {
                let tci = rng.pick(&[1u16, 42, 4095, 0, r16]);
                let tag = [&ETH_P_8021Q.to_be_bytes()[..], &tci.to_be_bytes()].concat();
                let at = 12.min(f.len());
                f.splice(at..at, tag);
            } else if f.len() >= ETH_LEN + VLAN_LEN {
                if rng.chance(50) {
                    f.drain(12..16);
                } else {
                    // A second tag (QinQ): not what the fast path reads.
                    f.splice(16..16, [0x81, 0x00, 0, 5]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_frames() {
        for s in seeds() {
            let p = frame::parse(&s.frame).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(p.addr.dport, 67, "{}", s.name);
        }
    }

    #[test]
    fn same_seed_same_mutants() {
        let s = seeds();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|i| mutate(&mut rng, &s[i % s.len()].frame).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn repaired_mutants_parse_as_frames() {
        // A mutant whose lengths and checksums were repaired is a frame
        // the stack would deliver, as long as its headers still say
        // IPv4/UDP.
        let s = seeds();
        let mut rng = Rng::new(1);
        let mut parsed = 0;
        for i in 0..2000 {
            let mut f = s[i % s.len()].frame.clone();
            f.extend((0..rng.below(30)).map(|_| 0u8));
            fix_lengths(&mut f);
            fix_checksums(&mut f);
            parsed += usize::from(frame::parse(&f).is_ok());
        }
        assert_eq!(parsed, 2000);
    }
}
