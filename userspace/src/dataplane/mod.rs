//! The XDP dataplane: loads the embedded program, fills its maps, attaches
//! it to an interface, and reads its counters and reply events.

pub mod delivery;
pub mod ifaces;
mod mapping;
pub mod pins;
pub mod ring;
pub mod sets;
mod slots;
mod table;

pub use slots::GRACE as SLOT_GRACE;

use std::time::Instant;

use crate::render::tables;
use aya::{
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
        ProgramError, TestRun, TestRunOptions, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use stormboot_common::{
    bucket::Limit,
    counters::{Counter, Counts},
    maps::{
        mode as map_mode, names, Block, Iface, Machine, Marker, Subnet, TemplateKey,
        GLOBAL_TEMPLATES_SLOTTED, PROGRAM_DHCP, PROGRAM_PASS, PROGRAM_TALLY, VARIANT_COUNT,
    },
    table::GLOBAL_TABLE_BITS,
};

/// The COUNTERS map's one value, each CPU's, summed per counter.
pub(crate) fn summed(per_cpu: &aya::maps::PerCpuValues<Counts>) -> Counts {
    let mut out = [0u64; Counter::COUNT as usize];
    for cpu in per_cpu.iter() {
        for (sum, n) in out.iter_mut().zip(cpu) {
            *sum += n;
        }
    }
    out
}

/// The XDP program, built by build.rs from bpf/xdp.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/stormboot-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no program or map named {0}")]
    Missing(&'static str),
    #[error("loading program {name} into the kernel: {source}")]
    Verify {
        name: &'static str,
        source: ProgramError,
    },
    #[error("attaching XDP in {mode} mode to {interface}: {source}")]
    Attach {
        mode: &'static str,
        interface: String,
        source: ProgramError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Render(#[from] tables::TablesError),
    #[error("test run: {0}")]
    TestRun(ProgramError),
    #[error("map REPLY_RING: {0}")]
    Ring(std::io::Error),
    #[error("map RESERVATIONS: {0}")]
    Table(std::io::Error),
    #[error(
        "map TEMPLATES is full ({0} replies): more distinct reply templates than it was sized for"
    )]
    TemplatesFull(u32),
    #[error("boot.ipxe_user_class is {0} bytes; the marker map holds {max}", max = stormboot_common::maps::MARKER_MAX)]
    MarkerTooLong(usize),
    #[error("the verification of program {0} did not finish (its thread stopped)")]
    Unverified(&'static str),
    #[error("pinning {path}: {reason}")]
    Pin {
        path: std::path::PathBuf,
        reason: String,
    },
}

fn pin_err(path: &std::path::Path) -> impl FnOnce(String) -> DataplaneError + '_ {
    move |reason| DataplaneError::Pin {
        path: path.to_path_buf(),
        reason,
    }
}

/// How an interface came to run this program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Nothing of ours was attached.
    Fresh,
    /// A previous daemon's pinned link now runs this program instead.
    Replaced,
}

/// An attachment the daemon holds: by the program (gone with the daemon),
/// or pinned (outlives it until unpinned).
enum Held {
    Managed(XdpLinkId),
    Pinned(PinnedLink),
}

use crate::config::XdpMode as AttachMode;
pub use pins::Pins;
pub use ring::ReplyRing;

/// REPLY_RING's entries: a region for every CPU the program may run on.
fn ring_entries() -> Result<u32, DataplaneError> {
    let cpus = aya::util::nr_cpus()
        .map_err(|(what, e)| DataplaneError::Ring(std::io::Error::other(format!("{what}: {e}"))))?;
    u32::try_from(cpus)
        .ok()
        .and_then(|c| c.checked_mul(stormboot_common::events::RING_REGION))
        .ok_or_else(|| DataplaneError::Ring(std::io::Error::other(format!("{cpus} CPUs"))))
}

fn mode_name(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::Driver => "driver",
        AttachMode::Skb => "skb",
    }
}

fn aya_mode(mode: AttachMode) -> XdpMode {
    match mode {
        AttachMode::Driver => XdpMode::Driver,
        AttachMode::Skb => XdpMode::Skb,
    }
}

/// Sizes and settings fixed at load time.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Machines the reservation table is sized for (`table::bits_for`).
    pub reservations_capacity: u32,
    /// Reply templates the template map can hold (sets times variants).
    pub templates_capacity: u32,
    /// Whether the templates go to TEMPLATE_SLOTS, an array the program
    /// reads without a call, rather than TEMPLATES, a hash map
    /// (`stormboot_common::maps::GLOBAL_TEMPLATES_SLOTTED`).
    pub templates_slotted: bool,
    /// aya-log level inside the program (0 off .. 5 trace); lines above it
    /// are not even formatted in the kernel.
    pub log_level: u8,
}

