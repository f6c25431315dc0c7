//! What the boot services and the pools add to `/metrics`: TFTP, HTTP and
//! syslog traffic, pool use per subnet, and how long machines take from
//! their first DHCP packet to each boot phase (a histogram per phase).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the boot-phase histogram buckets: a boot takes
/// from a second (XDP, iPXE ROM) to minutes (UEFI, big initrds).
pub const PHASE_BUCKETS_S: [f64; 11] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Live counters of the boot services.
#[derive(Default)]
pub struct ServiceCounters {
    pub tftp_ok: AtomicU64,
    pub tftp_failed: AtomicU64,
    pub tftp_bytes: AtomicU64,
    /// By status class: 2xx, 3xx, 4xx, 5xx.
    pub http: [AtomicU64; 4],
    pub http_bytes: AtomicU64,
    pub syslog_lines: AtomicU64,
    /// TFTP transfers running now (a gauge).
    pub tftp_in_flight: AtomicU64,
    /// TFTP requests waiting for a transfer slot now (a gauge).
    pub tftp_waiting: AtomicU64,
    /// TFTP requests refused with "server busy": no slot freed in time.
    pub tftp_busy: AtomicU64,
    /// Boot file content held in memory now (`crate::filecache`).
    pub file_cache_bytes: AtomicU64,
    pub file_cache_hits: AtomicU64,
    pub file_cache_misses: AtomicU64,
}

impl ServiceCounters {
    pub fn tftp(&self, bytes: u64, ok: bool) {
        let c = if ok { &self.tftp_ok } else { &self.tftp_failed };
        c.fetch_add(1, Ordering::Relaxed);
        self.tftp_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn http(&self, status: u16, bytes: u64) {
        let class = usize::from(status / 100).clamp(2, 5) - 2;
        self.http[class].fetch_add(1, Ordering::Relaxed);
        self.http_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ServiceCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServiceCounts {
            tftp_ok: get(&self.tftp_ok),
            tftp_failed: get(&self.tftp_failed),
            tftp_bytes: get(&self.tftp_bytes),
            http: self.http.each_ref().map(get),
            http_bytes: get(&self.http_bytes),
            syslog_lines: get(&self.syslog_lines),
            tftp_in_flight: get(&self.tftp_in_flight),
            tftp_waiting: get(&self.tftp_waiting),
            tftp_busy: get(&self.tftp_busy),
            file_cache_bytes: get(&self.file_cache_bytes),
            file_cache_hits: get(&self.file_cache_hits),
            file_cache_misses: get(&self.file_cache_misses),
            // Process-wide: the TFTP server and the syslog receiver count
            // their drops where they happen, without a handle to these.
            tftp_events_dropped: crate::tftp::dropped_events(),
            syslog_lines_dropped: crate::boot::syslog::DROPPED.load(Ordering::Relaxed),
        }
    }
}

/// `ServiceCounters` at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceCounts {
    pub tftp_ok: u64,
    pub tftp_failed: u64,
    pub tftp_bytes: u64,
    pub http: [u64; 4],
    pub http_bytes: u64,
    pub syslog_lines: u64,
    /// TFTP transfer events (the boot timeline's "tftp" phase) dropped
    /// because the daemon's channel was full: the transfer itself went on.
    #[serde(default)]
    pub tftp_events_dropped: u64,
    /// Syslog lines dropped because the daemon's channel was full.
    #[serde(default)]
    pub syslog_lines_dropped: u64,
    #[serde(default)]
    pub tftp_in_flight: u64,
    #[serde(default)]
    pub tftp_waiting: u64,
    #[serde(default)]
    pub tftp_busy: u64,
    #[serde(default)]
    pub file_cache_bytes: u64,
    #[serde(default)]
    pub file_cache_hits: u64,
    #[serde(default)]
    pub file_cache_misses: u64,
}

/// Observations in `PHASE_BUCKETS_S` buckets (the last slot: above them all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ms: u64,
}

impl Histogram {
    pub fn observe(&mut self, ms: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; PHASE_BUCKETS_S.len() + 1];
        }
        let s = ms as f64 / 1000.0;
        let i = PHASE_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(PHASE_BUCKETS_S.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ms += ms;
    }
}

