//! Address allocation: each subnet's free addresses, kept as a set of
//! disjoint intervals, so that finding, taking and returning an address
//! cost O(log n) whatever the pool's size, and a /16 (or a /8) pool costs
//! memory in proportion to how fragmented it is, not to how large.
//!
//! An address is *allocatable* when it lies in one of its subnet's pool
//! ranges and is neither excluded nor reserved; it is *free* when it is
//! allocatable and no lease (offered, bound or declined) holds it.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use crate::config::Config;
use crate::reservation::book::Book;

use super::select::SubnetIndex;

/// Disjoint, non-adjacent inclusive intervals: start -> end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeSet {
    intervals: BTreeMap<u32, u32>,
    len: usize,
}

impl FreeSet {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The interval containing `x`.
    fn around(&self, x: u32) -> Option<(u32, u32)> {
        let (&s, &e) = self.intervals.range(..=x).next_back()?;
        (x <= e).then_some((s, e))
    }

    pub fn contains(&self, x: u32) -> bool {
        self.around(x).is_some()
    }

    /// Removes `x`; false if it was not free.
    pub fn take(&mut self, x: u32) -> bool {
        let Some((s, e)) = self.around(x) else {
            return false;
        };
        self.intervals.remove(&s);
        if s < x {
            self.intervals.insert(s, x - 1);
        }
        if x < e {
            self.intervals.insert(x + 1, e);
        }
        self.len -= 1;
        true
    }

    /// Adds `x`, merging with its neighbours; false if it was free already.
    pub fn put(&mut self, x: u32) -> bool {
        if self.contains(x) {
            return false;
        }
        let mut start = x;
        let mut end = x;
        if let Some(prev) = x.checked_sub(1) {
            if let Some((s, _)) = self.around(prev) {
                self.intervals.remove(&s);
                start = s;
            }
        }
        if let Some(next) = x.checked_add(1) {
            if let Some(e) = self.intervals.remove(&next) {
                end = e;
            }
        }
        self.intervals.insert(start, end);
        self.len += 1;
        true
    }

    /// Adds a whole range of addresses none of which is in the set.
    fn put_range(&mut self, first: u32, last: u32) {
        // Rare (building only), so one at a time would be fine for small
        // ranges; inserting the interval keeps a /8 pool cheap to build.
        let mut start = first;
        let mut end = last;
        if let Some(prev) = first.checked_sub(1) {
            if let Some((s, _)) = self.around(prev) {
                self.intervals.remove(&s);
                start = s;
            }
        }
        if let Some(next) = last.checked_add(1) {
            if let Some(e) = self.intervals.remove(&next) {
                end = e;
            }
        }
        self.intervals.insert(start, end);
        self.len += (last - first) as usize + 1;
    }

    /// The lowest free address.
    pub fn first(&self) -> Option<u32> {
        self.intervals.keys().next().copied()
    }

    /// The lowest free address at or above `x`.
    pub fn first_from(&self, x: u32) -> Option<u32> {
        if self.contains(x) {
            return Some(x);
        }
        self.intervals
            .range((std::ops::Bound::Excluded(x), std::ops::Bound::Unbounded))
            .next()
            .map(|(&s, _)| s)
    }
}

/// One subnet's pools.
#[derive(Debug, Clone)]
struct SubnetPool {
    /// Pool ranges, sorted and disjoint.
    ranges: Vec<(u32, u32)>,
    /// Excluded ranges, sorted (they may overlap one another).
    exclude: Vec<(u32, u32)>,
    free: FreeSet,
    /// Allocatable addresses: the pools less excluded and reserved ones.
    size: usize,
}

fn in_ranges(ranges: &[(u32, u32)], x: u32) -> bool {
    let i = ranges.partition_point(|&(first, _)| first <= x);
    i > 0 && x <= ranges[i - 1].1
}

