//! The rate generator's pool mode (`stormboot-lab rate --pool`): new
//! machines' DISCOVERs offered at a fixed rate, relayed, as perfdhcp's pool
//! ramp sends them; the receive thread answers each OFFER with the REQUEST
//! a client in SELECTING state sends (option 50 the offered address,
//! option 54 the OFFER's server), and an exchange completes at its ACK.
//!
//! Open loop on the DISCOVERs (nothing retransmitted: a DISCOVER without
//! an ACK is a drop), closed per machine: a REQUEST leaves only after its
//! OFFER, so the server's pool allocation is what is measured. Every
//! DISCOVER is a new machine, and a run's MACs carry a random run id, so a
//! second run asks for new leases instead of renewing the first run's. The
//! DISCOVER frames are built before the clock starts; the REQUESTs are
//! built as their OFFERs arrive (the storm's builders, the relay's frame)
//! and leave in one sendmmsg(2) per batch of replies read.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use stormboot::frame::{self, FrameError};
use stormboot::rawsock::{self, RawSocket, RecvMeta, MAX_BATCH};
use stormboot_common::layout::{opt, SERVER_PORT};
use stormboot_common::tally::xid;

use super::fixtures::Relay;
use super::generate;
use super::rate::{self, Counts, RateArgs, Reply, Sent, MAX_MACHINES, RECV_BATCH, RECV_FRAME};
use super::storm::{self, mac_add};
pub use crate::reports::{PoolRateReport, PoolRateSecond};

/// One run's machines: machine i has MAC `first_mac + i` and sends the
/// run's transaction ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Machines {
    count: u32,
    first_mac: [u8; 6],
    nonce: u8,
    relay: Relay,
}

/// A run's first MAC: `base`'s first byte, the run id, then the machine
/// index's room (2^24 machines).
fn run_first_mac(base: [u8; 6], run_id: u16) -> [u8; 6] {
    let [hi, lo] = run_id.to_be_bytes();
    [base[0], hi, lo, 0, 0, 0]
}

/// A reply to this run, as the pool mode reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolReply {
    Offer {
        index: u32,
        yiaddr: Ipv4Addr,
        server_id: Ipv4Addr,
    },
    Ack {
        index: u32,
    },
    Nak,
    /// Not this run's, not the answer wanted, or an OFFER without a server
    /// id (a client cannot REQUEST it).
    Other,
}

/// The known-machines reading ([`rate::classify`]), plus the OFFER's
/// server id.
fn classify(payload: &[u8], m: &Machines) -> PoolReply {
    match rate::classify(payload, m.nonce, m.count, m.first_mac) {
        Reply::Answer {
            request: false,
            index,
            yiaddr,
        } => match server_id(payload) {
            Some(server_id) => PoolReply::Offer {
                index,
                yiaddr,
                server_id,
            },
            None => PoolReply::Other,
        },
        Reply::Answer {
            request: true,
            index,
            ..
        } => PoolReply::Ack { index },
        Reply::Nak => PoolReply::Nak,
        Reply::Other => PoolReply::Other,
    }
}

