//! The shared store: leases and the API's reservations in a PostgreSQL
//! database that several nodes can point at, written by one task per
//! store that group-commits.
//!
//! - The client is tokio-postgres behind a deadpool pool of
//!   `store.pool_size` connections; a connection the server dropped is
//!   noticed when it is next taken from the pool and replaced, so the store
//!   comes back by itself after a server restart. A call made while the
//!   server is away fails with `StoreError::Unavailable` (`is_transient`).
//! - Group commit, as SQLite's: `commit` and `apply` encode their changes
//!   on the caller's thread and queue them, in call order, to one writer
//!   task, which takes everything queued (up to `MAX_BATCH` calls) and sends
//!   it, lease rows in address order (so two nodes' batches never
//!   deadlock), as one transaction in one pipeline: BEGIN, every statement, COMMIT
//!   written together and answered together, one round trip per batch
//!   (once a connection has prepared its statements). There is no
//!   deliberate delay: while one batch is in flight the next one queues.
//! - A batch fails whole: any failed statement aborts the transaction, so
//!   the COMMIT at its end rolls it back, and every waiter in it gets the
//!   error. The connection is then discarded, not returned to the pool, so
//!   no half-finished transaction is ever reused. When a connection is lost
//!   after COMMIT was sent, the outcome is unknown; the waiters are told it
//!   failed (the safe direction: rows nobody was promised), and every
//!   change is an idempotent upsert or removal, so trying again is safe.
//! - Leases are keyed by address (`inet`) with the holder's MAC, client id
//!   and expiry beside it, so arbitration between nodes is one conditional
//!   `INSERT ... ON CONFLICT (ip) DO UPDATE ... WHERE` on the holder or
//!   the expiry (`rows::UPSERT_LEASE`), and a removal is conditional on
//!   the holder and the expiry it knew. A conditional write that changes
//!   no row lost its race; it does not abort the batch. After the COMMIT
//!   one query reads the rows that beat the batch's losers, and each
//!   caller is told its lost races (`Lost`). Without a cluster the store
//!   is the only writer and writes unconditionally.
//! - Reservations carry a change number taken from the one-row
//!   `change_counter` inside the change's own transaction (its row lock
//!   orders writers across nodes, so numbers follow commit order), and a
//!   removal keeps its row (spec NULL) with a new number: a node can catch
//!   up on every change after the last number it saw. A transaction that
//!   changed reservations ends with
//!   `pg_notify('stormboot_reservations', <last number>)`, which the
//!   listening nodes receive when it commits (`cluster::sync`).
//! - Versioned schema (`schema`): created or migrated at open under an
//!   advisory lock, so two nodes starting together do not both migrate; a
//!   database of a newer version is refused before anything is written.
//! - The password comes from STORMBOOT_PG_PASSWORD, `store.password_file`
//!   or PGPASSWORD (in that order; see `password`), never from the URL, and
//!   the store's name in logs and errors is rebuilt from the parsed
//!   connection without it.
//! - Close (explicit, or on drop) drops the queue's only sender; the writer
//!   drains and commits what was queued, closes the pool and exits. Drop
//!   cannot wait for it (it may run on the runtime the writer needs), so
//!   only `close` resolves once the queue is durable.

mod rows;
mod schema;

pub use rows::CHANNEL;
pub use schema::SCHEMA_VERSION;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, watch};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::counters::{Kind, PerKind};
use super::queue::{Calls, Job};
use super::{
    AddressRecord, ChangesAfter, CommitFuture, LeaseCommit, LeaseStore, Lost, ReservationChange,
    ReservationSnapshot, ReservationStore, StoreError, StoreFuture, StoreStats, Written,
};
use crate::config::{self, Secret};
use crate::leases::{Lease, LeaseChange};
use rows::{Op, Writer};

/// Most calls in one transaction, as SQLite's writer: bounds a
/// transaction's size while sharing one round trip among thousands.
const MAX_BATCH: usize = 4096;

/// How long connecting may take when the URL sets no `connect_timeout`:
/// a server that is down answers at once; one that does not answer is as
/// good as down for a DHCP client waiting on its ACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent data may stay unacknowledged before the connection is
/// given up (Linux's TCP_USER_TIMEOUT), when the URL sets none.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// tokio-postgres's (and libpq's) idle time before keepalives: two hours,
/// far too long to notice that a quiet connection (one that only listens)
/// is gone. Replaced by 5 s unless the URL sets another.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// How long a call waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Where Debian's server puts its socket: the host when the URL names none,
/// as libpq's default.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The PostgreSQL store. See the module documentation for its design.
pub struct PostgresStore {
    /// The server and database, without the password.
    name: String,
    pool: Pool,
    /// The writer's queue.
    calls: Calls<mpsc::UnboundedSender<Job<Op>>>,
    counters: Arc<PerKind>,
    writer: Writer,
}

