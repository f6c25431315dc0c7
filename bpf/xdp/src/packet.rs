//! Bounds-checked access to the frame: every read and write goes through
//! these, so each one carries the check the verifier wants to see.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use stormboot_common::counters::Counter;

/// Largest offset the program ever looks at; keeps offsets bounded for
/// the verifier.
pub const MAX_OFFSET: usize = 2048;

/// Bytes a bounds check covers for a read of `T`: at least two, because
/// LLVM rewrites a one-byte check `p + 1 > end` as `p >= end`, from which
/// the verifier learns a range of zero bytes. Callers never need the
/// frame's very last byte (no option with a value can start there).
const fn checked_len<T>() -> usize {
    if size_of::<T>() < 2 {
        2
    } else {
        size_of::<T>()
    }
}

#[inline(always)]
pub fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, Counter> {
    let start = ctx.data();
    if off > MAX_OFFSET || start + off + checked_len::<T>() > ctx.data_end() {
        return Err(Counter::Malformed);
    }
    // SAFETY: bounds checked against data_end above.
    Ok(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
}

#[inline(always)]
pub fn load_be16(ctx: &XdpContext, off: usize) -> Result<u16, Counter> {
    load::<[u8; 2]>(ctx, off).map(u16::from_be_bytes)
}

#[inline(always)]
pub fn load_be32(ctx: &XdpContext, off: usize) -> Result<u32, Counter> {
    load::<[u8; 4]>(ctx, off).map(u32::from_be_bytes)
}

/// Writes `value`; single bytes near the end go through `store_byte`.
#[inline(always)]
pub fn store<T: Copy>(ctx: &XdpContext, off: usize, value: T) -> Result<(), Counter> {
    let start = ctx.data();
    if off > MAX_OFFSET || start + off + checked_len::<T>() > ctx.data_end() {
        return Err(Counter::TxError);
    }
    // SAFETY: bounds checked against data_end above.
    unsafe { core::ptr::write_unaligned((start + off) as *mut T, value) };
    Ok(())
}

/// Writes one byte anywhere in the frame after its first, the last one
/// included: checked as the second byte of a pair, since a one-byte check
/// teaches the verifier nothing (`checked_len`). A direct store, not the
/// store helper: a helper call costs more than the rest of a reply's
/// header writes together.
#[inline(always)]
pub fn store_byte(ctx: &XdpContext, off: usize, value: u8) -> Result<(), Counter> {
    if off == 0 || off > MAX_OFFSET {
        return Err(Counter::TxError);
    }
    // Masked (a no-op) so that LLVM cannot fold the -1 into the bounds
    // check's +2 and turn it back into a one-byte check.
    let before = (off - 1) & 0xfff;
    let p = ctx.data() + before;
    if p + 2 > ctx.data_end() {
        return Err(Counter::TxError);
    }
    // SAFETY: bounds checked against data_end above.
    unsafe { core::ptr::write((p + 1) as *mut u8, value) };
    Ok(())
}
