//! The whole boot chain for N machines at once, as a rack powering on
//! does it: DHCP as firmware, the boot file (TFTP with the firmware's
//! options, or HTTP for UEFI HTTP boot), DHCP again as iPXE (user class),
//! the iPXE script over HTTP, then every kernel and initrd it names. Per
//! machine the time of each phase; per run the percentiles, the failures,
//! the retries, the bytes, and the server's CPU time and memory.
//!
//! DHCP runs on the storm's raw-socket engine ([`storm::serve`]), which
//! every machine's task hands its exchanges to. Once bound, a machine's
//! TFTP and HTTP sockets are bound to its own leased address: the client
//! namespace routes the machines' range as local (`ip route add local`),
//! and the server reaches it through the client end's address
//! (`bootlab::Testbed::route_machines`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dhcproto::v4::{Architecture, DhcpOption, OptionCode};

use super::storm::{self, Job, Lease, Retry};
use super::tftpclient::{self, Ask};
use crate::reports::{
    self, ChainReport, DownloadReport, Failure, KindCount, PhaseStat, ServerUse, Transfers,
};

#[derive(clap::Args, Debug, Clone)]
pub struct ChainArgs {
    /// Interface the machines are on (e.g. sbc0)
    #[arg(long, env = "STORMBOOT_CHAIN_INTERFACE")]
    pub interface: String,
    /// Number of machines
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    /// MAC of machine 0; machine i has this MAC + i
    #[arg(long, default_value = "02:00:00:00:00:00")]
    pub first_mac: String,
    /// Expected address of machine 0; machine i must get this + i
    #[arg(long)]
    pub expect_first_ip: Option<Ipv4Addr>,
    /// Firmware kinds, given to the machines in turn: bios-pxe, uefi-pxe,
    /// uefi-http
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bios-pxe,uefi-pxe,uefi-http"
    )]
    pub mix: Vec<String>,
    /// DHCP exchanges in flight at once
    #[arg(long, default_value_t = 256)]
    pub window: u32,
    /// First DHCP retransmission timeout, ms (doubled per retry, +-1 s, RFC 2131)
    #[arg(long, default_value_t = 4000)]
    pub dhcp_timeout_ms: u64,
    /// DHCP sends per message before a machine fails
    #[arg(long, default_value_t = 4)]
    pub dhcp_tries: u32,
    /// Machines still going after this many seconds fail
    #[arg(long, default_value_t = 170)]
    pub deadline_s: u64,
    /// Threads of the machines' runtime
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Server processes whose CPU time and memory are reported (repeat)
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// The firmware a machine boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A BIOS NIC ROM (QEMU's is iPXE): TFTP undionly.kpxe.
    BiosPxe,
    /// OVMF's PXE: TFTP ipxe.efi, after a size probe.
    UefiPxe,
    /// OVMF's HTTP boot: GET ipxe.efi.
    UefiHttp,
}

