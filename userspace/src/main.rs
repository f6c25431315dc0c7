//! The `stormboot` binary: a thin front over the library.

use anyhow::Context;
use clap::Parser;
use stormboot::cli::{Cli, Command};
use stormboot::config::Config;
use tokio_util::sync::CancellationToken;

/// Open files below which the daemon warns: each download in flight holds
/// two (its connection and its file), and a rack boots thousands at once.
const MIN_OPEN_FILES: u64 = 8192;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    stormboot::logging::init(&cli.log);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stormboot: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Cancels the token on SIGTERM or SIGINT; on SIGUSR2 too, after setting
/// `handover`, so the pinned program keeps answering for the next daemon.
async fn on_signal(
    token: CancellationToken,
    handover: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = usr2.recv() => {
            tracing::info!("SIGUSR2: exiting, the XDP program stays for the next daemon");
            handover.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    token.cancel();
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, xdp_mode } => {
            let t = std::time::Instant::now();
            let xdp_mode = xdp_mode.map(Into::into);
            // The program loads (the kernel verifies it) while the
            // reservations file is parsed.
            let mut preloaded = None;
            let cfg = Config::load_outlined(&config, &mut |o| {
                preloaded = stormboot::serve::preload(&o, xdp_mode)
            })?;
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            match stormboot::limits::raise_open_files() {
                Ok(l) if l.now < MIN_OPEN_FILES => tracing::warn!(
                    "open files: the hard limit is {}; downloads past about half of it \
                     wait for a descriptor (raise LimitNOFILE= or ulimit -Hn)",
                    l.now
                ),
                Ok(l) => tracing::debug!(from = l.before, to = l.now, "open files limit"),
                Err(e) => tracing::warn!("open files: cannot raise the limit: {e}"),
            }
            tracing::info!(
                reservations = cfg.reservations.len(),
                ms = t.elapsed().as_millis() as u64,
                "configuration loaded"
            );
            let opts = stormboot::serve::ServeOptions {
                xdp_mode,
                handover: Default::default(),
                config_path: Some(config.clone()),
            };
            runtime()?.block_on(async move {
                let token = CancellationToken::new();
                tokio::spawn(on_signal(token.clone(), opts.handover.clone()));
                let mut io = stormboot::serve::Io::open(&cfg, &opts, token).await?;
                io.preloaded = preloaded;
                stormboot::serve::run(cfg, opts, io).await
            })
        }
        Command::InstallService {
            config,
            unit_dir,
            no_reload,
        } => {
            let binary = std::env::current_exe().context("finding this binary's path")?;
            let config = std::path::absolute(&config).context("resolving --config")?;
            if !config.exists() {
                eprintln!(
                    "stormboot: warning: {} does not exist yet; the service will not start without it",
                    config.display()
                );
            }
            let done = stormboot::service::install(&unit_dir, &binary, &config, !no_reload)?;
            println!("wrote {}", done.unit.display());
            if !done.reloaded {
                println!("systemd was not reloaded: run `systemctl daemon-reload` where it runs");
            }
            println!("then: systemctl enable --now stormboot");
            Ok(())
        }
        Command::Detach { config } => {
            let cfg = Config::load(&config)?;
            let pins = stormboot::dataplane::Pins::for_instance(
                &cfg.server.bpffs_dir,
                &cfg.server.interfaces,
            )?;
            let removed = pins
                .remove_all()
                .with_context(|| format!("removing the pins under {}", pins.dir().display()))?;
            if removed.is_empty() {
                println!("nothing pinned under {}", pins.dir().display());
            }
            for p in removed {
                println!("removed {}", p.display());
            }
            Ok(())
        }
        Command::CheckConfig { config } => {
            let cfg = Config::load(&config)?;
            for w in &cfg.warnings {
                eprintln!("stormboot: warning: {w}");
            }
            println!(
                "{}: ok: interface {}, server {}, {} subnet(s), {} reservation(s)",
                config.display(),
                cfg.server.interfaces.join(","),
                cfg.server.address,
                cfg.subnets.len(),
                cfg.reservations.len()
            );
            Ok(())
        }
        Command::Stats { daemon, json } => {
            let body = daemon.client()?.get("/api/v1/stats")?;
            if json {
                println!("{body}");
            } else {
                let snap: stormboot::stats::Snapshot =
                    serde_json::from_str(&body).context("decoding the daemon's stats")?;
                print!("{}", snap.table());
            }
            Ok(())
        }
        Command::PrintConfig { peer, config } => {
            let cfg = Config::load(&config)?;
            print!("{}", stormboot::peerconfig::render(&cfg, peer));
            Ok(())
        }
        Command::Machines { daemon, json } => {
            let body = daemon.client()?.get("/api/v1/machines")?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let machines: Vec<stormboot::timeline::Machine> =
                serde_json::from_str(&body).context("decoding the daemon's machines")?;
            println!("{:<18} {:<10} {:>8}", "MAC", "PHASE", "AGE (s)");
            let now = stormboot::timeline::now_ms();
            for m in machines {
                let phase = m
                    .phase
                    .map(|p| format!("{p:?}").to_lowercase())
                    .unwrap_or_default();
                println!(
                    "{:<18} {:<10} {:>8}",
                    m.mac,
                    phase,
                    now.saturating_sub(m.last_ms) / 1000
                );
            }
            Ok(())
        }
        Command::Machine { mac, daemon, json } => {
            let body = daemon.client()?.get(&format!("/api/v1/machines/{mac}"))?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let m: stormboot::timeline::Machine =
                serde_json::from_str(&body).context("decoding the machine's timeline")?;
            println!("{}", m.mac);
            for e in m.events {
                let t = e.at_ms.saturating_sub(m.first_ms);
                println!(
                    "  +{:>7.3}s  {:<9} {:<10} {}",
                    t as f64 / 1000.0,
                    format!("{:?}", e.phase).to_lowercase(),
                    e.path,
                    e.detail
                );
            }
            Ok(())
        }
        Command::Reservation(args) => stormboot::api::cmd::reservation(args),
        Command::Lease(args) => stormboot::api::cmd::lease(args),
        Command::History {
            ip,
            limit,
            daemon,
            json,
        } => stormboot::api::cmd::history(&daemon, &ip, limit, json),
        Command::Cluster { daemon, json } => stormboot::api::cmd::cluster(&daemon, json),
        Command::Import(args) => stormboot::import::run(&args),
        Command::Completions { shell } => {
            use std::io::Write;
            std::io::stdout().write_all(&stormboot::clidocs::completions(shell))?;
            Ok(())
        }
        Command::Man => {
            use std::io::Write;
            std::io::stdout().write_all(&stormboot::clidocs::man()?)?;
            Ok(())
        }
    }
}
