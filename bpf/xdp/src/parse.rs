//! Parses a frame down to the DHCP fields the fast path needs: Ethernet
//! (one 802.1Q tag), IPv4 without options, UDP to port 67, the BOOTP
//! header, the cookie, and a bounded walk of the options.

use aya_ebpf::programs::XdpContext;
use stormboot_common::csum;
use stormboot_common::{
    counters::Counter,
    layout::{
        opt, BOOTP_LEN, COOKIE, ETH_LEN, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IP_LEN, MAX_DGRAM_LEN,
        OFF_CHADDR, OFF_CIADDR, OFF_FLAGS, OFF_GIADDR, OFF_HLEN, OFF_HTYPE, OFF_OP, OFF_XID,
        OPTIONS_OFF, PXE_BOOT_PORT, SERVER_PORT, UDP_LEN, VLAN_LEN,
    },
    rules,
};

use stormboot_common::maps::{FoundOptions, Scratch};

use crate::maps::proxy_mode;
use crate::packet::{load, load_be16, load_be32, MAX_OFFSET};

/// Options walked before giving up; real clients send 8 to 20.
const MAX_OPTIONS: u32 = 64;

/// A DHCP request, as far as the fast path reads it.
#[derive(Clone, Copy)]
pub struct Request {
    /// Offset of the IPv4 header: 14, or 18 behind an 802.1Q tag.
    pub l3: usize,
    /// The 802.1Q tag's TCI, when `l3` says there is one.
    pub vlan_tci: u16,
    pub eth_src: [u8; 6],
    pub xid: u32,
    pub flags: u16,
    pub giaddr: u32,
    pub chaddr: [u8; 6],
    pub fields: rules::Request,
    /// Offset and total length (code and length bytes included) of option
    /// 82, or zero length when absent.
    /// (u16: the frame is never longer, and the program's stack is full.)
    pub relay_off: u16,
    pub relay_len: u16,
    /// Which rendered reply the request asks for (`maps::variant`).
    pub variant: u16,
    /// Sent to the PXE boot-server port (4011; proxy mode only).
    pub to_boot_port: bool,
    /// IPv4 source address and UDP source port, where a boot-server
    /// request is answered.
    pub ip_src: u32,
    pub sport: u16,
    /// Offset and total length of option 97, or zero length when absent.
    pub uuid_off: u16,
    pub uuid_len: u16,
}

/// Reads one field of the `FoundOptions` in the SCRATCH map.
macro_rules! read {
    ($found:expr, $field:ident) => {
        // SAFETY: a per-CPU map value; XDP does not nest on one CPU.
        unsafe { core::ptr::addr_of!((*$found).$field).read_volatile() }
    };
}
pub(crate) use read;

/// Where a BOOTREQUEST to port 67 is in the frame: what the parse of the
/// rest needs, and whom to hold to the slow-path rate if it is passed up.
#[derive(Clone, Copy)]
pub struct BootRequest {
    pub l3: usize,
    pub vlan_tci: u16,
    pub eth_src: [u8; 6],
    to_boot_port: bool,
    /// Where the UDP datagram ends (u16: the program's stack is full).
    opts_end: u16,
}

impl BootRequest {
    /// The UDP datagram's length.
    #[inline(always)]
    pub fn udp_len(&self) -> usize {
        self.opts_end as usize - self.l3 - IP_LEN
    }
}