impl Kind {
    pub fn parse(s: &str) -> anyhow::Result<Kind> {
        Ok(match s {
            "bios-pxe" => Kind::BiosPxe,
            "uefi-pxe" => Kind::UefiPxe,
            "uefi-http" => Kind::UefiHttp,
            _ => bail!("--mix: {s:?} is not bios-pxe, uefi-pxe or uefi-http"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::BiosPxe => "bios-pxe",
            Kind::UefiPxe => "uefi-pxe",
            Kind::UefiHttp => "uefi-http",
        }
    }

    /// Option 93 (RFC 4578, IANA's processor architecture types).
    fn arch(self) -> u16 {
        match self {
            Kind::BiosPxe => 0,
            Kind::UefiPxe => 7,
            Kind::UefiHttp => 16,
        }
    }

    /// The boot file the server must hand this firmware (the last path
    /// segment of an HTTP URL).
    pub fn boot_file(self) -> &'static str {
        match self {
            Kind::BiosPxe => "undionly.kpxe",
            Kind::UefiPxe | Kind::UefiHttp => "ipxe.efi",
        }
    }

    /// What the firmware's DHCP requests carry besides the defaults.
    fn firmware_options(self, mac: [u8; 6]) -> Vec<DhcpOption> {
        let vendor = match self {
            Kind::BiosPxe => "PXEClient:Arch:00000:UNDI:002001",
            Kind::UefiPxe => "PXEClient:Arch:00007:UNDI:003016",
            Kind::UefiHttp => "HTTPClient:Arch:00016:UNDI:003001",
        };
        let mut o = common_options(mac, vendor, self.arch());
        o.push(DhcpOption::ClientNetworkInterface(1, 3, 16));
        o
    }

    /// What iPXE's DHCP carries: its user class, and the architecture it
    /// was built for (an EFI iPXE says x86-64 UEFI however it was loaded).
    fn ipxe_options(self, mac: [u8; 6]) -> Vec<DhcpOption> {
        let (vendor, arch) = match self {
            Kind::BiosPxe => ("PXEClient:Arch:00000:UNDI:002001", 0),
            Kind::UefiPxe | Kind::UefiHttp => ("PXEClient:Arch:00007:UNDI:003010", 7),
        };
        let mut o = common_options(mac, vendor, arch);
        o.push(DhcpOption::UserClass(b"iPXE".to_vec()));
        o
    }

    /// How the firmware reads its boot file over TFTP. BIOS: QEMU's NIC ROM
    /// is iPXE, which asks blksize 1432 and tsize (iPXE's retry timer
    /// starts at 1/4 s and doubles to 10 s; a fixed 1 s here). UEFI:
    /// edk2's PxeBcDxe asks blksize 1468, probes tsize first, and since
    /// edk2-stable202008 asks windowsize 4 (PcdPxeTftpWindowSize); Debian
    /// 12's ovmf (2022.11) is taken to do so, not captured on the wire
    /// here. Its timeout is 4 s, 6 tries (PXEBC_MTFTP_TIMEOUT/RETRIES).
    fn tftp_ask(self) -> Ask {
        match self {
            Kind::BiosPxe => Ask {
                blksize: Some(1432),
                tsize: true,
                windowsize: None,
                size_probe: false,
                timeout: Duration::from_secs(1),
                tries: 6,
            },
            Kind::UefiPxe | Kind::UefiHttp => Ask {
                blksize: Some(1468),
                tsize: true,
                windowsize: Some(4),
                size_probe: true,
                timeout: Duration::from_secs(4),
                tries: 6,
            },
        }
    }
}

/// The options both DHCP stages send: architecture, vendor class, a UUID
/// (option 97, type 0), and the request list PXE firmware sends (boot file
/// and TFTP server included).
fn common_options(mac: [u8; 6], vendor: &str, arch: u16) -> Vec<DhcpOption> {
    let mut uuid = vec![0u8; 17];
    uuid[11..].copy_from_slice(&mac);
    let prl = [
        1u8, 3, 6, 12, 15, 28, 42, 43, 51, 54, 58, 59, 60, 66, 67, 97, 175,
    ];
    vec![
        DhcpOption::ClientSystemArchitecture(Architecture::from(arch)),
        DhcpOption::ClassIdentifier(vendor.as_bytes().to_vec()),
        DhcpOption::ClientMachineIdentifier(uuid),
        DhcpOption::ParameterRequestList(prl.iter().map(|&c| OptionCode::from(c)).collect()),
    ]
}

/// The URLs an iPXE script fetches, each with its phase: `kernel` (and
/// `chain`) lines are the kernel, `initrd`, `module` and `imgfetch` lines
/// the initrd; the first http:// word of the line is the URL.
pub fn script_urls(script: &str) -> Vec<(&'static str, String)> {
    script
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let phase = match words.next()? {
                "kernel" | "chain" => "kernel",
                "initrd" | "module" | "imgfetch" => "initrd",
                _ => return None,
            };
            let url = words.find(|w| w.starts_with("http://"))?;
            Some((phase, url.to_string()))
        })
        .collect()
}

/// The last path segment of a TFTP name or an URL.
fn last_segment(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// One completed transfer.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    start: Instant,
    end: Instant,
    bytes: u64,
}

