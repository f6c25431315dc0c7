//! The program's maps. Their key and value types are the contract in
//! stormboot-common; sizes here are defaults that userspace overrides at
//! load time (`EbpfLoader::set_max_entries`).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use stormboot_common::{
    bucket::Limit,
    counters::{Counter, Counts},
    events::RingEntry,
    generate,
    maps::{Block, Iface, Marker, Scratch, Subnet, TemplateKey},
    table::Slot,
    tally::{self, Run},
};

/// BPF_F_NO_PREALLOC (include/uapi/linux/bpf.h).
const NO_PREALLOC: u32 = 1;

/// BPF_F_MMAPABLE (include/uapi/linux/bpf.h).
const MMAPABLE: u32 = 1 << 10;

/// The machines, in an open-addressed table the program probes itself
/// (`stormboot_common::table`); userspace writes it through a shared
/// mapping.
#[map(name = "RESERVATIONS")]
pub static RESERVATIONS: Array<Slot> = Array::with_max_entries(1024, MMAPABLE);

/// `stormboot_common::table::GLOBAL_TABLE_BITS`, written by userspace at
/// load: RESERVATIONS has `1 << TABLE_BITS` slots.
#[no_mangle]
static TABLE_BITS: u32 = 10;

/// RESERVATIONS' size as a power of two.
#[inline(always)]
pub fn table_bits() -> u32 {
    // SAFETY: as `templates_slotted`.
    unsafe { core::ptr::read_volatile(&TABLE_BITS) }
}

/// The replies machines share, by template set and boot variant, when
/// they are not in TEMPLATE_SLOTS (`templates_slotted`).
#[map(name = "TEMPLATES")]
pub static TEMPLATES: HashMap<TemplateKey, Block> = HashMap::with_max_entries(1024, NO_PREALLOC);

/// The same, at `TemplateKey::slot`, when `templates_slotted`.
#[map(name = "TEMPLATE_SLOTS")]
pub static TEMPLATE_SLOTS: Array<Block> = Array::with_max_entries(1024, 0);

/// `stormboot_common::maps::GLOBAL_TEMPLATES_SLOTTED`, written by userspace
/// at load.
#[no_mangle]
static TEMPLATES_SLOTTED: u32 = 0;

/// Whether the templates are in TEMPLATE_SLOTS rather than TEMPLATES.
#[inline(always)]
pub fn templates_slotted() -> bool {
    // SAFETY: a read of the program's own global; volatile, so that the
    // compiler does not take the value it was built with.
    unsafe { core::ptr::read_volatile(&TEMPLATES_SLOTTED) != 0 }
}

#[map(name = "SUBNETS")]
pub static SUBNETS: Array<Subnet> = Array::with_max_entries(256, 0);

/// Keyed by ingress ifindex.
#[map(name = "IFACES")]
pub static IFACES: HashMap<u32, Iface> = HashMap::with_max_entries(64, 0);

/// One entry: bumped by userspace after every write to IFACES, so that a
/// CPU's copy of an entry (`Scratch::iface`) is read again.
#[map(name = "IFACES_VERSION")]
pub static IFACES_VERSION: Array<u32> = Array::with_max_entries(1, 0);

/// One entry: this CPU's counters, all of them (`counters::Counts`).
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<Counts> = PerCpuArray::with_max_entries(1, 0);

/// The reply ring (`events`): one region per possible CPU, sized by
/// userspace at load time; the daemon reads it through a shared mapping.
#[map(name = "REPLY_RING")]
pub static REPLY_RING: Array<RingEntry> = Array::with_max_entries(1, MMAPABLE);

/// One entry: the user-class marker of iPXE requests.
#[map(name = "BOOT_MARKER")]
pub static BOOT_MARKER: Array<Marker> = Array::with_max_entries(1, 0);

#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// One entry per CPU: the parsed request. Program-private (userspace never
/// reads it): kept here rather than on the stack, which the reply path
/// needs whole.
#[map]
pub static REQUEST: PerCpuArray<crate::parse::Request> = PerCpuArray::with_max_entries(1, 0);

/// Per-MAC slow-path buckets (`bucket`): the time each is full again.
/// LRU, so a flood of made-up MACs evicts the oldest instead of failing.
#[map(name = "SLOWPATH_BUCKETS")]
pub static SLOWPATH_BUCKETS: LruHashMap<[u8; 6], u64> = LruHashMap::with_max_entries(65536, 0);

/// One entry: the slow-path limit; all zero (no limit) until userspace
/// writes it.
#[map(name = "SLOWPATH_LIMIT")]
pub static SLOWPATH_LIMIT: Array<Limit> = Array::with_max_entries(1, 0);

/// One entry: `maps::mode`, written by userspace before attaching.
#[map(name = "MODE")]
pub static MODE: Array<u32> = Array::with_max_entries(1, 0);

/// One entry: the run `stormboot_tally` counts (the lab's generator only).
#[map(name = "TALLY_RUN")]
pub static TALLY_RUN: Array<Run> = Array::with_max_entries(1, 0);

/// `tally::slot`'s counters, per CPU.
#[map(name = "TALLY_COUNTS")]
pub static TALLY_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(tally::slot::COUNT, 0);

/// One entry: the run `stormboot_generate` sends (the lab's generator only).
#[map(name = "GEN_RUN")]
pub static GEN_RUN: Array<generate::Run> = Array::with_max_entries(1, 0);

/// The run's machine-0 DISCOVER and REQUEST frames (`generate::DISCOVER`,
/// `generate::REQUEST`).
#[map(name = "GEN_FRAMES")]
pub static GEN_FRAMES: Array<generate::Frame> = Array::with_max_entries(2, 0);

/// Where the run is, per CPU.
#[map(name = "GEN_STATE")]
pub static GEN_STATE: PerCpuArray<generate::State> = PerCpuArray::with_max_entries(1, 0);

/// Whether the program answers as a proxyDHCP server.
#[inline(always)]
pub fn proxy_mode() -> bool {
    matches!(MODE.get(0), Some(&m) if m == stormboot_common::maps::mode::PROXY)
}

#[inline(always)]
pub fn count(c: Counter) {
    count_each([c]);
}

/// Counts one of each of `cs`, with one lookup of this CPU's counters: a
/// per-CPU lookup costs about 5 ns here, inlined or not (`bench-xdp`, one
/// run per call: a reply's three counts in one lookup instead of three,
/// 4-9 ns less; without the three counts at all, 15-23 ns less).
#[inline(always)]
pub fn count_each<const N: usize>(cs: [Counter; N]) {
    if let Some(p) = COUNTERS.get_ptr_mut(0) {
        for c in cs {
            // SAFETY: this CPU's value, and XDP does not nest on one CPU.
            if let Some(n) = unsafe { (*p).get_mut(c as usize) } {
                *n += 1;
            }
        }
    }
}
