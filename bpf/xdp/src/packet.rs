//! Bounds-checked access to the frame: every read and write goes through
//! these, so each one carries the check the verifier wants to see.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use stormboot_common::counters::Counter;

/// The frame's start and end, read through the context pointer
/// (volatile): with plain reads LLVM may pass a caller's data and
/// data_end along instead (the verifier refuses the zero extension it
/// then adds), or derive a bounds check and the access it guards from
/// two separately computed pointers, which the verifier cannot relate.
#[inline(always)]
pub fn frame_bounds(ctx: &XdpContext) -> (usize, usize) {
    // SAFETY: reads of the context's own fields.
    unsafe {
        (
            core::ptr::addr_of!((*ctx.ctx).data).read_volatile() as usize,
            core::ptr::addr_of!((*ctx.ctx).data_end).read_volatile() as usize,
        )
    }
}

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

/// The address of `len` bytes at `off` in the frame, once checked.
#[inline(always)]
pub fn at(ctx: &XdpContext, off: usize, len: usize) -> Option<usize> {
    let p = ctx.data() + off;
    (off <= MAX_OFFSET && p + len <= ctx.data_end()).then_some(p)
}

#[inline(always)]
pub fn load_be16(ctx: &XdpContext, off: usize) -> Result<u16, Counter> {
    let p = at(ctx, off, 2).ok_or(Counter::Malformed)?;
    // SAFETY: two bytes at p are in the frame.
    Ok(unsafe { ld16(p) }.swap_bytes())
}

#[inline(always)]
pub fn load_be32(ctx: &XdpContext, off: usize) -> Result<u32, Counter> {
    let p = at(ctx, off, 4).ok_or(Counter::Malformed)?;
    // SAFETY: four bytes at p are in the frame.
    Ok(unsafe { ld32(p) }.swap_bytes())
}

/// The two bytes at `off`, read as one.
#[inline(always)]
pub fn load_pair(ctx: &XdpContext, off: usize) -> Result<[u8; 2], Counter> {
    let p = at(ctx, off, 2).ok_or(Counter::Malformed)?;
    // SAFETY: two bytes at p are in the frame.
    Ok(unsafe { ld16(p) }.to_ne_bytes())
}

/// Writes `v` big-endian at `off`, in one store.
#[inline(always)]
pub fn store_be32(ctx: &XdpContext, off: usize, v: u32) -> Result<(), Counter> {
    let p = at(ctx, off, 4).ok_or(Counter::TxError)?;
    // SAFETY: four bytes at p are in the frame.
    unsafe { st32(p, v.swap_bytes()) };
    Ok(())
}

/// Writes `v` big-endian at `off`, in one store.
#[inline(always)]
pub fn store_be16(ctx: &XdpContext, off: usize, v: u16) -> Result<(), Counter> {
    let p = at(ctx, off, 2).ok_or(Counter::TxError)?;
    // SAFETY: two bytes at p are in the frame.
    unsafe { st16(p, v.swap_bytes()) };
    Ok(())
}

/// Writes a MAC address at `off`, in two stores.
#[inline(always)]
pub fn store_mac(ctx: &XdpContext, off: usize, m: [u8; 6]) -> Result<(), Counter> {
    let p = at(ctx, off, 6).ok_or(Counter::TxError)?;
    // SAFETY: six bytes at p are in the frame.
    unsafe {
        st32(p, u32::from_ne_bytes([m[0], m[1], m[2], m[3]]));
        st16(p + 4, u16::from_ne_bytes([m[4], m[5]]));
    }
    Ok(())
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

/// Word loads and stores of the frame and of map values, aligned or not.
/// The verifier allows them there (where the architecture has efficient
/// unaligned access, as x86-64 and arm64 do), but LLVM would split an
/// unaligned access into single bytes: on a reply's path that was 40 ns
/// (`bench-xdp`). In assembly, so that LLVM emits them as written. The
/// `_at` forms put a constant offset in the instruction, which LLVM cannot
/// fold into an assembly operand: without them every word of a copy or a
/// sum cost two more instructions to make its address.
macro_rules! word_access {
    ($($load:ident, $load_at:ident, $store:ident, $store_at:ident, $ty:ty, $width:literal;)*) => {$(
        #[doc = concat!("Reads the ", $width, " at `p`.")]
        ///
        /// # Safety
        /// The bytes at `p` must be readable (and bounds-checked for the
        /// verifier).
        #[inline(always)]
        pub unsafe fn $load(p: usize) -> $ty {
            $load_at::<0>(p)
        }

        #[doc = concat!("Reads the ", $width, " at `p + OFF`.")]
        ///
        /// # Safety
        /// As for the form without an offset, at `p + OFF`.
        #[inline(always)]
        pub unsafe fn $load_at<const OFF: i16>(p: usize) -> $ty {
            let v: u64;
            core::arch::asm!(concat!("{v} = *(", $width, " *)({p} + {off})"),
                v = out(reg) v, p = in(reg) p, off = const OFF,
                options(readonly, nostack, preserves_flags));
            v as $ty
        }

        #[doc = concat!("Writes `v` as the ", $width, " at `p`.")]
        ///
        /// # Safety
        /// The bytes at `p` must be writable (and bounds-checked for the
        /// verifier).
        #[inline(always)]
        pub unsafe fn $store(p: usize, v: $ty) {
            $store_at::<0>(p, v)
        }

        #[doc = concat!("Writes `v` as the ", $width, " at `p + OFF`.")]
        ///
        /// # Safety
        /// As for the form without an offset, at `p + OFF`.
        #[inline(always)]
        pub unsafe fn $store_at<const OFF: i16>(p: usize, v: $ty) {
            core::arch::asm!(concat!("*(", $width, " *)({p} + {off}) = {v}"),
                v = in(reg) v as u64, p = in(reg) p, off = const OFF,
                options(nostack, preserves_flags));
        }
    )*};
}

word_access! {
    ld16, ld16_at, st16, st16_at, u16, "u16";
    ld32, ld32_at, st32, st32_at, u32, "u32";
    ld64, ld64_at, st64, st64_at, u64, "u64";
}
