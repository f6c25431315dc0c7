//! `wire`: known machines' DISCOVERs and REQUESTs offered by
//! `stormboot-lab rate` at the same rates to nobody (the generator's own
//! ceiling: the server end drops everything) and to each server, started as
//! the other scenarios start them. Per server and rate: answers per
//! second, drops, and the server core's CPU time per 1,000 answers.
//!
//! The server core's time is CPU 0's busy time in /proc/stat, not the
//! server process's: XDP answers in the kernel's receive path, which no
//! process is charged for. Both veth ends process what they receive in NAPI
//! threads (the server's pinned to the server's CPU, the client's to the
//! generator's), so every server's receive path, its program or its
//! sockets', runs on the server core, as a NIC's interrupt would put it.
//! The generator counts the answers where its end of the link receives
//! them, in its XDP program (`stormboot-lab xdp-pass --tally`): passed up
//! to a socket, more than about 50,000 a second overflowed that end's
//! receive ring on the generator's core.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use stormboot_testbed::{Side, Testbed, CLIENT_IF};

use super::reports::{self, RateReport};
use super::servers::{Plan, Server, CLIENT_CPU, SERVER_ADDR, SERVER_CPU};
use super::Bins;

/// The rates of the full run (requests per second).
pub const RATES: &[u64] = &[
    1_000, 2_000, 5_000, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
];
/// The server core.
pub(super) const SERVER_CORE: u32 = 0;
/// The rate at which every machine is bound before the steps.
const WARM_RATE: u64 = 10_000;
/// Drops, in percent, at which a step is clean.
const CLEAN_PCT: f64 = 0.1;
/// Rates measured between a server's last clean step and its first
/// unclean one: the ladder's steps are up to 5x apart, and a server clean
/// at 200,000 and not at 500,000 would otherwise read as 200,000.
const REFINEMENTS: u32 = 2;

/// How a run is sized.
pub struct Size {
    pub rates: Vec<u64>,
    pub duration_ms: u64,
}

/// What the run's rows are measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server end drops everything: what the generator alone offers.
    Nobody,
    Server(Server),
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Nobody => "nobody (the server end drops every request)",
            Target::Server(s) => s.name(),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Target::Nobody => "nobody",
            Target::Server(s) => s.key(),
        }
    }
}

/// One rate against one target.
pub struct Step {
    pub report: RateReport,
    /// The server core's busy time during the step, s.
    pub core_s: f64,
    /// The server process's time plus its interface's NAPI threads', s.
    pub server_s: Option<f64>,
    /// Replies the server end's veth dropped because the generator's
    /// receive ring was full (its tx_dropped): lost on the generator's
    /// side, not the server's.
    pub ring_drops: Option<u64>,
    /// Requests the generator's end could not hand to the server end's
    /// receive ring (the client end's tx_dropped): lost before the server
    /// saw them, because it did not take them in time.
    pub server_ring_drops: Option<u64>,
    /// A rate between two of the ladder's (`refinements`), not one of it:
    /// every server has its own, so none is a common rate.
    pub refined: bool,
}

impl Step {
    /// Whether the generator offered the rate and at most 0.1% was lost.
    pub fn clean(&self) -> bool {
        self.report.offered_all() && self.report.drops_pct() <= CLEAN_PCT
    }

    fn core_per_thousand(&self) -> Option<f64> {
        reports::per_thousand_ms(self.core_s, self.report.answered)
    }

    fn server_per_thousand(&self) -> Option<f64> {
        self.server_s
            .and_then(|s| reports::per_thousand_ms(s, self.report.answered))
    }
}

pub struct Row {
    pub target: Target,
    pub result: Result<Vec<Step>, String>,
}

/// Nobody first, then every server asked for, each on a fresh lab.
pub fn measure(dir: &Path, bins: &Bins, plan: &Plan, size: &Size, servers: &[Server]) -> Vec<Row> {
    let targets = std::iter::once(Target::Nobody).chain(servers.iter().map(|&s| Target::Server(s)));
    targets
        .map(|target| {
            let result = match target {
                Target::Server(s) => s.unavailable().map(|why| format!("not available: {why}")),
                Target::Nobody => None,
            }
            .map_or_else(
                || one(target, dir, bins, plan, size).map_err(|e| format!("{e:#}")),
                Err,
            );
            if let Err(e) = &result {
                eprintln!("bench: wire: {}: {e}", target.name());
            }
            Row { target, result }
        })
        .collect()
}

