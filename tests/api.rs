//! End-to-end tests of the control-plane API: the real daemon in a network
//! namespace, changed through its API (by HTTP from the test, and by the
//! `stormboot reservation` CLI), answering a real DHCP client (busybox
//! udhcpc) from the XDP program without a restart.
//!
//! The test talks HTTP to the daemon's loopback address inside the server
//! namespace: a thread enters the namespace only to open the connection
//! (a socket stays in the namespace it was made in).
//!
//! Needs root and `cargo build -p stormboot` first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use stormboot::api::client::Client;
use stormboot_testbed::{
    require_root, slow_path_total, wait_for, Lab, Side, CLIENT_IF, DAEMON_START,
};

const TOKEN: &str = "e2e-token-7f3a";
const API: &str = "127.0.0.1:8067";
/// The client's MAC: not in the config file.
const CLIENT_MAC: &str = "52:54:00:00:00:02";
const API_IP: &str = "10.50.0.20";
const API_IP2: &str = "10.50.0.21";

/// A /24 with one file reservation, a pool for everyone else, and a token.
const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[store]
path = "leases.db"

[api]
token = "e2e-token-7f3a"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
pool = ["10.50.0.100-10.50.0.110"]
lease_time = "1h"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
"#;

/// An HTTP answer: status and JSON body (Null when empty).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

/// The CLI's API client, built inside the namespace at `ns`: its I/O
/// thread starts there, so its connections are opened there.
fn client_in(ns: &Path, token: Option<&str>) -> anyhow::Result<Client> {
    let ns = fs::File::open(ns)?;
    let token = token.map(str::to_owned);
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace file descriptor; it changes only
        // this thread (and the client's thread it starts), and this thread
        // ends once the client is built.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Client::new(API.parse()?, token)
    })
    .join()
    .expect("client thread")
}

/// Options for udhcpc: three tries, a second apart.
const QUICK: &[&str] = &["-t", "3", "-T", "1"];

/// What the API tests ask of a lab: HTTP to the daemon's API.
trait ApiLab {
    fn start_api(&mut self, config: &str);
    fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer>;
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer;
    fn api_stats(&self) -> Value;
    fn cli(&self, args: &[&str]) -> std::process::Output;
    fn udhcpc_with(&self, extra: &[&str]) -> Result<BTreeMap<String, String>, String>;
}

impl ApiLab for Lab {
    /// Starts the daemon on `config` and waits until its health check
    /// answers over HTTP too.
    fn start_api(&mut self, config: &str) {
        self.start(config);
        if wait_for(DAEMON_START, || {
            self.try_request("GET", "/healthz", None, None)
                .ok()
                .filter(|a| a.status == 200)
        })
        .is_none()
        {
            panic!("the daemon did not answer /healthz{}", self.log());
        }
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let c = client_in(&self.bed.ns_path(Side::Server), token)?;
        let body = body.map(Value::to_string);
        let a = c.request(method, path, body.as_deref())?;
        let body = if a.body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&a.body).unwrap_or(Value::String(a.body))
        };
        Ok(Answer {
            status: a.status,
            body,
        })
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.try_request(method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}{}", self.log()))
    }

    /// The daemon's counters, as its API reports them.
    fn api_stats(&self) -> Value {
        let a = self.request("GET", "/api/v1/stats", None, None);
        assert_eq!(a.status, 200, "{a:?}");
        a.body
    }

    /// `stormboot <args>` in the server namespace; the daemon is found
    /// from its config file.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.stormboot(Side::Server);
        cmd.args(args).arg("--config").arg(&self.config);
        cmd.output().expect("running the stormboot CLI")
    }

    /// udhcpc, quick, with more arguments (options it sends).
    fn udhcpc_with(&self, extra: &[&str]) -> Result<BTreeMap<String, String>, String> {
        self.run_udhcpc(&[QUICK, extra].concat())
    }
}

fn n(stats: &Value, group: &str, key: &str) -> u64 {
    stats[group][key].as_u64().unwrap_or(0)
}

