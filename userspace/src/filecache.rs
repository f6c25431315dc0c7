//! Hot boot files held in memory for the TFTP server: in a boot storm every
//! machine fetches the same iPXE binary, kernel and initrd, so each is read
//! from disk once and every transfer after that serves the same `Bytes` (a
//! reference count, no copy per request). The HTTP server opens its files
//! here too (`open_unread`, the same rules) but has the kernel send them
//! from the page cache.
//!
//! Bounded: the files held never add up to more than the budget (least
//! recently used first out). A file is served from memory only while its
//! identity and times are those it was read with (device, inode, size,
//! mtime, ctime, checked with `fstat` on every open), so a file replaced or
//! rewritten on disk is read again. A file larger than the budget is
//! streamed from disk as before.
//!
//! Concurrent first requests for one file wait for a single read rather
//! than each reading it: a thousand machines asking for `ipxe.efi` at once
//! must not mean a thousand copies of it.

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use crate::metrics::ServiceCounters;

/// What the cache holds at most unless configured (`boot.file_cache_mb`):
/// an iPXE binary, a distribution kernel and its initrd with room to spare.
pub const DEFAULT_BUDGET_MB: u64 = 256;

pub struct FileCache {
    budget: u64,
    inner: Mutex<Inner>,
    /// Orders uses for the least-recently-used eviction.
    clock: AtomicU64,
    counters: Arc<ServiceCounters>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<PathBuf, Arc<Slot>>,
    /// Bytes held or being read into slots.
    used: u64,
}

#[derive(Default)]
struct Slot {
    /// Locked across a read, so concurrent misses wait for one read.
    held: tokio::sync::Mutex<Option<Held>>,
    last_used: AtomicU64,
}

struct Held {
    stamp: Stamp,
    data: Bytes,
}

/// What identifies a file's content without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// An opened regular file.
pub struct Opened {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub body: Source,
    /// The open file itself, whichever the source: what the kernel sends
    /// from with sendfile(2), straight from the page cache.
    pub file: Arc<std::fs::File>,
}

pub enum Source {
    /// The whole file, shared with every other transfer of it.
    Memory(Bytes),
    /// Too large for the cache (or the cache is off): read it as it goes.
    File(tokio::fs::File),
}

impl FileCache {
    /// A cache holding at most `budget` bytes of file content (0: none,
    /// every file is streamed from disk).
    pub fn new(budget: u64, counters: Arc<ServiceCounters>) -> FileCache {
        FileCache {
            budget,
            inner: Mutex::default(),
            clock: AtomicU64::new(0),
            counters,
        }
    }

    /// Opens `path` (never through a symlink at its last component: the
    /// callers resolved it inside their root, and a symlink swapped in
    /// since must not lead out). A directory or device is refused with
    /// `InvalidInput`.
    pub async fn open(&self, path: &Path) -> io::Result<Opened> {
        let (file, meta) = open_regular(path).await?;
        let stamp = Stamp::of(&meta);
        let file = Arc::new(file);
        let opened = |body| Opened {
            len: stamp.len,
            modified: meta.modified().ok(),
            body,
            file: file.clone(),
        };
        // tokio's file owns its descriptor, so the stream gets a duplicate;
        // the offset they share is never used by sendfile, which passes its own.
        let streamed =
            || io::Result::Ok(Source::File(tokio::fs::File::from_std(file.try_clone()?)));
        if stamp.len > self.budget {
            return Ok(opened(streamed()?));
        }
        let slot = self.slot(path);
        let mut held = slot.held.lock().await;
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if let Some(h) = held.as_ref().filter(|h| h.stamp == stamp) {
            self.counters
                .file_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return Ok(opened(Source::Memory(h.data.clone())));
        }
        self.counters
            .file_cache_misses
            .fetch_add(1, Ordering::Relaxed);
        if let Some(stale) = held.take() {
            self.release(stale.data.len() as u64);
        }
        if !self.reserve(stamp.len, &slot) {
            // The rest of the budget is being read into by other files.
            return Ok(opened(streamed()?));
        }
        let reading = file.clone();
        let read = tokio::task::spawn_blocking(move || {
            let file = &*reading;
            let mut data = Vec::with_capacity(stamp.len as usize);
            file.take(stamp.len).read_to_end(&mut data)?;
            // Written to while read: serve what was read, keep none of it.
            let still = Stamp::of(&file.metadata()?) == stamp && data.len() as u64 == stamp.len;
            io::Result::Ok((Bytes::from(data), still))
        })
        .await
        .map_err(io::Error::other)?;
        let (data, still) = match read {
            Ok(r) => r,
            Err(e) => {
                self.release(stamp.len);
                return Err(e);
            }
        };
        if still {
            *held = Some(Held {
                stamp,
                data: data.clone(),
            });
        } else {
            self.release(stamp.len);
        }
        Ok(opened(Source::Memory(data)))
    }

    /// Opens `path` as `open` does, but never reads it into memory: for a
    /// server that has the kernel send from the page cache (HTTP, by
    /// sendfile), to which a copy here would cost a read and budget for
    /// nothing.
    pub async fn open_unread(&self, path: &Path) -> io::Result<Opened> {
        let (file, meta) = open_regular(path).await?;
        let streamed = tokio::fs::File::from_std(file.try_clone()?);
        Ok(Opened {
            len: meta.len(),
            modified: meta.modified().ok(),
            body: Source::File(streamed),
            file: Arc::new(file),
        })
    }

