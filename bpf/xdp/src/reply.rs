//! Turns a parsed request into its reply in place: decides by the shared
//! rules, copies the machine's template, writes what is its own (address,
//! host name, MAC as text) and the per-transaction fields, addresses the
//! frame and finishes both checksums from partial sums.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use aya_log_ebpf::debug;

use core::{ffi::c_void, ptr::read_volatile};
use stormboot_common::{
    counters::Counter,
    csum,
    events::ReplyEvent,
    layout::{
        msg, opt, reply_len, BLOCK_LEN, ETH_LEN, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IP_LEN,
        MAX_ECHO_LEN, OFF_CHADDR, OFF_CIADDR, OFF_FLAGS, OFF_GIADDR, OFF_XID, OFF_YIADDR,
        REPLY_TTL, SERVER_PORT, UDP_LEN, VLAN_LEN,
    },
    maps::{
        mac_text, variant, Block, CachedIface, Iface, Machine, Scratch, Subnet, TemplateKey,
        MAC_TEXT_LEN, NAME_MAX,
    },
    rules::{self, EthDest, Verdict},
    table,
};

use crate::{
    maps::{
        count, count_each, proxy_mode, table_bits, templates_slotted, IFACES, IFACES_VERSION,
        RESERVATIONS, SUBNETS, TEMPLATES, TEMPLATE_SLOTS,
    },
    packet::{
        at, ld16, ld32, ld64, ld64_at, st16, st32, st64, st64_at, store_be16, store_be32,
        store_byte, store_mac,
    },
    parse::Request,
};

/// What to send, whichever rules decided it.
pub struct Decision<'a> {
    pub reply_type: u8,
    pub block: &'a Block,
    /// yiaddr, written into the reply (a template's is zero).
    pub yiaddr: u32,
    /// The machine whose host name goes at the block's `end_off`; None
    /// for a NAK and a proxy's reply, which carry none.
    pub named: Option<&'a Machine>,
    pub dest: rules::Destination,
    /// Our address: server identifier and source of the reply.
    pub ours: u32,
    pub src_mac: [u8; 6],
    /// The request's option echoed before END (82, or 97 by a proxy):
    /// offset in the frame and total length, zero length for none.
    pub echo_off: usize,
    pub echo_len: usize,
}

/// Answers `req` from its reservation, or says why not. Inlined (see
/// `parse::request`).
#[inline(always)]
pub fn answer(ctx: &XdpContext, req: &Request, scratch: *mut Scratch) -> Result<u32, Counter> {
    // The request comes from a map, where the verifier no longer sees that
    // the IPv4 header is at one of two offsets: say so again, or every
    // frame offset derived from it looks unbounded.
    let mut r = *req;
    r.l3 = if req.l3 == ETH_LEN + VLAN_LEN {
        ETH_LEN + VLAN_LEN
    } else {
        ETH_LEN
    };
    let req = &r;
    let decided = if proxy_mode() {
        crate::proxy::decide(ctx, req, scratch)
    } else {
        decide(ctx, req, scratch)
    };
    match decided {
        Ok(d) => emit(ctx, req, &d, scratch),
        Err(Counter::DropOtherServer) => {
            counted(Counter::DropOtherServer);
            Ok(xdp_action::XDP_DROP)
        }
        Err(why) => Err(why),
    }
}

/// Counts a DHCP request that `answer` answered or dropped itself, with
/// `outcome`: the caller counts the others.
#[inline(always)]
fn counted(outcome: Counter) {
    count_each([Counter::Received, Counter::Dhcp, outcome]);
}

/// The reserved machine of the request's chaddr and its subnet; passed up
/// when there is none.
#[inline(always)]
pub fn machine(
    req: &Request,
    scratch: *mut Scratch,
) -> Result<(&'static Machine, &'static Subnet), Counter> {
    let m = reservation(&req.chaddr, scratch)?;
    let subnet = SUBNETS
        .get(m.subnet as u32)
        .ok_or(Counter::PassUnsupported)?;
    if subnet.valid != 1 {
        return Err(Counter::PassUnsupported);
    }
    Ok((m, subnet))
}

