//! The per-trait counters behind `StoreStats`, and what one durable
//! transaction adds to them: every backend counts the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{commit_bucket, StoreStats, COMMIT_BUCKETS_US};

/// Which trait a call came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Leases,
    Reservations,
}

#[derive(Default)]
pub struct Counters {
    transactions: AtomicU64,
    commits: AtomicU64,
    changes: AtomicU64,
    commit_latency: [AtomicU64; COMMIT_BUCKETS_US.len() + 1],
    commit_latency_sum_us: AtomicU64,
}

impl Counters {
    /// The counters are read one by one, so a reading taken
    /// mid-transaction may be off by that transaction; fine for metrics.
    pub fn read(&self) -> StoreStats {
        StoreStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            commit_latency: self
                .commit_latency
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            commit_latency_sum_us: self.commit_latency_sum_us.load(Ordering::Relaxed),
        }
    }

    /// Counts one transaction made durable at `durable` holding `calls`
    /// of this trait (each: its number of changes, and when it was
    /// called); a transaction that held none of them counts nothing.
    pub fn record(&self, durable: Instant, calls: impl Iterator<Item = (usize, Instant)>) {
        let (mut commits, mut changes) = (0, 0);
        for (n, called) in calls {
            commits += 1;
            changes += n as u64;
            let us = u64::try_from(durable.duration_since(called).as_micros()).unwrap_or(u64::MAX);
            self.commit_latency[commit_bucket(us)].fetch_add(1, Ordering::Relaxed);
            self.commit_latency_sum_us.fetch_add(us, Ordering::Relaxed);
        }
        if commits == 0 {
            return;
        }
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.changes.fetch_add(changes, Ordering::Relaxed);
    }
}

/// Both traits' counters, as a backend holding both keeps them.
#[derive(Default)]
pub struct PerKind {
    pub leases: Counters,
    pub reservations: Counters,
}

impl PerKind {
    /// Counts one durable transaction holding `calls` (each: its trait,
    /// its number of changes, when it was called), for each trait.
    pub fn record<I>(&self, durable: Instant, calls: I)
    where
        I: Iterator<Item = (Kind, usize, Instant)> + Clone,
    {
        for (kind, counters) in [
            (Kind::Leases, &self.leases),
            (Kind::Reservations, &self.reservations),
        ] {
            counters.record(
                durable,
                calls
                    .clone()
                    .filter(|&(k, _, _)| k == kind)
                    .map(|(_, n, called)| (n, called)),
            );
        }
    }
}
