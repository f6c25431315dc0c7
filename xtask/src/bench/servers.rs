//! The DHCP servers the benchmark measures, each configured from one plan:
//! the same subnet, pool, router, lease time and reservations, started in
//! the server namespace pinned to one CPU, with durable leases where the
//! server has them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use stormboot_testbed::labconfig::{LabConfig, Machines};
use stormboot_testbed::{Side, Testbed, SERVER_IF};

/// The server's address; the lab's /24 is widened to this prefix.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);
/// perfdhcp's address: it acts as a relay (giaddr), as in a real rack.
pub const RELAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 2);
pub const PREFIX_LEN: u8 = 12;
const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 48, 0, 0);
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 240, 0, 0);
pub const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(10, 52, 0, 0);
/// Machine i of the storm and of perfdhcp's MAC list has MAC FIRST_MAC + i
/// and the reserved address FIRST_IP + i.
pub const FIRST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0];
pub const FIRST_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 4, 0);
/// One more reservation, for the probe that says a server answers.
pub const PROBE_MAC: &str = "02:ff:00:00:00:01";
pub const PROBE_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 10);
/// The CPU the server runs on; load generators get the other one.
pub const SERVER_CPU: &str = "0";
pub const CLIENT_CPU: &str = "1";
const LEASE_SECS: u32 = 3600;
/// A renewal within this fraction of the lease time of the lease's last
/// write is answered without writing it again: ISC dhcpd's default
/// (`dhcp-cache-threshold 25`), given to Kea (`cache-threshold`) and
/// stormboot (`cache_threshold`) too, so that every server writes a
/// known machine's lease as often as the others.
const CACHE_THRESHOLD: f64 = 0.25;

/// What every server is configured with.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Reservations (besides the probe's).
    pub machines: u32,
    /// Last address of the dynamic pool (from POOL_FIRST).
    pub pool_last: Ipv4Addr,
}

impl Plan {
    /// The reserved machines (the probe aside).
    pub fn machines(&self) -> Machines {
        Machines {
            count: self.machines,
            first_mac: FIRST_MAC,
            first_ip: FIRST_IP,
            hostname: "m",
        }
    }

    pub fn mac(&self, i: u32) -> String {
        self.machines().mac(i)
    }

    pub fn ip(&self, i: u32) -> Ipv4Addr {
        self.machines().ip(i)
    }

    /// (MAC, address, host name) of every reservation, the probe's last.
    pub fn reservations(&self) -> impl Iterator<Item = (String, Ipv4Addr, String)> {
        let machines = self.machines();
        (0..self.machines)
            .map(move |i| (machines.mac(i), machines.ip(i), machines.host(i)))
            .chain(std::iter::once((
                PROBE_MAC.to_string(),
                PROBE_IP,
                "probe".to_string(),
            )))
    }

    /// perfdhcp's `-M` file: the reserved MACs, one a line.
    pub fn mac_list(&self) -> String {
        (0..self.machines).fold(String::new(), |mut s, i| {
            let _ = writeln!(s, "{}", self.mac(i));
            s
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    StormbootXdp,
    StormbootUserspace,
    Kea,
    Dnsmasq,
    Dhcpd,
    Coredhcp,
}

pub const ALL: [Server; 6] = [
    Server::StormbootXdp,
    Server::StormbootUserspace,
    Server::Kea,
    Server::Dnsmasq,
    Server::Dhcpd,
    Server::Coredhcp,
];

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::StormbootXdp => "stormboot (XDP, SQLite)",
            Server::StormbootUserspace => "stormboot (userspace, SQLite)",
            Server::Kea => "Kea 2.2 (memfile)",
            Server::Dnsmasq => "dnsmasq",
            Server::Dhcpd => "ISC dhcpd 4.4",
            Server::Coredhcp => "coredhcp",
        }
    }

