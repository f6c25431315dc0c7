//! BPF_PROG_TEST_RUN through bpf(2) itself, for what aya's `test_run`
//! does not expose: live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, with
//! `batch_size` and an `xdp_md` context naming the ingress interface);
//! and two-instruction XDP programs (XDP_TX to time that mode's own cost,
//! XDP_DROP to receive at the far end of the veth), attached by a link.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{ensure, Context};

/// include/uapi/linux/bpf.h
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// The kernel's TEST_XDP_MAX_BATCH (net/bpf/test_run.c).
pub const MAX_BATCH: u32 = 256;

/// The `test` member of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so it is zero: the kernel refuses an attr with non-zero
    /// bytes past the fields it knows.
    _pad: u32,
}

/// The start of the `prog_load` member of `union bpf_attr`; the kernel
/// takes the fields it knows past this as zero.
#[repr(C, align(8))]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// The `link_create` member of `union bpf_attr`, as far as XDP uses it.
#[repr(C, align(8))]
#[derive(Default)]
struct LinkAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it for its context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised bpf_attr prefix of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Loads `r0 = action; exit`: with XDP_TX, the program that costs nothing
/// but what live-frames mode itself costs per frame.
pub fn load_returning(action: u32) -> anyhow::Result<OwnedFd> {
    // BPF_ALU64 | BPF_MOV | BPF_K, r0, imm; BPF_JMP | BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (u64::from(action) << 32), 0x95];
    let license = c"GPL";
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)
        .with_context(|| format!("BPF_PROG_LOAD of a program returning {action}"))?;
    // SAFETY: a new descriptor the kernel just returned, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches `prog` to `ifindex` in driver mode; detached when the returned
/// link is closed.
pub fn attach(prog: BorrowedFd<'_>, ifindex: u32) -> anyhow::Result<OwnedFd> {
    let mut attr = LinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)
        .with_context(|| format!("BPF_LINK_CREATE of an XDP program on ifindex {ifindex}"))?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One BPF_PROG_TEST_RUN call's result.
pub struct Run {
    pub retval: u32,
    /// The kernel's time per repetition, in ns.
    pub duration_ns: u32,
    pub data_size_out: u32,
}

/// Runs `prog` once on `frame` as received on `ifindex` (queue 0), and
/// copies what it left of the frame into `out`.
pub fn once(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    out: &mut [u8],
) -> anyhow::Result<Run> {
    let mut ctx = xdp_md(frame, ifindex);
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_size_out: out.len() as u32,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &mut ctx as *mut XdpMd as u64,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN")?;
    Ok(Run {
        retval: attr.retval,
        duration_ns: attr.duration,
        data_size_out: attr.data_size_out,
    })
}

/// Runs `prog` on `frames` fresh frames of `frame` in live-frames mode, as
/// received on `ifindex`: each repetition gets a page of the kernel's own
/// page pool initialised from `frame`, and its action is carried out
/// (XDP_TX sends it out of `ifindex`). All of them in one batch, on a page
/// pool made for this call, so that no repetition sees a page an earlier
/// one wrote: a page comes back to the pool only after the batch. Returns
/// the kernel's time per frame.
pub fn live(prog: BorrowedFd<'_>, frame: &[u8], ifindex: u32, frames: u32) -> anyhow::Result<Run> {
    ensure!(
        (1..=MAX_BATCH).contains(&frames),
        "live frames: {frames} per call, the kernel takes 1 to {MAX_BATCH} in one batch"
    );
    live_batches(prog, frame, ifindex, frames, frames)
}

/// Runs `prog` `frames` times in live-frames mode, in batches of `batch`
/// (at most MAX_BATCH): pages come back to the pool between batches, and
/// a recycled page holds what the program last left in it, not `frame`,
/// so the program must write every byte it sends.
pub fn live_batches(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    frames: u32,
    batch: u32,
) -> anyhow::Result<Run> {
    ensure!(
        (1..=MAX_BATCH).contains(&batch),
        "live frames: batches of {batch}, the kernel takes 1 to {MAX_BATCH}"
    );
    let mut ctx = xdp_md(frame, ifindex);
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: frames,
        batch_size: batch,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &mut ctx as *mut XdpMd as u64,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN, live frames")?;
    Ok(Run {
        retval: attr.retval,
        duration_ns: attr.duration,
        data_size_out: attr.data_size_out,
    })
}

fn xdp_md(frame: &[u8], ifindex: u32) -> XdpMd {
    XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_have_the_kernels_layout() {
        // The offsets of union bpf_attr's test member up to batch_size.
        assert_eq!(std::mem::offset_of!(TestAttr, repeat), 32);
        assert_eq!(std::mem::offset_of!(TestAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(TestAttr, batch_size), 72);
        assert_eq!(std::mem::size_of::<XdpMd>(), 24);
        assert_eq!(std::mem::offset_of!(LoadAttr, log_buf), 32);
    }

    #[test]
    fn the_tx_only_program_returns_xdp_tx_and_leaves_the_frame() {
        crate::require_root();
        let fd = load_returning(3).expect("loads");
        let frame = [0x5au8; 64];
        let mut out = [0u8; 128];
        let r = once(std::os::fd::AsFd::as_fd(&fd), &frame, 1, &mut out).expect("runs");
        assert_eq!(r.retval, 3);
        assert_eq!(&out[..r.data_size_out as usize], &frame[..]);
    }
}
