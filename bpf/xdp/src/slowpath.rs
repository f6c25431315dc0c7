//! Storm protection for the slow path: a DHCP request the program passes
//! up costs its client a token of a per-MAC bucket (`bucket::admit`, the
//! shared arithmetic); a client out of tokens is dropped here, before the
//! kernel's stack and the daemon spend anything on it.

use aya_ebpf::{bindings::xdp_action, helpers::generated::bpf_ktime_get_ns};
use stormboot_common::bucket;

use crate::maps::{SLOWPATH_BUCKETS, SLOWPATH_LIMIT};

/// XDP_PASS if `mac` may send one more request up, XDP_DROP if not. Not
/// inlined: the program's entry frame stays small, for the stack the
/// parse below it needs.
#[inline(never)]
pub fn admit(mac: &[u8; 6]) -> u32 {
    let limit = match SLOWPATH_LIMIT.get(0) {
        Some(l) if l.enabled() => *l,
        _ => return xdp_action::XDP_PASS,
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let entry = SLOWPATH_BUCKETS.get_ptr_mut(mac);
    // SAFETY: a map value; a concurrent update from another CPU can only
    // lose one packet's worth of tokens either way.
    let tat = entry.map(|p| unsafe { p.read_volatile() });
    match bucket::admit(tat, now, &limit) {
        Some(next) => {
            match entry {
                // SAFETY: as above.
                Some(p) => unsafe { p.write_volatile(next) },
                // An LRU map never fails for room; another CPU racing to
                // add the same MAC is harmless.
                None => {
                    let _ = SLOWPATH_BUCKETS.insert(mac, next, 0);
                }
            }
            xdp_action::XDP_PASS
        }
        None => xdp_action::XDP_DROP,
    }
}
