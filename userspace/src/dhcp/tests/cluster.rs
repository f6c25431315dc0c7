//! The server as one node of a cluster: what it learns from the shared
//! store decides its answers, it never NAKs on a cache's word alone, new
//! clients are shared out by bucket and addresses by slice.

use super::*;
use crate::cluster::Membership;

/// A node `me` among `alive`, sharing new clients out when `lb`.
fn node(me: &str, alive: &[&str], lb: bool) -> Server {
    let mut s = server();
    let m = Membership {
        me: me.into(),
        alive: alive.iter().map(|n| n.to_string()).collect(),
    };
    let mut c = crate::config::Cluster::named(me.into());
    c.load_balance = lb;
    s.set_share(Some(Share::new(&m, &c)));
    s
}

fn yiaddr(o: &Outcome) -> Ipv4Addr {
    o.reply
        .as_ref()
        .map(|r| r.yiaddr)
        .unwrap_or_else(|| panic!("no reply: {o:?}"))
}

/// Two nodes offer one address to two clients at once; the store takes
/// b's write and tells a (the slow path withholds a's OFFER). Once a has
/// learned the winner, the same DISCOVER handled again (as the slow path
/// does at once) is offered another address, and a REQUEST for the lost
/// one is NAKed: the database says it is another client's.
#[test]
fn a_lost_race_is_learned_and_the_client_gets_another_address() {
    let (mut a, mut b) = (node("a", &["a"], false), node("b", &["b"], false));
    let offered_a = handle(&mut a, &discover(mac(1)), T0);
    let offered_b = handle(&mut b, &discover(mac(2)), T0);
    let x = yiaddr(&offered_a);
    assert_eq!(yiaddr(&offered_b), x, "the two nodes collide");
    let winner = upserts(&offered_b)[0].clone();
    a.learn(winner.clone());
    assert_eq!(a.lease(x), Some(&winner));

    let again = handle(&mut a, &discover(mac(1)), T0 + 1);
    assert_eq!(again.note, "offer");
    assert_ne!(yiaddr(&again), x);
    let o = handle(&mut a, &init_reboot(mac(1), x), T0 + 2);
    assert_eq!(o.note, "nak-address-in-use");
    assert_eq!(o.reply.as_ref().map(|r| r.msg_type), Some(msg::NAK));
    assert!(upserts(&o).is_empty(), "nothing written for a NAK");
}

/// One client holds two addresses in the store (two nodes offered it one
/// each), and a node loses both to it, one after the other: both stay
/// held, and the node's own client is offered a third, instead of the
/// node going back and forth between the two and losing every time.
#[test]
fn a_client_holding_two_addresses_keeps_both_out_of_the_pool() {
    let mut b = node("b", &["b"], false);
    let held_by_1 = |ip, updated| Lease {
        ip,
        client_id: [&[1u8][..], &mac(1)].concat(),
        mac: mac(1),
        state: LeaseState::Offered,
        expires: T0 + 5,
        updated,
        hostname: None,
    };
    let x = yiaddr(&handle(&mut b, &discover(mac(2)), T0));
    b.learn(held_by_1(x, T0));
    let y = yiaddr(&handle(&mut b, &discover(mac(2)), T0));
    assert_ne!(y, x);
    b.learn(held_by_1(y, T0 + 1));
    let z = yiaddr(&handle(&mut b, &discover(mac(2)), T0 + 1));
    assert!(z != x && z != y, "offered {z} after losing {x} and {y}");
    for ip in [x, y] {
        assert_eq!(b.lease(ip).map(|l| l.mac), Some(mac(1)), "{ip}");
    }
}

/// Both nodes offered one client an address, and this node has learned
/// the other's offer: when the client's REQUEST names the other node,
/// this node ends its own offer (and writes that) and leaves the other's.
#[test]
fn a_request_for_another_node_ends_only_this_nodes_offer() {
    let mut b = node("b", &["b"], false);
    let own = yiaddr(&handle(&mut b, &discover(mac(1)), T0));
    let theirs = Lease {
        ip: ip(10, 50, 0, 200),
        client_id: [&[1u8][..], &mac(1)].concat(),
        mac: mac(1),
        state: LeaseState::Offered,
        expires: T0 + 6,
        updated: T0 + 1,
        hostname: None,
    };
    assert_ne!(own, theirs.ip);
    b.learn(theirs.clone());
    let o = handle(
        &mut b,
        &select(mac(1), theirs.ip, ip(10, 50, 0, 99)),
        T0 + 1,
    );
    assert_eq!(o.note, "other-server");
    assert_eq!(removes(&o), [own]);
    assert!(b.lease(own).is_none());
    assert_eq!(b.lease(theirs.ip), Some(&theirs));
}

