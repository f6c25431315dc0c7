//! End-to-end tests of the OMAPI listener with ISC's own client (omshell,
//! running Foreman smart-proxy's add and delete scripts), pypureomapi
//! (MAAS 3.0-3.5's client) and raw bad clients, against the real daemon
//! in a network namespace; the machine an OMAPI host describes is then
//! answered by the XDP program (busybox udhcpc), and the exported files
//! are checked with ISC dhcpd's own parser.
//!
//! Needs root, omshell and dhcpd (isc-dhcp-server), python3-pypureomapi,
//! and `cargo build -p stormboot` first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use stormboot::omapi::auth::{seal, Algorithm, Key};
use stormboot::omapi::wire::{self, Message};
use stormboot_testbed::{require_root, slow_path_total, Lab, Side};

/// The machine Foreman adds: sbc0's MAC.
const MAC: &str = "52:54:00:12:34:56";
const IP: &str = "10.50.0.10";
/// `stormboot-test-key-0123456789ab`, base64.
const SECRET: &str = "c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg==";
const WRONG: &str = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC0wMTIzNDU=";

const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[api]
token = "omapi-test-token"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
domain = "lab.example"
pool = ["10.50.0.100-10.50.0.110"]
lease_time = "1h"

[omapi]
listen = "127.0.0.1:7911"
conf_export = "dhcpd.conf"
leases_export = "dhcpd.leases"

[[omapi.key]]
name = "omkey"
algorithm = "hmac-md5"
secret = "c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg=="

[[omapi.key]]
name = "shakey"
algorithm = "hmac-sha256"
secret = "c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg=="
"#;

/// Options for udhcpc: three tries, a second apart.
const QUICK: &[&str] = &["-t", "3", "-T", "1"];

fn lab(name: &str) -> Lab {
    require_root();
    for tool in ["/usr/bin/omshell", "/usr/sbin/dhcpd"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install isc-dhcp-server (cargo xtask setup)"
        );
    }
    let mut lab = Lab::new(name, Some(MAC));
    lab.start(CONFIG);
    lab
}