fn reservation(mac: &str, ip: &str) -> Value {
    json!({"mac": mac, "ip": ip, "hostname": "api-node"})
}

#[test]
fn a_reservation_added_through_the_api_is_answered_by_xdp_and_a_removed_one_is_passed_up() {
    require_root();
    let mut lab = Lab::new("api-live", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let pid = lab.daemon.expect("daemon");

    // Added with the CLI, which finds the daemon and its token in the file.
    let out = lab.cli(&[
        "reservation",
        "add",
        "--mac",
        CLIENT_MAC,
        "--ip",
        API_IP,
        "--hostname",
        "api-node",
    ]);
    assert!(
        out.status.success(),
        "reservation add: {out:?}{}",
        lab.log()
    );
    let before = lab.api_stats();
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    assert_eq!(
        lease.get("ip").map(String::as_str),
        Some(API_IP),
        "{lease:?}"
    );
    assert_eq!(lease.get("hostname").map(String::as_str), Some("api-node"));
    let after = lab.api_stats();
    assert!(
        n(&after, "xdp", "offer") > n(&before, "xdp", "offer"),
        "{after}"
    );
    assert!(
        n(&after, "xdp", "ack") > n(&before, "xdp", "ack"),
        "{after}"
    );
    assert_eq!(
        slow_path_total(&after),
        0,
        "userspace saw packets XDP should have answered: {after}{}",
        lab.log()
    );
    assert_eq!(after["reservations"], 2, "{after}");

    // Changed: the next exchange gets the new address, from XDP.
    let a = lab.request(
        "PUT",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        Some(TOKEN),
        Some(&reservation(CLIENT_MAC, API_IP2)),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("{e}{}", lab.log()));
    assert_eq!(lease.get("ip").map(String::as_str), Some(API_IP2));
    assert_eq!(slow_path_total(&lab.api_stats()), 0);

    // Removed: the program passes the machine up and the pools answer it.
    let out = lab.cli(&["reservation", "rm", CLIENT_MAC]);
    assert!(out.status.success(), "reservation rm: {out:?}");
    let before = lab.api_stats();
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("{e}{}", lab.log()));
    let after = lab.api_stats();
    let ip = lease.get("ip").cloned().unwrap_or_default();
    assert!(
        ip.starts_with("10.50.0.1") && ip.len() == "10.50.0.100".len(),
        "pool address expected, got {ip}"
    );
    assert!(
        n(&after, "xdp", "pass_unknown_mac") > n(&before, "xdp", "pass_unknown_mac"),
        "not passed up: {after}"
    );
    assert_eq!(
        n(&after, "xdp", "offer"),
        n(&before, "xdp", "offer"),
        "XDP answered: {after}"
    );
    assert!(
        n(&after, "slow_path", "dhcpdiscover") > n(&before, "slow_path", "dhcpdiscover"),
        "{after}"
    );
    // All of it without a restart: one start in the log, the same process.
    assert_eq!(
        lab.log().matches("API reservations loaded").count(),
        1,
        "{}",
        lab.log()
    );
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the daemon is gone{}",
        lab.log()
    );
    let leases = lab.request(
        "GET",
        &format!("/api/v1/leases?mac={CLIENT_MAC}"),
        None,
        None,
    );
    assert!(
        leases.body["items"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["ip"] == ip.as_str())),
        "{leases:?}"
    );
}

