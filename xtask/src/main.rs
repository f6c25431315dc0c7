//! `cargo xtask`: project automation. `setup` installs what the build and
//! the tests need, `test` runs every test, `lab` runs a boot storm in
//! network namespaces, `build` builds the release binary.

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
    /// Set up, build, and run a boot storm against stormboot in network
    /// namespaces.
    Lab(lab::LabArgs),
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
            lab::run(&args)
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
    // The end-to-end tests run the binary, so build it first.
    sh::cargo(&["build", "-p", "stormboot"])?;
    sh::cargo(&["test", "--workspace", "--no-fail-fast"])
}
