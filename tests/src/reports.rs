//! The reports the lab prints with `--json` (`stormboot-lab storm`,
//! `bench-api`, `bench-omapi`, `bench-xdp`): one struct each, written by
//! the lab and read back by xtask and the tests with the same type. Plain
//! serde, outside the `lab` feature, so that xtask reads them without
//! building the daemon's crate (whose build needs the eBPF toolchain
//! `cargo xtask setup` installs).

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Outcome of a storm. `bound + lost == machines`; `wrong_address` counts
/// bound machines whose ACK carried another address than expected.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct StormReport {
    pub machines: u32,
    pub bound: u32,
    pub lost: u32,
    pub naks: u32,
    pub wrong_address: u32,
    /// Replies to port 68 refused for a bad IPv4 or UDP checksum; the machine
    /// they were for did not progress on them.
    pub bad_checksum: u64,
    /// Messages sent again after a timeout, plus DISCOVERs restarted by a NAK.
    pub retransmits: u64,
    /// First send to last ACK (to the end of the run when nothing was bound).
    pub elapsed_ms: f64,
    /// Bound machines per second of `elapsed_ms`.
    pub exchanges_per_sec: f64,
    /// Per bound machine: first DISCOVER to ACK (nearest rank).
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Flood frames sent (`--flood-per-request`).
    pub flood_sent: u64,
    /// Every machine bound, with the address and the server that ACKed
    /// it, when asked for (`--bindings`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
}

/// One machine's ACK as the storm client saw it on the wire.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Lower-case, colon-separated.
    pub mac: String,
    pub ip: std::net::Ipv4Addr,
    /// Option 54 of the ACK (its source address when it had none).
    pub server: std::net::Ipv4Addr,
}

impl StormReport {
    pub fn all_bound(&self) -> bool {
        self.bound == self.machines
    }
}

/// `stormboot-lab rate --json`: known machines' DISCOVERs and REQUESTs
/// offered at a fixed rate for a fixed time, and the replies counted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct RateReport {
    /// Requests per second asked for (DISCOVERs and REQUESTs together).
    pub rate: u64,
    pub threads: u32,
    pub machines: u32,
    /// Requests the schedule called for: rate times the duration.
    pub offered: u64,
    /// Requests the kernel took.
    pub sent: u64,
    /// Requests the generator let pass because it was late by more than
    /// its catch-up window: it could not offer the rate.
    pub behind: u64,
    /// Times a request found the socket's buffer full and waited for
    /// the next tick (then sent, or counted in `behind`).
    pub refused: u64,
    /// Matching OFFERs and ACKs (xid, chaddr and message type).
    pub answered: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    /// Answers whose address was not the machine's reserved one.
    pub wrong_address: u64,
    pub bad_checksum: u64,
    /// First send to last send, ms.
    pub send_ms: f64,
    /// Requests sent and answered in each second from the first send.
    pub per_second: Vec<RateSecond>,
}

/// One second of a rate run.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSecond {
    pub sent: u64,
    pub answered: u64,
}

impl RateReport {
    /// Requests sent that got no answer, in percent of those sent.
    pub fn drops_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.answered) as f64 * 100.0 / self.sent as f64
    }

    /// Whether the generator offered the whole schedule (within 0.1%).
    pub fn offered_all(&self) -> bool {
        self.sent as f64 >= self.offered as f64 * 0.999
    }

    /// Answers per second over the send time.
    pub fn answered_per_sec(&self) -> f64 {
        if self.send_ms <= 0.0 {
            return 0.0;
        }
        self.answered as f64 * 1e3 / self.send_ms
    }

    /// Requests sent per second over the send time.
    pub fn sent_per_sec(&self) -> f64 {
        if self.send_ms <= 0.0 {
            return 0.0;
        }
        self.sent as f64 * 1e3 / self.send_ms
    }
}

