//! Measures what the XDP program costs per packet, without fooling itself.
//!
//! BPF_PROG_TEST_RUN with `repeat` > 1 runs the program again on the buffer
//! the previous iteration already rewrote, so a request turned into its
//! reply in place is timed once as a reply and then N-1 times as "not a
//! request, pass". Here every timed run is a separate `repeat = 1` call, so
//! the kernel copies the input frame afresh each time. The kernel's
//! `duration` for one run is the program plus the fixed cost of reading the
//! clock around it; that fixed cost is measured the same way with the
//! pass-only program of the same object on the same frame, interleaved with
//! the measured runs, and subtracted: median minus median, each median
//! taken over durations binned to the kernel clock's step and interpolated
//! within its bin (see `binned_median`).
//!
//! Every run is checked: its action, and its output byte for byte against
//! the first output, which is validated in full (checksums, dhcproto
//! decode, message type, addresses). The program's own counters must then
//! show exactly one reply (or one pass) per run and no lost events.
//!
//! What the figures are: the program alone, run once after a syscall, so
//! with cooler caches than in a driver's poll loop; neither the driver, the
//! transmit nor the stack is in them.
//!
//! Beside these, the reply cases are measured in live-frames mode
//! (`xdplive`): many frames per call, as a driver runs the program, with
//! the mode's own cost measured by an XDP_TX-only program and subtracted.
//! Live-frames mode does not restore a frame either: a page recycled from
//! its page pool keeps what the program wrote (kernel
//! Documentation/bpf/bpf_prog_run.rst), so past one batch the program
//! would meet its own replies; `xdplive` keeps each call to one batch on
//! a pool of its own.

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, ensure, Context};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder};
use stormboot_common::bucket::Limit;
use stormboot_common::counters::Counter;
use stormboot_common::maps::PROGRAM_PASS;

use stormboot::dataplane::{Dataplane, EBPF_OBJECT};
use stormboot::frame::{self, Addressing};

use super::fixtures::{
    broadcast_frame, config, relayed_frame, request, Loaded, Setup, CONFIG, NODE1, NODE1_IP, RELAY,
    REMOTE, REMOTE_IP, SERVER, SERVER_MAC, UNKNOWN, XDP_PASS, XDP_TX, XID,
};
use crate::reports::XdpCase as Case;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Timed runs per case, each paired with one baseline run; in
    /// live-frames mode, frames per case (in whole batches).
    pub runs: u32,
    /// Also measure the reply cases in live-frames mode.
    pub live: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runs: 20_000,
            live: true,
        }
    }
}

/// `XdpCase::mode` of the figures from one BPF_PROG_TEST_RUN call per frame.
pub const MODE_ONE_RUN: &str = "repeat=1";
/// `XdpCase::mode` of the figures from `xdplive`.
pub const MODE_LIVE: &str = "live frames";

/// Drain the reply ring this often (in runs), as the daemon
/// would, so that the program takes its normal "event written" path; a full
/// buffer would make replies cheaper than they are in service.
const DRAIN_EVERY: u32 = 1024;

/// What a run of a case must produce.
pub(super) enum Expect {
    Reply {
        msg_type: MessageType,
        yiaddr: Ipv4Addr,
        /// Where the reply goes: destination address and UDP port.
        to: (Ipv4Addr, u16),
        /// The counter the program bumps once per such reply.
        counter: Counter,
        /// The boot file the reply must name, for firmware requests.
        boot_file: Option<&'static str>,
    },
    Pass {
        counter: Counter,
    },
}

pub(super) struct Scenario {
    pub name: &'static str,
    pub frame: Vec<u8>,
    pub expect: Expect,
}

impl Expect {
    fn action(&self) -> u32 {
        match self {
            Expect::Reply { .. } => XDP_TX,
            Expect::Pass { .. } => XDP_PASS,
        }
    }

    pub(super) fn counter(&self) -> Counter {
        match self {
            Expect::Reply { counter, .. } | Expect::Pass { counter } => *counter,
        }
    }
}

