//! Pins under bpffs: the XDP links, so the program keeps answering known
//! machines while no daemon runs, and the reply ring and counters, so the
//! next daemon reads what happened meanwhile.
//!
//! A restart or an upgrade never adopts the old program: it loads its own,
//! fills fresh maps, and swaps the program through the pinned link in one
//! `bpf_link_update`. The old program answers until that instant and the new
//! one from it on, so known machines see no gap whether or not the layout
//! changed, and the running program is always the binary's own.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, PerCpuArray};
use stormboot_common::{
    counters::{Counter, Counts},
    LAYOUT_VERSION,
};

/// `statfs` magic of a BPF filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Where systemd mounts the BPF filesystem at boot.
const SYSTEM_BPFFS: &str = "/sys/fs/bpf";

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Mounts bpffs where systemd would have: hosts booted without systemd
/// (containers, minimal VMs) often lack it.
fn mount_system_bpffs() -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("bpf"),
        SYSTEM_BPFFS,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| io::Error::other(format!("mounting bpffs on {SYSTEM_BPFFS}: {e}")))?;
    tracing::info!(path = SYSTEM_BPFFS, "mounted the BPF filesystem");
    Ok(())
}

/// The pins of one daemon instance: one directory per network namespace and
/// interface set, so daemons in two namespaces (which may both serve an
/// interface called "eth0") never touch each other's links.
#[derive(Clone, Debug)]
pub struct Pins {
    dir: PathBuf,
}

/// What a previous daemon of this instance left behind.
#[derive(Default)]
pub struct Predecessor {
    /// Its reply ring: ACKs sent while no daemon ran wait here.
    pub events: Option<super::ReplyRing>,
    /// How many reply events its program could not queue (ring full).
    pub events_lost: u64,
    /// Pins of another layout version, removed unread.
    pub unreadable: Vec<PathBuf>,
}

impl Pins {
    /// The instance directory under `root` for this process's network
    /// namespace and `interfaces`.
    pub fn for_instance(root: &Path, interfaces: &[String]) -> io::Result<Pins> {
        let ns = std::fs::metadata("/proc/self/ns/net")?.ino();
        Ok(Pins {
            dir: root.join(format!("net{ns}-{}", interfaces.join("+"))),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory; fails unless its parent is on a bpffs, where
    /// a pin would otherwise be refused only at the first attach.
    pub fn create(&self) -> io::Result<()> {
        let root = self.dir.parent().unwrap_or(Path::new("/"));
        if root.starts_with(SYSTEM_BPFFS) && !is_bpffs(Path::new(SYSTEM_BPFFS)) {
            mount_system_bpffs()?;
        }
        std::fs::create_dir_all(root)?;
        if !is_bpffs(root) {
            return Err(io::Error::other(format!(
                "{} is not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)",
                root.display()
            )));
        }
        std::fs::create_dir_all(&self.dir)
    }

    /// Why the pins die with this daemon, when they do: the bpffs holding
    /// them is an instance mounted only in this process's own mount
    /// namespace (as under `ip netns exec`, which remounts /sys and so hides
    /// the system's bpffs, and the daemon mounts a fresh one). Such a
    /// namespace ends with the daemon and unmounts the bpffs, which drops
    /// the pins, so the links detach and a restart is not seamless. None
    /// also when it cannot be told (pid 1's mount table unreadable).
    pub fn dies_with_daemon(&self) -> Option<String> {
        let root = self.dir.parent()?;
        let dev = std::fs::metadata(root).ok()?.dev();
        let init = std::fs::read_to_string("/proc/1/mountinfo").ok()?;
        if mounted_in(&init, dev) {
            return None;
        }
        Some(format!(
            "the BPF filesystem at {} is mounted only in this daemon's own mount namespace \
             (as `ip netns exec` makes one), so the pinned program dies with the daemon and a \
             restart or crash is not seamless; enter the network namespace with \
             `nsenter --net=/run/netns/<name>` instead",
            root.display()
        ))
    }

    pub fn link(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("link-{interface}"))
    }

    pub fn events(&self) -> PathBuf {
        self.dir.join(format!("events-v{LAYOUT_VERSION}"))
    }

    pub fn counters(&self) -> PathBuf {
        self.dir.join(format!("counters-v{LAYOUT_VERSION}"))
    }

    /// Opens and unpins the previous daemon's ring and counters. The old
    /// program may still write to them until its link is swapped; the ring
    /// is read after that.
    pub fn take_predecessor(&self) -> Predecessor {
        let mut p = Predecessor::default();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return p;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path == self.events() {
                p.events = open(&path).and_then(|m| super::ReplyRing::new(m).ok());
            } else if path == self.counters() {
                p.events_lost = open(&path)
                    .and_then(|m| PerCpuArray::<MapData, Counts>::try_from(m).ok())
                    .and_then(|c| c.get(&0, 0).ok())
                    .map(|v| super::summed(&v)[Counter::EventLost as usize])
                    .unwrap_or(0);
            } else if name.starts_with("events-v") || name.starts_with("counters-v") {
                p.unreadable.push(path.clone());
            } else {
                continue;
            }
            let _ = std::fs::remove_file(&path);
        }
        p
    }

    /// Removes every pin of the instance and its directory. Links whose
    /// last holder was the pin are detached by this. Returns what it removed.
    pub fn remove_all(&self) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e),
        };
        for e in entries {
            let path = e?.path();
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
        std::fs::remove_dir(&self.dir)?;
        Ok(removed)
    }
}

/// Whether a mount table (`/proc/<pid>/mountinfo`) holds a filesystem on
/// device `dev` (each bpffs mount is its own instance with its own device).
fn mounted_in(mountinfo: &str, dev: u64) -> bool {
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(want.as_str()))
}

fn open(path: &Path) -> Option<Map> {
    MapData::from_pin(path)
        .ok()
        .and_then(|d| Map::from_map_data(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_directories_differ_by_interfaces_and_carry_the_layout() {
        let a = Pins::for_instance(Path::new("/sys/fs/bpf/sb"), &["sb0".into()]).unwrap();
        let b =
            Pins::for_instance(Path::new("/sys/fs/bpf/sb"), &["sb0".into(), "sb1".into()]).unwrap();
        assert_ne!(a.dir(), b.dir());
        assert!(b.dir().to_string_lossy().ends_with("-sb0+sb1"));
        assert!(a
            .events()
            .to_string_lossy()
            .ends_with(&format!("events-v{LAYOUT_VERSION}")));
        assert_eq!(a.link("sb0").parent(), Some(a.dir()));
    }

    #[test]
    fn a_filesystem_is_found_in_a_mount_table_by_its_device() {
        let table = "48 23 0:40 / /sys/fs/bpf rw,nosuid - bpf bpf rw,mode=700\n\
                     23 1 0:21 / /sys rw - sysfs sysfs rw\n";
        assert!(mounted_in(table, libc::makedev(0, 40)));
        assert!(!mounted_in(table, libc::makedev(0, 41)));
    }

    #[test]
    fn refuses_a_directory_off_bpffs() {
        let root = std::env::temp_dir().join(format!("sb-pins-{}", std::process::id()));
        let p = Pins::for_instance(&root, &["sb0".into()]).unwrap();
        let err = p.create().unwrap_err().to_string();
        assert!(err.contains("not on a BPF filesystem"), "{err}");
        let _ = std::fs::remove_dir_all(root);
    }
}
