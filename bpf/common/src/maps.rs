//! Map keys and values. Addresses are stored as they appear on the wire
//! (network byte order, `[u8; 4]`), so neither side converts them.

use crate::layout::BLOCK_LEN;

/// Names of the maps in the object file; the daemon looks them up by these.
pub mod names {
    pub const RESERVATIONS: &str = "RESERVATIONS";
    pub const TEMPLATES: &str = "TEMPLATES";
    pub const TEMPLATE_SLOTS: &str = "TEMPLATE_SLOTS";
    pub const SUBNETS: &str = "SUBNETS";
    pub const IFACES: &str = "IFACES";
    pub const IFACES_VERSION: &str = "IFACES_VERSION";
    pub const COUNTERS: &str = "COUNTERS";
    pub const REPLY_RING: &str = "REPLY_RING";
    pub const SCRATCH: &str = "SCRATCH";
    pub const BOOT_MARKER: &str = "BOOT_MARKER";
    pub const SLOWPATH_BUCKETS: &str = "SLOWPATH_BUCKETS";
    pub const SLOWPATH_LIMIT: &str = "SLOWPATH_LIMIT";
    pub const MODE: &str = "MODE";
    pub const TALLY_RUN: &str = "TALLY_RUN";
    pub const TALLY_COUNTS: &str = "TALLY_COUNTS";
    pub const GEN_RUN: &str = "GEN_RUN";
    pub const GEN_FRAMES: &str = "GEN_FRAMES";
    pub const GEN_STATE: &str = "GEN_STATE";
}

/// Name of the XDP program that answers DHCP.
pub const PROGRAM_DHCP: &str = "stormboot";
/// Name of the XDP program that only returns XDP_PASS. Attached to the peer
/// of a veth so that frames sent there with XDP_TX are delivered at all.
pub const PROGRAM_PASS: &str = "stormboot_pass";
/// Name of the lab's counting program (`tally`): the pass-only program
/// that also counts and drops the replies to a generator's run.
pub const PROGRAM_TALLY: &str = "stormboot_tally";
/// Name of the lab's wire generator (`generate`), run in live-frames mode.
pub const PROGRAM_GENERATE: &str = "stormboot_generate";

/// Key of the template map: a template set (the replies every machine
/// with the same subnet, boot profile and options shares) and the boot
/// variant a request asks for (0: plain DHCP).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub set: u32,
    /// A `variant` value.
    pub variant: u16,
    pub _pad: u16,
}

impl TemplateKey {
    pub const fn new(set: u32, variant: u16) -> Self {
        Self {
            set,
            variant,
            _pad: 0,
        }
    }

    /// Where TEMPLATE_SLOTS holds this template, when the templates are
    /// there (`TEMPLATES_SLOTTED`): a slot per variant of every set.
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        self.set
            .wrapping_mul(VARIANT_COUNT)
            .wrapping_add(self.variant as u32)
    }
}

/// Boot variants a set can have (`variant::ALL`): TEMPLATE_SLOTS holds
/// this many slots per set.
pub const VARIANT_COUNT: u32 = variant::ALL.len() as u32;

/// The program's global (`.rodata`, fixed when it is loaded) that says
/// where the templates are: 1 in TEMPLATE_SLOTS, an array the kernel looks
/// up without a call, 0 in TEMPLATES, a hash map (a lookup is four calls
/// in the kernel). An array is allocated whole, a slot per variant of
/// every set it may hold, so userspace chooses it when the sets it sizes
/// for are few (`LoadOptions`). A constant to the verifier, which follows
/// only the branch it selects.
pub const GLOBAL_TEMPLATES_SLOTTED: &str = "TEMPLATES_SLOTTED";

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
/// giaddr, chaddr, the value byte of option 53 at `type_off`, the END
/// byte at `end_off`, and the client's MAC address as text at each
/// nonzero `mac_off`. The program writes them and adds their share.
///
/// A template (the TEMPLATES map) is a block shared by many machines: its
/// yiaddr is zero too, and the machine's host name goes at `end_off`
/// (`Machine`). A subnet's NAK block is sent as it is.
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
    /// Where the client's MAC address goes as `MAC_TEXT_LEN` bytes of text
    /// (a per-machine boot URL, in the file field and in option 67); zero:
    /// nowhere.
    pub mac_off: [u16; 2],
}

/// Length of a MAC address as text: `52:54:00:00:00:09`.
pub const MAC_TEXT_LEN: usize = 17;

