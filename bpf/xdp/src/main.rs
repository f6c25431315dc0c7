//! The XDP program: answers DHCP for reserved MACs from replies rendered in
//! userspace, and passes everything else up unchanged.
//!
//! It makes no policy of its own: the rules are `stormboot_common::rules`,
//! the reply bytes come from the RESERVATIONS and SUBNETS maps, and this
//! crate only parses, looks up, copies and patches.
#![no_std]
#![no_main]
// The reply ring's atomic add (`ring`) is written in assembly.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod boot;
mod generate;
mod maps;
mod packet;
mod parse;
mod proxy;
mod reply;
mod ring;
mod slowpath;
mod tally;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use stormboot_common::counters::Counter;

use crate::maps::{count_each, SCRATCH};

/// Answers DHCP for reservations; XDP_PASS for anything else, except a
/// DHCP request from a MAC over its slow-path rate: XDP_DROP.
#[xdp]
pub fn stormboot(ctx: XdpContext) -> u32 {
    // Every frame is counted as received where its other counts are, in
    // one lookup (`count_each`).
    let boot = match parse::bootrequest(&ctx) {
        Ok(b) => b,
        Err(why) => {
            count_each([Counter::Received, why]);
            return xdp_action::XDP_PASS;
        }
    };
    // This CPU's scratch space, looked up once for the whole frame: a
    // lookup costs a few nanoseconds, and the parse and the reply use it
    // four times.
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        count_each([Counter::Received, Counter::TxError]);
        return xdp_action::XDP_PASS;
    };
    // From here the frame is a DHCP request: passed up, it costs its
    // client a token. Keyed by chaddr once known (a relay forwards many
    // clients from one Ethernet address), else by the Ethernet source.
    let parsed = parse::request(&ctx, &boot, scratch)
        .and_then(|()| parse::udp_checksum(&ctx, boot.l3, boot.udp_len()))
        .and_then(|()| parse::current().ok_or(Counter::TxError));
    let (why, mac, dhcp) = match parsed {
        // `answer` counts what it answers (`reply::counted`).
        Ok(req) => match reply::answer(&ctx, req, scratch) {
            Ok(action) => return action,
            Err(why) => (why, req.chaddr, true),
        },
        Err(why) => (why, boot.eth_src, false),
    };
    let action = slowpath::admit(&mac);
    let why = if action == xdp_action::XDP_DROP {
        Counter::DropSlowpathRate
    } else {
        why
    };
    if dhcp {
        count_each([Counter::Received, Counter::Dhcp, why]);
    } else {
        count_each([Counter::Received, why]);
    }
    action
}

/// Returns XDP_PASS and nothing else. Attached to the far end of a veth,
/// because a veth only delivers XDP_TX frames to a peer that runs XDP.
#[xdp]
pub fn stormboot_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Counts the replies to the lab generator's run and drops them; passes
/// everything else (`tally`). Attached by `stormboot-lab xdp-pass --tally`
/// to the generator's end of a link, never by the daemon.
#[xdp]
pub fn stormboot_tally(ctx: XdpContext) -> u32 {
    tally::tally(&ctx)
}

/// The lab's wire generator: in live-frames mode, sends the next request
/// of the run with every repetition (`generate`). Never attached.
#[xdp]
pub fn stormboot_generate(ctx: XdpContext) -> u32 {
    generate::generate(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach this; it only has to exist.
    loop {}
}