/// Loads its own Dataplane with a fixed test configuration, then measures
/// "discover->offer" (plain DISCOVER from a reserved MAC), "PXE
/// discover->offer" (the same from BIOS PXE firmware), "request->ack"
/// (SELECTING REQUEST), "relayed discover->offer" (giaddr + option 82),
/// "unknown-MAC DHCP pass" (a DISCOVER for the slow path: it also pays the
/// slow-path bucket's lookup and update) and "non-DHCP pass" (a UDP/53
/// frame: the tax every other packet pays).
///
/// Runs on a thread of its own pinned to one CPU; fails if any run returns
/// another action or another output than expected.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Case>> {
    let runs = opts.runs;
    ensure!(runs >= 1, "xdpbench: runs must be at least 1");
    let mut cases = std::thread::Builder::new()
        .name("xdpbench".into())
        .spawn(move || measure_all(runs))
        .context("starting the benchmark thread")?
        .join()
        .map_err(|_| anyhow!("the benchmark thread panicked"))??;
    if opts.live {
        cases.extend(super::xdplive::run(runs)?);
    }
    Ok(cases)
}

/// Prints the cases as an aligned table, then how each was measured.
pub fn print(cases: &[Case]) {
    let name_w = cases
        .iter()
        .map(|c| c.name.len())
        .chain(["case".len()])
        .max()
        .unwrap_or(4);
    println!(
        "{:<name_w$}  {:<11}  {:<8}  {:>9}  {:>10}  {:>6}",
        "case", "mode", "action", "ns/packet", "Mpps/core", "runs"
    );
    for c in cases {
        println!(
            "{:<name_w$}  {:<11}  {:<8}  {:>9.1}  {:>10.2}  {:>6}",
            c.name, c.mode, c.action, c.ns_per_packet, c.mpps_per_core, c.runs
        );
    }
    println!();
    for c in cases {
        println!("method ({}, {}): {}", c.name, c.mode, c.method);
    }
}

fn measure_all(runs: u32) -> anyhow::Result<Vec<Case>> {
    // One CPU for the whole run: no migration between a measured run and
    // its baseline, and a warm cache for both.
    let pinned = pin_to_current_cpu();
    let mut bench = Bench::new()?;
    scenarios()
        .iter()
        .map(|s| bench.measure(s, runs, pinned))
        .collect()
}

/// Pins the calling thread to the CPU it is on; None if that failed (the
/// numbers are then noisier, not wrong, and the method says so).
/// Checks the program's counters between `before` and `after`: every one
/// of `n` frames received and answered as `s` expects, no event lost, no
/// send failed.
pub(super) fn counted_once_each(
    s: &Scenario,
    before: &[u64],
    after: &[u64],
    n: u64,
    what: &str,
) -> anyhow::Result<()> {
    let delta = |c: Counter| after[c as usize] - before[c as usize];
    ensure!(
        delta(Counter::Received) == n && delta(s.expect.counter()) == n,
        "{}: the program counted {} frames and {} {} for {n} {what}",
        s.name,
        delta(Counter::Received),
        delta(s.expect.counter()),
        s.expect.counter().name()
    );
    for c in [Counter::EventLost, Counter::TxError] {
        ensure!(
            delta(c) == 0,
            "{}: {} went up by {} during the {what}",
            s.name,
            c.name(),
            delta(c)
        );
    }
    Ok(())
}

/// Keeps the calling thread on the CPU it is on (which it returns), so
/// that every test run of the program lands on one CPU.
pub fn pin_to_current_cpu() -> Option<usize> {
    use nix::sched::{sched_getcpu, sched_setaffinity, CpuSet};
    let cpu = sched_getcpu().ok()?;
    let mut set = CpuSet::new();
    set.set(cpu).ok()?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).ok()?;
    Some(cpu)
}

/// The program under test, its event buffer, and the pass-only baseline.
struct Bench {
    dp: Dataplane,
    events: stormboot::dataplane::ReplyRing,
    /// Holds the pass-only program (and the object's other maps, unused).
    baseline: Ebpf,
    out: Vec<u8>,
}

