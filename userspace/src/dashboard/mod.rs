//! The live storm dashboard: a page served at `/` on the API listener (its
//! HTML, CSS and script are compiled into the binary, so it needs no other
//! host) and the event stream it reads, `/api/v1/dashboard/stream`.
//!
//! One task (`Hub::run`) aggregates for every viewer: each tick it takes
//! the machines that reached a new phase from the timeline, finds those
//! that became stuck, recounts the funnel, and once a second samples the
//! counters for the rates. What changed is serialised once and broadcast;
//! a viewer gets the whole picture when it connects (or falls behind) and
//! then only the changes, at most one message per tick. So 10,000 machines
//! cost a browser one row each per phase change, never one per packet.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::frame::format_mac;
use crate::http::SnapshotFn;
use crate::stats::Snapshot;
use crate::timeline::{now_ms, Phase, Timeline, PHASES};

/// How often changes are sent: often enough that a phase change shows
/// well within a second, rarely enough that a storm of 10,000 machines is
/// a few messages a second.
pub const TICK: Duration = Duration::from_millis(250);
/// Rate samples kept and sent (one a second): five minutes.
const SAMPLES: usize = 300;
/// Phase-to-phase times kept per phase for the p50/p95 (the latest ones).
const DURATIONS: usize = 4096;
/// Messages a slow viewer may lag before it is sent the whole picture again.
const BACKLOG: usize = 16;

/// The page and its assets.
const INDEX_HTML: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// The order a boot goes through, as the rack and the funnel show it; NAK
/// is where the timeline puts it (a machine told no is not further).
const ORDER: [Phase; PHASES] = [
    Phase::Discover,
    Phase::Offer,
    Phase::Ack,
    Phase::Nak,
    Phase::Tftp,
    Phase::Script,
    Phase::Artifact,
    Phase::Syslog,
];

/// Names the page shows, by `Phase as usize`.
const PHASE_NAMES: [&str; PHASES] = [
    "discover", "offer", "ack", "nak", "tftp", "script", "artifact", "syslog",
];

/// What a machine looks up once: its address, name and subnet.
pub type LookupFn = Arc<dyn Fn([u8; 6]) -> (Option<Ipv4Addr>, Option<String>) + Send + Sync>;

/// One machine on the page: id, MAC, address, host name, subnet (index in
/// `subnets`, -1: none), phase (`Phase as usize`), when that phase was
/// reached (ms since the epoch), stuck. An array in the JSON: 10,000 of
/// them are sent whole when a viewer connects.
#[derive(Clone, Debug, Serialize)]
struct Row(u32, String, String, String, i32, u8, u64, bool);

struct Machine {
    row: Row,
    reached: u16,
    /// When the furthest phase was reached: progress is measured from it.
    progress_ms: u64,
}

/// A one-second sample of the rates, per second.
#[derive(Clone, Debug, Default, Serialize)]
struct Sample {
    t: u64,
    xdp: f64,
    userspace: f64,
    nak: f64,
    drops: f64,
    tftp_bytes: f64,
    http_bytes: f64,
    commits: f64,
}

/// Counters a rate is made from.
#[derive(Clone, Debug, Default)]
struct Totals {
    xdp: u64,
    userspace: u64,
    nak: u64,
    drops: std::collections::BTreeMap<String, u64>,
    tftp_bytes: u64,
    http_bytes: u64,
    commits: u64,
}

impl Totals {
    fn of(s: &Snapshot) -> Totals {
        let x = |k: &str| s.xdp.get(k).copied().unwrap_or(0);
        let u = |k: &str| s.slow_path_replies.get(k).copied().unwrap_or(0);
        let mut drops: std::collections::BTreeMap<String, u64> = [
            "drop_other_server",
            "drop_slowpath_rate",
            "malformed",
            "tx_error",
            "event_lost",
        ]
        .iter()
        .map(|k| (k.to_string(), x(k)))
        .collect();
        drops.insert("queue_dropped".into(), s.queue_dropped);
        Totals {
            xdp: x("offer") + x("ack") + x("nak"),
            userspace: s.slow_path_replies.values().sum(),
            nak: x("nak") + u("dhcpnak"),
            drops,
            tftp_bytes: s.services.tftp_bytes,
            http_bytes: s.services.http_bytes,
            commits: s.store_commits,
        }
    }
}

