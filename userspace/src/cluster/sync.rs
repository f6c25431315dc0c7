//! The reservation sync: a reservation change made on any node of a
//! cluster reaches every node, without a restart.
//!
//! Every change a node makes through its API or OMAPI is stored first,
//! with the next change number, and its transaction notifies
//! `stormboot_reservations` (`store::postgres`). This task keeps one
//! connection of its own LISTENing on that channel and, on each
//! notification, on every (re)connect, at start-up and every
//! `cluster.sync_interval` (a notification sent while the connection was
//! down is never replayed), reads the store's change log after the last
//! number this node applied and serves those changes through the apply
//! path (`Live::follow_locked`): checked by the reservation rule, written
//! into the maps, handed to the DHCP server and published, not stored
//! again. The node's own changes come back the same way and change
//! nothing.
//!
//! When the log was pruned past the applied number (`ChangesAfter::Pruned`:
//! a removal this node never saw may be gone), every reservation is read
//! again from one snapshot and the book is made equal to it, writing only
//! the MACs that differ (`Live::resync_locked`). The same happens when a
//! change clashes with a reservation of the API rather than of the file
//! (two nodes gave one address to two MACs at once, each checked against
//! a book without the other's): a load lists reservations in change
//! order, so every node keeps the one stored first and refuses the other,
//! as at start-up.
//!
//! The log is read while the registry is held, so no change of this node's
//! API falls between the read and its application: a read never brings
//! back an older state of a MAC this node changed meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::Applied;
use crate::api::live::Live;
use crate::api::registry::Registry;
use crate::store::postgres::{describe, CHANNEL};
use crate::store::{ChangesAfter, ReservationStore, StoreError};

/// Changes read in one query: bounds a catch-up's memory and the time the
/// registry is held, while a backlog still goes in few round trips.
const PAGE: usize = 4096;

/// The first wait before connecting again, doubled after each failure up
/// to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the sync did since start-up, for `/metrics` and `stormboot stats`.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Changes this node served from the log that changed its book: the
    /// other nodes' (its own come back unchanged).
    pub applied: AtomicU64,
    /// Changes not served here (the config file wins, the rule refuses
    /// them, the row does not decode).
    pub skipped: AtomicU64,
    /// Whole reloads: the log was pruned past the applied number, or two
    /// nodes' changes clashed.
    pub full_resyncs: AtomicU64,
}

/// The counters and the applied change number, as the stats show them.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct SyncStats {
    pub changes_applied: u64,
    pub changes_skipped: u64,
    pub full_resyncs: u64,
    /// The last change number this node applied.
    pub applied_change: i64,
}

impl SyncCounters {
    pub fn stats(&self, applied: &Applied) -> SyncStats {
        SyncStats {
            changes_applied: self.applied.load(Ordering::Relaxed),
            changes_skipped: self.skipped.load(Ordering::Relaxed),
            full_resyncs: self.full_resyncs.load(Ordering::Relaxed),
            applied_change: applied.get(),
        }
    }
}

/// The sync task's parts.
pub struct ReservationSync {
    /// The store the API writes to, whose log it follows.
    pub store: Arc<dyn ReservationStore>,
    pub live: Arc<Live>,
    /// Set at start-up to the number the book was loaded at.
    pub applied: Arc<Applied>,
    pub counters: Arc<SyncCounters>,
    /// How the listening connection is made (the store's own settings).
    pub listen: tokio_postgres::Config,
    /// `cluster.sync_interval`.
    pub interval: Duration,
}

