//! `stormboot_generate`, the lab's wire generator: run in live-frames mode
//! on the generator's end of a link, it turns a repetition into the next
//! request of the run when the run's schedule says one is due and sends it
//! with XDP_TX, and drops the others (`stormboot_common::generate`).

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_ktime_get_ns, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use stormboot_common::{
    csum,
    generate::{broadcast, nth, pace, FRAME_MAX, FRAME_MIN},
    layout::{ETH_LEN, FLAG_BROADCAST, IP_LEN, OFF_CHADDR, OFF_FLAGS, OFF_XID, UDP_LEN},
    tally,
};

use crate::maps::{GEN_FRAMES, GEN_RUN, GEN_STATE};
use crate::packet::store;
use crate::parse;

const UDP: usize = ETH_LEN + IP_LEN;
const BOOTP: usize = UDP + UDP_LEN;

pub fn generate(ctx: &XdpContext) -> u32 {
    match next(ctx) {
        Some(true) => xdp_action::XDP_TX,
        // Not due yet, or the run is over: the page goes back to the pool.
        Some(false) => xdp_action::XDP_DROP,
        None => xdp_action::XDP_ABORTED,
    }
}

/// Some(true): the frame now holds the next request, to be sent.
#[inline(always)]
fn next(ctx: &XdpContext) -> Option<bool> {
    let run = GEN_RUN.get(0)?;
    if run.total == 0 || run.count == 0 {
        return None;
    }
    let state = GEN_STATE.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, and XDP does not nest on one CPU.
    let state = unsafe { &mut *state };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if state.start_ns == 0 {
        state.start_ns = now;
    }
    let issued = state.sent + state.behind;
    let (send, pass) = pace(run, issued, now - state.start_ns);
    if !send {
        return Some(false);
    }
    state.behind += pass;
    let n = issued + pass;
    state.sent += 1;
    let (machine, request) = nth(n, run.count);
    let frame = GEN_FRAMES.get(request as u32)?;
    // 1..=FRAME_MAX by construction, which is what the verifier follows
    // into the helper (a range check it sees only after LLVM rewrote it).
    let len = ((run.len as usize).wrapping_sub(1) & (FRAME_MAX - 1)) + 1;
    if len < FRAME_MIN || len != run.len as usize || ctx.data() + len != ctx.data_end() {
        return None;
    }
    // SAFETY: the helper checks the frame's bounds; `len` bytes of the map
    // value are read, and `len` is at most its size.
    let r = unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, frame.bytes.as_ptr() as *mut _, len as u32) };
    if r != 0 {
        return None;
    }
    let mac = tally::mac_add(run.first_mac, machine)?;
    store(ctx, 6, mac).ok()?;
    store(ctx, BOOTP + OFF_CHADDR, mac).ok()?;
    let i = request as usize;
    let client_id = run.client_id_off[i & 1] as usize;
    if client_id != 0 {
        store(ctx, client_id, mac).ok()?;
    }
    let xid = tally::xid(run.nonce, request, machine);
    store(ctx, BOOTP + OFF_XID, xid.to_be_bytes()).ok()?;
    let bcast = match run.broadcast {
        broadcast::ALWAYS => true,
        broadcast::EVEN => machine % 2 == 0,
        _ => false,
    };
    let flags = if bcast { FLAG_BROADCAST } else { 0 };
    store(ctx, BOOTP + OFF_FLAGS, flags.to_be_bytes()).ok()?;
    let requested = run.requested_off[i & 1] as usize;
    if requested != 0 {
        let ip = run.first_ip.wrapping_add(machine);
        store(ctx, requested, ip.to_be_bytes()).ok()?;
    }
    // The UDP checksum over what was written, with the field zero.
    store(ctx, UDP + 6, [0u8; 2]).ok()?;
    let udp_len = len - UDP;
    let (pseudo, data) = parse::udp_sums(ctx, ETH_LEN, udp_len).ok()?;
    let sum = csum::finish_udp(csum::add16(pseudo, data));
    store(ctx, UDP + 6, sum.to_be_bytes()).ok()?;
    Some(true)
}
