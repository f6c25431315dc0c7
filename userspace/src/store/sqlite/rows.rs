//! Changes turned into SQL values, and rows read back, for the SQLite
//! store's two tables.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::FromSql;
use rusqlite::{params, Connection, OpenFlags, Row, Transaction, TransactionBehavior};

use crate::api::types::ReservationSpec;
use crate::frame::format_mac;
use crate::leases::{Lease, LeaseChange};
use crate::store::history::{self, AddressRecord, HistoryColumns};
use crate::store::{
    ChangesAfter, LeaseColumns, Logged, LoggedChange, ReservationChange, ReservationSnapshot,
    StoredReservation,
};

const UPSERT_LEASE: &str = "
    INSERT INTO leases (ip, client_id, mac, state, expires, updated, hostname)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (ip) DO UPDATE SET
        client_id = excluded.client_id,
        mac = excluded.mac,
        state = excluded.state,
        expires = excluded.expires,
        updated = excluded.updated,
        hostname = excluded.hostname
";

const REMOVE_LEASE: &str = "DELETE FROM leases WHERE ip = ?1";

const SELECT_LEASES: &str = "
    SELECT ip, client_id, mac, state, expires, updated, hostname
    FROM leases ORDER BY ip
";

const SELECT_HISTORY: &str = "
    SELECT event, mac, client_id, hostname, expires, at
    FROM address_history WHERE ip = ?1 ORDER BY id DESC LIMIT ?2
";

const PRUNE_HISTORY: &str = "DELETE FROM address_history WHERE at < unixepoch() - ?1";

/// The next change number (see the schema).
const NEXT_CHANGE: &str =
    "UPDATE meta SET value = value + 1 WHERE key = 'reservation_change' RETURNING value";

const PUT_RESERVATION: &str = "
    INSERT INTO reservations (mac, spec, change_number, updated) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (mac) DO UPDATE SET
        spec = excluded.spec,
        change_number = excluded.change_number,
        updated = excluded.updated
";

/// A removal keeps the row, spec NULL, under its new number.
const REMOVE_RESERVATION: &str = "
    UPDATE reservations SET spec = NULL, change_number = ?2, updated = ?3
    WHERE mac = ?1 AND spec IS NOT NULL
";

const SELECT_RESERVATIONS: &str =
    "SELECT mac, spec FROM reservations WHERE spec IS NOT NULL ORDER BY change_number";

const SELECT_CHANGES_AFTER: &str = "
    SELECT change_number, mac, spec FROM reservations
    WHERE change_number > ?1 ORDER BY change_number LIMIT ?2
";

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
}

/// A change already turned into SQL values on the caller's thread. This
/// keeps the writer's loop to binding and stepping, and rejects a value
/// SQLite cannot hold before it could fail a whole batch of other callers.
pub enum Op {
    UpsertLease {
        ip: i64,
        client_id: Vec<u8>,
        mac: [u8; 6],
        state: &'static str,
        expires: i64,
        updated: i64,
        hostname: Option<String>,
    },
    RemoveLease {
        ip: i64,
    },
    PutReservation {
        mac: [u8; 6],
        spec: String,
        updated: i64,
    },
    RemoveReservation {
        mac: [u8; 6],
        updated: i64,
    },
}

fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

pub fn encode_leases(changes: Vec<LeaseChange>) -> Result<Vec<Op>, String> {
    // SQLite integers are i64; a time past that (say u64::MAX for "never")
    // is refused here, for this caller alone.
    let time = |ip: Ipv4Addr, field: &str, t: u64| {
        i64::try_from(t).map_err(|_| {
            format!("lease {ip}: {field} = {t} does not fit SQLite's signed 64-bit integers")
        })
    };
    changes
        .into_iter()
        .map(|change| match change {
            LeaseChange::Upsert(lease) => Ok(Op::UpsertLease {
                ip: ip_key(lease.ip),
                expires: time(lease.ip, "expires", lease.expires)?,
                updated: time(lease.ip, "updated", lease.updated)?,
                client_id: lease.client_id,
                mac: lease.mac,
                state: lease.state.as_str(),
                hostname: lease.hostname,
            }),
            LeaseChange::Remove(l) => Ok(Op::RemoveLease { ip: ip_key(l.ip) }),
        })
        .collect()
}

