//! The userspace DHCPv4 server (RFC 2131/2132) as pure functions: a
//! decoded request and the server's state in, a reply and lease changes
//! out. No sockets, no clock (`now` is a parameter), no I/O: the daemon
//! makes the changes durable, then sends the reply.
//!
//! Reserved machines are answered exactly as the XDP program answers them
//! (`reserved`); everyone else from the pools (`pool`), with leases kept
//! in `table`, the subnet chosen by `select` and the options built by
//! `options`.
//!
//! Choices where RFC 2131 leaves room, and why:
//! - A REQUEST in INIT-REBOOT, RENEWING or REBINDING for an address that
//!   is free and in the subnet's pools is acknowledged even without a
//!   lease for it (as Kea does): after a lost lease database, clients keep
//!   their addresses instead of all being NAKed at once.
//! - A client known to hold another address in the subnet is NAKed, and so
//!   is one asking for an address leased to someone else or reserved for
//!   another machine, whether or not the subnet is authoritative: the
//!   server knows these answers. `authoritative = false` only silences
//!   NAKs about addresses (and networks) it knows nothing about.
//! - Reserved machines follow the XDP program's rules, which NAK a wrong
//!   address whatever `authoritative` says, so both dataplanes agree.
//! - A reservation applies on its own subnet only: on another network
//!   (where the program does not answer either) the machine is a pool
//!   client like any other.
//! - DECLINE and RELEASE are honoured only from the client holding the
//!   address, so that no client can take addresses out of the pools.
//! - Each `handle` first expires what is due, so replies never depend on
//!   how often the daemon calls `expire`; the removals are among its
//!   changes.
//! - As a node of a cluster (`set_share`) the table is a cache of the
//!   shared store, which arbitrates every write: the server learns what
//!   the store holds (`learn`), NAKs only when the table names another
//!   holder (or the address is reserved or off the subnet), and ACKs a
//!   client it thinks holds another address rather than NAK it on a
//!   possibly stale word. New clients' DISCOVERs are answered by the node
//!   their RFC 3074 bucket belongs to (`share`), and each node searches
//!   for free addresses from its own slice of the pools.

pub mod bounded;
pub mod decode;
mod live;
mod options;
mod pool;
pub mod proxy;
mod reserved;
mod select;
mod share;
mod table;

pub use share::Share;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use stormboot_common::layout::{msg, FLAG_BROADCAST, PXE_BOOT_PORT, SERVER_PORT};
use stormboot_common::maps::Block;
use stormboot_common::rules::{self, Destination, Verdict};

use crate::config::{Config, Reservation, Subnet};
use crate::leases::{Lease, LeaseAction, LeaseChange, LeaseEvent, LeaseState};
use crate::render::{self, tables, Transaction};
use crate::reservation::book::{Book, Entry};

/// The interface a request arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    pub ifindex: u32,
    pub iface_name: String,
    /// Its IPv4 address (the one in a configured subnet, if several).
    pub iface_addr: Ipv4Addr,
}

/// One decoded request and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub msg: &'a Message,
    /// Option 82 as received (code and length bytes included): used for
    /// link selection and echoed verbatim, last, in the reply. The decoded
    /// message's own option 82 is not looked at.
    pub relay_info: Option<&'a [u8]>,
    pub ingress: &'a Ingress,
    /// Its IPv4 source address and UDP source port: a proxy answers a
    /// boot-server request there.
    pub src: SocketAddrV4,
    /// The UDP port it was sent to: 67, or the PXE boot-server port 4011
    /// (`server_ports`).
    pub dport: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The UDP payload (BOOTP), ending after END, at least 300 bytes.
    pub payload: Vec<u8>,
    /// Where it goes (RFC 2131 4.1), and the flags it carries.
    pub dest: Destination,
    pub msg_type: u8,
    /// The address given (0 for NAKs and ACKs to INFORM).
    pub yiaddr: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<Reply>,
    /// To make durable, in order, before the reply is sent.
    pub changes: Vec<LeaseChange>,
    /// Why, for logs and counters; one of [`NOTES`].
    pub note: &'static str,
    /// An address the client says it has (ciaddr) though no change names
    /// it: in proxy mode another server leased it. The boot services need
    /// it to put TFTP transfers, which carry no MAC, on the machine's
    /// timeline.
    pub claimed: Option<Ipv4Addr>,
}

