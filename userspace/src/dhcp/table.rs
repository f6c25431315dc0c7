//! The lease table in memory: leases by address, the current address of
//! each client, leases by expiry, and the address each client last had.
//!
//! One lease per address (the key), and at most one offered-or-bound
//! lease per client: binding a client to a new address displaces its old
//! one. Declined leases belong to no client; they only keep an address out
//! of the pool until their quarantine ends.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::leases::{Lease, LeaseState, UnixTime};

/// How many "previous address" entries are kept for clients that have no
/// lease any more; past this the memory is forgotten and starts over.
const MAX_PREVIOUS: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct Table {
    by_ip: HashMap<Ipv4Addr, Lease>,
    /// Client id -> address of its offered or bound lease.
    by_client: HashMap<Vec<u8>, Ipv4Addr>,
    by_expiry: BTreeSet<(UnixTime, Ipv4Addr)>,
    /// Client id -> the address of its last lease that ended (released or
    /// expired): RFC 2131 4.3.1 offers it again when it is still free.
    previous: HashMap<Vec<u8>, Ipv4Addr>,
}

fn holds(l: &Lease) -> bool {
    l.state != LeaseState::Declined
}

impl Table {
    /// A table of stored leases, as they are: expired ones go at the next
    /// expiry. When a client has several (a store written by an older
    /// version), the most recently updated is its current one.
    pub fn load(leases: Vec<Lease>) -> Table {
        let mut t = Table::default();
        t.by_ip.reserve(leases.len());
        for lease in leases {
            if let Some(old) = t.by_ip.remove(&lease.ip) {
                t.unindex(&old);
            }
            t.by_expiry.insert((lease.expires, lease.ip));
            if holds(&lease) {
                let newer = match t
                    .by_client
                    .get(&lease.client_id)
                    .and_then(|ip| t.by_ip.get(ip))
                {
                    Some(current) => lease.updated >= current.updated,
                    None => true,
                };
                if newer {
                    t.by_client.insert(lease.client_id.clone(), lease.ip);
                }
            }
            t.by_ip.insert(lease.ip, lease);
        }
        t
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    /// The client's offered or bound lease.
    pub fn of_client(&self, client_id: &[u8]) -> Option<&Lease> {
        self.by_ip.get(self.by_client.get(client_id)?)
    }

    /// The address of the client's last lease, if it has none now.
    pub fn previous(&self, client_id: &[u8]) -> Option<Ipv4Addr> {
        self.previous.get(client_id).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    fn unindex(&mut self, l: &Lease) {
        self.by_expiry.remove(&(l.expires, l.ip));
        if self.by_client.get(&l.client_id) == Some(&l.ip) {
            self.by_client.remove(&l.client_id);
        }
    }

    /// Inserts or replaces the lease of `lease.ip`. Returns the leases it
    /// displaced whose addresses are now free: the client's lease of
    /// another address. (A replaced lease of the same address is not
    /// returned: its address stays held.)
    pub fn insert(&mut self, lease: Lease) -> Vec<Lease> {
        let mut freed = Vec::new();
        if let Some(old) = self.by_ip.remove(&lease.ip) {
            self.unindex(&old);
        }
        if holds(&lease) {
            if let Some(&other) = self.by_client.get(&lease.client_id) {
                if other != lease.ip {
                    if let Some(old) = self.remove(other) {
                        freed.push(old);
                    }
                }
            }
            self.by_client.insert(lease.client_id.clone(), lease.ip);
            self.previous.remove(&lease.client_id);
        }
        self.by_expiry.insert((lease.expires, lease.ip));
        self.by_ip.insert(lease.ip, lease);
        freed
    }

    /// Removes the lease of `ip`, remembering the address for its client.
    pub fn remove(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let l = self.by_ip.remove(&ip)?;
        self.unindex(&l);
        if holds(&l) && !self.by_client.contains_key(&l.client_id) {
            if self.previous.len() >= MAX_PREVIOUS {
                self.previous.clear();
            }
            self.previous.insert(l.client_id.clone(), ip);
        }
        Some(l)
    }

    /// Removes and returns the next lease whose time has come.
    pub fn pop_expired(&mut self, now: UnixTime) -> Option<Lease> {
        let &(expires, ip) = self.by_expiry.first()?;
        if expires > now {
            return None;
        }
        match self.remove(ip) {
            Some(l) => Some(l),
            None => {
                // Cannot happen (the indexes move together); drop the entry
                // rather than loop on it.
                self.by_expiry.remove(&(expires, ip));
                self.pop_expired(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: u8, client: u8, state: LeaseState, expires: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 50, 0, ip),
            client_id: vec![1, 0, 0, 0, 0, 0, client],
            mac: [0, 0, 0, 0, 0, client],
            state,
            expires,
            updated: 0,
            hostname: None,
        }
    }

    #[test]
    fn one_address_per_client() {
        let mut t = Table::default();
        assert!(t.insert(lease(10, 1, LeaseState::Offered, 30)).is_empty());
        let freed = t.insert(lease(11, 1, LeaseState::Bound, 3600));
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0].ip, Ipv4Addr::new(10, 50, 0, 10));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.of_client(&[1, 0, 0, 0, 0, 0, 1]).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 50, 0, 11))
        );
        // Another client takes over the address: the first loses it.
        assert!(t.insert(lease(11, 2, LeaseState::Bound, 3600)).is_empty());
        assert!(t.of_client(&[1, 0, 0, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn expiry_in_order_and_previous_address() {
        let mut t = Table::default();
        t.insert(lease(10, 1, LeaseState::Bound, 100));
        t.insert(lease(11, 2, LeaseState::Offered, 50));
        t.insert(lease(12, 3, LeaseState::Declined, 75));
        assert!(t.pop_expired(49).is_none());
        assert_eq!(t.pop_expired(100).unwrap().ip, Ipv4Addr::new(10, 50, 0, 11));
        assert_eq!(t.pop_expired(100).unwrap().ip, Ipv4Addr::new(10, 50, 0, 12));
        assert_eq!(t.pop_expired(100).unwrap().ip, Ipv4Addr::new(10, 50, 0, 10));
        assert!(t.pop_expired(u64::MAX).is_none());
        assert!(t.is_empty());
        assert_eq!(
            t.previous(&[1, 0, 0, 0, 0, 0, 1]),
            Some(Ipv4Addr::new(10, 50, 0, 10))
        );
        assert_eq!(t.previous(&[1, 0, 0, 0, 0, 0, 3]), None, "declined");
    }

    #[test]
    fn load_keeps_the_newest_lease_of_a_client() {
        let mut a = lease(10, 1, LeaseState::Bound, 100);
        a.updated = 5;
        let mut b = lease(11, 1, LeaseState::Bound, 100);
        b.updated = 9;
        let t = Table::load(vec![b, a]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.of_client(&[1, 0, 0, 0, 0, 0, 1]).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 50, 0, 11))
        );
    }
}