/// Runs omshell in the server namespace on `script`; its whole output.
fn omshell(lab: &Lab, script: &str) -> String {
    let mut cmd = lab.bed.command(Side::Server, "/usr/bin/omshell");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning omshell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("omshell");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Foreman smart-proxy's add_record script, as it writes it.
fn foreman_add(name: &str, ip: &str, mac: &str) -> String {
    format!(
        "key omkey \"{SECRET}\"\nserver 127.0.0.1\nport 7911\nconnect\nnew host\n\
         set name = \"{name}\"\nset ip-address = {ip}\nset hardware-address = {mac}\n\
         set hardware-type = 1\n\
         set statements = \"filename = \\\"pxelinux.0\\\"; next-server = 0a:32:00:07; option host-name = \\\"{name}\\\";\"\n\
         create\n"
    )
}

/// Foreman's del_record script.
fn foreman_del(mac: &str) -> String {
    format!(
        "key omkey \"{SECRET}\"\nserver 127.0.0.1\nport 7911\nconnect\nnew host\n\
         set hardware-address = {mac}\nopen\nremove\n"
    )
}

/// Foreman's failure test on omshell's output.
fn foreman_failed(out: &str) -> bool {
    ["can't", "no more", "not connected", "Syntax error"]
        .iter()
        .any(|w| out.contains(w))
}

fn reservations(lab: &Lab) -> Value {
    let mut cmd = lab.stormboot(Side::Server);
    cmd.args(["reservation", "list", "--json", "--config"])
        .arg(&lab.config);
    let out = lab.bed.run(Side::Server, cmd).expect("reservation list");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reservation list: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn reserved(lab: &Lab, mac: &str) -> Option<Value> {
    let list = reservations(lab);
    let items = list
        .as_array()
        .cloned()
        .or_else(|| list["items"].as_array().cloned())
        .unwrap_or_default();
    items.into_iter().find(|r| r["mac"] == mac)
}

/// `dhcpd -t` and `dhcpd -T` on the exported files: both parse, no errors.
fn dhcpd_parses(lab: &Lab) -> String {
    let conf = lab.scratch.path("dhcpd.conf");
    let leases = lab.scratch.path("dhcpd.leases");
    let t = Command::new("/usr/sbin/dhcpd")
        .args(["-4", "-t", "-cf"])
        .arg(&conf)
        .output()
        .unwrap();
    let t_out = String::from_utf8_lossy(&t.stderr).to_string();
    assert!(
        t.status.success(),
        "dhcpd -t rejects the exported conf:\n{t_out}\n{}",
        lab.scratch.read("dhcpd.conf")
    );
    // -T needs a pid file path it may not write to in the default place.
    let big_t = Command::new("/usr/sbin/dhcpd")
        .args(["-4", "-T", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(lab.scratch.path("dhcpd.pid"))
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&big_t.stdout),
        String::from_utf8_lossy(&big_t.stderr)
    );
    assert!(
        big_t.status.success() && !out.contains(" line ") && !out.contains("rror"),
        "dhcpd -T rejects the exported leases:\n{out}\n{}",
        lab.scratch.read("dhcpd.leases")
    );
    out
}

#[test]
fn foreman_adds_and_deletes_a_host_with_omshell_and_xdp_answers_it() {
    let mut lab = lab("omfm");
    let out = omshell(&lab, &foreman_add("a-test-01", IP, MAC));
    assert!(
        !foreman_failed(&out),
        "Foreman's add failed:\n{out}{}",
        lab.log()
    );
    assert!(
        out.contains("hardware-type = 00:00:00:01") && out.contains("ip-address = 0a:32:00:0a"),
        "the create reply lacks the host's values:\n{out}"
    );
    let r = reserved(&lab, MAC).unwrap_or_else(|| panic!("not in the API{}", lab.log()));
    assert_eq!(r["source"], "omapi", "{r}");
    assert_eq!(r["boot_file"], "pxelinux.0", "{r}");

    // The machine boots: answered by XDP with its boot file, next server
    // and host name.
    let before = lab.stats();
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("udhcpc: {e}{}", lab.log()));
    assert_eq!(lease["ip"], IP, "{lease:?}");
    assert_eq!(lease["boot_file"], "pxelinux.0", "{lease:?}");
    assert_eq!(lease["siaddr"], "10.50.0.7", "{lease:?}");
    assert_eq!(lease["hostname"], "a-test-01", "{lease:?}");
    assert_eq!(
        slow_path_total(&lab.stats()),
        slow_path_total(&before),
        "userspace answered what XDP should have{}",
        lab.log()
    );

    // Foreman reads the exports: both parse with dhcpd's own parser.
    let leases = lab.scratch.read("dhcpd.leases");
    assert!(
        leases.contains("host a-test-01 {\n  dynamic;\n  hardware ethernet 52:54:00:12:34:56;\n  fixed-address 10.50.0.10;\n        supersede server.filename = \"pxelinux.0\";\n        supersede server.next-server = 0a:32:00:07;\n        supersede host-name = \"a-test-01\";\n}\n"),
        "{leases}"
    );
    dhcpd_parses(&lab);

    // The same add again.
    let again = omshell(&lab, &foreman_add("a-test-01", IP, MAC));
    assert!(
        again.contains("can't open object: already exists"),
        "{again}"
    );
    // Same MAC, another name: Foreman's "Hardware address conflict".
    let other = omshell(&lab, &foreman_add("a-test-02", "10.50.0.11", MAC));
    assert!(other.contains("can't open object: key conflict"), "{other}");
    // Another MAC, the same name.
    let dup = omshell(
        &lab,
        &foreman_add("a-test-01", "10.50.0.12", "52:54:00:12:34:99"),
    );
    assert!(dup.contains("can't open object: already exists"), "{dup}");
    // What stormboot cannot honour is refused as dhcpd refuses it.
    let head = format!("key omkey \"{SECRET}\"\nconnect\nnew host\nset name = \"x1\"\n");
    for (set, want) in [
        (
            "set hardware-address = 52:54:00:12:34:98\nset ip-address = 10.50.0.13\n\
             set statements = \"option routers 10.50.0.1;\"\n",
            "can't open object: parse error(s) occurred",
        ),
        (
            "set hardware-address = 52:54:00:12:34:98\nset ip-address = 10.50.0.13\n\
             set foo = \"bar\"\n",
            "can't open object: unknown attribute",
        ),
        (
            "set ip-address = 10.50.0.13\n",
            "can't open object: invalid argument",
        ),
    ] {
        let out = omshell(&lab, &format!("{head}{set}create\n"));
        assert!(out.contains(want), "want {want:?}:\n{out}");
    }
    assert!(reserved(&lab, "52:54:00:12:34:98").is_none());
    assert!(reserved(&lab, "52:54:00:12:34:99").is_none());

    // Survives a restart.
    lab.stop_daemon();
    lab.respawn();
    assert!(
        reserved(&lab, MAC).is_some(),
        "lost at restart{}",
        lab.log()
    );

    // Delete: gone from the maps, the pools answer the machine now.
    let del = omshell(&lab, &foreman_del(MAC));
    assert!(!foreman_failed(&del), "Foreman's delete failed:\n{del}");
    // The open showed the host, the remove dropped it: omshell's last dump.
    assert!(
        del.contains("name = \"a-test-01\"") && del.ends_with("> obj: <null>\n> "),
        "{del}"
    );
    assert!(reserved(&lab, MAC).is_none());
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("udhcpc after delete: {e}{}", lab.log()));
    assert_ne!(lease["ip"], IP, "still reserved after delete: {lease:?}");
    assert_eq!(lease["boot_file"], "", "{lease:?}");
    let leases = lab.scratch.read("dhcpd.leases");
    assert!(
        leases.ends_with("host a-test-01 {\n  dynamic;\n  deleted;\n}\n"),
        "{leases}"
    );
    dhcpd_parses(&lab);

    let again = omshell(&lab, &foreman_del(MAC));
    assert!(
        again.contains("can't open object: not found")
            && again.contains("can't destroy object: not found"),
        "{again}"
    );
}