/// What one machine did.
#[derive(Debug)]
struct Machine {
    kind: Kind,
    /// Phase name to its duration.
    phases: Vec<(&'static str, Duration)>,
    failed: Option<(&'static str, String)>,
    dhcp_resent: u32,
    tftp_retries: u32,
    tftp: Vec<Transfer>,
    http_boot: Vec<Transfer>,
    artifacts: Vec<Transfer>,
    /// When its last file arrived.
    end: Option<Instant>,
}

/// What every machine's task shares.
struct Shared {
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    /// The runtime the TFTP downloads run on, a thread of its own: a
    /// lock-step transfer waits for the client at every block, and queued
    /// behind a thousand machines' HTTP reads each of those waits would be
    /// the length of that queue, a delay of the lab's one client core that a
    /// rack of separate machines does not have.
    tftp: tokio::runtime::Handle,
}

impl Shared {
    /// One DHCP exchange on the engine.
    async fn dhcp(&self, mac: [u8; 6], options: Vec<DhcpOption>) -> anyhow::Result<storm::Outcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            mac,
            // iPXE and PXE ROMs set the broadcast flag.
            broadcast: true,
            options,
            done: tx,
        };
        let sent = self
            .jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("the DHCP engine's queue is poisoned"))?
            .as_ref()
            .map(|s| s.send(job));
        match sent {
            Some(Ok(())) => rx.await.context("the DHCP engine stopped"),
            _ => bail!("the DHCP engine stopped"),
        }
    }
}

/// A machine's HTTP client: keep-alive, from its own address, and each
/// read takes up to a whole receive window, as firmware drains its ring.
/// hyper's default grows and shrinks its reads with what the last ones
/// got: on a client core that falls behind, a thousand connections then
/// each read a few kilobytes at a time, every read reopens the window by
/// that much, the server fills it with a segment as small, and the core
/// spends itself on packets instead of bytes.
pub type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// iPXE's largest TCP window (its TCP_MAX_WINDOW_SIZE); `route_machines`
/// caps the namespace's receive buffers at it too.
const READ_SIZE: usize = 256 * 1024;

pub fn machine_http(ip: Ipv4Addr) -> Http {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(ip)));
    connector.set_connect_timeout(Some(Duration::from_secs(30)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http1_read_buf_exact_size(READ_SIZE)
        .build(connector)
}

/// GET `url`: the body's length and its first 64 KiB.
pub async fn http_get(client: &Http, url: &str) -> anyhow::Result<(u64, Vec<u8>)> {
    use http_body_util::BodyExt as _;
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    let resp = client
        .get(uri)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    let length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    // The start of the body is kept (a script is read whole); the rest is
    // counted and dropped, so a thousand initrds need no memory.
    let mut head = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("GET {url}: body"))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        bytes += chunk.len() as u64;
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 * 1024 - head.len())]);
        }
    }
    if let Some(n) = length {
        ensure!(
            n == bytes,
            "GET {url}: Content-Length {n}, {bytes} bytes received"
        );
    }
    Ok((bytes, head))
}

/// One machine through the chain; `expected` is the address it must get.
async fn boot(
    shared: Arc<Shared>,
    kind: Kind,
    mac: [u8; 6],
    expected: Option<Ipv4Addr>,
) -> Machine {
    let mut m = Machine {
        kind,
        phases: Vec::new(),
        failed: None,
        dhcp_resent: 0,
        tftp_retries: 0,
        tftp: Vec::new(),
        http_boot: Vec::new(),
        artifacts: Vec::new(),
        end: None,
    };
    let t0 = Instant::now();
    if let Err((phase, e)) = chain(&shared, &mut m, mac, expected).await {
        m.failed = Some((phase, format!("{e:#}")));
    } else {
        m.phases.push(("whole chain", t0.elapsed()));
        m.end = Some(Instant::now());
    }
    m
}

