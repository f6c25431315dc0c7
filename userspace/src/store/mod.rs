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