const PYPUREOMAPI: &str = r#"
import sys, pypureomapi
secret = b"c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg=="
o = pypureomapi.Omapi("127.0.0.1", 7911, b"omkey", secret)
assert o.protocol.defauth != 0, "no authenticator"
o.add_host("10.50.0.30", "52:54:00:aa:00:01")
try:
    o.add_host("10.50.0.30", "52:54:00:aa:00:01")
    sys.exit("second add_host succeeded")
except pypureomapi.OmapiError as e:
    print("again:", e)
o.add_host_supersede_name("10.50.0.31", "52:54:00:aa:00:02", "pyhost21")
print("lookup_host:", sorted(o.lookup_host("pyhost21").items()))
h = o.lookup_by_host(mac="52:54:00:aa:00:02")
print("lookup_by_host:", sorted((k, v if isinstance(v, str) else repr(v)) for k, v in h.items()))
# MAAS 3.0-3.5: add_host_supersede with a name, update_host by name.
o.add_host_supersede("10.50.0.32", "52:54:00:aa:00:03", name=b"52-54-00-aa-00-03")
msg = pypureomapi.OmapiMessage.open(b"host")
msg.update_object({b"name": b"52-54-00-aa-00-03"})
resp = o.query_server(msg)
assert resp.opcode == pypureomapi.OMAPI_OP_UPDATE, resp.opcode
upd = pypureomapi.OmapiMessage.update(resp.handle)
upd.update_object({b"ip-address": pypureomapi.pack_ip("10.50.0.33")})
resp = o.query_server(upd)
assert resp.opcode == pypureomapi.OMAPI_OP_STATUS, resp.opcode
assert dict(resp.message)[b"result"] == b"\0\0\0\0", resp.message
print("after update:", o.lookup_by_host(mac="52:54:00:aa:00:03")["ip-address"])
o.del_host("52:54:00:aa:00:01")
try:
    o.del_host("52:54:00:aa:00:01")
    sys.exit("second del_host succeeded")
