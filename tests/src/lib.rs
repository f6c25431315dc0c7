//! The lab (`lab`: the storm client, the benchmarks, the fuzz glue and the
//! `stormboot-lab` binary; `reports`: what they print; `bootlab`: the boot
//! chain's files and servers) and the
//! network-namespace testbed shared by `cargo xtask lab` and the
//! end-to-end tests: a server and a client namespace joined by one veth pair,
//! and the processes started in them, all torn down on drop.
//! [`Testbed::with_relay`] puts a third namespace between the two, a router
//! for tests of DHCP relays. [`postgres`] runs a private PostgreSQL server
//! for the store's tests; [`cluster`] puts two nodes on one segment around
//! one.
//!
//! It shells out to iproute2 and util-linux rather than speaking netlink so
//! that every step can be replayed by hand from a failing test's message.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod bootlab;
pub mod cluster;
pub mod daemon;
#[cfg(feature = "lab")]
pub mod lab;
pub mod labconfig;
pub mod perfdhcp;
pub mod postgres;
pub mod reports;
pub use daemon::{
    env_lines, slow_path, slow_path_total, xdp_counter, xdp_on, Lab, DAEMON_START, DHCLIENT_SCRIPT,
};

pub const SERVER_IF: &str = "sb0";
pub const CLIENT_IF: &str = "sbc0";
pub const SERVER_ADDR: &str = "10.50.0.1";
pub const SUBNET: &str = "10.50.0.0/24";
/// Prefix length of `SUBNET`, for `ip addr add`.
const PREFIX_LEN: u8 = 24;

/// Grace between SIGTERM and SIGKILL when a testbed is dropped.
const DROP_GRACE: Duration = Duration::from_secs(3);
/// Grace between SIGTERM and SIGKILL for an explicit `stop`, longer because
/// the caller usually wants the clean-shutdown path to be the one tested.
const STOP_GRACE: Duration = Duration::from_secs(5);

// Capability numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Which end of the veth pair (and so which namespace) a process runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    /// The veth end in this side's namespace.
    pub fn interface(self) -> &'static str {
        match self {
            Side::Server => SERVER_IF,
            Side::Client => CLIENT_IF,
        }
    }
}

/// Two network namespaces, `sb-<name>-srv` holding `sb0` (10.50.0.1/24) and
/// `sb-<name>-cli` holding `sbc0` (no address), and the children spawned in
/// them.
pub struct Testbed {
    pub name: String,
    pub server_ns: String,
    pub client_ns: String,
    children: Children,
}

/// "sb-<name>-<role>", or "sb-<tag>-<name>-<role>" when STORMBOOT_NS_TAG is
/// set, so that test runs from two checkouts on one host never delete each
/// other's namespaces.
fn ns_name(name: &str, role: &str) -> String {
    match std::env::var("STORMBOOT_NS_TAG") {
        Ok(tag) if !tag.is_empty() => format!("sb-{tag}-{name}-{role}"),
        _ => format!("sb-{name}-{role}"),
    }
}

