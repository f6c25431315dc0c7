//! End-to-end tests of the notification hooks: real clients (ISC dhclient,
//! busybox udhcpc) get, renew, release and let expire leases from the real
//! daemon in network namespaces, and the configured command (a shell script
//! that appends its environment to a file) and webhook (a Python HTTP
//! server on the server namespace's loopback) hear of each, for pool
//! clients (answered in userspace) and reserved ones (answered by XDP).
//! udhcpc declines an address it finds in use (ARP), and the command hears
//! that too. A hook that hangs delays no answer, is killed and counted, and
//! a full queue drops and counts.
//!
//! Needs root and `cargo build -p stormboot` first (see `binary`). Each
//! test owns its testbed and scratch directory, so they run in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use stormboot_testbed::{require_root, wait_for, Lab, Side, SERVER_IF};

/// A /24 with a small pool and one reservation; leases of 60 s (the
/// shortest allowed) renewed after 2 s, so that dhclient renews while the
/// test watches. `HOOKS` is replaced by the test's `[hooks]` section.
const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
lease_time = "60s"
renew_time = "2s"
pool = ["10.50.0.100-10.50.0.110"]

[[reservation]]
mac = "52:54:00:00:07:01"
ip = "10.50.0.11"
hostname = "node1"

HOOKS
"#;

const RESERVED_MAC: &str = "52:54:00:00:07:01";
const RESERVED_IP: &str = "10.50.0.11";

/// The webhook's receiver: answers every POST with 204 and appends its
/// body, one JSON object a line, to the file named by argv[2].
const RECEIVER: &str = r#"import http.server, sys

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[2], "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook)
open(sys.argv[3], "w").close()
server.serve_forever()
"#;

/// A lab whose log shows the hook's runs too.
fn hooks_lab(name: &str, client_mac: &str) -> Lab {
    let mut lab = Lab::new(name, Some(client_mac));
    lab.also_log.push("hook.log");
    lab
}

/// What the hook tests ask of a lab.
trait HooksLab {
    fn hook_script(&self, extra: &str) -> PathBuf;
    fn start_hooks(&mut self, hooks: &str);
    fn hook_runs(&self) -> Vec<BTreeMap<String, String>>;
    fn wait_for_hook(&self, action: &str, n: usize) -> Vec<BTreeMap<String, String>>;
    fn dhclient_named(&mut self, tag: &str, leases: &Path, acks: usize, hostname: &str);
    fn udhcpc_ip(&self, extra: &[&str]) -> String;
}

impl HooksLab for Lab {
    /// The hook script: appends "--- ARGS" and then every STORMBOOT_
    /// variable, sorted, to hook.log, in one write so that the test never
    /// reads half a record; `extra` runs after that.
    fn hook_script(&self, extra: &str) -> PathBuf {
        let log = self.scratch.path("hook.log");
        self.scratch.write_script(
            "on-lease.sh",
            &format!(
                "#!/bin/sh\nrecord=$(echo \"--- $*\"; env | grep '^STORMBOOT_' | sort)\n\
                 printf '%s\\n' \"$record\" >> '{}'\n{extra}\n",
                log.display()
            ),
        )
    }

    /// Writes CONFIG with `hooks` as its `[hooks]` section and starts the
    /// daemon on it with the XDP dataplane. Its STORMBOOT_LOG is a setting
    /// of the daemon's own that the hooks must not inherit.
    fn start_hooks(&mut self, hooks: &str) {
        self.start(&CONFIG.replace("HOOKS", hooks));
    }

