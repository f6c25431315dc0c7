//! The benchmark's results as markdown: absolute figures and ratios to the
//! best peer, then every perfdhcp step.

use std::fmt::Write as _;

use super::controlplane::ControlPlane;
use super::perfdhcp::{self, RampEnd, Step};
use super::reports;
use super::{Measured, Outcome};

pub struct Input<'a> {
    pub outcomes: &'a [Outcome],
    pub xdp: &'a [reports::XdpCase],
    pub control_plane: Result<&'a ControlPlane, String>,
    pub machines: u32,
    pub window: u32,
    pub step: &'a str,
    pub command: &'a str,
}

fn ok(o: &Outcome) -> Option<&Measured> {
    o.result.as_ref().ok()
}

/// `value / best peer`, or "-" when there is no peer figure.
fn ratio(value: f64, best_peer: Option<f64>) -> String {
    match best_peer {
        Some(b) if b > 0.0 => format!("{:.2}x", value / b),
        _ => "-".into(),
    }
}

fn best_peer(outcomes: &[Outcome], figure: impl Fn(&Measured) -> Option<f64>) -> Option<f64> {
    outcomes
        .iter()
        .filter(|o| o.server.is_peer())
        .filter_map(|o| figure(ok(o)?))
        .max_by(f64::total_cmp)
}

/// Completed exchanges per second of a storm where every machine was bound.
fn storm_rate(m: &Measured) -> Option<f64> {
    m.storm.all_bound().then_some(m.storm.exchanges_per_sec)
}

