//! The one apply path for reservations while the daemon runs: the REST
//! API's and OMAPI's changes and SIGHUP's reloads are each checked
//! (`registry`, on the reservation rule), made durable
//! (`store::ReservationStore`), written into the XDP maps in place, handed
//! to the userspace server and published as the new book
//! (`reservation::book`), before the client hears 200. Nothing restarts.
//!
//! Changes are applied one at a time (the registry's lock is held
//! throughout); readers see the book before a change or after it, never
//! half of one.

use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::registry::Entry;
use super::registry::{Checked, ErrorKind, FieldError, Mode, Registry, Writer};
use super::types::Source;
use super::types::{BulkResult, ReservationSpec, ReservationView};
use crate::config::Config;
use crate::dataplane::Dataplane;
use crate::frame::format_mac;
use crate::leases::Lease;
use crate::reservation::book::{Book, Published};
use crate::store::{
    LeaseCommit, Logged, LoggedChange, ReservationChange, ReservationStore, StoredReservation,
};

/// What the API asks of the userspace server, which lives on the slow
/// path's task.
pub enum Control {
    /// The book after a change, and the MACs whose reservation it changed.
    Book(Arc<Book>, Vec<[u8; 6]>, oneshot::Sender<()>),
    Leases(oneshot::Sender<Vec<Lease>>),
    /// (addresses held, addresses the pools can give) per subnet.
    PoolUsage(oneshot::Sender<Vec<(usize, usize)>>),
    /// The removed lease and its removal's durability.
    RemoveLease(Ipv4Addr, oneshot::Sender<Option<(Lease, LeaseCommit)>>),
    /// A whole new configuration and its book (SIGHUP), already in the
    /// maps.
    Reload(Arc<Book>, oneshot::Sender<()>),
}

/// What serving changes from the store's log did (`Live::follow_locked`).
#[derive(Debug, Default)]
pub struct Followed {
    /// Changes now served.
    pub applied: u64,
    /// Changes that were served already (this node's own) or removed
    /// what was not served.
    pub unchanged: u64,
    /// Changes not served here, each with a warning.
    pub skipped: u64,
    /// A change clashed with a reservation made through the API or OMAPI
    /// (here or on another node) rather than with the file: two nodes
    /// gave one address or name at once. Every node must then read all
    /// reservations again, in change order, so all keep the one stored
    /// first.
    pub clashed: bool,
    /// The number of the last change dealt with (0: none).
    pub through: i64,
    /// Why it stopped before the end, if it did.
    pub failed: Option<FieldError>,
}

/// A reservation change, for the dhcpd.leases export.
#[derive(Clone, Debug)]
pub enum JournalChange {
    Put([u8; 6]),
    /// The removed host's name.
    Removed(String),
}

/// Called after every change, before its client hears the answer.
pub type Journal = Arc<dyn Fn(&Registry, JournalChange) + Send + Sync>;

/// The apply path: the one component that changes reservations. A change
/// (add, replace, remove, bulk, a reload's whole new book) is checked
/// (`registry`), made durable (`store::ReservationStore`), written into the
/// XDP maps, handed to the userspace server, and published as the new
/// book, in that order.
pub struct Live {
    journal: std::sync::OnceLock<Journal>,
    registry: tokio::sync::Mutex<Registry>,
    stored: Arc<dyn ReservationStore>,
    dataplane: Option<Arc<std::sync::Mutex<Dataplane>>>,
    control: mpsc::Sender<Control>,
    /// The book every reader (boot services, API, metrics) sees.
    published: Published,
}

fn internal(message: String) -> FieldError {
    FieldError {
        kind: ErrorKind::Internal,
        field: None,
        message,
    }
}

