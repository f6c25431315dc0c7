//! The lab's reports, read back typed (the structs are the lab's own, in
//! `stormboot_testbed::reports`, which writes them), and the server
//! process's CPU time.

use anyhow::{Context, Result};
pub use stormboot_testbed::reports::{decode, ApiReport, OmapiReport, StormReport, XdpCase};

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
}
