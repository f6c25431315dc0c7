//! The lab's reply tally: how `stormboot-lab rate` names its requests and
//! what the counting program on the generator's end of the link
//! (`stormboot_tally`, attached by `stormboot-lab xdp-pass --tally`) counts.
//! The daemon never loads that program.
//!
//! A veth hands every XDP_TX frame to its peer's XDP program before any
//! socket sees it; counting there, and dropping what was counted, lets the
//! generator count answers at the rate a server sends them instead of the
//! rate one core can pass them through the stack to a socket.

/// A transaction id's layout: the run's nonce in the top byte (replies to
/// an earlier run never count), the REQUEST bit, the machine's index in the
/// low 23 bits.
pub const REQUEST_BIT: u32 = 1 << 23;
pub const INDEX_MASK: u32 = REQUEST_BIT - 1;

#[inline(always)]
pub const fn xid(nonce: u8, request: bool, index: u32) -> u32 {
    ((nonce as u32) << 24) | if request { REQUEST_BIT } else { 0 } | (index & INDEX_MASK)
}

/// (is a REQUEST's, machine index) of a transaction id of the run `nonce`.
#[inline(always)]
pub const fn xid_parts(xid: u32, nonce: u8) -> Option<(bool, u32)> {
    if (xid >> 24) as u8 == nonce {
        Some((xid & REQUEST_BIT != 0, xid & INDEX_MASK))
    } else {
        None
    }
}

/// The run being counted (TALLY_RUN's one entry), written by the generator
/// before it sends. Machine `i` has MAC `first_mac + i` and the reserved
/// address `first_ip + i`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Zero: no run; every frame passes untouched.
    pub active: u32,
    /// Machines in the run.
    pub count: u32,
    pub first_mac: [u8; 6],
    pub nonce: u8,
    pub _pad: u8,
    /// Host byte order.
    pub first_ip: u32,
}

/// TALLY_COUNTS' slots (per CPU), in the receive thread's terms.
pub mod slot {
    /// An OFFER answering a DISCOVER of the run.
    pub const OFFERS: u32 = 0;
    /// An ACK answering a REQUEST of the run.
    pub const ACKS: u32 = 1;
    pub const NAKS: u32 = 2;
    /// Answers (counted above too) whose yiaddr is not the machine's.
    pub const WRONG_ADDRESS: u32 = 3;
    /// A reply to the run whose IPv4 or UDP checksum does not add up.
    pub const BAD_CHECKSUM: u32 = 4;
    pub const COUNT: u32 = 5;
}

/// Machine `index`'s MAC: `first + index` as a 48-bit number, or None past
/// ff:ff:ff:ff:ff:ff.
#[inline(always)]
pub fn mac_add(first: [u8; 6], index: u32) -> Option<[u8; 6]> {
    let [a, b, c, d, e, f] = first;
    let n = u64::from_be_bytes([0, 0, a, b, c, d, e, f]) + index as u64;
    let [_, _, a, b, c, d, e, f] = n.to_be_bytes();
    (n < 1 << 48).then_some([a, b, c, d, e, f])
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no padding (20 bytes, checked below).
unsafe impl aya::Pod for Run {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_padding() {
        assert_eq!(core::mem::size_of::<Run>(), 20);
    }

    #[test]
    fn transaction_ids_name_the_run_the_message_and_the_machine() {
        for (request, index) in [(false, 0), (true, 0), (false, 130_000), (true, INDEX_MASK)] {
            let x = xid(0xa5, request, index);
            assert_eq!(xid_parts(x, 0xa5), Some((request, index)));
            assert_eq!(xid_parts(x, 0xa4), None, "another run's reply");
        }
        assert_ne!(xid(1, false, 7), xid(1, true, 7));
    }

    #[test]
    fn macs_count_up_across_bytes_and_stop_at_the_last() {
        assert_eq!(mac_add([2, 0, 0, 0, 0, 0xff], 1), Some([2, 0, 0, 0, 1, 0]));
        assert_eq!(mac_add([0xff; 6], 0), Some([0xff; 6]));
        assert_eq!(mac_add([0xff; 6], 1), None);
    }
}