/// The machine of `mac` from RESERVATIONS (`stormboot_common::table`),
/// copied into SCRATCH between two reads of its slot's sequence count.
/// A slot being written is passed up rather than waited for.
#[inline(always)]
fn reservation(mac: &[u8; 6], scratch: *mut Scratch) -> Result<&'static Machine, Counter> {
    let bits = table_bits();
    let want = table::live_word(mac);
    let home = table::home(mac, bits);
    let mask = (1u32 << bits).wrapping_sub(1);
    for i in 0..table::PROBES {
        let slot = RESERVATIONS
            .get_ptr(home.wrapping_add(i) & mask)
            .ok_or(Counter::PassUnknownMac)? as *const u64;
        // Volatile reads, in this order: the sequence count, the key, the
        // machine, the count again. The compiler keeps volatile accesses
        // in order and x86-64 does not reorder loads with loads, which is
        // what a sequence count's reader needs.
        // SAFETY: the slot is a map value of 64 aligned bytes (`Slot`).
        let seq = unsafe { read_volatile(slot.add(1)) };
        let head = unsafe { read_volatile(slot) };
        if head == want {
            // SAFETY: a per-CPU map value; `machine` is its first field,
            // 48 bytes at offset 0, and the slot's machine is its words
            // 2..8. XDP does not nest on one CPU.
            unsafe {
                let to = scratch as *mut u64;
                for w in 0..6 {
                    *to.add(w) = read_volatile(slot.add(2 + w));
                }
                if read_volatile(slot.add(1)) != seq || seq & 1 != 0 {
                    return Err(Counter::PassSlotBusy);
                }
                return Ok(&(*scratch).machine);
            }
        }
        if table::state_of(head) == table::EMPTY {
            break;
        }
    }
    Err(Counter::PassUnknownMac)
}

/// The template of `set` for boot variant `v`, from TEMPLATE_SLOTS or
/// TEMPLATES (`maps::templates_slotted`).
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
pub fn template(set: u32, v: u16) -> Option<&'static Block> {
    let key = TemplateKey::new(set, v);
    // SAFETY: read-only use of map values; userspace writes a set's
    // templates before any machine names the set, and reuses a slot only
    // a grace period after the last machine that named it is gone.
    if templates_slotted() {
        TEMPLATE_SLOTS.get(key.slot()).filter(|b| !b.is_empty())
    } else {
        TEMPLATES.get_ptr(&key).map(|p| unsafe { &*p })
    }
}

/// The interface the request came in on, if the request came from the
/// reservation's network (the relay's, or the receiving interface's).
#[inline(always)]
pub fn on_network(
    ctx: &XdpContext,
    req: &Request,
    subnet: &Subnet,
    scratch: *mut Scratch,
) -> Result<&'static Iface, Counter> {
    let iface = iface(ctx.ingress_ifindex() as u32, scratch)?;
    let net = u32::from_be_bytes(subnet.net);
    let mask = u32::from_be_bytes(subnet.mask);
    let on_link = if req.giaddr != 0 {
        req.giaddr
    } else {
        u32::from_be_bytes(iface.ip)
    };
    if on_link & mask != net {
        return Err(Counter::PassWrongNetwork);
    }
    Ok(iface)
}

/// The IFACES entry of `ifindex`: this CPU's copy while IFACES has not
/// been written since it was taken (`CachedIface`), else looked up and
/// copied.
#[inline(always)]
fn iface(ifindex: u32, scratch: *mut Scratch) -> Result<&'static Iface, Counter> {
    // Read before the lookup: an entry written after it comes with a
    // version this copy does not have.
    let version = IFACES_VERSION.get(0).copied().unwrap_or(0);
    // SAFETY: a per-CPU map value; XDP does not nest on one CPU.
    let cached = unsafe { &mut (*scratch).iface };
    if cached.ifindex != ifindex || cached.version != version || version == 0 {
        // SAFETY: read-only use of a map value.
        let found = unsafe { &*IFACES.get_ptr(ifindex).ok_or(Counter::PassWrongNetwork)? };
        *cached = CachedIface {
            ifindex,
            version,
            iface: *found,
        };
    }
    Ok(&cached.iface)
}

