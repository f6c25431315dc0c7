//! End-to-end tests: the real `stormboot` binary serving real DHCP clients
//! (ISC dhclient, busybox udhcpc, the built-in storm generator) across a
//! veth pair between two network namespaces.
//!
//! They check what only the whole system can show: that reserved machines
//! get their lease from the XDP program without userspace ever seeing a
//! packet, that everything else is passed up to the daemon's socket, that
//! bad configurations are refused before anything is attached, and that
//! SIGTERM leaves the interface clean.
//!
//! Needs root and `cargo build -p stormboot` first (see `binary`). Each test
//! owns its testbed and scratch directory, so they run in parallel.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stormboot_testbed::lab::chain;
use stormboot_testbed::reports::{self, StormReport};
use stormboot_testbed::{
    binary, require_root, slow_path, slow_path_total, wait_for, xdp_counter, Lab, Scratch, Side,
    CLIENT_IF, DAEMON_START, SERVER_IF,
};

/// MAC and address of the one machine the small configuration reserves.
const RESERVED_MAC: &str = "52:54:00:00:00:01";
const RESERVED_IP: &str = "10.50.0.11";
const UNKNOWN_MAC: &str = "52:54:00:99:99:99";

/// The documented example configuration, with one reservation.
const SMALL_CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
domain = "rack1.example"
lease_time = "1h"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
"#;

/// What every served reservation must leave in the counters: the kernel
/// offered and acknowledged, and userspace saw nothing at all.
fn assert_answered_by_xdp(lab: &Lab, min_acks: u64) {
    let stats = lab.stats();
    assert!(
        xdp_counter(&stats, "offer") >= min_acks,
        "too few XDP offers: {stats}{}",
        lab.log()
    );
    assert!(
        xdp_counter(&stats, "ack") >= min_acks,
        "too few XDP acks: {stats}{}",
        lab.log()
    );
    assert_eq!(
        slow_path_total(&stats),
        0,
        "userspace received packets XDP should have answered: {stats}{}",
        lab.log()
    );
}

/// Runs `stormboot-lab storm` on the client end for `count` machines from
/// `first_mac`, expecting the first at `first_ip` when given; its report.
fn storm(lab: &Lab, count: u64, first_mac: &str, first_ip: Option<&str>) -> StormReport {
    let count = count.to_string();
    let mut args = vec!["--count", &count, "--first-mac", first_mac];
    if let Some(ip) = first_ip {
        args.extend(["--expect-first-ip", ip]);
    }
    lab.storm(&args)
}

/// A TFTP root in the scratch directory holding a stand-in for the BIOS
/// iPXE binary.
fn fake_tftp_root(lab: &Lab) -> PathBuf {
    let root = lab.scratch.path("ipxe");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("undionly.kpxe"), b"not really iPXE").unwrap();
    root
}

/// Asserts a PXE BIOS client was pointed at the BIOS iPXE binary on the
/// server's TFTP.
fn assert_bios_boot_file(pxe: &BTreeMap<String, String>) {
    assert_eq!(
        pxe.get("boot_file").map(String::as_str),
        Some("undionly.kpxe"),
        "{pxe:?}"
    );
    assert_eq!(
        pxe.get("siaddr").map(String::as_str),
        Some("10.50.0.1"),
        "{pxe:?}"
    );
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
        + 1
}

#[test]
fn dhclient_gets_its_reservation_from_xdp() {
    require_root();
    let mut lab = Lab::new("e2e-dhclient", Some(RESERVED_MAC));
    lab.start(SMALL_CONFIG);

    // dhclient resolves the lease file's realpath, so it must exist.
    let leases = lab.scratch.write("dhclient.leases", "");
    let lease = lab.dhclient(
        "reserved",
        &leases,
        1,
        "request subnet-mask, routers, domain-name-servers, host-name, domain-name;\n",
    );
    let expect = [
        ("fixed-address", RESERVED_IP),
        ("option subnet-mask", "255.255.255.0"),
        ("option routers", "10.50.0.1"),
        ("option domain-name-servers", "10.50.0.1"),
        ("option dhcp-lease-time", "3600"),
        ("option host-name", "node1"),
        ("option domain-name", "rack1.example"),
    ];
    for (key, value) in expect {
        assert_eq!(
            lease.get(key).map(String::as_str),
            Some(value),
            "{key} in dhclient's lease: {lease:?}"
        );
    }
    assert_answered_by_xdp(&lab, 1);
}

#[test]
fn udhcpc_gets_its_reservation_from_xdp() {
    require_root();
    let mut lab = Lab::new("e2e-udhcpc", Some(RESERVED_MAC));
    lab.start(SMALL_CONFIG);

    let lease = lab
        .run_udhcpc(&[])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let expect = [
        ("ip", RESERVED_IP),
        ("subnet", "255.255.255.0"),
        ("router", "10.50.0.1"),
        ("dns", "10.50.0.1"),
        ("lease", "3600"),
        ("hostname", "node1"),
        ("domain", "rack1.example"),
    ];
    for (key, value) in expect {
        assert_eq!(
            lease.get(key).map(String::as_str),
            Some(value),
            "${key} given to udhcpc's script: {lease:?}"
        );
    }
    assert_answered_by_xdp(&lab, 1);
}

/// A veth served in driver mode whose peer stops running XDP (the program
/// on it ends) drops every reply the program sends back. The daemon sees
/// the veth's `tx_dropped` rise as it replies, moves the interface to skb
/// mode once, says why, counts it, and the client's retransmission is
/// answered from XDP.
#[test]
fn driver_mode_moves_to_skb_when_the_peer_stops_running_xdp() {
    require_root();
    let mut lab = Lab::new("e2e-fallback", Some(RESERVED_MAC));
    lab.start(SMALL_CONFIG);
    assert_eq!(lab.stats()["xdp_attachments"][0]["mode"], "driver");
    let pass = lab.pass_pid.take().expect("xdp-pass runs");
    lab.bed.stop(pass).expect("stopping xdp-pass");
    assert!(!stormboot_testbed::xdp_on(
        lab.bed.ns(Side::Client),
        CLIENT_IF
    ));

    let lease = lab
        .run_udhcpc(&["-t", "5", "-T", "2"])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    assert_eq!(lease.get("ip").map(String::as_str), Some(RESERVED_IP));
    let stats = lab.stats();
    assert_eq!(stats["xdp_mode_fallbacks"], 1, "{stats}{}", lab.log());
    assert_eq!(stats["xdp_attachments"][0]["mode"], "skb", "{stats}");
    let log = lab.log();
    assert_eq!(
        log.matches("Moved to skb mode").count(),
        1,
        "the move is logged once, naming the interface{log}"
    );
    assert!(log.contains("interface=sb0"), "{log}");
    assert_eq!(lab.metric("stormboot_xdp_mode_fallbacks_total"), 1);
    // Both attempts were the kernel's: the dropped offer and the one that came through.
    assert!(xdp_counter(&stats, "offer") >= 2, "{stats}");
    assert_answered_by_xdp(&lab, 1);
}