impl Bench {
    fn new() -> anyhow::Result<Self> {
        let cfg = config(CONFIG, "xdpbench.toml")?;
        // The service's default level, so the program's log statements
        // cost what they cost in service.
        let log_level = cfg.server.xdp_log_level.as_u8();
        let Loaded { mut dp, .. } = Loaded::new(
            cfg,
            Setup {
                log_level,
                // The slow-path bucket is consulted and updated on every passed
                // request, as in service, but never runs dry: the benchmark times
                // the pass, not the drop, and sends one MAC's request many times.
                slowpath_limit: Some(Limit::new(1_000_000, 1_000_000)),
                ..Default::default()
            },
        )?;
        let events = dp.take_events()?;
        let mut baseline = EbpfLoader::new()
            .load(EBPF_OBJECT)
            .context("loading the object a second time for the baseline")?;
        let pass: &mut Xdp = baseline
            .program_mut(PROGRAM_PASS)
            .with_context(|| format!("no program {PROGRAM_PASS} in the object"))?
            .try_into()?;
        pass.load()
            .with_context(|| format!("loading {PROGRAM_PASS}"))?;
        Ok(Self {
            dp,
            events,
            baseline,
            out: vec![0; 4096],
        })
    }

    fn drain_events(&mut self) {
        self.events.by_ref().for_each(drop);
    }

    fn measure(&mut self, s: &Scenario, runs: u32, pinned: Option<usize>) -> anyhow::Result<Case> {
        let warmup = (runs / 10).clamp(10, 1000);
        let total = warmup + runs;
        let mut prog_ns = Vec::with_capacity(runs as usize);
        let mut base_ns = Vec::with_capacity(runs as usize);
        let mut reference: Option<Vec<u8>> = None;
        self.drain_events();
        let before = self.dp.counters()?;
        for i in 0..total {
            // Alternate which of the pair goes first, so that neither always
            // runs with the other's cache footprint.
            let (p, b) = if i % 2 == 0 {
                let p = self.measured_run(s, i, &mut reference)?;
                (p, self.baseline_run(s, i)?)
            } else {
                let b = self.baseline_run(s, i)?;
                (self.measured_run(s, i, &mut reference)?, b)
            };
            if i >= warmup {
                prog_ns.push(p);
                base_ns.push(b);
            }
            if i % DRAIN_EVERY == DRAIN_EVERY - 1 {
                self.drain_events();
            }
        }
        self.drain_events();
        let after = self.dp.counters()?;
        counted_once_each(s, &before, &after, u64::from(total), "runs")?;

        let step = clock_step(&[prog_ns.as_slice(), base_ns.as_slice()].concat());
        let prog = binned_median(&prog_ns, step);
        let base = binned_median(&base_ns, step);
        let ns = prog - base;
        ensure!(
            ns > 0.0,
            "{}: the program's median ({prog:.1} ns) is not above the pass-only baseline's \
             ({base:.1} ns); this method cannot resolve it",
            s.name
        );
        prog_ns.sort_unstable();
        let check = match s.expect {
            Expect::Reply { .. } => {
                "the first output fully validated (IPv4 and UDP checksums by frame::parse, \
                 dhcproto decode, BOOTREPLY, message type, xid, yiaddr, destination) and every \
                 later output byte-identical to it"
            }
            Expect::Pass { .. } => "every output identical to the input",
        };
        let method = format!(
            "median of {runs} BPF_PROG_TEST_RUN repeat=1 runs of the DHCP program (each on a \
             fresh copy of the {len}-byte frame) minus the median of {runs} runs of the \
             pass-only program {PROGRAM_PASS} on the same frame, the two interleaved in \
             alternating order after {warmup} warm-up pairs, {cpu}; {resolution}; each run's \
             action checked ({action}), {check}; the program's counters show {total} x \
             {counter} and no lost events or tx errors. Medians {prog:.1} ns program, \
             {base:.1} ns baseline; program p10-p90 {p10}-{p90} ns",
            len = s.frame.len(),
            cpu = match pinned {
                Some(cpu) => format!("on one thread pinned to CPU {cpu}"),
                None => "on one thread (pinning it to a CPU failed)".into(),
            },
            resolution = if step > 1 {
                format!(
                    "the kernel's durations came in {step} ns steps here, so each median is \
                     interpolated within its {step} ns bin (grouped-data median)"
                )
            } else {
                "durations in whole ns, medians interpolated within 1 ns bins".into()
            },
            action = super::fixtures::action_name(s.expect.action()),
            counter = s.expect.counter().name(),
            p10 = percentile(&prog_ns, 0.10),
            p90 = percentile(&prog_ns, 0.90),
        );
        Ok(Case {
            name: s.name.into(),
            mode: MODE_ONE_RUN.into(),
            action: super::fixtures::action_name(s.expect.action()).into(),
            ns_per_packet: ns,
            mpps_per_core: 1000.0 / ns,
            runs,
            method,
        })
    }