pub fn encode_reservations(changes: Vec<ReservationChange>) -> Result<Vec<Op>, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    changes
        .into_iter()
        .map(|change| match change {
            ReservationChange::Put { mac, spec } => Ok(Op::PutReservation {
                mac,
                spec: serde_json::to_string(&spec).map_err(|e| {
                    format!("encoding the reservation of {}: {e}", format_mac(&mac))
                })?,
                updated: now,
            }),
            ReservationChange::Remove { mac } => Ok(Op::RemoveReservation { mac, updated: now }),
        })
        .collect()
}

/// Applies `ops` inside `tx`, in order.
pub fn apply<'a>(tx: &Transaction<'_>, ops: impl Iterator<Item = &'a Op>) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(UPSERT_LEASE)?;
    let mut remove = tx.prepare_cached(REMOVE_LEASE)?;
    let mut next_change = tx.prepare_cached(NEXT_CHANGE)?;
    let mut put_reservation = tx.prepare_cached(PUT_RESERVATION)?;
    let mut remove_reservation = tx.prepare_cached(REMOVE_RESERVATION)?;
    let mut number = || next_change.query_row([], |r| r.get::<_, i64>(0));
    for op in ops {
        match op {
            Op::UpsertLease {
                ip,
                client_id,
                mac,
                state,
                expires,
                updated,
                hostname,
            } => upsert.execute(params![
                ip,
                client_id,
                &mac[..],
                state,
                expires,
                updated,
                hostname
            ])?,
            Op::RemoveLease { ip } => remove.execute([ip])?,
            Op::PutReservation { mac, spec, updated } => {
                put_reservation.execute(params![&mac[..], spec, number()?, updated])?
            }
            Op::RemoveReservation { mac, updated } => {
                remove_reservation.execute(params![&mac[..], number()?, updated])?
            }
        };
    }
    Ok(())
}

/// A read-only connection of its own: WAL gives it a consistent snapshot
/// without stopping the writer.
fn reader(path: &Path, busy_timeout: Duration) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening for reading: {e}"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| format!("setting busy_timeout: {e}"))?;
    Ok(conn)
}

pub fn read_leases(path: &Path, busy_timeout: Duration) -> Result<Vec<Lease>, String> {
    let conn = reader(path, busy_timeout)?;
    let fail = |e| format!("reading leases: {e}");
    let mut select = conn.prepare(SELECT_LEASES).map_err(fail)?;
    let mut rows = select.query([]).map_err(fail)?;
    let mut leases = Vec::new();
    while let Some(row) = rows.next().map_err(fail)? {
        leases.push(decode_lease(row)?);
    }
    Ok(leases)
}

/// One row back into a `Lease`, refusing (rather than guessing at) values
/// this code would not have written.
fn decode_lease(row: &Row<'_>) -> Result<Lease, String> {
    fn get<T: FromSql>(row: &Row<'_>, index: usize, what: &str) -> Result<T, String> {
        row.get(index)
            .map_err(|e| format!("reading a lease's {what}: {e}"))
    }
    let raw_ip: i64 = get(row, 0, "ip")?;
    let ip = u32::try_from(raw_ip)
        .map(Ipv4Addr::from)
        .map_err(|_| format!("lease row with ip {raw_ip}: not an IPv4 address"))?;
    LeaseColumns {
        ip,
        client_id: get(row, 1, "client_id")?,
        mac: get(row, 2, "mac")?,
        state: get(row, 3, "state")?,
        expires: get(row, 4, "expires")?,
        updated: get(row, 5, "updated")?,
        hostname: get(row, 6, "hostname")?,
    }
    .lease()
}

fn decode_spec(mac: &[u8], spec: &str) -> StoredReservation {
    serde_json::from_str::<ReservationSpec>(spec).map_err(|e| {
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        format!("stored reservation {mac}: {e}")
    })
}

