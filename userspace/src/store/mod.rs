//! Stores: where leases and the API's reservations are made durable, behind
//! two traits, `LeaseStore` and `ReservationStore`, that every backend
//! implements and that `conformance` holds every backend to.
//!
//! `sqlite` is the embedded default (one file, WAL, one writer thread that
//! group-commits both kinds of change). A shared backend (PostgreSQL, for
//! several nodes) sits beside it: `open` picks one from the `[store]`
//! section, and the daemon sees only the traits.
//!
//! The traits are shaped for a backend across a network as much as for a
//! file: every call that touches the backend returns a `'static` future (the
//! work may wait on a socket), changes are queued in call order when the
//! call is made (so a backend may batch them, and two changes to one key
//! never race), and errors say whether they may pass (`is_transient`).

#[cfg(test)]
pub mod conformance;
mod counters;
pub mod history;
pub mod postgres;
mod queue;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use history::{AddressEvent, AddressRecord};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::api::types::ReservationSpec;
use crate::config;
use crate::leases::{Lease, LeaseChange};

/// Counters of one trait's work since the store was opened, for metrics.
///
/// `commits / transactions` is the batching factor: how many callers shared
/// one transaction (and so one sync or one round trip). Near 1 at low load
/// is expected; it is under load that it must grow, or durability caps
/// throughput.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions made durable that held at least one of this trait's
    /// calls (a transaction holding both kinds counts for both).
    pub transactions: u64,
    /// `LeaseStore::commit` or `ReservationStore::apply` calls made
    /// durable (each in one transaction).
    pub commits: u64,
    /// Individual changes made durable.
    pub changes: u64,
    /// Those commits by latency, from the `commit` call to durable: one
    /// slot per bound of `COMMIT_BUCKETS_US`, the last for slower ones.
    pub commit_latency: [u64; COMMIT_BUCKETS_US.len() + 1],
    /// Their latencies added up, in microseconds.
    pub commit_latency_sum_us: u64,
}

/// Upper bounds (microseconds) of the commit latency buckets: from a lone
/// commit on a disk that syncs in a fraction of a millisecond to a backlog
/// queued behind slow fsyncs.
pub const COMMIT_BUCKETS_US: [u64; 15] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000,
];

/// The slot of `COMMIT_BUCKETS_US` (or the one past it) a latency falls in.
pub fn commit_bucket(us: u64) -> usize {
    COMMIT_BUCKETS_US.partition_point(|&b| b < us)
}

/// Where a quantile of bucketed latencies lies: at most a bound, or above
/// the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyBound {
    AtMostUs(u64),
    AboveUs(u64),
}

impl std::fmt::Display for LatencyBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (sign, us) = match *self {
            LatencyBound::AtMostUs(us) => ("\u{2264}", us),
            LatencyBound::AboveUs(us) => (">", us),
        };
        match us {
            0..1_000 => write!(f, "{sign} {us} \u{b5}s"),
            1_000..1_000_000 => write!(f, "{sign} {} ms", us / 1_000),
            _ => write!(f, "{sign} {} s", us as f64 / 1e6),
        }
    }
}