    /// One run of the DHCP program; returns the kernel's duration in ns
    /// after checking the action and the output.
    fn measured_run(
        &mut self,
        s: &Scenario,
        i: u32,
        reference: &mut Option<Vec<u8>>,
    ) -> anyhow::Result<u64> {
        let r = self
            .dp
            .program()?
            .test_run(TestRunOptions {
                data_in: Some(&s.frame),
                data_out: Some(&mut self.out),
                repeat: 1,
                ..Default::default()
            })
            .with_context(|| format!("{}: BPF_PROG_TEST_RUN of the DHCP program", s.name))?;
        let out = &self.out[..r.data_size_out as usize];
        if r.return_value != s.expect.action() {
            bail!(
                "{}: run {i} returned {} instead of {}",
                s.name,
                super::fixtures::action_name(r.return_value),
                super::fixtures::action_name(s.expect.action())
            );
        }
        match (&s.expect, reference.as_deref()) {
            (Expect::Pass { .. }, _) => {
                ensure!(
                    out == s.frame.as_slice(),
                    "{}: run {i} passed a changed frame",
                    s.name
                );
            }
            (Expect::Reply { .. }, Some(first)) => {
                ensure!(
                    out == first,
                    "{}: run {i}'s reply differs from the first run's",
                    s.name
                );
            }
            (Expect::Reply { .. }, None) => {
                validate(&s.expect, out).with_context(|| format!("{}: run {i}'s reply", s.name))?;
                *reference = Some(out.to_vec());
            }
        }
        Ok(r.duration.as_nanos() as u64)
    }

    /// One run of the pass-only program on the same frame.
    fn baseline_run(&mut self, s: &Scenario, i: u32) -> anyhow::Result<u64> {
        let prog: &Xdp = self
            .baseline
            .program(PROGRAM_PASS)
            .with_context(|| format!("no program {PROGRAM_PASS} in the object"))?
            .try_into()?;
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(&s.frame),
                data_out: Some(&mut self.out),
                repeat: 1,
                ..Default::default()
            })
            .with_context(|| format!("{}: BPF_PROG_TEST_RUN of {PROGRAM_PASS}", s.name))?;
        ensure!(
            r.return_value == XDP_PASS
                && &self.out[..r.data_size_out as usize] == s.frame.as_slice(),
            "{}: baseline run {i} returned {} or changed the frame",
            s.name,
            super::fixtures::action_name(r.return_value)
        );
        Ok(r.duration.as_nanos() as u64)
    }
}

/// Checks a reply in full against what `expect` says it must be; a pass
/// case has no reply to check.
pub(super) fn validate(expect: &Expect, out: &[u8]) -> anyhow::Result<()> {
    match expect {
        Expect::Reply {
            msg_type,
            yiaddr,
            to,
            boot_file,
            ..
        } => validate_reply(out, *msg_type, *yiaddr, *to, *boot_file),
        Expect::Pass { .. } => Ok(()),
    }
}

