//! `stormboot-lab bench-api`: how long an operator waits from sending an API
//! change to the wire answering the new way.
//!
//! It can first load `--load` reservations through the API's bulk call (an
//! operator's daemon is not empty; `cargo xtask bench` gives the daemon
//! 100,000 in its reservations file instead), then for one more machine
//! cycles add
//! (-> address A), change (-> B) and remove through the API. Each change's
//! request goes out on its own thread while this one keeps sending
//! DISCOVERs from a packet socket on the client side of the link, one at a
//! time, until the answer differs: an OFFER of A, an OFFER of B, then
//! anything but B (no answer, or a pool address from userspace). A
//! change's latency is from the moment its request is sent (before the
//! connection is opened) to the send of the first DISCOVER answered the
//! new way; its resolution is one exchange. Beside it, the API's own
//! answer time (request sent to 200 received).
//!
//! The API and the client side are usually in different network
//! namespaces (the API on the server's loopback): `--netns` opens the
//! probe socket inside the client's namespace, the rest stays here.
//!
//! Between two nodes of a cluster, the change goes to one node's API and
//! `--server-id` names the other: only OFFERs carrying that server
//! identifier count, so the latency is the change's way to the other
//! node's XDP program (`--server-mac` sends the DISCOVERs to it alone).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder};

use stormboot::api::client::Client;
use stormboot::api::types::{ReservationSpec, SubnetView};
use stormboot::cli::DaemonArgs;
use stormboot::frame;
use stormboot::rawsock::RawSocket;

pub use crate::reports::{ApiReport as Report, Stat};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The client-side interface the probes are sent from.
    #[arg(long, env = "STORMBOOT_BENCH_INTERFACE")]
    pub interface: String,
    /// Open the probe socket in this network namespace (a name under
    /// /run/netns, or a path such as /proc/PID/ns/net).
    #[arg(long, env = "STORMBOOT_BENCH_NETNS")]
    pub netns: Option<String>,
    /// Reservations loaded through the API's bulk call before measuring
    /// (MACs 02:b1:..., addresses from --load-first-ip up); they stay. The
    /// daemon's map takes what it held at start plus 8,192 entries, so
    /// large loads belong in its reservations file instead.
    #[arg(long, env = "STORMBOOT_BENCH_LOAD", default_value_t = 0)]
    pub load: u32,
    /// The first address of the loaded reservations; default: the 65,536th
    /// address of the daemon's first subnet (which must hold them all).
    #[arg(long, env = "STORMBOOT_BENCH_LOAD_FIRST_IP")]
    pub load_first_ip: Option<Ipv4Addr>,
    /// Add/change/remove cycles; each cycle is three measured changes.
    #[arg(long, env = "STORMBOOT_BENCH_CYCLES", default_value_t = 100)]
    pub cycles: u32,
    /// The machine the changes are about (must have no reservation).
    #[arg(long, env = "STORMBOOT_BENCH_MAC", default_value = "02:be:4c:00:00:01")]
    pub mac: String,
    /// The two addresses it alternates between; default: the last two of
    /// the daemon's first subnet.
    #[arg(long, env = "STORMBOOT_BENCH_IPS", num_args = 2, value_delimiter = ',')]
    pub ips: Vec<Ipv4Addr>,
    /// Give up on a change after this long (milliseconds).
    #[arg(long, env = "STORMBOOT_BENCH_TIMEOUT_MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// How long a probe waits for its answer (microseconds); a removal is
    /// seen as a probe that goes unanswered this long.
    #[arg(long, env = "STORMBOOT_BENCH_PROBE_US", default_value_t = 5000)]
    pub probe_us: u64,
    /// Count only OFFERs with this server identifier (option 54): another
    /// node of a cluster than the one whose API takes the changes.
    #[arg(long, env = "STORMBOOT_BENCH_SERVER_ID")]
    pub server_id: Option<Ipv4Addr>,
    /// Send the DISCOVERs to this Ethernet address instead of broadcast
    /// (the node named by --server-id, so the other is not asked).
    #[arg(long, env = "STORMBOOT_BENCH_SERVER_MAC")]
    pub server_mac: Option<String>,
    /// Print JSON.
    #[arg(long, env = "STORMBOOT_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// What the probe expects to see once a change is visible.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    Offer(Ipv4Addr),
    NotOffer(Ipv4Addr),
}