pub fn markdown(i: &Input) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# stormboot benchmark\n\nMade by `{}`.\n", i.command);

    let _ = writeln!(t, "## XDP program alone (BPF_PROG_TEST_RUN)\n");
    let _ = writeln!(
        t,
        "| case | mode | action | ns/packet | Mpps per core |\n|---|---|---|---|---|"
    );
    for c in i.xdp {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.1} | {:.2} |",
            c.name, c.mode, c.action, c.ns_per_packet, c.mpps_per_core
        );
    }
    let _ = writeln!(
        t,
        "\nrepeat=1: one BPF_PROG_TEST_RUN call per frame, the pass-only program's time on \
         the same frame subtracted. live frames: BPF_F_TEST_XDP_LIVE_FRAMES, one batch of \
         fresh frames per call on a veth, each XDP_TX frame really sent, an XDP_TX-only \
         program's time subtracted. Every figure is a difference of two medians: the \
         `method` of each case in `stormboot-lab bench-xdp` has both."
    );

    let _ = writeln!(
        t,
        "\n## Boot storm: {} known machines, full DORA, RFC 2131 retransmission (storm client, {} in flight)\n",
        i.machines, i.window
    );
    let _ = writeln!(
        t,
        "| server | bound | all bound in (s) | exchanges/s | vs best peer | lost | retransmits | latency p50 / p95 / p99 / max (ms) | server CPU per 1,000 exchanges (ms) |\n|---|---|---|---|---|---|---|---|---|"
    );
    let peer = best_peer(i.outcomes, storm_rate);
    for o in i.outcomes {
        let Some(m) = ok(o) else {
            let _ = writeln!(t, "| {} | {} | | | | | | | |", o.server.name(), failure(o));
            continue;
        };
        let s = &m.storm;
        let all = s.all_bound();
        let _ = writeln!(
            t,
            "| {} | {} / {} | {} | {:.0} | {} | {} | {} | {:.2} / {:.2} / {:.2} / {:.1} | {} |",
            o.server.name(),
            s.bound,
            s.machines,
            if all {
                format!("{:.3}", s.elapsed_ms / 1e3)
            } else {
                "not all".into()
            },
            s.exchanges_per_sec,
            if all {
                ratio(s.exchanges_per_sec, peer)
            } else {
                "-".into()
            },
            s.lost,
            s.retransmits,
            s.latency_p50_ms,
            s.latency_p95_ms,
            s.latency_p99_ms,
            s.latency_max_ms,
            m.storm_cpu_s
                .and_then(|c| reports::per_thousand_ms(c, u64::from(s.bound)))
                .map_or("-".into(), |c| format!("{c:.0}"))
        );
    }
    let _ = writeln!(
        t,
        "\n\"vs best peer\" compares the time to the last bind, which one lost packet \
         stretches by RFC 2131's first retransmission wait (4 s); the latency columns are \
         per machine (first DISCOVER to ACK). Server CPU is the server process's user + \
         system time (every thread) during the storm, from /proc/PID/stat, in 10 ms ticks; \
         XDP's own work runs in the kernel's softirq and is not in it (the XDP program alone \
         table has its cost per packet).\n"
    );
    let _ = writeln!(t, "What is durable when:\n");
    for o in i.outcomes.iter().filter(|o| ok(o).is_some()) {
        if let Some(d) = o.server.durability() {
            let _ = writeln!(t, "- {}: {d}.", o.server.name());
        }
    }
    t.push('\n');

    for (title, pick) in [
        (
            "Reservations: perfdhcp with the reserved MACs (`-M`), relayed",
            (|m: &Measured| &m.reservations) as fn(&Measured) -> &(Vec<Step>, RampEnd),
        ),
        (
            "New pool leases, durable: perfdhcp with new MACs, relayed",
            |m: &Measured| &m.pool,
        ),
    ] {
        let _ = writeln!(
            t,
            "\n## {title}\n\nRates ramp up ({}) until more than {}% of either exchange drops; the figure is the highest clean step.\n",
            i.step,
            perfdhcp::MAX_DROPS_PERCENT
        );
        let _ = writeln!(
            t,
            "| server | highest clean rate (asked) | exchanges/s | vs best peer | drops DO / RA % | avg delay DO / RA (ms) | ramp ended |\n|---|---|---|---|---|---|---|"
        );
        let peer = best_peer(i.outcomes, |m| {
            perfdhcp::best(&pick(m).0).map(Step::exchanges_per_sec)
        });
        for o in i.outcomes {
            let Some(m) = ok(o) else {
                let _ = writeln!(t, "| {} | {} | | | | | |", o.server.name(), failure(o));
                continue;
            };
            let (steps, end) = pick(m);
            match perfdhcp::best(steps) {
                Some(b) => {
                    let _ = writeln!(
                        t,
                        "| {} | {} | {:.0} | {} | {:.3} / {:.3} | {:.2} / {:.2} | {} |",
                        o.server.name(),
                        b.rate,
                        b.exchanges_per_sec(),
                        ratio(b.exchanges_per_sec(), peer),
                        b.do_drops_percent,
                        b.ra_drops_percent,
                        b.do_avg_delay_ms,
                        b.ra_avg_delay_ms,
                        ended(steps, *end)
                    );
                }
                None => {
                    let _ = writeln!(
                        t,
                        "| {} | none clean | | | | | {} |",
                        o.server.name(),
                        ended(steps, *end)
                    );
                }
            }
        }
    }

    let _ = writeln!(t, "\n## Control plane\n");
    match &i.control_plane {
        Ok(cp) => t.push_str(&cp.markdown()),
        Err(e) => {
            let _ = writeln!(t, "Not measured: {e}");
        }
    }

    let _ = writeln!(
        t,
        "\n## Every perfdhcp step\n\nServer replies / requests: what stormboot's counters say it sent during the step, beside the DISCOVERs and REQUESTs perfdhcp sent; equal numbers with drops mean the replies were lost on the way back (veth, perfdhcp's socket), not in the server. Client buffer drops: replies the client namespace's kernel dropped because perfdhcp's socket buffer was full (Udp RcvbufErrors).\n\n| server | scenario | rate asked | DISCOVERs sent/s | exchanges/s | drops DO / RA % | avg delay DO / RA (ms) | server replies / requests | client buffer drops |\n|---|---|---|---|---|---|---|---|---|"
    );
    for o in i.outcomes {
        let Some(m) = ok(o) else { continue };
        for (scenario, steps) in [("reservations", &m.reservations.0), ("pool", &m.pool.0)] {
            for s in steps {
                let _ = writeln!(
                    t,
                    "| {} | {scenario} | {} | {:.0} | {:.0} | {:.3} / {:.3} | {:.2} / {:.2} | {} | {} |",
                    o.server.name(),
                    s.rate,
                    s.offered_per_sec(),
                    s.exchanges_per_sec(),
                    s.do_drops_percent,
                    s.ra_drops_percent,
                    s.do_avg_delay_ms,
                    s.ra_avg_delay_ms,
                    s.server_replies
                        .map_or("-".into(), |r| format!("{r} / {}", s.sent + s.requests)),
                    s.client_rcvbuf_drops
                        .map_or("-".into(), |d| d.to_string())
                );
            }
        }
    }
    t
}

