//! Bytes as received on the packet socket, through the userspace
//! dataplane: frame decode, the DHCP server (authoritative and proxy),
//! the reply frame, as received and with its checksums made right. See
//! `stormboot_testbed::lab::fuzz::request_frame_and_repaired`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stormboot_testbed::lab::fuzz::request_frame_and_repaired(data);
});