impl Testbed {
    /// Creates namespaces "sb-<name>-srv" and "sb-<name>-cli" (deleting
    /// leftovers with those names first) and a veth pair created directly
    /// inside them, so the interface names never clash on the host or between
    /// testbeds. Addresses: 10.50.0.1/24 on sb0, none on sbc0. `client_mac`
    /// fixes sbc0's MAC, for tests that reserve an address for it.
    pub fn new(name: &str, client_mac: Option<&str>) -> anyhow::Result<Testbed> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("testbed name {name:?} must be non-empty ASCII letters, digits, '-' or '_'");
        }
        missing_privileges(&[CAP_SYS_ADMIN, CAP_NET_ADMIN]).map_or(Ok(()), |why| {
            Err(anyhow::anyhow!("cannot create network namespaces: {why}"))
        })?;
        // Built before anything is created so that Drop undoes a half-built bed.
        let bed = Testbed {
            name: name.to_owned(),
            server_ns: ns_name(name, "srv"),
            client_ns: ns_name(name, "cli"),
            children: Children::new(format!("testbed {name}")),
        };
        bed.delete_namespaces();
        let (srv, cli) = (bed.server_ns.as_str(), bed.client_ns.as_str());
        ip(&["netns", "add", srv])?;
        ip(&["netns", "add", cli])?;
        ip(&[
            "link", "add", SERVER_IF, "netns", srv, "type", "veth", "peer", "name", CLIENT_IF,
            "netns", cli,
        ])?;
        if let Some(mac) = client_mac {
            ip(&["-n", cli, "link", "set", CLIENT_IF, "address", mac])?;
        }
        ip(&[
            "-n",
            srv,
            "addr",
            "add",
            &format!("{SERVER_ADDR}/{PREFIX_LEN}"),
            "dev",
            SERVER_IF,
        ])?;
        for (ns, ifname) in [(srv, "lo"), (srv, SERVER_IF), (cli, "lo"), (cli, CLIENT_IF)] {
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        Ok(bed)
    }

    /// Name of the namespace at `side`.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.server_ns,
            Side::Client => &self.client_ns,
        }
    }

    /// The bind mount `ip netns add` made for the namespace at `side`.
    pub fn ns_path(&self, side: Side) -> PathBuf {
        Path::new("/run/netns").join(self.ns(side))
    }

    /// Runs `f` on a thread of its own inside the namespace at `side`: the
    /// sockets it makes are that namespace's, and this thread's namespace
    /// stays as it was.
    pub fn in_ns<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let path = self.ns_path(side);
        let ns = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::spawn(move || {
            // SAFETY: setns on a namespace descriptor; it changes only this
            // thread, which ends with `f`.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in {} panicked", path.display()))?
    }

    /// A Command that runs `program` inside the namespace at `side` (with
    /// nsenter: see `ns_command`).
    pub fn command(&self, side: Side, program: &str) -> Command {
        ns_command(&self.ns_path(side), program)
    }

    /// Spawns `cmd` in the namespace at `side` (also when it was not built
    /// by [`Testbed::command`]); the testbed keeps the child and kills it by
    /// PID (SIGTERM, then SIGKILL after 3 s) on drop. Returns the PID.
    pub fn spawn(&mut self, side: Side, cmd: Command) -> anyhow::Result<u32> {
        self.children.spawn(&self.ns_path(side), cmd)
    }

    /// Runs `cmd` to completion in the namespace at `side`; an error carrying
    /// stdout and stderr when it exits non-zero.
    pub fn run(&self, side: Side, cmd: Command) -> anyhow::Result<Output> {
        run_in(self.ns(side), &self.ns_path(side), cmd)
    }

    /// Starts `<lab> xdp-pass` (`lab` is a `stormboot-lab` binary) on sbc0
    /// and waits until the kernel shows it attached: a veth delivers
    /// driver-mode XDP_TX only to a peer that runs XDP, and a daemon started
    /// before it would attach in skb mode. Its PID.
    pub fn attach_client_pass(&mut self, lab: &Path) -> anyhow::Result<u32> {
        self.attach_pass(Side::Client, lab, None)
    }

    /// `xdp-pass` on sb0: a veth has NAPI (and so a receive thread to pin,
    /// `napi_threads`) only while it runs a driver-mode program, and only
    /// stormboot's XDP dataplane runs one of its own there. Its PID.
    pub fn attach_server_pass(&mut self, lab: &Path) -> anyhow::Result<u32> {
        self.attach_pass(Side::Server, lab, None)
    }

    /// Like `attach_client_pass`, with the counting program (`xdp-pass
    /// --tally`) whose maps `stormboot-lab rate --tally DIR` reads, DIR
    /// being the second value.
    pub fn attach_client_tally(&mut self, lab: &Path) -> anyhow::Result<(u32, PathBuf)> {
        let dir = PathBuf::from(format!("/sys/fs/bpf/stormboot-tally-{}", self.client_ns));
        let pid = self.attach_pass(Side::Client, lab, Some(&dir))?;
        let counts = dir.join("counts");
        wait_for(Duration::from_secs(10), || counts.exists().then_some(()))
            .with_context(|| format!("xdp-pass --tally did not pin {}", counts.display()))?;
        Ok((pid, dir))
    }

    fn attach_pass(&mut self, side: Side, lab: &Path, tally: Option<&Path>) -> anyhow::Result<u32> {
        let ifname = side.interface();
        let mut pass = Command::new(lab);
        pass.args(["--log", "warn", "xdp-pass", "--interface", ifname]);
        if let Some(dir) = tally {
            pass.arg("--tally").arg(dir);
        }
        pass.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let pid = self.spawn(side, pass)?;
        let ns = self.ns(side).to_string();
        wait_for(Duration::from_secs(10), || {
            xdp_on(&ns, ifname).then_some(())
        })
        .with_context(|| format!("xdp-pass did not attach to {ifname} in {ns}"))?;
        Ok(pid)
    }

    /// Moves the receive processing (NAPI) of the interface at `side` into
    /// kernel threads of its own, pinned to `cpu`; their PIDs. A veth
    /// otherwise processes what it receives in the softirq of whichever
    /// CPU sent it, so a server's receive path (its XDP program included)
    /// would run on the load generator's core; a NIC's runs where its
    /// interrupt is, on the server's side. The interface must have NAPI:
    /// a veth has it while it runs an XDP program in driver mode.
    pub fn napi_threads(&self, side: Side, cpu: &str) -> anyhow::Result<Vec<u32>> {
        let ifname = side.interface();
        let prefix = format!("napi/{ifname}-");
        let threads = || -> BTreeMap<u32, ()> {
            let Ok(dir) = fs::read_dir("/proc") else {
                return BTreeMap::new();
            };
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim_end().starts_with(&prefix))
                })
                .map(|pid| (pid, ()))
                .collect()
        };
        // Off and on again: the threads created by this write are this
        // interface's, whatever other namespaces' interfaces are called.
        // `ip netns exec` mounts the namespace's own /sys for the write.
        let write = |v: &str| {
            ip(&[
                "netns",
                "exec",
                self.ns(side),
                "sh",
                "-c",
                &format!("echo {v} > /sys/class/net/{ifname}/threaded"),
            ])
        };
        write("0")?;
        let before = threads();
        write("1").with_context(|| format!("threaded NAPI on {ifname} (is XDP attached?)"))?;
        let pids: Vec<u32> = threads()
            .into_keys()
            .filter(|p| !before.contains_key(p))
            .collect();
        if pids.is_empty() {
            bail!("no NAPI thread appeared for {ifname} in {}", self.ns(side));
        }
        for pid in &pids {
            let out = Command::new("taskset")
                .args(["-pc", cpu, &pid.to_string()])
                .output()
                .context("running taskset")?;
            if !out.status.success() {
                bail!(
                    "taskset -pc {cpu} {pid}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(pids)
    }

    /// Stops a child started by [`Testbed::spawn`]: SIGTERM, up to 5 s to
    /// exit, then SIGKILL.
    pub fn stop(&mut self, pid: u32) -> anyhow::Result<ExitStatus> {
        self.children.stop(pid)
    }

    /// MAC of sbc0, lower-case colon-separated.
    pub fn client_mac(&self) -> anyhow::Result<String> {
        let out = ip(&["-n", &self.client_ns, "-j", "link", "show", CLIENT_IF])?;
        let links: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing `ip -j link show` output")?;
        links[0]["address"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no address for {CLIENT_IF} in {links}"))
    }

    fn delete_namespaces(&self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let path = Path::new("/run/netns").join(ns);
            remove_daemon_pins(&path);
            if path.exists() {
                if let Err(e) = ip(&["netns", "del", ns]) {
                    eprintln!("testbed {}: {e:#}", self.name);
                }
            }
        }
    }
}

/// Removes what a daemon killed in the namespace at `ns_path` left pinned
/// under the default bpffs_dir (one directory per namespace, named after its
/// inode): once the namespace is gone, nobody could find it again.
fn remove_daemon_pins(ns_path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(ns_path) else {
        return;
    };
    let prefix = format!("net{}-", meta.ino());
    let Ok(entries) = fs::read_dir("/sys/fs/bpf/stormboot") else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.children.terminate_all();
        self.delete_namespaces();
    }
}

