//! `stormboot-lab bench-omapi`: how fast hosts are created over one OMAPI
//! connection, and how soon an OMAPI create is answered by the XDP
//! program.
//!
//! Phase 1 creates `--hosts` hosts one after another on one connection
//! (each reply waited for, as Foreman and MAAS do) and reports the rate.
//! Phase 2 cycles `--cycles` times: create a host for the probe MAC, then
//! DISCOVER from the client side until it is offered the host's address
//! (the latency is from sending the create to the send of the first probe
//! that saw it: what an operator waits for), then delete it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use stormboot::omapi::auth::{Algorithm, Key};
use stormboot::omapi::client::{create_host, result_of, Client};
use stormboot::omapi::wire::{self, Message};

use super::apibench::{open_socket, Prober, Want};
pub use crate::reports::{OmapiReport as Report, Stat};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The OMAPI listener.
    #[arg(long, env = "STORMBOOT_BENCH_OMAPI", default_value = "127.0.0.1:7911")]
    pub omapi: SocketAddr,
    /// Key name; with --secret (base64, HMAC-MD5).
    #[arg(long, env = "STORMBOOT_OMAPI_KEY_NAME", default_value = "omkey")]
    pub key_name: String,
    #[arg(long, env = "STORMBOOT_OMAPI_SECRET")]
    pub secret: Option<String>,
    /// Hosts created for the rate.
    #[arg(long, env = "STORMBOOT_BENCH_HOSTS", default_value_t = 10_000)]
    pub hosts: u32,
    /// Address of the first created host; the rest follow it.
    #[arg(long, env = "STORMBOOT_BENCH_FIRST_IP", default_value = "10.96.0.1")]
    pub first_ip: Ipv4Addr,
    /// Create/delete cycles measured on the wire.
    #[arg(long, env = "STORMBOOT_BENCH_CYCLES", default_value_t = 200)]
    pub cycles: u32,
    /// The probe machine's address (no reservation before).
    #[arg(long, env = "STORMBOOT_BENCH_PROBE_IP", default_value = "10.120.0.1")]
    pub probe_ip: Ipv4Addr,
    /// The client-side interface the probes are sent from.
    #[arg(long, env = "STORMBOOT_BENCH_INTERFACE")]
    pub interface: String,
    /// Open the probe socket in this network namespace.
    #[arg(long, env = "STORMBOOT_BENCH_NETNS")]
    pub netns: Option<String>,
    #[arg(long, env = "STORMBOOT_BENCH_TIMEOUT_MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    #[arg(long, env = "STORMBOOT_BENCH_PROBE_US", default_value_t = 5000)]
    pub probe_us: u64,
    #[arg(long, env = "STORMBOOT_JSON")]
    pub json: bool,
}

fn delete_by_mac(c: &mut Client, mac: [u8; 6]) -> anyhow::Result<()> {
    let r = c.call(Message {
        op: wire::OP_OPEN,
        message: vec![("type".into(), b"host".to_vec())],
        object: vec![("hardware-address".into(), mac.to_vec())],
        ..Default::default()
    })?;
    if r.op != wire::OP_UPDATE {
        return Ok(());
    }
    let d = c.call(Message {
        op: wire::OP_DELETE,
        handle: r.handle,
        ..Default::default()
    })?;
    if result_of(&d) != 0 {
        bail!("delete refused: {:#x}", result_of(&d));
    }
    Ok(())
}

pub fn measure(args: &Args) -> anyhow::Result<Report> {
    let key = match &args.secret {
        Some(s) => Some(Key {
            name: args.key_name.clone(),
            algorithm: Algorithm::HmacMd5,
            secret: base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .context("--secret is not base64")?,
        }),
        None => None,
    };
    let mut c = Client::connect(args.omapi, key)?;
    let mut rtt = Vec::with_capacity(args.hosts as usize);
    let first = u32::from(args.first_ip);
    let started = Instant::now();
    for i in 0..args.hosts {
        let b = i.to_be_bytes();
        let mac = [0x0e, 0xb0, b[0], b[1], b[2], b[3]];
        let t = Instant::now();
        let r = c.call(create_host(
            &format!("bench-{i}"),
            mac,
            Ipv4Addr::from(first + i),
        ))?;
        rtt.push(t.elapsed().as_micros() as u64);
        if r.op != wire::OP_UPDATE {
            bail!("create {i} refused: {:#x}", result_of(&r));
        }
    }
    let create_seconds = started.elapsed().as_secs_f64();

    let probe_mac = [0x0e, 0xb1, 0, 0, 0, 1];
    let mut prober = Prober {
        sock: open_socket(&args.interface, args.netns.as_deref())?,
        mac: probe_mac,
        xid: rand::random(),
        wait: Duration::from_micros(args.probe_us),
        buf: vec![0; 2048],
        server: None,
        eth_dst: stormboot::frame::BROADCAST_MAC,
    };
    prober.sock.filter_udp_ports(68, 68)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    delete_by_mac(&mut c, probe_mac)?;
    let (mut visible, mut timeouts, mut first_probe) = (Vec::new(), 0, 0);
    for _ in 0..args.cycles {
        // From sending the create, as an operator waits: the reply's
        // round trip is part of the figure.
        let sent = Instant::now();
        let r = c.call(create_host("bench-probe", probe_mac, args.probe_ip))?;
        if r.op != wire::OP_UPDATE {
            bail!("probe create refused: {:#x}", result_of(&r));
        }
        match prober.until(Want::Offer(args.probe_ip), sent, timeout)? {
            Some((seen, probes)) => {
                visible.push(seen.saturating_duration_since(sent).as_micros() as u64);
                first_probe += u64::from(probes == 1);
            }
            None => timeouts += 1,
        }
        delete_by_mac(&mut c, probe_mac)?;
    }
    Ok(Report {
        hosts: args.hosts,
        create_seconds,
        creates_per_second: f64::from(args.hosts) / create_seconds.max(1e-9),
        create_rtt: Stat::of(rtt),
        visible: Stat::of(visible),
        timeouts,
        seen_by_first_probe: first_probe,
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let r = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{} hosts created over one OMAPI connection in {:.2} s: {:.0}/s (round trip p50 {} µs, p99 {} µs)",
        r.hosts, r.create_seconds, r.creates_per_second, r.create_rtt.p50_us, r.create_rtt.p99_us
    );
    println!(
        "OMAPI create -> XDP answers: {} cycles, p50 {} µs, p99 {} µs, max {} µs ({} timeouts, {} seen by the first probe)",
        r.visible.changes, r.visible.p50_us, r.visible.p99_us, r.visible.max_us, r.timeouts, r.seen_by_first_probe
    );
    Ok(())
}
