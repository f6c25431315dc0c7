//! `cargo xtask lab`: a small rack in network namespaces. stormboot runs
//! with XDP on the server side; N simulated machines with reservations boot
//! at once from the client side (DHCP alone), then one real dhclient, then
//! the same machines through the whole boot chain (DHCP, the iPXE binary
//! over TFTP or HTTP, iPXE's DHCP, its script, the kernel and the initrd);
//! tables say who answered, what was lost and how fast each phase went.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bench::reports::{self, ChainReport, StormReport};
use anyhow::{bail, Context, Result};
use stormboot_testbed::bootlab::{self, BootFiles};
use stormboot_testbed::labconfig::{LabConfig, Machines};
use stormboot_testbed::{wait_for, Side, Testbed, CLIENT_IF};

/// The real client's MAC and its reserved address.
const DHCLIENT_MAC: &str = "52:54:00:00:00:01";
const DHCLIENT_IP: &str = "10.50.0.11";
/// Machine i of the storm has MAC 02:00:00:00:00:00 + i and address
/// 10.50.4.0 + i.
fn machines(count: u32) -> Machines {
    Machines {
        count,
        first_mac: [0x02, 0, 0, 0, 0, 0],
        first_ip: Ipv4Addr::new(10, 50, 4, 0),
        hostname: "lab-",
    }
}

#[derive(clap::Args)]
pub struct LabArgs {
    /// Simulated machines in the storm (each has a reservation).
    #[arg(long, default_value_t = 1000)]
    machines: u32,
    /// XDP attach mode of the server: driver or skb.
    #[arg(long, default_value = "driver")]
    xdp_mode: String,
    /// Keep the lab's files (config, logs) in this directory.
    #[arg(long, default_value = "target/lab")]
    dir: PathBuf,
    /// Size of the kernel the boot chain downloads, MB (the bench's
    /// storm-e2e uses 8 MB and 32 MB; a thousand machines of those are
    /// 40 GB through one veth, minutes on a small machine).
    #[arg(long, default_value_t = 2)]
    kernel_mb: u64,
    /// Size of the initrd the boot chain downloads, MB.
    #[arg(long, default_value_t = 8)]
    initrd_mb: u64,
}

