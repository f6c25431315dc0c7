//! The PostgreSQL store: the conformance suite against a private server
//! (`stormboot_testbed::postgres`), and what is PostgreSQL's own: the
//! password kept out of every message, a failed statement failing its
//! whole batch, and recovery after the server restarts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

use stormboot_testbed::postgres::{Postgres, SUPERUSER};

use super::*;
use crate::config::{self, Secret};
use crate::leases::LeaseState;
use crate::store::conformance::{self, lease, Backend, Place};
use crate::store::{open, ChangesAfter, ReservationChange};

/// One server for the tests that run at once: started by the first,
/// stopped when the last one's guard drops.
static SERVER: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());

/// Tells apart the servers and databases of one test process.
static NEXT: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn server() -> Arc<Postgres> {
    let mut shared = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = shared.upgrade() {
        return running;
    }
    let started =
        Arc::new(Postgres::start(&format!("store-{}", next())).unwrap_or_else(|e| panic!("{e:#}")));
    *shared = Arc::downgrade(&started);
    started
}

/// A database of the shared server, dropped with this (also the cluster's
/// tests' fixture).
pub(crate) struct Database {
    pub(crate) server: Arc<Postgres>,
    pub(crate) name: String,
}

impl Database {
    pub(crate) fn new() -> Database {
        let server = server();
        let name = format!("store_{}", next());
        server
            .create_database(&name)
            .unwrap_or_else(|e| panic!("{e:#}"));
        Database { server, name }
    }

    pub(crate) fn config(&self, user: &str, password: Option<&str>) -> config::Store {
        config::Store::Postgres(config::Postgres {
            url: self.server.url(&self.name, user),
            pool_size: 4,
            password: password.map(|p| Secret(p.into())),
        })
    }

    pub(crate) fn psql(&self, sql: &str) -> String {
        self.server
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = self.server.drop_database(&self.name) {
            eprintln!("{e:#}");
        }
    }
}

/// A database per test on the shared server.
struct Databases;

/// The database a config names, on the running shared server (which the
/// test's guard keeps running).
fn database_of(cfg: &config::Store) -> (Arc<Postgres>, String) {
    let config::Store::Postgres(pg) = cfg else {
        panic!("not a PostgreSQL store: {cfg:?}");
    };
    let name = connection(&pg.url)
        .expect("the test's url")
        .get_dbname()
        .expect("a dbname")
        .to_owned();
    (server(), name)
}

fn psql(cfg: &config::Store, sql: &str) -> String {
    let (server, db) = database_of(cfg);
    server.psql(&db, sql).unwrap_or_else(|e| panic!("{e:#}"))
}

impl Backend for Databases {
    fn fresh(&self) -> Place {
        let db = Database::new();
        Place {
            config: db.config(SUPERUSER, None),
            guard: Box::new(db),
        }
    }

    fn schema_version(&self, cfg: &config::Store) -> i64 {
        let v = psql(cfg, "SELECT version FROM schema_version");
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("schema version {v:?}: {e}"))
    }

    fn set_schema_version(&self, cfg: &config::Store, version: i64) {
        psql(
            cfg,
            &format!("UPDATE schema_version SET version = {version}"),
        );
    }

    /// The tables' rows, the sequence's position, and the schema's
    /// relations and columns: a refusal that migrated or wrote anything
    /// changes one of them.
    fn fingerprint(&self, cfg: &config::Store) -> Vec<u8> {
        psql(
            cfg,
            "SELECT concat_ws(E'\\n',
                (SELECT string_agg(version::text, ',') FROM schema_version),
                (SELECT string_agg(l::text, ',' ORDER BY ip) FROM leases l),
                (SELECT string_agg(r::text, ',' ORDER BY mac) FROM reservations r),
                (SELECT last_value || ' ' || is_called FROM reservation_changes),
                (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname)
                 FROM pg_class WHERE relnamespace = 'public'::regnamespace),
                (SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ','
                                   ORDER BY table_name, column_name)
                 FROM information_schema.columns WHERE table_schema = 'public'))",
        )
        .into_bytes()
    }
}

conformance::suite!(Databases);

/// `f`, which must resolve within 30 s: a store call that hangs fails the
/// test rather than stalling it.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("a store call hung")
}

