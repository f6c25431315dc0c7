//! End-to-end tests of the userspace DHCP server: machines without a
//! reservation get addresses from the pools, renew them, keep them across
//! a reboot and a daemon restart, give them back, decline them, ask for
//! options only, and get them through a relay; the server keeps up with a
//! perfdhcp storm and survives being killed in the middle of one without
//! losing or doubling a lease; and what it acknowledges is what it stores.
//!
//! Real clients wherever one exists: ISC dhclient and dhcrelay, busybox
//! udhcpc, dhcpcd, Kea's perfdhcp. DECLINE, INFORM and a RELEASE followed
//! at once by a REQUEST, which no stock client sends on demand, come from
//! a small Python script (`PROBE`). The lease database is read with the
//! sqlite3 shell, as an operator would.
//!
//! Needs root, `cargo build -p stormboot` first (see `binary`) and the
//! packages `cargo xtask setup` installs. Each test owns its testbed,
//! scratch directory and lease database, so they run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dhcproto::v4::{Message, Opcode};
use dhcproto::{Decodable, Decoder};
use serde_json::Value;
use stormboot_testbed::perfdhcp::{parse as parse_perfdhcp, summary as perfdhcp_summary};
use stormboot_testbed::{
    env_lines, require_root, slow_path, udp_frames, wait_for, Lab, Side, CLIENT_IF,
    RELAY_DOWNSTREAM_ADDR, RELAY_DOWNSTREAM_IF, RELAY_UPSTREAM_IF, SERVER_ADDR,
};

/// The small pool most tests draw from, on the server's own link.
const POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 50, 0, 100), Ipv4Addr::new(10, 50, 0, 110));

/// A /24 with an eleven-address pool and no reservations: every client
/// here is a pool client, passed up by XDP (or read by userspace alone).
fn pool_config(dataplane: &str) -> String {
    format!(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
dataplane = "{dataplane}"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
domain = "pool.example"
lease_time = "1h"
pool = ["10.50.0.100-10.50.0.110"]
"#
    )
}

/// The pool of the perfdhcp storms: 51,200 addresses of a /16 (sb0's own
/// /24 is inside it; the daemon only needs the subnet to contain it).
const STORM_POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 50, 1, 0), Ipv4Addr::new(10, 50, 200, 255));

/// The storms' configuration: a /16 with a pool of 51,200 addresses.
fn storm_config(dataplane: &str) -> String {
    format!(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
dataplane = "{dataplane}"

[[subnet]]
cidr = "10.50.0.0/16"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
lease_time = "1h"
pool = ["10.50.1.0-10.50.200.255"]
"#
    )
}

/// perfdhcp speaks from an address on sbc0 and, as a relay would, puts it
/// in giaddr; replies come back to it on port 67.
const PERFDHCP_ADDR: &str = "10.50.0.2/24";

/// The client network behind the relay, and its pool.
const RELAY_POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 60, 0, 50), Ipv4Addr::new(10, 60, 0, 60));

const RELAY_CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

