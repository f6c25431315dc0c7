//! Two nodes on one segment sharing one PostgreSQL server (the
//! `stormboot_testbed::cluster` topology), driven by the storm client and
//! real DHCP clients: what a rack with two boot servers sees.

use std::collections::BTreeMap;

use stormboot_testbed::cluster::{Node, Pair};
use stormboot_testbed::{require_root, xdp_counter};

/// `count` reservations from 02:00:00:00:10:00 up, 10.50.0.20 up.
fn reservations(count: u32) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[[reservation]]\nmac = \"02:00:00:00:10:{i:02x}\"\nip = \"10.50.0.{}\"\n",
                20 + i
            )
        })
        .collect()
}

const SUBNET: &str = "[[subnet]]\ncidr = \"10.50.0.0/24\"\nrouters = [\"10.50.0.1\"]\n\
                      lease_time = \"1h\"\npool = [\"10.50.0.100-10.50.0.250\"]\n";

#[test]
fn both_nodes_answer_every_reserved_machine_from_xdp() {
    require_root();
    const MACHINES: u32 = 40;
    let mut pair = Pair::new("cl-res").unwrap_or_else(|e| panic!("{e:#}"));
    let body = format!("{SUBNET}\n{}", reservations(MACHINES));
    for node in Node::BOTH {
        pair.start(node, &body, "");
    }
    let report = pair.storm(&[
        "--count",
        &MACHINES.to_string(),
        "--first-mac",
        "02:00:00:00:10:00",
        "--expect-first-ip",
        "10.50.0.20",
    ]);
    assert!(
        report.all_bound() && report.wrong_address == 0,
        "{report:?}{}",
        pair.logs()
    );
    // Every DISCOVER reached both nodes and both answered it in the kernel
    // with their own server identifier; each REQUEST named one of them.
    let mut by_server: BTreeMap<String, u32> = BTreeMap::new();
    for b in &report.bindings {
        *by_server.entry(b.server.to_string()).or_default() += 1;
    }
    for node in Node::BOTH {
        let stats = pair.try_stats(node).expect("stats");
        assert!(
            xdp_counter(&stats, "offer") >= u64::from(MACHINES),
            "node {} did not offer to every machine: {stats}",
            node.name()
        );
        let acked = by_server.get(node.address()).copied().unwrap_or(0);
        assert!(
            xdp_counter(&stats, "ack") >= u64::from(acked),
            "node {}: {acked} ACKs seen on the wire, fewer counted: {stats}",
            node.name()
        );
    }
    assert_eq!(by_server.values().sum::<u32>(), MACHINES, "{by_server:?}");
}
