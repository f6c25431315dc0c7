//! The control plane at scale: how long the daemon takes from start to
//! serving with N reservations from a CSV file (config parse, rendering,
//! map updates, verifier, attach), how much memory it keeps, and how much
//! kernel memory the program's maps take.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use stormboot_testbed::labconfig::LabConfig;
use stormboot_testbed::{Side, Testbed};

pub struct ControlPlane {
    pub reservations: u32,
    pub csv_bytes: u64,
    /// Start of the process to its "serving" line (XDP attached, every port
    /// listening).
    pub ready_s: f64,
    /// Each INFO line of the start-up, seconds after the process started.
    pub phases: Vec<(f64, String)>,
    /// The daemon's VmRSS (kB) when each of those lines was first seen
    /// (sampled every few ms, so approximate).
    pub rss_at_phase: Vec<u64>,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// Of `rss_kb`, the pages of the program's maps the daemon has mapped
    /// (the reservation table, the reply ring): kernel memory, counted in
    /// `map` too.
    pub mapped_kb: u64,
    /// VmRSS by kind (/proc/PID/status): private memory (heap, stacks),
    /// file-backed mappings (the binary, libraries, and the mapped maps,
    /// whose mappings are of a file of their own) and shared memory, kB.
    pub rss_by_kind: Option<[u64; 3]>,
    /// CPU time the daemon (every thread, user and system: the verifier
    /// and the map writes are system time) spent until serving: what the
    /// start-up costs however loaded the machine is.
    pub cpu_s: Option<f64>,
    /// The largest map's max_entries (RESERVATIONS, the table), and the
    /// kernel memory all the program's maps hold.
    pub map: Option<(u64, u64)>,
}

impl ControlPlane {
    pub fn markdown(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} reservations from a {:.1} MB CSV file (`reservations_file`), XDP dataplane:\n",
            self.reservations,
            self.csv_bytes as f64 / 1e6
        );
        let _ = writeln!(t, "| figure | value |\n|---|---|");
        let _ = writeln!(
            t,
            "| process start to serving (XDP attached) | {:.2} s |",
            self.ready_s
        );
        if let Some(cpu) = self.cpu_s {
            let _ = writeln!(
                t,
                "| daemon CPU time until serving (user + system, every thread) | {cpu:.2} s |"
            );
        }
        let _ = writeln!(
            t,
            "| daemon RSS when serving (VmRSS) | {:.0} MB |",
            self.rss_kb as f64 / 1024.0
        );
        let _ = writeln!(
            t,
            "| of it, the program's maps mapped into the daemon (the reservation table it writes, the reply ring it reads) | {:.0} MB |",
            self.mapped_kb as f64 / 1024.0
        );
        let _ = writeln!(
            t,
            "| the daemon's own memory (VmRSS less the mapped maps) | {:.0} MB |",
            self.rss_kb.saturating_sub(self.mapped_kb) as f64 / 1024.0
        );
        if let Some([anon, file, shmem]) = self.rss_by_kind {
            let mb = |kb: u64| kb as f64 / 1024.0;
            let _ = writeln!(
                t,
                "| VmRSS by kind: private (RssAnon: heap, stacks) / file-backed (RssFile: the binary, libraries, the mapped maps) / shared (RssShmem) | {:.0} / {:.0} / {:.0} MB |",
                mb(anon),
                mb(file),
                mb(shmem)
            );
        }
        let _ = writeln!(
            t,
            "| daemon peak RSS (VmHWM; the mapped maps included) | {:.0} MB |",
            self.hwm_kb as f64 / 1024.0
        );
        if let Some((entries, memlock)) = self.map {
            let _ = writeln!(
                t,
                "| the program's maps (kernel memory, the mapped ones included) | {:.0} MB (RESERVATIONS: {entries} slots) |",
                memlock as f64 / 1048576.0
            );
        }
        let _ = writeln!(
            t,
            "\nWhere the time goes (the daemon's INFO lines, seconds after start):\n"
        );
        let _ = writeln!(
            t,
            "| at (s) | step (s) | RSS then (MB) | line |\n|---|---|---|---|"
        );
        let mut last = 0.0;
        for (i, (at, line)) in self.phases.iter().enumerate() {
            let rss = self
                .rss_at_phase
                .get(i)
                .map_or("-".into(), |kb| format!("{:.0}", *kb as f64 / 1024.0));
            let _ = writeln!(
                t,
                "| {at:.3} | {:.3} | {rss} | {} |",
                at - last,
                line.replace('|', "/")
            );
            last = *at;
        }
        t
    }
}

/// Seconds since midnight UTC of a log line's RFC 3339 timestamp
/// ("2026-11-23T18:50:01.123456Z ...").
fn seconds_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The message of a tracing line: what follows "LEVEL target: ".
fn message(line: &str) -> Option<&str> {
    let rest = line.split_once(" INFO ")?.1;
    Some(rest.split_once(": ").map_or(rest, |(_, m)| m).trim())
}

