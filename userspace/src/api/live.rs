//! Applies the API's changes while the daemon runs: each one is checked
//! (`registry`), made durable (`store::ReservationStore`), written into the
//! XDP maps in place, and handed to the userspace server, before the
//! client hears 200. Nothing restarts.
//!
//! Changes are applied one at a time (the registry's lock is held
//! throughout), so the four views never disagree for longer than one
//! change takes.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::registry::{Checked, ErrorKind, FieldError, Mode, Registry, Writer};
use super::types::{BulkResult, ReservationSpec, ReservationView};
use crate::config::{self, Config};
use crate::dataplane::Dataplane;
use crate::frame::format_mac;
use crate::leases::Lease;
use crate::store::{CommitFuture, ReservationChange, ReservationStore, StoredReservation};

/// What the API asks of the userspace server, which lives on the slow
/// path's task.
pub enum Control {
    Upsert(config::Reservation, oneshot::Sender<()>),
    Remove([u8; 6], oneshot::Sender<()>),
    Leases(oneshot::Sender<Vec<Lease>>),
    /// (addresses held, addresses the pools can give) per subnet.
    PoolUsage(oneshot::Sender<Vec<(usize, usize)>>),
    /// The removed lease and its removal's durability.
    RemoveLease(Ipv4Addr, oneshot::Sender<Option<(Lease, CommitFuture)>>),
    /// A whole new configuration (SIGHUP), already in the maps.
    Reload(Arc<Config>, oneshot::Sender<()>),
}

/// The API's changes since start, for readers that hold the startup
/// configuration (the boot services find a machine's profile here first).
/// `None` marks a reservation removed.
#[derive(Default)]
pub struct Overlay {
    changed: std::sync::RwLock<std::collections::HashMap<[u8; 6], Option<config::Reservation>>>,
}

impl Overlay {
    /// Forgets every change: the base configuration now includes them.
    fn clear(&self) {
        self.changed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn set(&self, mac: [u8; 6], r: Option<config::Reservation>) {
        self.changed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mac, r);
    }

    /// None: unchanged since start; Some(None): removed.
    pub fn get(&self, mac: [u8; 6]) -> Option<Option<config::Reservation>> {
        self.changed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mac)
            .cloned()
    }

    /// The machine an address is reserved for, given what the startup
    /// configuration says (`at_start`): a changed entry wins.
    pub fn mac_of(&self, ip: Ipv4Addr, at_start: Option<[u8; 6]>) -> Option<[u8; 6]> {
        let changed = self.changed.read().unwrap_or_else(|e| e.into_inner());
        if let Some((mac, _)) = changed
            .iter()
            .find(|(_, r)| r.as_ref().is_some_and(|r| r.ip == ip))
        {
            return Some(*mac);
        }
        at_start.filter(|m| !changed.contains_key(m))
    }
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

/// The daemon's reservations and the places a change must reach.
pub struct Live {
    journal: std::sync::OnceLock<Journal>,
    registry: tokio::sync::Mutex<Registry>,
    stored: Arc<dyn ReservationStore>,
    dataplane: Option<Arc<std::sync::Mutex<Dataplane>>>,
    control: mpsc::Sender<Control>,
    /// Reservations served, for the stats.
    pub count: Arc<AtomicU64>,
    /// Changes since start, for the boot services.
    pub overlay: Arc<Overlay>,
}

fn internal(message: String) -> FieldError {
    FieldError {
        kind: ErrorKind::Internal,
        field: None,
        message,
    }
}

/// Reads the stored reservations at start and merges them into the
/// config's. The config file wins: a stored entry whose MAC or IP the file
/// now reserves, or that no longer validates (its subnet or profile gone),
/// is not served, with a warning, and stays stored.
pub async fn load(
    cfg: Config,
    stored: &dyn ReservationStore,
) -> anyhow::Result<(Config, Registry)> {
    Ok(merge(cfg, stored.load().await?))
}

/// The file's configuration with the stored reservations that still
/// validate beside it, and their registry.
fn merge(cfg: Config, rows: Vec<StoredReservation>) -> (Config, Registry) {
    let mut cfg = cfg;
    let file_reservations = std::mem::take(&mut cfg.reservations);
    let file_only = Arc::new(cfg);
    let mut registry = Registry::new(file_only.clone(), file_reservations);
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
    let mut cfg = (*file_only).clone();
    cfg.reservations = registry.reservations().cloned().collect();
    (cfg, registry)
}

impl Live {
    pub fn new(
        registry: Registry,
        stored: Arc<dyn ReservationStore>,
        dataplane: Option<Arc<std::sync::Mutex<Dataplane>>>,
        control: mpsc::Sender<Control>,
    ) -> Live {
        let count = Arc::new(AtomicU64::new(registry.len() as u64));
        Live {
            journal: std::sync::OnceLock::new(),
            registry: tokio::sync::Mutex::new(registry),
            stored,
            dataplane,
            control,
            count,
            overlay: Arc::default(),
        }
    }