impl LoadOptions {
    /// Room for `reservations` and their template sets, with headroom for
    /// the API's additions. The reservation table is allocated whole, 64
    /// bytes a slot; the template hash map allocates entries as they are
    /// written (NO_PREALLOC). Machines
    /// with options, a boot file or a host name of their own may each need
    /// a set; the rest share a few.
    pub fn sized<'a>(
        reservations: impl Iterator<Item = &'a crate::config::Reservation>,
        log_level: u8,
    ) -> Self {
        Self::for_count(Count::of(reservations), log_level)
    }

    /// `sized` before the reservations file is parsed: its `file_lines`
    /// count as machines, none with a set of its own (a line has no
    /// options, boot file or next server; only a host name too long to
    /// write per machine would need one), beside the `written` ones.
    pub fn estimated(
        written: &[crate::config::Reservation],
        file_lines: usize,
        log_level: u8,
    ) -> Self {
        let c = Count::of(written.iter());
        Self::for_count(
            Count {
                machines: c.machines + file_lines,
                ..c
            },
            log_level,
        )
    }

    pub fn for_count(c: Count, log_level: u8) -> Self {
        let cap = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        // An array is allocated whole: it is chosen while the sets it is
        // sized for fit SLOTTED_BUDGET (the hash map allocates entries as
        // they are written, and only the variants a set has).
        let slotted = (c.own_sets + c.own_sets / 4 + SPARE_SLOTTED_SETS) * VARIANTS;
        let (templates_capacity, templates_slotted) =
            if slotted * std::mem::size_of::<Block>() <= SLOTTED_BUDGET {
                (slotted, true)
            } else {
                ((c.own_sets + c.own_sets / 4 + SPARE_SETS) * VARIANTS, false)
            };
        LoadOptions {
            reservations_capacity: cap(c.machines + c.machines / 4 + SPARE_MACHINES),
            templates_capacity: cap(templates_capacity),
            templates_slotted,
            log_level,
        }
    }

    /// Whether maps sized by `self` hold the machines of `c` with at least
    /// the fixed spare room besides (a quarter more is what `sized` gives,
    /// but a program loaded for a file's lines is kept for a few stored
    /// reservations more: loading it again costs the start a second).
    pub fn holds(&self, c: Count, log_level: u8) -> bool {
        self.reservations_capacity as usize >= c.machines + SPARE_MACHINES
            && self.templates_capacity as usize >= (c.own_sets + self.spare_sets()) * VARIANTS
            && self.log_level == log_level
    }

    /// The sets the API can add, at the least, beyond those sized for.
    fn spare_sets(&self) -> usize {
        if self.templates_slotted {
            SPARE_SLOTTED_SETS
        } else {
            SPARE_SETS
        }
    }
}

/// Machines the API can add, at the least, before RESERVATIONS is full.
const SPARE_MACHINES: usize = 8192;
/// Template sets the API can add, at the least, before TEMPLATES is full.
const SPARE_SETS: usize = 4096;
/// The same for TEMPLATE_SLOTS: 512 sets' slots take 2.3 MB.
const SPARE_SLOTTED_SETS: usize = 512;
/// The most TEMPLATE_SLOTS may take: 3,744 sets of 4,480 bytes.
const SLOTTED_BUDGET: usize = 16 << 20;
const VARIANTS: usize = VARIANT_COUNT as usize;

/// What the maps are sized for: machines, and how many of them may need
/// a template set of their own (the rest share a few).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub machines: usize,
    pub own_sets: usize,
}

impl Count {
    pub fn of<'a>(reservations: impl Iterator<Item = &'a crate::config::Reservation>) -> Count {
        let mut c = Count {
            machines: 0,
            own_sets: 0,
        };
        for r in reservations {
            c.machines += 1;
            c.own_sets += usize::from(has_own_set(r));
        }
        c
    }
}