/// The bucket bound of quantile `q` (0..=1) of commits counted per slot as
/// in `StoreStats::commit_latency`; None when there are none.
pub fn commit_quantile(buckets: &[u64], q: f64) -> Option<LatencyBound> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the q-th commit, 1-based, as the nearest-rank method.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(match COMMIT_BUCKETS_US.get(i) {
                Some(&b) => LatencyBound::AtMostUs(b),
                None => LatencyBound::AboveUs(COMMIT_BUCKETS_US[COMMIT_BUCKETS_US.len() - 1]),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_bucket_of_the_first_bound_not_below_them() {
        assert_eq!(commit_bucket(0), 0);
        assert_eq!(commit_bucket(100), 0);
        assert_eq!(commit_bucket(101), 1);
        assert_eq!(commit_bucket(4_999_999), COMMIT_BUCKETS_US.len() - 1);
        assert_eq!(commit_bucket(5_000_001), COMMIT_BUCKETS_US.len());
    }

    #[test]
    fn quantiles_name_the_bound_of_their_bucket() {
        let mut b = [0; COMMIT_BUCKETS_US.len() + 1];
        assert_eq!(commit_quantile(&b, 0.5), None);
        // 90 commits within 1 ms, 9 within 5 ms, 1 above 5 s.
        b[commit_bucket(800)] = 90;
        b[commit_bucket(4_000)] = 9;
        b[COMMIT_BUCKETS_US.len()] = 1;
        assert_eq!(
            commit_quantile(&b, 0.5),
            Some(LatencyBound::AtMostUs(1_000))
        );
        assert_eq!(
            commit_quantile(&b, 0.9),
            Some(LatencyBound::AtMostUs(1_000))
        );
        assert_eq!(
            commit_quantile(&b, 0.95),
            Some(LatencyBound::AtMostUs(5_000))
        );
        assert_eq!(
            commit_quantile(&b, 1.0),
            Some(LatencyBound::AboveUs(5_000_000))
        );
        assert_eq!(
            LatencyBound::AtMostUs(200).to_string(),
            "\u{2264} 200 \u{b5}s"
        );
        assert_eq!(LatencyBound::AtMostUs(5_000).to_string(), "\u{2264} 5 ms");
        assert_eq!(LatencyBound::AboveUs(5_000_000).to_string(), "> 5 s");
    }
}

/// A store's failure. The backend's name (a file's path, a server's
/// address) is in the message, so a log line says which store failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend refused or failed the call; trying again will not help
    /// until someone changes something (a full disk, a bad value).
    #[error("store {store}: {message}")]
    Backend { store: String, message: String },
    /// Busy, locked or unreachable for now: the same call may succeed
    /// later. Nothing of the call was made durable.
    #[error("store {store}: unavailable: {message}")]
    Unavailable { store: String, message: String },
    /// The stored data was written by a schema this build does not know
    /// (a newer stormboot's, or none of ours); the store was left as it
    /// was, unopened.
    #[error("store {store}: {message}")]
    Schema { store: String, message: String },
    /// The store was closed; nothing more is accepted.
    #[error("the store is closed")]
    Closed,
}

/// Why stored data marked with schema version `found` must not be used by
/// a build that knows versions 1 to `known` (None: it may), in the words
/// every backend's refusal uses; `elsewhere` is where else to point the
/// daemon ("another file").
pub fn unknown_schema(found: i64, known: i64, elsewhere: &str) -> Option<String> {
    if found > known {
        Some(format!(
            "schema version {found} is newer than this stormboot supports ({known}); \
             run a newer stormboot or use {elsewhere}"
        ))
    } else if found < 1 {
        Some(format!("schema version {found} is not valid"))
    } else {
        None
    }
}

impl StoreError {
    /// The call may succeed if made again later (a lock released, a
    /// connection back).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Resolves when a store call is done: for a change, once it is durable. It
/// borrows nothing, so it can be awaited on another task while the caller
/// goes on.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// The future of a `ReservationStore::apply`.
pub type CommitFuture = StoreFuture<()>;

/// The future of a `LeaseStore::commit`: once durable, the races it lost.
pub type LeaseCommit = StoreFuture<Vec<Lost>>;

/// A change a shared store did not make because another node's write
/// holds the address: an upsert that found the address held by another
/// client (unexpired, or within `cluster.grace` of its expiry), or a
/// removal that found the row given to someone else or extended since.
/// The rest of the commit is made all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    pub ip: std::net::Ipv4Addr,
    /// The row that holds the address, as the database has it just after
    /// the commit; None if it was removed in between.
    pub holder: Option<Lease>,
}

