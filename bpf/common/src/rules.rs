//! RFC 2131 rules for reserved clients, as pure functions.
//!
//! The XDP program and the userspace server both call these, so the two
//! dataplanes cannot disagree on what to answer or where to send it.
//! Addresses are host-order u32 values of the wire bytes; 0 means absent.

use crate::layout::{msg, CLIENT_PORT, FLAG_BROADCAST, SERVER_PORT};
use crate::maps::variant;

/// What to do with a request from a MAC that has a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Offer,
    Ack,
    Nak,
    /// A REQUEST that selected another server: RFC 2131 4.3.2 says the
    /// client declined our offer; send nothing.
    DropOtherServer,
    /// Not for the fast path (other message types, inconsistent REQUESTs).
    Pass,
}

/// The fields of a request that decide the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub msg_type: u8,
    pub ciaddr: u32,
    /// Option 50, or 0.
    pub requested_ip: u32,
    /// Option 54, or 0.
    pub server_id: u32,
}

/// RFC 2131 section 4.3.1 (DISCOVER) and 4.3.2 (REQUEST in its four states)
/// for a client whose address is `reserved`, answered by server `ours`.
#[inline(always)]
pub fn verdict(req: &Request, reserved: u32, ours: u32) -> Verdict {
    match req.msg_type {
        msg::DISCOVER => Verdict::Offer,
        msg::REQUEST => {
            if req.server_id != 0 {
                // SELECTING: the server identifier says whose offer it took.
                if req.server_id != ours {
                    return Verdict::DropOtherServer;
                }
                // Some old clients put the address in ciaddr instead of 50.
                let asked = if req.requested_ip != 0 {
                    req.requested_ip
                } else {
                    req.ciaddr
                };
                if asked == reserved {
                    Verdict::Ack
                } else {
                    Verdict::Nak
                }
            } else if req.requested_ip != 0 {
                // INIT-REBOOT: ciaddr MUST be zero; anything else is odd
                // enough to leave to the full server.
                if req.ciaddr != 0 {
                    Verdict::Pass
                } else if req.requested_ip == reserved {
                    Verdict::Ack
                } else {
                    Verdict::Nak
                }
            } else if req.ciaddr != 0 {
                // RENEWING (unicast) or REBINDING (broadcast).
                if req.ciaddr == reserved {
                    Verdict::Ack
                } else {
                    Verdict::Nak
                }
            } else {
                Verdict::Pass
            }
        }
        _ => Verdict::Pass,
    }
}

/// Where the Ethernet frame of a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EthDest {
    Broadcast,
    /// The client's hardware address (chaddr).
    Chaddr,
    /// The source MAC of the request: the relay, or the renewing client or
    /// the router it came through.
    RequestSource,
}

/// Addressing of a reply, RFC 2131 section 4.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub ip: u32,
    pub port: u16,
    pub eth: EthDest,
    /// Flags field of the reply.
    pub flags: u16,
}

pub const BROADCAST_IP: u32 = 0xffff_ffff;

/// Addressing of a reply of type `reply_type` to a request with these
/// giaddr, ciaddr and flags; `yiaddr` is the address being offered.
#[inline(always)]
pub fn destination(
    reply_type: u8,
    giaddr: u32,
    ciaddr: u32,
    flags: u16,
    yiaddr: u32,
) -> Destination {
    if giaddr != 0 {
        // Relayed: back to the relay's server port. A NAK gets the
        // broadcast bit so the relay broadcasts it on the client's link.
        let flags = if reply_type == msg::NAK {
            flags | FLAG_BROADCAST
        } else {
            flags
        };
        return Destination {
            ip: giaddr,
            port: SERVER_PORT,
            eth: EthDest::RequestSource,
            flags,
        };
    }
    if reply_type == msg::NAK {
        return Destination {
            ip: BROADCAST_IP,
            port: CLIENT_PORT,
            eth: EthDest::Broadcast,
            flags,
        };
    }
    if ciaddr != 0 {
        return Destination {
            ip: ciaddr,
            port: CLIENT_PORT,
            eth: EthDest::RequestSource,
            flags,
        };
    }
    if flags & FLAG_BROADCAST != 0 {
        return Destination {
            ip: BROADCAST_IP,
            port: CLIENT_PORT,
            eth: EthDest::Broadcast,
            flags,
        };
    }
    Destination {
        ip: yiaddr,
        port: CLIENT_PORT,
        eth: EthDest::Chaddr,
        flags,
    }
}

