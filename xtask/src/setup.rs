//! `cargo xtask setup`: installs, idempotently, what building and testing
//! need on Debian 12, and says which eBPF toolchain it will use.
//!
//! The eBPF crate needs a compiler with nightly features, the exact source
//! of its `core`, and bpf-linker built against the same LLVM major. Debian
//! ships the matching pair (rustc-web + rust-web-src, LLVM 22), which works
//! without network access to rustup; a rustup nightly with rust-src is
//! used where Debian's is absent.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::sh;

/// Debian packages: the eBPF toolchain, then the programs the tests run.
const PACKAGES: &[&str] = &[
    // eBPF toolchain (see build.rs)
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    // real DHCP clients and the tools the tests and the lab drive
    "isc-dhcp-client",
    "udhcpc",
    "busybox",
    "iproute2",
    "util-linux",
    "iputils-ping",
    // the peers `cargo xtask bench` measures stormboot beside, and its load
    // generator (perfdhcp comes with kea-admin)
    "kea-dhcp4-server",
    "kea-admin",
    // more peers: ISC dhcpd (run directly in the lab, never as the
    // system service) and coredhcp
    "isc-dhcp-server",
    "coredhcp-server",
    // tests/omapi.rs: MAAS 3.0-3.5's OMAPI client (omshell and dhcpd's
    // parser come with isc-dhcp-server)
    "python3-pypureomapi",
    // the DHCP server boot-only mode is tested beside; its
    // dnsmasq.conf.example is also read by the `stormboot import` tests
    "dnsmasq-base",
    // `stormboot import` is also tested on the example configurations
    // isc-dhcp-server and this ship (MPL-2.0, so read in place, not copied
    // into the repository)
    "kea-doc",
    // the pool tests: another client, a relay agent, the lease database's
    // shell, a packet capture, and the DECLINE/INFORM probe's interpreter
    "dhcpcd-base",
    "isc-dhcp-relay",
    "sqlite3",
    "tcpdump",
    // the PostgreSQL store's tests run their own private server (initdb and
    // postgres from postgresql-15, on a Unix socket in a scratch directory);
    // policy-rc.d below keeps the package's own cluster from starting
    "postgresql",
    "python3",
    // tests/dashboard.rs: the dashboard in a real browser, headless,
    // driven through WebDriver
    "chromium",
    "chromium-driver",
    // tests/qemu.rs: real firmware (SeaBIOS, OVMF, iPXE's NIC ROMs and
    // binaries) under QEMU. Its kernel and busybox-static are fetched with
    // `apt-get download`, not installed: busybox-static conflicts with the
    // busybox above.
    "qemu-system-x86",
    "ipxe-qemu",
    "ovmf",
    "ipxe",
    // the boot chain's peers (storm-e2e, tests/storm_e2e.rs): nginx for
    // HTTP beside dnsmasq and Kea (and the yardstick of the boot HTTP
    // port's throughput), tftpd-hpa beside Kea; run in the lab's
    // namespaces with their own configuration, never as system services
    "nginx",
    "tftpd-hpa",
    // systemd-analyze checks the shipped unit
    "systemd",
    // the tests fetch scripts, files and /metrics as a machine would
    "curl",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// cargo-fuzz, for the fuzz targets in fuzz/ (`cargo xtask fuzz`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn require_root(why: &str) -> Result<()> {
    stormboot_testbed::check_privileges()
        .map_err(|e| anyhow::anyhow!("{why}: {e}; run as root (CI does)"))
}

pub fn run() -> Result<()> {
    if Path::new("/usr/bin/apt-get").exists() {
        install_packages()?;
    } else {
        eprintln!("setup: no apt-get here; checking for the tools instead");
    }
    install_bpf_linker()?;
    install_cargo_fuzz()?;
    report_toolchain()
}

fn install_cargo_fuzz() -> Result<()> {
    let bin = cargo_bin("cargo-fuzz");
    if let Ok(v) = sh::output(Command::new(&bin).arg("--version")) {
        if v.contains(CARGO_FUZZ_VERSION) {
            eprintln!("setup: {}", v.trim());
            return Ok(());
        }
    }
    sh::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ]),
    )
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn install_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present");
        return Ok(());
    }
    require_root(&format!("installing {}", missing.join(" ")))?;
    sh::run(Command::new("apt-get").args(["update", "-q"]))?;
    // The peer servers are run by the benchmark in its namespaces, never
    // as system services: Debian's policy-rc.d hook keeps their packages
    // from starting them on install (put in place only for this install,
    // and only where no policy exists already).
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(
            policy,
            "#!/bin/sh\n# cargo xtask setup: start no services\nexit 101\n",
        )?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let installed = sh::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if own_policy {
        std::fs::remove_file(policy)?;
    }
    installed
}

fn cargo_bin(name: &str) -> std::path::PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cargo")
        });
    home.join("bin").join(name)
}

fn install_bpf_linker() -> Result<()> {
    let bin = cargo_bin("bpf-linker");
    if let Ok(v) = sh::output(Command::new(&bin).arg("--version")) {
        if v.contains(BPF_LINKER_VERSION) {
            eprintln!("setup: {}", v.trim());
            return Ok(());
        }
    }
    let llvm = Path::new("/usr/lib/llvm-22/bin");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
    ]);
    if llvm.exists() {
        // Without LLVM 22 first in PATH its build looks in /usr and fails
        // with "unable to find library -lLLVM".
        cmd.args(["--no-default-features", "--features", "llvm-22"]);
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                llvm.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    sh::run(&mut cmd)
}

fn report_toolchain() -> Result<()> {
    let debian = Path::new("/usr/bin/rustc").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").exists();
    if debian {
        let v = sh::output(Command::new("/usr/bin/rustc").arg("--version"))?;
        eprintln!(
            "setup: eBPF toolchain: Debian {} with rust-web-src (RUSTC_BOOTSTRAP)",
            v.trim()
        );
        return Ok(());
    }
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match nightly {
        Some(sysroot)
            if Path::new(&sysroot)
                .join("lib/rustlib/src/rust/library/core")
                .exists() =>
        {
            eprintln!("setup: eBPF toolchain: rustup nightly with rust-src ({sysroot})");
            Ok(())
        }
        _ => bail!(
            "no eBPF toolchain: need Debian's rustc-web + rust-web-src, or a rustup nightly \
             with the rust-src component (`rustup toolchain install nightly --component rust-src`)"
        ),
    }
}
