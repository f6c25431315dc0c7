//! Membership: every `cluster.heartbeat` this node writes its `nodes` row
//! (`last_seen = now()` by the database's clock), reads every node's, and
//! publishes the alive ones (`last_seen > now() - dead_after`, the same
//! clock again, so nodes' clocks need not agree) as a `Membership` when
//! they change. On the same session it asks for the leader's lock
//! (`leader`) and, holding it, does the chores.
//!
//! One dedicated connection, not the store's pool: the advisory lock
//! belongs to a session, and a heartbeat must not wait behind a batch of
//! leases for a pooled connection. Its `application_name` is the node's
//! name, which is how the others see who holds the lock.
//!
//! When the database cannot be reached the heartbeat publishes no new
//! membership (the last one stands: this node cannot know better), says
//! so once when the outage starts and once when it ends, and shows it in
//! `Status` (`stormboot_store_reachable`). A node that stops deletes its
//! row, so the others see it gone at their next heartbeat; one that is
//! killed goes silent and is dead to them after `dead_after`.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::identity::Identity;
use super::leader::{self, Ages};
use super::{Applied, Membership};
use crate::api::types::{ClusterView, NodeView};
use crate::config;
use crate::store::postgres::client_config;
use crate::store::{ReservationStore, StoreError};

/// How long leaving (deleting this node's row) may take at shutdown.
const LEAVE_WITHIN: Duration = Duration::from_secs(2);

const UPSERT_NODE: &str = "
    INSERT INTO nodes (node, addresses, version, config_hash, started, last_seen, applied_change)
    VALUES ($1, $2, $3, $4, to_timestamp($5), now(), $6)
    ON CONFLICT (node) DO UPDATE SET
        addresses = excluded.addresses,
        version = excluded.version,
        config_hash = excluded.config_hash,
        started = excluded.started,
        last_seen = now(),
        applied_change = excluded.applied_change
";

const SELECT_NODES: &str = "
    SELECT node, addresses, version, config_hash,
           extract(epoch FROM started)::float8,
           greatest(extract(epoch FROM now() - last_seen)::float8, 0),
           applied_change,
           last_seen > now() - make_interval(secs => $1)
    FROM nodes ORDER BY node
";

/// The latest change number: the counter's, or a higher one a writer took
/// from the older `reservation_changes` sequence.
const SELECT_CHANGES: &str = "
    SELECT greatest(value, (SELECT coalesce(max(change_number), 0) FROM reservations)),
           pruned_through
    FROM change_counter
";

/// The session holding the leader's lock, by the name it gave.
const SELECT_LEADER: &str = "
    SELECT a.application_name
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = $1 AND l.objid::bigint = $2
";

/// One node's row as this node last read it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub node: String,
    pub addresses: String,
    pub version: String,
    pub config_hash: String,
    /// Unix seconds.
    pub started: f64,
    /// Seconds since its heartbeat, by the database's clock.
    pub silent: f64,
    pub applied_change: i64,
    /// Alive by the database's clock when read.
    pub alive: bool,
}

/// What this node last read from the database.
#[derive(Clone, Debug)]
pub struct Reading {
    /// When, by this node's monotonic clock.
    pub at: Instant,
    pub nodes: Vec<NodeRow>,
    pub latest_change: i64,
    pub pruned_through: i64,
    /// The name of the session holding the leader's lock.
    pub leader: Option<String>,
}

/// This node's view of the cluster, published after every heartbeat.
#[derive(Clone, Debug)]
pub struct Status {
    pub me: Identity,
    pub dead_after: Duration,
    /// The last heartbeat reached the database.
    pub reachable: bool,
    /// Why it did not, while it does not.
    pub error: Option<String>,
    /// This node holds the leader's lock.
    pub leader: bool,
    /// The last successful read; None before the first.
    pub reading: Option<Reading>,
}

impl Status {
    /// Nodes alive in the last reading.
    pub fn alive(&self) -> usize {
        self.reading
            .as_ref()
            .map_or(0, |r| r.nodes.iter().filter(|n| n.alive).count())
    }

    /// The view `GET /api/v1/cluster` answers, at `now`: the last reading
    /// aged by the time since it was made.
    pub fn view(&self, now: Instant) -> ClusterView {
        let age = self
            .reading
            .as_ref()
            .map(|r| now.saturating_duration_since(r.at).as_secs_f64());
        let (latest_change, pruned_through, leader) = match &self.reading {
            Some(r) => (r.latest_change, r.pruned_through, r.leader.clone()),
            None => (0, 0, None),
        };
        let dead_after = self.dead_after.as_secs_f64();
        let nodes = self
            .reading
            .iter()
            .flat_map(|r| &r.nodes)
            .map(|n| {
                let silent = n.silent + age.unwrap_or(0.0);
                NodeView {
                    node: n.node.clone(),
                    // Read alive and not silent too long since: a stale
                    // reading does not keep a node alive for ever.
                    alive: n.alive && silent < dead_after,
                    last_seen_secs_ago: silent,
                    addresses: n
                        .addresses
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    version: n.version.clone(),
                    started: n.started.max(0.0) as u64,
                    applied_change: n.applied_change,
                    changes_behind: latest_change - n.applied_change,
                    config_agrees: n.config_hash == self.me.config_hash,
                    config_hash: n.config_hash.clone(),
                    leader: leader.as_deref() == Some(n.node.as_str()),
                    this_node: n.node == self.me.node,
                }
            })
            .collect();
        ClusterView {
            node: self.me.node.clone(),
            store_reachable: self.reachable,
            store_error: self.error.clone(),
            read_secs_ago: age,
            leader,
            latest_change,
            pruned_through,
            dead_after_secs: dead_after,
            config_hash: self.me.config_hash.clone(),
            nodes,
        }
    }
}

