//! The server side of the boot chain (`stormboot-lab chain`): the files a
//! rack boots (Debian's iPXE binaries, a generated kernel and initrd), the
//! machines' routes in a testbed, and the servers that hand them out, each
//! configured as its users configure it: stormboot alone; dnsmasq (DHCP
//! and its own TFTP) with nginx; Kea 2.2 with tftpd-hpa and nginx. `cargo
//! xtask lab`, the bench's `storm-e2e` and tests/storm_e2e.rs use it.
//!
//! Every server gets the same reservations (machine i: MAC
//! 02:00:00:00:00:00 plus i, address 10.50.4.0 plus i), the same files and
//! the same rule: BIOS PXE
//! gets undionly.kpxe over TFTP, UEFI PXE ipxe.efi over TFTP, UEFI HTTP boot
//! http://10.50.0.1/ipxe.efi, and iPXE (user class "iPXE") its script,
//! which names the kernel and the initrd under /artifacts/.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::labconfig::{LabConfig, Machines};
use crate::{wait_for, Side, Testbed, CLIENT_IF, SERVER_ADDR, SERVER_IF};

/// The machines' range: local addresses on the client side, reached from
/// the server through one address of the client end (`RACK_GATEWAY`), so
/// the server keeps one neighbour entry, not one per machine: the kernel's
/// neighbour table is shared by every namespace on the host, and its
/// default ceiling (gc_thresh3, 1,024) would otherwise drop packets.
pub const MACHINES_CIDR: &str = "10.50.4.0/22";
/// The client end's own address, the next hop to every machine.
pub const RACK_GATEWAY: &str = "10.50.0.250";
/// The addresses in `MACHINES_CIDR`.
pub const MAX_MACHINES: u32 = 1024;
/// The subnet the servers hand out (the machines' range inside it).
pub const CHAIN_SUBNET: &str = "10.50.0.0/16";
const NETMASK: &str = "255.255.0.0";
const LEASE_SECS: u32 = 3600;
/// Where Debian's ipxe package puts its binaries (ipxe.efi is a symlink
/// into /boot there; the copies here are real files).
const IPXE_DIR: &str = "/usr/lib/ipxe";
pub const BIOS_FILE: &str = "undionly.kpxe";
pub const EFI_FILE: &str = "ipxe.efi";

/// The chain's machines: 02:00:00:00:00:00 + i at 10.50.4.0 + i.
pub fn machines(count: u32) -> Machines {
    Machines {
        count,
        first_mac: [0x02, 0, 0, 0, 0, 0],
        first_ip: Ipv4Addr::new(10, 50, 4, 0),
        hostname: "node",
    }
}

/// The files every server serves, under one directory:
/// `tftp/` (the iPXE binaries), `artifacts/` (kernel, initrd) and `web/`
/// (the peers' HTTP root: ipxe.efi, boot.ipxe and artifacts/, linked).
#[derive(Clone, Debug)]
pub struct BootFiles {
    pub dir: PathBuf,
    pub kernel_bytes: u64,
    pub initrd_bytes: u64,
}

/// The profile every server boots, as stormboot renders it by default.
pub const KERNEL: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
pub const CMDLINE: &str = "console=ttyS0,115200n8";

impl BootFiles {
    pub fn tftp_root(&self) -> PathBuf {
        self.dir.join("tftp")
    }
    pub fn artifacts(&self) -> PathBuf {
        self.dir.join("artifacts")
    }
    pub fn web_root(&self) -> PathBuf {
        self.dir.join("web")
    }

