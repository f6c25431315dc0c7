//! `storm-e2e`: the whole boot storm, end to end. The same machines (BIOS
//! PXE, UEFI PXE and UEFI HTTP boot in turn), the same files (Debian's iPXE
//! binaries, a generated kernel and initrd) and the same lab for each
//! server: stormboot alone, dnsmasq with nginx, Kea 2.2 with tftpd-hpa and
//! nginx (`stormboot_testbed::bootlab` configures them). Then each path
//! alone (`Alone`): every machine downloads the initrd over HTTP at once,
//! from stormboot and from nginx; every machine reads its boot file over
//! TFTP at once, from stormboot, dnsmasq and tftpd-hpa. The servers run on
//! SERVER_CPU, the client on CLIENT_CPU.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use stormboot_testbed::bootlab::{self, BootFiles, BootServer};
use stormboot_testbed::{Side, Testbed, CLIENT_IF, SERVER_ADDR};

use super::reports::{self, ChainReport, DownloadReport};
use super::servers::{CLIENT_CPU, SERVER_CPU};
use super::Bins;

/// How big a run is.
pub struct Size {
    pub machines: u32,
    pub kernel_bytes: u64,
    pub initrd_bytes: u64,
    pub deadline_s: u64,
    /// Runs of every server, taken in turn; each server's median run is
    /// the one compared.
    pub runs: u32,
}

/// One server's median run, and each of its runs' figure.
pub struct Row<T = ChainReport> {
    pub server: BootServer,
    pub result: Result<T, String>,
    /// Each run's figure, in the order they ran, as its column shows it.
    pub runs: Vec<String>,
}

/// A run's report, as the median picks it and the runs column shows it.
trait Ranked {
    /// The run's figure in the runs column.
    fn shown(&self) -> String;
    /// `Less` when this run is the better one.
    fn rank(&self, other: &Self) -> std::cmp::Ordering;
}

impl Ranked for ChainReport {
    fn shown(&self) -> String {
        shown_time(self)
    }
    /// More machines booted, then sooner done.
    fn rank(&self, other: &Self) -> std::cmp::Ordering {
        other
            .booted
            .cmp(&self.booted)
            .then(self.elapsed_ms.total_cmp(&other.elapsed_ms))
    }
}

impl Ranked for DownloadReport {
    /// With the CPU the server and the client used, in seconds: which core
    /// did the kernel's TCP work moves a run's figure.
    fn shown(&self) -> String {
        let cpu = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.1}"));
        let split = format!(
            "{}/{}",
            cpu(self.server.as_ref().map(|s| s.cpu_s)),
            cpu(self.client_cpu_s)
        );
        match self.failed {
            0 => format!("{:.0} ({split})", self.transfers.mb_per_s),
            n => format!("({:.0}, {n} failed; {split})", self.transfers.mb_per_s),
        }
    }
    /// More downloads completed, then more bytes a second.
    fn rank(&self, other: &Self) -> std::cmp::Ordering {
        other
            .transfers
            .files
            .cmp(&self.transfers.files)
            .then(other.transfers.mb_per_s.total_cmp(&self.transfers.mb_per_s))
    }
}

/// `servers` in turn, `runs` rounds, each run by `one` on a fresh lab: one
/// slow moment of the shared machine (or of a peer) then moves one run,
/// not the comparison. Each server's median run.
fn take_turns<T: Ranked>(
    servers: &[BootServer],
    runs: u32,
    what: &str,
    mut one: impl FnMut(BootServer) -> Result<T>,
) -> Vec<Row<T>> {
    let mut all: Vec<(BootServer, Vec<Result<T, String>>)> =
        servers.iter().map(|&s| (s, Vec::new())).collect();
    for round in 1..=runs {
        for (server, results) in &mut all {
            if runs > 1 {
                eprintln!("bench: {what}: run {round} of {runs}");
            }
            let result = match server.unavailable() {
                Some(why) => Err(format!("not available: {why}")),
                None => one(*server).map_err(|e| format!("{e:#}")),
            };
            if let Err(e) = &result {
                eprintln!("bench: {what}: {}: {e}", server.name());
            }
            results.push(result);
        }
    }
    all.into_iter()
        .map(|(server, results)| median(server, results))
        .collect()
}

