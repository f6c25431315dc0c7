//! One snapshot of everything the daemon counts, as JSON for `stormboot
//! stats` and as Prometheus text for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use stormboot_common::counters::Counter;

/// Counts of the userspace side: packets the XDP program passed up, and
/// reply events it reported.
#[derive(Default)]
pub struct UserCounters {
    /// DHCP packets received on the slow-path socket, by message type (index
    /// = option 53 value; 0 = unparseable).
    pub slow_path: [AtomicU64; 9],
    /// Replies the XDP program reported, by message type.
    pub xdp_replies: [AtomicU64; 9],
    /// Replies the userspace dataplane sent, by message type.
    pub slow_path_replies: [AtomicU64; 9],
    /// XDP ACKs not recorded as leases because the slow path was behind.
    pub fast_acks_unrecorded: AtomicU64,
    /// What the userspace server decided for each request, by its note
    /// ("offer", "ack-renew", "ignored-not-ours", ...): a fixed set of
    /// static strings, so the map stays small.
    pub slow_path_outcomes: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// Lease writes the shared store refused because another node's
    /// client holds the address (races lost; 0 without a cluster).
    pub lease_conflicts: AtomicU64,
}

impl UserCounters {
    pub fn bump(slots: &[AtomicU64; 9], msg_type: u8) {
        let i = if (msg_type as usize) < slots.len() {
            msg_type as usize
        } else {
            0
        };
        slots[i].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// XDP program counters, by `Counter::name`.
    pub xdp: BTreeMap<String, u64>,
    /// Requests that reached the userspace socket, by message type name.
    pub slow_path: BTreeMap<String, u64>,
    /// Replies reported by the XDP program on the reply ring, by type name.
    pub xdp_replies: BTreeMap<String, u64>,
    /// Replies the userspace dataplane sent, by type name.
    #[serde(default)]
    pub slow_path_replies: BTreeMap<String, u64>,
    /// The userspace server's decisions, by outcome.
    #[serde(default)]
    pub slow_path_outcomes: BTreeMap<String, u64>,
    /// Requests dropped from the full slow-path queue (the oldest first).
    #[serde(default)]
    pub queue_dropped: u64,
    /// Lease writes another node's client beat (cluster mode).
    #[serde(default)]
    pub lease_conflicts: u64,
    /// Lease store work: transactions made durable, commits and lease
    /// changes in them (commits per transaction is the group-commit factor).
    #[serde(default)]
    pub store_transactions: u64,
    #[serde(default)]
    pub store_commits: u64,
    #[serde(default)]
    pub store_changes: u64,
    /// Lease commits by latency (call to durable), one slot per bound of
    /// `crate::store::COMMIT_BUCKETS_US` and the last for slower ones.
    #[serde(default)]
    pub store_commit_latency: Vec<u64>,
    #[serde(default)]
    pub store_commit_latency_sum_us: u64,
    pub reservations: u64,
    pub interface: String,
    pub dataplane: String,
    /// TFTP, HTTP and syslog traffic of the boot services.
    #[serde(default)]
    pub services: crate::metrics::ServiceCounts,
    /// Time from first DHCP packet to each boot phase.
    #[serde(default)]
    pub boot_phase_seconds: BTreeMap<String, crate::metrics::Histogram>,
    #[serde(default)]
    pub pools: Vec<crate::metrics::PoolUsage>,
    /// Notification hooks (`[hooks]`): events, runs, failures, drops.
    #[serde(default)]
    pub hooks: crate::hooks::HookStats,
    /// The XDP attach mode of each interface, and why it is not the one
    /// configured when it is not.
    #[serde(default)]
    pub xdp_attachments: Vec<Attachment>,
    /// Interfaces moved from driver to skb mode while serving, because
    /// the kernel dropped the program's replies there.
    #[serde(default)]
    pub xdp_mode_fallbacks: u64,
    /// With `[cluster]`: the reservation changes served from the store's
    /// log, those skipped, the full resyncs and the applied change number.
    #[serde(default)]
    pub cluster_sync: Option<crate::cluster::sync::SyncStats>,
    /// This node's part in a cluster (`[cluster]`); None without one.
    #[serde(default)]
    pub cluster: Option<ClusterGauges>,
}

/// What `/metrics` says of a cluster node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterGauges {
    /// The node's last heartbeat reached the database.
    pub store_reachable: bool,
    /// Nodes alive at its last successful heartbeat, itself included.
    pub nodes_alive: u64,
    /// It holds the leader's lock.
    pub leader: bool,
}

