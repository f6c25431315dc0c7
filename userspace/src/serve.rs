//! The daemon as a library: `run` is given its I/O (`Io`: the API
//! listener, each interface's frames, the stores, whether to load the
//! XDP program, the reload trigger and a shutdown token) and serves until
//! shut down; `Io::open` builds the production ones for `main`. `run`
//! reads the book (leases, the API's reservations), starts the dataplane,
//! then the tasks around the userspace server, and stops them in order.

mod xdp;

pub use xdp::{preload, Loading};

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use stormboot_common::counters::Counter;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::live::Live;
use crate::api::registry::Registry;
use crate::cluster::sync::{ReservationSync, SyncCounters};
use crate::cluster::Applied;
use crate::config::{Config, Dataplane as DataplaneKind, Mode, XdpMode};
use crate::dataplane::{ifaces, Dataplane};
use crate::dhcp::{self, Ingress};
use crate::leases::{Index, Lease, LeaseChange};
use crate::link::{Frames, Link};
use crate::reservation::book::{Book, Published};
use crate::slowpath::{self, Endpoint, Queue, SlowPath};
use crate::stats::{Attachment, Snapshot, UserCounters};
use crate::store::{LeaseStore, ReservationStore, Stores};
use crate::timeline::Timeline;
use crate::{http, services};

/// Requests the slow path holds before it drops the oldest.
const QUEUE_CAPACITY: usize = 4096;

/// The daemon's tasks: each ends with shutdown, and one that fails (or
/// ends early) takes the daemon down.
type Tasks = JoinSet<std::io::Result<()>>;

/// Settings given on the command line rather than in the file.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Overrides `server.xdp_mode`.
    pub xdp_mode: Option<XdpMode>,
    /// Set before cancelling to exit without detaching: the pinned program
    /// keeps answering known machines for the next daemon to take over.
    pub handover: Arc<std::sync::atomic::AtomicBool>,
    /// The file to read again on each reload; None: reloads are ignored.
    pub config_path: Option<std::path::PathBuf>,
}

/// Everything the daemon reads and writes outside its memory.
pub struct Io {
    /// The REST API's listener, bound.
    pub api: TcpListener,
    /// The OMAPI listener, bound, when `[omapi]` is configured.
    pub omapi: Option<TcpListener>,
    /// Each interface it serves, in the configuration's order: who the
    /// daemon is there and its frames (packet sockets in production).
    pub links: Vec<Link>,
    /// The lease store and the API's reservations; None in boot-only mode,
    /// which gives no addresses.
    pub stores: Option<Stores>,
    /// Load the XDP program and attach it in this mode; None: the
    /// userspace server answers everything (`dataplane = "userspace"`).
    pub xdp: Option<XdpMode>,
    /// The program, loading since the configuration's outline was known
    /// (`xdp::preload`); used if its maps have room for the book the
    /// stores complete, else the daemon loads it again, sized for it.
    pub preloaded: Option<xdp::Loading>,
    /// Each message reads `ServeOptions::config_path` again (SIGHUP in
    /// production); None: nothing reloads.
    pub reloads: Option<mpsc::Receiver<()>>,
    pub shutdown: CancellationToken,
}

impl Io {
    /// The production I/O for `cfg`: its listeners bound, a packet socket
    /// on each interface, its stores opened, SIGHUP as the reload trigger. A
    /// boot-only daemon gets its API listener only.
    pub async fn open(
        cfg: &Config,
        opts: &ServeOptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Io> {
        let api = TcpListener::bind(cfg.api.listen)
            .await
            .with_context(|| format!("api.listen: cannot bind {}", cfg.api.listen))?;
        let mut io = Io {
            api,
            omapi: None,
            links: Vec::new(),
            stores: None,
            xdp: None,
            preloaded: None,
            reloads: None,
            shutdown,
        };
        if cfg.server.mode == Mode::BootOnly {
            return Ok(io);
        }
        for ep in endpoints(cfg)? {
            io.links
                .push(crate::packetlink::open(ep, dhcp::server_ports(cfg))?);
        }
        io.stores = Some(crate::store::open_for(&cfg.store, cfg.cluster.as_ref()).await?);
        if let Some(o) = &cfg.omapi {
            io.omapi = Some(
                TcpListener::bind(o.listen)
                    .await
                    .with_context(|| format!("omapi.listen: cannot bind {}", o.listen))?,
            );
        }
        io.xdp = (cfg.server.dataplane == DataplaneKind::Xdp)
            .then(|| opts.xdp_mode.unwrap_or(cfg.server.xdp_mode));
        io.reloads = Some(hangups()?);
        Ok(io)
    }
}

/// One message per SIGHUP.
fn hangups() -> std::io::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // A reload already waiting reads the file as it is by then.
            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return;
            }
        }
    });
    Ok(rx)
}