/// Reads the stored reservations at start and merges them with the
/// config's (`merge`). Also returns the last change number the read
/// included, where following the store's change log starts.
pub async fn load(cfg: Config, stored: &dyn ReservationStore) -> anyhow::Result<(Registry, i64)> {
    let snapshot = stored.load().await?;
    Ok((merge(cfg, snapshot.reservations), snapshot.last_change))
}

/// The file's reservations with the stored ones that still validate
/// beside them. The config file wins: a stored entry whose MAC or IP the
/// file now reserves, or that no longer validates (its subnet or profile
/// gone), is not served, with a warning, and stays stored.
pub fn merge(cfg: Config, rows: Vec<StoredReservation>) -> Registry {
    let mut cfg = cfg;
    let file_reservations = std::mem::take(&mut cfg.reservations);
    add_stored(Registry::new(Arc::new(cfg), file_reservations), rows)
}

/// `registry` (the file's reservations) with the stored ones that still
/// validate added.
fn add_stored(mut registry: Registry, rows: Vec<StoredReservation>) -> Registry {
    let mut loaded = 0usize;
    for row in rows {
        let spec = match row {
            Ok(s) => s,
            Err(message) => {
                tracing::warn!(%message, "stored reservation not served");
                continue;
            }
        };
        match registry.check_as(&spec, Mode::Create, None, Writer::Omapi) {
            Ok(c) => {
                registry.insert(c.entry);
                loaded += 1;
            }
            Err(e) => tracing::warn!(
                mac = %spec.mac,
                field = e.field.as_deref().unwrap_or(""),
                error = %e.message,
                "stored reservation not served (the config file wins)"
            ),
        }
    }
    tracing::info!(stored = loaded, "API reservations loaded");
    registry
}

impl Live {
    pub fn new(
        registry: Registry,
        stored: Arc<dyn ReservationStore>,
        dataplane: Option<Arc<std::sync::Mutex<Dataplane>>>,
        control: mpsc::Sender<Control>,
    ) -> Live {
        Live {
            journal: std::sync::OnceLock::new(),
            published: registry.book().clone().publish(),
            registry: tokio::sync::Mutex::new(registry),
            stored,
            dataplane,
            control,
        }
    }

    /// The book as readers see it: the last change applied.
    pub fn published(&self) -> &Published {
        &self.published
    }

    pub fn registry(&self) -> &tokio::sync::Mutex<Registry> {
        &self.registry
    }

    /// Sets the export every later change is journalled to.
    pub fn set_journal(&self, j: Journal) {
        let _ = self.journal.set(j);
    }

    /// Serves a new configuration file (SIGHUP) with the stored API
    /// reservations merged in, as at start; returns the book now served.
    /// Every reply is rendered before the maps are touched, and a failure
    /// writing them puts the previous book back.
    pub async fn reload(&self, file: Config) -> anyhow::Result<Arc<Book>> {
        let mut reg = self.registry.lock().await;
        let rows = self.stored.load().await?.reservations;
        let registry = merge(file, rows);
        let book = registry.book();
        crate::render::tables::subnet_entries(book.config())?;
        for r in book.reservations() {
            crate::render::tables::reservation_entries(book.config(), r)?;
        }
        if let Some(dp) = &self.dataplane {
            let mut dp = dp
                .lock()
                .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?;
            if let Err(e) = dp.install_book(book) {
                let restored = dp.install_book(reg.book());
                anyhow::bail!(
                    "installing into the maps: {e} (previous configuration restored: {restored:?})"
                );
            }
        }
        let book = Arc::new(book.clone());
        self.tell(|tx| Control::Reload(book.clone(), tx))
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        self.published.store(book.clone());
        *reg = registry;
        Ok(book)
    }