    /// Every run of the hook script so far: its arguments (under "ARGS")
    /// and its STORMBOOT_ variables.
    fn hook_runs(&self) -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(self.scratch.path("hook.log")).unwrap_or_default();
        text.split("--- ")
            .filter(|b| !b.is_empty())
            .map(|block| {
                let mut lines = block.lines();
                let mut run = BTreeMap::new();
                run.insert("ARGS".to_string(), lines.next().unwrap_or("").to_string());
                for l in lines {
                    if let Some((k, v)) = l.split_once('=') {
                        run.insert(k.to_string(), v.to_string());
                    }
                }
                run
            })
            .collect()
    }

    /// Waits until the hook has run for `action` `n` times; those runs.
    fn wait_for_hook(&self, action: &str, n: usize) -> Vec<BTreeMap<String, String>> {
        wait_for(Duration::from_secs(10), || {
            let runs: Vec<_> = self
                .hook_runs()
                .into_iter()
                .filter(|r| r.get("STORMBOOT_ACTION").map(String::as_str) == Some(action))
                .collect();
            (runs.len() >= n).then_some(runs)
        })
        .unwrap_or_else(|| panic!("the hook did not run {n} times for {action}{}", self.log()))
    }

    /// Runs dhclient on sbc0 until it has been acknowledged `acks` times
    /// (more than once: it renewed), then stops it, leaving the lease in
    /// `leases`. It sends its host name, `hostname`.
    fn dhclient_named(&mut self, tag: &str, leases: &Path, acks: usize, hostname: &str) {
        self.dhclient(
            tag,
            leases,
            acks,
            &format!("send host-name \"{hostname}\";\nrequest subnet-mask, routers;\n"),
        );
    }

    /// busybox udhcpc with `extra` arguments: bind once and quit without
    /// releasing; the address.
    fn udhcpc_ip(&self, extra: &[&str]) -> String {
        let lease = self
            .run_udhcpc(extra)
            .unwrap_or_else(|e| panic!("udhcpc: {e}{}", self.log()));
        lease.get("ip").cloned().unwrap_or_default()
    }
}

/// Asserts `run` carries each of `want`.
#[track_caller]
fn assert_env(run: &BTreeMap<String, String>, want: &[(&str, &str)], lab: &Lab) {
    for (k, v) in want {
        assert_eq!(
            run.get(*k).map(String::as_str),
            Some(*v),
            "{k} in the hook's environment {run:#?}{}",
            lab.log()
        );
    }
}

/// `STORMBOOT_TIME_REMAINING` of `run`, which must be a number.
fn remaining(run: &BTreeMap<String, String>) -> u64 {
    run["STORMBOOT_TIME_REMAINING"]
        .parse()
        .unwrap_or_else(|_| panic!("STORMBOOT_TIME_REMAINING in {run:?}"))
}