fn one(target: Target, dir: &Path, bins: &Bins, plan: &Plan, size: &Size) -> Result<Vec<Step>> {
    let work = dir.join(format!("wire-{}", target.key()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut bed = Testbed::new("wire", None)?;
    super::widen_addresses(&bed)?;
    let (_, tally) = bed.attach_client_tally(&bins.lab)?;
    if target != Target::Server(Server::StormbootXdp) {
        bed.attach_server_pass(&bins.lab)?;
    }
    eprintln!("bench: wire: {}: starting", target.name());
    let pid = match target {
        Target::Nobody => None,
        Target::Server(server) => {
            let pid = server.start(&mut bed, &work, plan, &bins.daemon)?;
            if !super::probe(&mut bed, &bins.lab, pid)? {
                bail!(
                    "did not answer the probe within 30 s; its output: {}",
                    std::fs::read_to_string(work.join("stderr.log")).unwrap_or_default()
                );
            }
            Some(pid)
        }
    };
    let napi = napi_threads(&bed)?;
    let server_cpu = || -> Option<f64> {
        let mut total = 0.0;
        for p in pid.iter().chain(&napi) {
            total += reports::cpu_seconds(*p).ok()?;
        }
        Some(total)
    };

    if target != Target::Nobody {
        // Every machine bound once before the steps, so that they measure
        // known machines coming back (a rack rebooting), as they would for
        // every step after the first anyway; the first bindings' writes
        // are the storm's and the pool's figures.
        eprintln!(
            "bench: wire: {}: binding every machine first",
            target.name()
        );
        let duration_ms = u64::from(plan.machines) * 2 * 1000 / WARM_RATE + 1;
        offer(&bed, &bins.lab, &tally, plan, WARM_RATE, duration_ms, &work)?;
    }
    let step = |rate: u64, refined: bool| -> Result<Step> {
        eprintln!("bench: wire: {}: {rate}/s", target.name());
        let core0 = reports::core_busy_seconds(SERVER_CORE)?;
        let server0 = server_cpu();
        let dropped0 = tx_dropped(&bed, Side::Server);
        let sent_dropped0 = tx_dropped(&bed, Side::Client);
        let report = offer(&bed, &bins.lab, &tally, plan, rate, size.duration_ms, &work)?;
        let core_s = reports::core_busy_seconds(SERVER_CORE)? - core0;
        let server_s = server0.zip(server_cpu()).map(|(a, b)| b - a);
        let ring_drops = dropped0
            .zip(tx_dropped(&bed, Side::Server))
            .map(|(a, b)| b.saturating_sub(a));
        let server_ring_drops = sent_dropped0
            .zip(tx_dropped(&bed, Side::Client))
            .map(|(a, b)| b.saturating_sub(a));
        Ok(Step {
            report,
            core_s,
            server_s,
            ring_drops,
            server_ring_drops,
            refined,
        })
    };
    let mut steps = Vec::new();
    for &rate in &size.rates {
        let s = step(rate, false)?;
        let offered_all = s.report.offered_all();
        steps.push(s);
        // Past the generator's reach, every higher rate reads the same.
        if !offered_all {
            break;
        }
    }
    if let (Target::Server(_), Some((lo, hi))) = (target, clean_edge(&steps)) {
        for rate in refinements(lo, hi) {
            let s = step(rate, true)?;
            let clean = s.clean();
            steps.push(s);
            if !clean {
                break;
            }
        }
        steps.sort_by_key(|s| s.report.rate);
    }
    if let (Target::Server(server), Some(pid)) = (target, pid) {
        if !server.is_peer() {
            // The daemon's counters (XDP actions, mode fallbacks, slow
            // path), for reading a row's drops afterwards.
            if let Some(stats) = super::stormboot_stats(&bed, &bins.daemon) {
                std::fs::write(work.join("stats.json"), stats)?;
            }
        }
        super::stop_server(&mut bed, pid, server, &work)?;
    }
    Ok(steps)
}

/// Both veth ends' NAPI threads, each pinned to its end's CPU at
/// real-time priority; the server end's PIDs.
pub(super) fn napi_threads(bed: &Testbed) -> Result<Vec<u32>> {
    let napi = bed.napi_threads(Side::Server, SERVER_CPU)?;
    let client_napi = bed.napi_threads(Side::Client, CLIENT_CPU)?;
    for pid in napi.iter().chain(&client_napi) {
        // As ordinary threads, each end's NAPI waits behind whatever else
        // runs on its core (a sender's burst, a build) until the 256-frame
        // ring in front of it overflows. Real-time priority runs it as soon
        // as frames arrive, as a NIC's interrupt would.
        let mut chrt = Command::new("chrt");
        chrt.args(["--fifo", "--pid", "10", &pid.to_string()]);
        crate::sh::run(&mut chrt)?;
    }
    Ok(napi)
}

/// The tx_dropped of the veth end at `side`: frames it could not hand to
/// the other end's receive ring.
pub(super) fn tx_dropped(bed: &Testbed, side: Side) -> Option<u64> {
    let mut ip = Command::new("ip");
    ip.args(["-j", "-s", "link", "show", side.interface()]);
    let out = bed.run(side, ip).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["stats64"]["tx"]["dropped"].as_u64()
}

/// `stormboot-lab rate` on CLIENT_CPU: the plan's machines at `rate`.
fn offer(
    bed: &Testbed,
    lab: &Path,
    tally: &Path,
    plan: &Plan,
    rate: u64,
    duration_ms: u64,
    work: &Path,
) -> Result<RateReport> {
    let mut c = Command::new("taskset");
    c.args(["-c", CLIENT_CPU]).arg(lab);
    c.args(["--log", "warn", "rate", "--json", "--interface", CLIENT_IF]);
    c.args(["--count", &plan.machines.to_string()]);
    c.args(["--first-mac", &plan.mac(0)]);
    c.args(["--first-ip", &plan.ip(0).to_string()]);
    c.args(["--server-id", &SERVER_ADDR.to_string()]);
    c.args(["--rate", &rate.to_string()]);
    c.args(["--duration-ms", &duration_ms.to_string()]);
    c.arg("--in-kernel").arg("--tally").arg(tally);
    let out = bed
        .run(Side::Client, c)
        .context("the rate generator failed")?;
    // Every count of the step (NAKs, wrong addresses, bad checksums, the
    // per-second series), for reading a row afterwards.
    std::fs::write(work.join(format!("rate-{rate}.json")), &out.stdout)?;
    reports::decode("the rate generator", &out.stdout)
}

/// Where a server's ladder stopped being clean: the last clean rate and
/// the next, unclean but fully offered, one; None if it was clean at every
/// rate, never clean, or the generator fell short there.
fn clean_edge(steps: &[Step]) -> Option<(u64, u64)> {
    let i = steps.iter().position(|s| !s.clean())?;
    let (below, above) = (steps.get(i.checked_sub(1)?)?, &steps[i]);
    above
        .report
        .offered_all()
        .then_some((below.report.rate, above.report.rate))
}

/// `REFINEMENTS` rates evenly spaced on a log scale strictly between `lo`
/// and `hi`, each rounded to two significant digits.
fn refinements(lo: u64, hi: u64) -> Vec<u64> {
    let ratio = hi as f64 / lo as f64;
    let steps = f64::from(REFINEMENTS + 1);
    (1..=REFINEMENTS)
        .map(|k| {
            let r = lo as f64 * ratio.powf(f64::from(k) / steps);
            let unit = 10f64.powf(r.log10().floor() - 1.0);
            ((r / unit).round() * unit) as u64
        })
        .filter(|&r| r > lo && r < hi)
        .collect()
}

/// The best clean answer rate of a row (None: never clean), and whether it
/// was clean at the highest rate the generator offered (then it is a floor).
fn best_clean(steps: &[Step]) -> Option<(f64, bool)> {
    let best = steps
        .iter()
        .filter(|s| s.clean())
        .map(|s| s.report.answered_per_sec())
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))?;
    let top = steps.iter().rev().find(|s| s.report.offered_all());
    Some((best, top.is_some_and(Step::clean)))
}

