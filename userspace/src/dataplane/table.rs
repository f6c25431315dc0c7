//! The writer's side of the RESERVATIONS table (`stormboot_common::table`):
//! linear probing within `PROBES` slots of a machine's home, Robin Hood
//! placement (a machine takes the slot of one nearer its own home, which
//! moves on), so that no machine lies far from home (first-come placement
//! left six of 200,000 random MACs beyond 16 slots in the table sized for
//! them; see the tests). Writes under
//! each slot's sequence count, removals as tombstones that are cleaned
//! when they end a run and swept by a rebuild when they pile up. This
//! process is the table's only writer.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{fence, Ordering};

use aya::maps::MapData;
use stormboot_common::{
    maps::Machine,
    table::{self, Slot, EMPTY, GONE, LIVE, PROBES},
};

use super::mapping::Mapping;

/// The table's size for `machines`: a power of two with a third of it
/// free or more, so probes stay short (at half full a successful one
/// takes 1.5 slots on average with linear probing).
pub fn bits_for(machines: u32) -> u32 {
    let want = u64::from(machines) + u64::from(machines) / 2;
    want.max(1024).next_power_of_two().trailing_zeros().min(30)
}

/// Where the slots are.
enum Backing {
    /// RESERVATIONS, shared with the program.
    Map(Mapping),
    /// Memory of this process's own: a rebuild's new layout, and the unit
    /// tests' tables.
    Heap(Vec<Slot>),
}

/// The shared mapping of RESERVATIONS with what this side keeps about it.
pub struct Table {
    /// Held for as long as the table is: `base` points into it.
    _backing: Backing,
    /// The first slot.
    base: *mut Slot,
    bits: u32,
    /// Slots in the state LIVE and GONE.
    live: usize,
    gone: usize,
    /// Machines no slot within `PROBES` of their home was free for: the
    /// daemon answers them (the program passes them up as unknown). Placed
    /// again by the next rebuild.
    unplaced: HashMap<[u8; 6], Machine>,
    /// Rebuilds so far (`rebuild`).
    rebuilds: u32,
}

// SAFETY: the slots are reached only through the table, whose writes take
// `&mut self`; the program reads them under the sequence counts.
unsafe impl Send for Table {}

/// Where a machine went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Into the table: the program answers it.
    Table,
    /// Nowhere the program looks: the daemon answers it.
    Unplaced,
}

impl Table {
    /// Maps RESERVATIONS, an array of `1 << bits` slots, as loaded.
    pub fn new(map: MapData, bits: u32) -> io::Result<Self> {
        let info = map.info().map_err(io::Error::other)?;
        if info.max_entries() != 1 << bits || info.value_size() as usize != size_of::<Slot>() {
            return Err(io::Error::other(format!(
                "RESERVATIONS has {} slots of {} bytes, not {} of {}",
                info.max_entries(),
                info.value_size(),
                1u64 << bits,
                size_of::<Slot>()
            )));
        }
        let mapping = Mapping::new(map, (1usize << bits) * size_of::<Slot>())?;
        Ok(Self::over(Backing::Map(mapping), bits))
    }

    /// A table in memory of this process's own, zeroed (all EMPTY).
    pub fn private(bits: u32) -> Self {
        let slots = vec![Slot::zeroed(); 1 << bits];
        Self::over(Backing::Heap(slots), bits)
    }

    fn over(mut backing: Backing, bits: u32) -> Self {
        let base = match &mut backing {
            Backing::Map(m) => m.ptr() as *mut Slot,
            Backing::Heap(v) => v.as_mut_ptr(),
        };
        Self {
            _backing: backing,
            base,
            bits,
            live: 0,
            gone: 0,
            unplaced: HashMap::new(),
            rebuilds: 0,
        }
    }

    /// The table has `1 << bits()` slots.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Slots in the table.
    pub fn len(&self) -> usize {
        1 << self.bits
    }

    /// Machines held, placed or not.
    pub fn machines(&self) -> usize {
        self.live + self.unplaced.len()
    }