/// What the heartbeat publishes.
#[derive(Clone)]
pub struct Handle {
    /// The alive nodes, for sharing out new clients.
    pub membership: watch::Receiver<Membership>,
    /// Everything this node knows of the cluster, for the API and metrics.
    pub status: watch::Receiver<Status>,
}

/// The heartbeat task's state.
pub struct Heartbeat {
    cluster: config::Cluster,
    pg: tokio_postgres::Config,
    /// The database, for logs.
    store: String,
    me: Identity,
    applied: Arc<Applied>,
    /// Where the leader prunes old removals.
    reservations: Arc<dyn ReservationStore>,
    ages: Ages,
    membership: watch::Sender<Membership>,
    status: watch::Sender<Status>,
}

/// The heartbeat's connection and what it holds.
struct Session {
    client: Client,
    leader: bool,
    chores_due: Instant,
}

/// A failed heartbeat: what failed, with the server's message.
fn failed(what: &str, e: &tokio_postgres::Error) -> String {
    format!("{what}: {}", crate::store::postgres::describe(e))
}

impl Heartbeat {
    /// The heartbeat of `me` in `cluster`, on `store`'s database, reporting
    /// `applied`. Nothing connects until `run`.
    pub fn new(
        cluster: &config::Cluster,
        store: &config::Postgres,
        me: Identity,
        applied: Arc<Applied>,
        reservations: Arc<dyn ReservationStore>,
    ) -> Result<(Heartbeat, Handle), StoreError> {
        // The node's name even where the URL names the application: it is
        // how the others name the leader.
        let (mut pg, name) = client_config(store, &me.node)?;
        pg.application_name(&me.node);
        let (membership, membership_rx) = watch::channel(Membership::alone(&me.node));
        let (status, status_rx) = watch::channel(Status {
            me: me.clone(),
            dead_after: cluster.dead_after,
            reachable: false,
            error: None,
            leader: false,
            reading: None,
        });
        Ok((
            Heartbeat {
                ages: Ages::with_grace(cluster.grace),
                cluster: cluster.clone(),
                pg,
                store: name,
                me,
                applied,
                reservations,
                membership,
                status,
            },
            Handle {
                membership: membership_rx,
                status: status_rx,
            },
        ))
    }

    /// Other ages for the leader's chores (tests).
    #[cfg(test)]
    pub fn with_ages(mut self, ages: Ages) -> Heartbeat {
        self.ages = ages;
        self
    }