/// ciaddr of a reply (RFC 2131 table 3): an ACK repeats the request's,
/// OFFER and NAK send zero.
#[inline(always)]
pub const fn reply_ciaddr(reply_type: u8, req_ciaddr: u32) -> u32 {
    if reply_type == msg::ACK {
        req_ciaddr
    } else {
        0
    }
}

/// What option 60 says the client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// No vendor class, or another one.
    Other,
    /// "PXEClient...": PXE firmware.
    Pxe,
    /// "HTTPClient...": UEFI HTTP boot.
    Http,
}

/// Classifies option 60 by its prefix.
#[inline(always)]
pub fn vendor_of(value: &[u8]) -> Vendor {
    if value.len() >= 9 && matches!(value.get(..9), Some(b"PXEClient")) {
        Vendor::Pxe
    } else if value.len() >= 10 && matches!(value.get(..10), Some(b"HTTPClient")) {
        Vendor::Http
    } else {
        Vendor::Other
    }
}

/// Which rendered reply a boot request gets (RFC 4578 and the IANA
/// processor architecture registry for option 93). `arch` is None when
/// option 93 is absent; `ipxe` is true when option 77 carries the iPXE
/// marker. iPXE always gets its script, whatever it runs on: the BIOS ROM's
/// iPXE and a chainloaded undionly.kpxe send the same request, and only the
/// script ends the chainload loop.
#[inline(always)]
pub fn boot_variant(arch: Option<u16>, vendor: Vendor, ipxe: bool) -> u16 {
    if ipxe {
        return variant::IPXE;
    }
    match (vendor, arch) {
        (Vendor::Pxe, Some(0)) => variant::PXE_BIOS,
        // IA32 firmware cannot run an x64 binary: a variant of its own.
        (Vendor::Pxe, Some(6)) => variant::PXE_EFI_IA32,
        (Vendor::Pxe, Some(7 | 9)) => variant::PXE_EFI_X64,
        (Vendor::Pxe, Some(11)) => variant::PXE_EFI_ARM64,
        (Vendor::Http, Some(16)) => variant::HTTP_EFI_X64,
        (Vendor::Http, Some(19)) => variant::HTTP_EFI_ARM64,
        // Unknown architectures and plain clients get plain DHCP.
        _ => variant::PLAIN,
    }
}

