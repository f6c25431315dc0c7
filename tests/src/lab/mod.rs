//! The lab: what measures, loads and fuzzes stormboot from outside the
//! daemon. The `stormboot-lab` binary runs these; the end-to-end tests,
//! xtask and the fuzz targets use them. Behind the `lab` feature (on by
//! default) because it builds the daemon's crate, and with it the XDP
//! program.
//!
//! - `fixtures`: the fixtures' configuration and machines, the one builder
//!   of client requests and frames, the program loaded beside the
//!   userspace server
//! - `storm`: the boot-storm client (DHCP), and the engine the chain's
//!   machines get their leases from
//! - `rate`: known machines' requests offered at a fixed rate, every
//!   reply counted (the wire benchmark's generator)
//! - `poolrate`: `rate --pool`, new machines' DISCOVERs offered at a fixed
//!   rate, each OFFER answered with its REQUEST, the ACKs counted
//! - `chain`: the whole boot chain for many machines at once
//! - `tftpclient`: TFTP as boot firmware reads a file
//! - `xdpbench`: the program's cost per packet under BPF_PROG_TEST_RUN
//! - `mutate`: the fixtures' requests and a deterministic mutator of frames
//! - `xdplive`: the same in live-frames mode, on a veth of its own
//! - `testrun`: BPF_PROG_TEST_RUN through bpf(2), for live-frames mode
//! - `xdpdiff`: mutated frames through the program, checked against userspace
//! - `fuzz`: what the cargo-fuzz targets (fuzz/) call, with their checks
//! - `apibench`: from sending an API change to a different answer
//! - `omapibench`: OMAPI creates per second, create to XDP answer
//! - `cli`: the `stormboot-lab` command line

pub mod apibench;
pub mod chain;
pub mod cli;
pub mod fixtures;
pub mod fuzz;
pub mod generate;
pub mod mutate;
pub mod omapibench;
pub mod poolrate;
pub mod rate;
pub mod storm;
pub mod tally;
pub mod testrun;
pub mod tftpclient;
pub mod xdpbench;
pub mod xdpdiff;
pub mod xdplive;

/// A report as JSON on stdout, what `--json` asks of every lab command.
fn print_json<T: serde::Serialize>(report: &T) {
    match serde_json::to_string_pretty(report) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cannot render report as JSON: {e}"),
    }
}
