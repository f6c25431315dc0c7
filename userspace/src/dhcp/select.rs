//! Which subnet a request is from.
//!
//! In order: option 82 sub-option 5, link selection (RFC 3527); option
//! 118, subnet selection (RFC 3011); giaddr, the relay's address on the
//! client's link; and for requests that were not relayed, the ingress
//! interface: the subnet configured with `interface = <its name>`, else
//! the subnet containing the interface's address. (Kea's order, too.)
//!
//! ciaddr is deliberately not used: a client that moved and asks for its
//! old address must be judged by where it is now, not by what it claims.

use std::net::Ipv4Addr;

use crate::config::Config;

use super::Ingress;

/// Subnets sorted by address, to find the one containing an address.
#[derive(Debug, Clone)]
pub struct SubnetIndex {
    /// (first, last, index into the config's subnets), sorted by first;
    /// subnets do not overlap.
    ranges: Vec<(u32, u32, usize)>,
    /// (interface name, subnet index) from `subnet.interface`.
    by_iface: Vec<(String, usize)>,
}

impl SubnetIndex {
    pub fn new(cfg: &Config) -> SubnetIndex {
        let mut ranges: Vec<_> = cfg
            .subnets
            .iter()
            .enumerate()
            .map(|(i, s)| (u32::from(s.net.network()), u32::from(s.net.broadcast()), i))
            .collect();
        ranges.sort_unstable();
        let by_iface = cfg
            .subnets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.interface.clone().map(|n| (n, i)))
            .collect();
        SubnetIndex { ranges, by_iface }
    }

    pub fn containing(&self, ip: Ipv4Addr) -> Option<usize> {
        let x = u32::from(ip);
        let i = self.ranges.partition_point(|&(first, _, _)| first <= x);
        let &(_, last, index) = self.ranges.get(i.checked_sub(1)?)?;
        (x <= last).then_some(index)
    }

    /// The subnet a non-relayed request on `ingress` belongs to.
    pub fn of_interface(&self, ingress: &Ingress) -> Option<usize> {
        self.by_iface
            .iter()
            .find(|(n, _)| *n == ingress.iface_name)
            .map(|&(_, i)| i)
            .or_else(|| self.containing(ingress.iface_addr))
    }
}

/// Why a subnet was chosen, for tests and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    LinkSelection,
    SubnetSelection,
    Giaddr,
    Interface,
}

/// The subnet of a request, and what chose it; `None` when the address
/// that decides lies in no configured subnet.
pub fn subnet(
    index: &SubnetIndex,
    giaddr: Ipv4Addr,
    relay_info: Option<&[u8]>,
    subnet_selection: Option<Ipv4Addr>,
    ingress: &Ingress,
) -> Option<(usize, By)> {
    if let Some(link) = relay_info.and_then(link_selection) {
        return index.containing(link).map(|s| (s, By::LinkSelection));
    }
    if let Some(sel) = subnet_selection {
        return index.containing(sel).map(|s| (s, By::SubnetSelection));
    }
    if !giaddr.is_unspecified() {
        return index.containing(giaddr).map(|s| (s, By::Giaddr));
    }
    index.of_interface(ingress).map(|s| (s, By::Interface))
}

/// Sub-option 5 (link selection, RFC 3527) of a raw option 82, code and
/// length bytes included. A malformed option yields nothing.
pub fn link_selection(option82: &[u8]) -> Option<Ipv4Addr> {
    let (&code, rest) = option82.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if code != 82 {
        return None;
    }
    let mut subs = rest.get(..usize::from(len))?;
    while let [sub, sub_len, tail @ ..] = subs {
        let value = tail.get(..usize::from(*sub_len))?;
        if *sub == 5 {
            let octets: [u8; 4] = value.try_into().ok()?;
            return Some(Ipv4Addr::from(octets));
        }
        subs = &tail[usize::from(*sub_len)..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_selection_sub_option() {
        let raw = [82, 12, 1, 4, b'p', b'o', b'r', b't', 5, 4, 10, 60, 0, 1];
        assert_eq!(link_selection(&raw), Some(Ipv4Addr::new(10, 60, 0, 1)));
        assert_eq!(link_selection(&[82, 6, 1, 4, b'p', b'o', b'r', b't']), None);
        // Truncated or wrong lengths are ignored, never read past the end.
        assert_eq!(link_selection(&[82, 6, 5, 4, 10, 60, 0]), None);
        assert_eq!(link_selection(&[82, 5, 5, 3, 10, 60, 0]), None);
        assert_eq!(link_selection(&[82, 4, 1, 9, 0, 0]), None);
        assert_eq!(link_selection(&[81, 6, 5, 4, 10, 60, 0, 1]), None);
        assert_eq!(link_selection(&[]), None);
    }
}
