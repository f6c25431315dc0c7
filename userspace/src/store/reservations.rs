//! Reservations made through the API, in the lease database's
//! `reservations` table (schema version 2), so they survive restarts.
//!
//! Rows hold the reservation as the client wrote it (the API's JSON), and
//! are checked again at start like any other change: a configuration that
//! changed underneath (a subnet or profile removed) drops the row from
//! service with a warning rather than refusing to start.
//!
//! Writes are rare (an operator, an import), so they use their own
//! connection, one transaction per change, rather than the lease writer's
//! group commit; SQLite's lock and busy timeout order the two writers.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::api::types::ReservationSpec;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The `reservations` table of one lease database.
pub struct ReservationTable {
    name: String,
    conn: Mutex<Connection>,
}

/// A failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("reservation store {path}: {message}")]
pub struct TableError {
    pub path: String,
    pub message: String,
}

impl ReservationTable {
    /// Opens the table of a lease database that `SqliteStore::open` has
    /// already created or migrated.
    pub fn open(path: &Path) -> Result<ReservationTable, TableError> {
        let name = path.display().to_string();
        let fail = |e: rusqlite::Error| TableError {
            path: name.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        Ok(ReservationTable {
            name,
            conn: Mutex::new(conn),
        })
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> TableError {
        TableError {
            path: self.name.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Every stored reservation, in MAC order; a row that does not decode
    /// is reported by its MAC and skipped.
    pub fn load(&self) -> Result<Vec<Result<ReservationSpec, String>>, TableError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut select = conn
            .prepare("SELECT mac, spec FROM reservations ORDER BY mac")
            .map_err(|e| self.fail("reading reservations", e))?;
        let rows = select
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.fail("reading reservations", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (mac, spec) = row.map_err(|e| self.fail("reading reservations", e))?;
            out.push(serde_json::from_str(&spec).map_err(|e| {
                format!(
                    "stored reservation {}: {e}",
                    mac.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                )
            }));
        }
        Ok(out)
    }

    /// Writes (inserts or replaces) and deletes in one durable
    /// transaction.
    pub fn apply(
        &self,
        put: &[([u8; 6], ReservationSpec)],
        delete: &[[u8; 6]],
    ) -> Result<(), TableError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.fail("starting a transaction", e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO reservations (mac, spec, updated) VALUES (?1, ?2, ?3)
                     ON CONFLICT (mac) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
                )
                .map_err(|e| self.fail("writing a reservation", e))?;
            for (mac, spec) in put {
                let json = serde_json::to_string(spec)
                    .map_err(|e| self.fail("encoding a reservation", e))?;
                upsert
                    .execute(params![&mac[..], json, now])
                    .map_err(|e| self.fail("writing a reservation", e))?;
            }
            let mut remove = tx
                .prepare_cached("DELETE FROM reservations WHERE mac = ?1")
                .map_err(|e| self.fail("deleting a reservation", e))?;
            for mac in delete {
                remove
                    .execute([&mac[..]])
                    .map_err(|e| self.fail("deleting a reservation", e))?;
            }
        }
        tx.commit().map_err(|e| self.fail("committing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::LeaseStore;

    #[test]
    fn reservations_survive_reopening_and_a_v1_file_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        // A version-1 file, as an older stormboot left it.
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE leases (ip INTEGER PRIMARY KEY, client_id BLOB NOT NULL,
                    mac BLOB NOT NULL, state TEXT NOT NULL, expires INTEGER NOT NULL,
                    updated INTEGER NOT NULL, hostname TEXT);
                 INSERT INTO meta VALUES ('schema_version', 1);",
            )
            .unwrap();
        }
        let store = crate::store::SqliteStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_empty());
        let spec = |mac: &str, ip: &str| ReservationSpec {
            mac: mac.into(),
            ip: ip.into(),
            hostname: Some("node".into()),
            ..Default::default()
        };
        let a = [2, 0, 0, 0, 0, 1];
        let b = [2, 0, 0, 0, 0, 2];
        {
            let t = ReservationTable::open(&path).unwrap();
            t.apply(
                &[
                    (a, spec("02:00:00:00:00:01", "10.0.0.5")),
                    (b, spec("02:00:00:00:00:02", "10.0.0.6")),
                ],
                &[],
            )
            .unwrap();
            t.apply(&[(a, spec("02:00:00:00:00:01", "10.0.0.7"))], &[b])
                .unwrap();
        }
        drop(store);
        let store = crate::store::SqliteStore::open(&path).unwrap();
        let t = ReservationTable::open(&path).unwrap();
        let rows: Vec<ReservationSpec> =
            t.load().unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(rows, vec![spec("02:00:00:00:00:01", "10.0.0.7")]);
        drop(store);
    }
}
