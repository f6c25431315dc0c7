//! Which rendered reply a request asks for: reads the options the walk
//! found (60, 77, 93) and applies `rules::boot_variant`, the rule the
//! userspace server applies too.

use aya_ebpf::programs::XdpContext;
use stormboot_common::{
    counters::Counter,
    maps::{FoundOptions, Marker, MARKER_MAX},
    rules::{self, Vendor},
};

use crate::maps::BOOT_MARKER;
use crate::packet::{load, load_be16, MAX_OFFSET};
use crate::parse::read;

#[inline(always)]
pub fn variant(ctx: &XdpContext, f: *const FoundOptions) -> Result<u16, Counter> {
    let arch = if read!(f, arch_len) >= 2 {
        Some(load_be16(ctx, bounded(read!(f, arch_off))?)?)
    } else {
        None
    };
    let vendor = vendor(ctx, f)?;
    let ipxe = read!(f, user_class_len) != 0 && user_class_matches(ctx, f)?;
    Ok(rules::boot_variant(arch, vendor, ipxe))
}

fn bounded(off: u32) -> Result<usize, Counter> {
    let off = off as usize;
    if off > MAX_OFFSET {
        return Err(Counter::Malformed);
    }
    Ok(off)
}

#[inline(always)]
fn vendor(ctx: &XdpContext, f: *const FoundOptions) -> Result<Vendor, Counter> {
    let off = bounded(read!(f, vendor_off))?;
    let len = read!(f, vendor_len);
    if len >= 10 && &load::<[u8; 10]>(ctx, off)? == b"HTTPClient" {
        return Ok(Vendor::Http);
    }
    if len >= 9 && &load::<[u8; 9]>(ctx, off)? == b"PXEClient" {
        return Ok(Vendor::Pxe);
    }
    Ok(Vendor::Other)
}

/// RFC 3004 instances walked before the request is left to userspace.
const MAX_INSTANCES: u32 = 8;

/// Option 77 carries the marker, bare (iPXE) or as one of its RFC 3004
/// instances: `rules::has_user_class`, walked within bounds. A value with
/// more instances than the walk takes is passed up, for userspace to
/// decide.
#[inline(always)]
fn user_class_matches(ctx: &XdpContext, f: *const FoundOptions) -> Result<bool, Counter> {
    // SAFETY: read-only use of a map value that userspace writes once.
    let marker: &Marker = unsafe { &*BOOT_MARKER.get_ptr(0).ok_or(Counter::TxError)? };
    let mlen = marker.len as usize;
    if mlen == 0 || mlen > MARKER_MAX {
        return Ok(false);
    }
    let len = read!(f, user_class_len) as usize;
    let start = bounded(read!(f, user_class_off))?;
    if len == mlen && equals_marker(ctx, start, marker, mlen)? {
        return Ok(true);
    }
    let end = start + len;
    let mut off = start;
    let mut n = 0;
    while n < MAX_INSTANCES {
        n += 1;
        if off >= end {
            return Ok(false);
        }
        let ilen = load::<u8>(ctx, bounded(off as u32)?)? as usize;
        if off + 1 + ilen > end {
            // Cut short: not a list of instances.
            return Ok(false);
        }
        if ilen == mlen && equals_marker(ctx, off + 1, marker, mlen)? {
            return Ok(true);
        }
        off += 1 + ilen;
    }
    if off >= end {
        return Ok(false);
    }
    Err(Counter::PassUnsupported)
}

/// Whether the `mlen` bytes at `off` are the marker.
#[inline(always)]
fn equals_marker(
    ctx: &XdpContext,
    off: usize,
    marker: &Marker,
    mlen: usize,
) -> Result<bool, Counter> {
    let off = bounded(off as u32)?;
    let mut i = 0;
    while i < MARKER_MAX {
        if i >= mlen {
            return Ok(true);
        }
        if load::<u8>(ctx, off + i)? != marker.bytes[i] {
            return Ok(false);
        }
        i += 1;
    }
    Ok(true)
}