    /// Short name, for directories and the command line.
    pub fn key(self) -> &'static str {
        match self {
            Server::StormbootXdp => "stormboot-xdp",
            Server::StormbootUserspace => "stormboot-userspace",
            Server::Kea => "kea",
            Server::Dnsmasq => "dnsmasq",
            Server::Dhcpd => "dhcpd",
            Server::Coredhcp => "coredhcp",
        }
    }

    /// What of a stormboot row's leases is on disk when its reply leaves
    /// (the tables say it beside the figures); None for the peers.
    pub fn durability(self) -> Option<&'static str> {
        match self {
            Server::StormbootXdp => Some(
                "reserved machines are answered by XDP, which sends the ACK first: the \
                 daemon drains the program's ACK events every 10 ms and records each as a \
                 lease in the next group commit, so a lease is on disk some milliseconds \
                 after its ACK (a crash in between loses the record, not the address, \
                 which stays reserved); requests passed up (pool leases) are on disk \
                 before their reply",
            ),
            Server::StormbootUserspace => {
                Some("every reply leaves after its lease is on disk (group commit, fsync)")
            }
            _ => None,
        }
    }

    pub fn is_peer(self) -> bool {
        !matches!(self, Server::StormbootXdp | Server::StormbootUserspace)
    }

    /// The program it runs, and the Debian package that has it.
    fn program(self) -> (&'static str, &'static str) {
        match self {
            Server::StormbootXdp | Server::StormbootUserspace => ("stormboot", "-"),
            Server::Kea => ("/usr/sbin/kea-dhcp4", "kea-dhcp4-server"),
            Server::Dnsmasq => ("/usr/sbin/dnsmasq", "dnsmasq-base"),
            Server::Dhcpd => ("/usr/sbin/dhcpd", "isc-dhcp-server"),
            Server::Coredhcp => ("/usr/bin/coredhcp", "coredhcp-server"),
        }
    }

    /// Why it cannot run here, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        let (program, package) = self.program();
        if package == "-" || Path::new(program).exists() {
            None
        } else {
            Some(format!("{program} missing (Debian package {package})"))
        }
    }

    /// Writes its configuration into `work` and starts it in the server
    /// namespace on SERVER_CPU; its PID.
    pub fn start(self, bed: &mut Testbed, work: &Path, plan: &Plan, bin: &Path) -> Result<u32> {
        let stderr = std::fs::File::create(work.join("stderr.log"))?;
        let mut cmd = self.command(work, plan, bin)?;
        if self == Server::Dhcpd {
            let check = Command::new(self.program().0)
                .args(["-t", "-4", "-cf"])
                .arg(work.join("dhcpd.conf"))
                .output()
                .context("running dhcpd -t")?;
            if !check.status.success() {
                anyhow::bail!(
                    "dhcpd refuses its configuration: {}",
                    String::from_utf8_lossy(&check.stderr)
                );
            }
        }
        cmd.stderr(stderr).stdout(std::process::Stdio::null());
        bed.spawn(Side::Server, cmd)
    }

    /// Writes its configuration into `work`; the command that runs it on
    /// SERVER_CPU.
    fn command(self, work: &Path, plan: &Plan, bin: &Path) -> Result<Command> {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", SERVER_CPU]);
        match self {
            Server::StormbootXdp | Server::StormbootUserspace => {
                let config = stormboot(work, plan, self == Server::StormbootXdp)?;
                cmd.arg(bin)
                    .args(["--log", "warn", "serve", "--config"])
                    .arg(config);
            }
            Server::Kea => {
                let config = kea(work, plan)?;
                cmd.args([self.program().0, "-c"]).arg(config);
                // Kea keeps its pid and lock files here instead of /run.
                cmd.env("KEA_PIDFILE_DIR", work)
                    .env("KEA_LOCKFILE_DIR", work);
            }
            Server::Dnsmasq => {
                let hosts = work.join("hosts");
                let mut text = String::new();
                for (mac, ip, host) in plan.reservations() {
                    let _ = writeln!(text, "{mac},{ip},{host}");
                }
                std::fs::write(&hosts, text)?;
                cmd.arg(self.program().0).args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    // DHCP only: no DNS.
                    "--port=0",
                    "--interface",
                    SERVER_IF,
                    "--dhcp-authoritative",
                    // The others do not ping an address before offering it.
                    "--no-ping",
                    // Nor do they log every packet.
                    "--quiet-dhcp",
                    "--dhcp-lease-max=10000000",
                    "--dhcp-option=3,10.50.0.1",
                ]);
                cmd.arg(format!(
                    "--dhcp-range={POOL_FIRST},{},{NETMASK},{LEASE_SECS}",
                    plan.pool_last
                ));
                cmd.arg(format!("--dhcp-hostsfile={}", hosts.display()));
                cmd.arg(format!(
                    "--dhcp-leasefile={}",
                    work.join("leases").display()
                ));
                cmd.arg(format!("--pid-file={}", work.join("pid").display()));
                cmd.arg(format!("--log-facility={}", work.join("log").display()));
            }
            Server::Dhcpd => {
                let config = dhcpd(work, plan)?;
                let leases = work.join("dhcpd.leases");
                std::fs::write(&leases, "")?;
                // In the foreground (-f) with its own files, quiet (-q: no
                // banner). Not -d: that writes every packet's log line to
                // stderr, which the other servers are not asked to do. dhcpd
                // has no switch against its per-packet syslog(3) lines; with
                // no /dev/log in the lab they are dropped by libc.
                cmd.args([self.program().0, "-f", "-4", "-q", "-cf"])
                    .arg(&config)
                    .arg("-lf")
                    .arg(&leases)
                    .arg("-pf")
                    .arg(work.join("dhcpd.pid"))
                    .arg(SERVER_IF);
            }
            Server::Coredhcp => {
                let config = coredhcp(work, plan)?;
                cmd.args([self.program().0, "-L", "warning", "-c"])
                    .arg(config);
            }
        }
        Ok(cmd)
    }
}

