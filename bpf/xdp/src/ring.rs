//! Writes reply events into this CPU's region of the reply ring
//! (`stormboot_common::events`): no helper call but the processor id,
//! which the kernel inlines, and one atomic add that publishes the event.

use aya_ebpf::helpers::generated::bpf_get_smp_processor_id;
use stormboot_common::events::{slot_index, ReplyEvent, RingHeader, RING_REGION, RING_SLOTS};

use crate::maps::REPLY_RING;

/// Queues `event` for the daemon; false when this CPU's region is full.
#[inline(always)]
pub fn report(event: &ReplyEvent) -> bool {
    // SAFETY: a plain helper call.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(header) = REPLY_RING.get_ptr_mut(cpu * RING_REGION) else {
        return false;
    };
    let header = header as *mut RingHeader;
    // SAFETY: an entry of this CPU's region, whose only writer in the
    // kernel is this program on this CPU; the daemon writes only `tail`.
    unsafe {
        let head = core::ptr::read_volatile(&(*header).head);
        let tail = core::ptr::read_volatile(&(*header).tail);
        if head.wrapping_sub(tail) >= RING_SLOTS as u64 {
            return false;
        }
        let Some(slot) = REPLY_RING.get_ptr_mut(slot_index(cpu, head)) else {
            return false;
        };
        core::ptr::write_volatile(slot as *mut ReplyEvent, *event);
        // Published by a fetching atomic add, which every JIT emits fully
        // ordered: the daemon that sees the new head sees the event. In
        // assembly because LLVM emits the fetching kind only for BPF ISA
        // v3, which as a whole makes this program too costly to verify.
        let mut old: u64 = 1;
        core::arch::asm!(
            "{old} = atomic_fetch_add((u64 *)({head} + 0), {old})",
            head = in(reg) &raw mut (*header).head,
            old = inout(reg) old,
        );
        old == head
    }
}