#[test]
fn changes_need_the_token_and_reads_can_too() {
    require_root();
    let mut lab = Lab::new("api-token", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let body = reservation(CLIENT_MAC, API_IP);
    for token in [None, Some("wrong-token")] {
        let a = lab.request("POST", "/api/v1/reservations", token, Some(&body));
        assert_eq!(a.status, 401, "{token:?}: {a:?}");
        assert_eq!(a.body["field"], "authorization", "{a:?}");
        let a = lab.request(
            "DELETE",
            "/api/v1/reservations/52:54:00:00:00:01",
            token,
            None,
        );
        assert_eq!(a.status, 401, "{a:?}");
    }
    // The CLI with a wrong --token is refused the same way.
    let out = lab.cli(&[
        "reservation",
        "add",
        "--mac",
        CLIENT_MAC,
        "--ip",
        API_IP,
        "--token",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(401)"),
        "{out:?}"
    );
    // Nothing was added; reads are open.
    let a = lab.request(
        "GET",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        None,
        None,
    );
    assert_eq!(a.status, 404, "{a:?}");
    let a = lab.request("POST", "/api/v1/reservations", Some(TOKEN), Some(&body));
    assert_eq!(a.status, 201, "{a:?}");

    // With read_token, reads need it too; /healthz and the document do not.
    lab.stop_daemon();
    lab.start_api(&CONFIG.replace("[api]\n", "[api]\nread_token = true\n"));
    let a = lab.request("GET", "/api/v1/reservations", None, None);
    assert_eq!(a.status, 401, "{a:?}");
    let a = lab.request("GET", "/api/v1/reservations", Some(TOKEN), None);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(lab.request("GET", "/healthz", None, None).status, 200);
    assert_eq!(lab.request("GET", "/openapi.json", None, None).status, 200);
    let out = lab.cli(&["reservation", "show", CLIENT_MAC]);
    assert!(
        out.status.success(),
        "the CLI sends the file's token: {out:?}"
    );
}

#[test]
fn changes_survive_a_restart_and_the_file_stays_read_only() {
    require_root();
    let mut lab = Lab::new("api-restart", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let a = lab.request(
        "POST",
        "/api/v1/reservations/bulk",
        Some(TOKEN),
        Some(&json!([
            reservation(CLIENT_MAC, API_IP),
            {"mac": "52:54:00:00:00:03", "ip": "10.50.0.30",
             "options": [{"code": 66, "type": "string", "value": "tftp.example"}]},
            {"mac": "52:54:00:00:00:04", "ip": "10.50.0.40"},
        ])),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["created"], 3);
    let a = lab.request(
        "DELETE",
        "/api/v1/reservations/52:54:00:00:00:04",
        Some(TOKEN),
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let a = lab.request(
        "PUT",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        Some(TOKEN),
        Some(&json!({"ip": API_IP2, "hostname": "moved"})),
    );
    assert_eq!(a.status, 200, "{a:?}");

    lab.stop_daemon();
    lab.start_api(CONFIG);
    let list = lab.request("GET", "/api/v1/reservations?source=api", None, None);
    let macs: BTreeSet<String> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["mac"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        macs,
        BTreeSet::from([CLIENT_MAC.to_string(), "52:54:00:00:00:03".to_string()]),
        "{list:?}"
    );
    let r = lab.request(
        "GET",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        None,
        None,
    );
    assert_eq!(
        (r.body["ip"].as_str(), r.body["source"].as_str()),
        (Some(API_IP2), Some("api"))
    );
    let r = lab.request("GET", "/api/v1/reservations/52:54:00:00:00:03", None, None);
    assert_eq!(r.body["options"][0]["value"], "tftp.example", "{r:?}");
    // Served by XDP right after the restart.
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("{e}{}", lab.log()));
    assert_eq!(lease.get("ip").map(String::as_str), Some(API_IP2));
    assert_eq!(lease.get("hostname").map(String::as_str), Some("moved"));
    assert_eq!(slow_path_total(&lab.api_stats()), 0);

    // The file's reservation is listed as such and cannot be changed here.
    let r = lab.request("GET", "/api/v1/reservations/52:54:00:00:00:01", None, None);
    assert_eq!(r.body["source"], "config", "{r:?}");
    let a = lab.request(
        "DELETE",
        "/api/v1/reservations/52:54:00:00:00:01",
        Some(TOKEN),
        None,
    );
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (409, Some("mac")),
        "{a:?}"
    );

    // A file that now reserves an API entry's address wins at start.
    lab.stop_daemon();
    lab.start_api(&format!(
        "{CONFIG}\n[[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.30\"\n"
    ));
    let r = lab.request("GET", "/api/v1/reservations/52:54:00:00:00:03", None, None);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(lab.log().contains("the config file wins"), "{}", lab.log());
}

#[test]
fn invalid_input_is_refused_naming_the_field() {
    require_root();
    let mut lab = Lab::new("api-invalid", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let post = |body: Value| lab.request("POST", "/api/v1/reservations", Some(TOKEN), Some(&body));
    let cases = [
        (json!({"mac": "52:54:00:00:00:02"}), 400, "ip"),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.20", "colour": 1}),
            400,
            "colour",
        ),
        (json!({"mac": "not-a-mac", "ip": "10.50.0.20"}), 422, "mac"),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "192.168.9.9"}),
            422,
            "ip",
        ),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.1"}),
            422,
            "ip",
        ),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.11"}),
            409,
            "ip",
        ),
        (
            json!({"mac": "52:54:00:00:00:01", "ip": "10.50.0.20"}),
            409,
            "mac",
        ),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.20", "hostname": "a_b"}),
            422,
            "hostname",
        ),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.20", "profile": "none"}),
            422,
            "profile",
        ),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "10.50.0.20",
                   "options": [{"code": 51, "type": "u32", "value": "1"}]}),
            422,
            "options[0].code",
        ),
    ];
    for (body, status, field) in cases {
        let a = post(body.clone());
        assert_eq!(
            (a.status, a.body["field"].as_str()),
            (status, Some(field)),
            "{body}: {a:?}"
        );
        assert!(
            a.body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(field)),
            "{a:?}"
        );
    }
    // A bulk import is all or nothing, and names the entry.
    let a = lab.request(
        "POST",
        "/api/v1/reservations/bulk",
        Some(TOKEN),
        Some(&json!([reservation(CLIENT_MAC, API_IP), {"mac": "52:54:00:00:00:03", "ip": "10.60.0.1"}])),
    );
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (422, Some("[1].ip")),
        "{a:?}"
    );
    let a = lab.request("GET", "/api/v1/reservations?source=api", None, None);
    assert_eq!(a.body["total"], 0, "{a:?}");
    for (path, field) in [
        ("/api/v1/reservations?limit=0", "limit"),
        ("/api/v1/reservations?limit=x", "limit"),
        ("/api/v1/reservations?source=disk", "source"),
        ("/api/v1/leases?state=lost", "state"),
        ("/api/v1/leases/10.50.0.999", "ip"),
        ("/api/v1/machines/zz", "mac"),
    ] {
        let a = lab.request("GET", path, None, None);
        assert!((400..500).contains(&a.status), "{path}: {a:?}");
        assert_eq!(a.body["field"], field, "{path}: {a:?}");
    }
    // Nothing crashed.
    assert_eq!(lab.request("GET", "/healthz", None, None).status, 200);
}

