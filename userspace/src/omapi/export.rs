//! The two files Foreman's `dhcp_isc` provider reads beside OMAPI: the
//! served subnets in dhcpd.conf syntax, and a dhcpd.leases-syntax journal
//! of the reservations made over OMAPI or the REST API.
//!
//! The journal is only appended to, one `write` per block, before the
//! change is acknowledged (Foreman reads from its last offset on inotify's
//! `modify`); it is compacted by writing a new file beside it and renaming
//! it over the old one (Foreman re-reads on `moved_to`), never rewritten in
//! place.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::statements::{self, Statements};
use crate::api::live::{Journal, JournalChange, Live};
use crate::api::registry::{Entry, Registry};
use crate::api::types::Source;
use crate::config::{Config, Omapi};

/// The name a reservation has in OMAPI and the exports when none was
/// given over OMAPI.
pub fn export_name(mac: [u8; 6]) -> String {
    format!(
        "sb-{}",
        mac.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The served subnets as dhcpd.conf declarations.
pub fn conf_text(cfg: &Config) -> String {
    let mut out =
        String::from("# Written by stormboot: the subnets it serves, for Foreman's dhcp_isc.\n");
    for s in &cfg.subnets {
        let _ = writeln!(
            out,
            "subnet {} netmask {} {{",
            s.net.network(),
            s.net.netmask()
        );
        for (a, b) in &s.pools {
            let _ = writeln!(out, "  range {a} {b};");
        }
        let list = |v: &[std::net::Ipv4Addr]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !s.routers.is_empty() {
            let _ = writeln!(out, "  option routers {};", list(&s.routers));
        }
        if !s.dns.is_empty() {
            let _ = writeln!(out, "  option domain-name-servers {};", list(&s.dns));
        }
        if let Some(d) = &s.domain {
            let _ = writeln!(out, "  option domain-name \"{}\";", d.replace('"', ""));
        }
        out.push_str("}\n");
    }
    out
}

/// One reservation's host block, as dhcpd writes it to dhcpd.leases.
pub fn host_block(reg: &Registry, e: &Entry) -> String {
    let r = &e.reservation;
    let name = reg.spec(e).omapi_name.unwrap_or_else(|| export_name(r.mac));
    let mut out = format!(
        "host {name} {{\n  dynamic;\n  hardware ethernet {};\n  fixed-address {};\n",
        mac_text(&r.mac),
        r.ip
    );
    let s = Statements {
        filename: r.boot_file.as_deref().map(str::to_owned),
        next_server: r.next_server,
        hostname: r.hostname.as_deref().map(str::to_owned),
    };
    for line in statements::render(&s) {
        let _ = writeln!(out, "        {line}");
    }
    out.push_str("}\n");
    out
}

pub fn deleted_block(name: &str) -> String {
    format!("host {name} {{\n  dynamic;\n  deleted;\n}}\n")
}

/// The journal's state.
struct Leases {
    path: PathBuf,
    file: std::fs::File,
    /// Blocks appended since the last compaction.
    appended: usize,
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("stormboot-tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).open(path)
}

impl Leases {
    /// Rewrites the journal from `reg` (the API and OMAPI reservations).
    fn compact(&mut self, reg: &Registry) -> std::io::Result<()> {
        let mut text =
            String::from("# Written by stormboot: reservations made over OMAPI or the API.\n");
        for e in reg.entries().filter(|e| e.source != Source::Config) {
            text.push_str(&host_block(reg, e));
        }
        write_atomically(&self.path, &text)?;
        self.file = open_append(&self.path)?;
        self.appended = 0;
        Ok(())
    }

    fn append(&mut self, reg: &Registry, block: &str) {
        // One write per block: a reader never sees half of one.
        if let Err(e) = self.file.write_all(block.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "leases export: append failed");
        }
        self.appended += 1;
        if self.appended > 1000 && self.appended > 2 * reg.len() {
            if let Err(e) = self.compact(reg) {
                tracing::warn!(path = %self.path.display(), error = %e, "leases export: compaction failed");
            }
        }
    }
}

/// Writes both files and returns the journal hook for later changes.
pub async fn start(o: &Omapi, live: &Live) -> anyhow::Result<()> {
    let reg = live.registry().lock().await;
    if let Some(p) = &o.conf_export {
        write_atomically(p, &conf_text(reg.config()))
            .map_err(|e| anyhow::anyhow!("omapi.conf_export: {}: {e}", p.display()))?;
    }
    let Some(p) = &o.leases_export else {
        return Ok(());
    };
    std::fs::write(p, b"")
        .map_err(|e| anyhow::anyhow!("omapi.leases_export: {}: {e}", p.display()))?;
    let mut leases = Leases {
        path: p.clone(),
        file: open_append(p)?,
        appended: 0,
    };
    leases
        .compact(&reg)
        .map_err(|e| anyhow::anyhow!("omapi.leases_export: {}: {e}", p.display()))?;
    let leases = Arc::new(Mutex::new(leases));
    let journal: Journal = Arc::new(move |reg: &Registry, change: JournalChange| {
        let mut l = leases.lock().unwrap_or_else(|e| e.into_inner());
        match change {
            JournalChange::Put(mac) => {
                if let Some(e) = reg.get(mac) {
                    let block = host_block(reg, e);
                    l.append(reg, &block);
                }
            }
            JournalChange::Removed(name) => l.append(reg, &deleted_block(&name)),
        }
    });
    live.set_journal(journal);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{Mode, Writer};
    use crate::api::types::ReservationSpec;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_block_is_dhcpds_form() {
        assert_eq!(
            deleted_block("a-test-01"),
            "host a-test-01 {\n  dynamic;\n  deleted;\n}\n"
        );
        assert_eq!(
            export_name([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "sb-525400123456"
        );
    }

    fn registry() -> Registry {
        let cfg = Config::from_str(
            "[server]\ninterface = \"sb0\"\naddress = \"10.0.0.1\"\n\
             [[subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.100-10.0.0.110\"]\n\
             routers = [\"10.0.0.1\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        Registry::new(Arc::new(cfg), vec![])
    }

    fn add(reg: &mut Registry, i: u8, name: Option<&str>) -> [u8; 6] {
        let spec = ReservationSpec {
            mac: format!("02:00:00:00:00:{i:02x}"),
            ip: format!("10.0.0.{i}"),
            omapi_name: name.map(str::to_string),
            boot_file: Some("pxelinux.0".into()),
            ..Default::default()
        };
        let c = reg
            .check_as(&spec, Mode::Create, None, Writer::Omapi)
            .unwrap();
        let mac = c.entry.reservation.mac;
        reg.insert(c.entry);
        mac
    }

    /// Appends keep the file (same inode, earlier bytes unchanged);
    /// compaction replaces it by rename with only the live hosts.
    #[test]
    fn the_journal_is_appended_to_then_compacted_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dhcpd.leases");
        std::fs::write(&path, b"").unwrap();
        let mut reg = registry();
        let mut l = Leases {
            path: path.clone(),
            file: open_append(&path).unwrap(),
            appended: 0,
        };
        l.compact(&reg).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        let a = add(&mut reg, 10, Some("a-test-01"));
        l.append(&reg, &host_block(&reg, reg.get(a).unwrap()));
        let before = std::fs::read_to_string(&path).unwrap();
        assert!(before.ends_with(
            "host a-test-01 {\n  dynamic;\n  hardware ethernet 02:00:00:00:00:0a;\n  \
             fixed-address 10.0.0.10;\n        supersede server.filename = \"pxelinux.0\";\n}\n"
        ));
        let b = add(&mut reg, 11, None);
        l.append(&reg, &host_block(&reg, reg.get(b).unwrap()));
        reg.remove(a);
        l.append(&reg, &deleted_block("a-test-01"));
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.starts_with(&before), "rewritten in place");
        assert!(after.contains("host sb-02000000000b {"), "{after}");
        assert!(after.ends_with("host a-test-01 {\n  dynamic;\n  deleted;\n}\n"));
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);

        l.compact(&reg).unwrap();
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_ne!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "not renamed"
        );
        assert!(!compacted.contains("a-test-01"), "{compacted}");
        assert!(compacted.contains("host sb-02000000000b {"), "{compacted}");
        // Appends go to the new file.
        l.append(&reg, &deleted_block("x"));
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("host x {\n  dynamic;\n  deleted;\n}\n"));
    }

    #[test]
    fn the_conf_export_declares_each_subnet_with_its_range() {
        let reg = registry();
        let text = conf_text(reg.config());
        assert!(
            text.contains(
                "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.100 10.0.0.110;\n  option routers 10.0.0.1;\n}\n"
            ),
            "{text}"
        );
    }
}
