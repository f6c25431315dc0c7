//! The embedded lease store: one SQLite file, written by one thread that
//! group-commits.
//!
//! - Durability: WAL with `synchronous=FULL`, so every COMMIT syncs the WAL
//!   before it returns, and a commit's future resolves only after that.
//!   (`synchronous=NORMAL` would be faster and lose the last transactions on
//!   power loss, breaking "no lease is acknowledged before it is durable".)
//! - Group commit: `commit` encodes its changes on the caller's thread and
//!   queues them, with a oneshot completion, to a single writer thread. The
//!   writer takes everything queued (up to `MAX_BATCH` commits), applies it
//!   in one `BEGIN IMMEDIATE ... COMMIT` (one fsync), then completes every
//!   waiter. There is no deliberate delay: while one transaction syncs, the
//!   next batch queues up, so batches grow with load by themselves and a lone
//!   commit waits for one transaction only.
//! - The writer is a `std::thread`, not `spawn_blocking`: it spends its life
//!   in fsync, so it must not hold a slot of a runtime's blocking pool, nor
//!   need a runtime at all (tokio's oneshot completes without one).
//! - Commits are queued when `commit` is called, not when its future is first
//!   polled, so they reach the file in call order, and a commit whose caller
//!   stops waiting is still made durable.
//! - `load` opens its own read-only connection per call rather than asking
//!   the writer: it runs at start-up, WAL gives it a consistent snapshot
//!   without stopping commits, and the writer stays single-purpose. It sees
//!   every commit whose future has resolved.
//! - Close (explicit, or on drop) drops the queue's only sender; the writer
//!   drains and commits what was queued, then exits, and close joins it.

use std::fmt::Display;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::types::FromSql;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::oneshot;

use super::{commit_bucket, StoreStats, COMMIT_BUCKETS_US};
use crate::leases::{CommitFuture, Lease, LeaseChange, LeaseState, LeaseStore, StoreError};

/// The schema this code reads and writes. A change to it bumps this and adds
/// a migration in `prepare_schema`; a binary refuses files newer than it
/// knows rather than misread or damage them.
pub const SCHEMA_VERSION: i64 = 2;

/// Most commits in one transaction: bounds a transaction's size (and how
/// long the first waiter of a large backlog waits) while still sharing one
/// fsync among thousands of leases.
const MAX_BATCH: usize = 4096;

/// How long a statement waits for a lock held by another connection (a
/// `load`, a backup, an operator's sqlite3 shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

// `ip` is the address as the number `u32::from(Ipv4Addr)` gives (10.0.0.1 =
// 0x0a000001): an INTEGER PRIMARY KEY is the rowid itself, so an upsert
// touches one B-tree, and rows sort in address order. No index on client_id:
// the server keeps leases in memory and looks clients up there, so an index
// would only cost every write.
const SCHEMA: &str = "
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

/// Version 2: reservations made through the API (`crate::store::reservations`).
const SCHEMA_V2: &str = "
    CREATE TABLE reservations (
        mac     BLOB PRIMARY KEY CHECK (length(mac) = 6),
        spec    TEXT NOT NULL,
        updated INTEGER NOT NULL
    );
";

const UPSERT: &str = "
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

const REMOVE: &str = "DELETE FROM leases WHERE ip = ?1";

const SELECT_ALL: &str = "
    SELECT ip, client_id, mac, state, expires, updated, hostname
    FROM leases ORDER BY ip
";

/// The SQLite lease store. See the module documentation for its design.
pub struct SqliteStore {
    path: PathBuf,
    /// `path` as errors print it.
    name: String,
    /// The writer's queue; `None` once closed. A `RwLock` so concurrent
    /// commits send side by side (`mpsc::Sender` is `Sync`) and only close
    /// takes it alone. Unbounded: the server caps in-flight requests
    /// upstream, which bounds it, and a full queue would only move the
    /// waiting from the `.await` to the send.
    queue: RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// One `commit` call on its way to the writer.
struct Job {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), StoreError>>,
    /// When `commit` was called: its latency is measured from here.
    called: Instant,
}

