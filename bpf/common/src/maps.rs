//! Map keys and values. Addresses are stored as they appear on the wire
//! (network byte order, `[u8; 4]`), so neither side converts them.

use crate::layout::BLOCK_LEN;

/// Names of the maps in the object file; the daemon looks them up by these.
pub mod names {
    pub const RESERVATIONS: &str = "RESERVATIONS";
    pub const SUBNETS: &str = "SUBNETS";
    pub const IFACES: &str = "IFACES";
    pub const COUNTERS: &str = "COUNTERS";
    pub const EVENTS: &str = "EVENTS";
    pub const SCRATCH: &str = "SCRATCH";
    pub const BOOT_MARKER: &str = "BOOT_MARKER";
    pub const SLOWPATH_BUCKETS: &str = "SLOWPATH_BUCKETS";
    pub const SLOWPATH_LIMIT: &str = "SLOWPATH_LIMIT";
    pub const MODE: &str = "MODE";
}

/// Name of the XDP program that answers DHCP.
pub const PROGRAM_DHCP: &str = "stormboot";
/// Name of the XDP program that only returns XDP_PASS. Attached to the peer
/// of a veth so that frames sent there with XDP_TX are delivered at all.
pub const PROGRAM_PASS: &str = "stormboot_pass";

/// Key of the reservation map: the client's hardware address and the boot
/// variant its request asks for (0: plain DHCP).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservationKey {
    pub mac: [u8; 6],
    /// A `variant` value; u16 so the key has no padding.
    pub variant: u16,
}

/// Boot variants a reservation can have a rendered reply for; the request
/// picks one by `rules::boot_variant`. A machine with no reply rendered for
/// its variant is answered from its PLAIN one: plain DHCP, no boot options.
pub mod variant {
    pub const PLAIN: u16 = 0;
    /// PXE firmware on BIOS (client architecture 0): undionly.kpxe.
    pub const PXE_BIOS: u16 = 1;
    /// PXE firmware on UEFI x64 (architectures 7 and 9): ipxe.efi.
    pub const PXE_EFI_X64: u16 = 2;
    /// PXE firmware on UEFI arm64 (architecture 11).
    pub const PXE_EFI_ARM64: u16 = 3;
    /// UEFI HTTP boot, x64 (architecture 16, vendor class HTTPClient).
    pub const HTTP_EFI_X64: u16 = 4;
    /// UEFI HTTP boot, arm64 (architecture 19).
    pub const HTTP_EFI_ARM64: u16 = 5;
    /// iPXE itself (user class marker): the machine's script URL.
    pub const IPXE: u16 = 6;
    /// PXE firmware on 32-bit UEFI x86 (architecture 6): its own file
    /// (`boot.efi_ia32_file`), as an x64 binary does not run there.
    pub const PXE_EFI_IA32: u16 = 7;
    pub const ALL: [u16; 8] = [
        PLAIN,
        PXE_BIOS,
        PXE_EFI_X64,
        PXE_EFI_ARM64,
        HTTP_EFI_X64,
        HTTP_EFI_ARM64,
        IPXE,
        PXE_EFI_IA32,
    ];
}

/// What the program answers: the single entry of the MODE map.
pub mod mode {
    /// A DHCP server: OFFER/ACK/NAK with addresses for reservations.
    pub const AUTHORITATIVE: u32 = 0;
    /// proxyDHCP: boot information only, to reserved PXE clients, on
    /// ports 67 and 4011; everything else is passed up.
    pub const PROXY: u32 = 1;
}

/// A rendered reply: the UDP payload with every per-transaction field zero.
///
/// Zero in the block (and so excluded from `csum`): xid, flags, ciaddr,
/// giaddr, chaddr, the value byte of option 53 at `type_off`, and the END
/// byte at `end_off`. The program writes them and adds their share.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Block {
    pub bytes: [u8; BLOCK_LEN],
    /// One's-complement sum of `bytes` as big-endian 16-bit words, unfolded.
    pub csum: u32,
    /// Offset in `bytes` of the message-type value byte.
    pub type_off: u16,
    /// Offset in `bytes` where the END option goes (an echoed option 82 is
    /// written here first and END after it, as RFC 3046 asks: last).
    pub end_off: u16,
}

impl Block {
    pub const fn zeroed() -> Self {
        Self {
            bytes: [0; BLOCK_LEN],
            csum: 0,
            type_off: 0,
            end_off: 0,
        }
    }
}

