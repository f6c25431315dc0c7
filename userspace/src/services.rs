//! The boot services around the DHCP server: TFTP for the iPXE binaries,
//! HTTP for the per-machine iPXE script and the artifacts, and the syslog
//! receiver. Started when the configuration has a `[boot]` section; each
//! reports what it served into the machine's boot timeline.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::boot::{self, http1, syslog, web};
use crate::bootfile;
use crate::config::Config;
use crate::frame::format_mac;
use crate::leases::Index;
use crate::reservation::book::Published;
use crate::tftp;
use crate::timeline::{Phase, Timeline};

/// Events from the services waiting for the timeline; a full queue drops
/// (the services never wait for it).
const EVENT_QUEUE: usize = 4096;

/// Finds machines for the services: by MAC, or by the address they come
/// from (a lease, else a reservation's address).
#[derive(Clone)]
pub struct Machines {
    /// The reservations and their configuration, as the apply path last
    /// published them: a lookup sees one book, never half of a change.
    book: Published,
    index: Arc<Index>,
}

/// Profile `i` of `cfg`, ready to hand out.
fn profile(cfg: &Config, i: usize) -> Arc<boot::Profile> {
    let p = &cfg.profiles[i];
    Arc::new(boot::Profile {
        name: p.name.clone(),
        kernel: p.kernel.clone(),
        initrd: p.initrd.clone(),
        cmdline: p.cmdline.clone(),
        script: p.script.clone(),
    })
}

impl Machines {
    pub fn new(book: Published, index: Arc<Index>) -> Self {
        Machines { book, index }
    }

    pub fn default_profile(&self) -> Option<Arc<boot::Profile>> {
        let book = self.book.load();
        let cfg = book.config();
        cfg.boot.default_profile.map(|i| profile(cfg, i))
    }

    /// Who uses `ip`: a lease, else a reservation, else the kernel's
    /// neighbour table, which knows every machine this host has exchanged
    /// packets with, even one another DHCP server addressed (boot-only).
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.index
            .mac_of(ip)
            .or_else(|| self.book.load().mac_of(ip))
            .or_else(|| {
                let table = std::fs::read_to_string("/proc/net/arp").ok()?;
                neighbour_mac(&table, ip)
            })
    }

    pub fn lookup(&self, l: web::Lookup) -> Option<boot::MachineInfo> {
        let mac = match l {
            web::Lookup::Mac(m) => m,
            web::Lookup::Ip(ip) => self.mac_of(ip)?,
        };
        let book = self.book.load();
        let cfg = book.config();
        if let Some(r) = book.reservation(&mac) {
            return Some(boot::MachineInfo {
                mac,
                ip: Some(r.ip),
                hostname: r.hostname.as_deref().map(str::to_owned),
                profile: bootfile::reservation_profile(cfg, r).map(|i| profile(cfg, i)),
                label: r.label.as_deref().map(str::to_owned),
            });
        }
        // A pool client: the profile of the subnet its lease is in.
        let ip = self.index.ip_of(mac)?;
        let subnet = cfg.subnets.iter().find(|s| s.net.contains(&ip))?;
        Some(boot::MachineInfo {
            mac,
            ip: Some(ip),
            hostname: None,
            profile: bootfile::pool_profile(cfg, subnet).map(|i| profile(cfg, i)),
            label: None,
        })
    }
}

/// The MAC of `ip` in /proc/net/arp's table ("IP address  HW type  Flags
/// HW address  Mask  Device"), if its entry is complete (flag 0x2).
fn neighbour_mac(table: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?;
        (f.first()?.parse::<Ipv4Addr>().ok()? == ip && flags & 0x2 != 0)
            .then(|| crate::frame::parse_mac(f.get(3)?))
            .flatten()
    })
}