#[test]
fn password_comes_from_the_environment_then_the_file_then_pgpassword() {
    let file = Secret("from-file".into());
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let both = env(&[("STORMBOOT_PG_PASSWORD", "ours"), ("PGPASSWORD", "libpq")]);
    assert_eq!(password(Some(&file), both), Some(Secret("ours".into())));
    let libpq = env(&[("PGPASSWORD", "libpq")]);
    assert_eq!(password(Some(&file), libpq), Some(file.clone()));
    assert_eq!(password(None, libpq), Some(Secret("libpq".into())));
    let empty = env(&[("STORMBOOT_PG_PASSWORD", "")]);
    assert_eq!(password(Some(&file), empty), Some(file.clone()));
    assert_eq!(password(None, env(&[])), None);
}

#[test]
fn the_name_in_logs_has_no_password() {
    let mut cfg = connection("postgresql://stormboot@db.example:5433/leases").expect("url");
    cfg.password("hunter2-secret");
    let name = display_name(&cfg);
    assert_eq!(name, "postgres://stormboot@db.example:5433/leases");
    assert!(!format!("{cfg:?}").contains("hunter2"), "{cfg:?}");
    let local = connection("dbname=stormboot").expect("no host");
    assert_eq!(
        display_name(&local),
        "postgres:///var/run/postgresql/stormboot"
    );
}

#[test]
fn urls_with_a_password_or_tls_are_refused_without_echoing_it() {
    for url in [
        "postgresql://stormboot:hunter2-secret@db/leases",
        "host=db password=hunter2-secret dbname=leases",
        "postgresql://stormboot:hunter2-secret@db:notaport/leases",
    ] {
        let e = connection(url).expect_err(url);
        assert!(!e.contains("hunter2"), "{url}: {e}");
    }
    let e = connection("host=db dbname=leases sslmode=require").expect_err("tls");
    assert!(e.contains("sslmode=require"), "{e}");
}

/// The password is what lets a role in (a wrong one is refused, and a
/// refused login is not transient), and it is in no message nor in the
/// config's `Debug`.
#[tokio::test(flavor = "multi_thread")]
async fn the_password_logs_in_and_is_never_printed() {
    let db = Database::new();
    let role = format!("role_{}", next());
    let secret = format!("pw-{role}-Zq9");
    db.psql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{secret}'"));
    db.psql(&format!("ALTER DATABASE {} OWNER TO {role}", db.name));

    let right = db.config(&role, Some(&secret));
    assert!(!format!("{right:?}").contains(&secret), "{right:?}");
    let s = within(open(&right)).await.unwrap_or_else(|e| panic!("{e}"));
    within(s.leases.commit(vec![LeaseChange::Upsert(lease(1))]))
        .await
        .expect("commit");
    assert!(!s.name.contains(&secret), "{}", s.name);
    s.close().await.expect("close");

    let wrong = db.config(&role, Some("not-the-password-Xy7"));
    let Err(e) = within(open(&wrong)).await else {
        panic!("a wrong password was let in");
    };
    println!("{e}");
    assert!(!e.is_transient(), "a refused login may not pass: {e:?}");
    assert!(e.to_string().contains("password"), "{e}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("not-the-password"), "{shown}");
        assert!(!shown.contains(&secret), "{shown}");
    }
    let nobody = db.config(&role, None);
    let Err(e) = within(open(&nobody)).await else {
        panic!("let in without a password");
    };
    assert!(!e.is_transient(), "{e:?}");
    let server = Arc::clone(&db.server);
    drop(db);
    server
        .psql("postgres", &format!("DROP ROLE {role}"))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// A statement the server refuses fails the whole transaction: nothing of
/// the call is stored, the error is not transient, and the next call
/// (on a fresh connection) goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_statement_fails_its_whole_batch() {
    let db = Database::new();
    let cfg = db.config(SUPERUSER, None);
    let s = within(open(&cfg)).await.expect("open");
    db.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'address % is not for leasing', NEW.ip; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON leases FOR EACH ROW
           WHEN (NEW.ip = '10.0.0.9') EXECUTE FUNCTION refuse();",
    );
    let r = within(s.leases.commit(vec![
        LeaseChange::Upsert(lease(1)),
        LeaseChange::Upsert(lease(9)),
        LeaseChange::Upsert(lease(2)),
    ]))
    .await;
    let Err(e) = r else {
        panic!("a refused insert was acknowledged");
    };
    assert!(e.to_string().contains("not for leasing"), "{e}");
    assert!(!e.is_transient(), "{e:?}");
    assert_eq!(within(s.leases.load()).await.expect("load"), vec![]);
    within(s.leases.commit(vec![LeaseChange::Upsert(lease(3))]))
        .await
        .expect("the next commit");
    assert_eq!(within(s.leases.load()).await.expect("load"), vec![lease(3)]);
    s.close().await.expect("close");
}

