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
use crate::dataplane::pins::Predecessor;
use crate::dataplane::{
    delivery, ifaces, tables, Attached, Dataplane, DataplaneError, LoadOptions, Pins,
};
use crate::dhcp::{self, Ingress};
use crate::leases::{Index, LeaseChange};
use crate::slowpath::{self, Endpoint, Queue, SlowPath};
use crate::stats::{Attachment, Snapshot, UserCounters};
use crate::timeline::Timeline;
use crate::{events, http, services};

/// Requests the slow path holds before it drops the oldest.
const QUEUE_CAPACITY: usize = 4096;

/// Settings given on the command line rather than in the file.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Overrides `server.xdp_mode`.
    pub xdp_mode: Option<XdpMode>,
    /// Set before cancelling to exit without detaching: the pinned program
    /// keeps answering known machines for the next daemon to take over.
    pub handover: Arc<std::sync::atomic::AtomicBool>,
    /// The file to read again on SIGHUP; None: SIGHUP is ignored.
    pub config_path: Option<std::path::PathBuf>,
}

/// The attached XDP dataplane and what the daemon reads from it.
struct Xdp {
    dp: Dataplane,
    ring: RingBuf<MapData>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    predecessor: Predecessor,
    /// The mode of each interface, and why when it is not the one asked for.
    attachments: Vec<Attachment>,
    /// Veths attached in driver mode, whose drops are watched while serving.
    watched: Vec<(String, u32)>,
}

/// The mode that delivers replies on `ep` when `asked` was asked for, the
/// reason when it differs, and whether its drops must be watched. A veth
/// in driver mode delivers XDP_TX only to a peer that runs an XDP program
/// (dataplane::delivery); skb mode sends through the normal transmit path.
fn choose_mode(ep: &Endpoint, asked: XdpMode) -> (XdpMode, Option<String>, bool) {
    if asked != XdpMode::Driver {
        return (asked, None, false);
    }
    let name = &ep.ingress.iface_name;
    match delivery::check(ep.ingress.ifindex) {
        Ok((_, Some(why))) => {
            tracing::warn!(
                interface = %name,
                "XDP replies in driver mode would reach nobody on {name}: {why}. \
                 Attaching in skb mode instead; set xdp_mode = \"skb\" to choose it, \
                 or attach an XDP program to {} to use driver mode",
                why.peer
            );
            (XdpMode::Skb, Some(why.to_string()), false)
        }
        Ok((link, None)) => (asked, None, link.kind.as_deref() == Some("veth")),
        Err(e) => {
            tracing::debug!(interface = %name, error = %e, "cannot read the interface over rtnetlink");
            (asked, None, false)
        }
    }
}

/// The pin directory of this daemon, or None (with a warning: a restart
/// then leaves known machines unanswered until the new program is attached).
fn pins(cfg: &Config) -> Option<Pins> {
    let made = Pins::for_instance(&cfg.server.bpffs_dir, &cfg.server.interfaces)
        .and_then(|p| p.create().map(|()| p));
    match made {
        Ok(p) => {
            if let Some(why) = p.dies_with_daemon() {
                tracing::warn!(key = "server.bpffs_dir", "{why}");
            }
            Some(p)
        }
        Err(e) => {
            tracing::warn!(error = %e, key = "server.bpffs_dir", "not pinning: a restart will not be seamless");
            None
        }
    }
}