    /// Copies the iPXE binaries and writes a kernel and an initrd of the
    /// given sizes (bytes that do not compress), and the peers' web root.
    pub fn prepare(dir: &Path, kernel_bytes: u64, initrd_bytes: u64) -> anyhow::Result<BootFiles> {
        let f = BootFiles {
            dir: dir.to_path_buf(),
            kernel_bytes,
            initrd_bytes,
        };
        for d in [f.tftp_root(), f.artifacts(), f.web_root()] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        for name in [BIOS_FILE, EFI_FILE] {
            let from = Path::new(IPXE_DIR).join(name);
            // fs::copy follows the symlink: the daemon's TFTP refuses one
            // that leaves its root, and so does tftpd-hpa's --secure.
            std::fs::copy(&from, f.tftp_root().join(name))
                .with_context(|| format!("copying {} (Debian package ipxe)", from.display()))?;
        }
        for (name, size) in [(KERNEL, kernel_bytes), (INITRD, initrd_bytes)] {
            let path = f.artifacts().join(name);
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
                continue;
            }
            write_noise(&path, size)?;
        }
        let web = f.web_root();
        let link = |from: &Path, to: &Path| -> anyhow::Result<()> {
            let _ = std::fs::remove_file(to);
            std::os::unix::fs::symlink(from, to)
                .with_context(|| format!("linking {} to {}", to.display(), from.display()))
        };
        link(&f.artifacts(), &web.join("artifacts"))?;
        link(&f.tftp_root().join(EFI_FILE), &web.join(EFI_FILE))?;
        std::fs::write(web.join("boot.ipxe"), peer_script())?;
        Ok(f)
    }

    /// stormboot's `[boot]` and `[[profile]]` for these files: every
    /// machine boots the profile "chain".
    pub fn stormboot_sections(&self) -> String {
        format!(
            "[boot]\ntftp_root = \"{}\"\nartifacts_dir = \"{}\"\nhttp_port = 80\n\
             default_profile = \"chain\"\n\n\
             [[profile]]\nname = \"chain\"\nkernel = \"{KERNEL}\"\ninitrd = \"{INITRD}\"\n\
             cmdline = \"{CMDLINE}\"\n",
            self.tftp_root().display(),
            self.artifacts().display()
        )
    }
}

/// The peers' iPXE script: one static file with what stormboot renders for
/// the same profile.
pub fn peer_script() -> String {
    format!(
        "#!ipxe\nkernel http://{SERVER_ADDR}/artifacts/{KERNEL} initrd={INITRD} {CMDLINE}\n\
         initrd http://{SERVER_ADDR}/artifacts/{INITRD}\nboot\n"
    )
}

