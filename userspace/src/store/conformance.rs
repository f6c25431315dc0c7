//! The contract every store backend keeps, as one suite of tests run
//! against each backend: ordering (changes apply in the order given, the
//! last write to a key wins), durable before resolve (a resolved commit is
//! read back by another opener, and survives the store's end without
//! close), batching (concurrent calls share transactions, and all resolve),
//! refusal after close (every call fails at once, none hangs), schema
//! refusal (stored data of a newer or unknown schema version is refused and
//! left as it was), the reservations' change log (numbers in commit
//! order across writers, removals kept, a load's number where following
//! starts, pruning reported rather than hidden), and each address's
//! history (recorded from the lease changes, newest first, in the same
//! words on every backend).
//!
//! A backend runs the suite by implementing [`Backend`] (a fresh, empty
//! store of its own per test, its schema version read and set, a
//! fingerprint of what it stores) and invoking the macro in a test module:
//!
//! ```ignore
//! #[cfg(test)]
//! mod conformance {
//!     crate::store::conformance::suite!(super::TestDatabases::new());
//! }
//! ```
//!
//! SQLite's harness (`store/sqlite/tests.rs`) makes a temporary file per
//! test and fingerprints the file's bytes. PostgreSQL's
//! (`store/postgres/tests.rs`) creates a database per test on a private
//! server, drops it when the `Place`'s guard drops, and fingerprints a dump
//! of its rows, its sequence and its relations. Every test opens
//! the store through `store::open`, as the daemon does, so the `[store]`
//! arm a backend adds is exercised too.
//!
//! "Durable" here is what a test can observe: the data is in the backend's
//! storage, readable by an opener that shares nothing with the writer. That
//! a sync reached the disk (SQLite's `synchronous=FULL`) is the backend's
//! own configuration, not something a test without a power cut can see.

use std::any::Any;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::api::types::ReservationSpec;
use crate::config;
use crate::leases::{Lease, LeaseChange, LeaseState};
use crate::store::{
    open, AddressEvent, ChangesAfter, Logged, LoggedChange, ReservationChange, StoreError,
    StoreFuture, StoreStats, StoredReservation, Stores,
};

/// What the suite needs from a backend besides the traits.
pub trait Backend: Send + Sync + 'static {
    /// A new, empty store for one test.
    fn fresh(&self) -> Place;
    /// The schema version the store's data is marked with.
    fn schema_version(&self, cfg: &config::Store) -> i64;
    /// Marks the stored data with `version`, as another build would have
    /// left it; the store is not open.
    fn set_schema_version(&self, cfg: &config::Store, version: i64);
    /// Everything stored, as bytes: equal fingerprints mean nothing was
    /// written between them. The store is not open.
    fn fingerprint(&self, cfg: &config::Store) -> Vec<u8>;
}

/// Where one test's store lives.
pub struct Place {
    pub config: config::Store,
    /// Whatever keeps it alive (a temporary directory, a database dropped
    /// on drop); held until the test ends.
    pub guard: Box<dyn Any + Send>,
}

/// A store call that does not resolve within this is a hang.
const HANG: Duration = Duration::from_secs(10);

/// Runs every test of the suite against `$backend` (an expression that
/// builds a [`Backend`]), one `#[tokio::test]` each.
macro_rules! suite {
    ($backend:expr) => {
        $crate::store::conformance::suite!(@tests $backend;
            changes_apply_in_call_order,
            a_resolved_commit_is_read_by_another_opener,
            a_resolved_commit_survives_an_end_without_close,
            concurrent_calls_share_transactions,
            a_closed_store_refuses_every_call,
            an_unknown_schema_version_is_refused_untouched,
            the_log_holds_each_macs_last_change_in_number_order,
            a_follower_misses_no_change_of_concurrent_writers,
            a_reader_behind_pruned_removals_is_told_to_load_again,
            an_address_history_lists_holders_newest_first,
        );
    };
    (@tests $backend:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::store::conformance::$name(&$backend).await
            }
        )*
    };
}
pub(crate) use suite;