    /// Beats until `shutdown`, then deletes this node's row.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let mut session: Option<Session> = None;
        // When the current outage began (None: the database answers).
        let mut outage: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.cluster.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            // A beat that takes longer than dead_after has made this node
            // dead to the others anyway; give up on that connection.
            let beat = tokio::time::timeout(self.cluster.dead_after, self.beat(&mut session))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.cluster.dead_after)));
            match beat {
                Ok(reading) => {
                    if let Some(since) = outage.take() {
                        tracing::info!(
                            node = %self.me.node,
                            store = %self.store,
                            after_secs = since.elapsed().as_secs(),
                            "cluster: the database answers again"
                        );
                    }
                    self.publish(reading, session.as_ref().is_some_and(|s| s.leader));
                }
                Err(e) => {
                    session = None;
                    if outage.is_none() {
                        outage = Some(Instant::now());
                        tracing::warn!(
                            node = %self.me.node,
                            store = %self.store,
                            "cluster: cannot reach the database ({e}); membership stays as last seen"
                        );
                    }
                    self.status.send_modify(|s| {
                        s.reachable = false;
                        s.leader = false;
                        s.error = Some(e);
                    });
                }
            }
        }
        self.leave(session).await;
        Ok(())
    }

    async fn connect(&self) -> Result<Session, String> {
        let (client, connection) = self
            .pg
            .connect(NoTls)
            .await
            .map_err(|e| failed("connecting", &e))?;
        // Ends when the client is dropped (or the server goes): the
        // session, and the leader's lock with it, end then.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        // The server's side of the session: a node cut off by the network
        // sends no FIN, and with the system's keepalives (two hours) the
        // server would keep its session, and the leader's lock, that long.
        // Probing the idle session releases it about as soon as the others
        // count the node dead. (Ignored on a Unix socket.)
        let idle = self.cluster.dead_after.as_secs().max(1);
        client
            .batch_execute(&format!(
                "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 3"
            ))
            .await
            .map_err(|e| failed("setting the session's keepalives", &e))?;
        Ok(Session {
            client,
            leader: false,
            chores_due: Instant::now(),
        })
    }

    /// One heartbeat: write this node's row, take the lock if free, do the
    /// chores if due, read every node.
    async fn beat(&self, session: &mut Option<Session>) -> Result<Reading, String> {
        if session.is_none() {
            *session = Some(self.connect().await?);
        }
        let s = session.as_mut().expect("connected above");
        let started = self
            .me
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        s.client
            .execute(
                UPSERT_NODE,
                &[
                    &self.me.node,
                    &self.me.addresses,
                    &self.me.version,
                    &self.me.config_hash,
                    &started,
                    &self.applied.get(),
                ],
            )
            .await
            .map_err(|e| failed("writing this node's row", &e))?;
        if !s.leader {
            s.leader = s
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&leader::LOCK])
                .await
                .map_err(|e| failed("asking for the leader's lock", &e))?
                .get(0);
            if s.leader {
                tracing::info!(node = %self.me.node, "cluster: this node is the leader");
            }
        }
        if s.leader && Instant::now() >= s.chores_due {
            s.chores_due = Instant::now() + leader::CHORES_EVERY;
            match leader::chores(&s.client, self.reservations.as_ref(), &self.ages).await {
                Ok(p) if p != leader::Pruned::default() => tracing::info!(
                    tombstones = p.tombstones,
                    history = p.history,
                    leases = p.leases,
                    nodes = p.nodes,
                    "cluster: pruned"
                ),
                Ok(_) => {}
                // A chore that fails (a lock timeout, a permission) is
                // not an outage; the next round tries again.
                Err(e) => tracing::warn!("cluster: {e}"),
            }
        }
        self.read(&s.client).await
    }

    async fn read(&self, c: &Client) -> Result<Reading, String> {
        let rows = c
            .query(SELECT_NODES, &[&self.cluster.dead_after.as_secs_f64()])
            .await
            .map_err(|e| failed("reading the nodes", &e))?;
        let nodes = rows
            .iter()
            .map(|r| NodeRow {
                node: r.get(0),
                addresses: r.get(1),
                version: r.get(2),
                config_hash: r.get(3),
                started: r.get(4),
                silent: r.get(5),
                applied_change: r.get(6),
                alive: r.get(7),
            })
            .collect();
        let changes = c
            .query_one(SELECT_CHANGES, &[])
            .await
            .map_err(|e| failed("reading the change counter", &e))?;
        let (high, low) = (leader::LOCK >> 32, leader::LOCK & 0xffff_ffff);
        let leader = c
            .query_opt(SELECT_LEADER, &[&high, &low])
            .await
            .map_err(|e| failed("reading who leads", &e))?
            .and_then(|r| r.get::<_, Option<String>>(0));
        Ok(Reading {
            at: Instant::now(),
            nodes,
            latest_change: changes.get(0),
            pruned_through: changes.get(1),
            leader,
        })
    }

    /// The status first, then the membership: whoever wakes on a new
    /// membership finds the status that goes with it.
    fn publish(&self, reading: Reading, leader: bool) {
        let mut alive: Vec<String> = reading
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.node.clone())
            .collect();
        alive.sort();
        let membership = Membership {
            me: self.me.node.clone(),
            alive,
        };
        self.status.send_modify(|s| {
            s.reachable = true;
            s.error = None;
            s.leader = leader;
            s.reading = Some(reading);
        });
        self.membership.send_if_modified(|m| {
            let changed = *m != membership;
            if changed {
                tracing::info!(alive = ?membership.alive, "cluster: membership");
                *m = membership;
            }
            changed
        });
    }

    /// Deletes this node's row so the others see it gone at once; the
    /// session's end releases the leader's lock.
    async fn leave(&self, session: Option<Session>) {
        let left = tokio::time::timeout(LEAVE_WITHIN, async {
            let s = match session {
                Some(s) => s,
                None => self.connect().await?,
            };
            s.client
                .execute("DELETE FROM nodes WHERE node = $1", &[&self.me.node])
                .await
                .map_err(|e| failed("deleting this node's row", &e))
        })
        .await;
        match left {
            Ok(Ok(_)) => tracing::info!(node = %self.me.node, "cluster: left"),
            Ok(Err(e)) => tracing::warn!(
                node = %self.me.node,
                "cluster: could not delete this node's row ({e}); the others see it dead after {:?}",
                self.cluster.dead_after
            ),
            Err(_) => tracing::warn!(
                node = %self.me.node,
                "cluster: deleting this node's row took over {LEAVE_WITHIN:?}; the others see it dead after {:?}",
                self.cluster.dead_after
            ),
        }
    }
}
