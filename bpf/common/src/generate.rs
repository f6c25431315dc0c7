//! The lab's wire generator (`stormboot_generate`, run by
//! `stormboot-lab rate --in-kernel` in BPF_PROG_TEST_RUN's live-frames
//! mode): every repetition sends the next request of a run's machines out
//! of the generator's end of the link with XDP_TX, as a NIC's driver sends
//! a frame, without an skb or a socket per frame.
//!
//! Userspace renders machine 0's DISCOVER and REQUEST (FRAMES' two
//! entries, both `len` bytes) and says where each frame's per-machine
//! parts are; the program copies the frame, writes the machine's MAC,
//! transaction id (`tally::xid`), broadcast flag and requested address,
//! and the UDP checksum.

/// The largest frame the program sends.
pub const FRAME_MAX: usize = 512;
/// The shortest: Ethernet, IPv4 and UDP headers, BOOTP and the cookie.
pub const FRAME_MIN: usize = crate::layout::ETH_LEN
    + crate::layout::IP_LEN
    + crate::layout::UDP_LEN
    + crate::layout::OPTIONS_OFF;

/// FRAMES' entries.
pub const DISCOVER: u32 = 0;
pub const REQUEST: u32 = 1;

/// The run (RUN's one entry). Machine `i` has MAC `first_mac + i`; its
/// REQUEST asks for `first_ip + i`. Request `n` of the run is machine
/// `n / 2 % count`'s DISCOVER when `n` is even, its REQUEST when odd
/// (`nth`). The program paces itself: a repetition sends the next request
/// when the schedule (`rate` per second from the first repetition) says it
/// is due and otherwise drops its page, so one long call sends the run at
/// its rate without bursts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Requests in the run; zero: no run, the program sends nothing.
    pub total: u64,
    /// Requests per second.
    pub rate: u64,
    /// Requests a late schedule sends at once at most; the rest of the
    /// lateness is let pass (State::behind), as the socket sender does.
    pub catch_up: u64,
    pub count: u32,
    /// Host byte order.
    pub first_ip: u32,
    pub first_mac: [u8; 6],
    pub nonce: u8,
    /// 0: no request has the broadcast flag; 1: all; 2: even machines'.
    pub broadcast: u8,
    /// Both frames' length.
    pub len: u16,
    /// Per frame (DISCOVER, REQUEST): the offset of the MAC in option 61,
    /// and of option 50's address; zero where the frame has none.
    pub client_id_off: [u16; 2],
    pub requested_off: [u16; 2],
    pub _pad: [u16; 3],
}

/// Where a run is (STATE's one entry, per CPU: a run is one call on one
/// CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// bpf_ktime_get_ns() of the run's first repetition; zero before it.
    pub start_ns: u64,
    pub sent: u64,
    /// Requests let pass because the schedule ran late.
    pub behind: u64,
}

/// (send now, let pass first): what a repetition at `elapsed_ns` into the
/// run does, with `issued` requests sent or let pass so far.
#[inline(always)]
pub fn pace(run: &Run, issued: u64, elapsed_ns: u64) -> (bool, u64) {
    // In microseconds, so the product stays in 64 bits for any run of
    // hours at millions a second (no 128-bit arithmetic in BPF).
    let due = elapsed_ns / 1000 * run.rate / 1_000_000;
    let due = due.min(run.total);
    if due <= issued {
        return (false, 0);
    }
    let late = due - issued;
    (true, late.saturating_sub(run.catch_up.max(1)))
}

pub mod broadcast {
    pub const NEVER: u8 = 0;
    pub const ALWAYS: u8 = 1;
    pub const EVEN: u8 = 2;
}

/// One of FRAMES' entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub bytes: [u8; FRAME_MAX],
}

/// (machine, is a REQUEST) of request `n` of a run of `count` machines.
#[inline(always)]
pub const fn nth(n: u64, count: u32) -> (u32, bool) {
    let i = n % (2 * count as u64);
    ((i / 2) as u32, i % 2 == 1)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, no padding (sizes checked below).
    unsafe impl aya::Pod for super::Run {}
    unsafe impl aya::Pod for super::State {}
    unsafe impl aya::Pod for super::Frame {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_padding() {
        assert_eq!(core::mem::size_of::<Run>(), 56);
        assert_eq!(core::mem::size_of::<State>(), 24);
        assert_eq!(core::mem::size_of::<Frame>(), FRAME_MAX);
    }

    #[test]
    fn requests_leave_on_schedule_and_lateness_past_the_window_passes() {
        let run = Run {
            total: 100,
            rate: 1000,
            catch_up: 5,
            ..Run::default()
        };
        let ms = 1_000_000;
        // Nothing due before the first millisecond; then one each.
        assert_eq!(pace(&run, 0, ms / 2), (false, 0));
        assert_eq!(pace(&run, 0, ms), (true, 0));
        assert_eq!(pace(&run, 1, ms), (false, 0));
        // 12 due, 2 issued: late by 10, 5 may be sent, 5 pass.
        assert_eq!(pace(&run, 2, 12 * ms), (true, 5));
        // Never past the total.
        assert_eq!(pace(&run, 100, 500 * ms), (false, 0));
        assert_eq!(pace(&run, 99, 500 * ms), (true, 0));
    }

    #[test]
    fn each_machine_sends_a_discover_then_a_request_in_turn() {
        let got: [(u32, bool); 7] = core::array::from_fn(|n| nth(n as u64, 3));
        assert_eq!(
            got,
            [
                (0, false),
                (0, true),
                (1, false),
                (1, true),
                (2, false),
                (2, true),
                (0, false)
            ]
        );
    }
}