/// Under `ip netns exec` (a mount namespace of its own, /sys remounted) the
/// daemon pins into a bpffs it mounted itself, which ends with it: it must
/// say that restarts are not seamless there and name `nsenter --net`.
/// Entered with nsenter, as the lab does, it must not.
#[test]
fn pins_under_ip_netns_exec_are_reported_as_dying_with_the_daemon() {
    require_root();
    const WARNING: &str = "mounted only in this daemon's own mount namespace";
    let mut lab = Lab::new("e2e-netnsexec", None);
    lab.start(SMALL_CONFIG);
    assert!(!lab.log().contains(WARNING), "{}", lab.log());
    lab.stop_daemon();

    let mut serve = Command::new("ip");
    serve
        .args(["netns", "exec", lab.bed.ns(Side::Server)])
        .arg(binary("stormboot"))
        .arg("serve")
        .arg("--config")
        .arg(&lab.config)
        .env("NO_COLOR", "1")
        .env("STORMBOOT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(lab.scratch.append_file("daemon.log"));
    let pid = lab
        .bed
        .spawn(Side::Server, serve)
        .expect("spawning stormboot under ip netns exec");
    lab.daemon = Some(pid);
    wait_for(DAEMON_START, || lab.try_stats())
        .unwrap_or_else(|| panic!("the daemon under ip netns exec did not start{}", lab.log()));
    let log = lab.log();
    let line = log
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| panic!("no warning under ip netns exec{log}"));
    assert!(
        line.contains("WARN") && line.contains("nsenter --net") && line.contains("not seamless"),
        "{line}"
    );
    lab.stop_daemon();
}

#[test]
fn unknown_mac_is_passed_up_not_answered() {
    require_root();
    let mut lab = Lab::new("e2e-unknown", Some(UNKNOWN_MAC));
    lab.start(SMALL_CONFIG);

    // Two one-second tries: enough for the DISCOVERs to be seen, and a
    // short wait for the lease that must not come.
    if let Ok(lease) = lab.run_udhcpc(&["-t", "2", "-T", "1"]) {
        panic!(
            "unreserved {UNKNOWN_MAC} got a lease: {lease:?}{}",
            lab.log()
        );
    }
    let stats = lab.stats();
    assert!(
        xdp_counter(&stats, "pass_unknown_mac") >= 1,
        "not passed up: {stats}{}",
        lab.log()
    );
    assert_eq!(
        xdp_counter(&stats, "offer"),
        0,
        "XDP answered an unknown MAC: {stats}{}",
        lab.log()
    );
    assert!(
        slow_path(&stats, "dhcpdiscover") >= 1,
        "the daemon's socket never saw the DISCOVER: {stats}{}",
        lab.log()
    );
}

#[test]
fn storm_of_known_machines_is_answered_by_xdp() {
    require_root();
    const MACHINES: u64 = 200;
    let mut lab = Lab::new("e2e-storm", None);
    // Through the CSV file rather than TOML, so that path is covered too.
    let csv = storm_csv(MACHINES);
    lab.scratch.write("hosts.csv", &csv);
    lab.start(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
reservations_file = "hosts.csv"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
lease_time = "1h"
"#,
    );
    assert_eq!(
        lab.stats()["reservations"],
        MACHINES,
        "hosts.csv not loaded{}",
        lab.log()
    );

    let report = storm(&lab, MACHINES, "02:00:00:00:00:00", Some("10.50.0.20"));
    assert_eq!(u64::from(report.machines), MACHINES, "{report:?}");
    for (key, got, want) in [
        ("bound", u64::from(report.bound), MACHINES),
        ("lost", u64::from(report.lost), 0),
        ("wrong_address", u64::from(report.wrong_address), 0),
        ("bad_checksum", report.bad_checksum, 0),
    ] {
        assert_eq!(got, want, "storm {key}: {report:?}{}", lab.log());
    }
    // Retransmits, if any, are answered too, so at least one ACK each.
    assert_answered_by_xdp(&lab, MACHINES);
}