/// `size` bytes of a xorshift sequence: nothing on the way can compress it.
fn write_noise(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left = size;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let n = left.min(8) as usize;
        w.write_all(&b[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

impl Testbed {
    /// Routes the chain's machines: on the client side their range is
    /// local (a socket binds to any machine's address) and sbc0 has
    /// `RACK_GATEWAY`; the server reaches the range through it.
    ///
    /// Their TCP receive window is iPXE's, at most 256 KiB (its
    /// TCP_MAX_WINDOW_SIZE): a receive buffer of twice that, which the
    /// kernel halves for the window. Left to the default, each connection
    /// grows its buffer to 32 MiB, and a thousand machines on one host use
    /// up the host's TCP memory (`tcp_mem`), where a rack's machines each
    /// have their own: segments are dropped on arrival and a connection's
    /// retransmissions back off for tens of seconds.
    pub fn route_machines(&self) -> anyhow::Result<()> {
        let rmem = "/proc/sys/net/ipv4/tcp_rmem";
        self.in_ns(Side::Client, move || {
            std::fs::write(rmem, "4096 131072 524288").with_context(|| format!("writing {rmem}"))
        })??;
        let gateway = format!("{RACK_GATEWAY}/24");
        for (side, args) in [
            (
                Side::Client,
                vec!["addr", "add", &gateway, "dev", CLIENT_IF],
            ),
            (
                Side::Client,
                vec!["route", "add", "local", MACHINES_CIDR, "dev", "lo"],
            ),
            (
                Side::Server,
                vec![
                    "route",
                    "add",
                    MACHINES_CIDR,
                    "via",
                    RACK_GATEWAY,
                    "dev",
                    SERVER_IF,
                ],
            ),
        ] {
            let mut ip = Command::new("ip");
            ip.args(&args);
            self.run(side, ip)?;
        }
        Ok(())
    }
}

/// A server the chain is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootServer {
    /// stormboot: DHCP (XDP for reservations), TFTP and HTTP in one daemon.
    Stormboot,
    /// dnsmasq (DHCP and its built-in TFTP) with nginx for HTTP.
    Dnsmasq,
    /// Kea 2.2 with tftpd-hpa and nginx.
    Kea,
}

pub const ALL: [BootServer; 3] = [BootServer::Stormboot, BootServer::Dnsmasq, BootServer::Kea];

impl BootServer {
    pub fn name(self) -> &'static str {
        match self {
            BootServer::Stormboot => "stormboot (XDP)",
            BootServer::Dnsmasq => "dnsmasq + nginx",
            BootServer::Kea => "Kea 2.2 + tftpd-hpa + nginx",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            BootServer::Stormboot => "stormboot",
            BootServer::Dnsmasq => "dnsmasq",
            BootServer::Kea => "kea",
        }
    }

    /// The programs it needs, and their Debian packages.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            BootServer::Stormboot => &[],
            BootServer::Dnsmasq => &[
                ("/usr/sbin/dnsmasq", "dnsmasq-base"),
                ("/usr/sbin/nginx", "nginx"),
            ],
            BootServer::Kea => &[
                ("/usr/sbin/kea-dhcp4", "kea-dhcp4-server"),
                ("/usr/sbin/in.tftpd", "tftpd-hpa"),
                ("/usr/sbin/nginx", "nginx"),
            ],
        }
    }

    /// Why it cannot run here, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        self.programs()
            .iter()
            .find(|(p, _)| !Path::new(p).exists())
            .map(|(p, pkg)| format!("{p} missing (Debian package {pkg})"))
    }

    /// Writes its configuration into `work`, starts its processes in the
    /// server namespace (each under `pin`, e.g. `taskset -c 0`, when
    /// given), waits until DHCP, TFTP and HTTP listen, and returns every
    /// PID whose CPU time and memory count as the server's (nginx's
    /// workers too).
    pub fn start(
        self,
        bed: &mut Testbed,
        work: &Path,
        files: &BootFiles,
        count: u32,
        stormboot: &Path,
        pin: &[&str],
    ) -> anyhow::Result<Vec<u32>> {
        std::fs::create_dir_all(work)?;
        let spawn = |bed: &mut Testbed, name: &str, program: &Path, args: Vec<String>| {
            let mut cmd = match pin.split_first() {
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(program);
                    c
                }
                None => Command::new(program),
            };
            cmd.args(args)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(work.join(format!("{name}.log")))?);
            bed.spawn(Side::Server, cmd)
        };
        let mut pids = Vec::new();
        match self {
            BootServer::Stormboot => {
                let mut c = LabConfig::new(machines(count), CHAIN_SUBNET);
                c.sections = files.stormboot_sections();
                // skb mode: with driver mode a veth hands every frame to a
                // peer running XDP through a 256-frame ring, which the
                // downloads fill, losing the DHCP and TFTP datagrams in it.
                c.server = "xdp_mode = \"skb\"\n".into();
                let config = c.write(work)?;
                let args = vec![
                    "--log".into(),
                    "warn".into(),
                    "serve".into(),
                    "--config".into(),
                    config.display().to_string(),
                ];
                pids.push(spawn(bed, "stormboot", stormboot, args)?);
            }
            BootServer::Dnsmasq => {
                let conf = dnsmasq_conf(work, files, count)?;
                let args = vec![
                    "--keep-in-foreground".into(),
                    format!("--conf-file={}", conf.display()),
                ];
                pids.push(spawn(bed, "dnsmasq", Path::new("/usr/sbin/dnsmasq"), args)?);
                pids.push(start_nginx(bed, work, files, &spawn)?);
            }
            BootServer::Kea => {
                let conf = kea_conf(work, count)?;
                let mut cmd = match pin.split_first() {
                    Some((first, rest)) => {
                        let mut c = Command::new(first);
                        c.args(rest).arg("/usr/sbin/kea-dhcp4");
                        c
                    }
                    None => Command::new("/usr/sbin/kea-dhcp4"),
                };
                // Kea keeps its pid and lock files here instead of /run.
                cmd.arg("-c")
                    .arg(&conf)
                    .env("KEA_PIDFILE_DIR", work)
                    .env("KEA_LOCKFILE_DIR", work)
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(work.join("kea.log"))?);
                pids.push(bed.spawn(Side::Server, cmd)?);
                // Debian's /etc/default/tftpd-hpa: --secure, as user tftp.
                let args = vec![
                    "--foreground".into(),
                    "--listen".into(),
                    "--user".into(),
                    "tftp".into(),
                    "--address".into(),
                    format!("{SERVER_ADDR}:69"),
                    "--secure".into(),
                    files.tftp_root().display().to_string(),
                ];
                pids.push(spawn(
                    bed,
                    "tftpd-hpa",
                    Path::new("/usr/sbin/in.tftpd"),
                    args,
                )?);
                pids.push(start_nginx(bed, work, files, &spawn)?);
            }
        }
        wait_listening(bed, work)?;
        // nginx's workers (and anything else they started) count too.
        let mut all = pids.clone();
        for &p in &pids {
            all.extend(descendants(p));
        }
        Ok(all)
    }
}

type Spawn<'a> = dyn Fn(&mut Testbed, &str, &Path, Vec<String>) -> anyhow::Result<u32> + 'a;

