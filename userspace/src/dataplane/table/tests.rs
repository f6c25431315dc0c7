//! The table's writer: placement, tombstones, rebuilds and the sequence
//! count, on memory of the test's own.

use super::*;

fn machine(n: u32) -> Machine {
    let mut m = Slot::zeroed().machine;
    m.ip = n.to_be_bytes();
    m.set = n;
    m
}

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x52, 0x54, b[0], b[1], b[2], b[3]]
}

/// `count` MACs that share one home slot in a table of `1 << bits`.
fn colliding(bits: u32, count: usize) -> Vec<[u8; 6]> {
    let home = table::home(&mac(0), bits);
    (0..)
        .map(mac)
        .filter(|m| table::home(m, bits) == home)
        .take(count)
        .collect()
}

/// A table of 2^10 slots holding `count` machines (the n-th, machine(n))
/// whose MACs share one home slot, and those MACs.
fn crowded(count: usize) -> (Table, Vec<[u8; 6]>) {
    let mut t = Table::private(10);
    let same = colliding(10, count);
    for (n, m) in same.iter().enumerate() {
        t.put(*m, &machine(n as u32));
    }
    (t, same)
}

#[test]
fn machines_written_are_read_back_and_removed_ones_are_gone() {
    let mut t = Table::private(10);
    for n in 0..500 {
        assert_eq!(t.put(mac(n), &machine(n)), Placed::Table);
    }
    assert_eq!(t.put(mac(7), &machine(1007)), Placed::Table);
    assert_eq!(t.machines(), 500);
    assert_eq!(t.get(&mac(7)), Some(machine(1007)));
    assert_eq!(t.remove(&mac(8)), Some(machine(8)));
    assert_eq!(t.get(&mac(8)), None);
    assert_eq!(t.remove(&mac(8)), None);
    assert_eq!(t.machines(), 499);
    let mut macs = t.macs();
    macs.sort();
    assert_eq!(macs.len(), 499);
    assert!(!macs.contains(&mac(8)));
}

#[test]
fn a_machine_past_a_removed_one_is_still_found_and_its_slot_reused() {
    let (mut t, same) = crowded(3);
    t.remove(&same[0]);
    // The first slot is a tombstone now: the probe goes on past it.
    assert_eq!(t.get(&same[2]), Some(machine(2)));
    assert_eq!(t.put(mac(99_999), &machine(9)), Placed::Table);
    let again = colliding(10, 4)[3];
    t.put(again, &machine(3));
    assert_eq!(t.find(&again), Some(table::home(&same[0], 10)));
}

#[test]
fn a_run_of_tombstones_before_an_empty_slot_is_emptied() {
    let (mut t, same) = crowded(3);
    let home = table::home(&same[0], 10);
    t.remove(&same[1]);
    assert_eq!(table::state_of(t.head(home + 1)), GONE);
    t.remove(&same[2]);
    assert_eq!(table::state_of(t.head(home + 1)), EMPTY);
    assert_eq!(table::state_of(t.head(home + 2)), EMPTY);
    assert_eq!(t.gone, 0);
    assert_eq!(t.get(&same[0]), Some(machine(0)));
}

#[test]
fn a_machine_with_no_free_slot_near_home_is_held_unplaced_until_one_frees() {
    let (mut t, same) = crowded(PROBES as usize + 1);
    let last = same[PROBES as usize];
    assert_eq!(t.unplaced(), 1);
    assert_eq!(t.find(&last), None, "the program would not find it");
    assert_eq!(
        t.get(&last),
        Some(machine(PROBES)),
        "the daemon still has it"
    );
    t.remove(&same[0]);
    assert_eq!(t.put(last, &machine(1)), Placed::Table);
    assert_eq!(t.unplaced(), 0);
    assert_eq!(t.machines(), PROBES as usize);
}

/// `count` random MACs (xorshift from `seed`), unicast.
fn random_macs(seed: u64, count: usize) -> impl Iterator<Item = [u8; 6]> {
    let mut rng = seed;
    (0..count).map(move |_| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = rng.to_le_bytes();
        [b[0] & 0xfe, b[1], b[2], b[3], b[4], b[5]]
    })
}

