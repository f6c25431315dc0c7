//! The SQLite store: the conformance suite, and what is SQLite's own (the
//! file's directory, foreign files, SQLite's integer range, drop flushing).

use std::path::PathBuf;
use std::time::Instant;

use super::*;
use crate::config;
use crate::store::conformance::{self, lease, Backend, Place};

/// Stores in temporary files.
struct Files;

fn path_of(cfg: &config::Store) -> &Path {
    match cfg {
        config::Store::Sqlite { path } => path,
        other => panic!("not a SQLite store: {other:?}"),
    }
}

impl Backend for Files {
    fn fresh(&self) -> Place {
        let dir = tempfile::tempdir().expect("tempdir");
        Place {
            // A subdirectory that does not exist yet: open must create it.
            config: config::Store::Sqlite {
                path: dir.path().join("var").join("stormboot.db"),
            },
            guard: Box::new(dir),
        }
    }

    fn schema_version(&self, cfg: &config::Store) -> i64 {
        Connection::open(path_of(cfg))
            .expect("raw open")
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("schema version")
    }

    /// Also leaves the file in rollback-journal mode, as another build
    /// may: switching it back to WAL would be a write, which a refusal
    /// must not make.
    fn set_schema_version(&self, cfg: &config::Store, version: i64) {
        let c = Connection::open(path_of(cfg)).expect("raw open");
        let mode: String = c
            .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
            .expect("journal_mode=DELETE");
        assert_eq!(mode, "delete");
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [version],
        )
        .expect("set schema version");
    }

    /// The file and its WAL, if one is left.
    fn fingerprint(&self, cfg: &config::Store) -> Vec<u8> {
        let path = path_of(cfg);
        let mut bytes = std::fs::read(path).expect("read the file");
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if let Ok(w) = std::fs::read(PathBuf::from(wal)) {
            bytes.extend(w);
        }
        bytes
    }
}

conformance::suite!(Files);

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("leases.db")
}

async fn reopen_and_load(path: &Path) -> Vec<Lease> {
    LeaseStore::load(&SqliteStore::open(path).expect("reopen"))
        .await
        .expect("load")
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
fn foreign_database_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .expect("raw open")
        .execute_batch("CREATE TABLE leases (something TEXT);")
        .expect("raw schema");
    let before = std::fs::read(&path).expect("read");
    let Err(e) = SqliteStore::open(&path) else {
        panic!("opened somebody else's database");
    };
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("not a stormboot store"), "{e}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the file changed"
    );

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

#[tokio::test(flavor = "multi_thread")]
async fn unrepresentable_time_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&db_path(&dir)).expect("open");
    let mut forever = lease(1);
    forever.expires = u64::MAX;
    let bad = store.commit(vec![LeaseChange::Upsert(forever)]);
    let good = store.commit(vec![LeaseChange::Upsert(lease(2))]);
    let (bad, good) = tokio::join!(bad, good);
    let Err(StoreError::Backend { message, .. }) = bad else {
        panic!("u64::MAX expiry accepted: {bad:?}");
    };
    assert!(message.contains("expires"), "{message}");
    good.expect("the other commit");
    assert_eq!(
        LeaseStore::load(&store).await.expect("load"),
        vec![lease(2)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_without_close_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path).expect("open");
        for i in 0..100 {
            store
                .commit(vec![LeaseChange::Upsert(lease(i))])
                .await
                .expect("commit");
        }
        // Queued but never awaited: the callers gave up, the store still
        // owes them durability.
        let abandoned: Vec<_> = (100..200)
            .map(|i| store.commit(vec![LeaseChange::Upsert(lease(i))]))
            .collect();
        drop(abandoned);
        // No close: Drop must flush and stop the writer.
    }
    assert_eq!(
        reopen_and_load(&path).await,
        (0..200).map(lease).collect::<Vec<_>>()
    );
}

#[test]
fn a_lock_held_elsewhere_is_transient() {
    let busy =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    let e = failure("x.db", "committing".into(), &busy);
    assert!(e.is_transient(), "{e:?}");
    let full =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
    assert!(!failure("x.db", "committing".into(), &full).is_transient());
}

/// `cargo test --release -p stormboot --lib store::sqlite::tests::throughput -- --ignored --nocapture`
/// History older than the retention is deleted by the writer as it
/// commits; newer history stays.
#[tokio::test(flavor = "multi_thread")]
async fn the_writer_prunes_history_past_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let s = SqliteStore::open(&path).expect("open");
    s.commit(vec![LeaseChange::Upsert(lease(1))])
        .await
        .expect("commit");
    let retention = history::RETENTION.as_secs() as i64;
    Connection::open(&path)
        .expect("raw open")
        .execute(
            "INSERT INTO address_history (ip, event, mac, client_id, expires, at)
             VALUES (?1, 'bound', x'020000000009', x'01', 0, unixepoch() - ?2 - 60)",
            rusqlite::params![i64::from(u32::from(lease(2).ip)), retention],
        )
        .expect("an old entry");
    drop(s);
    // A new store's writer prunes after its first transaction (once its
    // waiters have their answer: close waits for the writer to finish).
    let s = SqliteStore::open(&path).expect("reopen");
    s.commit(vec![LeaseChange::Upsert(lease(3))])
        .await
        .expect("commit");
    LeaseStore::close(&s).await.expect("close");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopen to read");
    assert_eq!(s.history(lease(2).ip, 10).await.expect("history"), vec![]);
    assert_eq!(s.history(lease(1).ip, 10).await.expect("history").len(), 1);
}

/// A version 3 file keeps its leases and gains an empty history, which
/// the next change starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_version_3_file_gains_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    drop(SqliteStore::open(&path).expect("open"));
    {
        let c = Connection::open(&path).expect("raw open");
        c.execute_batch(
            "DROP TRIGGER leases_history_insert;
             DROP TRIGGER leases_history_update;
             DROP TRIGGER leases_history_delete;
             DROP TABLE address_history;
             UPDATE meta SET value = 3 WHERE key = 'schema_version';",
        )
        .expect("back to version 3");
        c.execute(
            "INSERT INTO leases VALUES (?1, x'01', x'020000000001', 'bound', 10, 1, NULL)",
            [i64::from(u32::from(lease(1).ip))],
        )
        .expect("a version 3 lease");
    }
    let s = SqliteStore::open(&path).expect("migrate");
    let stored = LeaseStore::load(&s).await.expect("load");
    assert_eq!(stored.len(), 1);
    assert_eq!(s.history(lease(1).ip, 10).await.expect("history"), vec![]);
    s.commit(vec![LeaseChange::Remove(stored[0].clone())])
        .await
        .expect("commit");
    let h = s.history(lease(1).ip, 10).await.expect("history");
    assert_eq!(
        h.iter().map(|r| r.event).collect::<Vec<_>>(),
        [crate::store::AddressEvent::Freed]
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement; run in release with --nocapture"]
async fn throughput() {
    const LEASES: u32 = 50_000;
    const TASKS: u32 = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Each task waits for durability before its next lease,
                // like a DHCP handler before its ACK.
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
    let elapsed = start.elapsed();
    let stats = LeaseStore::stats(&*store);
    println!(
        "{LEASES} single-lease commits from {TASKS} tasks in {elapsed:.2?}: {:.0} leases/s, \
         {} transactions, {:.1} commits per transaction",
        f64::from(LEASES) / elapsed.as_secs_f64(),
        stats.transactions,
        stats.commits as f64 / stats.transactions as f64
    );
    assert_eq!(stats.commits, u64::from(LEASES));
    drop(store);
    assert_eq!(reopen_and_load(&path).await.len(), LEASES as usize);
}
