//! Bulk map writes with BPF_MAP_UPDATE_BATCH: one system call for
//! thousands of entries, where `HashMap::insert` makes one per entry (aya
//! has no wrapper for the batch commands).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

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

/// Batches written by several threads at once: the kernel allocates and
/// links each entry of a hash map that is not preallocated, and takes only
/// a bucket's lock to do it, so writers on different CPUs do not wait for
/// each other.
pub struct Writers<K, V> {
    tx: Option<std::sync::mpsc::SyncSender<(Vec<K>, Vec<V>)>>,
    threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl<K: aya::Pod + Send + 'static, V: aya::Pod + Send + 'static> Writers<K, V> {
    /// `threads` writers into the map behind `fd`.
    pub fn start(fd: std::os::fd::OwnedFd, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<K>, Vec<V>)>(threads * 2);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads.max(1) {
            let fd = fd.try_clone()?;
            let rx = rx.clone();
            handles.push(std::thread::spawn(move || loop {
                let next = rx.lock().expect("no writer panics holding it").recv();
                let Ok((keys, values)) = next else {
                    return Ok(());
                };
                update(fd.as_fd(), &keys, &values)?;
            }));
        }
        Ok(Writers {
            tx: Some(tx),
            threads: handles,
        })
    }

    /// Queues one batch; waits while every writer is busy and the queue
    /// is full, so memory stays bounded.
    pub fn send(&self, keys: Vec<K>, values: Vec<V>) -> std::io::Result<()> {
        let tx = self.tx.as_ref().expect("not finished");
        tx.send((keys, values))
            .map_err(|_| std::io::Error::other("a map writer stopped"))
    }

    /// Waits for every batch to be written; the first writer's error.
    pub fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        let mut first = Ok(());
        for h in self.threads.drain(..) {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a map writer panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
