//! A `stormboot serve` daemon in a testbed, and the real clients that talk to it.
//!
//! [`Lab`] is what every privileged test starts from: a [`Testbed`] (with a
//! relay namespace when asked), a [`Scratch`] directory holding the config,
//! the lease database and every log, and the daemon run on that config. It
//! starts the daemon and waits for its API, attaches `stormboot-lab
//! xdp-pass` to the veth end facing sb0 (a veth delivers XDP_TX frames only to a peer
//! with an XDP program), reads the daemon's counters, and runs udhcpc,
//! dhclient and dnsmasq against it, and the lab's storm client. What only one test file needs stays in
//! that file, built on this.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::reports::{self, StormReport};
use crate::{
    binary, parse_dhclient_lease, wait_for, Relay, Scratch, Side, Testbed, CLIENT_IF,
    RELAY_UPSTREAM_IF, SERVER_IF,
};

/// How long the daemon may take from spawn to answering its API.
pub const DAEMON_START: Duration = Duration::from_secs(10);

/// What dhclient-script does with the address, and nothing else (the real
/// one rewrites the host's resolv.conf). The address matters: dhclient
/// renews and releases from it, unicast.
pub const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
RELEASE|EXPIRE)
    [ -z "$old_ip_address" ] || ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" ;;
esac
exit 0
"#;

/// What udhcpc tells its script of a lease; [`Lab::run_udhcpc`] gives each,
/// empty when the server sent nothing for it.
const UDHCPC_LEASE_VARS: &[&str] = &[
    "ip",
    "subnet",
    "router",
    "dns",
    "lease",
    "hostname",
    "domain",
    "boot_file",
    "siaddr",
];

/// One testbed, its scratch directory and the daemon running in it.
pub struct Lab {
    // Dropped in this order: the relay's and the testbed's children (which
    // may hold files in the scratch directory open) go before the
    // directory does.
    pub relay: Option<Relay>,
    pub bed: Testbed,
    pub scratch: Scratch,
    /// stormboot.toml in the scratch directory.
    pub config: PathBuf,
    /// The PID of the daemon last started, until it is stopped or killed.
    pub daemon: Option<u32>,
    /// `STORMBOOT_LOG` for the daemon.
    pub log_filter: String,
    /// Scratch files shown after the daemon's log in [`Lab::log`].
    pub also_log: Vec<&'static str>,
    /// Whether `start` runs the pass-only program on the veth end facing
    /// sb0 (before the daemon, which then sees its XDP_TX delivered and
    /// keeps driver mode). Off: the topology of a veth into a bridge with
    /// nothing of XDP on the far end.
    pub pass_on_peer: bool,
    /// The PID of the pass-only program's process, while it runs.
    pub pass_pid: Option<u32>,
    /// The soft limit on open files `serve` starts the daemon with (the
    /// hard one stays), as systemd's 1,024 does.
    pub open_files: Option<u64>,
}

impl Lab {
    /// A testbed named `name` whose client end has `client_mac` (or a
    /// random one).
    pub fn new(name: &str, client_mac: Option<&str>) -> Lab {
        let bed = Testbed::new(name, client_mac)
            .unwrap_or_else(|e| panic!("creating testbed {name}: {e:#}"));
        Lab::around(name, bed, None)
    }

    /// A lab whose client reaches the server through a relay namespace.
    pub fn with_relay(name: &str) -> Lab {
        let (bed, relay) = Testbed::with_relay(name)
            .unwrap_or_else(|e| panic!("creating relayed testbed {name}: {e:#}"));
        Lab::around(name, bed, Some(relay))
    }

    fn around(name: &str, bed: Testbed, relay: Option<Relay>) -> Lab {
        let stormboot = binary("stormboot");
        assert!(
            stormboot.exists(),
            "{} is missing: run `cargo build -p stormboot` first",
            stormboot.display()
        );
        let scratch = Scratch::new(name);
        let config = scratch.path("stormboot.toml");
        Lab {
            relay,
            bed,
            scratch,
            config,
            daemon: None,
            log_filter: "info".to_string(),
            also_log: Vec::new(),
            pass_on_peer: true,
            pass_pid: None,
            open_files: None,
        }
    }

    /// A `stormboot` command run inside the namespace at `side`.
    pub fn stormboot(&self, side: Side) -> Command {
        let mut cmd = self
            .bed
            .command(side, &binary("stormboot").to_string_lossy());
        // Logs end up in panic messages, where colour codes are noise; the
        // token a test means is the one in its config, not the caller's.
        cmd.env("NO_COLOR", "1").env_remove("STORMBOOT_API_TOKEN");
        cmd
    }

