//! The XDP dataplane: loads the embedded program, fills its maps, attaches
//! it to an interface, and reads its counters and reply events.

pub mod ifaces;
pub mod tables;

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{xdp::XdpLinkId, ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use stormboot_common::{
    counters::Counter,
    maps::{names, Iface, Marker, Reservation, ReservationKey, Subnet, PROGRAM_DHCP, PROGRAM_PASS},
};

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
}

use crate::config::XdpMode as AttachMode;

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
    /// Entries the reservation map can hold.
    pub reservations_capacity: u32,
    /// aya-log level inside the program (0 off .. 5 trace); lines above it
    /// are not even formatted in the kernel.
    pub log_level: u8,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// A loaded (verified) program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    reservations: HashMap<MapData, ReservationKey, Reservation>,
    subnets: Array<MapData, Subnet>,
    ifaces: HashMap<MapData, u32, Iface>,
    counters: PerCpuArray<MapData, u64>,
    boot_marker: Array<MapData, Marker>,
    links: Vec<XdpLinkId>,
}

impl Dataplane {
    /// Loads the object and the DHCP program into the kernel (this is where
    /// the verifier runs), without attaching it anywhere.
    pub fn load(opts: LoadOptions) -> Result<Self, DataplaneError> {
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &opts.log_level, false)
            .map_max_entries(names::RESERVATIONS, opts.reservations_capacity.max(16))
            .load(EBPF_OBJECT)?;
        let prog: &mut Xdp = program(&mut ebpf, PROGRAM_DHCP)?;
        prog.load().map_err(|source| DataplaneError::Verify {
            name: PROGRAM_DHCP,
            source,
        })?;
        let mut take =
            |name: &'static str| ebpf.take_map(name).ok_or(DataplaneError::Missing(name));
        let reservations =
            HashMap::try_from(take(names::RESERVATIONS)?).map_err(map_err(names::RESERVATIONS))?;
        let subnets = Array::try_from(take(names::SUBNETS)?).map_err(map_err(names::SUBNETS))?;
        let ifaces = HashMap::try_from(take(names::IFACES)?).map_err(map_err(names::IFACES))?;
        let counters =
            PerCpuArray::try_from(take(names::COUNTERS)?).map_err(map_err(names::COUNTERS))?;
        let boot_marker =
            Array::try_from(take(names::BOOT_MARKER)?).map_err(map_err(names::BOOT_MARKER))?;
        Ok(Self {
            ebpf,
            reservations,
            subnets,
            ifaces,
            counters,
            boot_marker,
            links: Vec::new(),
        })
    }

    /// Writes the subnets, the reservations (a reply per boot variant) and
    /// the iPXE marker of `cfg` into the maps, and removes reservations it
    /// no longer has.
    pub fn install(&mut self, cfg: &crate::config::Config) -> Result<(), DataplaneError> {
        for (i, s) in tables::subnet_entries(cfg)?.iter().enumerate() {
            self.subnets
                .set(i as u32, s, 0)
                .map_err(map_err(names::SUBNETS))?;
        }
        let mut keep = std::collections::HashSet::with_capacity(cfg.reservations.len());
        for r in &cfg.reservations {
            for (k, v) in tables::reservation_entries(cfg, r)? {
                self.reservations
                    .insert(k, v, 0)
                    .map_err(map_err(names::RESERVATIONS))?;
                keep.insert(k);
            }
        }
        let marker = Marker::new(cfg.boot.ipxe_user_class.as_bytes());
        self.boot_marker
            .set(0, marker, 0)
            .map_err(map_err(names::BOOT_MARKER))?;
        let stale: Vec<ReservationKey> = self
            .reservations
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !keep.contains(k))
            .collect();
        for k in stale {
            self.reservations
                .remove(&k)
                .map_err(map_err(names::RESERVATIONS))?;
        }
        Ok(())
    }

    /// Writes one machine's entries (one per boot variant it has) in place,
    /// then removes the variants it no longer has: the program sees the
    /// old reply or the new one for each key, never none.
    pub fn put_reservation(
        &mut self,
        mac: [u8; 6],
        entries: &[(ReservationKey, Reservation)],
    ) -> Result<(), DataplaneError> {
        for (k, v) in entries {
            self.reservations
                .insert(k, v, 0)
                .map_err(map_err(names::RESERVATIONS))?;
        }
        for v in stormboot_common::maps::variant::ALL {
            if !entries.iter().any(|(k, _)| k.variant == v) {
                self.remove_key(ReservationKey { mac, variant: v })?;
            }
        }
        Ok(())
    }

    /// Removes every entry of one machine: its requests are passed up.
    pub fn remove_reservation(&mut self, mac: [u8; 6]) -> Result<(), DataplaneError> {
        for v in stormboot_common::maps::variant::ALL {
            self.remove_key(ReservationKey { mac, variant: v })?;
        }
        Ok(())
    }

    fn remove_key(&mut self, k: ReservationKey) -> Result<(), DataplaneError> {
        match self.reservations.remove(&k) {
            Ok(()) => Ok(()),
            // Absent already: nothing to remove.
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(source) => Err(DataplaneError::Map {
                map: names::RESERVATIONS,
                source,
            }),
        }
    }

    /// Tells the program about an interface it receives on.
    pub fn set_iface(&mut self, ifindex: u32, iface: Iface) -> Result<(), DataplaneError> {
        self.ifaces
            .insert(ifindex, iface, 0)
            .map_err(map_err(names::IFACES))
    }

    /// Attaches to one more interface; the program serves all it is
    /// attached to.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<(), DataplaneError> {
        let prog: &mut Xdp = program(&mut self.ebpf, PROGRAM_DHCP)?;
        let id =
            prog.attach(interface, aya_mode(mode))
                .map_err(|source| DataplaneError::Attach {
                    mode: mode_name(mode),
                    interface: interface.to_string(),
                    source,
                })?;
        self.links.push(id);
        Ok(())
    }

    /// Detaches from every interface; known machines are then answered by
    /// nobody until the next attach.
    pub fn detach(&mut self) -> Result<(), DataplaneError> {
        let prog: &mut Xdp = program(&mut self.ebpf, PROGRAM_DHCP)?;
        for id in self.links.drain(..) {
            prog.detach(id).map_err(|source| DataplaneError::Verify {
                name: PROGRAM_DHCP,
                source,
            })?;
        }
        Ok(())
    }

    /// Counter values summed over CPUs, indexed by `Counter`.
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], DataplaneError> {
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            let per_cpu = self
                .counters
                .get(&(c as u32), 0)
                .map_err(map_err(names::COUNTERS))?;
            out[c as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// The reply-event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DataplaneError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(DataplaneError::Missing(names::EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(names::EVENTS))
    }

    /// Forwards the program's aya-log lines to the `log` facade.
    pub fn logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>, aya_log::Error> {
        aya_log::EbpfLogger::init(&mut self.ebpf)
    }

    /// Runs the program once on `frame` through BPF_PROG_TEST_RUN and
    /// returns the action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DataplaneError> {
        let mut out = vec![0u8; 4096];
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_DHCP)
            .ok_or(DataplaneError::Missing(PROGRAM_DHCP))?
            .try_into()
            .map_err(|_| DataplaneError::Missing(PROGRAM_DHCP))?;
        let r = prog
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
        self.ebpf
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

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing(name))?
        .try_into()
        .map_err(|_| DataplaneError::Missing(name))
}

/// Attaches the pass-only program to `interface` (the far end of a veth,
/// so XDP_TX frames reach it). Detached when the returned value drops.
pub fn attach_pass(interface: &str, mode: AttachMode) -> Result<Ebpf, DataplaneError> {
    let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT)?;
    let prog: &mut Xdp = program(&mut ebpf, PROGRAM_PASS)?;
    prog.load().map_err(|source| DataplaneError::Verify {
        name: PROGRAM_PASS,
        source,
    })?;
    prog.attach(interface, aya_mode(mode))
        .map_err(|source| DataplaneError::Attach {
            mode: mode_name(mode),
            interface: interface.to_string(),
            source,
        })?;
    Ok(ebpf)
}