/// Value of the reservation map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Reservation {
    /// The reserved address (yiaddr of OFFER and ACK).
    pub ip: [u8; 4],
    /// Our server identifier (option 54), also the source address of replies.
    pub server_id: [u8; 4],
    /// The reservation's subnet, to check that the request came from there.
    pub net: [u8; 4],
    pub mask: [u8; 4],
    /// Index into SUBNETS, whose NAK block answers a wrong request.
    pub subnet: u32,
    /// Reserved for flags; zero today.
    pub flags: u32,
    /// OFFER and ACK share this block; only the type byte differs.
    pub reply: Block,
}

/// Value of the subnet array map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Subnet {
    pub net: [u8; 4],
    pub mask: [u8; 4],
    pub server_id: [u8; 4],
    /// 1 when this slot holds a subnet.
    pub valid: u32,
    pub nak: Block,
}

/// Value of the interface map (key: ifindex as u32): what the program needs
/// to know about the interface a request arrived on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// The interface's IPv4 address: a non-relayed request is only answered
    /// when this address lies in the reservation's subnet.
    pub ip: [u8; 4],
    /// Source MAC of replies sent out of this interface.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Per-CPU scratch space of the program.
///
/// `options` holds what the option walk found. It lives in a map value, not
/// in registers, because the verifier does not track map contents: every
/// path through the walk then ends in one verifier state instead of one per
/// combination of options seen.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    pub options: FoundOptions,
    /// Option 82 copied out of the request before the reply overwrites it;
    /// four spare bytes stay zero for the checksum.
    pub bytes: [u8; crate::layout::MAX_ECHO_LEN + 4],
}

/// The options the fast path reads; zero when absent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoundOptions {
    pub msg_type: u32,
    /// Option 50, host order.
    pub requested_ip: u32,
    /// Option 54, host order.
    pub server_id: u32,
    /// Offset of option 82 in the frame and its length with code and length bytes.
    pub relay_off: u32,
    pub relay_len: u32,
    /// Offsets of the values of options 60 (vendor class), 77 (user class)
    /// and 93 (client architecture) in the frame, and their lengths; zero
    /// length when absent. Classified after the walk (`rules::boot_variant`).
    pub vendor_off: u32,
    pub vendor_len: u32,
    pub user_class_off: u32,
    pub user_class_len: u32,
    pub arch_off: u32,
    pub arch_len: u32,
    /// Offset of option 97 (client machine identifier) in the frame and its
    /// length with code and length bytes; proxy replies echo it.
    pub uuid_off: u32,
    pub uuid_len: u32,
    /// Where the walk is: kept here for the same reason, so the verifier
    /// sees one bounded unknown offset at each step instead of one state
    /// per distinct sum of option lengths.
    pub cursor: u32,
    /// Which of the options above the walk has met (a bit each), so that
    /// a repeat is noticed.
    pub seen: u32,
}

/// The user-class marker that identifies iPXE's requests (option 77): the
/// single entry of the BOOT_MARKER map, written before the program is
/// attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub len: u32,
    pub bytes: [u8; MARKER_MAX],
}

/// The longest marker the map holds; the config validator refuses longer
/// ones (`boot.ipxe_user_class`), so both dataplanes match the same bytes.
pub const MARKER_MAX: usize = 32;

impl Marker {
    /// The marker for `text`; None when it does not fit: cutting it would
    /// make the program match something other than what userspace matches.
    pub fn new(text: &[u8]) -> Option<Self> {
        if text.len() > MARKER_MAX {
            return None;
        }
        let mut bytes = [0u8; MARKER_MAX];
        bytes[..text.len()].copy_from_slice(text);
        Some(Marker {
            len: text.len() as u32,
            bytes,
        })
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, and have no padding bytes
    // (checked by the size assertions in the tests below).
    unsafe impl aya::Pod for super::ReservationKey {}
    unsafe impl aya::Pod for super::Reservation {}
    unsafe impl aya::Pod for super::Subnet {}
    unsafe impl aya::Pod for super::Iface {}
    unsafe impl aya::Pod for super::Scratch {}
    unsafe impl aya::Pod for super::Marker {}
    unsafe impl aya::Pod for crate::bucket::Limit {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn no_implicit_padding() {
        assert_eq!(size_of::<ReservationKey>(), 8);
        assert_eq!(size_of::<Block>(), BLOCK_LEN + 8);
        assert_eq!(size_of::<Reservation>(), 24 + size_of::<Block>());
        assert_eq!(size_of::<Subnet>(), 16 + size_of::<Block>());
        assert_eq!(size_of::<Iface>(), 12);
    }
}