fn stormboot(work: &Path, plan: &Plan, xdp: bool) -> Result<PathBuf> {
    let mut c = LabConfig::new(plan.machines(), &format!("{SUBNET}/{PREFIX_LEN}"));
    c.more_csv = format!("{PROBE_MAC},{PROBE_IP},probe\n");
    c.pool = Some(format!("{POOL_FIRST}-{}", plan.pool_last));
    c.subnet_lines = format!("cache_threshold = {CACHE_THRESHOLD}\n");
    c.server = format!(
        "dataplane = \"{}\"\n",
        if xdp { "xdp" } else { "userspace" }
    );
    c.sections = "[api]\nlisten = \"127.0.0.1:8067\"\n".into();
    c.write(work)
}

fn kea(work: &Path, plan: &Plan) -> Result<PathBuf> {
    let config = work.join("kea-dhcp4.conf");
    let reservations: Vec<String> = plan
        .reservations()
        .map(|(mac, ip, host)| {
            format!(r#"{{ "hw-address": "{mac}", "ip-address": "{ip}", "hostname": "{host}" }}"#)
        })
        .collect();
    std::fs::write(
        &config,
        format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{SERVER_IF}" ] }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "valid-lifetime": {LEASE_SECS},
  "cache-threshold": {CACHE_THRESHOLD},
  "subnet4": [ {{ "id": 1, "subnet": "{SUBNET}/{PREFIX_LEN}",
                  "pools": [ {{ "pool": "{POOL_FIRST} - {last}" }} ],
                  "option-data": [ {{ "name": "routers", "data": "{SERVER_ADDR}" }} ],
                  "reservations": [
{res}
                  ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "WARN",
                  "output_options": [ {{ "output": "{log}" }} ] }} ]
}} }}"#,
            leases = work.join("kea-leases4.csv").display(),
            last = plan.pool_last,
            res = reservations.join(",\n"),
            log = work.join("kea.log").display()
        ),
    )?;
    Ok(config)
}

