//! The per-MAC token bucket that keeps one client from flooding the slow
//! path: a pure function of the bucket's state, the time and the limit, so
//! the program and the tests apply the same arithmetic.
//!
//! The bucket is kept as one number, its "theoretical arrival time" (the
//! generic cell rate algorithm): the time at which the bucket would be
//! full again. A packet costs `interval_ns` of it; a packet is admitted
//! while the bucket is no more than `tolerance_ns` ahead of now. One u64
//! per MAC, no division in the kernel, and a refill that is just time
//! passing.

/// The limit, the single entry of the SLOWPATH_LIMIT map; written by
/// userspace from `[server] slowpath_rate` and `slowpath_burst`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Nanoseconds one packet costs: 1e9 / rate. Zero: no limit.
    pub interval_ns: u64,
    /// How far ahead of now the bucket may run and still admit a packet:
    /// (burst - 1) * interval_ns.
    pub tolerance_ns: u64,
}

impl Limit {
    /// The limit for `rate` packets a second with bursts of `burst`; no
    /// limit when either is zero.
    pub const fn new(rate: u32, burst: u32) -> Self {
        if rate == 0 || burst == 0 {
            return Limit {
                interval_ns: 0,
                tolerance_ns: 0,
            };
        }
        let interval_ns = 1_000_000_000 / rate as u64;
        Limit {
            interval_ns,
            tolerance_ns: (burst as u64 - 1) * interval_ns,
        }
    }

    pub const fn enabled(&self) -> bool {
        self.interval_ns != 0
    }
}

/// The bucket's new state if a packet arriving at `now_ns` is admitted,
/// `None` if it is to be dropped (the state then stays as it was).
/// `tat_ns` is the stored state, or `None` for a MAC not seen (or
/// evicted): a full bucket.
#[inline(always)]
pub const fn admit(tat_ns: Option<u64>, now_ns: u64, limit: &Limit) -> Option<u64> {
    let tat = match tat_ns {
        Some(t) if t > now_ns => t,
        _ => now_ns,
    };
    if tat - now_ns > limit.tolerance_ns {
        return None;
    }
    Some(tat + limit.interval_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Packets admitted out of `n` sent at `now`, updating `tat`.
    fn send(tat: &mut Option<u64>, now: u64, n: u32, limit: &Limit) -> u32 {
        let mut admitted = 0;
        for _ in 0..n {
            if let Some(t) = admit(*tat, now, limit) {
                *tat = Some(t);
                admitted += 1;
            }
        }
        admitted
    }

    #[test]
    fn a_new_mac_gets_its_burst_then_nothing() {
        let l = Limit::new(20, 40);
        let mut tat = None;
        assert_eq!(send(&mut tat, 5 * SEC, 100, &l), 40);
        assert_eq!(send(&mut tat, 5 * SEC, 1, &l), 0);
    }

    #[test]
    fn time_refills_at_the_rate_up_to_the_burst() {
        let l = Limit::new(20, 40);
        let mut tat = None;
        send(&mut tat, SEC, 40, &l);
        // 20 a second: half a second is ten packets.
        assert_eq!(send(&mut tat, SEC + SEC / 2, 100, &l), 10);
        // A long silence refills the bucket to the burst, not beyond.
        assert_eq!(send(&mut tat, 100 * SEC, 100, &l), 40);
    }

    #[test]
    fn a_steady_sender_at_the_rate_is_never_dropped() {
        let l = Limit::new(10, 1);
        let mut tat = None;
        for i in 0..1000 {
            assert_eq!(send(&mut tat, SEC + i * SEC / 10, 1, &l), 1, "packet {i}");
        }
        // Twice the rate: every other packet.
        let start = 200 * SEC;
        let mut admitted = 0;
        for i in 0..1000 {
            admitted += send(&mut tat, start + i * SEC / 20, 1, &l);
        }
        assert_eq!(admitted, 500);
    }

    #[test]
    fn zero_disables() {
        assert!(!Limit::new(0, 40).enabled());
        assert!(!Limit::new(20, 0).enabled());
        assert!(Limit::new(20, 1).enabled());
        assert_eq!(Limit::new(20, 40).tolerance_ns, 39 * SEC / 20);
    }
}
