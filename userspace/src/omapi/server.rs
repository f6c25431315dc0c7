//! The OMAPI listener: one task per connection, each message answered in
//! order with one reply. Hosts are the daemon's reservations, looked up by
//! ISC dhcpd's rules and changed through the REST API's own check and apply
//! path (`api::live`), so an OMAPI host is in the store, the XDP maps and
//! the userspace server before its client hears the reply. Leases are
//! read-only.
//!
//! Stricter than dhcpd: a message naming an authenticator must carry its
//! full, valid signature (else INVALIDKEY and the connection is closed);
//! an unsigned message changes nothing unless `allow_unsigned`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::auth::{self, Key};
use super::export::export_name;
use super::result as r;
use super::statements::{self, Statements};
use super::wire::{self, Message, Values};
use crate::api::live::Live;
use crate::api::registry::{ErrorKind, FieldError, Mode, Registry, Writer};
use crate::api::types::{ReservationSpec, Source};
use crate::config::Omapi as OmapiConfig;
use crate::frame::format_mac;
use crate::leases::{Lease, LeaseState};

/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Objects (handles) one connection may hold open.
pub const MAX_OBJECTS: usize = 4096;
/// A connection silent this long is closed.
pub const IDLE: Duration = Duration::from_secs(300);

/// What the listener saw, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub messages: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub unsigned_refused: AtomicU64,
    pub hosts_created: AtomicU64,
    pub hosts_updated: AtomicU64,
    pub hosts_deleted: AtomicU64,
}

pub struct Listener {
    pub cfg: Arc<OmapiConfig>,
    pub live: Arc<Live>,
    pub counters: Arc<Counters>,
}

impl Listener {
    /// Serves `listener` until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "omapi: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                self.counters
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "omapi: too many connections, closing");
                drop(stream);
                continue;
            };
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let mut c = Conn::new(me, peer);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = c.serve(stream) => {}
                }
            });
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Obj {
    Auth,
    Host([u8; 6]),
    Lease(Ipv4Addr),
}

/// What one request leads to.
struct Outcome {
    reply: Message,
    close: bool,
}

struct Conn {
    l: Arc<Listener>,
    peer: SocketAddr,
    /// The authenticator opened on this connection, by handle.
    auth: Option<(u32, Key)>,
    objects: HashMap<u32, Obj>,
    handles: HashMap<Obj, u32>,
    /// Handles, oldest first.
    order: std::collections::VecDeque<u32>,
    next_handle: u32,
    next_id: u32,
}

fn status(code: u32, text: Option<&str>) -> Message {
    let mut message: Values = vec![("result".into(), code.to_be_bytes().to_vec())];
    if let Some(t) = text {
        message.push(("message".into(), t.as_bytes().to_vec()));
    }
    Message {
        op: wire::OP_STATUS,
        message,
        ..Default::default()
    }
}

fn done(reply: Message) -> Outcome {
    Outcome {
        reply,
        close: false,
    }
}

/// The reply to a change the registry refused, as dhcpd words it.
fn refused(e: &FieldError, what: &str) -> Message {
    let code = match (e.kind, e.field.as_deref()) {
        (ErrorKind::Conflict, Some("mac")) => r::NOPERM,
        (ErrorKind::Conflict, _) => r::EXISTS,
        (ErrorKind::NotFound, _) => r::NOTFOUND,
        (ErrorKind::Invalid, _) => r::INVALIDARG,
        (ErrorKind::Internal | ErrorKind::Unavailable, _) => 34, // ISC_R_UNEXPECTED
    };
    tracing::info!(field = e.field.as_deref().unwrap_or(""), error = %e.message, "omapi: {what} refused");
    status(code, Some(what))
}

/// A host as OMAPI edits it before it becomes a reservation.
#[derive(Clone, Debug, Default)]
struct Draft {
    name: Option<String>,
    mac: Option<[u8; 6]>,
    ip: Option<Ipv4Addr>,
    statements: Option<Statements>,
    /// Whether it has statements already (a second set is refused).
    had_statements: bool,
}

enum Lookup {
    Found([u8; 6]),
    NotFound,
    KeyConflict,
    NoKeys,
}

impl Conn {
    fn new(l: Arc<Listener>, peer: SocketAddr) -> Conn {
        Conn {
            l,
            peer,
            auth: None,
            objects: HashMap::new(),
            handles: HashMap::new(),
            order: std::collections::VecDeque::new(),
            next_handle: 1,
            next_id: rand::random(),
        }
    }

