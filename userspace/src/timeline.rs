//! The boot timeline: every event about a machine (DHCP exchanges and the
//! path that answered, files served over TFTP and HTTP, syslog lines), kept
//! per MAC so an operator can ask which machines are stuck, and where.
//!
//! Bounded: at most `MAX_EVENTS` per machine (the first ones are kept, as
//! they show how the boot began, and the latest ones replace the rest), at
//! most `MAX_DETAIL` bytes of detail per event (a syslog line may be 2 KiB;
//! the daemon's log keeps it whole) and at most `MAX_MACHINES` machines
//! (the least recently heard from go, found in an index by time, not by a
//! scan: a pool of new machines arrives at thousands a second, each one
//! past the bound evicting another).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::frame::format_mac;

pub const MAX_EVENTS: usize = 64;
pub const MAX_MACHINES: usize = 100_000;
/// Bytes of an event's detail kept (cut at a character boundary).
pub const MAX_DETAIL: usize = 256;
/// Events kept from the start of a machine's boot before later ones rotate.
const KEEP_FIRST: usize = 16;

/// The phases of a network boot, in the order a boot goes through them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Discover,
    Offer,
    Ack,
    Nak,
    Tftp,
    Script,
    Artifact,
    Syslog,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub phase: Phase,
    /// "xdp", "userspace", "tftp", "http", "syslog".
    pub path: String,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Machine {
    pub mac: String,
    /// The furthest phase reached.
    pub phase: Option<Phase>,
    pub first_ms: u64,
    pub last_ms: u64,
    pub events: Vec<Event>,
}

#[derive(Default)]
struct Entry {
    events: VecDeque<Event>,
    furthest: Option<Phase>,
    first_ms: u64,
    last_ms: u64,
    /// Phases reached, one bit each: only the first time counts in the
    /// histograms (a retransmission or a second file is not a new phase).
    reached: u16,
    /// When each phase (by `Phase as usize`) was first reached, in ms
    /// after `first_ms`; meaningful where `reached` has the bit.
    reached_at: [u32; PHASES],
}

/// How many `Phase`s there are.
pub const PHASES: usize = Phase::Syslog as usize + 1;

/// A machine that reached a new phase, as the dashboard reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub mac: [u8; 6],
    /// The furthest phase reached (as `Machine::phase`).
    pub phase: Phase,
    /// Phases reached, one bit each (`1 << Phase as u16`).
    pub reached: u16,
    /// When each reached phase was first reached (ms since the epoch).
    pub reached_ms: [u64; PHASES],
}

/// The machines, and when each was last heard from, in order.
#[derive(Default)]
struct Machines {
    by_mac: HashMap<[u8; 6], Entry>,
    /// (last_ms, MAC) of every entry of `by_mac`.
    by_last: BTreeSet<(u64, [u8; 6])>,
}

#[derive(Default)]
pub struct Timeline {
    machines: Mutex<Machines>,
    /// Per phase: time from the machine's first event to reaching it.
    phase_ms: Mutex<std::collections::BTreeMap<Phase, crate::metrics::Histogram>>,
    /// Machines that reached a new phase since the dashboard last looked
    /// (one reader; at most every machine, so bounded like the machines).
    progressed: Mutex<std::collections::HashSet<[u8; 6]>>,
    /// Reads events that happened but are not recorded yet (the XDP
    /// program's reply ring), before `record` stamps a new one.
    catch_up: std::sync::OnceLock<CatchUp>,
}