/// A `LeaseChange` already turned into SQL values on the caller's thread.
/// This keeps the writer's loop to binding and stepping, and rejects a value
/// SQLite cannot hold before it could fail a whole batch of other callers.
enum Op {
    Upsert {
        ip: i64,
        client_id: Vec<u8>,
        mac: [u8; 6],
        state: &'static str,
        expires: i64,
        updated: i64,
        hostname: Option<String>,
    },
    Remove {
        ip: i64,
    },
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    commits: AtomicU64,
    changes: AtomicU64,
    commit_latency: [AtomicU64; COMMIT_BUCKETS_US.len() + 1],
    commit_latency_sum_us: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `path`: its directory, the
    /// file, and the schema. Refuses a file written by a newer schema, or a
    /// database that is not a lease store.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let fail = |message: String| StoreError::Backend {
            path: name.clone(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("creating directory {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| fail(context("opening", e)))?;
        configure(&conn).map_err(fail)?;
        prepare_schema(&mut conn).map_err(fail)?;

        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = std::thread::Builder::new()
            .name("lease-writer".into())
            .spawn({
                let name = name.clone();
                let counters = Arc::clone(&counters);
                move || run_writer(conn, &jobs, &name, &counters)
            })
            .map_err(|e| fail(context("starting the writer thread", e)))?;

        Ok(SqliteStore {
            path: path.to_path_buf(),
            name,
            queue: RwLock::new(Some(queue)),
            writer: Mutex::new(Some(writer)),
            counters,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Work done so far. The three counters are read one by one, so a
    /// reading taken mid-transaction may be off by that transaction; fine
    /// for metrics.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            changes: self.counters.changes.load(Ordering::Relaxed),
            commit_latency: self
                .counters
                .commit_latency
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            commit_latency_sum_us: self.counters.commit_latency_sum_us.load(Ordering::Relaxed),
        }
    }

    /// Commits everything already queued, then stops the writer. Later
    /// `commit` and `load` calls return `StoreError::Closed`. Blocks for the
    /// last transaction; idempotent.
    pub fn close(&self) {
        // Dropping the only sender ends the writer's loop once it has
        // drained the queue.
        drop(
            self.queue
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!(path = %self.name, "lease store writer thread panicked");
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.queue
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn backend(&self, message: String) -> StoreError {
        StoreError::Backend {
            path: self.name.clone(),
            message,
        }
    }
}

impl Drop for SqliteStore {
    /// Flushes like `close`: a store dropped on shutdown (or on an error
    /// path) still makes durable what it was asked to. It blocks for the
    /// last transaction, a few milliseconds even on a runtime thread.
    fn drop(&mut self) {
        self.close();
    }
}

impl LeaseStore for SqliteStore {
    fn load(&self) -> Result<Vec<Lease>, StoreError> {
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        read_all(&self.path).map_err(|message| self.backend(message))
    }

    fn commit(&self, changes: Vec<LeaseChange>) -> CommitFuture {
        let called = Instant::now();
        let ops = match encode(changes) {
            Ok(ops) => ops,
            Err(message) => return Box::pin(std::future::ready(Err(self.backend(message)))),
        };
        let (done, completion) = oneshot::channel();
        let queued = match &*self.queue.read().unwrap_or_else(PoisonError::into_inner) {
            Some(queue) => queue.send(Job { ops, done, called }).is_ok(),
            None => return Box::pin(std::future::ready(Err(StoreError::Closed))),
        };
        // The future owns what it needs, so the caller can await it on
        // another task (see `LeaseStore::commit`).
        let lost_error =
            self.backend("the writer thread stopped before this commit was durable".into());
        Box::pin(async move {
            // A failed send or a dropped completion both mean the writer
            // thread died (it only stops on close, which first takes the
            // queue), so this commit is not known to be durable.
            let lost = || Err(lost_error);
            if !queued {
                return lost();
            }
            completion.await.unwrap_or_else(|_| lost())
        })
    }
}

fn context(what: &str, e: impl Display) -> String {
    format!("{what}: {e}")
}

/// Per-connection settings of the writer's connection.
fn configure(conn: &Connection) -> Result<(), String> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| context("setting busy_timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| context("setting journal_mode=WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Without WAL every commit syncs twice and readers block the writer;
        // better to say so than to run slowly for unknown reasons.
        return Err(format!(
            "journal_mode stays {mode:?}, not WAL (does the filesystem support shared memory?)"
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| context("setting synchronous=FULL", e))
}

/// Creates the schema in a new file, or checks the version of an existing
/// one. One IMMEDIATE transaction, so two processes opening the same new
/// file do not both create it.
fn prepare_schema(conn: &mut Connection) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| context("starting the schema transaction", e))?;
    let count_tables = |filter: &str| -> Result<i64, String> {
        tx.query_row(
            &format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' {filter}"),
            [],
            |row| row.get(0),
        )
        .map_err(|e| context("reading the schema", e))
    };
    if count_tables("AND name = 'meta'")? > 0 {
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| context("reading the schema version", e))?;
        match version {
            None => {
                return Err(
                    "has a meta table without schema_version: not a stormboot lease store?".into(),
                )
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(format!(
                    "schema version {v} is newer than this stormboot supports ({SCHEMA_VERSION}); \
                     run a newer stormboot or use another file"
                ))
            }
            Some(v) if v < 1 => return Err(format!("schema version {v} is not valid")),
            Some(1) => {
                tx.execute_batch(SCHEMA_V2)
                    .map_err(|e| context("adding the reservations table", e))?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    [SCHEMA_VERSION],
                )
                .map_err(|e| context("recording the schema version", e))?;
            }
            Some(_) => {}
        }
    } else {
        let tables = count_tables("")?;
        if tables > 0 {
            // Someone else's database: writing our tables into it would
            // only hide the mistake in the configured path.
            return Err(format!(
                "has {tables} table(s) but no stormboot meta table: not a lease store, refusing to use it"
            ));
        }
        tx.execute_batch(SCHEMA)
            .map_err(|e| context("creating the schema", e))?;
        tx.execute_batch(SCHEMA_V2)
            .map_err(|e| context("creating the schema", e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(|e| context("recording the schema version", e))?;
    }
    tx.commit().map_err(|e| context("committing the schema", e))
}

fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

fn encode(changes: Vec<LeaseChange>) -> Result<Vec<Op>, String> {
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
            LeaseChange::Upsert(lease) => Ok(Op::Upsert {
                ip: ip_key(lease.ip),
                expires: time(lease.ip, "expires", lease.expires)?,
                updated: time(lease.ip, "updated", lease.updated)?,
                client_id: lease.client_id,
                mac: lease.mac,
                state: lease.state.as_str(),
                hostname: lease.hostname,
            }),
            LeaseChange::Remove(ip) => Ok(Op::Remove { ip: ip_key(ip) }),
        })
        .collect()
}

/// The writer thread: batch, apply, complete, until closed.
fn run_writer(mut conn: Connection, jobs: &mpsc::Receiver<Job>, name: &str, counters: &Counters) {
    let mut batch: Vec<Job> = Vec::new();
    // `recv` fails only once the sender is gone *and* the queue is empty, so
    // what was queued before close is still committed.
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply(&mut conn, &batch) {
            Ok(changes) => {
                // Counted before completing, so a caller that has awaited
                // its commit sees it in `stats`.
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .commits
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.changes.fetch_add(changes, Ordering::Relaxed);
                let durable = Instant::now();
                for job in batch.drain(..) {
                    let us = u64::try_from(durable.duration_since(job.called).as_micros())
                        .unwrap_or(u64::MAX);
                    counters.commit_latency[commit_bucket(us)].fetch_add(1, Ordering::Relaxed);
                    counters
                        .commit_latency_sum_us
                        .fetch_add(us, Ordering::Relaxed);
                    // A caller that stopped waiting needs no answer; its
                    // changes are durable all the same.
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) => {
                // Encoding already refused bad values, so what fails here
                // (disk full, I/O error, a lock held past the timeout) fails
                // the whole transaction, and every waiter in it. Nobody is
                // acknowledged; at worst a failed sync leaves rows on disk
                // that no client was promised, the safe direction.
                let message = format!("committing {} lease change set(s): {e}", batch.len());
                tracing::error!(path = %name, "{message}");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Backend {
                        path: name.to_owned(),
                        message: message.clone(),
                    }));
                }
            }
        }
    }
    // `conn` drops here; as the last connection it checkpoints the WAL into
    // the main file.
}

