//! Fixed offsets and sizes of the frames the XDP program reads and writes.
//!
//! A reply always has the same length, so the program copies constant-size
//! blocks and the verifier sees constant bounds.

/// Ethernet header without VLAN tag.
pub const ETH_LEN: usize = 14;
/// One 802.1Q tag, the only encapsulation the fast path accepts.
pub const VLAN_LEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_8021Q: u16 = 0x8100;
/// IPv4 header without options (requests with IP options are passed up).
pub const IP_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
pub const IPPROTO_UDP: u8 = 17;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot-server port, where proxyDHCP gets firmware's REQUEST.
pub const PXE_BOOT_PORT: u16 = 4011;

/// BOOTP fixed header (RFC 2131 figure 1), up to and excluding the cookie.
pub const BOOTP_LEN: usize = 236;
pub const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Offset of the first option, after the magic cookie.
pub const OPTIONS_OFF: usize = BOOTP_LEN + 4;

// Offsets of BOOTP fields inside the UDP payload.
pub const OFF_OP: usize = 0;
pub const OFF_HTYPE: usize = 1;
pub const OFF_HLEN: usize = 2;
pub const OFF_HOPS: usize = 3;
pub const OFF_XID: usize = 4;
pub const OFF_SECS: usize = 8;
pub const OFF_FLAGS: usize = 10;
pub const OFF_CIADDR: usize = 12;
pub const OFF_YIADDR: usize = 16;
pub const OFF_SIADDR: usize = 20;
pub const OFF_GIADDR: usize = 24;
pub const OFF_CHADDR: usize = 28;

/// The broadcast bit of the BOOTP flags field.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Size of a rendered reply: the BOOTP header, the cookie and a 308-byte
/// option area. 236 + 312 = 548 is the largest DHCP message a client must
/// accept without option 57 (RFC 2131 section 2: "options field of at least
/// length 312 octets"), so a reply of this size reaches every client.
pub const BLOCK_LEN: usize = 548;

/// The shortest BOOTP message (RFC 1542 section 2.1): replies are padded to
/// this for old clients that drop anything shorter.
pub const MIN_REPLY_LEN: usize = 300;

/// Length of a reply's UDP payload whose END option is at `end_pos`: it ends
/// right after END, padded to `MIN_REPLY_LEN`. Cutting the trailing PADs
/// keeps most replies no longer than their requests, so the program shrinks
/// the frame, which always works, instead of growing it, which fails on
/// buffers without tailroom (a veth's, for one).
#[inline(always)]
pub const fn reply_len(end_pos: usize) -> usize {
    if end_pos + 1 > MIN_REPLY_LEN {
        end_pos + 1
    } else {
        MIN_REPLY_LEN
    }
}

/// Longest request datagram (UDP header included) whose checksum the fast
/// path verifies; a longer one is passed up. With its padding and the
/// pseudo-header it fits 2048 bytes.
pub const MAX_DGRAM_LEN: usize = 2032;

/// TTL of replies; RFC 1700's default, as the userspace stack would send.
pub const REPLY_TTL: u8 = 64;

/// Longest option 82 (code, length and value) echoed by the fast path; a
/// longer one is passed up. Sized to the scratch buffer below.
pub const MAX_ECHO_LEN: usize = 256;

/// DHCP message types (option 53, RFC 2132 section 9.6).
pub mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

/// Option codes the fast path reads.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const VENDOR_CLASS: u8 = 60;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_UUID: u8 = 97;
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Subnet selection (RFC 3011): the userspace server chooses the
    /// subnet by it, so the fast path leaves such requests to it.
    pub const SUBNET_SELECTION: u8 = 118;
    /// Option 82's link selection sub-option (RFC 3527), likewise.
    pub const SUB_LINK_SELECTION: u8 = 5;
    pub const END: u8 = 255;
}
