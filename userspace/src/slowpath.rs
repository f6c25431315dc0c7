//! The userspace dataplane: every DHCP frame the XDP program passes up (or
//! every frame, with `dataplane = "userspace"`) is read whole from its
//! link (`crate::link`), decoded, handled by the DHCP logic, made durable,
//! and answered with a frame built the way the XDP program builds it.
//!
//! Whole frames, not UDP datagrams: replies must reach clients that have
//! no address yet (unicast to chaddr, RFC 2131 4.1), relays and renewing
//! clients are answered at the MAC their request came from, and the frames
//! must equal the XDP program's byte for byte.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{Message, Opcode};
use stormboot_common::layout::{opt, COOKIE, OPTIONS_OFF, PXE_BOOT_PORT, SERVER_PORT};
use stormboot_common::rules::EthDest;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::cluster::Membership;
use crate::dhcp::{self, Ingress};
use crate::frame::{self, format_mac, Addressing, BROADCAST_MAC};
use crate::leases::{Lease, LeaseChange};
use crate::link::Frames;
use crate::stats::UserCounters;
use crate::store::{LeaseStore, Lost};

/// How often a node of a cluster reads the leases the others wrote.
const REFRESH: Duration = Duration::from_secs(1);

/// How far back each read reaches before the last one's clock: a row is
/// stamped when its transaction starts, so one that committed just after
/// a read may carry a time before it. Reads are idempotent.
const REFRESH_OVERLAP: f64 = 3.0;

/// How many times a node answers one request again after another node's
/// client won the address it gave, each time with the winner learned: a
/// DISCOVER is offered another address at once, not after the client's
/// retransmission (a second or more, and perfdhcp's clients never
/// retransmit), and a REQUEST gets its answer (the NAK) at once. Bounded,
/// because each try is a write that may lose again.
const ANSWERS_AFTER_LOST_RACES: u8 = 3;

/// The interface the slow path serves and who we are on it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub ingress: Ingress,
    pub mac: [u8; 6],
    /// Source address of replies: the server identifier.
    pub server_ip: Ipv4Addr,
}

/// A DHCP request as it came off the wire.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which of the slow path's endpoints it arrived on.
    pub via: usize,
    pub addr: Addressing,
    pub msg: Message,
    /// Option 82 as sent (code and length included), echoed verbatim.
    pub relay_info: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error("not a DHCP request to port 67")]
    NotRequest,
    #[error("malformed DHCP message: {0}")]
    Dhcp(String),
}

/// Decodes a received frame into a request; frames that are not DHCP
/// requests are errors the caller counts.
pub fn decode(f: &[u8]) -> Result<Received, DecodeError> {
    let p = frame::parse(f)?;
    if p.addr.dport != SERVER_PORT && p.addr.dport != PXE_BOOT_PORT {
        return Err(DecodeError::NotRequest);
    }
    let msg = dhcp::decode::message(p.payload).map_err(DecodeError::Dhcp)?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(DecodeError::NotRequest);
    }
    // chaddr holds 16 bytes; dhcproto decodes a larger hlen as sent and
    // then panics when chaddr() slices by it.
    if msg.hlen() > 16 {
        return Err(DecodeError::Dhcp(format!("hlen {} exceeds 16", msg.hlen())));
    }
    Ok(Received {
        via: 0,
        addr: p.addr,
        relay_info: raw_option(p.payload, opt::RELAY_AGENT_INFO).map(<[u8]>::to_vec),
        msg,
    })
}

/// The bytes of option `code` (code and length included) in a BOOTP
/// payload, as sent: dhcproto re-encodes what it decodes, and option 82
/// must go back exactly as the relay wrote it.
pub fn raw_option(payload: &[u8], code: u8) -> Option<&[u8]> {
    if payload.get(OPTIONS_OFF - 4..OPTIONS_OFF)? != COOKIE {
        return None;
    }
    let mut i = OPTIONS_OFF;
    while let Some(&c) = payload.get(i) {
        match c {
            opt::END => return None,
            opt::PAD => i += 1,
            _ => {
                let len = *payload.get(i + 1)? as usize;
                let end = i + 2 + len;
                if c == code {
                    return payload.get(i..end);
                }
                i = end;
            }
        }
    }
    None
}

