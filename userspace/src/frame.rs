//! Ethernet/IPv4/UDP framing of DHCP messages: building frames with valid
//! checksums and parsing them back with the checksums verified.
//!
//! Used by the storm client, the test fixtures and the userspace dataplane,
//! so there is one implementation of the framing the XDP program mirrors.

use std::net::Ipv4Addr;

use stormboot_common::csum;
use stormboot_common::layout::{
    ETH_LEN, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IP_LEN, REPLY_TTL, UDP_LEN, VLAN_LEN,
};

pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// The addressing of one UDP datagram in an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addressing {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// 802.1Q tag control information, when the frame carries a tag.
    pub vlan: Option<u16>,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

/// Why a frame is not a well-formed UDP/IPv4 frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame too short ({0} bytes)")]
    Short(usize),
    #[error("not IPv4 (ethertype {0:#06x})")]
    NotIpv4(u16),
    #[error("not UDP (protocol {0})")]
    NotUdp(u8),
    #[error("IPv4 header has options or a bad version")]
    IpHeader,
    #[error("IPv4 length {0} does not fit the frame")]
    IpLength(usize),
    #[error("UDP length {0} does not fit the packet")]
    UdpLength(usize),
    #[error("bad IPv4 header checksum")]
    IpChecksum,
    #[error("bad UDP checksum")]
    UdpChecksum,
}

/// A parsed frame: its addressing and the UDP payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub addr: Addressing,
    pub ttl: u8,
    /// True when the UDP checksum field was zero (not computed by the sender).
    pub udp_csum_absent: bool,
    pub payload: &'a [u8],
}

/// Builds a frame around `payload` with IPv4 and UDP checksums filled in.
pub fn build(addr: &Addressing, payload: &[u8]) -> Vec<u8> {
    let l2 = ETH_LEN + if addr.vlan.is_some() { VLAN_LEN } else { 0 };
    let udp_len = UDP_LEN + payload.len();
    let ip_len = IP_LEN + udp_len;
    let mut f = Vec::with_capacity(l2 + ip_len);
    f.extend_from_slice(&addr.eth_dst);
    f.extend_from_slice(&addr.eth_src);
    if let Some(tci) = addr.vlan {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ETH_P_IP.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, REPLY_TTL, IPPROTO_UDP, 0, 0]);
    f.extend_from_slice(&addr.ip_src.octets());
    f.extend_from_slice(&addr.ip_dst.octets());
    let ip_csum = csum::finish_ip(csum::sum_bytes(&f[ip_start..ip_start + IP_LEN]));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_csum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&addr.sport.to_be_bytes());
    f.extend_from_slice(&addr.dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let sum = csum::pseudo_header(
        u32::from(addr.ip_src),
        u32::from(addr.ip_dst),
        udp_len as u16,
    ) + csum::sum_bytes(&f[udp_start..]);
    let udp_csum = csum::finish_udp(sum);
    f[udp_start + 6..udp_start + 8].copy_from_slice(&udp_csum.to_be_bytes());
    f
}

