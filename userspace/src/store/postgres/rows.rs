//! Changes turned into statement parameters and sent as one pipelined
//! transaction, and rows read back, for the PostgreSQL store's tables.

use std::future::{poll_fn, Future};
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{Client, Error, Row};

use crate::api::types::ReservationSpec;
use crate::frame::format_mac;
use crate::leases::{Lease, LeaseChange};
use crate::store::history::{self, AddressRecord, HistoryColumns};
use crate::store::{
    ChangesAfter, Freed, LeaseColumns, Logged, LoggedChange, ReservationChange,
    ReservationSnapshot, StoredReservation, Written,
};

/// Writes a lease where no other client holds the address: the row is
/// absent, or the same client's (by MAC or client id), or expired by the
/// database's clock more than the grace ($9 seconds) ago. $10 (a store
/// without a cluster, the only writer) writes unconditionally. A row
/// held by another client is left alone and the statement reports 0
/// rows: a race this node lost.
///
/// The same client's binding is not turned back into an offer that ends
/// sooner: a node that has not yet seen another node's ACK offers the
/// client the address again, and its offer must not undo the binding (the
/// removal of that offer, when the client's REQUEST names the other
/// node, would then free an address the client holds). That write loses
/// like any other, and the node learns the binding.
const UPSERT_LEASE: &str = "
    INSERT INTO leases (ip, client_id, mac, state, expires, updated, hostname, node, stored)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
    ON CONFLICT (ip) DO UPDATE SET
        client_id = excluded.client_id,
        mac = excluded.mac,
        state = excluded.state,
        expires = excluded.expires,
        updated = excluded.updated,
        hostname = excluded.hostname,
        node = excluded.node,
        stored = now()
    WHERE $10
       OR ((leases.mac = excluded.mac OR leases.client_id = excluded.client_id)
           AND NOT (excluded.state = 'offered' AND leases.state = 'bound'
                    AND leases.expires > excluded.expires))
       OR leases.expires + $9 < extract(epoch FROM now())
";

/// Removes the lease only while it is the one that ended: the same
/// holder ($2, $3), not extended past the expiry this node knew ($4) by
/// another node, and, for an offer ($6 the state removed), still an offer
/// (a binding that ends first is not freed with it). $5:
/// unconditionally (no cluster). Like the upsert it
/// reports 0 rows only for a lost race: one row when it removed the
/// lease, and one when there was none to remove (the outer query's
/// snapshot does not see the CTE's deletion, so a removed row does not
/// count twice).
const REMOVE_LEASE: &str = "
    WITH gone AS (
        DELETE FROM leases
        WHERE ip = $1
          AND ($5 OR ((mac = $2 OR client_id = $3) AND expires <= $4
                      AND (state = $6 OR $6 <> 'offered')))
        RETURNING ip
    )
    SELECT 1 FROM gone
    UNION ALL
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM leases WHERE ip = $1)
";

const SELECT_HOLDERS: &str = "
    SELECT ip, client_id, mac, state, expires, updated, hostname
    FROM leases WHERE ip = ANY($1)
";

/// What other nodes wrote since a time: `stored` is set by the database
/// on every write, so one clock orders them all.
const SELECT_WRITTEN_SINCE: &str = "
    SELECT ip, client_id, mac, state, expires, updated, hostname
    FROM leases WHERE stored >= to_timestamp($1) AND node IS DISTINCT FROM $2
";

/// Leases removed since $1, by any node: the history's record of each,
/// which the trigger writes in the removing transaction.
const SELECT_FREED_SINCE: &str = "
    SELECT ip, client_id, mac, expires
    FROM address_history WHERE event = 'freed' AND at >= to_timestamp($1)
    ORDER BY id
";

const SELECT_LEASES: &str = "
    SELECT ip, client_id, mac, state, expires, updated, hostname
    FROM leases ORDER BY ip
";

const SELECT_HISTORY: &str = "
    SELECT event, mac, client_id, hostname, node, expires, extract(epoch FROM at)::bigint
    FROM address_history WHERE ip = $1 ORDER BY id DESC LIMIT $2
";

