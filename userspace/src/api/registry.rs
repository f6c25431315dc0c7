//! The reservations the daemon serves, config and API alike, and the
//! checks a change must pass before it reaches the store, the XDP maps and
//! the userspace server: the reservation rule, which the config file's
//! reservations also passed (`reservation::rule`), plus the API's own
//! (config entries are read-only, PUT needs an entry, the boot file and
//! OMAPI name fields, the reply fits a packet).
//!
//! Pure: no I/O, so every check is unit-tested here.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::types::{OptionSpec, ReservationPage, ReservationQuery, ReservationSpec};
use super::types::{ReservationView, Source};
use crate::config::{self, Config};
use crate::frame::{format_mac, parse_mac};
use crate::render::tables;
use crate::reservation::book::Book;
use crate::reservation::rule::{self, Candidate, Network, OptionText, Refusal, Rest};

/// Bulk requests of at least this many entries are checked in parallel.
const PARALLEL_BULK: usize = 256;
/// Entries a thread checks at a time.
const BULK_CHUNK: usize = 256;

/// Default and largest page.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// A refused request: the HTTP status it maps to, the field at fault, and
/// why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorKind,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400/422: the value itself is wrong.
    Invalid,
    /// 404
    NotFound,
    /// 409: the value clashes with another reservation, or the entry is
    /// the config file's.
    Conflict,
    /// 500: the daemon could not apply a valid change.
    Internal,
    /// 503: the store cannot be reached for now; nothing was changed, and
    /// the same request may succeed later.
    Unavailable,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorKind::Invalid,
            field: Some(field.into()),
            message: message.into(),
        }
    }
    fn conflict(field: &str, message: String) -> Self {
        FieldError {
            kind: ErrorKind::Conflict,
            field: Some(field.into()),
            message,
        }
    }
    fn not_found(field: &str, message: String) -> Self {
        FieldError {
            kind: ErrorKind::NotFound,
            field: Some(field.into()),
            message,
        }
    }
    /// The same error for entry `i` of a bulk request: `[3].ip`.
    fn at(mut self, i: usize) -> Self {
        self.field = Some(match self.field {
            Some(f) => format!("[{i}].{f}"),
            None => format!("[{i}]"),
        });
        self
    }
}

/// What a write may do to an existing entry of the same MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// POST: the MAC must be new.
    Create,
    /// PUT: the MAC must exist (and be the API's).
    Replace,
    /// Bulk: create, or replace an API entry.
    Upsert,
}

pub use crate::reservation::book::Entry;

/// A checked change, ready to apply.
#[derive(Clone)]
pub struct Checked {
    pub entry: Entry,
    /// The XDP map entries, one per boot variant it has.
    pub rendered: tables::Rendered,
    /// The entry it replaces, if any.
    pub replaces: Option<Entry>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("entry", &self.entry)
            .field("templates", &self.rendered.templates.blocks.len())
            .field("replaces", &self.replaces)
            .finish()
    }
}

/// The apply path's working copy of the book, and the checks a change
/// must pass against it.
pub struct Registry {
    book: Book,
    /// The book's server, subnets and profiles as the reservation rule
    /// reads them.
    network: Network,
}

/// Who writes a reservation: the REST API may not set OMAPI's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Rest,
    /// OMAPI, or the store giving back what either wrote.
    Omapi,
}

pub const API_ORIGIN: &str = "api";

impl Registry {
    /// The registry of the file's `reservations` (all `config` source);
    /// `cfg` holds the rest of the file (its own reservation list is not
    /// read: the book owns the list from now on).
    pub fn new(cfg: Arc<Config>, reservations: Vec<config::Reservation>) -> Registry {
        Registry::of_book(Book::new(cfg, reservations, Source::Config))
    }

    pub fn of_book(book: Book) -> Registry {
        let cfg = book.config();
        Registry {
            network: Network::of_config(cfg.server.address, &cfg.subnets, &cfg.profiles),
            book,
        }
    }

    /// The book as it stands, to publish.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The reservation OMAPI knows as host `name`.
    pub fn by_omapi_name(&self, name: &str) -> Option<&Entry> {
        self.book.by_name(name)
    }