# The server's own link, where the relay is.
[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
lease_time = "1h"

# The clients' link, reached only through the relay (giaddr 10.60.0.1).
[[subnet]]
cidr = "10.60.0.0/24"
routers = ["10.60.0.1"]
dns = ["10.50.0.1"]
domain = "relayed.example"
lease_time = "1h"
pool = ["10.60.0.50-10.60.0.60"]
"#;

/// DECLINE and INFORM from UDP sockets: port 68 bound to the interface
/// (no address needed for broadcasts on Linux), the reply decoded and
/// printed as JSON.
const PROBE: &str = r#""""DHCP messages no stock client sends on demand.

usage: probe.py decline IFACE MAC      DISCOVER, REQUEST the offer, DECLINE it
       probe.py inform IFACE MAC CIADDR SERVER
       probe.py rebind IFACE MAC COUNT COUNT machines (MAC, MAC+1, ...) bind,
                                       then RELEASE and at once ask again
Prints one JSON object: the server's replies, decoded.
"""
import json
import random
import socket
import struct
import sys

COOKIE = b"\x63\x82\x53\x63"
DISCOVER, REQUEST, DECLINE, RELEASE, INFORM = 1, 3, 4, 7, 8
BROADCAST_FLAG = 0x8000
EVERYONE = ("255.255.255.255", 67)


def message(kind, xid, mac, flags=0, ciaddr="0.0.0.0", options=()):
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, 1, 6, 0, xid, 0, flags,
        socket.inet_aton(ciaddr), bytes(4), bytes(4), bytes(4),
        mac, bytes(64), bytes(128),
    )
    opts = bytes([53, 1, kind])
    for code, value in options:
        opts += bytes([code, len(value)]) + value
    # Parameter request list: mask, router, DNS, domain, lease time, server id.
    opts += bytes([55, 6, 1, 3, 6, 15, 51, 54, 255])
    return (head + COOKIE + opts).ljust(300, b"\0")


def parse(data):
    if len(data) < 240 or data[236:240] != COOKIE:
        return None
    options = {}
    i = 240
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        options[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    return {
        "op": data[0],
        "xid": struct.unpack("!I", data[4:8])[0],
        "ciaddr": socket.inet_ntoa(data[12:16]),
        "yiaddr": socket.inet_ntoa(data[16:20]),
        "type": options.get(53, b"\0")[0],
        "options": {str(code): value.hex() for code, value in options.items()},
    }


def exchange(sock, packet, dest, xid):
    """Sends `packet` (up to three times) and returns the reply to `xid`."""
    for _ in range(3):
        sock.sendto(packet, dest)
        try:
            while True:
                reply = parse(sock.recvfrom(2048)[0])
                if reply and reply["op"] == 2 and reply["xid"] == xid:
                    return reply
        except socket.timeout:
            continue
    sys.exit(f"no reply to message type {packet[242]} (xid {xid:#x})")


def client_socket(iface, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind((address, 68))
    sock.settimeout(1.0)
    return sock


def bind(sock, mac):
    """DISCOVER and REQUEST the offer: (offer, ack, options naming them).
    The broadcast flag: without an address, unicast replies would not
    reach the socket."""
    xid = random.getrandbits(32)
    offer = exchange(sock, message(DISCOVER, xid, mac, BROADCAST_FLAG), EVERYONE, xid)
    chosen = [
        (50, socket.inet_aton(offer["yiaddr"])),
        (54, bytes.fromhex(offer["options"]["54"])),
    ]
    request = message(REQUEST, xid, mac, BROADCAST_FLAG, options=chosen)
    return offer, exchange(sock, request, EVERYONE, xid), chosen


def decline(iface, mac):
    sock = client_socket(iface, "0.0.0.0")
    offer, ack, chosen = bind(sock, mac)
    sock.sendto(message(DECLINE, random.getrandbits(32), mac, options=chosen), EVERYONE)
    return {"offer": offer, "ack": ack}


def inform(iface, mac, ciaddr, server):
    sock = client_socket(iface, ciaddr)
    xid = random.getrandbits(32)
    return exchange(sock, message(INFORM, xid, mac, ciaddr=ciaddr), (server, 67), xid)


def rebind(iface, mac, count):
    """Machines that give their address back and ask for it again at once
    (INIT-REBOOT), as `dhclient -r; dhclient` does in a hurry: the server
    handles the two in one go."""
    sock = client_socket(iface, "0.0.0.0")
    machines = []
    for i in range(count):
        m = mac[:5] + bytes([mac[5] + i])
        offer, _, (requested, server) = bind(sock, m)
        ip = offer["yiaddr"]
        sock.sendto(message(RELEASE, random.getrandbits(32), m, ciaddr=ip, options=[server]), EVERYONE)
        xid = random.getrandbits(32)
        again = message(REQUEST, xid, m, BROADCAST_FLAG, options=[requested])
        reply = exchange(sock, again, EVERYONE, xid)
        machines.append({"mac": m.hex(":"), "ip": ip, "type": reply["type"], "yiaddr": reply["yiaddr"]})
    return {"machines": machines}


if __name__ == "__main__":
    command, iface, mac = sys.argv[1:4]
    mac = bytes.fromhex(mac.replace(":", ""))
    if command == "decline":
        result = decline(iface, mac)
    elif command == "rebind":
        result = rebind(iface, mac, int(sys.argv[4]))
    else:
        result = inform(iface, mac, sys.argv[4], sys.argv[5])
    print(json.dumps(result))
"#;

/// One row of the daemon's `leases` table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredLease {
    ip: Ipv4Addr,
    /// Hex, upper-case, as sqlite3's hex() gives it.
    client_id: String,
    mac: String,
    state: String,
}

/// What the pool tests ask of a lab.
trait PoolLab {
    fn replies(&self, mac: &str, note: &str) -> Vec<String>;
    fn wait_for_reply(&self, mac: &str, note: &str) -> Vec<String>;
    fn client_ip(&self, args: &[&str]);
    fn dhclient_until(&mut self, tag: &str, leases: &Path, acks: usize)
        -> BTreeMap<String, String>;
    fn dhcpcd(&self) -> BTreeMap<String, String>;
    fn sqlite(&self, sql: &str) -> String;
    fn leases(&self) -> Vec<StoredLease>;
    fn lease_of(&self, ip: Ipv4Addr) -> Option<StoredLease>;
    fn probe(&self, args: &[&str]) -> Value;
}

impl PoolLab for Lab {
    /// The daemon's userspace reply lines (`path="userspace"`) for `mac`
    /// with note `note`.
    fn replies(&self, mac: &str, note: &str) -> Vec<String> {
        self.scratch
            .read("daemon.log")
            .lines()
            .filter(|l| {
                l.contains("path=\"userspace\"")
                    && l.contains(&format!("mac={mac} "))
                    && l.contains(&format!("note=\"{note}\""))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Waits for at least one reply line `replies(mac, note)`; they are
    /// logged as the request is handled, so a client can be done first.
    fn wait_for_reply(&self, mac: &str, note: &str) -> Vec<String> {
        wait_for(Duration::from_secs(5), || {
            let lines = self.replies(mac, note);
            (!lines.is_empty()).then_some(lines)
        })
        .unwrap_or_else(|| panic!("no note=\"{note}\" line for {mac}{}", self.log()))
    }

    /// Runs `ip args...` in the client namespace.
    fn client_ip(&self, args: &[&str]) {
        let mut cmd = self.bed.command(Side::Client, "ip");
        cmd.args(args);
        self.bed
            .run(Side::Client, cmd)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// ISC dhclient on sbc0 with the lease file `leases`, kept running
    /// until it has a new lease there and has been acknowledged `acks`
    /// times: more than once means it renewed. With a lease already in the
    /// file, dhclient asks for it again (INIT-REBOOT) instead of discovering.
    fn dhclient_until(
        &mut self,
        tag: &str,
        leases: &Path,
        acks: usize,
    ) -> BTreeMap<String, String> {
        self.dhclient(
            tag,
            leases,
            acks,
            "request subnet-mask, routers, domain-name-servers, domain-name;\n",
        )
    }

    /// Runs dhcpcd once on sbc0 (IPv4 only, no ARP probe, in the
    /// foreground, exiting once bound) and returns what it gave its hook
    /// on BOUND. In a private mount namespace with fresh /run and
    /// /var/lib/dhcpcd, so that it neither finds nor leaves the host's
    /// leases, DUID or pid files; `-f /dev/null` skips the host's config
    /// and `-c` replaces the hooks, which would rewrite resolv.conf.
    fn dhcpcd(&self) -> BTreeMap<String, String> {
        let out = self.scratch.path("dhcpcd.env");
        let hook = self.scratch.write_script(
            "dhcpcd-hook.sh",
            &format!(
                "#!/bin/sh\n[ \"$reason\" = BOUND ] || exit 0\nenv > '{}'\n",
                out.display()
            ),
        );
        let inner = format!(
            "mount -t tmpfs tmpfs /var/lib/dhcpcd && mount -t tmpfs tmpfs /run && \
             exec dhcpcd -f /dev/null -c '{}' --oneshot --ipv4only --nobackground --noarp \
             --timeout 10 {CLIENT_IF}",
            hook.display()
        );
        let mut dhcpcd = self.bed.command(Side::Client, "unshare");
        dhcpcd.args(["--mount", "--", "sh", "-c", &inner]);
        let ran = self.bed.run(Side::Client, dhcpcd);
        let text = std::fs::read_to_string(&out);
        match (ran, text) {
            (Ok(_), Ok(text)) => env_lines(&text),
            (ran, text) => panic!(
                "dhcpcd got no lease: {:?} / {:?}{}",
                ran.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()),
                text,
                self.log()
            ),
        }
    }

    /// Runs `sql` on the lease database with the sqlite3 shell (read-only:
    /// the daemon may be running, WAL lets both read). Rows one a line,
    /// columns separated by `|`.
    fn sqlite(&self, sql: &str) -> String {
        let db = self.scratch.path("leases.db");
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("running sqlite3 (Debian package sqlite3)");
        assert!(
            out.status.success(),
            "sqlite3 {} {sql:?}: {}{}",
            db.display(),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every row of the lease table.
    fn leases(&self) -> Vec<StoredLease> {
        let text =
            self.sqlite("SELECT ip, hex(client_id), hex(mac), state FROM leases ORDER BY ip");
        text.lines()
            .map(|line| {
                let cols: Vec<&str> = line.split('|').collect();
                let [ip, client_id, mac, state] = cols[..] else {
                    panic!("unexpected sqlite3 row {line:?}");
                };
                let ip: u32 = ip.parse().unwrap_or_else(|e| panic!("ip {ip:?}: {e}"));
                StoredLease {
                    ip: Ipv4Addr::from(ip),
                    client_id: client_id.to_owned(),
                    mac: mac.to_owned(),
                    state: state.to_owned(),
                }
            })
            .collect()
    }

    /// The stored lease of `ip`.
    fn lease_of(&self, ip: Ipv4Addr) -> Option<StoredLease> {
        self.leases().into_iter().find(|l| l.ip == ip)
    }

    /// Runs `PROBE` with `args` in the client namespace; its JSON output.
    fn probe(&self, args: &[&str]) -> Value {
        let probe = self.scratch.write("probe.py", PROBE);
        let mut cmd = self.bed.command(Side::Client, "python3");
        cmd.arg(&probe).args(args);
        let out = self
            .bed
            .run(Side::Client, cmd)
            .unwrap_or_else(|e| panic!("probe.py {args:?}: {e:#}{}", self.log()));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe.py printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// A MAC as the lease table's hex(mac) prints it.
fn mac_hex(mac: &str) -> String {
    mac.replace(':', "").to_uppercase()
}

fn in_range(ip: Ipv4Addr, (first, last): (Ipv4Addr, Ipv4Addr)) -> bool {
    (u32::from(first)..=u32::from(last)).contains(&u32::from(ip))
}

/// `key` of a client's lease as an address; panics naming what it got.
fn address(lease: &BTreeMap<String, String>, key: &str, lab: &Lab) -> Ipv4Addr {
    lease
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no address {key} in {lease:?}{}", lab.log()))
}

fn slow_path_replies(stats: &Value, message_type: &str) -> u64 {
    stats["slow_path_replies"][message_type]
        .as_u64()
        .unwrap_or(0)
}

/// Asserts `lease` (client variables, udhcpc's or dhcpcd's names) carries
/// `expect`.
fn assert_lease(lease: &BTreeMap<String, String>, expect: &[(&str, &str)], who: &str, lab: &Lab) {
    for (key, value) in expect {
        assert_eq!(
            lease.get(*key).map(String::as_str),
            Some(*value),
            "{key} in {who}'s lease {lease:?}{}",
            lab.log()
        );
    }
}

#[test]
fn dhclient_lease_renew_release_from_pool() {
    require_root();
    const DHCLIENT_MAC: &str = "02:50:00:00:01:01";
    let mut lab = Lab::new("pool-dhclient", Some(DHCLIENT_MAC));
    // Renewal after 2 s, so that dhclient renews while the test watches;
    // the lease outlasts the test.
    lab.start(&pool_config("xdp").replace(
        "lease_time = \"1h\"\n",
        "lease_time = \"60s\"\nrenew_time = \"2s\"\n",
    ));

    // dhclient resolves the lease file's realpath, so it must exist.
    let leases = lab.scratch.write("dhclient.leases", "");
    // Bound, then renewed: a REQUEST unicast from the address (RENEWING,
    // RFC 2131 4.4.5), answered at that address.
    let lease = lab.dhclient_until("bind", &leases, 2);
    let ip = address(&lease, "fixed-address", &lab);
    let said = lab.scratch.read("dhclient-bind.log");
    for line in [
        format!("DHCPREQUEST for {ip} on {CLIENT_IF} to {SERVER_ADDR} port 67"),
        format!("DHCPACK of {ip} from {SERVER_ADDR}"),
    ] {
        assert!(
            said.contains(&line),
            "no {line:?} in dhclient's log:\n{said}{}",
            lab.log()
        );
    }
    assert!(in_range(ip, POOL), "{ip} is outside the pool{}", lab.log());
    for (key, value) in [
        ("option subnet-mask", "255.255.255.0"),
        ("option routers", "10.50.0.1"),
        ("option domain-name-servers", "10.50.0.1"),
        ("option domain-name", "pool.example"),
        ("option dhcp-lease-time", "60"),
        ("option dhcp-renewal-time", "2"),
        ("option dhcp-server-identifier", SERVER_ADDR),
    ] {
        assert_eq!(
            lease.get(key).map(String::as_str),
            Some(value),
            "{key} in dhclient's lease {lease:?}{}",
            lab.log()
        );
    }
    let stored = lab.lease_of(ip);
    assert!(
        stored
            .as_ref()
            .is_some_and(|l| l.state == "bound" && l.mac == mac_hex(DHCLIENT_MAC)),
        "{ip} not bound to {DHCLIENT_MAC} in leases.db: {stored:?}{}",
        lab.log()
    );
    let discovers = slow_path(&lab.stats(), "dhcpdiscover");
    assert!(discovers >= 1, "no DISCOVER reached userspace{}", lab.log());

    // A reboot: dhclient starts again with its lease file and asks for the
    // same address (INIT-REBOOT, a REQUEST without DISCOVER).
    let again = lab.dhclient_until("reboot", &leases, 1);
    assert_eq!(
        address(&again, "fixed-address", &lab),
        ip,
        "the rebooted client lost its address: {again:?}{}",
        lab.log()
    );
    let acks = lab.wait_for_reply(DHCLIENT_MAC, "ack");
    assert!(
        acks.len() >= 3 && acks.iter().all(|l| l.contains(&format!("ip={ip} "))),
        "expected ACKs of {ip} to bind, renew and reboot: {acks:#?}{}",
        lab.log()
    );
    assert_eq!(
        slow_path(&lab.stats(), "dhcpdiscover"),
        discovers,
        "the reboot sent a DISCOVER instead of asking for {ip}{}",
        lab.log()
    );

    // While it holds the address, another machine asking for exactly that
    // one gets another.
    lab.bed.set_client_mac("02:50:00:00:01:02").unwrap();
    let other = lab
        .run_udhcpc(&["-r", &ip.to_string()])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let other_ip = address(&other, "ip", &lab);
    assert!(
        other_ip != ip && in_range(other_ip, POOL),
        "a second machine asking for the held {ip} got {other_ip}{}",
        lab.log()
    );

    // RELEASE, from the machine holding it (and its address, for the
    // unicast); then a third machine asking for it gets exactly it.
    lab.bed.set_client_mac(DHCLIENT_MAC).unwrap();
    lab.dhclient_release(&leases);
    lab.wait_for_reply(DHCLIENT_MAC, "released");
    const THIRD_MAC: &str = "02:50:00:00:01:03";
    lab.bed.set_client_mac(THIRD_MAC).unwrap();
    let third = lab
        .run_udhcpc(&["-r", &ip.to_string()])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    assert_eq!(
        address(&third, "ip", &lab),
        ip,
        "the released address was not given to the next machine asking: {third:?}{}",
        lab.log()
    );
    let stored = lab.lease_of(ip);
    assert!(
        stored
            .as_ref()
            .is_some_and(|l| l.state == "bound" && l.mac == mac_hex(THIRD_MAC)),
        "{ip} not bound to {THIRD_MAC} in leases.db: {stored:?}{}",
        lab.log()
    );
}

#[test]
fn udhcpc_and_dhcpcd_get_pool_addresses() {
    require_root();
    const UDHCPC_MAC: &str = "02:50:00:00:02:01";
    const DHCPCD_MAC: &str = "02:50:00:00:02:02";
    let mut lab = Lab::new("pool-clients", Some(UDHCPC_MAC));
    lab.start(&pool_config("xdp"));

    let udhcpc = lab
        .run_udhcpc(&[])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let udhcpc_ip = address(&udhcpc, "ip", &lab);
    assert!(
        in_range(udhcpc_ip, POOL),
        "udhcpc got {udhcpc_ip}{}",
        lab.log()
    );
    assert_lease(
        &udhcpc,
        &[
            ("subnet", "255.255.255.0"),
            ("router", "10.50.0.1"),
            ("dns", "10.50.0.1"),
            ("domain", "pool.example"),
            ("lease", "3600"),
            ("serverid", SERVER_ADDR),
        ],
        "udhcpc",
        &lab,
    );

    lab.bed.set_client_mac(DHCPCD_MAC).unwrap();
    let dhcpcd = lab.dhcpcd();
    let dhcpcd_ip = address(&dhcpcd, "new_ip_address", &lab);
    assert!(
        in_range(dhcpcd_ip, POOL) && dhcpcd_ip != udhcpc_ip,
        "dhcpcd got {dhcpcd_ip}, udhcpc had {udhcpc_ip}{}",
        lab.log()
    );
    assert_lease(
        &dhcpcd,
        &[
            ("new_subnet_mask", "255.255.255.0"),
            ("new_routers", "10.50.0.1"),
            ("new_domain_name_servers", "10.50.0.1"),
            ("new_domain_name", "pool.example"),
            ("new_dhcp_lease_time", "3600"),
            ("new_dhcp_server_identifier", SERVER_ADDR),
        ],
        "dhcpcd",
        &lab,
    );

    // Both leases are durable, each with its machine.
    let leases = lab.leases();
    for (ip, mac) in [(udhcpc_ip, UDHCPC_MAC), (dhcpcd_ip, DHCPCD_MAC)] {
        assert!(
            leases
                .iter()
                .any(|l| l.ip == ip && l.mac == mac_hex(mac) && l.state == "bound"),
            "{ip} not bound to {mac} in leases.db: {leases:?}{}",
            lab.log()
        );
    }
    let stats = lab.stats();
    assert!(
        slow_path_replies(&stats, "dhcpack") >= 2,
        "userspace sent fewer than two ACKs: {stats}{}",
        lab.log()
    );
}

#[test]
fn relayed_client_gets_address_from_the_relays_subnet() {
    require_root();
    let mut lab = Lab::with_relay("pool-relay");
    lab.start(RELAY_CONFIG);
    let client_mac = lab.bed.client_mac().unwrap();

    // What crosses the relay's server side, to see option 82 both ways.
    let mut tcpdump = Command::new("tcpdump");
    tcpdump
        .args([
            "-i",
            RELAY_UPSTREAM_IF,
            "-n",
            "--immediate-mode",
            "-U",
            "-w",
        ])
        .arg(lab.scratch.path("relay.pcap"))
        .args(["udp", "port", "67"])
        .stdout(Stdio::null())
        .stderr(lab.scratch.log_file("tcpdump.log"));
    // -a: add option 82 (circuit id = the client's interface) to requests
    // and strip it from replies. --no-pid: the namespaces share /run.
    let mut dhcrelay = Command::new("dhcrelay");
    dhcrelay
        .args(["-d", "-4", "-a", "--no-pid", "-iu", RELAY_UPSTREAM_IF])
        .args(["-id", RELAY_DOWNSTREAM_IF, SERVER_ADDR])
        .stdout(Stdio::null())
        .stderr(lab.scratch.log_file("dhcrelay.log"));
    let relay = lab.relay.as_mut().expect("relay namespace");
    let tcpdump = relay.spawn(tcpdump).expect("spawning tcpdump");
    relay.spawn(dhcrelay).expect("spawning dhcrelay");
    let relay_ready = format!("Listening on LPF/{RELAY_DOWNSTREAM_IF}");
    for (file, ready) in [
        ("tcpdump.log", "listening on"),
        ("dhcrelay.log", relay_ready.as_str()),
    ] {
        if wait_for(Duration::from_secs(5), || {
            lab.scratch.read(file).contains(ready).then_some(())
        })
        .is_none()
        {
            panic!("no {ready:?} in {file}:\n{}", lab.scratch.read(file));
        }
    }

    let lease = lab.run_udhcpc(&[]).unwrap_or_else(|e| {
        panic!(
            "udhcpc behind the relay got no lease: {e}\n--- dhcrelay ---\n{}{}",
            lab.scratch.read("dhcrelay.log"),
            lab.log()
        )
    });
    let ip = address(&lease, "ip", &lab);
    assert!(
        in_range(ip, RELAY_POOL),
        "relayed client got {ip}, not an address of the relay's subnet{}",
        lab.log()
    );
    assert_lease(
        &lease,
        &[
            ("subnet", "255.255.255.0"),
            ("router", RELAY_DOWNSTREAM_ADDR),
            ("domain", "relayed.example"),
            ("serverid", SERVER_ADDR),
        ],
        "the relayed udhcpc",
        &lab,
    );
    lab.wait_for_reply(&client_mac, "ack");
    let relayed = lab.scratch.read("dhcrelay.log");
    assert!(
        relayed.contains(&format!("Forwarded BOOTREPLY for {client_mac}")),
        "the replies did not come through the relay:\n{relayed}"
    );

    // Option 82 reached the server and came back, byte for byte, in the
    // OFFER and the ACK (RFC 3046 2.2), sent to the relay's port 67.
    let server: Ipv4Addr = SERVER_ADDR.parse().unwrap();
    let pcap = lab.scratch.path("relay.pcap");
    let captured = wait_for(Duration::from_secs(5), || {
        // The header is written before "listening on", but be sure.
        let bytes = std::fs::read(&pcap).ok().filter(|b| b.len() >= 24)?;
        let frames = udp_frames(&bytes);
        (frames.iter().filter(|f| f.src == server).count() >= 2).then_some(())
    });
    lab.relay
        .as_mut()
        .expect("relay namespace")
        .stop(tcpdump)
        .expect("stopping tcpdump");
    let frames = udp_frames(&std::fs::read(&pcap).expect("reading relay.pcap"));
    assert!(
        captured.is_some(),
        "tcpdump captured no replies from {server}: {} frames\n{}",
        frames.len(),
        lab.scratch.read("tcpdump.log")
    );
    let giaddr: Ipv4Addr = RELAY_DOWNSTREAM_ADDR.parse().unwrap();
    let mut agent_info = BTreeMap::new();
    for f in frames.iter().filter(|f| f.dport == 67) {
        let Some(msg) = decode_bootp(&f.payload) else {
            continue;
        };
        if msg.opcode() == Opcode::BootRequest && msg.giaddr() == giaddr {
            let raw = raw_option(&f.payload, 82).unwrap_or_else(|| {
                panic!("dhcrelay -a forwarded a request without option 82: {msg:?}")
            });
            agent_info.insert(msg.xid(), raw.to_vec());
        }
    }
    let mut echoed = Vec::new();
    for f in frames.iter().filter(|f| f.src == server) {
        let Some(msg) = decode_bootp(&f.payload) else {
            continue;
        };
        let sent = agent_info.get(&msg.xid());
        assert!(
            sent.is_some(),
            "a reply to no relayed request: {msg:?}{}",
            lab.log()
        );
        assert_eq!(
            (f.dst, f.dport),
            (giaddr, 67),
            "a reply not addressed to the relay: {msg:?}{}",
            lab.log()
        );
        assert_eq!(
            raw_option(&f.payload, 82),
            sent.map(Vec::as_slice),
            "option 82 not echoed as the relay sent it in {:?}{}",
            msg.opts().msg_type(),
            lab.log()
        );
        echoed.push(msg.opts().msg_type());
    }
    assert!(
        echoed.len() >= 2,
        "expected an OFFER and an ACK through the relay, captured {echoed:?}"
    );
}

#[test]
fn decline_quarantines_and_inform_gets_options() {
    require_root();
    const PROBE_MAC: &str = "02:50:00:00:04:01";
    const INFORM_MAC: &str = "02:50:00:00:04:02";
    const STATIC_ADDR: &str = "10.50.0.77";
    let mut lab = Lab::new("pool-decline", None);
    lab.start(&pool_config("xdp"));
    // DISCOVER, REQUEST, ACK, then DECLINE: the address is in use elsewhere.
    let declined = lab.probe(&["decline", CLIENT_IF, PROBE_MAC]);
    let offered = declined["offer"]["yiaddr"].as_str().unwrap_or_default();
    assert_eq!(
        declined["ack"]["type"],
        5,
        "no ACK: {declined}{}",
        lab.log()
    );
    assert_eq!(declined["ack"]["yiaddr"], offered, "{declined}");
    let ip: Ipv4Addr = offered
        .parse()
        .unwrap_or_else(|_| panic!("no offer: {declined}{}", lab.log()));
    assert!(in_range(ip, POOL), "offered {ip}{}", lab.log());
    lab.wait_for_reply(PROBE_MAC, "declined");
    let stored = lab.lease_of(ip);
    assert!(
        stored.as_ref().is_some_and(|l| l.state == "declined"),
        "{ip} not quarantined in leases.db: {stored:?}{}",
        lab.log()
    );

    // Quarantined: a machine asking for exactly that address gets another.
    let other = lab
        .run_udhcpc(&["-r", offered])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let other_ip = address(&other, "ip", &lab);
    assert!(
        other_ip != ip && in_range(other_ip, POOL),
        "the declined {ip} was handed out again: {other:?}{}",
        lab.log()
    );

    // INFORM from a statically configured machine: configuration, unicast
    // to its address, and no lease (RFC 2131 4.3.5).
    lab.client_ip(&[
        "addr",
        "add",
        &format!("{STATIC_ADDR}/24"),
        "dev",
        CLIENT_IF,
    ]);
    let ack = lab.probe(&["inform", CLIENT_IF, INFORM_MAC, STATIC_ADDR, SERVER_ADDR]);
    assert_eq!(
        ack["type"],
        5,
        "INFORM not acknowledged: {ack}{}",
        lab.log()
    );
    assert_eq!(ack["yiaddr"], "0.0.0.0", "INFORM got an address: {ack}");
    assert_eq!(ack["ciaddr"], STATIC_ADDR, "{ack}");
    let options = &ack["options"];
    for (code, hex) in [
        ("1", "ffffff00".to_owned()),
        ("3", "0a320001".to_owned()),
        ("6", "0a320001".to_owned()),
        ("15", hex_bytes(b"pool.example")),
        ("54", "0a320001".to_owned()),
    ] {
        assert_eq!(options[code], hex.as_str(), "option {code} in {ack}");
    }
    for code in ["51", "58", "59"] {
        assert!(
            options.get(code).is_none(),
            "option {code} (lease times) in an ACK to INFORM: {ack}"
        );
    }
    lab.wait_for_reply(INFORM_MAC, "inform");
    let leases = lab.leases();
    assert!(
        leases
            .iter()
            .all(|l| l.ip != STATIC_ADDR.parse::<Ipv4Addr>().unwrap()
                && l.mac != mac_hex(INFORM_MAC)),
        "INFORM left a lease: {leases:?}{}",
        lab.log()
    );
    let stats = lab.stats();
    for kind in ["dhcpdecline", "dhcpinform"] {
        assert_eq!(slow_path(&stats, kind), 1, "{kind}: {stats}{}", lab.log());
    }
}

/// A perfdhcp storm of full DORA exchanges from sbc0 at `rate` per second
/// for `seconds`, `clients` distinct MACs from `base_mac` on, each used
/// once; waits a second after the last for late replies. `-u` counts an
/// address acknowledged twice; `-x l` lists the acknowledged addresses.
fn perfdhcp(lab: &Lab, rate: u32, seconds: u32, clients: u32, base_mac: &str) -> Command {
    let mut cmd = lab.bed.command(Side::Client, "perfdhcp");
    cmd.args(["-4", "-l", CLIENT_IF, "-u", "-x", "l", "-W", "1000000"])
        .args(["-r", &rate.to_string(), "-p", &seconds.to_string()])
        .args(["-R", &clients.to_string(), "-b", &format!("mac={base_mac}")])
        .arg(SERVER_ADDR);
    cmd
}

#[test]
fn perfdhcp_pool_storm_has_under_one_percent_drops() {
    require_root();
    let _alone = storm_lock();
    // One after the other, not in parallel: each storm is measured alone.
    // Userspace alone first (every frame read from the packet socket),
    // then with XDP attached and passing the unknown MACs up.
    storm_with_under_one_percent_drops("pool-perf-user", "userspace", "02:5a:00:00:00:00");
    storm_with_under_one_percent_drops("pool-perf-xdp", "xdp", "02:5b:00:00:00:00");
}

/// 5,000 machines, 500 a second for 10 s, each doing DORA once, against a
/// fresh daemon with `dataplane`: under 1% lost in each exchange, every
/// ACK a stored lease, no address given twice.
fn storm_with_under_one_percent_drops(name: &str, dataplane: &str, base_mac: &str) {
    const RATE: u32 = 500;
    const SECONDS: u32 = 10;
    let mut lab = Lab::new(name, None);
    lab.start(&storm_config(dataplane));
    lab.client_ip(&["addr", "add", PERFDHCP_ADDR, "dev", CLIENT_IF]);

    let started = Instant::now();
    let out = perfdhcp(&lab, RATE, SECONDS, RATE * SECONDS, base_mac)
        .output()
        .expect("running perfdhcp (Debian package kea-admin)");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = parse_perfdhcp(&text);
    let stats = lab.stats();
    eprintln!(
        "perfdhcp against the {dataplane} dataplane ({RATE}/s for {SECONDS} s, ran \
         {elapsed:.1?}, {}):\n{}\nstore: {} transactions for {} commits; xdp: {}\n",
        out.status,
        perfdhcp_summary(&text),
        stats["store_transactions"],
        stats["store_commits"],
        stats["xdp"],
    );
    let context = || {
        format!(
            "\n--- perfdhcp ---\n{}\n{}{}",
            perfdhcp_summary(&text),
            String::from_utf8_lossy(&out.stderr),
            lab.log()
        )
    };
    // Most of the requested exchanges were started, or the storm measured
    // perfdhcp rather than the server.
    let wanted = u64::from(RATE * SECONDS);
    for (name, x) in [
        ("DISCOVER-OFFER", report.discover_offer),
        ("REQUEST-ACK", report.request_ack),
    ] {
        assert!(
            x.sent * 10 >= wanted * 9 || name == "REQUEST-ACK",
            "{name}: only {} of {wanted} sent{}",
            x.sent,
            context()
        );
        assert!(
            x.drops * 100 < x.sent,
            "{name}: {} of {} dropped (1% allowed){}",
            x.drops,
            x.sent,
            context()
        );
        assert_eq!(
            x.non_unique,
            0,
            "{name}: an address given twice{}",
            context()
        );
    }
    assert!(
        report.request_ack.sent * 10 >= report.discover_offer.sent * 9,
        "too few REQUESTs followed the OFFERs{}",
        context()
    );

    // Every ACK is a durable lease, each address once, in the pool.
    let leases = lab.leases();
    let bound: BTreeSet<Ipv4Addr> = leases
        .iter()
        .filter(|l| l.state == "bound")
        .map(|l| l.ip)
        .collect();
    assert!(
        bound.len() as u64 >= report.request_ack.received,
        "{} bound leases stored for {} ACKs{}",
        bound.len(),
        report.request_ack.received,
        context()
    );
    assert!(
        leases.iter().all(|l| in_range(l.ip, STORM_POOL)),
        "a stored lease outside the pool{}",
        context()
    );
    if dataplane == "xdp" {
        // Every DISCOVER and REQUEST went through the program and up.
        let passed = stats["xdp"]["pass_unknown_mac"].as_u64().unwrap_or(0);
        assert!(
            passed >= report.discover_offer.sent + report.request_ack.sent,
            "XDP passed up {passed} requests: {stats}{}",
            context()
        );
    }
    assert_eq!(
        stats["queue_dropped"],
        0,
        "the daemon dropped requests from its queue: {stats}{}",
        context()
    );
}

#[test]
fn crash_during_storm_keeps_every_acked_lease() {
    require_root();
    let _alone = storm_lock();
    let mut lab = Lab::new("pool-crash", None);
    lab.start(&storm_config("userspace"));
    lab.client_ip(&["addr", "add", PERFDHCP_ADDR, "dev", CLIENT_IF]);

    // Distinct clients, each used once, so that -u's "non unique" means an
    // address acknowledged to two machines, before and after the crash.
    let mut storm = perfdhcp(&lab, 500, 6, 100_000, "02:c5:00:00:00:00");
    storm
        .stdout(lab.scratch.log_file("perfdhcp.log"))
        .stderr(Stdio::null());
    let storm = lab
        .bed
        .spawn(Side::Client, storm)
        .expect("spawning perfdhcp (Debian package kea-admin)");
    // SIGKILL in the middle of the storm, with requests in flight and
    // commits queued, once a few hundred leases were acknowledged.
    let acked_before = wait_for(Duration::from_secs(10), || {
        let acks = slow_path_replies(&lab.try_stats()?, "dhcpack");
        (acks >= 500).then_some(acks)
    })
    .unwrap_or_else(|| panic!("perfdhcp got no ACKs{}", lab.log()));
    lab.crash_daemon();
    lab.respawn();
    let reopened = lab
        .scratch
        .read("daemon.log")
        .lines()
        .filter(|l| l.contains("lease store opened"))
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no second \"lease store opened\"{}", lab.log()));

    let finished = lab.bed.wait(storm, Duration::from_secs(20)).unwrap();
    let text = lab.scratch.read("perfdhcp.log");
    assert!(
        finished.is_some(),
        "perfdhcp still running after 20 s:\n{text}"
    );
    let report = parse_perfdhcp(&text);
    eprintln!(
        "perfdhcp across a crash ({acked_before} ACKs before SIGKILL; after restart: \
         {reopened}):\n{}\n",
        perfdhcp_summary(&text)
    );
    let context = || {
        format!(
            "\n--- perfdhcp ---\n{}{}",
            perfdhcp_summary(&text),
            lab.log()
        )
    };
    assert_eq!(
        report.request_ack.non_unique,
        0,
        "an address acknowledged to two machines{}",
        context()
    );
    assert!(
        report.acked.len() as u64 >= acked_before,
        "perfdhcp lists {} acknowledged addresses, the daemon had sent {acked_before} ACKs{}",
        report.acked.len(),
        context()
    );

    // The file survived: intact, and holding every lease acknowledged,
    // before the crash and after.
    assert_eq!(
        lab.sqlite("PRAGMA integrity_check").trim(),
        "ok",
        "leases.db damaged{}",
        context()
    );
    let leases = lab.leases();
    assert!(!leases.is_empty(), "no leases after the crash{}", context());
    assert!(
        leases.iter().all(|l| in_range(l.ip, STORM_POOL)),
        "a stored lease outside the pool{}",
        context()
    );
    let bound: BTreeSet<Ipv4Addr> = leases
        .iter()
        .filter(|l| l.state == "bound")
        .map(|l| l.ip)
        .collect();
    let lost: Vec<&Ipv4Addr> = report
        .acked
        .iter()
        .filter(|ip| !bound.contains(ip))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged leases are not in leases.db, e.g. {:?}{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        context()
    );
    let mut per_client: BTreeMap<&str, Vec<Ipv4Addr>> = BTreeMap::new();
    for l in leases.iter().filter(|l| l.state == "bound") {
        per_client.entry(&l.client_id).or_default().push(l.ip);
    }
    let doubled: Vec<_> = per_client.iter().filter(|(_, ips)| ips.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "clients bound to several addresses: {doubled:?}{}",
        context()
    );

    // A new machine after the restart gets an address nobody holds.
    let fresh = lab.scratch.write("fresh.leases", "");
    let lease = lab.dhclient_until("fresh", &fresh, 1);
    let context = || {
        format!(
            "\n--- perfdhcp ---\n{}{}",
            perfdhcp_summary(&text),
            lab.log()
        )
    };
    let ip = address(&lease, "fixed-address", &lab);
    assert!(
        in_range(ip, STORM_POOL) && !bound.contains(&ip),
        "the new machine got {ip}, {}{}",
        if bound.contains(&ip) {
            "already bound to another"
        } else {
            "outside the pool"
        },
        context()
    );
}

#[test]
fn restart_keeps_the_same_address() {
    require_root();
    const FIRST_MAC: &str = "02:50:00:00:07:01";
    const MACHINE_MAC: &str = "02:50:00:00:07:02";
    let mut lab = Lab::new("pool-restart", Some(FIRST_MAC));
    lab.start(&pool_config("xdp"));

    // Another machine first, so that the address under test is not simply
    // the pool's lowest, which a server that forgot everything would give.
    let first = lab
        .run_udhcpc(&[])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let first_ip = address(&first, "ip", &lab);
    lab.bed.set_client_mac(MACHINE_MAC).unwrap();
    let before = lab.scratch.write("before.leases", "");
    let lease = lab.dhclient_until("before", &before, 1);
    let ip = address(&lease, "fixed-address", &lab);
    assert!(
        in_range(ip, POOL) && ip != first_ip,
        "got {ip} after {first_ip}{}",
        lab.log()
    );

    lab.stop_daemon();
    lab.respawn();
    let reopened = lab
        .scratch
        .read("daemon.log")
        .lines()
        .filter(|l| l.contains("lease store opened"))
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        reopened.contains("leases=2"),
        "the restarted daemon did not load both leases: {reopened:?}{}",
        lab.log()
    );

    // Same machine, no memory of its lease (new lease file, address
    // removed): it DISCOVERs, and is offered and given its address again.
    lab.client_ip(&["addr", "flush", "dev", CLIENT_IF]);
    let after = lab.scratch.write("after.leases", "");
    let again = lab.dhclient_until("after", &after, 1);
    assert_eq!(
        address(&again, "fixed-address", &lab),
        ip,
        "the machine's address changed across the restart: {again:?}{}",
        lab.log()
    );
    let stats = lab.stats();
    assert!(
        slow_path(&stats, "dhcpdiscover") >= 1,
        "the machine did not DISCOVER after the restart: {stats}{}",
        lab.log()
    );
    let offers = lab.replies(MACHINE_MAC, "offer");
    assert!(
        offers.len() >= 2 && offers.iter().all(|l| l.contains(&format!("ip={ip} "))),
        "expected offers of {ip} before and after the restart: {offers:#?}{}",
        lab.log()
    );
}

#[test]
fn release_and_request_at_once_stay_stored_in_order() {
    require_root();
    const MACHINES: usize = 10;
    let mut lab = Lab::new("pool-order", None);
    lab.start(&pool_config("xdp"));

    // Ten machines bind, then each RELEASEs and at once asks for its
    // address again (INIT-REBOOT). The server acknowledges each: in its
    // memory, ten leases, and one address of the eleven still free.
    let count = MACHINES.to_string();
    let report = lab.probe(&["rebind", CLIENT_IF, "02:50:00:00:08:00", &count]);
    let machines = report["machines"].as_array().cloned().unwrap_or_default();
    assert_eq!(machines.len(), MACHINES, "{report}{}", lab.log());
    let mut held = BTreeMap::new();
    for m in &machines {
        assert_eq!(m["type"], 5, "not acknowledged again: {m}{}", lab.log());
        assert_eq!(m["yiaddr"], m["ip"], "{m}");
        let ip: Ipv4Addr = m["ip"].as_str().unwrap_or_default().parse().unwrap();
        held.insert(ip, m["mac"].as_str().unwrap_or_default().to_owned());
    }

    // What was acknowledged must be what is stored: the release and the
    // new ACK reach the file in the order they were decided.
    lab.stop_daemon();
    let stored = lab.leases();
    let missing: Vec<String> = held
        .iter()
        .filter(|(ip, mac)| {
            !stored
                .iter()
                .any(|l| l.ip == **ip && l.state == "bound" && l.mac == mac_hex(mac))
        })
        .map(|(ip, mac)| format!("{ip} ({mac})"))
        .collect();
    lab.respawn();
    // And so a new machine after the restart gets the one free address,
    // not one that a machine still holds.
    lab.bed.set_client_mac("02:50:00:00:08:ff").unwrap();
    let new = lab
        .run_udhcpc(&[])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    let new_ip = address(&new, "ip", &lab);
    assert!(
        missing.is_empty() && !held.contains_key(&new_ip),
        "acknowledged leases missing from leases.db after a clean stop: {missing:?}; \
         after the restart a new machine got {new_ip}{}\n--- leases.db ---\n{stored:#?}{}",
        held.get(&new_ip)
            .map(|mac| format!(", which {mac} holds"))
            .unwrap_or_default(),
        lab.log()
    );
}

fn decode_bootp(payload: &[u8]) -> Option<Message> {
    Message::decode(&mut Decoder::new(payload)).ok()
}

/// The bytes of option `code` (code and length included) in a BOOTP
/// payload, as sent: dhcproto's decoding would hide differences in how
/// option 82 was written.
fn raw_option(payload: &[u8], code: u8) -> Option<&[u8]> {
    if payload.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut at = 240;
    loop {
        match *payload.get(at)? {
            255 => return None,
            0 => at += 1,
            c => {
                let end = at + 2 + usize::from(*payload.get(at + 1)?);
                if c == code {
                    return payload.get(at..end);
                }
                at = end;
            }
        }
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The perfdhcp storms run one at a time: two storms and two daemons on a
/// 2-core machine would measure the machine, not the server.
fn storm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