/// Parses a UDP/IPv4 frame (one optional 802.1Q tag) and verifies both
/// checksums. Trailing bytes after the IP packet (Ethernet padding) are
/// ignored, as a receiver would.
pub fn parse(f: &[u8]) -> Result<Parsed<'_>, FrameError> {
    let short = || FrameError::Short(f.len());
    let be16 = |i: usize| -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes([
            *f.get(i).ok_or_else(short)?,
            *f.get(i + 1).ok_or_else(short)?,
        ]))
    };
    let mut eth_dst = [0; 6];
    let mut eth_src = [0; 6];
    eth_dst.copy_from_slice(f.get(0..6).ok_or_else(short)?);
    eth_src.copy_from_slice(f.get(6..12).ok_or_else(short)?);
    let mut off = 12;
    let mut vlan = None;
    let mut ethertype = be16(off)?;
    if ethertype == ETH_P_8021Q {
        vlan = Some(be16(off + 2)?);
        off += VLAN_LEN;
        ethertype = be16(off)?;
    }
    off += 2;
    if ethertype != ETH_P_IP {
        return Err(FrameError::NotIpv4(ethertype));
    }
    let ip = f.get(off..off + IP_LEN).ok_or_else(short)?;
    if ip[0] != 0x45 {
        return Err(FrameError::IpHeader);
    }
    if ip[9] != IPPROTO_UDP {
        return Err(FrameError::NotUdp(ip[9]));
    }
    if csum::fold(csum::sum_bytes(ip)) != 0xffff {
        return Err(FrameError::IpChecksum);
    }
    let ip_len = be16(off + 2)? as usize;
    if ip_len < IP_LEN + UDP_LEN || off + ip_len > f.len() {
        return Err(FrameError::IpLength(ip_len));
    }
    let ip_src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let ip_dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let ttl = ip[8];
    let udp_start = off + IP_LEN;
    let udp_len = be16(udp_start + 4)? as usize;
    if udp_len < UDP_LEN || udp_len > ip_len - IP_LEN {
        return Err(FrameError::UdpLength(udp_len));
    }
    let udp = &f[udp_start..udp_start + udp_len];
    let udp_csum_absent = udp[6] == 0 && udp[7] == 0;
    if !udp_csum_absent {
        let sum = csum::pseudo_header(u32::from(ip_src), u32::from(ip_dst), udp_len as u16)
            + csum::sum_bytes(udp);
        if csum::fold(sum) != 0xffff {
            return Err(FrameError::UdpChecksum);
        }
    }
    Ok(Parsed {
        addr: Addressing {
            eth_dst,
            eth_src,
            vlan,
            ip_src,
            ip_dst,
            sport: u16::from_be_bytes([udp[0], udp[1]]),
            dport: u16::from_be_bytes([udp[2], udp[3]]),
        },
        ttl,
        udp_csum_absent,
        payload: &udp[UDP_LEN..],
    })
}

/// Parses "52:54:00:00:00:01" (also with '-' separators).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next()?;
        // from_str_radix alone would take "+a".
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as lower-case colon-separated hex.
pub fn format_mac(mac: &[u8; 6]) -> String {
    // The spelling the XDP program writes into per-machine boot URLs.
    String::from_utf8_lossy(&stormboot_common::maps::mac_text(mac)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(vlan: Option<u16>) -> Addressing {
        Addressing {
            eth_dst: BROADCAST_MAC,
            eth_src: [2, 0, 0, 0, 0, 1],
            vlan,
            ip_src: Ipv4Addr::UNSPECIFIED,
            ip_dst: Ipv4Addr::BROADCAST,
            sport: 68,
            dport: 67,
        }
    }

    #[test]
    fn build_then_parse_round_trips() {
        for vlan in [None, Some(42)] {
            let payload: Vec<u8> = (0..301u16).map(|i| i as u8).collect();
            let f = build(&addr(vlan), &payload);
            let p = parse(&f).expect("parses");
            assert_eq!(p.addr, addr(vlan));
            assert_eq!(p.payload, &payload[..]);
            assert!(!p.udp_csum_absent);
        }
    }

    #[test]
    fn corrupted_frames_are_refused() {
        let f = build(&addr(None), &[1, 2, 3, 4]);
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        assert_eq!(parse(&bad), Err(FrameError::UdpChecksum));
        let mut bad = f.clone();
        bad[14 + 8] ^= 1; // TTL
        assert_eq!(parse(&bad), Err(FrameError::IpChecksum));
        assert!(matches!(parse(&f[..20]), Err(FrameError::Short(_))));
    }

    #[test]
    fn macs() {
        let m = parse_mac("52:54:00:AB:cd:01").unwrap();
        assert_eq!(format_mac(&m), "52:54:00:ab:cd:01");
        assert_eq!(parse_mac("52:54:00:ab:cd"), None);
        assert_eq!(parse_mac("52:54:00:ab:cd:01:02"), None);
        assert_eq!(parse_mac("zz:54:00:ab:cd:01"), None);
        assert_eq!(parse_mac("+a:54:00:ab:cd:01"), None);
        for bad in [
            "",
            "525400abcd01",
            "52:54:00:ab:cd:1",
            "52:54:00:ab:cd:zz",
            "+2:54:00:ab:cd:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(
            parse_mac("52-54-00-AB-CD-01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
    }
}