/// A lease per `i`, every field varied.
pub fn lease(i: u32) -> Lease {
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

fn mac(i: u32) -> [u8; 6] {
    [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// The reservation of machine `i`, at address `10.1.x.y + v`.
fn spec(i: u32, v: u32) -> ReservationSpec {
    ReservationSpec {
        mac: crate::frame::format_mac(&mac(i)),
        ip: Ipv4Addr::from(0x0a01_0000 + i + v).to_string(),
        hostname: Some(format!("node-{i}")),
        ..Default::default()
    }
}

fn put(i: u32, v: u32) -> ReservationChange {
    ReservationChange::Put {
        mac: mac(i),
        spec: Box::new(spec(i, v)),
    }
}

fn remove(i: u32) -> ReservationChange {
    ReservationChange::Remove { mac: mac(i) }
}

async fn opened(cfg: &config::Store) -> Stores {
    open(cfg)
        .await
        .unwrap_or_else(|e| panic!("opening {cfg:?}: {e}"))
}

async fn leases(s: &Stores) -> Vec<Lease> {
    s.leases.load().await.expect("loading leases")
}

/// The stored reservations, in MAC order (a load gives them in change
/// order, which `the_log_holds_each_macs_last_change_in_number_order`
/// checks).
async fn reservations(s: &Stores) -> Vec<ReservationSpec> {
    let mut specs: Vec<ReservationSpec> = s
        .reservations
        .load()
        .await
        .expect("loading reservations")
        .reservations
        .into_iter()
        .map(|r: StoredReservation| r.expect("a stored reservation"))
        .collect();
    specs.sort_by_key(|s| crate::frame::parse_mac(&s.mac));
    specs
}

async fn within<T>(what: &str, f: StoreFuture<T>) -> Result<T, StoreError> {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not resolve within {HANG:?}"))
}

/// Within one call, and across calls queued before either is awaited, the
/// changes reach the store in call order: the last write to a key wins.
pub async fn changes_apply_in_call_order<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    let first = lease(1);
    let mut replaced = lease(1);
    replaced.state = LeaseState::Bound;
    replaced.hostname = None;
    replaced.client_id = b"other client".to_vec();
    let (back, gone) = (lease(2), lease(3));
    let lost = s
        .leases
        .commit(vec![
            LeaseChange::Upsert(first),
            LeaseChange::Upsert(replaced.clone()),
            LeaseChange::Remove(back.clone()),
            LeaseChange::Upsert(back.clone()),
            LeaseChange::Upsert(gone.clone()),
            LeaseChange::Remove(gone.clone()),
        ])
        .await
        .expect("commit");
    // A store opened without a cluster is its leases' only writer: the
    // last write wins, whoever held the address.
    assert_eq!(lost, [], "a single writer lost a race");
    s.reservations
        .apply(vec![
            put(1, 0),
            put(1, 7),
            remove(2),
            put(2, 0),
            put(3, 0),
            remove(3),
        ])
        .await
        .expect("apply");

    // Queued in this order, awaited in the other.
    let later = lease(4);
    let add = s.leases.commit(vec![LeaseChange::Upsert(later.clone())]);
    let drop_it = s.leases.commit(vec![LeaseChange::Remove(later.clone())]);
    let put_4 = s.reservations.apply(vec![put(4, 0)]);
    let remove_4 = s.reservations.apply(vec![remove(4)]);
    let put_5 = s.reservations.apply(vec![put(5, 0)]);
    let replace_5 = s.reservations.apply(vec![put(5, 9)]);
    replace_5.await.expect("replace 5");
    put_5.await.expect("put 5");
    remove_4.await.expect("remove 4");
    put_4.await.expect("put 4");
    drop_it.await.expect("remove lease 4");
    add.await.expect("add lease 4");

    let want_leases = vec![replaced, back];
    let want_reservations = vec![spec(1, 7), spec(2, 0), spec(5, 9)];
    assert_eq!(leases(&s).await, want_leases);
    assert_eq!(reservations(&s).await, want_reservations);
    s.close().await.expect("close");
    drop(s);
    let s = opened(&place.config).await;
    assert_eq!(leases(&s).await, want_leases, "after reopening");
    assert_eq!(reservations(&s).await, want_reservations, "after reopening");
}

/// Each commit, once resolved, is read back by a second opener of the same
/// store (another process's view), also when concurrent commits resolve out
/// of one shared transaction.
pub async fn a_resolved_commit_is_read_by_another_opener<B: Backend>(b: &B) {
    let place = b.fresh();
    let writer = opened(&place.config).await;
    let reader = opened(&place.config).await;
    let tasks: Vec<_> = (0..50u32)
        .map(|i| {
            let (writer, reader) = (writer.clone(), reader.clone());
            tokio::spawn(async move {
                let l = lease(i);
                writer
                    .leases
                    .commit(vec![LeaseChange::Upsert(l.clone())])
                    .await
                    .expect("commit");
                assert!(
                    leases(&reader).await.contains(&l),
                    "lease {} resolved but another opener does not see it",
                    l.ip
                );
                writer
                    .reservations
                    .apply(vec![put(i, 0)])
                    .await
                    .expect("apply");
                assert!(
                    reservations(&reader).await.contains(&spec(i, 0)),
                    "reservation {i} resolved but another opener does not see it"
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// What resolved is stored without the store being closed or even dropped:
/// the handle is leaked as a crashed process's would be, so nothing a close
/// or a destructor would flush can help; a new opener reads everything.
pub async fn a_resolved_commit_survives_an_end_without_close<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    for i in 0..20 {
        s.leases
            .commit(vec![LeaseChange::Upsert(lease(i))])
            .await
            .expect("commit");
        s.reservations.apply(vec![put(i, 0)]).await.expect("apply");
    }
    std::mem::forget(s);
    let s = opened(&place.config).await;
    assert_eq!(leases(&s).await, (0..20).map(lease).collect::<Vec<_>>());
    assert_eq!(
        reservations(&s).await,
        (0..20).map(|i| spec(i, 0)).collect::<Vec<_>>()
    );
}

/// Many calls made at once (each caller waiting for its own, like DHCP
/// handlers before their ACKs) share transactions, every one resolves, and
/// the stats on each trait say so.
pub async fn concurrent_calls_share_transactions<B: Backend>(b: &B) {
    const CALLS: u32 = 1000;
    let place = b.fresh();
    let s = opened(&place.config).await;
    assert_eq!(s.leases.stats(), StoreStats::default(), "a fresh store");
    assert_eq!(s.reservations.stats(), StoreStats::default());
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let a = s.leases.commit(vec![LeaseChange::Upsert(lease(i))]);
                let b = s.reservations.apply(vec![put(i, 0), put(i, 1)]);
                a.await.expect("commit");
                b.await.expect("apply");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let (l, r) = (s.leases.stats(), s.reservations.stats());
    println!(
        "{CALLS} commits in {} transactions, {CALLS} applies in {}",
        l.transactions, r.transactions
    );
    let calls = u64::from(CALLS);
    assert_eq!((l.commits, l.changes), (calls, calls), "{l:?}");
    assert_eq!((r.commits, r.changes), (calls, 2 * calls), "{r:?}");
    for (what, st) in [("leases", l), ("reservations", r)] {
        assert_eq!(
            st.commit_latency.iter().sum::<u64>(),
            st.commits,
            "{what}: every call timed: {:?}",
            st.commit_latency
        );
        assert!(
            st.transactions > 0 && st.transactions * 4 < st.commits,
            "{what}: {} transactions for {} calls: not batching",
            st.transactions,
            st.commits
        );
    }
    s.close().await.expect("close");
    drop(s);
    let s = opened(&place.config).await;
    assert_eq!(leases(&s).await, (0..CALLS).map(lease).collect::<Vec<_>>());
    assert_eq!(
        reservations(&s).await,
        (0..CALLS).map(|i| spec(i, 1)).collect::<Vec<_>>()
    );
}

/// Close makes durable what was queued before it; after it, every call of
/// either trait fails with `Closed` at once, and close itself may be
/// called again.
pub async fn a_closed_store_refuses_every_call<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    let queued = s.leases.commit(vec![LeaseChange::Upsert(lease(1))]);
    let queued_too = s.reservations.apply(vec![put(1, 0)]);
    within("close", s.leases.close()).await.expect("close");
    within("a commit queued before close", queued)
        .await
        .expect("a commit queued before close");
    within("an apply queued before close", queued_too)
        .await
        .expect("an apply queued before close");

    let closed = |what: &str, r: Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::Closed)), "{what}: {r:?}");
    };
    let commit = within(
        "commit after close",
        s.leases.commit(vec![LeaseChange::Upsert(lease(2))]),
    )
    .await;
    closed("commit", commit.map(drop));
    let apply = within("apply after close", s.reservations.apply(vec![put(2, 0)])).await;
    closed("apply", apply);
    let load = within("load after close", s.leases.load()).await;
    closed("load leases", load.map(drop));
    let load = within("load after close", s.reservations.load()).await;
    closed("load reservations", load.map(drop));
    within("a second close", s.reservations.close())
        .await
        .expect("a second close");
    within("a third close", s.leases.close())
        .await
        .expect("a third close");
    drop(s);

    let s = opened(&place.config).await;
    assert_eq!(leases(&s).await, vec![lease(1)]);
    assert_eq!(reservations(&s).await, vec![spec(1, 0)]);
}

/// Stored data marked with a schema version this build does not know (a
/// newer build's, or an invalid one) is refused with `StoreError::Schema`
/// naming the version, and nothing is written to it; marked back, it opens
/// with its data.
pub async fn an_unknown_schema_version_is_refused_untouched<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    s.leases
        .commit(vec![LeaseChange::Upsert(lease(1))])
        .await
        .expect("commit");
    s.reservations.apply(vec![put(1, 0)]).await.expect("apply");
    s.close().await.expect("close");
    drop(s);

    let known = b.schema_version(&place.config);
    for unknown in [known + 1, -1] {
        b.set_schema_version(&place.config, unknown);
        let before = b.fingerprint(&place.config);
        let Err(e) = open(&place.config).await else {
            panic!("opened a store of schema version {unknown}");
        };
        let message = e.to_string();
        println!("{message}");
        assert!(
            matches!(e, StoreError::Schema { .. }),
            "not a schema error: {e:?}"
        );
        assert!(
            message.contains(&format!("schema version {unknown}")),
            "the error does not name the version: {message}"
        );
        assert!(
            b.fingerprint(&place.config) == before,
            "refusing schema version {unknown} changed the store"
        );
    }

    b.set_schema_version(&place.config, known);
    let s = opened(&place.config).await;
    assert_eq!(leases(&s).await, vec![lease(1)]);
    assert_eq!(reservations(&s).await, vec![spec(1, 0)]);
}

/// An address's life (offered, bound, renewed, freed, offered to another
/// client, declined) comes back from `history` newest first: one entry per
/// change of state or holder (a renewal is none), each with its holder,
/// and `limit` keeps the newest. Other addresses have their own history.
pub async fn an_address_history_lists_holders_newest_first<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    let mut offered = lease(7);
    offered.state = LeaseState::Offered;
    offered.expires = 1_700_000_030;
    let mut bound = offered.clone();
    bound.state = LeaseState::Bound;
    bound.expires = 1_700_003_600;
    let mut renewed = bound.clone();
    renewed.expires = 1_700_007_200;
    renewed.hostname = Some("renamed".into());
    // Another client, at the same address.
    let mut other = lease(8);
    other.ip = offered.ip;
    other.state = LeaseState::Offered;
    let mut declined = other.clone();
    declined.state = LeaseState::Declined;
    let neighbour = lease(9);
    let start = crate::slowpath::unix_now();
    for changes in [
        vec![LeaseChange::Upsert(offered.clone())],
        vec![LeaseChange::Upsert(bound.clone())],
        vec![LeaseChange::Upsert(renewed.clone())],
        vec![
            LeaseChange::Remove(renewed.clone()),
            LeaseChange::Upsert(neighbour.clone()),
        ],
        vec![LeaseChange::Upsert(other.clone())],
        vec![LeaseChange::Upsert(declined.clone())],
    ] {
        s.leases.commit(changes).await.expect("commit");
    }
    let end = crate::slowpath::unix_now();

    let history = within("history", s.leases.history(offered.ip, 100))
        .await
        .expect("history");
    let seen: Vec<(AddressEvent, [u8; 6], u64)> = history
        .iter()
        .map(|r| (r.event, r.mac, r.expires))
        .collect();
    assert_eq!(
        seen,
        vec![
            (AddressEvent::Declined, declined.mac, declined.expires),
            (AddressEvent::Offered, other.mac, other.expires),
            (AddressEvent::Freed, renewed.mac, renewed.expires),
            (AddressEvent::Bound, bound.mac, bound.expires),
            (AddressEvent::Offered, offered.mac, offered.expires),
        ],
        "{history:#?}"
    );
    let freed = &history[2];
    assert_eq!(
        (freed.client_id.as_slice(), freed.hostname.as_deref()),
        (renewed.client_id.as_slice(), Some("renamed")),
        "a freed entry describes the lease that ended"
    );
    assert_eq!(freed.node, None, "nothing names a node outside a cluster");
    for r in &history {
        // Stored with whole seconds: allow the second the run began in.
        assert!(
            (start.saturating_sub(1)..=end + 1).contains(&r.at),
            "recorded at {}, not between {start} and {end}",
            r.at
        );
    }

    let newest = within("history", s.leases.history(offered.ip, 2))
        .await
        .expect("history");
    assert_eq!(newest, history[..2].to_vec(), "limit keeps the newest");
    let next_door = within("history", s.leases.history(neighbour.ip, 100))
        .await
        .expect("history");
    assert_eq!(
        next_door.iter().map(|r| r.event).collect::<Vec<_>>(),
        vec![AddressEvent::Offered],
        "lease(9) is an offer"
    );
    let nothing = within("history", s.leases.history(Ipv4Addr::new(10, 9, 9, 9), 100))
        .await
        .expect("history");
    assert!(nothing.is_empty(), "{nothing:?}");
    s.close().await.expect("close");
}