/// One subnet's pool: addresses leased or offered, of how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolUsage {
    pub subnet: String,
    pub used: u64,
    pub size: u64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text of the three.
pub fn prometheus(
    out: &mut String,
    s: &ServiceCounts,
    phases: &BTreeMap<String, Histogram>,
    pools: &[PoolUsage],
) {
    family(
        out,
        "stormboot_tftp_transfers_total",
        "counter",
        "TFTP transfers finished, by result.",
    );
    let _ = writeln!(
        out,
        "stormboot_tftp_transfers_total{{result=\"ok\"}} {}",
        s.tftp_ok
    );
    let _ = writeln!(
        out,
        "stormboot_tftp_transfers_total{{result=\"failed\"}} {}",
        s.tftp_failed
    );
    family(
        out,
        "stormboot_tftp_sent_bytes_total",
        "counter",
        "Bytes sent over TFTP.",
    );
    let _ = writeln!(out, "stormboot_tftp_sent_bytes_total {}", s.tftp_bytes);
    family(
        out,
        "stormboot_http_requests_total",
        "counter",
        "Boot HTTP requests answered, by status class.",
    );
    for (i, n) in s.http.iter().enumerate() {
        let _ = writeln!(
            out,
            "stormboot_http_requests_total{{code=\"{}xx\"}} {n}",
            i + 2
        );
    }
    family(
        out,
        "stormboot_http_sent_bytes_total",
        "counter",
        "Bytes sent by the boot HTTP server.",
    );
    let _ = writeln!(out, "stormboot_http_sent_bytes_total {}", s.http_bytes);
    family(
        out,
        "stormboot_syslog_lines_total",
        "counter",
        "Syslog lines received.",
    );
    let _ = writeln!(out, "stormboot_syslog_lines_total {}", s.syslog_lines);
    family(
        out,
        "stormboot_tftp_events_dropped_total",
        "counter",
        "TFTP transfer events not recorded in the boot timeline: the daemon's channel was full.",
    );
    let _ = writeln!(
        out,
        "stormboot_tftp_events_dropped_total {}",
        s.tftp_events_dropped
    );
    family(
        out,
        "stormboot_syslog_lines_dropped_total",
        "counter",
        "Syslog lines received and dropped: the daemon's channel was full.",
    );
    let _ = writeln!(
        out,
        "stormboot_syslog_lines_dropped_total {}",
        s.syslog_lines_dropped
    );

    family(
        out,
        "stormboot_tftp_transfers_in_flight",
        "gauge",
        "TFTP transfers running now.",
    );
    let _ = writeln!(
        out,
        "stormboot_tftp_transfers_in_flight {}",
        s.tftp_in_flight
    );
    family(
        out,
        "stormboot_tftp_requests_waiting",
        "gauge",
        "TFTP requests waiting for a transfer slot (boot.tftp_max_transfers reached).",
    );
    let _ = writeln!(out, "stormboot_tftp_requests_waiting {}", s.tftp_waiting);
    family(
        out,
        "stormboot_tftp_busy_total",
        "counter",
        "TFTP requests refused with \"server busy\": no transfer slot freed in time.",
    );
    let _ = writeln!(out, "stormboot_tftp_busy_total {}", s.tftp_busy);
    family(
        out,
        "stormboot_file_cache_bytes",
        "gauge",
        "Boot file content held in memory for TFTP and HTTP (at most boot.file_cache_mb).",
    );
    let _ = writeln!(out, "stormboot_file_cache_bytes {}", s.file_cache_bytes);
    family(
        out,
        "stormboot_file_cache_opens_total",
        "counter",
        "Boot file opens, by whether the content was already in memory.",
    );
    let _ = writeln!(
        out,
        "stormboot_file_cache_opens_total{{result=\"hit\"}} {}",
        s.file_cache_hits
    );
    let _ = writeln!(
        out,
        "stormboot_file_cache_opens_total{{result=\"miss\"}} {}",
        s.file_cache_misses
    );

    family(
        out,
        "stormboot_pool_addresses",
        "gauge",
        "Pool addresses per subnet, by state (used: leased or offered).",
    );
    for p in pools {
        let _ = writeln!(
            out,
            "stormboot_pool_addresses{{subnet=\"{}\",state=\"used\"}} {}",
            p.subnet, p.used
        );
        let _ = writeln!(
            out,
            "stormboot_pool_addresses{{subnet=\"{}\",state=\"total\"}} {}",
            p.subnet, p.size
        );
    }

    family(
        out,
        "stormboot_boot_phase_seconds",
        "histogram",
        "Time from a machine's first DHCP packet to the first time it reached each boot phase.",
    );
    for (phase, h) in phases {
        let mut cumulative = 0;
        for (i, bound) in PHASE_BUCKETS_S.iter().enumerate() {
            cumulative += h.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "stormboot_boot_phase_seconds_bucket{{phase=\"{phase}\",le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "stormboot_boot_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "stormboot_boot_phase_seconds_sum{{phase=\"{phase}\"}} {}",
            h.sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "stormboot_boot_phase_seconds_count{{phase=\"{phase}\"}} {}",
            h.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let mut h = Histogram::default();
        for ms in [50, 900, 900, 4_000, 1_000_000] {
            h.observe(ms);
        }
        let phases = BTreeMap::from([("script".to_string(), h)]);
        let mut out = String::new();
        prometheus(&mut out, &ServiceCounts::default(), &phases, &[]);
        assert!(
            out.contains("stormboot_boot_phase_seconds_bucket{phase=\"script\",le=\"0.1\"} 1\n")
        );
        assert!(out.contains("stormboot_boot_phase_seconds_bucket{phase=\"script\",le=\"1\"} 3\n"));
        assert!(out.contains("stormboot_boot_phase_seconds_bucket{phase=\"script\",le=\"5\"} 4\n"));
        assert!(
            out.contains("stormboot_boot_phase_seconds_bucket{phase=\"script\",le=\"300\"} 4\n")
        );
        assert!(
            out.contains("stormboot_boot_phase_seconds_bucket{phase=\"script\",le=\"+Inf\"} 5\n")
        );
        assert!(out.contains("stormboot_boot_phase_seconds_count{phase=\"script\"} 5\n"));
        assert!(out.contains("stormboot_boot_phase_seconds_sum{phase=\"script\"} 1005.85\n"));
    }

    #[test]
    fn services_and_pools_render() {
        let c = ServiceCounters::default();
        c.tftp(100, true);
        c.tftp(0, false);
        c.http(200, 10);
        c.http(404, 5);
        c.http(503, 0);
        c.syslog_lines.fetch_add(3, Ordering::Relaxed);
        c.tftp_in_flight.store(7, Ordering::Relaxed);
        c.tftp_busy.fetch_add(2, Ordering::Relaxed);
        c.file_cache_bytes.store(4096, Ordering::Relaxed);
        c.file_cache_hits.fetch_add(9, Ordering::Relaxed);
        let mut out = String::new();
        let pools = [PoolUsage {
            subnet: "10.50.0.0/24".into(),
            used: 2,
            size: 100,
        }];
        prometheus(&mut out, &c.snapshot(), &BTreeMap::new(), &pools);
        for line in [
            "stormboot_tftp_transfers_total{result=\"ok\"} 1",
            "stormboot_tftp_transfers_total{result=\"failed\"} 1",
            "stormboot_tftp_sent_bytes_total 100",
            "stormboot_http_requests_total{code=\"2xx\"} 1",
            "stormboot_http_requests_total{code=\"4xx\"} 1",
            "stormboot_http_requests_total{code=\"5xx\"} 1",
            "stormboot_http_sent_bytes_total 15",
            "stormboot_syslog_lines_total 3",
            "stormboot_tftp_transfers_in_flight 7",
            "stormboot_tftp_requests_waiting 0",
            "stormboot_tftp_busy_total 2",
            "stormboot_file_cache_bytes 4096",
            "stormboot_file_cache_opens_total{result=\"hit\"} 9",
            "stormboot_pool_addresses{subnet=\"10.50.0.0/24\",state=\"used\"} 2",
            "stormboot_pool_addresses{subnet=\"10.50.0.0/24\",state=\"total\"} 100",
        ] {
            assert!(
                out.contains(&format!("{line}\n")),
                "{line} missing in\n{out}"
            );
        }
    }
}
