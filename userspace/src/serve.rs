//! The daemon: renders the configuration into the XDP program's maps,
//! attaches it, and runs the userspace side around it until shut down.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use stormboot_common::counters::Counter;
use stormboot_common::maps::Iface;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, XdpMode};
use crate::dataplane::{ifaces, tables, Dataplane, LoadOptions};
use crate::stats::{Snapshot, UserCounters};
use crate::{events, http, slowpath};

/// Settings given on the command line rather than in the file.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Overrides `server.xdp_mode`.
    pub xdp_mode: Option<XdpMode>,
}

/// Runs the daemon until `shutdown` is cancelled; the XDP program is
/// detached before this returns, on success and on error alike.
pub async fn serve(
    cfg: Config,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let iface_name = cfg.server.interface.clone();
    let mode = opts.xdp_mode.unwrap_or(cfg.server.xdp_mode);
    let info = ifaces::lookup(&iface_name)?;
    let capacity = u32::try_from(cfg.reservations.len() + cfg.reservations.len() / 4 + 1024)
        .unwrap_or(u32::MAX);
    let mut dp = Dataplane::load(LoadOptions {
        reservations_capacity: capacity,
        log_level: cfg.server.xdp_log_level.as_u8(),
    })
    .context("loading the XDP program")?;
    dp.install(&cfg)?;
    let ip = tables::pick_iface_address(&cfg, &info.addrs).unwrap_or(Ipv4Addr::UNSPECIFIED);
    if ip.is_unspecified() {
        tracing::warn!(interface = %iface_name, "interface has no IPv4 address: only relayed requests can be answered");
    }
    dp.set_iface(
        info.index,
        Iface {
            ip: ip.octets(),
            mac: info.mac,
            _pad: [0; 2],
        },
    )?;

    let counters = Arc::new(UserCounters::default());
    let logger = dp.logger().ok();
    let ring = dp.take_events()?;
    let sock = slowpath::bind(&iface_name)
        .with_context(|| format!("binding UDP port 67 on {iface_name}"))?;
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot bind {}", cfg.api.listen))?;

    // Attach last: by now every map is filled, so the first frame already
    // meets the whole configuration.
    dp.attach(&iface_name, mode)?;
    let mode_name = match mode {
        XdpMode::Driver => "driver",
        XdpMode::Skb => "skb",
    };
    tracing::info!(
        interface = %iface_name,
        mode = mode_name,
        reservations = cfg.reservations.len(),
        subnets = cfg.subnets.len(),
        api = %cfg.api.listen,
        "XDP attached; answering known machines in the kernel"
    );

    let dp = Arc::new(Mutex::new(dp));
    let reservations = cfg.reservations.len() as u64;
    let snapshot: http::SnapshotFn = {
        let dp = dp.clone();
        let counters = counters.clone();
        let iface = iface_name.clone();
        Arc::new(move || {
            let xdp = dp
                .lock()
                .map(|d| d.counters().unwrap_or_default())
                .unwrap_or_default();
            Snapshot::new(&xdp, &counters, reservations, &iface, "xdp")
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(events::run(ring, counters.clone(), shutdown.clone()));
    tasks.spawn(slowpath::run(sock, counters.clone(), shutdown.clone()));
    tasks.spawn(http::serve(listener, snapshot.clone(), shutdown.clone()));
    if let Some(logger) = logger {
        tasks.spawn(events::forward_logs(logger, shutdown.clone()));
    }
    tasks.spawn(log_counters(snapshot, shutdown.clone()));

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
    while tasks.join_next().await.is_some() {}
    let detached = dp
        .lock()
        .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?
        .detach();
    match detached {
        Ok(()) => tracing::info!(interface = %iface_name, "XDP detached"),
        // Exit non-zero: a supervisor must learn the interface may still
        // hold the program.
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!("detaching XDP from {iface_name}")))
        }
    }
    result
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
            "counters"
        );
        last = Some(s);
    }
}