#[test]
fn the_openapi_document_describes_every_route_the_daemon_serves() {
    require_root();
    let mut lab = Lab::new("api-openapi", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let a = lab.request("GET", "/openapi.json", None, None);
    assert_eq!(a.status, 200);
    let doc = a.body;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3.x: {}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = stormboot::api::routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, routed);

    // And the daemon really serves each: no route answers the router's own
    // empty 404 or 405.
    for (method, path) in &documented {
        if path.ends_with("/stream") {
            continue; // an event stream never ends; tests/dashboard.rs reads it
        }
        let concrete = path
            .replace("{mac}", "52:54:00:00:00:01")
            .replace("{ip}", "10.50.0.11")
            .replace("{network}", "10.50.0.0");
        let a = lab.request(
            &method.to_uppercase(),
            &concrete,
            Some(TOKEN),
            Some(&json!({})),
        );
        assert!(
            !(matches!(a.status, 404 | 405) && a.body.is_null()),
            "{method} {concrete} is not routed: {a:?}"
        );
    }
    let subnets = lab.request("GET", "/api/v1/subnets", None, None);
    assert_eq!(subnets.body[0]["cidr"], "10.50.0.0/24", "{subnets:?}");
    assert_eq!(subnets.body[0]["pool_size"], 11, "{subnets:?}");
}