fn start_xdp(cfg: &Config, endpoints: &[Endpoint], mode: XdpMode) -> Result<Xdp, DataplaneError> {
    let n = cfg.reservations.len();
    // The headroom takes reservations added through the API. A booting
    // reservation holds one entry per boot variant; the map allocates
    // entries as they are written (NO_PREALLOC), so room for them costs
    // only the bucket array.
    let per = if cfg.boot.enabled {
        stormboot_common::maps::variant::ALL.len()
    } else {
        1
    };
    let capacity = u32::try_from((n + n / 4 + 8192) * per).unwrap_or(u32::MAX);
    let pins = pins(cfg);
    // Taken before loading, so this daemon's own pins can take the names.
    let predecessor = pins
        .as_ref()
        .map(Pins::take_predecessor)
        .unwrap_or_default();
    let t = std::time::Instant::now();
    let mut dp = Dataplane::load_pinned(
        LoadOptions {
            reservations_capacity: capacity,
            log_level: cfg.server.xdp_log_level.as_u8(),
        },
        pins.as_ref(),
    )?;
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
    let mut attachments = Vec::with_capacity(endpoints.len());
    let mut watched = Vec::new();
    for ep in endpoints {
        let (mode, reason, watch) = choose_mode(ep, mode);
        let how = dp.attach(&ep.ingress.iface_name, mode, pins.as_ref())?;
        if how == Attached::Replaced {
            tracing::info!(interface = %ep.ingress.iface_name, "took over the pinned link: the previous program answered until now");
        }
        if watch {
            watched.push((ep.ingress.iface_name.clone(), ep.ingress.ifindex));
        }
        attachments.push(Attachment {
            interface: ep.ingress.iface_name.clone(),
            mode: mode_name(mode).to_string(),
            reason,
        });
    }
    Ok(Xdp {
        dp,
        ring,
        logger,
        predecessor,
        attachments,
        watched,
    })
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

    let stores = crate::store::open(&cfg.store).await?;
    let store = stores.leases.clone();
    let leases = store.load().await?;
    // The API's reservations join the file's (the file wins a clash).
    let (merged, registry) =
        crate::api::live::load((*cfg).clone(), stores.reservations.as_ref()).await?;
    let cfg = Arc::new(merged);
    let policy = api_policy(&cfg)?;
    tracing::info!(path = %stores.name, leases = leases.len(), "lease store opened");
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
    let omapi_listener = match &cfg.omapi {
        Some(o) => Some(
            tokio::net::TcpListener::bind(o.listen)
                .await
                .with_context(|| format!("omapi.listen: cannot bind {}", o.listen))?,
        ),
        None => None,
    };

    let userspace_only = cfg.server.dataplane == DataplaneKind::Userspace;
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
    let modes = xdp.as_ref().map_or("-".to_string(), |x| {
        x.attachments
            .iter()
            .map(|a| a.mode.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    tracing::info!(
        interface = %iface_name,
        dataplane,
        mode = %modes,
        reservations = cfg.reservations.len(),
        subnets = cfg.subnets.len(),
        api = %cfg.api.listen,
        "serving"
    );

    let counters = Arc::new(UserCounters::default());
    let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
    let mut tasks = tokio::task::JoinSet::new();
    let (hooks, hook_counters) = match &cfg.hooks {
        Some(h) => {
            let (sender, worker, counters) = crate::hooks::start(h);
            tasks.spawn(worker.run(shutdown.clone()));
            (Some(sender), Some(counters))
        }
        None => (None, None),
    };
    let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(QUEUE_CAPACITY);
    let mut predecessor = Predecessor::default();
    let attachments = Arc::new(Mutex::new(Vec::new()));
    let fallbacks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut watched = Vec::new();
    let dp = match xdp {
        Some(Xdp {
            dp,
            ring,
            logger,
            predecessor: p,
            attachments: a,
            watched: w,
        }) => {
            predecessor = p;
            *attachments.lock().expect("fresh lock") = a;
            watched = w;
            tasks.spawn(events::run(
                ring,
                counters.clone(),
                ack_tx.clone(),
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
    if let (Some(dp), false) = (&dp, watched.is_empty()) {
        tasks.spawn(watch_delivery(
            dp.clone(),
            watched,
            attachments.clone(),
            fallbacks.clone(),
            shutdown.clone(),
        ));
    }

    let (control_tx, control_rx) = tokio::sync::mpsc::channel(64);
    let live = Arc::new(crate::api::live::Live::new(
        registry,
        stores.reservations.clone(),
        dp.clone(),
        control_tx,
    ));
    let service_counters = Arc::new(crate::metrics::ServiceCounters::default());
    let pools = Arc::new(Mutex::new(Vec::new()));
    let snapshot: http::SnapshotFn = {
        let reservations = live.count.clone();
        let service_counters = service_counters.clone();
        let pools = pools.clone();
        let timeline = timeline.clone();
        let dp = dp.clone();
        let counters = counters.clone();
        let queue = queue.clone();
        let store = store.clone();
        let iface = iface_name.clone();
        let attachments = attachments.clone();
        let fallbacks = fallbacks.clone();
        Arc::new(move || {
            let xdp = dp
                .as_ref()
                .and_then(|d| d.lock().ok().and_then(|d| d.counters().ok()))
                .unwrap_or_default();
            let reservations = reservations.load(std::sync::atomic::Ordering::Relaxed);
            let mut s = Snapshot::new(&xdp, &counters, reservations, &iface, dataplane);
            s.queue_dropped = queue.dropped.load(std::sync::atomic::Ordering::Relaxed);
            let st = store.stats();
            (s.store_transactions, s.store_commits, s.store_changes) =
                (st.transactions, st.commits, st.changes);
            s.services = service_counters.snapshot();
            s.boot_phase_seconds = timeline.phase_histograms();
            s.pools = pools.lock().map(|p| p.clone()).unwrap_or_default();
            s.hooks = hook_counters
                .as_ref()
                .map(|h| h.stats())
                .unwrap_or_default();
            s.xdp_attachments = attachments.lock().map(|a| a.clone()).unwrap_or_default();
            s.xdp_mode_fallbacks = fallbacks.load(std::sync::atomic::Ordering::Relaxed);
            s
        })
    };
    let overlay = live.overlay.clone();
    let machines = services::Machines::new(cfg.clone(), index.clone()).with_overlay(overlay);
    let dashboard = dashboard(&cfg, &machines, &timeline, &snapshot);
    tasks.spawn(dashboard.clone().run(shutdown.clone()));
    let app = crate::api::router(
        crate::api::AppState::new(
            Some(live.clone()),
            snapshot.clone(),
            timeline.clone(),
            dashboard,
        ),
        policy,
    );
    tasks.spawn(http::serve_router(listener, app, shutdown.clone()));
    if let (Some(o), Some(l)) = (&cfg.omapi, omapi_listener) {
        crate::omapi::export::start(o, &live).await?;
        let omapi = Arc::new(crate::omapi::server::Listener {
            cfg: Arc::new(o.clone()),
            live: live.clone(),
            counters: Arc::default(),
        });
        tracing::info!(listen = %o.listen, keys = o.keys.len(), "OMAPI listening");
        tasks.spawn(omapi.run(l, shutdown.clone()));
    }
    tasks.spawn(log_counters(snapshot, shutdown.clone()));
    if cfg.boot.enabled {
        services::start(
            cfg.clone(),
            machines.clone(),
            timeline.clone(),
            service_counters,
            &mut tasks,
            shutdown.clone(),
        )
        .await?;
    }

    let timeline_for_takeover = timeline.clone();
    if let Some(path) = opts.config_path.clone() {
        tasks.spawn(reload_on_hup(
            path,
            cfg.clone(),
            live,
            machines,
            shutdown.clone(),
        ));
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
        pools,
        hooks,
        control: Some(control_rx),
    };
    let slow_token = shutdown.clone();
    let slow_task = tokio::spawn(async move { slow.run(slow_token).await });
    take_over(predecessor, &counters, &ack_tx, &timeline_for_takeover);
    drop(ack_tx);
    crate::sdnotify::tell(&format!(
        "READY=1\nSTATUS=serving {iface_name} ({dataplane} dataplane)"
    ));

    // A task that fails takes the daemon down with it (after detaching).
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("daemon task failed")),
            Err(e) => Err(anyhow::Error::from(e).context("daemon task panicked")),
        },
    };
    crate::sdnotify::tell("STOPPING=1");
    shutdown.cancel();
    let slow_result = slow_task.await;
    while tasks.join_next().await.is_some() {}
    if let Some(dp) = dp {
        let mut dp = dp
            .lock()
            .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?;
        let handover = opts.handover.load(std::sync::atomic::Ordering::SeqCst);
        let detached = if handover { dp.release() } else { dp.detach() };
        match detached {
            Ok(()) if handover => {
                tracing::info!(interface = %iface_name, "XDP left attached and pinned for the next daemon")
            }
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

/// How often the veths attached in driver mode are checked for dropped
/// replies.
const DELIVERY_WATCH: Duration = Duration::from_millis(500);

/// Watches veths attached in driver mode while serving: when the program
/// sent replies and the veth's `tx_dropped` rose in the same interval, the
/// replies reach nobody (its peer lost or never had an XDP program), so the
/// interface is moved to skb mode, once, with the reason logged.
async fn watch_delivery(
    dp: Arc<Mutex<Dataplane>>,
    mut watched: Vec<(String, u32)>,
    attachments: Arc<Mutex<Vec<Attachment>>>,
    fallbacks: Arc<std::sync::atomic::AtomicU64>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let replies = |dp: &Dataplane| {
        dp.counters()
            .map(|c| {
                c[Counter::Offer as usize] + c[Counter::Ack as usize] + c[Counter::Nak as usize]
            })
            .unwrap_or(0)
    };
    let mut last_replies = dp.lock().map(|d| replies(&d)).unwrap_or(0);
    let mut last: Vec<Option<u64>> = watched
        .iter()
        .map(|(_, i)| delivery::tx_dropped(*i).ok())
        .collect();
    let mut tick = tokio::time::interval(DELIVERY_WATCH);
    while !watched.is_empty() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let Ok(mut d) = dp.lock() else { return Ok(()) };
        let now_replies = replies(&d);
        let sent = now_replies > last_replies;
        last_replies = now_replies;
        let mut i = 0;
        while i < watched.len() {
            let (name, index) = &watched[i];
            let dropped = delivery::tx_dropped(*index).ok();
            let rose = matches!((last[i], dropped), (Some(a), Some(b)) if b > a);
            last[i] = dropped;
            if !(sent && rose) {
                i += 1;
                continue;
            }
            let why = format!(
                "the kernel dropped the program's replies on {name} in driver mode (its tx_dropped rose as replies were sent): \
                 a veth drops XDP_TX frames unless its peer runs an XDP program"
            );
            match d.reattach(name, XdpMode::Skb) {
                Ok(()) => {
                    tracing::warn!(
                        interface = %name,
                        "{why}. Moved to skb mode; set xdp_mode = \"skb\" to choose it, \
                         or attach an XDP program to the veth's peer to use driver mode"
                    );
                    fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Ok(mut a) = attachments.lock() {
                        if let Some(a) = a.iter_mut().find(|a| &a.interface == name) {
                            a.mode = "skb".into();
                            a.reason = Some(why);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(interface = %name, error = %e, "{why}; moving to skb mode failed")
                }
            }
            watched.remove(i);
            last.remove(i);
        }
    }
    // A daemon task that ends takes the daemon down: wait for shutdown.
    shutdown.cancelled().await;
    Ok(())
}

/// Applies the configuration file again on each SIGHUP: the file's
/// reservations are merged with the API's (the file wins, as at start),
/// rendered, written into the maps, then handed to the userspace server and
/// the boot services. A file that does not validate, or that changes what
/// needs a restart, is refused and the running configuration stays.
async fn reload_on_hup(
    path: std::path::PathBuf,
    mut current: Arc<Config>,
    live: Arc<crate::api::live::Live>,
    machines: services::Machines,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        crate::sdnotify::tell("RELOADING=1");
        match reload(&path, &current, &live).await {
            Ok(new) => {
                machines.reload(new.clone());
                tracing::info!(
                    path = %path.display(),
                    reservations = new.reservations.len(),
                    subnets = new.subnets.len(),
                    "configuration reloaded"
                );
                current = new;
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                "reload refused, the running configuration stays: {e:#}"
            ),
        }
        crate::sdnotify::tell("READY=1");
    }
}

/// Reads and checks `path`, then has `live` serve it.
async fn reload(
    path: &std::path::Path,
    current: &Config,
    live: &crate::api::live::Live,
) -> anyhow::Result<Arc<Config>> {
    let file = Config::load(path)?;
    if let Some((key, why)) = crate::reload::needs_restart(current, &file) {
        anyhow::bail!("{key} changed, which needs a restart: {why}");
    }
    live.reload(file).await
}

/// Reads what the previous daemon's program did after that daemon stopped
/// reading: its ACKs become leases like any other XDP ACK.
fn take_over(
    p: Predecessor,
    counters: &UserCounters,
    acks: &tokio::sync::mpsc::Sender<stormboot_common::events::ReplyEvent>,
    timeline: &Timeline,
) {
    for path in &p.unreadable {
        tracing::warn!(path = %path.display(), "a previous daemon's pin of another layout version: removed unread");
    }
    if let Some(mut ring) = p.events {
        let n = events::drain(&mut ring, counters, acks, timeline);
        tracing::info!(
            events = n,
            lost = p.events_lost,
            "read the reply events of the previous program"
        );
    }
}

/// Who may use the API: the token from STORMBOOT_API_TOKEN, else the
/// file's `api.token`.
fn api_policy(cfg: &Config) -> anyhow::Result<crate::api::auth::Policy> {
    let token = std::env::var("STORMBOOT_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| cfg.api.token.clone());
    if cfg.api.read_token && token.is_none() {
        anyhow::bail!("api.read_token = true needs a token: set api.token or STORMBOOT_API_TOKEN");
    }
    if token.is_none() {
        tracing::warn!("no api.token (or STORMBOOT_API_TOKEN): the API refuses every change");
    }
    Ok(crate::api::auth::Policy {
        token,
        read_token: cfg.api.read_token,
    })
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
    let service_counters = Arc::new(crate::metrics::ServiceCounters::default());
    let snapshot: http::SnapshotFn = {
        let service_counters = service_counters.clone();
        let timeline = timeline.clone();
        Arc::new(move || {
            let mut s = Snapshot::new(
                &Default::default(),
                &counters,
                reservations,
                &iface,
                "none (boot-only)",
            );
            s.services = service_counters.snapshot();
            s.boot_phase_seconds = timeline.phase_histograms();
            s
        })
    };
    // The same router and token rule as the DHCP modes: only what needs
    // addresses (reservations, leases, subnets) answers that there are none.
    let machines = services::Machines::new(cfg.clone(), Arc::new(Index::default()));
    let dashboard = dashboard(&cfg, &machines, &timeline, &snapshot);
    let app = crate::api::router(
        crate::api::AppState::new(None, snapshot, timeline.clone(), dashboard.clone()),
        api_policy(&cfg)?,
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(http::serve_router(listener, app, shutdown.clone()));
    tasks.spawn(dashboard.run(shutdown.clone()));
    services::start(
        cfg.clone(),
        machines,
        timeline,
        service_counters,
        &mut tasks,
        shutdown.clone(),
    )
    .await?;
    tracing::info!("boot-only: no DHCP is answered here");
    crate::sdnotify::tell("READY=1\nSTATUS=boot-only: serving TFTP, HTTP and syslog");
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("boot service failed")),
            Err(e) => Err(anyhow::Error::from(e).context("boot service panicked")),
        },
    };
    crate::sdnotify::tell("STOPPING=1");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    result
}

/// The dashboard's aggregator: machines are named by what the boot
/// services know of them (reservation, or lease for a pool client).
fn dashboard(
    cfg: &Config,
    machines: &services::Machines,
    timeline: &Arc<Timeline>,
    snapshot: &http::SnapshotFn,
) -> Arc<crate::dashboard::Hub> {
    let m = machines.clone();
    crate::dashboard::Hub::new(
        timeline.clone(),
        snapshot.clone(),
        Arc::new(move |mac| {
            m.lookup(crate::boot::web::Lookup::Mac(mac))
                .map(|i| (i.ip, i.hostname))
                .unwrap_or_default()
        }),
        cfg.subnets.iter().map(|s| s.net).collect(),
        cfg.dashboard.stuck_after,
    )
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