pub fn run(args: &LabArgs) -> Result<()> {
    crate::setup::require_root("the lab creates network namespaces and attaches XDP")?;
    if args.machines == 0 || args.machines > 60_000 {
        bail!("--machines must be 1..=60000 (their addresses come from 10.50.4.0/16)");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // The storm and dhclient get the terminal's SIGINT themselves; we
        // only have to stop waiting and let the testbed's drop clean up.
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let dir = crate::sh::root().join(&args.dir);
    std::fs::create_dir_all(&dir)?;
    // Each run starts from no leases.
    let _ = std::fs::remove_file(dir.join("leases.db"));
    // The release builds, named outright: the storm client is the lab's
    // bottleneck, and a debug build of it would measure itself.
    let bin = crate::sh::root().join("target/release/stormboot");
    let lab = crate::sh::root().join("target/release/stormboot-lab");
    eprintln!("lab: binaries {} and {}", bin.display(), lab.display());

    let mut bed = Testbed::new("lab", Some(DHCLIENT_MAC))?;
    let files = BootFiles::prepare(
        &dir.join("files"),
        args.kernel_mb << 20,
        args.initrd_mb << 20,
    )?;
    bed.route_machines()?;
    let config = write_config(&dir, args.machines, &files)?;
    let rack = machines(args.machines);
    let log = std::fs::File::create(dir.join("stormboot.log"))?;
    // The pass program goes on first: a veth delivers driver-mode XDP_TX
    // only to a peer that runs XDP, and the daemon, finding none, would
    // attach in skb mode.
    let pass = bed.attach_client_pass(&lab)?;
    check(&interrupted)?;
    let stats = |bed: &Testbed| -> Option<serde_json::Value> {
        let mut c = std::process::Command::new(&bin);
        c.args(["stats", "--json", "--config"]).arg(&config);
        let out = bed.run(Side::Server, c).ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let serve = |bed: &mut Testbed, mode: &str, log: std::fs::File| -> Result<u32> {
        let mut serve = std::process::Command::new(&bin);
        serve
            .args(["serve", "--xdp-mode", mode, "--config"])
            .arg(&config)
            .stderr(log);
        let daemon = bed.spawn(Side::Server, serve)?;
        let up = wait_for(Duration::from_secs(15), || {
            if interrupted.load(Ordering::SeqCst) {
                return Some(false);
            }
            stats(bed).map(|_| true)
        });
        check(&interrupted)?;
        if up.is_none() {
            let log = std::fs::read_to_string(dir.join("stormboot.log")).unwrap_or_default();
            bail!("stormboot did not come up:\n{log}");
        }
        Ok(daemon)
    };
    let daemon = serve(&mut bed, &args.xdp_mode, log)?;

    eprintln!("lab: storm of {} machines", args.machines);
    let mut storm = std::process::Command::new(&lab);
    storm.args([
        "storm",
        "--json",
        "--interface",
        CLIENT_IF,
        "--first-mac",
        &rack.mac(0),
    ]);
    storm.args([
        "--count",
        &args.machines.to_string(),
        "--expect-first-ip",
        &rack.ip(0).to_string(),
    ]);
    let out = bed
        .run(Side::Client, storm)
        .context("the storm client failed")?;
    check(&interrupted)?;
    let report: StormReport = reports::decode("the storm client", &out.stdout)?;

    eprintln!("lab: one real dhclient");
    let started = Instant::now();
    let leases = dir.join("dhclient.leases");
    let _ = std::fs::remove_file(&leases);
    // In the foreground (-d), as a child of the testbed, which stops it on
    // every path out of here: a daemonized dhclient outlives its namespace.
    std::fs::write(&leases, "")?;
    let mut dh = std::process::Command::new("dhclient");
    dh.args(["-d", "-1", "-v", "-sf", "/bin/true", "-lf"])
        .arg(&leases)
        .arg("-pf")
        .arg(dir.join("dhclient.pid"))
        .arg(CLIENT_IF)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("dhclient.log"))?);
    let dh_pid = bed.spawn(Side::Client, dh)?;
    let bound_line = format!("fixed-address {DHCLIENT_IP};");
    let dh_bound = wait_for(Duration::from_secs(15), || {
        if interrupted.load(Ordering::SeqCst) {
            return Some(false);
        }
        let lease = std::fs::read_to_string(&leases).unwrap_or_default();
        // The whole lease block is written once bound.
        (lease.contains(&bound_line) && lease.trim_end().ends_with('}')).then_some(true)
    })
    .unwrap_or(false);
    let dh_time = started.elapsed();
    let _ = bed.stop(dh_pid);
    check(&interrupted)?;

    let s = stats(&bed).context("reading the daemon's counters")?;
    let status = bed.stop(daemon)?;
    let chain = if args.machines <= bootlab::MAX_MACHINES {
        // The chain's downloads would overflow the 256-frame ring through
        // which a veth hands frames to a peer running XDP, and the DHCP and
        // TFTP datagrams in it would be lost with the TCP: the daemon runs
        // again in skb mode (the program answers from the stack's path) and
        // the pass-only program goes.
        bed.stop(pass)?;
        let log = std::fs::File::create(dir.join("stormboot-chain.log"))?;
        let daemon = serve(&mut bed, "skb", log)?;
        eprintln!(
            "lab: the boot chain for {} machines ({} MB kernel, {} MB initrd), XDP in skb mode",
            args.machines, args.kernel_mb, args.initrd_mb
        );
        let report = chain(&bed, &lab, &rack, daemon);
        let stopped = bed.stop(daemon)?;
        if !stopped.success() {
            bail!("stormboot (the chain's) exited with {stopped}");
        }
        Some(report?)
    } else {
        eprintln!(
            "lab: no boot chain: it routes at most {} machines",
            bootlab::MAX_MACHINES
        );
        None
    };
    check(&interrupted)?;
    drop(bed);
    let mut table = table(args, &report, &s, dh_bound, dh_time);
    if let Some(c) = &chain {
        let _ = writeln!(
            table,
            "\nboot chain: {} machines, the daemon again with XDP in skb mode, {} MB kernel \
             and {} MB initrd over HTTP\n{}",
            c.machines,
            args.kernel_mb,
            args.initrd_mb,
            c.table()
        );
    }
    println!("{table}");
    std::fs::write(dir.join("report.txt"), &table)?;
    eprintln!(
        "lab: config, daemon log and report are in {}",
        dir.display()
    );
    if !status.success() {
        bail!("stormboot exited with {status}");
    }
    if chain.as_ref().is_some_and(|c| !c.all_booted()) {
        bail!("not every machine went through the boot chain: see the table above");
    }
    if report.bound != args.machines || !dh_bound {
        bail!(
            "not every machine was bound: see the table above and {}",
            dir.join("stormboot.log").display()
        );
    }
    Ok(())
}

