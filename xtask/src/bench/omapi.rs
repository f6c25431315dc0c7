//! OMAPI: hosts created per second over one connection, and from an OMAPI
//! create to the XDP program answering the machine, with the daemon
//! already serving many reservations. Runs `stormboot-lab bench-omapi`
//! against a daemon in the lab and keeps its report.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use stormboot_testbed::labconfig::{LabConfig, Machines};
use stormboot_testbed::{Side, Testbed, CLIENT_IF};

use super::reports::{self, OmapiReport};
use super::Bins;

/// `stormboot-test-key-0123456789ab`, base64: a bench key, not a secret.
const SECRET: &str = "c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg==";

/// What a run is sized to.
pub struct Size {
    /// Reservations the daemon serves before the first create.
    pub reservations: u32,
    /// Hosts created for the rate.
    pub hosts: u32,
    /// Create/answer/delete cycles.
    pub cycles: u32,
}

/// The control plane's and OMAPI's rack: machine i has MAC 0a:00:00:00:00:00
/// + i and address 10.64.0.0 + i.
pub fn big_rack(count: u32) -> Machines {
    Machines {
        count,
        first_mac: [0x0a, 0, 0, 0, 0, 0],
        first_ip: std::net::Ipv4Addr::new(10, 64, 0, 0),
        hostname: "node",
    }
}

pub fn measure(dir: &Path, bins: &Bins, size: &Size) -> Result<OmapiReport> {
    let work = dir.join("omapi");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    // OMAPI hosts from 10.96.0.1, the probe at 10.120.0.1, all in the
    // rack's 10.0.0.0/8.
    let mut c = LabConfig::new(big_rack(size.reservations), "10.0.0.0/8");
    c.sections = format!(
        "[omapi]\nleases_export = \"dhcpd.leases\"\nconf_export = \"dhcpd.conf\"\n\n\
         [[omapi.key]]\nname = \"omkey\"\nalgorithm = \"hmac-md5\"\nsecret = \"{SECRET}\"\n"
    );
    let config = c.write(&work)?;
    let mut bed = Testbed::new("benchom", None)?;
    bed.attach_client_pass(&bins.lab)?;
    let pid = super::start_stormboot(
        &mut bed,
        &bins.daemon,
        &config,
        &work,
        Duration::from_secs(120),
    )?;
    let mut probe = Command::new(&bins.lab);
    probe
        .args([
            "--log",
            "warn",
            "bench-omapi",
            "--json",
            "--interface",
            CLIENT_IF,
        ])
        .args(["--secret", SECRET])
        .args(["--hosts", &size.hosts.to_string()])
        .args(["--cycles", &size.cycles.to_string()])
        .arg("--netns")
        .arg(bed.ns_path(Side::Client));
    let out = bed
        .run(Side::Server, probe)
        .context("stormboot-lab bench-omapi")?;
    bed.stop(pid)?;
    reports::decode("bench-omapi", &out.stdout)
}

/// The report's section for `r`.
pub fn markdown(r: &OmapiReport, size: &Size) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} reservations served (XDP dataplane); {} hosts created one after another over one \
         signed (HMAC-MD5) OMAPI connection, each reply awaited: **{:.0} hosts/s** (round trip \
         p50 {} µs, p99 {} µs; each create is durable, in the XDP maps and in the leases export \
         before its reply).\n",
        size.reservations, r.hosts, r.creates_per_second, r.create_rtt.p50_us, r.create_rtt.p99_us,
    );
    let _ = writeln!(
        t,
        "From sending an OMAPI create to the first DISCOVER answered by XDP with the host, {} \
         cycles: p50 {} µs, p99 {} µs, max {} µs ({} seen by the first probe, {} timeouts).",
        r.visible.changes,
        r.visible.p50_us,
        r.visible.p99_us,
        r.visible.max_us,
        r.seen_by_first_probe,
        r.timeouts,
    );
    t
}

#[cfg(test)]
mod tests {
    use super::super::reports::OmapiReport;
    use stormboot_testbed::reports::Stat;

    #[test]
    fn the_section_gives_the_rate_and_the_latency() {
        let r = OmapiReport {
            hosts: 100,
            creates_per_second: 1234.4,
            create_rtt: Stat {
                p50_us: 700,
                p99_us: 900,
                ..Stat::default()
            },
            visible: Stat {
                changes: 5,
                p50_us: 10,
                p99_us: 20,
                max_us: 30,
            },
            seen_by_first_probe: 5,
            ..OmapiReport::default()
        };
        let size = super::Size {
            reservations: 1000,
            hosts: 100,
            cycles: 5,
        };
        let t = super::markdown(&r, &size);
        assert!(t.contains("**1234 hosts/s**"), "{t}");
        assert!(t.contains("p50 10 µs, p99 20 µs"), "{t}");
    }
}
