//! Two stormboot nodes on one DHCP segment, sharing one PostgreSQL server
//! over links of their own, and a client namespace: the topology of a rack
//! with a primary and a secondary boot server.
//!
//! ```text
//!  sb-<name>-a                 sb-<name>-sw                    sb-<name>-b
//!    sb0 10.50.0.1 ---- pa ┐                 ┌ pb ---- sb0 10.50.0.2
//!                          sbbr0 (segment) ──┤
//!                          └── pc ---- sbc0 (sb-<name>-cli)
//!    sbd 10.99.0.2 ---- da ┐                 ┌ db ---- sbd 10.99.0.3
//!                          sbdb 10.99.0.1 (PostgreSQL listens here)
//! ```
//!
//! Each node runs its own daemon and XDP program on its sb0; the pass-only
//! program runs on pa and pb, so XDP_TX frames reach the bridge in driver
//! mode. Cutting a node from the database takes its da or db down: its
//! segment stays up. Everything is torn down on drop, children by PID.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::postgres::Postgres;
use crate::reports::{self, StormReport};
use crate::{
    add_bridge, binary, ip, ns_command, ns_name, remove_daemon_pins, run_in, wait_for, xdp_on,
    Children, Scratch, CLIENT_IF, DAEMON_START, SERVER_IF,
};

/// The database's address on its own bridge, and who may connect.
pub const DB_ADDR: &str = "10.99.0.1";
const DB_NET: &str = "10.99.0.0/24";
const SEGMENT_BRIDGE: &str = "sbbr0";
const DB_BRIDGE: &str = "sbdb";
/// The database, as every node's config names it.
pub const DATABASE: &str = "stormboot";
/// Every node's `api.token`; `Pair::api` sends it.
pub const TOKEN: &str = "cluster-token-5c1e";

/// One of the two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    A,
    B,
}

impl Node {
    pub const BOTH: [Node; 2] = [Node::A, Node::B];

    /// Its `cluster.node` name.
    pub fn name(self) -> &'static str {
        match self {
            Node::A => "a",
            Node::B => "b",
        }
    }

    /// Its address on the segment: its server identifier.
    pub fn address(self) -> &'static str {
        match self {
            Node::A => "10.50.0.1",
            Node::B => "10.50.0.2",
        }
    }

    fn db_address(self) -> &'static str {
        match self {
            Node::A => "10.99.0.2",
            Node::B => "10.99.0.3",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    pub fn other(self) -> Node {
        match self {
            Node::A => Node::B,
            Node::B => Node::A,
        }
    }
}

/// The namespaces, the database, and the daemons running in them.
pub struct Pair {
    // Dropped first: the daemons and the pass programs, then the server,
    // then the namespaces (in Drop) and the directory.
    children: Children,
    pub pg: Postgres,
    pub scratch: Scratch,
    name: String,
    switch_ns: String,
    client_ns: String,
    node_ns: [String; 2],
    daemons: [Option<u32>; 2],
    /// The daemons' log filter (`STORMBOOT_LOG`).
    log: String,
}

