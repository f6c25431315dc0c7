//! Leases: what the server has promised to whom and the changes the DHCP
//! logic makes to them.
//!
//! The DHCP logic (`crate::dhcp`) is pure: it returns `LeaseChange`s, and
//! the daemon sends a reply only after the store (`crate::store::LeaseStore`)
//! has made them durable.

mod event;

pub use event::{LeaseAction, LeaseEvent};

use std::net::Ipv4Addr;

/// Seconds since the Unix epoch; leases outlive processes, so wall time.
pub type UnixTime = u64;

/// Where a lease is in its life (RFC 2131 section 4.3 and 4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Offered, held for the client until `expires` (a short hold).
    Offered,
    /// Acknowledged: the client may use the address until `expires`.
    Bound,
    /// Declined by a client (the address is in use by someone else):
    /// quarantined until `expires`.
    Declined,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offered" => Some(LeaseState::Offered),
            "bound" => Some(LeaseState::Bound),
            "declined" => Some(LeaseState::Declined),
            _ => None,
        }
    }
}

/// One address's lease. The address is the key: at most one lease per
/// address, so no address is ever held by two clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// The client's identity: option 61 when it sent one, else 0x01 + chaddr
    /// (the same form RFC 2132 gives option 61 for Ethernet).
    pub client_id: Vec<u8>,
    pub mac: [u8; 6],
    pub state: LeaseState,
    /// When the lease (or hold, or quarantine) ends.
    pub expires: UnixTime,
    /// When it was last changed, for auditing and the API.
    pub updated: UnixTime,
    /// Host name the client sent (option 12), if any.
    pub hostname: Option<String>,
}

impl Lease {
    /// Whether renewing this lease for `mac` at `now` needs no write: it is
    /// bound to `mac`, unexpired, and was written less than `cache` ago
    /// (zero: never). The written lease then ends at most `cache` before
    /// the one the client was given, and the configuration keeps `cache`
    /// below the part of the lease left after T1, so it still outlasts the
    /// client's next renewal.
    pub fn renewal_cached(&self, mac: [u8; 6], now: UnixTime, cache: std::time::Duration) -> bool {
        self.state == LeaseState::Bound
            && self.mac == mac
            && self.expires > now
            && self.updated <= now
            && now - self.updated < cache.as_secs()
    }
}

/// A change the DHCP logic made; the store applies them in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    /// Insert or replace the lease of `lease.ip`.
    Upsert(Lease),
    /// The lease ended (released, expired, displaced, removed by an
    /// operator): its address is free again. The whole lease rides along
    /// so a shared store removes the row only while it is still this
    /// lease's: same holder, not extended since by another node.
    Remove(Lease),
}

/// Who holds which address, for readers outside the DHCP logic (the boot
/// HTTP service finds a machine by the address it connects from). The slow
/// path applies every change it makes; readers take a read lock briefly.
#[derive(Default)]
pub struct Index {
    inner: std::sync::RwLock<IndexMaps>,
}

#[derive(Default)]
struct IndexMaps {
    by_ip: std::collections::HashMap<Ipv4Addr, [u8; 6]>,
    by_mac: std::collections::HashMap<[u8; 6], Ipv4Addr>,
}

impl Index {
    pub fn apply(&self, changes: &[LeaseChange]) {
        let mut m = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            match c {
                LeaseChange::Upsert(l) if l.state == LeaseState::Declined => {
                    if let Some(mac) = m.by_ip.remove(&l.ip) {
                        m.by_mac.remove(&mac);
                    }
                }
                LeaseChange::Upsert(l) => {
                    if let Some(old) = m.by_ip.insert(l.ip, l.mac) {
                        if old != l.mac {
                            m.by_mac.remove(&old);
                        }
                    }
                    m.by_mac.insert(l.mac, l.ip);
                }
                LeaseChange::Remove(l) => {
                    if let Some(mac) = m.by_ip.remove(&l.ip) {
                        if m.by_mac.get(&mac) == Some(&l.ip) {
                            m.by_mac.remove(&mac);
                        }
                    }
                }
            }
        }
    }

    /// Records that `mac` uses `ip` without a lease of ours (proxyDHCP:
    /// another server leased it).
    pub fn observe(&self, mac: [u8; 6], ip: Ipv4Addr) {
        let mut m = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = m.by_ip.insert(ip, mac) {
            if old != mac {
                m.by_mac.remove(&old);
            }
        }
        if let Some(prev) = m.by_mac.insert(mac, ip) {
            if prev != ip {
                m.by_ip.remove(&prev);
            }
        }
    }

    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_ip
            .get(&ip)
            .copied()
    }

    pub fn ip_of(&self, mac: [u8; 6]) -> Option<Ipv4Addr> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_mac
            .get(&mac)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observed_address_moves_with_its_machine() {
        let idx = Index::default();
        idx.observe([1; 6], Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(idx.mac_of(Ipv4Addr::new(10, 0, 0, 5)), Some([1; 6]));
        idx.observe([1; 6], Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(idx.mac_of(Ipv4Addr::new(10, 0, 0, 5)), None);
        assert_eq!(idx.ip_of([1; 6]), Some(Ipv4Addr::new(10, 0, 0, 6)));
        idx.observe([2; 6], Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(idx.ip_of([1; 6]), None);
        assert_eq!(idx.mac_of(Ipv4Addr::new(10, 0, 0, 6)), Some([2; 6]));
    }

    fn lease(ip: [u8; 4], mac: u8, state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            client_id: vec![1, 2, 0, 0, 0, 0, mac],
            mac: [2, 0, 0, 0, 0, mac],
            state,
            expires: 10,
            updated: 0,
            hostname: None,
        }
    }

    #[test]
    fn index_follows_the_changes() {
        let i = Index::default();
        i.apply(&[LeaseChange::Upsert(lease(
            [10, 0, 0, 5],
            1,
            LeaseState::Bound,
        ))]);
        assert_eq!(
            i.mac_of(Ipv4Addr::new(10, 0, 0, 5)),
            Some([2, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            i.ip_of([2, 0, 0, 0, 0, 1]),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        // The address moves to another machine.
        i.apply(&[LeaseChange::Upsert(lease(
            [10, 0, 0, 5],
            2,
            LeaseState::Offered,
        ))]);
        assert_eq!(i.ip_of([2, 0, 0, 0, 0, 1]), None);
        i.apply(&[LeaseChange::Remove(lease(
            [10, 0, 0, 5],
            2,
            LeaseState::Offered,
        ))]);
        assert_eq!(i.mac_of(Ipv4Addr::new(10, 0, 0, 5)), None);
        i.apply(&[LeaseChange::Upsert(lease(
            [10, 0, 0, 6],
            3,
            LeaseState::Declined,
        ))]);
        assert_eq!(i.mac_of(Ipv4Addr::new(10, 0, 0, 6)), None);
    }
}