/// See `Timeline::set_catch_up`.
pub type CatchUp = Box<dyn Fn(&Timeline) + Send + Sync>;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Timeline {
    /// Records an event happening now, after the events that are queued
    /// elsewhere (see `set_catch_up`), so a machine's timeline keeps the
    /// order in which things happened to it.
    pub fn record(&self, mac: [u8; 6], phase: Phase, path: &str, detail: String) {
        if let Some(catch_up) = self.catch_up.get() {
            catch_up(self);
        }
        self.record_at(mac, phase, path, detail, now_ms());
    }

    /// Sets what `record` runs first: something that records, through
    /// `record_at`, events that already happened but were queued (the XDP
    /// program's replies, read every few ms). Set once; later calls are
    /// ignored.
    pub fn set_catch_up(&self, catch_up: CatchUp) {
        let _ = self.catch_up.set(catch_up);
    }

    pub fn record_at(
        &self,
        mac: [u8; 6],
        phase: Phase,
        path: &str,
        mut detail: String,
        at_ms: u64,
    ) {
        if detail.len() > MAX_DETAIL {
            let mut end = MAX_DETAIL;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        let mut guard = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        let m = &mut *guard;
        let known = m.by_mac.contains_key(&mac);
        if !known && m.by_mac.len() >= MAX_MACHINES {
            // Forget the machine heard from least recently.
            if let Some((_, oldest)) = m.by_last.pop_first() {
                m.by_mac.remove(&oldest);
            }
        }
        let e = m.by_mac.entry(mac).or_default();
        if known {
            m.by_last.remove(&(e.last_ms, mac));
        } else {
            e.first_ms = at_ms;
        }
        e.last_ms = at_ms;
        m.by_last.insert((at_ms, mac));
        e.furthest = e.furthest.max(Some(phase));
        let bit = 1u16 << phase as u16;
        if e.reached & bit == 0 {
            e.reached |= bit;
            e.reached_at[phase as usize] =
                u32::try_from(at_ms.saturating_sub(e.first_ms)).unwrap_or(u32::MAX);
            self.progressed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(mac);
            if phase != Phase::Discover {
                self.phase_ms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(phase)
                    .or_default()
                    .observe(at_ms.saturating_sub(e.first_ms));
            }
        }
        if e.events.len() >= MAX_EVENTS {
            e.events.remove(KEEP_FIRST);
        }
        e.events.push_back(Event {
            at_ms,
            phase,
            path: path.to_string(),
            detail,
        });
    }

    /// The boot-phase histograms, by phase name.
    pub fn phase_histograms(
        &self,
    ) -> std::collections::BTreeMap<String, crate::metrics::Histogram> {
        self.phase_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, h)| (format!("{p:?}").to_lowercase(), h.clone()))
            .collect()
    }

    /// The machines that reached a new phase since the last call, and
    /// where they are now. Each machine once, however many events it had.
    pub fn take_progress(&self) -> Vec<Progress> {
        let macs = std::mem::take(&mut *self.progressed.lock().unwrap_or_else(|e| e.into_inner()));
        if macs.is_empty() {
            return Vec::new();
        }
        let m = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        macs.into_iter()
            .filter_map(|mac| {
                let e = m.by_mac.get(&mac)?;
                Some(Progress {
                    mac,
                    phase: e.furthest?,
                    reached: e.reached,
                    reached_ms: e.reached_at.map(|d| e.first_ms + u64::from(d)),
                })
            })
            .collect()
    }

    pub fn machine(&self, mac: [u8; 6]) -> Option<Machine> {
        let m = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        m.by_mac.get(&mac).map(|e| summary(mac, e, true))
    }

    /// Every machine, without events, most recently heard from first.
    pub fn machines(&self) -> Vec<Machine> {
        let m = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Machine> = m
            .by_mac
            .iter()
            .map(|(mac, e)| summary(*mac, e, false))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.last_ms));
        v
    }
}