/// Checks a reply in full: frame checksums, DHCP decode, and the fields
/// that say it answers our request.
fn validate_reply(
    out: &[u8],
    msg_type: MessageType,
    yiaddr: Ipv4Addr,
    to: (Ipv4Addr, u16),
    boot_file: Option<&str>,
) -> anyhow::Result<()> {
    let parsed = frame::parse(out).context("reply frame (IPv4/UDP checksums)")?;
    ensure!(!parsed.udp_csum_absent, "the reply has no UDP checksum");
    let m = Message::decode(&mut Decoder::new(parsed.payload)).context("decoding the reply")?;
    ensure!(m.opcode() == Opcode::BootReply, "opcode {:?}", m.opcode());
    ensure!(
        m.opts().msg_type() == Some(msg_type),
        "message type {:?}, expected {msg_type:?}",
        m.opts().msg_type()
    );
    ensure!(m.xid() == XID, "xid {:#x}", m.xid());
    ensure!(
        m.yiaddr() == yiaddr,
        "yiaddr {}, expected {yiaddr}",
        m.yiaddr()
    );
    let got = (parsed.addr.ip_dst, parsed.addr.dport);
    ensure!(got == to, "sent to {got:?}, expected {to:?}");
    if let Some(want) = boot_file {
        let file = String::from_utf8_lossy(m.fname().unwrap_or_default());
        let file = file.trim_end_matches('\0');
        ensure!(file == want, "boot file {file:?}, expected {want:?}");
    }
    Ok(())
}

/// The step in which the kernel's clock advanced during the runs: the
/// largest `h` (4..=50 ns) such that 95% of the durations lie within 1 ns of
/// a multiple of `h` (the conversion from clock cycles rounds either way)
/// and at least two multiples each hold 1% of them; 1 when there is none.
///
/// On a VM whose clock ticks in 10 ns, a plain median can only move in
/// 10 ns jumps: a 5 ns program would read as 0 or 10 ns.
fn clock_step(durations: &[u64]) -> u64 {
    let n = durations.len() as u64;
    (4..=50u64)
        .rev()
        .find(|&h| {
            let near = durations
                .iter()
                .filter(|&&v| v % h <= 1 || v % h == h - 1)
                .count() as u64;
            let mut bins = std::collections::BTreeMap::new();
            for &v in durations {
                *bins.entry((v + h / 2) / h).or_insert(0u64) += 1;
            }
            near * 100 >= n * 95 && bins.values().filter(|&&c| c * 100 >= n).count() >= 2
        })
        .unwrap_or(1)
}

/// The median of `durations` binned to `step` ns and interpolated within
/// the median's bin, as for grouped data. It keeps the median's immunity to
/// the slow tail (interrupts, the other CPU's load) and resolves below the
/// step, because a constant cost straddling two ticks shows up as a mix of
/// both in proportion to where it lies between them.
fn binned_median(durations: &[u64], step: u64) -> f64 {
    let mut bins: Vec<u64> = durations.iter().map(|&v| (v + step / 2) / step).collect();
    bins.sort_unstable();
    let n = bins.len();
    let m = bins[(n - 1) / 2];
    let below = bins.partition_point(|&b| b < m);
    let within = bins.partition_point(|&b| b <= m) - below;
    let h = step as f64;
    (m as f64 - 0.5) * h + (n as f64 / 2.0 - below as f64) / within as f64 * h
}

