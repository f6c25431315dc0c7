//! The daemon: renders the configuration into the XDP program's maps and
//! attaches it (unless told to stay in userspace, or the kernel cannot),
//! and runs the userspace server, the lease store and the API around it
//! until shut down.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aya::maps::{MapData, RingBuf};
use stormboot_common::counters::Counter;
use stormboot_common::maps::Iface;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Dataplane as DataplaneKind, Mode, XdpMode};
use crate::dataplane::{ifaces, tables, Dataplane, DataplaneError, LoadOptions};
use crate::dhcp::{self, Ingress};
use crate::leases::{Index, LeaseChange, LeaseStore};
use crate::slowpath::{self, Endpoint, Queue, SlowPath};
use crate::stats::{Snapshot, UserCounters};
use crate::store::SqliteStore;
use crate::timeline::Timeline;
use crate::{events, http, services};

/// Requests the slow path holds before it drops the oldest.
const QUEUE_CAPACITY: usize = 4096;

/// Settings given on the command line rather than in the file.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Overrides `server.xdp_mode`.
    pub xdp_mode: Option<XdpMode>,
}

/// The attached XDP dataplane and what the daemon reads from it.
struct Xdp {
    dp: Dataplane,
    ring: RingBuf<MapData>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

fn start_xdp(cfg: &Config, endpoints: &[Endpoint], mode: XdpMode) -> Result<Xdp, DataplaneError> {
    let n = cfg.reservations.len();
    let capacity = u32::try_from(n + n / 4 + 1024).unwrap_or(u32::MAX);
    let t = std::time::Instant::now();
    let mut dp = Dataplane::load(LoadOptions {
        reservations_capacity: capacity,
        log_level: cfg.server.xdp_log_level.as_u8(),
    })?;
    tracing::info!(
        ms = t.elapsed().as_millis() as u64,
        capacity,
        "XDP program loaded and verified"
    );
    dp.install(cfg)?;
    for ep in endpoints {
        dp.set_iface(
            ep.ingress.ifindex,
            Iface {
                ip: ep.ingress.iface_addr.octets(),
                mac: ep.mac,
                _pad: [0; 2],
            },
        )?;
    }
    let logger = dp.logger().ok();
    let ring = dp.take_events()?;
    // Attach last: by now every map is filled, so the first frame already
    // meets the whole configuration.
    for ep in endpoints {
        dp.attach(&ep.ingress.iface_name, mode)?;
    }
    Ok(Xdp { dp, ring, logger })
}

/// What the daemon is on each interface it serves.
fn endpoints(cfg: &Config) -> anyhow::Result<Vec<Endpoint>> {
    let mut eps = Vec::with_capacity(cfg.server.interfaces.len());
    for name in &cfg.server.interfaces {
        let info = ifaces::lookup(name)?;
        let ip = tables::pick_iface_address(cfg, &info.addrs).unwrap_or(Ipv4Addr::UNSPECIFIED);
        if ip.is_unspecified() {
            tracing::warn!(interface = %name, "interface has no IPv4 address: only relayed requests can be answered");
        }
        eps.push(Endpoint {
            ingress: Ingress {
                ifindex: info.index,
                iface_name: name.clone(),
                iface_addr: ip,
            },
            mac: info.mac,
            server_ip: cfg.server.address,
        });
    }
    Ok(eps)
}

/// Runs the daemon until `shutdown` is cancelled; the XDP program is
/// detached before this returns, on success and on error alike.
pub async fn serve(
    cfg: Config,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    if cfg.server.mode == Mode::BootOnly {
        return serve_boot_only(cfg, shutdown).await;
    }
    let iface_name = cfg.server.interfaces.join(",");
    let mode = opts.xdp_mode.unwrap_or(cfg.server.xdp_mode);
    let endpoints = endpoints(&cfg)?;

    let store = Arc::new(SqliteStore::open(&cfg.server.lease_db)?);
    let leases = store.load()?;
    tracing::info!(path = %cfg.server.lease_db.display(), leases = leases.len(), "lease store opened");
    let index = Arc::new(Index::default());
    index.apply(
        &leases
            .iter()
            .cloned()
            .map(LeaseChange::Upsert)
            .collect::<Vec<_>>(),
    );
    let timeline = Arc::new(Timeline::default());
    let server = dhcp::Server::new(cfg.clone(), leases, slowpath::unix_now());
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot bind {}", cfg.api.listen))?;

    // proxyDHCP runs in userspace for now: the program has no proxy blocks.
    let userspace_only =
        cfg.server.dataplane == DataplaneKind::Userspace || cfg.server.mode == Mode::Proxy;
    let xdp = match userspace_only {
        true => {
            // Installing the maps renders every reply; without them, render
            // here, so a reply too long to send is refused at start, naming
            // its reservation, and not discovered by a booting machine.
            tables::subnet_entries(&cfg)?;
            for r in &cfg.reservations {
                tables::reservation_entry(&cfg, r)?;
            }
            None
        }
        false => match start_xdp(&cfg, &endpoints, mode) {
            Ok(x) => Some(x),
            // A reply that cannot be rendered is the configuration's fault,
            // not the kernel's: refuse to start.
            Err(DataplaneError::Render(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, interface = %iface_name, "XDP unavailable: every request is answered in userspace");
                None
            }
        },
    };
    let dataplane = if xdp.is_some() { "xdp" } else { "userspace" };
    tracing::info!(
        interface = %iface_name,
        dataplane,
        mode = if xdp.is_some() { mode_name(mode) } else { "-" },
        reservations = cfg.reservations.len(),
        subnets = cfg.subnets.len(),
        api = %cfg.api.listen,
        "serving"
    );

    let counters = Arc::new(UserCounters::default());
    let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
    let mut tasks = tokio::task::JoinSet::new();
    let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(QUEUE_CAPACITY);
    let dp = match xdp {
        Some(Xdp { dp, ring, logger }) => {
            tasks.spawn(events::run(
                ring,
                counters.clone(),
                ack_tx,
                timeline.clone(),
                shutdown.clone(),
            ));
            if let Some(logger) = logger {
                tasks.spawn(events::forward_logs(logger, shutdown.clone()));
            }
            Some(Arc::new(Mutex::new(dp)))
        }
        None => None,
    };

    let reservations = cfg.reservations.len() as u64;
    let snapshot: http::SnapshotFn = {
        let dp = dp.clone();
        let counters = counters.clone();
        let queue = queue.clone();
        let store = store.clone();
        let iface = iface_name.clone();
        Arc::new(move || {
            let xdp = dp
                .as_ref()
                .and_then(|d| d.lock().ok().and_then(|d| d.counters().ok()))
                .unwrap_or_default();
            let mut s = Snapshot::new(&xdp, &counters, reservations, &iface, dataplane);
            s.queue_dropped = queue.dropped.load(std::sync::atomic::Ordering::Relaxed);
            let st = store.stats();
            (s.store_transactions, s.store_commits, s.store_changes) =
                (st.transactions, st.commits, st.changes);
            s
        })
    };
    tasks.spawn(http::serve(
        listener,
        snapshot.clone(),
        timeline.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(log_counters(snapshot, shutdown.clone()));
    if cfg.boot.enabled {
        let machines = services::Machines::new(cfg.clone(), index.clone());
        services::start(
            cfg.clone(),
            machines,
            timeline.clone(),
            &mut tasks,
            shutdown.clone(),
        )
        .await?;
    }

    let slow = SlowPath {
        endpoints,
        server,
        store: store.clone(),
        counters: counters.clone(),
        queue,
        fast_acks: dp.is_some().then_some(ack_rx),
        index,
        timeline,
    };
    let slow_token = shutdown.clone();
    let slow_task = tokio::spawn(async move { slow.run(slow_token).await });

    // A task that fails takes the daemon down with it (after detaching).
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("daemon task failed")),
            Err(e) => Err(anyhow::Error::from(e).context("daemon task panicked")),
        },
    };
    shutdown.cancel();
    let slow_result = slow_task.await;
    while tasks.join_next().await.is_some() {}
    if let Some(dp) = dp {
        let detached = dp
            .lock()
            .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?
            .detach();
        match detached {
            Ok(()) => tracing::info!(interface = %iface_name, "XDP detached"),
            // Exit non-zero: a supervisor must learn the interface may still
            // hold the program.
            Err(e) => {
                return Err(
                    anyhow::Error::from(e).context(format!("detaching XDP from {iface_name}"))
                )
            }
        }
    }
    result?;
    slow_result
        .context("the userspace dataplane panicked")?
        .context("the userspace dataplane failed")
}

