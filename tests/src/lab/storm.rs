//! Boot-storm client: simulates many machines doing full DHCP DORA exchanges
//! at once from one raw socket, to measure a server the way a rack powering
//! on would load it.
//!
//! Single-threaded on purpose: one nonblocking AF_PACKET socket, a timer heap
//! and a map from xid to machine keep the cost per frame O(log n), so one core
//! can drive tens of thousands of exchanges per second and the measurement is
//! not skewed by the client's own scheduling.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use rand::Rng;
use stormboot_common::layout::{
    CLIENT_PORT, ETH_LEN, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, VLAN_LEN,
};

use stormboot::frame::{self, FrameError};
use stormboot::rawsock::{self, RawSocket, RecvMeta, MAX_FRAME};

pub use crate::reports::StormReport;

/// Options every request asks for: subnet mask, router, DNS, host name,
/// domain name, lease time, server id, T1, T2 (what PXE firmware asks for).
const PARAMS: [u8; 9] = [1, 3, 6, 12, 15, 51, 54, 58, 59];
/// Largest DHCP message we claim to accept (option 57).
const MAX_MESSAGE_SIZE: u16 = 1500;
/// BOOTP's minimum message length (RFC 1542 section 2.1); some relays and
/// servers drop shorter requests, and real firmware pads to at least this.
const MIN_PAYLOAD: usize = 300;
/// Frames drained per wakeup before timers are looked at again, so a flood
/// of replies cannot starve retransmissions.
const RECV_BATCH: usize = 512;
/// Large enough for any frame on a 9000-byte MTU; longer frames are not DHCP.

#[derive(clap::Args, Debug, Clone)]
pub struct StormArgs {
    /// Interface to send on (e.g. sbc0)
    #[arg(long, env = "STORMBOOT_STORM_INTERFACE")]
    pub interface: String,
    /// Number of simulated machines
    #[arg(long, env = "STORMBOOT_STORM_COUNT", default_value_t = 10_000)]
    pub count: u32,
    /// MAC of machine 0; machine i has this MAC + i (as a 48-bit integer)
    #[arg(
        long,
        env = "STORMBOOT_STORM_FIRST_MAC",
        default_value = "02:00:00:00:00:00"
    )]
    pub first_mac: String,
    /// Expected address of machine 0; machine i must get this + i. If absent, any address counts.
    #[arg(long, env = "STORMBOOT_STORM_EXPECT_FIRST_IP")]
    pub expect_first_ip: Option<Ipv4Addr>,
    /// Machines in flight at once (DISCOVERs are sent as fast as this window allows)
    #[arg(long, env = "STORMBOOT_STORM_WINDOW", default_value_t = 256)]
    pub window: u32,
    /// Retransmission timeout in ms for the first try; doubles each retry, up to 64 s (RFC 2131 section 4.1)
    #[arg(long, env = "STORMBOOT_STORM_TIMEOUT_MS", default_value_t = 4000)]
    pub timeout_ms: u64,
    /// Each retransmission delay is randomised by a uniform value in +-this many ms (RFC 2131: 1000)
    #[arg(long, env = "STORMBOOT_STORM_JITTER_MS", default_value_t = 1000)]
    pub jitter_ms: u64,
    /// Give up after this many ms: machines not bound by then count as lost (0: no limit)
    #[arg(long, env = "STORMBOOT_STORM_DEADLINE_MS", default_value_t = 0)]
    pub deadline_ms: u64,
    /// Tries per message before the machine counts as lost
    #[arg(long, env = "STORMBOOT_STORM_TRIES", default_value_t = 4)]
    pub tries: u32,
    /// Broadcast flag in requests: always | never | mixed (even machines set it)
    #[arg(long, env = "STORMBOOT_STORM_BROADCAST", default_value = "mixed")]
    pub broadcast: String,
    /// Print the report as JSON instead of text
    #[arg(long, env = "STORMBOOT_JSON")]
    pub json: bool,
    /// List every binding (MAC, address, ACKing server) in the report.
    #[arg(long)]
    pub bindings: bool,
    /// Flood frames sent for each request the machines send (0: no flood):
    /// DISCOVERs nobody waits for, from the flood's MACs, interleaved with
    /// the machines' exchanges until the last machine is done
    #[arg(long, env = "STORMBOOT_STORM_FLOOD_PER_REQUEST", default_value_t = 0)]
    pub flood_per_request: u32,
    /// MACs the flood cycles through, from --flood-first-mac: 1 is one
    /// misbehaving client, many are a flood of unknown machines
    #[arg(long, env = "STORMBOOT_STORM_FLOOD_MACS", default_value_t = 1)]
    pub flood_macs: u32,
    /// First MAC of the flood; flood MAC i is this + i
    #[arg(
        long,
        env = "STORMBOOT_STORM_FLOOD_FIRST_MAC",
        default_value = "0a:00:00:00:00:00"
    )]
    pub flood_first_mac: String,
}

/// How the BOOTP broadcast flag is set in the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BroadcastMode {
    Always,
    Never,
    /// Even machines set it, so one storm exercises both reply paths.
    Mixed,
}

impl BroadcastMode {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            "mixed" => Ok(Self::Mixed),
            _ => bail!("--broadcast must be always, never or mixed, not {s:?}"),
        }
    }

    pub(crate) fn for_machine(self, i: u32) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Mixed => i & 1 == 0,
        }
    }
}

pub(crate) use stormboot_common::tally::mac_add;

/// RFC 2131 section 4.1's wait before retransmitting: `timeout` doubled
/// for each send so far (the first send waits `timeout`), capped at 64 s,
/// then moved by `unit` (uniform in -1..=1) times `jitter`; never below 1 ms.
fn retransmit_delay(timeout: Duration, jitter: Duration, sends: u32, unit: f64) -> Duration {
    let base = (timeout * (1u32 << sends.saturating_sub(1).min(16))).min(MAX_BACKOFF);
    let shift = jitter.as_secs_f64() * unit.clamp(-1.0, 1.0);
    Duration::from_secs_f64((base.as_secs_f64() + shift).max(0.001))
}