/// The `q` quantile of sorted durations (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(super) fn scenarios() -> Vec<Scenario> {
    let discover = broadcast_frame(&request(NODE1, MessageType::Discover));
    let unknown = broadcast_frame(&request(UNKNOWN, MessageType::Discover));

    // BIOS PXE firmware: options 60 and 93 pick the rendered variant with
    // the boot file, next server and PXE vendor options.
    let mut pxe = request(NODE1, MessageType::Discover);
    pxe.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    pxe.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(0u16.into()));
    let pxe = broadcast_frame(&pxe);

    let mut req = request(NODE1, MessageType::Request);
    req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(NODE1_IP));
    let request_selecting = broadcast_frame(&req);

    let mut relayed = request(REMOTE, MessageType::Discover);
    relayed.set_giaddr(RELAY);
    relayed.set_hops(1);
    let relayed = relayed_frame(&relayed);

    // A DNS query for "node1.rack1.example" A, to the server: any other
    // traffic on the interface pays what this pays.
    let mut dns = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["node1", "rack1", "example"] {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    let dns = frame::build(
        &Addressing {
            eth_dst: SERVER_MAC,
            eth_src: NODE1,
            vlan: None,
            ip_src: NODE1_IP,
            ip_dst: SERVER,
            sport: 40_000,
            dport: 53,
        },
        &dns,
    );

    vec![
        Scenario {
            name: "discover->offer",
            frame: discover,
            expect: Expect::Reply {
                msg_type: MessageType::Offer,
                yiaddr: NODE1_IP,
                to: (NODE1_IP, 68),
                counter: Counter::Offer,
                boot_file: None,
            },
        },
        Scenario {
            name: "PXE discover->offer",
            frame: pxe,
            expect: Expect::Reply {
                msg_type: MessageType::Offer,
                yiaddr: NODE1_IP,
                to: (NODE1_IP, 68),
                counter: Counter::Offer,
                boot_file: Some("undionly.kpxe"),
            },
        },
        Scenario {
            name: "request->ack",
            frame: request_selecting,
            expect: Expect::Reply {
                msg_type: MessageType::Ack,
                yiaddr: NODE1_IP,
                to: (NODE1_IP, 68),
                counter: Counter::Ack,
                boot_file: None,
            },
        },
        Scenario {
            name: "relayed discover->offer",
            frame: relayed,
            expect: Expect::Reply {
                msg_type: MessageType::Offer,
                yiaddr: REMOTE_IP,
                to: (RELAY, 67),
                counter: Counter::Offer,
                boot_file: None,
            },
        },
        Scenario {
            name: "unknown-MAC DHCP pass",
            frame: unknown,
            expect: Expect::Pass {
                counter: Counter::PassUnknownMac,
            },
        },
        Scenario {
            name: "non-DHCP pass",
            frame: dns,
            expect: Expect::Pass {
                counter: Counter::PassNotDhcp,
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_step_is_found_and_not_invented() {
        // A 10 ns clock: x0 and x1 values (rounding), spread over several ticks.
        let ten: Vec<u64> = (0..1000)
            .map(|i| 70 + 10 * (i % 4) + (i % 3 == 0) as u64)
            .collect();
        assert_eq!(clock_step(&ten), 10);
        // A 1 ns clock.
        let one: Vec<u64> = (0..1000).map(|i| 70 + i % 23).collect();
        assert_eq!(clock_step(&one), 1);
        // One tick only is no evidence of a step.
        assert_eq!(clock_step(&[80, 81, 80, 80]), 1);
    }

    #[test]
    fn binned_median_resolves_below_the_step() {
        // 84 ns measured with a 10 ns clock: 60% read 80, 40% read 90.
        let v: Vec<u64> = (0..1000).map(|i| if i % 5 < 3 { 80 } else { 91 }).collect();
        let m = binned_median(&v, 10);
        assert!((m - 83.33).abs() < 0.01, "{m}");
        // With 1 ns bins: the plain median for distinct values; ties are
        // read as spread over their bin.
        assert_eq!(binned_median(&[1, 2, 3], 1), 2.0);
        assert_eq!(binned_median(&[5, 1, 9, 5, 7], 1), 5.25);
    }

    #[test]
    fn every_case_has_its_action_and_a_positive_cost() {
        crate::require_root();
        let cases = run(&Options {
            runs: 300,
            live: false,
        })
        .expect("the benchmark runs and every check passes");
        let expected = [
            ("discover->offer", "XDP_TX"),
            ("PXE discover->offer", "XDP_TX"),
            ("request->ack", "XDP_TX"),
            ("relayed discover->offer", "XDP_TX"),
            ("unknown-MAC DHCP pass", "XDP_PASS"),
            ("non-DHCP pass", "XDP_PASS"),
        ];
        assert_eq!(cases.len(), expected.len());
        for (c, (name, action)) in cases.iter().zip(expected) {
            assert_eq!((c.name.as_str(), c.action.as_str()), (name, action));
            assert!(
                c.ns_per_packet.is_finite() && c.ns_per_packet > 0.0,
                "{name}: {} ns",
                c.ns_per_packet
            );
            assert_eq!(c.runs, 300);
        }
    }

    /// The real numbers: `cargo test --release -p stormboot-testbed --lib
    /// lab::xdpbench::tests::report -- --ignored --nocapture`.
    #[test]
    #[ignore = "takes a while; run in release for numbers"]
    fn report() {
        crate::require_root();
        let cases = run(&Options::default()).expect("the benchmark runs and every check passes");
        print(&cases);
    }
}