/// The processes a testbed or a relay started, killed by PID when it goes.
struct Children {
    /// "testbed NAME" or "relay NAME", for messages.
    owner: String,
    list: Vec<Child>,
}

impl Children {
    fn new(owner: String) -> Self {
        Children {
            owner,
            list: Vec::new(),
        }
    }

    /// Spawns `cmd` in the namespace at `path` and keeps the child.
    fn spawn(&mut self, path: &Path, mut cmd: Command) -> anyhow::Result<u32> {
        let _ns = setns_on_exec(path, &mut cmd)?;
        let child = cmd.spawn().with_context(|| spawn_failure(&cmd))?;
        let pid = child.id();
        self.list.push(child);
        Ok(pid)
    }

    fn position(&self, pid: u32) -> anyhow::Result<usize> {
        self.list
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("pid {pid} is not a child of {}", self.owner))
    }

    /// The child, no longer kept.
    fn take(&mut self, pid: u32) -> anyhow::Result<Child> {
        let pos = self.position(pid)?;
        Ok(self.list.swap_remove(pos))
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL.
    fn stop(&mut self, pid: u32) -> anyhow::Result<ExitStatus> {
        let mut child = self.take(pid)?;
        terminate(&mut child, STOP_GRACE).with_context(|| format!("stopping pid {pid}"))
    }

    /// Every child, with a shorter grace; never panics (it runs in drops).
    fn terminate_all(&mut self) {
        for mut child in self.list.drain(..) {
            if let Err(e) = terminate(&mut child, DROP_GRACE) {
                eprintln!("{}: stopping pid {}: {e}", self.owner, child.id());
            }
        }
    }
}

/// `nsenter --net=<path> -- program`. nsenter rather than `ip netns exec`,
/// which remounts /sys and so hides the bpffs at /sys/fs/bpf that the
/// daemon pins into. nsenter execs the program, so a spawned child's PID is
/// the program's.
fn ns_command(path: &Path, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path.display()))
        .arg("--")
        .arg(program);
    cmd
}

