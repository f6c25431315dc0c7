//! `cargo xtask bench`: measures stormboot (XDP and userspace dataplanes)
//! and its peers (Kea, dnsmasq, ISC dhcpd, coredhcp) one after another in
//! one run, on the same lab, the same configuration and the same CPU
//! pinning: a boot storm of known machines from the storm client, then
//! perfdhcp ramps for reservations and for new pool leases; plus the XDP
//! program alone (`stormboot-lab bench-xdp`), the control plane at a million
//! reservations, and the whole boot storm end to end (`storm-e2e`: DHCP,
//! TFTP/HTTP boot files, iPXE, kernels and initrds, beside dnsmasq + nginx
//! and Kea + tftpd-hpa + nginx), and two nodes sharing PostgreSQL beside a
//! Kea HA pair and one node on SQLite (`cluster`), known machines'
//! requests offered at equal rates up to the generator's ceiling (`wire`),
//! and new pool leases offered at equal rates by the lab's own generator,
//! past perfdhcp's ceiling (`pool-wire`).
//! Tables and plots go to `target/bench/`.

mod apilatency;
mod cluster;
mod controlplane;
mod e2e;
mod omapi;
mod perfdhcp;
mod poolwire;
mod report;
pub mod reports;
mod servers;
mod svg;
mod wire;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use stormboot_testbed::{wait_for, Side, Testbed, CLIENT_IF, SERVER_IF};

use perfdhcp::{RampEnd, Step};
use servers::{Plan, Server, CLIENT_CPU};

/// Rates (DORA exchanges per second) of the reservation ramp.
const RESERVATION_RATES: &[u32] = &[
    1000, 2000, 4000, 8000, 12000, 16000, 24000, 32000, 48000, 64000,
];
/// Rates of the pool ramp.
const POOL_RATES: &[u32] = &[1000, 2000, 4000, 6000, 8000, 12000, 16000, 24000];
/// Rates of the cluster's ramp of new clients: lower first, for a pair
/// whose every lease crosses a network to the database (and, for Kea, to
/// the partner).
const CLUSTER_RATES: &[u32] = &[
    100, 200, 300, 400, 600, 800, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000,
];

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds per rate step.
    #[arg(long, default_value_t = 3)]
    period: u32,
    /// Machines in the storm, all with reservations (also perfdhcp's MAC list).
    #[arg(long, default_value_t = 10_000)]
    machines: u32,
    /// Storm machines in flight at once.
    #[arg(long, default_value_t = 256)]
    window: u32,
    /// Reservations for the control-plane measurement.
    #[arg(long, default_value_t = 1_000_000)]
    control_plane: u32,
    /// Only these parts, comma-separated: servers (stormboot-xdp,
    /// stormboot-userspace, kea, dnsmasq, dhcpd, coredhcp), xdp (the
    /// program alone), control-plane, api (API to dataplane), omapi
    /// (OMAPI creates per second and create to XDP), storm-e2e (the whole
    /// boot chain beside dnsmasq + nginx and Kea + tftpd-hpa + nginx, then
    /// http-alone and tftp-alone, each also a part of its own: the HTTP path
    /// alone beside nginx, the TFTP path alone beside dnsmasq and tftpd-hpa),
    /// cluster (two stormboot nodes on PostgreSQL beside a Kea HA pair and
    /// one node on SQLite: new leases, failover, reservation propagation),
    /// wire (known machines' requests at equal offered rates, for the
    /// servers named, or every server when none is), pool-wire (new pool
    /// leases at equal offered rates, for the servers named, or every
    /// server when none is).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// storm-e2e: runs of every server, taken in turn; each server's
    /// median run is compared.
    #[arg(long, default_value_t = 3)]
    e2e_runs: u32,
    /// A short run (tiny storm, one short step per scenario) that checks
    /// every server answers; fails if one does not.
    #[arg(long)]
    smoke: bool,
    /// Where results go.
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// The stormboot binary to measure (default: this checkout's release
    /// build, which `cargo xtask bench` builds first).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// The lab binary that measures (storm client, bench-api, xdp-pass;
    /// default: this checkout's release build, which `cargo xtask bench`
    /// builds first).
    #[arg(long)]
    lab: Option<PathBuf>,
}

/// How one run is sized.
struct Settings {
    plan: Plan,
    window: u32,
    /// Storm deadline: machines not bound by then are lost.
    storm_deadline_ms: u64,
    reservation_rates: Vec<u32>,
    pool_rates: Vec<u32>,
    /// perfdhcp: seconds per step, or (smoke) a number of exchanges.
    step: StepLength,
    xdp_runs: u32,
    control_plane: u32,
    /// bench-api: add/change/remove cycles through the API.
    api_cycles: u32,
    /// bench-api: reservations bulk-loaded before the cycles.
    api_load: u32,
    /// bench-omapi's size.
    omapi: omapi::Size,
    /// storm-e2e's size.
    e2e: e2e::Size,
    /// The cluster part's size.
    cluster: cluster::Size,
    /// The wire part's size.
    wire: wire::Size,
    /// The pool-wire part's size.
    pool_wire: poolwire::Size,
}