/// Every `Outcome::note`.
pub const NOTES: [&str; 29] = [
    "offer",
    "ack",
    "inform",
    "released",
    "declined",
    "nak-wrong-address",
    "nak-wrong-subnet",
    "nak-address-in-use",
    "no-free-address",
    "other-server",
    "ignored-not-authoritative",
    "ignored-not-ours",
    "ignored-no-subnet",
    "ignored-not-request",
    "ignored-bootp",
    "ignored-message-type",
    "ignored-malformed",
    "reply-too-long",
    "render-error",
    "proxy-offer",
    "proxy-ack",
    "proxy-not-booting",
    "proxy-no-profile",
    "proxy-request-on-67",
    "proxy-pxe-not-allowed",
    "ignored-boot-server-port",
    "ignored-other-node",
    // Not the server's: the slow path's, for a reply withheld because
    // the store gave the address to another node's client, and for a
    // cluster node's NAK withheld while it cannot read the store.
    "lost-race",
    "nak-withheld",
];

/// The UDP ports the server answers on: 67, and in proxy mode also the
/// PXE boot-server port 4011, which firmware asks after a proxy's offer.
pub fn server_ports(cfg: &Config) -> &'static [u16] {
    use stormboot_common::layout::{PXE_BOOT_PORT, SERVER_PORT};
    match cfg.server.mode {
        crate::config::Mode::Proxy => &[SERVER_PORT, PXE_BOOT_PORT],
        _ => &[SERVER_PORT],
    }
}

/// The server's state: configuration, leases and pools.
pub struct Server {
    cfg: Arc<Config>,
    table: table::Table,
    pools: pool::Pools,
    /// The reservations, as the apply path last handed them over.
    book: Arc<Book>,
    /// The NAK block of each subnet, index for index with the config's:
    /// the same blocks the XDP program's subnet map holds.
    naks: Vec<Block>,
    /// Changes made while loading (stale leases expired), handed out with
    /// the next `handle` or `expire`.
    pending: Vec<LeaseChange>,
    /// Lease events since the last `take_events`; recorded only when the
    /// configuration has `[hooks]`, so nobody else pays for them.
    events: Option<Vec<LeaseEvent>>,
    /// This node's share of a cluster's clients and addresses; None
    /// without a cluster, where the server answers every client alone.
    cluster: Option<Share>,
    /// Addresses whose lease in the table another node wrote (`learn`):
    /// their expiry is announced by that node, not again by this one.
    learned: std::collections::HashSet<Ipv4Addr>,
}

/// What the handler reads from a request.
struct Ctx<'r> {
    msg: &'r Message,
    msg_type: u8,
    mac: [u8; 6],
    client_id: Vec<u8>,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    flags: u16,
    hostname: Option<String>,
    max_size: Option<u16>,
    relay_info: &'r [u8],
    /// `None` when no configured subnet matches (fatal for DISCOVER,
    /// REQUEST and INFORM, not for DECLINE and RELEASE).
    subnet: Option<usize>,
}

type Answer = (Option<Reply>, &'static str);

fn nonzero(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified()).then_some(ip)
}

fn after(now: u64, d: Duration) -> u64 {
    now.saturating_add(d.as_secs())
}

impl Server {
    /// A server for `cfg` with the leases of the store. Leases whose time
    /// has passed are expired at once; their removals come with the next
    /// `handle` or `expire`.
    pub fn new(cfg: Arc<Config>, leases: Vec<Lease>, now: u64) -> Server {
        Server::with_book(Arc::new(Book::of_config(&cfg)), leases, now)
    }