/// A version 1 database (before clusters) migrates to the current one:
/// its rows kept, the change counter past every change number it gave,
/// nothing marked as pruned, and the history recording from then on.
#[tokio::test(flavor = "multi_thread")]
async fn a_version_1_database_migrates_with_its_rows() {
    let db = Database::new();
    db.psql(schema::MIGRATIONS[0]);
    db.psql(
        "INSERT INTO schema_version (version) VALUES (1);
         INSERT INTO leases VALUES ('10.0.0.1', '\\x01', '\\x020000000001', 'bound', 10, 1, NULL);
         INSERT INTO reservations VALUES ('\\x020000000002', NULL, nextval('reservation_changes'), 1);
         INSERT INTO reservations VALUES ('\\x020000000003', NULL, nextval('reservation_changes'), 1);",
    );
    let s = within(open(&db.config(SUPERUSER, None)))
        .await
        .expect("open");
    assert_eq!(
        db.psql("SELECT version FROM schema_version").trim(),
        SCHEMA_VERSION.to_string()
    );
    assert_eq!(
        db.psql("SELECT value, pruned_through FROM change_counter")
            .trim(),
        "2|0"
    );
    let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(within(s.leases.load()).await.expect("load").len(), 1);
    assert_eq!(
        within(s.leases.history(ip, 10)).await.expect("history"),
        vec![]
    );
    // The row as the version 1 database held it.
    let stored = Lease {
        ip,
        client_id: vec![1],
        mac: [2, 0, 0, 0, 0, 1],
        state: crate::leases::LeaseState::Bound,
        expires: 10,
        updated: 1,
        hostname: None,
    };
    within(s.leases.commit(vec![LeaseChange::Remove(stored)]))
        .await
        .expect("commit");
    let h = within(s.leases.history(ip, 10)).await.expect("history");
    assert_eq!(
        h.iter().map(|r| r.event).collect::<Vec<_>>(),
        [crate::store::AddressEvent::Freed]
    );
    s.close().await.expect("close");
}

/// A database holding someone else's tables is refused, and nothing of
/// ours is created in it.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_database_is_refused_untouched() {
    let db = Database::new();
    db.psql("CREATE TABLE leases (something text)");
    let tables = "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class \
                  WHERE relnamespace = 'public'::regnamespace";
    let before = db.psql(tables);
    let Err(e) = within(open(&db.config(SUPERUSER, None))).await else {
        panic!("opened somebody else's database");
    };
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("not a stormboot store"), "{e}");
    assert_eq!(db.psql(tables), before);
}

/// A store dropped without close still commits what was queued before
/// the drop (its writer drains the queue on the runtime), even when the
/// callers stopped waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_store_still_commits_what_was_queued() {
    let db = Database::new();
    let cfg = db.config(SUPERUSER, None);
    let s = within(open(&cfg)).await.expect("open");
    let abandoned: Vec<_> = (0..100)
        .map(|i| s.leases.commit(vec![LeaseChange::Upsert(lease(i))]))
        .collect();
    drop(abandoned);
    drop(s);
    let reader = within(open(&cfg)).await.expect("open again");
    let want: Vec<Lease> = (0..100).map(lease).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = within(reader.leases.load()).await.expect("load");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 100 queued leases stored 10 s after the drop",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.close().await.expect("close");
}

/// While the server is down every call fails at once with a transient
/// error; once it is back the pool reconnects by itself and the same
/// store works, with what was stored before.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_recovers_after_the_server_restarts() {
    let mut pg =
        Postgres::start(&format!("restart-{}", next())).unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("restart")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let cfg = config::Store::Postgres(config::Postgres {
        url: pg.url("restart", SUPERUSER),
        pool_size: 2,
        password: None,
    });
    let s = within(open(&cfg)).await.expect("open");
    within(s.leases.commit(vec![LeaseChange::Upsert(lease(1))]))
        .await
        .expect("commit before");

    pg.stop().unwrap_or_else(|e| panic!("{e:#}"));
    let commit = within(s.leases.commit(vec![LeaseChange::Upsert(lease(2))])).await;
    let Err(e) = commit else {
        panic!("a commit was acknowledged while the server was down");
    };
    println!("{e}");
    assert!(e.is_transient(), "{e:?}");
    let load = within(s.reservations.load()).await;
    assert!(
        load.as_ref().is_err_and(StoreError::is_transient),
        "{load:?}"
    );

    pg.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    within(s.leases.commit(vec![LeaseChange::Upsert(lease(3))]))
        .await
        .expect("commit after the restart");
    assert_eq!(
        within(s.leases.load()).await.expect("load"),
        vec![lease(1), lease(3)]
    );
    s.close().await.expect("close");
}

