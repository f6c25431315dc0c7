//! The daemon's end of the reply ring (`stormboot_common::events`): the
//! REPLY_RING map shared into this process's memory, read a CPU's region
//! at a time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::Map;
use stormboot_common::events::{slot_index, ReplyEvent, RingEntry, RingHeader, RING_REGION};

/// A mapped reply ring.
pub struct ReplyRing {
    /// Unmapped when the ring goes.
    _mapping: super::mapping::Mapping,
    entries: *mut RingEntry,
    cpus: u32,
    /// The region `next` reads next.
    cpu: u32,
}

// SAFETY: the mapping is owned by the ring and only touched through it;
// the kernel's side synchronises through the headers' positions.
unsafe impl Send for ReplyRing {}

impl ReplyRing {
    /// Maps REPLY_RING (as loaded, or opened from a pin).
    pub fn new(map: Map) -> io::Result<Self> {
        let Map::Array(map) = map else {
            return Err(io::Error::other("REPLY_RING is not an array map"));
        };
        let info = map.info().map_err(io::Error::other)?;
        let entries = info.max_entries();
        if entries == 0
            || entries % RING_REGION != 0
            || info.value_size() as usize != size_of::<RingEntry>()
        {
            return Err(io::Error::other(format!(
                "REPLY_RING has {entries} entries of {} bytes: not whole regions of {RING_REGION} \
                 entries of {} (a program of another layout)",
                info.value_size(),
                size_of::<RingEntry>()
            )));
        }
        let mapping = super::mapping::Mapping::new(map, entries as usize * size_of::<RingEntry>())?;
        Ok(Self {
            entries: mapping.ptr() as *mut RingEntry,
            _mapping: mapping,
            cpus: entries / RING_REGION,
            cpu: 0,
        })
    }

    fn header(&self, cpu: u32) -> *mut RingHeader {
        // SAFETY: cpu < self.cpus, so its header is inside the mapping.
        unsafe { self.entries.add((cpu * RING_REGION) as usize) as *mut RingHeader }
    }
}

/// The queued events, from the first region that has one; None when every
/// region is empty (a later call finds what arrived since). Each event read
/// is given back to the program at once.
impl Iterator for ReplyRing {
    type Item = ReplyEvent;

    fn next(&mut self) -> Option<ReplyEvent> {
        for _ in 0..=self.cpus {
            if self.cpu >= self.cpus {
                self.cpu = 0;
            }
            let h = self.header(self.cpu);
            // SAFETY: the header lies in the mapping; the program writes
            // `head` only (atomically, with release ordering), the daemon
            // only `tail`.
            let (head, tail) = unsafe {
                (
                    AtomicU64::from_ptr(&raw mut (*h).head).load(Ordering::Acquire),
                    AtomicU64::from_ptr(&raw mut (*h).tail),
                )
            };
            let at = tail.load(Ordering::Relaxed);
            if at != head {
                let i = slot_index(self.cpu, at) as usize;
                // SAFETY: i is inside this CPU's region; the acquire load
                // of `head` above makes the event's bytes visible.
                let ev = unsafe { std::ptr::read(self.entries.add(i) as *const ReplyEvent) };
                tail.store(at.wrapping_add(1), Ordering::Release);
                return Some(ev);
            }
            self.cpu += 1;
        }
        None
    }
}
