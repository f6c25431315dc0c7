//! `cargo xtask bench`: measures side by side, in one run, on the same lab
//! and the same CPU pinning, how fast each DHCP server hands out new pool
//! leases with durable storage: stormboot (userspace dataplane, SQLite
//! with group commit) and Kea 2.2 (memfile, persisted). perfdhcp ramps the
//! rate until either exchange drops more than 1%; the highest clean rate
//! is each server's figure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use stormboot_testbed::{wait_for, Side, Testbed, CLIENT_IF};

/// perfdhcp's address: it acts as a relay (giaddr), as in a real rack.
const CLIENT_ADDR: &str = "10.50.0.2/24";
/// Big enough that no ramp runs out of addresses: 786,431 of them.
const SUBNET: &str = "10.48.0.0/12";
const POOL_FIRST: &str = "10.52.0.0";
const POOL_LAST: &str = "10.63.255.254";
/// Rates (4-way exchanges per second) tried in turn.
const RATES: &[u32] = &[
    1000, 2000, 4000, 6000, 8000, 10000, 12000, 16000, 20000, 24000,
];
/// Drops above this share end a ramp.
const MAX_DROPS_PERCENT: f64 = 1.0;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds per rate step.
    #[arg(long, default_value_t = 5)]
    period: u32,
    /// A short run (1 s steps, two rates) that checks the harness works.
    #[arg(long)]
    smoke: bool,
    /// Where results go.
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
}

/// One perfdhcp step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    pub rate: u32,
    pub achieved: f64,
    pub do_drops_percent: f64,
    pub ra_drops_percent: f64,
    pub ra_avg_delay_ms: f64,
    pub acks: u64,
}

impl Step {
    fn clean(&self) -> bool {
        self.acks > 0
            && self.do_drops_percent <= MAX_DROPS_PERCENT
            && self.ra_drops_percent <= MAX_DROPS_PERCENT
    }
}

/// The numbers of perfdhcp's report.
pub fn parse_perfdhcp(rate: u32, out: &str) -> Result<Step> {
    let mut s = Step {
        rate,
        ..Step::default()
    };
    let mut section = "";
    for line in out.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Rate:") {
            s.achieved = rest
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
        } else if line.starts_with("***Statistics for: DISCOVER-OFFER") {
            section = "do";
        } else if line.starts_with("***Statistics for: REQUEST-ACK") {
            section = "ra";
        } else if let Some(v) = line.strip_prefix("drops ratio:") {
            let pct: f64 = v
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse()
                .unwrap_or(100.0);
            match section {
                "do" => s.do_drops_percent = pct,
                "ra" => s.ra_drops_percent = pct,
                _ => {}
            }
        } else if let Some(v) = line.strip_prefix("received packets:") {
            if section == "ra" {
                s.acks = v.trim().parse().unwrap_or(0);
            }
        } else if let Some(v) = line.strip_prefix("avg delay:") {
            if section == "ra" {
                s.ra_avg_delay_ms = v
                    .trim()
                    .trim_end_matches("ms")
                    .trim()
                    .parse()
                    .unwrap_or(0.0);
            }
        }
    }
    if !out.contains("***Statistics for: REQUEST-ACK") {
        bail!("perfdhcp printed no REQUEST-ACK statistics:\n{out}");
    }
    Ok(s)
}

enum Server {
    Stormboot,
    Kea,
}

impl Server {
    fn name(&self) -> &'static str {
        match self {
            Server::Stormboot => "stormboot (userspace, SQLite)",
            Server::Kea => "Kea 2.2 (memfile)",
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::setup::require_root("the benchmark creates network namespaces")?;
    let dir = crate::sh::root().join(&args.dir);
    std::fs::create_dir_all(&dir)?;
    let (rates, period) = if args.smoke {
        (&RATES[..2], 1)
    } else {
        (RATES, args.period)
    };
    let mut results = Vec::new();
    for server in [Server::Stormboot, Server::Kea] {
        let steps = ramp(&server, &dir, rates, period)?;
        results.push((server, steps));
    }
    let report = report(&results, period);
    println!("{report}");
    std::fs::write(dir.join("pool.md"), &report)?;
    eprintln!("bench: results in {}", dir.join("pool.md").display());
    Ok(())
}

fn best(steps: &[Step]) -> Option<&Step> {
    steps.iter().filter(|s| s.clean()).max_by_key(|s| s.rate)
}

fn report(results: &[(Server, Vec<Step>)], period: u32) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## New pool leases per second, durable (perfdhcp DORA, {period} s per rate, drops <= {MAX_DROPS_PERCENT}%)\n");
    let _ = writeln!(t, "| server | highest clean rate (exch/s) | achieved | DO drops % | RA drops % | RA avg delay (ms) |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for (server, steps) in results {
        match best(steps) {
            Some(b) => {
                let _ = writeln!(
                    t,
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {:.2} |",
                    server.name(),
                    b.rate,
                    b.achieved,
                    b.do_drops_percent,
                    b.ra_drops_percent,
                    b.ra_avg_delay_ms
                );
            }
            None => {
                let _ = writeln!(t, "| {} | none clean | | | | |", server.name());
            }
        }
    }
    let rate = |i: usize| {
        results
            .get(i)
            .and_then(|(_, s)| best(s))
            .map(|b| b.achieved)
    };
    if let (Some(a), Some(b)) = (rate(0), rate(1)) {
        let _ = writeln!(t, "\nstormboot / Kea: {:.2}x", a / b);
    }
    let _ = writeln!(t, "\nEvery step:\n\n| server | rate | achieved | DO drops % | RA drops % | acks |\n|---|---|---|---|---|---|");
    for (server, steps) in results {
        for s in steps {
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.3} | {:.3} | {} |",
                server.name(),
                s.rate,
                s.achieved,
                s.do_drops_percent,
                s.ra_drops_percent,
                s.acks
            );
        }
    }
    t
}

