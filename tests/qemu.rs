//! Real firmware booting through stormboot: QEMU (TCG) with SeaBIOS and the
//! iPXE option ROM, or OVMF's EDK2 PXE, on a tap device bridged to the
//! testbed's client end, boots a Debian kernel and a busybox initrd served by
//! the daemon, and the initrd's /init prints a marker on the serial console.
//!
//! What only real firmware shows: that the replies (from XDP and from
//! userspace) are ones firmware accepts, that EDK2 fetches ipxe.efi over
//! TFTP and iPXE then takes the script URL, that iPXE can load the script
//! and both artifacts over HTTP, and how long each phase of a boot takes
//! (printed from the machine's timeline).
//!
//! Needs root, `cargo build -p stormboot`, QEMU, OVMF and Debian's ipxe
//! packages (`cargo xtask setup`). The kernel and busybox-static are
//! fetched with `apt-get download` on the first run and kept, with the
//! initrd built from them, under `target/boot-image/`. A boot takes 10 to
//! 40 s of emulated CPU, so the tests boot one machine at a time.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use dhcproto::v4::{Message, MessageType};
use dhcproto::{Decodable, Decoder};
use serde_json::Value;
use stormboot_testbed::{
    require_root, udp_frames, wait_for, xdp_counter, Lab, Side, CLIENT_BRIDGE, CLIENT_IF,
    SERVER_ADDR, SERVER_IF,
};

/// What the initrd's /init (tests/boot-image/init) prints once it runs.
const MARKER: &str = "STORMBOOT-BOOTED-OK";
/// Serial console lines that mean the firmware gave up on the network (the
/// UEFI shell is OVMF's last boot option; SeaBIOS says this when all
/// failed): the test fails at once rather than at the timeout.
const GAVE_UP: &[&str] = &["UEFI Interactive Shell", "No bootable device"];
/// From QEMU's start to the marker, which each test prints among its phases
/// (`-- --nocapture`): 10 to 40 s under TCG here; the rest is headroom for
/// a loaded CI machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The tap device QEMU's NIC is attached to, in the client namespace.
const TAP: &str = "tap0";
/// Debian's iPXE binaries (package ipxe), copied into each test's TFTP
/// root. Not served from here: /usr/lib/ipxe/ipxe.efi is a symlink to
/// /boot/ipxe.efi, and the daemon refuses, by design, any file that
/// resolves outside its tftp_root.
const IPXE_DIR: &str = "/usr/lib/ipxe";
const IPXE_FILES: &[&str] = &["ipxe.efi", "undionly.kpxe"];
/// QEMU's e1000 option ROM from Debian's ipxe-qemu: iPXE itself.
const E1000_ROM: &str = "/usr/lib/ipxe/qemu/efi-e1000.rom";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Serializes the boots: each keeps a CPU busy for tens of seconds, and
/// two at once would only make both slower and their timings meaningless.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_boot_at_a_time() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one may still run.
    ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The boot image: a Debian cloud kernel and a busybox initrd.

/// The directory holding `vmlinuz` and `initrd.img`, built on first use.
fn artifacts_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_boot_image().unwrap_or_else(|e| panic!("building the boot image: {e:#}"))
    })
}