async fn log_after(s: &Stores, number: i64, limit: usize) -> Vec<LoggedChange> {
    match within("changes_after", s.reservations.changes_after(number, limit))
        .await
        .expect("changes_after")
    {
        ChangesAfter::Changes(c) => c,
        ChangesAfter::Pruned { through } => {
            panic!("changes after {number}: pruned through {through}")
        }
    }
}

/// (MAC index, what) of log entries, numbers left out.
fn entries(log: &[LoggedChange]) -> Vec<(u8, Logged)> {
    log.iter().map(|c| (c.mac[5], c.what.clone())).collect()
}

fn logged_put(i: u32, v: u32) -> Logged {
    Logged::Put(Box::new(spec(i, v)))
}

/// The log holds each MAC's last change, removals included, in number
/// order; a load gives the reservations in that order, and its number is
/// the last change it includes, so the log after it holds exactly what
/// came later; a page holds the first changes.
pub async fn the_log_holds_each_macs_last_change_in_number_order<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    let empty = within("load", s.reservations.load()).await.expect("load");
    assert_eq!(
        (empty.reservations.len(), empty.last_change),
        (0, 0),
        "a new store"
    );
    assert_eq!(log_after(&s, 0, 100).await, vec![]);

    for changes in [
        vec![put(1, 0), put(2, 0)],
        vec![put(1, 5)],
        vec![remove(2)],
        vec![put(3, 0)],
    ] {
        s.reservations.apply(changes).await.expect("apply");
    }
    let loaded = within("load", s.reservations.load()).await.expect("load");
    let log = log_after(&s, 0, 100).await;
    assert_eq!(
        entries(&log),
        vec![
            (1, logged_put(1, 5)),
            (2, Logged::Removed),
            (3, logged_put(3, 0))
        ]
    );
    assert!(
        log.windows(2).all(|w| w[0].number < w[1].number),
        "numbers increase: {log:?}"
    );
    assert_eq!(loaded.last_change, log[2].number, "{log:?}");
    assert_eq!(
        entries(&log_after(&s, log[0].number, 100).await),
        entries(&log[1..])
    );
    assert_eq!(entries(&log_after(&s, 0, 2).await), entries(&log[..2]));

    // Loaded in change order, not MAC order.
    s.reservations.apply(vec![put(0, 0)]).await.expect("apply");
    let after_0 = log_after(&s, loaded.last_change, 100).await;
    let loaded = within("load", s.reservations.load()).await.expect("load");
    let order: Vec<_> = loaded
        .reservations
        .into_iter()
        .map(|r| r.expect("a stored reservation"))
        .collect();
    assert_eq!(order, vec![spec(1, 5), spec(3, 0), spec(0, 0)]);
    assert_eq!(loaded.last_change, after_0[0].number);

    s.reservations.apply(vec![put(4, 0)]).await.expect("apply");
    let later = log_after(&s, loaded.last_change, 100).await;
    assert_eq!(entries(&later), vec![(4, logged_put(4, 0))]);
    assert!(later[0].number > loaded.last_change);
    let reloaded = within("load", s.reservations.load()).await.expect("load");
    assert_eq!(reloaded.last_change, later[0].number);
    s.close().await.expect("close");
}