    async fn serve(&mut self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        if stream.write_all(&wire::STARTUP).await.is_err() {
            return;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut started = false;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            // Everything complete in the buffer first, then read more.
            if !started {
                match wire::decode_startup(&buf) {
                    Ok(None) => {}
                    Ok(Some(())) => {
                        buf.drain(..8);
                        started = true;
                        continue;
                    }
                    Err(e) => {
                        self.l.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(peer = %self.peer, error = %e, "omapi: bad startup, closing");
                        return;
                    }
                }
            } else {
                match wire::decode(&buf) {
                    Ok(None) => {}
                    Ok(Some((m, used))) => {
                        let raw: Vec<u8> = buf.drain(..used).collect();
                        self.l.counters.messages.fetch_add(1, Ordering::Relaxed);
                        let (bytes, close) = self.handle(m, &raw).await;
                        if stream.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                        continue;
                    }
                    Err(e) => {
                        self.l.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(peer = %self.peer, error = %e, "omapi: malformed message, closing");
                        let mut s = status(r::INVALIDARG, Some("malformed message"));
                        s.id = self.id();
                        let _ = stream.write_all(&auth::seal(&s, None)).await;
                        return;
                    }
                }
            }
            let n = match tokio::time::timeout(IDLE, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The reply's bytes and whether to close after it.
    async fn handle(&mut self, m: Message, raw: &[u8]) -> (Vec<u8>, bool) {
        // A request that names an authenticator must carry its whole, valid
        // signature; dhcpd skips the check when authlen is 0, we do not.
        let signer = if m.authid != 0 {
            match &self.auth {
                Some((h, key)) if *h == m.authid && key.verify(raw, m.authlen as usize) => {
                    Some((*h, key.clone()))
                }
                _ => {
                    self.l
                        .counters
                        .bad_signatures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        peer = %self.peer,
                        key = self.auth.as_ref().map_or("-", |(_, k)| k.name.as_str()),
                        authid = m.authid,
                        authlen = m.authlen,
                        "omapi: bad or missing signature, closing"
                    );
                    let mut s = status(r::INVALIDKEY, None);
                    s.id = self.id();
                    s.rid = m.id;
                    return (auth::seal(&s, None), true);
                }
            }
        } else {
            None
        };
        let out = if m.rid != 0 || m.op == wire::OP_STATUS {
            // Answers nothing the server asked: the stream is confused.
            Outcome {
                reply: status(r::INVALIDARG, Some("unexpected message")),
                close: true,
            }
        } else if signer.is_none() && !self.unsigned_ok() && !is_auth_open(&m) {
            self.l
                .counters
                .unsigned_refused
                .fetch_add(1, Ordering::Relaxed);
            done(status(r::NOKEYS, Some("No authenticator on message")))
        } else {
            self.dispatch(&m, signer.is_some()).await
        };
        let mut reply = out.reply;
        reply.id = self.id();
        reply.rid = m.id;
        let bytes = match &signer {
            Some((h, key)) => auth::seal(&reply, Some((*h, key))),
            None => auth::seal(&reply, None),
        };
        (bytes, out.close)
    }

    fn unsigned_ok(&self) -> bool {
        self.l.cfg.allow_unsigned
    }

    async fn dispatch(&mut self, m: &Message, signed: bool) -> Outcome {
        match m.op {
            wire::OP_OPEN => self.open(m, signed).await,
            wire::OP_REFRESH => self.refresh(m.handle).await,
            wire::OP_UPDATE => self.update(m).await,
            wire::OP_DELETE => self.delete(m.handle).await,
            wire::OP_NOTIFY => done(status(
                r::NOTIMPLEMENTED,
                Some("notify not implemented yet"),
            )),
            _ => Outcome {
                reply: status(r::INVALIDARG, Some("unknown opcode")),
                close: true,
            },
        }
    }

    /// The handle of `o` on this connection, made if new. At the cap the
    /// oldest handle is forgotten (a client using it then gets "no
    /// matching handle"), so a long-lived client never runs out.
    fn new_handle(&mut self, o: Obj) -> Option<u32> {
        if let Some(&h) = self.handles.get(&o) {
            return Some(h);
        }
        while self.objects.len() >= MAX_OBJECTS {
            let old = self.order.pop_front()?;
            if let Some(x) = self.objects.remove(&old) {
                self.handles.remove(&x);
            }
        }
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.objects.insert(h, o);
        self.handles.insert(o, h);
        self.order.push_back(h);
        if self.order.len() > 2 * MAX_OBJECTS {
            // Deleted objects leave their handles here; drop them.
            let objects = &self.objects;
            self.order.retain(|h| objects.contains_key(h));
        }
        Some(h)
    }

    async fn open(&mut self, m: &Message, signed: bool) -> Outcome {
        let mut flags = [false; 3];
        for (i, name) in ["create", "update", "exclusive"].iter().enumerate() {
            if let Some(v) = wire::get(&m.message, name) {
                match wire::int(v) {
                    Some(x) => flags[i] = x != 0,
                    None => {
                        return done(status(
                            r::INVALIDARG,
                            Some(&format!("invalid {name} flag value")),
                        ))
                    }
                }
            }
        }
        let [create, update, exclusive] = flags;
        let kind = wire::get(&m.message, "type");
        match kind {
            Some(b"authenticator") if !signed => self.open_authenticator(m, create || update),
            Some(b"host") => self.open_host(m, create, update, exclusive).await,
            Some(b"lease") => self.open_lease(m, create, update).await,
            None if create => done(status(r::INVALIDARG, Some("type required on create"))),
            // dhcpd treats it as a refresh of the header handle.
            _ => self.refresh(m.handle).await,
        }
    }

    fn open_authenticator(&mut self, m: &Message, change: bool) -> Outcome {
        if change {
            return done(status(r::INVALIDARG, Some("can't update object")));
        }
        let name = wire::get(&m.object, "name").unwrap_or_default();
        let alg = wire::get(&m.object, "algorithm").unwrap_or_default();
        let key = self
            .l
            .cfg
            .keys
            .iter()
            .find(|k| k.name.as_bytes().eq_ignore_ascii_case(name) && k.algorithm.matches(alg));
        let Some(key) = key.cloned() else {
            tracing::info!(peer = %self.peer, key = %String::from_utf8_lossy(name), "omapi: unknown key or algorithm");
            return done(status(r::NOTFOUND, Some("no object matches specification")));
        };
        let Some(h) = self.new_handle(Obj::Auth) else {
            return done(status(r::NOPERM, Some("too many objects")));
        };
        let object = vec![
            ("name".to_string(), key.name.as_bytes().to_vec()),
            (
                "algorithm".to_string(),
                key.algorithm.wire_name().into_bytes(),
            ),
        ];
        self.auth = Some((h, key));
        // Unsigned, as dhcpd's: the client's request was unsigned.
        done(Message {
            op: wire::OP_UPDATE,
            handle: h,
            object,
            ..Default::default()
        })
    }

    /// dhcpd's host lookup: client id, hardware address (type 1 when
    /// absent), address, name; each later key must agree.
    fn lookup(&self, reg: &Registry, v: &Values) -> Result<Lookup, Message> {
        let mut found: Option<[u8; 6]> = None;
        if let Some(h) = wire::get(v, "handle") {
            match wire::int(h).and_then(|h| self.objects.get(&h)) {
                Some(Obj::Host(mac)) if reg.get(*mac).is_some() => found = Some(*mac),
                _ => return Ok(Lookup::NotFound),
            }
        }
        if wire::get(v, "dhcp-client-identifier").is_some() {
            // Reservations are keyed by MAC: none has a client id.
            return Ok(Lookup::NotFound);
        }
        if let Some(hw) = wire::get(v, "hardware-address") {
            let htype = match wire::get(v, "hardware-type") {
                None => 1,
                Some(t) => match wire::int(t) {
                    Some(t) => t,
                    None => return Ok(Lookup::NotFound),
                },
            };
            let mac = <[u8; 6]>::try_from(hw).ok().filter(|_| htype == 1);
            match mac.filter(|m| reg.get(*m).is_some()) {
                None => return Ok(Lookup::NotFound),
                Some(m) if found.is_some_and(|f| f != m) => return Ok(Lookup::KeyConflict),
                Some(m) => found = Some(m),
            }
        }
        if let Some(ip) = wire::get(v, "ip-address") {
            // dhcpd finds hosts by address only through leases; a
            // reservation's own address is the useful match here.
            let hit = <[u8; 4]>::try_from(ip)
                .ok()
                .and_then(|o| reg.by_ip(Ipv4Addr::from(o)))
                .map(|e| e.reservation.mac);
            match (hit, found) {
                (None, None) => return Ok(Lookup::NotFound),
                (None, Some(_)) => {}
                (Some(m), Some(f)) if m != f => return Ok(Lookup::KeyConflict),
                (Some(m), _) => found = Some(m),
            }
        }
        if let Some(name) = wire::get(v, "name") {
            let hit = std::str::from_utf8(name)
                .ok()
                .and_then(|n| reg.by_omapi_name(n))
                .map(|e| e.reservation.mac);
            match (hit, found) {
                (None, None) => return Ok(Lookup::NotFound),
                (None, Some(_)) => return Ok(Lookup::KeyConflict),
                (Some(m), Some(f)) if m != f => return Ok(Lookup::KeyConflict),
                (Some(m), _) => found = Some(m),
            }
        }
        let any_key = ["handle", "hardware-address", "ip-address", "name"]
            .iter()
            .any(|k| wire::get(v, k).is_some());
        Ok(match found {
            Some(m) => Lookup::Found(m),
            None if !any_key => Lookup::NoKeys,
            None => Lookup::NotFound,
        })
    }

    async fn open_host(
        &mut self,
        m: &Message,
        create: bool,
        update: bool,
        exclusive: bool,
    ) -> Outcome {
        let live = self.l.live.clone();
        let mut reg = live.registry().lock().await;
        let found = match self.lookup(&reg, &m.object) {
            Ok(l) => l,
            Err(reply) => return done(reply),
        };
        let mac = match found {
            Lookup::KeyConflict => {
                return done(status(r::KEYCONFLICT, Some("object lookup failed")))
            }
            Lookup::Found(_) if create && exclusive => {
                return done(status(r::EXISTS, Some("specified object already exists")))
            }
            Lookup::Found(mac) => {
                if create || update {
                    if let Err(reply) = self.change(&mut reg, Some(mac), &m.object).await {
                        return done(reply);
                    }
                }
                mac
            }
            Lookup::NoKeys if !create => {
                return done(status(r::NOKEYS, Some("object lookup failed")))
            }
            Lookup::NotFound | Lookup::NoKeys if !create => {
                return done(status(r::NOTFOUND, Some("no object matches specification")))
            }
            Lookup::NotFound | Lookup::NoKeys => {
                match self.change(&mut reg, None, &m.object).await {
                    Ok(mac) => mac,
                    Err(reply) => return done(reply),
                }
            }
        };
        let Some(h) = self.new_handle(Obj::Host(mac)) else {
            return done(status(r::NOPERM, Some("too many objects")));
        };
        done(host_update(&reg, mac, h))
    }

    /// Applies `values` to the host of `existing` (or to a new one) and
    /// commits it through the API's apply path; Err is the status reply.
    async fn change(
        &self,
        reg: &mut Registry,
        existing: Option<[u8; 6]>,
        values: &Values,
    ) -> Result<[u8; 6], Message> {
        let fail = |code| status(code, Some("can't update object"));
        let mut d = Draft::default();
        let mut base: Option<ReservationSpec> = None;
        if let Some(mac) = existing {
            let e = reg.get(mac).ok_or_else(|| fail(r::NOTFOUND))?;
            if e.source == Source::Config {
                return Err(fail(r::NOPERM));
            }
            let spec = reg.spec(e);
            d.name = spec.omapi_name.clone();
            d.mac = Some(mac);
            d.ip = Some(e.reservation.ip);
            d.had_statements = e.reservation.boot_file.is_some()
                || e.reservation.next_server.is_some()
                || e.reservation.hostname.is_some();
            base = Some(spec);
        }
        for (name, v) in values {
            match name.as_str() {
                "name" => {
                    if existing.is_some() && d.name.is_some() {
                        // dhcpd never renames a host.
                        return Err(fail(r::EXISTS));
                    }
                    let n = std::str::from_utf8(v).map_err(|_| fail(r::INVALIDARG))?;
                    d.name = Some(n.to_string());
                }
                "hardware-address" => {
                    if existing.is_some() {
                        return Err(fail(r::EXISTS));
                    }
                    // InfiniBand's 20 bytes are accepted by dhcpd; stormboot
                    // answers Ethernet only.
                    d.mac =
                        Some(<[u8; 6]>::try_from(v.as_slice()).map_err(|_| fail(r::INVALIDARG))?);
                }
                "hardware-type" => {
                    // Any length up to 4 holds the number; only Ethernet is
                    // served (a missing type is taken as 1, never 0).
                    if v.is_empty() || v.len() > 4 {
                        return Err(fail(r::INVALIDARG));
                    }
                    let t = v.iter().fold(0u32, |a, b| a << 8 | u32::from(*b));
                    if t != 1 {
                        return Err(fail(r::INVALIDARG));
                    }
                }
                "ip-address" => {
                    // A reservation needs an address; null cannot remove it.
                    let o = <[u8; 4]>::try_from(v.as_slice()).map_err(|_| fail(r::INVALIDARG))?;
                    d.ip = Some(Ipv4Addr::from(o));
                }
                "statements" => {
                    if d.had_statements {
                        return Err(fail(r::EXISTS));
                    }
                    let text = std::str::from_utf8(v).map_err(|_| fail(r::BADPARSE))?;
                    let s = statements::parse(text).map_err(|e| {
                        tracing::info!(error = %e, "omapi: statements refused");
                        fail(r::BADPARSE)
                    })?;
                    d.statements = Some(s);
                    d.had_statements = true;
                }
                "dhcp-client-identifier" => return Err(fail(r::NOTIMPLEMENTED)),
                "group" => return Err(fail(r::NOTFOUND)),
                "known" | "handle" => {}
                _ => return Err(fail(r::UNKNOWNATTRIBUTE)),
            }
        }
        let mac = d.mac.ok_or_else(|| fail(r::INVALIDARG))?;
        let ip = d.ip.ok_or_else(|| fail(r::INVALIDARG))?;
        let name = d.name.unwrap_or_else(|| {
            // dhcpd invents nh + hex; from the MAC it is stable and unique.
            format!(
                "nh{}",
                mac.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        });
        let mut spec = base.unwrap_or_default();
        spec.mac = format_mac(&mac);
        spec.ip = ip.to_string();
        spec.omapi_name = Some(name);
        if let Some(s) = d.statements {
            spec.boot_file = s.filename;
            spec.next_server = s.next_server.map(|n| n.to_string());
            spec.hostname = s.hostname;
        }
        let mode = if existing.is_some() {
            Mode::Replace
        } else {
            Mode::Create
        };
        self.l
            .live
            .put_locked(reg, &spec, mode, None, Writer::Omapi)
            .await
            .map_err(|e| refused(&e, "can't update object"))?;
        let counter = match existing {
            Some(_) => &self.l.counters.hosts_updated,
            None => &self.l.counters.hosts_created,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(mac)
    }

    async fn open_lease(&mut self, m: &Message, create: bool, update: bool) -> Outcome {
        if create {
            return done(status(r::NOTIMPLEMENTED, Some("can't create new object")));
        }
        let leases = match self.l.live.leases().await {
            Ok(l) => l,
            Err(_) => return done(status(34, Some("object lookup failed"))),
        };
        let v = &m.object;
        let mut hits: Vec<&Lease> = leases.iter().collect();
        let mut keyed = false;
        if let Some(ip) = wire::get(v, "ip-address") {
            keyed = true;
            let ip = <[u8; 4]>::try_from(ip).ok().map(Ipv4Addr::from);
            hits.retain(|l| Some(l.ip) == ip);
        }
        if let Some(hw) = wire::get(v, "hardware-address") {
            keyed = true;
            let t = wire::get(v, "hardware-type").map_or(Some(1), wire::int);
            hits.retain(|l| t == Some(1) && l.mac[..] == hw[..]);
        }
        if let Some(id) = wire::get(v, "dhcp-client-identifier") {
            keyed = true;
            hits.retain(|l| l.client_id[..] == id[..]);
        }
        let lease = match (keyed, hits.as_slice()) {
            (false, _) => return done(status(r::NOKEYS, Some("object lookup failed"))),
            (_, []) => return done(status(r::NOTFOUND, Some("no object matches specification"))),
            (_, [l]) => (*l).clone(),
            _ => return done(status(0x60006, Some("object lookup failed"))),
        };
        if update {
            return done(status(r::NOPERM, Some("can't update object")));
        }
        let Some(h) = self.new_handle(Obj::Lease(lease.ip)) else {
            return done(status(r::NOPERM, Some("too many objects")));
        };
        done(Message {
            op: wire::OP_UPDATE,
            handle: h,
            object: lease_values(&lease),
            ..Default::default()
        })
    }

    async fn refresh(&mut self, handle: u32) -> Outcome {
        match self.objects.get(&handle).copied() {
            Some(Obj::Host(mac)) => {
                let reg = self.l.live.registry().lock().await;
                if reg.get(mac).is_none() {
                    return done(status(r::NOTFOUND, Some("no matching handle")));
                }
                done(host_update(&reg, mac, handle))
            }
            Some(Obj::Lease(ip)) => {
                let leases = self.l.live.leases().await.unwrap_or_default();
                match leases.iter().find(|l| l.ip == ip) {
                    Some(l) => done(Message {
                        op: wire::OP_UPDATE,
                        handle,
                        object: lease_values(l),
                        ..Default::default()
                    }),
                    None => done(status(r::NOTFOUND, Some("no matching handle"))),
                }
            }
            _ => done(status(r::NOTFOUND, Some("no matching handle"))),
        }
    }

    async fn update(&mut self, m: &Message) -> Outcome {
        match self.objects.get(&m.handle).copied() {
            Some(Obj::Host(mac)) => {
                let live = self.l.live.clone();
                let mut reg = live.registry().lock().await;
                if reg.get(mac).is_none() {
                    return done(status(r::NOTFOUND, Some("no matching handle")));
                }
                match self.change(&mut reg, Some(mac), &m.object).await {
                    Ok(_) => done(status(r::SUCCESS, None)),
                    Err(reply) => done(reply),
                }
            }
            Some(Obj::Lease(_)) => done(status(r::NOPERM, Some("can't update object"))),
            _ => done(status(r::NOTFOUND, Some("no matching handle"))),
        }
    }

    async fn delete(&mut self, handle: u32) -> Outcome {
        match self.objects.get(&handle).copied() {
            Some(Obj::Host(mac)) => {
                let live = self.l.live.clone();
                let mut reg = live.registry().lock().await;
                let Some(e) = reg.get(mac) else {
                    return done(status(r::NOTFOUND, Some("no matching handle")));
                };
                if e.source == Source::Config {
                    return done(status(r::NOPERM, Some("can't destroy object")));
                }
                if let Err(e) = live.delete_locked(&mut reg, mac).await {
                    return done(refused(&e, "can't destroy object"));
                }
                self.l
                    .counters
                    .hosts_deleted
                    .fetch_add(1, Ordering::Relaxed);
                self.objects.remove(&handle);
                self.handles.remove(&Obj::Host(mac));
                done(status(r::SUCCESS, None))
            }
            Some(Obj::Lease(_)) => done(status(r::NOTIMPLEMENTED, None)),
            _ => done(status(r::NOTFOUND, Some("no matching handle"))),
        }
    }
}

fn is_auth_open(m: &Message) -> bool {
    m.op == wire::OP_OPEN && wire::get(&m.message, "type") == Some(b"authenticator")
}

/// The host's published values, in dhcpd's order.
fn host_update(reg: &Registry, mac: [u8; 6], handle: u32) -> Message {
    let mut object: Values = Vec::new();
    if let Some(e) = reg.get(mac) {
        object.push(("ip-address".into(), e.reservation.ip.octets().to_vec()));
        let name = reg.spec(e).omapi_name.unwrap_or_else(|| export_name(mac));
        object.push(("name".into(), name.into_bytes()));
        object.push(("hardware-address".into(), mac.to_vec()));
        object.push(("hardware-type".into(), 1u32.to_be_bytes().to_vec()));
    }
    Message {
        op: wire::OP_UPDATE,
        handle,
        object,
        ..Default::default()
    }
}

fn lease_values(l: &Lease) -> Values {
    let state: u32 = match l.state {
        LeaseState::Bound => 2,
        LeaseState::Offered => 1,
        LeaseState::Declined => 5,
    };
    let t = |x: u64| (x as u32).to_be_bytes().to_vec();
    let mut v: Values = vec![
        ("state".into(), state.to_be_bytes().to_vec()),
        ("ip-address".into(), l.ip.octets().to_vec()),
        ("dhcp-client-identifier".into(), l.client_id.clone()),
    ];
    if let Some(h) = &l.hostname {
        v.push(("client-hostname".into(), h.clone().into_bytes()));
    }
    v.push(("hardware-address".into(), l.mac.to_vec()));
    v.push(("hardware-type".into(), 1u32.to_be_bytes().to_vec()));
    v.push(("ends".into(), t(l.expires)));
    v.push(("starts".into(), t(l.updated)));
    v.push(("cltt".into(), t(l.updated)));
    v.push(("flags".into(), vec![0]));
    v
}
