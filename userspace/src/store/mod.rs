//! Lease stores: the backends behind `crate::leases::LeaseStore`.
//!
//! `sqlite` is the embedded default (one file, WAL, group commit). A shared
//! backend (PostgreSQL) would sit beside it and report the same `StoreStats`,
//! so metrics read the same whichever store is configured.

pub mod reservations;
pub mod sqlite;

pub use sqlite::SqliteStore;

/// Counters of a store's work since it was opened, for metrics.
///
/// `commits / transactions` is the batching factor: how many callers shared
/// one transaction (and so one fsync). Near 1 at low load is expected; it is
/// under load that it must grow, or durability caps throughput.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions made durable.
    pub transactions: u64,
    /// `LeaseStore::commit` calls made durable (each in one transaction).
    pub commits: u64,
    /// Individual `LeaseChange`s made durable.
    pub changes: u64,
}