/// Option 54's value, if it is there whole with length 4.
fn server_id(payload: &[u8]) -> Option<Ipv4Addr> {
    let at = generate::option_at(payload, opt::SERVER_ID)?;
    let v = payload.get(at..at + 4)?;
    (payload[at - 1] == 4).then(|| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
}

/// Machine `index`'s DISCOVER, relayed.
fn discover_frame(m: &Machines, index: u32) -> anyhow::Result<Vec<u8>> {
    let mac = mac_add(m.first_mac, index).context("machine past the run's MACs")?;
    let mut d = storm::discover(mac, xid(m.nonce, false, index), false, &[]);
    d.set_giaddr(m.relay.ip).set_hops(1);
    storm::relayed_request_frame(&m.relay, &d)
}

/// The REQUEST machine `index` sends for the OFFER of `yiaddr` by
/// `server_id`, relayed.
fn request_frame(
    m: &Machines,
    index: u32,
    yiaddr: Ipv4Addr,
    server_id: Ipv4Addr,
) -> anyhow::Result<Vec<u8>> {
    let mac = mac_add(m.first_mac, index).context("machine past the run's MACs")?;
    let mut r = storm::request(
        mac,
        xid(m.nonce, true, index),
        false,
        yiaddr,
        server_id,
        &[],
    );
    r.set_giaddr(m.relay.ip).set_hops(1);
    storm::relayed_request_frame(&m.relay, &r)
}

/// Where each machine is: first OFFER seen, first ACK seen.
const OFFERED: u8 = 1;
const ACKED: u8 = 2;

/// What the receive side counted and what it still has to send.
#[derive(Default)]
struct Exchanges {
    state: Vec<u8>,
    offers: u64,
    acks: u64,
    naks: u64,
    duplicates: u64,
    bad_checksum: u64,
    /// REQUESTs built and not yet taken by the kernel.
    pending: VecDeque<Vec<u8>>,
}

/// What one reply did, for the per-second series.
#[derive(Debug, PartialEq, Eq)]
enum Counted {
    Offer,
    Ack,
    Nothing,
}

impl Exchanges {
    fn new(count: u32) -> Exchanges {
        Exchanges {
            state: vec![0; count as usize],
            ..Exchanges::default()
        }
    }

    /// Counts a reply's DHCP payload; a first OFFER queues its REQUEST.
    fn take(&mut self, payload: &[u8], m: &Machines) -> anyhow::Result<Counted> {
        Ok(match classify(payload, m) {
            PoolReply::Offer {
                index,
                yiaddr,
                server_id,
            } => {
                let s = &mut self.state[index as usize];
                if *s & OFFERED != 0 {
                    self.duplicates += 1;
                    return Ok(Counted::Nothing);
                }
                *s |= OFFERED;
                self.offers += 1;
                self.pending
                    .push_back(request_frame(m, index, yiaddr, server_id)?);
                Counted::Offer
            }
            PoolReply::Ack { index } => {
                let s = &mut self.state[index as usize];
                if *s & ACKED != 0 {
                    self.duplicates += 1;
                    return Ok(Counted::Nothing);
                }
                *s |= ACKED;
                self.acks += 1;
                Counted::Ack
            }
            PoolReply::Nak => {
                self.naks += 1;
                Counted::Nothing
            }
            PoolReply::Other => Counted::Nothing,
        })
    }
}

/// The per-second series beyond the DISCOVERs and ACKs that [`Counts`]
/// holds.
struct MoreCounts {
    offers: Vec<AtomicU64>,
    requests: Vec<AtomicU64>,
}

/// What the receive thread did.
struct Received {
    exchanges: Exchanges,
    requests: u64,
    requests_refused: u64,
}

/// Reads replies until `stop`, answers OFFERs with REQUESTs on `tx`.
fn receive(
    rx: &RawSocket,
    tx: &RawSocket,
    m: &Machines,
    start: Instant,
    stop: &AtomicBool,
    counts: (&Counts, &MoreCounts),
) -> anyhow::Result<Received> {
    let mut ex = Exchanges::new(m.count);
    let mut requests = 0u64;
    let mut requests_refused = 0u64;
    let mut bufs = vec![vec![0u8; RECV_FRAME]; RECV_BATCH];
    let mut metas: Vec<RecvMeta> = Vec::with_capacity(RECV_BATCH);
    while !stop.load(Ordering::Relaxed) {
        // What the last batch of OFFERs asked for leaves first.
        while !ex.pending.is_empty() {
            let batch: Vec<&[u8]> = ex
                .pending
                .iter()
                .take(MAX_BATCH)
                .map(Vec::as_slice)
                .collect();
            let n = batch.len();
            let taken = tx.send_many(&batch)?;
            drop(batch);
            requests += taken as u64;
            Counts::add(&counts.1.requests, start, Instant::now(), taken as u64);
            ex.pending.drain(..taken);
            if taken < n {
                requests_refused += 1;
                break;
            }
        }
        rx.recv_many(&mut bufs, &mut metas)?;
        if metas.is_empty() {
            let wait = if ex.pending.is_empty() { 5 } else { 1 };
            rx.poll(Duration::from_millis(wait))?;
            continue;
        }
        let now = Instant::now();
        let (mut offers, mut acks) = (0, 0);
        for (buf, meta) in bufs.iter_mut().zip(&metas) {
            if meta.pkttype == libc::PACKET_OUTGOING || meta.len > buf.len() {
                continue;
            }
            let f = &mut buf[..meta.len];
            rawsock::clear_partial_checksum(f, meta);
            let payload = match frame::parse(f) {
                Ok(p) => p.payload,
                Err(FrameError::IpChecksum | FrameError::UdpChecksum) => {
                    ex.bad_checksum += 1;
                    continue;
                }
                Err(_) => continue,
            };
            match ex.take(payload, m)? {
                Counted::Offer => offers += 1,
                Counted::Ack => acks += 1,
                Counted::Nothing => {}
            }
        }
        Counts::add(&counts.1.offers, start, now, offers);
        Counts::add(&counts.0.answered, start, now, acks);
    }
    Ok(Received {
        exchanges: ex,
        requests,
        requests_refused,
    })
}

/// Frames the socket dropped since the last call (PACKET_STATISTICS,
/// which the read resets).
fn socket_drops(sock: &RawSocket) -> anyhow::Result<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` is a live tpacket_stats of the length given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    ensure!(
        rc == 0,
        "PACKET_STATISTICS: {}",
        std::io::Error::last_os_error()
    );
    Ok(u64::from(stats.tp_drops))
}

/// A UDP socket on the relay's port 67 that reads nothing: replies to the
/// relay find a socket, so the kernel does not answer them with ICMP
/// port-unreachable, and drop at its filter, so no buffer fills.
fn quiet_relay_port(relay: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind((relay, SERVER_PORT))
        .with_context(|| format!("binding {relay}:{SERVER_PORT} (is --relay on --interface?)"))?;
    rawsock::drop_everything(&sock)?;
    Ok(sock)
}

/// The MAC of `interface` (SIOCGIFHWADDR: a namespace entered with
/// setns(2) still shows the first namespace's /sys).
fn interface_mac(interface: &str) -> anyhow::Result<[u8; 6]> {
    let name = interface.as_bytes();
    ensure!(
        name.len() < libc::IFNAMSIZ,
        "interface name {interface:?} is too long"
    );
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("a socket to ask on")?;
    // SAFETY: `req` is a live ifreq the kernel fills for this request.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    ensure!(
        rc == 0,
        "interface {interface}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    Ok(std::array::from_fn(|i| data[i] as u8))
}

/// Offers new machines' DISCOVERs at the rate for the duration, answers
/// their OFFERs and counts the ACKs.
pub fn run(args: &RateArgs) -> anyhow::Result<PoolRateReport> {
    ensure!(args.rate > 0, "--rate must be at least 1");
    ensure!(args.duration_ms > 0, "--duration-ms must be at least 1");
    ensure!(
        (1..=64).contains(&args.threads),
        "--threads must be 1 to 64"
    );
    ensure!(
        args.tally.is_none() && !args.in_kernel,
        "--pool answers OFFERs in userspace: no --tally, no --in-kernel"
    );
    let relay_ip = args.relay.context("--pool needs --relay")?;
    let server_mac = args
        .server_mac
        .as_deref()
        .context("--pool needs --server-mac")?;
    let server_mac = frame::parse_mac(server_mac)
        .with_context(|| format!("--server-mac {server_mac:?} is not a MAC address"))?;
    let base = frame::parse_mac(&args.first_mac)
        .with_context(|| format!("--first-mac {:?} is not a MAC address", args.first_mac))?;
    let duration = Duration::from_millis(args.duration_ms);
    let offered = rate::due(args.rate, duration, u64::MAX);
    ensure!(
        offered >= u64::from(args.threads) && offered <= u64::from(MAX_MACHINES),
        "--rate times --duration-ms is {offered} new machines: it must be from --threads to {MAX_MACHINES}"
    );
    let m = Machines {
        count: offered as u32,
        first_mac: run_first_mac(base, rand::random()),
        nonce: rand::random(),
        relay: Relay {
            mac: interface_mac(&args.interface)?,
            ip: relay_ip,
            server_mac,
            server: args.server_id,
        },
    };
    let _quiet = quiet_relay_port(relay_ip)?;

    let threads = u64::from(args.threads);
    let mut shares = Vec::new();
    for t in 0..args.threads {
        let rate = args.rate / threads + u64::from(u64::from(t) < args.rate % threads);
        let frames = (t..m.count)
            .step_by(args.threads as usize)
            .map(|i| discover_frame(&m, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sock = RawSocket::open(&args.interface, 0, false)?;
        sock.bypass_qdisc()?;
        shares.push((sock, frames, rate));
    }
    let rx = RawSocket::open(&args.interface, libc::ETH_P_IP as u16, false)?;
    rx.filter_udp_ports(SERVER_PORT, SERVER_PORT)?;
    socket_drops(&rx)?;
    let tx = RawSocket::open(&args.interface, 0, false)?;
    tx.bypass_qdisc()?;

    let seconds = (args.duration_ms + args.drain_ms).div_ceil(1000) as usize + 1;
    let counts = Arc::new(Counts::new(seconds));
    let zeros = || (0..seconds).map(|_| AtomicU64::new(0)).collect();
    let more = Arc::new(MoreCounts {
        offers: zeros(),
        requests: zeros(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(shares.len() + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let senders: Vec<_> = shares
        .into_iter()
        .map(|(sock, frames, rate)| {
            let (counts, ready, start_at) = (counts.clone(), ready.clone(), start_at.clone());
            std::thread::spawn(move || {
                rate::fine_timer_slack();
                ready.wait();
                let start = *start_at.get().expect("set before the barrier opens");
                let total = frames.len() as u64;
                rate::send(&sock, &frames, rate, total, start, &counts)
            })
        })
        .collect();
    let start = Instant::now();
    start_at.set(start).expect("set once");
    let receiver = {
        let (counts, more, stop) = (counts.clone(), more.clone(), stop.clone());
        std::thread::spawn(move || {
            let got = receive(&rx, &tx, &m, start, &stop, (&counts, &more));
            (got, rx)
        })
    };
    ready.wait();

    let mut sent = Sent::default();
    let mut failure = None;
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
    let (got, rx) = receiver.join().expect("the receive thread panicked");
    let got = got?;
    if let Some(e) = failure {
        return Err(e);
    }
    let receive_dropped = socket_drops(&rx)?;
    let at = |v: &[AtomicU64], i: usize| v[i].load(Ordering::Relaxed);
    let per_second = (0..seconds)
        .map(|i| PoolRateSecond {
            discovers: at(&counts.sent, i),
            offers: at(&more.offers, i),
            requests: at(&more.requests, i),
            acks: at(&counts.answered, i),
        })
        .collect();
    let ex = got.exchanges;
    Ok(PoolRateReport {
        rate: args.rate,
        threads: args.threads,
        offered,
        sent: sent.sent,
        behind: sent.behind,
        refused: sent.refused,
        offers: ex.offers,
        requests: got.requests,
        requests_unsent: ex.pending.len() as u64,
        requests_refused: got.requests_refused,
        acks: ex.acks,
        naks: ex.naks,
        duplicates: ex.duplicates,
        bad_checksum: ex.bad_checksum,
        receive_dropped,
        send_ms: sent
            .last
            .map_or(0.0, |l| l.duration_since(start).as_secs_f64() * 1e3),
        drain_ms: args.drain_ms,
        per_second,
    })
}

/// Prints the report on stdout, as an aligned table or as JSON.
pub fn print_report(r: &PoolRateReport, json: bool) {
    if json {
        return super::print_json(r);
    }
    let rows: [(&str, String); 13] = [
        ("rate", format!("{} DISCOVERs/s", r.rate)),
        ("threads", r.threads.to_string()),
        ("offered", r.offered.to_string()),
        ("sent", format!("{} ({:.0}/s)", r.sent, r.sent_per_sec())),
        ("behind", r.behind.to_string()),
        ("refused", r.refused.to_string()),
        ("offers", r.offers.to_string()),
        (
            "requests",
            format!("{} ({} unsent)", r.requests, r.requests_unsent),
        ),
        (
            "acks",
            format!("{} ({:.0} exchanges/s)", r.acks, r.exchanges_per_sec()),
        ),
        ("naks", r.naks.to_string()),
        ("duplicates", r.duplicates.to_string()),
        ("not read", r.receive_dropped.to_string()),
        ("drops", format!("{} ({:.3}%)", r.drops(), r.drops_pct())),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value:>26}");
    }
    if let Some(short) = r.generator_short() {
        println!("generator short: {short}");
    }
    println!("per second (discovers / offers / requests / acks):");
    for (i, s) in r.per_second.iter().enumerate() {
        println!(
            "  {i:>3} s {:>9} / {:>9} / {:>9} / {:>9}",
            s.discovers, s.offers, s.requests, s.acks
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};

    fn machines() -> Machines {
        Machines {
            count: 10,
            first_mac: run_first_mac([0x0e, 0, 0, 0, 0, 0], 0xbeef),
            nonce: 7,
            relay: Relay {
                mac: [2, 0x77, 0, 0, 0, 2],
                ip: Ipv4Addr::new(10, 50, 0, 2),
                server_mac: [2, 0x5b, 0, 0, 0, 1],
                server: Ipv4Addr::new(10, 50, 0, 1),
            },
        }
    }

    /// A server's reply to machine `index`'s `request` (or DISCOVER), as
    /// the relay receives it.
    fn reply(m: &Machines, kind: MessageType, request: bool, index: u32) -> Vec<u8> {
        let mac = mac_add(m.first_mac, index).unwrap();
        let u = Ipv4Addr::UNSPECIFIED;
        let yiaddr = Ipv4Addr::new(10, 52, 0, index as u8);
        let mut r =
            Message::new_with_id(xid(m.nonce, request, index), u, yiaddr, u, m.relay.ip, &mac);
        r.set_opcode(Opcode::BootReply);
        r.opts_mut().insert(DhcpOption::MessageType(kind));
        r.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 50, 0, 1)));
        let mut out = Vec::new();
        r.encode(&mut Encoder::new(&mut out)).unwrap();
        out
    }

    fn decode(f: &[u8]) -> (frame::Addressing, Message) {
        let p = frame::parse(f).unwrap();
        let msg = Message::decode(&mut Decoder::new(p.payload)).unwrap();
        (p.addr, msg)
    }

    #[test]
    fn a_run_s_macs_carry_its_id_and_leave_room_for_every_machine() {
        let first = run_first_mac([0x0e, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa], 0x1234);
        assert_eq!(first, [0x0e, 0x12, 0x34, 0, 0, 0]);
        assert_eq!(
            mac_add(first, MAX_MACHINES - 1),
            Some([0x0e, 0x12, 0x34, 0x7f, 0xff, 0xff])
        );
    }

    #[test]
    fn discovers_are_relayed_from_the_relay_to_the_server() {
        let m = machines();
        let (addr, d) = decode(&discover_frame(&m, 3).unwrap());
        assert_eq!(
            (addr.eth_src, addr.eth_dst),
            (m.relay.mac, m.relay.server_mac)
        );
        assert_eq!((addr.ip_src, addr.ip_dst), (m.relay.ip, m.relay.server));
        assert_eq!((addr.sport, addr.dport), (67, 67));
        assert_eq!(d.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(d.giaddr(), m.relay.ip);
        assert_eq!(d.chaddr(), &mac_add(m.first_mac, 3).unwrap()[..]);
        assert_eq!(d.xid(), xid(7, false, 3));
    }

    #[test]
    fn an_offer_is_answered_with_the_request_for_its_address_and_server() {
        let m = machines();
        let mut ex = Exchanges::new(m.count);
        let offer = reply(&m, MessageType::Offer, false, 4);
        assert_eq!(ex.take(&offer, &m).unwrap(), Counted::Offer);
        assert_eq!(ex.pending.len(), 1);
        let (addr, r) = decode(&ex.pending[0]);
        assert_eq!((addr.ip_src, addr.ip_dst), (m.relay.ip, m.relay.server));
        assert_eq!(r.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(r.xid(), xid(7, true, 4));
        assert_eq!(r.chaddr(), &mac_add(m.first_mac, 4).unwrap()[..]);
        assert_eq!(r.giaddr(), m.relay.ip);
        assert_eq!(r.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            r.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 52, 0, 4)))
        );
        assert_eq!(
            r.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 50, 0, 1)))
        );
        // The same OFFER again asks for nothing more.
        assert_eq!(ex.take(&offer, &m).unwrap(), Counted::Nothing);
        assert_eq!((ex.offers, ex.duplicates, ex.pending.len()), (1, 1, 1));
    }

    #[test]
    fn an_exchange_counts_once_at_its_first_ack() {
        let m = machines();
        let mut ex = Exchanges::new(m.count);
        let ack = reply(&m, MessageType::Ack, true, 2);
        assert_eq!(ex.take(&ack, &m).unwrap(), Counted::Ack);
        assert_eq!(ex.take(&ack, &m).unwrap(), Counted::Nothing);
        let nak = reply(&m, MessageType::Nak, true, 5);
        assert_eq!(ex.take(&nak, &m).unwrap(), Counted::Nothing);
        // Another run's ACK, and an ACK to a DISCOVER's xid.
        let other = Machines { nonce: 8, ..m };
        assert_eq!(
            ex.take(&reply(&other, MessageType::Ack, true, 3), &m)
                .unwrap(),
            Counted::Nothing
        );
        assert_eq!(
            ex.take(&reply(&m, MessageType::Ack, false, 3), &m).unwrap(),
            Counted::Nothing
        );
        assert_eq!((ex.acks, ex.naks, ex.duplicates), (1, 1, 1));
        assert!(ex.pending.is_empty());
    }

    #[test]
    fn an_offer_without_a_server_id_is_not_requested() {
        let m = machines();
        let mut offer = reply(&m, MessageType::Offer, false, 1);
        // Option 54 renamed to an unknown code: no server to select.
        let at = generate::option_at(&offer, opt::SERVER_ID).unwrap();
        offer[at - 2] = 224;
        assert_eq!(classify(&offer, &m), PoolReply::Other);
        // Cut before option 54 ends: never an OFFER, never a panic.
        let whole = reply(&m, MessageType::Offer, false, 1);
        let end_54 = generate::option_at(&whole, opt::SERVER_ID).unwrap() + 4;
        for n in 0..end_54 {
            assert_eq!(classify(&whole[..n], &m), PoolReply::Other, "cut at {n}");
        }
        assert!(matches!(
            classify(&whole, &m),
            PoolReply::Offer { index: 1, .. }
        ));
    }
}
