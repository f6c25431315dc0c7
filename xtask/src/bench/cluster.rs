//! `--only cluster`: two servers on one segment sharing one PostgreSQL
//! server (the `stormboot_testbed::cluster::Pair` topology), side by side
//! in one run: the stormboot pair, a Kea 2.2 HA pair in load-balancing mode
//! keeping its leases in PostgreSQL, and one stormboot node on SQLite. For
//! each: new leases per second under the same perfdhcp ramp and the same
//! storm of new machines from the client namespace; then how long after
//! one node's SIGKILL the survivor serves every new client; and for the
//! stormboot pair, how long a reservation made through one node's API
//! takes to be answered by the other node's XDP program.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use stormboot_testbed::cluster::{Node, Pair, DB_ADDR};
use stormboot_testbed::{wait_for, CLIENT_IF, SERVER_IF};

use super::perfdhcp::{self, RampEnd, Step};
use super::report::ended;
use super::reports::{self, ApiReport, StormReport};
use super::servers::{CLIENT_CPU, POOL_FIRST, PREFIX_LEN};
use super::{Bins, StepLength};

/// The segment's network: a /12, as in the single-server bench, so the
/// ramps never run out of addresses.
const SUBNET: &str = "10.48.0.0";
/// The load generators' address on the segment: perfdhcp's giaddr.
const CLIENT_ADDR: &str = "10.50.0.3";
const LEASE_SECS: u32 = 3600;
/// Kea's hooks, as Debian's kea-dhcp4-server installs them.
const KEA_HOOKS: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks";
/// Each Kea peer's HA listener port (on its segment address).
const KEA_HA_PORT: u16 = 8000;
/// The HA state in which both Kea peers serve their share.
const LOAD_BALANCING: &str = "load-balancing";
/// Seconds a node's start (Kea: its HA handshake) may take.
const START: Duration = Duration::from_secs(60);

/// What is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Setup {
    /// Two stormboot nodes on one PostgreSQL database.
    StormbootPair,
    /// Two Kea 2.2 peers, HA load-balancing, a PostgreSQL database each.
    KeaPair,
    /// One stormboot node on SQLite.
    StormbootSqlite,
}

impl Setup {
    pub const ALL: [Setup; 3] = [Setup::StormbootPair, Setup::KeaPair, Setup::StormbootSqlite];

    pub fn name(self) -> &'static str {
        match self {
            Setup::StormbootPair => "stormboot pair (PostgreSQL)",
            Setup::KeaPair => "Kea 2.2 HA pair, load-balancing (PostgreSQL)",
            Setup::StormbootSqlite => "stormboot, one node (SQLite)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Setup::StormbootPair => "stormboot-pair",
            Setup::KeaPair => "kea-ha",
            Setup::StormbootSqlite => "stormboot-sqlite",
        }
    }

    fn nodes(self) -> &'static [Node] {
        match self {
            Setup::StormbootSqlite => &[Node::A],
            _ => &Node::BOTH,
        }
    }
}

/// How a run is sized.
pub struct Size {
    /// perfdhcp's rates (new clients per second), one step each.
    pub rates: Vec<u32>,
    pub step: StepLength,
    /// New machines in the storm, and how many are in flight at once.
    pub machines: u32,
    pub window: u32,
    /// New machines per failover probe.
    pub probe_machines: u32,
    /// How long after a kill the probes go on; None: no failover measured.
    pub failover_deadline: Option<Duration>,
    /// Reservation changes timed between the stormboot nodes (add, change
    /// and remove of one machine, repeated); 0: none.
    pub propagation_changes: u32,
}

/// New leases under load.
#[derive(Debug, Serialize)]
pub struct Load {
    pub steps: Vec<Step>,
    pub end: RampEnd,
    pub storm: StormReport,
    /// ACKs in the storm by the server identifier that sent them.
    pub by_server: Vec<(Ipv4Addr, u32)>,
    /// Kea: each peer's HA state before and after the load.
    pub ha_states: Vec<(String, String)>,
    /// Kea: each peer's pkt4-ack-sent after the load.
    pub acks_sent: Vec<(String, u64)>,
}

impl Load {
    /// Both nodes of a pair bound machines in the storm.
    fn both_answered(&self) -> bool {
        self.by_server.iter().filter(|(_, n)| *n > 0).count() >= 2
    }
}

/// One node killed (SIGKILL) while new clients keep coming.
#[derive(Debug, Serialize)]
pub struct Failover {
    /// The node killed and the survivor.
    pub killed: String,
    pub survivor: String,
    /// The probe before the kill: ACKs by server identifier.
    pub before_kill: Vec<(Ipv4Addr, u32)>,
    /// From the kill to the start of the first probe whose every machine
    /// was bound; None when none was before the deadline.
    pub served_after_ms: Option<f64>,
    /// The probes' length: the figure's resolution.
    pub probe_ms: f64,
    /// Per probe: its start after the kill (ms) and machines bound of
    /// those it sent.
    pub probes: Vec<(f64, u32, u32)>,
    /// Kea: the survivor's HA state at the end.
    pub survivor_state: Option<String>,
}

/// The whole part's outcome.
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub load: Vec<(Setup, Result<Load, String>)>,
    pub failover: Vec<(Setup, Result<Failover, String>)>,
    /// Node A's API to node B's XDP (stormboot pair only).
    pub propagation: Result<ApiReport, String>,
}

