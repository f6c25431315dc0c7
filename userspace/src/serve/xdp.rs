//! The daemon's XDP dataplane: loading the program with the configuration
//! in its maps, attaching it per interface in the mode that delivers, the
//! tasks that read it while serving, and detaching (or handing over) at
//! the end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stormboot_common::counters::Counter;
use stormboot_common::maps::Iface;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Dataplane as DataplaneKind, Mode, Outline, XdpMode};
use crate::dataplane::pins::Predecessor;
use crate::dataplane::{delivery, Attached, Count, Dataplane, DataplaneError, LoadOptions, Pins};
use crate::events;
use crate::reservation::book::Book;
use crate::slowpath::Endpoint;
use crate::stats::{Attachment, UserCounters};
use crate::timeline::Timeline;

/// The attached XDP dataplane and what the daemon reads from it.
pub(super) struct Xdp {
    dp: Dataplane,
    ring: crate::dataplane::ReplyRing,
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
fn pins(bpffs_dir: &std::path::Path, interfaces: &[String]) -> Option<Pins> {
    let made = Pins::for_instance(bpffs_dir, interfaces).and_then(|p| p.create().map(|()| p));
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

/// The program loading on a thread of its own, so the kernel can verify
/// it while the daemon reads its reservations, builds its book and fills
/// the maps (`Dataplane::start`). It takes no pins: a daemon that stops
/// before serving leaves a running predecessor's alone.
pub struct Loading {
    mode: XdpMode,
    opts: LoadOptions,
    thread: std::thread::JoinHandle<Result<Dataplane, DataplaneError>>,
}

/// Starts loading the program with maps sized by `opts`, to be attached
/// in `mode`.
pub(super) fn load(opts: LoadOptions, mode: XdpMode) -> Loading {
    let thread = std::thread::spawn(move || Dataplane::start(opts));
    Loading { mode, opts, thread }
}

/// Starts loading the program from a configuration's outline, before its
/// reservations file is parsed (sized by the file's line count), when it
/// serves with XDP; `mode` overrides the file's `xdp_mode`.
pub fn preload(outline: &Outline, mode: Option<XdpMode>) -> Option<Loading> {
    let server = outline.server;
    if server.mode == Mode::BootOnly || server.dataplane != DataplaneKind::Xdp {
        return None;
    }
    let opts = LoadOptions::estimated(
        outline.reservations,
        outline.file_lines,
        server.xdp_log_level.as_u8(),
    );
    Some(load(opts, mode.unwrap_or(server.xdp_mode)))
}

/// The program for `book` in `mode`: `early` if its maps have the room
/// the book needs, else one loaded now (stored reservations beyond the
/// room the file's lines left).
pub(super) fn for_book(book: &Book, mode: XdpMode, early: Option<Loading>) -> Loading {
    let count = Count::of(book.reservations());
    let log_level = book.config().server.xdp_log_level.as_u8();
    match early {
        Some(l) if l.opts.holds(count, log_level) && l.mode == mode => l,
        Some(_) => {
            tracing::info!(
                reservations = book.len(),
                "the XDP program is loaded again: the book needs more room than the file's lines gave"
            );
            load(LoadOptions::for_count(count, log_level), mode)
        }
        None => load(LoadOptions::for_count(count, log_level), mode),
    }
}

fn start_xdp(book: &Book, endpoints: &[Endpoint], loading: Loading) -> Result<Xdp, DataplaneError> {
    let mode = loading.mode;
    let mut dp = loading
        .thread
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let cfg = book.config();
    let pins = pins(&cfg.server.bpffs_dir, &cfg.server.interfaces);
    // Taken before pinning, so this daemon's own pins can take the names.
    let predecessor = pins
        .as_ref()
        .map(Pins::take_predecessor)
        .unwrap_or_default();
    if let Some(p) = &pins {
        dp.pin(p)?;
    }
    // Written while the verifier may still be at work on the program.
    dp.install_book(book)?;
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
    dp.verified()?;
    let logger = dp.logger()?;
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

/// Reads what the previous daemon's program did after that daemon stopped
/// reading: its ACKs become leases like any other XDP ACK.
pub(super) fn take_over(
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

fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "driver",
        XdpMode::Skb => "skb",
    }
}

/// The dataplane step: with `mode` None (`dataplane = "userspace"`, or a
/// daemon given no dataplane) every reply is rendered once here, so a
/// reply too long to send is refused at start, naming its reservation, and
/// not discovered by a booting machine; installing the maps does the same
/// for the program. A kernel that refuses the program leaves every request
/// to the userspace server.
pub(super) fn start(
    book: &Book,
    endpoints: &[Endpoint],
    loading: Option<Loading>,
) -> anyhow::Result<Option<Xdp>> {
    let cfg: &Config = book.config();
    let Some(loading) = loading else {
        crate::render::tables::subnet_entries(cfg)?;
        for r in book.reservations() {
            crate::render::tables::reservation_entries(cfg, r)?;
        }
        return Ok(None);
    };
    match start_xdp(book, endpoints, loading) {
        Ok(x) => Ok(Some(x)),
        // A reply that cannot be rendered is the configuration's fault,
        // not the kernel's: refuse to start.
        Err(DataplaneError::Render(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, interface = %cfg.server.interfaces.join(","), "XDP unavailable: every request is answered in userspace");
            Ok(None)
        }
    }
}

impl Xdp {
    /// The interfaces' attach modes, comma-separated, for the log.
    pub(super) fn modes(&self) -> String {
        self.attachments
            .iter()
            .map(|a| a.mode.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts the tasks that read the program while serving (its reply
    /// events, its log, the delivery watch) and returns the program, shared
    /// with the API and the stats, and what its predecessor left.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve(
        self,
        tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
        counters: &Arc<UserCounters>,
        acks: &tokio::sync::mpsc::Sender<stormboot_common::events::ReplyEvent>,
        timeline: &Arc<Timeline>,
        attachments: &Arc<Mutex<Vec<Attachment>>>,
        fallbacks: &Arc<std::sync::atomic::AtomicU64>,
        shutdown: &CancellationToken,
    ) -> (Arc<Mutex<Dataplane>>, Predecessor) {
        *attachments.lock().unwrap_or_else(|e| e.into_inner()) = self.attachments;
        let reader = Arc::new(events::Reader::new(
            self.ring,
            counters.clone(),
            acks.clone(),
        ));
        let catch_up = reader.clone();
        timeline.set_catch_up(Box::new(move |t| {
            catch_up.drain(t);
        }));
        tasks.spawn(events::run(reader, timeline.clone(), shutdown.clone()));
        if let Some(logger) = self.logger {
            tasks.spawn(events::forward_logs(logger, shutdown.clone()));
        }
        let dp = Arc::new(Mutex::new(self.dp));
        if !self.watched.is_empty() {
            tasks.spawn(watch_delivery(
                dp.clone(),
                self.watched,
                attachments.clone(),
                fallbacks.clone(),
                shutdown.clone(),
            ));
        }
        (dp, self.predecessor)
    }
}

/// Detaches the program, or with `handover` leaves it attached and pinned
/// for the next daemon. An error means the interface may still hold the
/// program, which a supervisor must learn (the daemon exits non-zero).
pub(super) fn stop(dp: &Mutex<Dataplane>, handover: bool, iface_name: &str) -> anyhow::Result<()> {
    let mut dp = dp
        .lock()
        .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?;
    let detached = if handover { dp.release() } else { dp.detach() };
    match detached {
        Ok(()) if handover => {
            tracing::info!(interface = %iface_name, "XDP left attached and pinned for the next daemon")
        }
        Ok(()) => tracing::info!(interface = %iface_name, "XDP detached"),
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!("detaching XDP from {iface_name}")))
        }
    }
    Ok(())
}