/// `stormboot-lab rate --pool --json`: new machines' DISCOVERs offered at a
/// fixed rate, each OFFER answered with its REQUEST, the ACKs counted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PoolRateReport {
    /// DISCOVERs per second asked for, each from a new machine.
    pub rate: u64,
    pub threads: u32,
    /// DISCOVERs the schedule called for: rate times the duration.
    pub offered: u64,
    /// DISCOVERs the kernel took.
    pub sent: u64,
    /// DISCOVERs let pass because the sender was late by more than its
    /// catch-up window.
    pub behind: u64,
    /// Times a DISCOVER found the socket's buffer full.
    pub refused: u64,
    /// First OFFERs to the run's DISCOVERs.
    pub offers: u64,
    /// REQUESTs sent, one for each first OFFER.
    pub requests: u64,
    /// OFFERs whose REQUEST was still waiting for room in the socket when
    /// the run ended.
    pub requests_unsent: u64,
    /// Times a batch of REQUESTs found the socket's buffer full.
    pub requests_refused: u64,
    /// Completed exchanges: first ACKs to the run's REQUESTs.
    pub acks: u64,
    pub naks: u64,
    /// A second OFFER or ACK for one machine (not counted again).
    pub duplicates: u64,
    pub bad_checksum: u64,
    /// Frames the generator's receive socket dropped because it did not
    /// read them in time (PACKET_STATISTICS).
    pub receive_dropped: u64,
    /// First send to last DISCOVER sent, ms.
    pub send_ms: f64,
    /// Replies still counted this long after the last DISCOVER, ms.
    pub drain_ms: u64,
    /// Each second from the first send.
    pub per_second: Vec<PoolRateSecond>,
}

/// One second of a pool run.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolRateSecond {
    pub discovers: u64,
    pub offers: u64,
    pub requests: u64,
    pub acks: u64,
}

impl PoolRateReport {
    /// DISCOVERs sent that ended without an ACK.
    pub fn drops(&self) -> u64 {
        self.sent.saturating_sub(self.acks)
    }

    /// [`PoolRateReport::drops`] in percent of the DISCOVERs sent.
    pub fn drops_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.drops() as f64 * 100.0 / self.sent as f64
    }

    /// Completed exchanges per second over the send time.
    pub fn exchanges_per_sec(&self) -> f64 {
        if self.send_ms <= 0.0 {
            return 0.0;
        }
        self.acks as f64 * 1e3 / self.send_ms
    }

    /// DISCOVERs sent per second over the send time.
    pub fn sent_per_sec(&self) -> f64 {
        if self.send_ms <= 0.0 {
            return 0.0;
        }
        self.sent as f64 * 1e3 / self.send_ms
    }

    /// What the generator could not keep up with, if anything: then the
    /// run measured the generator, not only the server.
    pub fn generator_short(&self) -> Option<String> {
        let mut short = Vec::new();
        if (self.sent as f64) < self.offered as f64 * 0.999 {
            short.push(format!("{} DISCOVERs not sent", self.offered - self.sent));
        }
        if self.requests_unsent > 0 {
            short.push(format!("{} REQUESTs not sent", self.requests_unsent));
        }
        if self.receive_dropped > 0 {
            short.push(format!("{} replies not read", self.receive_dropped));
        }
        (!short.is_empty()).then(|| short.join(", "))
    }
}

/// The boot chain's phases, in the order a machine goes through them;
/// "whole chain" is first DISCOVER to the last file.
pub const CHAIN_PHASES: [&str; 7] = [
    "dhcp",
    "boot file",
    "dhcp (iPXE)",
    "script",
    "kernel",
    "initrd",
    "whole chain",
];

