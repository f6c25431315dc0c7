//! The embedded store: one SQLite file holding leases and the API's
//! reservations, written by one thread that group-commits.
//!
//! - One file, both traits: a reservation and the leases are one machine's
//!   state, backed up, moved and restored together; one writer also means
//!   the two kinds never wait on each other's lock.
//! - Durability: WAL with `synchronous=FULL`, so every COMMIT syncs the WAL
//!   before it returns, and a commit's future resolves only after that.
//!   (`synchronous=NORMAL` would be faster and lose the last transactions on
//!   power loss, breaking "no lease is acknowledged before it is durable".)
//! - Group commit: `commit` and `apply` encode their changes on the caller's
//!   thread and queue them, with a oneshot completion, to a single writer
//!   thread. The writer takes everything queued (up to `MAX_BATCH` calls),
//!   applies it in one `BEGIN IMMEDIATE ... COMMIT` (one fsync), then
//!   completes every waiter. There is no deliberate delay: while one
//!   transaction syncs, the next batch queues up, so batches grow with load
//!   by themselves and a lone commit waits for one transaction only.
//! - The writer is a `std::thread`, not `spawn_blocking`: it spends its life
//!   in fsync, so it must not hold a slot of a runtime's blocking pool, nor
//!   need a runtime at all (tokio's oneshot completes without one).
//! - Changes are queued when `commit` is called, not when its future is
//!   first polled, so they reach the file in call order, and a commit whose
//!   caller stops waiting is still made durable.
//! - `load` reads on a thread of its own, through its own read-only
//!   connection, rather than asking the writer: it runs at start-up and on
//!   SIGHUP, WAL gives it a consistent snapshot without stopping commits,
//!   and the writer stays single-purpose. It sees every commit whose future
//!   has resolved.
//! - Close (explicit, or on drop) drops the queue's only sender; the writer
//!   drains and commits what was queued, then exits.
//! - Reservations keep the shared store's change log (numbers, removals as
//!   tombstones, a pruning mark), so `ReservationStore` is one trait and
//!   one conformance suite; the one writer numbers changes in call order.
//! - A file of a newer schema is refused before anything is written to it
//!   (`schema::check` runs before the switch to WAL, which writes the
//!   header).

mod rows;
mod schema;

pub use schema::SCHEMA_VERSION;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::counters::{Kind, PerKind};
use super::history::{self, AddressRecord};
use super::queue::{Calls, Job};
use super::{
    ChangesAfter, CommitFuture, LeaseCommit, LeaseStore, ReservationChange, ReservationSnapshot,
    ReservationStore, StoreError, StoreFuture, StoreStats,
};
use crate::leases::{Lease, LeaseChange};
use rows::Op;
use schema::Refused;

/// Most calls in one transaction: bounds a transaction's size (and how
/// long the first waiter of a large backlog waits) while still sharing one
/// fsync among thousands of leases.
const MAX_BATCH: usize = 4096;

/// How long a statement waits for a lock held by another connection (a
/// `load`, a backup, an operator's sqlite3 shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. See the module documentation for its design.
pub struct SqliteStore {
    path: PathBuf,
    /// `path` as errors print it.
    name: String,
    /// The writer's queue. Unbounded: the server caps in-flight requests
    /// upstream, which bounds it, and a full queue would only move the
    /// waiting from the `.await` to the send.
    calls: Calls<mpsc::Sender<Job<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<PerKind>,
}

/// Turns an SQLite failure into the store's error: a lock another
/// connection held past the busy timeout may pass, anything else is the
/// backend's.
fn failure(store: &str, message: String, e: &rusqlite::Error) -> StoreError {
    let store = store.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable { store, message }
        }
        _ => StoreError::Backend { store, message },
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `path`: its directory, the
    /// file, and the schema. Refuses, leaving it untouched, a file written
    /// by a newer schema or a database that is not a stormboot store.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let backend = |message: String| StoreError::Backend {
            store: name.clone(),
            message,
        };
        let refused = |r: Refused| match r {
            Refused::Schema(message) => StoreError::Schema {
                store: name.clone(),
                message,
            },
            Refused::Sql(what, e) => failure(&name, context(&what, &e), &e),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("creating directory {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| backend(context("opening", e)))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| backend(context("setting busy_timeout", e)))?;
        schema::check(&conn).map_err(refused)?;
        configure(&conn).map_err(backend)?;
        schema::prepare(&mut conn).map_err(refused)?;

        let (queue, jobs) = mpsc::channel();
        let (exit, exited) = watch::channel(());
        let counters = Arc::new(PerKind::default());
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let name = name.clone();
                let counters = Arc::clone(&counters);
                move || {
                    run_writer(conn, &jobs, &name, &counters);
                    drop(exit);
                }
            })
            .map_err(|e| backend(context("starting the writer thread", e)))?;

        Ok(SqliteStore {
            path: path.to_path_buf(),
            calls: Calls::new(name.clone(), "thread", queue, exited),
            name,
            writer: Mutex::new(Some(writer)),
            counters,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a thread of its own (see the module documentation).
    fn read<T: Send + 'static>(
        &self,
        what: &str,
        read: impl FnOnce(&Path) -> Result<T, String> + Send + 'static,
    ) -> StoreFuture<T> {
        if self.calls.is_closed() {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        }
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("store-{what}"))
            .spawn(move || {
                let _ = tx.send(read(&path));
            });
        let name = self.name.clone();
        let backend = move |message| StoreError::Backend {
            store: name,
            message,
        };
        if let Err(e) = spawned {
            return Box::pin(std::future::ready(Err(backend(context(
                "starting a reader thread",
                e,
            )))));
        }
        Box::pin(async move {
            match rx.await {
                Ok(read) => read.map_err(backend),
                Err(_) => Err(backend("the reader thread stopped".into())),
            }
        })
    }
}