/// How the program is attached to one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub interface: String,
    /// "driver" or "skb".
    pub mode: String,
    /// Why the mode differs from `server.xdp_mode`; None when it does not.
    #[serde(default)]
    pub reason: Option<String>,
}

fn by_type(slots: &[AtomicU64; 9]) -> BTreeMap<String, u64> {
    slots
        .iter()
        .enumerate()
        .map(|(t, v)| {
            let name = if t == 0 {
                "malformed".to_string()
            } else {
                crate::render::type_name(t as u8).to_lowercase()
            };
            (name, v.load(Ordering::Relaxed))
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

impl Snapshot {
    pub fn new(
        xdp: &[u64; Counter::COUNT as usize],
        user: &UserCounters,
        reservations: u64,
        interface: &str,
        dataplane: &str,
    ) -> Self {
        Snapshot {
            xdp: Counter::ALL
                .iter()
                .map(|c| (c.name().to_string(), xdp[*c as usize]))
                .collect(),
            slow_path: by_type(&user.slow_path),
            xdp_replies: by_type(&user.xdp_replies),
            slow_path_replies: by_type(&user.slow_path_replies),
            slow_path_outcomes: user
                .slow_path_outcomes
                .lock()
                .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
            queue_dropped: 0,
            lease_conflicts: user.lease_conflicts.load(Ordering::Relaxed),
            store_transactions: 0,
            store_commits: 0,
            store_changes: 0,
            store_commit_latency: Vec::new(),
            store_commit_latency_sum_us: 0,
            reservations,
            interface: interface.to_string(),
            dataplane: dataplane.to_string(),
            services: Default::default(),
            boot_phase_seconds: Default::default(),
            pools: Vec::new(),
            hooks: Default::default(),
            xdp_attachments: Vec::new(),
            xdp_mode_fallbacks: 0,
            cluster: None,
            cluster_sync: None,
        }
    }

    /// Total requests that reached userspace.
    pub fn slow_path_total(&self) -> u64 {
        self.slow_path.values().sum()
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "# HELP stormboot_xdp_packets_total Frames seen by the XDP program, by outcome.\n",
        );
        s.push_str("# TYPE stormboot_xdp_packets_total counter\n");
        for (k, v) in &self.xdp {
            let _ = writeln!(s, "stormboot_xdp_packets_total{{outcome=\"{k}\"}} {v}");
        }
        s.push_str("# HELP stormboot_slow_path_requests_total DHCP requests that reached the userspace server, by message type.\n");
        s.push_str("# TYPE stormboot_slow_path_requests_total counter\n");
        for (k, v) in &self.slow_path {
            let _ = writeln!(s, "stormboot_slow_path_requests_total{{type=\"{k}\"}} {v}");
        }
        s.push_str("# HELP stormboot_slow_path_outcomes_total Requests the userspace server handled, by what it decided.\n");
        s.push_str("# TYPE stormboot_slow_path_outcomes_total counter\n");
        for (k, v) in &self.slow_path_outcomes {
            let _ = writeln!(
                s,
                "stormboot_slow_path_outcomes_total{{outcome=\"{k}\"}} {v}"
            );
        }
        s.push_str("# HELP stormboot_slow_path_replies_total Replies sent by the userspace dataplane, by message type.\n");
        s.push_str("# TYPE stormboot_slow_path_replies_total counter\n");
        for (k, v) in &self.slow_path_replies {
            let _ = writeln!(s, "stormboot_slow_path_replies_total{{type=\"{k}\"}} {v}");
        }
        s.push_str("# HELP stormboot_slow_path_queue_dropped_total Requests dropped from the full slow-path queue.\n");
        s.push_str("# TYPE stormboot_slow_path_queue_dropped_total counter\n");
        let _ = writeln!(
            s,
            "stormboot_slow_path_queue_dropped_total {}",
            self.queue_dropped
        );
        s.push_str("# HELP stormboot_lease_conflicts_total Lease writes the shared store refused: another node's client holds the address.\n");
        s.push_str("# TYPE stormboot_lease_conflicts_total counter\n");
        let _ = writeln!(
            s,
            "stormboot_lease_conflicts_total {}",
            self.lease_conflicts
        );
        s.push_str("# HELP stormboot_lease_store_transactions_total Lease store transactions made durable.\n");
        s.push_str("# TYPE stormboot_lease_store_transactions_total counter\n");
        let _ = writeln!(
            s,
            "stormboot_lease_store_transactions_total {}",
            self.store_transactions
        );
        s.push_str("# HELP stormboot_lease_store_commits_total Lease commits made durable (group commit shares transactions).\n");
        s.push_str("# TYPE stormboot_lease_store_commits_total counter\n");
        let _ = writeln!(
            s,
            "stormboot_lease_store_commits_total {}",
            self.store_commits
        );
        s.push_str("# HELP stormboot_lease_store_commit_seconds Time from a lease commit's call to it being durable (queue, transaction and fsync).\n");
        s.push_str("# TYPE stormboot_lease_store_commit_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in crate::store::COMMIT_BUCKETS_US.iter().enumerate() {
            cumulative += self.store_commit_latency.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "stormboot_lease_store_commit_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count: u64 = self.store_commit_latency.iter().sum();
        let _ = writeln!(
            s,
            "stormboot_lease_store_commit_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "stormboot_lease_store_commit_seconds_sum {}",
            self.store_commit_latency_sum_us as f64 / 1e6
        );
        let _ = writeln!(s, "stormboot_lease_store_commit_seconds_count {count}");
        self.hooks_prometheus(&mut s);
        self.sync_prometheus(&mut s);
        s.push_str("# HELP stormboot_xdp_attached The XDP attach mode of each interface (1 for the mode in use); reason says why it is not server.xdp_mode.\n");
        s.push_str("# TYPE stormboot_xdp_attached gauge\n");
        for a in &self.xdp_attachments {
            let reason = match &a.reason {
                Some(_) => "driver-mode-replies-undelivered",
                None => "configured",
            };
            let _ = writeln!(
                s,
                "stormboot_xdp_attached{{interface=\"{}\",mode=\"{}\",reason=\"{reason}\"}} 1",
                a.interface, a.mode
            );
        }
        s.push_str("# HELP stormboot_xdp_mode_fallbacks_total Interfaces moved from driver to skb mode while serving, because the kernel dropped the program's replies.\n");
        s.push_str("# TYPE stormboot_xdp_mode_fallbacks_total counter\n");
        let _ = writeln!(
            s,
            "stormboot_xdp_mode_fallbacks_total {}",
            self.xdp_mode_fallbacks
        );
        if let Some(c) = &self.cluster {
            s.push_str("# HELP stormboot_store_reachable Whether this node's last heartbeat reached the shared database (1) or not (0).\n");
            s.push_str("# TYPE stormboot_store_reachable gauge\n");
            let _ = writeln!(
                s,
                "stormboot_store_reachable {}",
                u8::from(c.store_reachable)
            );
            s.push_str("# HELP stormboot_cluster_nodes_alive Nodes alive at this node's last successful heartbeat, itself included.\n");
            s.push_str("# TYPE stormboot_cluster_nodes_alive gauge\n");
            let _ = writeln!(s, "stormboot_cluster_nodes_alive {}", c.nodes_alive);
            s.push_str("# HELP stormboot_cluster_leader Whether this node holds the leader's lock and does the cluster's chores.\n");
            s.push_str("# TYPE stormboot_cluster_leader gauge\n");
            let _ = writeln!(s, "stormboot_cluster_leader {}", u8::from(c.leader));
        }
        s.push_str("# HELP stormboot_reservations Reservations loaded into the dataplane.\n");
        s.push_str("# TYPE stormboot_reservations gauge\n");
        let _ = writeln!(s, "stormboot_reservations {}", self.reservations);
        crate::metrics::prometheus(
            &mut s,
            &self.services,
            &self.boot_phase_seconds,
            &self.pools,
        );
        s
    }

    /// The reservation sync's counters, when `[cluster]` is configured.
    fn sync_prometheus(&self, s: &mut String) {
        let Some(c) = &self.cluster_sync else {
            return;
        };
        for (name, kind, help, value) in [
            (
                "stormboot_cluster_changes_applied_total",
                "counter",
                "Reservation changes from the store's log that changed this node's book (other nodes' changes).",
                c.changes_applied as i64,
            ),
            (
                "stormboot_cluster_changes_skipped_total",
                "counter",
                "Reservation changes from the store's log not served here (the config file wins, or the reservation rule refuses them).",
                c.changes_skipped as i64,
            ),
            (
                "stormboot_cluster_full_resyncs_total",
                "counter",
                "Times every reservation was read again: the log was pruned past this node, or two nodes' changes clashed.",
                c.full_resyncs as i64,
            ),
            (
                "stormboot_cluster_applied_change",
                "gauge",
                "The last reservation change number this node applied.",
                c.applied_change,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            let _ = writeln!(s, "{name} {value}");
        }
    }

    /// The hooks' counters, when `[hooks]` is configured.
    fn hooks_prometheus(&self, s: &mut String) {
        let h = &self.hooks;
        if !h.enabled {
            return;
        }
        let labelled =
            |s: &mut String, name: &str, help: &str, label: &str, m: &BTreeMap<String, u64>| {
                let _ = writeln!(s, "# HELP {name} {help}");
                let _ = writeln!(s, "# TYPE {name} counter");
                for (k, v) in m {
                    let _ = writeln!(s, "{name}{{{label}=\"{k}\"}} {v}");
                }
            };
        labelled(
            s,
            "stormboot_hook_events_total",
            "Lease events queued for the hooks, by action.",
            "action",
            &h.events,
        );
        labelled(
            s,
            "stormboot_hook_runs_total",
            "Hook runs finished, successful or not.",
            "hook",
            &h.runs,
        );
        labelled(
            s,
            "stormboot_hook_failures_total",
            "Hook runs that failed (exit status, timeout, connection, HTTP status).",
            "hook",
            &h.failures,
        );
        labelled(
            s,
            "stormboot_hook_timeouts_total",
            "Hook runs killed or abandoned at hooks.timeout (also counted as failures).",
            "hook",
            &h.timeouts,
        );
        s.push_str("# HELP stormboot_hook_dropped_total Lease events dropped because the hook queue was full.\n");
        s.push_str("# TYPE stormboot_hook_dropped_total counter\n");
        let _ = writeln!(s, "stormboot_hook_dropped_total {}", h.dropped);
    }

    /// The table `stormboot stats` prints.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "interface {}  dataplane {}  reservations {}",
            self.interface, self.dataplane, self.reservations
        );
        for a in &self.xdp_attachments {
            let _ = writeln!(s, "XDP on {}: {} mode", a.interface, a.mode);
            if let Some(why) = &a.reason {
                let _ = writeln!(s, "  not the configured mode: {why}");
            }
        }
        if self.xdp_mode_fallbacks > 0 {
            let _ = writeln!(
                s,
                "XDP mode fallbacks while serving: {}",
                self.xdp_mode_fallbacks
            );
        }
        if let Some(c) = &self.cluster {
            let _ = writeln!(
                s,
                "Cluster: database {}, {} node(s) alive{}",
                if c.store_reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                },
                c.nodes_alive,
                if c.leader { ", this node leads" } else { "" }
            );
        }
        let _ = writeln!(s, "\nXDP program");
        for (k, v) in &self.xdp {
            let _ = writeln!(s, "  {k:<22} {v:>12}");
        }
        let _ = writeln!(s, "\nPassed up to userspace");
        if self.slow_path.is_empty() {
            let _ = writeln!(s, "  {:<22} {:>12}", "(none)", 0);
        }
        for (k, v) in &self.slow_path {
            let _ = writeln!(s, "  {k:<22} {v:>12}");
        }
        let _ = writeln!(s, "\nAnswered in userspace");
        if self.slow_path_replies.is_empty() {
            let _ = writeln!(s, "  {:<22} {:>12}", "(none)", 0);
        }
        for (k, v) in &self.slow_path_replies {
            let _ = writeln!(s, "  {k:<22} {v:>12}");
        }
        let _ = writeln!(s, "  {:<22} {:>12}", "queue dropped", self.queue_dropped);
        let v = &self.services;
        let _ = writeln!(
            s,
            "\nBoot services: TFTP {} ok, {} failed, {} events dropped; syslog {} lines, {} dropped",
            v.tftp_ok, v.tftp_failed, v.tftp_events_dropped, v.syslog_lines, v.syslog_lines_dropped
        );
        let _ = writeln!(
            s,
            "  TFTP now {} running, {} waiting, {} refused busy; file cache {} KiB ({} hits, {} misses)",
            v.tftp_in_flight,
            v.tftp_waiting,
            v.tftp_busy,
            v.file_cache_bytes / 1024,
            v.file_cache_hits,
            v.file_cache_misses
        );
        let _ = writeln!(
            s,
            "\nLease store: {} commits in {} transactions ({} changes)",
            self.store_commits, self.store_transactions, self.store_changes
        );
        let q = |q| crate::store::commit_quantile(&self.store_commit_latency, q);
        if let (Some(p50), Some(p95)) = (q(0.5), q(0.95)) {
            let _ = writeln!(s, "  commit latency: p50 {p50}, p95 {p95}");
        }
        if let Some(c) = &self.cluster_sync {
            let _ = writeln!(
                s,
                "Cluster: reservation changes applied through {}; {} from other nodes, {} skipped, {} full resyncs",
                c.applied_change, c.changes_applied, c.changes_skipped, c.full_resyncs
            );
        }
        let h = &self.hooks;
        if h.enabled {
            let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "Hooks: {} events ({} dropped); command {} runs, {} failed; webhook {} runs, {} failed",
                h.events.values().sum::<u64>(),
                h.dropped,
                get(&h.runs, "command"),
                get(&h.failures, "command"),
                get(&h.runs, "webhook"),
                get(&h.failures, "webhook"),
            );
        }
        s
    }
}

