//! `cargo xtask fuzz`: the cargo-fuzz targets in fuzz/ (the userspace
//! request path and the config parser), each for a while, then millions of
//! mutated frames through the XDP program checked against userspace
//! (tests/xdp_mutations.rs). `smoke` is the short, bounded run
//! `cargo xtask test` makes.
//!
//! cargo-fuzz runs on the toolchain the workspace builds with:
//! RUSTC_BOOTSTRAP=1 unlocks the few nightly flags it passes, and without
//! a sanitizer (`-s none`: the code under test is safe Rust) no nightly
//! runtime is needed.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::sh;

/// The fuzz targets (fuzz/fuzz_targets/*.rs).
pub const TARGETS: [&str; 2] = ["request_frame", "config_text"];

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per fuzz target.
    #[arg(long, default_value_t = 600)]
    pub time: u64,
    /// Mutated frames through the XDP program (BPF_PROG_TEST_RUN).
    #[arg(long, default_value_t = 20_000_000)]
    pub xdp_frames: u64,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sh::root().join("target"))
}

fn cargo_fuzz(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.arg("fuzz")
        .args(args)
        .current_dir(sh::root())
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir().join("fuzz"));
    c
}

/// Runs `target` with libFuzzer's `limits` (e.g. `-max_total_time=60`):
/// new inputs go to a working corpus under the target directory, the
/// committed seeds (fuzz/corpus/<target>) are read. A crash fails the run
/// and leaves its input in fuzz/artifacts/<target>/.
fn run_target(target: &str, limits: &[String]) -> Result<()> {
    let work = target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work)?;
    let seeds = sh::root().join("fuzz/corpus").join(target);
    let mut c = cargo_fuzz(&["run", "--fuzz-dir", "fuzz", "-O", "-s", "none", target]);
    c.arg(&work).arg(&seeds).arg("--").args(limits);
    sh::run(&mut c)
}

fn build() -> Result<()> {
    sh::run(&mut cargo_fuzz(&[
        "build",
        "--fuzz-dir",
        "fuzz",
        "-O",
        "-s",
        "none",
    ]))
}

/// The long run.
pub fn run(args: &FuzzArgs) -> Result<()> {
    build()?;
    for t in TARGETS {
        run_target(t, &[format!("-max_total_time={}", args.time)])?;
    }
    xdp(args.xdp_frames)
}

/// The bounded run of `cargo xtask test`: every seed, then a few thousand
/// mutations per target.
pub fn smoke() -> Result<()> {
    build()?;
    for t in TARGETS {
        run_target(
            t,
            &["-runs=30000".to_string(), "-max_total_time=60".to_string()],
        )?;
    }
    Ok(())
}

/// `frames` mutated frames through the XDP program, the test built
/// optimised, which is what makes millions fit.
fn xdp(frames: u64) -> Result<()> {
    crate::setup::require_root("BPF_PROG_TEST_RUN loads the XDP program")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "test",
        "--release",
        "-p",
        "stormboot-testbed",
        "--test",
        "xdp_mutations",
        "--",
        "--nocapture",
    ])
    .current_dir(sh::root())
    .env("STORMBOOT_XDP_MUTATIONS", frames.to_string());
    sh::run(&mut c)
}