type Step<T> = Result<T, (&'static str, anyhow::Error)>;

/// Tags an error with the phase it happened in.
fn at<T>(phase: &'static str, r: anyhow::Result<T>) -> Step<T> {
    r.map_err(|e| (phase, e))
}

async fn lease(
    shared: &Shared,
    m: &mut Machine,
    phase: &'static str,
    mac: [u8; 6],
    options: Vec<DhcpOption>,
    expected: Option<Ipv4Addr>,
) -> Step<Lease> {
    let t = Instant::now();
    let outcome = at(phase, shared.dhcp(mac, options).await)?;
    m.dhcp_resent += outcome.resent;
    let Some(lease) = outcome.lease else {
        return Err((
            phase,
            anyhow::anyhow!("no lease after every retransmission"),
        ));
    };
    if let Some(want) = expected.filter(|&e| e != lease.ip) {
        return Err((phase, anyhow::anyhow!("got {}, expected {want}", lease.ip)));
    }
    m.phases.push((phase, t.elapsed()));
    Ok(lease)
}

async fn chain(
    shared: &Shared,
    m: &mut Machine,
    mac: [u8; 6],
    expected: Option<Ipv4Addr>,
) -> Step<()> {
    let kind = m.kind;
    let first = lease(shared, m, "dhcp", mac, kind.firmware_options(mac), expected).await?;
    let phase = "boot file";
    let file = at(
        phase,
        first.file.clone().context("the ACK names no boot file"),
    )?;
    if last_segment(&file) != kind.boot_file() {
        return Err((
            phase,
            anyhow::anyhow!("{} firmware was given {file:?}", kind.name()),
        ));
    }
    let client = machine_http(first.ip);
    let t = Instant::now();
    match kind {
        Kind::BiosPxe | Kind::UefiPxe => {
            let server = if first.next_server.is_unspecified() {
                first.server_id
            } else {
                first.next_server
            };
            let to = SocketAddrV4::new(server, 69);
            let (ip, ask) = (first.ip, kind.tftp_ask());
            let download = shared
                .tftp
                .spawn(async move { tftpclient::get(ip, to, &file, &ask).await });
            let got = at(
                phase,
                download
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("the TFTP task ended: {e}"))),
            )?;
            m.tftp_retries += got.retries;
            m.tftp.push(Transfer {
                start: t,
                end: Instant::now(),
                bytes: got.bytes,
            });
        }
        Kind::UefiHttp => {
            let (bytes, _) = at(phase, http_get(&client, &file).await)?;
            m.http_boot.push(Transfer {
                start: t,
                end: Instant::now(),
                bytes,
            });
        }
    }
    m.phases.push((phase, t.elapsed()));

    let second = lease(
        shared,
        m,
        "dhcp (iPXE)",
        mac,
        kind.ipxe_options(mac),
        Some(first.ip),
    )
    .await?;
    let phase = "script";
    let url = at(phase, second.file.context("iPXE's ACK names no script"))?;
    if !url.starts_with("http://") {
        return Err((phase, anyhow::anyhow!("iPXE was given {url:?}, not a URL")));
    }
    let t = Instant::now();
    let (bytes, body) = at(phase, http_get(&client, &url).await)?;
    m.artifacts.push(Transfer {
        start: t,
        end: Instant::now(),
        bytes,
    });
    m.phases.push((phase, t.elapsed()));
    let script = String::from_utf8_lossy(&body);
    let urls = script_urls(&script);
    if !urls.iter().any(|(p, _)| *p == "kernel") {
        return Err((
            phase,
            anyhow::anyhow!("the script names no kernel: {script:?}"),
        ));
    }
    for (phase, url) in urls {
        let t = Instant::now();
        let (bytes, _) = at(phase, http_get(&client, &url).await)?;
        m.artifacts.push(Transfer {
            start: t,
            end: Instant::now(),
            bytes,
        });
        m.phases.push((phase, t.elapsed()));
    }
    Ok(())
}

/// Samples the server processes' memory every 100 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
    pids: Vec<u32>,
    cpu_before: Option<f64>,
}

fn rss_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&p| reports::rss_kb(p).ok()).sum()
}

fn cpu_sum(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&p| reports::cpu_seconds(p).ok()).sum()
}

impl Sampler {
    fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_before = cpu_sum(&pids);
        let thread = std::thread::spawn({
            let (stop, pids) = (stop.clone(), pids.clone());
            move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss_sum(&pids).unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(100));
                }
                peak
            }
        });
        Sampler {
            stop,
            thread,
            pids,
            cpu_before,
        }
    }

    fn finish(self) -> Option<ServerUse> {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().unwrap_or(0);
        if self.pids.is_empty() {
            return None;
        }
        let end = rss_sum(&self.pids)?;
        Some(ServerUse {
            cpu_s: cpu_sum(&self.pids)? - self.cpu_before?,
            rss_peak_kb: peak.max(end),
            rss_end_kb: end,
        })
    }
}

