//! Bytes as received on the packet socket, through the userspace
//! dataplane: frame decode, the DHCP server (authoritative and proxy),
//! the reply frame. See `stormboot::fuzz::request_frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stormboot::fuzz::request_frame(data);
});