/// Finds a BOOTREQUEST to port 67. An error here means the frame is no
/// DHCP request at all (or one the program cannot even locate) and goes
/// up uncounted by the slow-path bucket.
#[inline(always)]
pub fn bootrequest(ctx: &XdpContext) -> Result<BootRequest, Counter> {
    let not_dhcp = |_| Counter::PassNotDhcp;
    let mut l3 = ETH_LEN;
    let mut vlan_tci = 0;
    let mut ethertype = load_be16(ctx, 12).map_err(not_dhcp)?;
    if ethertype == ETH_P_8021Q {
        vlan_tci = load_be16(ctx, 14).map_err(not_dhcp)?;
        ethertype = load_be16(ctx, 16).map_err(not_dhcp)?;
        l3 += VLAN_LEN;
    }
    if ethertype != ETH_P_IP {
        return Err(Counter::PassNotDhcp);
    }
    let ver_ihl: u8 = load(ctx, l3).map_err(not_dhcp)?;
    let proto: u8 = load(ctx, l3 + 9).map_err(not_dhcp)?;
    if proto != IPPROTO_UDP || ver_ihl >> 4 != 4 {
        return Err(Counter::PassNotDhcp);
    }
    if ver_ihl != 0x45 {
        // IP options: rare for DHCP, left to the full stack.
        return Err(Counter::PassUnsupported);
    }
    let udp = l3 + IP_LEN;
    let dport = load_be16(ctx, udp + 2).map_err(not_dhcp)?;
    // Port 4011 is DHCP only to a proxy: PXE firmware's boot-server request.
    let to_boot_port = dport == PXE_BOOT_PORT && proxy_mode();
    if dport != SERVER_PORT && !to_boot_port {
        return Err(Counter::PassNotDhcp);
    }
    if load_be16(ctx, l3 + 6)? & 0x3fff != 0 {
        // A fragment (offset or more-fragments set): reassembly is the stack's job.
        return Err(Counter::PassUnsupported);
    }
    // The options end where the UDP datagram ends, not at the frame's end:
    // Ethernet padding is not an option.
    let udp_len = load_be16(ctx, udp + 4)? as usize;
    let bootp = udp + UDP_LEN;
    let opts_end = udp + udp_len;
    if udp_len < UDP_LEN + OPTIONS_OFF {
        return Err(Counter::Malformed);
    }
    // A header the stack would refuse (bad checksum, a length that does
    // not hold the datagram or does not fit the frame) is not answered
    // here either: the userspace server refuses it the same way.
    if !ip_header_holds(ctx, l3, udp_len) {
        return Err(Counter::Malformed);
    }
    if load::<u8>(ctx, bootp + OFF_OP)? != 1 {
        // A BOOTREPLY to port 67: another server or a relay's business.
        return Err(Counter::PassOtherDhcp);
    }
    Ok(BootRequest {
        l3,
        vlan_tci,
        eth_src: load(ctx, 6)?,
        to_boot_port,
        opts_end: opts_end as u16,
    })
}

/// Whether the IPv4 header at `l3` has a right checksum and a total length
/// that holds the `udp_len`-byte datagram and fits the frame.
#[inline(always)]
pub fn ip_header_holds(ctx: &XdpContext, l3: usize, udp_len: usize) -> bool {
    let Some(p) = crate::packet::at(ctx, l3, IP_LEN) else {
        return false;
    };
    // SAFETY: IP_LEN bytes at p are in the frame. Summed as native 32-bit
    // words, the sum is the big-endian one's, byte-swapped; all ones
    // either way when the checksum is right.
    const { assert!(IP_LEN == 20) };
    let (ip_sum, ip_len) = unsafe {
        let s = sum_block::<16>(p) + crate::packet::ld32_at::<16>(p) as u64;
        (csum::fold64(s), crate::packet::ld16_at::<2>(p).swap_bytes())
    };
    let ip_len = ip_len as usize;
    ip_sum == 0xffff
        && udp_len <= ip_len - IP_LEN.min(ip_len)
        && ctx.data() + l3 + ip_len <= ctx.data_end()
}

