//! The rate generator (`stormboot-lab rate`): known machines' DISCOVERs
//! and REQUESTs offered at a fixed rate for a fixed time, every reply
//! counted, so servers can be compared at equal offered load.
//!
//! Open loop, unlike the storm: a REQUEST does not wait for its OFFER (each
//! machine's REQUEST names its reserved address and the server), nothing is
//! retransmitted, and what a server does not answer is a drop. The frames
//! are built once, before the clock starts (the storm's builders), each
//! with a transaction id that says which machine and which message it is;
//! sender threads each own a packet socket and a share of the machines and
//! send what their schedule says is due every tick in one sendmmsg(2); one
//! receive thread reads the replies with recvmmsg(2) and matches them by
//! xid, chaddr and message type.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use stormboot::frame::{self, FrameError};
use stormboot::rawsock::{self, RawSocket, RecvMeta, MAX_BATCH};
use stormboot_common::layout::{
    msg, opt, CLIENT_PORT, COOKIE, OFF_CHADDR, OFF_HLEN, OFF_OP, OFF_XID, OFF_YIADDR, OPTIONS_OFF,
};

use stormboot_common::tally::{slot, xid, xid_parts, Run, INDEX_MASK};

use super::generate::{self, Generator};
use super::storm::{self, mac_add, BroadcastMode};
use super::tally::Tally;
pub use crate::reports::{RateReport, RateSecond};

#[derive(clap::Args, Debug, Clone)]
pub struct RateArgs {
    /// Interface to send on (e.g. sbc0)
    #[arg(long)]
    pub interface: String,
    /// Known machines: machine i has MAC --first-mac + i and address --first-ip + i
    #[arg(long, default_value_t = 10_000)]
    pub count: u32,
    #[arg(long, default_value = "02:00:00:00:00:00")]
    pub first_mac: String,
    /// Machine 0's reserved address: its REQUESTs ask for it, and answers
    /// carrying another count as wrong
    #[arg(long, required_unless_present = "pool")]
    pub first_ip: Option<Ipv4Addr>,
    /// The server its REQUESTs select (option 54)
    #[arg(long, default_value = "10.50.0.1")]
    pub server_id: Ipv4Addr,
    /// Requests per second offered, DISCOVERs and REQUESTs together
    #[arg(long)]
    pub rate: u64,
    /// How long to offer it, ms
    #[arg(long, default_value_t = 3000)]
    pub duration_ms: u64,
    /// Sender threads, each with its own socket and share of the rate
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Replies still counted this long after the last send, ms
    #[arg(long, default_value_t = 200)]
    pub drain_ms: u64,
    /// Broadcast flag in requests: always | never | mixed (even machines set it)
    #[arg(long, default_value = "mixed")]
    pub broadcast: String,
    /// Count the answers in the kernel, with the counting program that
    /// `stormboot-lab xdp-pass --tally DIR` runs on the interface, instead
    /// of receiving them on a socket: a core passes a few tens of thousands
    /// of frames a second through the stack to a socket, and the program
    /// counts millions
    #[arg(long)]
    pub tally: Option<std::path::PathBuf>,
    /// Send with the kernel's live-frames generator (`stormboot_generate`,
    /// one thread) instead of packet sockets: each request leaves as an
    /// XDP_TX frame, as a driver sends one, at several times a socket's rate
    #[arg(long)]
    pub in_kernel: bool,
    /// New pool leases instead of known machines: every DISCOVER from a
    /// machine the server has never seen (MACs from --first-mac's first
    /// byte and a random run id), relayed from --relay; each OFFER is
    /// answered with its REQUEST, and an exchange completes at its ACK.
    /// --count, --first-ip, --broadcast, --tally and --in-kernel do not apply
    #[arg(long, requires_all = ["relay", "server_mac"])]
    pub pool: bool,
    /// With --pool: the relay's address on --interface (giaddr, the
    /// requests' source, where the replies come back)
    #[arg(long)]
    pub relay: Option<Ipv4Addr>,
    /// With --pool: the server's MAC, where the relay sends
    #[arg(long)]
    pub server_mac: Option<String>,
    /// Print the report as JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// How often a sender wakes to send what has become due.
pub(super) const TICK: Duration = Duration::from_millis(1);
/// A sender late by more than this much of its schedule lets the excess
/// pass (counted as `behind`) instead of bursting it: the rate offered is
/// the rate asked for, or the report says it was not.
pub(super) const CATCH_UP: Duration = Duration::from_millis(20);
/// Frames a receive call takes at most.
pub(super) const RECV_BATCH: usize = 64;
/// A received frame's buffer: any DHCP reply on a 1500-byte MTU.
pub(super) const RECV_FRAME: usize = 2048;

/// Machines a run can name in its transaction ids.
pub const MAX_MACHINES: u32 = INDEX_MASK + 1;

/// Frames due by `elapsed` at `rate` per second, at most `total`.
pub(super) fn due(rate: u64, elapsed: Duration, total: u64) -> u64 {
    let n = (u128::from(rate) * elapsed.as_nanos() / 1_000_000_000) as u64;
    n.min(total)
}

/// What a sender does now: (frames to send, frames to let pass), when it
/// has issued `issued` and `due` are due; it sends at most `catch_up`
/// frames of lateness and lets the rest pass.
fn plan(issued: u64, due: u64, catch_up: u64) -> (u64, u64) {
    let late = due.saturating_sub(issued);
    let send = late.min(catch_up.max(1));
    (send, late - send)
}

/// A reply to this run, read from a DHCP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// The answer its request wanted: an OFFER to a DISCOVER, an ACK to a
    /// REQUEST; `yiaddr` is the address it carries.
    Answer {
        request: bool,
        index: u32,
        yiaddr: Ipv4Addr,
    },
    Nak,
    /// Not for this run's machines, or not the answer wanted.
    Other,
}