/// RFC 2131's ceiling on the doubled retransmission delay.
const MAX_BACKOFF: Duration = Duration::from_secs(64);

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; 0 when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The options and flags shared by DISCOVER and REQUEST; `extra` (a boot
/// client's architecture, vendor and user class, its own request list)
/// goes in last and replaces a default option of the same code.
fn request_base(
    kind: MessageType,
    mac: [u8; 6],
    xid: u32,
    broadcast: bool,
    extra: &[DhcpOption],
) -> Message {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(xid, u, u, u, u, &mac);
    msg.set_opcode(Opcode::BootRequest);
    if broadcast {
        msg.set_flags(Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ParameterRequestList(
        PARAMS.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE_SIZE));
    let mut client_id = Vec::with_capacity(7);
    client_id.push(1); // htype Ethernet, as RFC 2132 section 9.14 suggests
    client_id.extend_from_slice(&mac);
    opts.insert(DhcpOption::ClientIdentifier(client_id));
    for o in extra {
        opts.insert(o.clone());
    }
    msg
}

pub(crate) fn discover(mac: [u8; 6], xid: u32, broadcast: bool, extra: &[DhcpOption]) -> Message {
    request_base(MessageType::Discover, mac, xid, broadcast, extra)
}

/// A REQUEST in SELECTING state (RFC 2131 section 4.3.2): ciaddr zero, the
/// offered address in option 50 and the chosen server in option 54.
pub(crate) fn request(
    mac: [u8; 6],
    xid: u32,
    broadcast: bool,
    offered: Ipv4Addr,
    server_id: Ipv4Addr,
    extra: &[DhcpOption],
) -> Message {
    let mut msg = request_base(MessageType::Request, mac, xid, broadcast, extra);
    msg.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offered));
    msg.opts_mut()
        .insert(DhcpOption::ServerIdentifier(server_id));
    msg
}

/// Encodes `msg` into the broadcast frame a client without an address sends.
pub(crate) fn request_frame(mac: [u8; 6], msg: &Message) -> anyhow::Result<Vec<u8>> {
    Ok(super::fixtures::client_frame(mac, None, &padded(msg)?))
}

/// Encodes `msg` (its giaddr the relay's) into the frame `relay` forwards
/// it to the server in.
pub(crate) fn relayed_request_frame(
    relay: &super::fixtures::Relay,
    msg: &Message,
) -> anyhow::Result<Vec<u8>> {
    Ok(super::fixtures::relay_frame(relay, &padded(msg)?))
}

/// `msg`'s bytes, padded to BOOTP's minimum length.
fn padded(msg: &Message) -> anyhow::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(MIN_PAYLOAD);
    msg.encode(&mut Encoder::new(&mut payload))
        .context("encoding a DHCP request")?;
    if payload.len() < MIN_PAYLOAD {
        payload.resize(MIN_PAYLOAD, 0); // pad options after END
    }
    Ok(payload)
}

/// Offset of the IPv4 header when `f` is UDP/IPv4 to the client port, so the
/// checksum check (and its counter) only applies to frames meant for us.
pub(crate) fn client_port_ip_offset(f: &[u8]) -> Option<usize> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*f.get(i)?, *f.get(i + 1)?]));
    let mut off = ETH_LEN - 2;
    let mut ethertype = be16(off)?;
    if ethertype == ETH_P_8021Q {
        off += VLAN_LEN;
        ethertype = be16(off)?;
    }
    let ip = off + 2;
    if ethertype != ETH_P_IP || *f.get(ip + 9)? != IPPROTO_UDP {
        return None;
    }
    let udp = ip + usize::from(*f.get(ip)? & 0x0f) * 4;
    (be16(udp + 2)? == CLIENT_PORT).then_some(ip)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Selecting,
    Requesting,
    Bound,
    Lost,
}

struct Machine {
    mac: [u8; 6],
    broadcast: bool,
    expected: Option<Ipv4Addr>,
    xid: u32,
    phase: Phase,
    /// Sends of the current message so far (1 after the first send).
    tries: u32,
    naks: u32,
    /// Bumped whenever the pending timer becomes stale, so timer heap entries
    /// need not be removed (lazy deletion keeps the heap O(log n)).
    timer_gen: u32,
    started: Option<Instant>,
    /// The frame to send again on timeout; dropped when the machine is done.
    last_frame: Vec<u8>,
    /// Options added to its requests (a job's; none in a plain storm).
    extra: Vec<DhcpOption>,
    /// Messages it sent again, NAK restarts included.
    resent: u32,
    /// Who waits for its lease (a job's submitter).
    notify: Option<tokio::sync::oneshot::Sender<Outcome>>,
}

impl Machine {
    fn new(mac: [u8; 6], broadcast: bool, expected: Option<Ipv4Addr>) -> Machine {
        Machine {
            mac,
            broadcast,
            expected,
            xid: 0,
            phase: Phase::NotStarted,
            tries: 0,
            naks: 0,
            timer_gen: 0,
            started: None,
            last_frame: Vec::new(),
            extra: Vec::new(),
            resent: 0,
            notify: None,
        }
    }
}

/// One DHCP exchange asked of a running engine ([`serve`]): a MAC, the
/// options its client sends, and where the outcome goes.
pub struct Job {
    pub mac: [u8; 6],
    /// Whether its requests set the BOOTP broadcast flag.
    pub broadcast: bool,
    pub options: Vec<DhcpOption>,
    pub done: tokio::sync::oneshot::Sender<Outcome>,
}

/// How a job ended: its ACK's fields, or None when it was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub lease: Option<Lease>,
    /// Messages sent again after a timeout, and DISCOVERs restarted by a NAK.
    pub resent: u32,
}