#[derive(Clone, Copy)]
enum StepLength {
    Seconds(u32),
    Exchanges(u32),
}

impl Settings {
    fn new(args: &BenchArgs) -> Result<Self> {
        // Reserved addresses run from 10.50.4.0 up to the pool's start.
        if args.machines == 0 || args.machines > 130_000 {
            bail!("--machines must be 1..=130000 (their addresses run from 10.50.4.0 to 10.51.255.255)");
        }
        if args.smoke {
            let plan = Plan {
                machines: 50,
                pool_last: Ipv4Addr::new(10, 52, 3, 254),
            };
            return Ok(Settings {
                window: 64,
                // Room for two RFC 2131 retransmissions (4 s and 8 s, +-1 s):
                // a slow server is slow, not silent. A working run takes
                // well under a second.
                storm_deadline_ms: 20_000,
                reservation_rates: vec![200],
                pool_rates: vec![200],
                step: StepLength::Exchanges(100),
                xdp_runs: 200,
                control_plane: 1000,
                api_cycles: 5,
                api_load: 1000,
                omapi: omapi::Size {
                    reservations: 1000,
                    hosts: 100,
                    cycles: 5,
                },
                e2e: e2e::Size {
                    machines: 50,
                    kernel_bytes: 64 << 10,
                    initrd_bytes: 256 << 10,
                    deadline_s: 60,
                    runs: 1,
                },
                cluster: cluster::Size {
                    rates: vec![200],
                    step: StepLength::Exchanges(100),
                    machines: 50,
                    window: 64,
                    probe_machines: 8,
                    failover_deadline: None,
                    propagation_changes: 0,
                },
                wire: wire::Size {
                    rates: vec![2000],
                    duration_ms: 500,
                },
                pool_wire: poolwire::Size {
                    rates: vec![200],
                    duration_ms: 500,
                    // 1,023 addresses, for 100 new leases.
                    pool_last: plan.pool_last,
                },
                plan,
            });
        }
        Ok(Settings {
            plan: Plan {
                machines: args.machines,
                // 262,143 addresses: more than any pool ramp hands out.
                pool_last: Ipv4Addr::new(10, 55, 255, 254),
            },
            window: args.window,
            storm_deadline_ms: 60_000,
            reservation_rates: RESERVATION_RATES.to_vec(),
            pool_rates: POOL_RATES.to_vec(),
            step: StepLength::Seconds(args.period),
            xdp_runs: 20_000,
            control_plane: args.control_plane,
            api_cycles: 300,
            api_load: 100_000,
            omapi: omapi::Size {
                reservations: 100_000,
                hosts: 10_000,
                cycles: 300,
            },
            // The issue's rack: a thousand machines, an 8 MB kernel and a
            // 32 MB initrd each.
            e2e: e2e::Size {
                machines: 1000,
                kernel_bytes: 8 << 20,
                initrd_bytes: 32 << 20,
                deadline_s: 600,
                runs: args.e2e_runs,
            },
            cluster: cluster::Size {
                rates: CLUSTER_RATES.to_vec(),
                step: StepLength::Seconds(args.period),
                machines: args.machines,
                window: args.window,
                probe_machines: 16,
                failover_deadline: Some(Duration::from_secs(30)),
                propagation_changes: 201,
            },
            wire: wire::Size {
                rates: wire::RATES.to_vec(),
                duration_ms: u64::from(args.period) * 1000,
            },
            pool_wire: poolwire::Size {
                rates: poolwire::RATES.to_vec(),
                duration_ms: u64::from(args.period) * 1000,
                pool_last: poolwire::POOL_LAST,
            },
        })
    }
}

/// What one server did.
pub struct Outcome {
    pub server: Server,
    pub result: Result<Measured, String>,
}

pub struct Measured {
    pub storm: reports::StormReport,
    /// The server process's CPU time (user + system, every thread) during
    /// the storm, seconds; None when /proc could not be read.
    pub storm_cpu_s: Option<f64>,
    pub reservations: (Vec<Step>, RampEnd),
    pub pool: (Vec<Step>, RampEnd),
}

impl BenchArgs {
    /// Whether the binary measured is this checkout's release build (no
    /// `--bin`), which must then be built first.
    pub fn measures_this_checkout(&self) -> bool {
        self.bin.is_none()
    }