/// The authoritative server's decision (RFC 2131, `rules::verdict`).
#[inline(always)]
fn decide<'a>(
    ctx: &XdpContext,
    req: &Request,
    scratch: *mut Scratch,
) -> Result<Decision<'a>, Counter> {
    let (m, subnet) = machine(req, scratch)?;
    let iface = on_network(ctx, req, subnet, scratch)?;

    let reserved = u32::from_be_bytes(m.ip);
    let ours = u32::from_be_bytes(subnet.server_id);
    let (reply_type, block, named): (u8, &Block, Option<&Machine>) =
        match rules::verdict(&req.fields, reserved, ours) {
            v @ (Verdict::Offer | Verdict::Ack) => {
                // The template for the boot variant the request asks for,
                // else the machine's plain one (no profile, or an
                // architecture it has no boot file for: plain DHCP).
                let t = template(m.set, req.variant)
                    .or_else(|| template(m.set, variant::PLAIN))
                    .ok_or(Counter::PassUnsupported)?;
                let ty = if matches!(v, Verdict::Offer) {
                    msg::OFFER
                } else {
                    msg::ACK
                };
                (ty, t, Some(m))
            }
            Verdict::Nak => (msg::NAK, &subnet.nak, None),
            Verdict::DropOtherServer => return Err(Counter::DropOtherServer),
            Verdict::Pass => return Err(Counter::PassOtherDhcp),
        };
    let yiaddr = if reply_type == msg::NAK { 0 } else { reserved };
    Ok(Decision {
        reply_type,
        block,
        yiaddr,
        named,
        dest: rules::destination(reply_type, req.giaddr, req.fields.ciaddr, req.flags, yiaddr),
        ours,
        src_mac: iface.mac,
        echo_off: req.relay_off as usize,
        echo_len: req.relay_len as usize,
    })
}