/// Reads a BOOTREPLY for machine `first_mac + index` of this run: the
/// fixed header by the contract's offsets, option 53 by a walk of the
/// options (no decoder: the receive thread reads a million a second).
pub(super) fn classify(payload: &[u8], nonce: u8, count: u32, first_mac: [u8; 6]) -> Reply {
    let be32 = |i: usize| payload.get(i..i + 4).map(|b| [b[0], b[1], b[2], b[3]]);
    if payload.get(OFF_OP) != Some(&2)
        || payload.get(OFF_HLEN) != Some(&6)
        || payload.get(OPTIONS_OFF - 4..OPTIONS_OFF) != Some(&COOKIE[..])
    {
        return Reply::Other;
    }
    let Some((request, index)) =
        be32(OFF_XID).and_then(|x| xid_parts(u32::from_be_bytes(x), nonce))
    else {
        return Reply::Other;
    };
    if index >= count
        || mac_add(first_mac, index).as_ref().map(|m| &m[..])
            != payload.get(OFF_CHADDR..OFF_CHADDR + 6)
    {
        return Reply::Other;
    }
    let Some(yiaddr) = be32(OFF_YIADDR).map(Ipv4Addr::from) else {
        return Reply::Other;
    };
    let wanted = if request { msg::ACK } else { msg::OFFER };
    match option_53(payload) {
        Some(t) if t == wanted => Reply::Answer {
            request,
            index,
            yiaddr,
        },
        Some(msg::NAK) if request => Reply::Nak,
        _ => Reply::Other,
    }
}

/// Option 53's value in a DHCP payload, if it is there whole with length 1.
fn option_53(payload: &[u8]) -> Option<u8> {
    let at = generate::option_at(payload, opt::MESSAGE_TYPE)?;
    // `option_at` found the whole value; its length is the byte before.
    (payload[at - 1] == 1).then(|| payload[at])
}

/// Counts shared by the threads, per second from the start for the series.
pub(super) struct Counts {
    pub(super) sent: Vec<AtomicU64>,
    pub(super) answered: Vec<AtomicU64>,
}

impl Counts {
    pub(super) fn new(seconds: usize) -> Counts {
        let zeros = || (0..seconds).map(|_| AtomicU64::new(0)).collect();
        Counts {
            sent: zeros(),
            answered: zeros(),
        }
    }

    pub(super) fn add(slots: &[AtomicU64], start: Instant, now: Instant, n: u64) {
        let i = (now.saturating_duration_since(start).as_secs() as usize).min(slots.len() - 1);
        slots[i].fetch_add(n, Ordering::Relaxed);
    }
}

