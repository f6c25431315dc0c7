//! An address's history (IPAM): every change of its holder or state, as
//! both backends record it with a trigger on their `leases` table and
//! return it through `LeaseStore::history`, newest first.
//!
//! A trigger, not the store's writer, records it: whoever writes a lease
//! (this daemon, another node of a cluster, an operator's SQL), the
//! history follows. A renewal (same holder, same state, a later expiry)
//! records nothing, so a busy address's history is its holders, not its
//! renewals.

use std::net::Ipv4Addr;
use std::time::Duration;

/// How long a history entry is kept. SQLite's writer prunes older ones
/// as it commits (at most once per `PRUNE_EVERY`); in a cluster the
/// leader prunes PostgreSQL's (`cluster::leader`).
pub const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// How often SQLite's writer looks for entries past `RETENTION`.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Most entries one `history` call returns.
pub const MAX_LIMIT: usize = 1000;

/// What happened to the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressEvent {
    /// Offered to a client (held for it briefly).
    Offered,
    /// Acknowledged: the client holds it.
    Bound,
    /// Declined by a client: quarantined.
    Declined,
    /// Free again: released, expired, or removed by an operator.
    Freed,
}

impl AddressEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressEvent::Offered => "offered",
            AddressEvent::Bound => "bound",
            AddressEvent::Declined => "declined",
            AddressEvent::Freed => "freed",
        }
    }

    pub fn parse(s: &str) -> Option<AddressEvent> {
        [
            AddressEvent::Offered,
            AddressEvent::Bound,
            AddressEvent::Declined,
            AddressEvent::Freed,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// One entry of an address's history: the event and the lease it
/// happened to (for `Freed`, the lease that ended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRecord {
    pub event: AddressEvent,
    pub mac: [u8; 6],
    pub client_id: Vec<u8>,
    pub hostname: Option<String>,
    /// The node that wrote the lease (a cluster's `cluster.node`); None
    /// for SQLite, and for a lease written outside a cluster.
    pub node: Option<String>,
    /// The lease's expiry, Unix seconds.
    pub expires: u64,
    /// When it was recorded, Unix seconds, by the store's clock (the
    /// database server's for PostgreSQL).
    pub at: u64,
}

/// A history row's columns as a backend reads them, before they are
/// trusted.
pub struct HistoryColumns {
    pub ip: Ipv4Addr,
    pub event: String,
    pub mac: Vec<u8>,
    pub client_id: Vec<u8>,
    pub hostname: Option<String>,
    pub node: Option<String>,
    pub expires: i64,
    pub at: i64,
}

impl HistoryColumns {
    /// The record, refusing (rather than guessing at) values no trigger
    /// writes.
    pub fn record(self) -> Result<AddressRecord, String> {
        let ip = self.ip;
        let event = AddressEvent::parse(&self.event)
            .ok_or_else(|| format!("history of {ip}: unknown event {:?}", self.event))?;
        let mac = <[u8; 6]>::try_from(self.mac.as_slice())
            .map_err(|_| format!("history of {ip}: mac has {} bytes, not 6", self.mac.len()))?;
        let time = |t: i64, what| -> Result<u64, String> {
            u64::try_from(t).map_err(|_| format!("history of {ip}: {what} = {t} is before 1970"))
        };
        Ok(AddressRecord {
            event,
            mac,
            client_id: self.client_id,
            hostname: self.hostname,
            node: self.node,
            expires: time(self.expires, "expires")?,
            at: time(self.at, "at")?,
        })
    }
}

/// `limit` as a backend may use it: at least 1, at most `MAX_LIMIT`.
pub fn bounded(limit: usize) -> i64 {
    limit.clamp(1, MAX_LIMIT) as i64
}