/// Every stored reservation, in change order, and the last change number,
/// read in one transaction (one snapshot); a row that does not decode is
/// reported by its MAC, in its place.
pub fn read_reservations(
    path: &Path,
    busy_timeout: Duration,
) -> Result<ReservationSnapshot, String> {
    let mut conn = reader(path, busy_timeout)?;
    let fail = |e| format!("reading reservations: {e}");
    let tx = conn.transaction().map_err(fail)?;
    let last_change = meta(&tx, "reservation_change").map_err(fail)?;
    let mut select = tx.prepare(SELECT_RESERVATIONS).map_err(fail)?;
    let rows = select
        .query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(fail)?;
    let mut reservations = Vec::new();
    for row in rows {
        let (mac, spec) = row.map_err(fail)?;
        reservations.push(decode_spec(&mac, &spec));
    }
    Ok(ReservationSnapshot {
        reservations,
        last_change,
    })
}

/// The change log after `after`, at most `limit` entries, or the mark of
/// a pruning that passed it; one transaction.
pub fn read_changes_after(
    path: &Path,
    busy_timeout: Duration,
    after: i64,
    limit: i64,
) -> Result<ChangesAfter, String> {
    let mut conn = reader(path, busy_timeout)?;
    let fail = |e| format!("reading reservation changes: {e}");
    let tx = conn.transaction().map_err(fail)?;
    let through = meta(&tx, "pruned_through").map_err(fail)?;
    if after < through {
        return Ok(ChangesAfter::Pruned { through });
    }
    let mut select = tx.prepare(SELECT_CHANGES_AFTER).map_err(fail)?;
    let rows = select
        .query_map(params![after, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(fail)?;
    let mut changes = Vec::new();
    for row in rows {
        let (number, raw, spec) = row.map_err(fail)?;
        let mac = <[u8; 6]>::try_from(raw.as_slice())
            .map_err(|_| format!("change {number}: mac has {} bytes", raw.len()))?;
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
}

/// Deletes the tombstones older than `before` and raises the pruning mark,
/// in one transaction of its own connection (the writer's lock is taken
/// as any other writer's, waiting up to `busy_timeout`).
pub fn prune_removals(path: &Path, busy_timeout: Duration, before: i64) -> Result<u64, String> {
    let fail = |e| format!("pruning removed reservations: {e}");
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(busy_timeout).map_err(fail)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let (count, highest): (i64, Option<i64>) = tx
        .query_row(
            "SELECT count(*), max(change_number) FROM reservations
             WHERE spec IS NULL AND updated < ?1",
            [before],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(fail)?;
    if let Some(highest) = highest {
        tx.execute(
            "DELETE FROM reservations WHERE spec IS NULL AND updated < ?1",
            [before],
        )
        .map_err(fail)?;
        tx.execute(
            "UPDATE meta SET value = max(value, ?1) WHERE key = 'pruned_through'",
            [highest],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    Ok(count as u64)
}

/// The last `limit` entries of `ip`'s history, newest first.
pub fn read_history(
    path: &Path,
    busy_timeout: Duration,
    ip: Ipv4Addr,
    limit: usize,
) -> Result<Vec<AddressRecord>, String> {
    let conn = reader(path, busy_timeout)?;
    let fail = |e| format!("reading the history of {ip}: {e}");
    let mut select = conn.prepare(SELECT_HISTORY).map_err(fail)?;
    let rows = select
        .query_map(params![ip_key(ip), history::bounded(limit)], |row| {
            Ok(HistoryColumns {
                ip,
                event: row.get(0)?,
                mac: row.get(1)?,
                client_id: row.get(2)?,
                hostname: row.get(3)?,
                node: None,
                expires: row.get(4)?,
                at: row.get(5)?,
            })
        })
        .map_err(fail)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(fail)?.record()?);
    }
    Ok(out)
}

/// Removes history entries older than `history::RETENTION`; how many.
pub fn prune_history(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(PRUNE_HISTORY, [history::RETENTION.as_secs() as i64])
}