/// Runs every machine through the chain; the report says how it went
/// (a machine that fails is in it, not an error).
pub fn run(args: &ChainArgs) -> anyhow::Result<ChainReport> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");
    let kinds = args
        .mix
        .iter()
        .map(|k| Kind::parse(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(!kinds.is_empty(), "--mix names no firmware kind");
    let first_mac = stormboot::frame::parse_mac(&args.first_mac)
        .with_context(|| format!("--first-mac {:?} is not a MAC address", args.first_mac))?;
    ensure!(
        storm::mac_add(first_mac, args.count - 1).is_some(),
        "--first-mac {} + {} machines passes ff:ff:ff:ff:ff:ff",
        args.first_mac,
        args.count
    );
    let retry = Retry {
        timeout: Duration::from_millis(args.dhcp_timeout_ms),
        jitter: Duration::from_millis(args.dhcp_timeout_ms.min(1000)),
        tries: args.dhcp_tries,
        window: args.window,
    };
    let deadline = Duration::from_secs(args.deadline_s);
    let (tx, rx) = mpsc::channel();
    let interface = args.interface.clone();
    let engine = std::thread::spawn(move || {
        storm::serve(&interface, &retry, rx, Some(Instant::now() + deadline))
    });
    let tftp = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the TFTP downloads' runtime")?;
    let tftp_handle = tftp.handle().clone();
    let (tftp_stop, tftp_stopped) = tokio::sync::oneshot::channel::<()>();
    let tftp_thread = std::thread::spawn(move || {
        tftp.block_on(async {
            let _ = tftp_stopped.await;
        })
    });
    let shared = Arc::new(Shared {
        jobs: std::sync::Mutex::new(Some(tx)),
        tftp: tftp_handle,
    });
    let sampler = Sampler::start(args.server_pid.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the machines' runtime")?;
    let start = Instant::now();
    let machines: Vec<Machine> = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.count)
            .map(|i| {
                let kind = kinds[i as usize % kinds.len()];
                let mac = storm::mac_add(first_mac, i).expect("range checked above");
                let expected = args
                    .expect_first_ip
                    .map(|ip| Ipv4Addr::from(u32::from(ip).wrapping_add(i)));
                let shared = shared.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(deadline, boot(shared, kind, mac, expected)).await {
                        Ok(m) => m,
                        Err(_) => Machine {
                            kind,
                            phases: Vec::new(),
                            failed: Some(("deadline", format!("not booted after {deadline:?}"))),
                            dhcp_resent: 0,
                            tftp_retries: 0,
                            tftp: Vec::new(),
                            http_boot: Vec::new(),
                            artifacts: Vec::new(),
                            end: None,
                        },
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.expect("a machine's task panicked"));
        }
        out
    });
    let end = Instant::now();
    let _ = tftp_stop.send(());
    tftp_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the TFTP runtime panicked"))?;
    // The engine ends once no machine can ask it for more.
    if let Ok(mut jobs) = shared.jobs.lock() {
        jobs.take();
    }
    let dhcp = engine
        .join()
        .map_err(|_| anyhow::anyhow!("the DHCP engine panicked"))??;
    let server = sampler.finish();
    let mut report = summarize(&machines, start, end);
    report.server = server;
    report.dhcp_resent = dhcp.retransmits;
    Ok(report)
}

fn transfers(list: impl Iterator<Item = Transfer>) -> Transfers {
    let all: Vec<Transfer> = list.collect();
    let (Some(first), Some(last)) = (
        all.iter().map(|t| t.start).min(),
        all.iter().map(|t| t.end).max(),
    ) else {
        return Transfers::default();
    };
    let bytes = all.iter().map(|t| t.bytes).sum();
    let seconds = last.duration_since(first).as_secs_f64();
    Transfers {
        files: all.len() as u32,
        bytes,
        seconds,
        mb_per_s: if seconds > 0.0 {
            bytes as f64 / seconds / 1e6
        } else {
            0.0
        },
    }
}