/// Whether option 77's value carries `marker`: iPXE sends the bare string
/// ("iPXE"), RFC 3004 clients length-prefixed instances.
pub fn has_user_class(value: &[u8], marker: &[u8]) -> bool {
    if value == marker {
        return true;
    }
    let mut rest = value;
    while let [len, tail @ ..] = rest {
        let len = *len as usize;
        let Some((instance, more)) = (len <= tail.len()).then(|| tail.split_at(len)) else {
            return false;
        };
        if instance == marker {
            return true;
        }
        rest = more;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_variants() {
        assert_eq!(vendor_of(b"PXEClient:Arch:00007:UNDI:003000"), Vendor::Pxe);
        assert_eq!(
            vendor_of(b"HTTPClient:Arch:00016:UNDI:003001"),
            Vendor::Http
        );
        assert_eq!(vendor_of(b"MSFT 5.0"), Vendor::Other);
        assert_eq!(vendor_of(b"PXE"), Vendor::Other);
        assert_eq!(boot_variant(Some(0), Vendor::Pxe, false), variant::PXE_BIOS);
        assert_eq!(
            boot_variant(Some(7), Vendor::Pxe, false),
            variant::PXE_EFI_X64
        );
        assert_eq!(
            boot_variant(Some(9), Vendor::Pxe, false),
            variant::PXE_EFI_X64
        );
        assert_eq!(
            boot_variant(Some(6), Vendor::Pxe, false),
            variant::PXE_EFI_IA32,
            "EFI IA32 never gets the x64 binary"
        );
        assert_eq!(
            boot_variant(Some(11), Vendor::Pxe, false),
            variant::PXE_EFI_ARM64
        );
        assert_eq!(
            boot_variant(Some(16), Vendor::Http, false),
            variant::HTTP_EFI_X64
        );
        assert_eq!(boot_variant(Some(0), Vendor::Pxe, true), variant::IPXE);
        assert_eq!(boot_variant(Some(42), Vendor::Pxe, false), variant::PLAIN);
        assert_eq!(boot_variant(None, Vendor::Other, false), variant::PLAIN);
        assert!(has_user_class(b"iPXE", b"iPXE"));
        assert!(has_user_class(b"\x04iPXE", b"iPXE"));
        assert!(has_user_class(b"\x03abc\x0aTinkerbell", b"Tinkerbell"));
        assert!(!has_user_class(b"\x09iPXE", b"iPXE"));
        assert!(!has_user_class(b"xiPXE", b"iPXE"));
    }

    const RES: u32 = 0x0a32_000b;
    const OURS: u32 = 0x0a32_0001;

    fn req(msg_type: u8, ciaddr: u32, requested_ip: u32, server_id: u32) -> Request {
        Request {
            msg_type,
            ciaddr,
            requested_ip,
            server_id,
        }
    }

    #[test]
    fn request_states() {
        assert_eq!(
            verdict(&req(msg::DISCOVER, 0, 0, 0), RES, OURS),
            Verdict::Offer
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, RES, OURS), RES, OURS),
            Verdict::Ack
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, RES + 1, OURS), RES, OURS),
            Verdict::Nak
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, RES, OURS + 1), RES, OURS),
            Verdict::DropOtherServer
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, RES, 0), RES, OURS),
            Verdict::Ack
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, RES + 1, 0), RES, OURS),
            Verdict::Nak
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, RES, RES, 0), RES, OURS),
            Verdict::Pass
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, RES, 0, 0), RES, OURS),
            Verdict::Ack
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, RES + 1, 0, 0), RES, OURS),
            Verdict::Nak
        );
        assert_eq!(
            verdict(&req(msg::REQUEST, 0, 0, 0), RES, OURS),
            Verdict::Pass
        );
        assert_eq!(
            verdict(&req(msg::RELEASE, RES, 0, OURS), RES, OURS),
            Verdict::Pass
        );
        assert_eq!(
            verdict(&req(msg::INFORM, RES, 0, 0), RES, OURS),
            Verdict::Pass
        );
    }

    #[test]
    fn addressing_follows_rfc2131_4_1() {
        let relay = 0x0a33_0001;
        let d = destination(msg::OFFER, relay, 0, 0, RES);
        assert_eq!(
            (d.ip, d.port, d.eth, d.flags),
            (relay, 67, EthDest::RequestSource, 0)
        );
        let d = destination(msg::NAK, relay, 0, 0, 0);
        assert_eq!(d.flags, FLAG_BROADCAST);
        let d = destination(msg::NAK, 0, RES, 0, 0);
        assert_eq!((d.ip, d.eth), (BROADCAST_IP, EthDest::Broadcast));
        let d = destination(msg::ACK, 0, RES, 0, RES);
        assert_eq!((d.ip, d.port, d.eth), (RES, 68, EthDest::RequestSource));
        let d = destination(msg::OFFER, 0, 0, FLAG_BROADCAST, RES);
        assert_eq!((d.ip, d.eth), (BROADCAST_IP, EthDest::Broadcast));
        let d = destination(msg::OFFER, 0, 0, 0, RES);
        assert_eq!((d.ip, d.eth), (RES, EthDest::Chaddr));
    }
}