/// Applies a batch in one transaction, in queue order; returns how many
/// changes it applied.
fn apply(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<u64> {
    // IMMEDIATE takes the write lock up front, so a concurrent writer (an
    // operator's shell) makes this wait for busy_timeout rather than fail
    // at COMMIT after all the work.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changes = 0;
    {
        let mut upsert = tx.prepare_cached(UPSERT)?;
        let mut remove = tx.prepare_cached(REMOVE)?;
        for op in batch.iter().flat_map(|job| &job.ops) {
            match op {
                Op::Upsert {
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
                Op::Remove { ip } => remove.execute([ip])?,
            };
            changes += 1;
        }
    }
    tx.commit()?;
    Ok(changes)
}

fn read_all(path: &Path) -> Result<Vec<Lease>, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| context("opening for reading", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| context("setting busy_timeout", e))?;
    let mut select = conn
        .prepare(SELECT_ALL)
        .map_err(|e| context("reading leases", e))?;
    let mut rows = select.query([]).map_err(|e| context("reading leases", e))?;
    let mut leases = Vec::new();
    while let Some(row) = rows.next().map_err(|e| context("reading leases", e))? {
        leases.push(decode(row)?);
    }
    Ok(leases)
}

/// One row back into a `Lease`, refusing (rather than guessing at) values
/// this code would not have written.
fn decode(row: &Row<'_>) -> Result<Lease, String> {
    fn get<T: FromSql>(row: &Row<'_>, index: usize, what: &str) -> Result<T, String> {
        row.get(index)
            .map_err(|e| format!("reading a lease's {what}: {e}"))
    }
    let raw_ip: i64 = get(row, 0, "ip")?;
    let ip = u32::try_from(raw_ip)
        .map(Ipv4Addr::from)
        .map_err(|_| format!("lease row with ip {raw_ip}: not an IPv4 address"))?;
    let mac: Vec<u8> = get(row, 2, "mac")?;
    let mac = <[u8; 6]>::try_from(mac.as_slice())
        .map_err(|_| format!("lease {ip}: mac has {} bytes, not 6", mac.len()))?;
    let state: String = get(row, 3, "state")?;
    let state =
        LeaseState::parse(&state).ok_or_else(|| format!("lease {ip}: unknown state {state:?}"))?;
    let time = |index, what| -> Result<u64, String> {
        let t: i64 = get(row, index, what)?;
        u64::try_from(t).map_err(|_| format!("lease {ip}: {what} = {t} is before 1970"))
    };
    Ok(Lease {
        ip,
        client_id: get(row, 1, "client_id")?,
        mac,
        state,
        expires: time(4, "expires")?,
        updated: time(5, "updated")?,
        hostname: get(row, 6, "hostname")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn lease(i: u32) -> Lease {
        let mac = [0x52, 0x54, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let mut client_id = vec![1];
        client_id.extend_from_slice(&mac);
        Lease {
            ip: Ipv4Addr::from(0x0a00_0000 + i),
            client_id,
            mac,
            state: [LeaseState::Offered, LeaseState::Bound, LeaseState::Declined][i as usize % 3],
            expires: 1_700_000_000 + u64::from(i),
            updated: 1_699_990_000 + u64::from(i),
            hostname: ((i & 1) == 0).then(|| format!("host-{i}")),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    fn db_path(dir: &tempfile::TempDir) -> PathBuf {
        // A subdirectory that does not exist yet: open must create it.
        dir.path().join("var").join("leases.db")
    }

    fn reopen_and_load(path: &Path) -> Vec<Lease> {
        SqliteStore::open(path)
            .expect("reopen")
            .load()
            .expect("load")
    }

    /// Counts rows for `ip` through a connection of its own, as another
    /// process would see the file.
    fn raw_row_count(path: &Path, ip: Ipv4Addr) -> i64 {
        let raw = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("raw connection");
        raw.query_row(
            "SELECT count(*) FROM leases WHERE ip = ?1",
            [ip_key(ip)],
            |row| row.get(0),
        )
        .expect("raw select")
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        let (a, b, c) = (lease(1), lease(2), lease(3));
        {
            let store = SqliteStore::open(&path).expect("open");
            rt.block_on(store.commit(vec![
                LeaseChange::Upsert(a.clone()),
                LeaseChange::Upsert(b.clone()),
                LeaseChange::Upsert(c.clone()),
            ]))
            .expect("commit three");
            rt.block_on(store.commit(vec![LeaseChange::Remove(b.ip)]))
                .expect("commit remove");
            store.close();
        }
        assert_eq!(reopen_and_load(&path), vec![a, c]);
    }

    #[test]
    fn changes_apply_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        let store = SqliteStore::open(&path).expect("open");
        let first = lease(1);
        let mut replaced = lease(1);
        replaced.state = LeaseState::Bound;
        replaced.hostname = None;
        replaced.client_id = b"other client".to_vec();
        let (back, gone) = (lease(2), lease(3));
        // Within one commit.
        rt.block_on(store.commit(vec![
            LeaseChange::Upsert(first),
            LeaseChange::Upsert(replaced.clone()),
            LeaseChange::Remove(back.ip),
            LeaseChange::Upsert(back.clone()),
            LeaseChange::Upsert(gone.clone()),
            LeaseChange::Remove(gone.ip),
        ]))
        .expect("commit");
        // Across commits queued before either is awaited: call order wins,
        // whether or not they share a transaction.
        let later = lease(4);
        let add = store.commit(vec![LeaseChange::Upsert(later.clone())]);
        let remove = store.commit(vec![LeaseChange::Remove(later.ip)]);
        rt.block_on(async { tokio::try_join!(add, remove) })
            .expect("two commits");
        assert_eq!(store.load().expect("load"), vec![replaced, back]);
    }

    #[test]
    fn group_commit_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        let store = Arc::new(SqliteStore::open(&path).expect("open"));
        rt.block_on(async {
            let tasks: Vec<_> = (0..2000)
                .map(|i| {
                    let store = Arc::clone(&store);
                    tokio::spawn(
                        async move { store.commit(vec![LeaseChange::Upsert(lease(i))]).await },
                    )
                })
                .collect();
            for task in tasks {
                task.await.expect("task").expect("commit");
            }
        });
        let stats = store.stats();
        println!(
            "2000 commits in {} transactions: {:.1} commits per transaction",
            stats.transactions,
            stats.commits as f64 / stats.transactions as f64
        );
        assert_eq!(stats.commits, 2000);
        assert_eq!(stats.changes, 2000);
        assert_eq!(
            stats.commit_latency.iter().sum::<u64>(),
            2000,
            "every commit timed: {:?}",
            stats.commit_latency
        );
        assert!(stats.commit_latency_sum_us > 0);
        assert!(
            stats.transactions < 2000 / 4,
            "{} transactions for 2000 commits: not batching",
            stats.transactions
        );
        drop(store);
        let loaded = reopen_and_load(&path);
        assert_eq!(loaded, (0..2000).map(lease).collect::<Vec<_>>());
    }

    #[test]
    fn resolved_commit_is_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        let store = Arc::new(SqliteStore::open(&path).expect("open"));
        // Concurrent, so some completions come out of shared transactions:
        // each must still come after that transaction's COMMIT.
        rt.block_on(async {
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let store = Arc::clone(&store);
                    let path = path.clone();
                    tokio::spawn(async move {
                        let lease = lease(i);
                        store
                            .commit(vec![LeaseChange::Upsert(lease.clone())])
                            .await
                            .expect("commit");
                        // Reading through another connection sees committed
                        // WAL frames only; with synchronous=FULL those were
                        // synced before COMMIT returned.
                        assert_eq!(raw_row_count(&path, lease.ip), 1, "lease {}", lease.ip);
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        });
    }

    #[test]
    fn closed_store_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&db_path(&dir)).expect("open");
        store.close();
        store.close();
        let rt = runtime();
        let result = rt.block_on(store.commit(vec![LeaseChange::Upsert(lease(1))]));
        assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
        assert!(matches!(store.load(), Err(StoreError::Closed)));
    }

    #[test]
    fn uncreatable_directory_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where a directory should be: fails even for root.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"not a directory").expect("write blocker");
        let path = blocker.join("sub").join("leases.db");
        let Err(e) = SqliteStore::open(&path) else {
            panic!("opened a store under a regular file");
        };
        let message = e.to_string();
        println!("{message}");
        assert!(
            message.contains(&path.display().to_string()),
            "error does not name the path: {message}"
        );
        assert!(message.contains("creating directory"), "{message}");
    }

    #[test]
    fn future_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leases.db");
        Connection::open(&path)
            .expect("raw open")
            .execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', 99);",
            )
            .expect("raw schema");
        let Err(e) = SqliteStore::open(&path) else {
            panic!("opened a store with schema version 99");
        };
        let message = e.to_string();
        println!("{message}");
        assert!(message.contains("schema version 99"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn foreign_database_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .expect("raw open")
            .execute_batch("CREATE TABLE leases (something TEXT);")
            .expect("raw schema");
        let Err(e) = SqliteStore::open(&path) else {
            panic!("opened somebody else's database");
        };
        assert!(e.to_string().contains("not a lease store"), "{e}");

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).expect("write garbage");
        let Err(e) = SqliteStore::open(&garbage) else {
            panic!("opened a file that is not SQLite");
        };
        assert!(
            e.to_string().contains(&garbage.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn unrepresentable_time_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let store = SqliteStore::open(&db_path(&dir)).expect("open");
        let mut forever = lease(1);
        forever.expires = u64::MAX;
        let bad = store.commit(vec![LeaseChange::Upsert(forever)]);
        let good = store.commit(vec![LeaseChange::Upsert(lease(2))]);
        let (bad, good) = rt.block_on(async { tokio::join!(bad, good) });
        let Err(StoreError::Backend { message, .. }) = bad else {
            panic!("u64::MAX expiry accepted: {bad:?}");
        };
        assert!(message.contains("expires"), "{message}");
        good.expect("the other commit");
        assert_eq!(store.load().expect("load"), vec![lease(2)]);
    }

    #[test]
    fn drop_without_close_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        {
            let store = SqliteStore::open(&path).expect("open");
            for i in 0..100 {
                rt.block_on(store.commit(vec![LeaseChange::Upsert(lease(i))]))
                    .expect("commit");
            }
            // Queued but never awaited: the callers gave up, the store
            // still owes them durability.
            let abandoned: Vec<_> = (100..200)
                .map(|i| store.commit(vec![LeaseChange::Upsert(lease(i))]))
                .collect();
            drop(abandoned);
            // No close: Drop must flush and stop the writer. (A real crash
            // is covered by WAL + synchronous=FULL, which the awaited
            // commits above already relied on.)
        }
        assert_eq!(
            reopen_and_load(&path),
            (0..200).map(lease).collect::<Vec<_>>()
        );
    }

    /// `cargo test --release -p stormboot --lib store::sqlite::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement; run in release with --nocapture"]
    fn throughput() {
        const LEASES: u32 = 50_000;
        const TASKS: u32 = 64;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let rt = runtime();
        let store = Arc::new(SqliteStore::open(&path).expect("open"));
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        // Each task waits for durability before its next
                        // lease, like a DHCP handler before its ACK.
                        for i in (task..LEASES).step_by(TASKS as usize) {
                            store
                                .commit(vec![LeaseChange::Upsert(lease(i))])
                                .await
                                .expect("commit");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        });
        let elapsed = start.elapsed();
        let stats = store.stats();
        println!(
            "{LEASES} single-lease commits from {TASKS} tasks in {elapsed:.2?}: {:.0} leases/s, \
             {} transactions, {:.1} commits per transaction",
            f64::from(LEASES) / elapsed.as_secs_f64(),
            stats.transactions,
            stats.commits as f64 / stats.transactions as f64
        );
        assert_eq!(stats.commits, u64::from(LEASES));
        drop(store);
        assert_eq!(reopen_and_load(&path).len(), LEASES as usize);
    }
}