    /// The reservation of `ip`.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Entry> {
        self.book.by_ip(ip)
    }

    /// Every reservation in MAC order, with its source.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.book.entries()
    }

    /// `e` as a client would write it.
    pub fn spec(&self, e: &Entry) -> ReservationSpec {
        spec_of_entry(self.book.config(), e)
    }

    pub fn config(&self) -> &Arc<Config> {
        self.book.config()
    }

    pub fn len(&self) -> usize {
        self.book.len()
    }

    pub fn is_empty(&self) -> bool {
        self.book.is_empty()
    }

    pub fn get(&self, mac: [u8; 6]) -> Option<&Entry> {
        self.book.get(&mac)
    }

    /// Every reservation in MAC order.
    pub fn reservations(&self) -> impl Iterator<Item = &config::Reservation> {
        self.book.reservations()
    }

    /// Checks `spec` as a write in `mode`; `path_mac` is the MAC of the
    /// URL (PUT), which the body's, if given, must equal.
    pub fn check(
        &self,
        spec: &ReservationSpec,
        mode: Mode,
        path_mac: Option<[u8; 6]>,
    ) -> Result<Checked, FieldError> {
        self.check_as(spec, mode, path_mac, Writer::Rest)
    }

    /// `check` for a given writer.
    pub fn check_as(
        &self,
        spec: &ReservationSpec,
        mode: Mode,
        path_mac: Option<[u8; 6]>,
        writer: Writer,
    ) -> Result<Checked, FieldError> {
        self.check_against(spec, mode, path_mac, writer, None)
    }

    fn check_against(
        &self,
        spec: &ReservationSpec,
        mode: Mode,
        path_mac: Option<[u8; 6]>,
        writer: Writer,
        rest: Option<&dyn Rest>,
    ) -> Result<Checked, FieldError> {
        let mac = match (path_mac, spec.mac.trim()) {
            (Some(m), "") => m,
            (path, text) => {
                let m = parse_mac_field(text)?;
                if let Some(p) = path.filter(|p| *p != m) {
                    return Err(FieldError::invalid(
                        "mac",
                        format!(
                            "{} differs from the MAC in the path ({})",
                            format_mac(&m),
                            format_mac(&p)
                        ),
                    ));
                }
                m
            }
        };
        let existing = self.book.get(&mac);
        match (mode, existing) {
            (_, Some(e)) if e.source == Source::Config => {
                return Err(FieldError::conflict(
                    "mac",
                    format!(
                        "{} is reserved in the config file ({}): read-only here",
                        format_mac(&mac),
                        e.reservation.origin
                    ),
                ))
            }
            (Mode::Replace, None) => {
                return Err(FieldError::not_found(
                    "mac",
                    format!("{} has no reservation", format_mac(&mac)),
                ))
            }
            _ => {}
        }

        let cfg = self.book.config();
        let ip_text = spec.ip.trim();
        let ip: Ipv4Addr = ip_text.parse().map_err(|_| {
            FieldError::invalid("ip", format!("{ip_text:?} is not an IPv4 address"))
        })?;
        let hostname = match spec.hostname.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) => Some(h),
        };
        let option_texts: Vec<OptionText> = spec
            .options
            .iter()
            .map(|o| OptionText {
                code: o.code,
                kind: &o.kind,
                value: &o.value,
            })
            .collect();
        let candidate = Candidate {
            mac,
            ip,
            hostname,
            profile: match spec.profile.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(p) => Some(p),
            },
            options: &option_texts,
        };
        // The rest of the book: `rest` when given (a bulk's), else this
        // registry, without the entry a replace or upsert takes the place of.
        let except = Except { book: self, mac };
        let book: &dyn Rest = match (rest, mode) {
            (Some(b), _) => b,
            (None, Mode::Create) => self,
            (None, Mode::Replace | Mode::Upsert) => &except,
        };
        let ok = rule::check(&candidate, &self.network, book).map_err(|r| refused(r, mode))?;
        let hostname = hostname.map(str::to_owned);
        let (profile, options) = (ok.profile, ok.options);
        let subnet = ok
            .subnet
            .expect("a configuration's network holds every subnet");
        let boot_file = match spec.boot_file.as_deref() {
            None | Some("") => None,
            Some(f) if f.len() > 127 || f.contains('\0') => {
                return Err(FieldError::invalid(
                    "boot_file",
                    "must be 1..=127 bytes without NUL (the BOOTP file field)",
                ))
            }
            Some(f) => Some(f.to_owned()),
        };
        let next_server = match spec.next_server.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(t.parse::<Ipv4Addr>().map_err(|_| {
                FieldError::invalid("next_server", format!("{t:?} is not an IPv4 address"))
            })?),
        };
        let omapi_name = match spec.omapi_name.as_deref() {
            None => None,
            Some(_) if writer == Writer::Rest => {
                return Err(FieldError::invalid(
                    "omapi_name",
                    "is set by OMAPI clients only",
                ))
            }
            Some(n) => {
                // Written unquoted into dhcpd.leases, and Foreman's parser
                // takes only these characters.
                if n.is_empty()
                    || n.len() > 253
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(FieldError::invalid(
                        "omapi_name",
                        format!("{n:?}: a host name of letters, digits, '-' and '.'"),
                    ));
                }
                if let Some(holder) = self
                    .book
                    .by_name(n)
                    .map(|e| e.reservation.mac)
                    .filter(|h| *h != mac)
                {
                    return Err(FieldError::conflict(
                        "omapi_name",
                        format!("{n} is the name of {}", format_mac(&holder)),
                    ));
                }
                Some(n.to_owned())
            }
        };
        let source = match omapi_name {
            Some(_) => Source::Omapi,
            None => Source::Api,
        };
        let label = match spec.label.as_deref() {
            None => None,
            Some(l) => {
                Some(config::reservation_label(l).map_err(|m| FieldError::invalid("label", m))?)
            }
        };

        let reservation = config::Reservation {
            mac,
            ip,
            hostname: hostname.as_deref().map(Into::into),
            // The network's subnets and profiles are the configuration's,
            // which has at most 2^16 of each.
            subnet: subnet as u16,
            origin: API_ORIGIN.into(),
            options: options.into(),
            profile: profile.map(|p| p as u16),
            allow_pxe: spec.allow_pxe.unwrap_or(true),
            boot_file: boot_file.as_deref().map(Into::into),
            next_server,
            label: label.as_deref().map(Into::into),
        };
        // Rendering is the last check: a reply too long for a DHCP packet
        // is refused here, not discovered by a booting machine.
        let rendered = tables::reservation_entries(cfg, &reservation)
            .map_err(|e| FieldError::invalid("options", e.source.to_string()))?;
        let normalized = ReservationSpec {
            mac: format_mac(&mac),
            ip: ip.to_string(),
            hostname,
            profile: profile.map(|p| cfg.profiles[p].name.clone()),
            options: spec.options.clone(),
            allow_pxe: spec.allow_pxe.filter(|a| !a),
            boot_file,
            next_server: next_server.map(|n| n.to_string()),
            omapi_name,
            label,
        };
        Ok(Checked {
            entry: Entry {
                reservation,
                source,
                spec: Some(Box::new(normalized)),
            },
            rendered,
            replaces: existing.cloned(),
        })
    }

    /// Checks a bulk import as a whole: each entry as an upsert, and no two
    /// of them with one MAC or one IP. Errors name the entry (`[3].ip`).
    pub fn check_bulk(&self, specs: &[ReservationSpec]) -> Result<Vec<Checked>, FieldError> {
        let threads = if specs.len() < PARALLEL_BULK {
            1
        } else {
            crate::parallel::threads()
        };
        self.check_bulk_on(specs, threads, BULK_CHUNK)
    }

    /// `check_bulk` on `threads` threads, `chunk` entries at a time. Each entry is first checked on
    /// its own (against the registry less the MACs the request rewrites:
    /// the rule, and rendering its replies, the costly part), chunk by
    /// chunk in parallel; then, in order, against the entries before it.
    /// An entry refused on its own or clashing with an earlier one is
    /// checked again as one thread checks it, so the error is the one a
    /// check from the first entry stops at.
    fn check_bulk_on(
        &self,
        specs: &[ReservationSpec],
        threads: usize,
        chunk: usize,
    ) -> Result<Vec<Checked>, FieldError> {
        // MACs this import rewrites: their current addresses are released.
        let mut rewritten = HashSet::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            rewritten.insert(parse_mac_field(s.mac.trim()).map_err(|e| e.at(i))?);
        }
        let none = (HashMap::new(), HashMap::new());
        let alone = BulkRest {
            registry: self,
            rewritten: &rewritten,
            earlier_macs: &none.0,
            earlier_ips: &none.1,
        };
        let chunks: Vec<std::ops::Range<usize>> = (0..specs.len())
            .step_by(chunk)
            .map(|a| a..(a + chunk).min(specs.len()))
            .collect();
        let checked_alone = crate::parallel::map(&chunks, threads, |range| {
            range
                .clone()
                .map_while(|i| {
                    self.check_against(&specs[i], Mode::Upsert, None, Writer::Rest, Some(&alone))
                        .ok()
                })
                .collect::<Vec<_>>()
        });
        let mut macs: HashMap<[u8; 6], usize> = HashMap::with_capacity(specs.len());
        let mut ips: HashMap<Ipv4Addr, ([u8; 6], usize)> = HashMap::with_capacity(specs.len());
        let mut out = Vec::with_capacity(specs.len());
        for (range, checked) in chunks.into_iter().zip(checked_alone) {
            let mut checked = checked.into_iter();
            for i in range {
                let clear = |c: &Checked| {
                    let r = &c.entry.reservation;
                    !macs.contains_key(&r.mac) && !ips.contains_key(&r.ip)
                };
                let c = match checked.next().filter(clear) {
                    Some(c) => c,
                    None => {
                        let rest = BulkRest {
                            registry: self,
                            rewritten: &rewritten,
                            earlier_macs: &macs,
                            earlier_ips: &ips,
                        };
                        self.check_against(&specs[i], Mode::Upsert, None, Writer::Rest, Some(&rest))
                            .map_err(|e| e.at(i))?
                    }
                };
                let r = &c.entry.reservation;
                macs.insert(r.mac, i);
                ips.insert(r.ip, (r.mac, i));
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Records a checked change (after it reached store, maps and server).
    pub fn insert(&mut self, entry: Entry) {
        self.book.insert(entry);
    }

    /// Checks that `mac` may be removed: it exists and is the API's.
    pub fn check_remove(&self, mac: [u8; 6]) -> Result<&Entry, FieldError> {
        match self.book.get(&mac) {
            None => Err(FieldError::not_found(
                "mac",
                format!("{} has no reservation", format_mac(&mac)),
            )),
            Some(e) if e.source == Source::Config => Err(FieldError::conflict(
                "mac",
                format!(
                    "{} is reserved in the config file ({}): read-only here",
                    format_mac(&mac),
                    e.reservation.origin
                ),
            )),
            Some(e) => Ok(e),
        }
    }

    pub fn remove(&mut self, mac: [u8; 6]) -> Option<Entry> {
        self.book.remove(&mac)
    }

    pub fn view(&self, e: &Entry) -> ReservationView {
        view(&self.book, e)
    }

    /// One page of the reservations matching `q`.
    pub fn page(&self, q: &ReservationQuery) -> Result<ReservationPage, FieldError> {
        page(&self.book, q)
    }
}

/// `e` of `book` as the API shows it.
pub fn view(book: &Book, e: &Entry) -> ReservationView {
    let cfg = book.config();
    ReservationView {
        spec: spec_of_entry(cfg, e),
        subnet: cfg.subnets[usize::from(e.reservation.subnet)]
            .net
            .to_string(),
        source: e.source,
        origin: e.reservation.origin.to_string(),
    }
}

/// One page of `book`'s reservations matching `q`.
pub fn page(book: &Book, q: &ReservationQuery) -> Result<ReservationPage, FieldError> {
    let limit = limit(q.limit)?;
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            parse_mac(t)
                .ok_or_else(|| FieldError::invalid("after", format!("{t:?} is not a MAC")))?,
        ),
    };
    let subnet = match q.subnet.as_deref() {
        None | Some("") => None,
        Some(t) => {
            let net: ipnet::Ipv4Net = t
                .parse()
                .map_err(|_| FieldError::invalid("subnet", format!("{t:?} is not a CIDR")))?;
            Some(
                book.config()
                    .subnets
                    .iter()
                    .position(|s| s.net == net)
                    .ok_or_else(|| {
                        FieldError::invalid("subnet", format!("{net} is not a configured subnet"))
                    })?,
            )
        }
    };
    let source = match q.source.as_deref() {
        None | Some("") => None,
        Some("config") => Some(Source::Config),
        Some("api") => Some(Source::Api),
        Some("omapi") => Some(Source::Omapi),
        Some(t) => {
            return Err(FieldError::invalid(
                "source",
                format!("{t:?} is not \"config\", \"api\" or \"omapi\""),
            ))
        }
    };
    let keep = |e: &&Entry| {
        subnet.is_none_or(|s| usize::from(e.reservation.subnet) == s)
            && source.is_none_or(|s| e.source == s)
            && q.profile.as_deref().is_none_or(|p| {
                e.reservation
                    .profile
                    .map(|i| book.config().profiles[usize::from(i)].name.as_str())
                    == Some(p)
            })
            && q.hostname.as_deref().is_none_or(|h| {
                e.reservation
                    .hostname
                    .as_deref()
                    .is_some_and(|name| name.contains(h))
            })
    };
    let total = book.entries().filter(keep).count();
    let mut items: Vec<ReservationView> = Vec::with_capacity(limit.min(total));
    let mut more = false;
    for e in book.after(after).filter(keep) {
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(view(book, e));
    }
    let next = more
        .then(|| items.last().map(|v| v.spec.mac.clone()))
        .flatten();
    Ok(ReservationPage { items, next, total })
}