/// A change number is visible only after every lower one: while another
/// writer's transaction holds number 1 uncommitted, the store's next
/// change waits for it, so a reader never sees number 2 without 1 and
/// never passes a change that commits later. (Numbers from a sequence
/// would let 2 commit first, and a reader that moved on to 2 would never
/// see 1.)
#[tokio::test(flavor = "multi_thread")]
async fn a_change_number_is_visible_only_after_every_lower_one() {
    let db = Database::new();
    let cfg = db.config(SUPERUSER, None);
    let s = within(open(&cfg)).await.expect("open");
    let config::Store::Postgres(pg) = &cfg else {
        unreachable!()
    };
    let (client, connection) = connection(&pg.url)
        .expect("url")
        .connect(NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let (x, y) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    client.batch_execute("BEGIN").await.expect("begin");
    let ops = rows::encode_reservations(vec![ReservationChange::Put {
        mac: x,
        spec: Box::new(crate::api::types::ReservationSpec {
            mac: "02:00:00:00:00:01".into(),
            ip: "10.1.0.1".into(),
            ..Default::default()
        }),
    }])
    .expect("encode");
    let Op::PutReservation { mac, spec, updated } = &ops[0] else {
        unreachable!()
    };
    client
        .execute(rows::PUT_RESERVATION, &[mac, spec, updated])
        .await
        .expect("an uncommitted change");

    let later = tokio::spawn(s.reservations.apply(vec![ReservationChange::Put {
        mac: y,
        spec: Box::new(crate::api::types::ReservationSpec {
            mac: "02:00:00:00:00:02".into(),
            ip: "10.1.0.2".into(),
            ..Default::default()
        }),
    }]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = within(s.reservations.changes_after(0, 10))
        .await
        .expect("read");
    assert_eq!(
        seen,
        ChangesAfter::Changes(vec![]),
        "a change is visible while a lower number is uncommitted"
    );

    client.batch_execute("COMMIT").await.expect("commit");
    within(later)
        .await
        .expect("task")
        .expect("the later change");
    let ChangesAfter::Changes(log) = within(s.reservations.changes_after(0, 10))
        .await
        .expect("read")
    else {
        panic!("pruned");
    };
    let order: Vec<_> = log.iter().map(|c| (c.mac, c.number)).collect();
    assert_eq!(order, vec![(x, 1), (y, 2)]);
    s.close().await.expect("close");
}

/// Two nodes' stores on one database.
async fn two_nodes(db: &Database) -> (crate::store::Stores, crate::store::Stores) {
    let cfg = db.config(SUPERUSER, None);
    let a = config::Cluster::named("node-a".into());
    let b = config::Cluster::named("node-b".into());
    let a = within(crate::store::open_for(&cfg, Some(&a)))
        .await
        .expect("open a");
    let b = within(crate::store::open_for(&cfg, Some(&b)))
        .await
        .expect("open b");
    (a, b)
}

fn unix_now() -> u64 {
    crate::slowpath::unix_now()
}

/// The lease of address `10.0.0.ip` to the client `mac`, ending at
/// `expires`.
fn held(ip: u32, mac: u8, expires: u64) -> Lease {
    let mut l = lease(ip);
    l.mac = [2, 0, 0, 0, 0xaa, mac];
    l.client_id = [&[1u8][..], &l.mac].concat();
    l.state = LeaseState::Bound;
    l.expires = expires;
    l
}

/// Two nodes race for the same addresses from many tasks at once, each
/// for a client of its own: every address ends with exactly one holder,
/// exactly one of the two writes won it, and the loser is told the
/// winner's row, as the database holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_racing_for_addresses_never_share_one() {
    const ADDRESSES: u32 = 300;
    let db = Database::new();
    let (a, b) = two_nodes(&db).await;
    const TASKS: u32 = 16;
    let expires = unix_now() + 3600;
    // Each node's tasks commit one address after another, waiting for
    // each; a walks the addresses up and b down, so their batches
    // interleave and they collide all along the way.
    let mut tasks = Vec::new();
    for (store, client) in [(&a, 1u8), (&b, 2)] {
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for i in (t..ADDRESSES).step_by(TASKS as usize) {
                    let ip = if client == 1 { i } else { ADDRESSES - 1 - i };
                    let mine = held(ip, client, expires);
                    let commit = store.leases.commit(vec![LeaseChange::Upsert(mine.clone())]);
                    results.push((mine, within(commit).await.expect("commit")));
                }
                results
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.expect("task"));
    }
    let stored = within(a.leases.load()).await.expect("load");
    assert_eq!(stored.len(), ADDRESSES as usize);
    let mut lost_by_a = 0;
    for row in &stored {
        let tries: Vec<_> = results.iter().filter(|(l, _)| l.ip == row.ip).collect();
        assert_eq!(tries.len(), 2);
        let won: Vec<_> = tries.iter().filter(|(_, lost)| lost.is_empty()).collect();
        assert_eq!(won.len(), 1, "{}: {tries:?}", row.ip);
        assert_eq!(&won[0].0, row, "the winner's lease is the row");
        let loser = tries.iter().find(|(_, lost)| !lost.is_empty()).unwrap();
        assert_eq!(
            loser.1,
            [Lost {
                ip: row.ip,
                holder: Some(row.clone())
            }],
            "the loser is told who holds {}",
            row.ip
        );
        lost_by_a += usize::from(loser.0.mac[5] == 1);
    }
    println!("node a lost {lost_by_a} of {ADDRESSES} races");
    assert!(
        lost_by_a > 0 && lost_by_a < ADDRESSES as usize,
        "each node won some races and lost others ({lost_by_a} lost by a)"
    );
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// Another client takes an address only once its lease is past expiry
/// plus the grace; the same client may move between nodes; a removal
/// leaves a row another node has given away or extended; and each node
/// reads what the other wrote, not what it wrote itself, and every
/// removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_write_and_remove_only_what_is_theirs() {
    let db = Database::new();
    let (a, b) = two_nodes(&db).await;
    let now = unix_now();
    let commit = |s: &crate::store::Stores, change| within(s.leases.commit(vec![change]));
    // Expired two minutes ago, past the grace (60 s): free for anyone.
    let old = held(1, 1, now - 120);
    assert_eq!(
        commit(&a, LeaseChange::Upsert(old.clone())).await.unwrap(),
        []
    );
    let taken = held(1, 2, now + 600);
    assert_eq!(
        commit(&b, LeaseChange::Upsert(taken.clone()))
            .await
            .unwrap(),
        []
    );
    // a's expiry sweep of the old lease must not free b's.
    assert_eq!(
        commit(&a, LeaseChange::Remove(old)).await.unwrap(),
        [Lost {
            ip: taken.ip,
            holder: Some(taken.clone())
        }]
    );
    // Expired ten seconds ago: within the grace, still its holder's.
    let recent = held(2, 1, now - 10);
    assert_eq!(
        commit(&a, LeaseChange::Upsert(recent.clone()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        commit(&b, LeaseChange::Upsert(held(2, 2, now + 600)))
            .await
            .unwrap(),
        [Lost {
            ip: recent.ip,
            holder: Some(recent.clone())
        }]
    );
    // The same client renews through b: that is its lease, extended.
    let renewed = held(2, 1, now + 900);
    assert_eq!(
        commit(&b, LeaseChange::Upsert(renewed.clone()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        commit(&a, LeaseChange::Remove(recent)).await.unwrap(),
        [Lost {
            ip: renewed.ip,
            holder: Some(renewed.clone())
        }],
        "a removal of the lease as it was before b extended it"
    );
    // A removal of what is still the row's lease, and of a row that is
    // gone already, loses nothing.
    let freed = crate::store::Freed {
        ip: renewed.ip,
        client_id: renewed.client_id.clone(),
        mac: renewed.mac,
        expires: renewed.expires,
    };
    assert_eq!(
        commit(&b, LeaseChange::Remove(renewed.clone()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(commit(&a, LeaseChange::Remove(renewed)).await.unwrap(), []);

    let seen =
        |s: &crate::store::Stores| within(s.leases.written_since(0.0).expect("a shared store"));
    let by_b = seen(&a).await.expect("a reads");
    assert_eq!(by_b.leases, [taken], "a reads b's rows, not its own");
    assert_eq!(by_b.freed, [freed], "and every removal, whoever made it");
    let clock = by_b.clock;
    assert!(
        (clock - now as f64).abs() < 60.0,
        "the database's clock: {clock}"
    );
    let by_a = seen(&b).await.expect("b reads");
    assert_eq!(by_a.leases, [], "a's only row is gone");
    let later = within(a.leases.written_since(clock + 1.0).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (later.leases, later.freed),
        (vec![], vec![]),
        "nothing written or removed since the last look"
    );
    assert_eq!(
        psql(
            &db.config(SUPERUSER, None),
            "SELECT string_agg(node, ',') FROM leases"
        )
        .trim(),
        "node-b",
        "each row names the node that wrote it"
    );
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// A node that has not yet seen another node's ACK offers the client the
/// address again, and drops that offer when the client's REQUEST names
/// the other node: neither the offer nor its removal undoes the binding,
/// and both are told who holds the address. The client's own renewal
/// through that node still extends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_offer_of_another_node_leaves_the_binding() {
    let db = Database::new();
    let (a, b) = two_nodes(&db).await;
    let now = unix_now();
    let commit = |s: &crate::store::Stores, change| within(s.leases.commit(vec![change]));
    let offered = |ip, expires| Lease {
        state: LeaseState::Offered,
        ..held(ip, 1, expires)
    };
    let bound = held(3, 1, now + 3600);
    assert_eq!(
        commit(&a, LeaseChange::Upsert(bound.clone()))
            .await
            .unwrap(),
        []
    );
    let late = offered(3, now + 5);
    let told = [Lost {
        ip: bound.ip,
        holder: Some(bound.clone()),
    }];
    assert_eq!(
        commit(&b, LeaseChange::Upsert(late.clone())).await.unwrap(),
        told,
        "the late offer loses to the binding"
    );
    assert_eq!(
        commit(&b, LeaseChange::Remove(late)).await.unwrap(),
        told,
        "and its removal frees nothing"
    );
    // A binding that ends before the offer would is not freed with it
    // either: removing an offer removes only an offer.
    let ending = held(4, 1, now + 2);
    assert_eq!(
        commit(&a, LeaseChange::Upsert(ending.clone()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        commit(&b, LeaseChange::Remove(offered(4, now + 5)))
            .await
            .unwrap(),
        [Lost {
            ip: ending.ip,
            holder: Some(ending.clone())
        }]
    );
    let renewed = held(3, 1, now + 7200);
    assert_eq!(
        commit(&b, LeaseChange::Upsert(renewed.clone()))
            .await
            .unwrap(),
        []
    );
    let mut stored = within(a.leases.load()).await.expect("load");
    stored.sort_by_key(|l| l.ip);
    assert_eq!(stored, [renewed, ending]);
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// `cargo test --release -p stormboot --lib store::postgres::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement; run in release with --nocapture"]
async fn throughput() {
    measure(None).await;
}

/// The same, as a node of a cluster: every write conditional on the
/// holder and the expiry, the node and the time recorded.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement; run in release with --nocapture"]
async fn throughput_as_a_cluster_node() {
    measure(Some(config::Cluster::named("node-a".into()))).await;
}

async fn measure(cluster: Option<config::Cluster>) {
    const LEASES: u32 = 50_000;
    const TASKS: u32 = 64;
    let db = Database::new();
    let s = crate::store::open_for(&db.config(SUPERUSER, None), cluster.as_ref())
        .await
        .expect("open");
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let s = s.clone();
            tokio::spawn(async move {
                // Each task waits for durability before its next lease,
                // like a DHCP handler before its ACK.
                for i in (task..LEASES).step_by(TASKS as usize) {
                    s.leases
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
    let elapsed = start.elapsed();
    let stats = s.leases.stats();
    println!(
        "{LEASES} single-lease commits from {TASKS} tasks in {elapsed:.2?}: {:.0} leases/s, \
         {} transactions, {:.1} commits per transaction",
        f64::from(LEASES) / elapsed.as_secs_f64(),
        stats.transactions,
        stats.commits as f64 / stats.transactions as f64
    );
    assert_eq!(stats.commits, u64::from(LEASES));
    assert_eq!(s.leases.load().await.expect("load").len(), LEASES as usize);
    s.close().await.expect("close");
}