/// Resizes the frame, writes the reply, counts it and reports it.
#[inline(always)]
fn emit(
    ctx: &XdpContext,
    req: &Request,
    d: &Decision<'_>,
    scratch: *mut Scratch,
) -> Result<u32, Counter> {
    let Decision {
        reply_type,
        block,
        yiaddr,
        named,
        echo_off,
        echo_len,
        ..
    } = *d;
    let ifindex = ctx.ingress_ifindex() as u32;
    let type_off = block.type_off as usize;
    let end_off = block.end_off as usize;
    if type_off >= BLOCK_LEN || end_off >= BLOCK_LEN {
        return Err(Counter::TxError);
    }

    // The machine's host name, as option 12, goes where the template's
    // options end.
    let name_opt = match named {
        Some(m) => m.name_opt_len as usize,
        None => 0,
    };
    if name_opt > NAME_MAX + 2 {
        return Err(Counter::TxError);
    }
    let echo_at = end_off + name_opt;

    // The echoed option is copied out before the reply overwrites the request.
    let mut echo_sum = 0u32;
    if echo_len != 0 {
        if echo_len > MAX_ECHO_LEN || echo_at + echo_len + 1 > BLOCK_LEN {
            return Err(Counter::PassUnsupported);
        }
        // SAFETY: scratch is a per-CPU map value; its bytes are
        // MAX_ECHO_LEN + 8 long.
        let buf = unsafe { (*scratch).bytes.as_mut_ptr() } as usize;
        echo_copy(ctx, echo_off, buf, echo_len, Way::Out)?;
        // Summed as native (little-endian) words; our sums are big-endian
        // words, the same sum byte-swapped, unless the data starts at an
        // odd offset, which swaps it back.
        echo_sum = csum::at_offset(echo_sum_of(buf, echo_len).swap_bytes(), echo_at);
    }
    let end_pos = echo_at + echo_len;
    if end_pos >= BLOCK_LEN {
        return Err(Counter::PassUnsupported);
    }
    // Masked so the verifier sees the bound it already has from the checks
    // above: end_pos < BLOCK_LEN.
    let len = reply_len(end_pos) & 0x3ff;
    if len > BLOCK_LEN {
        return Err(Counter::TxError);
    }

    // Resize to the reply's length, then write. If resizing fails the
    // request is intact and can still be passed up.
    let target = req.l3 + IP_LEN + UDP_LEN + len;
    let delta = target as i64 - (ctx.data_end() - ctx.data()) as i64;
    // A longer reply grows at the head: every driver leaves XDP 256 bytes
    // of headroom, and growing at the tail costs more, as the kernel zeroes
    // the new bytes in a call of its own (`bench-xdp`: 10-15 ns). Else at
    // the tail, where the buffer has room (a veth's copy of a locally sent
    // frame has none). The whole frame is rewritten below, so where it
    // starts does not matter.
    // SAFETY: plain helper calls on our own context.
    let resized = delta == 0
        || (delta > 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, -(delta as i32)) } == 0)
        || unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } == 0;
    if !resized {
        return Err(Counter::PassNoRoom);
    }
    // From here the request is gone: a failure drops the frame.
    let tail = Tail {
        name_opt,
        echo_at,
        echo_len,
        end_pos,
        echo_sum,
        len,
        scratch,
    };
    match write(ctx, req, d, &tail) {
        Ok(()) => {}
        Err(_) => {
            counted(Counter::TxError);
            return Ok(xdp_action::XDP_DROP);
        }
    }

    counted(match reply_type {
        msg::OFFER => Counter::Offer,
        msg::ACK => Counter::Ack,
        _ => Counter::Nak,
    });
    let event = ReplyEvent {
        mac: req.chaddr,
        msg_type: reply_type,
        _pad: 0,
        ip: yiaddr.to_be_bytes(),
        xid: req.xid.to_be_bytes(),
        ifindex,
    };
    // The daemon drains the ring on a 10 ms timer, so its wakeups stay
    // at 100 a second whatever the storm's rate.
    if !crate::ring::report(&event) {
        count(Counter::EventLost);
    }
    debug!(
        ctx,
        "stormboot: sent type {} for {:mac}", reply_type, req.chaddr
    );
    Ok(xdp_action::XDP_TX)
}

/// The part of a reply after the rendered options: the host name, the
/// echoed option 82, END, and the reply's length.
struct Tail {
    /// Length of the host name's option (0: none), written at the
    /// block's end_off.
    name_opt: usize,
    /// Where the echoed option goes.
    echo_at: usize,
    echo_len: usize,
    end_pos: usize,
    echo_sum: u32,
    /// UDP payload length.
    len: usize,
    scratch: *mut Scratch,
}

