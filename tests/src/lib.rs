//! The network-namespace testbed shared by `cargo xtask lab` and the
//! end-to-end tests: a server and a client namespace joined by one veth pair,
//! and the processes started in them, all torn down on drop.
//!
//! It shells out to iproute2 and util-linux rather than speaking netlink so
//! that every step can be replayed by hand from a failing test's message.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

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

/// Two network namespaces, `sb-<name>-srv` holding `sb0` (10.50.0.1/24) and
/// `sb-<name>-cli` holding `sbc0` (no address), and the children spawned in
/// them.
pub struct Testbed {
    pub name: String,
    pub server_ns: String,
    pub client_ns: String,
    children: Vec<Child>,
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
            server_ns: format!("sb-{name}-srv"),
            client_ns: format!("sb-{name}-cli"),
            children: Vec::new(),
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

    /// A Command that runs `program` inside the namespace at `side` via
    /// `nsenter --net=/run/netns/<ns> -- program`. nsenter rather than
    /// `ip netns exec`, which remounts /sys and so hides the bpffs at
    /// /sys/fs/bpf that the daemon pins into. nsenter execs the program, so
    /// a spawned child's PID is the program's.
    pub fn command(&self, side: Side, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns_path(side).display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Spawns `cmd` in the namespace at `side` (also when it was not built
    /// by [`Testbed::command`]); the testbed keeps the child and kills it by
    /// PID (SIGTERM, then SIGKILL after 3 s) on drop. Returns the PID.
    pub fn spawn(&mut self, side: Side, mut cmd: Command) -> anyhow::Result<u32> {
        let _ns = self.enter_on_exec(side, &mut cmd)?;
        let child = cmd.spawn().with_context(|| spawn_failure(&cmd))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Runs `cmd` to completion in the namespace at `side`; an error carrying
    /// stdout and stderr when it exits non-zero.
    pub fn run(&self, side: Side, mut cmd: Command) -> anyhow::Result<Output> {
        let _ns = self.enter_on_exec(side, &mut cmd)?;
        let out = cmd.output().with_context(|| spawn_failure(&cmd))?;
        if !out.status.success() {
            bail!(
                "{cmd:?} in {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
                self.ns(side),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// Stops a child started by [`Testbed::spawn`]: SIGTERM, up to 5 s to
    /// exit, then SIGKILL.
    pub fn stop(&mut self, pid: u32) -> anyhow::Result<ExitStatus> {
        let pos = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("pid {pid} is not a child of testbed {}", self.name))?;
        let mut child = self.children.swap_remove(pos);
        terminate(&mut child, STOP_GRACE).with_context(|| format!("stopping pid {pid}"))
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

    /// Arranges for `cmd` to join the namespace at `side` between fork and
    /// exec. The returned file must stay open until the child is spawned.
    fn enter_on_exec(&self, side: Side, cmd: &mut Command) -> anyhow::Result<File> {
        let path = self.ns_path(side);
        let ns = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let fd = ns.as_raw_fd();
        // SAFETY: the closure only makes the setns(2) syscall and reads errno,
        // both async-signal-safe; `fd` stays open until spawn returns
        // (the caller holds the File) and is close-on-exec.
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

    fn delete_namespaces(&self) {
        for ns in [&self.server_ns, &self.client_ns] {
            if Path::new("/run/netns").join(ns).exists() {
                if let Err(e) = ip(&["netns", "del", ns]) {
                    eprintln!("testbed {}: {e:#}", self.name);
                }
            }
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for mut child in self.children.drain(..) {
            if let Err(e) = terminate(&mut child, DROP_GRACE) {
                eprintln!("testbed {}: stopping pid {}: {e}", self.name, child.id());
            }
        }
        self.delete_namespaces();
    }
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
/// otherwise the newer of <workspace>/target/{release,debug}/<name> (the
/// debug path when neither exists, so the caller's error names a real place
/// to look).
pub fn binary(name: &str) -> PathBuf {
    if name == "stormboot" {
        if let Some(path) = std::env::var_os("STORMBOOT_BIN") {
            return PathBuf::from(path);
        }
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