/// Whether `r` may need a template set of its own.
fn has_own_set(r: &crate::config::Reservation) -> bool {
    let named = r
        .hostname
        .as_ref()
        .is_some_and(|h| h.len() > stormboot_common::maps::NAME_MAX);
    named || !r.options.is_empty() || r.boot_file.is_some() || r.next_server.is_some()
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// The object holding the DHCP program: verified, or still in the
/// verifier on a thread of its own (`Dataplane::start`).
enum Program {
    Verified(Ebpf),
    Verifying(std::thread::JoinHandle<Result<Ebpf, DataplaneError>>),
    /// The verification failed; the error went to whoever waited for it.
    Failed,
}

/// A loaded program with its maps. The maps can be written while the
/// kernel still verifies the program (`start`); attaching waits for it.
pub struct Dataplane {
    program: Program,
    /// The reply ring, until `take_events`.
    ring: Option<aya::maps::Map>,
    /// RESERVATIONS, written through a shared mapping.
    table: table::Table,
    templates: HashMap<MapData, TemplateKey, Block>,
    templates_capacity: u32,
    template_slots: Array<MapData, Block>,
    /// The set numbers of TEMPLATE_SLOTS that are free, when the
    /// templates are there.
    slot_sets: Option<slots::Slots>,
    /// The template sets in the maps, and the next id of a set in
    /// TEMPLATES (never reused while this program runs, so an old set and
    /// its successor never share keys; TEMPLATE_SLOTS waits instead).
    sets: sets::Sets,
    next_set: u32,
    subnets: Array<MapData, Subnet>,
    ifaces: HashMap<MapData, u32, Iface>,
    /// Bumped after every write to `ifaces` (the program's copies of its
    /// entries are valid while it is unchanged).
    ifaces_version: Array<MapData, u32>,
    counters: PerCpuArray<MapData, Counts>,
    boot_marker: Array<MapData, Marker>,
    slowpath_buckets: HashMap<MapData, [u8; 6], u64>,
    slowpath_limit: Array<MapData, Limit>,
    mode: Array<MapData, u32>,
    /// Each attachment with the interface it is on.
    links: Vec<(String, Held)>,
    /// Removed with the links on a clean detach; kept on a handover.
    pins: Option<Pins>,
    /// Nothing was installed yet: RESERVATIONS is as the kernel made it, empty.
    fresh: bool,
}

impl Dataplane {
    /// Loads the object and the DHCP program into the kernel (this is where
    /// the verifier runs), without attaching it anywhere.
    pub fn load(opts: LoadOptions) -> Result<Self, DataplaneError> {
        let mut dp = Self::start(opts)?;
        dp.verified()?;
        Ok(dp)
    }

    /// Creates the maps and hands the DHCP program to the verifier on a
    /// thread of its own: the maps can be filled while it runs (at a
    /// million reservations both take about a second). Whatever needs the
    /// program waits for it (`verified`).
    pub fn start(opts: LoadOptions) -> Result<Self, DataplaneError> {
        // The map the templates do not go to keeps one entry (an array
        // cannot be empty).
        let capacity = opts.templates_capacity.max(64);
        let (slots, hashed) = if opts.templates_slotted {
            (capacity, 1)
        } else {
            (1, capacity)
        };
        let bits = table::bits_for(opts.reservations_capacity);
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &opts.log_level, false)
            .map_max_entries(names::RESERVATIONS, 1 << bits)
            .override_global(GLOBAL_TABLE_BITS, &bits, true)
            .override_global(
                GLOBAL_TEMPLATES_SLOTTED,
                &u32::from(opts.templates_slotted),
                true,
            )
            .map_max_entries(names::TEMPLATES, hashed)
            .map_max_entries(names::TEMPLATE_SLOTS, slots)
            .map_max_entries(names::REPLY_RING, ring_entries()?)
            .load(EBPF_OBJECT)?;
        // Taken out before the program goes to its thread. The program's
        // instructions already hold the maps' descriptors (relocated by
        // `load` above), which stay open here.
        let mut take =
            |name: &'static str| ebpf.take_map(name).ok_or(DataplaneError::Missing(name));
        let ring = take(names::REPLY_RING)?;
        let aya::maps::Map::Array(reservations) = take(names::RESERVATIONS)? else {
            return Err(DataplaneError::Missing(names::RESERVATIONS));
        };
        let table = table::Table::new(reservations, bits).map_err(DataplaneError::Table)?;
        let templates =
            HashMap::try_from(take(names::TEMPLATES)?).map_err(map_err(names::TEMPLATES))?;
        let template_slots = Array::try_from(take(names::TEMPLATE_SLOTS)?)
            .map_err(map_err(names::TEMPLATE_SLOTS))?;
        let subnets = Array::try_from(take(names::SUBNETS)?).map_err(map_err(names::SUBNETS))?;
        let ifaces = HashMap::try_from(take(names::IFACES)?).map_err(map_err(names::IFACES))?;
        let ifaces_version = Array::try_from(take(names::IFACES_VERSION)?)
            .map_err(map_err(names::IFACES_VERSION))?;
        let counters =
            PerCpuArray::try_from(take(names::COUNTERS)?).map_err(map_err(names::COUNTERS))?;
        let boot_marker =
            Array::try_from(take(names::BOOT_MARKER)?).map_err(map_err(names::BOOT_MARKER))?;
        let slowpath_buckets = HashMap::try_from(take(names::SLOWPATH_BUCKETS)?)
            .map_err(map_err(names::SLOWPATH_BUCKETS))?;
        let slowpath_limit = Array::try_from(take(names::SLOWPATH_LIMIT)?)
            .map_err(map_err(names::SLOWPATH_LIMIT))?;
        let mode = Array::try_from(take(names::MODE)?).map_err(map_err(names::MODE))?;
        let verifying = std::thread::spawn(move || {
            let t = Instant::now();
            program(&mut ebpf, PROGRAM_DHCP)?
                .load()
                .map_err(|source| DataplaneError::Verify {
                    name: PROGRAM_DHCP,
                    source,
                })?;
            tracing::info!(
                ms = t.elapsed().as_millis() as u64,
                capacity = opts.reservations_capacity,
                templates = opts.templates_capacity,
                "XDP program loaded and verified"
            );
            Ok(ebpf)
        });
        Ok(Self {
            program: Program::Verifying(verifying),
            ring: Some(ring),
            table,
            templates,
            templates_capacity: capacity,
            template_slots,
            slot_sets: opts
                .templates_slotted
                .then(|| slots::Slots::new(capacity / VARIANT_COUNT)),
            sets: sets::Sets::default(),
            next_set: 1,
            subnets,
            ifaces,
            ifaces_version,
            counters,
            boot_marker,
            slowpath_buckets,
            slowpath_limit,
            mode,
            links: Vec::new(),
            pins: None,
            fresh: true,
        })
    }

    /// `load`, and `pin` under `pins`.
    pub fn load_pinned(opts: LoadOptions, pins: Option<&Pins>) -> Result<Self, DataplaneError> {
        let mut dp = Self::load(opts)?;
        if let Some(p) = pins {
            dp.pin(p)?;
        }
        Ok(dp)
    }

    /// Pins the reply ring and the counters under `pins`, where a successor
    /// finds them if this daemon dies, and keeps `pins` for the links.
    /// Apart from loading, so that a program loaded early takes no pins
    /// from a running predecessor until the daemon is sure to start.
    pub fn pin(&mut self, pins: &Pins) -> Result<(), DataplaneError> {
        let events = self
            .ring
            .as_ref()
            .ok_or(DataplaneError::Missing(names::REPLY_RING))?;
        let path = pins.events();
        events
            .pin(&path)
            .map_err(|e| pin_err(&path)(e.to_string()))?;
        let path = pins.counters();
        self.counters
            .map()
            .pin(&path)
            .map_err(|e| pin_err(&path)(e.to_string()))?;
        self.pins = Some(pins.clone());
        Ok(())
    }

    /// `install_book` for a configuration built in code, its reservations
    /// as the book.
    pub fn install(&mut self, cfg: &crate::config::Config) -> Result<(), DataplaneError> {
        self.install_book(&crate::reservation::book::Book::of_config(cfg))
    }

    /// Writes the subnets, the reservations (a reply per boot variant) and
    /// the iPXE marker of `book` and its configuration into the maps, and
    /// removes reservations it no longer has.
    pub fn install_book(
        &mut self,
        book: &crate::reservation::book::Book,
    ) -> Result<(), DataplaneError> {
        let cfg: &crate::config::Config = book.config();
        for (i, s) in tables::subnet_entries(cfg)?.iter().enumerate() {
            self.subnets
                .set(i as u32, s, 0)
                .map_err(map_err(names::SUBNETS))?;
        }
        // Only a map that held entries before can have stale ones; the set
        // of keys to keep (and the walk over the map) is for that case.
        let mut keep = (!self.fresh).then(|| std::collections::HashSet::with_capacity(book.len()));
        // A new generation of template sets: the old ones go once no
        // machine names them.
        let old_sets = std::mem::take(&mut self.sets);
        // Machines next to each other mostly share a set: the last one's
        // key is compared before any is hashed, and its holders counted
        // here until the set changes.
        let mut last: Option<(tables::SetKey, u32, usize)> = None;
        let mut holders = 0u64;
        let started = Instant::now();
        for r in book.reservations() {
            let key = tables::set_key(r);
            let (id, max_end) = match &last {
                Some((k, id, end)) if *k == key => (*id, *end),
                _ => {
                    if let Some((_, id, _)) = &last {
                        self.sets.hold(*id, holders);
                    }
                    holders = 0;
                    let (id, end) = match self.sets.get(&key) {
                        Some(h) => (h.id, h.max_end),
                        None => {
                            let rendered = tables::templates(cfg, r)?;
                            match self.sets.get(&rendered.key) {
                                Some(h) => (h.id, h.max_end),
                                None => self.add_set(&rendered)?,
                            }
                        }
                    };
                    last = Some((key, id, end));
                    (id, end)
                }
            };
            let m = tables::machine(r, id);
            tables::check_fits(r, &m, max_end)?;
            holders += 1;
            if let Some(keep) = keep.as_mut() {
                keep.insert(r.mac);
            }
            self.table.put(r.mac, &m);
        }
        if let Some((_, id, _)) = &last {
            self.sets.hold(*id, holders);
        }
        let written = started.elapsed();
        // The validator refuses longer markers; a config built in code
        // that skips it gets an error, never a cut marker.
        let marker = Marker::new(cfg.boot.ipxe_user_class.as_bytes()).ok_or(
            DataplaneError::MarkerTooLong(cfg.boot.ipxe_user_class.len()),
        )?;
        self.boot_marker
            .set(0, marker, 0)
            .map_err(map_err(names::BOOT_MARKER))?;
        let mode = match cfg.server.mode {
            crate::config::Mode::Proxy => map_mode::PROXY,
            _ => map_mode::AUTHORITATIVE,
        };
        self.mode.set(0, mode, 0).map_err(map_err(names::MODE))?;
        self.set_slowpath_limit(Limit::new(
            cfg.server.slowpath_rate,
            cfg.server.slowpath_burst,
        ))?;
        let t = Instant::now();
        if let Some(keep) = keep {
            for k in self.table.macs() {
                if !keep.contains(&k) {
                    self.table.remove(&k);
                }
            }
        }
        // No machine names an old set any more.
        self.retire(old_sets.keys())?;
        self.fresh = false;
        if self.table.unplaced() > 0 {
            tracing::warn!(
                unplaced = self.table.unplaced(),
                slots = self.table.len(),
                "machines with no free slot near their home in the reservation table: \
                 the daemon answers them"
            );
        }
        tracing::info!(
            entries = self.table.machines(),
            template_sets = self.sets.len(),
            ms = written.as_millis() as u64,
            stale_ms = t.elapsed().as_millis() as u64,
            "reservation table written"
        );
        Ok(())
    }

    /// Writes a set rendered for the first time into TEMPLATE_SLOTS or
    /// TEMPLATES, under a free or fresh id: its id and longest template.
    fn add_set(&mut self, t: &tables::Templates) -> Result<(u32, usize), DataplaneError> {
        if let Some(slots) = self.slot_sets.as_mut() {
            let id = slots
                .take_or_wait()
                .ok_or(DataplaneError::TemplatesFull(self.templates_capacity))?;
            // Every variant's slot, the ones the set has not emptied: the
            // slot may have held another set's.
            let empty = Block::zeroed();
            for v in stormboot_common::maps::variant::ALL {
                let block = t.blocks.iter().find(|(bv, _)| *bv == v).map(|(_, b)| b);
                self.template_slots
                    .set(TemplateKey::new(id, v).slot(), block.unwrap_or(&empty), 0)
                    .map_err(map_err(names::TEMPLATE_SLOTS))?;
            }
            let h = self.sets.add(id, t);
            return Ok((h.id, h.max_end));
        }
        let id = self.next_set;
        self.next_set = self.next_set.wrapping_add(1).max(1);
        for (v, block) in &t.blocks {
            match self.templates.insert(TemplateKey::new(id, *v), block, 0) {
                Ok(()) => {}
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
                {
                    return Err(DataplaneError::TemplatesFull(self.templates_capacity))
                }
                Err(source) => {
                    return Err(DataplaneError::Map {
                        map: names::TEMPLATES,
                        source,
                    })
                }
            }
        }
        let h = self.sets.add(id, t);
        Ok((h.id, h.max_end))
    }

    /// Lets go of the templates of sets no machine names: a set in
    /// TEMPLATE_SLOTS frees its slots after a grace period (`slots`), one
    /// in TEMPLATES is deleted.
    fn retire(&mut self, keys: Vec<TemplateKey>) -> Result<(), DataplaneError> {
        let Some(slots) = self.slot_sets.as_mut() else {
            for k in keys {
                self.remove_template(k)?;
            }
            return Ok(());
        };
        let now = Instant::now();
        let mut released = Vec::new();
        for k in keys {
            if !released.contains(&k.set) {
                released.push(k.set);
                slots.release(k.set, now);
            }
        }
        Ok(())
    }

    fn remove_template(&mut self, k: TemplateKey) -> Result<(), DataplaneError> {
        match self.templates.remove(&k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(source) => Err(DataplaneError::Map {
                map: names::TEMPLATES,
                source,
            }),
        }
    }

    /// The template sets in the map.
    pub fn template_sets(&self) -> usize {
        self.sets.len()
    }

    /// Whether the templates are in TEMPLATE_SLOTS (else in TEMPLATES).
    pub fn templates_slotted(&self) -> bool {
        self.slot_sets.is_some()
    }

    /// How fast one MAC's DHCP requests may go up to the slow path.
    pub fn set_slowpath_limit(&mut self, limit: Limit) -> Result<(), DataplaneError> {
        self.slowpath_limit
            .set(0, limit, 0)
            .map_err(map_err(names::SLOWPATH_LIMIT))
    }

    /// A MAC's slow-path bucket: the CLOCK_MONOTONIC time (ns) at which it
    /// is full again (`bucket::admit`); None when the program holds none.
    pub fn slowpath_bucket(&self, mac: [u8; 6]) -> Result<Option<u64>, DataplaneError> {
        match self.slowpath_buckets.get(&mac, 0) {
            Ok(t) => Ok(Some(t)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::SLOWPATH_BUCKETS)(e)),
        }
    }

    /// Sets a MAC's slow-path bucket (a time as `slowpath_bucket` returns;
    /// 0 fills it).
    pub fn set_slowpath_bucket(
        &mut self,
        mac: [u8; 6],
        full_at: u64,
    ) -> Result<(), DataplaneError> {
        self.slowpath_buckets
            .insert(mac, full_at, 0)
            .map_err(map_err(names::SLOWPATH_BUCKETS))
    }

    /// Writes one machine in place, its template set first when the map
    /// does not hold it yet: the program sees the old reply or the new
    /// one, never none. The set it named before goes with its last machine.
    pub fn put_reservation(
        &mut self,
        mac: [u8; 6],
        rendered: &tables::Rendered,
    ) -> Result<(), DataplaneError> {
        let id = match self.sets.get(&rendered.templates.key) {
            Some(h) => h.id,
            None => self.add_set(&rendered.templates)?.0,
        };
        let before = self.machine(mac)?;
        let m = Machine {
            set: id,
            ..rendered.machine
        };
        self.table.put(mac, &m);
        self.sets.hold(id, 1);
        if let Some(old) = before {
            let keys = self.sets.release(old.set);
            self.retire(keys)?;
        }
        Ok(())
    }

    /// Removes one machine: its requests are passed up.
    pub fn remove_reservation(&mut self, mac: [u8; 6]) -> Result<(), DataplaneError> {
        let Some(old) = self.table.remove(&mac) else {
            return Ok(());
        };
        let keys = self.sets.release(old.set);
        self.retire(keys)?;
        Ok(())
    }

    /// The machine the table holds for `mac`.
    pub fn machine(&self, mac: [u8; 6]) -> Result<Option<Machine>, DataplaneError> {
        Ok(self.table.get(&mac))
    }

    /// Machines the table holds where the program does not look (no free
    /// slot near their home): the daemon answers them.
    pub fn unplaced(&self) -> usize {
        self.table.unplaced()
    }

    /// The reservation table's size: `1 << table_bits()` slots.
    pub fn table_bits(&self) -> u32 {
        self.table.bits()
    }

    /// Tells the program about an interface it receives on. The version
    /// is bumped after the entry is written, so that no CPU keeps using a
    /// copy of the old entry (`CachedIface`).
    pub fn set_iface(&mut self, ifindex: u32, iface: Iface) -> Result<(), DataplaneError> {
        self.ifaces
            .insert(ifindex, iface, 0)
            .map_err(map_err(names::IFACES))?;
        let version = self
            .ifaces_version
            .get(&0, 0)
            .map_err(map_err(names::IFACES_VERSION))?;
        // Never zero, which means "no copy".
        let next = version.wrapping_add(1).max(1);
        self.ifaces_version
            .set(0, next, 0)
            .map_err(map_err(names::IFACES_VERSION))
    }

    /// Attaches to one more interface; the program serves all it is
    /// attached to. With `pins`, a link a previous daemon pinned for this
    /// interface is taken over (its program swapped for this one in one
    /// step, so known machines see no gap) and the link is pinned again.
    /// A pinned link in the other mode is replaced by a fresh one.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: AttachMode,
        pins: Option<&Pins>,
    ) -> Result<Attached, DataplaneError> {
        let prog: &mut Xdp = {
            self.verified()?;
            dhcp(&mut self.program)?
        };
        let attach_err = |source| DataplaneError::Attach {
            mode: mode_name(mode),
            interface: interface.to_string(),
            source,
        };
        let mut how = Attached::Fresh;
        let mut id = None;
        let mut other_mode = None;
        if let Some(path) = pins.map(|p| p.link(interface)).filter(|p| p.exists()) {
            match take_pinned(&path) {
                Ok(link) if attached_mode(interface).is_some_and(|m| m != mode) => {
                    other_mode = Some(link)
                }
                Ok(link) => match prog.attach_to_link(link) {
                    Ok(i) => (id, how) = (Some(i), Attached::Replaced),
                    // The interface went away under it (a deleted namespace).
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "pinned link is stale: attaching afresh")
                    }
                },
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "pinned link unusable: attaching afresh")
                }
            }
        }
        // The kernel refuses a driver and an skb program at once: the
        // link of the other mode goes first (the frames of that instant
        // reach the userspace server).
        drop(other_mode);
        let id = match id {
            Some(i) => i,
            None => prog.attach(interface, aya_mode(mode)).map_err(attach_err)?,
        };
        let held = hold(prog, interface, mode, id, pins)?;
        self.links.push((interface.to_string(), held));
        Ok(how)
    }

    /// Moves `interface` to `mode`: the old attachment is removed, since
    /// the kernel refuses a driver and an skb program at once, and the new
    /// one made (and pinned in its place when pins are in use). Between the
    /// two, frames go to the userspace server.
    pub fn reattach(&mut self, interface: &str, mode: AttachMode) -> Result<(), DataplaneError> {
        let pins = self.pins.clone();
        let prog: &mut Xdp = {
            self.verified()?;
            dhcp(&mut self.program)?
        };
        if let Some(pos) = self.links.iter().position(|(i, _)| i == interface) {
            let (_, old) = self.links.remove(pos);
            match old {
                Held::Managed(old) => {
                    prog.detach(old).map_err(|source| DataplaneError::Verify {
                        name: PROGRAM_DHCP,
                        source,
                    })?
                }
                Held::Pinned(link) => drop(link.unpin().map_err(|e| DataplaneError::Pin {
                    path: std::path::PathBuf::from(interface),
                    reason: e.to_string(),
                })?),
            }
        }
        let id =
            prog.attach(interface, aya_mode(mode))
                .map_err(|source| DataplaneError::Attach {
                    mode: mode_name(mode),
                    interface: interface.to_string(),
                    source,
                })?;
        let held = hold(prog, interface, mode, id, pins.as_ref())?;
        self.links.push((interface.to_string(), held));
        Ok(())
    }

    /// Detaches from every interface, pinned links included; known
    /// machines are then answered by nobody until the next attach.
    pub fn detach(&mut self) -> Result<(), DataplaneError> {
        if !self.links.is_empty() {
            self.verified()?;
        }
        for (_, held) in self.links.drain(..) {
            let prog = dhcp(&mut self.program)?;
            match held {
                Held::Managed(id) => prog.detach(id).map_err(|source| DataplaneError::Verify {
                    name: PROGRAM_DHCP,
                    source,
                })?,
                // The pin is the last reference once our descriptor closes.
                Held::Pinned(link) => drop(link.unpin().map_err(|e| DataplaneError::Pin {
                    path: std::path::PathBuf::from("link"),
                    reason: e.to_string(),
                })?),
            }
        }
        if let Some(p) = self.pins.take() {
            p.remove_all()
                .map_err(|e| pin_err(p.dir())(e.to_string()))?;
        }
        Ok(())
    }

    /// Lets go of pinned links without detaching them, for a successor to
    /// take over; links that are not pinned are detached.
    pub fn release(&mut self) -> Result<(), DataplaneError> {
        let mut managed = Vec::new();
        for (i, held) in self.links.drain(..) {
            match held {
                Held::Pinned(link) => drop(link),
                m @ Held::Managed(_) => managed.push((i, m)),
            }
        }
        self.links = managed;
        self.pins = None;
        self.detach()
    }

    /// Counter values summed over CPUs, indexed by `Counter`.
    pub fn counters(&self) -> Result<Counts, DataplaneError> {
        let per_cpu = self.counters.get(&0, 0).map_err(map_err(names::COUNTERS))?;
        Ok(summed(&per_cpu))
    }

    /// The reply ring, mapped; can be taken once.
    pub fn take_events(&mut self) -> Result<ReplyRing, DataplaneError> {
        let map = self
            .ring
            .take()
            .ok_or(DataplaneError::Missing(names::REPLY_RING))?;
        ReplyRing::new(map).map_err(DataplaneError::Ring)
    }

    /// Forwards the program's aya-log lines to the `log` facade; None when
    /// the program logs nothing at its level.
    pub fn logger(
        &mut self,
    ) -> Result<Option<aya_log::EbpfLogger<&'static dyn log::Log>>, DataplaneError> {
        Ok(aya_log::EbpfLogger::init(self.verified()?).ok())
    }

    /// Waits for the verifier to finish with the program, if it has not.
    pub fn verified(&mut self) -> Result<&mut Ebpf, DataplaneError> {
        if let Program::Verifying(_) = self.program {
            let Program::Verifying(thread) = std::mem::replace(&mut self.program, Program::Failed)
            else {
                unreachable!("matched above")
            };
            let ebpf = thread
                .join()
                .map_err(|_| DataplaneError::Unverified(PROGRAM_DHCP))??;
            self.program = Program::Verified(ebpf);
        }
        match &mut self.program {
            Program::Verified(ebpf) => Ok(ebpf),
            _ => Err(DataplaneError::Unverified(PROGRAM_DHCP)),
        }
    }

    /// The verified program's object, for what only reads it.
    fn ready(&self) -> Result<&Ebpf, DataplaneError> {
        match &self.program {
            Program::Verified(ebpf) => Ok(ebpf),
            _ => Err(DataplaneError::Unverified(PROGRAM_DHCP)),
        }
    }

    /// Runs the program once on `frame` through BPF_PROG_TEST_RUN and
    /// returns the action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DataplaneError> {
        let mut out = vec![0u8; 4096];
        let r = self
            .program()?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .map_err(DataplaneError::TestRun)?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// The loaded program, for callers that time it (benchmarks).
    pub fn program(&self) -> Result<&Xdp, DataplaneError> {
        self.ready()?
            .program(PROGRAM_DHCP)
            .ok_or(DataplaneError::Missing(PROGRAM_DHCP))?
            .try_into()
            .map_err(|_| DataplaneError::Missing(PROGRAM_DHCP))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

/// Keeps a fresh attachment: pinned under `pins`, or by the program.
fn hold(
    prog: &mut Xdp,
    interface: &str,
    mode: AttachMode,
    id: XdpLinkId,
    pins: Option<&Pins>,
) -> Result<Held, DataplaneError> {
    let Some(p) = pins else {
        return Ok(Held::Managed(id));
    };
    let path = p.link(interface);
    let link = prog
        .take_link(id)
        .map_err(|source| DataplaneError::Attach {
            mode: mode_name(mode),
            interface: interface.to_string(),
            source,
        })?;
    let fd = FdLink::try_from(link).map_err(|e| pin_err(&path)(e.to_string()))?;
    Ok(Held::Pinned(
        fd.pin(&path).map_err(|e| pin_err(&path)(e.to_string()))?,
    ))
}

/// The mode of the XDP program attached to `interface` (driver wins when
/// both are), read from rtnetlink; None when none is or it cannot be read.
fn attached_mode(interface: &str) -> Option<AttachMode> {
    let index = nix::net::if_::if_nametoindex(interface).ok()?;
    let l = delivery::get(index, None).ok()?;
    match (l.drv_prog, l.skb_prog) {
        (0, 0) => None,
        (0, _) => Some(AttachMode::Skb),
        _ => Some(AttachMode::Driver),
    }
}

/// Opens a pinned link and removes its pin; it must be an XDP link.
fn take_pinned(path: &std::path::Path) -> Result<XdpLink, String> {
    let pinned = PinnedLink::from_pin(path).map_err(|e| e.to_string())?;
    let fd = pinned.unpin().map_err(|e| e.to_string())?;
    XdpLink::try_from(fd).map_err(|e| e.to_string())
}

/// The DHCP program, once verified (`Dataplane::verified`).
fn dhcp(program: &mut Program) -> Result<&mut Xdp, DataplaneError> {
    match program {
        Program::Verified(ebpf) => self::program(ebpf, PROGRAM_DHCP),
        _ => Err(DataplaneError::Unverified(PROGRAM_DHCP)),
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing(name))?
        .try_into()
        .map_err(|_| DataplaneError::Missing(name))
}

/// Attaches the pass-only program to `interface` (the far end of a veth,
/// so XDP_TX frames reach it). Detached when the returned value drops.
pub fn attach_pass(interface: &str, mode: AttachMode) -> Result<Ebpf, DataplaneError> {
    attach_lab_program(interface, mode, PROGRAM_PASS)
}

/// Attaches the lab's counting program (`stormboot_common::tally`) to
/// `interface` and pins its two maps in `pin_dir` (a bpffs directory,
/// created) as `run` and `counts`, where `stormboot-lab rate --tally`
/// finds them. Detached when the returned value drops; the pins stay
/// until the caller removes them.
pub fn attach_tally(
    interface: &str,
    mode: AttachMode,
    pin_dir: &std::path::Path,
) -> Result<Ebpf, DataplaneError> {
    let ebpf = attach_lab_program(interface, mode, PROGRAM_TALLY)?;
    std::fs::create_dir_all(pin_dir).map_err(|e| DataplaneError::Pin {
        path: pin_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (name, file) in [(names::TALLY_RUN, "run"), (names::TALLY_COUNTS, "counts")] {
        let path = pin_dir.join(file);
        // A pin left by an earlier run that was killed.
        let _ = std::fs::remove_file(&path);
        ebpf.map(name)
            .ok_or(DataplaneError::Missing(name))?
            .pin(&path)
            .map_err(|e| DataplaneError::Pin {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(ebpf)
}

fn attach_lab_program(
    interface: &str,
    mode: AttachMode,
    name: &'static str,
) -> Result<Ebpf, DataplaneError> {
    let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT)?;
    let prog: &mut Xdp = program(&mut ebpf, name)?;
    prog.load()
        .map_err(|source| DataplaneError::Verify { name, source })?;
    prog.attach(interface, aya_mode(mode))
        .map_err(|source| DataplaneError::Attach {
            mode: mode_name(mode),
            interface: interface.to_string(),
            source,
        })?;
    Ok(ebpf)
}

#[cfg(test)]
mod tests {
    use super::{Count, LoadOptions};
    use crate::config::Config;

    #[test]
    fn an_estimate_from_the_files_lines_holds_the_parsed_book_and_a_few_stored_more() {
        let csv: String = (0..100)
            .map(|i| format!("02:00:00:00:01:{i:02x},10.50.0.{},n{i}\n", i + 20))
            .collect();
        let text = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\
                    reservations_file = \"hosts.csv\"\n\n\
                    [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n\
                    [[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.9\"\n\
                    [[reservation.option]]\ncode = 150\ntype = \"ipv4\"\nvalue = \"10.50.0.4\"\n";
        let cfg = Config::from_str_with(text, std::path::Path::new("stormboot.toml"), &mut |_| {
            Ok(csv.clone())
        })
        .unwrap();
        // What the outline gives: the file's own reservation (the first),
        // and the reservations file's lines (one more than its newlines).
        let estimate = LoadOptions::estimated(&cfg.reservations[..1], 101, 0);
        let parsed = Count::of(cfg.reservations.iter());
        assert_eq!(
            parsed,
            Count {
                machines: 101,
                own_sets: 1
            }
        );
        assert!(estimate.holds(parsed, 0), "{estimate:?}");
        assert!(!estimate.holds(parsed, 1), "another log level");

        // Thousands more stored ones joining need more room.
        let more: Vec<_> = (0..12_000u32)
            .map(|i| {
                let mut r = cfg.reservations[1].clone();
                r.mac = [2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                r
            })
            .collect();
        let all = Count::of(cfg.reservations.iter().chain(&more));
        assert!(!estimate.holds(all, 0));
        // A hundred beside a million lines fit in the room left.
        let big = LoadOptions::estimated(&[], 1_000_001, 0);
        let book = Count {
            machines: 1_000_100,
            own_sets: 0,
        };
        assert!(big.holds(book, 0));
    }
}