/// A change's number: the next value of the counter row, whose lock the
/// transaction then holds until it ends, so numbers are given out in
/// commit order across every node (see the schema).
pub const PUT_RESERVATION: &str = "
    WITH n AS (UPDATE change_counter SET value = value + 1 RETURNING value)
    INSERT INTO reservations (mac, spec, change_number, updated)
    SELECT $1, $2, n.value, $3 FROM n
    ON CONFLICT (mac) DO UPDATE SET
        spec = excluded.spec,
        change_number = excluded.change_number,
        updated = excluded.updated
";

/// A removal keeps the row, spec NULL, under a new change number: a node
/// catching up by change number sees it (see the schema). Removing what
/// is not stored takes a number that no row keeps: a gap, which readers
/// do not mind.
const REMOVE_RESERVATION: &str = "
    WITH n AS (UPDATE change_counter SET value = value + 1 RETURNING value)
    UPDATE reservations
    SET spec = NULL, change_number = n.value, updated = $2
    FROM n
    WHERE mac = $1 AND spec IS NOT NULL
";

/// Sent once per transaction that changed reservations, last: delivered
/// to the listening nodes when it commits, with the last number it took.
const NOTIFY_RESERVATIONS: &str =
    "SELECT pg_notify('stormboot_reservations', value::text) FROM change_counter";

/// The channel `NOTIFY_RESERVATIONS` notifies.
pub const CHANNEL: &str = "stormboot_reservations";

/// One statement, so one snapshot: the reservations and the counter they
/// reached (one row of NULLs beside the counter when there are none).
const SELECT_RESERVATIONS: &str = "
    SELECT c.value, r.mac, r.spec
    FROM change_counter c
    LEFT JOIN reservations r ON r.spec IS NOT NULL
    ORDER BY r.change_number
";

/// One statement, so the pruning mark and the rows are of one snapshot.
const SELECT_CHANGES_AFTER: &str = "
    SELECT c.pruned_through, r.change_number, r.mac, r.spec
    FROM change_counter c
    LEFT JOIN LATERAL (
        SELECT change_number, mac, spec FROM reservations
        WHERE change_number > $1 ORDER BY change_number LIMIT $2
    ) r ON true
    ORDER BY r.change_number
";

const PRUNE_REMOVALS: &str = "
    WITH gone AS (
        DELETE FROM reservations WHERE spec IS NULL AND updated < $1
        RETURNING change_number
    )
    UPDATE change_counter
    SET pruned_through = greatest(pruned_through, (SELECT max(change_number) FROM gone))
    RETURNING (SELECT count(*) FROM gone)
";

