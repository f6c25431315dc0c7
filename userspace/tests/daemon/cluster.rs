//! Two daemons in this process as two nodes of a cluster on one private
//! PostgreSQL database: a reservation change made through one node's API
//! is served by the other (its book and its DHCP server) without a
//! restart, also when the other's listening connection was cut or the
//! database restarted, and concurrent writers on both end with one book.

use std::time::Instant;

use stormboot_testbed::postgres::{Postgres, SUPERUSER};

use super::*;

/// The machine the changes are about: a pool client until reserved.
const MACHINE: &str = "52:54:00:00:00:42";

/// Starts node `node` on `pg`'s database `stormboot`, reading the log at
/// least every `interval` besides the notifications.
async fn node(pg: &Postgres, node: &str, interval: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stormboot.toml");
    let text = format!(
        "{CONFIG}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n\n\
         [cluster]\nnode = \"{node}\"\nsync_interval = \"{interval}\"\n",
        pg.url("stormboot", SUPERUSER)
    );
    std::fs::write(&config, text).unwrap();
    let cfg = Config::load(&config).unwrap();
    Daemon::start_with(cfg, config, dir).await
}

fn database(name: &str) -> Postgres {
    let pg = Postgres::start(name).unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("stormboot")
        .unwrap_or_else(|e| panic!("{e:#}"));
    pg
}

fn psql(pg: &Postgres, sql: &str) -> String {
    pg.psql("stormboot", sql)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .trim()
        .to_owned()
}

/// The address `d` has reserved for `mac`, None when it has none.
async fn reserved(d: &Daemon, mac: &str) -> Option<String> {
    let (status, body) = d
        .api("GET", &format!("/api/v1/reservations/{mac}"), None, None)
        .await;
    match status {
        200 => Some(body["ip"].as_str().unwrap().to_owned()),
        404 => None,
        _ => panic!("{status} {body}"),
    }
}

