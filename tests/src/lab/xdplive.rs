//! The XDP program's cost per reply in live-frames mode
//! (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel runs it as a driver would,
//! on a fresh page per frame, many frames per call, and really sends
//! each XDP_TX frame out of a veth in a private network namespace.
//!
//! Each call is one batch of `BATCH` frames on a page pool the kernel
//! makes for that call: a page comes back to a pool only after its batch
//! (the far end's receive runs when the batch ends), so every frame is
//! the request, never a reply written by an earlier frame. Longer calls
//! would recycle pages with the program's own reply in them.
//!
//! First every case is checked: its reply, from one repeat=1 run on the
//! interface, validated in full, then `CHECKED_CALLS` live calls with the
//! far end passing frames up to a capture, every frame of which must equal
//! that reply. Then the timing, with the far end dropping frames in its
//! own XDP program, so that its receive costs little and varies less.
//! The kernel's time per frame still covers the page's set-up, the
//! transmit and that drop; that cost beside the program is measured by a
//! two-instruction XDP_TX program sending the reference reply itself, in
//! calls interleaved with the measured ones, and subtracted.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use stormboot::config::XdpMode as AttachMode;
use stormboot::dataplane::{attach_pass, Dataplane};
use stormboot::rawsock::RawSocket;
use stormboot_common::bucket::Limit;
use stormboot_common::maps::Iface;

use super::fixtures::{config, Loaded, Setup, CONFIG, SERVER, SERVER_MAC, XDP_TX};
use super::testrun;
use super::xdpbench::{counted_once_each, scenarios, validate, Expect, Scenario};
use crate::reports::XdpCase as Case;
use std::os::fd::OwnedFd;

/// Frames per call: two of NAPI's polls (64 frames, what a driver hands
/// XDP at once), within the far end's ring of 256 even if the previous
/// call's frames are still in it. Every call also changes the kernel's
/// XDP dispatcher twice, which takes milliseconds: fewer, longer calls
/// keep the run short.
pub const BATCH: u32 = 128;
/// Timed calls per case at the least, however few frames are asked for:
/// the figure is a difference of two medians, which a handful of calls on
/// a busy machine could turn negative.
const MIN_CALLS: u32 = 10;
/// Calls per case whose every frame is captured and compared.
const CHECKED_CALLS: u32 = 8;
const XDP_DROP: u32 = 1;

/// The veth pair inside the private namespace: the program's interface,
/// and the far end that receives its replies.
const NEAR: &str = "sbl0";
const FAR: &str = "sbl1";
/// ETH_P_ALL: the far end's capture sees every frame.
const ETH_P_ALL: u16 = 0x0003;

/// Measures every reply case of `xdpbench` in live-frames mode, `frames`
/// frames each (rounded up to whole batches, `MIN_CALLS` at the least), on
/// a thread of its own in a
/// network namespace of its own that ends with it.
pub fn run(frames: u32) -> anyhow::Result<Vec<Case>> {
    ensure!(frames >= 1, "live frames: at least one frame");
    std::thread::Builder::new()
        .name("xdplive".into())
        .spawn(move || {
            // SAFETY: unshare(2) of this thread's network namespace only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("unshare(CLONE_NEWNET) (needs root)");
            }
            let pinned = super::xdpbench::pin_to_current_cpu();
            Live::new()?.measure_all(frames.div_ceil(BATCH).max(MIN_CALLS), pinned)
        })
        .context("starting the live-frames thread")?
        .join()
        .map_err(|_| anyhow!("the live-frames thread panicked"))?
}

struct Live {
    dp: Dataplane,
    events: stormboot::dataplane::ReplyRing,
    /// The pass-only program on the near end. A veth delivers XDP_TX
    /// frames only to a peer that runs XDP; the far end runs the
    /// pass-only program while frames are captured, then `far_drop`.
    _near: aya::Ebpf,
    far_pass: Option<aya::Ebpf>,
    far_drop: Option<OwnedFd>,
    tx_only: OwnedFd,
    ifindex: u32,
    capture: RawSocket,
    buf: Vec<u8>,
}