#[inline(always)]
fn write(ctx: &XdpContext, req: &Request, d: &Decision<'_>, tail: &Tail) -> Result<(), Counter> {
    let Decision {
        reply_type,
        block,
        yiaddr,
        named,
        ref dest,
        ours,
        src_mac,
        ..
    } = *d;
    let Tail {
        name_opt,
        echo_at,
        echo_len,
        end_pos,
        echo_sum,
        len,
        scratch,
    } = *tail;
    let udp = req.l3 + IP_LEN;
    let ip_len = (IP_LEN + UDP_LEN + len) as u16;
    let udp_len = (UDP_LEN + len) as u16;
    let payload = udp + UDP_LEN;
    copy_block(ctx, payload, block.bytes.as_ptr() as usize, len)?;
    if echo_len != 0 {
        // SAFETY: scratch is a per-CPU map value.
        let buf = unsafe { (*scratch).bytes.as_ptr() } as usize;
        echo_copy(ctx, payload + echo_at, buf, echo_len, Way::In)?;
    }
    let type_off = block.type_off as usize;
    let end_off = block.end_off as usize;
    store_byte(ctx, payload + type_off, reply_type)?;
    store_byte(ctx, payload + end_pos, opt::END)?;
    store_be32(ctx, payload + OFF_YIADDR, yiaddr)?;
    let mut own = csum::add32(0, yiaddr);
    if let (Some(m), true) = (named, name_opt != 0) {
        // Masked so the verifier sees the bound checked in emit.
        let n = (name_opt & 0x3f).min(NAME_MAX + 2);
        copy_name(ctx, payload + end_off, m, n)?;
        own += csum::at_offset(m.name_sum, end_off);
    }
    if block.mac_off[0] != 0 {
        own += mac_slots(ctx, req, block, payload, scratch)?;
    }

    let ciaddr = rules::reply_ciaddr(reply_type, req.fields.ciaddr);
    store_be32(ctx, payload + OFF_XID, req.xid)?;
    store_be16(ctx, payload + OFF_FLAGS, dest.flags)?;
    store_be32(ctx, payload + OFF_CIADDR, ciaddr)?;
    store_be32(ctx, payload + OFF_GIADDR, req.giaddr)?;
    store_mac(ctx, payload + OFF_CHADDR, req.chaddr)?;

    let eth_dst = match dest.eth {
        EthDest::Broadcast => [0xff; 6],
        EthDest::Chaddr => req.chaddr,
        EthDest::RequestSource => req.eth_src,
    };
    store_mac(ctx, 0, eth_dst)?;
    store_mac(ctx, 6, src_mac)?;
    // The frame may have moved (grown at the head): the type fields too.
    if req.l3 == ETH_LEN + VLAN_LEN {
        store_be16(ctx, 12, ETH_P_8021Q)?;
        store_be16(ctx, 14, req.vlan_tci)?;
    }
    store_be16(ctx, req.l3 - 2, ETH_P_IP)?;

    let ip_sum = csum::add32(
        csum::add32(
            csum::add16(
                csum::add16(0x4500, ip_len),
                ((REPLY_TTL as u16) << 8) | IPPROTO_UDP as u16,
            ),
            ours,
        ),
        dest.ip,
    );
    let ip_csum = csum::finish_ip(ip_sum);
    // Written a word at a time: a 20-byte header built on the stack first
    // would not fit beside the rest of the program's locals.
    let l3 = req.l3;
    store_be32(ctx, l3, 0x4500_0000 | ip_len as u32)?;
    store_be32(ctx, l3 + 4, 0)?;
    store_be32(
        ctx,
        l3 + 8,
        (REPLY_TTL as u32) << 24 | (IPPROTO_UDP as u32) << 16 | ip_csum as u32,
    )?;
    store_be32(ctx, l3 + 12, ours)?;
    store_be32(ctx, l3 + 16, dest.ip)?;

    let [m0, m1, m2, m3, m4, m5] = req.chaddr;
    let mut sum = block.csum + own;
    sum = csum::add32(sum, req.xid);
    sum = csum::add16(sum, dest.flags);
    sum = csum::add32(sum, ciaddr);
    sum = csum::add32(sum, req.giaddr);
    sum = csum::add16(sum, u16::from_be_bytes([m0, m1]));
    sum = csum::add16(sum, u16::from_be_bytes([m2, m3]));
    sum = csum::add16(sum, u16::from_be_bytes([m4, m5]));
    sum = csum::add_byte(sum, reply_type, type_off);
    sum = csum::add_byte(sum, opt::END, end_pos);
    sum += echo_sum;
    sum += csum::pseudo_header(ours, dest.ip, udp_len);
    sum = csum::add16(sum, SERVER_PORT);
    sum = csum::add16(sum, dest.port);
    sum = csum::add16(sum, udp_len);
    let udp_csum = csum::finish_udp(sum);
    store_be32(ctx, udp, (SERVER_PORT as u32) << 16 | dest.port as u32)?;
    store_be32(ctx, udp + 4, (udp_len as u32) << 16 | udp_csum as u32)?;
    Ok(())
}

