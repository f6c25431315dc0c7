//! Renders the configuration into the entries the XDP program's maps hold
//! and the userspace server replays: one NAK block per subnet, one
//! OFFER/ACK block per reservation and boot variant.
//!
//! Entries are rendered one at a time so a million reservations never
//! sit in memory twice.

use stormboot_common::maps::{variant, Block, Reservation, ReservationKey, Subnet};

use super::{RenderError, ReplySpec};
use crate::bootfile;
use crate::config::{self, Config};
use crate::render;

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {what}: {source}")]
pub struct TablesError {
    pub origin: String,
    pub what: String,
    pub source: RenderError,
}

/// What the reply to this reservation says.
pub fn reply_spec<'a>(cfg: &'a Config, r: &'a config::Reservation) -> ReplySpec<'a> {
    ReplySpec::new(
        cfg,
        &cfg.subnets[r.subnet],
        Some(r),
        r.ip,
        r.hostname.as_deref(),
    )
}

/// The subnet array, index for index with `cfg.subnets`.
pub fn subnet_entries(cfg: &Config) -> Result<Vec<Subnet>, TablesError> {
    let nak = render::nak_block(cfg.server.address).map_err(|source| TablesError {
        origin: "server".into(),
        what: "NAK".into(),
        source,
    })?;
    Ok(cfg
        .subnets
        .iter()
        .map(|s| Subnet {
            net: s.net.network().octets(),
            mask: s.net.netmask().octets(),
            server_id: cfg.server.address.octets(),
            valid: 1,
            nak,
        })
        .collect())
}

pub fn reservation_entry(
    cfg: &Config,
    r: &config::Reservation,
) -> Result<(ReservationKey, Reservation), TablesError> {
    reservation_variant(cfg, r, variant::PLAIN)
        .map(|e| e.expect("every reservation has a plain reply"))
}

/// What the entry for boot variant `v` tells the machine to boot: None
/// when it has no profile or no boot file for `v`.
pub fn reservation_boot(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
) -> Option<bootfile::BootSpec> {
    if r.boot_file.is_some() || r.next_server.is_some() {
        // The machine's own boot file answers every architecture (one
        // plain entry), as a dhcpd host's `filename` does.
        if v != variant::PLAIN {
            return None;
        }
        Some(bootfile::BootSpec {
            next_server: r.next_server.unwrap_or(cfg.server.address),
            file: r.boot_file.clone().unwrap_or_default(),
            vendor_class: None,
            pxe_discovery_control: false,
            ipxe_no_proxydhcp: false,
        })
    } else {
        match bootfile::reservation_profile(cfg, r) {
            Some(_) => bootfile::boot_spec(cfg, v, r.mac),
            None => None,
        }
    }
}

/// Whether the reply a request of variant `v` gets (its variant's entry,
/// else the plain one, as the program looks them up) carries a boot file.
pub fn reservation_boots(cfg: &Config, r: &config::Reservation, v: u16) -> bool {
    reservation_boot(cfg, r, v)
        .or_else(|| reservation_boot(cfg, r, variant::PLAIN))
        .is_some()
}

/// The entry for boot variant `v`: None when the machine has no profile or
/// no boot file for `v` (it is then answered from its plain entry).
pub fn reservation_variant(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
) -> Result<Option<(ReservationKey, Reservation)>, TablesError> {
    let boot = reservation_boot(cfg, r, v);
    if v != variant::PLAIN && boot.is_none() {
        return Ok(None);
    }
    let what = || {
        format!(
            "reservation {} (boot variant {v})",
            crate::frame::format_mac(&r.mac)
        )
    };
    let block: Block = if cfg.server.mode == config::Mode::Proxy && v != variant::PLAIN {
        // A proxy tells booting machines where to boot, nothing else.
        match render::proxy_block(cfg, r.mac, v) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(source) => {
                return Err(TablesError {
                    origin: r.origin.to_string(),
                    what: what(),
                    source,
                })
            }
        }
    } else {
        render::reply_block(&reply_spec(cfg, r).with_boot(&cfg.subnets[r.subnet], boot)).map_err(
            |source| TablesError {
                origin: r.origin.to_string(),
                what: what(),
                source,
            },
        )?
    };
    let s = &cfg.subnets[r.subnet];
    Ok(Some((
        ReservationKey {
            mac: r.mac,
            variant: v,
        },
        Reservation {
            ip: r.ip.octets(),
            server_id: cfg.server.address.octets(),
            net: s.net.network().octets(),
            mask: s.net.netmask().octets(),
            subnet: r.subnet as u32,
            flags: 0,
            reply: block,
        },
    )))
}

/// Every entry of a reservation: the plain one and one per boot variant.
pub fn reservation_entries(
    cfg: &Config,
    r: &config::Reservation,
) -> Result<Vec<(ReservationKey, Reservation)>, TablesError> {
    let mut out = Vec::new();
    for v in variant::ALL {
        if let Some(e) = reservation_variant(cfg, r, v)? {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::Path;

    const CFG: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
                       [boot]\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n\n\
                       [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n\
                       [[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.9\"\nprofile = \"d\"\n";

    fn variants(text: &str) -> Vec<u16> {
        let cfg = Config::from_str(text, Path::new("stormboot.toml")).unwrap();
        reservation_entries(&cfg, &cfg.reservations[0])
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.variant)
            .collect()
    }

    #[test]
    fn allow_pxe_false_leaves_only_the_plain_reply() {
        let booting = variants(CFG);
        assert!(
            booting.len() > 1 && booting.contains(&variant::PLAIN),
            "{booting:?}"
        );
        let plain = variants(&format!("{CFG}allow_pxe = false\n"));
        assert_eq!(plain, vec![variant::PLAIN]);
    }

    /// A reservation's own boot file and next server are in its one
    /// (plain) reply, in the BOOTP fields and options 66/67, and the
    /// profile's per-architecture variants give way to them.
    #[test]
    fn a_reservations_own_boot_file_and_next_server_are_rendered() {
        use dhcproto::{Decodable, Decoder};
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let mut r = cfg.reservations[0].clone();
        r.boot_file = Some("pxelinux.0".into());
        r.next_server = Some(Ipv4Addr::new(10, 50, 0, 7));
        let entries = reservation_entries(&cfg, &r).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.variant, variant::PLAIN);
        let block = &entries[0].1.reply;
        let m = dhcproto::v4::Message::decode(&mut Decoder::new(&block.bytes)).unwrap();
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 50, 0, 7));
        assert_eq!(
            m.fname().unwrap().split(|b| *b == 0).next(),
            Some(&b"pxelinux.0"[..])
        );
        assert_eq!(
            m.opts().get(dhcproto::v4::OptionCode::BootfileName),
            Some(&dhcproto::v4::DhcpOption::BootfileName(
                b"pxelinux.0".to_vec()
            ))
        );
        assert_eq!(
            m.opts().get(dhcproto::v4::OptionCode::TFTPServerName),
            Some(&dhcproto::v4::DhcpOption::TFTPServerName(
                b"10.50.0.7".to_vec()
            ))
        );
    }
}