fn summarize(machines: &[Machine], start: Instant, end: Instant) -> ChainReport {
    let booted = machines.iter().filter(|m| m.failed.is_none()).count() as u32;
    let mut kinds: BTreeMap<Kind, (u32, u32)> = BTreeMap::new();
    for m in machines {
        let e = kinds.entry(m.kind).or_default();
        e.0 += 1;
        e.1 += u32::from(m.failed.is_none());
    }
    let phases = reports::CHAIN_PHASES
        .iter()
        .filter_map(|&phase| {
            let mut ms: Vec<f64> = machines
                .iter()
                .flat_map(|m| m.phases.iter())
                .filter(|(p, _)| *p == phase)
                .map(|(_, d)| d.as_secs_f64() * 1e3)
                .collect();
            if ms.is_empty() {
                return None;
            }
            ms.sort_by(f64::total_cmp);
            Some(PhaseStat {
                phase: phase.to_string(),
                done: ms.len() as u32,
                p50_ms: storm::percentile(&ms, 50.0),
                p95_ms: storm::percentile(&ms, 95.0),
                p99_ms: storm::percentile(&ms, 99.0),
                max_ms: ms.last().copied().unwrap_or(0.0),
            })
        })
        .collect();
    let mut failures: Vec<Failure> = Vec::new();
    for (phase, why) in machines.iter().filter_map(|m| m.failed.as_ref()) {
        match failures.iter_mut().find(|f| f.phase == *phase) {
            Some(f) => f.machines += 1,
            None => failures.push(Failure {
                phase: phase.to_string(),
                machines: 1,
                example: why.clone(),
            }),
        }
    }
    let last = machines.iter().filter_map(|m| m.end).max();
    let elapsed = last.unwrap_or(end).duration_since(start);
    let mut booted_ms: Vec<f64> = machines
        .iter()
        .filter_map(|m| Some(m.end?.duration_since(start).as_secs_f64() * 1e3))
        .collect();
    booted_ms.sort_by(f64::total_cmp);
    ChainReport {
        machines: machines.len() as u32,
        booted,
        failed: machines.len() as u32 - booted,
        kinds: kinds
            .into_iter()
            .map(|(k, (n, b))| KindCount {
                kind: k.name().to_string(),
                machines: n,
                booted: b,
            })
            .collect(),
        elapsed_ms: elapsed.as_secs_f64() * 1e3,
        booted_ms,
        phases,
        failures,
        dhcp_resent: machines.iter().map(|m| u64::from(m.dhcp_resent)).sum(),
        tftp_retries: machines.iter().map(|m| u64::from(m.tftp_retries)).sum(),
        tftp: transfers(machines.iter().flat_map(|m| m.tftp.iter().copied())),
        http_boot: transfers(machines.iter().flat_map(|m| m.http_boot.iter().copied())),
        artifacts: transfers(machines.iter().flat_map(|m| m.artifacts.iter().copied())),
        server: None,
    }
}

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["url", "tftp"])))]
pub struct DownloadArgs {
    /// What every machine downloads over HTTP.
    #[arg(long)]
    pub url: Option<String>,
    /// Instead of --url: every machine reads its boot file from this TFTP
    /// server, BIOS PXE (undionly.kpxe) and UEFI PXE (ipxe.efi) in turn,
    /// each with its firmware's options, timeouts and retries, as the
    /// chain's boot-file phase does.
    #[arg(long)]
    pub tftp: Option<Ipv4Addr>,
    /// Machines, each from its own address, all at once.
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    /// The first machine's address; the others follow it. The client's
    /// namespace must hold the range as local (`route_machines`).
    #[arg(long)]
    pub first_ip: Ipv4Addr,
    /// Runtime threads for the machines.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// A machine whose download has not ended by then fails.
    #[arg(long, default_value_t = 170)]
    pub deadline_s: u64,
    /// Server processes whose CPU time and memory are reported.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    #[arg(long)]
    pub json: bool,
}

/// The firmware kinds that read their boot file over TFTP, given to the
/// machines of `downloads --tftp` in turn.
const TFTP_KINDS: [Kind; 2] = [Kind::BiosPxe, Kind::UefiPxe];