impl Live {
    fn new() -> anyhow::Result<Self> {
        // No IPv6 in the namespace: its link-up chatter (MLD, router
        // solicitations) would be captured beside the replies.
        for conf in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
            if std::path::Path::new(&path).exists() {
                std::fs::write(&path, "1").with_context(|| path.clone())?;
            }
        }
        for args in [
            &["link", "add", NEAR, "type", "veth", "peer", "name", FAR][..],
            &["link", "set", NEAR, "up"],
            &["link", "set", FAR, "up"],
        ] {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .context("running ip (iproute2)")?;
            ensure!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let near = attach_pass(NEAR, AttachMode::Driver)?;
        let far_pass = attach_pass(FAR, AttachMode::Driver)?;
        let ifindex = nix::net::if_::if_nametoindex(NEAR).context(NEAR)?;
        let cfg = config(CONFIG, "xdplive.toml")?;
        let log_level = cfg.server.xdp_log_level.as_u8();
        let Loaded { mut dp, .. } = Loaded::new(
            cfg,
            Setup {
                log_level,
                slowpath_limit: Some(Limit::new(1_000_000, 1_000_000)),
                ..Default::default()
            },
        )?;
        // The same interface as the fixtures' loopback, under this ifindex:
        // the replies are the ones the repeat=1 runs validate.
        dp.set_iface(
            ifindex,
            Iface {
                ip: SERVER.octets(),
                mac: SERVER_MAC,
                _pad: [0; 2],
            },
        )?;
        let events = dp.take_events()?;
        Ok(Self {
            dp,
            events,
            _near: near,
            far_pass: Some(far_pass),
            far_drop: None,
            tx_only: testrun::load_returning(XDP_TX)?,
            ifindex,
            capture: RawSocket::open(FAR, ETH_P_ALL, true)?,
            buf: vec![0; 4096],
        })
    }

