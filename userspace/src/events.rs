//! Reads what the XDP program reports: reply events (the reply ring), so
//! the daemon logs every lease the kernel handed out without being in its
//! way, and aya-log lines, which go to tracing.

use std::sync::Arc;

use stormboot_common::{events::ReplyEvent, layout::msg};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use crate::dataplane::ReplyRing;
use crate::frame::format_mac;
use crate::stats::UserCounters;

/// How often the reply ring is drained. The program sends its events
/// without waking us, so the daemon's wakeups do not grow with the storm;
/// 10 ms keeps logs and leases current.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// The running program's reply ring and where its events go: drained every
/// `DRAIN_EVERY`, and also by the timeline before it stamps any other
/// event (`Timeline::set_catch_up`). A reply is in the ring before the
/// machine can act on it, so a TFTP or HTTP request it led to is then
/// stamped after it, not up to a drain earlier.
pub struct Reader {
    /// None once the daemon stopped reading: what the program writes after
    /// that is its successor's to read (a handover), not this daemon's.
    ring: std::sync::Mutex<Option<ReplyRing>>,
    counters: Arc<UserCounters>,
    acks: tokio::sync::mpsc::Sender<ReplyEvent>,
}

impl Reader {
    pub fn new(
        ring: ReplyRing,
        counters: Arc<UserCounters>,
        acks: tokio::sync::mpsc::Sender<ReplyEvent>,
    ) -> Self {
        Self {
            ring: std::sync::Mutex::new(Some(ring)),
            counters,
            acks,
        }
    }

    /// Reads what is queued now; none once stopped.
    pub fn drain(&self, timeline: &crate::timeline::Timeline) -> usize {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        match ring.as_mut() {
            Some(r) => drain(r, &self.counters, &self.acks, timeline),
            None => 0,
        }
    }

    /// Reads what is queued, and nothing after.
    fn stop(&self, timeline: &crate::timeline::Timeline) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut r) = ring.take() {
            drain(&mut r, &self.counters, &self.acks, timeline);
        }
    }
}

pub async fn run(
    reader: Arc<Reader>,
    timeline: Arc<crate::timeline::Timeline>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => {
                reader.stop(&timeline);
                return Ok(());
            }
        }
        reader.drain(&timeline);
    }
}

/// Logs and counts every queued event, and hands ACKs to the slow path,
/// which records them as leases. Returns how many it read.
pub fn drain(
    ring: &mut ReplyRing,
    counters: &UserCounters,
    acks: &tokio::sync::mpsc::Sender<ReplyEvent>,
    timeline: &crate::timeline::Timeline,
) -> usize {
    let mut n = 0;
    for ev in ring.by_ref() {
        n += 1;
        UserCounters::bump(&counters.xdp_replies, ev.msg_type);
        let phase = match ev.msg_type {
            msg::OFFER => crate::timeline::Phase::Offer,
            msg::NAK => crate::timeline::Phase::Nak,
            _ => crate::timeline::Phase::Ack,
        };
        // Stamped as read: `record` would catch up, that is, drain again.
        timeline.record_at(
            ev.mac,
            phase,
            "xdp",
            std::net::Ipv4Addr::from(ev.ip).to_string(),
            crate::timeline::now_ms(),
        );
        if ev.msg_type == msg::ACK && acks.try_send(ev).is_err() {
            // The lease table catches up at the machine's next renewal.
            counters
                .fast_acks_unrecorded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mac = format_mac(&ev.mac);
        let ip = std::net::Ipv4Addr::from(ev.ip);
        let xid = u32::from_be_bytes(ev.xid);
        let kind = crate::render::type_name(ev.msg_type);
        match ev.msg_type {
            msg::OFFER => {
                tracing::debug!(%mac, %ip, xid = format_args!("{xid:#010x}"), path = "xdp", "{kind}")
            }
            _ => {
                tracing::info!(%mac, %ip, xid = format_args!("{xid:#010x}"), path = "xdp", "{kind}")
            }
        }
    }
    n
}

/// Registers a descriptor (the aya-log ring buffer) with the reactor.
fn register<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the AsyncFd owns `inner`, so its descriptor stays open for as
    // long as it is registered.
    unsafe { AsyncFd::register(inner) }.map_err(|e| e.into())
}

/// Forwards the program's aya-log lines into tracing (through `log`).
pub async fn forward_logs(
    logger: aya_log::EbpfLogger<&'static dyn log::Log>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut fd = register(logger)?;
    loop {
        let mut guard = tokio::select! {
            g = fd.readable_mut() => g?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
