//! The one builder of a lab daemon's configuration: the server on sb0 at
//! 10.50.0.1, its lease database and its reservations (machine i has the
//! first MAC + i and the first address + i, in a CSV `reservations_file`)
//! in one directory, one subnet, and whatever sections a measurement adds.
//! `cargo xtask lab` and every part of `cargo xtask bench` write theirs
//! with it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{SERVER_ADDR, SERVER_IF};

/// `count` machines with consecutive MACs and addresses.
#[derive(Clone, Debug)]
pub struct Machines {
    pub count: u32,
    pub first_mac: [u8; 6],
    pub first_ip: Ipv4Addr,
    /// Machine i's host name is this followed by i in five digits.
    pub hostname: &'static str,
}

impl Machines {
    /// Machine i's MAC: the first + i, the MAC read as a 48-bit number.
    pub fn mac(&self, i: u32) -> String {
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(&self.first_mac);
        let n = (u64::from_be_bytes(wide) + u64::from(i)).to_be_bytes();
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            n[2], n[3], n[4], n[5], n[6], n[7]
        )
    }

    pub fn ip(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first_ip) + i)
    }

    pub fn host(&self, i: u32) -> String {
        format!("{}{i:05}", self.hostname)
    }

    /// (MAC, address, host name) of every machine.
    pub fn each(&self) -> impl Iterator<Item = (String, Ipv4Addr, String)> + '_ {
        (0..self.count).map(|i| (self.mac(i), self.ip(i), self.host(i)))
    }

    /// The machines as a `reservations_file` (CSV with a header line).
    pub fn csv(&self) -> String {
        let mut csv = String::with_capacity(self.count as usize * 40 + 16);
        csv.push_str("mac,ip,hostname\n");
        for (mac, ip, host) in self.each() {
            let _ = writeln!(csv, "{mac},{ip},{host}");
        }
        csv
    }
}

/// What varies between the lab's daemons.
#[derive(Clone, Debug)]
pub struct LabConfig {
    pub machines: Machines,
    /// More reservations lines after the machines' (e.g. a probe's).
    pub more_csv: String,
    /// The one subnet, "a.b.c.d/len".
    pub subnet: String,
    /// Its dynamic pool, "first-last", if any.
    pub pool: Option<String>,
    /// More `[[subnet]]` lines.
    pub subnet_lines: String,
    /// More `[server]` lines (dataplane, bpffs_dir, limits).
    pub server: String,
    /// More sections after the subnet (`[api]`, `[omapi]`, inline
    /// reservations).
    pub sections: String,
}

impl LabConfig {
    /// `machines` on a subnet, nothing else.
    pub fn new(machines: Machines, subnet: &str) -> LabConfig {
        LabConfig {
            machines,
            more_csv: String::new(),
            subnet: subnet.to_string(),
            pool: None,
            subnet_lines: String::new(),
            server: String::new(),
            sections: String::new(),
        }
    }

    /// The configuration's text (its reservations file is "hosts.csv").
    pub fn toml(&self) -> String {
        let mut t = format!(
            "[server]\ninterface = \"{SERVER_IF}\"\naddress = \"{SERVER_ADDR}\"\n\
             reservations_file = \"hosts.csv\"\n{}\n\
             [store]\npath = \"leases.db\"\n\n\
             [[subnet]]\ncidr = \"{}\"\nrouters = [\"{SERVER_ADDR}\"]\nlease_time = \"1h\"\n",
            self.server, self.subnet
        );
        if let Some(pool) = &self.pool {
            let _ = writeln!(t, "pool = [\"{pool}\"]");
        }
        t.push_str(&self.subnet_lines);
        if !self.sections.is_empty() {
            t.push('\n');
            t.push_str(&self.sections);
        }
        t
    }

    /// Writes stormboot.toml and hosts.csv into `dir`; the config's path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let csv = self.machines.csv() + &self.more_csv;
        std::fs::write(dir.join("hosts.csv"), csv)
            .with_context(|| format!("writing {}", dir.join("hosts.csv").display()))?;
        let config = dir.join("stormboot.toml");
        std::fs::write(&config, self.toml())
            .with_context(|| format!("writing {}", config.display()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_count_up_from_the_first_mac_and_address() {
        let m = Machines {
            count: 300,
            first_mac: [0x02, 0, 0, 0, 0, 0xff],
            first_ip: Ipv4Addr::new(10, 50, 0, 255),
            hostname: "lab-",
        };
        assert_eq!(m.mac(1), "02:00:00:00:01:00", "the carry crosses bytes");
        assert_eq!(m.ip(1), Ipv4Addr::new(10, 50, 1, 0));
        let csv = m.csv();
        assert_eq!(csv.lines().count(), 301);
        assert_eq!(
            csv.lines().nth(2),
            Some("02:00:00:00:01:00,10.50.1.0,lab-00001")
        );
    }

    #[test]
    fn the_daemon_accepts_the_config_with_its_reservations_and_sections() {
        let mut c = LabConfig::new(
            Machines {
                count: 3,
                first_mac: [2, 0, 0, 0, 0, 0],
                first_ip: Ipv4Addr::new(10, 64, 0, 0),
                hostname: "node",
            },
            "10.0.0.0/8",
        );
        c.more_csv = "02:99:00:00:00:01,10.64.9.9,probe\n".into();
        c.pool = Some("10.52.0.0-10.52.0.99".into());
        c.server = "dataplane = \"userspace\"\n".into();
        c.sections = "[api]\nlisten = \"127.0.0.1:8099\"\n".into();
        let csv = c.machines.csv() + &c.more_csv;
        let cfg =
            stormboot::config::Config::from_str_with(&c.toml(), Path::new("lab.toml"), &mut |p| {
                assert!(p.ends_with("hosts.csv"), "{}", p.display());
                Ok(csv.clone())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", c.toml()));
        assert_eq!(cfg.reservations.len(), 4);
        assert_eq!(cfg.subnets[0].net.to_string(), "10.0.0.0/8");
        assert_eq!(
            cfg.server.dataplane,
            stormboot::config::Dataplane::Userspace
        );
        assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8099");
    }
}