/// Every server through the whole chain, `size.runs` rounds in turn.
pub fn measure(dir: &Path, bins: &Bins, size: &Size) -> Result<Vec<Row>> {
    let files = BootFiles::prepare(&dir.join("e2e-files"), size.kernel_bytes, size.initrd_bytes)?;
    Ok(take_turns(
        &bootlab::ALL,
        size.runs,
        "storm-e2e",
        |server| one(server, dir, bins, &files, size),
    ))
}

/// The run in the middle when the runs are ordered best first; a run that
/// failed outright last.
fn median<T: Ranked>(server: BootServer, results: Vec<Result<T, String>>) -> Row<T> {
    let runs = results
        .iter()
        .map(|r| match r {
            Ok(r) => r.shown(),
            Err(_) => "failed".into(),
        })
        .collect();
    let mut ranked = results;
    ranked.sort_by(|a, b| match (a, b) {
        (Ok(a), Ok(b)) => a.rank(b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => std::cmp::Ordering::Equal,
    });
    let mid = ranked.len() / 2;
    let result = ranked
        .into_iter()
        .nth(mid)
        .unwrap_or_else(|| Err("no run".into()));
    Row {
        server,
        result,
        runs,
    }
}

/// Seconds until every machine booted, or, when some failed, when the
/// last one that did was done, marked so: never a ratio.
fn shown_time(r: &ChainReport) -> String {
    all_booted_s(r).map_or_else(
        || format!("({:.2} for {})", r.elapsed_ms / 1e3, r.booted),
        |s| format!("{s:.2}"),
    )
}

fn one(
    server: BootServer,
    dir: &Path,
    bins: &Bins,
    files: &BootFiles,
    size: &Size,
) -> Result<ChainReport> {
    eprintln!("bench: storm-e2e: {}: starting", server.name());
    let machines = bootlab::machines(size.machines);
    let args = [
        "--interface",
        CLIENT_IF,
        "--first-mac",
        &machines.mac(0),
        "--expect-first-ip",
        &machines.ip(0).to_string(),
    ]
    .map(String::from);
    on_fresh_lab(
        server,
        &dir.join(format!("e2e-{}", server.key())),
        bins,
        files,
        size,
        ("the boot-chain client", "chain"),
        &args,
    )
}

/// Starts `server` on a fresh lab (its files in `work`), runs the lab's
/// `client` command (a name for errors, the subcommand) for `size`'s
/// machines with `args` on CLIENT_CPU in the client namespace, told the
/// server's PIDs, and decodes the JSON report it prints.
fn on_fresh_lab<T: serde::de::DeserializeOwned>(
    server: BootServer,
    work: &Path,
    bins: &Bins,
    files: &BootFiles,
    size: &Size,
    (client, command): (&str, &str),
    args: &[String],
) -> Result<T> {
    let _ = std::fs::remove_dir_all(work);
    let mut bed = Testbed::new("e2e", None)?;
    bed.route_machines()?;
    let pids = server.start(
        &mut bed,
        work,
        files,
        size.machines,
        &bins.daemon,
        &["taskset", "-c", SERVER_CPU],
    )?;
    let mut c = Command::new("taskset");
    c.args(["-c", CLIENT_CPU]).arg(&bins.lab);
    c.args(["--log", "warn", command, "--json"]).args(args);
    c.args(["--count", &size.machines.to_string()]);
    c.args(["--deadline-s", &size.deadline_s.to_string()]);
    for p in &pids {
        c.args(["--server-pid", &p.to_string()]);
    }
    let out = bed.run(Side::Client, c);
    drop(bed);
    reports::decode(
        client,
        &out.with_context(|| format!("{client} failed"))?.stdout,
    )
}

/// A path measured alone: every machine's download starts at the same
/// moment. In the chain, when each machine starts its downloads depends on
/// the DHCP and the boot file before them; here it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alone {
    /// Every machine downloads the initrd over HTTP.
    Http,
    /// Every machine reads its boot file over TFTP.
    Tftp,
}