/// Parses the rest of a BOOTREQUEST, the header fields and the options
/// (walked into `scratch`, this CPU's SCRATCH value), into the REQUEST
/// map (`current`), where the reply reads it: off the stack, which the
/// reply needs.
///
/// Inlined, as are `udp_checksum` and `reply::answer`, and not a function
/// of the program's own: a call to one costs about 7 ns here, its return
/// going through the kernel's return thunk (`bench-xdp`: 25 ns less for a
/// reply). LLVM lays the three phases' locals over each other, so they fit
/// the verifier's 512 bytes of stack in one frame.
#[inline(always)]
pub fn request(ctx: &XdpContext, b: &BootRequest, scratch: *mut Scratch) -> Result<(), Counter> {
    let BootRequest {
        l3,
        vlan_tci,
        eth_src,
        to_boot_port,
        opts_end,
    } = *b;
    let bootp = l3 + IP_LEN + UDP_LEN;
    let opts_end = opts_end as usize;
    if load::<u8>(ctx, bootp + OFF_HTYPE)? != 1 || load::<u8>(ctx, bootp + OFF_HLEN)? != 6 {
        return Err(Counter::PassUnsupported);
    }
    if load_be32(ctx, bootp + BOOTP_LEN)? != u32::from_be_bytes(COOKIE) {
        // Plain BOOTP: the userspace server decides.
        return Err(Counter::PassUnsupported);
    }

    let found = walk_options(ctx, bootp + OPTIONS_OFF, opts_end, scratch)?;
    let mut fields = rules::Request {
        msg_type: read!(found, msg_type) as u8,
        ciaddr: 0,
        requested_ip: read!(found, requested_ip),
        server_id: read!(found, server_id),
    };
    let (relay_off, relay_len) = (
        read!(found, relay_off) as usize,
        read!(found, relay_len) as usize,
    );
    let (uuid_off, uuid_len) = (
        read!(found, uuid_off) as usize,
        read!(found, uuid_len) as usize,
    );
    if fields.msg_type == 0 {
        return Err(Counter::Malformed);
    }
    fields.ciaddr = load_be32(ctx, bootp + OFF_CIADDR)?;
    let req = Request {
        l3,
        vlan_tci,
        eth_src,
        xid: load_be32(ctx, bootp + OFF_XID)?,
        flags: load_be16(ctx, bootp + OFF_FLAGS)?,
        giaddr: load_be32(ctx, bootp + OFF_GIADDR)?,
        chaddr: load(ctx, bootp + OFF_CHADDR)?,
        fields,
        relay_off: relay_off as u16,
        relay_len: relay_len as u16,
        variant: crate::boot::variant(ctx, found)?,
        to_boot_port,
        ip_src: load_be32(ctx, l3 + 12)?,
        sport: load_be16(ctx, l3 + IP_LEN)?,
        uuid_off: uuid_off as u16,
        uuid_len: uuid_len as u16,
    };
    // Stored before the checks below, so it is not kept on the stack across
    // them; the caller reads it only if they pass.
    let slot = crate::maps::REQUEST
        .get_ptr_mut(0)
        .ok_or(Counter::TxError)?;
    // SAFETY: a per-CPU map value; XDP does not nest on one CPU.
    unsafe { slot.write(req) };
    // The whole datagram must be in the frame, or the request was cut
    // short. Checked last, after every load: placed earlier, LLVM would
    // use it to drop the constant-offset checks the verifier relies on.
    if ctx.data() + opts_end > ctx.data_end() {
        return Err(Counter::Malformed);
    }
    if relay_len != 0 {
        link_selection(ctx, relay_off, relay_len)?;
    }
    Ok(())
}

/// Verifies the UDP checksum of the `udp_len`-byte datagram after the
/// IPv4 header at `l3` (zero means the sender did not compute one). The
/// caller has checked that the datagram is in the frame (`ip_header_holds`).
///
/// Summed on the frame itself, in whole 32-bit words (`udp_sums`). Called
/// after `request`, which checks that the whole datagram is in the frame.
#[inline(always)]
pub fn udp_checksum(ctx: &XdpContext, l3: usize, udp_len: usize) -> Result<(), Counter> {
    let field = load_be16(ctx, l3 + IP_LEN + 6)?;
    if field == 0 {
        return Ok(());
    }
    let (pseudo, data) = udp_sums(ctx, l3, udp_len)?;
    if csum::fold(csum::add16(pseudo, data)) == 0xffff {
        return Ok(());
    }
    // A frame sent by this host's own stack through a veth may still
    // carry the partial checksum of an offload (the pseudo-header's sum,
    // to be completed by hardware that never sees it). The kernel flags
    // such frames to the packet socket, and the slow path takes them as
    // sent without a checksum; the program cannot see the flag, so it
    // takes that exact value the same way.
    if csum::fold(pseudo) == field {
        return Ok(());
    }
    Err(Counter::Malformed)
}