pub fn limit(l: Option<usize>) -> Result<usize, FieldError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(FieldError::invalid("limit", "must be at least 1")),
        Some(n) if n > MAX_LIMIT => Err(FieldError::invalid(
            "limit",
            format!("{n} is more than {MAX_LIMIT}"),
        )),
        Some(n) => Ok(n),
    }
}

/// A MAC from a request field or path. Whether it may be reserved (a
/// unicast address) is the reservation rule's to say.
pub fn parse_mac_field(text: &str) -> Result<[u8; 6], FieldError> {
    if text.is_empty() {
        return Err(FieldError::invalid("mac", "is required"));
    }
    parse_mac(text).ok_or_else(|| {
        FieldError::invalid(
            "mac",
            format!("{text:?} is not a MAC address (six hex octets separated by ':' or '-')"),
        )
    })
}

/// The reservation rule's refusal as the API words it: the field, 400 for
/// a wrong value, 409 for a clash with another reservation.
fn refused(r: Refusal, mode: Mode) -> FieldError {
    let kind = if r.is_conflict() {
        ErrorKind::Conflict
    } else {
        ErrorKind::Invalid
    };
    let message = match &r {
        Refusal::MacTaken { mac, .. } if mode == Mode::Create => format!(
            "{} is already reserved (PUT /api/v1/reservations/{} replaces it)",
            format_mac(mac),
            format_mac(mac)
        ),
        Refusal::IpTaken { ip, holder, origin } => {
            format!("{ip} is reserved for {} ({origin})", format_mac(holder))
        }
        _ => r.to_string(),
    };
    FieldError {
        kind,
        field: Some(r.field().name("options")),
        message,
    }
}

