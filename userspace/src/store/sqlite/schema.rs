//! The SQLite file's schema: what a new file gets, how an older one is
//! migrated, and what is refused (a newer version, a file that is not ours)
//! before anything is written to it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// The schema this code reads and writes: the number of `MIGRATIONS`. A
/// change to it adds a migration; a binary refuses files newer than it
/// knows rather than misread or damage them.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a file from version `i` to `i + 1` (0: empty).
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4];

// `ip` is the address as the number `u32::from(Ipv4Addr)` gives (10.0.0.1 =
// 0x0a000001): an INTEGER PRIMARY KEY is the rowid itself, so an upsert
// touches one B-tree, and rows sort in address order. No index on client_id:
// the server keeps leases in memory and looks clients up there, so an index
// would only cost every write.
const SCHEMA_V1: &str = "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    CREATE TABLE leases (
        ip        INTEGER PRIMARY KEY,
        client_id BLOB NOT NULL,
        mac       BLOB NOT NULL CHECK (length(mac) = 6),
        state     TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'declined')),
        expires   INTEGER NOT NULL,
        updated   INTEGER NOT NULL,
        hostname  TEXT
    );
";

/// Version 2: reservations made through the API, as the client wrote them
/// (the API's JSON), checked again at every start like any other change.
const SCHEMA_V2: &str = "
    CREATE TABLE reservations (
        mac     BLOB PRIMARY KEY CHECK (length(mac) = 6),
        spec    TEXT NOT NULL,
        updated INTEGER NOT NULL
    );
";

/// Version 3: the change log, as the shared store keeps it, so one trait
/// serves both: every change takes the next number of the
/// `reservation_change` counter (one writer: commit order is call order),
/// a removal keeps its row with spec NULL, and `pruned_through` marks the
/// highest removal pruned. The table is rebuilt (SQLite cannot drop a NOT
/// NULL); the rows a version 2 file holds are numbered in MAC order.
const SCHEMA_V3: &str = "
    CREATE TABLE reservations_v3 (
        mac           BLOB PRIMARY KEY CHECK (length(mac) = 6),
        spec          TEXT,
        change_number INTEGER NOT NULL,
        updated       INTEGER NOT NULL
    );
    INSERT INTO reservations_v3 (mac, spec, change_number, updated)
        SELECT mac, spec, row_number() OVER (ORDER BY mac), updated FROM reservations;
    DROP TABLE reservations;
    ALTER TABLE reservations_v3 RENAME TO reservations;
    CREATE INDEX reservations_by_change ON reservations (change_number);
    INSERT INTO meta (key, value)
        VALUES ('reservation_change', (SELECT count(*) FROM reservations)),
               ('pruned_through', 0);
";

/// Version 4: `address_history`, every change of an address's holder or
/// state, written by triggers on `leases` in the words and shape of
/// PostgreSQL's (see `store::history`): an insert records the new state,
/// an update only when the state or the holder changes (not a renewal),
/// a removal records `freed`. `at` is Unix seconds by this machine's
/// clock; the writer prunes rows past `history::RETENTION` by it.
const SCHEMA_V4: &str = "
    CREATE TABLE address_history (
        id        INTEGER PRIMARY KEY,
        ip        INTEGER NOT NULL,
        event     TEXT NOT NULL CHECK (event IN ('offered', 'bound', 'declined', 'freed')),
        mac       BLOB NOT NULL,
        client_id BLOB NOT NULL,
        hostname  TEXT,
        expires   INTEGER NOT NULL,
        at        INTEGER NOT NULL DEFAULT (unixepoch())
    );
    CREATE INDEX address_history_by_ip ON address_history (ip, id);
    CREATE INDEX address_history_by_at ON address_history (at);
    CREATE TRIGGER leases_history_insert AFTER INSERT ON leases BEGIN
        INSERT INTO address_history (ip, event, mac, client_id, hostname, expires)
        VALUES (NEW.ip, NEW.state, NEW.mac, NEW.client_id, NEW.hostname, NEW.expires);
    END;
    CREATE TRIGGER leases_history_update AFTER UPDATE ON leases
    WHEN OLD.state IS NOT NEW.state OR OLD.mac IS NOT NEW.mac
         OR OLD.client_id IS NOT NEW.client_id BEGIN
        INSERT INTO address_history (ip, event, mac, client_id, hostname, expires)
        VALUES (NEW.ip, NEW.state, NEW.mac, NEW.client_id, NEW.hostname, NEW.expires);
    END;
    CREATE TRIGGER leases_history_delete AFTER DELETE ON leases BEGIN
        INSERT INTO address_history (ip, event, mac, client_id, hostname, expires)
        VALUES (OLD.ip, 'freed', OLD.mac, OLD.client_id, OLD.hostname, OLD.expires);
    END;