fn is_stormboot(t: Target) -> bool {
    matches!(t, Target::Server(s) if !s.is_peer())
}

fn is_peer(t: Target) -> bool {
    matches!(t, Target::Server(s) if s.is_peer())
}

/// The tables for results.md.
pub fn markdown(rows: &[Row], size: &Size, machines: u32) -> String {
    let mut md = format!(
        "`stormboot-lab rate --in-kernel` on CPU {CLIENT_CPU} (one thread running the \
         generator's XDP program in live-frames mode, every request an XDP_TX frame on the \
         generator's end of the link, paced by the kernel's clock): the {machines} reserved \
         machines' DISCOVERs \
         and REQUESTs (each REQUEST selecting the machine's reserved address, without waiting \
         for an OFFER), {} s per rate after every machine was bound once at {WARM_RATE}/s, \
         no retransmissions; answers counted as the generator's \
         end of the link receives them, by its XDP program (`xdp-pass --tally`: checksums, \
         xid, chaddr, message type and address checked, then dropped), up to 200 ms after the \
         last send. Drops: requests sent and not answered. \
         Server core: CPU {SERVER_CORE}'s busy time (user, system, irq, softirq) in /proc/stat, \
         whatever ran there, because XDP answers in the receive path, which no process is \
         charged for; both veth ends receive in NAPI threads at real-time priority, the \
         server's pinned to CPU {SERVER_CORE}. Server threads: the server's processes and its interface's NAPI \
         threads only (the same work without other load on the core). \
         Between a server's last clean step and its first unclean one, up to {REFINEMENTS} \
         more rates, evenly spaced on a log scale (\"between steps\"), find where it stops \
         being clean; the common rate is one of the ladder's.\n\n",
        size.duration_ms as f64 / 1e3
    );
    md.push_str(
        "| server | offered/s | sent/s | answered/s | drops | of which at the server's receive ring | of which at the generator's receive ring | server core CPU per 1,000 answered (ms) | server threads CPU per 1,000 (ms) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for row in rows {
        match &row.result {
            Err(e) => {
                let _ = writeln!(md, "| {} | not measured: {e} |||||||", row.target.name());
            }
            Ok(steps) => {
                for s in steps {
                    let r = &s.report;
                    let short = if r.offered_all() {
                        String::new()
                    } else {
                        format!(" (generator short: {} not sent)", r.behind)
                    };
                    let between = if s.refined { " (between steps)" } else { "" };
                    let _ = writeln!(
                        md,
                        "| {} | {}{between} | {:.0}{short} | {:.0} | {:.3}% | {} | {} | {} | {} |",
                        row.target.name(),
                        r.rate,
                        r.sent_per_sec(),
                        r.answered_per_sec(),
                        r.drops_pct(),
                        s.server_ring_drops.map_or("-".into(), |d| d.to_string()),
                        s.ring_drops.map_or("-".into(), |d| d.to_string()),
                        ms(s.core_per_thousand()),
                        ms(s.server_per_thousand()),
                    );
                }
            }
        }
    }
    md.push('\n');
    md.push_str(&summary(rows));
    md
}

