//! Changes made while the server runs: a new reservation book from the
//! apply path (`api::live`), and leases removed by an operator. The
//! server's view changes at once; the caller has already made the change
//! durable and updated the XDP maps.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::leases::{Lease, LeaseChange};
use crate::reservation::book::Book;

use super::{Server, Share};

impl Server {
    /// Serves `book` from now on; `changed` are the MACs whose reservation
    /// differs from the current book's. A newly reserved address leaves
    /// the pools; a released one returns to them (once no lease holds it).
    pub fn take_book(&mut self, book: Arc<Book>, changed: &[[u8; 6]]) {
        for mac in changed {
            let old = self.book.reservation(mac).map(|r| r.ip);
            let new = book.reservation(mac).map(|r| r.ip);
            if old == new {
                continue;
            }
            if let Some(ip) = old {
                let held = self.table.get(ip).is_some();
                self.pools.unreserve(ip, held);
            }
            if let Some(ip) = new {
                self.pools.reserve(ip);
            }
        }
        self.book = book;
    }

    /// Ends the lease of `ip` now (an operator's decision): the address
    /// is free again. The change is for the store.
    pub fn remove_lease(&mut self, ip: Ipv4Addr) -> Option<(Lease, LeaseChange)> {
        let lease = self.table.remove(ip)?;
        self.pools.put(ip);
        Some((lease.clone(), LeaseChange::Remove(lease)))
    }

    /// The lease of `ip`, if any.
    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.table.get(ip)
    }

    /// Serves as a node of a cluster with `share` of its clients and
    /// addresses from now on; None: alone, as without a cluster.
    pub fn set_share(&mut self, share: Option<Share>) {
        self.cluster = share;
    }

    /// Holds a renewal ACKed while the store was away at the expiry it
    /// was given (`bounded`), if the table still has that client there.
    pub fn cap(&mut self, lease: Lease) {
        if self
            .table
            .get(lease.ip)
            .is_some_and(|l| l.mac == lease.mac && l.client_id == lease.client_id)
        {
            self.table.insert(lease);
        }
    }

    /// Whether `ip` is reserved for a machine.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        self.pools.is_reserved(ip)
    }

    pub fn share(&self) -> Option<&Share> {
        self.cluster.as_ref()
    }

    /// Lets go of a lease the shared store no longer holds, if the table
    /// still has it as it was removed (same holder, same expiry: not one
    /// written since). Nothing is written back. The lease let go, if any.
    pub fn forget(&mut self, freed: &crate::store::Freed) -> Option<Lease> {
        let l = self.table.get(freed.ip)?;
        let same =
            (l.mac == freed.mac || l.client_id == freed.client_id) && l.expires == freed.expires;
        if !same {
            return None;
        }
        let l = self.table.remove(freed.ip)?;
        self.pools.put(l.ip);
        self.learned.remove(&l.ip);
        Some(l)
    }

    /// Takes in a lease the shared store holds that this node did not
    /// write (another node's, or the one that beat this node's write):
    /// the address is held, and what this node thought of it gives way.
    /// The client's lease of another address stays held: the store may
    /// hold both (two nodes' offers), and forgetting one would offer it to
    /// the next client, only to lose it again. Nothing is written back:
    /// the store has it already. A version this node wrote later (the
    /// same holder, a newer update, no shorter) is kept.
    pub fn learn(&mut self, lease: Lease) {
        if let Some(mine) = self.table.get(lease.ip) {
            let same_holder = mine.mac == lease.mac || mine.client_id == lease.client_id;
            if *mine == lease
                || (same_holder && mine.updated > lease.updated && mine.expires >= lease.expires)
            {
                return;
            }
        }
        let ip = lease.ip;
        self.table.take_stored(lease);
        self.pools.take(ip);
        self.learned.insert(ip);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::sync::Arc;

    use crate::api::types::Source;
    use crate::config::{Config, Reservation};
    use crate::reservation::book::Entry;

    use super::*;

    fn cfg() -> Config {
        Config::from_str(
            r#"
[server]
interface = "sb0"
address = "10.0.0.1"
[[subnet]]
cidr = "10.0.0.0/24"
pool = ["10.0.0.10-10.0.0.12"]
[[reservation]]
mac = "02:00:00:00:00:01"
ip = "10.0.0.50"
"#,
            Path::new("t.toml"),
        )
        .unwrap()
    }

    fn reservation(mac: u8, ip: Ipv4Addr) -> Reservation {
        Reservation {
            mac: [2, 0, 0, 0, 0, mac],
            ip,
            hostname: None,
            subnet: 0,
            origin: "api".into(),
            options: Default::default(),
            profile: None,
            allow_pxe: true,
            boot_file: None,
            next_server: None,
            label: None,
        }
    }

    /// The server's book with `r` put in (or `mac` taken out).
    fn change(s: &mut Server, put: Option<Reservation>, remove: Option<u8>) {
        let mut book = (*s.book).clone();
        let mut changed = Vec::new();
        if let Some(r) = put {
            changed.push(r.mac);
            book.insert(Entry {
                reservation: r,
                source: Source::Api,
                spec: None,
            });
        }
        if let Some(m) = remove {
            changed.push([2, 0, 0, 0, 0, m]);
            book.remove(&[2, 0, 0, 0, 0, m]);
        }
        s.take_book(Arc::new(book), &changed);
    }

    #[test]
    fn a_reserved_pool_address_leaves_the_pool_and_returns_when_removed() {
        let mut s = Server::new(Arc::new(cfg()), vec![], 0);
        assert_eq!(s.pool_usage()[0].2, 3);
        let ip = Ipv4Addr::new(10, 0, 0, 11);
        change(&mut s, Some(reservation(2, ip)), None);
        assert_eq!(s.pool_usage()[0].2, 2);
        assert!(s.pools.is_reserved(ip));
        assert!(!s.pools.is_free(0, ip));
        // Moved out of the pool: the old address is free again.
        change(
            &mut s,
            Some(reservation(2, Ipv4Addr::new(10, 0, 0, 60))),
            None,
        );
        assert!(s.pools.is_free(0, ip));
        assert_eq!(s.pool_usage()[0].2, 3);
        // Given to another machine, then that one removed: free again.
        change(&mut s, Some(reservation(3, ip)), Some(2));
        assert!(!s.pools.is_free(0, ip));
        change(&mut s, None, Some(3));
        assert!(s.pools.is_free(0, ip));
        assert_eq!(s.book.len(), 1);
    }
}