impl Alone {
    /// The servers compared: stormboot and nginx as the Kea set runs it
    /// (dnsmasq's set runs the same nginx); for TFTP every set, each with
    /// its own TFTP server.
    fn servers(self) -> &'static [BootServer] {
        match self {
            Alone::Http => &[BootServer::Stormboot, BootServer::Kea],
            Alone::Tftp => &bootlab::ALL,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Alone::Http => "HTTP alone",
            Alone::Tftp => "TFTP alone",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Alone::Http => "http",
            Alone::Tftp => "tftp",
        }
    }

    /// Its name in `--only`.
    pub fn part(self) -> &'static str {
        match self {
            Alone::Http => "http-alone",
            Alone::Tftp => "tftp-alone",
        }
    }

    /// The server of `set` that serves this path.
    fn server_name(self, set: BootServer) -> &'static str {
        match (self, set) {
            (_, BootServer::Stormboot) => "stormboot",
            (Alone::Http, _) => "nginx",
            (Alone::Tftp, BootServer::Dnsmasq) => "dnsmasq",
            (Alone::Tftp, BootServer::Kea) => "tftpd-hpa",
        }
    }

    /// The client's arguments besides the machines' count.
    fn client_args(self, first_ip: &str) -> Vec<String> {
        let what = match self {
            Alone::Http => [
                "--url".to_string(),
                format!("http://{SERVER_ADDR}/artifacts/{}", bootlab::INITRD),
            ],
            Alone::Tftp => ["--tftp".to_string(), SERVER_ADDR.to_string()],
        };
        what.into_iter()
            .chain(["--first-ip".to_string(), first_ip.to_string()])
            .collect()
    }
}

/// `path` alone for every server of it, `size.runs` rounds in turn.
pub fn measure_alone(
    dir: &Path,
    bins: &Bins,
    size: &Size,
    path: Alone,
) -> Result<Vec<Row<DownloadReport>>> {
    let files = BootFiles::prepare(&dir.join("e2e-files"), size.kernel_bytes, size.initrd_bytes)?;
    Ok(take_turns(
        path.servers(),
        size.runs,
        &format!("storm-e2e, {}", path.title()),
        |server| {
            let machines = bootlab::machines(size.machines);
            on_fresh_lab(
                server,
                &dir.join(format!("{}-{}", path.key(), server.key())),
                bins,
                &files,
                size,
                ("the download client", "downloads"),
                &path.client_args(&machines.ip(0).to_string()),
            )
        },
    ))
}