#[test]
fn pool_client_commit_renew_and_release_run_the_command() {
    require_root();
    const MAC: &str = "02:50:00:00:07:02";
    let mut lab = hooks_lab("hooks-pool", MAC);
    let hook = lab.hook_script("");
    lab.start_hooks(&format!(
        "[hooks]\ncommand = {:?}\n",
        hook.display().to_string()
    ));

    let leases = lab.scratch.write("dhclient.leases", "");
    // Bound, then renewed after 2 s (a REQUEST unicast from the address).
    lab.dhclient_named("bind", &leases, 2, "pool-box");
    let commit = &lab.wait_for_hook("commit", 1)[0];
    let ip = commit["STORMBOOT_IP"].clone();
    assert!(
        ip.starts_with("10.50.0.1"),
        "{ip} is not a pool address{}",
        lab.log()
    );
    assert_env(
        commit,
        &[
            ("ARGS", &format!("commit {MAC} {ip} pool-box")),
            ("STORMBOOT_MAC", MAC),
            ("STORMBOOT_HOSTNAME", "pool-box"),
            ("STORMBOOT_CLIENT_ID", &format!("01:{MAC}")),
            ("STORMBOOT_SUBNET", "10.50.0.0/24"),
            ("STORMBOOT_INTERFACE", SERVER_IF),
            ("STORMBOOT_PATH", "userspace"),
        ],
        &lab,
    );
    let left = remaining(commit);
    assert!(
        (55..=60).contains(&left),
        "remaining {left} of a 60 s lease{}",
        lab.log()
    );
    // Exactly the documented variables (the daemon's own are not passed on).
    let names: Vec<&str> = commit.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ARGS",
            "STORMBOOT_ACTION",
            "STORMBOOT_CLIENT_ID",
            "STORMBOOT_HOSTNAME",
            "STORMBOOT_INTERFACE",
            "STORMBOOT_IP",
            "STORMBOOT_LEASE_EXPIRES",
            "STORMBOOT_MAC",
            "STORMBOOT_PATH",
            "STORMBOOT_SUBNET",
            "STORMBOOT_TIME",
            "STORMBOOT_TIME_REMAINING",
        ],
        "{}",
        lab.log()
    );
    let expires: u64 = commit["STORMBOOT_LEASE_EXPIRES"].parse().unwrap();
    let time: u64 = commit["STORMBOOT_TIME"].parse().unwrap();
    assert_eq!(expires, time + left, "{commit:?}");

    let renew = &lab.wait_for_hook("renew", 1)[0];
    assert_env(
        renew,
        &[
            ("STORMBOOT_IP", &ip),
            ("STORMBOOT_MAC", MAC),
            ("STORMBOOT_PATH", "userspace"),
            ("STORMBOOT_INTERFACE", SERVER_IF),
        ],
        &lab,
    );
    assert!(
        renew["STORMBOOT_LEASE_EXPIRES"].parse::<u64>().unwrap() >= expires,
        "a renewal extends the lease: {renew:?}"
    );

    // Every ACK after the first was a renewal (dhclient may have renewed
    // again before it was stopped).
    let acks = lab
        .scratch
        .read("dhclient-bind.log")
        .matches("DHCPACK of")
        .count();
    lab.wait_for_hook("renew", acks - 1);
    // dhclient run again with its lease: INIT-REBOOT, the same address.
    lab.dhclient_named("reboot", &leases, 1, "pool-box");
    let renews = lab.wait_for_hook("renew", acks);
    assert_eq!(renews.len(), acks, "{renews:#?}{}", lab.log());

    lab.dhclient_release(&leases);
    let release = &lab.wait_for_hook("release", 1)[0];
    assert_env(
        release,
        &[
            ("ARGS", &format!("release {MAC} {ip} pool-box")),
            ("STORMBOOT_IP", &ip),
            ("STORMBOOT_PATH", "userspace"),
            ("STORMBOOT_TIME_REMAINING", "0"),
        ],
        &lab,
    );
    // One commit only: renewals and the reboot are not new bindings.
    let runs = lab.hook_runs();
    let commits = runs
        .iter()
        .filter(|r| r["STORMBOOT_ACTION"] == "commit")
        .count();
    assert_eq!(commits, 1, "{runs:#?}{}", lab.log());
    assert_eq!(
        lab.metric("stormboot_hook_events_total{action=\"commit\"}"),
        1
    );
    assert_eq!(
        lab.metric("stormboot_hook_events_total{action=\"release\"}"),
        1
    );
    assert_eq!(
        lab.metric("stormboot_hook_runs_total{hook=\"command\"}"),
        runs.len() as u64
    );
    assert_eq!(
        lab.metric("stormboot_hook_failures_total{hook=\"command\"}"),
        0
    );
    assert_eq!(lab.metric("stormboot_hook_dropped_total"), 0);
}

#[test]
fn reserved_client_answered_by_xdp_runs_the_command() {
    require_root();
    let mut lab = hooks_lab("hooks-xdp", RESERVED_MAC);
    let hook = lab.hook_script("");
    lab.start_hooks(&format!(
        "[hooks]\ncommand = {:?}\n",
        hook.display().to_string()
    ));

    let leases = lab.scratch.write("dhclient.leases", "");
    lab.dhclient_named("bind", &leases, 2, "ignored-name");
    // Both ACKs came from the program: userspace saw no REQUEST.
    let stats = lab.stats();
    assert!(
        stats["xdp"]["ack"].as_u64().unwrap_or(0) >= 2,
        "XDP did not acknowledge: {stats}{}",
        lab.log()
    );
    assert_eq!(
        stats["slow_path"]["dhcprequest"].as_u64().unwrap_or(0),
        0,
        "a REQUEST reached userspace: {stats}{}",
        lab.log()
    );
    let commit = &lab.wait_for_hook("commit", 1)[0];
    assert_env(
        commit,
        &[
            (
                "ARGS",
                &format!("commit {RESERVED_MAC} {RESERVED_IP} node1"),
            ),
            ("STORMBOOT_IP", RESERVED_IP),
            ("STORMBOOT_MAC", RESERVED_MAC),
            // The program does not read option 12: the reservation's name.
            ("STORMBOOT_HOSTNAME", "node1"),
            ("STORMBOOT_CLIENT_ID", &format!("01:{RESERVED_MAC}")),
            ("STORMBOOT_SUBNET", "10.50.0.0/24"),
            ("STORMBOOT_INTERFACE", SERVER_IF),
            ("STORMBOOT_PATH", "xdp"),
        ],
        &lab,
    );
    assert!((55..=60).contains(&remaining(commit)), "{commit:?}");
    let renew = &lab.wait_for_hook("renew", 1)[0];
    assert_env(
        renew,
        &[
            ("STORMBOOT_IP", RESERVED_IP),
            ("STORMBOOT_PATH", "xdp"),
            ("STORMBOOT_INTERFACE", SERVER_IF),
        ],
        &lab,
    );

    // The RELEASE is passed up: userspace handles it.
    lab.dhclient_release(&leases);
    let release = &lab.wait_for_hook("release", 1)[0];
    assert_env(
        release,
        &[
            ("STORMBOOT_IP", RESERVED_IP),
            ("STORMBOOT_MAC", RESERVED_MAC),
            ("STORMBOOT_PATH", "userspace"),
        ],
        &lab,
    );
    assert_eq!(
        lab.metric("stormboot_hook_failures_total{hook=\"command\"}"),
        0
    );
}