fn netns(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

impl Pair {
    /// Builds the topology and starts PostgreSQL on the database bridge,
    /// with an empty database `DATABASE`.
    pub fn new(name: &str) -> anyhow::Result<Pair> {
        crate::check_privileges()?;
        let (sw, cli) = (ns_name(name, "sw"), ns_name(name, "cli"));
        let nodes = [ns_name(name, "a"), ns_name(name, "b")];
        for ns in [&sw, &cli, &nodes[0], &nodes[1]] {
            delete_namespace(ns);
            ip(&["netns", "add", ns])?;
        }
        let link = |a: &str, a_ns: &str, b: &str, b_ns: &str| {
            ip(&[
                "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
            ])
        };
        for bridge in [SEGMENT_BRIDGE, DB_BRIDGE] {
            add_bridge(&sw, bridge)?;
        }
        ip(&[
            "-n",
            &sw,
            "addr",
            "add",
            &format!("{DB_ADDR}/24"),
            "dev",
            DB_BRIDGE,
        ])?;
        link(CLIENT_IF, &cli, "pc", &sw)?;
        ip(&["-n", &sw, "link", "set", "pc", "master", SEGMENT_BRIDGE])?;
        for node in Node::BOTH {
            let ns = &nodes[node.index()];
            let (port, db_port) = (format!("p{}", node.name()), format!("d{}", node.name()));
            link(SERVER_IF, ns, &port, &sw)?;
            link("sbd", ns, &db_port, &sw)?;
            ip(&["-n", &sw, "link", "set", &port, "master", SEGMENT_BRIDGE])?;
            ip(&["-n", &sw, "link", "set", &db_port, "master", DB_BRIDGE])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", node.address()),
                "dev",
                SERVER_IF,
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", node.db_address()),
                "dev",
                "sbd",
            ])?;
            for ifname in ["lo", SERVER_IF, "sbd"] {
                ip(&["-n", ns, "link", "set", ifname, "up"])?;
            }
            for ifname in [port.as_str(), db_port.as_str()] {
                ip(&["-n", &sw, "link", "set", ifname, "up"])?;
            }
        }
        for ifname in ["lo", SEGMENT_BRIDGE, DB_BRIDGE, "pc"] {
            ip(&["-n", &sw, "link", "set", ifname, "up"])?;
        }
        ip(&["-n", &cli, "link", "set", "lo", "up"])?;
        ip(&["-n", &cli, "link", "set", CLIENT_IF, "up"])?;
        let pg = Postgres::start_listening(&format!("{name}-db"), &netns(&sw), DB_ADDR, DB_NET)
            .context("starting PostgreSQL on the database bridge")?;
        pg.create_database(DATABASE)?;
        let mut pair = Pair {
            children: Children::new(format!("cluster {name}")),
            pg,
            scratch: Scratch::new(&format!("cluster-{name}")),
            name: name.to_owned(),
            switch_ns: sw,
            client_ns: cli,
            node_ns: nodes,
            daemons: [None, None],
            log: "info".into(),
        };
        for node in Node::BOTH {
            pair.attach_pass(&format!("p{}", node.name()))?;
        }
        Ok(pair)
    }

    fn attach_pass(&mut self, ifname: &str) -> anyhow::Result<()> {
        let mut pass = Command::new(binary("stormboot-lab"));
        pass.args(["xdp-pass", "--interface", ifname])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(self.scratch.log_file(&format!("xdp-pass-{ifname}.log")));
        self.children.spawn(&netns(&self.switch_ns), pass)?;
        let ns = self.switch_ns.clone();
        wait_for(Duration::from_secs(10), || {
            xdp_on(&ns, ifname).then_some(())
        })
        .with_context(|| format!("xdp-pass did not attach to {ifname} in {ns}"))
    }

    /// The connection string every node's `store.url` holds.
    pub fn url() -> String {
        format!("host={DB_ADDR} user=postgres dbname={DATABASE} connect_timeout=3")
    }

    /// Where `node`'s configuration is written.
    pub fn config_path(&self, node: Node) -> PathBuf {
        self.scratch.path(&format!("{}.toml", node.name()))
    }

    /// The daemons started from now on log with this filter (default
    /// "info"): a benchmark keeps per-lease lines out of its figures.
    pub fn set_log(&mut self, filter: &str) {
        filter.clone_into(&mut self.log);
    }

    /// Node `node`'s whole configuration: its `[server]` (with
    /// `server_keys`), the API's token, then `body` (subnets,
    /// reservations, other sections), then the shared store and its
    /// `[cluster]` with `cluster_keys`.
    pub fn config(node: Node, server_keys: &str, body: &str, cluster_keys: &str) -> String {
        format!(
            "[server]\ninterface = \"{SERVER_IF}\"\naddress = \"{}\"\n{server_keys}\n\
             [api]\ntoken = \"{TOKEN}\"\n\n{body}\n\
             [store]\nbackend = \"postgres\"\nurl = \"{}\"\n\n\
             [cluster]\nnode = \"{}\"\n{cluster_keys}\n",
            node.address(),
            Pair::url(),
            node.name()
        )
    }

    /// A command run inside `node`'s namespace.
    pub fn command(&self, node: Node, program: &str) -> Command {
        ns_command(&netns(&self.node_ns[node.index()]), program)
    }

    /// Writes `node`'s configuration (`Pair::config`), starts its daemon
    /// and waits until its API answers. Its PID.
    pub fn start(&mut self, node: Node, server_keys: &str, body: &str, cluster_keys: &str) -> u32 {
        let path = self.config_path(node);
        let text = Pair::config(node, server_keys, body, cluster_keys);
        std::fs::write(&path, text).expect("writing config");
        self.respawn(node)
    }

    /// Starts `node`'s daemon on a whole configuration of the caller's
    /// (a node on its own store, outside any cluster), as `start` does.
    pub fn start_with(&mut self, node: Node, config: &str) -> u32 {
        std::fs::write(self.config_path(node), config).expect("writing config");
        self.respawn(node)
    }

    /// Starts `node`'s daemon again on the configuration already written.
    pub fn respawn(&mut self, node: Node) -> u32 {
        let mut serve = self.command(node, &binary("stormboot").to_string_lossy());
        serve
            .env("NO_COLOR", "1")
            .env("STORMBOOT_LOG", &self.log)
            .env_remove("STORMBOOT_API_TOKEN")
            .args(["serve", "--config"])
            .arg(self.config_path(node))
            .stdout(Stdio::null())
            .stderr(self.scratch.append_file(&format!("{}.log", node.name())));
        let ns = netns(&self.node_ns[node.index()]);
        let pid = self
            .children
            .spawn(&ns, serve)
            .expect("spawning stormboot serve");
        self.daemons[node.index()] = Some(pid);
        if wait_for(DAEMON_START, || self.try_stats(node)).is_none() {
            panic!(
                "node {} (pid {pid}) did not answer `stats` within {DAEMON_START:?}{}",
                node.name(),
                self.logs()
            );
        }
        pid
    }

    /// SIGKILL: the node dies without a word to anyone.
    pub fn kill(&mut self, node: Node) {
        let pid = self.daemons[node.index()].take().expect("daemon running");
        let mut child = self.children.take(pid).expect("a child of ours");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM and a clean exit.
    pub fn stop(&mut self, node: Node) {
        let pid = self.daemons[node.index()].take().expect("daemon running");
        let status = self.children.stop(pid).expect("stopping the daemon");
        assert!(
            status.success(),
            "node {} exited with {status}{}",
            node.name(),
            self.logs()
        );
    }

    /// Cuts `node` from the database (its link to the database bridge
    /// goes down at the bridge), or heals it.
    pub fn set_database_link(&self, node: Node, up: bool) {
        let port = format!("d{}", node.name());
        ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &port,
            if up { "up" } else { "down" },
        ])
        .expect("setting the database link");
    }

    /// `stormboot stats --json` of `node`, or None while it does not
    /// answer.
    pub fn try_stats(&self, node: Node) -> Option<Value> {
        let out = self.stormboot(node, &["stats", "--json"]).ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `stormboot <args> --config <node's>` run in `node`'s namespace.
    pub fn stormboot(&self, node: Node, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = Command::new(binary("stormboot"));
        cmd.env("NO_COLOR", "1")
            .env_remove("STORMBOOT_API_TOKEN")
            .args(args)
            .arg("--config")
            .arg(self.config_path(node));
        let ns = &self.node_ns[node.index()];
        run_in(ns, &netns(ns), cmd)
    }

    /// An HTTP request to `node`'s API (`curl -sS`, method and path, JSON
    /// body when given): the status and the body.
    pub fn api(&self, node: Node, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut curl = Command::new("curl");
        curl.args([
            "-sS",
            "-m",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "-H",
            &format!("authorization: Bearer {TOKEN}"),
        ]);
        if let Some(b) = body {
            curl.args(["-H", "content-type: application/json", "--data-binary", b]);
        }
        curl.arg(format!("http://127.0.0.1:8067{path}"));
        let ns = &self.node_ns[node.index()];
        let out = run_in(ns, &netns(ns), curl).unwrap_or_else(|e| panic!("curl: {e:#}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// `/metrics` of `node`, by series.
    pub fn metrics(&self, node: Node) -> std::collections::BTreeMap<String, f64> {
        let (code, text) = self.api(node, "GET", "/metrics", None);
        assert_eq!(code, 200, "/metrics of node {}: {text}", node.name());
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// `stormboot-lab storm --json --bindings` from the client with
    /// `args`, run to its end: its report.
    pub fn storm(&self, args: &[&str]) -> StormReport {
        let mut storm = Command::new(binary("stormboot-lab"));
        storm
            .env("NO_COLOR", "1")
            .args(["storm", "--json", "--bindings", "--interface", CLIENT_IF])
            .args(args);
        let out = run_in(&self.client_ns, &netns(&self.client_ns), storm)
            .unwrap_or_else(|e| panic!("storm failed: {e:#}{}", self.logs()));
        reports::decode("storm", &out.stdout).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The path of `node`'s network namespace.
    pub fn node_netns(&self, node: Node) -> PathBuf {
        netns(&self.node_ns[node.index()])
    }

    /// The path of the client's network namespace.
    pub fn client_netns(&self) -> PathBuf {
        netns(&self.client_ns)
    }

    /// Spawns `cmd` (another server than stormboot, say) in `node`'s
    /// namespace, stopped on drop; its PID.
    pub fn spawn_in(&mut self, node: Node, cmd: Command) -> anyhow::Result<u32> {
        self.children.spawn(&self.node_netns(node), cmd)
    }

    /// SIGKILL to a child spawned with `spawn_in` or `spawn_client`, at
    /// once, and reaped: a crash.
    pub fn kill_child(&mut self, pid: u32) -> anyhow::Result<()> {
        let mut child = self.children.take(pid)?;
        let killed = child.kill();
        child.wait().with_context(|| format!("reaping pid {pid}"))?;
        killed.with_context(|| format!("killing pid {pid}"))
    }

    /// A command run inside the client's namespace.
    pub fn client_command(&self, program: &str) -> Command {
        ns_command(&netns(&self.client_ns), program)
    }

    /// Runs `cmd` to completion in the client's namespace.
    pub fn run_client(&self, cmd: Command) -> anyhow::Result<Output> {
        run_in(&self.client_ns, &netns(&self.client_ns), cmd)
    }

    /// Spawns `cmd` in the client's namespace, killed on drop; its PID.
    pub fn spawn_client(&mut self, cmd: Command) -> anyhow::Result<u32> {
        self.children.spawn(&netns(&self.client_ns), cmd)
    }

    /// Stops a child spawned with `spawn_client`.
    pub fn stop_child(&mut self, pid: u32) {
        let _ = self.children.stop(pid);
    }

    /// Runs `sql` in the shared database: its rows, fields split by `|`.
    pub fn sql(&self, sql: &str) -> String {
        self.pg
            .psql(DATABASE, sql)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Both nodes' logs, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for node in Node::BOTH {
            text += &format!(
                "\n--- node {} log ---\n{}",
                node.name(),
                self.node_log(node)
            );
        }
        text
    }

    /// `node`'s log so far.
    pub fn node_log(&self, node: Node) -> String {
        self.scratch.read(&format!("{}.log", node.name()))
    }

    /// The name this pair was made with.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn delete_namespace(ns: &str) {
    let path = netns(ns);
    if path.exists() {
        remove_daemon_pins(&path);
        if let Err(e) = ip(&["netns", "del", ns]) {
            eprintln!("deleting {ns}: {e:#}");
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.children.terminate_all();
        if let Err(e) = self.pg.stop() {
            eprintln!("stopping the cluster's PostgreSQL: {e:#}");
        }
        for ns in [
            &self.switch_ns,
            &self.client_ns,
            &self.node_ns[0],
            &self.node_ns[1],
        ] {
            delete_namespace(ns);
        }
    }
}
