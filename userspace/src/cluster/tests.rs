//! Heartbeats on a real PostgreSQL database (a private server, as the
//! store's tests): nodes see each other alive, a silent node dies after
//! `dead_after`, a stopped one is gone at once, the leader's lock moves
//! when its session dies, the chores prune what they say, and an outage
//! freezes the membership and shows in the status.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use stormboot_testbed::postgres::{Postgres, SUPERUSER};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::heartbeat::{Handle, Heartbeat, Status};
use super::identity::Identity;
use super::leader::{self, Ages};
use super::{Applied, Membership};
use crate::config;
use crate::store::postgres::tests::Database;

const HEARTBEAT: Duration = Duration::from_millis(100);
const DEAD_AFTER: Duration = Duration::from_millis(800);

/// How long a test waits for what should happen within a few heartbeats.
const PATIENCE: Duration = Duration::from_secs(15);

fn cluster(node: &str) -> config::Cluster {
    config::Cluster {
        heartbeat: HEARTBEAT,
        dead_after: DEAD_AFTER,
        ..config::Cluster::named(node.into())
    }
}

fn identity(node: &str, hash: &str) -> Identity {
    Identity {
        node: node.into(),
        addresses: "10.50.0.1".into(),
        version: "test".into(),
        config_hash: hash.into(),
        started: SystemTime::now(),
    }
}

/// A node's heartbeat, running.
struct Node {
    handle: Handle,
    task: JoinHandle<std::io::Result<()>>,
    stop: CancellationToken,
    applied: Arc<Applied>,
}

async fn start(store: &config::Store, node: &str, hash: &str) -> Node {
    start_with(store, node, hash, None).await
}