/// What a boot client takes from its ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// Option 54.
    pub server_id: Ipv4Addr,
    /// siaddr: where a TFTP boot file is (firmware reads it there).
    pub next_server: Ipv4Addr,
    /// Option 67, else the BOOTP file field; None when both are empty.
    pub file: Option<String>,
}

impl Lease {
    fn of(msg: &Message, server_id: Ipv4Addr) -> Lease {
        let text = |b: &[u8]| {
            let t = String::from_utf8_lossy(b);
            let t = t.trim_end_matches('\0').trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        let file = match msg.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(b)) => text(b),
            _ => None,
        }
        .or_else(|| msg.fname().and_then(text));
        Lease {
            ip: msg.yiaddr(),
            server_id,
            next_server: msg.siaddr(),
            file,
        }
    }
}

/// Timer heap entry: (deadline, machine index, generation).
type Timer = Reverse<(Instant, u32, u32)>;

struct Storm {
    sock: RawSocket,
    machines: Vec<Machine>,
    /// In-flight machines by xid: every reply is routed in O(1).
    by_xid: HashMap<u32, u32>,
    timers: BinaryHeap<Timer>,
    /// Frames the kernel refused for lack of buffer space, sent before
    /// anything new.
    backlog: VecDeque<Vec<u8>>,
    timeout: Duration,
    jitter: Duration,
    tries: u32,
    window: u32,
    next: u32,
    in_flight: u32,
    done: u32,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
    latencies_ms: Vec<f64>,
    bound: u32,
    lost: u32,
    naks: u32,
    wrong_address: u32,
    bad_checksum: u64,
    retransmits: u64,
    flood: Option<Flood>,
    /// The ACKs seen, when the report lists them.
    bindings: Option<Vec<crate::reports::Binding>>,
}

/// The flood beside the machines: `per_request` DISCOVERs for each
/// request a machine sends, from `macs` MACs in turn.
struct Flood {
    per_request: u32,
    first_mac: [u8; 6],
    macs: u32,
    next: u32,
    sent: u64,
}

impl Flood {
    fn next_frame(&mut self) -> anyhow::Result<Vec<u8>> {
        let mac = mac_add(self.first_mac, self.next).expect("range checked in run");
        self.next = (self.next + 1) % self.macs;
        self.sent += 1;
        let xid = rand::thread_rng().gen();
        request_frame(mac, &discover(mac, xid, false, &[]))
    }
}

impl Storm {
    /// Sends a machine's frame, and the flood's share after it.
    fn transmit(&mut self, frame: Vec<u8>) -> anyhow::Result<()> {
        self.send_frame(frame)?;
        let n = self.flood.as_ref().map_or(0, |f| f.per_request);
        for _ in 0..n {
            let f = self.flood.as_mut().expect("n > 0 only with a flood");
            let frame = f.next_frame()?;
            self.send_frame(frame)?;
        }
        Ok(())
    }

    fn send_frame(&mut self, frame: Vec<u8>) -> anyhow::Result<()> {
        if !self.backlog.is_empty() || !self.sock.send(&frame)? {
            self.backlog.push_back(frame);
        }
        Ok(())
    }

    fn flush_backlog(&mut self) -> anyhow::Result<()> {
        while let Some(frame) = self.backlog.front() {
            if !self.sock.send(frame)? {
                break;
            }
            self.backlog.pop_front();
        }
        Ok(())
    }

    fn arm(&mut self, idx: u32, now: Instant) {
        let unit = if self.jitter.is_zero() {
            0.0
        } else {
            rand::thread_rng().gen_range(-1.0..=1.0)
        };
        let m = &mut self.machines[idx as usize];
        m.timer_gen = m.timer_gen.wrapping_add(1);
        let delay = retransmit_delay(self.timeout, self.jitter, m.tries, unit);
        self.timers.push(Reverse((now + delay, idx, m.timer_gen)));
    }

    fn fresh_xid(&mut self, idx: u32) -> u32 {
        let mut rng = rand::thread_rng();
        loop {
            let xid = rng.gen();
            if let std::collections::hash_map::Entry::Vacant(e) = self.by_xid.entry(xid) {
                e.insert(idx);
                return xid;
            }
        }
    }

    /// Sends a (new) DISCOVER for machine `idx` under a fresh xid.
    fn send_discover(&mut self, idx: u32, now: Instant) -> anyhow::Result<()> {
        let xid = self.fresh_xid(idx);
        let m = &mut self.machines[idx as usize];
        m.xid = xid;
        m.phase = Phase::Selecting;
        m.tries = 1;
        m.started.get_or_insert(now);
        let frame = request_frame(m.mac, &discover(m.mac, xid, m.broadcast, &m.extra))?;
        m.last_frame.clone_from(&frame);
        self.first_send.get_or_insert(now);
        self.transmit(frame)?;
        self.arm(idx, now);
        Ok(())
    }

    fn launch(&mut self, now: Instant) -> anyhow::Result<()> {
        while self.in_flight < self.window && self.next < self.machines.len() as u32 {
            let idx = self.next;
            self.next += 1;
            self.in_flight += 1;
            self.send_discover(idx, now)?;
        }
        Ok(())
    }

    fn finish(&mut self, idx: u32, phase: Phase, lease: Option<Lease>) {
        let m = &mut self.machines[idx as usize];
        self.by_xid.remove(&m.xid);
        m.phase = phase;
        m.timer_gen = m.timer_gen.wrapping_add(1);
        m.last_frame = Vec::new();
        m.extra = Vec::new();
        if let Some(tx) = m.notify.take() {
            // A submitter that stopped waiting has nothing left to learn.
            let _ = tx.send(Outcome {
                lease,
                resent: m.resent,
            });
        }
        self.in_flight -= 1;
        self.done += 1;
        match phase {
            Phase::Bound => self.bound += 1,
            _ => self.lost += 1,
        }
    }