/// Parses `store.url` as the store will use it: a libpq connection string
/// or URL, without a password (refused: the password has its own keys)
/// and without `sslmode=require` (this build speaks no TLS to the server;
/// use a Unix socket or a trusted network). No host means the local
/// server's socket directory, as libpq's default.
pub fn connection(url: &str) -> Result<tokio_postgres::Config, String> {
    // tokio-postgres's parse errors name the option, never its value, so
    // a password in a malformed URL is not echoed.
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
        format!(
            "not a PostgreSQL connection string or URL: {}",
            describe(&e)
        )
    })?;
    if cfg.get_password().is_some() {
        return Err("holds a password; give it in store.password_file or \
                    STORMBOOT_PG_PASSWORD instead"
            .into());
    }
    if cfg.get_ssl_mode() == SslMode::Require {
        return Err("sslmode=require: this build connects without TLS \
                    (use a Unix socket, or a network the traffic may cross in clear)"
            .into());
    }
    if cfg.get_hosts().is_empty() && cfg.get_hostaddrs().is_empty() {
        cfg.host_path(DEFAULT_SOCKET_DIR);
    }
    // A server behind a cut link never answers and never resets: without
    // these, a call would wait on TCP's retransmissions for many minutes
    // instead of failing as unavailable within seconds.
    if cfg.get_tcp_user_timeout().is_none() {
        cfg.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if cfg.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        cfg.keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
    }
    Ok(cfg)
}

/// The password the store connects with: STORMBOOT_PG_PASSWORD (as
/// STORMBOOT_API_TOKEN overrides `api.token`), else `store.password_file`'s,
/// else libpq's PGPASSWORD; none when the server trusts the connection
/// (a Unix socket's peer authentication).
pub fn password(file: Option<&Secret>, env: impl Fn(&str) -> Option<String>) -> Option<Secret> {
    let var = |name| env(name).filter(|p| !p.is_empty()).map(Secret);
    var("STORMBOOT_PG_PASSWORD")
        .or_else(|| file.cloned())
        .or_else(|| var("PGPASSWORD"))
}

/// The store's name in logs and errors: user, server and database, rebuilt
/// from the parsed connection so no password can ride along.
pub fn display_name(cfg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .chain(cfg.get_hostaddrs().iter().map(ToString::to_string))
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(ToString::to_string).collect();
    let user = cfg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let port = if ports.is_empty() {
        String::new()
    } else {
        format!(":{}", ports.join(","))
    };
    format!(
        "postgres://{user}{}{port}/{}",
        hosts.join(","),
        cfg.get_dbname().unwrap_or("")
    )
}

/// How the store's connections are made (`store.url`, the password, the
/// connect timeout), named `application` on the server unless the URL
/// names it; and the store's name for logs. Every connection to the
/// store's database is made from this: the pool's, and the cluster's
/// listening one.
pub fn client_config(
    cfg: &config::Postgres,
    application: &str,
) -> Result<(tokio_postgres::Config, String), StoreError> {
    let mut pg = connection(&cfg.url).map_err(|message| StoreError::Backend {
        store: "postgres".into(),
        message: format!("store.url: {message}"),
    })?;
    let name = display_name(&pg);
    if let Some(Secret(p)) = password(cfg.password.as_ref(), |v| std::env::var(v).ok()) {
        pg.password(p);
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name(application);
    }
    Ok((pg, name))
}

/// Whether a failure may pass: the server away, restarting, overloaded, or
/// a transaction that lost a race; not a refusal of the data or the login.
pub fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("40")
                || c.starts_with("53")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(code)
        }
        // No answer from the server at all: the connection is gone, or
        // could not be made, or timed out.
        None => {
            e.is_closed()
                || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                || e.to_string().contains("timeout")
        }
    }
}

/// tokio-postgres's error with its cause: its own `Display` is only the
/// kind ("db error"), the server's message is the source.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// `what` failed with `e`: transient or not, with the server's message.
fn failure(store: &str, what: &str, e: &tokio_postgres::Error) -> StoreError {
    let store = store.to_owned();
    let message = format!("{what}: {}", describe(e));
    if transient(e) {
        StoreError::Unavailable { store, message }
    } else {
        StoreError::Backend { store, message }
    }
}