/// A lease the store no longer holds (another node ended it) is let go,
/// and its address given again; one written since, the same holder's
/// with another expiry, is kept.
#[test]
fn a_lease_the_store_removed_is_let_go_unless_written_since() {
    let x = yiaddr(&handle(
        &mut node("b", &["b"], false),
        &discover(mac(9)),
        T0,
    ));
    let mut b = node("b", &["b"], false);
    let theirs = |expires| Lease {
        ip: x,
        client_id: [&[1u8][..], &mac(1)].concat(),
        mac: mac(1),
        state: LeaseState::Bound,
        expires,
        updated: T0,
        hostname: None,
    };
    let freed = |expires| crate::store::Freed {
        ip: x,
        client_id: [&[1u8][..], &mac(1)].concat(),
        mac: mac(1),
        expires,
    };
    b.learn(theirs(T0 + 7200));
    assert_eq!(
        b.forget(&freed(T0 + 3600)),
        None,
        "an older version's removal"
    );
    assert_ne!(yiaddr(&handle(&mut b, &discover(mac(2)), T0)), x);
    assert_eq!(b.forget(&freed(T0 + 7200)), Some(theirs(T0 + 7200)));
    assert_eq!(yiaddr(&handle(&mut b, &discover(mac(3)), T0)), x);
}

/// In a cluster a REQUEST for an address the table knows nothing about is
/// not NAKed, even from a client the table thinks holds another address
/// (another node may have moved it since): it is ACKed, and the store
/// arbitrates the write. Alone, the server knows better and NAKs.
#[test]
fn in_a_cluster_an_address_the_table_does_not_know_is_not_naked() {
    let unknown = ip(10, 50, 0, 130);
    for (mut s, cluster) in [(node("a", &["a", "b"], false), true), (server(), false)] {
        let held = dora(&mut s, mac(3), T0);
        assert_ne!(held, unknown);
        let o = handle(&mut s, &init_reboot(mac(3), unknown), T0 + 5);
        if cluster {
            assert_eq!((o.note, yiaddr(&o)), ("ack", unknown));
            assert_eq!(removes(&o), [held], "its other address is freed");
            assert_eq!(upserts(&o)[0].ip, unknown);
        } else {
            assert_eq!(o.note, "nak-wrong-address");
        }
    }
    // Never heard of the client or the address at all: ACKed too.
    let mut s = node("a", &["a", "b"], false);
    let o = handle(&mut s, &init_reboot(mac(4), unknown), T0);
    assert_eq!((o.note, yiaddr(&o)), ("ack", unknown));
}

/// A client bound by a node that died rebinds to a survivor, which has
/// learned its lease from the store: the lease is extended, not NAKed.
#[test]
fn a_survivor_extends_the_lease_another_node_gave() {
    let mut dead = node("b", &["a", "b"], false);
    let p = dora(&mut dead, mac(5), T0);
    let bound = dead.lease(p).cloned().unwrap();
    let mut survivor = node("a", &["a"], false);
    survivor.learn(bound.clone());
    let mut rebind = renew(mac(5), p);
    rebind.set_flags(Flags::default().set_broadcast());
    let o = handle(&mut survivor, &rebind, T0 + 3000);
    assert_eq!((o.note, yiaddr(&o)), ("ack", p));
    let extended = upserts(&o)[0].clone();
    assert_eq!(
        (extended.mac, extended.state),
        (bound.mac, LeaseState::Bound)
    );
    assert!(extended.expires > bound.expires);
}

