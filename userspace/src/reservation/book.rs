//! The reservation book: every reservation the daemon serves (the config
//! file's, the API's, OMAPI's), indexed by MAC, by address and by OMAPI
//! name, with the configuration they were checked against.
//!
//! A `Book` is a value: persistent maps (`imbl`), so a copy costs O(1) and
//! a change copies only the few tree nodes on its path. The apply path
//! (`api::live`) changes its own copy and publishes it whole through
//! [`Published`]; the DHCP server, the boot services, the API and the
//! metrics read a snapshot that never changes under them, without a lock.
//! One copy of each reservation lives here (`Arc<Entry>`), shared by every
//! snapshot that holds it.
//!
//! Lookups by MAC and by address walk a B-tree of 16-wide nodes: five node
//! visits at a million reservations, against the linear scans this
//! replaced.

use std::net::Ipv4Addr;
use std::sync::Arc;

use imbl::OrdMap;

use crate::api::types::{ReservationSpec, Source};
use crate::config::{self, Config};

/// One reservation the daemon serves.
#[derive(Clone, Debug)]
pub struct Entry {
    pub reservation: config::Reservation,
    pub source: Source,
    /// As the client wrote it; None for the file's entries, whose spec is
    /// derived when asked for: kept for each of a million reservations it
    /// would double the daemon's memory. Boxed, so the file's entries do
    /// not carry its size either.
    pub spec: Option<Box<ReservationSpec>>,
}

impl Entry {
    /// The OMAPI host name it was written with, if any.
    pub fn omapi_name(&self) -> Option<&str> {
        self.spec.as_ref().and_then(|s| s.omapi_name.as_deref())
    }
}

/// The reservations and the configuration they were checked against (its
/// own `reservations` list is empty: the book holds them).
#[derive(Clone)]
pub struct Book {
    cfg: Arc<Config>,
    by_mac: OrdMap<[u8; 6], Arc<Entry>>,
    by_ip: OrdMap<Ipv4Addr, [u8; 6]>,
    /// OMAPI host names, unique as dhcpd's host names are.
    by_name: OrdMap<String, [u8; 6]>,
    /// Reservations per subnet, index for index with `cfg.subnets`.
    per_subnet: Vec<usize>,
}

/// Below this many reservations a book is built on one thread.
const PARALLEL_FROM: usize = 10_000;

/// The entries of `list` (from `source`, as written: no client spec), in
/// its order. The list is taken from its end and shrunk as it goes, so
/// its memory is handed back while the entries take theirs.
fn entries(mut list: Vec<config::Reservation>, source: Source) -> Vec<Arc<Entry>> {
    const STEP: usize = 1 << 16;
    let mut out = Vec::with_capacity(list.len());
    while !list.is_empty() {
        let from = list.len().saturating_sub(STEP);
        out.extend(list.drain(from..).rev().map(|reservation| {
            Arc::new(Entry {
                reservation,
                source,
                spec: None,
            })
        }));
        list.shrink_to_fit();
    }
    out.reverse();
    out
}

/// The map of `pair` of every entry, filled so that its leaves are full.
///
/// A B-tree leaf that overflows is split in two halves, so keys inserted
/// in order leave every leaf half full: at a million reservations that is
/// about 20 MB more for the two maps. Inserting every other key in order
/// first (leaves of half of them) and then the keys between fills each
/// leaf with its own missing half.
fn packed<K: Ord + Clone, V: Clone>(
    entries: &[Arc<Entry>],
    pair: impl Fn(&Arc<Entry>) -> (K, V),
) -> OrdMap<K, V> {
    let mut pairs: Vec<(K, V)> = entries.iter().map(pair).collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut map = OrdMap::new();
    for half in [0, 1] {
        for (k, v) in pairs.iter().skip(half).step_by(2) {
            map.insert(k.clone(), v.clone());
        }
    }
    map
}

/// The book every reader sees; replaced whole by the apply path.
pub type Published = Arc<arc_swap::ArcSwap<Book>>;

impl Book {
    /// A book of `reservations` (already checked: no two share a MAC or
    /// an address) from `source`, against `cfg`; `cfg.reservations` is not
    /// read.
    ///
    /// The list is freed as its entries are made, so a million
    /// reservations are not held twice, and the maps by MAC and by
    /// address are filled on two threads.
    pub fn new(cfg: Arc<Config>, reservations: Vec<config::Reservation>, source: Source) -> Book {
        let mut per_subnet = vec![0; cfg.subnets.len()];
        let entries = entries(reservations, source);
        for e in &entries {
            if let Some(c) = per_subnet.get_mut(e.reservation.subnet) {
                *c += 1;
            }
        }
        let by_ip =
            |entries: &[Arc<Entry>]| packed(entries, |e| (e.reservation.ip, e.reservation.mac));
        let by_mac = |entries: &[Arc<Entry>]| packed(entries, |e| (e.reservation.mac, e.clone()));
        let (by_mac, by_ip) = if entries.len() < PARALLEL_FROM {
            (by_mac(&entries), by_ip(&entries))
        } else {
            std::thread::scope(|s| {
                let ips = s.spawn(|| by_ip(&entries));
                let macs = by_mac(&entries);
                (
                    macs,
                    ips.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            })
        };
        Book {
            per_subnet,
            cfg,
            by_mac,
            by_ip,
            by_name: OrdMap::new(),
        }
    }

    /// The book of a configuration built in code (tests, `check-config`):
    /// its `reservations`, as the file's.
    pub fn of_config(cfg: &Config) -> Book {
        let mut rest = cfg.clone();
        let reservations = std::mem::take(&mut rest.reservations);
        Book::new(Arc::new(rest), reservations, Source::Config)
    }

    /// This book, published for readers.
    pub fn publish(self) -> Published {
        Arc::new(arc_swap::ArcSwap::from_pointee(self))
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    pub fn get(&self, mac: &[u8; 6]) -> Option<&Entry> {
        self.by_mac.get(mac).map(|e| &**e)
    }

    /// The entry of `mac`, to keep beyond the book's borrow.
    pub fn shared(&self, mac: &[u8; 6]) -> Option<Arc<Entry>> {
        self.by_mac.get(mac).cloned()
    }

    /// The reservation of `mac`.
    pub fn reservation(&self, mac: &[u8; 6]) -> Option<&config::Reservation> {
        self.get(mac).map(|e| &e.reservation)
    }

    /// The MAC holding `ip`.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.by_ip.get(&ip).copied()
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Entry> {
        self.mac_of(ip).and_then(|m| self.get(&m))
    }

    /// The reservation OMAPI knows as host `name`.
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|m| self.get(m))
    }