    /// A server for `book` (the reservations and their configuration) with
    /// the leases of the store, as `new`.
    pub fn with_book(book: Arc<Book>, leases: Vec<Lease>, now: u64) -> Server {
        let cfg = book.config().clone();
        let mut pools = pool::Pools::new(&cfg, &book);
        let record_events = cfg.hooks.is_some();
        let table = table::Table::load(leases);
        for l in table.iter() {
            pools.take(l.ip);
        }
        // Rendering a NAK (two options) cannot fail; if it did, NAKs are
        // not sent ("render-error") rather than the server not starting.
        let naks = tables::subnet_entries(&cfg)
            .map(|v| v.into_iter().map(|s| s.nak).collect())
            .unwrap_or_default();
        let mut server = Server {
            cfg,
            table,
            pools,
            book,
            naks,
            pending: Vec::new(),
            events: record_events.then(Vec::new),
            cluster: None,
            learned: Default::default(),
        };
        server.pending = server.expire(now);
        server
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Answers one request (RFC 2131 section 4.3).
    pub fn handle(&mut self, req: &Request<'_>, now: u64) -> Outcome {
        if self.cfg.server.mode == crate::config::Mode::Proxy {
            return self.proxy(req);
        }
        if req.dport != SERVER_PORT {
            return Outcome {
                reply: None,
                changes: Vec::new(),
                note: "ignored-boot-server-port",
                claimed: None,
            };
        }
        let mut changes = self.expire(now);
        let (reply, note) = match self.context(req) {
            Ok(c) => self.dispatch(&c, now, &mut changes),
            Err(note) => (None, note),
        };
        Outcome {
            reply,
            changes,
            note,
            claimed: None,
        }
    }

    /// proxyDHCP: boot information only, no lease of ours (`proxy`).
    fn proxy(&self, req: &Request<'_>) -> Outcome {
        let m = req.msg;
        let mut mac = [0u8; 6];
        if let Some(c) = m.chaddr().get(..6) {
            mac.copy_from_slice(c);
        }
        let (reply, note) = proxy::answer(
            &self.book,
            &proxy::ProxyRequest {
                msg: m,
                mac,
                to_boot_port: req.dport == PXE_BOOT_PORT,
                src_ip: *req.src.ip(),
                src_port: req.src.port(),
            },
        );
        Outcome {
            reply,
            changes: Vec::new(),
            note,
            claimed: nonzero(m.ciaddr()),
        }
    }

    /// Expires offers, leases and quarantines whose time has come.
    pub fn expire(&mut self, now: u64) -> Vec<LeaseChange> {
        let mut changes = std::mem::take(&mut self.pending);
        while let Some(l) = self.table.pop_expired(now) {
            self.pools.put(l.ip);
            changes.push(LeaseChange::Remove(l.clone()));
            // Offers and quarantines end too, but only a binding expires.
            let theirs = self.learned.remove(&l.ip);
            if l.state == LeaseState::Bound && !theirs {
                self.event(LeaseAction::Expiry, l);
            }
        }
        changes
    }

    /// The lease events since the last call, in the order they happened:
    /// commits, renewals, expiries, releases and declines, from every
    /// call that changes leases (`handle`, `expire`,
    /// `record_fast_path_ack`). Empty unless the configuration has `[hooks]`.
    pub fn take_events(&mut self) -> Vec<LeaseEvent> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn event(&mut self, action: LeaseAction, lease: Lease) {
        if let Some(events) = self.events.as_mut() {
            events.push(LeaseEvent { action, lease });
        }
    }

    /// Records an ACK the XDP program sent for a reservation, so the lease
    /// table (and, through the returned changes, the store) knows the
    /// machine holds its address, as if userspace had answered it. An event
    /// that matches no reservation (removed since) changes nothing.
    pub fn record_fast_path_ack(
        &mut self,
        mac: [u8; 6],
        ip: Ipv4Addr,
        now: u64,
    ) -> Vec<LeaseChange> {
        let mut changes = Vec::new();
        let Some(entry) = self.book.owned(&mac) else {
            return changes;
        };
        let r = &entry.reservation;
        if r.ip != ip {
            return changes;
        }
        let subnet = &self.cfg.subnets[usize::from(r.subnet)];
        let held = self.table.get(ip);
        if held.is_some_and(|l| l.renewal_cached(mac, now, subnet.renewal_cache)) {
            return changes;
        }
        // The program does not read option 61; keep the identity a
        // userspace exchange recorded for this machine, else derive it.
        let known = held.filter(|l| l.mac == mac).cloned();
        let lease = Lease {
            ip,
            client_id: known
                .as_ref()
                .map_or_else(|| [&[1u8][..], &mac].concat(), |l| l.client_id.clone()),
            mac,
            state: LeaseState::Bound,
            expires: after(now, subnet.lease_time),
            updated: now,
            hostname: known
                .and_then(|l| l.hostname)
                .or_else(|| r.hostname.as_deref().map(str::to_owned)),
        };
        let action = LeaseAction::of_binding(self.table.get(ip), &lease);
        self.event(action, lease.clone());
        self.learned.remove(&ip);
        for old in self.table.insert(lease.clone()) {
            self.pools.put(old.ip);
            changes.push(LeaseChange::Remove(old));
        }
        self.pools.take(ip);
        changes.push(LeaseChange::Upsert(lease));
        changes
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.table.iter()
    }

    /// (subnet, addresses held, addresses the pools can give) per subnet;
    /// reserved and excluded addresses are not counted in either.
    pub fn pool_usage(&self) -> Vec<(ipnet::Ipv4Net, usize, usize)> {
        self.cfg
            .subnets
            .iter()
            .zip(self.pools.usage())
            .map(|(s, (used, size))| (s.net, used, size))
            .collect()
    }

    fn context<'r>(&self, req: &Request<'r>) -> Result<Ctx<'r>, &'static str> {
        let m = req.msg;
        if m.opcode() != Opcode::BootRequest {
            return Err("ignored-not-request");
        }
        if m.hlen() > 16 {
            return Err("ignored-malformed");
        }
        let o = m.opts();
        let msg_type = o.msg_type().ok_or("ignored-bootp")?;
        let chaddr = m.chaddr();
        let mut mac = [0u8; 6];
        let n = chaddr.len().min(6);
        mac[..n].copy_from_slice(&chaddr[..n]);
        let client_id = match o.get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => id.clone(),
            _ => std::iter::once(u8::from(m.htype()))
                .chain(chaddr.iter().copied())
                .collect(),
        };
        let requested = match o.get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => nonzero(*ip),
            _ => None,
        };
        let server_id = match o.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => nonzero(*ip),
            _ => None,
        };
        let hostname = match o.get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) if !h.is_empty() && h.len() <= 255 => Some(h.clone()),
            _ => None,
        };
        let max_size = match o.get(OptionCode::MaxMessageSize) {
            Some(DhcpOption::MaxMessageSize(n)) => Some(*n),
            _ => None,
        };
        let selection = match o.get(OptionCode::SubnetSelection) {
            Some(DhcpOption::SubnetSelection(ip)) => nonzero(*ip),
            _ => None,
        };
        let subnet = select::subnet(
            self.pools.index(),
            m.giaddr(),
            req.relay_info,
            selection,
            req.ingress,
        )
        .map(|(s, _)| s);
        Ok(Ctx {
            msg: m,
            msg_type: u8::from(msg_type),
            mac,
            client_id,
            requested,
            server_id,
            ciaddr: m.ciaddr(),
            giaddr: m.giaddr(),
            flags: m.flags().into(),
            hostname,
            max_size,
            relay_info: req.relay_info.unwrap_or(&[]),
            subnet,
        })
    }

    fn dispatch(&mut self, c: &Ctx<'_>, now: u64, changes: &mut Vec<LeaseChange>) -> Answer {
        match c.msg_type {
            msg::DISCOVER | msg::REQUEST | msg::INFORM => {
                let Some(subnet) = c.subnet else {
                    return (None, "ignored-no-subnet");
                };
                if c.msg_type == msg::INFORM {
                    return self.inform(c, subnet);
                }
                if let Some(r) = self.reservation(c.mac, subnet) {
                    return self.reserved(c, r, now, changes);
                }
                if c.msg_type == msg::DISCOVER {
                    self.discover(c, subnet, now, changes)
                } else {
                    self.request(c, subnet, now, changes)
                }
            }
            msg::DECLINE => self.decline(c, now, changes),
            msg::RELEASE => self.release(c, changes),
            _ => (None, "ignored-message-type"),
        }
    }

    /// The reservation of `mac` if it is on `subnet`.
    fn reservation(&self, mac: [u8; 6], subnet: usize) -> Option<Entry> {
        self.book
            .owned(&mac)
            .filter(|e| usize::from(e.reservation.subnet) == subnet)
    }

    fn ours(&self) -> Ipv4Addr {
        self.cfg.server.address
    }

    /// The client's offered or bound lease, if it is on `subnet`.
    fn current(&self, c: &Ctx<'_>, subnet: usize) -> Option<&Lease> {
        self.table
            .of_client(&c.client_id)
            .filter(|l| self.pools.index().containing(l.ip) == Some(subnet))
    }

    /// Whether `ip`'s lease is this client's (offered or bound).
    fn holds(&self, c: &Ctx<'_>, ip: Ipv4Addr) -> bool {
        self.table
            .get(ip)
            .is_some_and(|l| l.client_id == c.client_id && l.state != LeaseState::Declined)
    }

    /// Records `ip` as the client's, displacing its lease of any other
    /// address.
    fn bind(
        &mut self,
        c: &Ctx<'_>,
        ip: Ipv4Addr,
        state: LeaseState,
        expires: u64,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) {
        self.learned.remove(&ip);
        let hostname = c.hostname.clone().or_else(|| {
            self.table
                .get(ip)
                .filter(|l| l.client_id == c.client_id)
                .and_then(|l| l.hostname.clone())
        });
        let lease = Lease {
            ip,
            client_id: c.client_id.clone(),
            mac: c.mac,
            state,
            expires,
            updated: now,
            hostname,
        };
        if state == LeaseState::Bound {
            let action = LeaseAction::of_binding(self.table.get(ip), &lease);
            self.event(action, lease.clone());
        }
        for old in self.table.insert(lease.clone()) {
            self.pools.put(old.ip);
            changes.push(LeaseChange::Remove(old));
        }
        self.pools.take(ip);
        changes.push(LeaseChange::Upsert(lease));
    }

    /// Drops this server's offers to the client: it chose another server
    /// (RFC 2131 4.3.2). An offer of another node's that this node learned
    /// stays: the REQUEST may be for it, and that node ends it either way.
    fn drop_offer(&mut self, c: &Ctx<'_>, changes: &mut Vec<LeaseChange>) {
        let offered: Vec<Ipv4Addr> = self
            .table
            .all_of_client(&c.client_id)
            .filter(|l| l.state == LeaseState::Offered && !self.learned.contains(&l.ip))
            .map(|l| l.ip)
            .collect();
        for l in offered.into_iter().filter_map(|ip| self.table.remove(ip)) {
            self.pools.put(l.ip);
            changes.push(LeaseChange::Remove(l));
        }
    }

    fn reserved(
        &mut self,
        c: &Ctx<'_>,
        entry: Entry,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) -> Answer {
        let cfg = Arc::clone(&self.cfg);
        let r = &entry.reservation;
        let f = reserved::Fields {
            msg_type: c.msg_type,
            xid: c.msg.xid(),
            flags: c.flags,
            ciaddr: c.ciaddr,
            giaddr: c.giaddr,
            requested_ip: c.requested,
            server_id: c.server_id,
            chaddr: c.mac,
            relay_info: c.relay_info,
            variant: crate::bootfile::variant_of(c.msg, &cfg.boot.ipxe_user_class),
        };
        let (reply_type, note) = match reserved::verdict(&f, r.ip, cfg.server.address) {
            Verdict::Offer => (msg::OFFER, "offer"),
            Verdict::Ack => (msg::ACK, "ack"),
            Verdict::Nak => (msg::NAK, "nak-wrong-address"),
            Verdict::DropOtherServer => {
                self.drop_offer(c, changes);
                return (None, "other-server");
            }
            Verdict::Pass => return (None, "ignored-malformed"),
        };
        let Ok(reply) = reserved::reply(
            &cfg,
            r,
            self.naks.get(usize::from(r.subnet)),
            &f,
            reply_type,
        ) else {
            return (None, "render-error");
        };
        if reply_type == msg::ACK {
            let booting = tables::reservation_boots(&cfg, r, f.variant);
            let (lease_time, _, _) = cfg.subnets[usize::from(r.subnet)].lease_times(booting);
            let c = Ctx {
                hostname: c
                    .hostname
                    .clone()
                    .or_else(|| r.hostname.as_deref().map(str::to_owned)),
                client_id: c.client_id.clone(),
                relay_info: c.relay_info,
                ..*c
            };
            self.bind(
                &c,
                r.ip,
                LeaseState::Bound,
                after(now, lease_time),
                now,
                changes,
            );
        }
        (Some(reply), note)
    }

    fn discover(
        &mut self,
        c: &Ctx<'_>,
        subnet: usize,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) -> Answer {
        // RFC 2131 4.3.1: the client's current address, its previous one,
        // the one it asks for, or a new one. A current address that the
        // pools may no longer give (reserved or excluded since) is not
        // offered again; binding the new one ends its lease.
        let current = self
            .current(c, subnet)
            .filter(|l| self.pools.allocatable(subnet, l.ip))
            .map(|l| (l.ip, l.state == LeaseState::Bound));
        if let Some(share) = &self.cluster {
            // A new client (nothing of it in the table) goes to the node
            // its bucket belongs to; one that has waited long enough, to
            // anyone.
            let known = self.table.of_client(&c.client_id).is_some();
            if !known && !share.answers(share::bucket(c.msg), c.msg.secs()) {
                return (None, "ignored-other-node");
            }
        }
        let slice = self.cluster.as_ref().map_or((0, 1), |s| s.slice);
        let chosen = current.or_else(|| {
            [self.table.previous(&c.client_id), c.requested]
                .into_iter()
                .flatten()
                .find(|&ip| self.pools.is_free(subnet, ip))
                .or_else(|| self.pools.free_in_slice(subnet, slice))
                .map(|ip| (ip, false))
        });
        let Some((ip, bound)) = chosen else {
            return (None, "no-free-address");
        };
        let cfg = Arc::clone(&self.cfg);
        let s = &cfg.subnets[subnet];
        let reply = match self.pool_reply(c, s, msg::OFFER, ip, self.pool_boot(c, s)) {
            Ok(r) => r,
            Err(note) => return (None, note),
        };
        // A bound lease stays bound (and its time) until the REQUEST.
        if !bound {
            let hold = after(now, cfg.server.offer_hold);
            self.bind(c, ip, LeaseState::Offered, hold, now, changes);
        }
        (Some(reply), "offer")
    }

    fn request(
        &mut self,
        c: &Ctx<'_>,
        subnet: usize,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) -> Answer {
        if let Some(sid) = c.server_id {
            // SELECTING.
            if sid != self.ours() {
                self.drop_offer(c, changes);
                return (None, "other-server");
            }
            // Some old clients put the address in ciaddr instead of 50.
            let Some(ip) = c.requested.or(nonzero(c.ciaddr)) else {
                return (None, "ignored-malformed");
            };
            let on_subnet = self.pools.index().containing(ip) == Some(subnet);
            let reserved = self.pools.is_reserved(ip);
            if on_subnet && !reserved && (self.holds(c, ip) || self.pools.is_free(subnet, ip)) {
                return self.ack(c, subnet, ip, now, changes);
            }
            return self.nak(c, subnet, "nak-wrong-address");
        }
        match (nonzero(c.ciaddr), c.requested) {
            // RENEWING (unicast) or REBINDING (broadcast); option 50 there
            // breaks a MUST NOT but is seen, and ciaddr is what is in use.
            (Some(ciaddr), _) => self.confirm(c, subnet, ciaddr, now, changes),
            // INIT-REBOOT.
            (None, Some(requested)) => self.confirm(c, subnet, requested, now, changes),
            (None, None) => (None, "ignored-malformed"),
        }
    }

    /// INIT-REBOOT, RENEWING and REBINDING: is `ip` right for the client?
    fn confirm(
        &mut self,
        c: &Ctx<'_>,
        subnet: usize,
        ip: Ipv4Addr,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) -> Answer {
        let cfg = Arc::clone(&self.cfg);
        let s = &cfg.subnets[subnet];
        if !s.net.contains(&ip) {
            return self.refuse(c, subnet, "nak-wrong-subnet");
        }
        // Reserved for another machine (this one's own reservation on this
        // subnet never reaches the pools' path), even if leased before the
        // reservation was made.
        if self.pools.is_reserved(ip) {
            return self.nak(c, subnet, "nak-address-in-use");
        }
        if let Some(l) = self.table.get(ip) {
            if l.client_id == c.client_id && l.state != LeaseState::Declined {
                return self.ack(c, subnet, ip, now, changes);
            }
            return self.nak(c, subnet, "nak-address-in-use");
        }
        // Known to hold another address. In a cluster this table is a
        // cache another node's write may have overtaken: the store
        // arbitrates the ACK instead (and frees the other address).
        if self.cluster.is_none() && self.current(c, subnet).is_some() {
            return self.nak(c, subnet, "nak-wrong-address");
        }
        if self.pools.is_free(subnet, ip) {
            return self.ack(c, subnet, ip, now, changes);
        }
        self.refuse(c, subnet, "nak-wrong-address")
    }

    /// A NAK about an address the server knows nothing about: sent only
    /// when the subnet is authoritative.
    fn refuse(&self, c: &Ctx<'_>, subnet: usize, note: &'static str) -> Answer {
        if self.cfg.subnets[subnet].authoritative {
            self.nak(c, subnet, note)
        } else {
            (None, "ignored-not-authoritative")
        }
    }

    fn ack(
        &mut self,
        c: &Ctx<'_>,
        subnet: usize,
        ip: Ipv4Addr,
        now: u64,
        changes: &mut Vec<LeaseChange>,
    ) -> Answer {
        let cfg = Arc::clone(&self.cfg);
        let s = &cfg.subnets[subnet];
        let boot = self.pool_boot(c, s);
        let (lease_time, _, _) = s.lease_times(boot.is_some());
        match self.pool_reply(c, s, msg::ACK, ip, boot) {
            Ok(reply) => {
                self.bind(
                    c,
                    ip,
                    LeaseState::Bound,
                    after(now, lease_time),
                    now,
                    changes,
                );
                (Some(reply), "ack")
            }
            Err(note) => (None, note),
        }
    }

    /// A NAK from the subnet's rendered block, as the program sends it.
    fn nak(&self, c: &Ctx<'_>, subnet: usize, note: &'static str) -> Answer {
        let Some(block) = self.naks.get(subnet) else {
            return (None, "render-error");
        };
        let dest = rules::destination(msg::NAK, c.giaddr.into(), c.ciaddr.into(), c.flags, 0);
        let t = Transaction {
            msg_type: msg::NAK,
            xid: c.msg.xid(),
            flags: dest.flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: c.giaddr,
            chaddr: c.mac,
            relay_info: c.relay_info,
        };
        match render::complete(block, &t) {
            Ok(payload) => (
                Some(Reply {
                    payload,
                    dest,
                    msg_type: msg::NAK,
                    yiaddr: Ipv4Addr::UNSPECIFIED,
                }),
                note,
            ),
            Err(render::RenderError::TooLong(_)) => (None, "reply-too-long"),
            Err(_) => (None, "render-error"),
        }
    }

    /// An OFFER or ACK of `yiaddr` from the pools.
    fn pool_reply(
        &self,
        c: &Ctx<'_>,
        s: &Subnet,
        reply_type: u8,
        yiaddr: Ipv4Addr,
        boot: Option<crate::bootfile::BootSpec>,
    ) -> Result<Reply, &'static str> {
        let spec = options::Spec {
            cfg: &self.cfg,
            subnet: s,
            reservation: None,
            msg_type: MessageType::from(reply_type),
            hostname: c.hostname.as_deref(),
            lease: true,
            boot,
        };
        self.encode(c, &spec, reply_type, yiaddr, c.flags)
    }

    /// What a pool client boots: its subnet's profile (else the
    /// default), in the variant its request asks for.
    fn pool_boot(&self, c: &Ctx<'_>, s: &Subnet) -> Option<crate::bootfile::BootSpec> {
        crate::bootfile::pool_profile(&self.cfg, s).and_then(|_| {
            let v = crate::bootfile::variant_of(c.msg, &self.cfg.boot.ipxe_user_class);
            crate::bootfile::boot_spec(&self.cfg, v, c.mac)
        })
    }

    fn encode(
        &self,
        c: &Ctx<'_>,
        spec: &options::Spec<'_>,
        reply_type: u8,
        yiaddr: Ipv4Addr,
        flags: u16,
    ) -> Result<Reply, &'static str> {
        let dest = rules::destination(
            reply_type,
            c.giaddr.into(),
            c.ciaddr.into(),
            flags,
            yiaddr.into(),
        );
        let header = options::Header {
            xid: c.msg.xid(),
            flags: dest.flags,
            ciaddr: Ipv4Addr::from(rules::reply_ciaddr(reply_type, c.ciaddr.into())),
            yiaddr,
            giaddr: c.giaddr,
            htype: c.msg.htype(),
            chaddr: c.msg.chaddr(),
            relay_info: c.relay_info,
            max_size: c.max_size,
            boot: spec.boot.as_ref(),
        };
        match options::encode(&header, options::build(spec)) {
            Ok(payload) => Ok(Reply {
                payload,
                dest,
                msg_type: reply_type,
                yiaddr,
            }),
            Err(options::EncodeError::TooLong(_)) => Err("reply-too-long"),
            Err(options::EncodeError::Encoder) => Err("render-error"),
        }
    }

    /// RFC 2131 4.3.5: configuration without a lease, to ciaddr.
    fn inform(&self, c: &Ctx<'_>, subnet: usize) -> Answer {
        let cfg = Arc::clone(&self.cfg);
        let entry = self.reservation(c.mac, subnet);
        let reservation: Option<&Reservation> = entry.as_ref().map(|e| &e.reservation);
        let spec = options::Spec {
            cfg: &cfg,
            subnet: &cfg.subnets[subnet],
            reservation,
            msg_type: MessageType::Ack,
            hostname: reservation.and_then(|r| r.hostname.as_deref()),
            lease: false,
            boot: None,
        };
        // Without ciaddr (a broken client) there is nowhere to unicast to.
        let flags = if c.ciaddr.is_unspecified() {
            c.flags | FLAG_BROADCAST
        } else {
            c.flags
        };
        match self.encode(c, &spec, msg::ACK, Ipv4Addr::UNSPECIFIED, flags) {
            Ok(reply) => (Some(reply), "inform"),
            Err(note) => (None, note),
        }
    }

    /// RFC 2131 4.3.3: the address is in use elsewhere; keep it out of the
    /// pools for `decline_quarantine`.
    fn decline(&mut self, c: &Ctx<'_>, now: u64, changes: &mut Vec<LeaseChange>) -> Answer {
        if c.server_id.is_some_and(|s| s != self.ours()) {
            return (None, "other-server");
        }
        let Some(ip) = c.requested else {
            return (None, "ignored-malformed");
        };
        let reserved_to_it = self.book.reservation(&c.mac).is_some_and(|r| r.ip == ip);
        if !(self.holds(c, ip) || reserved_to_it) {
            return (None, "ignored-not-ours");
        }
        let lease = Lease {
            ip,
            client_id: c.client_id.clone(),
            mac: c.mac,
            state: LeaseState::Declined,
            expires: after(now, self.cfg.server.decline_quarantine),
            updated: now,
            hostname: None,
        };
        // The hook hears which machine had the address, by name too.
        let hostname = c.hostname.clone().or_else(|| {
            self.table
                .get(ip)
                .filter(|l| l.client_id == c.client_id)
                .and_then(|l| l.hostname.clone())
        });
        self.learned.remove(&ip);
        self.table.insert(lease.clone());
        self.pools.take(ip);
        self.event(
            LeaseAction::Decline,
            Lease {
                hostname,
                ..lease.clone()
            },
        );
        changes.push(LeaseChange::Upsert(lease));
        (None, "declined")
    }

    /// RFC 2131 4.3.4: the client gives its address back.
    fn release(&mut self, c: &Ctx<'_>, changes: &mut Vec<LeaseChange>) -> Answer {
        if c.server_id.is_some_and(|s| s != self.ours()) {
            return (None, "other-server");
        }
        let Some(ip) = nonzero(c.ciaddr) else {
            return (None, "ignored-malformed");
        };
        if !self.holds(c, ip) {
            return (None, "ignored-not-ours");
        }
        if let Some(l) = self.table.remove(ip) {
            // Releasing an offer gives nothing back that was announced.
            if l.state == LeaseState::Bound {
                self.event(LeaseAction::Release, l.clone());
            }
            changes.push(LeaseChange::Remove(l));
        }
        self.pools.put(ip);
        (None, "released")
    }
}