impl Rest for Registry {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        self.book
            .get(mac)
            .map(|e| Cow::Owned(e.reservation.origin.to_string()))
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        let mac = self.book.mac_of(ip)?;
        Some((
            mac,
            self.origin_of(&mac).unwrap_or(Cow::Borrowed(API_ORIGIN)),
        ))
    }
}

/// The registry without the entry of `mac`: what a replacement of that
/// entry is checked against.
struct Except<'a> {
    book: &'a Registry,
    mac: [u8; 6],
}

impl Rest for Except<'_> {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        (*mac != self.mac)
            .then(|| self.book.origin_of(mac))
            .flatten()
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        self.book.holder_of(ip).filter(|(h, _)| *h != self.mac)
    }
}

/// What entry `i` of a bulk request is checked against: the entries before
/// it, and the registry without the entries the request rewrites (their
/// addresses are released).
struct BulkRest<'a> {
    registry: &'a Registry,
    rewritten: &'a HashSet<[u8; 6]>,
    /// The request's entries checked so far, by MAC and by address.
    earlier_macs: &'a HashMap<[u8; 6], usize>,
    earlier_ips: &'a HashMap<Ipv4Addr, ([u8; 6], usize)>,
}

impl Rest for BulkRest<'_> {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        if let Some(j) = self.earlier_macs.get(mac) {
            return Some(Cow::Owned(format!("entry [{j}]")));
        }
        if self.rewritten.contains(mac) {
            return None;
        }
        self.registry.origin_of(mac)
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        if let Some(&(mac, j)) = self.earlier_ips.get(&ip) {
            return Some((mac, Cow::Owned(format!("entry [{j}]"))));
        }
        self.registry
            .holder_of(ip)
            .filter(|(h, _)| !self.rewritten.contains(h))
    }
}

/// `e` as a client would write it: as written, or (the file's entries)
/// derived.
pub fn spec_of_entry(cfg: &Config, e: &Entry) -> ReservationSpec {
    e.spec
        .as_deref()
        .cloned()
        .unwrap_or_else(|| spec_of(cfg, &e.reservation))
}

/// A config-file reservation in the API's shape; its options are shown as
/// the bytes they encode to.
fn spec_of(cfg: &Config, r: &config::Reservation) -> ReservationSpec {
    ReservationSpec {
        mac: format_mac(&r.mac),
        ip: r.ip.to_string(),
        hostname: r.hostname.as_deref().map(str::to_owned),
        profile: r.profile.map(|p| cfg.profiles[usize::from(p)].name.clone()),
        options: r
            .options
            .iter()
            .map(|o| OptionSpec {
                code: i64::from(o.code),
                kind: "hex".into(),
                value: o.data.iter().map(|b| format!("{b:02x}")).collect(),
            })
            .collect(),
        allow_pxe: (!r.allow_pxe).then_some(false),
        boot_file: r.boot_file.as_deref().map(str::to_owned),
        next_server: r.next_server.map(|n| n.to_string()),
        omapi_name: None,
        label: r.label.as_deref().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