/// A connection could not be had from the pool.
fn pool_failure(store: &str, what: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => failure(store, what, &e),
        PoolError::Timeout(_) => StoreError::Unavailable {
            store: store.to_owned(),
            message: format!("{what}: no connection within {POOL_WAIT:?} ({e})"),
        },
        PoolError::Closed => StoreError::Closed,
        e => StoreError::Backend {
            store: store.to_owned(),
            message: format!("{what}: {e}"),
        },
    }
}

/// A read failed: the query, or a row this code would not have written.
fn read_failure(store: &str, what: &str, e: rows::ReadError) -> StoreError {
    match e {
        rows::ReadError::Sql(e) => failure(store, what, &e),
        rows::ReadError::Row(message) => StoreError::Backend {
            store: store.to_owned(),
            message: format!("{what}: {message}"),
        },
    }
}

impl PostgresStore {
    /// Connects, creates or migrates the schema (refusing a newer one or a
    /// database that is not a stormboot store, untouched), and starts the
    /// writer on the current runtime.
    pub async fn open(
        cfg: &config::Postgres,
        cluster: Option<&config::Cluster>,
    ) -> Result<PostgresStore, StoreError> {
        let writer = Writer {
            node: cluster.map(|c| c.node.clone()),
            grace: cluster.map_or(0, |c| {
                i64::try_from(c.grace.as_secs()).unwrap_or(i64::MAX / 2)
            }),
        };
        let (pg, name) = client_config(cfg, "stormboot")?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                // A connection the server closed is seen as closed by the
                // client at once; no need for a query per checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend {
                store: name.clone(),
                message: format!("building the connection pool: {e}"),
            })?;
        {
            let client = pool
                .get()
                .await
                .map_err(|e| pool_failure(&name, "connecting", e))?;
            if let Err(refused) = schema::prepare(&client).await {
                // It may be inside the schema transaction: never reuse it.
                drop(deadpool_postgres::Object::take(client));
                return Err(match refused {
                    schema::Refused::Schema(message) => StoreError::Schema {
                        store: name,
                        message,
                    },
                    schema::Refused::Sql(what, e) => failure(&name, &what, &e),
                });
            }
        }

        let (queue, jobs) = mpsc::unbounded_channel();
        let (exit, exited) = watch::channel(());
        let counters = Arc::new(PerKind::default());
        tokio::spawn({
            let (pool, name, counters) = (pool.clone(), name.clone(), Arc::clone(&counters));
            let writer = writer.clone();
            async move {
                run_writer(&pool, jobs, &name, &counters, &writer).await;
                pool.close();
                drop(exit);
            }
        });
        Ok(PostgresStore {
            calls: Calls::new(name.clone(), "task", queue, exited),
            name,
            pool,
            counters,
            writer,
        })
    }

    /// The server and database, for logs (no password).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `read` on a connection of the pool, beside the writer.
    fn read<T, F>(&self, what: &'static str, read: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c tokio_postgres::Client) -> rows::Reading<'c, T> + Send + 'static,
    {
        if self.calls.is_closed() {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        }
        let (pool, name) = (self.pool.clone(), self.name.clone());
        Box::pin(async move {
            let client = pool.get().await.map_err(|e| pool_failure(&name, what, e))?;
            read(&client)
                .await
                .map_err(|e| read_failure(&name, what, e))
        })
    }
}

impl Drop for PostgresStore {
    /// Stops accepting calls; the writer still commits what was queued,
    /// if its runtime lives on (see the module documentation).
    fn drop(&mut self) {
        self.calls.stop();
    }
}

impl LeaseStore for PostgresStore {
    fn load(&self) -> StoreFuture<Vec<Lease>> {
        self.read("reading leases", rows::read_leases)
    }

    fn commit(&self, changes: Vec<LeaseChange>) -> LeaseCommit {
        let called = Instant::now();
        self.calls
            .submit(Kind::Leases, rows::encode_leases(changes), called)
    }

    fn history(&self, ip: std::net::Ipv4Addr, limit: usize) -> StoreFuture<Vec<AddressRecord>> {
        self.read("reading the address history", move |c| {
            Box::pin(rows::read_history(c, ip, limit))
        })
    }

    fn written_since(&self, since: f64) -> Option<StoreFuture<Written>> {
        if self.calls.is_closed() {
            return Some(Box::pin(std::future::ready(Err(StoreError::Closed))));
        }
        let (pool, name) = (self.pool.clone(), self.name.clone());
        let node = self.writer.node.clone();
        let what = "reading the leases other nodes wrote or removed";
        Some(Box::pin(async move {
            let client = pool.get().await.map_err(|e| pool_failure(&name, what, e))?;
            rows::written_since(&client, since, &node)
                .await
                .map_err(|e| read_failure(&name, what, e))
        }))
    }