/// The sums of the RFC 768 pseudo-header and of the `udp_len`-byte
/// datagram after the IPv4 header at `l3`, as it is in the frame (its
/// checksum field included): the first unfolded, the second folded.
///
/// The program sums the datagram's whole words itself (`sum_words`): the
/// kernel's checksum helper sums faster, but a helper call costs more than
/// a request's few hundred bytes do (`bench-xdp`: 20 ns less per reply).
/// The last 1-3 bytes come from one load of the datagram's last word.
#[inline(always)]
pub fn udp_sums(ctx: &XdpContext, l3: usize, udp_len: usize) -> Result<(u32, u16), Counter> {
    let udp = l3 + IP_LEN;
    let len = udp_len & 0xfff;
    if len == 0 || len > MAX_DGRAM_LEN {
        return Err(Counter::PassUnsupported);
    }
    let words = len & !3;
    let mut sum = sum_words(ctx, udp, words)?;
    let rest = len & 3;
    if rest != 0 {
        // The datagram's last word, of which the last `rest` bytes are
        // the ones left: as a native load reads a word, in memory order and
        // zero padded, they are its high bytes shifted down.
        // Masked (a no-op) so that LLVM cannot cancel the -4 against the
        // bounds check's +4 and read behind a check the verifier refuses.
        let last = (udp + len - 4) & 0x1fff;
        if last > CSUM_MAX_OFFSET {
            return Err(Counter::Malformed);
        }
        let p = ctx.data() + last;
        if p + 4 > ctx.data_end() {
            return Err(Counter::Malformed);
        }
        // SAFETY: four bytes at p are in the frame (checked above).
        let w = unsafe { crate::packet::ld32(p) };
        sum += (w >> (8 * (4 - rest))) as u64;
    }
    // Summed as native (little-endian) words: the big-endian sum
    // byte-swapped. The pseudo-header (RFC 768) is added big-endian.
    let data = csum::fold64(sum).swap_bytes();
    let src = load_be32(ctx, l3 + 12)?;
    let dst = load_be32(ctx, l3 + 16)?;
    Ok((csum::pseudo_header(src, dst, len as u16), data))
}

/// The sum, as native 32-bit words, of the frame's bytes from `at` to
/// `end` (a multiple of 4 bytes apart): 64 bytes behind each bounds check,
/// then 32 if left, then word by word.
#[inline(always)]
fn sum_words(ctx: &XdpContext, mut at: usize, words: usize) -> Result<u64, Counter> {
    const STEP: usize = 64;
    let (data, data_end) = crate::packet::frame_bounds(ctx);
    // The loops stop on counts derived from `words`, not on `words`
    // itself: a test of the length would narrow its range differently at
    // each exit, and the verifier would go through the rest of the program
    // once for each (it verified twice the instructions).
    let rounds = words / STEP;
    let mut sum: u64 = 0;
    let mut k = 0;
    while k < MAX_DGRAM_LEN / STEP {
        if k >= rounds {
            break;
        }
        k += 1;
        let p = frame_at(data, data_end, at, STEP)?;
        // SAFETY: STEP bytes at p are in the frame (checked).
        sum += unsafe { sum_block::<STEP>(p) };
        at += STEP;
    }
    if words % STEP >= STEP / 2 {
        let p = frame_at(data, data_end, at, STEP / 2)?;
        // SAFETY: STEP / 2 bytes at p are in the frame (checked).
        sum += unsafe { sum_block::<{ STEP / 2 }>(p) };
        at += STEP / 2;
    }
    let rest = (words % (STEP / 2)) / 4;
    let mut j = 0;
    while j < STEP / 8 {
        if j >= rest {
            break;
        }
        j += 1;
        let p = frame_at(data, data_end, at, 4)?;
        // SAFETY: four bytes at p are in the frame (checked).
        sum += unsafe { crate::packet::ld32(p) } as u64;
        at += 4;
    }
    Ok(sum)
}