/// Runs every setup in turn, each in a fresh pair of namespaces with its
/// own PostgreSQL server.
pub fn measure(dir: &Path, bins: &Bins, size: &Size) -> ClusterReport {
    // The fixture starts the daemon and the lab from these.
    std::env::set_var("STORMBOOT_BIN", &bins.daemon);
    std::env::set_var("STORMBOOT_LAB_BIN", &bins.lab);
    let mut report = ClusterReport {
        load: Vec::new(),
        failover: Vec::new(),
        propagation: Err("not measured".into()),
    };
    for setup in Setup::ALL {
        let work = dir.join("cluster").join(setup.key());
        let _ = std::fs::remove_dir_all(&work);
        if let Err(e) = std::fs::create_dir_all(&work) {
            report.load.push((setup, Err(format!("{e:#}"))));
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            one_setup(setup, &work, bins, size, &mut report)
        }));
        let failed = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
            ),
        };
        if let Some(e) = failed {
            eprintln!("bench: cluster: {}: {e}", setup.name());
            if !report.load.iter().any(|(s, _)| *s == setup) {
                report.load.push((setup, Err(e.clone())));
            }
            if setup != Setup::StormbootSqlite
                && size.failover_deadline.is_some()
                && !report.failover.iter().any(|(s, _)| *s == setup)
            {
                report.failover.push((setup, Err(e)));
            }
        }
    }
    let _ = std::fs::write(
        dir.join("cluster.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
    report
}

/// A setup's servers running in a pair: stormboot's daemons (the
/// fixture's), or Kea's peers (PIDs and control sockets).
enum Running {
    Stormboot,
    Kea(Vec<KeaPeer>),
}

struct KeaPeer {
    node: Node,
    pid: u32,
    socket: PathBuf,
    log: PathBuf,
}

fn one_setup(
    setup: Setup,
    work: &Path,
    bins: &Bins,
    size: &Size,
    report: &mut ClusterReport,
) -> Result<()> {
    eprintln!("bench: cluster: {}: starting", setup.name());
    let mut pair = Pair::new(&format!("clb-{}", &setup.key()[..5]))?;
    pair.set_log("warn");
    widen(&pair, setup)?;
    let pool_last = POOL_LAST;
    let running = match setup {
        Setup::StormbootPair => {
            for node in Node::BOTH {
                pair.start(node, "", &stormboot_body(pool_last), "");
            }
            Running::Stormboot
        }
        Setup::StormbootSqlite => {
            let config = stormboot_sqlite(pool_last, &work.join("leases.db"));
            pair.start_with(Node::A, &config);
            Running::Stormboot
        }
        Setup::KeaPair => Running::Kea(start_kea(&mut pair, work, pool_last)?),
    };
    let load = load(&pair, setup, &running, bins, size);
    if let Err(e) = &load {
        eprintln!("bench: cluster: {}: load: {e:#}", setup.name());
    }
    report
        .load
        .push((setup, load.map_err(|e| format!("{e:#}"))));
    if setup == Setup::StormbootPair && size.propagation_changes > 0 {
        eprintln!("bench: cluster: reservation propagation, node a's API to node b's XDP");
        report.propagation =
            propagation(&pair, bins, size.propagation_changes).map_err(|e| format!("{e:#}"));
    }
    if let (true, Some(deadline)) = (setup != Setup::StormbootSqlite, size.failover_deadline) {
        eprintln!("bench: cluster: {}: failover", setup.name());
        let f = failover(&mut pair, running, bins, size, deadline);
        report
            .failover
            .push((setup, f.map_err(|e| format!("{e:#}"))));
    }
    Ok(())
}

/// The last address of the pool (262,143 addresses, as in the
/// single-server bench): room for every step of the ramp, the storm and
/// the probes.
const POOL_LAST: Ipv4Addr = Ipv4Addr::new(10, 55, 255, 254);

/// The fixture's /24s become the bench's /12 on the segment, and the
/// client gets an address: perfdhcp relays from it.
fn widen(pair: &Pair, setup: Setup) -> Result<()> {
    for &node in setup.nodes() {
        let addr = node.address();
        for args in [
            ["addr", "del", &format!("{addr}/24"), "dev", SERVER_IF],
            [
                "addr",
                "add",
                &format!("{addr}/{PREFIX_LEN}"),
                "dev",
                SERVER_IF,
            ],
        ] {
            let mut ip = pair.command(node, "ip");
            ip.args(args);
            run(ip)?;
        }
    }
    let mut ip = pair.client_command("ip");
    ip.args([
        "addr",
        "add",
        &format!("{CLIENT_ADDR}/{PREFIX_LEN}"),
        "dev",
        CLIENT_IF,
    ]);
    run(ip)?;
    Ok(())
}

fn run(mut cmd: Command) -> Result<std::process::Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// The subnet and pool every stormboot node serves.
fn stormboot_body(pool_last: Ipv4Addr) -> String {
    format!(
        "[[subnet]]\ncidr = \"{SUBNET}/{PREFIX_LEN}\"\nrouters = [\"10.50.0.1\"]\n\
         lease_time = \"{LEASE_SECS}s\"\npool = [\"{POOL_FIRST}-{pool_last}\"]\n"
    )
}

/// One node on its own SQLite file: no `[cluster]`.
fn stormboot_sqlite(pool_last: Ipv4Addr, db: &Path) -> String {
    format!(
        "[server]\ninterface = \"{SERVER_IF}\"\naddress = \"{}\"\n\n\
         [api]\ntoken = \"{}\"\n\n{}\n[store]\npath = \"{}\"\n",
        Node::A.address(),
        stormboot_testbed::cluster::TOKEN,
        stormboot_body(pool_last),
        db.display()
    )
}

/// The two halves of the pool, one per Kea peer, as the ARM's
/// load-balancing example splits it (by the HA_<name> client classes).
fn pool_halves(last: Ipv4Addr) -> [(Ipv4Addr, Ipv4Addr); 2] {
    let (first, last) = (u32::from(POOL_FIRST), u32::from(last));
    let mid = first + (last - first) / 2;
    [
        (Ipv4Addr::from(first), Ipv4Addr::from(mid)),
        (Ipv4Addr::from(mid + 1), Ipv4Addr::from(last)),
    ]
}

/// Kea peer `node`'s configuration, as the ARM's load-balancing example
/// writes it: this-server-name, both peers with their roles, the failure
/// detection timers, lease_cmds beside the HA hook, and HTTP on a
/// dedicated listener in each peer (multi-threaded, no kea-ctrl-agent).
/// Its leases go to a PostgreSQL database of its own. The timers match
/// the stormboot nodes' heartbeat (1 s) and dead_after (3 s);
/// max-unacked-clients 0 makes the partner down as soon as it stops
/// answering for max-response-delay, without waiting for clients to
/// retransmit.
fn kea_config(node: Node, work: &Path, pool_last: Ipv4Addr) -> Value {
    let pools: Vec<Value> = Node::BOTH
        .iter()
        .zip(pool_halves(pool_last))
        .map(|(peer, (first, last))| {
            json!({
                "pool": format!("{first} - {last}"),
                "client-class": format!("HA_{}", peer.name()),
            })
        })
        .collect();
    let peers: Vec<Value> = Node::BOTH
        .iter()
        .map(|peer| {
            json!({
                "name": peer.name(),
                "url": format!("http://{}:{KEA_HA_PORT}/", peer.address()),
                "role": if *peer == Node::A { "primary" } else { "secondary" },
                "auto-failover": true,
            })
        })
        .collect();
    json!({ "Dhcp4": {
        "interfaces-config": { "interfaces": [SERVER_IF] },
        "multi-threading": { "enable-multi-threading": true },
        "control-socket": {
            "socket-type": "unix",
            "socket-name": work.join(format!("kea-{}.sock", node.name())),
        },
        "lease-database": {
            "type": "postgresql",
            "name": kea_database(node),
            "host": DB_ADDR,
            "user": "postgres",
        },
        "valid-lifetime": LEASE_SECS,
        "hooks-libraries": [
            { "library": format!("{KEA_HOOKS}/libdhcp_lease_cmds.so") },
            {
                "library": format!("{KEA_HOOKS}/libdhcp_ha.so"),
                "parameters": { "high-availability": [ {
                    "this-server-name": node.name(),
                    "mode": "load-balancing",
                    "heartbeat-delay": 1000,
                    "max-response-delay": 3000,
                    "max-ack-delay": 1000,
                    "max-unacked-clients": 0,
                    "sync-timeout": 60000,
                    "multi-threading": {
                        "enable-multi-threading": true,
                        "http-dedicated-listener": true,
                        "http-listener-threads": 0,
                        "http-client-threads": 0,
                    },
                    "peers": peers,
                } ] },
            },
        ],
        "subnet4": [ {
            "id": 1,
            "subnet": format!("{SUBNET}/{PREFIX_LEN}"),
            "pools": pools,
            "option-data": [ { "name": "routers", "data": Node::A.address() } ],
        } ],
        "loggers": [ {
            "name": "kea-dhcp4",
            "severity": "WARN",
            "output_options": [ { "output": work.join(format!("kea-{}.log", node.name())) } ],
        } ],
    } })
}

fn kea_database(node: Node) -> String {
    format!("kea_{}", node.name())
}

/// Both Kea peers: a database each with Kea's schema (`kea-admin db-init
/// pgsql`), each peer started in its node's namespace; returns once both
/// say they are in the load-balancing state.
fn start_kea(pair: &mut Pair, work: &Path, pool_last: Ipv4Addr) -> Result<Vec<KeaPeer>> {
    let mut peers = Vec::new();
    for node in Node::BOTH {
        let db = kea_database(node);
        pair.pg.create_database(&db)?;
        let mut init = Command::new("kea-admin");
        init.args(["db-init", "pgsql", "-u", "postgres", "-n", &db, "-h"])
            .arg(pair.pg.socket_dir());
        run(init).context("kea-admin db-init pgsql")?;
        let config = work.join(format!("kea-{}.conf", node.name()));
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&kea_config(node, work, pool_last))?,
        )?;
        // In the node's namespace: Kea checks that the interface exists.
        let check = pair
            .command(node, "kea-dhcp4")
            .arg("-t")
            .arg(&config)
            .output()?;
        ensure!(
            check.status.success(),
            "kea-dhcp4 -t refuses {}: {}{}",
            config.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let run_dir = work.join(format!("run-{}", node.name()));
        std::fs::create_dir_all(&run_dir)?;
        let log = work.join(format!("kea-{}.stderr", node.name()));
        let mut kea = pair.command(node, "kea-dhcp4");
        kea.arg("-c")
            .arg(&config)
            .env("KEA_PIDFILE_DIR", &run_dir)
            .env("KEA_LOCKFILE_DIR", &run_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let pid = pair.spawn_in(node, kea)?;
        peers.push(KeaPeer {
            node,
            pid,
            socket: work.join(format!("kea-{}.sock", node.name())),
            log: work.join(format!("kea-{}.log", node.name())),
        });
    }
    for p in &peers {
        let state = wait_for(START, || {
            ha_state(&p.socket).ok().filter(|s| s == LOAD_BALANCING)
        });
        if state.is_none() {
            bail!(
                "Kea peer {} did not reach load-balancing within {START:?} (state {:?}):\n{}\n{}",
                p.node.name(),
                ha_state(&p.socket).map_err(|e| format!("{e:#}")),
                std::fs::read_to_string(&p.log).unwrap_or_default(),
                std::fs::read_to_string(p.log.with_extension("stderr")).unwrap_or_default()
            );
        }
    }
    Ok(peers)
}

/// One command on a Kea control socket: its answer's first element.
fn kea_command(socket: &Path, command: &Value) -> Result<Value> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(command.to_string().as_bytes())?;
    let mut text = String::new();
    // Kea closes the connection after its answer; a read timeout with a
    // whole JSON document read is an answer too.
    let _ = s.read_to_string(&mut text);
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("Kea's answer to {command}: {text:?}"))?;
    let first = if v.is_array() { v[0].clone() } else { v };
    ensure!(first["result"] == 0, "Kea refused {command}: {first}");
    Ok(first)
}