    /// Whether the lab that measures is this checkout's release build (no
    /// `--lab`), which must then be built first.
    pub fn measures_with_this_lab(&self) -> bool {
        self.lab.is_none()
    }
}

/// The binaries a run uses: the daemon measured, and the lab (the storm
/// client, the benchmarks, xdp-pass) that measures it.
pub struct Bins {
    pub daemon: PathBuf,
    pub lab: PathBuf,
}

impl Bins {
    /// This checkout's release builds, or the binaries given instead.
    fn release(daemon: Option<PathBuf>, lab: Option<PathBuf>) -> Bins {
        let dir = target_dir().join("release");
        Bins {
            daemon: daemon.unwrap_or_else(|| dir.join("stormboot")),
            lab: lab.unwrap_or_else(|| dir.join("stormboot-lab")),
        }
    }

    /// This checkout's debug builds (what `cargo xtask test` builds).
    pub fn debug() -> Bins {
        let dir = target_dir().join("debug");
        Bins {
            daemon: dir.join("stormboot"),
            lab: dir.join("stormboot-lab"),
        }
    }
}

/// `cargo xtask bench`, with the release binaries.
pub fn run(args: &BenchArgs) -> Result<()> {
    run_with(args, &Bins::release(args.bin.clone(), args.lab.clone()))
}

/// The smoke run `cargo xtask test` ends with, with the binaries it built.
pub fn smoke(bins: &Bins) -> Result<()> {
    let args = BenchArgs {
        period: 1,
        machines: 50,
        window: 64,
        control_plane: 1000,
        only: Vec::new(),
        e2e_runs: 1,
        smoke: true,
        dir: PathBuf::from("target/bench-smoke"),
        bin: Some(bins.daemon.clone()),
        lab: Some(bins.lab.clone()),
    };
    run_with(&args, bins)
}