/// The sum of the `N` bytes at `p` (at most 64) as native 32-bit words,
/// read as 64-bit words (`csum::halves`): a word costs a load, two adds
/// and a shift.
///
/// # Safety
/// `N` bytes at `p` must be readable.
#[inline(always)]
unsafe fn sum_block<const N: usize>(p: usize) -> u64 {
    const { assert!(N <= 64 && N.is_multiple_of(8)) };
    let (mut all, mut high) = (0u64, 0u64);
    macro_rules! words {
        ($($off:literal)*) => {$(
            if $off < N {
                let w = crate::packet::ld64_at::<$off>(p);
                all = all.wrapping_add(w);
                high += w >> 32;
            }
        )*};
    }
    words!(0 8 16 24 32 40 48 56);
    csum::halves(all, high)
}

/// The address of the `len` bytes at frame offset `at`, checked against the
/// frame's end and kept under `CSUM_MAX_OFFSET` for the verifier. Not
/// `packet::at`: that one reads the context again (see `sum_words`) and
/// stops at `MAX_OFFSET`, short of the longest datagram's last words.
#[inline(always)]
fn frame_at(data: usize, data_end: usize, at: usize, len: usize) -> Result<usize, Counter> {
    if at > CSUM_MAX_OFFSET {
        return Err(Counter::Malformed);
    }
    let p = data + at;
    if p + len > data_end {
        return Err(Counter::Malformed);
    }
    Ok(p)
}

/// Sub-options of option 82 looked through; a longer list is passed up.
const MAX_SUBOPTIONS: u32 = 16;

/// Passes up a request whose option 82 (at `off`, `len` bytes with code
/// and length) carries a link selection sub-option, or sub-options the
/// walk cannot follow: the userspace server chooses the subnet by it.
#[inline(never)]
fn link_selection(ctx: &XdpContext, off: usize, len: usize) -> Result<(), Counter> {
    let end = off + len;
    let mut at = off + 2;
    let mut n = 0;
    while n < MAX_SUBOPTIONS {
        n += 1;
        if at >= end {
            return Ok(());
        }
        if at > MAX_OFFSET {
            return Err(Counter::Malformed);
        }
        let [code, sublen] = load::<[u8; 2]>(ctx, at)?;
        if code == opt::SUB_LINK_SELECTION {
            return Err(Counter::PassUnsupported);
        }
        at += 2 + sublen as usize;
    }
    if at >= end {
        return Ok(());
    }
    Err(Counter::PassUnsupported)
}

/// Where the last word summed may start: after the longest headers and
/// datagram, with room to spare (a bound for the verifier).
const CSUM_MAX_OFFSET: usize = 4096;