/// `start`, with other ages for the leader's chores.
async fn start_with(store: &config::Store, node: &str, hash: &str, ages: Option<Ages>) -> Node {
    let config::Store::Postgres(pg) = store else {
        panic!("not PostgreSQL: {store:?}");
    };
    // The node's store, where its leader chores prune removals.
    let stores = crate::store::open(store).await.expect("the node's store");
    let applied = Arc::new(Applied::default());
    let (beat, handle) = Heartbeat::new(
        &cluster(node),
        pg,
        identity(node, hash),
        applied.clone(),
        stores.reservations,
    )
    .expect("new");
    let beat = match ages {
        Some(a) => beat.with_ages(a),
        None => beat,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(beat.run(stop.clone()));
    Node {
        handle,
        task,
        stop,
        applied,
    }
}

/// A fresh database with the store's schema, as a node's store leaves it
/// before its heartbeat starts.
async fn database() -> (Database, config::Store) {
    let db = Database::new();
    let store = db.config(SUPERUSER, None);
    schema(&store).await;
    (db, store)
}

async fn schema(store: &config::Store) {
    crate::store::open(store)
        .await
        .expect("the schema")
        .close()
        .await
        .expect("close");
}

fn alive(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Waits until `rx`'s value satisfies `f`, failing the test after
/// `PATIENCE` with what it last held.
async fn until<T: std::fmt::Debug>(rx: &watch::Receiver<T>, what: &str, f: impl Fn(&T) -> bool) {
    let mut rx = rx.clone();
    let met = tokio::time::timeout(PATIENCE, rx.wait_for(|v| f(v)))
        .await
        .is_ok_and(|r| r.is_ok());
    if !met {
        panic!("{what}: not within {PATIENCE:?}; last {:?}", *rx.borrow());
    }
}

async fn membership_is(n: &Node, names: &[&str]) {
    let want = alive(names);
    until(
        &n.handle.membership,
        &format!("alive = {want:?}"),
        |m: &Membership| m.alive == want,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_see_each_other_and_a_silent_node_dies_after_dead_after() {
    let (_db, store) = database().await;
    let a = start(&store, "a", "same").await;
    let b = start(&store, "b", "same").await;
    b.applied.set(7);
    membership_is(&a, &["a", "b"]).await;
    membership_is(&b, &["a", "b"]).await;
    assert_eq!(a.handle.membership.borrow().me, "a");
    until(
        &a.handle.status,
        "b's applied change seen by a",
        |s: &Status| {
            s.view(Instant::now())
                .nodes
                .iter()
                .any(|n| n.node == "b" && n.applied_change == 7)
        },
    )
    .await;
    let view = a.handle.status.borrow().view(Instant::now());
    assert!(view.store_reachable);
    assert!(
        view.nodes.iter().all(|n| n.alive && n.config_agrees),
        "{view:#?}"
    );

    // Killed: its row stays, and only its silence tells.
    a.task.abort();
    let killed = Instant::now();
    membership_is(&b, &["b"]).await;
    let took = killed.elapsed();
    println!(
        "a killed: dead to b after {took:?} (heartbeat {HEARTBEAT:?}, dead_after {DEAD_AFTER:?})"
    );
    // Its last heartbeat was at most one period before the abort.
    assert!(
        took + HEARTBEAT >= DEAD_AFTER,
        "a was dead to b {took:?} after it stopped, before dead_after ({DEAD_AFTER:?})"
    );
    let view = b.handle.status.borrow().view(Instant::now());
    let dead = view.nodes.iter().find(|n| n.node == "a").expect("a's row");
    assert!(!dead.alive, "{view:#?}");
    assert!(
        dead.last_seen_secs_ago >= DEAD_AFTER.as_secs_f64(),
        "{view:#?}"
    );
    b.stop.cancel();
    b.task.await.expect("b's task").expect("b's heartbeat");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_stops_is_gone_at_once_and_a_differing_config_shows() {
    let (db, store) = database().await;
    let a = start(&store, "a", "one").await;
    let b = start(&store, "b", "other").await;
    membership_is(&b, &["a", "b"]).await;
    let view = b.handle.status.borrow().view(Instant::now());
    let agrees: Vec<(String, bool)> = view
        .nodes
        .iter()
        .map(|n| (n.node.clone(), n.config_agrees))
        .collect();
    assert_eq!(agrees, [("a".into(), false), ("b".into(), true)]);

    a.stop.cancel();
    let stopped = Instant::now();
    a.task.await.expect("a's task").expect("a's heartbeat");
    membership_is(&b, &["b"]).await;
    println!("a stopped: gone for b after {:?}", stopped.elapsed());
    assert!(
        stopped.elapsed() < DEAD_AFTER,
        "a stopped, yet b saw it gone only after {:?}",
        stopped.elapsed()
    );
    assert_eq!(db.psql("SELECT node FROM nodes").trim(), "b");
    b.stop.cancel();
    b.task.await.expect("b's task").expect("b's heartbeat");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_lock_moves_when_the_leaders_session_dies() {
    let (db, store) = database().await;
    let a = start(&store, "a", "h").await;
    until(&a.handle.status, "a leads", |s: &Status| s.leader).await;
    let b = start(&store, "b", "h").await;
    until(&b.handle.status, "b sees a lead", |s: &Status| {
        s.view(Instant::now()).leader.as_deref() == Some("a") && s.alive() == 2
    })
    .await;
    assert!(!b.handle.status.borrow().leader);

    let killed = db.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'a'",
    );
    // Every session of a's is ended: on a loaded machine the list can
    // still show one a has just left while it reconnected.
    assert!(
        killed.trim().parse::<u32>().is_ok_and(|n| n >= 1),
        "a's heartbeat session: {killed}"
    );
    let terminated = Instant::now();
    until(&b.handle.status, "b leads", |s: &Status| {
        s.leader && s.view(Instant::now()).leader.as_deref() == Some("b")
    })
    .await;
    println!(
        "a's session ended: b leads after {:?}",
        terminated.elapsed()
    );
    // a reconnects by itself, and follows.
    until(&a.handle.status, "a back, following b", |s: &Status| {
        s.reachable && !s.leader && s.view(Instant::now()).leader.as_deref() == Some("b")
    })
    .await;
    for n in [a, b] {
        n.stop.cancel();
        n.task.await.expect("task").expect("heartbeat");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chores_prune_old_removals_history_leases_and_nodes_and_mark_the_removals() {
    let (db, store) = database().await;
    let stores = crate::store::open(&store).await.expect("open");
    let now = crate::slowpath::unix_now() as i64;
    db.psql(&format!(
        "INSERT INTO reservations (mac, spec, change_number, updated) VALUES
            ('\\x020000000001', NULL, 5, {old}),
            ('\\x020000000002', NULL, 9, {now}),
            ('\\x020000000003', '{{}}', 3, {old});
         UPDATE change_counter SET value = 9;
         INSERT INTO leases (ip, client_id, mac, state, expires, updated) VALUES
            ('10.0.0.1', '\\x01', '\\x020000000001', 'bound', {expired}, 0),
            ('10.0.0.2', '\\x01', '\\x020000000002', 'bound', {now}, 0);
         INSERT INTO address_history (ip, event, mac, client_id, expires, at) VALUES
            ('10.0.0.9', 'bound', '\\x020000000009', '\\x01', 0, now() - interval '2 hours');
         INSERT INTO nodes VALUES
            ('gone', '', 'v', 'h', now() - interval '3 hours', now() - interval '2 hours', 0),
            ('here', '', 'v', 'h', now(), now(), 0);",
        old = now - 7200,
        expired = now - 7200,
    ));
    let (client, connection) =
        crate::store::postgres::connection(&db.server.url(&db.name, SUPERUSER))
            .expect("url")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let hour = Duration::from_secs(3600);
    let ages = Ages {
        tombstones: hour,
        history: hour,
        leases: hour,
        nodes: hour,
    };
    let reservations = stores.reservations.as_ref();
    let pruned = leader::chores(&client, reservations, &ages)
        .await
        .expect("chores");
    assert_eq!(
        pruned,
        leader::Pruned {
            tombstones: 1,
            // The two-hour-old entry; the expired lease's `freed` is new.
            history: 1,
            leases: 1,
            nodes: 1,
        }
    );
    let q = |sql: &str| db.psql(sql).trim().replace('\n', ",");
    assert_eq!(
        q("SELECT change_number FROM reservations ORDER BY change_number"),
        "3,9"
    );
    assert_eq!(q("SELECT value, pruned_through FROM change_counter"), "9|5");
    assert_eq!(q("SELECT host(ip) FROM leases"), "10.0.0.2");
    assert_eq!(
        q("SELECT host(ip) || ' ' || event FROM address_history ORDER BY id"),
        "10.0.0.1 bound,10.0.0.2 bound,10.0.0.1 freed"
    );
    assert_eq!(q("SELECT node FROM nodes"), "here");
    // Nothing left to prune: the marker stays.
    let again = leader::chores(&client, reservations, &ages)
        .await
        .expect("chores");
    assert_eq!(again, leader::Pruned::default());
    assert_eq!(q("SELECT pruned_through FROM change_counter"), "5");
}

/// The leader does its chores as it takes the lock: an old removal goes
/// through the store, which marks it pruned for the sync.
#[tokio::test(flavor = "multi_thread")]
async fn the_leader_prunes_old_removals_through_the_store() {
    let (db, store) = database().await;
    let old = crate::slowpath::unix_now() - 7200;
    db.psql(&format!(
        "INSERT INTO reservations (mac, spec, change_number, updated) VALUES
            ('\\x020000000001', NULL, 5, {old});
         UPDATE change_counter SET value = 5;"
    ));
    let hour = Duration::from_secs(3600);
    let ages = Ages {
        tombstones: hour,
        ..Ages::with_grace(hour)
    };
    let a = start_with(&store, "a", "h", Some(ages)).await;
    until(&a.handle.status, "a leads", |s: &Status| s.leader).await;
    let deadline = Instant::now() + PATIENCE;
    while db.psql("SELECT pruned_through FROM change_counter").trim() != "5" {
        assert!(Instant::now() < deadline, "the removal was never pruned");
        tokio::time::sleep(HEARTBEAT).await;
    }
    assert_eq!(db.psql("SELECT count(*) FROM reservations").trim(), "0");
    a.stop.cancel();
    a.task.await.expect("task").expect("heartbeat");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_freezes_the_membership_and_shows_until_the_database_is_back() {
    let mut pg = Postgres::start("cluster-outage").unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("outage")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let store = config::Store::Postgres(config::Postgres {
        url: pg.url("outage", SUPERUSER),
        pool_size: 2,
        password: None,
    });
    schema(&store).await;
    let a = start(&store, "a", "h").await;
    let b = start(&store, "b", "h").await;
    membership_is(&a, &["a", "b"]).await;
    until(&a.handle.status, "a reachable", |s: &Status| s.reachable).await;

    pg.stop().unwrap_or_else(|e| panic!("{e:#}"));
    until(&a.handle.status, "a sees the outage", |s: &Status| {
        !s.reachable
    })
    .await;
    // Longer than dead_after: without the database nobody is declared dead.
    tokio::time::sleep(DEAD_AFTER * 2).await;
    assert_eq!(a.handle.membership.borrow().alive, alive(&["a", "b"]));
    let view = a.handle.status.borrow().view(Instant::now());
    assert!(
        !view.store_reachable && view.store_error.is_some(),
        "{view:#?}"
    );
    assert!(!a.handle.status.borrow().leader);

    pg.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    until(&a.handle.status, "a reachable again", |s: &Status| {
        s.reachable
    })
    .await;
    membership_is(&a, &["a", "b"]).await;
    for n in [a, b] {
        n.stop.cancel();
        n.task.await.expect("task").expect("heartbeat");
    }
}
