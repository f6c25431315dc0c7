//! `pool-wire`: new pool leases, DORA offered by `stormboot-lab rate
//! --pool` at the same rising rates to each server, relayed as perfdhcp's
//! pool ramp relays them, with the servers started as the other scenarios
//! start them (stormboot's pool leases on disk before the ACK). Per server:
//! the best rate of completed exchanges with at most
//! [`perfdhcp::MAX_DROPS_PERCENT`] dropped, and stormboot against Kea.
//!
//! perfdhcp's ramp cannot measure this past its own ceiling (about 12,000
//! exchanges a second here); the lab's generator sends the DISCOVERs from a
//! packet socket with sendmmsg(2) and answers OFFERs in batches, and says
//! when it could not keep up, so its limit is never read as a server's.
//! Every step's machines are new (a run id in their MACs), and the pool is
//! the subnet's whole rest, so every step's leases are new leases; a ramp
//! stops before a step whose leases would not fit.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use stormboot_testbed::{Side, Testbed, CLIENT_IF, SERVER_IF};

use super::perfdhcp::MAX_DROPS_PERCENT;
use super::reports;
use super::servers::{Plan, Server, CLIENT_CPU, POOL_FIRST, RELAY_ADDR, SERVER_ADDR};
use super::wire::{tx_dropped, SERVER_CORE};
use super::Bins;
use stormboot_testbed::reports::PoolRateReport;

/// The rates of the full run (new machines' DISCOVERs per second).
/// Steps of 1,000 where Kea and stormboot end on this lab, so that a ratio
/// is not a ratio of coarse steps.
pub const RATES: &[u64] = &[
    1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000, 11_000, 12_000, 13_000,
    14_000, 15_000, 16_000, 18_000, 20_000, 22_000, 24_000, 28_000, 32_000, 40_000, 48_000, 64_000,
];
/// The full run's last pool address: the rest of the lab's /12 after
/// POOL_FIRST.
pub const POOL_LAST: Ipv4Addr = Ipv4Addr::new(10, 63, 255, 254);
/// Replies still counted after the last DISCOVER: an exchange is two round
/// trips and a lease write.
const DRAIN_MS: u64 = 500;
/// The first byte of every run's MACs (the generator adds a run id and the
/// machine's index): no reserved machine's.
const FIRST_MAC: &str = "0e:00:00:00:00:00";

/// How a run is sized.
pub struct Size {
    pub rates: Vec<u64>,
    pub duration_ms: u64,
    /// The pool's last address (from POOL_FIRST): room for every step's
    /// new leases.
    pub pool_last: Ipv4Addr,
}

/// Why a ramp ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Every rate asked for was clean.
    Exhausted,
    /// A step dropped more than MAX_DROPS_PERCENT.
    Drops,
    /// The generator could not keep up: the best figure is a floor.
    Generator,
    /// The next step's leases would not fit in what is left of the pool.
    PoolFull,
}

impl End {
    fn describe(self) -> &'static str {
        match self {
            End::Exhausted => "every rate tried was clean",
            End::Drops => "drops > 1%",
            End::Generator => "the generator could not keep up",
            End::PoolFull => "the pool would not hold the next step",
        }
    }
}

/// One rate against one server.
pub struct Step {
    pub report: PoolRateReport,
    /// The server core's busy time during the step, s.
    pub core_s: f64,
    /// Frames the server end's receive ring could not take (the client
    /// end's tx_dropped): lost before the server saw them.
    pub server_ring_drops: Option<u64>,
    /// Replies the generator end's receive ring could not take (the server
    /// end's tx_dropped): lost on the generator's side.
    pub client_ring_drops: Option<u64>,
}

impl Step {
    /// Something completed and at most MAX_DROPS_PERCENT of the DISCOVERs
    /// sent ended without an ACK.
    pub fn clean(&self) -> bool {
        self.report.acks > 0 && self.report.drops_pct() <= MAX_DROPS_PERCENT
    }
}

/// Whether the ramp goes on after `step`, and if not, why. Drops end it,
/// as the server's unless what the generator itself lost (replies it did
/// not read, REQUESTs it did not send) explains them. A clean step goes
/// on even when the sender fell a little behind (its core taken for a
/// moment): the server answered everything it was offered, and the table
/// shows the shortfall.
fn ramp_end(step: &Step) -> Option<End> {
    if step.clean() {
        return None;
    }
    let r = &step.report;
    let own = r.receive_dropped + r.requests_unsent + step.client_ring_drops.unwrap_or(0);
    let server_drops = r.drops().saturating_sub(own) as f64 * 100.0 / r.sent.max(1) as f64;
    if server_drops > MAX_DROPS_PERCENT {
        Some(End::Drops)
    } else {
        Some(End::Generator)
    }
}

