//! Bulk map writes with BPF_MAP_UPDATE_BATCH: one system call for
//! thousands of entries, where `HashMap::insert` makes one per entry (aya
//! has no wrapper for the batch commands).

use std::os::fd::{AsRawFd, BorrowedFd};

/// `enum bpf_cmd` value of BPF_MAP_UPDATE_BATCH (include/uapi/linux/bpf.h).
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Writes `keys[i] -> values[i]` into the map behind `fd` (BPF_ANY), in one
/// call. `K` and `V` must be the map's key and value types, `repr(C)` with
/// the map's sizes. Fails with the kernel's error (EINVAL on kernels before
/// 5.6, which lack the command), after which some entries may be written.
pub fn update<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> std::io::Result<()> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    let mut done = 0;
    while done < keys.len() {
        let rest = keys.len() - done;
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: u32::try_from(rest).unwrap_or(u32::MAX),
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points at `count` keys and values that live for the
        // call; the kernel only reads them, and writes `count` back.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            // Interrupted part way: go on after what was written.
            if err.kind() == std::io::ErrorKind::Interrupted && attr.count > 0 {
                done += attr.count as usize;
                continue;
            }
            return Err(err);
        }
        if attr.count == 0 {
            return Err(std::io::Error::other("BPF_MAP_UPDATE_BATCH wrote nothing"));
        }
        done += attr.count as usize;
    }
    Ok(())
}
