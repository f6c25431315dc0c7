//! perfdhcp steps: reading its report, and when a ramp of rising rates
//! stops.

use anyhow::{bail, Result};

/// Drops above this share (of either exchange) end a ramp.
pub const MAX_DROPS_PERCENT: f64 = 1.0;
/// A step whose DISCOVERs went out at less than this share of the asked
/// rate measured perfdhcp, not the server: the ramp stops there.
const GENERATOR_SHARE: f64 = 0.9;

/// One perfdhcp run at one rate.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Step {
    /// Rate asked for (DORA exchanges per second).
    pub rate: u32,
    /// Seconds the step lasted (perfdhcp `-p`).
    pub period: f64,
    /// DISCOVERs sent.
    pub sent: u64,
    pub do_drops_percent: f64,
    pub ra_drops_percent: f64,
    pub do_avg_delay_ms: f64,
    pub ra_avg_delay_ms: f64,
    /// ACKs received: completed exchanges.
    pub acks: u64,
    /// REQUESTs sent.
    pub requests: u64,
    /// Replies the server says it sent during the step (stormboot's
    /// counters), to tell the server's losses from the way back's.
    pub server_replies: Option<u64>,
    /// Datagrams the client namespace's kernel dropped for a full socket
    /// receive buffer during the step (Udp RcvbufErrors): replies that
    /// reached perfdhcp's host but not perfdhcp.
    pub client_rcvbuf_drops: Option<u64>,
}

impl Step {
    /// Drops within bounds and something answered.
    pub fn clean(&self) -> bool {
        self.acks > 0
            && self.do_drops_percent <= MAX_DROPS_PERCENT
            && self.ra_drops_percent <= MAX_DROPS_PERCENT
    }

    /// Completed exchanges per second.
    pub fn exchanges_per_sec(&self) -> f64 {
        if self.period > 0.0 {
            self.acks as f64 / self.period
        } else {
            0.0
        }
    }

    /// DISCOVERs per second that actually went out: the offered rate.
    pub fn offered_per_sec(&self) -> f64 {
        if self.period > 0.0 {
            self.sent as f64 / self.period
        } else {
            0.0
        }
    }

    /// perfdhcp could not send at the asked rate.
    pub fn generator_limited(&self) -> bool {
        self.offered_per_sec() < GENERATOR_SHARE * f64::from(self.rate)
    }
}

/// Why a ramp ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RampEnd {
    /// Every rate asked for was clean.
    Exhausted,
    /// A step dropped more than [`MAX_DROPS_PERCENT`].
    Drops,
    /// perfdhcp could not send at the asked rate: the figure is a floor.
    Generator,
}

impl RampEnd {
    pub fn describe(self) -> &'static str {
        match self {
            RampEnd::Exhausted => "every rate tried was clean",
            RampEnd::Drops => "drops > 1%",
            RampEnd::Generator => "perfdhcp could not send faster",
        }
    }
}

/// Whether the ramp goes on after `step`, and if not, why.
pub fn ramp_end(step: &Step) -> Option<RampEnd> {
    if !step.clean() {
        Some(RampEnd::Drops)
    } else if step.generator_limited() {
        Some(RampEnd::Generator)
    } else {
        None
    }
}

/// The highest clean step.
pub fn best(steps: &[Step]) -> Option<&Step> {
    steps
        .iter()
        .filter(|s| s.clean())
        .max_by(|a, b| a.exchanges_per_sec().total_cmp(&b.exchanges_per_sec()))
}

/// The numbers of perfdhcp's report for a run of `period` seconds at `rate`.
pub fn parse(rate: u32, period: f64, out: &str) -> Result<Step> {
    let r = stormboot_testbed::perfdhcp::parse(out);
    if !r.has_request_ack {
        bail!("perfdhcp printed no REQUEST-ACK statistics:\n{out}");
    }
    Ok(Step {
        rate,
        period,
        sent: r.discover_offer.sent,
        requests: r.request_ack.sent,
        acks: r.request_ack.received,
        do_drops_percent: r.discover_offer.drops_percent,
        ra_drops_percent: r.request_ack.drops_percent,
        do_avg_delay_ms: r.discover_offer.avg_delay_ms,
        ra_avg_delay_ms: r.request_ack.avg_delay_ms,
        ..Step::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Rate: 1998.87 4-way exchanges/second, expected rate: 2000\n\
        ***Statistics for: DISCOVER-OFFER***\nsent packets: 4000\nreceived packets: 3999\ndrops: 1\n\
        drops ratio: 0.025 %\nmin delay: 0.1 ms\navg delay: 1.155 ms\n\
        ***Statistics for: REQUEST-ACK***\nsent packets: 3999\nreceived packets: 3998\ndrops: 1\n\
        drops ratio: 0.010 %\navg delay: 0.998 ms\n";

    #[test]
    fn report_is_read() {
        let s = parse(2000, 2.0, REPORT).unwrap();
        assert_eq!((s.sent, s.requests, s.acks), (4000, 3999, 3998));
        assert!((s.do_drops_percent - 0.025).abs() < 1e-9);
        assert!((s.ra_drops_percent - 0.010).abs() < 1e-9);
        assert!((s.do_avg_delay_ms - 1.155).abs() < 1e-9);
        assert!((s.ra_avg_delay_ms - 0.998).abs() < 1e-9);
        assert_eq!(s.exchanges_per_sec(), 1999.0);
        assert!(s.clean() && !s.generator_limited());
        assert_eq!(ramp_end(&s), None);
        assert!(parse(1, 1.0, "nothing").is_err());
    }

    #[test]
    fn ramps_end_on_drops_or_a_slow_generator() {
        let ok = parse(2000, 2.0, REPORT).unwrap();
        let dropping = Step {
            ra_drops_percent: 1.5,
            ..ok.clone()
        };
        assert_eq!(ramp_end(&dropping), Some(RampEnd::Drops));
        let silent = Step {
            acks: 0,
            ..ok.clone()
        };
        assert_eq!(ramp_end(&silent), Some(RampEnd::Drops));
        let slow = Step {
            rate: 8000,
            ..ok.clone()
        };
        assert_eq!(ramp_end(&slow), Some(RampEnd::Generator));
        let steps = [ok.clone(), dropping];
        assert_eq!(best(&steps), Some(&ok));
    }

    #[test]
    fn nothing_sent_reads_as_all_dropped() {
        let out = "***Statistics for: DISCOVER-OFFER***\nsent packets: 0\ndrops ratio: nan %\n\
                   ***Statistics for: REQUEST-ACK***\nsent packets: 0\nreceived packets: 0\ndrops ratio: nan %\n";
        let s = parse(100, 1.0, out).unwrap();
        assert_eq!(s.do_drops_percent, 100.0);
        assert!(!s.clean());
    }
}
