//! What a node says about itself in its `nodes` row: its name, the
//! addresses it answers as, its version, when it started, and a hash of
//! the part of its configuration every node must share.

use std::fmt::Write as _;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::Config;

/// This node, as its heartbeat records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `cluster.node`.
    pub node: String,
    /// Its server identifiers (option 54), comma-separated.
    pub addresses: String,
    /// This build's version.
    pub version: String,
    /// `config_hash` of its configuration.
    pub config_hash: String,
    /// When this daemon started.
    pub started: SystemTime,
}

impl Identity {
    /// The identity of a daemon starting now with `cfg`, answering as
    /// `addresses`. None without `[cluster]`.
    pub fn of(cfg: &Config, addresses: &[std::net::Ipv4Addr]) -> Option<Identity> {
        let cluster = cfg.cluster.as_ref()?;
        let mut addrs = addresses.to_vec();
        addrs.sort();
        addrs.dedup();
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        Some(Identity {
            node: cluster.node.clone(),
            addresses: addrs.join(","),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_hash: config_hash(cfg),
            started: SystemTime::now(),
        })
    }
}

/// Feeds what is formatted into it to a SHA-256, so a million
/// reservations are hashed without being formatted into one string.
struct Hasher(Sha256);

impl std::fmt::Write for Hasher {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// SHA-256 (hex) of the parsed configuration's settings that decide what
/// a client is answered and that every node must therefore share: the
/// subnets, the profiles, the file's reservations, the server's offer
/// and decline times and mode, and the cluster's timings.
///
/// The parsed configuration rather than the file's bytes: the files of
/// two nodes that answer alike still differ in their comments, their
/// order and their own keys. Those own keys are left out: the node's
/// name, its interfaces and address (and the interface each subnet is
/// served on), its API, store and boot paths, and
/// where each reservation was written (`origin`: a line moved by a
/// comment changes no answer).
pub fn config_hash(cfg: &Config) -> String {
    let mut h = Hasher(Sha256::new());
    let s = &cfg.server;
    // Which of its interfaces a node serves a subnet on is its own.
    let subnets: Vec<_> = cfg
        .subnets
        .iter()
        .map(|s| crate::config::Subnet {
            interface: None,
            ..s.clone()
        })
        .collect();
    let _ = write!(
        h,
        "{:?}{:?}{:?}{:?}{:?}",
        s.mode, s.offer_hold, s.decline_quarantine, subnets, cfg.profiles
    );
    for r in &cfg.reservations {
        let _ = write!(
            h,
            "{:?}",
            (
                r.mac,
                r.ip,
                &r.hostname,
                r.subnet,
                &r.options,
                r.profile,
                r.allow_pxe,
                &r.boot_file,
                r.next_server,
                &r.label,
            )
        );
    }
    if let Some(c) = &cfg.cluster {
        let _ = write!(
            h,
            "{:?}",
            (
                c.heartbeat,
                c.dead_after,
                c.load_balance,
                c.lb_max_secs,
                c.grace,
                c.sync_interval,
            )
        );
    }
    h.0.finalize().iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_str_with(
            text,
            Path::new("/etc/stormboot/stormboot.toml"),
            &mut |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn node(name: &str, address: &str, extra: &str) -> String {
        format!(
            "# node {name}\n[server]\ninterface = \"sb-{name}\"\naddress = \"{address}\"\n\n\
             [[subnet]]\ncidr = \"10.50.0.0/24\"\npool = [\"10.50.0.100-10.50.0.200\"]\n\
             interface = \"sb-{name}\"\n\n\
             [[reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.50.0.20\"\n{extra}\n\
             [store]\nbackend = \"postgres\"\nurl = \"host=/run/pg dbname=sb\"\n\n\
             [cluster]\nnode = \"{name}\"\n"
        )
    }

    #[test]
    fn nodes_that_answer_alike_agree_and_a_different_answer_does_not() {
        let a = config_hash(&parse(&node("a", "10.50.0.1", "")));
        // Another name, interface and address, and a comment that moves
        // the reservation's line: the same answers.
        let b = config_hash(&parse(&format!("\n\n{}", node("b", "10.50.0.2", ""))));
        assert_eq!(a, b);
        assert_eq!(a.len(), 64, "{a}");
        let c = config_hash(&parse(&node("c", "10.50.0.3", "hostname = \"web\"\n")));
        assert_ne!(a, c, "a reservation's host name changes what a client gets");
    }
}
