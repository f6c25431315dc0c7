//! Changes made while the server runs (through the API): reservations
//! added, replaced and removed, and leases removed. The server's view
//! changes at once; the caller has already made the change durable and
//! updated the XDP maps.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::config::Reservation;
use crate::leases::{Lease, LeaseChange};

use super::Server;

impl Server {
    /// Adds `r`, or replaces the reservation of its MAC. Its address
    /// leaves the pools; a replaced one's old address returns to them.
    pub fn upsert_reservation(&mut self, r: Reservation) {
        // The first change copies the configuration the daemon started
        // with; the server's copy is its own from then on.
        let cfg = Arc::make_mut(&mut self.cfg);
        let ip = r.ip;
        match self.reservations.get(&r.mac) {
            Some(&i) => {
                let old = std::mem::replace(&mut cfg.reservations[i], r);
                if old.ip != ip {
                    let held = self.table.get(old.ip).is_some();
                    self.pools.unreserve(old.ip, held);
                    self.pools.reserve(ip);
                }
            }
            None => {
                self.reservations.insert(r.mac, cfg.reservations.len());
                cfg.reservations.push(r);
                self.pools.reserve(ip);
            }
        }
    }

    /// Removes the reservation of `mac`; false if it had none. A lease the
    /// machine holds stays until it ends; its address then returns to the
    /// pools.
    pub fn remove_reservation(&mut self, mac: [u8; 6]) -> bool {
        let Some(i) = self.reservations.remove(&mac) else {
            return false;
        };
        let cfg = Arc::make_mut(&mut self.cfg);
        let old = cfg.reservations.swap_remove(i);
        if let Some(moved) = cfg.reservations.get(i) {
            self.reservations.insert(moved.mac, i);
        }
        let held = self.table.get(old.ip).is_some();
        self.pools.unreserve(old.ip, held);
        true
    }

    /// Ends the lease of `ip` now (an operator's decision): the address
    /// is free again. The change is for the store.
    pub fn remove_lease(&mut self, ip: Ipv4Addr) -> Option<(Lease, LeaseChange)> {
        let lease = self.table.remove(ip)?;
        self.pools.put(ip);
        Some((lease, LeaseChange::Remove(ip)))
    }

    /// The lease of `ip`, if any.
    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.table.get(ip)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::sync::Arc;

    use crate::config::Config;

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
            options: vec![],
            profile: None,
            allow_pxe: true,
            boot_file: None,
            next_server: None,
            label: None,
        }
    }

    #[test]
    fn a_reserved_pool_address_leaves_the_pool_and_returns_when_removed() {
        let mut s = Server::new(Arc::new(cfg()), vec![], 0);
        assert_eq!(s.pool_usage()[0].2, 3);
        let ip = Ipv4Addr::new(10, 0, 0, 11);
        s.upsert_reservation(reservation(2, ip));
        assert_eq!(s.pool_usage()[0].2, 2);
        assert!(s.pools.is_reserved(ip));
        assert!(!s.pools.is_free(0, ip));
        // Moved out of the pool: the old address is free again.
        s.upsert_reservation(reservation(2, Ipv4Addr::new(10, 0, 0, 60)));
        assert!(s.pools.is_free(0, ip));
        assert_eq!(s.pool_usage()[0].2, 3);
        // The config's reservation is still indexed after a swap_remove.
        s.upsert_reservation(reservation(3, ip));
        assert!(s.remove_reservation([2, 0, 0, 0, 0, 2]));
        assert!(!s.remove_reservation([2, 0, 0, 0, 0, 2]));
        assert_eq!(s.reservations.len(), 2);
        for (mac, &i) in &s.reservations {
            assert_eq!(s.cfg.reservations[i].mac, *mac);
        }
        assert!(s.remove_reservation([2, 0, 0, 0, 0, 3]));
        assert!(s.pools.is_free(0, ip));
        assert!(s.remove_reservation([2, 0, 0, 0, 0, 1]));
        assert!(s.cfg.reservations.is_empty());
    }
}