except pypureomapi.OmapiErrorNotFound:
    print("del again: not found")
# A lease the pools gave (sys.argv[1]): read-only lease objects.
print("lease mac:", o.lookup_mac(sys.argv[1]))
try:
    o.lookup_mac("10.50.0.109")
    sys.exit("a lease nobody holds was found")
except pypureomapi.OmapiErrorNotFound:
    print("no lease: not found")
print("OK")
"#;

#[test]
fn pypureomapi_adds_looks_up_updates_and_deletes_hosts() {
    let lab = lab("ompy");
    // sbc0 (not reserved) takes a pool lease first.
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("udhcpc: {e}{}", lab.log()));
    let script = lab.scratch.write("client.py", PYPUREOMAPI);
    let mut cmd = lab.bed.command(Side::Server, "/usr/bin/python3");
    cmd.arg(&script).arg(&lease["ip"]);
    let out = cmd.output().expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("OK"),
        "pypureomapi:\n{text}{}",
        lab.log()
    );
    assert!(text.contains("again: add failed"), "{text}");
    assert!(text.contains("after update: 10.50.0.33"), "{text}");
    assert!(text.contains(&format!("lease mac: {MAC}")), "{text}");
    assert!(
        text.contains(
            "('hostname', 'pyhost21'), ('ip', '10.50.0.31'), ('mac', '52:54:00:aa:00:02')"
        ),
        "{text}"
    );
    assert!(
        text.contains("('hardware-type', 1)") || text.contains("hardware-type"),
        "{text}"
    );
    assert!(reserved(&lab, "52:54:00:aa:00:01").is_none());
    let r = reserved(&lab, "52:54:00:aa:00:02").expect("pyhost21 stored");
    assert_eq!(r["hostname"], "pyhost21", "{r}");
    let r = reserved(&lab, "52:54:00:aa:00:03").expect("MAAS host stored");
    assert_eq!(r["ip"], "10.50.0.33", "MAAS's update_host not applied: {r}");

    // omshell with an HMAC-SHA256 key: 32-byte signatures both ways.
    let out = omshell(
        &lab,
        &foreman_add("sha-host", "10.50.0.34", "52:54:00:aa:00:04")
            .replace("key omkey", "key-algorithm hmac-sha256\nkey shakey"),
    );
    assert!(!foreman_failed(&out), "SHA-256 add failed:\n{out}");
    assert!(reserved(&lab, "52:54:00:aa:00:04").is_some(), "{out}");
}

/// Connects to `addr` from inside the server's namespace.
fn connect_in(lab: &Lab, addr: &'static str) -> TcpStream {
    let s = lab
        .bed
        .in_ns(Side::Server, move || TcpStream::connect(addr))
        .unwrap()
        .expect("connecting to OMAPI");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A raw OMAPI client: startup done.
fn raw(lab: &Lab) -> TcpStream {
    let mut s = connect_in(lab, "127.0.0.1:7911");
    s.write_all(&wire::STARTUP).unwrap();
    let mut b = [0u8; 8];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b, wire::STARTUP);
    s
}