/// Every booting reservation holds one map entry per boot variant, so the
/// reservation map is sized for that: 10,000 booting machines are all
/// answered by XDP (once, the map took room for one entry per machine and
/// the daemon fell back to userspace at about 2,500).
#[test]
fn ten_thousand_booting_reservations_are_all_answered_by_xdp() {
    require_root();
    const MACHINES: u32 = 10_000;
    let mut lab = Lab::new("e2e-10k", Some(RESERVED_MAC));
    let mut csv = String::from("mac,ip,hostname\n");
    for i in 0..MACHINES {
        let b = i.to_be_bytes();
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 50, 1, 0)) + i);
        csv += &format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x},{ip},node{i}\n",
            b[0], b[1], b[2], b[3]
        );
    }
    csv += &format!("{RESERVED_MAC},10.50.0.11,reserved\n");
    lab.scratch.write("hosts.csv", &csv);
    let tftp_root = fake_tftp_root(&lab);
    lab.start(&format!(
        "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\nreservations_file = \"hosts.csv\"\n\n\
         [boot]\ntftp_root = \"{}\"\ndefault_profile = \"d\"\n\n\
         [[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n\n\
         [[subnet]]\ncidr = \"10.50.0.0/18\"\nrouters = [\"10.50.0.1\"]\nlease_time = \"1h\"\n",
        tftp_root.display()
    ));
    assert_eq!(
        lab.stats()["reservations"],
        MACHINES + 1,
        "hosts.csv not loaded{}",
        lab.log()
    );
    let lease = lab
        .run_udhcpc(&["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    assert_bios_boot_file(&lease);
    let stats = lab.stats();
    assert_eq!(
        slow_path_total(&stats),
        0,
        "the boot reply did not come from XDP: {stats}{}",
        lab.log()
    );
}

#[test]
fn bad_config_is_refused_naming_key_and_line() {
    require_root();
    let lab = Lab::new("e2e-badcfg", None);
    let typo = SMALL_CONFIG.replace("lease_time = ", "lease_tiem = ");
    let outside = SMALL_CONFIG.replace(r#"ip = "10.50.0.11""#, r#"ip = "10.60.0.11""#);
    let cases = [
        (
            "typo.toml",
            &typo,
            "subnet[0].lease_tiem",
            line_of(&typo, "lease_tiem"),
        ),
        (
            "outside.toml",
            &outside,
            "reservation[0].ip",
            line_of(&outside, "10.60.0.11"),
        ),
    ];
    for (file, text, key, line) in cases {
        let config = lab.scratch.write(file, text);
        let stderr_path = lab.scratch.path("refused.log");
        let mut serve = lab.stormboot(Side::Server);
        serve
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(lab.scratch.log_file("refused.log"));
        // Not Testbed::spawn: this child is ours to poll, since a daemon
        // that wrongly accepts the file never exits on its own.
        let mut child = serve.spawn().expect("spawning stormboot serve");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for stormboot serve") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{file} was not refused within 5 s:\n{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(!status.success(), "{file} accepted ({status}):\n{stderr}");
        let place = format!("{file}:{line}");
        assert!(
            stderr.contains(key) && stderr.contains(&place),
            "refusing {file}, stderr should name {key} and {place}:\n{stderr}"
        );
        assert!(
            !lab.xdp_attached(Side::Server),
            "{file} was refused but left XDP attached to {SERVER_IF}"
        );
    }
}

#[test]
fn sigterm_detaches_xdp() {
    require_root();
    let mut lab = Lab::new("e2e-sigterm", None);
    lab.start(SMALL_CONFIG);
    // A normal run first, so the shutdown follows real traffic: one machine
    // with the reserved MAC, from the storm generator's raw socket.
    let report = storm(&lab, 1, RESERVED_MAC, Some(RESERVED_IP));
    assert_eq!(report.bound, 1, "{report:?}{}", lab.log());

    lab.stop_daemon();
    assert!(
        !lab.xdp_attached(Side::Server),
        "XDP still attached to {SERVER_IF} after SIGTERM{}",
        lab.log()
    );
    // A killed daemon leaves its pinned link attached (see the restart
    // test), so the check above already tells a clean detach from a crash;
    // the exit status and the daemon's own word say it was clean.
    assert!(
        lab.scratch.read("daemon.log").contains("XDP detached"),
        "no \"XDP detached\" in the log{}",
        lab.log()
    );
}

#[test]
fn replies_and_program_log_lines_reach_the_daemon_log() {
    require_root();
    let mut lab = Lab::new("e2e-logs", None);
    let config = SMALL_CONFIG.replace(
        "address = \"10.50.0.1\"\n",
        "address = \"10.50.0.1\"\nxdp_log_level = \"debug\"\n",
    );
    lab.start_logging(&config, "debug");
    storm(&lab, 1, RESERVED_MAC, None);
    // The ACK comes back through the reply ring: the daemon logs it with
    // the client, the address and the path that answered.
    let ack = wait_for(Duration::from_secs(5), || {
        let log = lab.scratch.read("daemon.log");
        log.lines()
            .find(|l| {
                l.contains("DHCPACK")
                    && l.contains(&format!("mac={RESERVED_MAC}"))
                    && l.contains(&format!("ip={RESERVED_IP}"))
                    && l.contains("path=\"xdp\"")
            })
            .map(str::to_string)
    });
    assert!(ack.is_some(), "no DHCPACK event line{}", lab.log());
    // The program's own aya-log line (level debug, enabled by
    // server.xdp_log_level) reaches the daemon's tracing output.
    let program_line = wait_for(Duration::from_secs(5), || {
        let log = lab.scratch.read("daemon.log");
        log.contains(&format!("stormboot: sent type 5 for {RESERVED_MAC}"))
            .then_some(())
    });
    assert!(
        program_line.is_some(),
        "no aya-log line from the XDP program{}",
        lab.log()
    );
}

#[test]
fn program_log_level_off_keeps_the_program_quiet() {
    require_root();
    let mut lab = Lab::new("e2e-quiet", None);
    let config = SMALL_CONFIG.replace(
        "address = \"10.50.0.1\"\n",
        "address = \"10.50.0.1\"\nxdp_log_level = \"off\"\n",
    );
    lab.start_logging(&config, "debug");
    storm(&lab, 1, RESERVED_MAC, None);
    let acked = wait_for(Duration::from_secs(5), || {
        lab.scratch
            .read("daemon.log")
            .contains("DHCPACK")
            .then_some(())
    });
    assert!(acked.is_some(), "no DHCPACK event line{}", lab.log());
    assert!(
        !lab.scratch
            .read("daemon.log")
            .contains("stormboot: sent type"),
        "the program logged although xdp_log_level = off{}",
        lab.log()
    );
}

#[test]
fn without_native_xdp_the_daemon_falls_back_to_userspace() {
    require_root();
    let mut lab = Lab::new("e2e-fallback", None);
    // A bridge has no native XDP: with sb0 enslaved to it, the daemon serves
    // the same link from an interface where driver-mode attach fails.
    for args in [
        &["link", "add", "br0", "type", "bridge"][..],
        &["addr", "del", "10.50.0.1/24", "dev", SERVER_IF],
        &["link", "set", SERVER_IF, "master", "br0"],
        &["addr", "add", "10.50.0.1/24", "dev", "br0"],
        &["link", "set", "br0", "up"],
    ] {
        let mut ip = Command::new("ip");
        ip.args(args);
        lab.bed
            .run(Side::Server, ip)
            .unwrap_or_else(|e| panic!("ip {args:?}: {e:#}"));
    }
    let config = "[server]\ninterface = \"br0\"\naddress = \"10.50.0.1\"\n\n\
                  [[subnet]]\ncidr = \"10.50.0.0/24\"\nrouters = [\"10.50.0.1\"]\n\
                  pool = [\"10.50.0.100-10.50.0.110\"]\nlease_time = \"1h\"\n";
    lab.write_config(config);
    let stats = lab.serve();
    assert_eq!(stats["dataplane"], "userspace", "{stats}{}", lab.log());
    assert!(
        lab.log()
            .contains("XDP unavailable: every request is answered in userspace"),
        "the fallback must be logged as a warning{}",
        lab.log()
    );
    // And it really answers: a client on the bridged link gets a pool address.
    let lease = lab
        .run_udhcpc(&["-t", "3", "-T", "1"])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let ip: std::net::Ipv4Addr = lease
        .get("ip")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in {lease:?}"));
    assert!(
        (100..=110).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 50, 0],
        "pool address expected, got {ip}{}",
        lab.log()
    );
    let stats = lab.stats();
    assert!(slow_path_total(&stats) >= 2, "{stats}");
}

#[test]
fn each_interface_serves_its_own_subnet() {
    require_root();
    let mut lab = Lab::new("e2e-2if", None);
    // A second link between the same namespaces, created straight into them.
    let mut ip = Command::new("ip");
    ip.args([
        "link",
        "add",
        "sb1",
        "netns",
        &lab.bed.server_ns,
        "type",
        "veth",
        "peer",
        "name",
        "sbc1",
        "netns",
        &lab.bed.client_ns,
    ]);
    let out = ip.output().expect("running ip");
    assert!(
        out.status.success(),
        "ip link add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (side, args) in [
        (
            Side::Server,
            &["addr", "add", "10.52.0.1/24", "dev", "sb1"][..],
        ),
        (Side::Server, &["link", "set", "sb1", "up"]),
        (Side::Client, &["link", "set", "sbc1", "up"]),
    ] {
        let mut ip = Command::new("ip");
        ip.args(args);
        lab.bed
            .run(side, ip)
            .unwrap_or_else(|e| panic!("ip {args:?}: {e:#}"));
    }
    lab.start(
        "[server]\ninterface = [\"sb0\", \"sb1\"]\naddress = \"10.50.0.1\"\n\n\
         [[subnet]]\ncidr = \"10.50.0.0/24\"\nrouters = [\"10.50.0.1\"]\npool = [\"10.50.0.100-10.50.0.110\"]\n\n\
         [[subnet]]\ncidr = \"10.52.0.0/24\"\nrouters = [\"10.52.0.1\"]\npool = [\"10.52.0.100-10.52.0.110\"]\n",
    );
    // The program is attached to both interfaces.
    let mut show = Command::new("ip");
    show.args(["-j", "link", "show", "sb1"]);
    let out = lab.bed.run(Side::Server, show).expect("ip link show sb1");
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    assert!(
        links[0].get("xdp").is_some(),
        "no XDP on sb1: {links}{}",
        lab.log()
    );
    for (iface, net, router) in [
        (CLIENT_IF, [10, 50, 0], "10.50.0.1"),
        ("sbc1", [10, 52, 0], "10.52.0.1"),
    ] {
        let lease = lab
            .run_udhcpc_on(iface, &["-t", "3", "-T", "1"])
            .unwrap_or_else(|e| panic!("udhcpc on {iface} got no lease: {e}{}", lab.log()));
        let ip: std::net::Ipv4Addr = lease
            .get("ip")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no address in {lease:?}"));
        assert_eq!(
            ip.octets()[..3],
            net,
            "{iface} must get an address of its own link's subnet, got {ip}{}",
            lab.log()
        );
        assert!(
            (100..=110).contains(&ip.octets()[3]),
            "{ip} is not in the pool"
        );
        assert_eq!(
            lease.get("router").map(String::as_str),
            Some(router),
            "{lease:?}"
        );
    }
}

#[test]
fn a_booting_machine_gets_its_script_files_and_timeline() {
    require_root();
    let mut lab = Lab::new("e2e-boot", Some(RESERVED_MAC));
    let tftp_root = lab.scratch.path("ipxe");
    let artifacts = lab.scratch.path("artifacts");
    fs::create_dir_all(&tftp_root).unwrap();
    fs::create_dir_all(&artifacts).unwrap();
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(tftp_root.join("undionly.kpxe"), &binary).unwrap();
    fs::write(artifacts.join("vmlinuz"), b"kernel").unwrap();
    let config = SMALL_CONFIG.replace(
        "hostname = \"node1\"\n",
        "hostname = \"node1\"\nprofile = \"debian\"\n",
    ) + &format!(
        "\n[boot]\ntftp_root = \"{}\"\nartifacts_dir = \"{}\"\n\n\
         [[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\ninitrd = \"initrd.img\"\ncmdline = \"console=ttyS0,115200n8\"\n",
        tftp_root.display(),
        artifacts.display()
    );
    lab.start(&config);

    // What the iPXE ROM of tests/qemu.rs's BIOS boots sends: user class
    // "iPXE" bare, PXEClient, arch 0.
    let lease = lab
        .run_udhcpc(&[
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x4d:69505845",
            "-x",
            "0x5d:0000",
        ])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let script_url = format!("http://10.50.0.1/{RESERVED_MAC}/auto.ipxe");
    assert_eq!(
        lease.get("boot_file").map(String::as_str),
        Some(script_url.as_str()),
        "{lease:?}{}",
        lab.log()
    );
    assert_eq!(
        lease.get("siaddr").map(String::as_str),
        Some("10.50.0.1"),
        "{lease:?}"
    );
    let stats = lab.stats();
    assert_eq!(
        slow_path_total(&stats),
        0,
        "the boot reply came from XDP: {stats}"
    );

    let mut ip = Command::new("ip");
    ip.args([
        "addr",
        "add",
        &format!("{RESERVED_IP}/24"),
        "dev",
        CLIENT_IF,
    ]);
    lab.bed.run(Side::Client, ip).expect("address the client");
    let curl = |args: &[&str]| {
        let mut c = Command::new("curl");
        c.arg("-sS").args(args);
        lab.bed.run(Side::Client, c)
    };
    let script = curl(&[&script_url]).unwrap_or_else(|e| panic!("script: {e:#}{}", lab.log()));
    let script = String::from_utf8_lossy(&script.stdout).to_string();
    assert!(script.starts_with("#!ipxe"), "{script}");
    assert!(
        script.contains(
            "kernel http://10.50.0.1/artifacts/vmlinuz initrd=initrd.img console=ttyS0,115200n8"
        ),
        "{script}"
    );
    assert!(
        script.contains("initrd http://10.50.0.1/artifacts/initrd.img"),
        "{script}"
    );

    let out = lab.scratch.path("undionly.kpxe");
    curl(&[
        "--tftp-blksize",
        "1468",
        "-o",
        &out.to_string_lossy(),
        "tftp://10.50.0.1/undionly.kpxe",
    ])
    .unwrap_or_else(|e| panic!("tftp: {e:#}{}", lab.log()));
    assert_eq!(
        fs::read(&out).unwrap(),
        binary,
        "TFTP delivered the file intact"
    );
    assert!(
        curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "tftp://10.50.0.1/../../etc/passwd"
        ])
        .is_err(),
        "a path out of the TFTP root must be refused"
    );

    let mut logger = Command::new("logger");
    logger.args([
        "--server",
        "10.50.0.1",
        "--udp",
        "--port",
        "514",
        "--rfc3164",
        "-t",
        "init",
        "node1 reached userspace",
    ]);
    lab.bed.run(Side::Client, logger).expect("logger");

    // Every phase lands in the machine's timeline.
    let timeline = wait_for(Duration::from_secs(5), || {
        let mut c = lab.stormboot(Side::Server);
        c.args(["machine", RESERVED_MAC, "--json", "--config"])
            .arg(&lab.config);
        let out = lab.bed.run(Side::Server, c).ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let phases: Vec<String> = v["events"]
            .as_array()?
            .iter()
            .map(|e| e["phase"].as_str().unwrap_or("").to_string())
            .collect();
        ["offer", "ack", "script", "tftp", "syslog"]
            .iter()
            .all(|p| phases.iter().any(|x| x == p))
            .then_some(v)
    })
    .unwrap_or_else(|| panic!("the timeline lacks a phase{}", lab.log()));
    let events = timeline["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["phase"] == "ack" && e["path"] == "xdp"),
        "{timeline}"
    );
    assert!(
        events.iter().any(|e| e["phase"] == "syslog"
            && e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("node1 reached userspace")),
        "{timeline}"
    );
    assert_eq!(timeline["phase"], "syslog", "the furthest phase reached");

    // The same boot, as a Prometheus scraper sees it.
    let metrics = lab.metrics();
    for (series, min) in [
        ("stormboot_http_requests_total{code=\"2xx\"}", 1.0),
        ("stormboot_tftp_transfers_total{result=\"ok\"}", 1.0),
        ("stormboot_syslog_lines_total", 1.0),
        ("stormboot_boot_phase_seconds_count{phase=\"script\"}", 1.0),
        ("stormboot_boot_phase_seconds_count{phase=\"syslog\"}", 1.0),
        ("stormboot_xdp_packets_total{outcome=\"ack\"}", 1.0),
    ] {
        let v = metrics.get(series).copied().unwrap_or(0.0);
        assert!(v >= min, "{series} = {v}, want >= {min}: {metrics:?}");
    }
    // The root has no ipxe.efi: the daemon said so when it started.
    assert!(
        lab.log().contains("boot file missing from boot.tftp_root")
            && lab.log().contains("ipxe.efi"),
        "{}",
        lab.log()
    );
}