/// `stormboot-lab chain --json`: machines through the whole boot chain
/// (firmware DHCP, the boot file, iPXE's DHCP, its script, the kernel and
/// initrd it names).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ChainReport {
    pub machines: u32,
    /// Machines that received every file their script names.
    pub booted: u32,
    pub failed: u32,
    /// Machines and booted machines per firmware kind.
    pub kinds: Vec<KindCount>,
    /// First DISCOVER to the last file received (to the end of the run
    /// when nothing booted).
    pub elapsed_ms: f64,
    /// First DISCOVER to each booted machine's last file, earliest first:
    /// how long this server took to boot its first N machines.
    #[serde(default)]
    pub booted_ms: Vec<f64>,
    /// Per phase, over the machines that finished it: "dhcp", "boot file",
    /// "dhcp (iPXE)", "script", "kernel", "initrd", and "whole chain"
    /// (first DISCOVER to the last file).
    pub phases: Vec<PhaseStat>,
    /// Failed machines by the phase they failed in, with one reason.
    pub failures: Vec<Failure>,
    /// DHCP messages sent again (timeouts and NAK restarts).
    pub dhcp_resent: u64,
    /// TFTP packets sent again after a timeout.
    pub tftp_retries: u64,
    /// Boot files over TFTP.
    pub tftp: Transfers,
    /// Boot files over HTTP (UEFI HTTP boot).
    pub http_boot: Transfers,
    /// Scripts, kernels and initrds over HTTP.
    pub artifacts: Transfers,
    /// The server processes named with --server-pid, sampled during the run.
    pub server: Option<ServerUse>,
}

impl ChainReport {
    pub fn all_booted(&self) -> bool {
        self.machines > 0 && self.booted == self.machines
    }

    /// Seconds until `n` machines had booted (n from 1); None if fewer did.
    pub fn booted_s(&self, n: u32) -> Option<f64> {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        self.booted_ms.get(i).map(|ms| ms / 1e3)
    }

    /// The report as the aligned table the lab prints.
    pub fn table(&self) -> String {
        let r = self;
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "  booted {} / {} in {:.2} s (first DISCOVER to last initrd); failed {}",
            r.booted,
            r.machines,
            r.elapsed_ms / 1e3,
            r.failed
        );
        for k in &r.kinds {
            let _ = writeln!(t, "    {:<10} {} / {}", k.kind, k.booted, k.machines);
        }
        let _ = writeln!(
            t,
            "  {:<14} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "phase", "done", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for p in &r.phases {
            let _ = writeln!(
                t,
                "  {:<14} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                p.phase, p.done, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms
            );
        }
        for f in &r.failures {
            let _ = writeln!(
                t,
                "  failed in {}: {} (e.g. {})",
                f.phase, f.machines, f.example
            );
        }
        for (name, x) in [
            ("TFTP boot files", &r.tftp),
            ("HTTP boot files", &r.http_boot),
            ("HTTP scripts+images", &r.artifacts),
        ] {
            let _ = writeln!(
                t,
                "  {name:<20} {:>6} files {:>12} bytes {:>8.1} MB/s",
                x.files, x.bytes, x.mb_per_s
            );
        }
        let _ = writeln!(
            t,
            "  retries: DHCP {}, TFTP {}",
            r.dhcp_resent, r.tftp_retries
        );
        if let Some(s) = &r.server {
            let _ = writeln!(
                t,
                "  server: CPU {:.2} s, RSS peak {} MB (end {} MB)",
                s.cpu_s,
                s.rss_peak_kb / 1024,
                s.rss_end_kb / 1024
            );
        }
        t
    }

    /// The statistics of `phase`, if any machine finished it.
    pub fn phase(&self, phase: &str) -> Option<&PhaseStat> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct KindCount {
    /// "bios-pxe", "uefi-pxe" or "uefi-http".
    pub kind: String,
    pub machines: u32,
    pub booted: u32,
}

/// Nearest-rank percentiles of one phase, milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PhaseStat {
    pub phase: String,
    /// Machines that finished the phase.
    pub done: u32,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Failure {
    pub phase: String,
    pub machines: u32,
    /// The first machine's error.
    pub example: String,
}