/// A change already turned into parameters on the caller's thread, so a
/// value the table cannot hold fails that caller alone, not a batch.
pub enum Op {
    UpsertLease {
        ip: IpAddr,
        client_id: Vec<u8>,
        mac: Vec<u8>,
        state: &'static str,
        expires: i64,
        updated: i64,
        hostname: Option<String>,
    },
    RemoveLease {
        ip: IpAddr,
        client_id: Vec<u8>,
        mac: Vec<u8>,
        state: &'static str,
        expires: i64,
    },
    PutReservation {
        mac: Vec<u8>,
        spec: String,
        updated: i64,
    },
    RemoveReservation {
        mac: Vec<u8>,
        updated: i64,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn encode_leases(changes: Vec<LeaseChange>) -> Result<Vec<Op>, String> {
    // bigint is signed; a time past it (say u64::MAX for "never") is
    // refused here, for this caller alone.
    let time = |ip: Ipv4Addr, field: &str, t: u64| {
        i64::try_from(t)
            .map_err(|_| format!("lease {ip}: {field} = {t} does not fit PostgreSQL's bigint"))
    };
    changes
        .into_iter()
        .map(|change| match change {
            LeaseChange::Upsert(lease) => Ok(Op::UpsertLease {
                ip: IpAddr::V4(lease.ip),
                expires: time(lease.ip, "expires", lease.expires)?,
                updated: time(lease.ip, "updated", lease.updated)?,
                client_id: lease.client_id,
                mac: lease.mac.to_vec(),
                state: lease.state.as_str(),
                hostname: lease.hostname,
            }),
            LeaseChange::Remove(lease) => Ok(Op::RemoveLease {
                ip: IpAddr::V4(lease.ip),
                // A lease "forever" is extended by nothing: any expiry is
                // within it.
                expires: i64::try_from(lease.expires).unwrap_or(i64::MAX),
                client_id: lease.client_id,
                mac: lease.mac.to_vec(),
                state: lease.state.as_str(),
            }),
        })
        .collect()
}

pub fn encode_reservations(changes: Vec<ReservationChange>) -> Result<Vec<Op>, String> {
    let updated = now();
    changes
        .into_iter()
        .map(|change| match change {
            ReservationChange::Put { mac, spec } => Ok(Op::PutReservation {
                mac: mac.to_vec(),
                spec: serde_json::to_string(&spec).map_err(|e| {
                    format!("encoding the reservation of {}: {e}", format_mac(&mac))
                })?,
                updated,
            }),
            ReservationChange::Remove { mac } => Ok(Op::RemoveReservation {
                mac: mac.to_vec(),
                updated,
            }),
        })
        .collect()
}

type Param<'a> = &'a (dyn ToSql + Sync);

type Step<'a> = Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>>;

/// How a store writes leases: as one node of a cluster, or alone.
#[derive(Clone, Debug)]
pub struct Writer {
    /// `cluster.node`, recorded in every row it writes; None without a
    /// cluster, where this store is the only writer and writes
    /// unconditionally, as before clusters.
    pub node: Option<String>,
    /// `cluster.grace` in seconds: how long past its expiry another
    /// node's lease still holds its address.
    pub grace: i64,
}

/// Applies `ops` in one transaction, in order, as one pipeline: BEGIN,
/// every statement and COMMIT are sent before any answer is awaited. A
/// statement that fails aborts the transaction, which makes the COMMIT a
/// rollback; the first failure is returned. On failure the connection may
/// still be in the transaction: the caller must not reuse it. On success,
/// the rows each op changed, op for op: a conditional write that changed
/// none lost its race, and that does not abort the others.
pub async fn apply<'a>(
    client: &ClientWrapper,
    ops: impl Iterator<Item = &'a Op>,
    writer: &'a Writer,
) -> Result<Vec<u64>, Error> {
    // Prepared once per connection, then cached by the pool's wrapper.
    let upsert = client.prepare_cached(UPSERT_LEASE).await?;
    let remove = client.prepare_cached(REMOVE_LEASE).await?;
    let put = client.prepare_cached(PUT_RESERVATION).await?;
    let unput = client.prepare_cached(REMOVE_RESERVATION).await?;
    let pg: &Client = client;
    // Promoted constants: they outlive the pipeline.
    let alone: &'static bool = if writer.node.is_none() { &true } else { &false };
    let execute = |statement, params: Vec<Param<'a>>| -> Step<'_> {
        Box::pin(async move { pg.execute(statement, &params).await })
    };
    let batch =
        |sql| -> Step<'_> { Box::pin(async move { pg.batch_execute(sql).await.map(|()| 0) }) };
    let mut steps: Vec<Step<'_>> = vec![batch("BEGIN")];
    let mut reservations = false;
    for op in ops {
        reservations |= matches!(op, Op::PutReservation { .. } | Op::RemoveReservation { .. });
        steps.push(match op {
            Op::UpsertLease {
                ip,
                client_id,
                mac,
                state,
                expires,
                updated,
                hostname,
            } => execute(
                &upsert,
                vec![
                    ip as Param,
                    client_id,
                    mac,
                    state,
                    expires,
                    updated,
                    hostname,
                    &writer.node,
                    &writer.grace,
                    alone,
                ],
            ),
            Op::RemoveLease {
                ip,
                client_id,
                mac,
                state,
                expires,
            } => execute(
                &remove,
                vec![ip as Param, mac, client_id, expires, alone, state],
            ),
            Op::PutReservation { mac, spec, updated } => {
                execute(&put, vec![mac as Param, spec, updated])
            }
            Op::RemoveReservation { mac, updated } => execute(&unput, vec![mac as Param, updated]),
        });
    }
    if reservations {
        steps.push(Box::pin(async move {
            pg.execute(NOTIFY_RESERVATIONS, &[]).await
        }));
    }
    steps.push(batch("COMMIT"));
    let results = pipeline(steps).await;
    let mut counts = results.into_iter().collect::<Result<Vec<u64>, Error>>()?;
    // BEGIN's, COMMIT's and the notification's.
    counts.pop();
    if reservations {
        counts.pop();
    }
    counts.remove(0);
    Ok(counts)
}

/// The rows holding `ips` now, by address.
pub async fn holders(c: &Client, ips: &[IpAddr]) -> Result<Vec<Lease>, ReadError> {
    query(c, SELECT_HOLDERS, &[&ips], decode_lease).await
}

/// Runs `sql` and decodes every row, or says which failed.
async fn query<T>(
    c: &Client,
    sql: &str,
    params: &[Param<'_>],
    decode: impl Fn(&Row) -> Result<T, String>,
) -> Result<Vec<T>, ReadError> {
    let rows = c.query(sql, params).await.map_err(ReadError::Sql)?;
    rows.iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(ReadError::Row)
}

/// The leases nodes other than `node` wrote at or after `since` (seconds
/// since the epoch, the database's clock), and the database's clock
/// before it looked.
pub async fn written_since(
    c: &Client,
    since: f64,
    node: &Option<String>,
) -> Result<Written, ReadError> {
    // The clock first: a row stored after it is seen next time.
    let clock: f64 = c
        .query_one("SELECT extract(epoch FROM now())::float8", &[])
        .await
        .map_err(ReadError::Sql)?
        .get(0);
    Ok(Written {
        leases: query(c, SELECT_WRITTEN_SINCE, &[&since, node], decode_lease).await?,
        freed: query(c, SELECT_FREED_SINCE, &[&since], decode_freed).await?,
        clock,
    })
}

fn decode_freed(row: &Row) -> Result<Freed, String> {
    let ip = match get::<IpAddr>(row, 0, "freed lease's ip")? {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => return Err(format!("freed lease {ip}: not an IPv4 address")),
    };
    let mac: Vec<u8> = get(row, 2, "freed lease's mac")?;
    let expires: i64 = get(row, 3, "freed lease's expires")?;
    Ok(Freed {
        ip,
        client_id: get(row, 1, "freed lease's client_id")?,
        mac: <[u8; 6]>::try_from(mac.as_slice())
            .map_err(|_| format!("freed lease {ip}: mac has {} bytes, not 6", mac.len()))?,
        expires: u64::try_from(expires)
            .map_err(|_| format!("freed lease {ip}: expires = {expires} is before 1970"))?,
    })
}

/// Runs `steps`, each sent when first polled: polls every one once, in
/// order (so the requests go out in order, back to back), then awaits
/// them in order, as the server answers.
async fn pipeline<T>(mut steps: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut early: Vec<Option<T>> = Vec::with_capacity(steps.len());
    poll_fn(|cx| {
        early.extend(steps.iter_mut().map(|step| match step.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }));
        Poll::Ready(())
    })
    .await;
    let mut out = Vec::with_capacity(steps.len());
    for (step, early) in steps.into_iter().zip(early) {
        out.push(match early {
            Some(v) => v,
            None => step.await,
        });
    }
    out
}

/// A read's failure: the query's, or a row this code would not have
/// written.
pub enum ReadError {
    Sql(Error),
    Row(String),
}

/// A read on a pool connection, borrowing it.
pub type Reading<'c, T> = Pin<Box<dyn Future<Output = Result<T, ReadError>> + Send + 'c>>;

fn get<T: FromSqlOwned>(row: &Row, index: usize, what: &str) -> Result<T, String> {
    row.try_get(index)
        .map_err(|e| format!("reading a {what}: {e}"))
}

pub fn read_leases(c: &Client) -> Reading<'_, Vec<Lease>> {
    Box::pin(query(c, SELECT_LEASES, &[], decode_lease))
}

