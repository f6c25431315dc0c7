//! The chores one node does for the whole cluster, and how that node is
//! chosen: whichever holds a session advisory lock (`LOCK`) on its
//! heartbeat's connection. PostgreSQL releases the lock when that session
//! ends (the node stops, is killed, or loses its connection), and the next
//! node to ask on its heartbeat takes it over: no election of our own.
//!
//! The chores, each one statement (see `Ages` for the defaults):
//! - reservation removals (tombstones) older than `tombstones` are
//!   deleted through the store (`ReservationStore::prune_removals`, which
//!   records the highest change number deleted, so a node that had not
//!   applied it reloads every reservation);
//! - address history older than `history` is deleted;
//! - leases that expired more than `cluster.grace` ago are deleted (the
//!   history records them as `freed`); nodes drop expired leases from
//!   their own tables, so this frees what a dead node left behind;
//! - rows of nodes silent for longer than `nodes` are deleted (a node
//!   that stops deletes its own; a killed one's stays, shown dead, for
//!   that long).

use std::time::Duration;

use tokio_postgres::{Client, Error};

use crate::store::ReservationStore;

/// The leader's advisory lock: "sbleader" in ASCII.
pub const LOCK: i64 = 0x7362_6c65_6164_6572;

/// How often the leader does its chores: what they delete is days old
/// (or, for leases, at least `cluster.grace` past expiry), so minutes
/// late costs nothing, and expired leases are found by reading the whole
/// table (no index on expiry slows every lease write).
pub const CHORES_EVERY: Duration = Duration::from_secs(300);

/// How old what the chores delete must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ages {
    /// Reservation removals: long enough for a node that was down for
    /// maintenance to catch up by change number.
    pub tombstones: Duration,
    /// Address history.
    pub history: Duration,
    /// Leases, past their expiry (`cluster.grace`).
    pub leases: Duration,
    /// Rows of silent nodes.
    pub nodes: Duration,
}

impl Ages {
    /// The defaults, with `cluster.grace` for leases.
    pub fn with_grace(grace: Duration) -> Ages {
        Ages {
            tombstones: Duration::from_secs(7 * 24 * 3600),
            history: crate::store::history::RETENTION,
            leases: grace,
            nodes: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one round of chores deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub tombstones: u64,
    pub history: u64,
    pub leases: u64,
    pub nodes: u64,
}

const PRUNE_HISTORY: &str =
    "DELETE FROM address_history WHERE at < now() - make_interval(secs => $1)";

const PRUNE_LEASES: &str =
    "DELETE FROM leases WHERE expires < extract(epoch FROM now())::bigint - $1";

const PRUNE_NODES: &str = "DELETE FROM nodes WHERE last_seen < now() - make_interval(secs => $1)";

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One round of chores: the removals through `reservations`, the rest
/// on the leader's connection, each in its own statement (and
/// transaction): one that fails leaves the others done.
pub async fn chores(
    c: &Client,
    reservations: &dyn ReservationStore,
    ages: &Ages,
) -> Result<Pruned, String> {
    let sql = |what: &str| {
        let what = what.to_owned();
        move |e: Error| format!("{what}: {}", crate::store::postgres::describe(&e))
    };
    let before = crate::slowpath::unix_now().saturating_sub(ages.tombstones.as_secs());
    let tombstones = reservations
        .prune_removals(before)
        .await
        .map_err(|e| format!("pruning removals: {e}"))?;
    let history = c
        .execute(PRUNE_HISTORY, &[&(ages.history.as_secs_f64())])
        .await
        .map_err(sql("pruning the address history"))?;
    let leases = c
        .execute(PRUNE_LEASES, &[&secs(ages.leases)])
        .await
        .map_err(sql("pruning expired leases"))?;
    let nodes = c
        .execute(PRUNE_NODES, &[&(ages.nodes.as_secs_f64())])
        .await
        .map_err(sql("pruning silent nodes"))?;
    Ok(Pruned {
        tombstones,
        history,
        leases,
        nodes,
    })
}