    pub fn registry(&self) -> &tokio::sync::Mutex<Registry> {
        &self.registry
    }

    /// Sets the export every later change is journalled to.
    pub fn set_journal(&self, j: Journal) {
        let _ = self.journal.set(j);
    }

    /// Serves a new configuration file (SIGHUP) with the stored API
    /// reservations merged in, as at start; returns what is now served.
    /// Every reply is rendered before the maps are touched, and a failure
    /// writing them puts the previous configuration back.
    pub async fn reload(&self, file: Config) -> anyhow::Result<Arc<Config>> {
        let mut reg = self.registry.lock().await;
        let rows = self.stored.load().await?;
        let (merged, registry) = merge(file, rows);
        crate::render::tables::subnet_entries(&merged)?;
        for r in &merged.reservations {
            crate::render::tables::reservation_entries(&merged, r)?;
        }
        if let Some(dp) = &self.dataplane {
            let mut dp = dp
                .lock()
                .map_err(|_| anyhow::anyhow!("dataplane lock poisoned"))?;
            if let Err(e) = dp.install(&merged) {
                let mut previous = (**reg.config()).clone();
                previous.reservations = reg.reservations().cloned().collect();
                let restored = dp.install(&previous);
                anyhow::bail!(
                    "installing into the maps: {e} (previous configuration restored: {restored:?})"
                );
            }
        }
        let merged = Arc::new(merged);
        self.tell(|tx| Control::Reload(merged.clone(), tx))
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        self.overlay.clear();
        self.count.store(registry.len() as u64, Ordering::Relaxed);
        *reg = registry;
        Ok(merged)
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
        self.stored
            .apply(changes)
            .await
            .map_err(|e| internal(e.to_string()))
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
                dp.put_reservation(c.entry.reservation.mac, &c.map_entries)?;
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
        for c in checked {
            let r = c.entry.reservation.clone();
            self.tell(|done| Control::Upsert(r.clone(), done)).await?;
            self.overlay.set(r.mac, Some(r.clone()));
            reg.insert(c.entry);
            if let Some(j) = self.journal.get() {
                j(reg, JournalChange::Put(r.mac));
            }
        }
        self.count.store(reg.len() as u64, Ordering::Relaxed);
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
        self.tell(|done| Control::Remove(mac, done)).await?;
        self.overlay.set(mac, None);
        reg.remove(mac);
        if let Some(j) = self.journal.get() {
            j(reg, JournalChange::Removed(name));
        }
        self.count.store(reg.len() as u64, Ordering::Relaxed);
        tracing::info!(mac = %format_mac(&mac), "reservation removed");
        Ok(())
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
        let reg = self.registry.lock().await;
        let cfg = reg.config().clone();
        let mut per_subnet = vec![0usize; cfg.subnets.len()];
        for r in reg.reservations() {
            per_subnet[r.subnet] += 1;
        }
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
                    reservations: per_subnet[i],
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
        durable.await.map_err(|e| internal(e.to_string()))?;
        Ok(lease)
    }
}

fn spec_mac(spec: &ReservationSpec, path_mac: Option<[u8; 6]>) -> Result<[u8; 6], FieldError> {
    match path_mac {
        Some(m) => Ok(m),
        None => super::registry::parse_mac_field(spec.mac.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(mac: u8, ip: u8) -> config::Reservation {
        config::Reservation {
            mac: [2, 0, 0, 0, 0, mac],
            ip: Ipv4Addr::new(10, 0, 0, ip),
            hostname: None,
            subnet: 0,
            origin: "api".into(),
            options: vec![],
            profile: None,
            allow_pxe: true,
            boot_file: None,
            next_server: None,
            label: None,
        }
    }

    #[test]
    fn the_overlay_wins_over_the_startup_configuration() {
        let o = Overlay::default();
        let ip = |i| Ipv4Addr::new(10, 0, 0, i);
        let m = |i| [2, 0, 0, 0, 0, i];
        assert_eq!(o.get(m(1)), None);
        assert_eq!(o.mac_of(ip(5), Some(m(1))), Some(m(1)));
        // Moved away from .5, and another machine given .5.
        o.set(m(1), Some(r(1, 6)));
        assert_eq!(o.mac_of(ip(5), Some(m(1))), None);
        assert_eq!(o.mac_of(ip(6), None), Some(m(1)));
        o.set(m(2), Some(r(2, 5)));
        assert_eq!(o.mac_of(ip(5), Some(m(1))), Some(m(2)));
        o.set(m(2), None);
        assert_eq!(o.get(m(2)), Some(None));
        assert_eq!(o.mac_of(ip(5), None), None);
    }
}