    async fn store(
        &self,
        put: Vec<([u8; 6], ReservationSpec)>,
        delete: Vec<[u8; 6]>,
    ) -> Result<(), FieldError> {
        let changes = put
            .into_iter()
            .map(|(mac, spec)| ReservationChange::Put {
                mac,
                spec: Box::new(spec),
            })
            .chain(
                delete
                    .into_iter()
                    .map(|mac| ReservationChange::Remove { mac }),
            )
            .collect();
        self.stored.apply(changes).await.map_err(|e| {
            if e.is_transient() {
                FieldError {
                    kind: ErrorKind::Unavailable,
                    field: None,
                    message: format!(
                        "the reservation store cannot be reached, nothing was changed \
                         (try again): {e}"
                    ),
                }
            } else {
                internal(e.to_string())
            }
        })
    }

    fn maps(
        &self,
        f: impl FnOnce(&mut Dataplane) -> Result<(), crate::dataplane::DataplaneError>,
    ) -> Result<(), FieldError> {
        let Some(dp) = &self.dataplane else {
            return Ok(());
        };
        let mut dp = dp
            .lock()
            .map_err(|_| internal("dataplane lock poisoned".into()))?;
        f(&mut dp).map_err(|e| internal(format!("updating the XDP maps: {e}")))
    }