#[test]
fn a_profile_given_through_the_api_boots_without_a_restart() {
    require_root();
    let mut lab = Lab::new("api-boot", Some(CLIENT_MAC));
    let tftp_root = lab.scratch.path("ipxe");
    let artifacts = lab.scratch.path("artifacts");
    fs::create_dir_all(&tftp_root).unwrap();
    fs::create_dir_all(&artifacts).unwrap();
    let config = format!(
        "{CONFIG}\n[boot]\ntftp_root = \"{}\"\nartifacts_dir = \"{}\"\n\n\
         [[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\n\n\
         [[profile]]\nname = \"rescue\"\nkernel = \"rescue-kernel\"\n",
        tftp_root.display(),
        artifacts.display()
    );
    lab.start_api(&config);
    let a = lab.request(
        "POST",
        "/api/v1/reservations",
        Some(TOKEN),
        Some(&json!({"mac": CLIENT_MAC, "ip": API_IP, "profile": "rescue"})),
    );
    assert_eq!(a.status, 201, "{a:?}");

    // iPXE's own request (user class "iPXE"): the script URL, from XDP.
    let ipxe = ["-x", "0x4d:69505845", "-x", "0x5d:0000"];
    let lease = lab
        .udhcpc_with(&ipxe)
        .unwrap_or_else(|e| panic!("udhcpc: {e}{}", lab.log()));
    let script_url = format!("http://10.50.0.1/{CLIENT_MAC}/auto.ipxe");
    assert_eq!(
        lease.get("boot_file").map(String::as_str),
        Some(script_url.as_str()),
        "{lease:?}{}",
        lab.log()
    );
    assert_eq!(slow_path_total(&lab.api_stats()), 0);

    let mut ip = Command::new("ip");
    ip.args(["addr", "add", &format!("{API_IP}/24"), "dev", CLIENT_IF]);
    lab.bed.run(Side::Client, ip).expect("address the client");
    let script = || {
        let mut c = Command::new("curl");
        c.args(["-sS", &script_url]);
        let out = lab
            .bed
            .run(Side::Client, c)
            .unwrap_or_else(|e| panic!("script: {e:#}{}", lab.log()));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let s = script();
    assert!(
        s.contains("kernel http://10.50.0.1/artifacts/rescue-kernel"),
        "{s}"
    );

    // The profile changes: the next script boots the other kernel.
    let a = lab.request(
        "PUT",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        Some(TOKEN),
        Some(&json!({"ip": API_IP, "profile": "debian"})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let s = script();
    assert!(
        s.contains("kernel http://10.50.0.1/artifacts/vmlinuz"),
        "{s}"
    );
}

#[test]
fn with_the_userspace_dataplane_the_server_answers_api_reservations() {
    require_root();
    let mut lab = Lab::new("api-userspace", Some(CLIENT_MAC));
    lab.start_api(&CONFIG.replace("[server]\n", "[server]\ndataplane = \"userspace\"\n"));
    let a = lab.request(
        "POST",
        "/api/v1/reservations",
        Some(TOKEN),
        Some(&reservation(CLIENT_MAC, API_IP)),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("{e}{}", lab.log()));
    assert_eq!(
        lease.get("ip").map(String::as_str),
        Some(API_IP),
        "{lease:?}"
    );
    let stats = lab.api_stats();
    assert!(n(&stats, "slow_path_replies", "dhcpack") >= 1, "{stats}");

    // Removed: the same machine now gets a pool address.
    let a = lab.request(
        "DELETE",
        &format!("/api/v1/reservations/{CLIENT_MAC}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("{e}{}", lab.log()));
    let ip = lease.get("ip").cloned().unwrap_or_default();
    assert!(
        ip.starts_with("10.50.0.1") && ip.len() == 11,
        "pool address expected, got {ip}"
    );
}

#[test]
fn a_sighup_reload_keeps_the_api_reservations() {
    require_root();
    let mut lab = Lab::new("api-hup", Some(CLIENT_MAC));
    lab.start_api(CONFIG);
    let pid = lab.daemon.expect("daemon");
    let out = lab.cli(&["reservation", "add", "--mac", CLIENT_MAC, "--ip", API_IP]);
    assert!(
        out.status.success(),
        "reservation add: {out:?}{}",
        lab.log()
    );

    // The file changes (its own reservation moves) and is reloaded.
    lab.scratch.write(
        "stormboot.toml",
        &CONFIG.replace("10.50.0.11", "10.50.0.12"),
    );
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    wait_for(Duration::from_secs(5), || {
        lab.scratch
            .read("daemon.log")
            .contains("configuration reloaded")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no reload{}", lab.log()));

    // Both are served: the API's entry from the store, the file's as changed.
    let list = lab.request("GET", "/api/v1/reservations", None, None);
    let text = list.body.to_string();
    assert!(
        text.contains(API_IP) && text.contains("10.50.0.12"),
        "{text}"
    );
    assert!(!text.contains("10.50.0.11"), "{text}");
    let lease = lab
        .run_udhcpc(QUICK)
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}{}", lab.log()));
    assert_eq!(
        lease.get("ip").map(String::as_str),
        Some(API_IP),
        "{lease:?}"
    );
    assert_eq!(slow_path_total(&lab.api_stats()), 0, "{}", lab.log());
}

/// Boot-only mode answers no DHCP, but its API is the same one: the same
/// routes, behind the same token rule. With `read_token`, its stats,
/// metrics and boot timelines are no more open than a DHCP daemon's.
#[test]
fn boot_only_mode_serves_the_same_routes_behind_the_same_token_rule() {
    require_root();
    let mut lab = Lab::new("api-bootonly", Some(CLIENT_MAC));
    let tftp_root = lab.scratch.path("ipxe");
    fs::create_dir_all(&tftp_root).unwrap();
    let config = CONFIG
        .replace(
            "address = \"10.50.0.1\"\n",
            "address = \"10.50.0.1\"\nmode = \"boot-only\"\n",
        )
        .replace("[api]\n", "[api]\nread_token = true\n")
        + &format!("\n[boot]\ntftp_root = \"{}\"\n", tftp_root.display());
    lab.start_api(&config);

    for path in [
        "/api/v1/stats",
        "/metrics",
        "/api/v1/machines",
        "/api/v1/machines/52:54:00:00:00:01",
        "/api/v1/reservations",
    ] {
        let a = lab.request("GET", path, None, None);
        assert_eq!(a.status, 401, "{path} without the token: {a:?}");
        let a = lab.request("GET", path, Some("wrong-token"), None);
        assert_eq!(a.status, 401, "{path} with a wrong token: {a:?}");
    }
    let a = lab.request("GET", "/api/v1/stats", Some(TOKEN), None);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.body["dataplane"]
            .as_str()
            .is_some_and(|d| d.contains("boot-only")),
        "{a:?}"
    );
    assert_eq!(lab.request("GET", "/healthz", None, None).status, 200);
    assert_eq!(lab.request("GET", "/openapi.json", None, None).status, 200);

    // Every route of the one table is there; those about addresses say
    // why this daemon has none, rather than the router's bare 404.
    for r in stormboot::api::routes() {
        if r.path.ends_with("/stream") {
            continue; // an event stream never ends; the browser tests read it
        }
        let concrete = r
            .path
            .replace("{mac}", "52:54:00:00:00:01")
            .replace("{ip}", "10.50.0.11")
            .replace("{network}", "10.50.0.0");
        let a = lab.request(
            &r.method.to_uppercase(),
            &concrete,
            Some(TOKEN),
            Some(&json!({})),
        );
        assert!(
            !(matches!(a.status, 404 | 405) && a.body.is_null()),
            "{} {concrete} is not routed in boot-only mode: {a:?}",
            r.method
        );
    }
    let a = lab.request("GET", "/api/v1/reservations", Some(TOKEN), None);
    assert_eq!(a.status, 404, "{a:?}");
    assert!(
        a.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("boot-only")),
        "{a:?}"
    );
}
