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
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
}

/// A store's failure. The backend's name (a file's path, a server's
/// address) is in the message, so a log line says which store failed.
#[derive(Debug, thiserror::Error)]
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

/// The future of a `LeaseStore::commit` or a `ReservationStore::apply`.
pub type CommitFuture = StoreFuture<()>;

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
    fn commit(&self, changes: Vec<LeaseChange>) -> CommitFuture;
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

/// Where the reservations made through the API (and OMAPI) are made
/// durable, so they survive restarts. The same contract as `LeaseStore`:
/// changes are queued in call order when `apply` is called, concurrent
/// applies may share a transaction, and a future resolves once durable.
pub trait ReservationStore: Send + Sync {
    /// Every stored reservation, in MAC order.
    fn load(&self) -> StoreFuture<Vec<StoredReservation>>;
    /// Queues `changes` (applied in the order given: the last change to a
    /// MAC wins) and resolves when all of them are durable, in one
    /// transaction: all or none.
    fn apply(&self, changes: Vec<ReservationChange>) -> CommitFuture;
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
    }
}
