//! The `stormboot-lab` command line: the load generators, benchmarks and
//! helpers that measure a stormboot daemon from outside it. Their flags and
//! `--json` reports are the ones `stormboot` had before they moved here.

use clap::{Parser, Subcommand};
use stormboot::cli::ModeArg;

#[derive(Parser, Debug)]
#[command(
    name = "stormboot-lab",
    version,
    about = "Load generators and benchmarks for stormboot (not installed on servers)"
)]
pub struct Cli {
    /// Log filter (tracing/RUST_LOG syntax), e.g. "info" or "stormboot=debug".
    #[arg(long, env = "STORMBOOT_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a boot storm: N machines doing DHCP from one interface.
    Storm(super::storm::StormArgs),
    /// Offer known machines' DISCOVERs and REQUESTs at a fixed rate for a
    /// fixed time from several threads, and count every answer; with
    /// --pool, new machines' DISCOVERs, each OFFER answered with its
    /// REQUEST, every ACK counted.
    Rate(super::rate::RateArgs),
    /// Boot N machines through the whole chain: DHCP, the boot file over
    /// TFTP or HTTP, DHCP as iPXE, its script, the kernel and initrd.
    Chain(super::chain::ChainArgs),
    /// N machines download one file at once over HTTP, or their boot
    /// files over TFTP, each from its own address, with the chain's clients.
    Downloads(super::chain::DownloadArgs),
    /// Measure the XDP program's cost per packet (BPF_PROG_TEST_RUN; root).
    BenchXdp {
        /// Measured runs per case.
        #[arg(long, env = "STORMBOOT_BENCH_RUNS", default_value_t = 20_000)]
        runs: u32,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
        /// Only the one-run-per-call figures, not the live-frames ones.
        #[arg(long)]
        no_live: bool,
    },
    /// Measure how soon an API change is answered by the XDP program.
    BenchApi(super::apibench::Args),
    /// Measure OMAPI: hosts created per second on one connection, and how
    /// soon a created host is answered by the XDP program.
    BenchOmapi(super::omapibench::Args),
    /// Attach the pass-only XDP program to an interface until interrupted.
    /// A veth delivers XDP_TX frames only to a peer that runs XDP, so the
    /// client end of a lab link needs this.
    XdpPass {
        #[arg(long, env = "STORMBOOT_XDP_PASS_INTERFACE")]
        interface: String,
        #[arg(
            long,
            value_enum,
            env = "STORMBOOT_XDP_PASS_MODE",
            default_value = "driver"
        )]
        mode: ModeArg,
        /// Attach the counting program instead, which also counts and drops
        /// the replies to a `rate --tally` run, its maps pinned in this bpffs
        /// directory (removed on exit)
        #[arg(long)]
        tally: Option<std::path::PathBuf>,
    },
}

/// The names of the lab's subcommands, as typed.
pub fn command_names() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_has_the_load_generators_and_benchmarks() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert_eq!(
            command_names(),
            [
                "storm",
                "rate",
                "chain",
                "downloads",
                "bench-xdp",
                "bench-api",
                "bench-omapi",
                "xdp-pass"
            ]
        );
    }
}