    /// Ends the run early: every machine not yet bound or lost is lost.
    fn abandon(&mut self) {
        for idx in 0..self.machines.len() as u32 {
            match self.machines[idx as usize].phase {
                Phase::Selecting | Phase::Requesting => self.finish(idx, Phase::Lost, None),
                Phase::NotStarted => {
                    let m = &mut self.machines[idx as usize];
                    m.phase = Phase::Lost;
                    if let Some(tx) = m.notify.take() {
                        let _ = tx.send(Outcome {
                            lease: None,
                            resent: 0,
                        });
                    }
                    self.done += 1;
                    self.lost += 1;
                }
                Phase::Bound | Phase::Lost => {}
            }
        }
    }

    fn expire_timers(&mut self, now: Instant) -> anyhow::Result<()> {
        while let Some(&Reverse((deadline, idx, generation))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let m = &mut self.machines[idx as usize];
            if m.timer_gen != generation || !matches!(m.phase, Phase::Selecting | Phase::Requesting)
            {
                continue;
            }
            if m.tries >= self.tries {
                self.finish(idx, Phase::Lost, None);
                continue;
            }
            m.tries += 1;
            m.resent += 1;
            let frame = m.last_frame.clone();
            self.retransmits += 1;
            self.transmit(frame)?;
            self.arm(idx, now);
        }
        Ok(())
    }

    fn on_frame(&mut self, buf: &mut [u8], meta: &RecvMeta, now: Instant) -> anyhow::Result<()> {
        if meta.pkttype == libc::PACKET_OUTGOING || meta.len > buf.len() {
            return Ok(());
        }
        let f = &mut buf[..meta.len];
        if client_port_ip_offset(f).is_none() {
            return Ok(());
        }
        rawsock::clear_partial_checksum(f, meta);
        let parsed = match frame::parse(f) {
            Ok(p) => p,
            Err(FrameError::IpChecksum | FrameError::UdpChecksum) => {
                self.bad_checksum += 1;
                return Ok(());
            }
            Err(_) => return Ok(()),
        };
        let Ok(msg) = Message::decode(&mut Decoder::new(parsed.payload)) else {
            return Ok(());
        };
        // hlen over 16 would make chaddr() panic.
        if msg.opcode() != Opcode::BootReply || msg.hlen() > 16 {
            return Ok(());
        }
        let Some(&idx) = self.by_xid.get(&msg.xid()) else {
            return Ok(());
        };
        let m = &mut self.machines[idx as usize];
        if msg.chaddr().get(..6) != Some(&m.mac[..]) {
            return Ok(());
        }
        match (msg.opts().msg_type(), m.phase) {
            (Some(MessageType::Offer), Phase::Selecting) => {
                let offered = msg.yiaddr();
                if offered.is_unspecified() {
                    return Ok(());
                }
                let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(id)) => *id,
                    // RFC 2131 requires option 54; the source address is the
                    // best guess when a server forgets it.
                    _ => parsed.addr.ip_src,
                };
                let frame = request_frame(
                    m.mac,
                    &request(m.mac, m.xid, m.broadcast, offered, server_id, &m.extra),
                )?;
                m.phase = Phase::Requesting;
                m.tries = 1;
                m.last_frame.clone_from(&frame);
                self.transmit(frame)?;
                self.arm(idx, now);
            }
            (Some(MessageType::Ack), Phase::Requesting) => {
                if m.expected.is_some_and(|e| e != msg.yiaddr()) {
                    self.wrong_address += 1;
                }
                if let Some(t0) = m.started {
                    self.latencies_ms
                        .push(now.duration_since(t0).as_secs_f64() * 1e3);
                }
                let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(id)) => *id,
                    _ => parsed.addr.ip_src,
                };
                let lease = m.notify.is_some().then(|| Lease::of(&msg, server_id));
                if let Some(list) = &mut self.bindings {
                    list.push(crate::reports::Binding {
                        mac: frame::format_mac(&m.mac),
                        ip: msg.yiaddr(),
                        server: server_id,
                    });
                }
                self.last_ack = Some(now);
                self.finish(idx, Phase::Bound, lease);
            }
            (Some(MessageType::Nak), Phase::Requesting) => {
                self.naks += 1;
                m.naks += 1;
                // A server that NAKs every time must not keep the run alive.
                if m.naks >= self.tries {
                    self.finish(idx, Phase::Lost, None);
                } else {
                    self.retransmits += 1;
                    m.resent += 1;
                    let old = m.xid;
                    self.by_xid.remove(&old);
                    self.send_discover(idx, now)?;
                }
            }
            // Duplicate OFFERs (answers to retransmits, or a second server)
            // and late replies are ignored, as a client in that state would.
            _ => {}
        }
        Ok(())
    }

    fn report(&mut self, end: Instant) -> StormReport {
        self.latencies_ms.sort_by(f64::total_cmp);
        let elapsed = match (self.first_send, self.last_ack.or(Some(end))) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        let secs = elapsed.as_secs_f64();
        StormReport {
            machines: self.machines.len() as u32,
            bound: self.bound,
            lost: self.lost,
            naks: self.naks,
            wrong_address: self.wrong_address,
            bad_checksum: self.bad_checksum,
            retransmits: self.retransmits,
            elapsed_ms: secs * 1e3,
            exchanges_per_sec: if secs > 0.0 {
                f64::from(self.bound) / secs
            } else {
                0.0
            },
            latency_p50_ms: percentile(&self.latencies_ms, 50.0),
            latency_p95_ms: percentile(&self.latencies_ms, 95.0),
            latency_p99_ms: percentile(&self.latencies_ms, 99.0),
            latency_max_ms: self.latencies_ms.last().copied().unwrap_or(0.0),
            flood_sent: self.flood.as_ref().map_or(0, |f| f.sent),
            bindings: self.bindings.take().unwrap_or_default(),
        }
    }
}

