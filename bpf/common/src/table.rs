//! The RESERVATIONS table: an open-addressed hash table in an array map,
//! which the program probes itself. The kernel looks an array up without
//! a call; a hash map's lookup is four calls inside the kernel, each
//! return paying the CPU's return-thunk (about 7 ns apiece where SRSO is
//! mitigated), which made it the largest single cost of a reply.
//!
//! Userspace is the only writer; it writes through a shared mapping of
//! the array (BPF_F_MMAPABLE) under a per-slot sequence count, so that the
//! program never takes a half-written slot. Whatever the program cannot
//! read whole (a slot being written, a machine beyond `PROBES` of its
//! home) it passes up, and the daemon answers from the book: a miss costs
//! time, never a wrong reply.

use crate::maps::Machine;

/// How far from its home slot a machine may lie: the program looks no
/// further, and userspace leaves a machine it cannot place within this
/// many slots to the daemon.
pub const PROBES: u32 = 16;

/// `Slot::state`: never written since the table was made or cleaned; a
/// probe ends here.
pub const EMPTY: u16 = 0;
/// `Slot::state`: holds `Slot::mac`'s machine.
pub const LIVE: u16 = 1;
/// `Slot::state`: held a machine that was removed; a probe goes on past it.
pub const GONE: u16 = 2;

/// One slot, a cache line. The first eight bytes (MAC and state) are one
/// word, written in one store, so a probe compares a slot against the
/// MAC it looks for in one comparison and never sees a torn key.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub mac: [u8; 6],
    pub state: u16,
    /// Odd while userspace writes the slot; bumped twice by every write.
    pub seq: u32,
    /// Zero.
    pub pad: u32,
    pub machine: Machine,
}

impl Slot {
    /// An EMPTY slot, as the kernel creates them.
    pub const fn zeroed() -> Self {
        Self {
            mac: [0; 6],
            state: EMPTY,
            seq: 0,
            pad: 0,
            machine: Machine {
                ip: [0; 4],
                set: 0,
                subnet: 0,
                name_sum: 0,
                name_opt_len: 0,
                flags: 0,
                name_opt: [0; crate::maps::NAME_MAX + 2],
            },
        }
    }
}

/// The word a live slot of `mac` starts with (`Slot`'s first eight bytes
/// read as one little-endian u64).
#[inline(always)]
pub const fn live_word(mac: &[u8; 6]) -> u64 {
    u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]) | (LIVE as u64) << 48
}

/// The state in a slot's first word.
#[inline(always)]
pub const fn state_of(word: u64) -> u16 {
    (word >> 48) as u16
}

/// The slot a probe for `mac` starts at, in a table of `1 << bits` slots
/// (1..=31). Fibonacci hashing: the multiply spreads both consecutive
/// MACs and MACs that differ only in their vendor prefix over the top
/// bits, which are the ones taken.
#[inline(always)]
pub const fn home(mac: &[u8; 6], bits: u32) -> u32 {
    let x = u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as u32
}

/// The program's global (`.rodata`, fixed when it is loaded) that holds
/// the table's size as a power of two: it has `1 << bits` slots.
pub const GLOBAL_TABLE_BITS: &str = "TABLE_BITS";

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn a_slot_is_a_cache_line_with_its_key_in_the_first_word() {
        assert_eq!(size_of::<Slot>(), 64);
        let mac = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
        let slot = Slot {
            mac,
            state: LIVE,
            ..Slot::zeroed()
        };
        // SAFETY: Slot is repr(C), 64 bytes, no padding.
        let first = unsafe { *(&slot as *const Slot as *const u64) };
        assert_eq!(first, live_word(&mac));
        assert_eq!(state_of(first), LIVE);
    }

    #[test]
    fn homes_stay_inside_the_table() {
        for bits in 1..=31 {
            for last in 0..=255u8 {
                let h = home(&[2, 0, 0, 0, 0, last], bits);
                assert!(h < 1 << bits, "bits {bits}: {h}");
            }
        }
    }
}