#[test]
fn webhook_receives_commit_and_expiry_as_json() {
    require_root();
    const MAC: &str = "02:50:00:00:07:03";
    let mut lab = hooks_lab("hooks-webhook", MAC);
    let receiver = lab.scratch.write("receiver.py", RECEIVER);
    let bodies = lab.scratch.path("bodies.jsonl");
    let ready = lab.scratch.path("receiver.ready");
    let mut py = lab.bed.command(Side::Server, "python3");
    py.arg(&receiver)
        .arg("9000")
        .arg(&bodies)
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(lab.scratch.log_file("receiver.log"));
    lab.bed
        .spawn(Side::Server, py)
        .expect("spawning the receiver");
    wait_for(Duration::from_secs(10), || ready.exists().then_some(())).unwrap_or_else(|| {
        panic!(
            "the webhook receiver did not start: {}",
            lab.scratch.read("receiver.log")
        )
    });
    lab.start_hooks("[hooks]\nwebhook = \"http://127.0.0.1:9000/lease\"\ntimeout = \"5s\"\n");

    let posted = |action: &str| -> Option<Value> {
        std::fs::read_to_string(&bodies)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("the POST body is JSON"))
            .find(|v| v["action"] == action)
    };
    // udhcpc binds and quits without releasing: nobody renews the lease.
    let ip = lab.udhcpc_ip(&[]);
    let commit = wait_for(Duration::from_secs(10), || posted("commit"))
        .unwrap_or_else(|| panic!("no commit POSTed{}", lab.log()));
    for (k, v) in [
        ("mac", MAC),
        ("ip", &ip),
        ("client_id", &format!("01:{MAC}")),
        ("subnet", "10.50.0.0/24"),
        ("interface", SERVER_IF),
        ("path", "userspace"),
    ] {
        assert_eq!(commit[k], v, "{k} in {commit}{}", lab.log());
    }
    let remaining = commit["remaining"].as_u64().unwrap();
    assert!((55..=60).contains(&remaining), "{commit}");
    assert_eq!(
        commit["expires"].as_u64().unwrap(),
        commit["time"].as_u64().unwrap() + remaining,
        "{commit}"
    );

    // The 60 s lease runs out (the daemon sweeps every second).
    let expiry = wait_for(Duration::from_secs(75), || posted("expiry"))
        .unwrap_or_else(|| panic!("no expiry POSTed within 75 s{}", lab.log()));
    for (k, v) in [
        ("mac", MAC),
        ("ip", &ip),
        ("path", "timer"),
        ("interface", SERVER_IF),
    ] {
        assert_eq!(expiry[k], v, "{k} in {expiry}{}", lab.log());
    }
    assert_eq!(expiry["remaining"], 0, "{expiry}");
    assert_eq!(lab.metric("stormboot_hook_runs_total{hook=\"webhook\"}"), 2);
    assert_eq!(
        lab.metric("stormboot_hook_failures_total{hook=\"webhook\"}"),
        0
    );
    assert_eq!(
        lab.metric("stormboot_hook_events_total{action=\"expiry\"}"),
        1
    );
}

