//! The XDP program: answers DHCP for reserved MACs from replies rendered in
//! userspace, and passes everything else up unchanged.
//!
//! It makes no policy of its own: the rules are `stormboot_common::rules`,
//! the reply bytes come from the RESERVATIONS and SUBNETS maps, and this
//! crate only parses, looks up, copies and patches.
#![no_std]
#![no_main]

mod boot;
mod maps;
mod packet;
mod parse;
mod reply;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use stormboot_common::counters::Counter;

use crate::maps::count;

/// Answers DHCP for reservations; XDP_PASS for anything else.
#[xdp]
pub fn stormboot(ctx: XdpContext) -> u32 {
    count(Counter::Received);
    match handle(&ctx) {
        Ok(action) => action,
        Err(why) => {
            count(why);
            xdp_action::XDP_PASS
        }
    }
}

/// Returns XDP_PASS and nothing else. Attached to the far end of a veth,
/// because a veth only delivers XDP_TX frames to a peer that runs XDP.
#[xdp]
pub fn stormboot_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// `Err(counter)` means "pass up, and count why".
fn handle(ctx: &XdpContext) -> Result<u32, Counter> {
    let req = parse::request(ctx)?;
    reply::answer(ctx, &req)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach this; it only has to exist.
    loop {}
}