fn dhcpd(work: &Path, plan: &Plan) -> Result<PathBuf> {
    let mut text = format!(
        "authoritative;\nddns-update-style none;\n\
         # The others do not ping an address before offering it.\nping-check false;\n\
         default-lease-time {LEASE_SECS};\nmax-lease-time {LEASE_SECS};\n\
         dhcp-cache-threshold {};\n\
         subnet {SUBNET} netmask {NETMASK} {{\n  range {POOL_FIRST} {};\n  \
         option routers {SERVER_ADDR};\n  option subnet-mask {NETMASK};\n}}\n",
        (CACHE_THRESHOLD * 100.0) as u32,
        plan.pool_last
    );
    for (mac, ip, host) in plan.reservations() {
        let _ = writeln!(
            text,
            "host {host} {{ hardware ethernet {mac}; fixed-address {ip}; }}"
        );
    }
    let config = work.join("dhcpd.conf");
    std::fs::write(&config, text)?;
    Ok(config)
}

fn coredhcp(work: &Path, plan: &Plan) -> Result<PathBuf> {
    let mut hosts = String::new();
    for (mac, ip, _) in plan.reservations() {
        let _ = writeln!(hosts, "{mac} {ip}");
    }
    let hosts_path = work.join("hosts.txt");
    std::fs::write(&hosts_path, hosts)?;
    let config = work.join("coredhcp.yml");
    std::fs::write(
        &config,
        format!(
            "server4:\n  listen:\n    - \"%{SERVER_IF}\"\n  plugins:\n\
             \x20   - lease_time: {LEASE_SECS}s\n\
             \x20   - server_id: {SERVER_ADDR}\n\
             \x20   - router: {SERVER_ADDR}\n\
             \x20   - netmask: {NETMASK}\n\
             \x20   - file: {}\n\
             \x20   - range: {} {POOL_FIRST} {} {LEASE_SECS}s\n",
            hosts_path.display(),
            work.join("leases.txt").display(),
            plan.pool_last
        ),
    )?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_gets_the_same_reservations() {
        let plan = Plan {
            machines: 300,
            pool_last: Ipv4Addr::new(10, 52, 3, 254),
        };
        let all: Vec<_> = plan.reservations().collect();
        assert_eq!(all.len(), 301);
        assert_eq!(all[0].0, "02:00:00:00:00:00");
        assert_eq!(all[299].0, "02:00:00:00:01:2b");
        assert_eq!(all[299].1, Ipv4Addr::new(10, 50, 5, 43));
        assert_eq!(all[300].1, PROBE_IP);
        assert_eq!(plan.mac_list().lines().count(), 300);
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kea: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(kea(&dir, &plan).unwrap()).unwrap())
                .expect("Kea's configuration is JSON");
        assert_eq!(
            kea["Dhcp4"]["subnet4"][0]["reservations"]
                .as_array()
                .unwrap()
                .len(),
            301
        );
        let dhcpd = std::fs::read_to_string(dhcpd(&dir, &plan).unwrap()).unwrap();
        assert_eq!(dhcpd.matches("fixed-address").count(), 301);
        coredhcp(&dir, &plan).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("hosts.txt"))
                .unwrap()
                .lines()
                .count(),
            301
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dhcpd_runs_in_the_foreground_without_per_packet_stderr_logging() {
        let plan = Plan {
            machines: 2,
            pool_last: Ipv4Addr::new(10, 52, 3, 254),
        };
        let dir = std::env::temp_dir().join(format!("xtask-dhcpd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cmd = Server::Dhcpd
            .command(&dir, &plan, Path::new("stormboot"))
            .unwrap();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(args.iter().any(|a| a == "-f"), "{args:?}");
        assert!(args.iter().any(|a| a == "-q"), "{args:?}");
        // -d logs every packet to stderr (and implies -f).
        assert!(!args.iter().any(|a| a == "-d"), "{args:?}");
    }
}