/// Copies the template's `n` bytes (`ROUND` to `BLOCK_LEN`) from `src` to
/// frame offset `off`: `ROUND` bytes a round, then the last `ROUND` again,
/// overlapping what the rounds copied. Stores of our own, not the store
/// helper: on this path a helper call costs more than the copy
/// (`bench-xdp`: 28 ns less for a reply).
#[inline(always)]
fn copy_block(ctx: &XdpContext, off: usize, src: usize, n: usize) -> Result<(), Counter> {
    if !(ROUND..=BLOCK_LEN).contains(&n) {
        return Err(Counter::TxError);
    }
    // The loop stops on a count derived from `n`, not on `n` itself: a
    // test of the length would narrow its range differently at each exit,
    // and the verifier would go through the rest of the program once for
    // each.
    let rounds = n / ROUND;
    let mut i = 0;
    while i < BLOCK_LEN / ROUND {
        if i >= rounds {
            break;
        }
        copy_round(ctx, off, src, i * ROUND)?;
        i += 1;
    }
    copy_round(ctx, off, src, n - ROUND)
}

/// Bytes `copy_block` copies behind one bounds check: each check costs
/// about as much as the eight loads and stores it covers.
const ROUND: usize = 64;

/// Copies the `ROUND` bytes at `src + k` (within the template) to frame
/// offset `off + k`.
#[inline(always)]
fn copy_round(ctx: &XdpContext, off: usize, src: usize, k: usize) -> Result<(), Counter> {
    if k + ROUND > BLOCK_LEN {
        return Err(Counter::TxError);
    }
    let p = at(ctx, off + k, ROUND).ok_or(Counter::TxError)?;
    let s = src + k;
    // SAFETY: ROUND bytes of the frame at p (checked) and of the template
    // at s (k + ROUND <= BLOCK_LEN).
    unsafe {
        macro_rules! words {
            ($($off:literal)*) => {$( st64_at::<$off>(p, ld64_at::<$off>(s)); )*};
        }
        const { assert!(ROUND == 64) };
        words!(0 8 16 24 32 40 48 56);
    }
    Ok(())
}

/// Which way `echo_copy` copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Out of the request, into `buf`.
    Out,
    /// Out of `buf`, into the reply.
    In,
}

/// Copies the echoed option's `n` bytes between frame offset `off` and
/// `buf` (SCRATCH's bytes, `MAX_ECHO_LEN` + 8 long), eight bytes a load,
/// the rest one by one; out of the request, it zeroes the eight bytes
/// after them for the sum (`echo_sum_of`). In the program rather than by
/// the kernel's helpers (a load, a checksum and a store, each a call): a
/// relayed reply costs 74 ns less in `bench-xdp` (one run per call).
#[inline(always)]
fn echo_copy(ctx: &XdpContext, off: usize, buf: usize, n: usize, way: Way) -> Result<(), Counter> {
    let (refused, cut) = match way {
        Way::Out => (Counter::PassUnsupported, Counter::Malformed),
        Way::In => (Counter::TxError, Counter::TxError),
    };
    let n = n & 0x1ff;
    if n > MAX_ECHO_LEN || off > crate::packet::MAX_OFFSET {
        return Err(refused);
    }
    let (data, data_end) = crate::packet::frame_bounds(ctx);
    // Counts derived from `n`, as in `copy_block`.
    let words = n / 8;
    let mut i = 0;
    while i < MAX_ECHO_LEN / 8 {
        if i >= words {
            break;
        }
        let p = data + off + i * 8;
        if p + 8 > data_end {
            return Err(cut);
        }
        let q = buf + i * 8;
        // SAFETY: eight bytes of the frame at p (checked) and of `buf` at
        // q (i * 8 + 8 <= n <= MAX_ECHO_LEN).
        unsafe {
            match way {
                Way::Out => st64(q, ld64(p)),
                Way::In => st64(p, ld64(q)),
            }
        }
        i += 1;
    }
    let mut k = words * 8;
    let mut j = 0;
    while j < 7 {
        if k >= n {
            break;
        }
        let q = (buf + k) as *mut u8;
        // SAFETY: k < n <= MAX_ECHO_LEN, inside `buf`; the frame's byte is
        // checked by `load` and `store_byte`.
        match way {
            Way::Out => unsafe { *q = crate::packet::load(ctx, off + k)? },
            Way::In => store_byte(ctx, off + k, unsafe { *q })?,
        }
        k += 1;
        j += 1;
    }
    if way == Way::Out {
        // SAFETY: n + 8 <= MAX_ECHO_LEN + 8.
        unsafe { st64(buf + n, 0) };
    }
    Ok(())
}