/// p50 and p95 (ms) of the time from the phase before to this one.
#[derive(Clone, Debug, Default, Serialize)]
struct Times {
    n: u64,
    p50: Option<u64>,
    p95: Option<u64>,
}

/// The aggregate every viewer is sent.
struct State {
    ids: HashMap<[u8; 6], u32>,
    machines: Vec<Machine>,
    subnets: Vec<ipnet::Ipv4Net>,
    funnel: [u64; PHASES],
    durations: Vec<VecDeque<u64>>,
    durations_seen: [u64; PHASES],
    times: Vec<Times>,
    samples: VecDeque<Sample>,
    last: Option<(u64, Totals)>,
    drops: std::collections::BTreeMap<String, u64>,
    pools: Vec<crate::metrics::PoolUsage>,
    store: (u64, u64, u64),
}

/// The whole picture, sent when a viewer connects.
#[derive(Serialize)]
struct Full<'a> {
    kind: &'static str,
    now: u64,
    stuck_after_ms: u64,
    phases: [&'static str; PHASES],
    subnets: Vec<String>,
    rows: Vec<&'a Row>,
    funnel: [u64; PHASES],
    times: &'a [Times],
    samples: &'a VecDeque<Sample>,
    drops: &'a std::collections::BTreeMap<String, u64>,
    pools: &'a [crate::metrics::PoolUsage],
    store: (u64, u64, u64),
}

/// What changed in one tick.
#[derive(Serialize)]
struct Delta<'a> {
    kind: &'static str,
    now: u64,
    rows: Vec<&'a Row>,
    funnel: [u64; PHASES],
    times: &'a [Times],
    sample: Option<&'a Sample>,
    drops: Option<&'a std::collections::BTreeMap<String, u64>>,
    pools: Option<&'a [crate::metrics::PoolUsage]>,
    store: (u64, u64, u64),
}

/// The dashboard's aggregator and the stream its viewers read.
pub struct Hub {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<str>>,
    timeline: Arc<Timeline>,
    snapshot: SnapshotFn,
    lookup: LookupFn,
    stuck_after_ms: u64,
}

impl Hub {
    pub fn new(
        timeline: Arc<Timeline>,
        snapshot: SnapshotFn,
        lookup: LookupFn,
        subnets: Vec<ipnet::Ipv4Net>,
        stuck_after: Duration,
    ) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(BACKLOG);
        Arc::new(Hub {
            state: Mutex::new(State {
                ids: HashMap::new(),
                machines: Vec::new(),
                subnets,
                funnel: [0; PHASES],
                durations: vec![VecDeque::new(); PHASES],
                durations_seen: [0; PHASES],
                times: vec![Times::default(); PHASES],
                samples: VecDeque::new(),
                last: None,
                drops: Default::default(),
                pools: Vec::new(),
                store: (0, 0, 0),
            }),
            tx,
            timeline,
            snapshot,
            lookup,
            stuck_after_ms: u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Aggregates and broadcasts every `TICK` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> std::io::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let per_second = (Duration::from_secs(1).as_millis() / TICK.as_millis()).max(1) as u64;
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            let snapshot = n.is_multiple_of(per_second).then(|| (self.snapshot)());
            self.tick(now_ms(), snapshot);
            n += 1;
        }
    }