/// Walks the options from `off` to `end` and returns where it left the ones
/// the fast path reads: in the SCRATCH map, written with volatile accesses
/// so the verifier sees one state after the loop (see `FoundOptions`), and
/// read in place (`read!`) so they never take stack space.
#[inline(always)]
fn walk_options(
    ctx: &XdpContext,
    start: usize,
    end: usize,
    scratch: *mut Scratch,
) -> Result<*const FoundOptions, Counter> {
    // SAFETY (every access below): the per-CPU map value; XDP does not nest
    // on one CPU.
    let found = unsafe { core::ptr::addr_of_mut!((*scratch).options) };
    let cursor = unsafe { core::ptr::addr_of_mut!((*found).cursor) };
    unsafe {
        found.write_volatile(FoundOptions::default());
        cursor.write_volatile(start as u32);
    }
    let mut i = 0;
    while i < MAX_OPTIONS {
        i += 1;
        let off = unsafe { cursor.read_volatile() } as usize;
        if off > MAX_OFFSET {
            return Err(Counter::Malformed);
        }
        // Every option but PAD and END needs two bytes, so a last lone
        // byte ends the walk as well as END does.
        if off + 2 > end {
            return Ok(found);
        }
        let [code, len] = crate::packet::load_pair(ctx, off)?;
        if code == opt::END {
            return Ok(found);
        }
        if code == opt::PAD {
            unsafe { cursor.write_volatile(off as u32 + 1) };
            continue;
        }
        let len = len as usize;
        let val = off + 2;
        if val + len > end {
            return Err(Counter::Malformed);
        }
        // Each option read here must appear once, at the length its
        // value has: a repeat is concatenated by the userspace decoder
        // (RFC 3396) where the walk would keep the last, and a value of
        // another length is read differently or refused there.
        if code == opt::SUBNET_SELECTION {
            return Err(Counter::PassUnsupported);
        }
        let bit = match code {
            opt::MESSAGE_TYPE => 1,
            opt::REQUESTED_IP => 2,
            opt::SERVER_ID => 4,
            opt::VENDOR_CLASS => 8,
            opt::USER_CLASS => 16,
            opt::CLIENT_ARCH => 32,
            opt::RELAY_AGENT_INFO => 64,
            _ => 0,
        };
        if bit != 0 {
            let seen_ptr = unsafe { core::ptr::addr_of_mut!((*found).seen) };
            let seen = unsafe { seen_ptr.read_volatile() };
            if seen & bit != 0 {
                return Err(Counter::PassUnsupported);
            }
            unsafe { seen_ptr.write_volatile(seen | bit) };
            let fits = match code {
                opt::MESSAGE_TYPE => len == 1,
                opt::REQUESTED_IP | opt::SERVER_ID => len == 4,
                opt::CLIENT_ARCH => len >= 2,
                _ => true,
            };
            if !fits {
                return Err(Counter::Malformed);
            }
        }
        unsafe {
            match (code, len) {
                (opt::MESSAGE_TYPE, 1) => {
                    let v: u8 = load(ctx, val)?;
                    core::ptr::addr_of_mut!((*found).msg_type).write_volatile(v as u32);
                }
                (opt::REQUESTED_IP, 4) => {
                    let v = load_be32(ctx, val)?;
                    core::ptr::addr_of_mut!((*found).requested_ip).write_volatile(v);
                }
                (opt::SERVER_ID, 4) => {
                    let v = load_be32(ctx, val)?;
                    core::ptr::addr_of_mut!((*found).server_id).write_volatile(v);
                }
                (opt::VENDOR_CLASS, _) => {
                    core::ptr::addr_of_mut!((*found).vendor_off).write_volatile(val as u32);
                    core::ptr::addr_of_mut!((*found).vendor_len).write_volatile(len as u32);
                }
                (opt::USER_CLASS, _) => {
                    core::ptr::addr_of_mut!((*found).user_class_off).write_volatile(val as u32);
                    core::ptr::addr_of_mut!((*found).user_class_len).write_volatile(len as u32);
                }
                (opt::CLIENT_ARCH, _) => {
                    core::ptr::addr_of_mut!((*found).arch_off).write_volatile(val as u32);
                    core::ptr::addr_of_mut!((*found).arch_len).write_volatile(len as u32);
                }
                (opt::RELAY_AGENT_INFO, _) => {
                    core::ptr::addr_of_mut!((*found).relay_off).write_volatile(off as u32);
                    core::ptr::addr_of_mut!((*found).relay_len).write_volatile(len as u32 + 2);
                }
                (opt::CLIENT_UUID, _) => {
                    core::ptr::addr_of_mut!((*found).uuid_off).write_volatile(off as u32);
                    core::ptr::addr_of_mut!((*found).uuid_len).write_volatile(len as u32 + 2);
                }
                _ => {}
            }
            cursor.write_volatile((val + len) as u32);
        }
    }
    // Did not see the end of the options: one that matters may come later,
    // so do not answer.
    Err(Counter::PassUnsupported)
}

/// The request `request` parsed last on this CPU. Looked up again, not
/// passed along from `request`: read back through the lookup, its fields
/// are unknown to the verifier, which otherwise follows each value the
/// parse left in a register into the reply, a state for each, past its
/// limit.
#[inline(always)]
pub fn current() -> Option<&'static Request> {
    // SAFETY: a per-CPU map value; XDP does not nest on one CPU.
    crate::maps::REQUEST.get_ptr(0).map(|p| unsafe { &*p })
}