/// The table of a path alone.
pub fn alone_markdown(rows: &[Row<DownloadReport>], size: &Size, path: Alone) -> String {
    let peer = rows
        .iter()
        .filter(|r| r.server != BootServer::Stormboot)
        .filter_map(|r| r.result.as_ref().ok())
        .filter(|d| d.transfers.files > 0)
        .map(|d| d.transfers.mb_per_s)
        .max_by(f64::total_cmp);
    let what = match path {
        Alone::Http => format!(
            "{} machines download the {} initrd at the same moment, each from its own \
             address with the chain's HTTP client (`stormboot-lab downloads --url`), from \
             stormboot and from nginx (started as in the Kea set, whose CPU and memory the \
             nginx row's figures are)",
            size.machines,
            bytes(size.initrd_bytes)
        ),
        Alone::Tftp => format!(
            "{} machines read their boot file over TFTP at the same moment, each from its \
             own address with the chain's TFTP client (`stormboot-lab downloads --tftp`), \
             BIOS PXE (undionly.kpxe: blksize 1432, tsize, a 1 s timeout) and UEFI PXE \
             (ipxe.efi: a tsize probe, then blksize 1468 and windowsize 4, a 4 s timeout) \
             in turn, 6 tries a packet; from stormboot, dnsmasq (`tftp-max` at its default \
             of 50) and tftpd-hpa (as the Kea set runs it, `--secure`). tftpd-hpa's CPU and memory \
             are its listening process's alone: it forks a process per transfer and \
             does not wait for them (SA_NOCLDWAIT), so their time is counted nowhere. A peer that failed machines is compared on the transfers it \
             completed, which flatters it",
            size.machines
        ),
    };
    // Retries are TFTP's: an HTTP download has none of its own.
    let tftp = path == Alone::Tftp;
    let resent = if tftp { " TFTP packets resent |" } else { "" };
    let mut t = format!(
        "{what}; servers on CPU {SERVER_CPU}, the client on CPU {CLIENT_CPU}. MB/s is the \
         bytes over the time from the first transfer's start to the last one's end; each \
         server's median run. Beside each run's MB/s, the CPU seconds the server's processes \
         and the client's used over it: a veth runs the receiving end's softirq on the \
         sending CPU, so how the kernel's work split between the two cores moves the \
         figure.\n\n\
         | server | transfers | failed |{resent} MB/s | vs best peer | each run: MB/s (server/client CPU s) | server CPU (s) | server RSS peak (MB) |\n\
         |---|---|---|{}---|---|---|---|---|\n",
        if tftp { "---|" } else { "" }
    );
    for r in rows {
        let name = path.server_name(r.server);
        match &r.result {
            Ok(d) => {
                let (cpu, rss) = d.server.as_ref().map_or(("-".into(), "-".into()), |s| {
                    (
                        format!("{:.1}", s.cpu_s),
                        format!("{}", s.rss_peak_kb / 1024),
                    )
                });
                let vs = ratio(Some(d.transfers.mb_per_s), peer);
                let resent = if tftp {
                    format!(" {} |", d.tftp_retries)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    t,
                    "| {name} | {} / {} | {} |{resent} {:.1} | {vs} | {} | {cpu} | {rss} |",
                    d.transfers.files,
                    d.machines,
                    d.failed,
                    d.transfers.mb_per_s,
                    r.runs.join(", ")
                );
            }
            Err(e) => {
                let empty = if tftp { 7 } else { 6 };
                let _ = writeln!(t, "| {name} | failed: {e} |{}", " |".repeat(empty));
            }
        }
    }
    for r in rows {
        if let Ok(DownloadReport {
            failed: 1..,
            example_failure: Some(e),
            ..
        }) = &r.result
        {
            let _ = writeln!(t, "\n{}: {e}", path.server_name(r.server));
        }
    }
    t
}

/// `value / best peer`, or "-" without a peer figure.
fn ratio(value: Option<f64>, peer: Option<f64>) -> String {
    match (value, peer) {
        (Some(v), Some(p)) if p > 0.0 => format!("{:.2}x", v / p),
        _ => "-".into(),
    }
}

/// Seconds until every machine booted; None unless all did.
fn all_booted_s(r: &ChainReport) -> Option<f64> {
    r.all_booted().then_some(r.elapsed_ms / 1e3)
}

/// The peer that booted the most machines (the sooner done on a tie):
/// how many, and the seconds until its last one was done.
fn most_booted_peer(rows: &[Row]) -> Option<(u32, f64)> {
    rows.iter()
        .filter(|r| r.server != BootServer::Stormboot)
        .filter_map(|r| r.result.as_ref().ok())
        .filter(|r| r.booted > 0)
        .map(|r| (r.booted, r.elapsed_ms / 1e3))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
}

fn best(rows: &[Row], f: impl Fn(&ChainReport) -> Option<f64>, min: bool) -> Option<f64> {
    let it = rows
        .iter()
        .filter(|r| r.server != BootServer::Stormboot)
        .filter_map(|r| f(r.result.as_ref().ok()?));
    if min {
        it.min_by(f64::total_cmp)
    } else {
        it.max_by(f64::total_cmp)
    }
}

/// "8 MB" or "64 KB" (binary units, as the sizes are given).
fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MB", n >> 20)
    } else {
        format!("{} KB", n >> 10)
    }
}