/// `stormboot-lab downloads`: N machines fetching one file (over HTTP) or
/// their boot file (over TFTP) at once.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct DownloadReport {
    pub machines: u32,
    pub failed: u32,
    /// One failure's error, when any failed.
    pub example_failure: Option<String>,
    /// The completed downloads.
    pub transfers: Transfers,
    /// TFTP packets sent again after a timeout (0 over HTTP).
    #[serde(default)]
    pub tftp_retries: u64,
    pub server: Option<ServerUse>,
    /// CPU time the client process used over the downloads (user + system,
    /// every thread): with the server's, it shows how the kernel's TCP work
    /// was split between the two cores (a veth runs the receiver's softirq
    /// on the sending CPU).
    #[serde(default)]
    pub client_cpu_s: Option<f64>,
}

/// Completed transfers of one kind.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Transfers {
    pub files: u32,
    pub bytes: u64,
    /// From the first transfer's start to the last one's end.
    pub seconds: f64,
    /// `bytes` over `seconds`, MB (10^6 bytes) per second.
    pub mb_per_s: f64,
}

/// What the server processes used while the machines booted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ServerUse {
    /// User plus system CPU time of every process named, all threads.
    pub cpu_s: f64,
    /// The largest sum of their VmRSS seen (sampled every 100 ms), kB.
    pub rss_peak_kb: u64,
    /// Their VmRSS sum when the run ended, kB.
    pub rss_end_kb: u64,
}

/// User plus system CPU time of process `pid` (all its threads) so far,
/// in seconds: fields 14 and 15 of /proc/PID/stat, in clock ticks.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = stat_ticks(&text).with_context(|| format!("parsing /proc/{pid}/stat: {text}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(hz > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(ticks as f64 / hz as f64)
}

/// utime + stime of a /proc/PID/stat line. The command name (field 2) is
/// in parentheses and may hold spaces or parentheses itself, so fields are
/// counted from the last ')'.
fn stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Time CPU `cpu` spent on anything but idling, seconds, from /proc/stat:
/// user, nice, system, irq and softirq (whatever ran there: processes,
/// kernel threads, interrupts), not idle, iowait or steal.
pub fn core_busy_seconds(cpu: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks =
        core_busy_ticks(&text, cpu).with_context(|| format!("no cpu{cpu} in /proc/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(hz > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(ticks as f64 / hz as f64)
}

/// user + nice + system + irq + softirq of the `cpuN` line of /proc/stat.
fn core_busy_ticks(text: &str, cpu: u32) -> Option<u64> {
    let name = format!("cpu{cpu}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
}

/// VmRSS of process `pid` in kB, from /proc/PID/status.
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Percentiles of one kind of change, microseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Stat {
    pub changes: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Stat {
    /// Nearest-rank percentiles of `v`, microseconds; all zero when empty.
    pub fn of(mut v: Vec<u64>) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_unstable();
        let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Stat {
            changes: v.len() as u64,
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            max_us: *v.last().unwrap_or(&0),
        }
    }
}

/// `stormboot-lab bench-api --json`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ApiReport {
    /// Reservations the daemon held besides the measured one (its own
    /// count, after `--load`).
    pub reservations: u64,
    /// Request sent to the first DISCOVER answered the new way.
    pub visible: Stat,
    pub added: Stat,
    pub changed: Stat,
    pub removed: Stat,
    /// The API's own answer time (request sent to 200 received); it
    /// includes the store's fsync.
    pub api: Stat,
    pub timeouts: u64,
    /// Changes answered the new way before the API's 200 had arrived (the
    /// maps are written before the API answers).
    pub seen_before_200: u64,
}

/// `stormboot-lab bench-omapi --json`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct OmapiReport {
    pub hosts: u32,
    pub create_seconds: f64,
    pub creates_per_second: f64,
    /// One create's round trip on the connection.
    pub create_rtt: Stat,
    /// OMAPI create sent to the first DISCOVER answered with the host.
    pub visible: Stat,
    pub timeouts: u64,
    pub seen_by_first_probe: u64,
}

/// One measured situation of `stormboot-lab bench-xdp --json` (which
/// prints a list of them).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct XdpCase {
    pub name: String,
    /// How it was run: "repeat=1" (one BPF_PROG_TEST_RUN call per frame)
    /// or "live frames" (BPF_F_TEST_XDP_LIVE_FRAMES, a batch per call).
    #[serde(default)]
    pub mode: String,
    /// The action every run returned: "XDP_TX" or "XDP_PASS".
    pub action: String,
    /// Cost of one program run, the timing overhead subtracted.
    pub ns_per_packet: f64,
    /// 1000 / `ns_per_packet`: packets one core could push through the
    /// program alone, before any driver or stack cost.
    pub mpps_per_core: f64,
    /// Timed runs (each with a baseline run beside it).
    pub runs: u32,
    /// What exactly was done, with the raw numbers the result came from.
    pub method: String,
}