/// Two openers (two nodes) write at once while a third follows the log
/// from the number it last saw: the follower ends with exactly what a
/// load reads, at the load's number. (That a number cannot become visible
/// before a lower one, which this relies on, is shown deterministically
/// by the PostgreSQL store's own test holding a transaction open.)
pub async fn a_follower_misses_no_change_of_concurrent_writers<B: Backend>(b: &B) {
    const MACS: u32 = 100;
    let place = b.fresh();
    let (a, c, reader) = (
        opened(&place.config).await,
        opened(&place.config).await,
        opened(&place.config).await,
    );
    let writers: Vec<_> = (0..MACS)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { c.clone() };
            tokio::spawn(async move {
                for v in 0..3 {
                    s.reservations.apply(vec![put(i, v)]).await.expect("put");
                }
                if i % 3 == 0 {
                    s.reservations.apply(vec![remove(i)]).await.expect("remove");
                }
            })
        })
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = tokio::spawn({
        let (reader, done) = (reader.clone(), done.clone());
        async move {
            let mut seen = std::collections::BTreeMap::new();
            let mut applied = 0;
            loop {
                // Read the flag first: reads that start after the
                // writers finished see everything, up to a short page.
                let last_round = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = log_after(&reader, applied, 16).await;
                let whole = page.len() < 16;
                for change in page {
                    assert!(change.number > applied, "{change:?} after {applied}");
                    applied = change.number;
                    match change.what {
                        Logged::Put(spec) => seen.insert(change.mac, *spec),
                        Logged::Removed => seen.remove(&change.mac),
                        Logged::Unreadable(why) => panic!("{why}"),
                    };
                }
                if last_round && whole {
                    return (seen.into_values().collect::<Vec<_>>(), applied);
                }
                tokio::task::yield_now().await;
            }
        }
    });
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (followed, applied) = follower.await.expect("follower");
    let loaded = within("load", reader.reservations.load())
        .await
        .expect("load");
    let want: Vec<_> = (0..MACS)
        .filter(|i| i % 3 != 0)
        .map(|i| spec(i, 2))
        .collect();
    assert_eq!(reservations(&reader).await, want);
    assert_eq!(followed, want, "the follower's view");
    assert_eq!(applied, loaded.last_change);
}

