//! Which template sets TEMPLATE_SLOTS holds, when the templates are
//! there: the set numbers that are free, and those let go of, which become
//! free again only after a grace period.
//!
//! The program reads a template through a machine's record. A program that
//! fetched a record just before it was replaced or removed may still be
//! copying the template the old record named. A hash map's entry is freed
//! only after the kernel's RCU grace period, so TEMPLATES can delete at
//! once; an array slot is written over in place, so a slot whose set lost
//! its last machine waits `GRACE` before another set is written into it. A
//! program's run takes microseconds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a slot let go of waits before it is written again.
pub const GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Slots {
    /// Free set numbers, the lowest last (taken first).
    free: Vec<u32>,
    /// Set numbers let go of, oldest first, with when.
    cooling: VecDeque<(Instant, u32)>,
}

impl Slots {
    /// Room for `sets` sets; number 0 is never handed out.
    pub fn new(sets: u32) -> Self {
        Self {
            free: (1..sets).rev().collect(),
            cooling: VecDeque::new(),
        }
    }

    /// A set number whose slots may be written now, if any is free.
    pub fn take(&mut self, now: Instant) -> Option<u32> {
        while let Some(&(at, set)) = self.cooling.front() {
            if now.saturating_duration_since(at) < GRACE {
                break;
            }
            self.cooling.pop_front();
            self.free.push(set);
        }
        self.free.pop()
    }

    /// A set number, waiting out the grace period of the oldest one let
    /// go of when none is free; None when none is cooling either.
    pub fn take_or_wait(&mut self) -> Option<u32> {
        if let Some(set) = self.take(Instant::now()) {
            return Some(set);
        }
        let &(at, _) = self.cooling.front()?;
        std::thread::sleep(GRACE.saturating_sub(at.elapsed()));
        self.take(Instant::now())
    }

    /// `set` lost its last machine at `now`.
    pub fn release(&mut self, set: u32, now: Instant) {
        self.cooling.push_back((now, set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_every_set_once_then_none() {
        let mut s = Slots::new(40);
        let now = Instant::now();
        let got: Vec<u32> = std::iter::from_fn(|| s.take(now)).collect();
        assert_eq!(got, (1..40).collect::<Vec<_>>());
        assert_eq!(s.take(now), None);
        assert_eq!(s.take_or_wait(), None, "none cooling: nothing to wait for");
    }

    #[test]
    fn a_released_slot_is_taken_again_only_after_the_grace_period() {
        let mut s = Slots::new(40);
        let t0 = Instant::now();
        while s.take(t0).is_some() {}
        s.release(5, t0);
        s.release(9, t0 + Duration::from_millis(300));
        assert_eq!(s.take(t0 + GRACE - Duration::from_millis(1)), None);
        assert_eq!(s.take(t0 + GRACE), Some(5));
        assert_eq!(s.take(t0 + GRACE), None, "9 is still cooling");
        assert_eq!(s.take(t0 + GRACE + Duration::from_millis(300)), Some(9));
    }

    #[test]
    fn when_all_are_taken_a_new_set_waits_for_the_oldest_let_go_of() {
        let mut s = Slots::new(4);
        while s.take(Instant::now()).is_some() {}
        let released = Instant::now();
        s.release(2, released);
        assert_eq!(s.take_or_wait(), Some(2));
        assert!(released.elapsed() >= GRACE);
    }
}