/// Started with a soft limit on open files far below a storm's (systemd
/// gives 1,024; 256 here keeps the test small), the daemon raises it to the
/// hard limit and holds more downloads at once than it was started with:
/// 600 machines, each on a connection of its own kept open until every
/// one has its kernel. At the old limit accept(2) and the file's open fail
/// past about 200: the rest get a 500 or no answer.
#[test]
fn more_downloads_at_once_than_the_open_file_limit_it_was_started_with() {
    require_root();
    const MACHINES: usize = 600;
    const SOFT: u64 = 256;
    // The test's own end holds a connection per machine too.
    stormboot::limits::raise_open_files().expect("raising the test's own limit");
    let mut lab = Lab::new("e2e-nofile", None);
    let tftp_root = lab.scratch.path("ipxe");
    let artifacts = lab.scratch.path("artifacts");
    fs::create_dir_all(&tftp_root).unwrap();
    fs::create_dir_all(&artifacts).unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    fs::write(artifacts.join("vmlinuz"), &kernel).unwrap();
    let config = SMALL_CONFIG.to_string()
        + &format!(
            "\n[boot]\ntftp_root = \"{}\"\nartifacts_dir = \"{}\"\n",
            tftp_root.display(),
            artifacts.display()
        );
    lab.open_files = Some(SOFT);
    lab.start(&config);
    let pid = lab.daemon.expect("daemon started");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft_now: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no open files line in\n{limits}"));
    assert!(
        soft_now > MACHINES as u64 * 2,
        "the daemon runs with a soft limit of {soft_now}{}",
        lab.log()
    );

    let want = kernel.len();
    let got = lab
        .bed
        .in_ns(Side::Server, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // A client each: a connection each, all kept until the end.
                let clients: Vec<_> = (0..MACHINES)
                    .map(|_| chain::machine_http(std::net::Ipv4Addr::LOCALHOST))
                    .collect();
                let mut gets = tokio::task::JoinSet::new();
                for c in &clients {
                    let c = c.clone();
                    gets.spawn(async move {
                        let get = chain::http_get(&c, "http://127.0.0.1/artifacts/vmlinuz");
                        match tokio::time::timeout(Duration::from_secs(20), get).await {
                            Ok(r) => r.map(|(len, _)| len as usize),
                            Err(_) => Err(anyhow::anyhow!("no whole answer within 20 s")),
                        }
                    });
                }
                let mut done = Vec::new();
                while let Some(r) = gets.join_next().await {
                    done.push(r.unwrap().map_err(|e| format!("{e:#}")));
                }
                drop(clients);
                done
            })
        })
        .unwrap();
    let complete = got.iter().filter(|r| r.as_ref() == Ok(&want)).count();
    let first_error = got.iter().find(|r| r.as_ref() != Ok(&want));
    assert_eq!(
        complete,
        MACHINES,
        "downloads complete; first other: {first_error:?}{}",
        lab.log()
    );
}