/// Pruning deletes old removals and says how far: a reader behind a
/// pruned removal is told to load again, one past it reads on as before,
/// and the reservations are untouched.
pub async fn a_reader_behind_pruned_removals_is_told_to_load_again<B: Backend>(b: &B) {
    let place = b.fresh();
    let s = opened(&place.config).await;
    s.reservations
        .apply(vec![put(1, 0), put(2, 0)])
        .await
        .expect("apply");
    s.reservations.apply(vec![remove(1)]).await.expect("remove");
    let removed = within("load", s.reservations.load())
        .await
        .expect("load")
        .last_change;
    s.reservations.apply(vec![put(3, 0)]).await.expect("apply");

    let nothing_old = within("prune", s.reservations.prune_removals(0)).await;
    assert_eq!(nothing_old.expect("prune"), 0, "no removal before 1970");
    assert_eq!(log_after(&s, 0, 100).await.len(), 3);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let pruned = within("prune", s.reservations.prune_removals(now + 1)).await;
    assert_eq!(pruned.expect("prune"), 1);
    for behind in [0, removed - 1] {
        let r = within("changes_after", s.reservations.changes_after(behind, 100)).await;
        assert_eq!(
            r.expect("changes_after"),
            ChangesAfter::Pruned { through: removed },
            "after {behind}"
        );
    }
    assert_eq!(
        entries(&log_after(&s, removed, 100).await),
        vec![(3, logged_put(3, 0))]
    );
    assert_eq!(reservations(&s).await, vec![spec(2, 0), spec(3, 0)]);
    s.close().await.expect("close");
}