fn in_overlapping(ranges: &[(u32, u32)], x: u32) -> bool {
    // Sorted by start, possibly overlapping: any range starting at or
    // before x may cover it; exclusion lists are short.
    ranges[..ranges.partition_point(|&(first, _)| first <= x)]
        .iter()
        .any(|&(_, last)| x <= last)
}

/// The free addresses of every subnet.
#[derive(Debug, Clone)]
pub struct Pools {
    subnets: Vec<SubnetPool>,
    index: SubnetIndex,
    /// Every reserved address (of any subnet): never handed out by a pool.
    reserved: HashSet<u32>,
}

impl Pools {
    /// The pools of `cfg` with every allocatable address free but the
    /// reserved ones.
    pub fn new(cfg: &Config, book: &Book) -> Pools {
        let mut reserved_by_subnet: Vec<Vec<u32>> = vec![Vec::new(); cfg.subnets.len()];
        let mut reserved = HashSet::with_capacity(book.len());
        for r in book.reservations() {
            reserved.insert(u32::from(r.ip));
            if let Some(v) = reserved_by_subnet.get_mut(usize::from(r.subnet)) {
                v.push(u32::from(r.ip));
            }
        }
        let subnets = cfg
            .subnets
            .iter()
            .zip(reserved_by_subnet)
            .map(|(s, reserved)| {
                let range = |&(a, b): &(Ipv4Addr, Ipv4Addr)| (u32::from(a), u32::from(b));
                let ranges: Vec<(u32, u32)> = s.pools.iter().map(range).collect();
                let exclude: Vec<(u32, u32)> = s.exclude.iter().map(range).collect();
                // Holes: excluded ranges and reserved addresses, by start.
                let mut holes: Vec<(u32, u32)> = exclude
                    .iter()
                    .copied()
                    .chain(reserved.into_iter().map(|ip| (ip, ip)))
                    .collect();
                holes.sort_unstable();
                let mut free = FreeSet::default();
                for &(first, last) in &ranges {
                    let mut next = Some(first);
                    // Holes overlap one another, so all those starting up to
                    // `last` are looked at; pools per subnet are few.
                    for &(hs, he) in &holes {
                        let Some(n) = next else { break };
                        if hs > last {
                            break;
                        }
                        if he < n {
                            continue;
                        }
                        if hs > n {
                            free.put_range(n, hs - 1);
                        }
                        next = if he >= last { None } else { Some(he + 1) };
                    }
                    if let Some(n) = next {
                        if n <= last {
                            free.put_range(n, last);
                        }
                    }
                }
                SubnetPool {
                    ranges,
                    exclude,
                    size: free.len(),
                    free,
                }
            })
            .collect();
        Pools {
            subnets,
            index: SubnetIndex::new(cfg),
            reserved,
        }
    }

    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        self.reserved.contains(&u32::from(ip))
    }

    /// In one of subnet `subnet`'s pools, not excluded, not reserved.
    pub fn allocatable(&self, subnet: usize, ip: Ipv4Addr) -> bool {
        let Some(p) = self.subnets.get(subnet) else {
            return false;
        };
        let x = u32::from(ip);
        in_ranges(&p.ranges, x) && !in_overlapping(&p.exclude, x) && !self.reserved.contains(&x)
    }

    /// Allocatable in `subnet` and held by no lease.
    pub fn is_free(&self, subnet: usize, ip: Ipv4Addr) -> bool {
        self.subnets
            .get(subnet)
            .is_some_and(|p| p.free.contains(u32::from(ip)))
    }

    /// The first free address of `subnet` from the start of slice `k` of
    /// `n` equal slices of its pool ranges, wrapping round to the lowest:
    /// nodes of a cluster, each searching from its own slice, do not reach
    /// for the same address while their slices last.
    pub fn free_in_slice(&self, subnet: usize, (k, n): (usize, usize)) -> Option<Ipv4Addr> {
        let p = self.subnets.get(subnet)?;
        let total: u64 = p.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum();
        // Within the ranges' addresses, excluded and reserved ones counted
        // too: slices are positions, not free counts.
        let mut offset = total * k.min(n) as u64 / n.max(1) as u64;
        let start = p.ranges.iter().find_map(|&(a, b)| {
            let len = u64::from(b - a) + 1;
            if offset < len {
                Some(a + offset as u32)
            } else {
                offset -= len;
                None
            }
        });
        start
            .and_then(|x| p.free.first_from(x))
            .or_else(|| p.free.first())
            .map(Ipv4Addr::from)
    }

    /// Marks `ip` held (by a lease); no effect outside the pools.
    pub fn take(&mut self, ip: Ipv4Addr) {
        if let Some(s) = self.index.containing(ip) {
            self.subnets[s].free.take(u32::from(ip));
        }
    }

    /// Marks `ip` free again if it is allocatable; the caller knows that
    /// no lease holds it any more.
    pub fn put(&mut self, ip: Ipv4Addr) {
        if let Some(s) = self.index.containing(ip) {
            if self.allocatable(s, ip) {
                self.subnets[s].free.put(u32::from(ip));
            }
        }
    }

    /// Reserves `ip` (a reservation made while running): it leaves its
    /// pool, free or not.
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        let x = u32::from(ip);
        let subnet = self.index.containing(ip);
        let was = subnet.is_some_and(|s| self.allocatable(s, ip));
        if !self.reserved.insert(x) {
            return;
        }
        if let (Some(s), true) = (subnet, was) {
            self.subnets[s].size -= 1;
            self.subnets[s].free.take(x);
        }
    }

    /// Unreserves `ip`: it rejoins its pool, and is free unless a lease
    /// still `held` it.
    pub fn unreserve(&mut self, ip: Ipv4Addr, held: bool) {
        let x = u32::from(ip);
        if !self.reserved.remove(&x) {
            return;
        }
        if let Some(s) = self.index.containing(ip) {
            if self.allocatable(s, ip) {
                self.subnets[s].size += 1;
                if !held {
                    self.subnets[s].free.put(x);
                }
            }
        }
    }

    /// (used, size) per subnet, index for index with the config's.
    pub fn usage(&self) -> Vec<(usize, usize)> {
        self.subnets
            .iter()
            .map(|p| (p.size - p.free.len(), p.size))
            .collect()
    }

    pub fn index(&self) -> &SubnetIndex {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The interval set against a plain set of addresses.
    #[test]
    fn free_set_matches_a_model() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut set = FreeSet::default();
        let mut model = BTreeSet::new();
        set.put_range(10, 200);
        model.extend(10u32..=200);
        for _ in 0..20_000 {
            let x = rng.gen_range(0..260u32);
            if rng.gen_bool(0.5) {
                assert_eq!(set.take(x), model.remove(&x), "take {x}");
            } else {
                assert_eq!(set.put(x), model.insert(x), "put {x}");
            }
            assert_eq!(set.len(), model.len());
            assert_eq!(set.first(), model.first().copied());
        }
        for x in 0..260 {
            assert_eq!(set.contains(x), model.contains(&x), "{x}");
        }
        // Intervals are disjoint and never adjacent (always merged).
        let iv: Vec<_> = set.intervals.iter().map(|(&s, &e)| (s, e)).collect();
        for w in iv.windows(2) {
            assert!(w[0].1 + 1 < w[1].0, "{iv:?}");
        }
    }

    #[test]
    fn edges_of_the_address_space() {
        let mut set = FreeSet::default();
        assert!(set.put(0));
        assert!(set.put(u32::MAX));
        assert!(set.put(u32::MAX - 1));
        assert!(set.take(u32::MAX));
        assert!(set.take(0));
        assert_eq!(set.len(), 1);
        assert!(!set.take(0));
    }

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
             [[subnet]]\ncidr = \"10.50.0.0/24\"\nrouters = [\"10.50.0.254\"]\n{extra}"
        );
        Config::from_str(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn pools_less_excludes_and_reservations() {
        let c = cfg("pool = [\"10.50.0.10-10.50.0.19\", \"10.50.0.100\"]\n\
             exclude = [\"10.50.0.12\", \"10.50.0.14-10.50.0.15\", \"10.50.0.13-10.50.0.14\"]\n\
             [[reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.50.0.17\"\n\
             [[reservation]]\nmac = \"52:54:00:00:00:02\"\nip = \"10.50.0.50\"\n");
        let mut p = Pools::new(&c, &Book::of_config(&c));
        let ip = |d| Ipv4Addr::new(10, 50, 0, d);
        let free: Vec<u8> = (0..=255).filter(|&d| p.is_free(0, ip(d))).collect();
        assert_eq!(free, [10, 11, 16, 18, 19, 100]);
        assert_eq!(p.usage(), [(0, 6)]);
        assert!(p.allocatable(0, ip(100)));
        assert!(!p.allocatable(0, ip(17)), "reserved");
        assert!(!p.allocatable(0, ip(13)), "excluded");
        assert!(!p.allocatable(0, ip(50)), "outside the pools");
        assert!(p.is_reserved(ip(50)));
        assert_eq!(p.free_in_slice(0, (0, 1)), Some(ip(10)));
        p.take(ip(10));
        p.take(ip(17)); // not allocatable: no effect
        assert_eq!(p.free_in_slice(0, (0, 1)), Some(ip(11)));
        assert_eq!(p.usage(), [(1, 6)]);
        p.put(ip(17));
        p.put(ip(10));
        assert!(!p.is_free(0, ip(17)));
        assert_eq!(p.usage(), [(0, 6)]);
    }

    #[test]
    fn each_slice_starts_its_own_part_of_the_pools_and_wraps_when_full() {
        // 20 addresses in two ranges, less an exclusion.
        let c = cfg(
            "pool = [\"10.50.0.10-10.50.0.19\", \"10.50.0.100-10.50.0.109\"]\n\
             exclude = [\"10.50.0.15\"]\n",
        );
        let mut p = Pools::new(&c, &Book::of_config(&c));
        let ip = |d| Ipv4Addr::new(10, 50, 0, d);
        let first = |p: &Pools, k| p.free_in_slice(0, (k, 4));
        assert_eq!(
            [0, 1, 2, 3].map(|k| first(&p, k)),
            // Slice 1 starts at the excluded .15: its next free address.
            [Some(ip(10)), Some(ip(16)), Some(ip(100)), Some(ip(105))]
        );
        // Slice 3 full: it wraps round to the lowest free address.
        for d in 105..=109 {
            p.take(ip(d));
        }
        assert_eq!(first(&p, 3), Some(ip(10)));
        for d in (10..=19).chain(100..=104) {
            p.take(ip(d));
        }
        assert_eq!(first(&p, 3), None);
    }

    #[test]
    fn a_slash_16_pool_is_cheap() {
        let text = "[server]\ninterface = \"sb0\"\naddress = \"10.0.0.1\"\n\n\
                    [[subnet]]\ncidr = \"10.0.0.0/8\"\npool = [\"10.1.0.0-10.255.255.254\"]\n";
        let c = Config::from_str(text, Path::new("t.toml")).unwrap();
        let mut p = Pools::new(&c, &Book::of_config(&c));
        let size = 0x00ff_ffff - 0x0001_0000;
        assert_eq!(p.usage(), [(0, size)]);
        for _ in 0..65_536 {
            let ip = p.free_in_slice(0, (0, 1)).unwrap();
            p.take(ip);
        }
        assert_eq!(p.free_in_slice(0, (0, 1)), Some(Ipv4Addr::new(10, 2, 0, 0)));
        assert_eq!(p.subnets[0].free.intervals.len(), 1);
    }
}
