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
        filename: r.boot_file.clone(),
        next_server: r.next_server,
        hostname: r.hostname.clone(),
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
}