/// The sum of the `n` bytes at `buf` (zero after them, `echo_copy`) as
/// native 32-bit words, folded.
#[inline(always)]
fn echo_sum_of(buf: usize, n: usize) -> u16 {
    let words = (n & 0x1ff).div_ceil(8);
    let mut sum = 0u64;
    let mut i = 0;
    while i < (MAX_ECHO_LEN + 8) / 8 {
        if i >= words {
            break;
        }
        // SAFETY: (i + 1) * 8 <= MAX_ECHO_LEN + 8, inside `buf`.
        let w = unsafe { ld64(buf + i * 8) };
        sum += (w & 0xffff_ffff) + (w >> 32);
        i += 1;
    }
    csum::fold64(sum)
}

/// Writes the first `n` bytes of `m`'s host name option at frame offset
/// `off`: eight bytes a store, then four, two, one (`copy_block`).
#[inline(always)]
fn copy_name(ctx: &XdpContext, off: usize, m: &Machine, n: usize) -> Result<(), Counter> {
    let src = m.name_opt.as_ptr() as usize;
    let mut k = 0;
    let mut i = 0;
    while i < (NAME_MAX + 2) / 8 {
        i += 1;
        if k + 8 > n {
            break;
        }
        let p = at(ctx, off + k, 8).ok_or(Counter::TxError)?;
        // SAFETY: eight bytes of the frame at p (checked) and of the map
        // value at src + k (k + 8 <= n <= NAME_MAX + 2).
        unsafe { st64(p, ld64(src + k)) };
        k += 8;
    }
    if k + 4 <= n {
        let p = at(ctx, off + k, 4).ok_or(Counter::TxError)?;
        // SAFETY: as above, four bytes.
        unsafe { st32(p, ld32(src + k)) };
        k += 4;
    }
    if k + 2 <= n {
        let p = at(ctx, off + k, 2).ok_or(Counter::TxError)?;
        // SAFETY: as above, two bytes.
        unsafe { st16(p, ld16(src + k)) };
        k += 2;
    }
    if k < n {
        store_byte(ctx, off + k, m.name_opt[k & 0x3f])?;
    }
    Ok(())
}

/// Writes the client's MAC address as text at each of the template's
/// `mac_off` (a per-machine boot URL) and returns its share of the sum.
#[inline(always)]
fn mac_slots(
    ctx: &XdpContext,
    req: &Request,
    block: &Block,
    payload: usize,
    scratch: *mut Scratch,
) -> Result<u32, Counter> {
    let text = mac_text(&req.chaddr);
    let mut text_sum = 0u32;
    let mut i = 0;
    while i < MAC_TEXT_LEN {
        text_sum = csum::add_byte(text_sum, text[i], i);
        i += 1;
    }
    let folded = csum::fold(text_sum);
    // SAFETY: scratch is a per-CPU map value with room for the text.
    let buf = unsafe {
        let out = &mut (*scratch).mac_text;
        out[..MAC_TEXT_LEN].copy_from_slice(&text);
        out.as_mut_ptr() as *mut c_void
    };
    let mut sum = 0u32;
    for off in block.mac_off {
        let off = off as usize;
        if off == 0 {
            continue;
        }
        if off + MAC_TEXT_LEN > BLOCK_LEN {
            return Err(Counter::TxError);
        }
        // SAFETY: the helper checks offset and length against the frame.
        if unsafe { bpf_xdp_store_bytes(ctx.ctx, (payload + off) as u32, buf, MAC_TEXT_LEN as u32) }
            != 0
        {
            return Err(Counter::TxError);
        }
        sum += csum::at_offset(folded, off);
    }
    Ok(sum)
}