impl Block {
    /// A TEMPLATE_SLOTS slot no template was written to: the message
    /// type's value is never at offset 0, which is BOOTP's op.
    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.type_off == 0
    }

    pub const fn zeroed() -> Self {
        Self {
            bytes: [0; BLOCK_LEN],
            csum: 0,
            type_off: 0,
            end_off: 0,
            mac_off: [0; 2],
        }
    }
}

/// The longest host name a `Machine` holds; a longer one is part of its
/// machine's templates instead.
pub const NAME_MAX: usize = 32;

/// Value of the reservation map (key: the client's hardware address): what
/// one machine's replies have of their own. Everything else is in its
/// template set's blocks, which every machine of the same subnet, boot
/// profile and options shares.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The reserved address (yiaddr of OFFER and ACK).
    pub ip: [u8; 4],
    /// Its template set (`TemplateKey::set`).
    pub set: u32,
    /// Index into SUBNETS: the network a request must come from, our
    /// server identifier there, and the NAK block.
    pub subnet: u16,
    /// One's-complement sum of `name_opt` as if it started at an even
    /// offset, folded.
    pub name_sum: u16,
    /// Length of `name_opt`; 0: no host name of its own.
    pub name_opt_len: u8,
    /// Reserved; zero.
    pub flags: u8,
    /// Its host name as a whole option 12 (code, length, name), written at
    /// its template's `end_off` in one copy; zero after `name_opt_len`.
    pub name_opt: [u8; NAME_MAX + 2],
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
    /// The request's machine, copied out of its RESERVATIONS slot and
    /// checked against the slot's sequence count (`table`). First, so that
    /// it is copied a word at a time to aligned words.
    pub machine: Machine,
    pub options: FoundOptions,
    /// Option 82 copied out of the request before the reply overwrites it,
    /// and eight bytes zeroed after it for the checksum.
    pub bytes: [u8; crate::layout::MAX_ECHO_LEN + 8],
    /// The client's MAC address as text, for a template's `mac_off`; the
    /// spare bytes keep the struct free of padding.
    pub mac_text: [u8; MAC_TEXT_LEN + 3],
    /// The IFACES entry this CPU read last (`CachedIface`).
    pub iface: CachedIface,
}

/// A copy of one IFACES entry, valid while the IFACES_VERSION map still
/// holds `version`: userspace bumps it after every write to IFACES, so a
/// copy taken before the write is not used after it. Saves a reply a
/// hash lookup (about 20 ns), the IFACES entry being the same for every
/// request that arrives on the interface.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CachedIface {
    /// Zero: no copy (no interface has ifindex 0).
    pub ifindex: u32,
    pub version: u32,
    pub iface: Iface,
}

/// `mac` as text, lower-case hex digits joined by colons: the one
/// spelling of a MAC address in replies, so both dataplanes write the
/// same bytes.
#[inline(always)]
pub const fn mac_text(mac: &[u8; 6]) -> [u8; MAC_TEXT_LEN] {
    let mut out = [b':'; MAC_TEXT_LEN];
    let mut i = 0;
    while i < 6 {
        out[i * 3] = hex_digit(mac[i] >> 4);
        out[i * 3 + 1] = hex_digit(mac[i] & 0xf);
        i += 1;
    }
    out
}

/// The lower-case hex digit of `n` (0..=15), without a table lookup.
#[inline(always)]
pub const fn hex_digit(n: u8) -> u8 {
    if n < 10 {
        b'0' + n
    } else {
        b'a' + n - 10
    }
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
    unsafe impl aya::Pod for super::TemplateKey {}
    unsafe impl aya::Pod for super::Machine {}
    unsafe impl aya::Pod for crate::table::Slot {}
    unsafe impl aya::Pod for super::Block {}
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
    fn mac_text_is_lower_case_hex_with_colons() {
        assert_eq!(
            &mac_text(&[0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]),
            b"52:54:00:ab:cd:ef"
        );
    }

    #[test]
    fn no_implicit_padding() {
        assert_eq!(size_of::<TemplateKey>(), 8);
        assert_eq!(size_of::<Block>(), BLOCK_LEN + 12);
        assert_eq!(size_of::<Machine>(), 48);
        assert_eq!(size_of::<Subnet>(), 16 + size_of::<Block>());
        assert_eq!(size_of::<Iface>(), 12);
        assert_eq!(size_of::<CachedIface>(), 8 + size_of::<Iface>());
        assert_eq!(
            size_of::<Scratch>(),
            size_of::<Machine>()
                + size_of::<FoundOptions>()
                + crate::layout::MAX_ECHO_LEN
                + 8
                + MAC_TEXT_LEN
                + 3
                + size_of::<CachedIface>()
        );
    }
}