    /// Machines the program cannot find (`Placed::Unplaced`).
    pub fn unplaced(&self) -> usize {
        self.unplaced.len()
    }

    fn slot(&self, i: u32) -> *mut u64 {
        debug_assert!((i as usize) < self.len());
        // SAFETY: i is below the slot count, which the backing covers; the
        // backing lives as long as `self`.
        unsafe { self.base.add(i as usize) as *mut u64 }
    }

    fn head(&self, i: u32) -> u64 {
        // SAFETY: a slot of the mapping; only this process writes it.
        unsafe { self.slot(i).read_volatile() }
    }

    fn index(&self, mac: &[u8; 6], probe: u32) -> u32 {
        table::home(mac, self.bits).wrapping_add(probe) & (self.len() as u32 - 1)
    }

    /// The slot holding `mac`'s machine.
    fn find(&self, mac: &[u8; 6]) -> Option<u32> {
        let want = table::live_word(mac);
        for p in 0..PROBES {
            let i = self.index(mac, p);
            let head = self.head(i);
            if head == want {
                return Some(i);
            }
            if table::state_of(head) == EMPTY {
                break;
            }
        }
        None
    }

    /// The machine held for `mac`.
    pub fn get(&self, mac: &[u8; 6]) -> Option<Machine> {
        match self.find(mac) {
            // SAFETY: a slot of the mapping, written only by this process.
            Some(i) => Some(unsafe { (*(self.slot(i) as *const Slot)).machine }),
            None => self.unplaced.get(mac).copied(),
        }
    }

    /// Writes slot `i` as a reader of its sequence count expects: odd
    /// while it changes, then even again.
    fn write(&mut self, i: u32, head: u64, machine: Option<&Machine>) {
        let p = self.slot(i);
        // SAFETY: a slot of the mapping; the program only reads it, and
        // words are written whole (aligned u64 stores).
        unsafe {
            let seq = p.add(1).read_volatile() as u32;
            p.add(1).write_volatile(u64::from(seq.wrapping_add(1)));
            fence(Ordering::Release);
            if let Some(m) = machine {
                let words = m as *const Machine as *const u8;
                for w in 0..6 {
                    let word = (words.add(w * 8) as *const u64).read_unaligned();
                    p.add(2 + w).write_volatile(word);
                }
            }
            p.write_volatile(head);
            fence(Ordering::Release);
            p.add(1).write_volatile(u64::from(seq.wrapping_add(2)));
        }
    }

    /// Writes `mac`'s machine: in its slot if it has one (a reader sees
    /// the old machine or the new one, or passes the request up), else
    /// placed Robin Hood fashion within `PROBES` of its home.
    pub fn put(&mut self, mac: [u8; 6], m: &Machine) -> Placed {
        if let Some(i) = self.find(&mac) {
            self.write(i, table::live_word(&mac), Some(m));
            return Placed::Table;
        }
        self.unplaced.remove(&mac);
        self.place(mac, *m)
    }

    /// Places a machine the table does not hold: at the first free slot
    /// from its home, or in the slot of a machine nearer its own home than
    /// this one is at that slot, that machine then placed further on. The
    /// one that finds no slot within `PROBES` is left unplaced. No machine
    /// is placed past an EMPTY slot, which is where probes end.
    fn place(&mut self, mac: [u8; 6], m: Machine) -> Placed {
        let mask = self.len() as u32 - 1;
        let (mut carry, mut distance) = ((mac, m), 0u32);
        let mut i = table::home(&mac, self.bits);
        while distance < PROBES {
            let head = self.head(i);
            match table::state_of(head) {
                LIVE => {
                    let held = mac_of(head);
                    let its = i.wrapping_sub(table::home(&held, self.bits)) & mask;
                    if its < distance {
                        // SAFETY: a slot of the mapping, written only here.
                        let machine = unsafe { (*(self.slot(i) as *const Slot)).machine };
                        self.write(i, table::live_word(&carry.0), Some(&carry.1));
                        (carry, distance) = ((held, machine), its);
                    }
                }
                state => {
                    if state == GONE {
                        self.gone -= 1;
                    }
                    self.write(i, table::live_word(&carry.0), Some(&carry.1));
                    self.live += 1;
                    return Placed::Table;
                }
            }
            i = i.wrapping_add(1) & mask;
            distance += 1;
        }
        let placed = if carry.0 == mac {
            Placed::Unplaced
        } else {
            Placed::Table
        };
        self.unplaced.insert(carry.0, carry.1);
        placed
    }

