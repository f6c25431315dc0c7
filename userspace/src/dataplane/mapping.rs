//! A BPF_F_MMAPABLE array map's values shared into this process's memory:
//! the reply ring and the reservation table are read and written there
//! without a system call.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::MapData;

/// A shared mapping of a map's values, unmapped on drop.
pub struct Mapping {
    /// Holds the map's descriptor for as long as it is mapped.
    _map: MapData,
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: the mapping is owned here and only touched through its owner;
// what the kernel's side writes, its owner synchronises.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `map`'s values, rounded up to whole
    /// pages (the kernel checks the length against the map), with its
    /// page tables filled at once.
    pub fn new(map: MapData, len: usize) -> io::Result<Self> {
        // SAFETY: the page size is always readable.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let bytes = len.next_multiple_of(page);
        // SAFETY: a shared mapping of the map's values (BPF_F_MMAPABLE),
        // whose length the kernel checks against the map.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            _map: map,
            ptr: p as *mut u8,
            bytes,
        })
    }

    /// The mapping's first byte (page-aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.bytes) };
    }
}