#[test]
fn boot_only_beside_dnsmasq_configured_by_print_config() {
    require_root();
    let mut lab = Lab::new("e2e-bootonly", Some(RESERVED_MAC));
    let tftp_root = fake_tftp_root(&lab);
    let config = SMALL_CONFIG
        .replace("address = \"10.50.0.1\"\n", "address = \"10.50.0.1\"\nmode = \"boot-only\"\n")
        .replace("hostname = \"node1\"\n", "hostname = \"node1\"\nprofile = \"debian\"\n")
        + &format!(
            "\n[boot]\ntftp_root = \"{}\"\n\n[[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\n",
            tftp_root.display()
        );
    lab.write_config(&config);

    // dnsmasq gives the addresses, with exactly what print-config says.
    let snippet = lab.print_config("dnsmasq");
    lab.start_dnsmasq(Side::Server, SERVER_IF, &snippet);

    let stats = lab.serve();
    assert!(
        stats["dataplane"]
            .as_str()
            .unwrap_or("")
            .contains("boot-only"),
        "{stats}"
    );
    assert!(!lab.xdp_attached(Side::Server), "boot-only attaches no XDP");

    // PXE firmware (no option 175): the BIOS binary from stormboot's TFTP.
    let pxe = lab
        .run_udhcpc(&[
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x5d:0000",
            "-t",
            "5",
            "-T",
            "1",
        ])
        .unwrap_or_else(|e| panic!("PXE request got no lease: {e}{}", lab.dnsmasq_log()));
    assert_bios_boot_file(&pxe);
    // iPXE (option 175 present): the script URL, expanded by iPXE itself.
    let ipxe = lab
        .run_udhcpc(&[
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x5d:0000",
            "-x",
            "0xaf:b00101",
            "-t",
            "5",
            "-T",
            "1",
        ])
        .unwrap_or_else(|e| panic!("iPXE request got no lease: {e}{}", lab.dnsmasq_log()));
    let url = ipxe.get("boot_file").cloned().unwrap_or_default();
    assert_eq!(url, "http://10.50.0.1/${net0/mac}/auto.ipxe", "{ipxe:?}");

    // The files come from stormboot: the script for this MAC, and TFTP.
    let ip = ipxe.get("ip").cloned().expect("an address from dnsmasq");
    let mut add = Command::new("ip");
    add.args(["addr", "add", &format!("{ip}/24"), "dev", CLIENT_IF]);
    lab.bed.run(Side::Client, add).expect("address the client");
    let mut curl = Command::new("curl");
    curl.args(["-sS", &url.replace("${net0/mac}", RESERVED_MAC)]);
    let script = lab
        .bed
        .run(Side::Client, curl)
        .unwrap_or_else(|e| panic!("script: {e:#}{}", lab.log()));
    let script = String::from_utf8_lossy(&script.stdout).to_string();
    assert!(
        script.contains("kernel http://10.50.0.1/artifacts/vmlinuz"),
        "{script}"
    );
    let mut tftp = Command::new("curl");
    tftp.args(["-sS", "tftp://10.50.0.1/undionly.kpxe"]);
    let out = lab
        .bed
        .run(Side::Client, tftp)
        .unwrap_or_else(|e| panic!("tftp: {e:#}{}", lab.log()));
    assert_eq!(out.stdout, b"not really iPXE");
}

/// `machines` reservations in a CSV file: machine i is 02:00:00:00:00:00 + i
/// at 10.50.0.20 + i.
fn storm_csv(machines: u64) -> String {
    let mut csv = String::from("mac,ip,hostname\n");
    for i in 0..machines {
        let mac = 0x0200_0000_0000_u64 + i;
        let octets: Vec<String> = mac.to_be_bytes()[2..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        csv += &format!("{},10.50.0.{},storm{i}\n", octets.join(":"), 20 + i);
    }
    csv
}

/// The configuration of the restart tests: `machines` reservations from
/// hosts.csv, and the program's log level, which is compiled into it (a
/// different level is a different program).
fn restart_config(log_level: &str) -> String {
    format!(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
reservations_file = "hosts.csv"
xdp_log_level = "{log_level}"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
lease_time = "1h"
"#
    )
}

/// What only the restart tests ask of a lab.
trait RestartLab {
    fn xdp_prog_id(&self) -> Option<u64>;
    fn pin_dir(&self) -> PathBuf;
    fn start_storms(&mut self, machines: u64) -> u32;
    fn stop_storms(&mut self, pid: u32) -> Vec<StormReport>;
}

impl RestartLab for Lab {
    /// The id of the XDP program on sb0, if any.
    fn xdp_prog_id(&self) -> Option<u64> {
        let out = Command::new("ip")
            .args([
                "-j",
                "-n",
                self.bed.ns(Side::Server),
                "link",
                "show",
                SERVER_IF,
            ])
            .output()
            .expect("running ip link show");
        let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link show JSON");
        links[0]["xdp"]["prog"]["id"].as_u64()
    }

    /// The daemon's pin directory (one per network namespace and interface
    /// set), under the default bpffs_dir.
    fn pin_dir(&self) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(self.bed.ns_path(Side::Server))
            .expect("stat of the server namespace")
            .ino();
        PathBuf::from(format!("/sys/fs/bpf/stormboot/net{ino}-{SERVER_IF}"))
    }

    /// Runs storm rounds of `machines` known machines, one after another,
    /// until `stop_storms` is called. One try per message and a short
    /// timeout: any request left unanswered counts as lost.
    fn start_storms(&mut self, machines: u64) -> u32 {
        let stop = self.scratch.path("STOP");
        let runs = self.scratch.path("storms.jsonl");
        let script = format!(
            "while [ ! -e '{stop}' ]; do '{lab}' storm --interface {CLIENT_IF} --count {machines} \
             --first-mac 02:00:00:00:00:00 --expect-first-ip 10.50.0.20 --window 16 \
             --tries 1 --timeout-ms 500 --json >> '{runs}' || exit 1; done",
            stop = stop.display(),
            lab = binary("stormboot-lab").display(),
            runs = runs.display(),
        );
        let mut sh = self.bed.command(Side::Client, "sh");
        sh.args(["-c", &script])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(self.scratch.log_file("storms.log"));
        self.bed.spawn(Side::Client, sh).expect("spawning storms")
    }

    /// Ends the storm rounds and returns their reports.
    fn stop_storms(&mut self, pid: u32) -> Vec<StormReport> {
        fs::write(self.scratch.path("STOP"), "").unwrap();
        let status = self
            .bed
            .wait(pid, Duration::from_secs(30))
            .expect("waiting for the storms")
            .unwrap_or_else(|| panic!("storm rounds did not stop{}", self.log()));
        assert!(
            status.success(),
            "a storm round failed: {}",
            self.scratch.read("storms.log")
        );
        // One pretty-printed JSON report per round, back to back.
        serde_json::Deserializer::from_str(&self.scratch.read("storms.jsonl"))
            .into_iter::<StormReport>()
            .map(|r| r.expect("storm report JSON"))
            .collect()
    }
}