pub struct Row {
    pub server: Server,
    pub result: Result<(Vec<Step>, End), String>,
}

/// Every server asked for, each on a fresh lab.
pub fn measure(dir: &Path, bins: &Bins, plan: &Plan, size: &Size, servers: &[Server]) -> Vec<Row> {
    servers
        .iter()
        .map(|&server| {
            let result = match server.unavailable() {
                Some(why) => Err(format!("not available: {why}")),
                None => one(server, dir, bins, plan, size).map_err(|e| format!("{e:#}")),
            };
            if let Err(e) = &result {
                eprintln!("bench: pool-wire: {}: {e}", server.name());
            }
            Row { server, result }
        })
        .collect()
}

/// Addresses in the pool-wire run's pool.
fn pool_size(last: Ipv4Addr) -> u64 {
    u64::from(u32::from(last) - u32::from(POOL_FIRST) + 1)
}

fn one(
    server: Server,
    dir: &Path,
    bins: &Bins,
    plan: &Plan,
    size: &Size,
) -> Result<(Vec<Step>, End)> {
    let work = dir.join(format!("pool-wire-{}", server.key()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let plan = Plan {
        pool_last: size.pool_last,
        ..plan.clone()
    };
    let mut bed = Testbed::new("poolwire", None)?;
    super::widen_addresses(&bed)?;
    bed.attach_client_pass(&bins.lab)?;
    if server != Server::StormbootXdp {
        bed.attach_server_pass(&bins.lab)?;
    }
    eprintln!("bench: pool-wire: {}: starting", server.name());
    let pid = server.start(&mut bed, &work, &plan, &bins.daemon)?;
    if !super::probe(&mut bed, &bins.lab, pid)? {
        bail!(
            "did not answer the probe within 30 s; its output: {}",
            std::fs::read_to_string(work.join("stderr.log")).unwrap_or_default()
        );
    }
    super::wire::napi_threads(&bed)?;
    let server_mac = interface_mac(&bed)?;

    let mut steps = Vec::new();
    let mut leased = 0u64;
    let mut end = End::Exhausted;
    for &rate in &size.rates {
        if leased + rate * size.duration_ms / 1000 > pool_size(size.pool_last) {
            end = End::PoolFull;
            break;
        }
        eprintln!("bench: pool-wire: {}: {rate}/s", server.name());
        let core0 = reports::core_busy_seconds(SERVER_CORE)?;
        let rings0 = (
            tx_dropped(&bed, Side::Client),
            tx_dropped(&bed, Side::Server),
        );
        let report = offer(&bed, &bins.lab, &server_mac, rate, size.duration_ms, &work)?;
        let core_s = reports::core_busy_seconds(SERVER_CORE)? - core0;
        let grew = |before: Option<u64>, side| {
            before
                .zip(tx_dropped(&bed, side))
                .map(|(a, b)| b.saturating_sub(a))
        };
        leased += report.sent;
        let step = Step {
            report,
            core_s,
            server_ring_drops: grew(rings0.0, Side::Client),
            client_ring_drops: grew(rings0.1, Side::Server),
        };
        let stop = ramp_end(&step);
        steps.push(step);
        if let Some(e) = stop {
            end = e;
            break;
        }
    }
    if !server.is_peer() {
        if let Some(stats) = super::stormboot_stats(&bed, &bins.daemon) {
            std::fs::write(work.join("stats.json"), stats)?;
        }
    }
    super::stop_server(&mut bed, pid, server, &work)?;
    Ok((steps, end))
}

/// The server end's MAC, where the relay sends.
fn interface_mac(bed: &Testbed) -> Result<String> {
    let mut ip = Command::new("ip");
    ip.args(["-j", "link", "show", SERVER_IF]);
    let out = bed.run(Side::Server, ip)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .context("`ip -j link show` printed no address")
}

/// `stormboot-lab rate --pool` on CLIENT_CPU at `rate`.
fn offer(
    bed: &Testbed,
    lab: &Path,
    server_mac: &str,
    rate: u64,
    duration_ms: u64,
    work: &Path,
) -> Result<PoolRateReport> {
    let mut c = Command::new("taskset");
    c.args(["-c", CLIENT_CPU]).arg(lab);
    c.args(["--log", "warn", "rate", "--pool", "--json"]);
    c.args(["--interface", CLIENT_IF, "--first-mac", FIRST_MAC]);
    c.args(["--relay", &RELAY_ADDR.to_string()]);
    c.args(["--server-id", &SERVER_ADDR.to_string()]);
    c.args(["--server-mac", server_mac]);
    c.args(["--rate", &rate.to_string()]);
    c.args(["--duration-ms", &duration_ms.to_string()]);
    c.args(["--drain-ms", &DRAIN_MS.to_string()]);
    let out = bed
        .run(Side::Client, c)
        .context("the rate generator failed")?;
    // Every count of the step and its per-second series, for reading a
    // row afterwards.
    std::fs::write(work.join(format!("pool-{rate}.json")), &out.stdout)?;
    reports::decode("the rate generator", &out.stdout)
}

/// The best clean exchange rate of a row, if any step was clean.
fn best(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.clean())
        .map(|s| s.report.exchanges_per_sec())
        .max_by(f64::total_cmp)
}

/// The tables for results.md.
pub fn markdown(rows: &[Row], size: &Size) -> String {
    let mut md = format!(
        "`stormboot-lab rate --pool` on CPU {CLIENT_CPU}: one DISCOVER per new machine at the \
         rate offered, relayed from {RELAY_ADDR} (giaddr) as perfdhcp's pool ramp relays, each \
         OFFER answered with its REQUEST (option 50 the offered address, option 54 the OFFER's \
         server) as it arrives; an exchange completes at its ACK. {} s per rate, no \
         retransmissions, replies counted up to {DRAIN_MS} ms after the last DISCOVER. Drops: \
         DISCOVERs without an ACK. A ramp ends at the first step with more than \
         {MAX_DROPS_PERCENT}% dropped, as the generator's when what it lost itself (replies its \
         socket or its end's ring dropped, REQUESTs not sent) explains the drops; \
         \"generator short\" says what it could not keep up with on any step. Server core: CPU \
         {SERVER_CORE}'s busy time in /proc/stat. Ring drops: frames a veth end's 256-frame \
         receive ring could not take (the other end's tx_dropped).\n\n",
        size.duration_ms as f64 / 1e3
    );
    md.push_str(
        "| server | offered/s | sent/s | exchanges/s | OFFERs | ACKs | NAKs | drops | at the server's receive ring | at the generator's receive ring | generator short | server core CPU per 1,000 exchanges (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ring = |d: Option<u64>| d.map_or("-".into(), |d| d.to_string());
    for row in rows {
        match &row.result {
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | not measured: {e} |||||||||||",
                    row.server.name()
                );
            }
            Ok((steps, _)) => {
                for s in steps {
                    let r = &s.report;
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {:.2}% | {} | {} | {} | {} |",
                        row.server.name(),
                        r.rate,
                        r.sent_per_sec(),
                        r.exchanges_per_sec(),
                        r.offers,
                        r.acks,
                        r.naks,
                        r.drops_pct(),
                        ring(s.server_ring_drops),
                        ring(s.client_ring_drops),
                        r.generator_short().unwrap_or_else(|| "-".into()),
                        reports::per_thousand_ms(s.core_s, r.acks)
                            .map_or("-".into(), |v| format!("{v:.1}")),
                    );
                }
            }
        }
    }
    md.push('\n');
    md.push_str(&summary(rows));
    md
}