    /// One tick at `now`, with a counter snapshot once a second.
    fn tick(&self, now: u64, snapshot: Option<Snapshot>) {
        let progress = self.timeline.take_progress();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        let mut changed: Vec<u32> = Vec::new();
        for p in progress {
            let id = match st.ids.get(&p.mac) {
                Some(&id) => id,
                None => {
                    let id = st.machines.len() as u32;
                    st.ids.insert(p.mac, id);
                    st.machines.push(Machine {
                        row: Row(
                            id,
                            format_mac(&p.mac),
                            String::new(),
                            String::new(),
                            -1,
                            0,
                            0,
                            false,
                        ),
                        reached: 0,
                        progress_ms: 0,
                    });
                    id
                }
            };
            let m = &mut st.machines[id as usize];
            if m.row.2.is_empty() {
                let (ip, host) = (self.lookup)(p.mac);
                if let Some(ip) = ip {
                    m.row.2 = ip.to_string();
                    m.row.4 = st
                        .subnets
                        .iter()
                        .position(|s| s.contains(&ip))
                        .map_or(-1, |i| i as i32);
                }
                m.row.3 = host.unwrap_or_default();
            }
            // The time from the phase before (in boot order) to each phase
            // newly reached.
            let new = p.reached & !m.reached;
            for (i, phase) in ORDER.iter().enumerate() {
                let k = *phase as usize;
                if new & (1 << k) == 0 || *phase == Phase::Nak {
                    continue;
                }
                let before = ORDER[..i]
                    .iter()
                    .rev()
                    .find(|q| **q != Phase::Nak && p.reached & (1 << **q as usize) != 0);
                if let Some(q) = before {
                    let d = p.reached_ms[k].saturating_sub(p.reached_ms[*q as usize]);
                    let ring = &mut st.durations[k];
                    if ring.len() == DURATIONS {
                        ring.pop_front();
                    }
                    ring.push_back(d);
                    st.durations_seen[k] += 1;
                }
            }
            m.reached = p.reached;
            m.row.5 = p.phase as u8;
            m.progress_ms = p.reached_ms[p.phase as usize];
            m.row.6 = m.progress_ms;
            m.row.7 = false;
            changed.push(id);
        }
        // Stuck: not booted, and no new phase for `stuck_after`.
        for m in st.machines.iter_mut() {
            let stuck = m.row.5 != Phase::Syslog as u8
                && now.saturating_sub(m.progress_ms) >= self.stuck_after_ms;
            if stuck != m.row.7 {
                m.row.7 = stuck;
                changed.push(m.row.0);
            }
        }
        st.funnel = [0; PHASES];
        for m in &st.machines {
            st.funnel[m.row.5 as usize] += 1;
        }
        for k in 0..PHASES {
            let mut v: Vec<u64> = st.durations[k].iter().copied().collect();
            v.sort_unstable();
            let q = |f: f64| {
                v.get(((v.len() as f64 - 1.0) * f).round() as usize)
                    .copied()
            };
            st.times[k] = Times {
                n: st.durations_seen[k],
                p50: q(0.5),
                p95: q(0.95),
            };
        }
        let sampled = snapshot.is_some();
        if let Some(s) = snapshot {
            let totals = Totals::of(&s);
            if let Some((t0, before)) = &st.last {
                let secs = (now.saturating_sub(*t0) as f64 / 1000.0).max(0.001);
                let r = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                let sample = Sample {
                    t: now,
                    xdp: r(totals.xdp, before.xdp),
                    userspace: r(totals.userspace, before.userspace),
                    nak: r(totals.nak, before.nak),
                    drops: r(totals.drops.values().sum(), before.drops.values().sum()),
                    tftp_bytes: r(totals.tftp_bytes, before.tftp_bytes),
                    http_bytes: r(totals.http_bytes, before.http_bytes),
                    commits: r(totals.commits, before.commits),
                };
                if st.samples.len() == SAMPLES {
                    st.samples.pop_front();
                }
                st.samples.push_back(sample);
            }
            st.drops = totals.drops.clone();
            st.last = Some((now, totals));
            st.pools = s.pools;
            st.store = (s.store_transactions, s.store_commits, s.store_changes);
        }
        if changed.is_empty() && !sampled {
            return;
        }
        changed.sort_unstable();
        changed.dedup();
        let delta = Delta {
            kind: "delta",
            now,
            rows: changed
                .iter()
                .map(|&i| &st.machines[i as usize].row)
                .collect(),
            funnel: st.funnel,
            times: &st.times,
            sample: sampled.then(|| st.samples.back()).flatten(),
            drops: sampled.then_some(&st.drops),
            pools: sampled.then_some(&st.pools[..]),
            store: st.store,
        };
        let text: Arc<str> = serde_json::to_string(&delta).unwrap_or_default().into();
        // Sent with the state locked, so a viewer that connects now gets
        // either this message or a picture that already has it.
        let _ = self.tx.send(text);
    }