/// Runs the storm to completion: every machine ends bound or lost.
pub fn run(args: &StormArgs) -> anyhow::Result<StormReport> {
    ensure!(args.window > 0, "--window must be at least 1");
    ensure!(args.tries > 0, "--tries must be at least 1");
    ensure!(args.timeout_ms > 0, "--timeout-ms must be at least 1");
    let mode = BroadcastMode::parse(&args.broadcast)?;
    let first_mac = frame::parse_mac(&args.first_mac)
        .with_context(|| format!("--first-mac {:?} is not a MAC address", args.first_mac))?;
    if args.count > 0 {
        ensure!(
            mac_add(first_mac, args.count - 1).is_some(),
            "--first-mac {} + {} machines passes ff:ff:ff:ff:ff:ff",
            args.first_mac,
            args.count
        );
        if let Some(ip) = args.expect_first_ip {
            ensure!(
                u32::from(ip).checked_add(args.count - 1).is_some(),
                "--expect-first-ip {ip} + {} machines passes 255.255.255.255",
                args.count
            );
        }
    }
    let flood = if args.flood_per_request > 0 {
        ensure!(args.flood_macs > 0, "--flood-macs must be at least 1");
        let first_mac = frame::parse_mac(&args.flood_first_mac).with_context(|| {
            format!(
                "--flood-first-mac {:?} is not a MAC address",
                args.flood_first_mac
            )
        })?;
        ensure!(
            mac_add(first_mac, args.flood_macs - 1).is_some(),
            "--flood-first-mac {} + {} MACs passes ff:ff:ff:ff:ff:ff",
            args.flood_first_mac,
            args.flood_macs
        );
        Some(Flood {
            per_request: args.flood_per_request,
            first_mac,
            macs: args.flood_macs,
            next: 0,
            sent: 0,
        })
    } else {
        None
    };
    let machines = (0..args.count)
        .map(|i| {
            Machine::new(
                mac_add(first_mac, i).expect("range checked above"),
                mode.for_machine(i),
                args.expect_first_ip
                    .map(|ip| Ipv4Addr::from(u32::from(ip) + i)),
            )
        })
        .collect();
    let retry = Retry {
        timeout: Duration::from_millis(args.timeout_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        tries: args.tries,
        window: args.window,
    };
    let sock = RawSocket::open(&args.interface, libc::ETH_P_ALL as u16, true)?;
    let mut storm = Storm::new(sock, machines, &retry, flood);
    if args.bindings {
        storm.bindings = Some(Vec::new());
    }
    let deadline =
        (args.deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(args.deadline_ms));
    storm.drive(deadline, None)?;
    Ok(storm.report(Instant::now()))
}

/// How the engine retransmits, and how many exchanges it keeps in flight.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// The first wait; doubled for each send (RFC 2131 section 4.1).
    pub timeout: Duration,
    /// Each wait moves by up to this much either way.
    pub jitter: Duration,
    /// Sends per message before the exchange is lost.
    pub tries: u32,
    /// Exchanges in flight at once.
    pub window: u32,
}

/// Runs the engine on `interface` for the jobs `jobs` brings, each
/// answered on its own channel, until the sender side is dropped and every
/// job has ended, or until `deadline` (every job in flight is then lost,
/// later ones are refused); the report covers them all. The boot chain's
/// machines ask for their two leases this way, from their own tasks.
pub fn serve(
    interface: &str,
    retry: &Retry,
    jobs: std::sync::mpsc::Receiver<Job>,
    deadline: Option<Instant>,
) -> anyhow::Result<StormReport> {
    ensure!(
        retry.window > 0 && retry.tries > 0,
        "window and tries must be at least 1"
    );
    let sock = RawSocket::open(interface, libc::ETH_P_ALL as u16, true)?;
    // The machines' TFTP and HTTP cross the same interface, gigabytes of
    // it: copying every frame up to this socket would starve the engine
    // and drop the replies it waits for.
    sock.filter_udp_ports(CLIENT_PORT, CLIENT_PORT)?;
    let mut storm = Storm::new(sock, Vec::new(), retry, None);
    storm.drive(deadline, Some(&jobs))?;
    Ok(storm.report(Instant::now()))
}

/// How often the engine looks for new jobs while it has nothing else to
/// wake it: a job waits at most this long before its DISCOVER leaves.
const JOB_POLL: Duration = Duration::from_millis(1);

impl Storm {
    fn new(sock: RawSocket, machines: Vec<Machine>, retry: &Retry, flood: Option<Flood>) -> Storm {
        let count = machines.len();
        Storm {
            sock,
            machines,
            by_xid: HashMap::with_capacity((retry.window as usize).min(count.max(1024)) * 2),
            timers: BinaryHeap::new(),
            backlog: VecDeque::new(),
            timeout: retry.timeout,
            jitter: retry.jitter,
            tries: retry.tries,
            window: retry.window,
            next: 0,
            in_flight: 0,
            done: 0,
            first_send: None,
            last_ack: None,
            latencies_ms: Vec::with_capacity(count),
            bound: 0,
            lost: 0,
            naks: 0,
            wrong_address: 0,
            bad_checksum: 0,
            retransmits: 0,
            flood,
            bindings: None,
        }
    }

