//! The reservation book: every reservation the daemon serves (the config
//! file's, the API's, OMAPI's), indexed by MAC, by address and by OMAPI
//! name, with the configuration they were checked against.
//!
//! A `Book` is a value: persistent maps (`imbl`), so a copy costs O(1) and
//! a change copies only the few tree nodes on its path. The apply path
//! (`api::live`) changes its own copy and publishes it whole through
//! [`Published`]; the DHCP server, the boot services, the API and the
//! metrics read a snapshot that never changes under them, without a lock.
//! Each reservation is held once, in place in the map by MAC's nodes
//! (about 100 bytes a machine, see `compact`): a pointer to a shared copy
//! of its own would cost a header, an allocation and the pointer, a
//! third again at a million machines.
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
    by_mac: OrdMap<[u8; 6], Entry>,
    by_ip: OrdMap<Ipv4Addr, [u8; 6]>,
    /// OMAPI host names, unique as dhcpd's host names are.
    by_name: OrdMap<String, [u8; 6]>,
    /// Reservations per subnet, index for index with `cfg.subnets`.
    per_subnet: Vec<usize>,
}

/// Below this many reservations a book is built on one thread.
const PARALLEL_FROM: usize = 10_000;

/// Inserts every other item of `items` (sorted by key), from the first,
/// as `pair` makes it.
///
/// A B-tree leaf that overflows is split in two halves, so keys inserted
/// in order leave every leaf half full: at a million reservations that is
/// about 20 MB more for the map by address and 50 MB for the one by MAC.
/// Inserting every other key in order first (leaves of half of them) and
/// then the keys between fills each leaf with its own missing half.
fn insert_every_other<T, K: Ord + Clone, V: Clone>(
    map: &mut OrdMap<K, V>,
    items: impl Iterator<Item = T>,
    pair: impl Fn(T) -> (K, V),
) {
    for t in items.step_by(2) {
        let (k, v) = pair(t);
        map.insert(k, v);
    }
}

/// The map from address to MAC of `list`, its leaves full.
fn ip_index(list: &[config::Reservation]) -> OrdMap<Ipv4Addr, [u8; 6]> {
    let mut pairs: Vec<_> = list.iter().map(|r| (r.ip, r.mac)).collect();
    pairs.sort_unstable_by_key(|p| p.0);
    let mut map = OrdMap::new();
    insert_every_other(&mut map, pairs.iter(), |p| *p);
    insert_every_other(&mut map, pairs.into_iter().skip(1), |p| p);
    map
}

/// The book every reader sees; replaced whole by the apply path.
pub type Published = Arc<arc_swap::ArcSwap<Book>>;

impl Book {
    /// A book of `reservations` (already checked: no two share a MAC or
    /// an address) from `source`, against `cfg`; `cfg.reservations` is not
    /// read.
    ///
    /// The list is sorted in place and its reservations move into the map
    /// by MAC (half of them cloned first, see `insert_every_other`), so a million are
    /// held twice only until the list is dropped; the map by address is
    /// filled on another thread meanwhile.
    pub fn new(
        cfg: Arc<Config>,
        mut reservations: Vec<config::Reservation>,
        source: Source,
    ) -> Book {
        let mut per_subnet = vec![0; cfg.subnets.len()];
        for r in &reservations {
            if let Some(c) = per_subnet.get_mut(usize::from(r.subnet)) {
                *c += 1;
            }
        }
        reservations.sort_unstable_by_key(|r| r.mac);
        let entry = |reservation| Entry {
            reservation,
            source,
            spec: None,
        };
        let mut by_mac = OrdMap::new();
        let first_half = |map: &mut OrdMap<_, _>, list: &[config::Reservation]| {
            insert_every_other(map, list.iter(), |r| (r.mac, entry(r.clone())))
        };
        let by_ip = if reservations.len() < PARALLEL_FROM {
            first_half(&mut by_mac, &reservations);
            ip_index(&reservations)
        } else {
            std::thread::scope(|s| {
                let ips = s.spawn(|| ip_index(&reservations));
                first_half(&mut by_mac, &reservations);
                ips.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        };
        insert_every_other(&mut by_mac, reservations.into_iter().skip(1), |r| {
            (r.mac, entry(r))
        });
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
        self.by_mac.get(mac)
    }

    /// A copy of the entry of `mac`, to keep beyond the book's borrow.
    pub fn owned(&self, mac: &[u8; 6]) -> Option<Entry> {
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
        self.by_mac.values()
    }

    /// The entries after `mac` (all of them for None), in MAC order.
    pub fn after(&self, mac: Option<[u8; 6]>) -> impl Iterator<Item = &Entry> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = mac.map_or(Unbounded, Excluded);
        self.by_mac.range((from, Unbounded)).map(|(_, e)| e)
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
        if let Some(c) = self
            .per_subnet
            .get_mut(usize::from(entry.reservation.subnet))
        {
            *c += 1;
        }
        self.by_mac.insert(mac, entry);
    }

    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Entry> {
        let e = self.by_mac.remove(mac)?;
        if self.by_ip.get(&e.reservation.ip) == Some(mac) {
            self.by_ip.remove(&e.reservation.ip);
        }
        if let Some(n) = e.omapi_name() {
            if self.by_name.get(n) == Some(mac) {
                self.by_name.remove(n);
            }
        }
        if let Some(c) = self.per_subnet.get_mut(usize::from(e.reservation.subnet)) {
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
                r.subnet = (i % 2) as u16;
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
    fn an_entry_stays_small() {
        // A million are held in place: each 8 bytes more is 8 MB of the
        // daemon's memory (README, the control plane at a million).
        assert!(
            std::mem::size_of::<Entry>() <= 88,
            "{} bytes",
            std::mem::size_of::<Entry>()
        );
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