    /// Bytes of file content held now.
    pub fn used(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).used
    }

    fn slot(&self, path: &Path) -> Arc<Slot> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.slots.entry(path.to_owned()).or_default().clone()
    }

    /// Makes room for `len` bytes in `for_slot` by dropping the least
    /// recently used other files; false if it cannot (the others are
    /// being read right now).
    fn reserve(&self, len: u64, for_slot: &Arc<Slot>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while inner.used + len > self.budget {
            let victim = inner
                .slots
                .values()
                .filter(|s| !Arc::ptr_eq(s, for_slot))
                .filter_map(|s| {
                    let guard = s.held.try_lock().ok()?;
                    guard.as_ref()?;
                    Some((s.last_used.load(Ordering::Relaxed), guard))
                })
                .min_by_key(|(t, _)| *t)
                .and_then(|(_, mut guard)| guard.take());
            let Some(victim) = victim else {
                return false;
            };
            inner.used -= victim.data.len() as u64;
        }
        inner.used += len;
        self.counters
            .file_cache_bytes
            .store(inner.used, Ordering::Relaxed);
        true
    }

    fn release(&self, len: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.used -= len;
        self.counters
            .file_cache_bytes
            .store(inner.used, Ordering::Relaxed);
    }
}

/// Opens `path` without following a symlink at its last component,
/// refusing what is not a regular file.
async fn open_regular(path: &Path) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    let owned = path.to_owned();
    let (file, meta) = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(owned)?;
        let meta = file.metadata()?;
        io::Result::Ok((file, meta))
    })
    .await
    .map_err(io::Error::other)??;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: u64) -> (FileCache, Arc<ServiceCounters>) {
        let counters = Arc::new(ServiceCounters::default());
        (FileCache::new(budget, counters.clone()), counters)
    }

    async fn memory(c: &FileCache, path: &Path) -> Bytes {
        match c.open(path).await.unwrap().body {
            Source::Memory(b) => b,
            Source::File(_) => panic!("{} not served from memory", path.display()),
        }
    }

    #[tokio::test]
    async fn one_read_serves_every_request_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipxe.efi");
        std::fs::write(&path, b"first").unwrap();
        let (c, counters) = cache(1 << 20);
        let a = memory(&c, &path).await;
        let b = memory(&c, &path).await;
        assert_eq!(&a[..], b"first");
        // The same allocation: no copy per request.
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(counters.file_cache_misses.load(Ordering::Relaxed), 1);
        assert_eq!(counters.file_cache_hits.load(Ordering::Relaxed), 1);
        assert_eq!(c.used(), 5);

        // Same size, rewritten in place (a tick later, as file times are
        // only as fine as the kernel's clock tick).
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(&path, b"again").unwrap();
        assert_eq!(&memory(&c, &path).await[..], b"again");
        // Replaced by rename (a new inode), longer.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, b"replaced").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(&memory(&c, &path).await[..], b"replaced");
        assert_eq!(c.used(), 8, "the old copies are no longer counted");
    }

    #[tokio::test]
    async fn budget_evicts_least_recently_used_and_streams_large_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [("a", 400), ("b", 400), ("c", 400), ("big", 1001)] {
            std::fs::write(dir.path().join(name), vec![1u8; len]).unwrap();
        }
        let (c, counters) = cache(1000);
        memory(&c, &dir.path().join("a")).await;
        memory(&c, &dir.path().join("b")).await;
        memory(&c, &dir.path().join("a")).await;
        // No room for c: b, the least recently used, goes.
        memory(&c, &dir.path().join("c")).await;
        assert_eq!(c.used(), 800);
        assert_eq!(counters.file_cache_bytes.load(Ordering::Relaxed), 800);
        let misses = counters.file_cache_misses.load(Ordering::Relaxed);
        memory(&c, &dir.path().join("a")).await;
        assert_eq!(counters.file_cache_misses.load(Ordering::Relaxed), misses);
        memory(&c, &dir.path().join("b")).await;
        assert_eq!(
            counters.file_cache_misses.load(Ordering::Relaxed),
            misses + 1
        );

        let big = c.open(&dir.path().join("big")).await.unwrap();
        assert!(matches!(big.body, Source::File(_)));
        assert_eq!(big.len, 1001);
        assert!(c.used() <= 1000);
    }

    #[tokio::test]
    async fn concurrent_misses_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let (c, counters) = cache(4 << 20);
        let c = Arc::new(c);
        let opens: Vec<_> = (0..50)
            .map(|_| {
                let (c, path) = (c.clone(), path.clone());
                tokio::spawn(async move { memory(&c, &path).await })
            })
            .collect();
        let mut ptrs = std::collections::HashSet::new();
        for o in opens {
            ptrs.insert(o.await.unwrap().as_ptr());
        }
        assert_eq!(ptrs.len(), 1, "one copy shared by all");
        assert_eq!(counters.file_cache_misses.load(Ordering::Relaxed), 1);
        assert_eq!(c.used(), 1 << 20);
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = cache(1000);
        let e = c.open(dir.path()).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        let e = c.open(&dir.path().join("link")).await.err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let e = c.open(&dir.path().join("missing")).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