/// With two nodes alive and load balancing on, each new client is
/// answered by exactly one of them until it has waited `lb_max_secs`;
/// a client a node knows (it holds a lease there) and a reserved machine
/// are answered whatever their bucket.
#[test]
fn new_clients_are_shared_out_by_bucket() {
    let alive = ["a", "b"];
    let mut answered = [0; 2];
    for n in 0..64 {
        let mut nodes = [node("a", &alive, true), node("b", &alive, true)];
        let notes: Vec<&str> = nodes
            .iter_mut()
            .map(|s| handle(s, &discover(mac(n)), T0).note)
            .collect();
        let offers: Vec<usize> = (0..2).filter(|&i| notes[i] == "offer").collect();
        assert_eq!(offers.len(), 1, "client {n}: {notes:?}");
        let other = 1 - offers[0];
        assert_eq!(notes[other], "ignored-other-node");
        answered[offers[0]] += 1;
        // Still trying after lb_max_secs: the other node answers too.
        let mut late = discover(mac(n));
        late.set_secs(3);
        assert_eq!(handle(&mut nodes[other], &late, T0 + 3).note, "offer");
    }
    assert!(answered.iter().all(|&n| n > 10), "{answered:?}");

    // A machine with a reservation: both answer.
    for me in alive {
        let o = handle(&mut node(me, &alive, true), &discover(RESERVED), T0);
        assert_eq!((o.note, yiaddr(&o)), ("offer", ip(10, 50, 0, 11)));
    }
    // A client a node holds a lease for is that node's to answer.
    let mut a = node("a", &alive, true);
    let strangers: Vec<u32> = (0..64)
        .filter(|&n| handle(&mut node("a", &alive, true), &discover(mac(n)), T0).note != "offer")
        .collect();
    let n = strangers[0];
    let mut b = node("b", &alive, true);
    let p = dora(&mut b, mac(n), T0);
    a.learn(b.lease(p).cloned().unwrap());
    let o = handle(&mut a, &discover(mac(n)), T0 + 1);
    assert_eq!((o.note, yiaddr(&o)), ("offer", p));
}

/// Each node starts its search in its own slice of the pool, so two
/// nodes answering at once offer different addresses.
#[test]
fn nodes_search_their_own_slices_of_the_pools() {
    let alive = ["a", "b"];
    let (mut a, mut b) = (node("a", &alive, false), node("b", &alive, false));
    // 10.50.0.100-199: b's slice starts half way, at .150 (excluded).
    assert_eq!(
        yiaddr(&handle(&mut a, &discover(mac(1)), T0)),
        ip(10, 50, 0, 100)
    );
    assert_eq!(
        yiaddr(&handle(&mut b, &discover(mac(2)), T0)),
        ip(10, 50, 0, 151)
    );
    // Alone (a cluster of one, or no cluster) it starts at the bottom.
    let mut alone = node("a", &["a"], false);
    assert_eq!(
        yiaddr(&handle(&mut alone, &discover(mac(2)), T0)),
        ip(10, 50, 0, 100)
    );
}

/// A binding another node made and this node learned expires on both;
/// only the node that made it announces the expiry. Once this node
/// renews it, it is this node's to announce.
#[test]
fn only_the_node_that_bound_a_lease_announces_its_expiry() {
    let mut writer = server_with_hooks();
    let p = dora(&mut writer, mac(6), T0);
    let bound = writer.lease(p).cloned().unwrap();
    let mut learner = server_with_hooks();
    learner.set_share(node("a", &["a"], false).share().cloned());
    learner.learn(bound.clone());
    let end = bound.expires;
    assert_eq!(events(&mut writer), [("commit", p, mac(6))]);
    writer.expire(end);
    assert_eq!(events(&mut writer), [("expiry", p, mac(6))]);
    assert_eq!(
        removed(&learner.expire(end)),
        [p],
        "the learner frees it too"
    );
    assert_eq!(events(&mut learner), [], "but does not announce it");

    learner.learn(bound);
    let o = handle(&mut learner, &renew(mac(6), p), T0 + 10);
    assert_eq!(o.note, "ack");
    let renewed = upserts(&o)[0].expires;
    assert_eq!(events(&mut learner), [("renew", p, mac(6))]);
    learner.expire(renewed);
    assert_eq!(events(&mut learner), [("expiry", p, mac(6))]);
}