/// Where leases are made durable. Implementations batch concurrent commits
/// into one transaction and one sync (group commit), so durability does not
/// cap throughput; `commit` resolves only once its changes are durable.
pub trait LeaseStore: Send + Sync {
    /// Every lease in the store, in address order, at start-up.
    fn load(&self) -> StoreFuture<Vec<Lease>>;
    /// Queues `changes`, in call order, and returns a future that resolves
    /// when they are durable. The queueing happens in this call, not when
    /// the future is first polled: two changes to one address reach the
    /// store in the order the DHCP logic made them, whichever is awaited
    /// first. A queued commit is made durable even if its future is
    /// dropped.
    ///
    /// It resolves to the races the commit lost (`Lost`), in change
    /// order: a shared store writes a lease only where no other client
    /// holds the address, so the database, not any node's memory, decides
    /// who has it. A store with one writer (SQLite) never loses one.
    fn commit(&self, changes: Vec<LeaseChange>) -> LeaseCommit;
    /// What changed at or after `since` (seconds since the epoch by the
    /// store's clock): the leases other nodes wrote, the leases anyone
    /// removed, and the store's clock when it read them, the `since` of
    /// the next call less some overlap. None: the store has one writer
    /// (SQLite), there is nothing to learn.
    fn written_since(&self, _since: f64) -> Option<StoreFuture<Written>> {
        None
    }
    /// The last `limit` (1 to `history::MAX_LIMIT`) entries of `ip`'s
    /// history, newest first: what was committed to the store, whoever
    /// committed it (see `history`).
    fn history(&self, ip: std::net::Ipv4Addr, limit: usize) -> StoreFuture<Vec<AddressRecord>>;
    /// This trait's work so far.
    fn stats(&self) -> StoreStats;
    /// Stops accepting calls (from this call on, every call of either trait
    /// returns `StoreError::Closed`) and resolves once what was queued
    /// before it is durable and the backend is released. Idempotent.
    fn close(&self) -> StoreFuture<()>;
}

/// One change to the stored reservations, keyed by MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservationChange {
    /// Adds the reservation of `mac`, or replaces the one it has. Boxed:
    /// a spec is many times the size of a removal.
    Put {
        mac: [u8; 6],
        spec: Box<ReservationSpec>,
    },
    /// Removes the reservation of `mac`, if there is one.
    Remove { mac: [u8; 6] },
}

/// A stored reservation as read back: the spec, or why its row could not
/// be read (named by its MAC), so one bad row is skipped and reported, not
/// fatal.
pub type StoredReservation = Result<ReservationSpec, String>;

/// The stored reservations as of one moment, with the number of the last
/// change that moment includes: a node that loads this and then follows
/// `changes_after(last_change)` misses nothing and sees nothing twice.
#[derive(Debug)]
pub struct ReservationSnapshot {
    /// Every stored reservation, in the order of their change numbers:
    /// where stored reservations clash (two nodes gave one address to two
    /// MACs at once), every node that merges them in this order keeps the
    /// one stored first.
    pub reservations: Vec<StoredReservation>,
    /// The number of the last change included (0: none yet).
    pub last_change: i64,
}

/// A MAC's reservation as the change log holds it: its latest change only
/// (a MAC changed twice since a reader looked shows the second change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged {
    Put(Box<ReservationSpec>),
    Removed,
    /// The row does not decode (named by its MAC): reported, not fatal.
    Unreadable(String),
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    /// Its change number: numbers increase in the order changes were made
    /// durable, across every writer of the store.
    pub number: i64,
    pub mac: [u8; 6],
    pub what: Logged,
}

/// What `changes_after` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangesAfter {
    /// The changes after the number asked for, in number order, at most
    /// the limit asked for: fewer means these are all of them.
    Changes(Vec<LoggedChange>),
    /// Removals numbered up to `through` were pruned, and the number asked
    /// for is below it: a reader that far behind may have missed a removal
    /// and must load everything again.
    Pruned { through: i64 },
}

/// Where the reservations made through the API (and OMAPI) are made
/// durable, so they survive restarts. The same contract as `LeaseStore`:
/// changes are queued in call order when `apply` is called, concurrent
/// applies may share a transaction, and a future resolves once durable.
///
/// Every change takes the next change number, in commit order across all
/// writers (several nodes on one database), and a removal is kept as a
/// tombstone with its number, so a reader can follow the log
/// (`changes_after`) from the number its `load` gave. Old tombstones are
/// pruned (`prune_removals`), which the store records, so a reader left
/// behind the pruning is told to load again rather than miss a removal.
pub trait ReservationStore: Send + Sync {
    /// Every stored reservation and the last change number, from one
    /// consistent snapshot.
    fn load(&self) -> StoreFuture<ReservationSnapshot>;
    /// Queues `changes` (applied in the order given: the last change to a
    /// MAC wins) and resolves when all of them are durable, in one
    /// transaction: all or none.
    fn apply(&self, changes: Vec<ReservationChange>) -> CommitFuture;
    /// The changes numbered after `number`, in number order, at most
    /// `limit` of them, read from one snapshot.
    fn changes_after(&self, number: i64, limit: usize) -> StoreFuture<ChangesAfter>;
    /// Deletes the tombstones of removals made durable before `before`
    /// (Unix seconds) and records the highest number deleted; resolves to
    /// how many were deleted.
    fn prune_removals(&self, before: u64) -> StoreFuture<u64>;
    /// This trait's work so far.
    fn stats(&self) -> StoreStats;
    /// As `LeaseStore::close`.
    fn close(&self) -> StoreFuture<()>;
}

