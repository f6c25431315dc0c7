//! `stormboot_tally`, the lab generator's end of a link: counts the replies
//! to the run `stormboot-lab rate` announced in TALLY_RUN and drops them;
//! every other frame passes (`stormboot_common::tally`).
//!
//! The reply is checked as the generator's receive thread checks one: both
//! checksums, a BOOTREPLY to port 68 carrying the run's nonce, the
//! machine's chaddr, option 53 the answer the request wanted, and yiaddr
//! the machine's reserved address.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use stormboot_common::{
    layout::{
        msg, opt, CLIENT_PORT, COOKIE, ETH_LEN, ETH_P_IP, IPPROTO_UDP, IP_LEN, OFF_CHADDR,
        OFF_HLEN, OFF_OP, OFF_XID, OFF_YIADDR, OPTIONS_OFF, UDP_LEN,
    },
    tally::{self, slot, Run},
};

use crate::maps::{SCRATCH, TALLY_COUNTS, TALLY_RUN};
use crate::packet::{load, load_be16, load_be32, MAX_OFFSET};
use crate::parse;

/// Options looked through for option 53; servers put it first or near.
const MAX_OPTIONS: u32 = 32;

/// What a frame is to the run.
enum Seen {
    /// Not a reply to the run: the stack's.
    NotOurs,
    /// The run's, counted in these slots (the second when it is not
    /// `slot::COUNT`).
    Counted(u32, u32),
    /// The run's, but not an answer it counts (an ACK to a DISCOVER).
    Ignored,
}

pub fn tally(ctx: &XdpContext) -> u32 {
    let run = match TALLY_RUN.get(0) {
        Some(r) if r.active != 0 => *r,
        _ => return xdp_action::XDP_PASS,
    };
    match seen(ctx, &run) {
        Seen::NotOurs => xdp_action::XDP_PASS,
        Seen::Counted(a, b) => {
            bump(a);
            if b != slot::COUNT {
                bump(b);
            }
            xdp_action::XDP_DROP
        }
        Seen::Ignored => xdp_action::XDP_DROP,
    }
}

#[inline(always)]
fn bump(s: u32) {
    if let Some(p) = TALLY_COUNTS.get_ptr_mut(s) {
        // SAFETY: per-CPU slot, and XDP does not nest on one CPU.
        unsafe { *p += 1 };
    }
}

/// `parse::udp_checksum` in a function of its own: inlined here as it
/// is in the DHCP program, its loops multiply the paths the verifier
/// follows through the rest of this one past its limit.
#[inline(never)]
fn udp_checksum_holds(ctx: &XdpContext, l3: usize, udp_len: usize) -> bool {
    parse::udp_checksum(ctx, l3, udp_len).is_ok()
}

#[inline(always)]
fn seen(ctx: &XdpContext, run: &Run) -> Seen {
    let l3 = ETH_LEN;
    let udp = l3 + IP_LEN;
    let is_udp_to_client = load_be16(ctx, 12) == Ok(ETH_P_IP)
        && load::<u8>(ctx, l3) == Ok(0x45)
        && load::<u8>(ctx, l3 + 9) == Ok(IPPROTO_UDP)
        && load_be16(ctx, udp + 2) == Ok(CLIENT_PORT);
    if !is_udp_to_client {
        return Seen::NotOurs;
    }
    let Ok(udp_len) = load_be16(ctx, udp + 4) else {
        return Seen::NotOurs;
    };
    let udp_len = udp_len as usize;
    if !parse::ip_header_holds(ctx, l3, udp_len)
        || udp_len < UDP_LEN
        || !udp_checksum_holds(ctx, l3, udp_len)
    {
        // On the lab's link everything to port 68 is the generator's.
        return Seen::Counted(slot::BAD_CHECKSUM, slot::COUNT);
    }
    let bootp = udp + UDP_LEN;
    let end = udp + udp_len;
    match answer(ctx, run, bootp, end) {
        Ok(Some(seen)) => seen,
        Ok(None) => Seen::Ignored,
        Err(()) => Seen::NotOurs,
    }
}

/// Err: not the run's; Ok(None): the run's, not counted.
#[inline(always)]
fn answer(ctx: &XdpContext, run: &Run, bootp: usize, end: usize) -> Result<Option<Seen>, ()> {
    let header_ok = end >= bootp + OPTIONS_OFF
        && load::<u8>(ctx, bootp + OFF_OP) == Ok(2)
        && load::<u8>(ctx, bootp + OFF_HLEN) == Ok(6)
        && load::<[u8; 4]>(ctx, bootp + OPTIONS_OFF - 4) == Ok(COOKIE);
    if !header_ok {
        return Err(());
    }
    let xid = load_be32(ctx, bootp + OFF_XID).map_err(|_| ())?;
    let (request, index) = tally::xid_parts(xid, run.nonce).ok_or(())?;
    if index >= run.count {
        return Err(());
    }
    let chaddr: [u8; 6] = load(ctx, bootp + OFF_CHADDR).map_err(|_| ())?;
    if tally::mac_add(run.first_mac, index) != Some(chaddr) {
        return Err(());
    }
    let wanted = if request { msg::ACK } else { msg::OFFER };
    let counted = match message_type(ctx, bootp + OPTIONS_OFF, end) {
        Some(t) if t == wanted && request => slot::ACKS,
        Some(t) if t == wanted => slot::OFFERS,
        Some(msg::NAK) if request => return Ok(Some(Seen::Counted(slot::NAKS, slot::COUNT))),
        _ => return Ok(None),
    };
    let yiaddr = load_be32(ctx, bootp + OFF_YIADDR).map_err(|_| ())?;
    let wrong = if yiaddr == run.first_ip.wrapping_add(index) {
        slot::COUNT
    } else {
        slot::WRONG_ADDRESS
    };
    Ok(Some(Seen::Counted(counted, wrong)))
}

/// Option 53's value in the options from `start` to `end`, if it is there
/// whole. The cursor is kept in this CPU's SCRATCH value, read and written
/// volatile, as the DHCP program's walk keeps its own (`parse`): in a
/// register, each path through the options was a state of its own to the
/// verifier, and their number passed its limit.
#[inline(always)]
fn message_type(ctx: &XdpContext, start: usize, end: usize) -> Option<u8> {
    let scratch = SCRATCH.get_ptr_mut(0)?;
    // SAFETY (every access below): the per-CPU map value; XDP does not nest
    // on one CPU.
    let cursor = unsafe { core::ptr::addr_of_mut!((*scratch).options.cursor) };
    unsafe { cursor.write_volatile(start as u32) };
    let mut n = 0;
    while n < MAX_OPTIONS {
        n += 1;
        let at = unsafe { cursor.read_volatile() } as usize;
        if at >= end || at > MAX_OFFSET {
            return None;
        }
        let [code, len] = load::<[u8; 2]>(ctx, at).ok()?;
        let next = match code {
            opt::PAD => at + 1,
            opt::END => return None,
            opt::MESSAGE_TYPE if len == 1 && at + 3 <= end => return load::<u8>(ctx, at + 2).ok(),
            opt::MESSAGE_TYPE => return None,
            _ => at + 2 + len as usize,
        };
        unsafe { cursor.write_volatile(next as u32) };
    }
    None
}