/// A Kea peer's HA state (`ha-heartbeat`).
fn ha_state(socket: &Path) -> Result<String> {
    let a = kea_command(socket, &json!({ "command": "ha-heartbeat" }))?;
    a["arguments"]["state"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no state in {a}"))
}

/// A Kea peer's HA state, and where it went within 15 s when it was not
/// load-balancing: a peer whose heartbeats came late under the load passes
/// through communication-recovery and comes back, which the report shows
/// ("communication-recovery, then load-balancing").
fn settled_state(socket: &Path) -> Result<String> {
    let first = ha_state(socket)?;
    if first == LOAD_BALANCING {
        return Ok(first);
    }
    let last = wait_for(Duration::from_secs(15), || {
        ha_state(socket).ok().filter(|s| s == LOAD_BALANCING)
    })
    .map_or_else(|| ha_state(socket), Ok)?;
    Ok(format!("{first}, then {last}"))
}

/// A Kea peer's pkt4-ack-sent statistic.
fn acks_sent(socket: &Path) -> Result<u64> {
    let a = kea_command(
        socket,
        &json!({ "command": "statistic-get", "arguments": { "name": "pkt4-ack-sent" } }),
    )?;
    a["arguments"]["pkt4-ack-sent"][0][0]
        .as_u64()
        .with_context(|| format!("no pkt4-ack-sent in {a}"))
}

/// `stormboot-lab storm --json --bindings` on CLIENT_CPU in the client
/// namespace.
fn storm(pair: &Pair, lab: &Path, args: &[&str]) -> Result<StormReport> {
    let mut c = pair.client_command("taskset");
    c.args(["-c", CLIENT_CPU])
        .arg(lab)
        .args(["--log", "warn", "storm", "--json", "--bindings"])
        .args(["--interface", CLIENT_IF])
        .args(args);
    let out = run(c).context("the storm client")?;
    reports::decode("the storm client", &out.stdout)
}

/// ACKs by server identifier.
fn by_server(r: &StormReport) -> Vec<(Ipv4Addr, u32)> {
    let mut by = std::collections::BTreeMap::new();
    for b in &r.bindings {
        *by.entry(b.server).or_insert(0) += 1;
    }
    by.into_iter().collect()
}

/// The first MAC of run `i` of new machines: never used before in a run.
fn fresh_mac(i: u32) -> String {
    let b = i.to_be_bytes();
    format!("02:fa:{:02x}:{:02x}:00:00", b[2], b[3])
}

fn load(pair: &Pair, setup: Setup, running: &Running, bins: &Bins, size: &Size) -> Result<Load> {
    let states = |when: &str| -> Result<Vec<(String, String)>> {
        let Running::Kea(peers) = running else {
            return Ok(Vec::new());
        };
        peers
            .iter()
            .map(|p| {
                Ok((
                    format!("{} {when}", p.node.name()),
                    settled_state(&p.socket)?,
                ))
            })
            .collect()
    };
    let mut ha_states = states("before")?;
    // One machine bound: the servers answer.
    let probe = wait_for(Duration::from_secs(30), || {
        storm(
            pair,
            &bins.lab,
            &[
                "--count",
                "1",
                "--first-mac",
                "02:fb:00:00:00:01",
                "--timeout-ms",
                "500",
            ],
        )
        .ok()
        .filter(StormReport::all_bound)
    });
    ensure!(probe.is_some(), "no new machine was bound within 30 s");

    let client = |program: &str| pair.client_command(program);
    let (steps, end) = super::ramp(
        &client,
        setup.name(),
        &size.rates,
        size.step,
        &|| None,
        |c, i| {
            // Broadcast from the client's interface (no server named):
            // every server on the segment hears every request.
            c.args(["-l", CLIENT_IF]);
            super::new_clients(c, i);
        },
    )?;
    eprintln!(
        "bench: cluster: {}: storm of {} new machines",
        setup.name(),
        size.machines
    );
    let storm = storm(
        pair,
        &bins.lab,
        &[
            "--count",
            &size.machines.to_string(),
            "--first-mac",
            &fresh_mac(0),
            "--window",
            &size.window.to_string(),
            "--deadline-ms",
            "60000",
        ],
    )?;
    ha_states.extend(states("after")?);
    let acks_sent = match running {
        Running::Kea(peers) => peers
            .iter()
            .map(|p| Ok((p.node.name().to_owned(), acks_sent(&p.socket)?)))
            .collect::<Result<Vec<_>>>()?,
        Running::Stormboot => Vec::new(),
    };
    let by_server = by_server(&storm);
    let load = Load {
        steps,
        end,
        storm: StormReport {
            bindings: Vec::new(),
            ..storm
        },
        by_server,
        ha_states,
        acks_sent,
    };
    if setup == Setup::KeaPair {
        kea_pair_served(&load)?;
    }
    Ok(load)
}

/// A Kea figure is a pair's only when both peers were (or came back to)
/// the load-balancing state before and after the load and both answered:
/// otherwise it is one Kea's.
fn kea_pair_served(load: &Load) -> Result<()> {
    ensure!(
        load.ha_states.len() == 4
            && load
                .ha_states
                .iter()
                .all(|(_, s)| s.ends_with(LOAD_BALANCING)),
        "the Kea peers were not both in load-balancing before and after the load: {:?}",
        load.ha_states
    );
    ensure!(
        load.both_answered()
            && load.acks_sent.len() == 2
            && load.acks_sent.iter().all(|(_, n)| *n > 0),
        "one Kea peer answered every machine: {:?} {:?}",
        load.by_server,
        load.acks_sent
    );
    Ok(())
}

/// Node a killed with SIGKILL; probes of new machines (one try each)
/// until one where every machine is bound.
fn failover(
    pair: &mut Pair,
    running: Running,
    bins: &Bins,
    size: &Size,
    deadline: Duration,
) -> Result<Failover> {
    let (dead, survivor) = (Node::A, Node::B);
    let mut n = 1_000;
    let probe = |pair: &Pair, n: &mut u32| -> Result<StormReport> {
        *n += 1;
        storm(
            pair,
            &bins.lab,
            &[
                "--count",
                &size.probe_machines.to_string(),
                "--first-mac",
                &fresh_mac(*n),
                "--timeout-ms",
                "500",
                "--jitter-ms",
                "0",
                "--tries",
                "1",
            ],
        )
    };
    // Every machine is served before the kill.
    let before = probe(pair, &mut n)?;
    ensure!(
        before.all_bound(),
        "before the kill, {} of {} probe machines were bound",
        before.bound,
        before.machines
    );
    let survivor_socket = match &running {
        Running::Kea(peers) => {
            let d = peers.iter().find(|p| p.node == dead).context("peer a")?;
            let s = peers
                .iter()
                .find(|p| p.node == survivor)
                .context("peer b")?;
            pair.kill_child(d.pid)?;
            Some(s.socket.clone())
        }
        Running::Stormboot => {
            pair.kill(dead);
            None
        }
    };
    let killed = Instant::now();
    let mut probes = Vec::new();
    let mut served = None;
    let mut longest: f64 = 0.0;
    while killed.elapsed() < deadline {
        let start = killed.elapsed().as_secs_f64() * 1e3;
        let r = probe(pair, &mut n)?;
        longest = longest.max(killed.elapsed().as_secs_f64() * 1e3 - start);
        probes.push((start, r.bound, r.machines));
        if r.all_bound() {
            served = Some(start);
            break;
        }
    }
    let survivor_state = survivor_socket
        .as_deref()
        .map(|s| ha_state(s).unwrap_or_else(|e| format!("{e:#}")));
    Ok(Failover {
        killed: dead.name().into(),
        survivor: survivor.name().into(),
        before_kill: by_server(&before),
        served_after_ms: served,
        probe_ms: longest,
        probes,
        survivor_state,
    })
}

/// `stormboot-lab bench-api` through node a's API, counting only node b's
/// OFFERs, sent to node b's Ethernet address: a pilot cycle first, so a
/// build without propagation is told in seconds rather than timed out
/// change by change.
fn propagation(pair: &Pair, bins: &Bins, changes: u32) -> Result<ApiReport> {
    let mac = {
        // Not /sys/class/net: it shows the namespace sysfs was mounted in.
        let mut ip = pair.command(Node::B, "ip");
        ip.args(["-j", "link", "show", SERVER_IF]);
        let v: Value = serde_json::from_slice(&run(ip)?.stdout)?;
        v[0]["address"]
            .as_str()
            .map(str::to_owned)
            .context("node b's sb0 has no Ethernet address")?
    };
    let bench = |cycles: u32| -> Result<ApiReport> {
        let mut c = pair.command(Node::A, &bins.lab.to_string_lossy());
        c.args([
            "--log",
            "warn",
            "bench-api",
            "--json",
            "--interface",
            CLIENT_IF,
        ])
        .arg("--netns")
        .arg(pair.client_netns())
        .args(["--cycles", &cycles.to_string()])
        .args(["--probe-us", "2000", "--timeout-ms", "1000"])
        .args(["--server-id", Node::B.address(), "--server-mac", &mac])
        .arg("--config")
        .arg(pair.config_path(Node::A));
        let out = run(c).context("stormboot-lab bench-api")?;
        reports::decode("bench-api", &out.stdout)
    };
    // A removal node b never heard of the addition for reads as seen at
    // once: only additions and changes tell that changes reach node b.
    let pilot = bench(1)?;
    if pilot.added.changes + pilot.changed.changes == 0 {
        bail!(
            "neither the addition nor the change made through node a reached node b's XDP \
             within 1 s (a pilot cycle)"
        );
    }
    bench(changes.div_ceil(3))
}

/// The smoke run fails unless every setup started (the Kea peers in
/// load-balancing, both answering) and bound every machine of its storm
/// and some of perfdhcp's.
pub fn smoke_verdict(r: &ClusterReport) -> Result<()> {
    let mut failures = Vec::new();
    for setup in Setup::ALL {
        match r.load.iter().find(|(s, _)| *s == setup).map(|(_, l)| l) {
            None => failures.push(format!("{}: not run", setup.name())),
            Some(Err(e)) => failures.push(format!("{}: {e}", setup.name())),
            Some(Ok(l)) => {
                if !l.storm.all_bound() {
                    failures.push(format!(
                        "{}: storm bound {} of {}",
                        setup.name(),
                        l.storm.bound,
                        l.storm.machines
                    ));
                }
                if l.steps.first().is_none_or(|s| s.acks == 0) {
                    failures.push(format!(
                        "{}: perfdhcp: no exchange completed: {:?}",
                        setup.name(),
                        l.steps.first()
                    ));
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("cluster smoke run failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// The part's section of results.md.
pub fn markdown(r: &ClusterReport, size: &Size) -> String {
    let mut t = String::new();
    let length = match size.step {
        StepLength::Seconds(s) => format!("{s} s per rate"),
        StepLength::Exchanges(n) => format!("{n} exchanges per rate"),
    };
    let _ = writeln!(
        t,
        "Two servers on one segment, sharing one PostgreSQL 15 server (fsync on) over links of \
         their own, beside one stormboot node on SQLite; the same load from the client \
         namespace for each, broadcast, so every server hears every request.\n"
    );
    let _ = writeln!(
        t,
        "### New leases, durable\n\nperfdhcp with new MACs, relayed from the client's address \
         and broadcast; rates ramp ({length}) until more than {}% of either exchange drops. \
         Then a storm of {} new machines ({} in flight, RFC 2131 retransmission).\n",
        perfdhcp::MAX_DROPS_PERCENT,
        size.machines,
        size.window
    );
    let _ = writeln!(
        t,
        "| setup | highest clean rate (asked) | leases/s | drops DO / RA % | ramp ended | storm leases/s | storm lost | storm p50 / p99 (ms) | ACKs by server |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (setup, load) in &r.load {
        match load {
            Err(e) => {
                let _ = writeln!(t, "| {} | {} | | | | | | | |", setup.name(), cell(e));
            }
            Ok(l) => {
                let best = perfdhcp::best(&l.steps);
                let by = servers(&l.by_server);
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | {:.1} / {:.1} | {by} |",
                    setup.name(),
                    best.map_or("none clean".into(), |b| b.rate.to_string()),
                    best.map_or("-".into(), |b| format!("{:.0}", b.exchanges_per_sec())),
                    best.map_or("-".into(), |b| format!(
                        "{:.3} / {:.3}",
                        b.do_drops_percent, b.ra_drops_percent
                    )),
                    ended(&l.steps, l.end),
                    l.storm.exchanges_per_sec,
                    l.storm.lost,
                    l.storm.latency_p50_ms,
                    l.storm.latency_p99_ms,
                );
            }
        }
    }
    let rate = |s: Setup| {
        r.load
            .iter()
            .find(|(x, _)| *x == s)
            .and_then(|(_, l)| perfdhcp::best(&l.as_ref().ok()?.steps).map(Step::exchanges_per_sec))
    };
    if let (Some(sb), Some(kea)) = (rate(Setup::StormbootPair), rate(Setup::KeaPair)) {
        if kea > 0.0 {
            let _ = writeln!(
                t,
                "\nstormboot pair / Kea HA pair, highest clean rate: {:.2}x (goal: at least 2x).",
                sb / kea
            );
        }
    }
    for (setup, load) in &r.load {
        if let Ok(l) = load {
            if !l.ha_states.is_empty() {
                let states: Vec<String> = l
                    .ha_states
                    .iter()
                    .map(|(p, s)| format!("{p}: {s}"))
                    .collect();
                let acks: Vec<String> = l
                    .acks_sent
                    .iter()
                    .map(|(p, n)| format!("{p}: {n}"))
                    .collect();
                let _ = writeln!(
                    t,
                    "\n{}: HA states {}; ACKs sent per peer over the run {}.",
                    setup.name(),
                    states.join(", "),
                    acks.join(", ")
                );
            }
        }
    }
    let _ = writeln!(
        t,
        "\n| setup | rate asked | DISCOVERs sent/s | leases/s | drops DO / RA % | avg delay DO / RA (ms) |\n|---|---|---|---|---|---|"
    );
    for (setup, load) in &r.load {
        let Ok(l) = load else { continue };
        for s in &l.steps {
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.0} | {:.3} / {:.3} | {:.2} / {:.2} |",
                setup.name(),
                s.rate,
                s.offered_per_sec(),
                s.exchanges_per_sec(),
                s.do_drops_percent,
                s.ra_drops_percent,
                s.do_avg_delay_ms,
                s.ra_avg_delay_ms
            );
        }
    }

    failover_markdown(&mut t, r, size);
    propagation_markdown(&mut t, r, size);
    t
}

fn failover_markdown(t: &mut String, r: &ClusterReport, size: &Size) {
    let Some(deadline) = size.failover_deadline else {
        let _ = writeln!(t, "\n### Failover\n\nNot measured in this run.");
        return;
    };
    let _ = writeln!(
        t,
        "\n### Failover\n\nNode a gets SIGKILL; then probes of {} new machines each (one try, \
         500 ms) until one where every machine is bound: the time from the kill to that \
         probe's start (goal for stormboot: at most 6 s).\n",
        size.probe_machines
    );
    let _ = writeln!(
        t,
        "| setup | served by the survivor after (s) | probe length (ms) | ACKs by server before the kill | probes after: start, bound | survivor's HA state |\n|---|---|---|---|---|---|"
    );
    for (setup, f) in &r.failover {
        match f {
            Err(e) => {
                let _ = writeln!(t, "| {} | {} | | | | |", setup.name(), cell(e));
            }
            Ok(f) => {
                let _ = writeln!(
                    t,
                    "| {} | {} | {:.0} | {} | {} | {} |",
                    setup.name(),
                    f.served_after_ms.map_or(
                        format!("not within {} s", deadline.as_secs()),
                        |ms| format!("{:.2}", ms / 1e3)
                    ),
                    f.probe_ms,
                    servers(&f.before_kill),
                    f.probes
                        .iter()
                        .map(|(at, b, m)| format!("{:.1} s: {b}/{m}", at / 1e3))
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.survivor_state.as_deref().unwrap_or("-")
                );
            }
        }
    }
}

fn propagation_markdown(t: &mut String, r: &ClusterReport, size: &Size) {
    let _ = writeln!(
        t,
        "\n### Reservation propagation\n\nA reservation added, changed or removed through node \
         a's API; DISCOVERs for its MAC sent to node b's Ethernet address, one at a time; the \
         time from sending the API request to the first DISCOVER node b's XDP program answered \
         the new way (an OFFER with option 54 = node b, of the new address; for a removal, no \
         longer that address) (goal: p99 at most 100 ms).\n"
    );
    match &r.propagation {
        Err(_) if size.propagation_changes == 0 => {
            let _ = writeln!(t, "Not measured in this run.");
        }
        Err(e) => {
            let _ = writeln!(t, "Not measured: {e}");
        }
        Ok(p) => {
            let _ = writeln!(
                t,
                "| change | count | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|"
            );
            for (label, s) in [
                ("any", &p.visible),
                ("added", &p.added),
                ("changed", &p.changed),
                ("removed", &p.removed),
                ("node a's 200 (not node b)", &p.api),
            ] {
                let _ = writeln!(
                    t,
                    "| {label} | {} | {:.1} | {:.1} | {:.1} |",
                    s.changes,
                    s.p50_us as f64 / 1e3,
                    s.p99_us as f64 / 1e3,
                    s.max_us as f64 / 1e3
                );
            }
            if p.timeouts > 0 {
                let _ = writeln!(
                    t,
                    "\n{} change(s) were not answered the new way by node b within 1 s.",
                    p.timeouts
                );
            }
        }
    }
}

/// "10.50.0.1: 40, 10.50.0.2: 38".
fn servers(by: &[(Ipv4Addr, u32)]) -> String {
    by.iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cell(e: &str) -> String {
    e.lines().next().unwrap_or("").replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kea_peers_are_configured_as_the_arm_load_balancing_example() {
        let work = Path::new("/tmp/w");
        let (a, b) = (
            kea_config(Node::A, work, POOL_LAST),
            kea_config(Node::B, work, POOL_LAST),
        );
        let ha = |c: &Value| {
            c["Dhcp4"]["hooks-libraries"][1]["parameters"]["high-availability"][0].clone()
        };
        assert_eq!(ha(&a)["this-server-name"], "a");
        assert_eq!(ha(&b)["this-server-name"], "b");
        for c in [&a, &b] {
            let h = ha(c);
            assert_eq!(h["mode"], "load-balancing");
            assert_eq!(h["peers"][0]["role"], "primary");
            assert_eq!(h["peers"][1]["role"], "secondary");
            assert_eq!(h["peers"][1]["url"], "http://10.50.0.2:8000/");
            assert_eq!(h["multi-threading"]["http-dedicated-listener"], true);
            assert_eq!(c["Dhcp4"]["lease-database"]["type"], "postgresql");
            assert_eq!(c["Dhcp4"]["lease-database"]["host"], DB_ADDR);
            assert!(c["Dhcp4"]["hooks-libraries"][0]["library"]
                .as_str()
                .unwrap()
                .ends_with("libdhcp_lease_cmds.so"));
            // Both peers serve the same two pools, one per HA class.
            assert_eq!(
                c["Dhcp4"]["subnet4"][0]["pools"],
                a["Dhcp4"]["subnet4"][0]["pools"]
            );
        }
        // A database each.
        assert_eq!(a["Dhcp4"]["lease-database"]["name"], "kea_a");
        assert_eq!(b["Dhcp4"]["lease-database"]["name"], "kea_b");
        let pools = &a["Dhcp4"]["subnet4"][0]["pools"];
        assert_eq!(pools[0]["client-class"], "HA_a");
        assert_eq!(pools[1]["client-class"], "HA_b");
    }

    #[test]
    fn the_pool_halves_cover_the_pool_without_overlap() {
        let [(a0, a1), (b0, b1)] = pool_halves(POOL_LAST);
        assert_eq!(a0, POOL_FIRST);
        assert_eq!(b1, POOL_LAST);
        assert_eq!(u32::from(a1) + 1, u32::from(b0));
        assert!(u32::from(a1) - u32::from(a0) >= 131_000);
    }

    fn load(states: &[&str], by_server: Vec<(Ipv4Addr, u32)>, acks: [u64; 2]) -> Load {
        Load {
            steps: vec![Step {
                rate: 200,
                period: 0.5,
                sent: 100,
                acks: 100,
                ..Step::default()
            }],
            end: RampEnd::Exhausted,
            storm: StormReport {
                machines: 50,
                bound: 50,
                exchanges_per_sec: 480.0,
                latency_p50_ms: 90.0,
                latency_p99_ms: 101.0,
                ..Default::default()
            },
            by_server,
            ha_states: states
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("peer {i}"), (*s).to_owned()))
                .collect(),
            acks_sent: vec![("a".into(), acks[0]), ("b".into(), acks[1])],
        }
    }

    #[test]
    fn a_kea_figure_counts_only_when_both_peers_balanced_and_answered() {
        let (a, b) = (Ipv4Addr::new(10, 50, 0, 1), Ipv4Addr::new(10, 50, 0, 2));
        let lb = ["load-balancing"; 4];
        assert!(kea_pair_served(&load(&lb, vec![(a, 25), (b, 25)], [80, 71])).is_ok());
        // Late heartbeats under the load, and back: both still served.
        let back = [
            "load-balancing",
            "load-balancing",
            "communication-recovery, then load-balancing",
            "load-balancing",
        ];
        assert!(kea_pair_served(&load(&back, vec![(a, 25), (b, 25)], [80, 71])).is_ok());
        // One peer in partner-down serves everyone: a single Kea's figure.
        let down = [
            "load-balancing",
            "load-balancing",
            "partner-down",
            "load-balancing",
        ];
        let e = kea_pair_served(&load(&down, vec![(a, 25), (b, 25)], [80, 71])).unwrap_err();
        assert!(e.to_string().contains("partner-down"), "{e}");
        let e = kea_pair_served(&load(&lb, vec![(a, 50)], [150, 0])).unwrap_err();
        assert!(e.to_string().contains("one Kea peer"), "{e}");
    }

    #[test]
    fn the_tables_give_each_setup_its_figures_and_the_ratio_to_kea() {
        let (a, b) = (Ipv4Addr::new(10, 50, 0, 1), Ipv4Addr::new(10, 50, 0, 2));
        let mut sb = load(&[], vec![(a, 30), (b, 20)], [0, 0]);
        sb.acks_sent.clear();
        sb.steps[0] = Step {
            rate: 200,
            period: 1.0,
            sent: 400,
            acks: 400,
            ..Step::default()
        };
        let kea = load(&["load-balancing"; 4], vec![(a, 25), (b, 25)], [80, 71]);
        let r = ClusterReport {
            load: vec![
                (Setup::StormbootPair, Ok(sb)),
                (Setup::KeaPair, Ok(kea)),
                (Setup::StormbootSqlite, Err("did not start".into())),
            ],
            failover: vec![(
                Setup::KeaPair,
                Ok(Failover {
                    killed: "a".into(),
                    survivor: "b".into(),
                    before_kill: vec![(a, 8), (b, 8)],
                    served_after_ms: Some(2670.0),
                    probe_ms: 552.0,
                    probes: vec![(0.0, 7, 16), (2670.0, 16, 16)],
                    survivor_state: Some("partner-down".into()),
                }),
            )],
            propagation: Err("neither the addition nor the change reached node b".into()),
        };
        let size = Size {
            rates: vec![200],
            step: StepLength::Seconds(1),
            machines: 50,
            window: 64,
            probe_machines: 16,
            failover_deadline: Some(Duration::from_secs(30)),
            propagation_changes: 201,
        };
        let md = markdown(&r, &size);
        assert!(
            md.contains("| stormboot pair (PostgreSQL) | 200 | 400 | 0.000 / 0.000 |"),
            "{md}"
        );
        assert!(
            md.contains("| 480 | 0 | 90.0 / 101.0 | 10.50.0.1: 25, 10.50.0.2: 25 |"),
            "{md}"
        );
        // 400 leases/s against Kea's 200.
        assert!(md.contains("highest clean rate: 2.00x"), "{md}");
        assert!(
            md.contains("| stormboot, one node (SQLite) | did not start |"),
            "{md}"
        );
        assert!(
            md.contains("HA states peer 0: load-balancing, peer 1: load-balancing"),
            "{md}"
        );
        assert!(
            md.contains("| 2.67 | 552 | 10.50.0.1: 8, 10.50.0.2: 8 | 0.0 s: 7/16, 2.7 s: 16/16 | partner-down |"),
            "{md}"
        );
        assert!(md.contains("Not measured: neither the addition"), "{md}");
    }

    #[test]
    fn the_smoke_run_fails_unless_every_setup_answered() {
        let (a, b) = (Ipv4Addr::new(10, 50, 0, 1), Ipv4Addr::new(10, 50, 0, 2));
        let ok = || load(&["load-balancing"; 4], vec![(a, 25), (b, 25)], [80, 71]);
        let report = |kea: Result<Load, String>| ClusterReport {
            load: vec![
                (Setup::StormbootPair, Ok(ok())),
                (Setup::KeaPair, kea),
                (Setup::StormbootSqlite, Ok(ok())),
            ],
            failover: Vec::new(),
            propagation: Err("not measured".into()),
        };
        assert!(smoke_verdict(&report(Ok(ok()))).is_ok());
        let e =
            smoke_verdict(&report(Err("peer b did not reach load-balancing".into()))).unwrap_err();
        assert!(e.to_string().contains("Kea 2.2 HA pair"), "{e}");
        let mut lost = ok();
        lost.storm.bound = 49;
        assert!(smoke_verdict(&report(Ok(lost))).is_err());
    }
}