/// Each server's best clean rate, and stormboot's against Kea's.
fn summary(rows: &[Row]) -> String {
    let mut md = format!(
        "| server | exchanges/s at <= {MAX_DROPS_PERCENT}% drops | ramp ended | vs Kea 2.2 (memfile) |\n|---|---|---|---|\n"
    );
    let kea = rows
        .iter()
        .find(|r| r.server == Server::Kea)
        .and_then(|r| best(&r.result.as_ref().ok()?.0));
    for row in rows {
        let Ok((steps, end)) = &row.result else {
            continue;
        };
        // Ended by the generator, the pool's size or the last rate: the
        // server was never seen to drop, so its figure is a floor.
        let floor = matches!(end, End::Generator | End::PoolFull | End::Exhausted);
        let mark = if floor { ">= " } else { "" };
        let (rate, ratio) = match best(steps) {
            Some(v) => (
                format!("{mark}{v:.0}"),
                kea.map_or("-".into(), |k| format!("{mark}{:.2}x", v / k)),
            ),
            None => ("never clean".into(), "-".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {rate} | {} | {ratio} |",
            row.server.name(),
            end.describe()
        );
    }
    md
}

/// The smoke run fails unless every server completed exchanges.
pub fn smoke_verdict(rows: &[Row]) -> Result<()> {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| match &row.result {
            Err(e) => Some(format!("{}: {e}", row.server.name())),
            Ok((steps, _)) if steps.iter().all(|s| s.report.acks == 0) => Some(format!(
                "{}: no exchange completed ({} steps)",
                row.server.name(),
                steps.len()
            )),
            Ok(_) => None,
        })
        .collect();
    if !failures.is_empty() {
        bail!("pool-wire: {}", failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: u64, sent: u64, acks: u64) -> Step {
        Step {
            report: PoolRateReport {
                rate,
                offered: sent,
                sent,
                offers: acks,
                requests: acks,
                acks,
                send_ms: 1000.0,
                ..PoolRateReport::default()
            },
            core_s: 0.5,
            server_ring_drops: Some(0),
            client_ring_drops: Some(0),
        }
    }

    #[test]
    fn a_ramp_ends_at_drops_past_the_perfdhcp_threshold_or_a_short_generator() {
        assert_eq!(ramp_end(&step(1000, 1000, 990)), None);
        assert_eq!(ramp_end(&step(1000, 1000, 989)), Some(End::Drops));
        assert_eq!(ramp_end(&step(1000, 1000, 0)), Some(End::Drops));
        // 2% lost, all of it replies the generator's socket dropped.
        let mut short = step(1000, 1000, 980);
        short.report.receive_dropped = 20;
        assert_eq!(ramp_end(&short), Some(End::Generator));
        // A sender that fell behind, with every DISCOVER it sent answered:
        // the ramp goes on.
        let mut unsent = step(1000, 955, 955);
        unsent.report.offered = 1000;
        assert!(unsent.report.generator_short().is_some());
        assert_eq!(ramp_end(&unsent), None);
        // 5% lost, of which the generator's end dropped 45 replies at its
        // ring: 0.5% is the server's, so the step measured the generator.
        let mut ring = step(1000, 1000, 950);
        ring.client_ring_drops = Some(45);
        assert_eq!(ramp_end(&ring), Some(End::Generator));
        // The same with 30 dropped there: 2% is the server's.
        ring.client_ring_drops = Some(30);
        assert_eq!(ramp_end(&ring), Some(End::Drops));
        // A collapse beside a sender a little late is the server's.
        let mut late = step(1000, 990, 200);
        late.report.offered = 1000;
        assert_eq!(ramp_end(&late), Some(End::Drops));
    }

    #[test]
    fn stormboot_is_compared_with_kea_at_their_best_clean_rates() {
        let rows = [
            Row {
                server: Server::StormbootXdp,
                result: Ok((
                    vec![step(10_000, 10_000, 10_000), step(24_000, 24_000, 23_000)],
                    End::Drops,
                )),
            },
            Row {
                server: Server::Kea,
                result: Ok((
                    vec![step(4_000, 4_000, 4_000), step(6_000, 6_000, 5_000)],
                    End::Drops,
                )),
            },
            Row {
                server: Server::Dnsmasq,
                result: Err("not available".into()),
            },
        ];
        let md = summary(&rows);
        assert!(
            md.contains("| stormboot (XDP, SQLite) | 10000 | drops > 1% | 2.50x |"),
            "{md}"
        );
        assert!(
            md.contains("| Kea 2.2 (memfile) | 4000 | drops > 1% | 1.00x |"),
            "{md}"
        );
        assert!(!md.contains("dnsmasq"), "{md}");
        assert!(smoke_verdict(&rows)
            .unwrap_err()
            .to_string()
            .contains("dnsmasq"));
    }

    #[test]
    fn the_pool_holds_a_full_ramp_of_a_fast_server() {
        // A server clean up to 24,000/s at 3 s per step leases this many.
        let leased: u64 = RATES.iter().take_while(|&&r| r <= 24_000).sum::<u64>() * 3;
        let size = pool_size(POOL_LAST);
        assert!(size >= leased, "{size} < {leased}");
    }
}