/// One machine's download in `downloads`: the bytes and the packets it
/// sent again.
async fn download_one(ip: Ipv4Addr, i: u32, args: &DownloadArgs) -> anyhow::Result<(u64, u32)> {
    if let Some(server) = args.tftp {
        let kind = TFTP_KINDS[i as usize % TFTP_KINDS.len()];
        let to = SocketAddrV4::new(server, 69);
        let got = tftpclient::get(ip, to, kind.boot_file(), &kind.tftp_ask()).await?;
        return Ok((got.bytes, got.retries));
    }
    let url = args.url.as_deref().context("--url or --tftp")?;
    let (bytes, _) = http_get(&machine_http(ip), url).await?;
    Ok((bytes, 0))
}

/// Every machine downloads `args.url` at once, with the chain's HTTP
/// client, or its boot file from `args.tftp` with the chain's TFTP client:
/// one path alone, with nothing before it deciding when each machine
/// starts.
pub fn downloads(args: &DownloadArgs) -> anyhow::Result<DownloadReport> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");
    let deadline = Duration::from_secs(args.deadline_s);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the machines' runtime")?;
    let sampler = Sampler::start(args.server_pid.clone());
    let own_cpu = || reports::cpu_seconds(std::process::id()).ok();
    let client_before = own_cpu();
    let resent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let results: Vec<anyhow::Result<Transfer>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.count)
            .map(|i| {
                let ip = Ipv4Addr::from(u32::from(args.first_ip).wrapping_add(i));
                let (args, resent) = (args.clone(), resent.clone());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let (bytes, retries) =
                        tokio::time::timeout(deadline, download_one(ip, i, &args))
                            .await
                            .map_err(|_| anyhow::anyhow!("{ip}: not done after {deadline:?}"))?
                            .with_context(|| format!("{ip}"))?;
                    resent.fetch_add(u64::from(retries), Ordering::Relaxed);
                    Ok(Transfer {
                        start,
                        end: Instant::now(),
                        bytes,
                    })
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("a machine's task: {e}"))),
            );
        }
        out
    });
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    Ok(DownloadReport {
        machines: args.count,
        failed: failures.len() as u32,
        example_failure: failures.into_iter().next(),
        transfers: transfers(results.into_iter().filter_map(Result::ok)),
        tftp_retries: resent.load(Ordering::Relaxed),
        server: sampler.finish(),
        client_cpu_s: own_cpu()
            .zip(client_before)
            .map(|(after, before)| after - before),
    })
}

pub fn print_downloads(r: &DownloadReport, json: bool) {
    if json {
        super::print_json(r);
    } else {
        println!(
            "{} of {} downloads, {} bytes in {:.2} s: {:.1} MB/s, {} TFTP packets resent{}",
            r.transfers.files,
            r.machines,
            r.transfers.bytes,
            r.transfers.seconds,
            r.transfers.mb_per_s,
            r.tftp_retries,
            r.example_failure
                .as_ref()
                .map_or(String::new(), |e| format!(
                    "; {} failed, e.g. {e}",
                    r.failed
                ))
        );
    }
}