pub fn markdown(rows: &[Row], size: &Size) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} machines (BIOS PXE, UEFI PXE, UEFI HTTP boot in turn), {} kernel and \
         {} initrd, servers on CPU {SERVER_CPU}, the chain client on CPU {CLIENT_CPU}; \
         \"vs best peer\" is the best peer's time over this one's (peers that booted \
         every machine only), or this one's throughput over the best peer's. A time in \
         parentheses is when the last machine that did boot was done. \"N booted in\" \
         is the time until as many machines had booted as the peer that booted the most \
         (N, its time for them beside this one's time for its first N), so a run where \
         a peer failed machines still has a side-by-side figure. With several runs (each \
         run (s), in the order they ran, the servers taking turns) every figure is from \
         each server's median run: the middle one when its runs are ordered by machines \
         booted, then by time.\n",
        size.machines,
        bytes(size.kernel_bytes),
        bytes(size.initrd_bytes)
    );
    let _ = writeln!(
        t,
        "| server | booted | all booted in (s) | vs best peer | each run (s) | {} booted in (s) | vs best peer | failed | DHCP resent | TFTP retries | TFTP boot files MB/s | vs best peer | HTTP (scripts, kernels, initrds) MB/s | vs best peer | server CPU (s) | server RSS peak (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        most_booted_peer(rows).map_or("N".into(), |(n, _)| n.to_string())
    );
    let peer_time = best(rows, all_booted_s, true);
    let peer_n = most_booted_peer(rows);
    let tftp = |r: &ChainReport| (r.tftp.files > 0).then_some(r.tftp.mb_per_s);
    let http = |r: &ChainReport| (r.artifacts.files > 0).then_some(r.artifacts.mb_per_s);
    let peer_tftp = best(rows, tftp, false);
    let peer_http = best(rows, http, false);
    for row in rows {
        let r = match &row.result {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(
                    t,
                    "| {} | {} | | | {} | | | | | | | | | | | |",
                    row.server.name(),
                    e.lines().next().unwrap_or_default(),
                    row.runs.join(", ")
                );
                continue;
            }
        };
        let mine = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let time = all_booted_s(r);
        let vs_time = match (time, peer_time) {
            (Some(a), Some(p)) if a > 0.0 => format!("{:.2}x", p / a),
            _ => "-".into(),
        };
        let n_time = peer_n.and_then(|(n, _)| r.booted_s(n));
        let vs_n = match (n_time, peer_n) {
            (Some(a), Some((_, p))) if a > 0.0 => format!("{:.2}x", p / a),
            _ => "-".into(),
        };
        let (cpu, rss) = r.server.as_ref().map_or(("-".into(), "-".into()), |s| {
            (
                format!("{:.1}", s.cpu_s),
                format!("{}", s.rss_peak_kb / 1024),
            )
        });
        let _ = writeln!(
            t,
            "| {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.server.name(),
            r.booted,
            r.machines,
            shown_time(r),
            vs_time,
            row.runs.join(", "),
            n_time.map_or("-".into(), |s| format!("{s:.2}")),
            vs_n,
            r.failed,
            r.dhcp_resent,
            r.tftp_retries,
            mine(tftp(r)),
            ratio(tftp(r), peer_tftp),
            mine(http(r)),
            ratio(http(r), peer_http),
            cpu,
            rss
        );
    }
    let _ = writeln!(
        t,
        "\nPer phase, milliseconds p50 / p95 / p99 (over the machines that finished it):\n"
    );
    let _ = write!(t, "| server |");
    for p in reports::CHAIN_PHASES {
        let _ = write!(t, " {p} |");
    }
    let _ = writeln!(t, "\n|---|{}", "---|".repeat(reports::CHAIN_PHASES.len()));
    for row in rows {
        let Ok(r) = &row.result else { continue };
        let _ = write!(t, "| {} |", row.server.name());
        for p in reports::CHAIN_PHASES {
            match r.phase(p) {
                Some(s) => {
                    let _ = write!(t, " {:.0} / {:.0} / {:.0} |", s.p50_ms, s.p95_ms, s.p99_ms);
                }
                None => {
                    let _ = write!(t, " - |");
                }
            }
        }
        let _ = writeln!(t);
    }
    for row in rows {
        if let Ok(r) = &row.result {
            for f in &r.failures {
                let _ = writeln!(
                    t,
                    "\n{}: {} machines failed in {} (e.g. {})",
                    row.server.name(),
                    f.machines,
                    f.phase,
                    f.example
                );
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    use stormboot_testbed::reports::Transfers;

    /// A run of `downloads`: `files` done, `failed` not, at `mb_per_s`.
    fn download(files: u32, failed: u32, mb_per_s: f64) -> DownloadReport {
        DownloadReport {
            machines: files + failed,
            failed,
            transfers: Transfers {
                files,
                mb_per_s,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Ten machines, small files, one run.
    fn small() -> Size {
        Size {
            machines: 10,
            kernel_bytes: 1 << 20,
            initrd_bytes: 4 << 20,
            deadline_s: 60,
            runs: 1,
        }
    }

    #[test]
    fn the_median_download_run_has_the_most_downloads_then_the_most_bytes() {
        let run = |files, failed, mb_per_s| Ok(download(files, failed, mb_per_s));
        let row = median(
            BootServer::Stormboot,
            vec![
                run(1000, 0, 300.0),
                run(990, 10, 500.0),
                run(1000, 0, 100.0),
            ],
        );
        // Best first: 300, 100 (all downloaded), 500 for 990.
        assert_eq!(row.result.unwrap().transfers.mb_per_s, 100.0);
        assert_eq!(
            row.runs,
            ["300 (-/-)", "(500, 10 failed; -/-)", "100 (-/-)"]
        );
        let row = median(
            BootServer::Stormboot,
            vec![Err("no lab".into()), run(1000, 0, 200.0)],
        );
        assert!(row.result.is_err());
        assert_eq!(row.runs, ["failed", "200 (-/-)"]);
        let measured = DownloadReport {
            server: Some(stormboot_testbed::reports::ServerUse {
                cpu_s: 5.06,
                ..Default::default()
            }),
            client_cpu_s: Some(9.84),
            ..download(1000, 0, 2229.4)
        };
        assert_eq!(measured.shown(), "2229 (5.1/9.8)");
    }

    #[test]
    fn a_path_alone_is_compared_with_its_fastest_peer_on_what_that_peer_served() {
        let run = |files, failed, mb_per_s| Row {
            server: BootServer::Stormboot,
            result: Ok(download(files, failed, mb_per_s)),
            runs: vec!["r".into()],
        };
        let size = small();
        let rows = [
            run(10, 0, 200.0),
            // The fastest peer failed machines: it is still the one compared.
            Row {
                server: BootServer::Dnsmasq,
                ..run(8, 2, 50.0)
            },
            Row {
                server: BootServer::Kea,
                ..run(10, 0, 40.0)
            },
        ];
        let t = alone_markdown(&rows, &size, Alone::Tftp);
        assert!(
            t.contains("| stormboot | 10 / 10 | 0 | 0 | 200.0 | 4.00x |"),
            "{t}"
        );
        assert!(
            t.contains("| dnsmasq | 8 / 10 | 2 | 0 | 50.0 | 1.00x |"),
            "{t}"
        );
        assert!(
            t.contains("| tftpd-hpa | 10 / 10 | 0 | 0 | 40.0 | 0.80x |"),
            "{t}"
        );
        let t = alone_markdown(&rows[..2], &size, Alone::Http);
        assert!(t.contains("| nginx | 8 / 10 | 2 | 50.0 | 1.00x |"), "{t}");
        // Every line of each table has as many columns as its header, a
        // server that did not run included.
        let mut rows = rows;
        rows[2].result = Err("no lab".into());
        for path in [Alone::Http, Alone::Tftp] {
            let t = alone_markdown(&rows, &size, path);
            let widths: Vec<usize> = t
                .lines()
                .filter(|l| l.starts_with('|'))
                .map(|l| l.matches('|').count())
                .collect();
            assert!(
                widths.len() == 5 && widths.iter().all(|&w| w == widths[0]),
                "{t}"
            );
        }
    }

    #[test]
    fn ratios_compare_with_the_best_peer_and_skip_incomplete_runs() {
        // Machine i booted at (i + 1) / booted of the run's time.
        let report = |booted: u32, secs: f64, tftp: f64| ChainReport {
            machines: 10,
            booted,
            failed: 10 - booted,
            elapsed_ms: secs * 1e3,
            booted_ms: (1..=booted)
                .map(|i| secs * 1e3 * f64::from(i) / f64::from(booted))
                .collect(),
            tftp: Transfers {
                files: 5,
                mb_per_s: tftp,
                ..Default::default()
            },
            ..Default::default()
        };
        let rows = [
            Row {
                server: BootServer::Stormboot,
                result: Ok(report(10, 2.0, 90.0)),
                runs: vec!["r".into()],
            },
            Row {
                server: BootServer::Dnsmasq,
                result: Ok(report(10, 8.0, 30.0)),
                runs: vec!["r".into()],
            },
            // Faster, but not every machine booted: no time to compare.
            Row {
                server: BootServer::Kea,
                result: Ok(report(9, 1.0, 10.0)),
                runs: vec!["r".into()],
            },
        ];
        let md = markdown(&rows, &small());
        assert!(md.starts_with("10 machines"), "{md}");
        assert!(md.contains("1 MB kernel and 4 MB initrd"), "{md}");
        assert_eq!(bytes(64 << 10), "64 KB");
        let line = md.lines().find(|l| l.starts_with("| stormboot")).unwrap();
        // dnsmasq booted the most (all 10): both figures compare with it.
        assert!(
            line.contains("| 2.00 | 4.00x | r | 2.00 | 4.00x |"),
            "{line}"
        );
        assert!(line.contains("| 90.0 | 3.00x |"), "{line}");
        let kea = md.lines().find(|l| l.starts_with("| Kea")).unwrap();
        assert!(
            kea.contains("9 / 10 | (1.00 for 9) | - | r | - | - |"),
            "{kea}"
        );
    }

    #[test]
    fn without_a_complete_peer_the_time_for_its_count_still_compares() {
        let report = |booted: u32, done_ms: Vec<f64>| ChainReport {
            machines: 10,
            booted,
            failed: 10 - booted,
            elapsed_ms: done_ms.last().copied().unwrap_or(0.0),
            booted_ms: done_ms,
            ..Default::default()
        };
        let ms = |n: u32, each: f64| (1..=n).map(|i| f64::from(i) * each).collect::<Vec<_>>();
        let rows = [
            Row {
                server: BootServer::Stormboot,
                // Its 9th machine at 1.8 s, its last at 2.0 s.
                result: Ok(report(10, ms(10, 200.0))),
                runs: vec!["r".into()],
            },
            Row {
                server: BootServer::Dnsmasq,
                result: Ok(report(5, ms(5, 100.0))),
                runs: vec!["r".into()],
            },
            // The most booted: 9, the last at 5.4 s.
            Row {
                server: BootServer::Kea,
                result: Ok(report(9, ms(9, 600.0))),
                runs: vec!["r".into()],
            },
        ];
        let md = markdown(&rows, &small());
        assert!(md.contains("| 9 booted in (s) |"), "{md}");
        let line = md.lines().find(|l| l.starts_with("| stormboot")).unwrap();
        assert!(line.contains("| 2.00 | - | r | 1.80 | 3.00x |"), "{line}");
        let kea = md.lines().find(|l| l.starts_with("| Kea")).unwrap();
        assert!(
            kea.contains("(5.40 for 9) | - | r | 5.40 | 1.00x |"),
            "{kea}"
        );
        let dnsmasq = md.lines().find(|l| l.starts_with("| dnsmasq")).unwrap();
        assert!(
            dnsmasq.contains("(0.50 for 5) | - | r | - | - |"),
            "{dnsmasq}"
        );
    }

    #[test]
    fn the_median_run_is_compared_and_every_run_is_shown_in_order() {
        let report = |booted: u32, secs: f64| ChainReport {
            machines: 10,
            booted,
            failed: 10 - booted,
            elapsed_ms: secs * 1e3,
            ..Default::default()
        };
        let row = median(
            BootServer::Kea,
            vec![
                Ok(report(10, 30.0)),
                Ok(report(9, 5.0)),
                Err("timed out".into()),
                Ok(report(10, 20.0)),
                Ok(report(10, 90.0)),
            ],
        );
        // Best first: 20, 30, 90 s (all booted), 5 s for 9, the failure.
        assert_eq!(row.result.unwrap().elapsed_ms, 90e3);
        assert_eq!(
            row.runs,
            ["30.00", "(5.00 for 9)", "failed", "20.00", "90.00"]
        );
        let row = median(
            BootServer::Kea,
            vec![Ok(report(10, 30.0)), Ok(report(10, 20.0))],
        );
        assert_eq!(row.result.unwrap().elapsed_ms, 30e3);
    }
}