/// `target/boot-image/`: the downloaded packages, what was taken from them,
/// and `artifacts/` (the daemon's artifacts_dir).
fn build_boot_image() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("boot-image");
    let artifacts = root.join("artifacts");
    fs::create_dir_all(&artifacts).with_context(|| format!("creating {}", artifacts.display()))?;

    let kernel = artifacts.join("vmlinuz");
    if !kernel.exists() {
        // linux-image-cloud-amd64 is a metapackage: the kernel is in the
        // package it depends on.
        let meta = "linux-image-cloud-amd64";
        let out = run(Command::new("apt-cache").args(["depends", meta]))?;
        let pkg = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .filter(|p| p.starts_with("linux-image-"))
            .with_context(|| format!("no linux-image dependency of {meta} in:\n{out}"))?
            .to_owned();
        let tree = unpack(&root, &pkg)?;
        let boot = tree.join("boot");
        let vmlinuz = fs::read_dir(&boot)
            .with_context(|| format!("reading {}", boot.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
        install(&fs::read(&vmlinuz)?, &kernel)?;
        // The modules are most of the package's 140 MB and of no use here.
        let _ = fs::remove_dir_all(&tree);
    }

    // busybox-static is unpacked, not installed: it conflicts with the
    // dynamic busybox the other tests use (udhcpc).
    let busybox = root.join("busybox");
    if !busybox.exists() {
        let tree = unpack(&root, "busybox-static")?;
        install(&fs::read(tree.join("bin").join("busybox"))?, &busybox)?;
        let _ = fs::remove_dir_all(&tree);
    }
    // Rebuilt on every run (it takes milliseconds), so that an edit to
    // boot-image/init always reaches the machines.
    let init = include_str!("boot-image/init");
    let initrd = initrd(&fs::read(&busybox)?, init.as_bytes());
    install(&initrd, &artifacts.join("initrd.img"))?;
    Ok(artifacts)
}

/// `apt-get download`s `pkg` into `<root>/debs` (unless a .deb of it is
/// there already) and `dpkg -x`es it into `<root>/<pkg>`.
fn unpack(root: &Path, pkg: &str) -> anyhow::Result<PathBuf> {
    let debs = root.join("debs");
    fs::create_dir_all(&debs)?;
    let find = || -> anyhow::Result<Option<PathBuf>> {
        Ok(fs::read_dir(&debs)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
                })
            }))
    };
    let deb = match find()? {
        Some(deb) => deb,
        None => {
            run(Command::new("apt-get")
                .args(["download", "-q", pkg])
                .current_dir(&debs))?;
            find()?.with_context(|| format!("apt-get download {pkg} left no .deb"))?
        }
    };
    let tree = root.join(pkg);
    let _ = fs::remove_dir_all(&tree);
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;
    Ok(tree)
}