    /// Takes the jobs waiting in `jobs` as new machines; false once the
    /// sender is gone.
    fn take_jobs(&mut self, jobs: &std::sync::mpsc::Receiver<Job>) -> bool {
        loop {
            match jobs.try_recv() {
                Ok(job) => {
                    let mut m = Machine::new(job.mac, job.broadcast, None);
                    m.extra = job.options;
                    m.notify = Some(job.done);
                    self.machines.push(m);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Sends, receives and retransmits until every machine is bound or
    /// lost (and, with `jobs`, no more can come), or until `deadline`.
    fn drive(
        &mut self,
        deadline: Option<Instant>,
        jobs: Option<&std::sync::mpsc::Receiver<Job>>,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; MAX_FRAME];
        let mut open = jobs.is_some();
        loop {
            if let Some(rx) = jobs.filter(|_| open) {
                open = self.take_jobs(rx);
            }
            let total = self.machines.len() as u32;
            if self.done == total && !open {
                break;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                self.abandon();
                break;
            }
            self.flush_backlog()?;
            self.expire_timers(now)?;
            self.launch(now)?;
            if self.done == total && !open {
                break;
            }
            let wait = if self.backlog.is_empty() {
                self.timers
                    .peek()
                    .map_or(Duration::from_millis(100), |Reverse((t, ..))| {
                        t.saturating_duration_since(now)
                    })
            } else {
                // Buffer space comes back as the peer drains; there is no
                // readiness event for ENOBUFS, so retry soon.
                Duration::from_millis(1)
            };
            let wait = deadline.map_or(wait, |d| wait.min(d.saturating_duration_since(now)));
            let wait = if open { wait.min(JOB_POLL) } else { wait };
            self.sock.poll(wait)?;
            for _ in 0..RECV_BATCH {
                let Some(meta) = self.sock.recv(&mut buf)? else {
                    break;
                };
                self.on_frame(&mut buf, &meta, Instant::now())?;
            }
        }
        Ok(())
    }
}

/// Prints the report on stdout, as an aligned table or as JSON.
pub fn print_report(report: &StormReport, json: bool) {
    if json {
        return super::print_json(report);
    }
    let r = report;
    let rows: [(&str, String); 14] = [
        ("machines", r.machines.to_string()),
        ("bound", r.bound.to_string()),
        ("lost", r.lost.to_string()),
        ("naks", r.naks.to_string()),
        ("wrong address", r.wrong_address.to_string()),
        ("bad checksum", r.bad_checksum.to_string()),
        ("retransmits", r.retransmits.to_string()),
        ("elapsed", format!("{:.1} ms", r.elapsed_ms)),
        ("exchanges/s", format!("{:.0}", r.exchanges_per_sec)),
        ("latency p50", format!("{:.2} ms", r.latency_p50_ms)),
        ("latency p95", format!("{:.2} ms", r.latency_p95_ms)),
        ("latency p99", format!("{:.2} ms", r.latency_p99_ms)),
        ("latency max", format!("{:.2} ms", r.latency_max_ms)),
        ("flood sent", r.flood_sent.to_string()),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value:>12}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormboot::frame::{Addressing, BROADCAST_MAC};

    fn decode(frame: &[u8]) -> (Addressing, Message) {
        let p = frame::parse(frame).expect("valid frame");
        let msg = Message::decode(&mut Decoder::new(p.payload)).expect("valid DHCP");
        assert!(p.payload.len() >= MIN_PAYLOAD);
        (p.addr, msg)
    }

    fn common_checks(addr: &Addressing, msg: &Message, mac: [u8; 6], xid: u32) {
        assert_eq!(addr.eth_dst, BROADCAST_MAC);
        assert_eq!(addr.eth_src, mac);
        assert_eq!(
            (addr.ip_src, addr.ip_dst),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        );
        assert_eq!((addr.sport, addr.dport), (68, 67));
        assert_eq!(msg.opcode(), Opcode::BootRequest);
        assert_eq!(msg.xid(), xid);
        assert_eq!(msg.chaddr(), &mac[..]);
        assert_eq!(msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
        let o = msg.opts();
        let prl: Vec<u8> = match o.get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(v)) => v.iter().map(|&c| u8::from(c)).collect(),
            other => panic!("option 55: {other:?}"),
        };
        assert_eq!(prl, PARAMS);
        assert_eq!(
            o.get(OptionCode::MaxMessageSize),
            Some(&DhcpOption::MaxMessageSize(1500))
        );
        let mut cid = vec![1];
        cid.extend_from_slice(&mac);
        assert_eq!(
            o.get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(cid))
        );
    }

    #[test]
    fn discover_decodes_with_its_options() {
        let mac = [2, 0, 0, 0, 0x12, 0x34];
        for broadcast in [true, false] {
            let (addr, msg) =
                decode(&request_frame(mac, &discover(mac, 0xdead_beef, broadcast, &[])).unwrap());
            common_checks(&addr, &msg, mac, 0xdead_beef);
            assert_eq!(msg.flags().broadcast(), broadcast);
            assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
            assert!(msg.opts().get(OptionCode::RequestedIpAddress).is_none());
            assert!(msg.opts().get(OptionCode::ServerIdentifier).is_none());
        }
    }

    #[test]
    fn request_decodes_in_selecting_state() {
        let mac = [2, 0, 0, 0, 0, 7];
        let offered = Ipv4Addr::new(10, 50, 0, 100);
        let server = Ipv4Addr::new(10, 50, 0, 1);
        for broadcast in [true, false] {
            let msg = request(mac, 42, broadcast, offered, server, &[]);
            let (addr, msg) = decode(&request_frame(mac, &msg).unwrap());
            common_checks(&addr, &msg, mac, 42);
            assert_eq!(msg.flags().broadcast(), broadcast);
            assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));
            assert_eq!(
                msg.opts().get(OptionCode::RequestedIpAddress),
                Some(&DhcpOption::RequestedIpAddress(offered))
            );
            assert_eq!(
                msg.opts().get(OptionCode::ServerIdentifier),
                Some(&DhcpOption::ServerIdentifier(server))
            );
        }
    }

    #[test]
    fn broadcast_modes() {
        let mixed = BroadcastMode::parse("mixed").unwrap();
        assert!(mixed.for_machine(0) && !mixed.for_machine(1) && mixed.for_machine(2));
        assert!(BroadcastMode::parse("always").unwrap().for_machine(1));
        assert!(!BroadcastMode::parse("never").unwrap().for_machine(0));
        assert!(BroadcastMode::parse("sometimes").is_err());
    }

    #[test]
    fn mac_arithmetic_carries_across_bytes() {
        let base = [2, 0, 0, 0, 0, 0];
        assert_eq!(mac_add(base, 0), Some(base));
        assert_eq!(mac_add(base, 1), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(mac_add(base, 256), Some([2, 0, 0, 0, 1, 0]));
        assert_eq!(
            mac_add([2, 0, 0, 0, 0xff, 0xff], 1),
            Some([2, 0, 0, 1, 0, 0])
        );
        assert_eq!(
            mac_add([2, 0, 0xff, 0xff, 0xff, 0xff], u32::MAX),
            Some([2, 1, 0xff, 0xff, 0xff, 0xfe])
        );
        assert_eq!(mac_add([0xff; 6], 0), Some([0xff; 6]));
        assert_eq!(mac_add([0xff; 6], 1), None);
    }

    #[test]
    fn retransmissions_follow_rfc_2131_backoff() {
        let (t, j) = (Duration::from_secs(4), Duration::from_secs(1));
        let secs = |sends, unit| retransmit_delay(t, j, sends, unit).as_secs_f64();
        // 4 s, 8 s, 16 s, 32 s, then 64 s at most, each +-1 s.
        assert_eq!(secs(1, 0.0), 4.0);
        assert_eq!(secs(2, 0.0), 8.0);
        assert_eq!(secs(3, -1.0), 15.0);
        assert_eq!(secs(4, 1.0), 33.0);
        assert_eq!(secs(5, 0.0), 64.0);
        assert_eq!(secs(9, 0.5), 64.5);
        // Out-of-range draws are clamped; a delay never reaches zero.
        assert_eq!(secs(1, 7.0), 5.0);
        let tiny = retransmit_delay(Duration::from_millis(1), j, 1, -1.0);
        assert_eq!(tiny, Duration::from_millis(1));
    }

    #[test]
    fn the_json_report_reads_back_as_the_same_typed_report() {
        let r = StormReport {
            machines: 10,
            bound: 9,
            lost: 1,
            naks: 0,
            wrong_address: 0,
            bad_checksum: 0,
            retransmits: 3,
            elapsed_ms: 4012.5,
            exchanges_per_sec: 2.24,
            latency_p50_ms: 1.5,
            latency_p95_ms: 2.5,
            latency_p99_ms: 4001.0,
            latency_max_ms: 4010.0,
            flood_sent: 0,
            bindings: Vec::new(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"latency_p95_ms\":2.5"), "{text}");
        let back: StormReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
    }

    #[test]
    fn only_udp_to_port_68_is_looked_at() {
        let mac = [2, 0, 0, 0, 0, 1];
        let own = request_frame(mac, &discover(mac, 1, true, &[])).unwrap();
        assert_eq!(
            client_port_ip_offset(&own),
            None,
            "our own requests go to port 67"
        );
        let mut reply = own.clone();
        reply[ETH_LEN + 20 + 3] = 68;
        assert_eq!(client_port_ip_offset(&reply), Some(ETH_LEN));
        assert_eq!(client_port_ip_offset(&reply[..20]), None);
    }

    /// Tests that need a network namespace. Each runs in a thread of its own
    /// that unshares its network namespace: the namespace and its veth pair
    /// vanish when the thread ends, even after a panic, and nothing is
    /// visible to (or clashes with) the host or other tests.
    mod privileged {
        use std::net::UdpSocket;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        use super::*;

        const CLIENT_IF: &str = "stc0";
        const SERVER_IF: &str = "sts0";
        const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
        const FIRST_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 100);

        fn ip(args: &[&str]) {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("run ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// Runs `f` in a fresh network namespace holding the veth pair
        /// stc0 (client) <-> sts0 (server, 10.9.0.1/24).
        fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
            std::thread::spawn(move || {
                // SAFETY: unshare(2) with CLONE_NEWNET only moves this thread.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    panic!(
                        "privileged test: run as root (CI does): unshare(CLONE_NEWNET): {}",
                        std::io::Error::last_os_error()
                    );
                }
                ip(&[
                    "link", "add", CLIENT_IF, "type", "veth", "peer", "name", SERVER_IF,
                ]);
                ip(&["addr", "add", "10.9.0.1/24", "dev", SERVER_IF]);
                ip(&["link", "set", CLIENT_IF, "up"]);
                ip(&["link", "set", SERVER_IF, "up"]);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        }

        fn args(count: u32, tries: u32, timeout_ms: u64) -> StormArgs {
            StormArgs {
                interface: CLIENT_IF.into(),
                count,
                first_mac: "02:00:00:00:00:00".into(),
                expect_first_ip: None,
                window: 2,
                timeout_ms,
                jitter_ms: 0,
                deadline_ms: 0,
                tries,
                broadcast: "mixed".into(),
                json: false,
                bindings: false,
                flood_per_request: 0,
                flood_macs: 1,
                flood_first_mac: "0a:00:00:00:00:00".into(),
            }
        }

        #[test]
        fn nobody_answering_loses_every_machine() {
            let report = in_private_netns(|| run(&args(4, 2, 100)).expect("storm runs"));
            assert_eq!(
                (report.machines, report.bound, report.lost),
                (4, 0, 4),
                "{report:?}"
            );
            // Each machine: DISCOVER, timeout, one retransmission, timeout.
            assert_eq!(report.retransmits, 4, "{report:?}");
            assert_eq!((report.naks, report.bad_checksum), (0, 0));
            // Two windows of 100 + 200 ms.
            assert!(report.elapsed_ms >= 600.0, "{report:?}");
        }

        #[test]
        fn the_deadline_ends_the_run_and_counts_the_rest_lost() {
            let report = in_private_netns(|| {
                let mut a = args(10, 4, 4000);
                a.jitter_ms = 1000;
                a.deadline_ms = 300;
                run(&a).expect("storm runs")
            });
            assert_eq!(
                (report.machines, report.bound, report.lost),
                (10, 0, 10),
                "{report:?}"
            );
            // The first retransmission is due after 3 s at the earliest.
            assert_eq!(report.retransmits, 0, "{report:?}");
            assert!(report.elapsed_ms < 2000.0, "{report:?}");
        }

        #[test]
        fn a_down_interface_is_refused() {
            let err = in_private_netns(|| {
                ip(&["link", "set", CLIENT_IF, "down"]);
                run(&args(1, 1, 100)).map(|_| ()).unwrap_err().to_string()
            });
            assert!(err.contains("stc0 is down"), "{err}");
        }

        fn reply(req: &Message, kind: MessageType, yiaddr: Ipv4Addr) -> Vec<u8> {
            let u = Ipv4Addr::UNSPECIFIED;
            let mut msg = Message::new_with_id(req.xid(), u, yiaddr, u, u, req.chaddr());
            msg.set_opcode(Opcode::BootReply);
            msg.set_flags(req.flags());
            msg.opts_mut().insert(DhcpOption::MessageType(kind));
            msg.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
            msg.opts_mut().insert(DhcpOption::AddressLeaseTime(3600));
            let mut out = Vec::new();
            msg.encode(&mut Encoder::new(&mut out)).unwrap();
            out
        }

        /// A toy server on sts0. OFFERs leave as raw frames (broadcast or
        /// unicast per the flag); ACKs and NAKs leave through a kernel UDP
        /// socket, whose frames cross the veth with the UDP checksum not yet
        /// filled in. Machine 1's first REQUEST is NAKed, machine 2's first
        /// OFFER is preceded by one with a broken checksum, machine 3 is
        /// acknowledged with the wrong address.
        fn responder(stop: Arc<AtomicBool>) {
            let sock = RawSocket::open(SERVER_IF, libc::ETH_P_ALL as u16, true).unwrap();
            let server_mac = mac_of(SERVER_IF);
            let udp = UdpSocket::bind((SERVER, 67)).unwrap();
            udp.set_broadcast(true).unwrap();
            let (mut nak_sent, mut corrupt_sent) = (false, false);
            let mut buf = vec![0u8; MAX_FRAME];
            while !stop.load(Ordering::Relaxed) {
                sock.poll(Duration::from_millis(10)).unwrap();
                while let Some(meta) = sock.recv(&mut buf).unwrap() {
                    if meta.pkttype == libc::PACKET_OUTGOING {
                        continue;
                    }
                    let Ok(p) = frame::parse(&buf[..meta.len]) else {
                        continue;
                    };
                    if p.addr.dport != 67 {
                        continue;
                    }
                    let req = Message::decode(&mut Decoder::new(p.payload)).unwrap();
                    let i = u32::from(req.chaddr()[5]);
                    let ip = Ipv4Addr::from(u32::from(FIRST_IP) + i);
                    match req.opts().msg_type() {
                        Some(MessageType::Discover) => {
                            let (eth_dst, ip_dst) = if req.flags().broadcast() {
                                (BROADCAST_MAC, Ipv4Addr::BROADCAST)
                            } else {
                                (p.addr.eth_src, ip)
                            };
                            let addr = Addressing {
                                eth_dst,
                                eth_src: server_mac,
                                vlan: None,
                                ip_src: SERVER,
                                ip_dst,
                                sport: 67,
                                dport: 68,
                            };
                            let offer = frame::build(&addr, &reply(&req, MessageType::Offer, ip));
                            if i == 2 && !corrupt_sent {
                                corrupt_sent = true;
                                let mut bad = offer.clone();
                                *bad.last_mut().unwrap() ^= 1;
                                sock.send(&bad).unwrap();
                            }
                            sock.send(&offer).unwrap();
                        }
                        Some(MessageType::Request) => {
                            let msg = if i == 1 && !nak_sent {
                                nak_sent = true;
                                reply(&req, MessageType::Nak, Ipv4Addr::UNSPECIFIED)
                            } else if i == 3 {
                                reply(&req, MessageType::Ack, Ipv4Addr::new(10, 9, 0, 250))
                            } else {
                                reply(&req, MessageType::Ack, ip)
                            };
                            udp.send_to(&msg, (Ipv4Addr::BROADCAST, 68)).unwrap();
                        }
                        _ => {}
                    }
                }
            }
        }

        /// Asks `ip`, because /sys shows the namespace it was mounted in,
        /// not this thread's.
        fn mac_of(ifname: &str) -> [u8; 6] {
            let out = std::process::Command::new("ip")
                .args(["-br", "link", "show", ifname])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let word = text
                .split_whitespace()
                .nth(2)
                .expect("ip -br link prints the MAC third");
            frame::parse_mac(word).expect("a MAC")
        }

        #[test]
        fn full_exchanges_against_a_toy_server() {
            let report = in_private_netns(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let server = std::thread::spawn({
                    let stop = stop.clone();
                    move || responder(stop)
                });
                // Let the responder open its sockets before the first DISCOVER.
                std::thread::sleep(Duration::from_millis(200));
                let mut a = args(6, 3, 500);
                a.expect_first_ip = Some(FIRST_IP);
                let report = run(&a);
                stop.store(true, Ordering::Relaxed);
                server
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                report.expect("storm runs")
            });
            assert_eq!(
                (report.machines, report.bound, report.lost),
                (6, 6, 0),
                "{report:?}"
            );
            assert_eq!(report.naks, 1, "{report:?}");
            assert_eq!(report.wrong_address, 1, "{report:?}");
            assert_eq!(report.bad_checksum, 1, "{report:?}");
            assert!(
                report.retransmits >= 1,
                "the NAK restart counts: {report:?}"
            );
            assert!(report.latency_p50_ms > 0.0 && report.latency_max_ms >= report.latency_p99_ms);
            assert!(report.exchanges_per_sec > 0.0);
        }
    }
}