fn run_with(args: &BenchArgs, bins: &Bins) -> Result<()> {
    crate::setup::require_root("the benchmark creates network namespaces and attaches XDP")?;
    let settings = Settings::new(args)?;
    let dir = crate::sh::root().join(&args.dir);
    std::fs::create_dir_all(&dir)?;
    let servers: Vec<Server> = servers::ALL
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|k| k == s.key()))
        .collect();
    // With `wire` or `pool-wire` in --only, the servers named are those
    // parts' (every server when none is), and their other scenarios do not
    // run.
    let wire_asked = args.only.iter().any(|o| o == "wire" || o == "pool-wire");
    let wire_servers = if servers.is_empty() {
        servers::ALL.to_vec()
    } else {
        servers.clone()
    };
    let servers = if wire_asked { Vec::new() } else { servers };
    let part = |k: &str| args.only.is_empty() || args.only.iter().any(|o| o == k);
    for o in &args.only {
        if !servers::ALL.iter().any(|s| s.key() == o)
            && ![
                "xdp",
                "control-plane",
                "api",
                "omapi",
                "storm-e2e",
                "http-alone",
                "tftp-alone",
                "cluster",
                "wire",
                "pool-wire",
            ]
            .contains(&o.as_str())
        {
            bail!("--only {o}: the parts are stormboot-xdp, stormboot-userspace, kea, dnsmasq, dhcpd, coredhcp, xdp, control-plane, api, omapi, storm-e2e (with http-alone and tftp-alone, each also a part of its own), cluster, wire, pool-wire");
        }
    }

    let xdp = if part("xdp") {
        eprintln!(
            "bench: the XDP program alone ({} runs per case)",
            settings.xdp_runs
        );
        xdp_alone(&bins.lab, settings.xdp_runs)?
    } else {
        Vec::new()
    };

    let mut outcomes = Vec::new();
    for server in servers {
        let result = match server.unavailable() {
            Some(why) => Err(format!("not available: {why}")),
            None => measure(server, &dir, bins, &settings).map_err(|e| format!("{e:#}")),
        };
        if let Err(e) = &result {
            eprintln!("bench: {}: {e}", server.name());
        }
        outcomes.push(Outcome { server, result });
    }

    let cp = if part("control-plane") {
        eprintln!(
            "bench: control plane at {} reservations",
            settings.control_plane
        );
        controlplane::measure(&dir, &bins.daemon, settings.control_plane)
    } else {
        Err(anyhow::anyhow!("not asked for (--only)"))
    };

    let api = if part("api") {
        eprintln!(
            "bench: API to dataplane ({} cycles, {} reservations loaded)",
            settings.api_cycles, settings.api_load
        );
        apilatency::measure(&dir, bins, settings.api_load, settings.api_cycles)
    } else {
        Err(anyhow::anyhow!("not asked for (--only)"))
    };

    let om = if part("omapi") {
        eprintln!(
            "bench: OMAPI at {} reservations ({} creates, {} cycles)",
            settings.omapi.reservations, settings.omapi.hosts, settings.omapi.cycles
        );
        omapi::measure(&dir, bins, &settings.omapi)
    } else {
        Err(anyhow::anyhow!("not asked for (--only)"))
    };

    let chain = if part("storm-e2e") {
        eprintln!(
            "bench: the whole boot storm, {} machines",
            settings.e2e.machines
        );
        e2e::measure(&dir, bins, &settings.e2e)
    } else {
        Err(anyhow::anyhow!("not asked for (--only)"))
    };
    let alone: Vec<(e2e::Alone, Result<Vec<e2e::Row<reports::DownloadReport>>>)> =
        if part("storm-e2e") || part("http-alone") || part("tftp-alone") {
            [e2e::Alone::Http, e2e::Alone::Tftp]
                .into_iter()
                .filter(|path| part("storm-e2e") || part(path.part()))
                .map(|path| {
                    eprintln!(
                        "bench: {}, {} machines at once",
                        path.title(),
                        settings.e2e.machines
                    );
                    (path, e2e::measure_alone(&dir, bins, &settings.e2e, path))
                })
                .collect()
        } else {
            Vec::new()
        };

    let pair = part("cluster").then(|| {
        eprintln!("bench: two nodes sharing PostgreSQL, beside a Kea HA pair");
        cluster::measure(&dir, bins, &settings.cluster)
    });

    let wire_rows = part("wire").then(|| {
        eprintln!(
            "bench: known machines at equal offered rates ({:?}/s)",
            settings.wire.rates
        );
        wire::measure(&dir, bins, &settings.plan, &settings.wire, &wire_servers)
    });

    let pool_rows = part("pool-wire").then(|| {
        eprintln!(
            "bench: new pool leases at equal offered rates ({:?}/s)",
            settings.pool_wire.rates
        );
        poolwire::measure(
            &dir,
            bins,
            &settings.plan,
            &settings.pool_wire,
            &wire_servers,
        )
    });

    let length = match settings.step {
        StepLength::Seconds(s) => format!("{s} s per rate"),
        StepLength::Exchanges(n) => format!("{n} exchanges per rate"),
    };
    let md = report::markdown(&report::Input {
        outcomes: &outcomes,
        xdp: &xdp,
        control_plane: cp.as_ref().map_err(|e| format!("{e:#}")),
        machines: settings.plan.machines,
        window: settings.window,
        step: &length,
        command: &command_line(args),
    });
    let md = match &api {
        Ok(r) => format!(
            "{md}\n## API to dataplane\n\n{}",
            apilatency::markdown(r, settings.api_cycles)
        ),
        Err(e) => format!("{md}\n## API to dataplane\n\nnot measured: {e:#}\n"),
    };
    let md = match &om {
        Ok(r) => format!("{md}\n## OMAPI\n\n{}", omapi::markdown(r, &settings.omapi)),
        Err(e) => format!("{md}\n## OMAPI\n\nnot measured: {e:#}\n"),
    };
    let md = match &chain {
        Ok(rows) => format!(
            "{md}\n## Boot storm, end to end\n\n{}",
            e2e::markdown(rows, &settings.e2e)
        ),
        Err(e) => format!("{md}\n## Boot storm, end to end\n\nnot measured: {e:#}\n"),
    };
    let md = if alone.is_empty() {
        format!("{md}\n## HTTP and TFTP alone\n\nnot measured: not asked for (--only)\n")
    } else {
        alone.iter().fold(md, |md, (path, rows)| match rows {
            Ok(rows) => format!(
                "{md}\n## {}\n\n{}",
                path.title(),
                e2e::alone_markdown(rows, &settings.e2e, *path)
            ),
            Err(e) => format!("{md}\n## {}\n\nnot measured: {e:#}\n", path.title()),
        })
    };
    let md = match &pair {
        Some(r) => format!(
            "{md}\n## Two nodes sharing PostgreSQL\n\n{}",
            cluster::markdown(r, &settings.cluster)
        ),
        None => format!(
            "{md}\n## Two nodes sharing PostgreSQL\n\nnot measured: not asked for (--only)\n"
        ),
    };
    let md = match &wire_rows {
        Some(rows) => format!(
            "{md}\n## Known machines at equal offered rates\n\n{}",
            wire::markdown(rows, &settings.wire, settings.plan.machines)
        ),
        None => format!(
            "{md}\n## Known machines at equal offered rates\n\nnot measured: not asked for (--only)\n"
        ),
    };
    let md = match &pool_rows {
        Some(rows) => format!(
            "{md}\n## New pool leases at equal offered rates\n\n{}",
            poolwire::markdown(rows, &settings.pool_wire)
        ),
        None => format!(
            "{md}\n## New pool leases at equal offered rates\n\nnot measured: not asked for (--only)\n"
        ),
    };
    println!("{md}");
    std::fs::write(dir.join("results.md"), &md)?;
    for (file, title, pick) in [
        (
            "reservations.svg",
            "Reservations (perfdhcp -M, relayed)",
            (|m: &Measured| &m.reservations.0) as fn(&Measured) -> &Vec<Step>,
        ),
        (
            "pool.svg",
            "New pool leases (perfdhcp, relayed)",
            |m: &Measured| &m.pool.0,
        ),
    ] {
        let series: Vec<svg::Series> = outcomes
            .iter()
            .filter_map(|o| {
                let m = o.result.as_ref().ok()?;
                Some(svg::Series {
                    name: o.server.name().to_string(),
                    points: pick(m)
                        .iter()
                        .map(|s| (f64::from(s.rate), s.exchanges_per_sec()))
                        .collect(),
                })
            })
            .collect();
        std::fs::write(dir.join(file), svg::plot(title, &series))?;
    }
    eprintln!(
        "bench: results in {} (results.md, reservations.svg, pool.svg)",
        dir.display()
    );

    if args.smoke {
        // A smoke run with --only checks the parts asked for.
        smoke_verdict(
            &outcomes,
            &settings,
            cp.as_ref().err().filter(|_| part("control-plane")),
        )?;
        if part("api") {
            let r = api.context("the API benchmark")?;
            if r.visible.changes != 3 * u64::from(settings.api_cycles)
                || r.reservations != u64::from(settings.api_load)
            {
                bail!(
                    "the API benchmark saw {} of {} changes with {} of {} reservations loaded: {r:?}",
                    r.visible.changes,
                    3 * settings.api_cycles,
                    r.reservations,
                    settings.api_load
                );
            }
        }
        if part("omapi") {
            let r = om.context("the OMAPI benchmark")?;
            if r.visible.changes != u64::from(settings.omapi.cycles) {
                bail!("the OMAPI benchmark missed creates: {r:?}");
            }
        }
        if let Some(r) = &pair {
            cluster::smoke_verdict(r)?;
        }
        if let Some(rows) = &wire_rows {
            wire::smoke_verdict(rows)?;
        }
        if let Some(rows) = &pool_rows {
            poolwire::smoke_verdict(rows)?;
        }
        if part("storm-e2e") {
            for row in chain.context("the boot storm, end to end")? {
                match row.result {
                    Ok(r) if r.all_booted() => {}
                    Ok(r) => bail!(
                        "storm-e2e: {}: {} of {} machines booted: {:?}",
                        row.server.name(),
                        r.booted,
                        r.machines,
                        r.failures
                    ),
                    Err(e) => bail!("storm-e2e: {}: {e}", row.server.name()),
                }
            }
        }
        for (path, rows) in alone {
            let what = path.title();
            for row in rows.context(what)? {
                match row.result {
                    Ok(d) if d.failed == 0 && d.transfers.files == d.machines => {}
                    Ok(d) => bail!(
                        "{what}: {}: {} of {} downloads, e.g. {:?}",
                        row.server.name(),
                        d.transfers.files,
                        d.machines,
                        d.example_failure
                    ),
                    Err(e) => bail!("{what}: {}: {e}", row.server.name()),
                }
            }
        }
    }
    Ok(())
}

