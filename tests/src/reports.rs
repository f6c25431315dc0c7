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
}

impl StormReport {
    pub fn all_bound(&self) -> bool {
        self.bound == self.machines
    }
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
    fn percentiles_by_nearest_rank() {
        let s = Stat::of((1..=100).collect());
        assert_eq!(
            (s.changes, s.p50_us, s.p99_us, s.max_us),
            (100, 51, 99, 100)
        );
        assert_eq!(Stat::of(vec![]), Stat::default());
    }
}