#[test]
fn known_machines_are_answered_across_kill_restart_and_upgrade() {
    require_root();
    const MACHINES: u64 = 200;
    let mut lab = Lab::new("e2e-restart", None);
    lab.scratch.write("hosts.csv", &storm_csv(MACHINES));
    lab.start(&restart_config("off"));
    assert!(
        lab.pin_dir().join("link-sb0").exists(),
        "no pinned link{}",
        lab.log()
    );
    let storms = lab.start_storms(MACHINES);
    std::thread::sleep(Duration::from_millis(500));

    // A crash: only the pinned link keeps the program attached.
    lab.crash_daemon();
    let answering = lab.xdp_prog_id();
    assert!(answering.is_some(), "SIGKILL detached XDP{}", lab.log());
    std::thread::sleep(Duration::from_millis(1000));
    lab.respawn();
    assert!(
        lab.scratch
            .read("daemon.log")
            .contains("took over the pinned link"),
        "restart did not take over the link{}",
        lab.log()
    );
    std::thread::sleep(Duration::from_millis(500));

    // An upgrade: the daemon hands over (SIGUSR2) and a changed program
    // replaces it through the link.
    let second = lab.daemon.take().unwrap();
    let before = lab.xdp_prog_id();
    unsafe { libc::kill(second as libc::pid_t, libc::SIGUSR2) };
    let status = lab
        .bed
        .wait(second, Duration::from_secs(10))
        .unwrap()
        .unwrap_or_else(|| panic!("no exit on SIGUSR2{}", lab.log()));
    assert!(status.success(), "SIGUSR2 exit: {status}{}", lab.log());
    assert_eq!(lab.xdp_prog_id(), before, "handover detached{}", lab.log());
    lab.write_config(&restart_config("warn"));
    std::thread::sleep(Duration::from_millis(500));
    lab.respawn();
    let after = lab.xdp_prog_id();
    assert!(
        after.is_some() && after != before,
        "program not replaced: {before:?} -> {after:?}{}",
        lab.log()
    );
    std::thread::sleep(Duration::from_millis(500));

    let reports = lab.stop_storms(storms);
    assert!(
        reports.len() >= 3,
        "only {} storm rounds ran",
        reports.len()
    );
    let (mut bound, mut lost) = (0, 0);
    for r in &reports {
        bound += u64::from(r.bound);
        lost += u64::from(r.lost + r.wrong_address);
    }
    eprintln!(
        "across SIGKILL, restart, SIGUSR2 and upgrade: {} storm rounds, {bound} machines bound, {lost} unanswered",
        reports.len()
    );
    assert_eq!(
        lost,
        0,
        "{lost} known machines unanswered in {} rounds: {reports:?}{}",
        reports.len(),
        lab.log()
    );
    assert!(bound >= 3 * MACHINES, "{bound} bound");
    // What the program acknowledged while no daemon ran was read afterwards.
    let log = lab.scratch.read("daemon.log");
    let taken = log
        .lines()
        .skip_while(|l| !l.contains("took over the pinned link"))
        .filter(|l| l.contains("read the reply events of the previous program"))
        .filter_map(|l| {
            l.split("events=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .collect::<Vec<_>>();
    assert!(
        taken.first().is_some_and(|&n| n > 0),
        "the restarted daemon read no events of the unattended program: {taken:?}{}",
        lab.log()
    );

    // A clean stop removes the pins and the program.
    let last = lab.daemon.take().unwrap();
    assert!(lab.bed.stop(last).unwrap().success());
    assert!(
        lab.xdp_prog_id().is_none(),
        "XDP left after SIGTERM{}",
        lab.log()
    );
    assert!(
        !lab.pin_dir().exists(),
        "pins left after SIGTERM{}",
        lab.log()
    );
}

#[test]
fn detach_removes_what_a_killed_daemon_left_pinned() {
    require_root();
    let mut lab = Lab::new("e2e-detach", None);
    lab.start(SMALL_CONFIG);
    lab.crash_daemon();
    assert!(
        lab.xdp_attached(Side::Server),
        "SIGKILL detached XDP{}",
        lab.log()
    );
    let mut detach = lab.stormboot(Side::Server);
    detach.arg("detach").arg("--config").arg(&lab.config);
    let out = lab.bed.run(Side::Server, detach).expect("stormboot detach");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("link-sb0"), "detach output: {text}");
    assert!(
        !lab.xdp_attached(Side::Server),
        "still attached after detach: {text}"
    );
    assert!(!lab.pin_dir().exists(), "pins left: {text}");
    // A second run finds nothing and says so.
    let mut again = lab.stormboot(Side::Server);
    again.arg("detach").arg("--config").arg(&lab.config);
    let out = lab.bed.run(Side::Server, again).expect("second detach");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing pinned"));
}

#[test]
fn runs_with_only_the_units_capabilities_and_tells_systemd_when_ready() {
    require_root();
    // The capabilities the shipped unit grants, as setpriv names them.
    let unit_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd/stormboot.service");
    let unit = fs::read_to_string(&unit_path).expect("reading the shipped unit");
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet in the unit")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let mut lab = Lab::new("e2e-unit", None);
    let tftp_root = fake_tftp_root(&lab);
    lab.write_config(&format!(
        "{SMALL_CONFIG}\n[boot]\ntftp_root = \"{}\"\n",
        tftp_root.display()
    ));
    // What systemd does for Type=notify: a datagram socket named by
    // $NOTIFY_SOCKET.
    let sock_path = lab.scratch.path("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("notify socket");
    sock.set_read_timeout(Some(DAEMON_START)).unwrap();
    let mut serve = lab.bed.command(Side::Server, "setpriv");
    serve
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .arg(binary("stormboot"))
        .arg("serve")
        .arg("--config")
        .arg(&lab.config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(lab.scratch.log_file("daemon.log"));
    let pid = lab.bed.spawn(Side::Server, serve).expect("spawning");
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification ({e}){}", lab.log()));
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    // Ready means ready: the program is attached and the API answers.
    assert!(
        lab.xdp_attached(Side::Server),
        "READY before XDP{}",
        lab.log()
    );
    assert!(
        lab.try_stats().is_some(),
        "READY before the API{}",
        lab.log()
    );
    assert!(ready.contains("xdp dataplane"), "{ready:?}{}", lab.log());
    // And the boot services listen: a download sent on READY is served,
    // and the log says "serving" only after them.
    lab.bed
        .in_ns(Side::Server, || {
            std::net::TcpStream::connect("127.0.0.1:80")
        })
        .expect("entering the server's namespace")
        .unwrap_or_else(|e| panic!("READY before the boot HTTP port ({e}){}", lab.log()));
    let log = lab.scratch.read("daemon.log");
    let (services, serving) = (log.find("boot services up"), log.find(" serving "));
    assert!(
        matches!((services, serving), (Some(a), Some(b)) if a < b),
        "\"serving\" must follow \"boot services up\"{}",
        lab.log()
    );

    lab.attach_pass();
    let report = storm(&lab, 1, RESERVED_MAC, Some(RESERVED_IP));
    assert_eq!(report.bound, 1, "{report:?}{}", lab.log());
    assert_answered_by_xdp(&lab, 1);

    let status = lab.bed.stop(pid).expect("stopping");
    assert!(status.success(), "exit {status}{}", lab.log());
    let n = sock.recv(&mut buf).expect("STOPPING notification");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let scratch = Scratch::new("unit-verify");
    let unit_dir = scratch.path("units");
    let config = scratch.write("stormboot.toml", SMALL_CONFIG);
    let out = Command::new(binary("stormboot"))
        .arg("install-service")
        .arg("--unit-dir")
        .arg(&unit_dir)
        .arg("--config")
        .arg(&config)
        .arg("--no-reload")
        .output()
        .expect("running install-service");
    assert!(out.status.success(), "install-service: {out:?}");
    let unit = unit_dir.join("stormboot.service");
    let text = fs::read_to_string(&unit).expect("the unit was written");
    let bin = binary("stormboot");
    let exec = text
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(
        exec.contains(&*bin.to_string_lossy()) && exec.contains(&*config.to_string_lossy()),
        "{exec}"
    );
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("running systemd-analyze (Debian package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn sighup_reloads_reservations_in_place_and_refuses_a_bad_file() {
    require_root();
    let mut lab = Lab::new("e2e-hup", None);
    lab.start(SMALL_CONFIG);
    let pid = lab.daemon.expect("daemon");
    let prog = lab.xdp_prog_id();
    // The reserved machine binds, to exactly `ip`.
    let bind = |lab: &Lab, ip: &str| {
        let r = storm(lab, 1, RESERVED_MAC, Some(ip));
        assert!(
            r.bound == 1 && r.wrong_address == 0,
            "not bound to {ip}: {r:?}{}",
            lab.log()
        );
    };
    let hup = |lab: &Lab, expect: &str| {
        let before = lab.scratch.read("daemon.log").matches(expect).count();
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        wait_for(Duration::from_secs(5), || {
            (lab.scratch.read("daemon.log").matches(expect).count() > before).then_some(())
        })
        .unwrap_or_else(|| panic!("no {expect:?} after SIGHUP{}", lab.log()));
    };
    bind(&lab, RESERVED_IP);

    // The reservation moves: XDP answers with the new address at once.
    lab.write_config(&SMALL_CONFIG.replace("10.50.0.11", "10.50.0.12"));
    hup(&lab, "configuration reloaded");
    bind(&lab, "10.50.0.12");
    assert_eq!(
        lab.xdp_prog_id(),
        prog,
        "the program was replaced, not reloaded"
    );

    // A file with a bad value is refused whole; the running one stays.
    lab.write_config(&SMALL_CONFIG.replace("10.50.0.11", "10.50.0.300"));
    hup(&lab, "reload refused");
    let log = lab.scratch.read("daemon.log");
    assert!(
        log.contains("reservation.ip") || log.contains("reservation[0].ip"),
        "{}",
        lab.log()
    );
    bind(&lab, "10.50.0.12");

    // So is one that changes what only a restart can.
    lab.write_config(&SMALL_CONFIG.replace("interface = \"sb0\"", "interface = \"sb9\""));
    hup(&lab, "reload refused");
    assert!(
        lab.scratch
            .read("daemon.log")
            .contains("server.interface changed"),
        "{}",
        lab.log()
    );
    let stats = lab.stats();
    assert_eq!(slow_path_total(&stats), 0, "userspace answered: {stats}");
    assert!(xdp_counter(&stats, "ack") >= 3, "{stats}");
}

/// The daemon's resident memory in KiB, from /proc.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

#[test]
fn floods_beside_a_storm_are_dropped_and_known_machines_still_answered() {
    require_root();
    // Two storms of known machines at once, each with a flood beside it of
    // ten frames for every request its machines send: one of unknown MACs
    // (each new: only the userspace queue bounds them), one of a single
    // misbehaving MAC (the XDP bucket drops it).
    const HALF: u32 = 500;
    const FLOOD: u32 = 10;
    let mut lab = Lab::new("e2e-flood", None);
    let mut csv = String::from("mac,ip,hostname\n");
    for i in 0..2 * HALF {
        let mac = 0x0200_0000_0000_u64 + u64::from(i);
        let octets: Vec<String> = mac.to_be_bytes()[2..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 50, 1, 0)) + i);
        csv += &format!("{},{ip},known{i}\n", octets.join(":"));
    }
    lab.scratch.write("hosts.csv", &csv);
    lab.start(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
reservations_file = "hosts.csv"
slowpath_rate = 20
slowpath_burst = 40
offer_hold = "1s"

[[subnet]]
cidr = "10.50.0.0/16"
routers = ["10.50.0.1"]
lease_time = "1h"
pool = ["10.50.100.1-10.50.199.254"]
"#,
    );
    let pid = lab.daemon.expect("the daemon runs");
    let rss_before = vm_rss_kib(pid);

    let storm = |first_mac: &str, first_ip: &str, flood_first: &str, flood_macs: u32, per: u32| {
        let mut cmd = lab.lab_command(Side::Client);
        cmd.args([
            "storm",
            "--interface",
            CLIENT_IF,
            "--count",
            &HALF.to_string(),
            "--first-mac",
            first_mac,
            "--expect-first-ip",
            first_ip,
            "--flood-per-request",
            &per.to_string(),
            "--flood-macs",
            &flood_macs.to_string(),
            "--flood-first-mac",
            flood_first,
            "--json",
        ]);
        cmd
    };
    // Machine 500 is 02:00:00:00:01:f4 at 10.50.1.0 + 500.
    let unknown = storm(
        "02:00:00:00:00:00",
        "10.50.1.0",
        "0a:00:00:00:00:00",
        1 << 20,
        FLOOD,
    );
    let single = storm(
        "02:00:00:00:01:f4",
        "10.50.2.244",
        "0a:bb:bb:bb:bb:bb",
        1,
        FLOOD,
    );
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| lab.bed.run(Side::Client, unknown));
        let b = s.spawn(|| lab.bed.run(Side::Client, single));
        (a.join().unwrap(), b.join().unwrap())
    });
    let report = |out: anyhow::Result<std::process::Output>| -> StormReport {
        let out = out.unwrap_or_else(|e| panic!("storm failed: {e:#}{}", lab.log()));
        reports::decode("storm", &out.stdout).unwrap_or_else(|e| panic!("{e:#}"))
    };
    let (a, b) = (report(a), report(b));
    for r in [&a, &b] {
        for (key, got, want) in [
            ("machines", r.machines, HALF),
            ("bound", r.bound, HALF),
            ("lost", r.lost, 0),
            ("wrong_address", r.wrong_address, 0),
        ] {
            assert_eq!(
                got,
                want,
                "known machines beside a flood, {key}: {r:?}{}",
                lab.log()
            );
        }
        let requests = u64::from(r.machines) * 2 + r.retransmits;
        assert!(
            r.flood_sent >= requests * u64::from(FLOOD),
            "the flood is ten times the storm: {r:?}"
        );
    }

    // Counted once the daemon has drained what reached its socket.
    std::thread::sleep(Duration::from_millis(500));
    let stats = lab.stats();
    let (flood_a, flood_b) = (a.flood_sent, b.flood_sent);
    let dropped = xdp_counter(&stats, "drop_slowpath_rate");
    let passed = xdp_counter(&stats, "pass_unknown_mac");
    // The misbehaving MAC had 40 requests of burst and 20 a second, the
    // storm's run time and a second more at most; the rest stayed in the
    // kernel. Unknown MACs each sent a request or two and were never held.
    let seconds = b.elapsed_ms as u64 / 1000 + 1;
    let allowed = 40 + 20 * seconds;
    assert!(
        dropped + allowed >= flood_b * 9 / 10,
        "the single MAC's flood ({flood_b} frames) was not dropped in XDP: \
         {dropped} dropped{}",
        lab.log()
    );
    assert!(
        dropped <= flood_b,
        "only the single MAC is over its rate: {stats}"
    );
    // Every flood frame that reached the program was passed up or dropped
    // there (a few may be lost on the veth before it).
    assert!(
        passed + dropped <= flood_a + flood_b && (passed + dropped) * 10 >= (flood_a + flood_b) * 9,
        "flood frames {flood_a} + {flood_b}, passed {passed} + dropped {dropped}: {stats}"
    );
    // What reached userspace is at most what the program passed.
    let queue_dropped = stats["queue_dropped"]
        .as_u64()
        .unwrap_or_else(|| panic!("no queue_dropped in {stats}"));
    let reached = slow_path_total(&stats);
    assert!(
        reached <= passed && queue_dropped <= reached,
        "userspace saw {reached}, queue dropped {queue_dropped}, XDP passed {passed}: {stats}"
    );
    assert!(
        xdp_counter(&stats, "ack") >= u64::from(2 * HALF),
        "every known machine acknowledged by XDP: {stats}"
    );

    let rss_after = vm_rss_kib(pid);
    eprintln!(
        "flood: {flood_a} unknown + {flood_b} single-MAC frames; XDP dropped {dropped}, \
         passed {passed}; userspace saw {reached}, queue dropped {queue_dropped}; \
         VmRSS {rss_before} -> {rss_after} KiB"
    );
    // The queue holds 4096 requests at most and offers are bounded by the
    // pool (and held one second): a flood cannot grow the daemon without
    // bound.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "VmRSS grew from {rss_before} to {rss_after} KiB under the flood{}",
        lab.log()
    );

    // Operators see it where they look.
    let mut table = lab.stormboot(Side::Server);
    table.args(["stats", "--config"]).arg(&lab.config);
    let out = lab.bed.run(Side::Server, table).expect("stormboot stats");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("drop_slowpath_rate")
                && l.trim_end().ends_with(&dropped.to_string())),
        "`stormboot stats` shows the XDP drops: {text}"
    );

    // The handler falling behind: with the daemon stopped (SIGSTOP), a
    // storm's flood of new MACs piles up in its packet socket, far more than
    // the slow-path queue holds (QUEUE_CAPACITY, 4096). Resumed, the daemon
    // reads the backlog faster than it answers it, so the queue must drop
    // its oldest requests, count them, and the server must go on answering.
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    // Thirty frames a request: more than the socket buffer holds, so the
    // backlog is as long as the kernel lets it be.
    let backlog = storm(
        "02:00:00:00:00:00",
        "10.50.1.0",
        "0c:00:00:00:00:00",
        1 << 20,
        30,
    );
    let backlog = lab.bed.run(Side::Client, backlog);
    signal("-CONT");
    let backlog = report(backlog);
    // Known machines were answered by the kernel while the daemon slept.
    assert_eq!(backlog.bound, HALF, "{backlog:?}");
    let flooded = backlog.flood_sent;
    assert!(
        flooded > 2 * 4096,
        "the backlog outgrows the queue: {backlog:?}"
    );
    let overflowed = wait_for(Duration::from_secs(60), || {
        let s = lab.try_stats()?;
        (s["queue_dropped"].as_u64()? > queue_dropped).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "{flooded} requests queued at once, and the queue dropped none: {}{}",
            lab.stats(),
            lab.log()
        )
    });
    // The server still answers: a new machine gets an address from the pool.
    let lease = lab
        .run_udhcpc(&["-t", "10", "-T", "2"])
        .unwrap_or_else(|e| panic!("udhcpc after the overflow: {e}{}", lab.log()));
    let ip: std::net::Ipv4Addr = lease["ip"].parse().expect("an IPv4 address");
    assert!(
        (100..200).contains(&ip.octets()[2]),
        "not from the pool: {lease:?}"
    );
    // Once the new machine is answered, the backlog ahead of it is done.
    let after = lab.stats();
    let newly_dropped = after["queue_dropped"].as_u64().unwrap_or(0) - queue_dropped;
    eprintln!("backlog: {flooded} flood frames; the queue dropped {newly_dropped} of them");
    assert!(
        newly_dropped <= flooded
            && newly_dropped >= overflowed["queue_dropped"].as_u64().unwrap_or(0) - queue_dropped,
        "{after}"
    );
    assert_eq!(
        lab.metric("stormboot_slow_path_queue_dropped_total"),
        newly_dropped + queue_dropped,
        "/metrics shows the queue's drops"
    );
}

