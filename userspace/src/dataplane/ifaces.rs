//! Reads what the program must know about an interface: its index, MAC and
//! IPv4 addresses.

use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::if_nametoindex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceInfo {
    pub index: u32,
    pub mac: [u8; 6],
    pub addrs: Vec<Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    #[error("interface {0} does not exist in this network namespace")]
    Unknown(String),
    #[error("interface {0} has no Ethernet address")]
    NoMac(String),
    #[error("listing interfaces: {0}")]
    Sys(#[from] nix::Error),
}

pub fn lookup(name: &str) -> Result<IfaceInfo, IfaceError> {
    let index = if_nametoindex(name).map_err(|_| IfaceError::Unknown(name.to_string()))?;
    let mut mac = None;
    let mut addrs = Vec::new();
    for ifa in getifaddrs()? {
        if ifa.interface_name != name {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(link) = addr.as_link_addr() {
            if let Some(m) = link.addr() {
                mac = Some(m);
            }
        } else if let Some(sin) = addr.as_sockaddr_in() {
            addrs.push(sin.ip());
        }
    }
    let mac = mac.ok_or_else(|| IfaceError::NoMac(name.to_string()))?;
    Ok(IfaceInfo { index, mac, addrs })
}

/// The address the program checks non-relayed requests against: the
/// interface address that lies in a configured subnet (else the first).
pub fn pick_iface_address(cfg: &crate::config::Config, addrs: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    addrs
        .iter()
        .find(|a| cfg.subnets.iter().any(|s| s.net.contains(*a)))
        .or(addrs.first())
        .copied()
}