#[test]
fn churn_rebuilds_the_table_and_loses_no_machine() {
    // A window of 2,500 machines slides over 40,000 random MACs: each new
    // one comes as the oldest goes, as when a rack is re-imaged.
    let mut t = Table::private(12);
    let mut held = std::collections::HashMap::new();
    let mut macs = Vec::new();
    for (n, m) in (0u32..).zip(random_macs(0x2545_f491_4f6c_dd1d, 40_000)) {
        t.put(m, &machine(n));
        held.insert(m, machine(n));
        macs.push(m);
        if macs.len() > 2_500 {
            let old = macs[macs.len() - 2_501];
            assert_eq!(t.remove(&old), held.remove(&old));
        }
        assert!(t.gone <= t.len() / 4, "machine {n}: {} tombstones", t.gone);
    }
    assert!(
        t.rebuilds > 0,
        "the churn never filled a quarter with tombstones"
    );
    assert_eq!(t.machines(), held.len());
    for (m, want) in &held {
        assert_eq!(t.get(m), Some(*want));
        assert!(t.find(m).is_some(), "every machine placed at this load");
    }
}

#[test]
fn a_table_sized_for_its_machines_places_them_all() {
    // Random MACs, since consecutive ones spread evenly under the
    // multiplicative hash and would show nothing; a table sized for
    // exactly them (the daemon sizes for a quarter more and the API's
    // headroom besides).
    let machines = 200_000u32;
    let mut t = Table::private(bits_for(machines));
    for (n, m) in (0..machines).zip(random_macs(0x9e37_79b9_7f4a_7c15, machines as usize)) {
        t.put(m, &machine(n));
    }
    assert_eq!(t.unplaced(), 0, "of {} in {} slots", t.machines(), t.len());
}

#[test]
fn sizes_leave_a_third_free_or_more() {
    assert_eq!(bits_for(0), 10);
    assert_eq!(bits_for(1_258_192), 21);
    for n in [1u32, 1000, 65_536, 700_000, 1_258_192, 1_400_000] {
        assert!((1u64 << bits_for(n)) * 2 >= u64::from(n) * 3, "{n}");
    }
}

/// A reader as the program reads (`bpf/xdp`'s `reservation`): the
/// sequence count, the key, the machine, the count again.
fn read_as_the_program(base: *const u64, mac: &[u8; 6]) -> Option<Machine> {
    let seq = unsafe { base.add(1).read_volatile() };
    if unsafe { base.read_volatile() } != table::live_word(mac) {
        return None;
    }
    let mut words = [0u64; 6];
    for (w, word) in words.iter_mut().enumerate() {
        *word = unsafe { base.add(2 + w).read_volatile() };
    }
    if unsafe { base.add(1).read_volatile() } != seq || seq & 1 != 0 {
        return None;
    }
    Some(unsafe { std::mem::transmute::<[u64; 6], Machine>(words) })
}

#[test]
fn a_reader_never_takes_a_half_written_machine() {
    let mut t = Table::private(10);
    let m = mac(1);
    let fill = |b: u8| {
        let mut x = machine(0);
        x.ip = [b; 4];
        x.name_opt = [b; stormboot_common::maps::NAME_MAX + 2];
        x
    };
    t.put(m, &fill(1));
    let at = t.find(&m).unwrap();
    let base = t.slot(at) as usize;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut taken, mut torn) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if let Some(x) = read_as_the_program(base as *const u64, &m) {
                    taken += 1;
                    let b = x.ip[0];
                    if x.ip != [b; 4] || x.name_opt.iter().any(|&c| c != b) {
                        torn += 1;
                    }
                }
            }
            (taken, torn)
        })
    };
    for n in 0..2_000_000u32 {
        t.put(m, &fill(1 + (n % 2) as u8));
    }
    stop.store(true, Ordering::Relaxed);
    let (taken, torn) = reader.join().unwrap();
    assert!(taken > 0, "the reader took no machine at all");
    assert_eq!(torn, 0, "of {taken} taken");
}