/// The smoke run fails unless every server answered every scenario.
fn smoke_verdict(
    outcomes: &[Outcome],
    settings: &Settings,
    cp_error: Option<&anyhow::Error>,
) -> Result<()> {
    let mut failures = Vec::new();
    for o in outcomes {
        match &o.result {
            Err(e) => failures.push(format!("{}: {e}", o.server.name())),
            Ok(m) => {
                let bound = m.storm.bound;
                if bound != settings.plan.machines {
                    failures.push(format!(
                        "{}: storm bound {bound} of {}",
                        o.server.name(),
                        settings.plan.machines
                    ));
                }
                // Answering is what counts here, not speed: a server whose
                // every lease write waits for the disk may drop a few.
                for (what, steps) in [("reservations", &m.reservations.0), ("pool", &m.pool.0)] {
                    if steps.first().is_none_or(|s| s.acks == 0) {
                        failures.push(format!(
                            "{}: perfdhcp {what}: no exchange completed: {:?}",
                            o.server.name(),
                            steps.first()
                        ));
                    }
                }
            }
        }
    }
    if let Some(e) = cp_error {
        failures.push(format!("control plane: {e:#}"));
    }
    if !failures.is_empty() {
        bail!("bench smoke run failed:\n  {}", failures.join("\n  "));
    }
    eprintln!("bench: smoke run passed: every server answered every scenario");
    Ok(())
}