    /// The whole picture, and the changes that follow it.
    fn subscribe(&self) -> (String, broadcast::Receiver<Arc<str>>) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let full = Full {
            kind: "full",
            now: now_ms(),
            stuck_after_ms: self.stuck_after_ms,
            phases: PHASE_NAMES,
            subnets: st.subnets.iter().map(|s| s.to_string()).collect(),
            rows: st.machines.iter().map(|m| &m.row).collect(),
            funnel: st.funnel,
            times: &st.times,
            samples: &st.samples,
            drops: &st.drops,
            pools: &st.pools,
            store: st.store,
        };
        (serde_json::to_string(&full).unwrap_or_default(), rx)
    }
}

#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The live storm dashboard (HTML; its data comes from the stream, which needs the read token when reads do)", body = String, content_type = "text/html")))]
pub(crate) async fn index() -> impl IntoResponse {
    Html(INDEX_HTML)
}

#[utoipa::path(get, path = "/dashboard.js", tag = "dashboard",
    responses((status = 200, description = "The dashboard's script", body = String, content_type = "text/javascript")))]
pub(crate) async fn script() -> impl IntoResponse {
    ([("content-type", "text/javascript; charset=utf-8")], SCRIPT)
}

#[utoipa::path(get, path = "/dashboard.css", tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet", body = String, content_type = "text/css")))]
pub(crate) async fn style() -> impl IntoResponse {
    ([("content-type", "text/css; charset=utf-8")], STYLE)
}

#[utoipa::path(get, path = "/api/v1/dashboard/stream", tag = "dashboard",
    responses((status = 200, description = "Server-sent events: a `full` message (every machine, the funnel, the rates of the last minutes), then a `delta` at most every 250 ms with only the machines whose phase or stuck state changed", body = String, content_type = "text/event-stream")))]