/// Reads one message; None when the server closed the connection.
fn read_msg(s: &mut TcpStream) -> Option<Message> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((m, _))) = wire::decode(&buf) {
            return Some(m);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn key(secret: &[u8]) -> Key {
    Key {
        name: "omkey".into(),
        algorithm: Algorithm::HmacMd5,
        secret: secret.to_vec(),
    }
}

fn auth_open(s: &mut TcpStream) -> u32 {
    let m = Message {
        op: wire::OP_OPEN,
        id: 1,
        message: vec![("type".into(), b"authenticator".to_vec())],
        object: vec![
            ("name".into(), b"omkey".to_vec()),
            ("algorithm".into(), b"hmac-md5.SIG-ALG.REG.INT.".to_vec()),
        ],
        ..Default::default()
    };
    s.write_all(&seal(&m, None)).unwrap();
    let r = read_msg(s).expect("authenticator reply");
    assert_eq!((r.op, r.authid), (wire::OP_UPDATE, 0), "{r:?}");
    r.handle
}

fn create(mac: [u8; 6], id: u32) -> Message {
    Message {
        op: wire::OP_OPEN,
        id,
        message: vec![
            ("create".into(), vec![0, 0, 0, 1]),
            ("exclusive".into(), vec![0, 0, 0, 1]),
            ("type".into(), b"host".to_vec()),
        ],
        object: vec![
            ("hardware-address".into(), mac.to_vec()),
            ("hardware-type".into(), vec![0, 0, 0, 1]),
            ("ip-address".into(), vec![10, 50, 0, 40 + mac[5]]),
        ],
        ..Default::default()
    }
}

fn result(m: &Message) -> u32 {
    wire::get(&m.message, "result")
        .and_then(wire::int)
        .unwrap_or(0)
}

#[test]
fn bad_clients_are_refused_nothing_is_stored_and_the_next_client_is_served() {
    let lab = lab("ombad");
    let good = key(b"stormboot-test-key-0123456789ab");
    let wrong = key(b"wrong-secret-wrong-secret-012345");

    // Wrong key (omshell): the authenticator open proves nothing; the
    // signed create fails and the connection is closed.
    let out = omshell(
        &lab,
        &foreman_add("wrong", "10.50.0.50", "52:54:00:bb:00:01").replace(SECRET, WRONG),
    );
    assert!(out.contains("can't open object"), "{out}");
    // No key at all.
    let out = omshell(
        &lab,
        &foreman_add("nokey", "10.50.0.51", "52:54:00:bb:00:02")
            .replace(&format!("key omkey \"{SECRET}\"\n"), ""),
    );
    assert!(out.contains("can't open object: no key specified"), "{out}");

    // Raw: a valid authid with no signature, then a truncated one.
    let mut s = raw(&lab);
    let h = auth_open(&mut s);
    let mut m = create([0x52, 0x54, 0, 0xbb, 0, 3], 2);
    m.authid = h;
    s.write_all(&wire::encode(&m)).unwrap();
    let r = read_msg(&mut s).expect("a refusal");
    assert_eq!((r.authid, result(&r)), (0, 0x6000b), "{r:?}");
    assert!(
        closed(&mut s),
        "connection kept after an unsigned message with an authid"
    );

    let mut s = raw(&lab);
    let h = auth_open(&mut s);
    let signed = seal(&create([0x52, 0x54, 0, 0xbb, 0, 4], 2), Some((h, &good)));
    // Claim 8 bytes of signature and send 8.
    let mut short = signed[..signed.len() - 8].to_vec();
    short[4..8].copy_from_slice(&8u32.to_be_bytes());
    s.write_all(&short).unwrap();
    let r = read_msg(&mut s).expect("a refusal");
    assert_eq!(result(&r), 0x6000b, "{r:?}");
    assert!(closed(&mut s));

    // Signed with the wrong secret.
    let mut s = raw(&lab);
    let h = auth_open(&mut s);
    s.write_all(&seal(
        &create([0x52, 0x54, 0, 0xbb, 0, 5], 2),
        Some((h, &wrong)),
    ))
    .unwrap();
    let r = read_msg(&mut s).expect("a refusal");
    assert_eq!(result(&r), 0x6000b, "{r:?}");
    assert!(closed(&mut s));

    // Garbage, and a message larger than the limit.
    let mut s = raw(&lab);
    s.write_all(&[0xff; 64]).unwrap();
    let r = read_msg(&mut s);
    assert!(r.as_ref().is_none_or(|r| result(r) != 0), "{r:?}");
    assert!(closed(&mut s));
    let mut s = raw(&lab);
    let mut big = seal(&create([0x52, 0x54, 0, 0xbb, 0, 6], 2), None);
    big.truncate(24);
    big.extend_from_slice(&[0, 4]);
    big.extend_from_slice(b"type");
    big.extend_from_slice(&(1u32 << 20).to_be_bytes());
    big.extend_from_slice(&vec![b'x'; 70_000]);
    let _ = s.write_all(&big);
    let r = read_msg(&mut s);
    assert!(r.as_ref().is_none_or(|r| result(r) != 0), "{r:?}");
    assert!(closed(&mut s), "oversized message not refused");
    // A bad startup.
    let mut s = connect_in(&lab, "127.0.0.1:7911");
    s.write_all(&[0, 0, 0, 99, 0, 0, 0, 24]).unwrap();
    let mut b = [0u8; 8];
    s.read_exact(&mut b).unwrap();
    assert!(closed(&mut s));

    // Nothing was stored.
    for last in 1..=6u8 {
        let mac = format!("52:54:00:bb:00:{last:02x}");
        assert!(
            reserved(&lab, &mac).is_none(),
            "{mac} stored by a bad client"
        );
    }
    assert!(lab
        .scratch
        .read("dhcpd.leases")
        .lines()
        .all(|l| !l.starts_with("host")));

    // The listener still serves a good client, signed replies included.
    let mut s = raw(&lab);
    let h = auth_open(&mut s);
    s.write_all(&seal(
        &create([0x52, 0x54, 0, 0xbb, 0, 7], 2),
        Some((h, &good)),
    ))
    .unwrap();
    let r = read_msg(&mut s).expect("create reply");
    assert_eq!((r.op, r.authid, r.rid), (wire::OP_UPDATE, h, 2), "{r:?}");
    assert!(reserved(&lab, "52:54:00:bb:00:07").is_some());

    // One book: a reservation made through the REST API is an OMAPI host
    // too, and is journalled to the leases export Foreman reads.
    let mut cmd = lab.stormboot(Side::Server);
    cmd.args([
        "reservation",
        "add",
        "--mac",
        "52:54:00:bb:00:08",
        "--ip",
        "10.50.0.58",
    ])
    .arg("--config")
    .arg(&lab.config);
    lab.bed.run(Side::Server, cmd).expect("reservation add");
    let open = Message {
        op: wire::OP_OPEN,
        id: 3,
        message: vec![("type".into(), b"host".to_vec())],
        object: vec![("hardware-address".into(), vec![0x52, 0x54, 0, 0xbb, 0, 8])],
        ..Default::default()
    };
    s.write_all(&seal(&open, Some((h, &good)))).unwrap();
    let r = read_msg(&mut s).expect("open reply");
    assert_eq!(r.op, wire::OP_UPDATE, "{r:?}");
    assert_eq!(
        wire::get(&r.object, "ip-address"),
        Some(&[10, 50, 0, 58][..])
    );
    let leases = lab.scratch.read("dhcpd.leases");
    assert!(
        leases
            .contains("host sb-525400bb0008 {\n  dynamic;\n  hardware ethernet 52:54:00:bb:00:08;"),
        "{leases}"
    );
}

/// `stormboot-lab bench-omapi`, tiny: hosts created over one connection,
/// and created hosts answered by XDP (the full run is `cargo xtask bench`).
#[test]
fn bench_omapi_smoke_creates_hosts_and_sees_them_answered() {
    let lab = lab("ombench");
    let mut cmd = lab.lab_command(Side::Server);
    cmd.args([
        "bench-omapi",
        "--json",
        "--hosts",
        "20",
        "--first-ip",
        "10.50.0.60",
        "--cycles",
        "3",
        "--probe-ip",
        "10.50.0.90",
        "--interface",
        stormboot_testbed::CLIENT_IF,
        "--secret",
        SECRET,
        "--netns",
    ])
    .arg(lab.bed.ns_path(Side::Client));
    let out = lab
        .bed
        .run(Side::Server, cmd)
        .unwrap_or_else(|e| panic!("bench-omapi: {e:#}{}", lab.log()));
    let r: stormboot_testbed::reports::OmapiReport =
        stormboot_testbed::reports::decode("bench-omapi", &out.stdout)
            .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.hosts, 20, "{r:?}");
    assert_eq!(r.visible.changes, 3, "{r:?}");
    assert_eq!(r.timeouts, 0, "{r:?}");
    assert!(reserved(&lab, "0e:b0:00:00:00:13").is_some());
}