#[test]
fn a_hung_hook_delays_no_answer_is_killed_and_a_full_queue_drops() {
    require_root();
    let mut lab = hooks_lab("hooks-slow", "02:50:00:00:07:10");
    // Each run hangs far longer than the timeout; the queue holds one.
    let pids = lab.scratch.path("sleep.pids");
    let hook = lab.hook_script(&format!(
        "sleep 60 &\necho $! >> '{}'\nwait",
        pids.display()
    ));
    lab.start_hooks(&format!(
        "[hooks]\ncommand = {:?}\ntimeout = \"15s\"\nqueue = 1\n",
        hook.display().to_string()
    ));

    // Four machines in a row, each answered while the first hook hangs.
    for i in 0..4u8 {
        lab.bed
            .set_client_mac(&format!("02:50:00:00:07:1{i}"))
            .unwrap();
        lab.udhcpc_ip(&[]);
    }
    let stats = lab.stats();
    assert_eq!(
        stats["hooks"]["runs"]["command"],
        0,
        "a hook finished before the answers were all given: {stats}{}",
        lab.log()
    );
    // One run hangs, one event waits, the other two were dropped.
    assert_eq!(
        lab.metric("stormboot_hook_events_total{action=\"commit\"}"),
        4
    );
    assert_eq!(
        lab.metric("stormboot_hook_dropped_total"),
        2,
        "{}",
        lab.log()
    );

    // At the timeout the run is killed and counted; the queued one runs.
    let killed = wait_for(Duration::from_secs(25), || {
        let n = lab.metric("stormboot_hook_timeouts_total{hook=\"command\"}");
        (n >= 1).then_some(n)
    });
    assert!(killed.is_some(), "no hook timed out{}", lab.log());
    assert_eq!(
        lab.metric("stormboot_hook_failures_total{hook=\"command\"}"),
        1
    );
    let log = lab.scratch.read("daemon.log");
    assert!(
        log.contains("hook failed") && log.contains("killed with its process group"),
        "the failure is not logged{}",
        lab.log()
    );
    // Its `sleep 60` went with it.
    let first = lab.scratch.read("sleep.pids");
    let first = first
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no sleep started{}", lab.log()));
    let stat = std::fs::read_to_string(format!("/proc/{first}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the timed-out hook's child {first} is alive: {stat}{}",
        lab.log()
    );
}

#[test]
fn udhcpc_declining_an_address_in_use_runs_the_command() {
    require_root();
    const MAC: &str = "02:50:00:00:07:20";
    let mut lab = hooks_lab("hooks-decline", MAC);
    let hook = lab.hook_script("");
    lab.start_hooks(&format!(
        "[hooks]\ncommand = {:?}\n",
        hook.display().to_string()
    ));
    // Someone the server does not know of uses the pool's first address.
    let mut ip = lab.bed.command(Side::Server, "ip");
    ip.args(["addr", "add", "10.50.0.100/24", "dev", SERVER_IF]);
    lab.bed.run(Side::Server, ip).unwrap();

    // udhcpc checks the acknowledged address with ARP (-a), finds it
    // answered, declines it, and binds another.
    let got = lab.udhcpc_ip(&["-a"]);
    assert_ne!(got, "10.50.0.100", "{}", lab.log());
    let decline = &lab.wait_for_hook("decline", 1)[0];
    assert_env(
        decline,
        &[
            ("ARGS", &format!("decline {MAC} 10.50.0.100")),
            ("STORMBOOT_IP", "10.50.0.100"),
            ("STORMBOOT_MAC", MAC),
            ("STORMBOOT_PATH", "userspace"),
            ("STORMBOOT_INTERFACE", SERVER_IF),
        ],
        &lab,
    );
    // The default quarantine, ten minutes.
    let left = remaining(decline);
    assert!((595..=600).contains(&left), "{decline:?}");
    let commits: Vec<String> = lab
        .wait_for_hook("commit", 2)
        .iter()
        .map(|r| r["STORMBOOT_IP"].clone())
        .collect();
    assert_eq!(commits, ["10.50.0.100", got.as_str()], "{}", lab.log());
    assert_eq!(
        lab.metric("stormboot_hook_events_total{action=\"decline\"}"),
        1
    );
}