/// Prints the report on stdout, as a table or as JSON.
pub fn print_report(r: &ChainReport, json: bool) {
    if json {
        super::print_json(r);
    } else {
        print!("{}", r.table());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What has arrived is read at once, up to a window: a body waiting
    /// whole in the socket comes out in one piece, where hyper's default
    /// reads would cut it at 8 KiB and grow from there.
    #[tokio::test]
    async fn a_machine_reads_what_has_arrived_in_one_piece() {
        use http_body_util::BodyExt as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        const BODY: usize = 48 * 1024;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let mut got = 0;
            while !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut req[got..]).await.unwrap();
                assert!(n > 0, "the client closed before its request's end");
                got += n;
            }
            s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            // The head alone first, so the body is not read with it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(&[7u8; BODY]).await.unwrap();
            let _ = s.read(&mut req).await;
        });
        let client = machine_http(Ipv4Addr::LOCALHOST);
        let resp = client
            .get(format!("http://{addr}/initrd").parse().unwrap())
            .await
            .unwrap();
        // The whole body is in the socket by the first read.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut body = resp.into_body();
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                pieces.push(data.len());
            }
        }
        assert_eq!(pieces, vec![BODY]);
        drop(client);
        server.await.unwrap();
    }

    #[test]
    fn scripts_name_their_kernel_and_initrd() {
        let script =
            "#!ipxe\nkernel http://10.50.0.1/artifacts/vmlinuz initrd=initrd.img console=ttyS0\n\
                      initrd http://10.50.0.1/artifacts/initrd.img\nboot\n";
        assert_eq!(
            script_urls(script),
            [
                ("kernel", "http://10.50.0.1/artifacts/vmlinuz".to_string()),
                (
                    "initrd",
                    "http://10.50.0.1/artifacts/initrd.img".to_string()
                )
            ]
        );
        assert!(script_urls("#!ipxe\nboot\nkernel tftp://x/y\n").is_empty());
    }

    #[test]
    fn each_firmware_says_what_it_is() {
        let mac = [2, 0, 0, 0, 0, 9];
        let has = |o: &[DhcpOption], want: &DhcpOption| o.iter().any(|x| x == want);
        let bios = Kind::BiosPxe.firmware_options(mac);
        assert!(has(
            &bios,
            &DhcpOption::ClientSystemArchitecture(Architecture::from(0))
        ));
        assert!(!bios.iter().any(|o| matches!(o, DhcpOption::UserClass(_))));
        let http = Kind::UefiHttp.firmware_options(mac);
        assert!(has(
            &http,
            &DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec())
        ));
        // iPXE loaded over HTTP boot is an x64 EFI iPXE with its user class.
        let ipxe = Kind::UefiHttp.ipxe_options(mac);
        assert!(has(&ipxe, &DhcpOption::UserClass(b"iPXE".to_vec())));
        assert!(has(
            &ipxe,
            &DhcpOption::ClientSystemArchitecture(Architecture::from(7))
        ));
        assert_eq!(Kind::UefiPxe.tftp_ask().windowsize, Some(4));
        assert!(Kind::UefiPxe.tftp_ask().size_probe);
        assert_eq!(Kind::BiosPxe.tftp_ask().blksize, Some(1432));
        assert!(Kind::parse("arm").is_err());
    }

    #[test]
    fn the_summary_counts_failures_by_phase_and_times_by_phase() {
        let now = Instant::now();
        let ok = |ms: u64| Machine {
            kind: Kind::BiosPxe,
            phases: vec![
                ("dhcp", Duration::from_millis(ms)),
                ("whole chain", Duration::from_millis(10 * ms)),
            ],
            failed: None,
            dhcp_resent: 1,
            tftp_retries: 0,
            tftp: vec![Transfer {
                start: now,
                end: now + Duration::from_secs(1),
                bytes: 2_000_000,
            }],
            http_boot: Vec::new(),
            artifacts: Vec::new(),
            end: Some(now + Duration::from_secs(2)),
        };
        let mut bad = ok(5);
        bad.kind = Kind::UefiHttp;
        bad.failed = Some(("boot file", "GET x: 404".into()));
        bad.phases.truncate(1);
        bad.end = None;
        let mut early = ok(3);
        early.end = Some(now + Duration::from_millis(500));
        let r = summarize(&[ok(1), early, bad], now, now + Duration::from_secs(9));
        assert_eq!((r.machines, r.booted, r.failed), (3, 2, 1));
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].phase, "boot file");
        assert_eq!(r.phase("dhcp").unwrap().done, 3);
        assert_eq!(r.phase("whole chain").unwrap().p99_ms, 30.0);
        assert_eq!(r.tftp.bytes, 6_000_000);
        assert_eq!(r.tftp.mb_per_s, 6.0);
        assert_eq!(r.elapsed_ms, 2000.0);
        assert_eq!(
            r.booted_ms,
            [500.0, 2000.0],
            "the failed machine has no time"
        );
        assert_eq!(
            (r.booted_s(1), r.booted_s(2), r.booted_s(3)),
            (Some(0.5), Some(2.0), None)
        );
        assert!(!r.all_booted());
        let http = r.kinds.iter().find(|k| k.kind == "uefi-http").unwrap();
        assert_eq!((http.machines, http.booted), (1, 0));
        assert!(r.table().contains("failed in boot file: 1"));
    }
}