/// The frame that carries `reply`, addressed as the XDP program addresses
/// it: same header fields, same MACs, the request's VLAN tag kept.
pub fn reply_frame(
    reply: &dhcp::Reply,
    request: &Addressing,
    ep: &Endpoint,
    chaddr: [u8; 6],
) -> Vec<u8> {
    let eth_dst = match reply.dest.eth {
        EthDest::Broadcast => BROADCAST_MAC,
        EthDest::Chaddr => chaddr,
        EthDest::RequestSource => request.eth_src,
    };
    frame::build(
        &Addressing {
            eth_dst,
            eth_src: ep.mac,
            vlan: request.vlan,
            ip_src: ep.server_ip,
            ip_dst: Ipv4Addr::from(reply.dest.ip),
            sport: SERVER_PORT,
            dport: reply.dest.port,
        },
        &reply.payload,
    )
}

/// The whole userspace answer to one frame, without I/O: what the slow
/// path sends and what it must make durable first.
pub fn respond(
    server: &mut dhcp::Server,
    rx: &Received,
    ep: &Endpoint,
    now: u64,
) -> (Option<Vec<u8>>, dhcp::Outcome) {
    let mut chaddr = [0u8; 6];
    if let Some(c) = rx.msg.chaddr().get(..6) {
        chaddr.copy_from_slice(c);
    }
    let req = dhcp::Request {
        msg: &rx.msg,
        relay_info: rx.relay_info.as_deref(),
        ingress: &ep.ingress,
        src: SocketAddrV4::new(rx.addr.ip_src, rx.addr.sport),
        dport: rx.addr.dport,
    };
    let outcome = server.handle(&req, now);
    let frame = outcome
        .reply
        .as_ref()
        .map(|r| reply_frame(r, &rx.addr, ep, chaddr));
    (frame, outcome)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Requests waiting for the handler. Bounded; when full the oldest is
/// dropped (and counted): its client has likely retransmitted already, and
/// a late answer to a stale request only confuses it.
pub struct Queue {
    items: Mutex<VecDeque<Received>>,
    cap: usize,
    ready: Notify,
    pub dropped: AtomicU64,
}

impl Queue {
    pub fn new(cap: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::with_capacity(cap)),
            cap: cap.max(1),
            ready: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn push(&self, r: Received) {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.cap {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(r);
        drop(q);
        self.ready.notify_one();
    }

    /// Everything queued now, oldest first.
    pub fn take(&self) -> Vec<Received> {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
}

/// Decodes the frames of one link into the queue. The link's frames
/// ending before shutdown is an error: its interface is no longer served.
async fn receive(
    via: usize,
    name: String,
    mut arrived: mpsc::Receiver<Vec<u8>>,
    queue: Arc<Queue>,
    counters: Arc<UserCounters>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    loop {
        let f = tokio::select! {
            f = arrived.recv() => f,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(f) = f else {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            return Err(std::io::Error::other(format!(
                "the frames of {name} stopped"
            )));
        };
        match decode(&f) {
            Ok(mut rx) => {
                rx.via = via;
                let t = rx.msg.opts().msg_type().map(u8::from).unwrap_or(0);
                UserCounters::bump(&counters.slow_path, t);
                queue.push(rx);
            }
            Err(DecodeError::NotRequest) => {}
            Err(e) => {
                UserCounters::bump(&counters.slow_path, 0);
                tracing::debug!(error = %e, "malformed frame on the DHCP port dropped");
            }
        }
    }
}

/// Everything the slow path needs to run.
pub struct SlowPath {
    /// One per interface served; a request is answered out of the one it
    /// came in on.
    pub endpoints: Vec<Endpoint>,
    /// Each endpoint's frames, index for index.
    pub frames: Vec<Frames>,
    pub server: dhcp::Server,
    pub store: Arc<dyn LeaseStore>,
    pub counters: Arc<UserCounters>,
    pub queue: Arc<Queue>,
    /// ACKs the XDP program sent, to be recorded as leases.
    pub fast_acks: Option<tokio::sync::mpsc::Receiver<stormboot_common::events::ReplyEvent>>,
    /// Who holds which address, for the boot services.
    pub index: Arc<crate::leases::Index>,
    pub timeline: Arc<crate::timeline::Timeline>,
    /// Pool use per subnet, refreshed every second for `/metrics`.
    pub pools: Arc<std::sync::Mutex<Vec<crate::metrics::PoolUsage>>>,
    /// Where lease events go when `[hooks]` is configured.
    pub hooks: Option<crate::hooks::Sender>,
    /// The API's changes to reservations and leases, and SIGHUP's new
    /// configurations.
    pub control: Option<tokio::sync::mpsc::Receiver<crate::api::live::Control>>,
    /// The alive nodes of the cluster, as the heartbeat last saw them;
    /// None without a cluster, where the server answers everyone alone.
    pub membership: Option<tokio::sync::watch::Receiver<Membership>>,
}

/// What the shared store tells the slow path's loop, in the order it is
/// to be taken in.
#[derive(Debug)]
enum Learn {
    /// Leases the store holds that this node's table must take in: the
    /// winners of races its commits lost, and what other nodes wrote.
    Leases(Vec<Lease>),
    /// Leases the store no longer holds (another node ended an offer, a
    /// client released through it): the table lets go of each that it
    /// still has as it was, so the address can be given again.
    Freed(Vec<crate::store::Freed>),
    /// A request whose address was lost, to be answered again (its
    /// `tries`-th answer) once the winners sent before it are learned.
    Again { rx: Box<Received>, tries: u8 },
}

type Learned = tokio::sync::mpsc::UnboundedSender<Learn>;

/// What the shared store tells the slow path besides a commit's result.
#[derive(Clone)]
struct Feedback {
    learned: Learned,
    /// Renewals ACKed while the store could not be reached, to be written
    /// once it can (see `dhcp::bounded`), each with the expiry the store
    /// still holds for it.
    journal: tokio::sync::mpsc::UnboundedSender<(Lease, u64)>,
    /// Addresses whose journalled renewals the store now has.
    recorded: tokio::sync::mpsc::UnboundedSender<Vec<Ipv4Addr>>,
    /// False while the refresh cannot read the store: the table then ages
    /// unchecked, and a NAK on its word alone is withheld.
    reachable: Arc<std::sync::atomic::AtomicBool>,
}

/// Reads what other nodes wrote, every `REFRESH`, into `learned`, until
/// shutdown. The first read takes every row of theirs: the table was
/// loaded a moment ago, but a row may have come since.
async fn refresh(
    store: Arc<dyn LeaseStore>,
    feedback: Feedback,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = 0.0;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let Some(read) = store.written_since(since) else {
            return Ok(());
        };
        let read = read.await;
        feedback.reachable.store(read.is_ok(), Ordering::Relaxed);
        match read {
            Ok(written) => {
                if failing {
                    tracing::info!("reading other nodes' leases again");
                    failing = false;
                }
                since = written.clock - REFRESH_OVERLAP;
                // Removals first: a row written again since is then learned.
                let sent = feedback
                    .learned
                    .send(Learn::Freed(written.freed))
                    .and_then(|()| feedback.learned.send(Learn::Leases(written.leases)));
                if sent.is_err() {
                    return Ok(());
                }
            }
            // Said once per outage, not once a second.
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot read other nodes' leases; the table may be stale, NAKs are withheld");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// What a commit's lost races mean for the reply waiting on it: the
/// winners go to the table, the conflicts are counted, and true when the
/// reply's own address was lost (it must not be sent).
fn lost_races(
    lost: &[Lost],
    reply: Option<Ipv4Addr>,
    learned: &Learned,
    counters: &UserCounters,
) -> bool {
    if lost.is_empty() {
        return false;
    }
    counters
        .lease_conflicts
        .fetch_add(lost.len() as u64, Ordering::Relaxed);
    let _ = learned.send(Learn::Leases(
        lost.iter().filter_map(|l| l.holder.clone()).collect(),
    ));
    reply.is_some_and(|ip| lost.iter().any(|l| l.ip == ip))
}

impl SlowPath {
    /// Runs until `shutdown`: receive, handle, commit, send; and expire
    /// leases once a second.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut senders = Vec::with_capacity(self.frames.len());
        for (via, f) in std::mem::take(&mut self.frames).into_iter().enumerate() {
            let name = self.endpoints[via].ingress.iface_name.clone();
            tasks.spawn(receive(
                via,
                name,
                f.arrived,
                self.queue.clone(),
                self.counters.clone(),
                shutdown.clone(),
            ));
            senders.push(f.send);
        }
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        let mut fast_acks = self.fast_acks.take();
        let mut control = self.control.take();
        let (learned, mut learn) = tokio::sync::mpsc::unbounded_channel();
        let (journal, mut journalled) = tokio::sync::mpsc::unbounded_channel();
        let (recorded, mut stored) = tokio::sync::mpsc::unbounded_channel();
        let feedback = Feedback {
            learned,
            journal,
            recorded,
            reachable: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        // Bounded renewals not yet in the store, oldest first.
        let mut pending: Vec<(Lease, u64)> = Vec::new();
        // The expiry the store holds for each address renewed meanwhile.
        let mut unrecorded: std::collections::HashMap<Ipv4Addr, u64> = Default::default();
        let mut membership = self.membership.take();
        if let Some(m) = membership.as_mut() {
            let m = m.borrow_and_update().clone();
            self.share(&m);
            tasks.spawn(refresh(
                self.store.clone(),
                feedback.clone(),
                shutdown.clone(),
            ));
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(learned) = learn.recv() => match learned {
                    Learn::Leases(leases) => {
                        let upserts: Vec<LeaseChange> =
                            leases.iter().cloned().map(LeaseChange::Upsert).collect();
                        for l in leases {
                            self.server.learn(l);
                        }
                        self.index.apply(&upserts);
                    }
                    Learn::Freed(freed) => {
                        let gone: Vec<LeaseChange> = freed
                            .iter()
                            .filter_map(|f| self.server.forget(f))
                            .map(LeaseChange::Remove)
                            .collect();
                        self.index.apply(&gone);
                    }
                    Learn::Again { rx, tries } => {
                        let send = senders[rx.via].clone();
                        self.handle(&rx, tries, send, &feedback, &unrecorded);
                    }
                },
                Some(ips) = stored.recv() => {
                    for ip in ips {
                        unrecorded.remove(&ip);
                    }
                }
                Some((lease, recorded)) = journalled.recv() => {
                    self.server.cap(lease.clone());
                    // The store's expiry bounds every later renewal too,
                    // until the store has the renewal.
                    unrecorded.entry(lease.ip).or_insert(recorded);
                    pending.push((lease, recorded));
                }
                changed = async { match membership.as_mut() { Some(m) => m.changed().await, None => std::future::pending().await } } => {
                    match (changed, membership.as_mut()) {
                        (Ok(()), Some(m)) => {
                            let m = m.borrow_and_update().clone();
                            self.share(&m);
                        }
                        // The heartbeat stopped: keep the last share.
                        _ => membership = None,
                    }
                }
                Some(cmd) = async { match control.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    self.control(cmd, &feedback);
                }
                _ = self.queue.ready.notified() => {}
                Some(ev) = async { match fast_acks.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    let changes = self.server.record_fast_path_ack(ev.mac, Ipv4Addr::from(ev.ip), unix_now());
                    let via = self.endpoints.iter().position(|e| e.ingress.ifindex == ev.ifindex);
                    self.announce(crate::hooks::Path::Xdp, via);
                    self.commit_in_background(changes, &feedback);
                }
                _ = expiry.tick() => {
                    if !pending.is_empty() && feedback.reachable.load(Ordering::Relaxed) {
                        self.replay(std::mem::take(&mut pending), &feedback);
                    }
                    let changes = self.server.expire(unix_now());
                    self.announce(crate::hooks::Path::Timer, None);
                    self.commit_in_background(changes, &feedback);
                    let usage = self
                        .server
                        .pool_usage()
                        .into_iter()
                        .filter(|&(_, _, size)| size > 0)
                        .map(|(net, used, size)| crate::metrics::PoolUsage {
                            subnet: net.to_string(),
                            used: used as u64,
                            size: size as u64,
                        })
                        .collect();
                    *self.pools.lock().unwrap_or_else(|e| e.into_inner()) = usage;
                }
                Some(r) = tasks.join_next() => {
                    r??;
                }
            }
            for rx in self.queue.take() {
                let send = senders[rx.via].clone();
                self.handle(&rx, 1, send, &feedback, &unrecorded);
            }
        }
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Writes the journalled renewals now that the store answers again,
    /// through the same conditional write as any lease: they are the
    /// holder's, within the grace no other node takes, so they win. Any
    /// that fail wait for the next try.
    fn replay(&self, leases: Vec<(Lease, u64)>, feedback: &Feedback) {
        tracing::info!(
            renewals = leases.len(),
            "lease store back: writing the renewals given while it was away"
        );
        let durable = self.store.commit(
            leases
                .iter()
                .map(|(l, _)| LeaseChange::Upsert(l.clone()))
                .collect(),
        );
        let (journal, learned, counters, recorded) = (
            feedback.journal.clone(),
            feedback.learned.clone(),
            self.counters.clone(),
            feedback.recorded.clone(),
        );
        tokio::spawn(async move {
            match durable.await {
                Ok(lost) => {
                    lost_races(&lost, None, &learned, &counters);
                    let _ = recorded.send(leases.iter().map(|(l, _)| l.ip).collect());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "journalled renewals not stored yet; kept");
                    for l in leases {
                        let _ = journal.send(l);
                    }
                }
            }
        });
    }

    /// In a cluster, the lease a REQUEST may renew, as the table has it
    /// before the request is handled.
    fn renewal_prior(
        &self,
        rx: &Received,
        unrecorded: &std::collections::HashMap<Ipv4Addr, u64>,
    ) -> Option<Lease> {
        self.server.share()?;
        if rx.msg.opts().msg_type() != Some(dhcproto::v4::MessageType::Request) {
            return None;
        }
        let requested = match rx
            .msg
            .opts()
            .get(dhcproto::v4::OptionCode::RequestedIpAddress)
        {
            Some(dhcproto::v4::DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let ip = dhcp::bounded::renewed_address(rx.msg.ciaddr(), requested)?;
        let mut prior = self.server.lease(ip).cloned()?;
        if let Some(&recorded) = unrecorded.get(&ip) {
            prior.expires = prior.expires.min(recorded);
        }
        Some(prior)
    }

    /// Serves this node's share of the cluster as `m` has it.
    fn share(&mut self, m: &Membership) {
        let Some(c) = self.server.config().cluster.clone() else {
            return;
        };
        tracing::debug!(node = %m.me, alive = ?m.alive, "serving this share of the cluster");
        self.server.set_share(Some(dhcp::Share::new(m, &c)));
    }

    /// One change from the API; the answer goes back on its channel.
    fn control(&mut self, cmd: crate::api::live::Control, feedback: &Feedback) {
        use crate::api::live::Control;
        match cmd {
            Control::Book(book, changed, done) => {
                self.server.take_book(book, &changed);
                let _ = done.send(());
            }
            Control::Leases(done) => {
                let _ = done.send(self.server.leases().cloned().collect());
            }
            Control::PoolUsage(done) => {
                let usage = self.server.pool_usage();
                let _ = done.send(usage.into_iter().map(|(_, u, s)| (u, s)).collect());
            }
            Control::Reload(book, done) => {
                // Leases carry over; pools, reservations and options are
                // the new configuration's from the next request on.
                let leases = self.server.leases().cloned().collect();
                let share = self.server.share().cloned();
                self.server = dhcp::Server::with_book(book, leases, unix_now());
                self.server.set_share(share);
                let _ = done.send(());
            }
            Control::RemoveLease(ip, done) => {
                let removed = self.server.remove_lease(ip).map(|(lease, change)| {
                    let changes = vec![change];
                    self.index.apply(&changes);
                    let durable = self.store.commit(changes);
                    let (learned, counters) = (feedback.learned.clone(), self.counters.clone());
                    // The API says whether the removal lost; the table
                    // learns who has the address instead.
                    let told: crate::store::LeaseCommit = Box::pin(async move {
                        let lost = durable.await?;
                        lost_races(&lost, None, &learned, &counters);
                        Ok(lost)
                    });
                    (lease, told)
                });
                let _ = done.send(removed);
            }
        }
    }

    /// Stores changes nobody waits for (expiries, the fast path's ACKs,
    /// which were already sent).
    fn commit_in_background(&self, changes: Vec<LeaseChange>, feedback: &Feedback) {
        if changes.is_empty() {
            return;
        }
        self.index.apply(&changes);
        // Queued here, in decision order; only the wait is left to the task.
        let durable = self.store.commit(changes);
        let (learned, counters) = (feedback.learned.clone(), self.counters.clone());
        tokio::spawn(async move {
            match durable.await {
                Ok(lost) => {
                    lost_races(&lost, None, &learned, &counters);
                }
                Err(e) => tracing::error!(error = %e, "storing lease changes failed"),
            }
        });
    }

    /// Hands the lease events of the last call into the DHCP logic to the
    /// hooks, with where they happened: `via` is the endpoint the request
    /// (or the program's ACK) came in on. Never waits.
    fn announce(&mut self, path: crate::hooks::Path, via: Option<usize>) {
        let events = self.server.take_events();
        let Some(hooks) = &self.hooks else {
            return;
        };
        let now = unix_now();
        let served: Vec<&Ingress> = self.endpoints.iter().map(|e| &e.ingress).collect();
        let via = via.and_then(|i| served.get(i).copied());
        for ev in events {
            let (interface, subnet) =
                crate::hooks::event::locate(self.server.config(), &served, &ev, via);
            hooks.push(crate::hooks::HookEvent::new(
                &ev, path, interface, subnet, now,
            ));
        }
    }

    /// The request (on its first answer) and its answer, in the machine's
    /// boot timeline.
    fn record(&self, mac: [u8; 6], rx: &Received, tries: u8, outcome: &dhcp::Outcome) {
        use crate::timeline::Phase;
        if tries == 1 && rx.msg.opts().msg_type() == Some(dhcproto::v4::MessageType::Discover) {
            self.timeline.record(
                mac,
                Phase::Discover,
                "userspace",
                self.endpoints[rx.via].ingress.iface_name.clone(),
            );
        }
        if let Some(r) = &outcome.reply {
            let phase = match r.msg_type {
                stormboot_common::layout::msg::OFFER => Phase::Offer,
                stormboot_common::layout::msg::NAK => Phase::Nak,
                _ => Phase::Ack,
            };
            self.timeline.record(
                mac,
                phase,
                "userspace",
                format!("{} ({})", r.yiaddr, outcome.note),
            );
        }
    }

    /// Answers `rx` for the `tries`-th time (1 as it arrives).
    fn handle(
        &mut self,
        rx: &Received,
        tries: u8,
        send: mpsc::Sender<Vec<u8>>,
        feedback: &Feedback,
        unrecorded: &std::collections::HashMap<Ipv4Addr, u64>,
    ) {
        let prior = self.renewal_prior(rx, unrecorded);
        let now = unix_now();
        let (frame, outcome) = respond(&mut self.server, rx, &self.endpoints[rx.via], now);
        self.announce(crate::hooks::Path::Userspace, Some(rx.via));
        let mut chaddr = [0u8; 6];
        if let Some(c) = rx.msg.chaddr().get(..6) {
            chaddr.copy_from_slice(c);
        }
        let mac = format_mac(&chaddr);
        self.record(chaddr, rx, tries, &outcome);
        let kind = outcome
            .reply
            .as_ref()
            .map(|r| crate::render::type_name(r.msg_type))
            .unwrap_or("no reply");
        let ip = outcome
            .reply
            .as_ref()
            .map(|r| r.yiaddr)
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        if let Some(r) = &outcome.reply {
            UserCounters::bump(&self.counters.slow_path_replies, r.msg_type);
        }
        if let Ok(mut m) = self.counters.slow_path_outcomes.lock() {
            *m.entry(outcome.note).or_default() += 1;
        }
        tracing::info!(%mac, %ip, xid = format_args!("{:#010x}", rx.msg.xid()), path = "userspace", note = outcome.note, "{kind}");
        self.index.apply(&outcome.changes);
        if let Some(ip) = outcome.claimed {
            self.index.observe(chaddr, ip);
        }
        // The changes are queued now, in the order the decisions were made
        // (a RELEASE and the next REQUEST for the same address must reach
        // the store in that order); waiting for them to be durable and
        // sending happen off the handler's path, so concurrent requests
        // share one transaction (group commit) instead of waiting in line.
        // A renewal the store cannot take is still answered, for a bounded
        // time: prepared now, sent only if the commit fails for that.
        let grace = self
            .server
            .config()
            .cluster
            .as_ref()
            .map_or(0, |c| c.grace.as_secs());
        let recorded = prior.as_ref().map_or(0, |p| p.expires);
        let bounded = prior
            .as_ref()
            .zip(outcome.reply.as_ref())
            .and_then(|(p, r)| dhcp::bounded::renewal(p, r, &outcome.changes, grace, now))
            .map(|(reply, lease)| {
                let frame = reply_frame(&reply, &rx.addr, &self.endpoints[rx.via], chaddr);
                (frame, lease)
            });
        let journal = feedback.journal.clone();
        let durable = (!outcome.changes.is_empty()).then(|| self.store.commit(outcome.changes));
        // The address the reply gives, unless a reservation does: a
        // reserved machine is answered whatever a stale lease of another
        // client says (that client is NAKed at its next request).
        let given = outcome
            .reply
            .as_ref()
            .map(|r| r.yiaddr)
            .filter(|ip| !ip.is_unspecified() && !self.server.is_reserved(*ip));
        let (learned, counters) = (feedback.learned.clone(), self.counters.clone());
        let xid = rx.msg.xid();
        // Only a node of a cluster loses races; the copy is made only for
        // a reply that gives an address.
        let again =
            (self.server.share().is_some() && given.is_some() && tries <= ANSWERS_AFTER_LOST_RACES)
                .then(|| Box::new(rx.clone()));
        // In a cluster a NAK rests on the table, a cache of the store:
        // while the store cannot be read, it is withheld (the client
        // retries, or moves on to another node).
        let frame = match &outcome.reply {
            Some(r)
                if r.msg_type == stormboot_common::layout::msg::NAK
                    && self.server.share().is_some()
                    && !feedback.reachable.load(Ordering::Relaxed) =>
            {
                if let Ok(mut m) = self.counters.slow_path_outcomes.lock() {
                    *m.entry("nak-withheld").or_default() += 1;
                }
                tracing::info!(%mac, "NAK withheld: the lease store cannot be read");
                None
            }
            _ => frame,
        };
        tokio::spawn(async move {
            if let Some(durable) = durable {
                let lost = match durable.await {
                    Ok(lost) => lost,
                    Err(e) => {
                        if let (true, Some((frame, lease))) = (e.is_transient(), bounded) {
                            tracing::warn!(%mac, ip = %lease.ip, expires = lease.expires, "lease store unreachable: renewal ACKed up to its recorded expiry plus the grace, and journalled");
                            if let Ok(mut m) = counters.slow_path_outcomes.lock() {
                                *m.entry("renewal-bounded").or_default() += 1;
                            }
                            let _ = journal.send((lease, recorded));
                            let _ = send.send(frame).await;
                            return;
                        }
                        // No reply without a durable lease: the client retries.
                        tracing::error!(error = %e, %mac, "lease not stored; reply withheld");
                        return;
                    }
                };
                if lost_races(&lost, given, &learned, &counters) {
                    // Another node's client has the address: not this
                    // OFFER or ACK. The winner goes to the table first
                    // (same channel, in order), then the request is
                    // answered again: another address, or a NAK for this
                    // one. Past the bound, the client's retransmission is.
                    if let Ok(mut m) = counters.slow_path_outcomes.lock() {
                        *m.entry("lost-race").or_default() += 1;
                    }
                    let answered_again = again.is_some_and(|rx| {
                        learned
                            .send(Learn::Again {
                                rx,
                                tries: tries + 1,
                            })
                            .is_ok()
                    });
                    if answered_again {
                        if let Ok(mut m) = counters.slow_path_outcomes.lock() {
                            *m.entry("lost-race-answered-again").or_default() += 1;
                        }
                    }
                    tracing::info!(%mac, ip = %given.unwrap_or(Ipv4Addr::UNSPECIFIED), xid = format_args!("{xid:#010x}"), path = "userspace", note = "lost-race", answered_again, "reply withheld");
                    return;
                }
            }
            if let Some(f) = frame {
                // A link that has stopped is reported by its receiver.
                let _ = send.send(f).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_option_finds_option_82_as_sent() {
        let mut p = vec![0u8; 236];
        p.extend_from_slice(&COOKIE);
        p.extend_from_slice(&[53, 1, 1, 0, 82, 4, 1, 2, b'a', b'b', 255]);
        assert_eq!(raw_option(&p, 82), Some(&[82, 4, 1, 2, b'a', b'b'][..]));
        assert_eq!(raw_option(&p, 61), None);
        // Truncated option: not found, no panic.
        let cut = &p[..p.len() - 3];
        assert_eq!(raw_option(cut, 82), None);
    }

    /// A commit that lost the reply's own address withholds the reply; one
    /// that lost another address (an expiry sweep's, say) does not. Either
    /// way the winners go to the table and the conflicts are counted.
    #[test]
    fn only_losing_the_replys_address_withholds_the_reply() {
        let (learned, mut learn) = tokio::sync::mpsc::unbounded_channel();
        let counters = UserCounters::default();
        let winner = Lease {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            client_id: vec![1, 2, 0, 0, 0, 0, 9],
            mac: [2, 0, 0, 0, 0, 9],
            state: crate::leases::LeaseState::Offered,
            expires: 100,
            updated: 70,
            hostname: None,
        };
        let lost = [
            Lost {
                ip: winner.ip,
                holder: Some(winner.clone()),
            },
            Lost {
                ip: Ipv4Addr::new(10, 0, 0, 6),
                holder: None,
            },
        ];
        assert!(lost_races(&lost, Some(winner.ip), &learned, &counters));
        match learn.try_recv().unwrap() {
            Learn::Leases(leases) => assert_eq!(leases, std::slice::from_ref(&winner)),
            other => panic!("{other:?}"),
        }
        assert!(!lost_races(
            &lost,
            Some(Ipv4Addr::new(10, 0, 0, 7)),
            &learned,
            &counters
        ));
        assert!(!lost_races(&lost, None, &learned, &counters));
        assert!(!lost_races(&[], Some(winner.ip), &learned, &counters));
        assert_eq!(counters.lease_conflicts.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn queue_drops_the_oldest_when_full() {
        let q = Queue::new(2);
        for xid in 1..=3u32 {
            let mut m = Message::default();
            m.set_xid(xid);
            q.push(Received {
                via: 0,
                addr: Addressing {
                    eth_dst: BROADCAST_MAC,
                    eth_src: [0; 6],
                    vlan: None,
                    ip_src: Ipv4Addr::UNSPECIFIED,
                    ip_dst: Ipv4Addr::BROADCAST,
                    sport: 68,
                    dport: 67,
                },
                msg: m,
                relay_info: None,
            });
        }
        let xids: Vec<u32> = q.take().iter().map(|r| r.msg.xid()).collect();
        assert_eq!(xids, vec![2, 3]);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
    }
}