fn check(interrupted: &AtomicBool) -> Result<()> {
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted; the lab's namespaces and processes are cleaned up");
    }
    Ok(())
}

/// The lab's configuration: a /16 so thousands of reservations fit, the
/// storm's machines in a CSV file, dhclient's inline, and the boot
/// chain's files and profile.
fn write_config(dir: &Path, count: u32, files: &BootFiles) -> Result<PathBuf> {
    let mut c = LabConfig::new(machines(count), bootlab::CHAIN_SUBNET);
    c.sections = format!(
        "[[reservation]]\nmac = \"{DHCLIENT_MAC}\"\nip = \"{DHCLIENT_IP}\"\nhostname = \"dhclient\"\n\n{}",
        files.stormboot_sections()
    );
    c.write(dir)
}

/// The storm's machines through the whole boot chain, the daemon's CPU
/// time and memory beside.
fn chain(bed: &Testbed, lab: &Path, rack: &Machines, daemon: u32) -> Result<ChainReport> {
    let mut c = std::process::Command::new(lab);
    c.args(["--log", "warn", "chain", "--json", "--interface", CLIENT_IF]);
    c.args([
        "--count",
        &rack.count.to_string(),
        "--first-mac",
        &rack.mac(0),
    ]);
    c.args(["--expect-first-ip", &rack.ip(0).to_string()]);
    c.args(["--server-pid", &daemon.to_string()]);
    let out = bed
        .run(Side::Client, c)
        .context("the boot-chain client failed")?;
    reports::decode("the boot-chain client", &out.stdout)
}

fn table(
    args: &LabArgs,
    r: &StormReport,
    s: &serde_json::Value,
    dh_bound: bool,
    dh_time: Duration,
) -> String {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let xdp = &s["xdp"];
    let passed: u64 = [
        "pass_unknown_mac",
        "pass_wrong_network",
        "pass_other_dhcp",
        "pass_unsupported",
        "malformed",
        "tx_error",
    ]
    .iter()
    .map(|k| n(&xdp[*k]))
    .sum();
    let slow: u64 = s["slow_path"]
        .as_object()
        .map(|o| o.values().map(n).sum())
        .unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nstormboot lab: {} simulated machines + 1 dhclient, XDP in {} mode on veth",
        args.machines, args.xdp_mode
    );
    let _ = writeln!(
        t,
        "  {:<34} {:>12}",
        "machines bound",
        format!("{} / {}", r.bound, r.machines)
    );
    let _ = writeln!(t, "  {:<34} {:>12}", "lost", r.lost);
    let _ = writeln!(t, "  {:<34} {:>12}", "retransmits", r.retransmits);
    let _ = writeln!(
        t,
        "  {:<34} {:>12}",
        "answered by XDP (offers + acks)",
        n(&xdp["offer"]) + n(&xdp["ack"])
    );
    let _ = writeln!(t, "  {:<34} {:>12}", "NAKs from XDP", n(&xdp["nak"]));
    let _ = writeln!(t, "  {:<34} {:>12}", "DHCP passed up by XDP", passed);
    let _ = writeln!(t, "  {:<34} {:>12}", "received by userspace", slow);
    let _ = writeln!(
        t,
        "  {:<34} {:>12}",
        "bad checksums seen by clients", r.bad_checksum
    );
    let _ = writeln!(t, "  {:<34} {:>12.1}", "storm elapsed (ms)", r.elapsed_ms);
    let _ = writeln!(
        t,
        "  {:<34} {:>12.0}",
        "exchanges per second", r.exchanges_per_sec
    );
    let _ = writeln!(
        t,
        "  {:<34} {:>12}",
        "latency p50 / p99 (ms)",
        format!("{:.2} / {:.2}", r.latency_p50_ms, r.latency_p99_ms)
    );
    let dh = if dh_bound {
        format!("bound {DHCLIENT_IP} in {:.2} s", dh_time.as_secs_f64())
    } else {
        "NOT bound".into()
    };
    let _ = writeln!(t, "  {:<34} {:>12}", "dhclient", dh);
    t
}
