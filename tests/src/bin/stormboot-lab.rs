//! `stormboot-lab`: the lab's load generators and benchmarks, a binary of
//! their own so that the `stormboot` a host installs has the operator's
//! commands only.

use clap::Parser;
use stormboot_testbed::lab::cli::{Cli, Command};
use stormboot_testbed::lab::{apibench, chain, omapibench, poolrate, rate, storm, xdpbench};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    stormboot::logging::init(&cli.log);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stormboot-lab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Storm(args) => {
            let report = storm::run(&args)?;
            storm::print_report(&report, args.json);
            Ok(())
        }
        Command::Rate(args) if args.pool => {
            let report = poolrate::run(&args)?;
            poolrate::print_report(&report, args.json);
            Ok(())
        }
        Command::Rate(args) => {
            let report = rate::run(&args)?;
            rate::print_report(&report, args.json);
            Ok(())
        }
        Command::Chain(args) => {
            let report = chain::run(&args)?;
            chain::print_report(&report, args.json);
            Ok(())
        }
        Command::Downloads(args) => {
            let report = chain::downloads(&args)?;
            chain::print_downloads(&report, args.json);
            Ok(())
        }
        Command::BenchXdp {
            runs,
            json,
            no_live,
        } => {
            let cases = xdpbench::run(&xdpbench::Options {
                runs,
                live: !no_live,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cases)?);
            } else {
                xdpbench::print(&cases);
            }
            Ok(())
        }
        Command::BenchApi(args) => apibench::run(&args),
        Command::BenchOmapi(args) => omapibench::run(&args),
        Command::XdpPass {
            interface,
            mode,
            tally,
        } => xdp_pass(&interface, mode, tally.as_deref()),
    }
}

/// Holds the pass-only program (or, with `tally`, the counting one) on
/// `interface` until SIGTERM or SIGINT.
fn xdp_pass(
    interface: &str,
    mode: stormboot::cli::ModeArg,
    tally: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // Blocked before attaching, so a signal that comes early waits for
    // `wait` instead of killing the process with the program attached.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;
    let _attached = match tally {
        Some(dir) => stormboot::dataplane::attach_tally(interface, mode.into(), dir)?,
        None => stormboot::dataplane::attach_pass(interface, mode.into())?,
    };
    tracing::info!(%interface, counting = tally.is_some(), "pass-only XDP program attached");
    let signal = signals.wait()?;
    if let Some(dir) = tally {
        let _ = std::fs::remove_dir_all(dir);
    }
    tracing::info!(%interface, ?signal, "pass-only XDP program detached");
    Ok(())
}
