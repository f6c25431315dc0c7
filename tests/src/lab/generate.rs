//! The rate generator's in-kernel sender (`stormboot-lab rate
//! --in-kernel`): loads `stormboot_generate`, gives it machine 0's
//! DISCOVER and REQUEST, and runs it in live-frames mode on the generator's
//! end of the link, so each request leaves as an XDP_TX frame, as a
//! driver sends one, instead of through a packet socket
//! (`stormboot_common::generate`).

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{ensure, Context};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use stormboot_common::generate::{self, broadcast, Frame, Run, State, FRAME_MAX, FRAME_MIN};
use stormboot_common::layout::{opt, ETH_LEN, IP_LEN, OPTIONS_OFF, UDP_LEN};
use stormboot_common::maps::{names, PROGRAM_GENERATE};
use stormboot_common::tally::xid;

use super::fixtures::{client_frame, encode};
use super::storm::{self, BroadcastMode};
use super::testrun;

/// Option 61, client identifier.
const CLIENT_ID: u8 = 61;

/// Repetitions per batch: pages return to the pool between batches, and
/// the kernel looks for a signal or a thread to yield to.
const BATCH: u32 = 64;

pub struct Generator {
    _ebpf: Ebpf,
    prog: OwnedFd,
    state: PerCpuArray<MapData, State>,
    /// What the kernel copies into each page before the program runs
    /// (the program overwrites all of it).
    frame: Vec<u8>,
    ifindex: u32,
}

/// Where the value of option `code` starts in a DHCP payload, if it has one.
pub fn option_at(payload: &[u8], code: u8) -> Option<usize> {
    let mut at = OPTIONS_OFF;
    loop {
        match *payload.get(at)? {
            opt::END => return None,
            opt::PAD => at += 1,
            c => {
                let len = usize::from(*payload.get(at + 1)?);
                payload.get(at + 2..at + 2 + len)?;
                if c == code {
                    return Some(at + 2);
                }
                at += 2 + len;
            }
        }
    }
}

/// Machine 0's DISCOVER and REQUEST as frames of one length, and the run
/// that names their per-machine parts.
pub(crate) fn frames(
    first_mac: [u8; 6],
    first_ip: Ipv4Addr,
    server_id: Ipv4Addr,
    nonce: u8,
    count: u32,
    mode: BroadcastMode,
) -> anyhow::Result<(Run, [Vec<u8>; 2])> {
    let d = encode(&storm::discover(
        first_mac,
        xid(nonce, false, 0),
        false,
        &[],
    ));
    let r = encode(&storm::request(
        first_mac,
        xid(nonce, true, 0),
        false,
        first_ip,
        server_id,
        &[],
    ));
    let len = d.len().max(r.len()).max(300);
    let offsets = |payload: &[u8]| -> [u16; 2] {
        let bootp = ETH_LEN + IP_LEN + UDP_LEN;
        // Option 61 is a type byte (1, Ethernet) and the MAC.
        let client_id = option_at(payload, CLIENT_ID).map_or(0, |v| bootp + v + 1);
        let requested = option_at(payload, opt::REQUESTED_IP).map_or(0, |v| bootp + v);
        [client_id as u16, requested as u16]
    };
    let ([d_cid, d_req], [r_cid, r_req]) = (offsets(&d), offsets(&r));
    let build = |mut p: Vec<u8>| {
        p.resize(len, 0); // pad after END
        client_frame(first_mac, None, &p)
    };
    let pair = [build(d), build(r)];
    let frame_len = pair[0].len();
    ensure!(
        frame_len == pair[1].len() && (FRAME_MIN..=FRAME_MAX).contains(&frame_len),
        "the generator's frames are {} and {} bytes; it sends {FRAME_MIN} to {FRAME_MAX}",
        pair[0].len(),
        pair[1].len()
    );
    let run = Run {
        total: 0,
        rate: 0,
        catch_up: 0,
        count,
        first_ip: u32::from(first_ip),
        first_mac,
        nonce,
        broadcast: match mode {
            BroadcastMode::Never => broadcast::NEVER,
            BroadcastMode::Always => broadcast::ALWAYS,
            BroadcastMode::Mixed => broadcast::EVEN,
        },
        len: frame_len as u16,
        client_id_off: [d_cid, r_cid],
        requested_off: [d_req, r_req],
        _pad: [0; 3],
    };
    Ok((run, pair))
}