/// The stores the daemon runs with; both may be one backend.
#[derive(Clone)]
pub struct Stores {
    pub leases: Arc<dyn LeaseStore>,
    pub reservations: Arc<dyn ReservationStore>,
    /// The backend's name for logs (its file, its server).
    pub name: String,
}

impl Stores {
    /// Closes both (once each; a shared backend ignores the second).
    pub async fn close(&self) -> Result<(), StoreError> {
        self.leases.close().await?;
        self.reservations.close().await
    }
}

/// Opens the backend `[store]` configures. It creates or migrates its
/// schema, and refuses one newer than this build knows
/// (`StoreError::Schema`).
pub async fn open(cfg: &config::Store) -> Result<Stores, StoreError> {
    open_for(cfg, None).await
}

/// `open`, for a node of `cluster` when there is one: a shared store then
/// names the node in the rows it writes and arbitrates every lease write
/// (see `LeaseStore::commit`).
pub async fn open_for(
    cfg: &config::Store,
    cluster: Option<&config::Cluster>,
) -> Result<Stores, StoreError> {
    match cfg {
        config::Store::Sqlite { path } => {
            // A few milliseconds of file work, once, before serving: not
            // worth a blocking-pool hop.
            let store = Arc::new(SqliteStore::open(path)?);
            Ok(Stores {
                leases: store.clone(),
                reservations: store,
                name: path.display().to_string(),
            })
        }
        config::Store::Postgres(cfg) => {
            let store = Arc::new(PostgresStore::open(cfg, cluster).await?);
            Ok(Stores {
                leases: store.clone(),
                name: store.name().to_owned(),
                reservations: store,
            })
        }
    }
}

/// What a shared store says changed since a time (`written_since`).
#[derive(Debug)]
pub struct Written {
    /// Rows other nodes wrote.
    pub leases: Vec<Lease>,
    /// Leases removed, by any node, oldest first.
    pub freed: Vec<Freed>,
    /// The store's clock when it read them.
    pub clock: f64,
}

/// A lease the store no longer holds, as it was when it was removed: a
/// node's table drops its copy only if it is that very lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    pub ip: std::net::Ipv4Addr,
    pub client_id: Vec<u8>,
    pub mac: [u8; 6],
    pub expires: u64,
}

/// A lease row's columns as a backend reads them, before they are trusted.
pub struct LeaseColumns {
    pub ip: std::net::Ipv4Addr,
    pub client_id: Vec<u8>,
    pub mac: Vec<u8>,
    pub state: String,
    pub expires: i64,
    pub updated: i64,
    pub hostname: Option<String>,
}

impl LeaseColumns {
    /// The lease, refusing (rather than guessing at) values no backend
    /// writes.
    pub fn lease(self) -> Result<Lease, String> {
        let ip = self.ip;
        let mac = <[u8; 6]>::try_from(self.mac.as_slice())
            .map_err(|_| format!("lease {ip}: mac has {} bytes, not 6", self.mac.len()))?;
        let state = crate::leases::LeaseState::parse(&self.state)
            .ok_or_else(|| format!("lease {ip}: unknown state {:?}", self.state))?;
        let time = |t: i64, what| -> Result<u64, String> {
            u64::try_from(t).map_err(|_| format!("lease {ip}: {what} = {t} is before 1970"))
        };
        Ok(Lease {
            ip,
            client_id: self.client_id,
            mac,
            state,
            expires: time(self.expires, "expires")?,
            updated: time(self.updated, "updated")?,
            hostname: self.hostname,
        })
    }
}