/// nginx as Debian's nginx.conf sets it up (worker_processes auto,
/// worker_connections 768, sendfile, tcp_nopush, an access log), one
/// server block whose root is the web root; in the foreground, its pid
/// and logs in `work`.
fn start_nginx(
    bed: &mut Testbed,
    work: &Path,
    files: &BootFiles,
    spawn: &Spawn<'_>,
) -> anyhow::Result<u32> {
    let conf = work.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "user www-data;\nworker_processes auto;\npid {w}/nginx.pid;\ndaemon off;\n\
             error_log {w}/nginx-error.log;\n\
             events {{ worker_connections 768; }}\n\
             http {{\n  sendfile on;\n  tcp_nopush on;\n  types_hash_max_size 2048;\n\
             \x20 include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n\
             \x20 access_log {w}/nginx-access.log;\n\
             \x20 server {{ listen {SERVER_ADDR}:80; root {root}; }}\n}}\n",
            w = work.display(),
            root = files.web_root().display()
        ),
    )?;
    let args = vec![
        "-c".into(),
        conf.display().to_string(),
        "-e".into(),
        work.join("nginx-error.log").display().to_string(),
    ];
    spawn(bed, "nginx", Path::new("/usr/sbin/nginx"), args)
}

/// dnsmasq as its users configure it for PXE and iPXE: tags by
/// architecture and user class, its own TFTP (`enable-tftp`; `tftp-max`
/// left at its default of 50 transfers). Like the bench's DHCP row: no
/// DNS, no ping before an offer, no per-packet log lines, a lease limit
/// above the rack.
fn dnsmasq_conf(work: &Path, files: &BootFiles, count: u32) -> anyhow::Result<PathBuf> {
    let hosts = work.join("dnsmasq-hosts");
    let mut text = String::new();
    for (mac, ip, host) in machines(count).each() {
        let _ = writeln!(text, "{mac},{ip},{host}");
    }
    std::fs::write(&hosts, text)?;
    let conf = work.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "port=0\ninterface={SERVER_IF}\ndhcp-authoritative\nno-ping\nquiet-dhcp\n\
             dhcp-lease-max=100000\n\
             dhcp-range=10.50.0.0,static,{NETMASK},{LEASE_SECS}\n\
             dhcp-hostsfile={hosts}\ndhcp-leasefile={w}/dnsmasq.leases\n\
             pid-file={w}/dnsmasq.pid\nlog-facility={w}/dnsmasq-log\n\
             dhcp-option=3,{SERVER_ADDR}\n\
             dhcp-userclass=set:ipxe,iPXE\n\
             dhcp-match=set:efi64,option:client-arch,7\n\
             dhcp-match=set:efihttp,option:client-arch,16\n\
             dhcp-boot=tag:ipxe,http://{SERVER_ADDR}/boot.ipxe\n\
             dhcp-boot=tag:!ipxe,tag:efihttp,http://{SERVER_ADDR}/{EFI_FILE}\n\
             dhcp-option-force=tag:!ipxe,tag:efihttp,60,HTTPClient\n\
             dhcp-boot=tag:!ipxe,tag:efi64,{EFI_FILE}\n\
             dhcp-boot=tag:!ipxe,tag:!efi64,tag:!efihttp,{BIOS_FILE}\n\
             enable-tftp\ntftp-root={root}\n",
            hosts = hosts.display(),
            w = work.display(),
            root = files.tftp_root().display()
        ),
    )?;
    Ok(conf)
}