/// Runs perfdhcp at each rate against a fresh server until a step is not
/// clean; every step uses clients no earlier step used.
fn ramp(server: &Server, dir: &Path, rates: &[u32], period: u32) -> Result<Vec<Step>> {
    let mut bed = Testbed::new("bench", None)?;
    let mut ip = Command::new("ip");
    ip.args(["addr", "add", CLIENT_ADDR, "dev", CLIENT_IF]);
    bed.run(Side::Client, ip)?;
    let work = dir.join(match server {
        Server::Stormboot => "stormboot",
        Server::Kea => "kea",
    });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let pid = match server {
        Server::Stormboot => start_stormboot(&mut bed, &work)?,
        Server::Kea => start_kea(&mut bed, &work)?,
    };
    let mut steps = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        eprintln!("bench: {} at {rate}/s for {period} s", server.name());
        let mut cmd = bed.command(Side::Client, "taskset");
        // perfdhcp on CPU 1, the server on CPU 0 (see start_*).
        cmd.args([
            "-c",
            "1",
            "perfdhcp",
            "-4",
            "-l",
            CLIENT_IF,
            "-r",
            &rate.to_string(),
            "-p",
            &period.to_string(),
        ]);
        cmd.args([
            "-R",
            "1000000",
            "-b",
            &format!("mac=02:{:02x}:00:00:00:00", i + 1),
            "10.50.0.1",
        ]);
        // perfdhcp exits non-zero when anything dropped: its report is
        // what counts, so read it whatever the status.
        let out = cmd.output().context("running perfdhcp")?;
        let step = parse_perfdhcp(rate, &String::from_utf8_lossy(&out.stdout))?;
        let clean = step.clean();
        steps.push(step);
        if !clean {
            break;
        }
    }
    bed.stop(pid)?;
    Ok(steps)
}

fn start_stormboot(bed: &mut Testbed, work: &Path) -> Result<u32> {
    let config = work.join("stormboot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\ndataplane = \"userspace\"\nlease_db = \"leases.db\"\n\n\
             [api]\nlisten = \"127.0.0.1:8067\"\n\n\
             [[subnet]]\ncidr = \"{SUBNET}\"\nrouters = [\"10.50.0.1\"]\npool = [\"{POOL_FIRST}-{POOL_LAST}\"]\nlease_time = \"1h\"\n"
        ),
    )?;
    let bin = crate::sh::root().join("target/release/stormboot");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(&bin)
        .args(["--log", "warn", "serve", "--config"])
        .arg(&config);
    cmd.stderr(std::fs::File::create(work.join("stormboot.log"))?);
    let pid = bed.spawn(Side::Server, cmd)?;
    let up = wait_for(Duration::from_secs(15), || {
        let mut c = Command::new(&bin);
        c.args(["stats", "--json", "--api", "127.0.0.1:8067"]);
        bed.run(Side::Server, c).ok().map(|_| ())
    });
    if up.is_none() {
        bail!(
            "stormboot did not start: {}",
            std::fs::read_to_string(work.join("stormboot.log")).unwrap_or_default()
        );
    }
    Ok(pid)
}

fn start_kea(bed: &mut Testbed, work: &Path) -> Result<u32> {
    let config = work.join("kea-dhcp4.conf");
    let leases = work.join("kea-leases4.csv");
    let log = work.join("kea.log");
    std::fs::write(
        &config,
        format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "sb0" ] }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{}", "lfc-interval": 0 }},
  "valid-lifetime": 3600,
  "subnet4": [ {{ "id": 1, "subnet": "{SUBNET}",
                  "pools": [ {{ "pool": "{POOL_FIRST} - {POOL_LAST}" }} ],
                  "option-data": [ {{ "name": "routers", "data": "10.50.0.1" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "WARN",
                  "output_options": [ {{ "output": "{}" }} ] }} ]
}} }}"#,
            leases.display(),
            log.display()
        ),
    )?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", "kea-dhcp4", "-c"]).arg(&config);
    // Kea keeps its pid and lock files here instead of /run.
    cmd.env("KEA_PIDFILE_DIR", work)
        .env("KEA_LOCKFILE_DIR", work);
    cmd.stderr(std::fs::File::create(work.join("kea.stderr"))?);
    let pid = bed.spawn(Side::Server, cmd)?;
    // Kea says nothing when ready at WARN; its lease file appears once the
    // lease manager is up.
    if wait_for(Duration::from_secs(15), || leases.exists().then_some(())).is_none() {
        bail!(
            "kea-dhcp4 did not start: {}",
            std::fs::read_to_string(work.join("kea.stderr")).unwrap_or_default()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdhcp_report_is_read() {
        let out = "Rate: 1998.87 4-way exchanges/second, expected rate: 2000\n\
                   ***Statistics for: DISCOVER-OFFER***\nsent packets: 9999\nreceived packets: 9998\ndrops: 1\ndrops ratio: 0.010001 %\n\
                   avg delay: 1.155 ms\n***Statistics for: REQUEST-ACK***\nsent packets: 9998\nreceived packets: 9997\ndrops: 1\n\
                   drops ratio: 0.010 %\navg delay: 0.998 ms\n";
        let s = parse_perfdhcp(2000, out).unwrap();
        assert_eq!(s.acks, 9997);
        assert!((s.achieved - 1998.87).abs() < 1e-9);
        assert!((s.do_drops_percent - 0.010001).abs() < 1e-9);
        assert!((s.ra_avg_delay_ms - 0.998).abs() < 1e-9);
        assert!(s.clean());
        assert!(parse_perfdhcp(1, "nothing").is_err());
    }
}
