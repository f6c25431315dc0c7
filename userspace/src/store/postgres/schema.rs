//! The PostgreSQL database's schema: versioned migrations, run at open
//! under an advisory lock, and what is refused (a newer version, a
//! database that is not a stormboot store) before anything is written.
//!
//! The tables live in the connection's current schema (`public`, unless
//! the URL's `options` set a `search_path`), so one server can hold
//! several sites' stores in databases or schemas of their own.

use tokio_postgres::{Client, Error};

use crate::store::unknown_schema;

/// The schema this code reads and writes: the number of `MIGRATIONS`.
/// A change to the schema adds a migration; a binary refuses databases
/// newer than it knows rather than misread or damage them.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1` (0: empty).
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// Version 1.
///
/// `leases` is keyed by address, with the holder (MAC, client id) and the
/// expiry beside it, so nodes sharing the database can arbitrate an
/// address with one conditional upsert (`ON CONFLICT (ip) DO UPDATE ...
/// WHERE leases.mac = excluded.mac OR leases.expires < now`). Times are
/// Unix seconds, as the lease engine keeps them.
///
/// `reservations` holds the API's reservations as the client wrote them
/// (the API's JSON, checked again at every start like any other change).
/// Each change takes a new number (from the `reservation_changes`
/// sequence in this version; from `change_counter` since version 2), and
/// a removal keeps its row with spec NULL, so a node can catch up on
/// everything after the last number it saw, removals included.
const V1: &str = "
    CREATE TABLE schema_version (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version  bigint NOT NULL
    );
    CREATE TABLE leases (
        ip        inet PRIMARY KEY CHECK (family(ip) = 4 AND masklen(ip) = 32),
        client_id bytea NOT NULL,
        mac       bytea NOT NULL CHECK (length(mac) = 6),
        state     text NOT NULL CHECK (state IN ('offered', 'bound', 'declined')),
        expires   bigint NOT NULL,
        updated   bigint NOT NULL,
        hostname  text
    );
    CREATE SEQUENCE reservation_changes;
    CREATE TABLE reservations (
        mac           bytea PRIMARY KEY CHECK (length(mac) = 6),
        spec          text,
        change_number bigint NOT NULL,
        updated       bigint NOT NULL
    );
    CREATE INDEX reservations_by_change ON reservations (change_number);
";

/// Version 2: what several nodes on one database need.
///
/// - `change_counter`: reservation change numbers in commit order. Each
///   change takes its number by updating this one row, whose lock it then
///   holds until its transaction ends, so numbers are handed out in the
///   order transactions commit. (A sequence's numbers can commit out of
///   order: a node that has applied up to 10 would never see a 9 committed
///   after it looked.) It starts past every number the sequence gave (an
///   unused sequence's `last_value` is 1 with `is_called` false: none).
///   `pruned_through` is the highest number of a removal's tombstone
///   pruned so far: a node whose last applied change is below it may have
///   missed a removal, and loads everything again.
/// - `nodes`: one row per node, written by its heartbeat: liveness by the
///   database's clock, the last reservation change it applied, and a hash
///   of its configuration so differing files are seen.
/// - `leases.node` and `leases.stored`: which node wrote a lease and when
///   by the database's clock, so a node can refresh its cache with what
///   the others wrote since it last looked.
/// - `address_history`: every change of an address's holder or state,
///   written by a trigger on `leases`, so whichever node or tool wrote the
///   lease, the history is the database's.
const V2: &str = "
    CREATE TABLE change_counter (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        value    bigint NOT NULL,
        pruned_through bigint NOT NULL DEFAULT 0
    );
    INSERT INTO change_counter (value)
        SELECT greatest((SELECT coalesce(max(change_number), 0) FROM reservations),
                        (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
                         FROM reservation_changes));
    CREATE TABLE nodes (
        node           text PRIMARY KEY,
        addresses      text NOT NULL,
        version        text NOT NULL,
        config_hash    text NOT NULL,
        started        timestamptz NOT NULL,
        last_seen      timestamptz NOT NULL,
        applied_change bigint NOT NULL
    );
    ALTER TABLE leases
        ADD COLUMN node   text,
        ADD COLUMN stored timestamptz NOT NULL DEFAULT now();
    CREATE INDEX leases_by_stored ON leases (stored);
    CREATE INDEX leases_by_mac ON leases (mac);
    CREATE TABLE address_history (
        id        bigserial PRIMARY KEY,
        ip        inet NOT NULL,
        event     text NOT NULL CHECK (event IN ('offered', 'bound', 'declined', 'freed')),
        mac       bytea NOT NULL,
        client_id bytea NOT NULL,
        hostname  text,
        node      text,
        expires   bigint NOT NULL,
        at        timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX address_history_by_ip ON address_history (ip, id);
    CREATE FUNCTION record_address_history() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO address_history (ip, event, mac, client_id, hostname, node, expires)
            VALUES (OLD.ip, 'freed', OLD.mac, OLD.client_id, OLD.hostname, OLD.node, OLD.expires);
            RETURN OLD;
        END IF;
        IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state
           OR OLD.mac IS DISTINCT FROM NEW.mac OR OLD.client_id IS DISTINCT FROM NEW.client_id THEN
            INSERT INTO address_history (ip, event, mac, client_id, hostname, node, expires)
            VALUES (NEW.ip, NEW.state, NEW.mac, NEW.client_id, NEW.hostname, NEW.node, NEW.expires);
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql;
    CREATE TRIGGER leases_history AFTER INSERT OR UPDATE OR DELETE ON leases
        FOR EACH ROW EXECUTE FUNCTION record_address_history();
";

/// Version 3: indexes for the cluster's leader (`cluster::leader`), so
/// its deletions of old removals and old history do not read whole
/// tables; the first holds removals (tombstones) only.
const V3: &str = "
    CREATE INDEX reservations_removed ON reservations (updated) WHERE spec IS NULL;
    CREATE INDEX address_history_by_at ON address_history (at);
";

/// Held for the migration's transaction: two nodes opening one new
/// database at once create it once. The number is "stormbot" in ASCII.
const MIGRATION_LOCK: i64 = 0x73746f726d626f74;

/// Why a database cannot be used.
pub enum Refused {
    /// Its schema is not one this build knows; nothing was written.
    Schema(String),
    /// Reading or writing it failed.
    Sql(String, Error),
}

fn sql(what: &str) -> impl FnOnce(Error) -> Refused + '_ {
    move |e| Refused::Sql(what.into(), e)
}