    /// Removes `mac`'s machine: its requests are passed up from now on.
    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Machine> {
        let Some(i) = self.find(mac) else {
            return self.unplaced.remove(mac);
        };
        let old = self.get(mac);
        let gone = table::live_word(mac) & !(0xffff << 48) | (u64::from(GONE) << 48);
        self.write(i, gone, None);
        self.live -= 1;
        self.gone += 1;
        self.clean_from(i);
        // Tombstones lengthen every probe that crosses them.
        if self.gone > self.len() / 4 {
            self.rebuild();
        }
        old
    }

    /// A run of GONE slots that ends at an EMPTY one is crossed by no
    /// machine's probe (a probe stops at EMPTY, and a machine is never
    /// placed past one): it becomes EMPTY, back from `i`.
    fn clean_from(&mut self, i: u32) {
        let mask = self.len() as u32 - 1;
        if table::state_of(self.head(i.wrapping_add(1) & mask)) != EMPTY {
            return;
        }
        let mut at = i;
        while table::state_of(self.head(at)) == GONE {
            self.write(at, 0, None);
            self.gone -= 1;
            at = at.wrapping_sub(1) & mask;
        }
    }

    /// The MACs held, placed or not.
    pub fn macs(&self) -> Vec<[u8; 6]> {
        let mut out: Vec<[u8; 6]> = self.unplaced.keys().copied().collect();
        for i in 0..self.len() as u32 {
            let head = self.head(i);
            if table::state_of(head) == LIVE {
                out.push(mac_of(head));
            }
        }
        out
    }

    /// Whether slot `i` already starts with `head` and holds `m`.
    fn holds(&self, i: u32, head: u64, m: &Machine) -> bool {
        // SAFETY: a slot of the mapping, written only by this process.
        self.head(i) == head && unsafe { (*(self.slot(i) as *const Slot)).machine } == *m
    }

    /// Lays every machine out again with no tombstones, the unplaced ones
    /// tried again: laid out in memory of this process's own, then copied
    /// over slot by slot under the sequence counts, where it differs.
    /// While it runs a machine may be missed (passed up), never mixed up.
    fn rebuild(&mut self) {
        let mut fresh = Table::private(self.bits);
        for i in 0..self.len() as u32 {
            let head = self.head(i);
            if table::state_of(head) == LIVE {
                // SAFETY: a slot of the mapping, written only here.
                fresh.place(mac_of(head), unsafe {
                    (*(self.slot(i) as *const Slot)).machine
                });
            }
        }
        // The placed first, so that none of them loses its place to one
        // that had none.
        for (mac, m) in std::mem::take(&mut self.unplaced) {
            fresh.place(mac, m);
        }
        for i in 0..self.len() as u32 {
            let head = fresh.head(i);
            // SAFETY: slots of both tables, below their common length.
            let m = unsafe { (*(fresh.slot(i) as *const Slot)).machine };
            if table::state_of(head) == LIVE {
                if !self.holds(i, head, &m) {
                    self.write(i, head, Some(&m));
                }
            } else if self.head(i) != 0 {
                self.write(i, 0, None);
            }
        }
        self.live = fresh.live;
        self.gone = 0;
        self.rebuilds += 1;
        tracing::debug!(
            machines = self.machines(),
            rebuilds = self.rebuilds,
            "reservation table laid out again"
        );
        self.unplaced = std::mem::take(&mut fresh.unplaced);
    }
}

/// The MAC in a slot's first word.
fn mac_of(head: u64) -> [u8; 6] {
    let b = head.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests;