impl Generator {
    /// Loads the program with `run` and its frames, to send on `interface`.
    pub fn load(interface: &str, run: Run, pair: [Vec<u8>; 2]) -> anyhow::Result<Generator> {
        let ifindex = nix::net::if_::if_nametoindex(interface)
            .with_context(|| format!("no interface {interface}"))?;
        let mut ebpf = EbpfLoader::new()
            .load(stormboot::dataplane::EBPF_OBJECT)
            .context("loading the eBPF object")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_GENERATE)
            .with_context(|| format!("no program {PROGRAM_GENERATE} in the object"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("loading {PROGRAM_GENERATE}"))?;
        let prog = prog.fd()?.as_fd().try_clone_to_owned()?;
        let mut frames: Array<_, Frame> = Array::try_from(
            ebpf.map_mut(names::GEN_FRAMES)
                .context("no GEN_FRAMES map")?,
        )?;
        for (i, f) in pair.iter().enumerate() {
            let mut bytes = [0u8; FRAME_MAX];
            bytes[..f.len()].copy_from_slice(f);
            frames.set(i as u32, Frame { bytes }, 0)?;
        }
        let mut state: PerCpuArray<_, State> = PerCpuArray::try_from(
            ebpf.take_map(names::GEN_STATE)
                .context("no GEN_STATE map")?,
        )?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        state.set(0, PerCpuValues::try_from(vec![State::default(); cpus])?, 0)?;
        let mut runs: Array<_, Run> =
            Array::try_from(ebpf.map_mut(names::GEN_RUN).context("no GEN_RUN map")?)?;
        runs.set(0, run, 0)?;
        Ok(Generator {
            _ebpf: ebpf,
            prog,
            state,
            frame: pair[generate::DISCOVER as usize].clone(),
            ifindex,
        })
    }

    /// Runs the program until the run is sent or the calling thread gets
    /// a signal (`stop`): one call, which the kernel ends with EINTR.
    pub fn run(&self) -> anyhow::Result<()> {
        loop {
            match testrun::live_batches(
                self.prog.as_fd(),
                &self.frame,
                self.ifindex,
                u32::MAX,
                BATCH,
            ) {
                Ok(_) => {}
                Err(e) if interrupted(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// One repetition outside live-frames mode: the program's action and
    /// the frame it left in `out`.
    #[cfg(test)]
    pub fn once(&self, out: &mut [u8]) -> anyhow::Result<(u32, usize)> {
        let r = testrun::once(self.prog.as_fd(), &self.frame, self.ifindex, out)?;
        Ok((r.retval, r.data_size_out as usize))
    }

    /// Where the run is (summed over the CPUs; one of them ran it).
    pub fn state(&self) -> anyhow::Result<State> {
        let mut out = State::default();
        for s in self.state.get(&0, 0)?.iter() {
            out.start_ns = out.start_ns.max(s.start_ns);
            out.sent += s.sent;
            out.behind += s.behind;
        }
        Ok(out)
    }
}

fn interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EINTR))
    })
}

/// Ends `Generator::run` on `thread`: a signal whose handler does nothing,
/// installed without SA_RESTART, so the call returns EINTR.
pub fn stop(thread: libc::pthread_t) -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn nothing(_: libc::c_int) {}
    let action = SigAction::new(
        SigHandler::Handler(nothing),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }?;
    // SAFETY: `thread` is a live thread of this process (its handle is held).
    let r = unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
    anyhow::ensure!(
        r == 0,
        "pthread_kill: {}",
        std::io::Error::from_raw_os_error(r)
    );
    Ok(())
}