/// Writes `contents` to `path` through a temporary file and a rename, so
/// that an interrupted run never leaves a truncated file that looks cached.
fn install(contents: &[u8], path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Runs `cmd`; its stdout, or an error with its output.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An initramfs (uncompressed newc cpio) holding a static busybox, the
/// applet links /init uses, /dev/console (the kernel opens it for init's
/// stdio before anything could mount devtmpfs) and `init`.
fn initrd(busybox: &[u8], init: &[u8]) -> Vec<u8> {
    const DIR: u32 = 0o040_755;
    const FILE: u32 = 0o100_755;
    const LINK: u32 = 0o120_777;
    const CHAR: u32 = 0o020_600;
    let mut cpio = Vec::new();
    let mut ino = 0;
    let mut entry = |name: &str, mode: u32, rdev: (u32, u32), data: &[u8]| {
        ino += 1;
        newc_entry(&mut cpio, ino, name, mode, rdev, data);
    };
    for dir in ["bin", "dev", "proc", "sys"] {
        entry(dir, DIR, (0, 0), b"");
    }
    entry("dev/console", CHAR, (5, 1), b"");
    entry("bin/busybox", FILE, (0, 0), busybox);
    for applet in ["sh", "mount", "echo", "poweroff"] {
        entry(&format!("bin/{applet}"), LINK, (0, 0), b"busybox");
    }
    entry("init", FILE, (0, 0), init);
    newc_entry(&mut cpio, 0, "TRAILER!!!", 0, (0, 0), b"");
    cpio
}

/// One cpio "newc" record: the 110-byte ASCII header, the NUL-terminated
/// name and the data, each padded to 4 bytes.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
    let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        u32::try_from(data.len()).expect("initrd file under 4 GiB"),
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        u32::try_from(name.len() + 1).expect("short name"),
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

// ---------------------------------------------------------------------------
// The lab: a testbed whose client end is bridged to QEMU's tap, the daemon.

/// The firmware a virtual machine starts with.
#[derive(Clone, Copy, Debug)]
enum Firmware {
    /// SeaBIOS and QEMU's e1000 ROM, which is iPXE: one stage.
    Bios,
    /// OVMF with a virtio NIC and no option ROM: EDK2 PXE fetches ipxe.efi
    /// over TFTP, and that iPXE fetches the script: two stages.
    Uefi,
}

/// A lab with QEMU's tap bridged to sbc0; its log shows the serial console.
fn qemu_lab(name: &str) -> Lab {
    let mut lab = Lab::new(name, None);
    lab.bed
        .bridge_client_tap(TAP)
        .unwrap_or_else(|e| panic!("bridging {TAP} to {CLIENT_IF}: {e:#}"));
    lab.also_log.push("serial.log");
    lab
}

/// What a boot left behind.
struct Boot {
    /// When QEMU was started and when the marker was seen, ms since the epoch.
    started_ms: u64,
    marker_ms: u64,
}

/// What the boot tests ask of a lab.
trait BootLab {
    fn tftp_root(&self) -> PathBuf;
    fn timeline(&self, mac: &str) -> Value;
    fn boot(&mut self, firmware: Firmware, mac: &str) -> Boot;
}

impl BootLab for Lab {
    /// A TFTP root in the scratch directory holding Debian's iPXE binaries.
    fn tftp_root(&self) -> PathBuf {
        let root = self.scratch.path("tftp");
        fs::create_dir_all(&root).expect("creating the TFTP root");
        for file in IPXE_FILES {
            let from = Path::new(IPXE_DIR).join(file);
            // fs::copy follows the symlink, so the copy is the binary.
            fs::copy(&from, root.join(file)).unwrap_or_else(|e| {
                panic!(
                    "copying {}: {e} (package ipxe: run `cargo xtask setup`)",
                    from.display()
                )
            });
        }
        root
    }

    /// `stormboot machine <mac> --json`: the machine's boot timeline.
    fn timeline(&self, mac: &str) -> Value {
        let mut cmd = self.stormboot(Side::Server);
        cmd.args(["machine", mac, "--json", "--config"])
            .arg(&self.config);
        let out = self
            .bed
            .run(Side::Server, cmd)
            .unwrap_or_else(|e| panic!("stormboot machine {mac}: {e:#}{}", self.log()));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stormboot machine {mac} --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Boots a virtual machine with `firmware` and NIC `mac` on the tap,
    /// until /init's marker appears on its serial console (then QEMU, which
    /// runs with -no-reboot, exits as the guest powers off) or the timeout
    /// passes (then it is killed and the test fails with both logs).
    fn boot(&mut self, firmware: Firmware, mac: &str) -> Boot {
        for path in [E1000_ROM, OVMF_CODE, OVMF_VARS] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: run `cargo xtask setup` (packages ipxe, ipxe-qemu, ovmf)"
            );
        }
        let mut qemu = Command::new("qemu-system-x86_64");
        // -nographic: SeaBIOS, iPXE and the kernel all write to the serial
        // port, which goes to stdout.
        qemu.args(["-nographic", "-m", "512", "-boot", "n", "-no-reboot"])
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={TAP},script=no,downscript=no"));
        match firmware {
            Firmware::Bios => {
                qemu.args(["-machine", "pc,accel=tcg", "-device"])
                    .arg(format!("e1000,netdev=n0,mac={mac},romfile={E1000_ROM}"));
            }
            Firmware::Uefi => {
                let vars = self.scratch.path("OVMF_VARS.fd");
                fs::copy(OVMF_VARS, &vars).expect("copying the OVMF variable store");
                qemu.args(["-machine", "q35,accel=tcg", "-drive"])
                    .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
                    .arg("-drive")
                    .arg(format!("if=pflash,format=raw,file={}", vars.display()))
                    // No option ROM: OVMF's own PXE is the first stage.
                    .arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac},romfile="))
                    .args(["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]);
            }
        }
        qemu.stdin(Stdio::null())
            .stdout(self.scratch.log_file("serial.log"))
            .stderr(self.scratch.log_file("qemu.log"));
        let started_ms = now_ms();
        let pid = self
            .bed
            .spawn(Side::Client, qemu)
            .expect("spawning qemu-system-x86_64 (package qemu-system-x86)");
        let marker = wait_for(BOOT_TIMEOUT, || {
            let serial = self.scratch.read("serial.log");
            if serial.contains(MARKER) {
                return Some(Ok(now_ms()));
            }
            if let Some(line) = GAVE_UP.iter().find(|l| serial.contains(*l)) {
                return Some(Err(format!(
                    "the firmware gave up ({line:?} on its console)"
                )));
            }
            match self.bed.wait(pid, Duration::ZERO) {
                Ok(None) => None,
                Ok(Some(status)) => Some(Err(format!("QEMU exited ({status}) before the marker"))),
                Err(e) => Some(Err(format!("{e:#}"))),
            }
        });
        let marker_ms = match marker {
            Some(Ok(ms)) => ms,
            Some(Err(why)) => {
                let _ = self.bed.kill(pid);
                panic!(
                    "{firmware:?} boot of {mac}: {why}\n--- qemu stderr ---\n{}{}",
                    self.scratch.read("qemu.log"),
                    self.log()
                )
            }
            None => {
                let _ = self.bed.kill(pid);
                panic!(
                    "{firmware:?} boot of {mac}: no {MARKER:?} within {BOOT_TIMEOUT:?}\n\
                     --- qemu stderr ---\n{}{}",
                    self.scratch.read("qemu.log"),
                    self.log()
                );
            }
        };
        // /init powers off right after the marker: QEMU exits by itself.
        if !matches!(self.bed.wait(pid, Duration::from_secs(10)), Ok(Some(_))) {
            let _ = self.bed.kill(pid);
        }
        Boot {
            started_ms,
            marker_ms,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The configuration every test starts from: the server, a subnet, the
/// boot services (TFTP from Debian's iPXE, HTTP from the boot image) and
/// one profile, "tiny", that boots the image with its console on ttyS0.
/// `panic=-1`: a kernel that cannot run /init reboots at once, and QEMU
/// exits, rather than hanging until the timeout.
fn config(tftp_root: &Path, dataplane: &str, subnet_extra: &str, reservation: &str) -> String {
    format!(
        r#"[server]
interface = "sb0"
address = "10.50.0.1"
dataplane = "{dataplane}"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
lease_time = "1h"
{subnet_extra}
{reservation}
[boot]
tftp_root = "{tftp_root}"
artifacts_dir = "{artifacts}"

[[profile]]
name = "tiny"
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0 panic=-1"
"#,
        tftp_root = tftp_root.display(),
        artifacts = artifacts_dir().display()
    )
}

fn reservation(mac: &str, ip: &str) -> String {
    format!("[[reservation]]\nmac = \"{mac}\"\nip = \"{ip}\"\nprofile = \"tiny\"\n")
}

/// The timeline's events as (phase, path, detail, at_ms).
fn events(timeline: &Value) -> Vec<Event> {
    timeline["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {timeline}"))
        .iter()
        .map(|e| {
            (
                e["phase"].as_str().unwrap_or("").to_owned(),
                e["path"].as_str().unwrap_or("").to_owned(),
                e["detail"].as_str().unwrap_or("").to_owned(),
                e["at_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// When the first event of `phase` (whose detail contains `detail`)
/// happened.
fn first(events: &[Event], phase: &str, detail: &str) -> Option<u64> {
    events
        .iter()
        .find(|(p, _, d, _)| p == phase && d.contains(detail))
        .map(|e| e.3)
}

/// Prints the time of every phase of a boot, from QEMU's start, and the
/// step from the phase before: the numbers a slow boot is judged by.
fn print_phases(name: &str, boot: &Boot, timeline: &Value) {
    let ev = events(timeline);
    let last_artifact = ev.iter().filter(|e| e.0 == "artifact").map(|e| e.3).max();
    let phases = [
        ("first offer", first(&ev, "offer", "")),
        ("first ack", first(&ev, "ack", "")),
        ("tftp", first(&ev, "tftp", "")),
        ("script", first(&ev, "script", "")),
        ("last artifact", last_artifact),
        ("marker", Some(boot.marker_ms)),
    ];
    let mut text = format!("{name}: phases from QEMU start (step from the previous phase)\n");
    let mut prev = boot.started_ms;
    for (phase, at) in phases {
        match at {
            Some(at) => {
                let secs = |ms: u64| ms as f64 / 1000.0;
                text += &format!(
                    "  {phase:<14} +{:>7.3} s  (+{:.3} s)\n",
                    secs(at.saturating_sub(boot.started_ms)),
                    secs(at.saturating_sub(prev))
                );
                prev = at;
            }
            None => text += &format!("  {phase:<14}        -\n"),
        }
    }
    text += "  timeline:\n";
    let t0 = timeline["first_ms"].as_u64().unwrap_or(0);
    for (phase, path, detail, at) in &ev {
        text += &format!(
            "    +{:>7.3} s {phase:<9} {path:<10} {detail}\n",
            at.saturating_sub(t0) as f64 / 1000.0
        );
    }
    // One write, so that the lines of one boot stay together in the log.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// What every boot test starts from (as root, one boot at a time): a lab
/// named `name` and its TFTP root.
fn boot_lab(name: &str) -> (MutexGuard<'static, ()>, Lab, PathBuf) {
    require_root();
    let one = one_boot_at_a_time();
    let lab = qemu_lab(name);
    let tftp = lab.tftp_root();
    (one, lab, tftp)
}

/// Asserts the XDP program acknowledged at least `n` requests.
fn assert_xdp_acks(lab: &Lab, n: u64) {
    let stats = lab.stats();
    assert!(xdp_counter(&stats, "ack") >= n, "{stats}");
}

/// Asserts the second stage came over TFTP, then the script, then
/// `artifact`: the order of a two-stage boot.
fn assert_two_stages(lab: &Lab, ev: &[Event], timeline: &Value, artifact: &str) {
    let tftp = at(lab, ev, timeline, "tftp", "ipxe.efi");
    let script = at(lab, ev, timeline, "script", "auto.ipxe");
    assert!(
        tftp <= script && script <= at(lab, ev, timeline, "artifact", artifact),
        "{timeline}"
    );
}

/// One timeline event: phase, path, detail, when.
type Event = (String, String, String, u64);

/// Boots `mac` with `firmware`, prints the phases under `test`'s name and
/// returns the machine's timeline and its events.
fn boot_and_trace(lab: &mut Lab, test: &str, firmware: Firmware, mac: &str) -> (Value, Vec<Event>) {
    let boot = lab.boot(firmware, mac);
    let timeline = lab.timeline(mac);
    print_phases(test, &boot, &timeline);
    let ev = events(&timeline);
    (timeline, ev)
}

/// Whether the timeline has a `phase` by `path` whose detail holds `detail`.
fn has(ev: &[Event], phase: &str, path: &str, detail: &str) -> bool {
    ev.iter()
        .any(|(p, pa, d, _)| p == phase && pa == path && d.contains(detail))
}

/// When the first `phase` whose detail holds `detail` happened; panics
/// with the timeline and the lab's logs if it never did.
fn at(lab: &Lab, ev: &[Event], timeline: &Value, phase: &str, detail: &str) -> u64 {
    first(ev, phase, detail)
        .unwrap_or_else(|| panic!("no {phase} ({detail:?}) in {timeline}{}", lab.log()))
}

#[test]
fn bios_ipxe_boots_through_xdp() {
    const MAC: &str = "52:54:00:00:00:01";
    let (_one, mut lab, tftp) = boot_lab("qemu-bios");
    lab.start(&config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.11")));
    assert!(
        lab.xdp_attached(Side::Server),
        "no XDP on {SERVER_IF}{}",
        lab.log()
    );
    let (timeline, ev) =
        boot_and_trace(&mut lab, "bios_ipxe_boots_through_xdp", Firmware::Bios, MAC);
    for phase in ["offer", "ack"] {
        assert!(
            has(&ev, phase, "xdp", ""),
            "no {phase} from XDP: {timeline}{}",
            lab.log()
        );
    }
    assert!(
        has(&ev, "script", "http", "auto.ipxe"),
        "{timeline}{}",
        lab.log()
    );
    for file in ["/artifacts/vmlinuz", "/artifacts/initrd.img"] {
        assert!(
            has(&ev, "artifact", "http", file),
            "{file} not fetched: {timeline}{}",
            lab.log()
        );
    }
    // The ROM is iPXE: its first request already gets the script, no binary.
    assert!(
        !ev.iter().any(|e| e.0 == "tftp"),
        "a single-stage boot fetched over TFTP: {timeline}"
    );
    assert_xdp_acks(&lab, 1);
}

/// The usual lab and container topology with the default configuration
/// (`xdp_mode` unset, so driver mode asked for): sb0 is a veth whose peer
/// is a port of a bridge with the machine's tap, and nothing runs XDP on
/// that peer. A veth drops driver-mode XDP_TX frames then; the daemon must
/// see it, attach in skb mode, say why once, and the machine must boot from
/// XDP's replies.
#[test]
fn bios_boots_through_a_veth_into_a_bridge_in_the_default_mode() {
    const MAC: &str = "52:54:00:00:00:07";
    let (_one, mut lab, tftp) = boot_lab("qemu-bridge");
    lab.pass_on_peer = false;
    let cfg = config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.17"));
    assert!(!cfg.contains("xdp_mode"), "the default mode is under test");
    lab.start(&cfg);
    let stats = lab.stats();
    let attached = &stats["xdp_attachments"][0];
    assert_eq!(attached["mode"], "skb", "{stats}{}", lab.log());
    let why = attached["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains(CLIENT_IF) && why.contains(CLIENT_BRIDGE),
        "the reason names the peer and its bridge: {stats}"
    );
    let warned = lab.log().matches("set xdp_mode = \"skb\"").count();
    assert_eq!(warned, 1, "the reason is logged once{}", lab.log());
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "bios_boots_through_a_veth_into_a_bridge_in_the_default_mode",
        Firmware::Bios,
        MAC,
    );
    for phase in ["offer", "ack"] {
        assert!(
            has(&ev, phase, "xdp", ""),
            "no {phase} from XDP: {timeline}{}",
            lab.log()
        );
    }
    assert!(has(&ev, "script", "http", "auto.ipxe"), "{timeline}");
    assert_xdp_acks(&lab, 1);
    assert_eq!(
        lab.metric(
            "stormboot_xdp_attached{interface=\"sb0\",mode=\"skb\",reason=\"driver-mode-replies-undelivered\"}"
        ),
        1
    );
}

#[test]
fn uefi_two_stage_boots_through_xdp() {
    const MAC: &str = "52:54:00:00:00:02";
    let (_one, mut lab, tftp) = boot_lab("qemu-uefi");
    lab.start(&config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.12")));
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "uefi_two_stage_boots_through_xdp",
        Firmware::Uefi,
        MAC,
    );
    let at = |phase: &str, detail: &str| at(&lab, &ev, &timeline, phase, detail);
    let tftp = at("tftp", "ipxe.efi");
    let script = at("script", "auto.ipxe");
    let kernel = at("artifact", "/artifacts/vmlinuz");
    let initrd = at("artifact", "/artifacts/initrd.img");
    assert!(
        at("ack", "") <= tftp && tftp <= script && script <= kernel.min(initrd),
        "phases out of order: {timeline}"
    );
    // Both stages (EDK2, then iPXE) were answered from the kernel.
    let xdp_acks = ev.iter().filter(|e| e.0 == "ack" && e.1 == "xdp").count();
    assert!(xdp_acks >= 2, "{timeline}{}", lab.log());
    assert_xdp_acks(&lab, 2);
}

#[test]
fn bios_boots_from_a_pool_with_the_userspace_dataplane() {
    const MAC: &str = "52:54:00:00:00:03";
    let (_one, mut lab, tftp) = boot_lab("qemu-pool");
    lab.start(&config(
        &tftp,
        "userspace",
        "pool = [\"10.50.0.100-10.50.0.199\"]\nprofile = \"tiny\"\n",
        "",
    ));
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "bios_boots_from_a_pool_with_the_userspace_dataplane",
        Firmware::Bios,
        MAC,
    );
    for phase in ["offer", "ack"] {
        assert!(
            has(&ev, phase, "userspace", ""),
            "no {phase} from userspace: {timeline}{}",
            lab.log()
        );
    }
    assert!(has(&ev, "script", "http", "auto.ipxe"), "{timeline}");
    for file in ["/artifacts/vmlinuz", "/artifacts/initrd.img"] {
        assert!(
            has(&ev, "artifact", "http", file),
            "{file} not fetched: {timeline}"
        );
    }
}

/// The same BIOS boot with `ipv6_ra = true`: the printed phase times, set
/// beside `bios_ipxe_boots_through_xdp`'s, show what the advertisement saves
/// (iPXE stops waiting for an IPv6 router). No timing is asserted.
#[test]
fn bios_boot_with_router_advertisement() {
    const MAC: &str = "52:54:00:00:00:03";
    let (_one, mut lab, tftp) = boot_lab("qemu-ra");
    let cfg = config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.13"))
        .replace("[boot]\n", "[boot]\nipv6_ra = true\n");
    lab.start(&cfg);
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "bios_boot_with_router_advertisement",
        Firmware::Bios,
        MAC,
    );
    assert!(
        lab.log().contains("sending IPv6 router advertisements"),
        "{}",
        lab.log()
    );
    assert!(
        ev.iter().any(|e| e.0 == "script"),
        "{timeline}{}",
        lab.log()
    );
}

/// What every dnsmasq here is given besides the addresses: a router, and
/// every DHCP exchange in its log.
const DNSMASQ_EXTRA: &str = "dhcp-option=option:router,10.50.0.1\nlog-dhcp\n";

/// Boot-only mode as a dnsmasq user would run it: dnsmasq gives the
/// addresses with exactly the lines `print-config --for dnsmasq` prints;
/// stormboot answers no DHCP and serves ipxe.efi, the script and the
/// artifacts to EDK2 and then iPXE.
#[test]
fn uefi_boots_beside_dnsmasq_in_boot_only_mode() {
    const MAC: &str = "52:54:00:00:00:04";
    let (_one, mut lab, tftp) = boot_lab("qemu-bootonly");
    lab.also_log.push("dnsmasq.log");
    let cfg = config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.14"))
        .replace("dataplane = \"xdp\"\n", "mode = \"boot-only\"\n");
    lab.write_config(&cfg);
    let snippet = lab.print_config("dnsmasq");
    lab.start_dnsmasq(
        Side::Server,
        SERVER_IF,
        &(DNSMASQ_EXTRA.to_owned() + &snippet),
    );
    lab.start(&cfg);
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "uefi_boots_beside_dnsmasq_in_boot_only_mode",
        Firmware::Uefi,
        MAC,
    );
    assert_two_stages(&lab, &ev, &timeline, "/artifacts/vmlinuz");
    // Every address came from dnsmasq: stormboot answered no DHCP at all.
    assert!(
        !ev.iter().any(|e| e.0 == "offer" || e.0 == "ack"),
        "stormboot answered DHCP in boot-only mode: {timeline}"
    );
    assert!(
        lab.dnsmasq_log().contains("DHCPACK"),
        "{}",
        lab.dnsmasq_log()
    );
}

/// proxyDHCP beside another server: dnsmasq (on the same segment, from the
/// client side's bridge, so the server's XDP program cannot take its
/// requests) gives the addresses and nothing else; stormboot in
/// `mode = "proxy"` adds the boot information from XDP in an OFFER to each
/// DISCOVER on port 67, never an address, and EDK2 then iPXE boot through
/// it. Their REQUESTs on port 67 select dnsmasq and are left to it: the
/// proxy sends no ACK there. Which ports carried what is read from a
/// capture at the machine's tap: the proxy's OFFERs come from port 67, and,
/// since they carry PXE discovery control 8 ("boot the file in this
/// offer"), neither firmware asks the boot-server port 4011 at all.
#[test]
fn uefi_boots_through_proxy_dhcp_beside_dnsmasq() {
    const MAC: &str = "52:54:00:00:00:05";
    let (_one, mut lab, tftp) = boot_lab("qemu-proxy");
    lab.also_log.push("dnsmasq.log");
    let mut add = Command::new("ip");
    add.args(["addr", "add", "10.50.0.2/24", "dev", CLIENT_BRIDGE]);
    lab.bed
        .run(Side::Client, add)
        .expect("addressing the bridge");
    lab.start_dnsmasq(Side::Client, CLIENT_BRIDGE, DNSMASQ_EXTRA);
    let cfg = config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.15"))
        .replace("dataplane = \"xdp\"\n", "mode = \"proxy\"\n");
    lab.start(&cfg);
    let capture = capture_on_tap(&mut lab);
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "uefi_boots_through_proxy_dhcp_beside_dnsmasq",
        Firmware::Uefi,
        MAC,
    );
    let (replies, captured) = proxy_replies(&mut lab, capture, MAC);
    assert_two_stages(&lab, &ev, &timeline, "/artifacts/initrd.img");
    // The address is dnsmasq's: the machine fetched from its pool, not from
    // the reservation, which a proxy never hands out.
    let leases = lab.scratch.read("dnsmasq.leases");
    assert!(
        leases.contains(MAC),
        "dnsmasq leased nothing to {MAC}: {leases:?}{}",
        lab.dnsmasq_log()
    );
    assert!(
        !ev.iter().any(|e| e.3 > 0 && e.2.contains("10.50.0.15")),
        "a proxy handed out the reserved address: {timeline}"
    );
    // A reserved machine's proxy offers come from the XDP program, for both
    // stages (EDK2, then iPXE); none from userspace.
    let xdp_offers = ev.iter().filter(|e| e.0 == "offer" && e.1 == "xdp").count();
    assert!(
        xdp_offers >= 2 && has(&ev, "offer", "xdp", "0.0.0.0"),
        "fewer than two proxy offers (no address) from XDP: {timeline}{}",
        lab.log()
    );
    assert!(
        !ev.iter().any(|e| e.1 == "userspace"),
        "a proxy reply from userspace: {timeline}"
    );
    // Both stages' REQUESTs for dnsmasq's address went unanswered.
    let stats = lab.stats();
    assert_eq!(xdp_counter(&stats, "ack"), 0, "{stats}");
    assert!(!ev.iter().any(|e| e.0 == "ack"), "{timeline}");
    assert!(
        stats["slow_path_outcomes"]["proxy-request-on-67"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{stats}"
    );
    // As the machine received them: both offers from port 67, and nothing
    // on the boot-server port, which the offers told it not to use.
    eprintln!("proxy replies at the machine's tap (type, source port): {replies:?}");
    let offers_from_67 = replies
        .iter()
        .filter(|r| **r == (MessageType::Offer, 67))
        .count();
    assert!(
        offers_from_67 >= 2,
        "not both proxy offers reached the machine from {SERVER_ADDR}:67; captured:{captured}"
    );
    assert!(
        !captured.contains(":4011"),
        "port 4011 was used although the offers carry discovery control 8; \
         captured:{captured}"
    );
}

/// Starts tcpdump on the machine's tap (in the client namespace) writing
/// every DHCP and boot-server datagram to tap.pcap; its PID.
fn capture_on_tap(lab: &mut Lab) -> u32 {
    let mut tcpdump = Command::new("tcpdump");
    tcpdump
        .args(["-i", TAP, "-n", "--immediate-mode", "-U", "-w"])
        .arg(lab.scratch.path("tap.pcap"))
        .arg("udp and (port 67 or port 68 or port 4011)")
        .stdout(Stdio::null())
        .stderr(lab.scratch.log_file("tcpdump.log"));
    let pid = lab
        .bed
        .spawn(Side::Client, tcpdump)
        .expect("spawning tcpdump (package tcpdump)");
    wait_for(Duration::from_secs(10), || {
        lab.scratch
            .read("tcpdump.log")
            .contains("listening on")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("tcpdump did not start: {}", lab.scratch.read("tcpdump.log")));
    pid
}

/// Stops the capture and returns the message type and UDP source port of
/// each reply the server (SERVER_ADDR) sent to `mac`, and every DHCP
/// message captured, one line each (for failure messages).
fn proxy_replies(lab: &mut Lab, capture: u32, mac: &str) -> (Vec<(MessageType, u16)>, String) {
    lab.bed.stop(capture).expect("stopping tcpdump");
    let pcap = fs::read(lab.scratch.path("tap.pcap")).expect("reading tap.pcap");
    let server: std::net::Ipv4Addr = SERVER_ADDR.parse().expect("an address");
    let chaddr: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("a MAC"))
        .collect();
    let mut replies = Vec::new();
    let mut all = String::new();
    for f in udp_frames(&pcap) {
        let Ok(msg) = Message::decode(&mut Decoder::new(&f.payload)) else {
            continue;
        };
        let Some(kind) = msg.opts().msg_type() else {
            continue;
        };
        all += &format!(
            "\n  {}:{} -> {}:{} {kind:?}",
            f.src, f.sport, f.dst, f.dport
        );
        if f.src == server && msg.chaddr().get(..6) == Some(&chaddr[..]) {
            replies.push((kind, f.sport));
        }
    }
    (replies, all)
}

/// The BIOS boot of `bios_ipxe_boots_through_xdp` with option 175.176 (no
/// ProxyDHCP wait) turned off: the printed phase times, set beside that
/// test's, show what the option saves. No timing is asserted; the boot must
/// still complete, for users who turn it off.
#[test]
fn bios_boot_without_no_pxedhcp() {
    const MAC: &str = "52:54:00:00:00:06";
    let (_one, mut lab, tftp) = boot_lab("qemu-pxedhcp");
    let cfg = config(&tftp, "xdp", "", &reservation(MAC, "10.50.0.16"))
        .replace("[boot]\n", "[boot]\nipxe_no_proxydhcp = false\n");
    lab.start(&cfg);
    let (timeline, ev) = boot_and_trace(
        &mut lab,
        "bios_boot_without_no_pxedhcp",
        Firmware::Bios,
        MAC,
    );
    assert!(
        ev.iter().any(|e| e.0 == "script"),
        "{timeline}{}",
        lab.log()
    );
}
