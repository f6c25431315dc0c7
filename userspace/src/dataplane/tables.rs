//! Renders the configuration into the map entries the XDP program reads:
//! one NAK block per subnet, one OFFER/ACK block per reservation.
//!
//! Entries are rendered one at a time so a million reservations never
//! sit in memory twice.

use std::net::Ipv4Addr;

use stormboot_common::maps::{variant, Block, Reservation, ReservationKey, Subnet};

use crate::config::{self, Config};
use crate::render::{self, RenderError, ReplySpec};

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
    let block: Block = render::reply_block(&reply_spec(cfg, r)).map_err(|source| TablesError {
        origin: r.origin.clone(),
        what: format!("reservation {}", crate::frame::format_mac(&r.mac)),
        source,
    })?;
    let s = &cfg.subnets[r.subnet];
    Ok((
        ReservationKey {
            mac: r.mac,
            variant: variant::PLAIN,
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
    ))
}

/// The address the program checks non-relayed requests against: the
/// interface address that lies in a configured subnet (else the first).
pub fn pick_iface_address(cfg: &Config, addrs: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    addrs
        .iter()
        .find(|a| cfg.subnets.iter().any(|s| s.net.contains(*a)))
        .or(addrs.first())
        .copied()
}
