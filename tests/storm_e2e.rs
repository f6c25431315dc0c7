//! The whole boot chain, CI-sized: 50 machines (BIOS PXE, UEFI PXE and
//! UEFI HTTP boot in turn) through DHCP, the boot file, iPXE's DHCP, the
//! script, the kernel and the initrd, against stormboot and against each
//! peer as its users configure it. Any machine that does not finish the
//! chain fails the test; speed is the bench's business (`cargo xtask bench
//! --only storm-e2e`), not this test's. And stormboot's boot timeline keeps
//! each machine's events in the order they happened.

use std::process::Command;

use stormboot_testbed::bootlab::{self, BootFiles, BootServer};
use stormboot_testbed::reports::{self, ChainReport};
use stormboot_testbed::{binary, require_root, Scratch, Side, Testbed, CLIENT_IF};

const MACHINES: u32 = 50;

fn chain(server: BootServer) -> ChainReport {
    require_root();
    if let Some(why) = server.unavailable() {
        panic!("{}: {why} (cargo xtask setup installs it)", server.name());
    }
    let scratch = Scratch::new(&format!("chain-{}", server.key()));
    let files = BootFiles::prepare(&scratch.path("files"), 64 * 1024, 256 * 1024).unwrap();
    let lab = binary("stormboot-lab");
    let mut bed = Testbed::new(&format!("chain-{}", server.key()), None).unwrap();
    bed.route_machines().unwrap();
    let work = scratch.path("server");
    let pids = server
        .start(&mut bed, &work, &files, MACHINES, &binary("stormboot"), &[])
        .unwrap_or_else(|e| panic!("{}: {e:#}", server.name()));
    let machines = bootlab::machines(MACHINES);
    let mut c = Command::new(&lab);
    c.args(["--log", "warn", "chain", "--json", "--interface", CLIENT_IF]);
    c.args([
        "--count",
        &MACHINES.to_string(),
        "--first-mac",
        &machines.mac(0),
    ]);
    c.args(["--expect-first-ip", &machines.ip(0).to_string()]);
    // Room for a few DHCP and TFTP retransmissions; a working run takes
    // a few seconds.
    c.args(["--deadline-s", "60"]);
    for p in &pids {
        c.args(["--server-pid", &p.to_string()]);
    }
    let out = bed
        .run(Side::Client, c)
        .unwrap_or_else(|e| panic!("{}: {e:#}", server.name()));
    let report: ChainReport = reports::decode("the chain", &out.stdout).unwrap();
    eprintln!(
        "{}:\n{}",
        server.name(),
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert!(
        report.all_booted(),
        "{}: {} of {} machines booted: {:?}",
        server.name(),
        report.booted,
        report.machines,
        report.failures
    );
    // Every phase was gone through by every machine, and each firmware
    // kind had its machines. The client checks each file against its
    // Content-Length or tsize; here the total covers the images at least.
    for phase in reports::CHAIN_PHASES {
        let done = report.phase(phase).map_or(0, |p| p.done);
        assert_eq!(done, MACHINES, "{}: phase {phase}", server.name());
    }
    assert_eq!(report.kinds.len(), 3, "{:?}", report.kinds);
    let images = u64::from(MACHINES) * (files.kernel_bytes + files.initrd_bytes);
    assert!(
        report.artifacts.bytes > images,
        "{}: {} bytes over HTTP, the images alone are {images}",
        server.name(),
        report.artifacts.bytes
    );
    assert!(
        report.server.is_some(),
        "the server's CPU and memory were read"
    );
    drop(bed);
    report
}

/// Machines that boot a few at a time (`ROUNDS` chains of two UEFI PXE
/// machines, whose firmware probes the boot file's size the moment its
/// ACK arrives, well within the 10 ms between two regular reads of the
/// program's reply events) each have, in their timeline (`stormboot
/// machine MAC`), the XDP ACK before the first file they fetched.
#[test]
fn an_xdp_ack_is_in_the_timeline_before_the_file_it_led_to() {
    const ROUNDS: u32 = 20;
    require_root();
    let scratch = Scratch::new("chain-order");
    let files = BootFiles::prepare(&scratch.path("files"), 64 * 1024, 64 * 1024).unwrap();
    let mut bed = Testbed::new("chain-order", None).unwrap();
    bed.route_machines().unwrap();
    let machines = bootlab::machines(2 * ROUNDS);
    BootServer::Stormboot
        .start(
            &mut bed,
            &scratch.path("server"),
            &files,
            2 * ROUNDS,
            &binary("stormboot"),
            &[],
        )
        .unwrap();
    for round in 0..ROUNDS {
        let mut c = Command::new(binary("stormboot-lab"));
        c.args(["--log", "warn", "chain", "--json", "--interface", CLIENT_IF]);
        c.args(["--count", "2", "--mix", "uefi-pxe", "--deadline-s", "30"]);
        c.args(["--first-mac", &machines.mac(2 * round)]);
        c.args(["--expect-first-ip", &machines.ip(2 * round).to_string()]);
        let out = bed.run(Side::Client, c).unwrap();
        let report: ChainReport = reports::decode("the chain", &out.stdout).unwrap();
        assert!(report.all_booted(), "round {round}: {:?}", report.failures);
    }
    timelines_in_order(&bed, &machines, 2 * ROUNDS);
    drop(bed);
}

/// The first `count` machines' timelines: an XDP ACK, then a file.
fn timelines_in_order(
    bed: &Testbed,
    machines: &stormboot_testbed::labconfig::Machines,
    count: u32,
) {
    for i in 0..count {
        let mac = machines.mac(i);
        let mut c = Command::new(binary("stormboot"));
        c.args(["--log", "warn", "machine", &mac, "--json"]);
        c.args(["--api", "127.0.0.1:8067"]);
        let out = bed.run(Side::Server, c).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{mac}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        let events = m["events"].as_array().expect("events");
        // Where the first event `pick` takes is in the list, and when.
        let first = |pick: fn(&serde_json::Value) -> bool| {
            events
                .iter()
                .position(pick)
                .map(|i| (i, events[i]["at_ms"].as_u64().unwrap()))
        };
        let ack = first(|e| e["phase"] == "ack" && e["path"] == "xdp");
        let file = first(|e| e["path"] == "tftp" || e["path"] == "http");
        let (Some(ack), Some(file)) = (ack, file) else {
            panic!("{mac}: no XDP ACK or no file in its timeline: {m}");
        };
        assert!(
            ack.0 < file.0 && ack.1 <= file.1,
            "{mac}: its first file is before its ACK: {m}"
        );
    }
}

#[test]
fn stormboot_boots_every_machine_through_the_chain() {
    chain(BootServer::Stormboot);
}

#[test]
fn dnsmasq_with_nginx_boots_every_machine_through_the_chain() {
    chain(BootServer::Dnsmasq);
}

#[test]
fn kea_with_tftpd_hpa_and_nginx_boots_every_machine_through_the_chain() {
    chain(BootServer::Kea);
}