/// What one sender did.
#[derive(Default)]
pub(super) struct Sent {
    pub(super) sent: u64,
    pub(super) behind: u64,
    pub(super) refused: u64,
    pub(super) last: Option<Instant>,
}

/// Sends `frames` in turn (wrapping) at `rate` per second until `total`
/// are issued, from `start`.
pub(super) fn send(
    sock: &RawSocket,
    frames: &[Vec<u8>],
    rate: u64,
    total: u64,
    start: Instant,
    counts: &Counts,
) -> anyhow::Result<Sent> {
    let catch_up = due(rate, CATCH_UP, u64::MAX);
    let mut out = Sent::default();
    let mut issued = 0u64;
    let mut next = 0usize;
    let mut batch: Vec<&[u8]> = Vec::with_capacity(MAX_BATCH);
    // Past the schedule's end by the catch-up window, whatever is left
    // (a socket that stays full) passes instead of running on.
    let end = Duration::from_secs_f64(total as f64 / rate as f64) + CATCH_UP;
    while issued < total {
        let now = Instant::now();
        if now - start > end {
            out.behind += total - issued;
            break;
        }
        let (mut todo, skip) = plan(issued, due(rate, now - start, total), catch_up);
        out.behind += skip;
        issued += skip;
        next = (next + skip as usize) % frames.len();
        while todo > 0 {
            batch.clear();
            let first = next;
            while batch.len() < MAX_BATCH && (batch.len() as u64) < todo {
                batch.push(&frames[next]);
                next = (next + 1) % frames.len();
            }
            let n = batch.len();
            let taken = sock.send_many(&batch)?;
            out.sent += taken as u64;
            issued += taken as u64;
            todo -= taken as u64;
            Counts::add(&counts.sent, start, now, taken as u64);
            if taken < n {
                // The socket's buffer is full for a moment: the rest is
                // late now, sent next tick or let pass as `behind`.
                out.refused += (n - taken) as u64;
                next = (first + taken) % frames.len();
                break;
            }
        }
        out.last = Some(Instant::now());
        if issued < total {
            std::thread::sleep(TICK);
        }
    }
    Ok(out)
}

/// Where answers are counted.
enum Receiver {
    Socket(RawSocket),
    Kernel(Box<Tally>),
}

/// How requests leave.
enum Sender {
    /// A packet socket and the frames it sends in turn.
    Socket(RawSocket, Vec<Vec<u8>>),
    /// The kernel's live-frames generator.
    Kernel(Arc<Generator>),
}

/// How often the in-kernel sender's progress is read.
const KERNEL_READ: Duration = Duration::from_millis(10);

/// Follows the in-kernel sender on `thread` until its run is sent or its
/// time (and the catch-up window) is up, counting what it sent each
/// second, then stops it.
fn follow_in_kernel(
    gen: &Generator,
    thread: libc::pthread_t,
    total: u64,
    duration: Duration,
    start: Instant,
    counts: &Counts,
) -> anyhow::Result<Sent> {
    let mut seen = 0;
    let mut last = None;
    loop {
        std::thread::sleep(KERNEL_READ);
        let s = gen.state()?;
        let now = Instant::now();
        if s.sent > seen {
            Counts::add(&counts.sent, start, now, s.sent - seen);
            seen = s.sent;
            last = Some(now);
        }
        // The schedule runs from the program's first repetition, on the
        // clock bpf_ktime_get_ns() reads; a call that started late is not
        // cut short (but a call that never starts is, a second later).
        let window = (duration + CATCH_UP).as_nanos() as u64;
        let over = if s.start_ns == 0 {
            now - start > duration + CATCH_UP + Duration::from_secs(1)
        } else {
            monotonic_ns().saturating_sub(s.start_ns) > window
        };
        if s.sent + s.behind >= total || over {
            generate::stop(thread)?;
            return Ok(Sent {
                sent: s.sent,
                behind: total - s.sent,
                refused: 0,
                last,
            });
        }
    }
}