pub(crate) async fn stream(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
) -> impl IntoResponse {
    let (full, rx) = hub.subscribe();
    let first = Some(Arc::<str>::from(full));
    let stream =
        futures_lite::stream::unfold((first, rx, hub), |(first, mut rx, hub)| async move {
            if let Some(text) = first {
                return Some((
                    Ok::<_, Infallible>(Event::default().data(&*text)),
                    (None, rx, hub),
                ));
            }
            match rx.recv().await {
                Ok(text) => Some((Ok(Event::default().data(&*text)), (None, rx, hub))),
                // Behind: the whole picture again rather than a gap.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (full, fresh) = hub.subscribe();
                    Some((Ok(Event::default().data(full)), (None, fresh, hub)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(stuck_after: Duration) -> (Arc<Timeline>, Arc<Hub>) {
        let t = Arc::new(Timeline::default());
        let hub = Hub::new(
            t.clone(),
            Arc::new(Snapshot::default),
            Arc::new(|mac: [u8; 6]| {
                (
                    Some(Ipv4Addr::new(10, 50, 0, mac[5])),
                    Some(format!("n{}", mac[5])),
                )
            }),
            vec!["10.50.0.0/24".parse().unwrap()],
            stuck_after,
        );
        (t, hub)
    }

    fn next(rx: &mut broadcast::Receiver<Arc<str>>) -> serde_json::Value {
        serde_json::from_str(&rx.try_recv().expect("a message")).unwrap()
    }

    #[test]
    fn sends_each_changed_machine_once_per_tick_and_marks_the_stuck() {
        let (t, hub) = hub(Duration::from_secs(10));
        let (_, mut rx) = hub.subscribe();
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        t.record_at(a, Phase::Offer, "xdp", String::new(), 1_000);
        t.record_at(a, Phase::Ack, "xdp", String::new(), 1_200);
        t.record_at(b, Phase::Offer, "xdp", String::new(), 1_100);
        t.record_at(b, Phase::Ack, "xdp", String::new(), 1_400);
        t.record_at(b, Phase::Script, "http", String::new(), 2_400);
        hub.tick(3_000, None);
        let d = next(&mut rx);
        assert_eq!(d["rows"].as_array().unwrap().len(), 2, "{d}");
        // Rows come in the order machines were first seen by the hub, which
        // follows the timeline's map, not the order of the events above.
        let row = |mac: &str| {
            d["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r[1] == mac)
                .unwrap_or_else(|| panic!("no row for {mac}: {d}"))
                .clone()
        };
        let (ra, rb) = (row("02:00:00:00:00:01"), row("02:00:00:00:00:02"));
        assert_eq!(ra[2], "10.50.0.1");
        assert_eq!(ra[3], "n1");
        assert_eq!(ra[4], 0, "in the first subnet");
        assert_eq!(ra[5], Phase::Ack as u8);
        assert_eq!(rb[5], Phase::Script as u8);
        assert_eq!(d["funnel"][Phase::Ack as usize], 1);
        assert_eq!(d["funnel"][Phase::Script as usize], 1);
        // offer -> ack: 200 and 300 ms; ack -> script: 1000 ms.
        assert_eq!(d["times"][Phase::Ack as usize]["n"], 2);
        assert_eq!(d["times"][Phase::Script as usize]["p50"], 1000);

        hub.tick(3_250, None);
        assert!(rx.try_recv().is_err(), "nothing changed, nothing sent");
        // 10 s after its ACK, a is stuck; b (script at 2.4 s) not yet.
        hub.tick(11_200, None);
        let d = next(&mut rx);
        assert_eq!(d["rows"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["rows"][0][1], "02:00:00:00:00:01");
        assert_eq!(d["rows"][0][7], true);
        // Booted machines are never stuck.
        t.record_at(b, Phase::Syslog, "syslog", String::new(), 11_300);
        hub.tick(30_000, None);
        let d = next(&mut rx);
        assert_eq!(d["rows"][0][1], "02:00:00:00:00:02");
        assert_eq!(d["rows"][0][7], false);

        let (full, _) = hub.subscribe();
        let full: serde_json::Value = serde_json::from_str(&full).unwrap();
        assert_eq!(full["kind"], "full");
        assert_eq!(full["rows"].as_array().unwrap().len(), 2);
        assert_eq!(full["phases"][Phase::Syslog as usize], "syslog");
    }

    #[test]
    fn rates_are_per_second_between_samples() {
        let (_, hub) = hub(Duration::from_secs(60));
        let (_, mut rx) = hub.subscribe();
        let mut s = Snapshot::default();
        s.xdp.insert("offer".into(), 100);
        hub.tick(1_000, Some(s.clone()));
        let _ = next(&mut rx);
        s.xdp.insert("offer".into(), 300);
        s.xdp.insert("drop_other_server".into(), 4);
        s.services.http_bytes = 2_000;
        hub.tick(3_000, Some(s));
        let d = next(&mut rx);
        assert_eq!(d["sample"]["xdp"], 100.0, "{d}");
        assert_eq!(d["sample"]["drops"], 2.0);
        assert_eq!(d["sample"]["http_bytes"], 1000.0);
        assert_eq!(d["drops"]["drop_other_server"], 4);
    }
}