fn command_line(args: &BenchArgs) -> String {
    let mut c = String::from("cargo xtask bench");
    if args.smoke {
        c.push_str(" --smoke");
    }
    if !args.only.is_empty() {
        c.push_str(&format!(" --only {}", args.only.join(",")));
    }
    c
}

/// This checkout's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::sh::root().join("target"))
}

/// `stormboot-lab bench-xdp --json`.
fn xdp_alone(lab: &Path, runs: u32) -> Result<Vec<reports::XdpCase>> {
    let mut cmd = Command::new(lab);
    cmd.args([
        "--log",
        "warn",
        "bench-xdp",
        "--json",
        "--runs",
        &runs.to_string(),
    ]);
    let out = crate::sh::output(&mut cmd)?;
    reports::decode("bench-xdp", out.as_bytes())
}

/// A fresh lab, the server started, the three scenarios in turn.
fn measure(server: Server, dir: &Path, bins: &Bins, s: &Settings) -> Result<Measured> {
    let work = dir.join(server.key());
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut bed = Testbed::new("bench", None)?;
    widen_addresses(&bed)?;
    bed.attach_client_pass(&bins.lab)?;

    eprintln!("bench: {}: starting", server.name());
    let pid = server.start(&mut bed, &work, &s.plan, &bins.daemon)?;
    if !probe(&mut bed, &bins.lab, pid)? {
        bail!(
            "did not answer the probe within 30 s; its output: {}",
            std::fs::read_to_string(work.join("stderr.log")).unwrap_or_default()
        );
    }

    eprintln!(
        "bench: {}: storm of {} machines",
        server.name(),
        s.plan.machines
    );
    let cpu_before = reports::cpu_seconds(pid);
    let storm = storm(&bed, &bins.lab, s)?;
    let storm_cpu_s = match (cpu_before, reports::cpu_seconds(pid)) {
        (Ok(a), Ok(b)) => Some(b - a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("bench: {}: no CPU time: {e:#}", server.name());
            None
        }
    };
    let macs = work.join("macs.txt");
    std::fs::write(&macs, s.plan.mac_list())?;
    let replies = || {
        (!server.is_peer())
            .then(|| stormboot_replies(&bed, &bins.daemon))
            .flatten()
    };
    let client = |program: &str| bed.command(Side::Client, program);
    let reservations = ramp(
        &client,
        server.name(),
        &s.reservation_rates,
        s.step,
        &replies,
        |c, _| {
            c.arg("-M").arg(&macs).arg(servers::SERVER_ADDR.to_string());
        },
    )?;
    let pool = ramp(
        &client,
        server.name(),
        &s.pool_rates,
        s.step,
        &replies,
        |c, i| {
            new_clients(c, i);
            c.arg(servers::SERVER_ADDR.to_string());
        },
    )?;

    stop_server(&mut bed, pid, server, &work)?;
    Ok(Measured {
        storm,
        storm_cpu_s,
        reservations,
        pool,
    })
}