fn peer_ip(a: SocketAddr) -> Option<Ipv4Addr> {
    match a.ip() {
        std::net::IpAddr::V4(v4) => Some(v4),
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// Binds the services' sockets (so a port in use fails the start, naming
/// it) and returns the tasks to run.
pub async fn start(
    cfg: Arc<Config>,
    machines: Machines,
    timeline: Arc<Timeline>,
    counters: Arc<crate::metrics::ServiceCounters>,
    tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let any = Ipv4Addr::UNSPECIFIED;
    let b = &cfg.boot;
    let tftp_sock = std::net::UdpSocket::bind((any, b.tftp_port))
        .with_context(|| format!("boot.tftp_port: cannot bind UDP {}", b.tftp_port))?;
    let http = http1::listen((any, b.http_port).into(), b.http_backlog)
        .with_context(|| format!("boot.http_port: cannot bind TCP {}", b.http_port))?;
    let syslog_sock = tokio::net::UdpSocket::bind((any, b.syslog_port))
        .await
        .with_context(|| format!("boot.syslog_port: cannot bind UDP {}", b.syslog_port))?;

    let (tftp_tx, mut tftp_rx) = mpsc::channel::<tftp::Transfer>(EVENT_QUEUE);
    let (web_tx, mut web_rx) = mpsc::channel::<web::WebEvent>(EVENT_QUEUE);
    let (log_tx, mut log_rx) = mpsc::channel::<syslog::LogLine>(EVENT_QUEUE);

    // One copy of each hot boot file, for both servers.
    let cache = Arc::new(crate::filecache::FileCache::new(
        b.file_cache_mb << 20,
        counters.clone(),
    ));
    let opts = tftp::TftpOptions {
        root: b.tftp_root.clone(),
        max_transfers: b.tftp_max_transfers,
        cache: cache.clone(),
        counters: counters.clone(),
        ..tftp::TftpOptions::default()
    };
    let token = shutdown.clone();
    tasks.spawn(async move {
        tftp::serve(tftp_sock, opts, tftp_tx, token)
            .await
            .map_err(std::io::Error::other)
    });

    let lookup_machines = machines.clone();
    let state = Arc::new(web::WebState {
        artifacts_dir: b.artifacts_dir.clone(),
        binaries_dir: b.tftp_root.clone(),
        base_url: bootfile::http_base(&cfg),
        lookup: Arc::new(move |l| lookup_machines.lookup(l)),
        default_profile: machines.default_profile(),
        events: web_tx,
        cache,
    });
    tasks.spawn(web::serve(http, state, shutdown.clone()));
    tasks.spawn(syslog::serve(syslog_sock, log_tx, shutdown.clone()));

    if b.ipv6_ra {
        for name in &cfg.server.interfaces {
            tasks.spawn(crate::ra::run(name.clone(), shutdown.clone()));
        }
    }
    // One task turns the services' events into timeline entries and logs.
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(t) = tftp_rx.recv() => {
                    let mac = peer_ip(t.peer).and_then(|ip| machines.mac_of(ip));
                    let result = match &t.outcome { Ok(()) => "ok".to_string(), Err(e) => e.clone() };
                    counters.tftp(t.bytes, t.outcome.is_ok());
                    tracing::info!(peer = %t.peer, file = %t.file, bytes = t.bytes, ms = t.duration.as_millis() as u64, result = %result, "TFTP");
                    if let Some(mac) = mac {
                        timeline.record(mac, Phase::Tftp, "tftp", format!("{} {} bytes in {} ms: {result}", t.file, t.bytes, t.duration.as_millis()));
                    }
                }
                Some(w) = web_rx.recv() => {
                    tracing::info!(peer = %w.peer, path = %w.path, status = w.status, bytes = w.bytes, "HTTP");
                    counters.http(w.status, w.bytes);
                    let mac = w.mac.or_else(|| peer_ip(w.peer).and_then(|ip| machines.mac_of(ip)));
                    if let Some(mac) = mac {
                        let phase = if w.path.ends_with("auto.ipxe") { Phase::Script } else { Phase::Artifact };
                        timeline.record(mac, phase, "http", format!("{} {} ({} bytes)", w.path, w.status, w.bytes));
                    }
                }
                Some(l) = log_rx.recv() => {
                    counters.syslog_lines.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mac = peer_ip(l.from).and_then(|ip| machines.mac_of(ip));
                    tracing::info!(from = %l.from, mac = %mac.map(|m| format_mac(&m)).unwrap_or_default(), host = %l.host.as_deref().unwrap_or(""), "syslog: {}", l.text);
                    if let Some(mac) = mac {
                        timeline.record(mac, Phase::Syslog, "syslog", l.text);
                    }
                }
            }
        }
    });
    warn_about_boot_files(&cfg);
    tracing::info!(
        tftp = b.tftp_port,
        http = b.http_port,
        syslog = b.syslog_port,
        tftp_root = %b.tftp_root.display(),
        artifacts = %b.artifacts_dir.display(),
        "boot services up"
    );
    Ok(())
}

/// Says at start which boot files TFTP will refuse: missing ones, and ones
/// that resolve outside the root. Debian's /usr/lib/ipxe/ipxe.efi is a
/// symlink into /boot, which no path may escape to; copies work.
pub fn warn_about_boot_files(cfg: &Config) {
    let b = &cfg.boot;
    let Ok(root) = std::fs::canonicalize(&b.tftp_root) else {
        tracing::warn!(tftp_root = %b.tftp_root.display(), "boot.tftp_root does not exist: TFTP will serve nothing");
        return;
    };
    let ia32 = b.efi_ia32_file.as_ref().map(|f| ("efi_ia32_file", f));
    for (key, name) in [
        ("bios_file", &b.bios_file),
        ("efi_x64_file", &b.efi_x64_file),
        ("efi_arm64_file", &b.efi_arm64_file),
    ]
    .into_iter()
    .chain(ia32)
    {
        match std::fs::canonicalize(root.join(name)) {
            Err(_) => {
                tracing::warn!(file = %name, key, "boot file missing from boot.tftp_root: machines of that kind cannot boot")
            }
            Ok(p) if !p.starts_with(&root) => tracing::warn!(
                file = %name,
                resolves_to = %p.display(),
                "boot file is a link out of boot.tftp_root and will be refused: copy it into the root"
            ),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_complete_neighbours_only() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device
10.50.0.103      0x1         0x2         52:54:00:00:00:04     *        sb0
10.50.0.104      0x1         0x0         00:00:00:00:00:00     *        sb0
";
        assert_eq!(
            neighbour_mac(table, Ipv4Addr::new(10, 50, 0, 103)),
            Some([0x52, 0x54, 0, 0, 0, 4])
        );
        assert_eq!(neighbour_mac(table, Ipv4Addr::new(10, 50, 0, 104)), None);
        assert_eq!(neighbour_mac(table, Ipv4Addr::new(10, 50, 0, 9)), None);
        assert_eq!(
            neighbour_mac("garbage\nmore garbage here", Ipv4Addr::LOCALHOST),
            None
        );
    }
}