/// stormboot against the best peer: answers at <= 0.1% drops, and the
/// server core's CPU per 1,000 answers at the highest rate a peer answered
/// cleanly.
fn summary(rows: &[Row]) -> String {
    let measured = |pick: fn(Target) -> bool| {
        rows.iter()
            .filter(move |r| pick(r.target))
            .filter_map(|r| Some((r.target, r.result.as_ref().ok()?)))
    };
    let mut md = String::new();
    let best_peer = measured(is_peer)
        .filter_map(|(t, steps)| Some((t, best_clean(steps)?.0)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((peer, peer_rate)) = best_peer else {
        md.push_str("No peer answered cleanly at any rate: no ratio.\n");
        return md;
    };
    // The highest offered rate at which some peer was clean: there every
    // clean server did the same work.
    let common = measured(is_peer)
        .flat_map(|(_, steps)| {
            steps
                .iter()
                .filter(|s| s.clean() && !s.refined)
                .map(|s| s.report.rate)
        })
        .max();
    let _ = writeln!(
        md,
        "Best peer: {} at {peer_rate:.0} answered/s with at most {CLEAN_PCT}% drops.\n",
        peer.name()
    );
    md.push_str("| server | answered/s at <= 0.1% drops | vs best peer | server core CPU per 1,000 at the common rate (ms) | vs best peer | server threads CPU per 1,000 at the common rate (ms) | vs best peer |\n|---|---|---|---|---|---|---|\n");
    let at = |steps: &[Step], rate, pick: fn(&Step) -> Option<f64>| {
        steps
            .iter()
            .find(|s| s.report.rate == rate && s.clean())
            .and_then(pick)
    };
    let peer_cpu = |pick: fn(&Step) -> Option<f64>| {
        common.and_then(|rate| {
            measured(is_peer)
                .filter_map(|(_, steps)| at(steps, rate, pick))
                .min_by(f64::total_cmp)
        })
    };
    let (peer_core, peer_threads) = (
        peer_cpu(Step::core_per_thousand),
        peer_cpu(Step::server_per_thousand),
    );
    for (t, steps) in measured(|t| is_stormboot(t) || is_peer(t)) {
        let (clean, ratio) = match best_clean(steps) {
            Some((v, floor)) => (
                format!("{}{v:.0}", if floor { ">= " } else { "" }),
                format!("{}{:.1}x", if floor { ">= " } else { "" }, v / peer_rate),
            ),
            None => ("never clean".into(), "-".into()),
        };
        let cpu = |pick, peer: Option<f64>| {
            let own = common.and_then(|rate| at(steps, rate, pick));
            let ratio = own
                .zip(peer)
                .map_or("-".into(), |(c, p)| format!("{:.1}x less", p / c));
            (own.map_or("-".into(), |c| format!("{c:.1}")), ratio)
        };
        let (core, core_ratio) = cpu(Step::core_per_thousand, peer_core);
        let (threads, threads_ratio) = cpu(Step::server_per_thousand, peer_threads);
        let _ = writeln!(
            md,
            "| {} | {clean} | {ratio} | {core} | {core_ratio} | {threads} | {threads_ratio} |",
            t.name(),
        );
    }
    if let Some(rate) = common {
        let _ = writeln!(md, "\nCommon rate: {rate}/s offered.");
    }
    md
}

/// The smoke run fails unless the generator heard nothing from nobody and
/// every server answered, with the reserved addresses.
pub fn smoke_verdict(rows: &[Row]) -> Result<()> {
    let mut failures = Vec::new();
    for row in rows {
        match &row.result {
            Err(e) => failures.push(format!("{}: {e}", row.target.name())),
            Ok(steps) => {
                for s in steps {
                    let r = &s.report;
                    let bad = match row.target {
                        Target::Nobody => r.answered > 0 || r.sent == 0,
                        Target::Server(_) => r.answered == 0 || r.wrong_address > 0,
                    };
                    if bad {
                        failures.push(format!(
                            "{}: at {}/s sent {}, answered {} ({} with a wrong address)",
                            row.target.name(),
                            r.rate,
                            r.sent,
                            r.answered,
                            r.wrong_address
                        ));
                    }
                }
                if steps.is_empty() {
                    failures.push(format!("{}: no step ran", row.target.name()));
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("wire: {}", failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: u64, sent: u64, answered: u64, core_s: f64) -> Step {
        Step {
            report: RateReport {
                rate,
                offered: rate,
                sent,
                answered,
                send_ms: 1000.0,
                ..RateReport::default()
            },
            core_s,
            server_s: Some(core_s / 2.0),
            ring_drops: None,
            server_ring_drops: None,
            refined: false,
        }
    }

    /// A server's measured steps.
    fn row(server: Server, steps: Vec<Step>) -> Row {
        Row {
            target: Target::Server(server),
            result: Ok(steps),
        }
    }

    #[test]
    fn the_smoke_run_fails_when_a_server_does_not_answer() {
        let ok = Row {
            target: Target::Server(Server::Kea),
            result: Ok(vec![step(1000, 1000, 1000, 0.1)]),
        };
        let nobody = Row {
            target: Target::Nobody,
            result: Ok(vec![step(1000, 1000, 0, 0.0)]),
        };
        assert!(smoke_verdict(&[nobody, ok]).is_ok());
        for bad in [
            Row {
                target: Target::Server(Server::Dnsmasq),
                result: Ok(vec![step(1000, 1000, 0, 0.1)]),
            },
            Row {
                target: Target::Server(Server::Dnsmasq),
                result: Err("did not answer the probe".into()),
            },
            Row {
                target: Target::Server(Server::Dnsmasq),
                result: Ok(vec![]),
            },
        ] {
            let err = smoke_verdict(&[bad]).unwrap_err().to_string();
            assert!(err.contains("dnsmasq"), "{err}");
        }
        let heard = Row {
            target: Target::Nobody,
            result: Ok(vec![step(1000, 1000, 5, 0.0)]),
        };
        assert!(smoke_verdict(&[heard]).is_err(), "nobody cannot answer");
    }

    #[test]
    fn stormboot_is_compared_with_the_best_clean_peer_at_a_common_rate() {
        let rows = [
            // Clean at every rate the generator offered: a floor.
            row(
                Server::StormbootXdp,
                vec![
                    step(10_000, 10_000, 10_000, 0.1),
                    step(100_000, 100_000, 100_000, 0.2),
                ],
            ),
            // Clean at 10k (2.0 s of core per 10,000: 200 ms per 1,000),
            // 40% dropped at 100k.
            row(
                Server::Kea,
                vec![
                    step(10_000, 10_000, 10_000, 2.0),
                    step(100_000, 100_000, 60_000, 1.0),
                ],
            ),
            row(Server::Dhcpd, vec![step(10_000, 10_000, 9_000, 1.0)]),
        ];
        let md = summary(&rows);
        assert!(md.contains("Best peer: Kea 2.2 (memfile) at 10000"), "{md}");
        // 100,000 against 10,000 answered cleanly; at 10k: 10 ms against 200.
        assert!(
            md.contains("| >= 100000 | >= 10.0x | 10.0 | 20.0x less | 5.0 | 20.0x less |"),
            "{md}"
        );
        assert!(
            md.contains("| ISC dhcpd 4.4 | never clean | - | - | - | - | - |"),
            "{md}"
        );
        assert!(md.contains("Common rate: 10000/s"), "{md}");
    }

    #[test]
    fn a_step_the_generator_could_not_offer_is_not_clean() {
        let mut s = step(1000, 990, 990, 0.0);
        assert!(!s.clean());
        s.report.sent = 1000;
        s.report.answered = 999;
        assert!(s.clean());
        s.report.answered = 998;
        assert!(!s.clean());
    }

    #[test]
    fn the_rates_between_two_steps_are_log_spaced_and_round() {
        assert_eq!(refinements(200_000, 500_000), [270_000, 370_000]);
        assert_eq!(refinements(10_000, 50_000), [17_000, 29_000]);
        assert_eq!(refinements(1_000, 2_000), [1_300, 1_600]);
        // Too close for two distinct rates strictly between.
        assert_eq!(refinements(100, 101), Vec::<u64>::new());
    }

    #[test]
    fn a_server_is_refined_only_where_it_stopped_being_clean() {
        let clean = |r| step(r, r, r, 0.1);
        let dropping = |r| step(r, r, r / 2, 0.1);
        let edge = |v: Vec<Step>| clean_edge(&v);
        assert_eq!(
            edge(vec![
                clean(1_000),
                clean(10_000),
                dropping(50_000),
                dropping(100_000)
            ]),
            Some((10_000, 50_000))
        );
        assert_eq!(
            edge(vec![clean(1_000), clean(10_000)]),
            None,
            "clean throughout"
        );
        assert_eq!(
            edge(vec![dropping(1_000), dropping(10_000)]),
            None,
            "never clean"
        );
        // The generator fell short: no edge of the server's.
        assert_eq!(
            edge(vec![clean(10_000), step(50_000, 40_000, 40_000, 0.1)]),
            None
        );
    }

    #[test]
    fn a_rate_between_steps_counts_for_its_server_but_is_no_common_rate() {
        let mut kea_between = step(17_000, 17_000, 17_000, 1.7);
        kea_between.refined = true;
        let rows = [
            row(
                Server::StormbootXdp,
                vec![
                    step(10_000, 10_000, 10_000, 0.1),
                    step(50_000, 50_000, 50_000, 0.2),
                ],
            ),
            row(
                Server::Kea,
                vec![
                    step(10_000, 10_000, 10_000, 2.0),
                    kea_between,
                    step(50_000, 50_000, 20_000, 1.0),
                ],
            ),
        ];
        let md = summary(&rows);
        assert!(md.contains("Best peer: Kea 2.2 (memfile) at 17000"), "{md}");
        assert!(md.contains("Common rate: 10000/s"), "{md}");
        assert!(
            md.contains("| >= 50000 | >= 2.9x | 10.0 | 20.0x less |"),
            "{md}"
        );
    }
}