/// The version the database is at (0: no tables at all), refusing what
/// this build must not touch. Reads only.
async fn inspect(c: &Client) -> Result<i64, Refused> {
    let row = c
        .query_one(
            "SELECT to_regclass('schema_version') IS NOT NULL,
                    (SELECT count(*) FROM pg_class
                     WHERE relnamespace = (SELECT oid FROM pg_namespace
                                           WHERE nspname = current_schema())
                       AND relkind IN ('r', 'p', 'v', 'm', 'S'))",
            &[],
        )
        .await
        .map_err(sql("reading the schema"))?;
    let (ours, relations): (bool, i64) = (row.get(0), row.get(1));
    if !ours {
        if relations > 0 {
            // Someone else's database: writing our tables into it would
            // only hide the mistake in the configured URL.
            return Err(Refused::Schema(format!(
                "has {relations} table(s) or sequence(s) but no schema_version table: \
                 not a stormboot store, refusing to use it"
            )));
        }
        return Ok(0);
    }
    let rows = c
        .query("SELECT version FROM schema_version", &[])
        .await
        .map_err(sql("reading the schema version"))?;
    let [row] = rows.as_slice() else {
        return Err(Refused::Schema(format!(
            "schema_version has {} rows, not 1: not a stormboot store?",
            rows.len()
        )));
    };
    let version: i64 = row.get(0);
    match unknown_schema(version, SCHEMA_VERSION, "another database") {
        Some(why) => Err(Refused::Schema(why)),
        None => Ok(version),
    }
}

/// Refuses a database this build must not touch (writing nothing), then
/// creates or migrates the schema in one transaction under
/// `MIGRATION_LOCK`, inspecting again inside it. On an `Sql` error the
/// connection may be left in the transaction: the caller discards it.
pub async fn prepare(c: &Client) -> Result<(), Refused> {
    if inspect(c).await? == SCHEMA_VERSION {
        return Ok(());
    }
    c.batch_execute("BEGIN")
        .await
        .map_err(sql("starting the schema transaction"))?;
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql("taking the migration lock"))?;
    let found = inspect(c).await?;
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        c.batch_execute(migration)
            .await
            .map_err(|e| Refused::Sql(format!("migrating from version {from}"), e))?;
    }
    if found == 0 {
        c.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
    } else {
        c.execute("UPDATE schema_version SET version = $1", &[&SCHEMA_VERSION])
            .await
    }
    .map_err(sql("recording the schema version"))?;
    c.batch_execute("COMMIT")
        .await
        .map_err(sql("committing the schema"))
}