impl Drop for SqliteStore {
    /// Flushes like `close`: a store dropped on shutdown (or on an error
    /// path) still makes durable what it was asked to. It blocks for the
    /// last transaction, a few milliseconds even on a runtime thread.
    fn drop(&mut self) {
        self.calls.stop();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!(path = %self.name, "store writer thread panicked");
            }
        }
    }
}

impl LeaseStore for SqliteStore {
    fn load(&self) -> StoreFuture<Vec<Lease>> {
        self.read("load-leases", |path| rows::read_leases(path, BUSY_TIMEOUT))
    }

    fn commit(&self, changes: Vec<LeaseChange>) -> LeaseCommit {
        let called = Instant::now();
        self.calls
            .submit(Kind::Leases, rows::encode_leases(changes), called)
    }

    fn history(&self, ip: std::net::Ipv4Addr, limit: usize) -> StoreFuture<Vec<AddressRecord>> {
        self.read("history", move |path| {
            rows::read_history(path, BUSY_TIMEOUT, ip, limit)
        })
    }

    fn stats(&self) -> StoreStats {
        self.counters.leases.read()
    }

    fn close(&self) -> StoreFuture<()> {
        self.calls.close()
    }
}

impl ReservationStore for SqliteStore {
    fn load(&self) -> StoreFuture<ReservationSnapshot> {
        self.read("load-reservations", |path| {
            rows::read_reservations(path, BUSY_TIMEOUT)
        })
    }

    fn changes_after(&self, number: i64, limit: usize) -> StoreFuture<ChangesAfter> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("reservation-changes", move |path| {
            rows::read_changes_after(path, BUSY_TIMEOUT, number, limit)
        })
    }

    fn prune_removals(&self, before: u64) -> StoreFuture<u64> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        self.read("prune-removals", move |path| {
            rows::prune_removals(path, BUSY_TIMEOUT, before)
        })
    }

    fn apply(&self, changes: Vec<ReservationChange>) -> CommitFuture {
        let called = Instant::now();
        let durable = self.calls.submit(
            Kind::Reservations,
            rows::encode_reservations(changes),
            called,
        );
        // Reservations are keyed by MAC and never raced for.
        Box::pin(async move { durable.await.map(drop) })
    }

    fn stats(&self) -> StoreStats {
        self.counters.reservations.read()
    }

    fn close(&self) -> StoreFuture<()> {
        self.calls.close()
    }
}

fn context(what: &str, e: impl Display) -> String {
    format!("{what}: {e}")
}

/// Per-connection settings of the writer's connection.
fn configure(conn: &Connection) -> Result<(), String> {
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

/// The writer thread: batch, apply, complete, until closed.
fn run_writer(
    mut conn: Connection,
    jobs: &mpsc::Receiver<Job<Op>>,
    name: &str,
    counters: &PerKind,
) {
    let mut batch: Vec<Job<Op>> = Vec::new();
    let mut pruned: Option<Instant> = None;
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
            Ok(()) => {
                // Counted before completing, so a caller that has awaited
                // its commit sees it in `stats`.
                counters.record(
                    Instant::now(),
                    batch.iter().map(|j| (j.kind, j.ops.len(), j.called)),
                );
                for job in batch.drain(..) {
                    // A caller that stopped waiting needs no answer; its
                    // changes are durable all the same.
                    let _ = job.done.send(Ok(Vec::new()));
                }
                // After the waiters are answered, so the prune delays
                // nobody's ACK; only a store that is written to grows.
                if pruned.is_none_or(|t| t.elapsed() >= history::PRUNE_EVERY) {
                    pruned = Some(Instant::now());
                    if let Err(e) = rows::prune_history(&conn) {
                        tracing::warn!(path = %name, "pruning the address history: {e}");
                    }
                }
            }
            Err(e) => {
                // Encoding already refused bad values, so what fails here
                // (disk full, I/O error, a lock held past the timeout) fails
                // the whole transaction, and every waiter in it. Nobody is
                // acknowledged; at worst a failed sync leaves rows on disk
                // that no client was promised, the safe direction.
                let message = format!("committing {} change set(s): {e}", batch.len());
                tracing::error!(path = %name, "{message}");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(failure(name, message.clone(), &e)));
                }
            }
        }
    }
    // `conn` drops here; as the last connection it checkpoints the WAL into
    // the main file.
}

/// Applies a batch in one transaction, in queue order.
fn apply(conn: &mut Connection, batch: &[Job<Op>]) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front, so a concurrent writer (an
    // operator's shell) makes this wait for busy_timeout rather than fail
    // at COMMIT after all the work.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    rows::apply(&tx, batch.iter().flat_map(|job| &job.ops))?;
    tx.commit()
}

#[cfg(test)]
mod tests;