/// What the daemon is on each interface it serves.
fn endpoints(cfg: &Config) -> anyhow::Result<Vec<Endpoint>> {
    let mut eps = Vec::with_capacity(cfg.server.interfaces.len());
    for name in &cfg.server.interfaces {
        let info = ifaces::lookup(name)?;
        let ip = ifaces::pick_iface_address(cfg, &info.addrs).unwrap_or(Ipv4Addr::UNSPECIFIED);
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

/// What the daemon starts from: what its stores hold, and the book of the
/// file's reservations with the API's merged in.
struct Stored {
    store: Arc<dyn LeaseStore>,
    leases: Vec<Lease>,
    registry: Registry,
    /// The last reservation change number the registry includes.
    last_change: i64,
    reservations: Arc<dyn ReservationStore>,
    /// Who holds which address, for the boot services.
    index: Arc<Index>,
}

/// Reads the stores: the leases, and the API's reservations, which join
/// the file's (the file wins a clash). The configuration's reservations
/// move into the book, so a million of them are held once. With `xdp`,
/// the program for the book: `preloaded` if it has the room.
async fn read_stores(
    cfg: Config,
    stores: Stores,
    xdp: Option<XdpMode>,
    preloaded: Option<xdp::Loading>,
) -> anyhow::Result<(Stored, Option<xdp::Loading>)> {
    let leases = stores.leases.load().await?;
    let snapshot = stores.reservations.load().await?;
    let registry = crate::api::live::merge(cfg, snapshot.reservations);
    let loading = xdp.map(|mode| xdp::for_book(registry.book(), mode, preloaded));
    tracing::info!(path = %stores.name, leases = leases.len(), "lease store opened");
    let index = Arc::new(Index::default());
    index.apply(
        &leases
            .iter()
            .cloned()
            .map(LeaseChange::Upsert)
            .collect::<Vec<_>>(),
    );
    let stored = Stored {
        store: stores.leases,
        leases,
        registry,
        last_change: snapshot.last_change,
        reservations: stores.reservations,
        index,
    };
    Ok((stored, loading))
}

/// What the stats read.
struct StatsSources {
    reservations: Published,
    services: Arc<crate::metrics::ServiceCounters>,
    pools: Arc<Mutex<Vec<crate::metrics::PoolUsage>>>,
    timeline: Arc<Timeline>,
    dp: Option<Arc<Mutex<Dataplane>>>,
    counters: Arc<UserCounters>,
    queue: Arc<Queue>,
    store: Arc<dyn LeaseStore>,
    iface: String,
    dataplane: &'static str,
    hooks: Option<Arc<crate::hooks::HookCounters>>,
    attachments: Arc<Mutex<Vec<Attachment>>>,
    fallbacks: Arc<AtomicU64>,
    cluster: Option<watch::Receiver<crate::cluster::heartbeat::Status>>,
    /// With `[cluster]`: the reservation sync's counters.
    sync: Option<(Arc<SyncCounters>, Arc<Applied>)>,
}

/// The snapshot behind `/api/v1/stats`, `/metrics` and the dashboard.
fn stats(src: StatsSources) -> http::SnapshotFn {
    use std::sync::atomic::Ordering::Relaxed;
    Arc::new(move || {
        let xdp = src
            .dp
            .as_ref()
            .and_then(|d| d.lock().ok().and_then(|d| d.counters().ok()))
            .unwrap_or_default();
        let reservations = src.reservations.load().len() as u64;
        let mut s = Snapshot::new(&xdp, &src.counters, reservations, &src.iface, src.dataplane);
        s.queue_dropped = src.queue.dropped.load(Relaxed);
        let st = src.store.stats();
        (s.store_transactions, s.store_commits, s.store_changes) =
            (st.transactions, st.commits, st.changes);
        (s.store_commit_latency, s.store_commit_latency_sum_us) =
            (st.commit_latency.to_vec(), st.commit_latency_sum_us);
        s.services = src.services.snapshot();
        s.boot_phase_seconds = src.timeline.phase_histograms();
        s.pools = src.pools.lock().map(|p| p.clone()).unwrap_or_default();
        s.hooks = src.hooks.as_ref().map(|h| h.stats()).unwrap_or_default();
        s.xdp_attachments = src
            .attachments
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        s.xdp_mode_fallbacks = src.fallbacks.load(Relaxed);
        s.cluster = src.cluster.as_ref().map(|c| {
            let c = c.borrow();
            crate::stats::ClusterGauges {
                store_reachable: c.reachable,
                nodes_alive: c.alive() as u64,
                leader: c.leader,
            }
        });
        s.cluster_sync = src.sync.as_ref().map(|(c, a)| c.stats(a));
        s
    })
}

/// Serves OMAPI on `listener`, with its dhcpd.leases export.
async fn start_omapi(
    tasks: &mut Tasks,
    cfg: &Config,
    listener: Option<TcpListener>,
    live: &Arc<Live>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (Some(o), Some(l)) = (&cfg.omapi, listener) else {
        return Ok(());
    };
    crate::omapi::export::start(o, live).await?;
    let omapi = Arc::new(crate::omapi::server::Listener {
        cfg: Arc::new(o.clone()),
        live: live.clone(),
        counters: Arc::default(),
    });
    tracing::info!(listen = %o.listen, keys = o.keys.len(), "OMAPI listening");
    tasks.spawn(omapi.run(l, shutdown.clone()));
    Ok(())
}

/// Starts this node's heartbeat when it is in a cluster (`[cluster]`,
/// on the PostgreSQL store): what it publishes, for the API, the metrics
/// and the server's sharing of new clients. `applied` is what the
/// reservation sync reports as applied; `reservations` is where the
/// leader prunes old removals.
fn start_cluster(
    tasks: &mut Tasks,
    cfg: &Config,
    endpoints: &[Endpoint],
    applied: Arc<crate::cluster::Applied>,
    reservations: &Arc<dyn ReservationStore>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<crate::cluster::heartbeat::Handle>> {
    use crate::cluster::{heartbeat::Heartbeat, identity::Identity};
    let (Some(cluster), crate::config::Store::Postgres(pg)) = (&cfg.cluster, &cfg.store) else {
        return Ok(None);
    };
    let addresses: Vec<Ipv4Addr> = endpoints.iter().map(|e| e.server_ip).collect();
    let me = Identity::of(cfg, &addresses).context("[cluster] without its node")?;
    tracing::info!(node = %me.node, config_hash = %me.config_hash, "cluster: joining");
    let (beat, handle) = Heartbeat::new(cluster, pg, me, applied, reservations.clone())?;
    tasks.spawn(beat.run(shutdown.clone()));
    Ok(Some(handle))
}

/// With `[cluster]`, starts following the store's reservation change log
/// from `last_change` (where the book was loaded), so a change made on
/// another node is served here too.
fn start_sync(
    tasks: &mut Tasks,
    cfg: &Config,
    live: &Arc<Live>,
    store: &Arc<dyn ReservationStore>,
    last_change: i64,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<(Arc<SyncCounters>, Arc<Applied>)>> {
    let (Some(cluster), crate::config::Store::Postgres(pg)) = (&cfg.cluster, &cfg.store) else {
        return Ok(None);
    };
    let (listen, _) =
        crate::store::postgres::client_config(pg, &format!("stormboot-sync {}", cluster.node))?;
    let applied = Arc::new(Applied::default());
    applied.set(last_change);
    let counters = Arc::new(SyncCounters::default());
    let sync = ReservationSync {
        store: store.clone(),
        live: live.clone(),
        applied: applied.clone(),
        counters: counters.clone(),
        listen,
        interval: cluster.sync_interval,
    };
    tasks.spawn(sync.run(shutdown.clone()));
    Ok(Some((counters, applied)))
}

/// Waits for shutdown or the first task to end; a task that fails takes
/// the daemon down with it.
async fn wait(tasks: &mut Tasks, shutdown: &CancellationToken, what: &str) -> anyhow::Result<()> {
    tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context(format!("{what} failed"))),
            Err(e) => Err(anyhow::Error::from(e).context(format!("{what} panicked"))),
        },
    }
}

/// Runs the daemon on `io` until `io.shutdown` is cancelled; the XDP
/// program is detached before this returns, on success and on error alike.
pub async fn run(cfg: Config, opts: ServeOptions, io: Io) -> anyhow::Result<()> {
    if cfg.server.mode == Mode::BootOnly {
        return run_boot_only(cfg, io).await;
    }
    let Io {
        api,
        omapi,
        links,
        stores,
        xdp,
        preloaded,
        reloads,
        shutdown,
    } = io;
    let iface_name = cfg.server.interfaces.join(",");
    let (endpoints, frames): (Vec<Endpoint>, Vec<Frames>) =
        links.into_iter().map(|l| (l.endpoint, l.frames)).unzip();
    // Checked before the program takes over the previous daemon's pins
    // (xdp::start): a daemon that stops here leaves them alone.
    let policy = api_policy(&cfg)?;
    let (stored, loading) = read_stores(
        cfg,
        stores.context("a DHCP daemon needs its stores")?,
        xdp,
        preloaded,
    )
    .await?;
    let cfg = stored.registry.config().clone();
    let xdp = xdp::start(stored.registry.book(), &endpoints, loading)?;
    release_startup_memory();
    let dataplane = if xdp.is_some() { "xdp" } else { "userspace" };
    let modes = xdp.as_ref().map_or("-".to_string(), |x| x.modes());
    let reservations = stored.registry.len();
    let api_addr = api.local_addr().map_or(cfg.api.listen, |a| a);

    let counters = Arc::new(UserCounters::default());
    let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
    let timeline = Arc::new(Timeline::default());
    let mut tasks = Tasks::new();
    let (hooks, hook_counters) = match &cfg.hooks {
        Some(h) => {
            let (sender, worker, counters) = crate::hooks::start(h);
            tasks.spawn(worker.run(shutdown.clone()));
            (Some(sender), Some(counters))
        }
        None => (None, None),
    };
    let (ack_tx, ack_rx) = mpsc::channel(QUEUE_CAPACITY);
    let attachments = Arc::new(Mutex::new(Vec::new()));
    let fallbacks = Arc::new(AtomicU64::new(0));
    let (dp, predecessor) = match xdp {
        Some(x) => {
            let (dp, p) = x.serve(
                &mut tasks,
                &counters,
                &ack_tx,
                &timeline,
                &attachments,
                &fallbacks,
                &shutdown,
            );
            (Some(dp), p)
        }
        None => (None, Default::default()),
    };

    let (control_tx, control_rx) = mpsc::channel(64);
    let live = Arc::new(Live::new(
        stored.registry,
        stored.reservations.clone(),
        dp.clone(),
        control_tx,
    ));
    let book = live.published().clone();
    let sync = start_sync(
        &mut tasks,
        &cfg,
        &live,
        &stored.reservations,
        stored.last_change,
        &shutdown,
    )?;
    let applied = sync.as_ref().map(|(_, a)| a.clone()).unwrap_or_default();
    let cluster = start_cluster(
        &mut tasks,
        &cfg,
        &endpoints,
        applied,
        &stored.reservations,
        &shutdown,
    )?;
    let service_counters = Arc::new(crate::metrics::ServiceCounters::default());
    let pools = Arc::new(Mutex::new(Vec::new()));
    let snapshot = stats(StatsSources {
        reservations: book.clone(),
        services: service_counters.clone(),
        pools: pools.clone(),
        timeline: timeline.clone(),
        dp: dp.clone(),
        counters: counters.clone(),
        queue: queue.clone(),
        store: stored.store.clone(),
        iface: iface_name.clone(),
        dataplane,
        hooks: hook_counters,
        attachments,
        fallbacks,
        cluster: cluster.as_ref().map(|c| c.status.clone()),
        sync,
    });
    let machines = services::Machines::new(book.clone(), stored.index.clone());
    // Bound before the API answers and before "serving": whoever waits for
    // either finds the boot ports listening.
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
    let dashboard = dashboard(&cfg, &machines, &timeline, &snapshot);
    tasks.spawn(dashboard.clone().run(shutdown.clone()));
    let state = crate::api::AppState::new(
        Some(live.clone()),
        snapshot.clone(),
        timeline.clone(),
        dashboard,
    )
    .with_history(stored.store.clone())
    .with_cluster(cluster.as_ref().map(|c| c.status.clone()));
    let app = crate::api::router(state, policy);
    tasks.spawn(http::serve_router(api, app, shutdown.clone()));
    start_omapi(&mut tasks, &cfg, omapi, &live, &shutdown).await?;
    tasks.spawn(log_counters(snapshot, shutdown.clone()));
    if let (Some(path), Some(reloads)) = (opts.config_path.clone(), reloads) {
        tasks.spawn(reload_on_request(
            path,
            cfg.clone(),
            live,
            reloads,
            shutdown.clone(),
        ));
    }

    // The heartbeat's membership: a node alone until its first heartbeat
    // reads the others, answering every client meanwhile, its writes
    // arbitrated by the store all the same.
    let membership = cluster.as_ref().map(|c| c.membership.clone());
    let server = dhcp::Server::with_book(book.load_full(), stored.leases, slowpath::unix_now());
    let slow = SlowPath {
        endpoints,
        frames,
        server,
        store: stored.store,
        counters: counters.clone(),
        queue,
        fast_acks: dp.is_some().then_some(ack_rx),
        index: stored.index,
        timeline: timeline.clone(),
        pools,
        hooks,
        control: Some(control_rx),
        membership,
    };
    let slow_token = shutdown.clone();
    let slow_task = tokio::spawn(async move { slow.run(slow_token).await });
    xdp::take_over(predecessor, &counters, &ack_tx, &timeline);
    drop(ack_tx);
    tracing::info!(
        interface = %iface_name,
        dataplane,
        mode = %modes,
        reservations,
        subnets = cfg.subnets.len(),
        api = %api_addr,
        "serving"
    );
    crate::sdnotify::tell(&format!(
        "READY=1\nSTATUS=serving {iface_name} ({dataplane} dataplane)"
    ));

    let result = wait(&mut tasks, &shutdown, "daemon task").await;
    crate::sdnotify::tell("STOPPING=1");
    shutdown.cancel();
    let slow_result = slow_task.await;
    while tasks.join_next().await.is_some() {}
    if let Some(dp) = dp {
        let handover = opts.handover.load(std::sync::atomic::Ordering::SeqCst);
        xdp::stop(&dp, handover, &iface_name)?;
    }
    result?;
    slow_result
        .context("the userspace dataplane panicked")?
        .context("the userspace dataplane failed")
}

/// Applies the configuration file again on each reload (SIGHUP): the file's
/// reservations are merged with the API's (the file wins, as at start),
/// rendered, written into the maps, handed to the userspace server and
/// published to the boot services, the API and the metrics (`Live`). A file that does not validate, or that changes what
/// needs a restart, is refused and the running configuration stays.
async fn reload_on_request(
    path: std::path::PathBuf,
    mut current: Arc<Config>,
    live: Arc<Live>,
    mut reloads: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            // When the trigger is gone this branch is disabled and the
            // task waits for shutdown: a daemon task that ends takes the
            // daemon down.
            Some(()) = reloads.recv() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        crate::sdnotify::tell("RELOADING=1");
        match reload(&path, &current, &live).await {
            Ok(new) => {
                tracing::info!(
                    path = %path.display(),
                    reservations = new.len(),
                    subnets = new.config().subnets.len(),
                    "configuration reloaded"
                );
                current = new.config().clone();
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
    live: &Live,
) -> anyhow::Result<Arc<Book>> {
    let file = Config::load(path)?;
    if let Some((key, why)) = crate::reload::needs_restart(current, &file) {
        anyhow::bail!("{key} changed, which needs a restart: {why}");
    }
    live.reload(file).await
}

/// Hands the heap memory start-up freed back to the system: parsing a
/// million-line reservations file and rendering its replies leave freed
/// chunks between live ones, which the allocator keeps (and RSS counts)
/// until asked. What the daemon holds from here on is what it serves.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
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
async fn run_boot_only(cfg: Config, io: Io) -> anyhow::Result<()> {
    if !cfg.boot.enabled {
        anyhow::bail!(
            "server.mode = \"boot-only\" serves only the boot services: add a [boot] section"
        );
    }
    let mut cfg = cfg;
    let reservations = std::mem::take(&mut cfg.reservations);
    let book = Book::new(
        Arc::new(cfg),
        reservations,
        crate::api::types::Source::Config,
    );
    let cfg = book.config().clone();
    let Io { api, shutdown, .. } = io;
    let timeline = Arc::new(Timeline::default());
    let counters = Arc::new(UserCounters::default());
    let reservations = book.len() as u64;
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
    let machines = services::Machines::new(book.publish(), Arc::new(Index::default()));
    let dashboard = dashboard(&cfg, &machines, &timeline, &snapshot);
    let app = crate::api::router(
        crate::api::AppState::new(None, snapshot, timeline.clone(), dashboard.clone()),
        api_policy(&cfg)?,
    );
    let mut tasks = Tasks::new();
    // As in the DHCP modes: the boot ports listen before the API answers.
    services::start(
        cfg.clone(),
        machines,
        timeline,
        service_counters,
        &mut tasks,
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(http::serve_router(api, app, shutdown.clone()));
    tasks.spawn(dashboard.run(shutdown.clone()));
    tracing::info!("boot-only: no DHCP is answered here");
    crate::sdnotify::tell("READY=1\nSTATUS=boot-only: serving TFTP, HTTP and syslog");
    let result = wait(&mut tasks, &shutdown, "boot service").await;
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
                .map(|i| crate::dashboard::Known {
                    ip: i.ip,
                    hostname: i.hostname,
                    label: i.label,
                })
                .unwrap_or_default()
        }),
        cfg.subnets.iter().map(|s| s.net).collect(),
        cfg.dashboard.stuck_after,
    )
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