/// Opens the packet socket, inside `netns` if given; this thread returns
/// to its own namespace afterwards (the socket stays in the other).
pub(crate) fn open_socket(interface: &str, netns: Option<&str>) -> anyhow::Result<RawSocket> {
    let Some(ns) = netns else {
        return RawSocket::open(interface, libc::ETH_P_IP as u16, false);
    };
    use nix::sched::{setns, CloneFlags};
    let path = if ns.contains('/') {
        std::path::PathBuf::from(ns)
    } else {
        std::path::Path::new("/run/netns").join(ns)
    };
    let home = std::fs::File::open("/proc/thread-self/ns/net").context("opening this namespace")?;
    let there =
        std::fs::File::open(&path).with_context(|| format!("--netns {}", path.display()))?;
    setns(&there, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {}", path.display()))?;
    let sock = RawSocket::open(interface, libc::ETH_P_IP as u16, false);
    setns(&home, CloneFlags::CLONE_NEWNET).context("returning to this namespace")?;
    sock
}

/// A DISCOVER from `mac`, padded to BOOTP's 300 bytes, to the IPv4
/// broadcast address in an Ethernet frame to `eth_dst`.
fn discover(mac: [u8; 6], xid: u32, eth_dst: [u8; 6]) -> Vec<u8> {
    let mut m = super::fixtures::request(mac, MessageType::Discover);
    m.set_xid(xid);
    let mut payload = super::fixtures::encode(&m);
    payload.resize(payload.len().max(300), 0);
    let mut f = super::fixtures::client_frame(mac, None, &payload);
    f[..6].copy_from_slice(&eth_dst);
    f
}

/// The OFFER to `xid`, if `f` is one (from `server`, when given): its
/// yiaddr.
fn offer_of(f: &[u8], xid: u32, server: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    let p = frame::parse(f).ok()?;
    if p.addr.dport != 68 {
        return None;
    }
    let m = Message::decode(&mut Decoder::new(p.payload)).ok()?;
    let from = || match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
        _ => None,
    };
    (m.xid() == xid
        && m.opts().msg_type() == Some(MessageType::Offer)
        && (server.is_none() || from() == server))
        .then(|| m.yiaddr())
}

pub(crate) struct Prober {
    pub(crate) sock: RawSocket,
    pub(crate) mac: [u8; 6],
    pub(crate) xid: u32,
    pub(crate) wait: Duration,
    pub(crate) buf: Vec<u8>,
    /// Only OFFERs with this server identifier count.
    pub(crate) server: Option<Ipv4Addr>,
    /// Where the DISCOVERs go on the link (broadcast by default).
    pub(crate) eth_dst: [u8; 6],
}

impl Prober {
    /// One DISCOVER; its send time and the OFFER's address, if one came.
    fn probe(&mut self) -> anyhow::Result<(Instant, Option<Ipv4Addr>)> {
        // Drop whatever is left over from earlier probes.
        while self.sock.recv(&mut self.buf)?.is_some() {}
        self.xid = self.xid.wrapping_add(1);
        let f = discover(self.mac, self.xid, self.eth_dst);
        let sent = Instant::now();
        self.sock.send(&f)?;
        let deadline = sent + self.wait;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok((sent, None));
            }
            self.sock.poll(deadline - now)?;
            while let Some(meta) = self.sock.recv(&mut self.buf)? {
                let n = meta.len.min(self.buf.len());
                if let Some(ip) = offer_of(&self.buf[..n], self.xid, self.server) {
                    return Ok((sent, Some(ip)));
                }
            }
        }
    }

    /// Probes until `want` holds: the send time of the first probe that
    /// saw it and how many probes that took; None after `timeout` from
    /// `since`.
    pub(crate) fn until(
        &mut self,
        want: Want,
        since: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Option<(Instant, usize)>> {
        let mut probes = 0;
        loop {
            probes += 1;
            let (sent, got) = self.probe()?;
            let seen = match want {
                Want::Offer(ip) => got == Some(ip),
                Want::NotOffer(ip) => got != Some(ip),
            };
            if seen {
                return Ok(Some((sent, probes)));
            }
            if since.elapsed() > timeout {
                return Ok(None);
            }
        }
    }
}

