//! The CLI commands that talk to a running daemon through the API:
//! `stormboot reservation add|rm|list|show|bulk`,
//! `stormboot lease list|rm`, `stormboot history` and `stormboot cluster`.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::Client;
use super::types::{
    AddressHistory, BulkResult, ClusterView, LeasePage, LeaseView, OptionSpec, ReservationPage,
    ReservationSpec, ReservationView,
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

/// `stormboot history IP`.
pub fn history(daemon: &DaemonArgs, ip: &str, limit: usize, json: bool) -> anyhow::Result<()> {
    let q = query(&[("limit", Some(limit.to_string()))]);
    let body = daemon
        .client()?
        .get(&format!("/api/v1/addresses/{ip}/history{q}"))?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let h: AddressHistory =
        serde_json::from_str(&body).context("decoding the address's history")?;
    print!("{}", history_table(&h, crate::slowpath::unix_now()));
    Ok(())
}

/// An address's history as the CLI prints it, `now` being Unix seconds.
fn history_table(h: &AddressHistory, now: u64) -> String {
    use std::fmt::Write as _;
    if h.items.is_empty() {
        return format!("{}: no history\n", h.ip);
    }
    let mut out = format!(
        "{:<9} {:>10}  {:<8} {:<18} {:<12} {:<20} CLIENT ID\n",
        "AGO (s)", "EXPIRES", "EVENT", "MAC", "NODE", "HOSTNAME"
    );
    for e in &h.items {
        let _ = writeln!(
            out,
            "{:<9} {:>10}  {:<8} {:<18} {:<12} {:<20} {}",
            now.saturating_sub(e.at),
            e.expires,
            e.event,
            e.mac,
            e.node.as_deref().unwrap_or("-"),
            e.hostname.as_deref().unwrap_or("-"),
            e.client_id
        );
    }
    out
}

/// `stormboot cluster`.
pub fn cluster(daemon: &DaemonArgs, json: bool) -> anyhow::Result<()> {
    let answer = daemon.client()?.request("GET", "/api/v1/cluster", None)?;
    if answer.status == 404 {
        // An answer, not a failure: this daemon runs alone.
        let why = serde_json::from_str::<super::types::ApiError>(&answer.body)
            .map_or_else(|_| "not in a cluster".to_owned(), |e| e.error);
        println!("{why}");
        return Ok(());
    }
    let body = answer.ok()?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let view: ClusterView = serde_json::from_str(&body).context("decoding the cluster")?;
    print!("{}", cluster_table(&view));
    Ok(())
}

/// The cluster as the CLI prints it.
fn cluster_table(v: &ClusterView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let reach = match (v.store_reachable, &v.store_error) {
        (true, _) => "reachable".to_owned(),
        (false, Some(e)) => format!("UNREACHABLE ({e})"),
        (false, None) => "not reached yet".to_owned(),
    };
    let _ = writeln!(out, "this node: {}; database {reach}", v.node);
    if let Some(ago) = v.read_secs_ago {
        let _ = writeln!(out, "as read {ago:.1} s ago");
    }
    let _ = writeln!(
        out,
        "leader: {}; latest change {}; removals pruned through {}; dead after {} s",
        v.leader.as_deref().unwrap_or("none"),
        v.latest_change,
        v.pruned_through,
        v.dead_after_secs
    );
    let _ = writeln!(
        out,
        "{:<2}{:<16} {:<5} {:>9} {:>8} {:>7} {:<12} {:<6} {:<10} ADDRESSES",
        "", "NODE", "STATE", "SEEN (s)", "APPLIED", "BEHIND", "CONFIG", "AGREES", "VERSION"
    );
    for n in &v.nodes {
        let mark = match (n.this_node, n.leader) {
            (true, true) => "*L",
            (true, false) => "* ",
            (false, true) => " L",
            (false, false) => "  ",
        };
        let _ = writeln!(
            out,
            "{mark}{:<16} {:<5} {:>9.1} {:>8} {:>7} {:<12} {:<6} {:<10} {}",
            n.node,
            if n.alive { "alive" } else { "DEAD" },
            n.last_seen_secs_ago,
            n.applied_change,
            n.changes_behind,
            n.config_hash.get(..12).unwrap_or(&n.config_hash),
            if n.config_agrees { "yes" } else { "NO" },
            n.version,
            n.addresses.join(",")
        );
    }
    let _ = writeln!(out, "(* this node, L leader)");
    out
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

    #[test]
    fn the_cluster_table_marks_this_node_the_leader_the_dead_and_disagreement() {
        use super::super::types::NodeView;
        let node = |name: &str, alive, hash: &str, leader, this| NodeView {
            node: name.into(),
            alive,
            last_seen_secs_ago: if alive { 0.4 } else { 12.0 },
            addresses: vec!["10.50.0.1".into()],
            version: "0.1.0".into(),
            started: 1_700_000_000,
            applied_change: 40,
            changes_behind: 2,
            config_hash: hash.into(),
            config_agrees: hash == "aaaaaaaaaaaaaaaa",
            leader,
            this_node: this,
        };
        let v = ClusterView {
            node: "a".into(),
            store_reachable: false,
            store_error: Some("connecting: refused".into()),
            read_secs_ago: Some(3.0),
            leader: Some("b".into()),
            latest_change: 42,
            pruned_through: 0,
            dead_after_secs: 3.0,
            config_hash: "aaaaaaaaaaaaaaaa".into(),
            nodes: vec![
                node("a", true, "aaaaaaaaaaaaaaaa", false, true),
                node("b", true, "bbbbbbbbbbbbbbbb", true, false),
                node("c", false, "aaaaaaaaaaaaaaaa", false, false),
            ],
        };
        let t = cluster_table(&v);
        assert!(
            t.contains("database UNREACHABLE (connecting: refused)"),
            "{t}"
        );
        let line = |name: &str| {
            t.lines()
                .find(|l| {
                    l.get(2..)
                        .is_some_and(|r| r.starts_with(&format!("{name} ")))
                })
                .unwrap_or_else(|| panic!("no line for {name}:\n{t}"))
                .to_owned()
        };
        assert!(line("a").starts_with("* "), "{t}");
        assert!(
            line("b").starts_with(" L") && line("b").contains(" NO "),
            "{t}"
        );
        assert!(
            line("c").contains("DEAD") && line("c").contains(" yes "),
            "{t}"
        );
        assert!(line("a").contains("aaaaaaaaaaaa "), "{t}");
    }

    #[test]
    fn the_history_table_lists_entries_with_their_age() {
        let h = AddressHistory {
            ip: "10.0.0.5".into(),
            items: vec![super::super::types::AddressEventView {
                event: "freed".into(),
                mac: "52:54:00:00:00:01".into(),
                client_id: "01525400000001".into(),
                hostname: None,
                node: Some("rack-a".into()),
                expires: 1_700_000_600,
                at: 1_700_000_000,
            }],
        };
        let t = history_table(&h, 1_700_000_090);
        let row = t.lines().nth(1).expect("a row");
        assert!(row.starts_with("90 "), "{t}");
        assert!(row.contains("freed") && row.contains("rack-a"), "{t}");
        let empty = AddressHistory {
            ip: "10.0.0.6".into(),
            items: vec![],
        };
        assert_eq!(history_table(&empty, 0), "10.0.0.6: no history\n");
    }
}
