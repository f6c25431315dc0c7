//! The CLI commands that talk to a running daemon through the API:
//! `stormboot reservation add|rm|list|show|bulk` and
//! `stormboot lease list|rm`.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::Client;
use super::types::{
    BulkResult, LeasePage, LeaseView, OptionSpec, ReservationPage, ReservationSpec, ReservationView,
};
use crate::cli::DaemonArgs;

#[derive(Args, Debug)]
pub struct ReservationArgs {
    #[command(subcommand)]
    pub command: ReservationCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReservationCommand {
    /// Reserve an address for a machine; the daemon answers it at once.
    Add {
        #[arg(long, env = "STORMBOOT_MAC")]
        mac: String,
        #[arg(long, env = "STORMBOOT_IP")]
        ip: String,
        #[arg(long, env = "STORMBOOT_HOSTNAME")]
        hostname: Option<String>,
        /// A `[[profile]]` of the daemon's configuration.
        #[arg(long, env = "STORMBOOT_PROFILE")]
        profile: Option<String>,
        /// A custom option, CODE:TYPE:VALUE (e.g. 66:string:tftp.example);
        /// repeatable.
        #[arg(long = "option", env = "STORMBOOT_OPTION")]
        options: Vec<String>,
        /// Replace the machine's reservation if it has one.
        #[arg(long, env = "STORMBOOT_REPLACE")]
        replace: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Remove a machine's reservation; its requests go to the pools.
    Rm {
        mac: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List reservations (every page, unless --limit).
    List {
        #[arg(long, env = "STORMBOOT_SUBNET")]
        subnet: Option<String>,
        #[arg(long, env = "STORMBOOT_PROFILE")]
        profile: Option<String>,
        /// config, api or omapi.
        #[arg(long, env = "STORMBOOT_SOURCE")]
        source: Option<String>,
        /// Host names containing this.
        #[arg(long, env = "STORMBOOT_HOSTNAME")]
        hostname: Option<String>,
        #[arg(long, env = "STORMBOOT_LIMIT")]
        limit: Option<usize>,
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Show one machine's reservation.
    Show {
        mac: String,
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Create or replace many from a JSON array of reservations (all or
    /// none); `-` reads standard input.
    Bulk {
        file: std::path::PathBuf,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

#[derive(Args, Debug)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// List leases (every page, unless --limit).
    List {
        #[arg(long, env = "STORMBOOT_SUBNET")]
        subnet: Option<String>,
        /// offered, bound or declined.
        #[arg(long, env = "STORMBOOT_STATE")]
        state: Option<String>,
        #[arg(long, env = "STORMBOOT_MAC")]
        mac: Option<String>,
        #[arg(long, env = "STORMBOOT_LIMIT")]
        limit: Option<usize>,
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// End a lease now; the address is free again.
    Rm {
        ip: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

/// `a=1&b=x` from the pairs that are set.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn option_spec(text: &str) -> anyhow::Result<OptionSpec> {
    let mut parts = text.splitn(3, ':');
    let (Some(code), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--option {text:?}: expected CODE:TYPE:VALUE, e.g. 66:string:tftp.example");
    };
    Ok(OptionSpec {
        code: code
            .trim()
            .parse()
            .with_context(|| format!("--option {text:?}: {code:?} is not a number"))?,
        kind: kind.trim().to_string(),
        value: value.to_string(),
    })
}

fn print_reservations(items: &[ReservationView]) {
    println!(
        "{:<18} {:<15} {:<20} {:<12} {:<7} ORIGIN",
        "MAC", "IP", "HOSTNAME", "PROFILE", "SOURCE"
    );
    for r in items {
        println!(
            "{:<18} {:<15} {:<20} {:<12} {:<7} {}",
            r.spec.mac,
            r.spec.ip,
            r.spec.hostname.as_deref().unwrap_or("-"),
            r.spec.profile.as_deref().unwrap_or("-"),
            r.source.as_str(),
            r.origin
        );
    }
}

fn print_leases(items: &[LeaseView]) {
    println!(
        "{:<15} {:<18} {:<9} {:>10}  HOSTNAME",
        "IP", "MAC", "STATE", "EXPIRES IN"
    );
    let now = crate::slowpath::unix_now();
    for l in items {
        println!(
            "{:<15} {:<18} {:<9} {:>9}s  {}",
            l.ip,
            l.mac,
            l.state,
            l.expires.saturating_sub(now),
            l.hostname.as_deref().unwrap_or("-")
        );
    }
}

impl ReservationCommand {
    fn daemon(&self) -> &DaemonArgs {
        match self {
            ReservationCommand::Add { daemon, .. }
            | ReservationCommand::Rm { daemon, .. }
            | ReservationCommand::List { daemon, .. }
            | ReservationCommand::Show { daemon, .. }
            | ReservationCommand::Bulk { daemon, .. } => daemon,
        }
    }
}

impl LeaseCommand {
    fn daemon(&self) -> &DaemonArgs {
        match self {
            LeaseCommand::List { daemon, .. } | LeaseCommand::Rm { daemon, .. } => daemon,
        }
    }
}

pub fn reservation(args: ReservationArgs) -> anyhow::Result<()> {
    let c = args.command.daemon().client()?;
    match args.command {
        ReservationCommand::Add {
            mac,
            ip,
            hostname,
            profile,
            options,
            replace,
            ..
        } => {
            let spec = ReservationSpec {
                mac: mac.clone(),
                ip,
                hostname,
                profile,
                options: options
                    .iter()
                    .map(|o| option_spec(o))
                    .collect::<anyhow::Result<_>>()?,
                allow_pxe: None,
                ..Default::default()
            };
            let body = serde_json::to_string(&spec)?;
            let answer = match replace {
                true => c.request("PUT", &format!("/api/v1/reservations/{mac}"), Some(&body))?,
                false => c.request("POST", "/api/v1/reservations", Some(&body))?,
            };
            let v: ReservationView = serde_json::from_str(&answer.ok()?)?;
            println!("{} -> {} ({}) reserved", v.spec.mac, v.spec.ip, v.subnet);
            Ok(())
        }
        ReservationCommand::Rm { mac, .. } => {
            c.request("DELETE", &format!("/api/v1/reservations/{mac}"), None)?
                .ok()?;
            println!("{mac}: reservation removed");
            Ok(())
        }
        ReservationCommand::Show { mac, json, .. } => {
            let body = c.get(&format!("/api/v1/reservations/{mac}"))?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let v: ReservationView = serde_json::from_str(&body)?;
            print_reservations(std::slice::from_ref(&v));
            for o in &v.spec.options {
                println!("  option {} {} {}", o.code, o.kind, o.value);
            }
            Ok(())
        }
        ReservationCommand::List {
            subnet,
            profile,
            source,
            hostname,
            limit,
            json,
            ..
        } => {
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let q = query(&[
                    ("subnet", subnet.clone()),
                    ("profile", profile.clone()),
                    ("source", source.clone()),
                    ("hostname", hostname.clone()),
                    ("limit", Some(limit.unwrap_or(1000).to_string())),
                    ("after", after.clone()),
                ]);
                let page: ReservationPage =
                    serde_json::from_str(&c.get(&format!("/api/v1/reservations{q}"))?)?;
                items.extend(page.items);
                match (page.next, limit) {
                    (Some(n), None) => after = Some(n),
                    _ => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print_reservations(&items);
            }
            Ok(())
        }
        ReservationCommand::Bulk { file, .. } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let r: BulkResult = serde_json::from_str(
                &c.request("POST", "/api/v1/reservations/bulk", Some(&text))?
                    .ok()?,
            )?;
            println!("{} created, {} replaced", r.created, r.replaced);
            Ok(())
        }
    }
}

pub fn lease(args: LeaseArgs) -> anyhow::Result<()> {
    let c: Client = args.command.daemon().client()?;
    match args.command {
        LeaseCommand::List {
            subnet,
            state,
            mac,
            limit,
            json,
            ..
        } => {
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let q = query(&[
                    ("subnet", subnet.clone()),
                    ("state", state.clone()),
                    ("mac", mac.clone()),
                    ("limit", Some(limit.unwrap_or(1000).to_string())),
                    ("after", after.clone()),
                ]);
                let page: LeasePage = serde_json::from_str(&c.get(&format!("/api/v1/leases{q}"))?)?;
                items.extend(page.items);
                match (page.next, limit) {
                    (Some(n), None) => after = Some(n),
                    _ => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print_leases(&items);
            }
            Ok(())
        }
        LeaseCommand::Rm { ip, .. } => {
            c.request("DELETE", &format!("/api/v1/leases/{ip}"), None)?
                .ok()?;
            println!("{ip}: lease removed");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_queries() {
        let o = option_spec("3:ipv4-list:10.0.0.1,10.0.0.2").unwrap();
        assert_eq!(
            (o.code, o.kind.as_str(), o.value.as_str()),
            (3, "ipv4-list", "10.0.0.1,10.0.0.2")
        );
        assert!(option_spec("66").is_err());
        assert!(option_spec("x:u8:1").is_err());
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[("subnet", Some("10.0.0.0/24".into())), ("x", None)]),
            "?subnet=10.0.0.0%2F24"
        );
    }
}