fn failure(o: &Outcome) -> String {
    match &o.result {
        Ok(_) => String::new(),
        // One line: a table cell.
        Err(e) => e.lines().next().unwrap_or("").replace('|', "/"),
    }
}

/// Why a ramp ended, and at which rate.
pub(super) fn ended(steps: &[Step], end: RampEnd) -> String {
    match (end, steps.last()) {
        (RampEnd::Exhausted, _) | (_, None) => end.describe().into(),
        (_, Some(last)) => format!("{} at {}/s", end.describe(), last.rate),
    }
}

#[cfg(test)]
mod tests {
    use super::super::servers::Server;
    use super::*;

    fn step(rate: u32, acks: u64, drops: f64) -> Step {
        Step {
            rate,
            period: 1.0,
            sent: u64::from(rate),
            ra_drops_percent: drops,
            acks,
            ..Step::default()
        }
    }

    #[test]
    fn ratios_are_to_the_best_peer() {
        let measured = |storm_rate: f64, res: Vec<Step>| Measured {
            storm: reports::StormReport {
                machines: 10,
                bound: 10,
                exchanges_per_sec: storm_rate,
                elapsed_ms: 5.0,
                latency_p50_ms: 0.25,
                latency_p95_ms: 0.5,
                latency_p99_ms: 4000.0,
                latency_max_ms: 4001.0,
                retransmits: 1,
                ..Default::default()
            },
            storm_cpu_s: Some(0.02),
            reservations: (res, RampEnd::Drops),
            pool: (vec![step(1000, 1000, 0.0)], RampEnd::Exhausted),
        };
        let outcomes = [
            Outcome {
                server: Server::StormbootXdp,
                result: Ok(measured(
                    40_000.0,
                    vec![step(32000, 32000, 0.0), step(48000, 40000, 5.0)],
                )),
            },
            Outcome {
                server: Server::Kea,
                result: Ok(measured(2_000.0, vec![step(2000, 2000, 0.5)])),
            },
            Outcome {
                server: Server::Dnsmasq,
                result: Ok(measured(4_000.0, vec![step(4000, 4000, 0.1)])),
            },
            Outcome {
                server: Server::Coredhcp,
                result: Err("not available: /usr/bin/coredhcp missing".into()),
            },
        ];
        let md = markdown(&Input {
            outcomes: &outcomes,
            xdp: &[reports::XdpCase {
                name: "discover->offer".into(),
                mode: "repeat=1".into(),
                action: "XDP_TX".into(),
                ns_per_packet: 250.0,
                mpps_per_core: 4.0,
                runs: 100,
                method: String::new(),
            }],
            control_plane: Err("skipped".into()),
            machines: 10,
            window: 4,
            step: "1 s per rate",
            command: "cargo xtask bench",
        });
        // Storm: 40,000 / 4,000; reservations: 32,000 / 4,000.
        assert!(md.contains("| 40000 | 10.00x |"), "{md}");
        // Beside the ratio: the latency distribution, the retransmits and
        // the server's CPU (20 ms for 10 exchanges: 2,000 ms per 1,000).
        assert!(
            md.contains("| 0 | 1 | 0.25 / 0.50 / 4000.00 / 4001.0 | 2000 |"),
            "{md}"
        );
        assert!(
            md.contains("| stormboot (XDP, SQLite) | 32000 | 32000 | 8.00x |"),
            "{md}"
        );
        assert!(
            md.contains("| Kea 2.2 (memfile) | 2000 | 2000 | 0.50x |"),
            "{md}"
        );
        assert!(md.contains("drops > 1% at 48000/s"), "{md}");
        assert!(md.contains("| coredhcp | not available"), "{md}");
        // The XDP table says how each figure was run.
        assert!(
            md.contains("| discover->offer | repeat=1 | XDP_TX | 250.0 | 4.00 |"),
            "{md}"
        );
        // The XDP row does not claim its ACKs wait for the disk.
        assert!(
            md.contains("- stormboot (XDP, SQLite): reserved machines are answered by XDP, which sends the ACK first"),
            "{md}"
        );
    }
}