/// Kea 2.2 with client classes by user class and architecture, as its
/// documentation's PXE examples do; next-server for TFTP.
fn kea_conf(work: &Path, count: u32) -> anyhow::Result<PathBuf> {
    let reservations: Vec<String> = machines(count)
        .each()
        .map(|(mac, ip, host)| {
            format!(r#"{{ "hw-address": "{mac}", "ip-address": "{ip}", "hostname": "{host}" }}"#)
        })
        .collect();
    let not_ipxe = "not member('ipxe')";
    let conf = work.join("kea-dhcp4.conf");
    std::fs::write(
        &conf,
        format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{SERVER_IF}" ] }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "valid-lifetime": {LEASE_SECS},
  "client-classes": [
    {{ "name": "ipxe", "test": "substring(option[77].hex,0,4) == 'iPXE'",
       "boot-file-name": "http://{SERVER_ADDR}/boot.ipxe" }},
    {{ "name": "efi-http", "test": "{not_ipxe} and option[93].hex == 0x0010",
       "boot-file-name": "http://{SERVER_ADDR}/{EFI_FILE}",
       "option-data": [ {{ "name": "vendor-class-identifier", "data": "HTTPClient" }} ] }},
    {{ "name": "efi-pxe", "test": "{not_ipxe} and option[93].hex == 0x0007",
       "next-server": "{SERVER_ADDR}", "boot-file-name": "{EFI_FILE}" }},
    {{ "name": "bios-pxe", "test": "{not_ipxe} and option[93].hex == 0x0000",
       "next-server": "{SERVER_ADDR}", "boot-file-name": "{BIOS_FILE}" }}
  ],
  "subnet4": [ {{ "id": 1, "subnet": "{CHAIN_SUBNET}", "next-server": "{SERVER_ADDR}",
                  "option-data": [ {{ "name": "routers", "data": "{SERVER_ADDR}" }} ],
                  "reservations": [
{res}
                  ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "WARN",
                  "output_options": [ {{ "output": "{log}" }} ] }} ]
}} }}"#,
            leases = work.join("kea-leases4.csv").display(),
            res = reservations.join(",\n"),
            log = work.join("kea-dhcp4.log").display()
        ),
    )?;
    Ok(conf)
}

/// Waits up to 20 s until UDP 67 and 69 and TCP 80 listen in the server
/// namespace.
fn wait_listening(bed: &Testbed, work: &Path) -> anyhow::Result<()> {
    let listening = || {
        let mut ss = Command::new("ss");
        ss.args(["-Hlnu4t"]);
        let out = bed.run(Side::Server, ss).ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let has = |proto: &str, port: &str| {
            text.lines().any(|l| {
                l.starts_with(proto)
                    && l.split_whitespace()
                        .nth(4)
                        .is_some_and(|a| a.ends_with(&format!(":{port}")))
            })
        };
        (has("udp", "67") && has("udp", "69") && has("tcp", "80")).then_some(())
    };
    if wait_for(Duration::from_secs(20), listening).is_none() {
        let mut logs = String::new();
        for e in std::fs::read_dir(work)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") {
                let _ = writeln!(
                    logs,
                    "--- {name}\n{}",
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        bail!("DHCP, TFTP and HTTP did not all listen within 20 s:\n{logs}");
    }
    Ok(())
}

/// Every descendant of `pid`, from /proc/PID/task/*/children.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in text.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_real_files_of_the_asked_sizes() {
        let dir = std::env::temp_dir().join(format!("bootlab-{}", std::process::id()));
        let f = BootFiles::prepare(&dir, 1000, 4097).unwrap();
        let len = |p: PathBuf| std::fs::metadata(p).unwrap().len();
        assert_eq!(len(f.artifacts().join(KERNEL)), 1000);
        assert_eq!(len(f.artifacts().join(INITRD)), 4097);
        let efi = f.tftp_root().join(EFI_FILE);
        assert!(!std::fs::symlink_metadata(&efi).unwrap().is_symlink());
        assert!(len(efi) > 100_000, "Debian's ipxe.efi");
        assert_eq!(len(f.web_root().join("artifacts").join(INITRD)), 4097);
        let script = std::fs::read_to_string(f.web_root().join("boot.ipxe")).unwrap();
        assert!(script.contains("initrd http://10.50.0.1/artifacts/initrd.img"));
        let cfg = f.stormboot_sections();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(cfg.contains("default_profile = \"chain\""), "{cfg}");
    }

    #[test]
    fn the_peers_configurations_tell_the_firmware_apart() {
        let dir = std::env::temp_dir().join(format!("bootlab-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = BootFiles {
            dir: dir.clone(),
            kernel_bytes: 0,
            initrd_bytes: 0,
        };
        let kea: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(kea_conf(&dir, 3).unwrap()).unwrap())
                .expect("Kea's configuration is JSON");
        assert_eq!(kea["Dhcp4"]["client-classes"].as_array().unwrap().len(), 4);
        assert_eq!(
            kea["Dhcp4"]["subnet4"][0]["reservations"][2]["ip-address"],
            "10.50.4.2"
        );
        let dnsmasq = std::fs::read_to_string(dnsmasq_conf(&dir, &files, 3).unwrap()).unwrap();
        assert!(dnsmasq.contains("enable-tftp"));
        assert!(!dnsmasq.contains("tftp-max"), "dnsmasq's default stays");
        assert_eq!(dnsmasq.matches("dhcp-boot=").count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