/// One change measured: the request sent on its own thread while `prober`
/// probes from here. (request sent -> first DISCOVER answered the new way,
/// request sent -> 200), microseconds; the first is None on a timeout.
fn change(
    c: &Client,
    prober: &mut Prober,
    (method, path, body): (&str, &str, Option<&str>),
    want: Want,
    timeout: Duration,
) -> anyhow::Result<(Option<u64>, u64)> {
    let us = |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros() as u64;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let api = scope.spawn(move || {
            let sent = Instant::now();
            // Told first, so probing starts with the request, not after it.
            let _ = tx.send(sent);
            let answer = c.request(method, path, body);
            (sent, Instant::now(), answer)
        });
        let sent = rx.recv().context("the API request's thread")?;
        let seen = prober.until(want, sent, timeout)?;
        let (sent, answered, answer) = api
            .join()
            .map_err(|_| anyhow::anyhow!("the API request's thread panicked"))?;
        answer?.ok().with_context(|| format!("{method} {path}"))?;
        Ok((seen.map(|(t, _)| us(sent, t)), us(sent, answered)))
    })
}

/// `n` reservations from `first` up, in chunks the API's body limit takes.
fn load(c: &Client, n: u32, first: Ipv4Addr) -> anyhow::Result<()> {
    const CHUNK: u32 = 20_000;
    let mut done = 0;
    while done < n {
        let specs: Vec<ReservationSpec> = (done..n.min(done + CHUNK))
            .map(|i| {
                let b = i.to_be_bytes();
                ReservationSpec {
                    mac: format!("02:b1:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3]),
                    ip: Ipv4Addr::from(u32::from(first) + i).to_string(),
                    hostname: Some(format!("load{i}")),
                    ..Default::default()
                }
            })
            .collect();
        c.request(
            "POST",
            "/api/v1/reservations/bulk",
            Some(&serde_json::to_string(&specs)?),
        )?
        .ok()
        .with_context(|| format!("bulk-loading reservations {done}.."))?;
        done = n.min(done + CHUNK);
    }
    Ok(())
}

/// The daemon's first subnet.
fn first_subnet(c: &Client) -> anyhow::Result<ipnet::Ipv4Net> {
    let subnets: Vec<SubnetView> = serde_json::from_str(&c.get("/api/v1/subnets")?)?;
    let s = subnets.first().context("the daemon has no subnet")?;
    Ok(s.cidr.parse()?)
}

pub fn measure(args: &Args) -> anyhow::Result<Report> {
    let c = args.daemon.client()?;
    let mac = frame::parse_mac(&args.mac).context("--mac is not a MAC address")?;
    let net = first_subnet(&c)?;
    let ips = match args.ips.len() {
        0 => {
            let b = u32::from(net.broadcast());
            vec![Ipv4Addr::from(b - 1), Ipv4Addr::from(b - 2)]
        }
        2 => args.ips.clone(),
        _ => bail!("--ips takes two addresses"),
    };
    if args.load > 0 {
        let first = args
            .load_first_ip
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(net.network()) + 65_536));
        let last = u32::from(first) + (args.load - 1);
        ensure!(
            net.contains(&first) && net.contains(&Ipv4Addr::from(last)),
            "--load {} from {first} does not fit in the daemon's subnet {net}",
            args.load
        );
        let t = Instant::now();
        load(&c, args.load, first)?;
        tracing::info!(
            "loaded {} reservations in {:.1} s",
            args.load,
            t.elapsed().as_secs_f64()
        );
    }
    let mut prober = Prober {
        sock: open_socket(&args.interface, args.netns.as_deref())?,
        mac,
        xid: rand::random(),
        wait: Duration::from_micros(args.probe_us),
        buf: vec![0; 2048],
        server: args.server_id,
        eth_dst: match &args.server_mac {
            Some(m) => frame::parse_mac(m).context("--server-mac is not a MAC address")?,
            None => frame::BROADCAST_MAC,
        },
    };
    prober.sock.filter_udp_ports(68, 68)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let path = format!("/api/v1/reservations/{}", args.mac);
    // A leftover from an interrupted run.
    let _ = c.request("DELETE", &path, None)?;
    let held: stormboot::stats::Snapshot = serde_json::from_str(&c.get("/api/v1/stats")?)
        .context("decoding the daemon's /api/v1/stats")?;

    let (mut added, mut changed, mut removed, mut api) = (vec![], vec![], vec![], vec![]);
    let mut timeouts = 0;
    let mut before_200 = 0;
    let spec = |ip: Ipv4Addr| {
        serde_json::to_string(&ReservationSpec {
            mac: args.mac.clone(),
            ip: ip.to_string(),
            hostname: Some("bench-api".into()),
            ..Default::default()
        })
    };
    for _ in 0..args.cycles {
        let (add, put) = (spec(ips[0])?, spec(ips[1])?);
        let steps = [
            (
                ("POST", "/api/v1/reservations", Some(add.as_str())),
                Want::Offer(ips[0]),
            ),
            (
                ("PUT", path.as_str(), Some(put.as_str())),
                Want::Offer(ips[1]),
            ),
            (("DELETE", path.as_str(), None), Want::NotOffer(ips[1])),
        ];
        for (kind, (request, want)) in steps.into_iter().enumerate() {
            let (seen, answered) = change(&c, &mut prober, request, want, timeout)?;
            api.push(answered);
            match seen {
                Some(us) => {
                    [&mut added, &mut changed, &mut removed][kind].push(us);
                    before_200 += u64::from(us < answered);
                }
                None => timeouts += 1,
            }
        }
    }
    let all: Vec<u64> = added
        .iter()
        .chain(&changed)
        .chain(&removed)
        .copied()
        .collect();
    Ok(Report {
        reservations: held.reservations,
        visible: Stat::of(all),
        added: Stat::of(added),
        changed: Stat::of(changed),
        removed: Stat::of(removed),
        api: Stat::of(api),
        timeouts,
        seen_before_200: before_200,
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let r = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "API change -> XDP answers differently (from sending the request), microseconds, \
         with {} reservations loaded",
        r.reservations
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>8}",
        "", "changes", "p50", "p99", "max"
    );
    for (name, s) in [
        ("all", &r.visible),
        ("added", &r.added),
        ("changed", &r.changed),
        ("removed", &r.removed),
        ("api's 200", &r.api),
    ] {
        println!(
            "{name:<10} {:>8} {:>8} {:>8} {:>8}",
            s.changes, s.p50_us, s.p99_us, s.max_us
        );
    }
    println!(
        "{} of {} changes were answered the new way before the 200 arrived",
        r.seen_before_200, r.visible.changes
    );
    if r.timeouts > 0 {
        println!("{} change(s) not seen within --timeout-ms", r.timeouts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_discovers_and_offers_are_matched_by_xid() {
        let mac = [2, 0, 0, 0, 0, 9];
        let f = discover(mac, 7, frame::BROADCAST_MAC);
        let p = frame::parse(&f).unwrap();
        let m = Message::decode(&mut Decoder::new(p.payload)).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(p.addr.dport, 67);
        // A DISCOVER is not an OFFER.
        assert_eq!(offer_of(&f, 7, None), None);
        // Sent to one node: its Ethernet address, still IPv4 broadcast.
        let node = [2, 0, 0, 0, 0, 0xb];
        let f = discover(mac, 7, node);
        assert_eq!(f[..6], node);
        assert_eq!(frame::parse(&f).unwrap().addr.ip_dst, Ipv4Addr::BROADCAST);
    }

    #[test]
    fn offers_from_another_server_than_the_one_named_do_not_count() {
        let (a, b) = (Ipv4Addr::new(10, 50, 0, 1), Ipv4Addr::new(10, 50, 0, 2));
        let offer = |server: Ipv4Addr| {
            let mut m = super::super::fixtures::request([2, 0, 0, 0, 0, 9], MessageType::Offer);
            m.set_xid(7)
                .set_opcode(dhcproto::v4::Opcode::BootReply)
                .set_yiaddr(Ipv4Addr::new(10, 50, 0, 9));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
            let payload = super::super::fixtures::encode(&m);
            frame::build(
                &frame::Addressing {
                    eth_dst: frame::BROADCAST_MAC,
                    eth_src: [2, 0, 0, 0, 0, 1],
                    vlan: None,
                    ip_src: server,
                    ip_dst: Ipv4Addr::BROADCAST,
                    sport: 67,
                    dport: 68,
                },
                &payload,
            )
        };
        let ip = Some(Ipv4Addr::new(10, 50, 0, 9));
        assert_eq!(offer_of(&offer(a), 7, None), ip);
        assert_eq!(offer_of(&offer(b), 7, Some(b)), ip);
        assert_eq!(offer_of(&offer(a), 7, Some(b)), None);
        assert_eq!(offer_of(&offer(b), 8, Some(b)), None);
    }
}