fn summary(mac: [u8; 6], e: &Entry, events: bool) -> Machine {
    Machine {
        mac: format_mac(&mac),
        phase: e.furthest,
        first_ms: e.first_ms,
        last_ms: e.last_ms,
        events: if events {
            e.events.iter().cloned().collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_and_machines_are_bounded() {
        let t = Timeline::default();
        let long = "é".repeat(1000);
        t.record_at([2, 0, 0, 0, 0, 1], Phase::Syslog, "syslog", long, 1);
        let d = &t.machine([2, 0, 0, 0, 0, 1]).unwrap().events[0].detail;
        assert!(
            d.len() <= MAX_DETAIL && d.len() >= MAX_DETAIL - 1,
            "{}",
            d.len()
        );
        for i in 0..MAX_MACHINES as u64 + 10 {
            let [_, _, a, b, c, d, e, f] = i.to_be_bytes();
            t.record_at(
                [a | 0x10, b, c, d, e, f],
                Phase::Discover,
                "xdp",
                String::new(),
                10 + i,
            );
        }
        let all = t.machines();
        assert_eq!(all.len(), MAX_MACHINES);
        // The least recently heard from went first.
        assert!(t.machine([2, 0, 0, 0, 0, 1]).is_none());
        assert_eq!(all[0].last_ms, 10 + MAX_MACHINES as u64 + 9);
    }

    #[test]
    fn a_machine_heard_from_again_is_not_the_next_to_go() {
        let t = Timeline::default();
        let mac = |i: u64| {
            let [_, _, a, b, c, d, e, f] = i.to_be_bytes();
            [a | 0x10, b, c, d, e, f]
        };
        for i in 0..MAX_MACHINES as u64 {
            t.record_at(mac(i), Phase::Discover, "userspace", String::new(), 10 + i);
        }
        // Machine 0, the oldest, asks again; machine 1 is now the oldest.
        let later = 10 + MAX_MACHINES as u64;
        t.record_at(mac(0), Phase::Offer, "userspace", String::new(), later);
        t.record_at(
            mac(1 << 40),
            Phase::Discover,
            "userspace",
            String::new(),
            later + 1,
        );
        t.record_at(
            mac(2 << 40),
            Phase::Discover,
            "userspace",
            String::new(),
            later + 2,
        );
        let kept = t.machine(mac(0)).expect("heard from again, kept");
        assert_eq!((kept.first_ms, kept.last_ms), (10, later));
        assert_eq!(kept.events.len(), 2);
        assert!(t.machine(mac(1)).is_none());
        assert!(t.machine(mac(2)).is_none());
        assert!(t.machine(mac(3)).is_some());
        assert_eq!(t.machines().len(), MAX_MACHINES);
    }

    #[test]
    fn progress_is_each_machine_once_with_when_it_reached_each_phase() {
        let t = Timeline::default();
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        t.record_at(a, Phase::Offer, "xdp", "10.50.0.11".into(), 1000);
        t.record_at(a, Phase::Offer, "xdp", "10.50.0.11".into(), 1500);
        t.record_at(a, Phase::Ack, "xdp", "10.50.0.11".into(), 1700);
        t.record_at(b, Phase::Offer, "xdp", "10.50.0.12".into(), 2000);
        let mut p = t.take_progress();
        p.sort_by_key(|p| p.mac);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].phase, Phase::Ack);
        assert_eq!(
            p[0].reached,
            1 << Phase::Offer as u16 | 1 << Phase::Ack as u16
        );
        assert_eq!(
            p[0].reached_ms[Phase::Offer as usize],
            1000,
            "the first time counts"
        );
        assert_eq!(p[0].reached_ms[Phase::Ack as usize], 1700);
        assert!(t.take_progress().is_empty(), "nothing new since");
        // A retransmission is no progress; a new phase is.
        t.record_at(b, Phase::Offer, "xdp", "10.50.0.12".into(), 2100);
        assert!(t.take_progress().is_empty());
        t.record_at(b, Phase::Ack, "xdp", "10.50.0.12".into(), 2200);
        assert_eq!(t.take_progress()[0].mac, b);
    }

    #[test]
    fn keeps_the_start_and_the_latest_events() {
        let t = Timeline::default();
        let mac = [2, 0, 0, 0, 0, 1];
        for i in 0..200u64 {
            t.record_at(mac, Phase::Syslog, "syslog", format!("line {i}"), 1000 + i);
        }
        t.record_at(mac, Phase::Ack, "xdp", "10.50.0.11".into(), 5000);
        let m = t.machine(mac).unwrap();
        assert_eq!(m.events.len(), MAX_EVENTS);
        assert_eq!(m.events[0].detail, "line 0");
        assert_eq!(m.events.last().unwrap().detail, "10.50.0.11");
        assert_eq!(m.phase, Some(Phase::Syslog), "the furthest phase reached");
        assert_eq!((m.first_ms, m.last_ms), (1000, 5000));
        assert_eq!(t.machines()[0].events.len(), 0);
    }

    #[test]
    fn events_queued_elsewhere_are_recorded_before_the_one_they_led_to() {
        let t = Timeline::default();
        let mac = [2, 0, 0, 0, 0, 1];
        let queued = std::sync::Mutex::new(vec![Phase::Offer, Phase::Ack]);
        let queued = std::sync::Arc::new(queued);
        let q = queued.clone();
        t.set_catch_up(Box::new(move |t| {
            for phase in q.lock().unwrap().drain(..) {
                t.record_at(mac, phase, "xdp", "10.50.0.11".into(), now_ms());
            }
        }));
        t.record(mac, Phase::Tftp, "tftp", "ipxe.efi".into());
        queued.lock().unwrap().push(Phase::Ack);
        t.record(mac, Phase::Script, "http", "auto.ipxe".into());
        let order: Vec<_> = t
            .machine(mac)
            .unwrap()
            .events
            .iter()
            .map(|e| (e.phase, e.at_ms))
            .collect();
        let phases: Vec<_> = order.iter().map(|e| e.0).collect();
        assert_eq!(
            phases,
            [
                Phase::Offer,
                Phase::Ack,
                Phase::Tftp,
                Phase::Ack,
                Phase::Script
            ]
        );
        assert!(order.windows(2).all(|w| w[0].1 <= w[1].1), "{order:?}");
    }
}