#[test]
fn proxy_answers_reserved_pxe_clients_from_xdp_and_never_plain_dhcp() {
    require_root();
    let mut lab = Lab::new("e2e-proxyxdp", Some(RESERVED_MAC));
    let tftp_root = fake_tftp_root(&lab);
    let config = SMALL_CONFIG
        .replace(
            "address = \"10.50.0.1\"\n",
            "address = \"10.50.0.1\"\nmode = \"proxy\"\n",
        )
        .replace(
            "hostname = \"node1\"\n",
            "hostname = \"node1\"\nprofile = \"debian\"\n",
        )
        + &format!(
            "\n[boot]\ntftp_root = \"{}\"\n\n[[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\n",
            tftp_root.display()
        );
    lab.start(&config);

    // Plain DHCP from the reserved machine: the other server's business.
    let plain = lab.run_udhcpc(&["-t", "2", "-T", "1"]);
    assert!(
        plain.is_err(),
        "stormboot answered plain DHCP in proxy mode: {plain:?}{}",
        lab.log()
    );
    let stats = lab.stats();
    assert!(xdp_counter(&stats, "pass_not_booting") >= 1, "{stats}");
    assert_eq!(
        xdp_counter(&stats, "offer") + xdp_counter(&stats, "ack"),
        0,
        "{stats}"
    );
    assert!(
        stats["slow_path_replies"]
            .as_object()
            .is_none_or(|o| o.is_empty()),
        "userspace answered plain DHCP: {stats}"
    );

    // PXE firmware's DISCOVER: the proxy OFFER comes from XDP, boot
    // information and no address. busybox udhcpc takes it and asks for it
    // on port 67, which selects a DHCP server: a proxy never answers that
    // (its ACKs are for port 4011, tests/xdp_fixtures.rs), so udhcpc binds
    // nothing, and says it selected the offer's empty address.
    let pxe = lab.run_udhcpc(&[
        "-V",
        "PXEClient:Arch:00000:UNDI:002001",
        "-x",
        "0x5d:0000",
        "-t",
        "2",
        "-T",
        "1",
    ]);
    let said = pxe.expect_err("a proxy acknowledged a REQUEST on port 67");
    assert!(
        said.contains("select for 0.0.0.0"),
        "the PXE client got no proxy OFFER: {said}{}",
        lab.log()
    );
    let stats = lab.stats();
    assert!(
        xdp_counter(&stats, "offer") >= 1
            && stats["xdp_replies"]["dhcpoffer"]
                .as_u64()
                .is_some_and(|n| n >= 1),
        "no proxy OFFER from XDP: {stats}{}",
        lab.log()
    );
    assert_eq!(xdp_counter(&stats, "ack"), 0, "{stats}");
    assert!(
        xdp_counter(&stats, "pass_other_dhcp") >= 1,
        "the REQUESTs on 67 were passed up: {stats}"
    );
    assert!(
        stats["slow_path_replies"]
            .as_object()
            .is_none_or(|o| o.is_empty()),
        "userspace answered a REQUEST on 67: {stats}"
    );
    assert!(
        stats["slow_path_outcomes"]["proxy-request-on-67"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{stats}"
    );
}
