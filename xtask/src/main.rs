//! `cargo xtask`: project automation. `setup` installs what the build and
//! the tests need, `test` runs every test (and a smoke run of the
//! benchmark), `lab` runs a boot storm in network namespaces, `bench`
//! measures stormboot beside its peers, `build` builds the release binary.

mod bench;
mod deps;
mod fuzz;
mod lab;
mod setup;
mod sh;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install (idempotently) the toolchain and test clients.
    Setup,
    /// Set up, then build the release binary (the eBPF object is embedded).
    Build,
    /// Set up, build, lint, then run every test: unit, BPF_PROG_TEST_RUN
    /// fixtures and end-to-end tests in network namespaces (needs root).
    Test,
    /// Set up, build stormboot and stormboot-lab, and run a boot storm
    /// against stormboot in network namespaces.
    Lab(lab::LabArgs),
    /// Set up, build, and measure stormboot beside its peers (Kea, dnsmasq,
    /// ISC dhcpd, coredhcp) on the same lab.
    Bench(bench::BenchArgs),
    /// Set up, then fuzz: each cargo-fuzz target for a while, then
    /// millions of mutated frames through the XDP program (needs root).
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::run(),
        Cmd::Build => {
            setup::run()?;
            sh::cargo(&["build", "--release", "-p", "stormboot"])
        }
        Cmd::Test => test(),
        Cmd::Lab(args) => {
            setup::run()?;
            sh::cargo(&["build", "--release", "-p", "stormboot"])?;
            build_lab(true)?;
            lab::run(&args)
        }
        Cmd::Bench(args) => {
            setup::run()?;
            if args.measures_this_checkout() {
                sh::cargo(&["build", "--release", "-p", "stormboot"])?;
            }
            // The lab measures, in release: a debug storm client would
            // measure itself.
            if args.measures_with_this_lab() {
                build_lab(true)?;
            }
            bench::run(&args)
        }
        Cmd::Fuzz(args) => {
            setup::run()?;
            fuzz::run(&args)
        }
    }
}

fn test() -> Result<()> {
    setup::require_root("the tests load XDP programs and create network namespaces")?;
    setup::run()?;
    sh::cargo(&["fmt", "--all", "--", "--check"])?;
    sh::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    lint_ebpf()?;
    // The end-to-end tests run the daemon and the lab: build them, and
    // name them, so they never pick up an older release build.
    sh::cargo(&["build", "-p", "stormboot"])?;
    build_lab(false)?;
    let bins = bench::Bins::debug();
    std::env::set_var("STORMBOOT_BIN", &bins.daemon);
    std::env::set_var("STORMBOOT_LAB_BIN", &bins.lab);
    sh::cargo(&["test", "--workspace", "--no-fail-fast"])?;
    // A bounded run of each fuzz target from its seeds.
    fuzz::smoke()?;
    // The benchmark harness, tiny: every server must still answer.
    bench::smoke(&bins)
}

/// Builds `stormboot-lab` (the storm client, the benchmarks, xdp-pass),
/// optimised or not.
fn build_lab(release: bool) -> Result<()> {
    let mut args = vec!["build", "-p", "stormboot-testbed", "--bin", "stormboot-lab"];
    if release {
        args.push("--release");
    }
    sh::cargo(&args)
}

/// Lints the eBPF crate on its own (feature unification with the host
/// crates would otherwise hide its problems). Debian ships no clippy for the
/// compiler that builds it, so it is checked for the host target with the
/// host's clippy: the same source, the same lints.
fn lint_ebpf() -> Result<()> {
    let dir = sh::root().join("bpf/xdp");
    sh::run(
        std::process::Command::new("cargo")
            .current_dir(&dir)
            .args(["fmt", "--", "--check"]),
    )?;
    sh::run(std::process::Command::new("cargo").current_dir(&dir).args([
        "clippy",
        "--target",
        "x86_64-unknown-linux-gnu",
        "--target-dir",
        "../../target/ebpf-clippy",
        "--",
        "-D",
        "warnings",
    ]))
}