/// One row back into a `Lease`, refusing (rather than guessing at) values
/// this code would not have written.
fn decode_lease(row: &Row) -> Result<Lease, String> {
    let ip = match get::<IpAddr>(row, 0, "lease's ip")? {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => return Err(format!("lease row with ip {ip}: not an IPv4 address")),
    };
    LeaseColumns {
        ip,
        client_id: get(row, 1, "lease's client_id")?,
        mac: get(row, 2, "lease's mac")?,
        state: get(row, 3, "lease's state")?,
        expires: get(row, 4, "expires")?,
        updated: get(row, 5, "updated")?,
        hostname: get(row, 6, "lease's hostname")?,
    }
    .lease()
}

fn format_hex_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A stored spec back into the API's type; an error names the MAC.
fn decode_spec(mac: &[u8], spec: &str) -> StoredReservation {
    serde_json::from_str::<ReservationSpec>(spec)
        .map_err(|e| format!("stored reservation {}: {e}", format_hex_mac(mac)))
}

/// Every stored reservation, in change order, and the last change number, of
/// one snapshot; a row that does not decode is reported by its MAC, in
/// its place.
pub fn read_reservations(c: &Client) -> Reading<'_, ReservationSnapshot> {
    Box::pin(async move {
        let rows = c
            .query(SELECT_RESERVATIONS, &[])
            .await
            .map_err(ReadError::Sql)?;
        let mut snapshot = ReservationSnapshot {
            reservations: Vec::with_capacity(rows.len()),
            last_change: 0,
        };
        for row in &rows {
            snapshot.last_change = get(row, 0, "change counter").map_err(ReadError::Row)?;
            let mac: Option<Vec<u8>> = get(row, 1, "reservation's mac").map_err(ReadError::Row)?;
            let Some(mac) = mac else {
                continue;
            };
            let spec: String = get(row, 2, "reservation's spec").map_err(ReadError::Row)?;
            snapshot.reservations.push(decode_spec(&mac, &spec));
        }
        Ok(snapshot)
    })
}