";

/// Why a file cannot be used.
pub enum Refused {
    /// Its schema is not one this build knows; nothing was written.
    Schema(String),
    /// Reading or writing it failed.
    Sql(String, rusqlite::Error),
}

/// What a file holds before it is prepared.
enum Found {
    Empty,
    Version(i64),
}

/// Reads the schema version and refuses what this build must not touch.
/// Reads only, so it runs before the first write (switching to WAL writes
/// the file's header) and leaves a refused file as it was.
fn inspect(conn: &Connection) -> Result<Found, Refused> {
    let sql = |what: &str| {
        let what = what.to_owned();
        move |e| Refused::Sql(what, e)
    };
    let count_tables = |filter: &str| -> Result<i64, Refused> {
        conn.query_row(
            &format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' {filter}"),
            [],
            |row| row.get(0),
        )
        .map_err(sql("reading the schema"))
    };
    if count_tables("AND name = 'meta'")? == 0 {
        let tables = count_tables("")?;
        if tables > 0 {
            // Someone else's database: writing our tables into it would
            // only hide the mistake in the configured path.
            return Err(Refused::Schema(format!(
                "has {tables} table(s) but no stormboot meta table: not a stormboot store, refusing to use it"
            )));
        }
        return Ok(Found::Empty);
    }
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql("reading the schema version"))?;
    let Some(v) = version else {
        return Err(Refused::Schema(
            "has a meta table without schema_version: not a stormboot store?".into(),
        ));
    };
    match crate::store::unknown_schema(v, SCHEMA_VERSION, "another file") {
        Some(why) => Err(Refused::Schema(why)),
        None => Ok(Found::Version(v)),
    }
}

/// Refuses a file this build must not touch, writing nothing.
pub fn check(conn: &Connection) -> Result<(), Refused> {
    inspect(conn).map(|_| ())
}

/// Creates the schema in a new file, or migrates an older one. One
/// IMMEDIATE transaction, which inspects again, so two processes opening the
/// same new file do not both create it.
pub fn prepare(conn: &mut Connection) -> Result<(), Refused> {
    let sql = |what: &'static str| move |e| Refused::Sql(what.into(), e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("starting the schema transaction"))?;
    let found = match inspect(&tx)? {
        Found::Empty => 0,
        Found::Version(v) => v,
    };
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(migration)
            .map_err(|e| Refused::Sql(format!("migrating from version {from}"), e))?;
    }
    if found == 0 {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(sql("recording the schema version"))?;
    } else if found < SCHEMA_VERSION {
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [SCHEMA_VERSION],
        )
        .map_err(sql("recording the schema version"))?;
    }
    tx.commit().map_err(sql("committing the schema"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_gains_the_reservations_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leases.db");
        let mut c = Connection::open(&path).expect("open");
        c.execute_batch(SCHEMA_V1).expect("v1");
        c.execute("INSERT INTO meta VALUES ('schema_version', 1)", [])
            .expect("version");
        c.execute(
            "INSERT INTO leases VALUES (167772165, x'01', x'020000000001', 'bound', 10, 1, NULL)",
            [],
        )
        .expect("a lease");
        assert!(prepare(&mut c).is_ok());
        let version: i64 = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let leases: i64 = c
            .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
            .expect("leases");
        assert_eq!(leases, 1, "the migration kept the lease");
        c.execute(
            "INSERT INTO reservations VALUES (x'020000000001', NULL, 1, 1)",
            [],
        )
        .expect("the reservations table keeps tombstones");
    }

    #[test]
    fn a_version_2_file_numbers_its_reservations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Connection::open(dir.path().join("leases.db")).expect("open");
        c.execute_batch(SCHEMA_V1).expect("v1");
        c.execute_batch(SCHEMA_V2).expect("v2");
        c.execute("INSERT INTO meta VALUES ('schema_version', 2)", [])
            .expect("version");
        c.execute_batch(
            "INSERT INTO reservations VALUES (x'020000000002', '{\"b\":1}', 7);
             INSERT INTO reservations VALUES (x'020000000001', '{\"a\":1}', 8);",
        )
        .expect("reservations");
        assert!(prepare(&mut c).is_ok());
        let rows: Vec<(Vec<u8>, String, i64)> = c
            .prepare("SELECT mac, spec, change_number FROM reservations ORDER BY change_number")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (vec![2, 0, 0, 0, 0, 1], "{\"a\":1}".to_owned(), 1),
                (vec![2, 0, 0, 0, 0, 2], "{\"b\":1}".to_owned(), 2)
            ]
        );
        let counter: i64 = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'reservation_change'",
                [],
                |r| r.get(0),
            )
            .expect("counter");
        assert_eq!(counter, 2, "the next change takes 3");
    }
}
