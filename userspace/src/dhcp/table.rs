//! The lease table in memory: leases by address, the current address of
//! each client, leases by expiry, and the address each client last had.
//!
//! One lease per address (the key), and at most one offered-or-bound
//! lease per client that this node gives: binding a client to a new
//! address displaces its old one. What is loaded or learned from the store
//! is taken as the store holds it, where one client may hold two addresses
//! (two nodes' offers); the newer is then the client's current one.
//! Declined leases belong to no client; they only keep an address out of
//! the pool until their quarantine ends.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::leases::{Lease, LeaseState, UnixTime};

/// How many "previous address" entries are kept for clients that have no
/// lease any more; past this the memory is forgotten and starts over.
const MAX_PREVIOUS: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct Table {
    by_ip: HashMap<Ipv4Addr, Lease>,
    /// Client id -> addresses of its offered or bound leases, the
    /// current one last. One, unless the store holds more (`take_stored`).
    by_client: HashMap<Vec<u8>, Vec<Ipv4Addr>>,
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
            t.take_stored(lease);
        }
        t
    }

    /// Takes in a lease as the store holds it: it replaces what the table
    /// had for its address, and the client's lease of any other address
    /// stays (the store holds that one too), so the address is not offered
    /// to anyone else. The newer of the two is the client's current lease.
    pub fn take_stored(&mut self, lease: Lease) {
        if let Some(old) = self.by_ip.remove(&lease.ip) {
            self.unindex(&old);
        }
        self.by_expiry.insert((lease.expires, lease.ip));
        if holds(&lease) {
            let newer = self
                .of_client(&lease.client_id)
                .is_none_or(|current| lease.updated >= current.updated);
            let held = self.by_client.entry(lease.client_id.clone()).or_default();
            if newer {
                held.push(lease.ip);
            } else {
                held.insert(held.len() - 1, lease.ip);
            }
            self.previous.remove(&lease.client_id);
        }
        self.by_ip.insert(lease.ip, lease);
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    /// The client's offered or bound lease: the newest, when the store
    /// holds more than one.
    pub fn of_client(&self, client_id: &[u8]) -> Option<&Lease> {
        self.by_ip.get(self.by_client.get(client_id)?.last()?)
    }

    /// Every offered or bound lease of the client, the current one last.
    pub fn all_of_client(&self, client_id: &[u8]) -> impl Iterator<Item = &Lease> {
        self.by_client
            .get(client_id)
            .into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip))
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
        if let Some(held) = self.by_client.get_mut(&l.client_id) {
            held.retain(|&ip| ip != l.ip);
            if held.is_empty() {
                self.by_client.remove(&l.client_id);
            }
        }
    }

    /// Inserts or replaces the lease of `lease.ip`. Returns the leases it
    /// displaced whose addresses are now free: the client's leases of
    /// other addresses. (A replaced lease of the same address is not
    /// returned: its address stays held.)
    pub fn insert(&mut self, lease: Lease) -> Vec<Lease> {
        let mut freed = Vec::new();
        if let Some(old) = self.by_ip.remove(&lease.ip) {
            self.unindex(&old);
        }
        if holds(&lease) {
            let others: Vec<Ipv4Addr> = self
                .by_client
                .get(&lease.client_id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&ip| ip != lease.ip)
                .collect();
            freed.extend(others.into_iter().filter_map(|ip| self.remove(ip)));
            self.by_client
                .insert(lease.client_id.clone(), vec![lease.ip]);
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

    /// Two nodes offered one client two addresses and the store holds
    /// both: learning the second keeps the first held, so neither is
    /// offered to another client, and the newer is the client's current.
    #[test]
    fn a_stored_lease_keeps_the_clients_other_address_held() {
        let mut t = Table::default();
        t.insert(lease(10, 1, LeaseState::Offered, 30));
        let theirs = Lease {
            updated: 1,
            ..lease(11, 1, LeaseState::Offered, 31)
        };
        t.take_stored(theirs);
        assert_eq!(t.len(), 2);
        assert!(t.get(Ipv4Addr::new(10, 50, 0, 10)).is_some());
        assert_eq!(
            t.of_client(&[1, 0, 0, 0, 0, 0, 1]).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 50, 0, 11))
        );
        // An older stored lease does not become the current one.
        t.take_stored(lease(12, 1, LeaseState::Offered, 32));
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.of_client(&[1, 0, 0, 0, 0, 0, 1]).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 50, 0, 11))
        );
        // The node's own binding of the client displaces them all.
        let freed = t.insert(lease(13, 1, LeaseState::Bound, 3600));
        assert_eq!(freed.len(), 3);
        assert_eq!(t.len(), 1);
        t.take_stored(lease(10, 1, LeaseState::Offered, 30));
        t.take_stored(lease(11, 1, LeaseState::Offered, 31));
        // Each ends at its own time.
        assert_eq!(t.pop_expired(30).unwrap().ip, Ipv4Addr::new(10, 50, 0, 10));
        assert_eq!(t.pop_expired(31).unwrap().ip, Ipv4Addr::new(10, 50, 0, 11));
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