/// Keeps the calling thread on the CPU it runs on: the generator counts
/// its requests per CPU, one sequence per run.
fn pin_to_this_cpu() {
    // SAFETY: sched_getcpu takes nothing; the set is a local value the
    // kernel only reads.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu >= 0 {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// What the receive thread counted.
#[derive(Default)]
struct Received {
    offers: u64,
    acks: u64,
    naks: u64,
    wrong_address: u64,
    bad_checksum: u64,
}

/// The machines, as the receive thread checks their answers.
#[derive(Clone, Copy)]
struct Machines {
    count: u32,
    first_mac: [u8; 6],
    first_ip: Ipv4Addr,
}

fn receive(
    sock: &RawSocket,
    nonce: u8,
    m: Machines,
    start: Instant,
    stop: &AtomicBool,
    counts: &Counts,
) -> anyhow::Result<Received> {
    let mut out = Received::default();
    let mut bufs = vec![vec![0u8; RECV_FRAME]; RECV_BATCH];
    let mut metas: Vec<RecvMeta> = Vec::with_capacity(RECV_BATCH);
    while !stop.load(Ordering::Relaxed) {
        sock.recv_many(&mut bufs, &mut metas)?;
        if metas.is_empty() {
            sock.poll(Duration::from_millis(5))?;
            continue;
        }
        let now = Instant::now();
        let mut answered = 0;
        for (buf, meta) in bufs.iter_mut().zip(&metas) {
            if meta.pkttype == libc::PACKET_OUTGOING || meta.len > buf.len() {
                continue;
            }
            let f = &mut buf[..meta.len];
            if storm::client_port_ip_offset(f).is_none() {
                continue;
            }
            rawsock::clear_partial_checksum(f, meta);
            let payload = match frame::parse(f) {
                Ok(p) => p.payload,
                Err(FrameError::IpChecksum | FrameError::UdpChecksum) => {
                    out.bad_checksum += 1;
                    continue;
                }
                Err(_) => continue,
            };
            match classify(payload, nonce, m.count, m.first_mac) {
                Reply::Answer {
                    request,
                    index,
                    yiaddr,
                } => {
                    if u32::from(yiaddr) != u32::from(m.first_ip).wrapping_add(index) {
                        out.wrong_address += 1;
                    }
                    if request {
                        out.acks += 1;
                    } else {
                        out.offers += 1;
                    }
                    answered += 1;
                }
                Reply::Nak => out.naks += 1,
                Reply::Other => {}
            }
        }
        Counts::add(&counts.answered, start, now, answered);
    }
    Ok(out)
}

/// How often the kernel's counts are read for the per-second series.
const TALLY_READ: Duration = Duration::from_millis(10);

/// What `receive` counts, read from the kernel's tally until `stop`.
fn receive_counted(
    tally: &Tally,
    start: Instant,
    stop: &AtomicBool,
    counts: &Counts,
) -> anyhow::Result<Received> {
    let answers = |t: &super::tally::Totals| t[slot::OFFERS as usize] + t[slot::ACKS as usize];
    let mut seen = 0;
    loop {
        // The last read comes after `stop`, so the drain is counted.
        let done = stop.load(Ordering::Relaxed);
        let t = tally.totals()?;
        Counts::add(&counts.answered, start, Instant::now(), answers(&t) - seen);
        seen = answers(&t);
        if done {
            return Ok(Received {
                offers: t[slot::OFFERS as usize],
                acks: t[slot::ACKS as usize],
                naks: t[slot::NAKS as usize],
                wrong_address: t[slot::WRONG_ADDRESS as usize],
                bad_checksum: t[slot::BAD_CHECKSUM as usize],
            });
        }
        std::thread::sleep(TALLY_READ);
    }
}

/// The requests one sender thread sends in turn: for each of its machines
/// (every `threads`-th from `thread`), a DISCOVER then a REQUEST.
fn frames_of(
    args: &RateArgs,
    mode: BroadcastMode,
    (first_mac, first_ip): ([u8; 6], Ipv4Addr),
    nonce: u8,
    thread: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    for i in (thread..args.count).step_by(args.threads as usize) {
        let mac = mac_add(first_mac, i).expect("range checked by run");
        let ip = Ipv4Addr::from(u32::from(first_ip) + i);
        let bcast = mode.for_machine(i);
        let d = storm::discover(mac, xid(nonce, false, i), bcast, &[]);
        frames.push(storm::request_frame(mac, &d)?);
        let r = storm::request(mac, xid(nonce, true, i), bcast, ip, args.server_id, &[]);
        frames.push(storm::request_frame(mac, &r)?);
    }
    Ok(frames)
}

/// Offers the rate for the duration and counts the answers.
pub fn run(args: &RateArgs) -> anyhow::Result<RateReport> {
    ensure!(args.rate > 0, "--rate must be at least 1");
    ensure!(args.duration_ms > 0, "--duration-ms must be at least 1");
    ensure!(
        (1..=64).contains(&args.threads),
        "--threads must be 1 to 64"
    );
    ensure!(
        args.count >= args.threads && args.count <= MAX_MACHINES,
        "--count must be from --threads ({}) to {MAX_MACHINES}",
        args.threads
    );
    let mode = BroadcastMode::parse(&args.broadcast)?;
    let first_ip = args
        .first_ip
        .context("--first-ip is required (unless --pool)")?;
    let first_mac = frame::parse_mac(&args.first_mac)
        .with_context(|| format!("--first-mac {:?} is not a MAC address", args.first_mac))?;
    ensure!(
        mac_add(first_mac, args.count - 1).is_some(),
        "--first-mac {} + {} machines passes ff:ff:ff:ff:ff:ff",
        args.first_mac,
        args.count
    );
    ensure!(
        u32::from(first_ip).checked_add(args.count - 1).is_some(),
        "--first-ip {} + {} machines passes 255.255.255.255",
        first_ip,
        args.count
    );
    let nonce: u8 = rand::random();
    let threads = args.threads as u64;
    let duration = Duration::from_millis(args.duration_ms);
    let offered = due(args.rate, duration, u64::MAX);
    let mut shares = Vec::new();
    if args.in_kernel {
        ensure!(
            args.threads == 1,
            "--in-kernel sends from one thread (--threads 1)"
        );
        let (mut run, pair) =
            generate::frames(first_mac, first_ip, args.server_id, nonce, args.count, mode)?;
        run.total = offered;
        run.rate = args.rate;
        run.catch_up = due(args.rate, CATCH_UP, u64::MAX);
        let gen = Generator::load(&args.interface, run, pair)?;
        shares.push((Sender::Kernel(Arc::new(gen)), args.rate, offered));
    }
    let socket_threads = if args.in_kernel { 0 } else { args.threads };
    for t in 0..socket_threads {
        // Thread t sends rate/threads, the first ones one more each when
        // it does not divide, so the shares add up to the rate.
        let rate = args.rate / threads + u64::from(u64::from(t) < args.rate % threads);
        let total = offered / threads + u64::from(u64::from(t) < offered % threads);
        let sock = RawSocket::open(&args.interface, 0, false)?;
        sock.bypass_qdisc()?;
        let frames = frames_of(args, mode, (first_mac, first_ip), nonce, t)?;
        shares.push((Sender::Socket(sock, frames), rate, total));
    }
    let receiver = match &args.tally {
        Some(dir) => {
            let mut tally = Tally::open(dir)?;
            tally.start(Run {
                active: 1,
                count: args.count,
                first_mac,
                nonce,
                _pad: 0,
                first_ip: u32::from(first_ip),
            })?;
            Receiver::Kernel(Box::new(tally))
        }
        None => {
            let rx = RawSocket::open(&args.interface, libc::ETH_P_IP as u16, true)?;
            rx.filter_udp_ports(CLIENT_PORT, CLIENT_PORT)?;
            Receiver::Socket(rx)
        }
    };

    let seconds = (args.duration_ms + args.drain_ms).div_ceil(1000) as usize + 1;
    let counts = Arc::new(Counts::new(seconds));
    let stop = Arc::new(AtomicBool::new(false));
    let machines = Machines {
        count: args.count,
        first_mac,
        first_ip,
    };
    let ready = Arc::new(Barrier::new(shares.len() + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let kernel = shares.iter().find_map(|(s, _, _)| match s {
        Sender::Kernel(g) => Some(g.clone()),
        Sender::Socket(..) => None,
    });
    let senders: Vec<_> = shares
        .into_iter()
        .map(|(sender, rate, total)| {
            let (counts, ready, start_at) = (counts.clone(), ready.clone(), start_at.clone());
            std::thread::spawn(move || {
                fine_timer_slack();
                ready.wait();
                let start = *start_at.get().expect("set before the barrier opens");
                match sender {
                    Sender::Socket(sock, frames) => {
                        send(&sock, &frames, rate, total, start, &counts)
                    }
                    Sender::Kernel(gen) => {
                        pin_to_this_cpu();
                        gen.run().map(|()| Sent::default())
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    start_at.set(start).expect("set once");
    let receiver = {
        let (counts, stop) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let got = match &receiver {
                Receiver::Socket(rx) => receive(rx, nonce, machines, start, &stop, &counts),
                Receiver::Kernel(tally) => receive_counted(tally, start, &stop, &counts),
            };
            (got, receiver)
        })
    };
    ready.wait();

    let mut sent = Sent::default();
    let mut failure = None;
    if let (Some(gen), Some(h)) = (&kernel, senders.first()) {
        use std::os::unix::thread::JoinHandleExt;
        match follow_in_kernel(gen, h.as_pthread_t(), offered, duration, start, &counts) {
            Ok(s) => sent = s,
            Err(e) => failure = Some(e),
        }
    }
    for h in senders {
        match h.join().expect("a sender thread panicked") {
            Ok(s) => {
                sent.sent += s.sent;
                sent.behind += s.behind;
                sent.refused += s.refused;
                sent.last = sent.last.max(s.last);
            }
            Err(e) => failure = Some(e),
        }
    }
    std::thread::sleep(Duration::from_millis(args.drain_ms));
    stop.store(true, Ordering::Relaxed);
    let (got, receiver) = receiver.join().expect("the receive thread panicked");
    if let Receiver::Kernel(mut tally) = receiver {
        tally.stop()?;
    }
    let got = got?;
    if let Some(e) = failure {
        return Err(e);
    }
    let per_second = counts
        .sent
        .iter()
        .zip(&counts.answered)
        .map(|(s, a)| RateSecond {
            sent: s.load(Ordering::Relaxed),
            answered: a.load(Ordering::Relaxed),
        })
        .collect();
    Ok(RateReport {
        rate: args.rate,
        threads: args.threads,
        machines: args.count,
        offered,
        sent: sent.sent,
        behind: sent.behind,
        refused: sent.refused,
        answered: got.offers + got.acks,
        offers: got.offers,
        acks: got.acks,
        naks: got.naks,
        wrong_address: got.wrong_address,
        bad_checksum: got.bad_checksum,
        send_ms: sent
            .last
            .map_or(0.0, |l| l.duration_since(start).as_secs_f64() * 1e3),
        per_second,
    })
}

/// Sleeps of a tick wake within microseconds, not the default 50 µs of
/// slack: at a million frames a second, 50 µs is 50 frames late.
pub(super) fn fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only
    // the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

/// Prints the report on stdout, as an aligned table or as JSON.
pub fn print_report(r: &RateReport, json: bool) {
    if json {
        return super::print_json(r);
    }
    let rows: [(&str, String); 12] = [
        ("rate", format!("{}/s", r.rate)),
        ("threads", r.threads.to_string()),
        ("offered", r.offered.to_string()),
        ("sent", format!("{} ({:.0}/s)", r.sent, r.sent_per_sec())),
        ("behind", r.behind.to_string()),
        ("refused", r.refused.to_string()),
        (
            "answered",
            format!("{} ({:.0}/s)", r.answered, r.answered_per_sec()),
        ),
        ("offers / acks", format!("{} / {}", r.offers, r.acks)),
        ("naks", r.naks.to_string()),
        ("wrong address", r.wrong_address.to_string()),
        ("bad checksum", r.bad_checksum.to_string()),
        ("drops", format!("{:.3}%", r.drops_pct())),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value:>22}");
    }
    println!("per second (sent / answered):");
    for (i, s) in r.per_second.iter().enumerate() {
        println!("  {i:>3} s {:>10} / {:>10}", s.sent, s.answered);
    }
}

/// CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() reads.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::{Encodable, Encoder};

    const FIRST: [u8; 6] = [2, 0, 0, 0, 0, 0];

    #[test]
    fn the_schedule_is_the_rate_times_the_time_and_stops_at_the_total() {
        assert_eq!(due(1_000_000, Duration::from_millis(1), u64::MAX), 1000);
        assert_eq!(due(10_000, Duration::from_micros(150), u64::MAX), 1);
        assert_eq!(due(10_000, Duration::from_secs(3), 25_000), 25_000);
        assert_eq!(due(0, Duration::from_secs(3), 10), 0);
    }

    #[test]
    fn a_late_sender_catches_up_to_its_window_and_lets_the_rest_pass() {
        // On time: everything due is sent.
        assert_eq!(plan(100, 150, 1000), (50, 0));
        // Nothing due.
        assert_eq!(plan(150, 150, 1000), (0, 0));
        // Late by 5,000 with a 1,000-frame window: 1,000 sent, 4,000 pass.
        assert_eq!(plan(0, 5000, 1000), (1000, 4000));
        // A window below one frame still sends one.
        assert_eq!(plan(0, 3, 0), (1, 2));
    }

    fn reply(kind: MessageType, xid: u32, mac: [u8; 6], yiaddr: Ipv4Addr) -> Vec<u8> {
        let u = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(xid, u, yiaddr, u, u, &mac);
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(u));
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        let mut out = Vec::new();
        m.encode(&mut Encoder::new(&mut out)).unwrap();
        out
    }

    #[test]
    fn replies_count_only_as_the_answer_their_request_wanted() {
        let ip = Ipv4Addr::new(10, 50, 4, 7);
        let mac7 = mac_add(FIRST, 7).unwrap();
        let c = |p: &[u8]| classify(p, 9, 10, FIRST);
        let offer = reply(MessageType::Offer, xid(9, false, 7), mac7, ip);
        assert_eq!(
            c(&offer),
            Reply::Answer {
                request: false,
                index: 7,
                yiaddr: ip
            }
        );
        let ack = reply(MessageType::Ack, xid(9, true, 7), mac7, ip);
        assert!(matches!(c(&ack), Reply::Answer { request: true, .. }));
        let nak = reply(MessageType::Nak, xid(9, true, 7), mac7, ip);
        assert_eq!(c(&nak), Reply::Nak);
        for other in [
            // An ACK to a DISCOVER's xid, an OFFER to a REQUEST's.
            reply(MessageType::Ack, xid(9, false, 7), mac7, ip),
            reply(MessageType::Offer, xid(9, true, 7), mac7, ip),
            // Another run's, another machine's chaddr, a machine past the count.
            reply(MessageType::Offer, xid(8, false, 7), mac7, ip),
            reply(MessageType::Offer, xid(9, false, 7), FIRST, ip),
            reply(
                MessageType::Offer,
                xid(9, false, 12),
                mac_add(FIRST, 12).unwrap(),
                ip,
            ),
        ] {
            assert_eq!(c(&other), Reply::Other);
        }
        // Cut short before option 53 ends: never an answer, never a panic.
        for n in 0..OPTIONS_OFF + 3 {
            assert_eq!(c(&offer[..n]), Reply::Other, "cut at {n}");
        }
        // A request (op 1) is not a reply.
        let mut req = offer.clone();
        req[OFF_OP] = 1;
        assert_eq!(c(&req), Reply::Other);
    }

    #[test]
    fn option_53_is_found_past_pads_and_other_options() {
        let with = |opts: &[u8]| [&[0u8; OPTIONS_OFF][..], opts].concat();
        assert_eq!(
            option_53(&with(&[0, 0, 54, 4, 1, 2, 3, 4, 53, 1, 5, 255])),
            Some(5)
        );
        assert_eq!(option_53(&with(&[54, 4, 1, 2, 3, 4, 255, 53, 1, 5])), None);
        assert_eq!(option_53(&with(&[53, 1])), None, "value cut off");
        assert_eq!(option_53(&with(&[53, 2, 5, 5, 255])), None, "wrong length");
        assert_eq!(option_53(&with(&[])), None);
    }

    #[test]
    fn each_thread_sends_a_discover_then_a_request_for_its_own_machines() {
        let args = RateArgs {
            interface: "lo".into(),
            count: 5,
            first_mac: "02:00:00:00:00:00".into(),
            first_ip: Some(Ipv4Addr::new(10, 50, 4, 0)),
            server_id: Ipv4Addr::new(10, 50, 0, 1),
            rate: 1,
            duration_ms: 1,
            threads: 2,
            drain_ms: 0,
            broadcast: "mixed".into(),
            tally: None,
            in_kernel: false,
            pool: false,
            relay: None,
            server_mac: None,
            json: false,
        };
        let frames = frames_of(
            &args,
            BroadcastMode::Mixed,
            (FIRST, Ipv4Addr::new(10, 50, 4, 0)),
            3,
            1,
        )
        .unwrap();
        // Thread 1 of 2 has machines 1 and 3.
        assert_eq!(frames.len(), 4);
        let msgs: Vec<Message> = frames
            .iter()
            .map(|f| {
                let p = frame::parse(f).unwrap();
                dhcproto::Decodable::decode(&mut dhcproto::Decoder::new(p.payload)).unwrap()
            })
            .collect();
        let kinds: Vec<_> = msgs.iter().map(|m| m.opts().msg_type().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                MessageType::Discover,
                MessageType::Request,
                MessageType::Discover,
                MessageType::Request
            ]
        );
        assert_eq!(xid_parts(msgs[2].xid(), 3), Some((false, 3)));
        assert_eq!(msgs[2].chaddr(), &mac_add(FIRST, 3).unwrap()[..]);
        assert_eq!(
            msgs[3]
                .opts()
                .get(dhcproto::v4::OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 50, 4, 3)))
        );
    }

    #[test]
    fn the_in_kernel_generator_sends_what_the_socket_sender_sends() {
        crate::require_root();
        let args = RateArgs {
            interface: "lo".into(),
            count: 3,
            first_mac: "02:00:00:00:00:fe".into(),
            first_ip: Some(Ipv4Addr::new(10, 50, 4, 255)),
            server_id: Ipv4Addr::new(10, 50, 0, 1),
            rate: 1,
            duration_ms: 1,
            threads: 1,
            drain_ms: 0,
            broadcast: "mixed".into(),
            tally: None,
            in_kernel: true,
            pool: false,
            relay: None,
            server_mac: None,
            json: false,
        };
        let first = [2, 0, 0, 0, 0, 0xfe];
        let by_socket = frames_of(
            &args,
            BroadcastMode::Mixed,
            (first, Ipv4Addr::new(10, 50, 4, 255)),
            9,
            0,
        )
        .unwrap();
        let (mut run, pair) = generate::frames(
            first,
            Ipv4Addr::new(10, 50, 4, 255),
            args.server_id,
            9,
            args.count,
            BroadcastMode::Mixed,
        )
        .unwrap();
        // Eight requests: all of machine 0..2's, then machine 0's again.
        run.total = 8;
        run.rate = 1_000_000;
        run.catch_up = 1_000_000;
        let gen = Generator::load("lo", run, pair).expect("loads (needs root)");
        let mut out = vec![0u8; 2048];
        // The first repetition starts the schedule: nothing is due yet.
        assert_eq!(gen.once(&mut out).unwrap().0, 1, "XDP_DROP");
        std::thread::sleep(Duration::from_millis(2));
        for i in 0..8 {
            let (action, len) = gen.once(&mut out).unwrap();
            assert_eq!(action, 3, "request {i}: XDP_TX");
            assert_eq!(
                &out[..len],
                &by_socket[i % by_socket.len()][..],
                "request {i} differs from the socket sender's"
            );
        }
        // The run is sent: nothing more.
        assert_eq!(gen.once(&mut out).unwrap().0, 1, "XDP_DROP");
        let s = gen.state().unwrap();
        assert_eq!((s.sent, s.behind), (8, 0));
    }

    #[test]
    fn drops_are_what_was_sent_and_not_answered() {
        let r = RateReport {
            offered: 1000,
            sent: 1000,
            answered: 999,
            send_ms: 1000.0,
            ..RateReport::default()
        };
        assert!((r.drops_pct() - 0.1).abs() < 1e-9);
        assert!(r.offered_all());
        assert_eq!(r.answered_per_sec(), 999.0);
        let short = RateReport {
            offered: 1000,
            sent: 900,
            ..RateReport::default()
        };
        assert!(!short.offered_all());
        assert_eq!(RateReport::default().drops_pct(), 0.0);
    }
}