/// Decodes a report, naming it (and quoting the start of the text) in the
/// error.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &str, json: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(json).with_context(|| {
        format!(
            "decoding {what}'s JSON: {}",
            String::from_utf8_lossy(json)
                .chars()
                .take(500)
                .collect::<String>()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_report_reads_back_typed_and_a_missing_field_is_named() {
        let r = StormReport {
            machines: 10,
            bound: 9,
            lost: 1,
            retransmits: 4,
            latency_p95_ms: 2.0,
            ..Default::default()
        };
        let json = serde_json::to_vec_pretty(&r).unwrap();
        let back: StormReport = decode("storm", &json).unwrap();
        assert_eq!(back, r);
        assert!(!back.all_bound());
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v.as_object_mut().unwrap().remove("latency_p95_ms");
        let err = decode::<StormReport>("storm", v.to_string().as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("latency_p95_ms"), "{err:#}");
    }

    #[test]
    fn a_pool_run_drops_what_got_no_ack_and_names_what_the_generator_missed() {
        let r = PoolRateReport {
            offered: 1000,
            sent: 1000,
            offers: 995,
            requests: 995,
            acks: 990,
            send_ms: 500.0,
            ..Default::default()
        };
        assert_eq!(r.drops(), 10);
        assert!((r.drops_pct() - 1.0).abs() < 1e-9);
        assert_eq!(r.exchanges_per_sec(), 1980.0);
        assert_eq!(r.generator_short(), None);
        let short = PoolRateReport {
            sent: 900,
            requests_unsent: 4,
            receive_dropped: 7,
            ..r.clone()
        };
        assert_eq!(
            short.generator_short().as_deref(),
            Some("100 DISCOVERs not sent, 4 REQUESTs not sent, 7 replies not read")
        );
        assert_eq!(PoolRateReport::default().drops_pct(), 0.0);
    }

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        // A name with a space and a ')' of its own, as a thread may have.
        let line = "4242 (kea dhcp4) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 37 0 0 20 0 3 0 123 456 789";
        assert_eq!(stat_ticks(line), Some(287));
        assert_eq!(stat_ticks("garbage"), None);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(rss_kb(std::process::id()).unwrap() > 0);
        assert!(rss_kb(u32::MAX).is_err());
    }

    #[test]
    fn a_core_is_busy_with_everything_but_idle_iowait_and_steal() {
        let text = "cpu  9 9 9 9 9 9 9 9 0 0\n\
                    cpu0 100 2 30 500 7 4 5 11 0 0\n\
                    cpu1 1 1 1 1 1 1 1 1 0 0\n\
                    cpu10 1000 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(core_busy_ticks(text, 0), Some(100 + 2 + 30 + 4 + 5));
        assert_eq!(core_busy_ticks(text, 1), Some(5));
        assert_eq!(core_busy_ticks(text, 10), Some(1000));
        assert_eq!(core_busy_ticks(text, 2), None);
        assert!(core_busy_seconds(0).unwrap() > 0.0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let s = Stat::of((1..=100).collect());
        assert_eq!(
            (s.changes, s.p50_us, s.p99_us, s.max_us),
            (100, 51, 99, 100)
        );
        assert_eq!(Stat::of(vec![]), Stat::default());
    }
}