    fn stats(&self) -> StoreStats {
        self.counters.leases.read()
    }

    fn close(&self) -> StoreFuture<()> {
        self.calls.close()
    }
}

impl ReservationStore for PostgresStore {
    fn load(&self) -> StoreFuture<ReservationSnapshot> {
        self.read("reading reservations", rows::read_reservations)
    }

    fn changes_after(&self, number: i64, limit: usize) -> StoreFuture<ChangesAfter> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("reading reservation changes", move |c| {
            rows::read_changes_after(c, number, limit)
        })
    }

    fn prune_removals(&self, before: u64) -> StoreFuture<u64> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        self.read("pruning removed reservations", move |c| {
            rows::prune_removals(c, before)
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

/// The writer task: batch, apply, complete, until closed.
async fn run_writer(
    pool: &Pool,
    mut jobs: mpsc::UnboundedReceiver<Job<Op>>,
    name: &str,
    counters: &PerKind,
    writer: &Writer,
) {
    let mut batch: Vec<Job<Op>> = Vec::new();
    // `recv` returns None only once the sender is gone *and* the queue is
    // empty, so what was queued before close is still committed.
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply(pool, name, &batch, writer).await {
            Ok(lost) => {
                // Counted before completing, so a caller that has awaited
                // its commit sees it in `stats`.
                counters.record(
                    Instant::now(),
                    batch.iter().map(|j| (j.kind, j.ops.len(), j.called)),
                );
                for (job, lost) in batch.drain(..).zip(lost) {
                    let _ = job.done.send(Ok(lost));
                }
            }
            Err(e) => {
                // Nothing of the batch is acknowledged; each waiter learns
                // whether trying again may help.
                tracing::error!("{e}");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Sends a batch as one pipelined transaction, in queue order (see the
/// module documentation), and returns each job's lost races.
async fn apply(
    pool: &Pool,
    name: &str,
    batch: &[Job<Op>],
    writer: &Writer,
) -> Result<Vec<Vec<Lost>>, StoreError> {
    let what = format!("committing {} change set(s)", batch.len());
    let client = pool.get().await.map_err(|e| pool_failure(name, &what, e))?;
    // Lease rows are written in address order, whichever node writes:
    // two nodes' batches over the same addresses then queue behind each
    // other's row locks instead of deadlocking. The sort is stable, so
    // each address's changes keep their call order, and changes to
    // different rows commute.
    let ops: Vec<&Op> = batch.iter().flat_map(|job| &job.ops).collect();
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| match ops[i] {
        Op::UpsertLease { ip, .. } | Op::RemoveLease { ip, .. } => Some(*ip),
        Op::PutReservation { .. } | Op::RemoveReservation { .. } => None,
    });
    let counts = match rows::apply(&client, order.iter().map(|&i| ops[i]), writer).await {
        Ok(sorted) => {
            let mut counts = vec![0; ops.len()];
            for (&i, n) in order.iter().zip(sorted) {
                counts[i] = n;
            }
            counts
        }
        Err(e) => {
            // It may still be inside the failed transaction: never reuse it.
            drop(deadpool_postgres::Object::take(client));
            return Err(failure(name, &what, &e));
        }
    };
    // Each job's lease writes that changed no row lost their race.
    let mut counts = counts.into_iter();
    let missed: Vec<Vec<IpAddr>> = batch
        .iter()
        .map(|job| {
            job.ops
                .iter()
                .zip(counts.by_ref())
                .filter_map(|(op, n)| match op {
                    Op::UpsertLease { ip, .. } | Op::RemoveLease { ip, .. } if n == 0 => Some(*ip),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let ips: Vec<IpAddr> = missed.iter().flatten().copied().collect();
    if ips.is_empty() {
        return Ok(vec![Vec::new(); batch.len()]);
    }
    let holders: std::collections::HashMap<IpAddr, Lease> = match rows::holders(&client, &ips).await
    {
        Ok(rows) => rows.into_iter().map(|l| (IpAddr::V4(l.ip), l)).collect(),
        Err(e) => {
            // The batch is durable; the losers are still told they
            // lost, without the winner's row.
            tracing::error!(
                "{}",
                read_failure(name, "reading the rows of lost races", e)
            );
            Default::default()
        }
    };
    Ok(missed
        .into_iter()
        .map(|missed| {
            let mut lost: Vec<Lost> = Vec::new();
            for ip in missed {
                let IpAddr::V4(v4) = ip else { continue };
                if !lost.iter().any(|l| l.ip == v4) {
                    lost.push(Lost {
                        ip: v4,
                        holder: holders.get(&ip).cloned(),
                    });
                }
            }
            lost
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests;