/// Runs `cmd` in the namespace `ns` (at `path`) to completion; an error
/// carrying stdout and stderr when it exits non-zero.
fn run_in(ns: &str, path: &Path, mut cmd: Command) -> anyhow::Result<Output> {
    let _ns = setns_on_exec(path, &mut cmd)?;
    let out = cmd.output().with_context(|| spawn_failure(&cmd))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} in {ns} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
fn terminate(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    // The child is unreaped, so its PID cannot have been reused.
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()
}

fn spawn_failure(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy();
    let hint = match program.as_ref() {
        "nsenter" => " (nsenter comes with util-linux)",
        "ip" => " (ip comes with iproute2)",
        _ => "",
    };
    format!("cannot start {program}{hint}: {cmd:?}")
}

/// Runs `ip args...`; an error carrying its stderr when it fails.
fn ip(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip`: is iproute2 installed and in PATH?")?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Why the process lacks root or one of `caps` in its effective set; None
/// when it has them all.
fn missing_privileges(caps: &[u32]) -> Option<String> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot read /proc/self/status: {e}")),
    };
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    let Some(effective) = effective else {
        return Some("no CapEff line in /proc/self/status".into());
    };
    let missing: Vec<&str> = caps
        .iter()
        .filter(|&&c| effective & (1 << c) == 0)
        .map(|&c| match c {
            CAP_NET_ADMIN => "CAP_NET_ADMIN",
            CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
            CAP_BPF => "CAP_BPF",
            _ => "a capability",
        })
        .collect();
    (!missing.is_empty()).then(|| format!("root lacks {}", missing.join(", ")))
}

/// Path of a built workspace binary: $STORMBOOT_BIN for "stormboot",
/// $STORMBOOT_LAB_BIN for "stormboot-lab", otherwise the newer of
/// <workspace>/target/{release,debug}/<name> (the debug path when neither
/// exists, so the caller's error names a real place to look).
pub fn binary(name: &str) -> PathBuf {
    let var = match name {
        "stormboot" => Some("STORMBOOT_BIN"),
        "stormboot-lab" => Some("STORMBOOT_LAB_BIN"),
        _ => None,
    };
    if let Some(path) = var.and_then(std::env::var_os) {
        return PathBuf::from(path);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    let debug = target.join("debug").join(name);
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    [target.join("release").join(name), debug.clone()]
        .into_iter()
        .filter_map(|p| modified(&p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map_or(debug, |(_, p)| p)
}

/// Fails unless running as root with CAP_NET_ADMIN, CAP_BPF and
/// CAP_SYS_ADMIN (namespaces need the last).
pub fn check_privileges() -> anyhow::Result<()> {
    match missing_privileges(&[CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN]) {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

/// Panics unless `check_privileges` passes. Privileged tests call this
/// first so that they fail, never skip, where they cannot run.
pub fn require_root() {
    if let Err(why) = check_privileges() {
        panic!("privileged test: run as root (CI does): {why}");
    }
}

/// Polls `f` every 50 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// The three-namespace topology of relayed tests, and helpers the pool
// tests share: a scratch directory, lease-file parsing, and more control
// over the processes a testbed holds.

/// The relay's interface toward the server, in the relay namespace.
pub const RELAY_UPSTREAM_IF: &str = "sbr0";
/// The relay's interface toward the client, in the relay namespace.
pub const RELAY_DOWNSTREAM_IF: &str = "sbr1";
/// The relay's address on the server's link (`SUBNET`).
pub const RELAY_UPSTREAM_ADDR: &str = "10.50.0.2";
/// The relay's address on the client's link: the giaddr it writes.
pub const RELAY_DOWNSTREAM_ADDR: &str = "10.60.0.1";
/// The client's link behind the relay.
pub const RELAYED_SUBNET: &str = "10.60.0.0/24";

/// A third namespace, `sb-<name>-rly`, routing between a testbed's server
/// and client namespaces, and the children spawned in it; made by
/// [`Testbed::with_relay`], torn down on drop.
pub struct Relay {
    pub name: String,
    pub ns: String,
    children: Children,
}

impl Testbed {
    /// A testbed whose client is one hop away from the server:
    ///
    /// ```text
    /// sb-<name>-cli          sb-<name>-rly                     sb-<name>-srv
    ///   sbc0 ----------- sbr1 10.60.0.1/24
    ///                         sbr0 10.50.0.2/24 ------------ sb0 10.50.0.1/24
    /// ```
    ///
    /// The relay namespace forwards IPv4, and the server namespace routes
    /// 10.60.0.0/24 through it; sbc0 has no address. Nothing relays DHCP
    /// until the caller starts a relay agent there ([`Relay::command`]).
    /// The `Relay` must be kept alive as long as the testbed.
    pub fn with_relay(name: &str) -> anyhow::Result<(Testbed, Relay)> {
        let bed = Testbed::new(name, None)?;
        let relay = Relay {
            name: name.to_owned(),
            ns: ns_name(name, "rly"),
            children: Children::new(format!("relay {name}")),
        };
        relay.delete_namespace();
        let (srv, cli, rly) = (
            bed.server_ns.as_str(),
            bed.client_ns.as_str(),
            relay.ns.as_str(),
        );
        ip(&["netns", "add", rly])?;
        // Testbed::new joined sb0 and sbc0 directly: deleting one end of
        // the pair deletes both, and the relay goes in between.
        ip(&["-n", srv, "link", "del", SERVER_IF])?;
        ip(&[
            "link",
            "add",
            SERVER_IF,
            "netns",
            srv,
            "type",
            "veth",
            "peer",
            "name",
            RELAY_UPSTREAM_IF,
            "netns",
            rly,
        ])?;
        ip(&[
            "link",
            "add",
            RELAY_DOWNSTREAM_IF,
            "netns",
            rly,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            cli,
        ])?;
        let prefix = |addr: &str, len: u8| format!("{addr}/{len}");
        ip(&[
            "-n",
            srv,
            "addr",
            "add",
            &prefix(SERVER_ADDR, PREFIX_LEN),
            "dev",
            SERVER_IF,
        ])?;
        ip(&[
            "-n",
            rly,
            "addr",
            "add",
            &prefix(RELAY_UPSTREAM_ADDR, PREFIX_LEN),
            "dev",
            RELAY_UPSTREAM_IF,
        ])?;
        ip(&[
            "-n",
            rly,
            "addr",
            "add",
            &prefix(RELAY_DOWNSTREAM_ADDR, 24),
            "dev",
            RELAY_DOWNSTREAM_IF,
        ])?;
        for (ns, ifname) in [
            (srv, SERVER_IF),
            (rly, "lo"),
            (rly, RELAY_UPSTREAM_IF),
            (rly, RELAY_DOWNSTREAM_IF),
            (cli, CLIENT_IF),
        ] {
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        ip(&[
            "-n",
            srv,
            "route",
            "add",
            RELAYED_SUBNET,
            "via",
            RELAY_UPSTREAM_ADDR,
        ])?;
        // /proc/sys/net shows the namespace of the process reading it.
        let mut forward = relay.command("sh");
        forward.args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        relay.run(forward)?;
        Ok((bed, relay))
    }

    /// Sets sbc0's MAC (taking the link down and up around the change), so
    /// that one client namespace can play several machines in turn.
    pub fn set_client_mac(&self, mac: &str) -> anyhow::Result<()> {
        let cli = self.client_ns.as_str();
        ip(&["-n", cli, "link", "set", CLIENT_IF, "down"])?;
        ip(&["-n", cli, "link", "set", CLIENT_IF, "address", mac])?;
        ip(&["-n", cli, "link", "set", CLIENT_IF, "up"])?;
        Ok(())
    }

    /// Kills a child started by [`Testbed::spawn`] with SIGKILL, at once,
    /// and reaps it: a crash, where [`Testbed::stop`] is a shutdown.
    pub fn kill(&mut self, pid: u32) -> anyhow::Result<ExitStatus> {
        let mut child = self.children.take(pid)?;
        // Reaped whatever kill says: the child is no longer the testbed's.
        let killed = child.kill();
        let status = child.wait().with_context(|| format!("reaping pid {pid}"))?;
        killed.with_context(|| format!("killing pid {pid}"))?;
        Ok(status)
    }

    /// Waits up to `timeout` for a child started by [`Testbed::spawn`] to
    /// exit by itself. Its status once it has (the testbed forgets it);
    /// None if it is still running (the testbed keeps it).
    pub fn wait(&mut self, pid: u32, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let pos = self.children.position(pid)?;
        let exited = wait_for(timeout, || match self.children.list[pos].try_wait() {
            Ok(None) => None,
            Ok(Some(_)) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        });
        match exited {
            None => Ok(None),
            Some(polled) => {
                polled.with_context(|| format!("waiting for pid {pid}"))?;
                let mut child = self.children.list.swap_remove(pos);
                // It has exited: wait returns its status at once.
                let status = child.wait().with_context(|| format!("reaping pid {pid}"))?;
                Ok(Some(status))
            }
        }
    }
}

impl Relay {
    /// The bind mount `ip netns add` made for the relay namespace.
    pub fn ns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.ns)
    }

    /// A Command that runs `program` inside the relay namespace, as
    /// [`Testbed::command`] does for the other two.
    pub fn command(&self, program: &str) -> Command {
        ns_command(&self.ns_path(), program)
    }

    /// Spawns `cmd` in the relay namespace; the relay keeps the child and
    /// kills it by PID on drop. Returns the PID.
    pub fn spawn(&mut self, cmd: Command) -> anyhow::Result<u32> {
        self.children.spawn(&self.ns_path(), cmd)
    }

    /// Runs `cmd` to completion in the relay namespace; an error carrying
    /// stdout and stderr when it exits non-zero.
    pub fn run(&self, cmd: Command) -> anyhow::Result<Output> {
        run_in(&self.ns, &self.ns_path(), cmd)
    }

    /// Stops a child started by [`Relay::spawn`]: SIGTERM, up to 5 s to
    /// exit, then SIGKILL.
    pub fn stop(&mut self, pid: u32) -> anyhow::Result<ExitStatus> {
        self.children.stop(pid)
    }

    fn delete_namespace(&self) {
        if self.ns_path().exists() {
            if let Err(e) = ip(&["netns", "del", &self.ns]) {
                eprintln!("relay {}: {e:#}", self.name);
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.children.terminate_all();
        self.delete_namespace();
    }
}

/// Arranges for `cmd` to join the network namespace at `path` between fork
/// and exec. The returned file must stay open until the child is spawned.
fn setns_on_exec(path: &Path, cmd: &mut Command) -> anyhow::Result<File> {
    let ns = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let fd = ns.as_raw_fd();
    // SAFETY: the closure only makes the setns(2) syscall and reads errno,
    // both async-signal-safe; `fd` stays open until spawn returns (the
    // caller holds the File) and is close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    Ok(ns)
}

/// The bridge [`Testbed::bridge_client_tap`] makes in the client namespace.
pub const CLIENT_BRIDGE: &str = "sbbr0";

impl Testbed {
    /// Creates a tap device `tap` and a bridge `sbbr0` in the client
    /// namespace and enslaves both `tap` and sbc0 to it, so that a virtual
    /// machine whose NIC is `tap` (QEMU `-netdev tap,ifname=<tap>`, run in
    /// the client namespace) shares one L2 segment with the server's sb0:
    ///
    /// ```text
    /// sb-<name>-cli                                  sb-<name>-srv
    ///   tap ---- sbbr0 ---- sbc0 ----------------------- sb0 10.50.0.1/24
    /// ```
    ///
    /// The bridge runs without STP, so its ports forward as soon as they are
    /// up. Frames the server's XDP program sends with XDP_TX in driver mode
    /// arrive at sbc0 only when sbc0 runs an XDP program itself
    /// (`stormboot-lab xdp-pass`); its XDP_PASS hands them to the stack, where the bridge
    /// forwards them. Without it the daemon attaches in skb mode.
    pub fn bridge_client_tap(&self, tap: &str) -> anyhow::Result<()> {
        let cli = self.client_ns.as_str();
        add_bridge(cli, CLIENT_BRIDGE)?;
        ip(&["-n", cli, "tuntap", "add", "dev", tap, "mode", "tap"])?;
        for port in [CLIENT_IF, tap] {
            ip(&["-n", cli, "link", "set", port, "master", CLIENT_BRIDGE])?;
        }
        for ifname in [CLIENT_BRIDGE, tap, CLIENT_IF] {
            ip(&["-n", cli, "link", "set", ifname, "up"])?;
        }
        Ok(())
    }
}

/// Creates bridge `name` in namespace `ns`, without STP, so its ports
/// forward as soon as they are up.
fn add_bridge(ns: &str, name: &str) -> anyhow::Result<Output> {
    ip(&[
        "-n",
        ns,
        "link",
        "add",
        name,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ])
}

/// A directory under the system temp dir for one test's files (configs,
/// logs, lease databases), removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `$TMPDIR/stormboot-<name>-<pid>`, emptied first: a crashed earlier
    /// run with the same PID may have left it behind.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("stormboot-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.path(file);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// `write`, made executable: for the scripts DHCP clients run.
    pub fn write_script(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.write(file, contents);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        path
    }

    /// An empty file that a child process writes its output into.
    pub fn log_file(&self, file: &str) -> File {
        let path = self.path(file);
        File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
    }

    /// A file a child process appends its output to, created if missing:
    /// for a daemon restarted onto the same log.
    pub fn append_file(&self, file: &str) -> File {
        let path = self.path(file);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
    }

    /// The contents of `file`, or a note saying why there are none.
    pub fn read(&self, file: &str) -> String {
        let path = self.path(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A dhclient lease file's last lease as "fixed-address" / "option NAME"
/// to value, with the trailing `;` and any quotes removed.
pub fn parse_dhclient_lease(text: &str) -> BTreeMap<String, String> {
    let block = text
        .rsplit("lease {")
        .next()
        .and_then(|b| b.split('}').next())
        .unwrap_or("");
    block
        .lines()
        .filter_map(|line| {
            let line = line.trim().strip_suffix(';')?;
            let (key, value) = match line.strip_prefix("option ") {
                Some(opt) => {
                    let (name, value) = opt.split_once(' ')?;
                    (format!("option {name}"), value)
                }
                None => {
                    let (key, value) = line.split_once(' ')?;
                    (key.to_owned(), value)
                }
            };
            Some((key, value.trim_matches('"').to_owned()))
        })
        .collect()
}

/// One captured IPv4/UDP datagram.
pub struct UdpFrame {
    pub src: std::net::Ipv4Addr,
    pub dst: std::net::Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// The IPv4/UDP datagrams of a pcap file of Ethernet frames (what
/// tcpdump -w writes: microsecond records in the host's byte order).
pub fn udp_frames(pcap: &[u8]) -> Vec<UdpFrame> {
    let le32 = |b: &[u8], at: usize| -> Option<usize> {
        let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(bytes)).ok()
    };
    assert_eq!(
        pcap.get(..4),
        Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]),
        "not a little-endian pcap file"
    );
    assert_eq!(le32(pcap, 20), Some(1), "pcap link type is not Ethernet");
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(len) = le32(pcap, at + 8) {
        let Some(frame) = pcap.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        // Ethernet II, IPv4, UDP.
        if frame.get(12..14) != Some(&[0x08, 0x00][..]) {
            continue;
        }
        let Some(ip) = frame.get(14..) else { continue };
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
        if ip.get(9) != Some(&17) || ihl < 20 {
            continue;
        }
        let addr = |at: usize| -> Option<std::net::Ipv4Addr> {
            let octets: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(octets))
        };
        let (Some(src), Some(dst), Some(udp)) = (addr(12), addr(16), ip.get(ihl..)) else {
            continue;
        };
        let Some(ports) = udp.get(0..4) else { continue };
        frames.push(UdpFrame {
            src,
            dst,
            sport: u16::from_be_bytes([ports[0], ports[1]]),
            dport: u16::from_be_bytes([ports[2], ports[3]]),
            payload: udp.get(8..).unwrap_or_default().to_vec(),
        });
    }
    frames
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    /// The namespace a process is in, as the inode of its ns/net link.
    fn netns_inode_of(path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.ino())
    }

    /// Whether `ns` appears in `ip netns list`.
    fn netns_listed(ns: &str) -> bool {
        let out = ip(&["netns", "list"]).expect("ip netns list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns))
    }

    #[test]
    fn selftest_client_pings_server_and_drop_cleans_up() {
        require_root();
        let bed = Testbed::new("selftest", None).unwrap();
        let (srv, cli) = (bed.server_ns.clone(), bed.client_ns.clone());
        let mut add = bed.command(Side::Client, "ip");
        add.args(["addr", "add", "10.50.0.2/24", "dev", CLIENT_IF]);
        bed.run(Side::Client, add).unwrap();
        let mut ping = bed.command(Side::Client, "ping");
        ping.args(["-c1", "-W2", SERVER_ADDR]);
        bed.run(Side::Client, ping).unwrap();
        assert!(netns_listed(&srv) && netns_listed(&cli));
        drop(bed);
        assert!(!netns_listed(&srv), "{srv} left behind");
        assert!(!netns_listed(&cli), "{cli} left behind");
    }

    #[test]
    fn children_run_inside_and_are_stopped() {
        require_root();
        let mut bed = Testbed::new("selftest-proc", Some("02:50:00:00:00:2a")).unwrap();
        assert_eq!(bed.client_mac().unwrap(), "02:50:00:00:00:2a");

        // A plain Command, not built by `command`, still lands in the namespace.
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let pid = bed.spawn(Side::Server, sleep).unwrap();
        let ns_of_pid = netns_inode_of(Path::new(&format!("/proc/{pid}/ns/net"))).unwrap();
        assert_eq!(
            ns_of_pid,
            netns_inode_of(&bed.ns_path(Side::Server)).unwrap()
        );
        let status = bed.stop(pid).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(bed.stop(pid).is_err(), "a stopped child is forgotten");

        let mut sleep = bed.command(Side::Client, "sleep");
        sleep.arg("30");
        let pid = bed.spawn(Side::Client, sleep).unwrap();
        let ns_of_pid = netns_inode_of(Path::new(&format!("/proc/{pid}/ns/net"))).unwrap();
        assert_eq!(
            ns_of_pid,
            netns_inode_of(&bed.ns_path(Side::Client)).unwrap()
        );
        drop(bed);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "drop kills and reaps children"
        );
    }

    #[test]
    fn failing_commands_report_their_output() {
        require_root();
        let bed = Testbed::new("selftest-fail", None).unwrap();
        let mut cmd = bed.command(Side::Server, "sh");
        cmd.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
        let err = format!("{:#}", bed.run(Side::Server, cmd).unwrap_err());
        assert!(
            err.contains("to-stdout") && err.contains("to-stderr") && err.contains('3'),
            "{err}"
        );
    }

    #[test]
    fn leftovers_are_replaced() {
        require_root();
        let first = Testbed::new("selftest-again", None).unwrap();
        // Simulate a crashed run: the namespaces outlive the value.
        std::mem::forget(first);
        let bed = Testbed::new("selftest-again", None).unwrap();
        assert!(bed.client_mac().is_ok());
    }

    #[test]
    fn relay_namespace_routes_between_client_and_server() {
        require_root();
        let (bed, relay) = Testbed::with_relay("selftest-relay").unwrap();
        let rly = relay.ns.clone();
        assert!(netns_listed(&rly));
        // Give the client an address behind the relay and a route through
        // it: the server must answer across the relay's forwarding.
        for args in [
            vec!["addr", "add", "10.60.0.2/24", "dev", CLIENT_IF],
            vec!["route", "add", "default", "via", RELAY_DOWNSTREAM_ADDR],
        ] {
            let mut cmd = bed.command(Side::Client, "ip");
            cmd.args(args);
            bed.run(Side::Client, cmd).unwrap();
        }
        let mut ping = bed.command(Side::Client, "ping");
        ping.args(["-c1", "-W2", SERVER_ADDR]);
        bed.run(Side::Client, ping).unwrap();
        let mut ping = relay.command("ping");
        ping.args(["-c1", "-W2", SERVER_ADDR]);
        relay.run(ping).unwrap();
        drop(relay);
        drop(bed);
        assert!(!netns_listed(&rly), "{rly} left behind");
    }

    #[test]
    fn client_mac_changes_and_children_are_killed_or_awaited() {
        require_root();
        let mut bed = Testbed::new("selftest-mac", Some("02:50:00:00:00:2b")).unwrap();
        bed.set_client_mac("02:50:00:00:00:2c").unwrap();
        assert_eq!(bed.client_mac().unwrap(), "02:50:00:00:00:2c");

        let mut sleep = bed.command(Side::Client, "sleep");
        sleep.arg("30");
        let pid = bed.spawn(Side::Client, sleep).unwrap();
        assert_eq!(bed.wait(pid, Duration::from_millis(100)).unwrap(), None);
        let status = bed.kill(pid).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(bed.kill(pid).is_err(), "a killed child is forgotten");

        let mut quick = bed.command(Side::Client, "true");
        quick.arg("quick");
        let pid = bed.spawn(Side::Client, quick).unwrap();
        let status = bed.wait(pid, Duration::from_secs(5)).unwrap();
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        assert!(
            bed.wait(pid, Duration::ZERO).is_err(),
            "an awaited child is forgotten"
        );
    }

    #[test]
    fn scratch_files_and_dhclient_leases() {
        let scratch = Scratch::new("selftest-scratch");
        let script = scratch.write_script("s.sh", "#!/bin/sh\n");
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        use std::io::Write as _;
        writeln!(scratch.append_file("log"), "one").unwrap();
        writeln!(scratch.append_file("log"), "two").unwrap();
        assert_eq!(scratch.read("log"), "one\ntwo\n");
        assert!(scratch.read("missing").starts_with("<cannot read"));
        let dir = scratch.dir().to_path_buf();
        drop(scratch);
        assert!(!dir.exists());

        let text = "lease {\n  fixed-address 10.50.0.100;\n}\nlease {\n  interface \"sbc0\";\n  \
                    fixed-address 10.50.0.101;\n  option domain-name \"a.example\";\n}\n";
        let lease = parse_dhclient_lease(text);
        assert_eq!(lease["fixed-address"], "10.50.0.101");
        assert_eq!(lease["option domain-name"], "a.example");
        assert_eq!(lease["interface"], "sbc0");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(Testbed::new("", None).is_err());
        assert!(Testbed::new("a/b", None).is_err());
    }

    #[test]
    fn wait_for_polls_until_some_or_timeout() {
        let mut n = 0;
        assert_eq!(
            wait_for(Duration::from_secs(2), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        let t0 = Instant::now();
        assert_eq!(wait_for(Duration::from_millis(120), || None::<()>), None);
        assert!(t0.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn binary_looks_in_the_workspace_target() {
        let p = binary("xtask");
        assert!(
            p.ends_with("debug/xtask") || p.ends_with("release/xtask"),
            "{}",
            p.display()
        );
    }
}