/// Starts `bin serve --config <config>` in the server namespace, its log in
/// `<work>/stormboot.log`, and waits up to `timeout` for its API to answer;
/// its PID.
fn start_stormboot(
    bed: &mut Testbed,
    bin: &Path,
    config: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<u32> {
    let mut serve = Command::new(bin);
    serve
        .args(["--log", "warn", "serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.join("stormboot.log"))?);
    let pid = bed.spawn(Side::Server, serve)?;
    let up = || {
        let mut c = Command::new(bin);
        c.args(["stats", "--json", "--config"]).arg(config);
        bed.run(Side::Server, c).ok().map(|_| ())
    };
    if wait_for(timeout, up).is_none() {
        bail!(
            "stormboot did not come up:\n{}",
            std::fs::read_to_string(work.join("stormboot.log")).unwrap_or_default()
        );
    }
    Ok(pid)
}

/// The lab's /24 becomes the plan's /12 on both ends; perfdhcp relays from
/// the client end's address.
/// Stops the server measured in `work`: an error if it exited during the
/// run (with its stderr), or, for stormboot, if it did not stop cleanly.
pub(crate) fn stop_server(bed: &mut Testbed, pid: u32, server: Server, work: &Path) -> Result<()> {
    if let Some(status) = bed.wait(pid, Duration::ZERO)? {
        bail!(
            "exited ({status}) during the run: {}",
            std::fs::read_to_string(work.join("stderr.log")).unwrap_or_default()
        );
    }
    let status = bed.stop(pid)?;
    if !server.is_peer() && !status.success() {
        bail!("stormboot exited with {status}");
    }
    Ok(())
}

fn widen_addresses(bed: &Testbed) -> Result<()> {
    let p = servers::PREFIX_LEN;
    for (side, args) in [
        (
            Side::Server,
            vec![
                "addr".to_string(),
                "del".into(),
                format!("{}/24", servers::SERVER_ADDR),
                "dev".into(),
                SERVER_IF.into(),
            ],
        ),
        (
            Side::Server,
            vec![
                "addr".into(),
                "add".into(),
                format!("{}/{p}", servers::SERVER_ADDR),
                "dev".into(),
                SERVER_IF.into(),
            ],
        ),
        (
            Side::Client,
            vec![
                "addr".into(),
                "add".into(),
                format!("{}/{p}", servers::RELAY_ADDR),
                "dev".into(),
                CLIENT_IF.into(),
            ],
        ),
    ] {
        let mut ip = Command::new("ip");
        ip.args(&args);
        bed.run(side, ip)?;
    }
    Ok(())
}

/// One machine with a reservation asks until it is bound: the server is
/// up and answers.
fn probe(bed: &mut Testbed, lab: &Path, pid: u32) -> Result<bool> {
    let mut exited = false;
    let bound = wait_for(Duration::from_secs(30), || {
        if matches!(bed.wait(pid, Duration::ZERO), Ok(Some(_))) {
            exited = true;
            return Some(false);
        }
        let mut c = Command::new(lab);
        c.args(["--log", "warn", "storm", "--json", "--interface", CLIENT_IF]);
        c.args(["--count", "1", "--first-mac", servers::PROBE_MAC]);
        c.args(["--expect-first-ip", &servers::PROBE_IP.to_string()]);
        c.args(["--timeout-ms", "300", "--jitter-ms", "0", "--tries", "1"]);
        let out = bed.run(Side::Client, c).ok()?;
        let r: reports::StormReport = reports::decode("the probe", &out.stdout).ok()?;
        (r.bound == 1 && r.wrong_address == 0).then_some(true)
    });
    Ok(bound == Some(true) && !exited)
}

/// The storm client on CLIENT_CPU: every reserved machine, full DORA.
fn storm(bed: &Testbed, lab: &Path, s: &Settings) -> Result<reports::StormReport> {
    let mut c = Command::new("taskset");
    c.args(["-c", CLIENT_CPU]).arg(lab);
    c.args(["--log", "warn", "storm", "--json", "--interface", CLIENT_IF]);
    c.args(["--count", &s.plan.machines.to_string()]);
    c.args(["--first-mac", &s.plan.mac(0)]);
    c.args(["--expect-first-ip", &s.plan.ip(0).to_string()]);
    c.args(["--window", &s.window.to_string()]);
    c.args(["--deadline-ms", &s.storm_deadline_ms.to_string()]);
    let out = bed
        .run(Side::Client, c)
        .context("the storm client failed")?;
    reports::decode("the storm client", &out.stdout)
}

/// `stormboot stats --json` of the daemon measured (its API on the bench's
/// address); None when it does not answer.
pub(crate) fn stormboot_stats(bed: &Testbed, bin: &Path) -> Option<Vec<u8>> {
    let mut c = Command::new(bin);
    c.args([
        "--log",
        "warn",
        "stats",
        "--json",
        "--api",
        "127.0.0.1:8067",
    ]);
    bed.run(Side::Server, c).ok().map(|out| out.stdout)
}

/// Every reply stormboot counts as sent: the XDP program's and the
/// userspace dataplane's.
fn stormboot_replies(bed: &Testbed, bin: &Path) -> Option<u64> {
    let s: serde_json::Value = serde_json::from_slice(&stormboot_stats(bed, bin)?).ok()?;
    let xdp: u64 = ["offer", "ack", "nak"]
        .iter()
        .map(|k| s["xdp"][k].as_u64().unwrap_or(0))
        .sum();
    let user: u64 = s["slow_path_replies"]
        .as_object()
        .map(|o| o.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    Some(xdp + user)
}

/// A command run in the client namespace (where the load generators
/// run): the testbed's or the cluster's.
type ClientCommand<'a> = &'a dyn Fn(&str) -> Command;

/// perfdhcp's arguments for step `step` of a ramp of new clients: MACs no
/// earlier step (and no reservation) used.
fn new_clients(c: &mut Command, step: usize) {
    c.args([
        "-R",
        "1000000",
        "-b",
        &format!("mac=02:{:02x}:00:00:00:00", step + 1),
    ]);
}

/// The client namespace's Udp RcvbufErrors counter (/proc/net/snmp shows
/// the reader's namespace).
fn rcvbuf_errors(client: ClientCommand) -> Option<u64> {
    let mut c = client("cat");
    c.arg("/proc/net/snmp");
    let out = c.output().ok().filter(|o| o.status.success())?;
    snmp_counter(
        &String::from_utf8_lossy(&out.stdout),
        "Udp:",
        "RcvbufErrors",
    )
}

/// A counter of /proc/net/snmp: a header line and a value line per protocol.
fn snmp_counter(text: &str, proto: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(proto));
    let header = lines.next()?;
    let values = lines.next()?;
    let i = header.split_whitespace().position(|h| h == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// perfdhcp on CLIENT_CPU in the client namespace at each rate until a
/// step drops more than 1% or perfdhcp cannot keep up; `extra` adds the
/// scenario's arguments for step i, the server's address last (none:
/// broadcast).
fn ramp(
    client: ClientCommand,
    name: &str,
    rates: &[u32],
    length: StepLength,
    replies: &dyn Fn() -> Option<u64>,
    extra: impl Fn(&mut Command, usize),
) -> Result<(Vec<Step>, RampEnd)> {
    let mut steps = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        let mut cmd = client("taskset");
        cmd.args(["-c", CLIENT_CPU, "perfdhcp", "-4", "-l", CLIENT_IF]);
        cmd.args(["-r", &rate.to_string()]);
        // Replies to the last requests still count (microseconds).
        cmd.args(["-W", "250000"]);
        let period = match length {
            StepLength::Seconds(p) => {
                cmd.args(["-p", &p.to_string()]);
                f64::from(p)
            }
            StepLength::Exchanges(n) => {
                cmd.args(["-n", &n.to_string()]);
                f64::from(n) / f64::from(rate)
            }
        };
        extra(&mut cmd, i);
        eprintln!("bench: {name}: perfdhcp at {rate}/s");
        // perfdhcp exits non-zero when anything dropped: its report is
        // what counts, so read it whatever the status.
        let before = (replies(), rcvbuf_errors(client));
        let out = cmd.output().context("running perfdhcp")?;
        let mut step = perfdhcp::parse(rate, period, &String::from_utf8_lossy(&out.stdout))
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        step.server_replies = before.0.zip(replies()).map(|(a, b)| b.saturating_sub(a));
        step.client_rcvbuf_drops = before
            .1
            .zip(rcvbuf_errors(client))
            .map(|(a, b)| b.saturating_sub(a));
        let end = perfdhcp::ramp_end(&step);
        steps.push(step);
        if let Some(end) = end {
            return Ok((steps, end));
        }
    }
    Ok((steps, RampEnd::Exhausted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_counters_are_read_by_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 10 0 3 12 3 0\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 9\n";
        assert_eq!(snmp_counter(text, "Udp:", "RcvbufErrors"), Some(3));
        assert_eq!(snmp_counter(text, "Udp:", "OutDatagrams"), Some(12));
        assert_eq!(snmp_counter(text, "Udp:", "Nothing"), None);
    }

    #[test]
    fn the_smoke_run_fails_when_a_server_does_not_answer() {
        let args = BenchArgs {
            period: 1,
            machines: 50,
            window: 64,
            control_plane: 1000,
            only: Vec::new(),
            e2e_runs: 1,
            smoke: true,
            dir: PathBuf::new(),
            bin: None,
            lab: None,
        };
        let settings = Settings::new(&args).unwrap();
        let step = |acks| Step {
            rate: 200,
            period: 0.5,
            sent: 100,
            acks,
            ..Step::default()
        };
        let measured = |bound: u32, acks: u64| Measured {
            storm: reports::StormReport {
                machines: 50,
                bound,
                ..Default::default()
            },
            storm_cpu_s: None,
            reservations: (vec![step(acks)], RampEnd::Exhausted),
            pool: (vec![step(100)], RampEnd::Exhausted),
        };
        let ok = |server| Outcome {
            server,
            result: Ok(measured(50, 100)),
        };
        assert!(smoke_verdict(&[ok(Server::Kea), ok(Server::Dhcpd)], &settings, None).is_ok());
        for bad in [
            Outcome {
                server: Server::Dnsmasq,
                result: Ok(measured(49, 100)),
            },
            Outcome {
                server: Server::Dnsmasq,
                result: Ok(measured(50, 0)),
            },
            Outcome {
                server: Server::Dnsmasq,
                result: Err("did not answer the probe".into()),
            },
        ] {
            let err = smoke_verdict(&[ok(Server::Kea), bad], &settings, None).unwrap_err();
            assert!(err.to_string().contains("dnsmasq"), "{err}");
        }
        let cp = anyhow::anyhow!("stormboot was not serving");
        assert!(smoke_verdict(&[ok(Server::Kea)], &settings, Some(&cp)).is_err());
    }
}