/// `mode = "boot-only"`: another DHCP server gives the addresses; this
/// daemon serves TFTP, HTTP and syslog, and keeps the boot timeline.
async fn serve_boot_only(cfg: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !cfg.boot.enabled {
        anyhow::bail!(
            "server.mode = \"boot-only\" serves only the boot services: add a [boot] section"
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot bind {}", cfg.api.listen))?;
    let timeline = Arc::new(Timeline::default());
    let counters = Arc::new(UserCounters::default());
    let reservations = cfg.reservations.len() as u64;
    let iface = cfg.server.interfaces.join(",");
    let snapshot: http::SnapshotFn = Arc::new(move || {
        Snapshot::new(
            &Default::default(),
            &counters,
            reservations,
            &iface,
            "none (boot-only)",
        )
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(http::serve(
        listener,
        snapshot,
        timeline.clone(),
        shutdown.clone(),
    ));
    let machines = services::Machines::new(cfg.clone(), Arc::new(Index::default()));
    services::start(
        cfg.clone(),
        machines,
        timeline,
        &mut tasks,
        shutdown.clone(),
    )
    .await?;
    tracing::info!("boot-only: no DHCP is answered here");
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("boot service failed")),
            Err(e) => Err(anyhow::Error::from(e).context("boot service panicked")),
        },
    };
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    result
}

fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "driver",
        XdpMode::Skb => "skb",
    }
}

/// Logs the counters every ten seconds while they change, so a journal
/// shows the traffic without a scrape.
async fn log_counters(
    snapshot: http::SnapshotFn,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let s = snapshot();
        if last.as_ref() == Some(&s) {
            continue;
        }
        let get = |c: Counter| s.xdp.get(c.name()).copied().unwrap_or(0);
        tracing::info!(
            received = get(Counter::Received),
            offers = get(Counter::Offer),
            acks = get(Counter::Ack),
            naks = get(Counter::Nak),
            passed_unknown = get(Counter::PassUnknownMac),
            malformed = get(Counter::Malformed),
            slow_path = s.slow_path_total(),
            queue_dropped = s.queue_dropped,
            "counters"
        );
        last = Some(s);
    }
}
