//! Events the XDP program reports to userspace, and the reply ring they
//! travel in: one region per CPU in one mmapable array map (REPLY_RING).
//!
//! Why not a BPF ring buffer: its reserve and commit take a spin lock with
//! interrupts off and two helper calls, which cost a reply about 45 ns in
//! the program. A CPU's region has one writer (XDP does not nest on a CPU)
//! and one reader (the daemon, through a shared mapping), so a head and a
//! tail are all the synchronisation it needs.

/// One reply sent by the fast path: enough for userspace to keep the lease
/// and the boot timeline without being in the packet's way. No timestamp:
/// the daemon stamps what it reads, at most one drain (10 ms) later and
/// before it stamps any other event, so a machine's timeline keeps its
/// order; reading the clock was a tenth of a reply's cost in the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyEvent {
    pub mac: [u8; 6],
    /// The DHCP message type sent (`layout::msg::ACK`, ...).
    pub msg_type: u8,
    pub _pad: u8,
    /// Address acknowledged (network byte order).
    pub ip: [u8; 4],
    /// Transaction id as on the wire (network byte order).
    pub xid: [u8; 4],
    pub ifindex: u32,
}

/// Events one CPU's region holds: at a million replies a second on one CPU
/// (the lab's wire test) the daemon's 10 ms drain finds 10,000. A power of
/// two, so a position is a mask away from its slot.
pub const RING_SLOTS: u32 = 16384;

/// Entries per CPU in REPLY_RING: the header, then the slots.
pub const RING_REGION: u32 = RING_SLOTS + 1;

/// One entry of REPLY_RING: a `RingHeader` (a region's first entry) or a
/// `ReplyEvent` (the others).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingEntry {
    pub words: [u64; 3],
}

/// The first entry of a CPU's region. Positions only grow (wrapping at
/// 2^64); position p is in slot `p % RING_SLOTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingHeader {
    /// Events written: the program advances it (with release ordering)
    /// after writing each event.
    pub head: u64,
    /// Events read: the daemon advances it (with release ordering) after
    /// reading them. The program writes while `head - tail < RING_SLOTS`,
    /// and counts `EventLost` otherwise.
    pub tail: u64,
    pub _pad: u64,
}

/// The REPLY_RING index of position `pos` of `cpu`'s region.
#[inline(always)]
pub const fn slot_index(cpu: u32, pos: u64) -> u32 {
    cpu * RING_REGION + 1 + (pos as u32 & (RING_SLOTS - 1))
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no padding (20 bytes, checked below).
unsafe impl aya::Pod for ReplyEvent {}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, three u64s.
unsafe impl aya::Pod for RingEntry {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn no_implicit_padding() {
        assert_eq!(size_of::<ReplyEvent>(), 20);
        assert_eq!(size_of::<RingEntry>(), 24);
    }

    #[test]
    fn header_and_event_fit_an_entry() {
        assert!(size_of::<ReplyEvent>() <= size_of::<RingEntry>());
        assert_eq!(size_of::<RingHeader>(), size_of::<RingEntry>());
        assert!(align_of::<ReplyEvent>() <= align_of::<RingEntry>());
        assert!(RING_SLOTS.is_power_of_two());
    }

    #[test]
    fn positions_wrap_within_their_cpus_region() {
        assert_eq!(slot_index(0, 0), 1);
        assert_eq!(slot_index(0, RING_SLOTS as u64 - 1), RING_SLOTS);
        assert_eq!(slot_index(0, RING_SLOTS as u64), 1);
        assert_eq!(slot_index(1, 0), RING_REGION + 1);
        assert_eq!(slot_index(1, u64::MAX), 2 * RING_REGION - 1);
    }
}
