//! The JSON reports of `stormboot storm` and `stormboot bench-api`, read
//! back as typed structs, and the server process's CPU time.
//!
//! These mirror `stormboot::storm::StormReport` and
//! `stormboot::apibench::Report` field for field (the fields the bench
//! reads): xtask cannot depend on the daemon's crate, whose build script
//! needs the eBPF toolchain that `cargo xtask setup` installs. A field
//! renamed or dropped on the daemon's side makes decoding fail with its
//! name, in the smoke run of `cargo xtask test`.

use anyhow::{Context, Result};
use serde::Deserialize;

/// `stormboot storm --json`.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Storm {
    pub machines: u64,
    pub bound: u64,
    pub lost: u64,
    pub retransmits: u64,
    /// Replies refused for a bad IPv4 or UDP checksum.
    pub bad_checksum: u64,
    /// First send to last ACK.
    pub elapsed_ms: f64,
    pub exchanges_per_sec: f64,
    /// Per bound machine, first DISCOVER to ACK.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

impl Storm {
    pub fn all_bound(&self) -> bool {
        self.bound == self.machines
    }
}

/// One kind of change in `stormboot bench-api --json`, microseconds.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ApiStat {
    pub changes: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// `stormboot bench-api --json`.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Api {
    /// Reservations loaded before the measured changes.
    pub reservations: u64,
    /// Request sent to the first DISCOVER answered the new way, all kinds.
    pub visible: ApiStat,
    pub added: ApiStat,
    pub changed: ApiStat,
    pub removed: ApiStat,
    /// The API's own answer time (request sent to its 200).
    pub api: ApiStat,
    pub timeouts: u64,
    /// Changes answered the new way before the API's 200 arrived.
    pub seen_before_200: u64,
}

/// Decodes a report, naming it in the error.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &str, json: &[u8]) -> Result<T> {
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

/// User plus system CPU time of process `pid` (all its threads) so far,
/// in seconds: fields 14 and 15 of /proc/PID/stat, in clock ticks.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
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

/// CPU milliseconds per 1,000 exchanges; None when nothing was exchanged.
pub fn per_thousand_ms(cpu_seconds: f64, exchanges: u64) -> Option<f64> {
    (exchanges > 0).then(|| cpu_seconds * 1e3 / exchanges as f64 * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        // A name with a space and a ')' of its own, as a thread may have.
        let line = "4242 (kea dhcp4) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 37 0 0 20 0 3 0 123 456 789";
        assert_eq!(stat_ticks(line), Some(287));
        assert_eq!(stat_ticks("garbage"), None);
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(own >= 0.0);
    }

    #[test]
    fn cpu_is_scaled_to_a_thousand_exchanges() {
        assert_eq!(per_thousand_ms(0.5, 10_000), Some(50.0));
        assert_eq!(per_thousand_ms(0.5, 0), None);
    }

    #[test]
    fn a_storm_report_reads_back_typed() {
        let json = br#"{"machines":10,"bound":9,"lost":1,"naks":0,"wrong_address":0,
            "bad_checksum":0,"retransmits":4,"elapsed_ms":4100.0,"exchanges_per_sec":2.2,
            "latency_p50_ms":1.0,"latency_p95_ms":2.0,"latency_p99_ms":4003.0,
            "latency_max_ms":4005.0,"flood_sent":0}"#;
        let s: Storm = decode("storm", json).unwrap();
        assert_eq!((s.bound, s.retransmits, s.latency_p95_ms), (9, 4, 2.0));
        assert!(!s.all_bound());
        // A report without a field the bench reads is refused, by name.
        let old =
            br#"{"machines":1,"bound":1,"lost":0,"retransmits":0,"bad_checksum":0,"elapsed_ms":1.0,
            "exchanges_per_sec":1.0,"latency_p50_ms":1.0,"latency_p99_ms":1.0,
            "latency_max_ms":1.0}"#;
        let err = decode::<Storm>("storm", old).unwrap_err();
        assert!(format!("{err:#}").contains("latency_p95_ms"), "{err:#}");
    }
}