impl ReservationSync {
    /// Follows the log until shut down. Failures (the database away) are
    /// logged once per outage and retried; they never end the task.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(
            self.listen.clone(),
            wake.clone(),
            self.interval,
            shutdown.clone(),
        ));
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            // The first tick is at once: the catch-up at start-up.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                () = wake.notified() => {}
            }
            match self.catch_up().await {
                Ok(()) if failing => {
                    tracing::info!("reading reservation changes again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(
                        "reading reservation changes failed, trying again every {:?}: {e}",
                        self.interval
                    );
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let _ = listener.await;
        Ok(())
    }

    /// Serves every change after the applied number, page by page, or
    /// everything again if the log was pruned past it or a change clashed
    /// with one made at the same time.
    async fn catch_up(&self) -> Result<(), StoreError> {
        let mut reg = self.live.registry().lock().await;
        loop {
            let after = self.applied.get();
            let changes = match self.store.changes_after(after, PAGE).await? {
                ChangesAfter::Changes(c) => c,
                ChangesAfter::Pruned { through } => {
                    tracing::warn!(
                        applied = after,
                        pruned_through = through,
                        "reservation removals this node had not applied were pruned: \
                         reading every reservation again"
                    );
                    return self.resync(&mut reg).await;
                }
            };
            let full = changes.len() == PAGE;
            let followed = self.live.follow_locked(&mut reg, &changes).await;
            self.counters
                .applied
                .fetch_add(followed.applied, Ordering::Relaxed);
            self.counters
                .skipped
                .fetch_add(followed.skipped, Ordering::Relaxed);
            if followed.through > after {
                self.applied.set(followed.through);
            }
            if followed.clashed {
                return self.resync(&mut reg).await;
            }
            if let Some(e) = followed.failed {
                tracing::error!(
                    "serving reservation changes stopped after change {}, trying again: {}",
                    followed.through,
                    e.message
                );
                return Ok(());
            }
            if followed.applied > 0 {
                tracing::debug!(
                    applied = followed.applied,
                    skipped = followed.skipped,
                    through = followed.through,
                    "reservation changes from the store served"
                );
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Reads every reservation again and serves exactly those (beside the
    /// file's), going on from the number that read was at.
    async fn resync(&self, reg: &mut Registry) -> Result<(), StoreError> {
        let snapshot = self.store.load().await?;
        match self.live.resync_locked(reg, snapshot.reservations).await {
            Ok(differed) => {
                self.counters.full_resyncs.fetch_add(1, Ordering::Relaxed);
                self.applied.set(snapshot.last_change);
                tracing::info!(
                    at = snapshot.last_change,
                    differed,
                    "every reservation read again"
                );
            }
            Err(e) => tracing::error!(
                "serving the reservations read again failed, trying again: {}",
                e.message
            ),
        }
        Ok(())
    }
}

/// Keeps one connection LISTENing on the reservations' channel and wakes
/// the sync on each notification and on each (re)connect; reconnects with
/// backoff, logging once per outage.
async fn listen(
    cfg: tokio_postgres::Config,
    wake: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut down_since: Option<Instant> = None;
    let outage = |why: String, down_since: &mut Option<Instant>| {
        if down_since.is_none() {
            tracing::warn!(
                "not listening for reservation changes ({why}); reading them every \
                 {interval:?} meanwhile, reconnecting"
            );
            *down_since = Some(Instant::now());
        }
    };
    loop {
        let session = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = session(&cfg) => s,
        };
        match session {
            Err(why) => {
                outage(why, &mut down_since);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Ok(mut session) => {
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        "listening for reservation changes again, after {:?}",
                        since.elapsed()
                    );
                }
                backoff = FIRST_BACKOFF;
                // Whatever was notified while the connection was down.
                wake.notify_one();
                let why = loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = session.notifications.recv() => match n {
                            Some(()) => wake.notify_one(),
                            None => break session.ended().await,
                        },
                    }
                };
                outage(why, &mut down_since);
            }
        }
    }
}

/// A LISTENing connection: its notifications, and the task that drives it.
struct Session {
    notifications: mpsc::UnboundedReceiver<()>,
    driver: tokio::task::JoinHandle<String>,
    /// Kept so the connection stays open.
    _client: tokio_postgres::Client,
}

impl Session {
    /// Why the connection ended.
    async fn ended(self) -> String {
        self.driver
            .await
            .unwrap_or_else(|e| format!("its task failed: {e}"))
    }
}