/// Waits until `d` has reserved `want` for `mac` (None: nothing).
async fn until_reserved(d: &Daemon, mac: &str, want: Option<&str>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = reserved(d, mac).await;
        if now.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{mac} is reserved {now:?} on the other node, not {want:?}, after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The reservation sync's stats of `d`.
async fn sync_stats(d: &Daemon) -> Value {
    let (status, stats) = d.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(status, 200, "{stats}");
    stats["cluster_sync"].clone()
}

async fn write(d: &Daemon, method: &str, path: &str, body: Option<Value>) {
    let (status, answer) = d.api(method, path, Some(TOKEN), body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
}

/// Added, replaced and removed on A: B's book and B's DHCP server follow
/// each change, by the notification alone (B's timer is an hour), and
/// A's own changes, coming back to it, change nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_is_served_by_the_other() {
    let pg = database("cluster-follow");
    let a = node(&pg, "a", "1h").await;
    let mut b = node(&pg, "b", "1h").await;
    let (_, offer) = b.discover(POOL_CLIENT).await;
    assert_ne!(offer.yiaddr(), Ipv4Addr::new(10, 50, 0, 20));

    let path = format!("/api/v1/reservations/{MACHINE}");
    let spec = |ip: &str| json!({"mac": MACHINE, "ip": ip, "hostname": "node42"});
    write(&a, "POST", "/api/v1/reservations", Some(spec("10.50.0.20"))).await;
    until_reserved(&b, MACHINE, Some("10.50.0.20")).await;
    let (_, offer) = b.discover(POOL_CLIENT).await;
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 50, 0, 20));

    write(&a, "PUT", &path, Some(spec("10.50.0.21"))).await;
    until_reserved(&b, MACHINE, Some("10.50.0.21")).await;
    let (_, offer) = b.discover(POOL_CLIENT).await;
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 50, 0, 21));

    write(&a, "DELETE", &path, None).await;
    until_reserved(&b, MACHINE, None).await;
    let (_, offer) = b.discover(POOL_CLIENT).await;
    let pool = u32::from(Ipv4Addr::new(10, 50, 0, 100))..=u32::from(Ipv4Addr::new(10, 50, 0, 110));
    assert!(
        pool.contains(&u32::from(offer.yiaddr())),
        "{}",
        offer.yiaddr()
    );

    let last: i64 = psql(&pg, "SELECT value FROM change_counter")
        .parse()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let (on_a, on_b) = loop {
        let (on_a, on_b) = (sync_stats(&a).await, sync_stats(&b).await);
        if on_a["applied_change"] == last || Instant::now() > deadline {
            break (on_a, on_b);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(on_b["changes_applied"], 3, "{on_b}");
    assert_eq!(on_b["applied_change"], last, "{on_b}");
    assert_eq!(on_a["changes_applied"], 0, "A's own changes: {on_a}");
    assert_eq!(on_a["applied_change"], last, "{on_a}");
    assert_eq!(on_a["changes_skipped"], 0, "{on_a}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// The number of B's listening connections on the server.
fn listeners(pg: &Postgres, node: &str) -> usize {
    psql(
        pg,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stormboot-sync {node}'"),
    )
    .parse()
    .unwrap()
}

fn until_listening(pg: &Postgres, node: &str) {
    let deadline = Instant::now() + PATIENCE;
    while listeners(pg, node) != 1 {
        assert!(Instant::now() < deadline, "{node} does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// B's listening connection is ended by the server: the next change on A
/// still reaches B (its timer reads the log, and it reconnects and reads
/// it again), and B listens again, so a later change reaches it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_a_node_whose_listening_connection_was_cut() {
    let pg = database("cluster-cut");
    let a = node(&pg, "a", "1h").await;
    let b = node(&pg, "b", "1s").await;
    until_listening(&pg, "b");
    let ended = psql(
        &pg,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'stormboot-sync b') t",
    );
    assert_eq!(ended, "1");

    let spec = json!({"mac": MACHINE, "ip": "10.50.0.20"});
    write(&a, "POST", "/api/v1/reservations", Some(spec)).await;
    until_reserved(&b, MACHINE, Some("10.50.0.20")).await;

    until_listening(&pg, "b");
    let path = format!("/api/v1/reservations/{MACHINE}");
    write(&a, "DELETE", &path, None).await;
    until_reserved(&b, MACHINE, None).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// While the database is down an API change answers 503 and changes
/// nothing; once it is back the same change succeeds, and reaches the
/// other node, whose listening connection came back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_answer_503_while_the_database_is_down() {
    let mut pg = database("cluster-down");
    let a = node(&pg, "a", "1h").await;
    let b = node(&pg, "b", "1h").await;
    // Both have loaded their book (they listen once they have): a node
    // still starting when the database stops fails to start instead.
    until_listening(&pg, "a");
    until_listening(&pg, "b");
    pg.stop().unwrap_or_else(|e| panic!("{e:#}"));

    let spec = json!({"mac": MACHINE, "ip": "10.50.0.20"});
    let (status, body) = a
        .api(
            "POST",
            "/api/v1/reservations",
            Some(TOKEN),
            Some(spec.clone()),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("cannot be reached") && error.contains("nothing was changed"),
        "{error}"
    );
    assert_eq!(reserved(&a, MACHINE).await, None, "the book changed");

    pg.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    // The pool replaces its dead connections as they are taken.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = a
            .api(
                "POST",
                "/api/v1/reservations",
                Some(TOKEN),
                Some(spec.clone()),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_reserved(&b, MACHINE, Some("10.50.0.20")).await;
    until_listening(&pg, "b");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Every reservation made through `d`'s API or another node's, as the
/// API lists them (the file's differ in their origin, the file's path).
async fn book(d: &Daemon) -> Value {
    let (status, page) = d
        .api(
            "GET",
            "/api/v1/reservations?source=api&limit=1000",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].clone()
}

/// Both nodes create, replace and remove reservations at once, some of
/// them the other node's: both end with the same book, which is the
/// store's, at the same applied change number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_two_nodes_end_with_the_same_book() {
    const EACH: u32 = 40;
    let pg = database("cluster-concurrent");
    let a = std::sync::Arc::new(node(&pg, "a", "1h").await);
    let b = std::sync::Arc::new(node(&pg, "b", "1h").await);
    let mac = |i: u32| format!("52:54:00:00:01:{i:02x}");
    let ip = |i: u32| format!("10.50.0.{}", 120 + i);
    let writers: Vec<_> = [(a.clone(), 0), (b.clone(), EACH)]
        .into_iter()
        .map(|(d, first)| {
            tokio::spawn(async move {
                for i in first..first + EACH {
                    let spec = json!({"mac": mac(i), "ip": ip(i)});
                    write(&d, "POST", "/api/v1/reservations", Some(spec)).await;
                }
                // Each node now edits the other's first ten, once it
                // serves them.
                let theirs = if first == 0 { EACH } else { 0 };
                for i in theirs..theirs + 10 {
                    until_reserved(&d, &mac(i), Some(&ip(i))).await;
                    let path = format!("/api/v1/reservations/{}", mac(i));
                    if i % 2 == 0 {
                        write(&d, "DELETE", &path, None).await;
                    } else {
                        let spec =
                            json!({"mac": mac(i), "ip": ip(i), "hostname": format!("edited-{i}")});
                        write(&d, "PUT", &path, Some(spec)).await;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }

    let last: i64 = psql(&pg, "SELECT value FROM change_counter")
        .parse()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (on_a, on_b) = (sync_stats(&a).await, sync_stats(&b).await);
        let caught_up = on_a["applied_change"] == last && on_b["applied_change"] == last;
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not at change {last}: {on_a} {on_b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (book_a, book_b) = (book(&a).await, book(&b).await);
    assert_eq!(book_a, book_b);
    let items = book_a.as_array().unwrap();
    // 80 made, 10 removed (5 on each side).
    assert_eq!(items.len(), 2 * EACH as usize - 10, "{book_a}");
    let edited = items
        .iter()
        .filter(|r| {
            r["hostname"]
                .as_str()
                .is_some_and(|h| h.starts_with("edited-"))
        })
        .count();
    assert_eq!(edited, 10, "{book_a}");
    let stored: usize = psql(
        &pg,
        "SELECT count(*) FROM reservations WHERE spec IS NOT NULL",
    )
    .parse()
    .unwrap();
    assert_eq!(stored, items.len(), "the store holds the same");
    for d in [a, b] {
        let d = std::sync::Arc::into_inner(d).unwrap();
        d.stop().await.unwrap();
    }
}

/// How long a change made through A's API takes to be in B's book, from
/// A's answer to B's API showing it (polled every 0.2 ms): 100 creations,
/// then their 100 removals.
///
/// `cargo test -p stormboot --test daemon propagation_time -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run with --nocapture"]
async fn propagation_time() {
    const MACHINES: u32 = 100;
    let pg = database("cluster-propagation");
    let a = node(&pg, "a", "1h").await;
    let b = node(&pg, "b", "1h").await;
    let mut times = Vec::with_capacity(2 * MACHINES as usize);
    for remove in [false, true] {
        for i in 0..MACHINES {
            let mac = format!("52:54:00:00:02:{i:02x}");
            let ip = format!("10.50.0.{}", 120 + i);
            let want = if remove {
                write(&a, "DELETE", &format!("/api/v1/reservations/{mac}"), None).await;
                None
            } else {
                let spec = json!({"mac": mac, "ip": ip});
                write(&a, "POST", "/api/v1/reservations", Some(spec)).await;
                Some(ip.as_str())
            };
            let answered = Instant::now();
            while reserved(&b, &mac).await.as_deref() != want {
                assert!(answered.elapsed() < PATIENCE, "{mac} never reached B");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            times.push(answered.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{} changes, A's answer to B's book: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        times.len(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