    /// A `stormboot-lab` command run inside the namespace at `side`.
    pub fn lab_command(&self, side: Side) -> Command {
        let lab = binary("stormboot-lab");
        assert!(
            lab.exists(),
            "{} is missing: run `cargo build -p stormboot-testbed --bin stormboot-lab` first",
            lab.display()
        );
        let mut cmd = self.bed.command(side, &lab.to_string_lossy());
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// `stormboot-lab storm --json` from sbc0 with `args`, run to its end:
    /// its report.
    pub fn storm(&self, args: &[&str]) -> StormReport {
        let mut storm = self.lab_command(Side::Client);
        storm.args(["storm", "--json", "--interface", CLIENT_IF]);
        storm.args(args);
        let out = self
            .bed
            .run(Side::Client, storm)
            .unwrap_or_else(|e| panic!("storm failed: {e:#}{}", self.log()));
        reports::decode("storm", &out.stdout).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Writes `config` as stormboot.toml. Each test keeps its store in its
    /// own scratch directory (a path relative to the config file), never in
    /// the system's default.
    pub fn write_config(&self, config: &str) {
        assert!(
            !config.contains("lease_db"),
            "server.lease_db is deprecated: leave it out (the scratch directory's \
             [store] is added here) or write [store] path = \"leases.db\":\n{config}"
        );
        let config = if config.contains("[store]") {
            config.to_string()
        } else {
            // Last, so it cannot take over keys of the table before it.
            format!("{config}\n[store]\npath = \"leases.db\"\n")
        };
        assert!(
            config.contains("[store]\npath = \"leases.db\"\n"),
            "test configs keep their store in the scratch directory:\n{config}"
        );
        self.scratch.write("stormboot.toml", &config);
    }

    /// Writes `config`, starts the daemon on it and waits until its API
    /// answers and it runs the dataplane the config asks for; with XDP on
    /// sb0 (and `pass_on_peer`), first attaches the pass-only program
    /// facing it, and checks the daemon kept the configured attach mode.
    pub fn start(&mut self, config: &str) {
        self.write_config(config);
        let pass = self.wants_xdp() && self.pass_on_peer;
        if pass {
            self.attach_pass();
        }
        let stats = self.serve();
        self.check_dataplane(&stats);
        if pass {
            let want = if config.contains("xdp_mode = \"skb\"") {
                "skb"
            } else {
                "driver"
            };
            // sb0's peer is the one the pass program runs on.
            let attachments = stats["xdp_attachments"].as_array().into_iter().flatten();
            for a in attachments.filter(|a| a["interface"] == SERVER_IF) {
                assert_eq!(
                    a["mode"],
                    want,
                    "a veth whose peer runs XDP must keep the configured mode: {stats}{}",
                    self.log()
                );
            }
        }
    }

    /// `start`, with the daemon's log filter set to `filter`.
    pub fn start_logging(&mut self, config: &str, filter: &str) {
        self.log_filter = filter.to_string();
        self.start(config);
    }

    /// Starts another daemon on the config already written (after a stop
    /// or a crash; the log is appended to), waits for its API and checks
    /// its dataplane. Returns its PID.
    pub fn respawn(&mut self) -> u32 {
        let stats = self.serve();
        self.check_dataplane(&stats);
        self.daemon.expect("daemon running")
    }

    /// Spawns `stormboot serve` on the config already written and waits
    /// until `stormboot stats` answers; those first stats.
    pub fn serve(&mut self) -> Value {
        let mut serve = self.stormboot(Side::Server);
        serve
            .env("STORMBOOT_LOG", &self.log_filter)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(self.scratch.append_file("daemon.log"));
        if let Some(soft) = self.open_files {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: only getrlimit/setrlimit run between fork and exec.
            unsafe {
                serve.pre_exec(move || {
                    let mut l = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    l.rlim_cur = soft.min(l.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        }
        let pid = self
            .bed
            .spawn(Side::Server, serve)
            .expect("spawning stormboot serve");
        self.daemon = Some(pid);
        wait_for(DAEMON_START, || self.try_stats()).unwrap_or_else(|| {
            panic!(
                "stormboot serve (pid {pid}) did not answer `stats` within {DAEMON_START:?}{}",
                self.log()
            )
        })
    }

    fn config_text(&self) -> String {
        self.scratch.read("stormboot.toml")
    }

    /// Whether the config written puts an XDP program on sb0: all but the
    /// userspace dataplane and boot-only mode do.
    fn wants_xdp(&self) -> bool {
        let config = self.config_text();
        !config.contains("dataplane = \"userspace\"") && !config.contains("mode = \"boot-only\"")
    }

    /// Asserts the daemon runs the dataplane its config asks for. It falls
    /// back to userspace when XDP cannot attach; the tests must know which
    /// one answered.
    fn check_dataplane(&self, stats: &Value) {
        let xdp = self.wants_xdp();
        // Modes other than the default name themselves in the dataplane.
        if !self.config_text().contains("\nmode = ") {
            let want = if xdp { "xdp" } else { "userspace" };
            assert_eq!(
                stats["dataplane"],
                want,
                "daemon runs the wrong dataplane: {stats}{}",
                self.log()
            );
        }
        assert_eq!(
            self.xdp_attached(Side::Server),
            xdp,
            "XDP on {SERVER_IF} should be {xdp}{}",
            self.log()
        );
    }

    /// `stormboot-lab xdp-pass` on the veth end facing sb0 (sbc0, or the
    /// relay's upstream interface), unless one is there already.
    pub fn attach_pass(&mut self) {
        let (ns, ifname) = match &self.relay {
            Some(relay) => (relay.ns.clone(), RELAY_UPSTREAM_IF),
            None => (self.bed.client_ns.clone(), CLIENT_IF),
        };
        if xdp_on(&ns, ifname) {
            return;
        }
        let mut pass = Command::new(binary("stormboot-lab"));
        pass.args(["xdp-pass", "--interface", ifname])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(self.scratch.log_file("xdp-pass.log"));
        let pid = match &mut self.relay {
            Some(relay) => relay.spawn(pass),
            None => self.bed.spawn(Side::Client, pass),
        }
        .expect("spawning stormboot-lab xdp-pass");
        self.pass_pid = Some(pid);
        // Replies sent before it is attached would vanish and the client
        // would only recover by retransmitting, seconds later.
        if wait_for(Duration::from_secs(5), || xdp_on(&ns, ifname).then_some(())).is_none() {
            panic!(
                "xdp-pass did not attach to {ifname}:\n{}",
                self.scratch.read("xdp-pass.log")
            );
        }
    }

    /// SIGTERM, and a clean exit.
    pub fn stop_daemon(&mut self) {
        let pid = self.daemon.take().expect("daemon running");
        let status = self.bed.stop(pid).expect("stopping the daemon");
        assert!(
            status.success(),
            "daemon exited with {status} on SIGTERM{}",
            self.log()
        );
    }

    /// SIGKILL: the daemon gets no chance to finish anything.
    pub fn crash_daemon(&mut self) {
        let pid = self.daemon.take().expect("daemon running");
        self.bed.kill(pid).expect("killing the daemon");
    }

    /// The daemon's log (every run of it) and the files of `also_log`,
    /// formatted to be appended to a panic message.
    pub fn log(&self) -> String {
        // The binary's path too: `binary` picks the newer of the debug and
        // release builds, and a stale one explains many a surprise.
        let mut text = format!(
            "\n--- daemon log ({}) ---\n{}",
            binary("stormboot").display(),
            self.scratch.read("daemon.log")
        );
        for file in &self.also_log {
            text += &format!("\n--- {file} ---\n{}", self.scratch.read(file));
        }
        text
    }

    /// `stormboot stats --json`, or None while the daemon does not answer.
    pub fn try_stats(&self) -> Option<Value> {
        let mut cmd = self.stormboot(Side::Server);
        cmd.args(["stats", "--json", "--config"]).arg(&self.config);
        let out = self.bed.run(Side::Server, cmd).ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The daemon's counters, as printed by `stormboot stats --json`.
    pub fn stats(&self) -> Value {
        self.try_stats()
            .unwrap_or_else(|| panic!("`stormboot stats --json` failed{}", self.log()))
    }

    /// `/metrics`, scraped and checked line by line against the text
    /// format: every sample is `name{labels} value` with a number, and every
    /// family has HELP and TYPE before its samples. Samples by series.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut curl = Command::new("curl");
        curl.args(["-sSf", "http://127.0.0.1:8067/metrics"]);
        let out = self
            .bed
            .run(Side::Server, curl)
            .unwrap_or_else(|e| panic!("scraping /metrics: {e:#}{}", self.log()));
        let text = String::from_utf8(out.stdout).expect("UTF-8 metrics");
        let mut typed = BTreeSet::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut f = rest.split_whitespace();
                let name = f.next().expect("TYPE name").to_string();
                let kind = f.next().unwrap_or("");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                typed.insert(name);
                continue;
            }
            if line.starts_with("# HELP ") || line.is_empty() {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{name} has no TYPE line before it");
            assert!(name.starts_with("stormboot_"), "{name}");
            samples.insert(series.to_string(), value);
        }
        samples
    }

    /// The value of the counter sample `series` (name and labels) in
    /// `/metrics`; panics if there is none.
    pub fn metric(&self, series: &str) -> u64 {
        let samples = self.metrics();
        let value = samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in /metrics: {samples:?}{}", self.log()));
        assert!(
            value.fract() == 0.0 && *value >= 0.0,
            "{series} is no count: {value}"
        );
        *value as u64
    }

    /// Whether the veth end at `side` has an XDP program attached.
    pub fn xdp_attached(&self, side: Side) -> bool {
        xdp_on(self.bed.ns(side), side.interface())
    }

    /// Runs `busybox udhcpc` once on sbc0 (`-n`: fail rather than
    /// background without a lease, `-q`: quit once bound) and returns the
    /// variables its script was given on `bound`, or why there are none.
    pub fn run_udhcpc(&self, extra: &[&str]) -> Result<BTreeMap<String, String>, String> {
        self.run_udhcpc_on(CLIENT_IF, extra)
    }

    /// `run_udhcpc` on another client-side interface.
    pub fn run_udhcpc_on(
        &self,
        iface: &str,
        extra: &[&str],
    ) -> Result<BTreeMap<String, String>, String> {
        let out = self.scratch.path(&format!("udhcpc-{iface}.env"));
        // A lease from an earlier run must not pass for this one's.
        let _ = std::fs::remove_file(&out);
        // udhcpc passes the lease in environment variables; the script calls
        // come as deconfig first, and only bound carries a lease. The lease's
        // own variables follow the environment, empty when udhcpc set none.
        let mut script = String::from("#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n{\nenv\n");
        for var in UDHCPC_LEASE_VARS {
            script += &format!("printf '{var}=%s\\n' \"${var}\"\n");
        }
        script += &format!("}} > '{}'\n", out.display());
        let script = self
            .scratch
            .write_script(&format!("udhcpc-{iface}.sh"), &script);
        let mut udhcpc = self.bed.command(Side::Client, "busybox");
        udhcpc
            .args(["udhcpc", "-i", iface, "-n", "-q", "-f", "-s"])
            .arg(&script)
            .args(extra);
        self.bed
            .run(Side::Client, udhcpc)
            .map_err(|e| format!("{e:#}"))?;
        let text = std::fs::read_to_string(&out)
            .map_err(|e| format!("udhcpc bound but {}: {e}", out.display()))?;
        Ok(env_lines(&text))
    }

    /// Runs ISC dhclient on sbc0 with the lease file `leases` and the
    /// dhclient.conf `conf` until it writes a new lease there and has been
    /// acknowledged `acks` times (more than once: it renewed), then stops
    /// it; returns the last lease in the file. With a lease already in the
    /// file, dhclient asks for it again (INIT-REBOOT) instead of
    /// discovering. dhclient's own log is dhclient-<tag>.log.
    pub fn dhclient(
        &mut self,
        tag: &str,
        leases: &Path,
        acks: usize,
        conf: &str,
    ) -> BTreeMap<String, String> {
        let conf = self.scratch.write("dhclient.conf", conf);
        let script = self.scratch.write_script("dhclient.sh", DHCLIENT_SCRIPT);
        let count = |text: &str| text.matches("lease {").count();
        let before = count(&std::fs::read_to_string(leases).unwrap_or_default());
        let log = format!("dhclient-{tag}.log");
        let mut dhclient = self.bed.command(Side::Client, "dhclient");
        // -d keeps it in the foreground, so the PID the testbed holds is
        // dhclient's own; -1 makes it give up after one try. A pid file of
        // its own per run: `dhclient -r` kills whatever PID a pid file names.
        dhclient
            .args(["-d", "-1", "-v", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(leases)
            .arg("-pf")
            .arg(self.scratch.path(&format!("dhclient-{tag}.pid")))
            .arg("-sf")
            .arg(&script)
            .arg(CLIENT_IF)
            .stdout(Stdio::null())
            .stderr(self.scratch.log_file(&log));
        let pid = self
            .bed
            .spawn(Side::Client, dhclient)
            .expect("spawning dhclient");
        // The lease is appended once bound (renewals may rewrite the file
        // instead); wait for the whole block, and the ACKs in the log.
        let bound = wait_for(Duration::from_secs(15), || {
            let text = std::fs::read_to_string(leases).ok()?;
            let acked = self.scratch.read(&log).matches("DHCPACK of").count();
            (count(&text) > before && text.trim_end().ends_with('}') && acked >= acks)
                .then_some(text)
        });
        let _ = self.bed.stop(pid);
        let Some(text) = bound else {
            panic!(
                "dhclient ({tag}) got no lease, or fewer than {acks} ACKs:\n{}\n--- leases ---\n{}{}",
                self.scratch.read(&log),
                std::fs::read_to_string(leases).unwrap_or_default(),
                self.log()
            );
        };
        parse_dhclient_lease(&text)
    }

    /// `dhclient -r`: RELEASE the lease in `leases`, unicast from it, then
    /// exit.
    pub fn dhclient_release(&self, leases: &Path) {
        let mut release = self.bed.command(Side::Client, "dhclient");
        release
            .args(["-r", "-v", "-lf"])
            .arg(leases)
            .arg("-pf")
            // Never written: nothing for -r to kill.
            .arg(self.scratch.path("dhclient-release.pid"))
            .arg("-sf")
            .arg(self.scratch.path("dhclient.sh"))
            .arg(CLIENT_IF);
        let out = self
            .bed
            .run(Side::Client, release)
            .unwrap_or_else(|e| panic!("dhclient -r: {e:#}{}", self.log()));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains("Failed to send"),
            "dhclient -r could not send its RELEASE:\n{said}"
        );
    }

    /// The lines `stormboot print-config --for <tool>` prints for the
    /// config already written.
    pub fn print_config(&self, tool: &str) -> String {
        let mut print = self.stormboot(Side::Server);
        print
            .args(["print-config", "--for", tool, "--config"])
            .arg(&self.config);
        let out = self
            .bed
            .run(Side::Server, print)
            .unwrap_or_else(|e| panic!("print-config --for {tool}: {e:#}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts dnsmasq at `side` on `iface`, giving addresses from
    /// 10.50.0.100-150 plus whatever `extra` configures; its log is
    /// [`Lab::dnsmasq_log`], its leases dnsmasq.leases.
    pub fn start_dnsmasq(&mut self, side: Side, iface: &str, extra: &str) {
        let conf = self.scratch.write(
            "dnsmasq.conf",
            &format!(
                // no-ping: dnsmasq would probe each address for 3 s first.
                "port=0\nno-ping\ninterface={iface}\nbind-interfaces\n\
                 dhcp-range=10.50.0.100,10.50.0.150,1h\n\
                 dhcp-leasefile={}\n{extra}",
                self.scratch.path("dnsmasq.leases").display()
            ),
        );
        let mut dnsmasq = Command::new("dnsmasq");
        dnsmasq
            .args(["--no-daemon", "--user=root"])
            // --conf-file takes an optional argument: it must be joined by '='.
            .arg(format!("--conf-file={}", conf.display()))
            .stderr(self.scratch.log_file("dnsmasq.log"));
        self.bed
            .spawn(side, dnsmasq)
            .expect("spawning dnsmasq (package dnsmasq-base)");
    }

    /// dnsmasq's log, formatted to be appended to a panic message.
    pub fn dnsmasq_log(&self) -> String {
        format!("\n--- dnsmasq ---\n{}", self.scratch.read("dnsmasq.log"))
    }
}

/// Whether `ifname` in the namespace `ns` has an XDP program attached. JSON
/// rather than grepping the text for "xdp", which would also match the
/// peer's namespace name if a testbed were ever named after XDP.
pub fn xdp_on(ns: &str, ifname: &str) -> bool {
    let out = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", ifname])
        .output()
        .expect("running ip link show");
    assert!(out.status.success(), "ip link show {ifname}: {out:?}");
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link show JSON");
    links[0].get("xdp").is_some()
}

/// `NAME=value` lines as a map.
pub fn env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// An XDP counter by name; panics if the daemon does not export it, so a
/// renamed counter fails loudly instead of reading as zero.
pub fn xdp_counter(stats: &Value, counter: &str) -> u64 {
    stats["xdp"][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("no xdp.{counter} in {stats}"))
}

/// DHCP packets of `message_type` (e.g. "dhcpdiscover") that reached the
/// daemon's userspace dataplane. Types never seen are absent, hence zero.
pub fn slow_path(stats: &Value, message_type: &str) -> u64 {
    stats["slow_path"][message_type].as_u64().unwrap_or(0)
}

/// Every DHCP packet that reached the userspace dataplane.
pub fn slow_path_total(stats: &Value) -> u64 {
    stats["slow_path"]
        .as_object()
        .unwrap_or_else(|| panic!("no slow_path object in {stats}"))
        .values()
        .map(|v| {
            v.as_u64()
                .unwrap_or_else(|| panic!("non-integer slow_path count in {stats}"))
        })
        .sum()
}