/// Connects and LISTENs; the connection's messages are read by a task of
/// its own, which forwards notifications and ends with the connection.
async fn session(cfg: &tokio_postgres::Config) -> Result<Session, String> {
    let (client, mut connection) = cfg.connect(NoTls).await.map_err(|e| describe(&e))?;
    let (tx, notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    // The payload (the last number) is not needed: the
                    // sync reads after what it applied, whatever woke it.
                    if tx.send(()).is_err() {
                        return "stopped".to_owned();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return describe(&e),
                None => return "the server closed the connection".to_owned(),
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(e) = listening {
        driver.abort();
        return Err(describe(&e));
    }
    Ok(Session {
        notifications,
        driver,
        _client: client,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::api::live::{self, Control, Live};
    use crate::api::registry::Mode;
    use crate::api::types::ReservationSpec;
    use crate::config::Config;
    use crate::store::{ReservationChange, SqliteStore};

    const FILE: &str = r#"
        [server]
        interface = "x"
        address = "10.0.0.1"
        [[subnet]]
        cidr = "10.0.0.0/24"
        [[reservation]]
        mac = "02:00:00:00:00:01"
        ip = "10.0.0.10"
    "#;

    fn mac(i: u8) -> [u8; 6] {
        [2, 0, 0, 0, 0, i]
    }

    fn spec(i: u8, ip: &str) -> ReservationSpec {
        ReservationSpec {
            mac: crate::frame::format_mac(&mac(i)),
            ip: ip.into(),
            ..Default::default()
        }
    }

    fn put(i: u8, ip: &str) -> ReservationChange {
        ReservationChange::Put {
            mac: mac(i),
            spec: Box::new(spec(i, ip)),
        }
    }

    /// A node on `store` (another node writes to the same store through
    /// `store` directly), with a userspace server that takes every book.
    async fn node(store: &Arc<SqliteStore>) -> ReservationSync {
        let cfg = Config::from_str(FILE, Path::new("t.toml")).expect("config");
        let (registry, last) = live::load(cfg, store.as_ref()).await.expect("load");
        let (control, mut server) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(c) = server.recv().await {
                if let Control::Book(_, _, done) = c {
                    let _ = done.send(());
                }
            }
        });
        let stored: Arc<dyn ReservationStore> = store.clone();
        let applied = Arc::new(Applied::default());
        applied.set(last);
        ReservationSync {
            live: Arc::new(Live::new(registry, stored.clone(), None, control)),
            store: stored,
            applied,
            counters: Arc::default(),
            listen: tokio_postgres::Config::new(),
            interval: Duration::from_secs(3600),
        }
    }

    /// Two nodes each give 10.0.0.50 to a different MAC through their
    /// API, each before it has seen the other's change: once both have
    /// read the log, both serve the one stored first and not the other.
    #[tokio::test]
    async fn two_nodes_giving_one_address_at_once_end_with_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open"));
        let (a, b) = (node(&store).await, node(&store).await);
        a.live
            .put(&spec(2, "10.0.0.50"), Mode::Create, None)
            .await
            .expect("A's change");
        b.live
            .put(&spec(3, "10.0.0.50"), Mode::Create, None)
            .await
            .expect("B's change, checked before B saw A's");
        for n in [&b, &a] {
            n.catch_up().await.expect("catch up");
        }
        let first = vec![(1, "10.0.0.10".into()), (2, "10.0.0.50".into())];
        assert_eq!(served(&a), first, "A");
        assert_eq!(served(&b), first, "B");
        for n in [&a, &b] {
            let stats = n.counters.stats(&n.applied);
            assert_eq!(stats.full_resyncs, 1, "{stats:?}");
            assert_eq!(stats.applied_change, last_change(&store).await);
        }
        // A node started now keeps the same one.
        assert_eq!(served(&node(&store).await), first, "at start-up");
    }

    /// The addresses the node serves, by the MAC's last octet.
    fn served(s: &ReservationSync) -> Vec<(u8, String)> {
        s.live
            .published()
            .load()
            .reservations()
            .map(|r| (r.mac[5], r.ip.to_string()))
            .collect()
    }

    async fn last_change(store: &SqliteStore) -> i64 {
        ReservationStore::load(store)
            .await
            .expect("load")
            .last_change
    }

    /// Another node's changes are served and counted; one the file
    /// overrides and one the rule refuses here are skipped and counted;
    /// this node's own change comes back and changes nothing; the applied
    /// number follows the log.
    #[tokio::test]
    async fn changes_in_the_log_are_served_skipped_or_recognised_as_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open"));
        let s = node(&store).await;
        store
            .apply(vec![
                put(2, "10.0.0.20"),
                // The file's MAC, and the file's address.
                put(1, "10.0.0.30"),
                put(3, "10.0.0.10"),
            ])
            .await
            .expect("another node's changes");
        s.catch_up().await.expect("catch up");
        assert_eq!(
            served(&s),
            vec![(1, "10.0.0.10".into()), (2, "10.0.0.20".into())]
        );
        let stats = s.counters.stats(&s.applied);
        assert_eq!((stats.changes_applied, stats.changes_skipped), (1, 2));
        assert_eq!(stats.applied_change, last_change(&store).await);

        s.live
            .put(&spec(4, "10.0.0.40"), Mode::Create, None)
            .await
            .expect("this node's change");
        store
            .apply(vec![ReservationChange::Remove { mac: mac(2) }])
            .await
            .expect("another node's removal");
        s.catch_up().await.expect("catch up");
        assert_eq!(
            served(&s),
            vec![(1, "10.0.0.10".into()), (4, "10.0.0.40".into())]
        );
        let stats = s.counters.stats(&s.applied);
        assert_eq!(
            (stats.changes_applied, stats.changes_skipped),
            (2, 2),
            "its own change is not counted as applied"
        );
        assert_eq!(stats.applied_change, last_change(&store).await);
        assert_eq!(stats.full_resyncs, 0);
    }

    /// A removal this node had not applied was pruned: it reads every
    /// reservation again, serves exactly those, and goes on from the
    /// number that read was at.
    #[tokio::test]
    async fn a_log_pruned_past_the_applied_number_reloads_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open"));
        store
            .apply(vec![put(2, "10.0.0.20"), put(3, "10.0.0.30")])
            .await
            .expect("apply");
        let s = node(&store).await;
        store
            .apply(vec![
                ReservationChange::Remove { mac: mac(3) },
                put(4, "10.0.0.40"),
                put(2, "10.0.0.22"),
            ])
            .await
            .expect("changes while this node was behind");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert_eq!(store.prune_removals(now + 1).await.expect("prune"), 1);

        s.catch_up().await.expect("catch up");
        assert_eq!(
            served(&s),
            vec![
                (1, "10.0.0.10".into()),
                (2, "10.0.0.22".into()),
                (4, "10.0.0.40".into())
            ]
        );
        let stats = s.counters.stats(&s.applied);
        assert_eq!(stats.full_resyncs, 1);
        assert_eq!(stats.applied_change, last_change(&store).await);

        store.apply(vec![put(5, "10.0.0.50")]).await.expect("apply");
        s.catch_up().await.expect("catch up");
        assert_eq!(served(&s).len(), 4, "following the log again");
        assert_eq!(s.counters.stats(&s.applied).full_resyncs, 1);
    }
}