/// The change log after `after`, at most `limit` entries, or the mark of
/// a pruning that passed it.
pub fn read_changes_after(c: &Client, after: i64, limit: i64) -> Reading<'_, ChangesAfter> {
    Box::pin(async move {
        let rows = c
            .query(SELECT_CHANGES_AFTER, &[&after, &limit])
            .await
            .map_err(ReadError::Sql)?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let through: i64 = get(row, 0, "pruning mark").map_err(ReadError::Row)?;
            if after < through {
                return Ok(ChangesAfter::Pruned { through });
            }
            let number: Option<i64> = get(row, 1, "change number").map_err(ReadError::Row)?;
            let Some(number) = number else {
                continue;
            };
            let raw: Vec<u8> = get(row, 2, "reservation's mac").map_err(ReadError::Row)?;
            let mac = <[u8; 6]>::try_from(raw.as_slice()).map_err(|_| {
                ReadError::Row(format!("change {number}: mac has {} bytes", raw.len()))
            })?;
            let spec: Option<String> = get(row, 3, "reservation's spec").map_err(ReadError::Row)?;
            let what = match spec {
                None => Logged::Removed,
                Some(spec) => match decode_spec(&raw, &spec) {
                    Ok(spec) => Logged::Put(Box::new(spec)),
                    Err(why) => Logged::Unreadable(why),
                },
            };
            changes.push(LoggedChange { number, mac, what });
        }
        Ok(ChangesAfter::Changes(changes))
    })
}

/// Deletes the tombstones older than `before` and raises the pruning
/// mark; how many were deleted.
pub fn prune_removals(c: &Client, before: i64) -> Reading<'_, u64> {
    Box::pin(async move {
        let row = c
            .query_one(PRUNE_REMOVALS, &[&before])
            .await
            .map_err(ReadError::Sql)?;
        let n: i64 = get(&row, 0, "pruned count").map_err(ReadError::Row)?;
        Ok(n as u64)
    })
}

/// The last `limit` entries of `ip`'s history, newest first.
pub async fn read_history(
    c: &Client,
    ip: Ipv4Addr,
    limit: usize,
) -> Result<Vec<AddressRecord>, ReadError> {
    let decode = |row: &Row| -> Result<AddressRecord, String> {
        HistoryColumns {
            ip,
            event: get(row, 0, "history event")?,
            mac: get(row, 1, "history mac")?,
            client_id: get(row, 2, "history client_id")?,
            hostname: get(row, 3, "history hostname")?,
            node: get(row, 4, "history node")?,
            expires: get(row, 5, "history expires")?,
            at: get(row, 6, "history time")?,
        }
        .record()
    };
    let params: [Param<'_>; 2] = [&IpAddr::V4(ip), &history::bounded(limit)];
    query(c, SELECT_HISTORY, &params, decode).await
}
