//! The lab's reports, read back typed (the structs are the lab's own, in
//! `stormboot_testbed::reports`, which writes them), and the server
//! process's CPU time.

pub use stormboot_testbed::reports::{
    core_busy_seconds, cpu_seconds, decode, ApiReport, ChainReport, DownloadReport, OmapiReport,
    RateReport, StormReport, XdpCase, CHAIN_PHASES,
};

/// CPU milliseconds per 1,000 exchanges; None when nothing was exchanged.
pub fn per_thousand_ms(cpu_seconds: f64, exchanges: u64) -> Option<f64> {
    (exchanges > 0).then(|| cpu_seconds * 1e3 / exchanges as f64 * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_scaled_to_a_thousand_exchanges() {
        assert_eq!(per_thousand_ms(0.5, 10_000), Some(50.0));
        assert_eq!(per_thousand_ms(0.5, 0), None);
    }
}