    /// Every entry in MAC order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_mac.values().map(|e| &**e)
    }

    /// The entries after `mac` (all of them for None), in MAC order.
    pub fn after(&self, mac: Option<[u8; 6]>) -> impl Iterator<Item = &Entry> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = mac.map_or(Unbounded, Excluded);
        self.by_mac.range((from, Unbounded)).map(|(_, e)| &**e)
    }

    /// Every reservation in MAC order.
    pub fn reservations(&self) -> impl Iterator<Item = &config::Reservation> {
        self.entries().map(|e| &e.reservation)
    }

    /// Reservations in subnet `i` of the configuration.
    pub fn in_subnet(&self, i: usize) -> usize {
        self.per_subnet.get(i).copied().unwrap_or(0)
    }

    /// Adds `entry`, or replaces the entry of its MAC (its old address and
    /// name are released). The caller has checked it against the rest.
    pub fn insert(&mut self, entry: Entry) {
        let mac = entry.reservation.mac;
        self.remove(&mac);
        if let Some(n) = entry.omapi_name() {
            self.by_name.insert(n.to_owned(), mac);
        }
        self.by_ip.insert(entry.reservation.ip, mac);
        if let Some(c) = self.per_subnet.get_mut(entry.reservation.subnet) {
            *c += 1;
        }
        self.by_mac.insert(mac, Arc::new(entry));
    }

    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Arc<Entry>> {
        let e = self.by_mac.remove(mac)?;
        if self.by_ip.get(&e.reservation.ip) == Some(mac) {
            self.by_ip.remove(&e.reservation.ip);
        }
        if let Some(n) = e.omapi_name() {
            if self.by_name.get(n) == Some(mac) {
                self.by_name.remove(n);
            }
        }
        if let Some(c) = self.per_subnet.get_mut(e.reservation.subnet) {
            *c -= 1;
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::from_str(
            r#"
            [server]
            interface = "x"
            address = "10.0.0.1"
            [[subnet]]
            cidr = "10.0.0.0/24"
            [[subnet]]
            cidr = "10.0.1.0/24"
            [[reservation]]
            mac = "02:00:00:00:00:01"
            ip = "10.0.0.10"
            [[reservation]]
            mac = "02:00:00:00:00:02"
            ip = "10.0.1.10"
            "#,
            std::path::Path::new("t.toml"),
        )
        .expect("config")
    }

    #[test]
    fn a_copy_does_not_see_later_changes() {
        let book = Book::of_config(&cfg());
        let before = book.clone();
        let mut after = book;
        let mut moved = after.get(&[2, 0, 0, 0, 0, 1]).cloned().expect("entry");
        moved.reservation.ip = Ipv4Addr::new(10, 0, 0, 11);
        after.insert(moved);
        after.remove(&[2, 0, 0, 0, 0, 2]);

        assert_eq!(before.len(), 2);
        assert_eq!(
            before.mac_of(Ipv4Addr::new(10, 0, 0, 10)),
            Some([2, 0, 0, 0, 0, 1])
        );
        assert_eq!((before.in_subnet(0), before.in_subnet(1)), (1, 1));

        assert_eq!(after.len(), 1);
        assert_eq!(after.mac_of(Ipv4Addr::new(10, 0, 0, 10)), None);
        assert_eq!(
            after.mac_of(Ipv4Addr::new(10, 0, 0, 11)),
            Some([2, 0, 0, 0, 0, 1])
        );
        assert_eq!((after.in_subnet(0), after.in_subnet(1)), (1, 0));
    }

    #[test]
    fn a_large_book_finds_every_entry_by_mac_and_by_address() {
        let mut cfg = cfg();
        let template = cfg.reservations[0].clone();
        cfg.reservations = (0..PARALLEL_FROM as u32 + 5)
            .map(|i| {
                let mut r = template.clone();
                r.mac = [2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                r.ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 1)) + i);
                r.subnet = (i % 2) as usize;
                r
            })
            .collect();
        let book = Book::of_config(&cfg);
        assert_eq!(book.len(), cfg.reservations.len());
        for r in &cfg.reservations {
            assert_eq!(book.reservation(&r.mac), Some(r));
            assert_eq!(book.mac_of(r.ip), Some(r.mac));
        }
        let n = cfg.reservations.len();
        assert_eq!((book.in_subnet(0), book.in_subnet(1)), (n - n / 2, n / 2));
    }

    #[test]
    fn pages_follow_mac_order() {
        let book = Book::of_config(&cfg());
        let macs: Vec<_> = book.after(None).map(|e| e.reservation.mac[5]).collect();
        assert_eq!(macs, [1, 2]);
        let rest: Vec<_> = book
            .after(Some([2, 0, 0, 0, 0, 1]))
            .map(|e| e.reservation.mac[5])
            .collect();
        assert_eq!(rest, [2]);
    }
}