/// The boot services' counters as `/metrics` and `stormboot stats` show
/// them: the Prometheus text and the table of a snapshot holding them.
#[cfg(test)]
pub fn exported_services(services: crate::metrics::ServiceCounts) -> (String, String) {
    let xdp = [0u64; Counter::COUNT as usize];
    let mut snap = Snapshot::new(&xdp, &UserCounters::default(), 0, "sb0", "xdp");
    snap.services = services;
    (snap.prometheus(), snap.table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_names_and_values() {
        let mut xdp = [0u64; Counter::COUNT as usize];
        xdp[Counter::Ack as usize] = 7;
        let user = UserCounters::default();
        UserCounters::bump(&user.slow_path, 1);
        UserCounters::bump(&user.slow_path, 200);
        *user
            .slow_path_outcomes
            .lock()
            .unwrap()
            .entry("ignored-not-ours")
            .or_default() += 2;
        let snap = Snapshot::new(&xdp, &user, 3, "sb0", "xdp");
        let text = snap.prometheus();
        assert!(
            text.contains("stormboot_slow_path_outcomes_total{outcome=\"ignored-not-ours\"} 2\n")
        );
        assert!(text.contains("stormboot_xdp_packets_total{outcome=\"ack\"} 7\n"));
        assert!(text.contains("stormboot_slow_path_requests_total{type=\"dhcpdiscover\"} 1\n"));
        assert!(text.contains("stormboot_slow_path_requests_total{type=\"malformed\"} 1\n"));
        assert!(text.contains("stormboot_reservations 3\n"));
        assert!(
            !text.contains("stormboot_hook_"),
            "no hook metrics without [hooks]"
        );
        assert!(
            !text.contains("stormboot_store_reachable"),
            "no cluster metrics without [cluster]"
        );
        let mut clustered = snap.clone();
        clustered.cluster = Some(ClusterGauges {
            store_reachable: false,
            nodes_alive: 2,
            leader: true,
        });
        let text = clustered.prometheus();
        assert!(text.contains("stormboot_store_reachable 0\n"), "{text}");
        let table = clustered.table();
        assert!(
            table.contains("Cluster: database UNREACHABLE, 2 node(s) alive, this node leads"),
            "{table}"
        );
        assert!(text.contains("stormboot_cluster_nodes_alive 2\n"));
        assert!(text.contains("stormboot_cluster_leader 1\n"));
        assert_eq!(snap.slow_path_total(), 2);
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn sync_metrics_only_with_a_cluster() {
        let xdp = [0u64; Counter::COUNT as usize];
        let mut snap = Snapshot::new(&xdp, &UserCounters::default(), 0, "sb0", "xdp");
        assert!(!snap.prometheus().contains("stormboot_cluster_"));
        snap.cluster_sync = Some(crate::cluster::sync::SyncStats {
            changes_applied: 7,
            changes_skipped: 2,
            full_resyncs: 1,
            applied_change: 42,
        });
        let text = snap.prometheus();
        for line in [
            "stormboot_cluster_changes_applied_total 7\n",
            "stormboot_cluster_changes_skipped_total 2\n",
            "stormboot_cluster_full_resyncs_total 1\n",
            "# TYPE stormboot_cluster_applied_change gauge\n",
            "stormboot_cluster_applied_change 42\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(snap
            .table()
            .contains("applied through 42; 7 from other nodes, 2 skipped"));
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn hook_metrics_when_hooks_are_configured() {
        let xdp = [0u64; Counter::COUNT as usize];
        let mut snap = Snapshot::new(&xdp, &UserCounters::default(), 0, "sb0", "xdp");
        let counters = crate::hooks::HookCounters::default();
        counters.runs[0].store(4, Ordering::Relaxed);
        counters.failures[1].store(2, Ordering::Relaxed);
        counters.dropped.store(9, Ordering::Relaxed);
        counters.events[1].store(3, Ordering::Relaxed);
        snap.hooks = counters.stats();
        let text = snap.prometheus();
        for line in [
            "stormboot_hook_runs_total{hook=\"command\"} 4\n",
            "stormboot_hook_runs_total{hook=\"webhook\"} 0\n",
            "stormboot_hook_failures_total{hook=\"webhook\"} 2\n",
            "stormboot_hook_timeouts_total{hook=\"command\"} 0\n",
            "stormboot_hook_events_total{action=\"renew\"} 3\n",
            "stormboot_hook_dropped_total 9\n",
            "# TYPE stormboot_hook_dropped_total counter\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn commit_latency_is_a_cumulative_histogram_in_seconds() {
        let xdp = [0u64; Counter::COUNT as usize];
        let mut snap = Snapshot::new(&xdp, &UserCounters::default(), 0, "sb0", "xdp");
        let mut b = vec![0; crate::store::COMMIT_BUCKETS_US.len() + 1];
        b[crate::store::commit_bucket(80)] = 3;
        b[crate::store::commit_bucket(1_500)] = 2;
        b[crate::store::COMMIT_BUCKETS_US.len()] = 1;
        snap.store_commit_latency = b;
        snap.store_commit_latency_sum_us = 6_003_240;
        let text = snap.prometheus();
        for line in [
            "stormboot_lease_store_commit_seconds_bucket{le=\"0.0001\"} 3\n",
            "stormboot_lease_store_commit_seconds_bucket{le=\"0.001\"} 3\n",
            "stormboot_lease_store_commit_seconds_bucket{le=\"0.002\"} 5\n",
            "stormboot_lease_store_commit_seconds_bucket{le=\"5\"} 5\n",
            "stormboot_lease_store_commit_seconds_bucket{le=\"+Inf\"} 6\n",
            "stormboot_lease_store_commit_seconds_sum 6.00324\n",
            "stormboot_lease_store_commit_seconds_count 6\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