    async fn tell(
        &self,
        make: impl FnOnce(oneshot::Sender<()>) -> Control,
    ) -> Result<(), FieldError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(make(tx))
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        rx.await
            .map_err(|_| internal("the userspace server has stopped".into()))
    }

    /// Creates (`Mode::Create`) or replaces (`Mode::Replace`) one
    /// reservation.
    pub async fn put(
        &self,
        spec: &ReservationSpec,
        mode: Mode,
        path_mac: Option<[u8; 6]>,
    ) -> Result<ReservationView, FieldError> {
        let mut reg = self.registry.lock().await;
        self.put_locked(&mut reg, spec, mode, path_mac, Writer::Rest)
            .await
    }

    /// `put` for a writer that already holds the registry (OMAPI decides
    /// by dhcpd's lookup rules under the same lock).
    pub async fn put_locked(
        &self,
        reg: &mut Registry,
        spec: &ReservationSpec,
        mode: Mode,
        path_mac: Option<[u8; 6]>,
        writer: Writer,
    ) -> Result<ReservationView, FieldError> {
        let c = reg.check_as(spec, mode, path_mac, writer)?;
        self.apply_checked(reg, vec![c]).await?;
        let mac = spec_mac(spec, path_mac)?;
        let e = reg
            .get(mac)
            .ok_or_else(|| internal("lost the reservation".into()))?;
        Ok(reg.view(e))
    }

    /// Creates or replaces many at once; all or nothing at the checks.
    pub async fn bulk(&self, specs: &[ReservationSpec]) -> Result<BulkResult, FieldError> {
        let mut reg = self.registry.lock().await;
        let checked = reg.check_bulk(specs)?;
        let replaced = checked.iter().filter(|c| c.replaces.is_some()).count();
        let created = checked.len() - replaced;
        self.apply_checked(&mut reg, checked).await?;
        Ok(BulkResult { created, replaced })
    }

    async fn apply_checked(
        &self,
        reg: &mut Registry,
        checked: Vec<Checked>,
    ) -> Result<(), FieldError> {
        let put: Vec<_> = checked
            .iter()
            .map(|c| (c.entry.reservation.mac, reg.spec(&c.entry)))
            .collect();
        self.store(put, vec![]).await?;
        let written = self.maps(|dp| {
            for c in &checked {
                dp.put_reservation(c.entry.reservation.mac, &c.rendered)?;
            }
            Ok(())
        });
        if let Err(e) = written {
            // Undo what the store and the maps took, so that a retry
            // starts from the state the client last saw.
            let (restore, delete): (Vec<_>, Vec<_>) =
                checked.iter().partition(|c| c.replaces.is_some());
            let restore: Vec<_> = restore
                .iter()
                .filter_map(|c| c.replaces.as_ref())
                .map(|old| (old.reservation.mac, reg.spec(old)))
                .collect();
            let delete: Vec<_> = delete.iter().map(|c| c.entry.reservation.mac).collect();
            let _ = self.store(restore, delete.clone()).await;
            let cfg = reg.config().clone();
            let _ = self.maps(|dp| {
                for c in &checked {
                    match &c.replaces {
                        Some(old) => dp.put_reservation(
                            old.reservation.mac,
                            &crate::render::tables::reservation_entries(&cfg, &old.reservation)?,
                        )?,
                        None => dp.remove_reservation(c.entry.reservation.mac)?,
                    }
                }
                Ok(())
            });
            return Err(e);
        }
        let macs: Vec<[u8; 6]> = checked.iter().map(|c| c.entry.reservation.mac).collect();
        for c in checked {
            reg.insert(c.entry);
        }
        self.hand_over(reg, macs.clone()).await?;
        if let Some(j) = self.journal.get() {
            for mac in macs {
                j(reg, JournalChange::Put(mac));
            }
        }
        Ok(())
    }

    /// Hands the registry's book, changed at `macs`, to the userspace
    /// server, then publishes it to every reader.
    async fn hand_over(&self, reg: &Registry, macs: Vec<[u8; 6]>) -> Result<(), FieldError> {
        let book = Arc::new(reg.book().clone());
        self.tell(|done| Control::Book(book.clone(), macs, done))
            .await?;
        self.published.store(book);
        Ok(())
    }

    pub async fn delete(&self, mac: [u8; 6]) -> Result<(), FieldError> {
        let mut reg = self.registry.lock().await;
        self.delete_locked(&mut reg, mac).await
    }

    /// `delete` for a writer that already holds the registry.
    pub async fn delete_locked(&self, reg: &mut Registry, mac: [u8; 6]) -> Result<(), FieldError> {
        let name = reg
            .check_remove(mac)?
            .spec
            .as_ref()
            .and_then(|s| s.omapi_name.clone())
            .unwrap_or_else(|| crate::omapi::export::export_name(mac));
        self.store(vec![], vec![mac]).await?;
        self.maps(|dp| dp.remove_reservation(mac))?;
        reg.remove(mac);
        self.hand_over(reg, vec![mac]).await?;
        if let Some(j) = self.journal.get() {
            j(reg, JournalChange::Removed(name));
        }
        tracing::info!(mac = %format_mac(&mac), "reservation removed");
        Ok(())
    }

    /// Serves changes that are already durable (read back from the
    /// store's change log, in number order, by `cluster::sync`): each is
    /// checked by the reservation rule against the book, written into the
    /// maps, and the book, changed at every MAC that changed, is handed to
    /// the userspace server and published; nothing is stored again. The
    /// caller holds the registry, so no change of this node's API runs
    /// between its read of the log and this.
    ///
    /// A change equal to what is served already (this node's own, coming
    /// back) changes nothing. One the config file overrides, that the rule
    /// refuses here (another node's file differs) or whose row does not
    /// decode is skipped with a warning. A failure to write the maps stops
    /// at that change: what came before it is served, and
    /// `Followed::through` says how far it got.
    pub async fn follow_locked(&self, reg: &mut Registry, changes: &[LoggedChange]) -> Followed {
        let mut out = Followed::default();
        let mut changed = Vec::new();
        let mut journal = Vec::new();
        for c in changes {
            let mac = format_mac(&c.mac);
            match &c.what {
                Logged::Unreadable(why) => {
                    tracing::warn!(mac, change = c.number, error = %why,
                        "stored reservation change not served");
                    out.skipped += 1;
                }
                Logged::Removed => match reg.get(c.mac) {
                    Some(e) if e.source != Source::Config => {
                        let name = e
                            .omapi_name()
                            .map(str::to_owned)
                            .unwrap_or_else(|| crate::omapi::export::export_name(c.mac));
                        if let Err(e) = self.maps(|dp| dp.remove_reservation(c.mac)) {
                            out.failed = Some(e);
                            break;
                        }
                        reg.remove(c.mac);
                        changed.push(c.mac);
                        journal.push(JournalChange::Removed(name));
                        out.applied += 1;
                    }
                    // Not served here, or the file's (which the stored one
                    // never overrode): nothing to remove.
                    _ => out.unchanged += 1,
                },
                Logged::Put(spec) => {
                    let served = reg.get(c.mac).filter(|e| e.source != Source::Config);
                    if served.and_then(|e| e.spec.as_deref()) == Some(&**spec) {
                        out.unchanged += 1;
                        out.through = c.number;
                        continue;
                    }
                    match reg.check_as(spec, Mode::Upsert, Some(c.mac), Writer::Omapi) {
                        Ok(checked) => {
                            let written =
                                self.maps(|dp| dp.put_reservation(c.mac, &checked.rendered));
                            if let Err(e) = written {
                                out.failed = Some(e);
                                break;
                            }
                            reg.insert(checked.entry);
                            changed.push(c.mac);
                            journal.push(JournalChange::Put(c.mac));
                            out.applied += 1;
                        }
                        Err(e) if clashes(reg, spec, &e) => {
                            tracing::warn!(
                                mac,
                                change = c.number,
                                field = e.field.as_deref().unwrap_or(""),
                                error = %e.message,
                                "stored reservation change clashes with another made at the \
                                 same time: reading every reservation again, the one stored \
                                 first wins"
                            );
                            out.skipped += 1;
                            out.clashed = true;
                        }
                        Err(e) => {
                            tracing::warn!(
                                mac,
                                change = c.number,
                                field = e.field.as_deref().unwrap_or(""),
                                error = %e.message,
                                "stored reservation change not served here \
                                 (the config file wins, or this node's configuration differs)"
                            );
                            out.skipped += 1;
                        }
                    }
                }
            }
            out.through = c.number;
        }
        if !changed.is_empty() {
            if let Err(e) = self.hand_over(reg, changed).await {
                out.failed.get_or_insert(e);
            }
            if let Some(j) = self.journal.get() {
                for change in journal {
                    j(reg, change);
                }
            }
        }
        out
    }

    /// Serves `rows` (every stored reservation, read again because the
    /// change log was pruned past what this node applied) beside the
    /// file's reservations, in place of the API's entries the book holds:
    /// as at start, but only the MACs whose entry differs are written into
    /// the maps. Returns how many differed.
    pub async fn resync_locked(
        &self,
        reg: &mut Registry,
        rows: Vec<StoredReservation>,
    ) -> Result<usize, FieldError> {
        let file: Vec<_> = reg
            .entries()
            .filter(|e| e.source == Source::Config)
            .map(|e| e.reservation.clone())
            .collect();
        let fresh = add_stored(Registry::new(reg.config().clone(), file), rows);
        let same = |a: &Entry, b: &Entry| {
            a.source == b.source && a.reservation == b.reservation && a.spec == b.spec
        };
        let gone: Vec<[u8; 6]> = reg
            .entries()
            .filter(|e| e.source != Source::Config)
            .map(|e| e.reservation.mac)
            .filter(|mac| fresh.get(*mac).is_none())
            .collect();
        let put: Vec<&Entry> = fresh
            .entries()
            .filter(|e| e.source != Source::Config)
            .filter(|e| reg.get(e.reservation.mac).is_none_or(|old| !same(old, e)))
            .collect();
        let cfg = fresh.config().clone();
        self.maps(|dp| {
            for mac in &gone {
                dp.remove_reservation(*mac)?;
            }
            for e in &put {
                let entries = crate::render::tables::reservation_entries(&cfg, &e.reservation)?;
                dp.put_reservation(e.reservation.mac, &entries)?;
            }
            Ok(())
        })?;
        let journal: Vec<JournalChange> = gone
            .iter()
            .map(|mac| {
                let name = reg.get(*mac).and_then(Entry::omapi_name);
                JournalChange::Removed(
                    name.map_or_else(|| crate::omapi::export::export_name(*mac), str::to_owned),
                )
            })
            .chain(put.iter().map(|e| JournalChange::Put(e.reservation.mac)))
            .collect();
        let changed: Vec<[u8; 6]> = gone
            .iter()
            .copied()
            .chain(put.iter().map(|e| e.reservation.mac))
            .collect();
        *reg = fresh;
        self.hand_over(reg, changed.clone()).await?;
        if let Some(j) = self.journal.get() {
            for change in journal {
                j(reg, change);
            }
        }
        Ok(changed.len())
    }

    /// The configured subnets, with their pools' use.
    pub async fn subnets(&self) -> Result<Vec<super::types::SubnetView>, FieldError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::PoolUsage(tx))
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        let usage = rx
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        let book = self.published.load();
        let cfg = book.config();
        Ok(cfg
            .subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (used, size) = usage.get(i).copied().unwrap_or_default();
                super::types::SubnetView {
                    cidr: s.net.to_string(),
                    routers: s.routers.iter().map(ToString::to_string).collect(),
                    dns: s.dns.iter().map(ToString::to_string).collect(),
                    domain: s.domain.clone(),
                    lease_time: s.lease_time.as_secs(),
                    pools: s.pools.iter().map(|(a, b)| format!("{a}-{b}")).collect(),
                    pool_used: used,
                    pool_size: size,
                    reservations: book.in_subnet(i),
                    profile: s.profile.map(|p| cfg.profiles[p].name.clone()),
                    authoritative: s.authoritative,
                }
            })
            .collect())
    }

    /// Every lease the server holds, in address order.
    pub async fn leases(&self) -> Result<Vec<Lease>, FieldError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Leases(tx))
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        let mut v = rx
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        v.sort_by_key(|l| u32::from(l.ip));
        Ok(v)
    }

    /// Ends the lease of `ip`; answers once the removal is durable.
    pub async fn remove_lease(&self, ip: Ipv4Addr) -> Result<Lease, FieldError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::RemoveLease(ip, tx))
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?;
        let (lease, durable) = rx
            .await
            .map_err(|_| internal("the userspace server has stopped".into()))?
            .ok_or_else(|| FieldError {
                kind: ErrorKind::NotFound,
                field: Some("ip".into()),
                message: format!("{ip} has no lease"),
            })?;
        let lost = durable.await.map_err(|e| internal(e.to_string()))?;
        if let Some(holder) = lost.into_iter().find_map(|l| l.holder) {
            // Another node renewed it, or gave the address to another
            // client, since this node last looked: the row stays.
            return Err(FieldError {
                kind: ErrorKind::Conflict,
                field: Some("ip".into()),
                message: format!(
                    "{ip} changed on another node: now held by {} until {}; not removed",
                    crate::frame::format_mac(&holder.mac),
                    holder.expires
                ),
            });
        }
        Ok(lease)
    }
}

/// Whether a stored change was refused for clashing with an entry of the
/// API or OMAPI (an address or an OMAPI name), not with the file.
fn clashes(reg: &Registry, spec: &ReservationSpec, e: &FieldError) -> bool {
    if e.kind != ErrorKind::Conflict {
        return false;
    }
    match e.field.as_deref() {
        Some("ip") => spec
            .ip
            .trim()
            .parse()
            .ok()
            .and_then(|ip| reg.by_ip(ip))
            .is_some_and(|holder| holder.source != Source::Config),
        Some("omapi_name") => true,
        _ => false,
    }
}

fn spec_mac(spec: &ReservationSpec, path_mac: Option<[u8; 6]>) -> Result<[u8; 6], FieldError> {
    match path_mac {
        Some(m) => Ok(m),
        None => super::registry::parse_mac_field(spec.mac.trim()),
    }
}