/// INFO lines of the log as (seconds after `start_of_day`, message).
/// The start-up ends at the "serving" line.
fn phases(log: &str, start_of_day: f64) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    for l in log.lines() {
        let (Some(t), Some(m)) = (seconds_of_day(l), message(l)) else {
            continue;
        };
        out.push(((t - start_of_day).rem_euclid(86_400.0), m.to_string()));
        if m.starts_with("serving") {
            break;
        }
    }
    out
}

fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// max_entries of the process's largest hash map (the reservations), and
/// the memlock of all its maps together.
fn reservation_map(pid: u32) -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64)> = None;
    let mut total = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let link = std::fs::read_link(fd.path()).ok()?;
        if link.to_string_lossy() != "anon_inode:bpf-map" {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .ok()?;
        let field = |k: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse().ok())
        };
        let memlock = field("memlock:")?;
        total += memlock;
        if best.is_none_or(|(_, m)| memlock > m) {
            best = Some((field("max_entries:")?, memlock));
        }
    }
    best.map(|(e, _)| (e, total))
}

/// Resident kB of the process's mappings of BPF maps, from
/// /proc/PID/smaps: VmRSS counts them, though they are the maps' kernel
/// memory.
fn mapped_maps_kb(pid: u32) -> Result<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut in_map = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Rss:"), Some(v)) if in_map => kb += v.parse::<u64>()?,
            (Some(first), _) if first.contains('-') && !first.ends_with(':') => {
                in_map = line.ends_with("anon_inode:bpf-map")
            }
            _ => {}
        }
    }
    Ok(kb)
}

pub fn measure(dir: &Path, bin: &Path, n: u32) -> Result<ControlPlane> {
    let work = dir.join("control-plane");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut c = LabConfig::new(super::omapi::big_rack(n), "10.0.0.0/8");
    c.sections = "[api]\nlisten = \"127.0.0.1:8067\"\n".into();
    let config = c.write(&work)?;
    let csv_bytes = std::fs::metadata(work.join("hosts.csv"))?.len();

    let mut bed = Testbed::new("benchcp", None)?;
    let log_path = work.join("stormboot.log");
    // Not pinned: start-up renders on every CPU it has, as in service.
    let mut cmd = Command::new(bin);
    cmd.args(["--log", "info", "serve", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&log_path)?);
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let started = Instant::now();
    let pid = bed.spawn(Side::Server, cmd)?;
    let deadline = started + Duration::from_secs(180);
    let mut rss_at_phase = Vec::new();
    let log = loop {
        let rss = status_kb(pid, "VmRSS:").unwrap_or(0);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let seen = log.lines().filter(|l| message(l).is_some()).count();
        while rss_at_phase.len() < seen {
            rss_at_phase.push(rss);
        }
        if log
            .lines()
            .any(|l| message(l).is_some_and(|m| m.starts_with("serving")))
        {
            break log;
        }
        if let Some(status) = bed.wait(pid, Duration::ZERO)? {
            bail!("stormboot exited ({status}) before serving:\n{log}");
        }
        if Instant::now() > deadline {
            bail!("stormboot was not serving after 180 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !log.contains("dataplane=\"xdp\"") && !log.contains("dataplane=xdp") {
        bail!("stormboot is serving without XDP:\n{log}");
    }
    let start_of_day = epoch.rem_euclid(86_400.0);
    let phases = phases(&log, start_of_day);
    let ready_s = phases
        .iter()
        .find(|(_, m)| m.starts_with("serving"))
        .map(|(at, _)| *at)
        .context("no serving line")?;
    let (rss_kb, hwm_kb) = (status_kb(pid, "VmRSS:")?, status_kb(pid, "VmHWM:")?);
    let mapped_kb = mapped_maps_kb(pid)?;
    let rss_by_kind = ["RssAnon:", "RssFile:", "RssShmem:"]
        .map(|k| status_kb(pid, k).ok())
        .into_iter()
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.try_into().ok());
    let cpu_s = stormboot_testbed::reports::cpu_seconds(pid).ok();
    let map = reservation_map(pid);
    bed.stop(pid)?;
    Ok(ControlPlane {
        reservations: n,
        csv_bytes,
        ready_s,
        phases,
        rss_at_phase,
        rss_kb,
        hwm_kb,
        rss_by_kind,
        mapped_kb,
        cpu_s,
        map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_lines_are_timed() {
        let log = "2026-11-23T18:50:01.250000Z  INFO stormboot: configuration loaded reservations=5\n\
                   2026-11-23T18:50:01.500000Z  WARN stormboot::serve: whatever\n\
                   2026-11-23T18:50:02.000000Z  INFO stormboot::serve: serving interface=sb0 dataplane=\"xdp\"\n\
                   2026-11-23T18:50:03.000000Z  INFO stormboot::serve: counters received=0\n";
        let p = phases(log, 18.0 * 3600.0 + 50.0 * 60.0 + 1.0);
        assert_eq!(p.len(), 2);
        assert!((p[0].0 - 0.25).abs() < 1e-6, "{p:?}");
        assert_eq!(p[0].1, "configuration loaded reservations=5");
        assert!((p[1].0 - 1.0).abs() < 1e-6);
        assert!(p[1].1.starts_with("serving"));
    }
}