    fn measure_all(&mut self, calls: u32, pinned: Option<usize>) -> anyhow::Result<Vec<Case>> {
        let cases: Vec<Scenario> = scenarios()
            .into_iter()
            .filter(|s| matches!(s.expect, Expect::Reply { .. }))
            .collect();
        let prog = self.dp.program()?.fd()?.as_fd().try_clone_to_owned()?;
        let references = cases
            .iter()
            .map(|s| self.check(&prog, s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // The far end now drops: the pass-only program's Ebpf detaches it
        // when dropped.
        self.far_pass = None;
        let far = nix::net::if_::if_nametoindex(FAR).context(FAR)?;
        let drop = testrun::load_returning(XDP_DROP)?;
        self.far_drop = Some(testrun::attach(drop.as_fd(), far)?);
        cases
            .iter()
            .zip(&references)
            .map(|(s, reference)| self.measure(&prog, s, reference, calls, pinned))
            .collect()
    }

    /// The case's reply, validated in full, and `CHECKED_CALLS` live calls
    /// of the program and of the baseline, every frame of which reached the
    /// far end as that reply.
    fn check(&mut self, prog: &OwnedFd, s: &Scenario) -> anyhow::Result<Vec<u8>> {
        let mut out = vec![0u8; 4096];
        let r = testrun::once(prog.as_fd(), &s.frame, self.ifindex, &mut out)?;
        ensure!(
            r.retval == XDP_TX,
            "{}: the program returned {} on {NEAR}",
            s.name,
            super::fixtures::action_name(r.retval)
        );
        let reference = out[..r.data_size_out as usize].to_vec();
        validate(&s.expect, &reference).with_context(|| format!("{}: the reply", s.name))?;
        self.drain_capture(s.name, &reference)?;
        for _ in 0..CHECKED_CALLS {
            testrun::live(prog.as_fd(), &s.frame, self.ifindex, BATCH)?;
            testrun::live(self.tx_only.as_fd(), &reference, self.ifindex, BATCH)?;
        }
        self.drain_events();
        let sent = u64::from(CHECKED_CALLS * BATCH) * 2;
        let mut captured = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while captured < sent && Instant::now() < deadline {
            self.capture.poll(Duration::from_millis(20))?;
            captured += self.drain_capture(s.name, &reference)?;
        }
        ensure!(
            captured == sent,
            "{}: {sent} frames sent in live-frames mode (half by the program, half by the \
             baseline), {captured} reached the far end",
            s.name
        );
        Ok(reference)
    }

    /// Frames captured at the far end since the last call, each checked
    /// against `reference`.
    fn drain_capture(&mut self, name: &str, reference: &[u8]) -> anyhow::Result<u64> {
        let mut n = 0;
        while let Some(meta) = self.capture.recv(&mut self.buf)? {
            let got = &self.buf[..meta.len.min(self.buf.len())];
            if got != reference {
                let at = got.iter().zip(reference).position(|(a, b)| a != b);
                bail!(
                    "{name}: a {}-byte frame captured in live-frames mode differs from the \
                     {}-byte validated reply (first at byte {at:?})",
                    got.len(),
                    reference.len()
                );
            }
            n += 1;
        }
        Ok(n)
    }

    fn drain_events(&mut self) {
        self.events.by_ref().for_each(drop);
    }

    fn measure(
        &mut self,
        prog: &OwnedFd,
        s: &Scenario,
        reference: &[u8],
        calls: u32,
        pinned: Option<usize>,
    ) -> anyhow::Result<Case> {
        let warmup = (calls / 10).clamp(2, 20);
        let total = warmup + calls;
        let mut prog_ns = Vec::with_capacity(calls as usize);
        let mut base_ns = Vec::with_capacity(calls as usize);
        self.drain_events();
        let before = self.dp.counters()?;
        for i in 0..total {
            let measured = |me: &Self| testrun::live(prog.as_fd(), &s.frame, me.ifindex, BATCH);
            let baseline =
                |me: &Self| testrun::live(me.tx_only.as_fd(), reference, me.ifindex, BATCH);
            // Alternating which goes first, as the repeat=1 figures do.
            let (p, b) = if i % 2 == 0 {
                let p = measured(self)?;
                (p, baseline(self)?)
            } else {
                let b = baseline(self)?;
                (measured(self)?, b)
            };
            if i >= warmup {
                prog_ns.push(u64::from(p.duration_ns));
                base_ns.push(u64::from(b.duration_ns));
            }
            self.drain_events();
        }
        let after = self.dp.counters()?;
        let frames = u64::from(total) * u64::from(BATCH);
        counted_once_each(s, &before, &after, frames, "live frames")?;
        let prog_med = median(&mut prog_ns);
        let base_med = median(&mut base_ns);
        let ns = prog_med - base_med;
        if ns <= 0.0 {
            bail!(
                "{}: live frames: the program's median ({prog_med:.1} ns) is not above the \
                 XDP_TX-only baseline's ({base_med:.1} ns)",
                s.name
            );
        }
        let method = format!(
            "live frames (BPF_F_TEST_XDP_LIVE_FRAMES on a veth in a private namespace): \
             median over {calls} calls of the kernel's time per frame, each call one batch \
             of {BATCH} fresh frames of the {len}-byte request on a page pool of its own, \
             minus the median over {calls} interleaved calls of a two-instruction XDP_TX \
             program sending the reference reply the same way, after {warmup} warm-up \
             pairs, {cpu}. Both figures include the page set-up, the veth transmit and an \
             XDP_DROP at the far end; the difference is the program. Checked first: the \
             reference reply (one repeat=1 run on the same interface) validated in full, \
             and all {checked} frames of {CHECKED_CALLS} calls each of the program and the \
             baseline captured at the far end byte-identical to it. During the timing the \
             program's counters show {frames} x {counter} and no lost events or tx errors. \
             Medians {prog_med:.1} ns per frame program, {base_med:.1} ns baseline",
            checked = 2 * CHECKED_CALLS * BATCH,
            len = s.frame.len(),
            cpu = match pinned {
                Some(cpu) => format!("on one thread pinned to CPU {cpu}"),
                None => "on one thread (pinning it to a CPU failed)".into(),
            },
            counter = s.expect.counter().name(),
        );
        Ok(Case {
            name: s.name.into(),
            mode: super::xdpbench::MODE_LIVE.into(),
            action: super::fixtures::action_name(XDP_TX).into(),
            ns_per_packet: ns,
            mpps_per_core: 1000.0 / ns,
            runs: calls * BATCH,
            method,
        })
    }
}

/// The median of per-call figures (each already a mean over a batch).
fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_case_is_checked_and_timed_in_live_frames_mode() {
        crate::require_root();
        // 20 timed calls per case: the frames of the checked calls must all
        // arrive as the validated reply, or this fails before any timing.
        let cases = run(20 * BATCH).expect("the live-frames run and every check pass");
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "discover->offer",
                "PXE discover->offer",
                "request->ack",
                "relayed discover->offer"
            ]
        );
        for c in &cases {
            assert_eq!(
                (c.mode.as_str(), c.action.as_str()),
                (super::super::xdpbench::MODE_LIVE, "XDP_TX")
            );
            assert!(c.ns_per_packet > 0.0, "{}: {}", c.name, c.ns_per_packet);
            assert_eq!(c.runs, 20 * BATCH);
        }
    }
}
