//! The one rule that decides whether a reservation may join the book: a
//! pure function of the candidate, the network it would be served on and
//! a read view of the rest of the book. The config loader, the API (REST
//! and OMAPI) and the importer all call [`check`]; each only translates a
//! [`Refusal`] into its own shape (file:line and key, field and HTTP
//! status, skipped line).

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{self, CustomOption};
use crate::frame::format_mac;

/// A reservation as its writer gave it, once its MAC and address parse.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub hostname: Option<&'a str>,
    /// A `[[profile]]` name.
    pub profile: Option<&'a str>,
    pub options: &'a [OptionText<'a>],
}

/// A custom option as written: the code before it is known to fit a byte,
/// the type's name and the value's text.
#[derive(Clone, Copy, Debug)]
pub struct OptionText<'a> {
    pub code: i64,
    pub kind: &'a str,
    pub value: &'a str,
}

/// What an accepted candidate becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Index of the subnet serving the address; None only on a network
    /// that does not know all its subnets (an import's).
    pub subnet: Option<usize>,
    /// Index of the profile.
    pub profile: Option<usize>,
    /// Encoded, sorted by code.
    pub options: Vec<CustomOption>,
}

/// The rest of the book, as the rule reads it: two keyed lookups, never a
/// scan, since a million-line file is checked line by line against it.
pub trait Rest {
    /// Where the reservation of `mac` was written ("stormboot.toml:9",
    /// "api", "line 12"), if the book holds one.
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>>;
    /// The MAC holding `ip`, and where that reservation was written.
    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)>;
}

/// The server, its subnets and its profiles, as the rule needs them.
#[derive(Clone, Debug)]
pub struct Network {
    server: Option<Ipv4Addr>,
    /// Each subnet with its routers, in configuration order.
    subnets: Vec<(Ipv4Net, Vec<Ipv4Addr>)>,
    /// (first, last, index into `subnets`) sorted by first; subnets do not
    /// overlap, so a binary search finds the one containing an address.
    ranges: Vec<(u32, u32, usize)>,
    profiles: Vec<String>,
    /// false: an address outside `subnets` may be in a subnet declared
    /// elsewhere, so it is not refused.
    complete: bool,
}

impl Network {
    /// A configuration's network: every address must be in one of its
    /// subnets.
    pub fn of_config(
        server: Ipv4Addr,
        subnets: &[config::Subnet],
        profiles: &[config::Profile],
    ) -> Network {
        Network::build(
            Some(server),
            subnets.iter().map(|s| (s.net, s.routers.clone())).collect(),
            profiles.iter().map(|p| p.name.clone()).collect(),
            true,
        )
    }

    /// The network an import declares: its server is unknown and it has
    /// no profiles. An address must lie inside one of `subnets`, as the
    /// other server too serves a host only on a subnet it knows, unless
    /// there are none (the reservations are for subnets configured
    /// elsewhere) or `all` is false (some of the input's networks did not
    /// become subnets).
    pub fn of_import(subnets: Vec<(Ipv4Net, Vec<Ipv4Addr>)>, all: bool) -> Network {
        let complete = all && !subnets.is_empty();
        Network::build(None, subnets, Vec::new(), complete)
    }

    fn build(
        server: Option<Ipv4Addr>,
        subnets: Vec<(Ipv4Net, Vec<Ipv4Addr>)>,
        profiles: Vec<String>,
        complete: bool,
    ) -> Network {
        let mut ranges: Vec<_> = subnets
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (u32::from(n.network()), u32::from(n.broadcast()), i))
            .collect();
        ranges.sort_unstable();
        Network {
            server,
            subnets,
            ranges,
            profiles,
            complete,
        }
    }

    fn subnet_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        let i = self.ranges.partition_point(|&(first, _, _)| first <= ip);
        let &(_, last, index) = self.ranges.get(i.checked_sub(1)?)?;
        (ip <= last).then_some(index)
    }
}

/// The field a refusal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Mac,
    Ip,
    Hostname,
    Profile,
    Option { index: usize, part: OptionPart },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionPart {
    Code,
    Type,
    Value,
}

impl Field {
    /// The field's name, the option list being called `options` (the
    /// config file's table is `option`, the API's field `options`).
    pub fn name(self, options: &str) -> String {
        match self {
            Field::Mac => "mac".into(),
            Field::Ip => "ip".into(),
            Field::Hostname => "hostname".into(),
            Field::Profile => "profile".into(),
            Field::Option { index, part } => {
                let part = match part {
                    OptionPart::Code => "code",
                    OptionPart::Type => "type",
                    OptionPart::Value => "value",
                };
                format!("{options}[{index}].{part}")
            }
        }
    }
}

/// Why a candidate is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A group (or all-zero) address is never a client's source MAC, so
    /// the reservation could never match.
    MacNotUnicast {
        mac: [u8; 6],
    },
    MacTaken {
        mac: [u8; 6],
        origin: String,
    },
    OutsideSubnets {
        ip: Ipv4Addr,
    },
    NetworkAddress {
        ip: Ipv4Addr,
        net: Ipv4Net,
    },
    BroadcastAddress {
        ip: Ipv4Addr,
        net: Ipv4Net,
    },
    ServerAddress {
        ip: Ipv4Addr,
    },
    RouterAddress {
        ip: Ipv4Addr,
        net: Ipv4Net,
    },
    IpTaken {
        ip: Ipv4Addr,
        holder: [u8; 6],
        origin: String,
    },
    /// Not a DNS name; the message says why.
    Hostname {
        message: String,
    },
    NoProfile {
        name: String,
        known: Vec<String>,
    },
    Option(OptionRefusal),
}

/// Why option `index` of a list is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionRefusal {
    pub index: usize,
    pub reason: OptionReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionReason {
    /// Not 1..=254.
    Code {
        code: i64,
    },
    ServerSet {
        code: u8,
        what: &'static str,
    },
    /// Also option `first` of the list.
    Duplicate {
        code: u8,
        first: usize,
    },
    Type {
        kind: String,
    },
    Value {
        message: String,
    },
}

impl OptionRefusal {
    pub fn part(&self) -> OptionPart {
        match self.reason {
            OptionReason::Code { .. }
            | OptionReason::ServerSet { .. }
            | OptionReason::Duplicate { .. } => OptionPart::Code,
            OptionReason::Type { .. } => OptionPart::Type,
            OptionReason::Value { .. } => OptionPart::Value,
        }
    }
}

impl fmt::Display for OptionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            OptionReason::Code { code } => write!(f, "{code} is not an option code (1..=254)"),
            OptionReason::ServerSet { code, what } => write!(
                f,
                "option {code} ({what}) is set by the server and cannot be configured"
            ),
            OptionReason::Duplicate { code, .. } => write!(f, "duplicate option {code}"),
            OptionReason::Type { kind } => {
                write!(f, "{kind:?} is not one of {}", config::OPTION_TYPES)
            }
            OptionReason::Value { message } => f.write_str(message),
        }
    }
}

impl Refusal {
    pub fn field(&self) -> Field {
        match self {
            Refusal::MacNotUnicast { .. } | Refusal::MacTaken { .. } => Field::Mac,
            Refusal::OutsideSubnets { .. }
            | Refusal::NetworkAddress { .. }
            | Refusal::BroadcastAddress { .. }
            | Refusal::ServerAddress { .. }
            | Refusal::RouterAddress { .. }
            | Refusal::IpTaken { .. } => Field::Ip,
            Refusal::Hostname { .. } => Field::Hostname,
            Refusal::NoProfile { .. } => Field::Profile,
            Refusal::Option(o) => Field::Option {
                index: o.index,
                part: o.part(),
            },
        }
    }

    /// Whether the candidate is fine in itself and clashes with another
    /// reservation (an API's 409 rather than 400).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Refusal::MacTaken { .. } | Refusal::IpTaken { .. })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MacNotUnicast { mac } => {
                write!(f, "{} is not a unicast MAC address", format_mac(mac))
            }
            Refusal::MacTaken { mac, origin } => {
                write!(f, "duplicate MAC {} (also {origin})", format_mac(mac))
            }
            Refusal::OutsideSubnets { ip } => write!(f, "{ip} is outside every subnet"),
            Refusal::NetworkAddress { ip, net } => {
                write!(f, "{ip} is the network address of {net}")
            }
            Refusal::BroadcastAddress { ip, net } => {
                write!(f, "{ip} is the broadcast address of {net}")
            }
            Refusal::ServerAddress { ip } => write!(f, "{ip} is server.address"),
            Refusal::RouterAddress { ip, net } => write!(f, "{ip} is a router of {net}"),
            Refusal::IpTaken { ip, origin, .. } => write!(f, "duplicate IP {ip} (also {origin})"),
            Refusal::Hostname { message } => f.write_str(message),
            Refusal::NoProfile { name, known } => write!(
                f,
                "no [[profile]] is named {name:?} (the configuration has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            Refusal::Option(o) => o.fmt(f),
        }
    }
}

/// Whether `c` may join the book beside `book` on `net`. The book must not
/// hold an entry `c` replaces (a view without it is the caller's).
pub fn check(c: &Candidate, net: &Network, book: &dyn Rest) -> Result<Accepted, Refusal> {
    let (mac, ip) = (c.mac, c.ip);
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(Refusal::MacNotUnicast { mac });
    }
    if let Some(origin) = book.origin_of(&mac) {
        return Err(Refusal::MacTaken {
            mac,
            origin: origin.into_owned(),
        });
    }

    let subnet = net.subnet_of(ip);
    match subnet {
        None if net.complete => return Err(Refusal::OutsideSubnets { ip }),
        None => {}
        Some(i) => {
            let (n, routers) = &net.subnets[i];
            let n = *n;
            if ip == n.network() {
                return Err(Refusal::NetworkAddress { ip, net: n });
            }
            if ip == n.broadcast() {
                return Err(Refusal::BroadcastAddress { ip, net: n });
            }
            if routers.contains(&ip) {
                return Err(Refusal::RouterAddress { ip, net: n });
            }
        }
    }
    if net.server == Some(ip) {
        return Err(Refusal::ServerAddress { ip });
    }
    if let Some((holder, origin)) = book.holder_of(ip) {
        return Err(Refusal::IpTaken {
            ip,
            holder,
            origin: origin.into_owned(),
        });
    }

    if let Some(h) = c.hostname {
        config::dns_name(h).map_err(|message| Refusal::Hostname { message })?;
    }
    let profile =
        match c.profile {
            None => None,
            Some(name) => Some(net.profiles.iter().position(|p| p == name).ok_or_else(|| {
                Refusal::NoProfile {
                    name: name.to_owned(),
                    known: net.profiles.clone(),
                }
            })?),
        };
    let options = options(c.options).map_err(Refusal::Option)?;
    Ok(Accepted {
        subnet,
        profile,
        options,
    })
}

/// A list of custom options, a subnet's or a reservation's: codes in
/// range, not set by the server, not repeated, values of their type.
/// Sorted by code.
pub fn options(list: &[OptionText]) -> Result<Vec<CustomOption>, OptionRefusal> {
    let mut out: Vec<(CustomOption, usize)> = Vec::with_capacity(list.len());
    for (index, o) in list.iter().enumerate() {
        let refuse = |reason| Err(OptionRefusal { index, reason });
        let code = match u8::try_from(o.code) {
            Ok(c) if c != 0 && c != 255 => c,
            _ => return refuse(OptionReason::Code { code: o.code }),
        };
        if let Some(&(_, what)) = config::SERVER_SET.iter().find(|(c, _)| *c == code) {
            return refuse(OptionReason::ServerSet { code, what });
        }
        if let Some(&(_, first)) = out.iter().find(|(c, _)| c.code == code) {
            return refuse(OptionReason::Duplicate { code, first });
        }
        if !matches!(
            o.kind,
            "ipv4-list" | "ipv4" | "u8" | "u16" | "u32" | "bool" | "string" | "hex"
        ) {
            return refuse(OptionReason::Type {
                kind: o.kind.to_owned(),
            });
        }
        let data =
            config::parse_option_value(o.kind, o.value).map_err(|message| OptionRefusal {
                index,
                reason: OptionReason::Value { message },
            })?;
        out.push((CustomOption { code, data }, index));
    }
    let mut out: Vec<CustomOption> = out.into_iter().map(|(o, _)| o).collect();
    out.sort_by_key(|o| o.code);
    Ok(out)
}

/// Checks a reservation's label (what the dashboard groups by): 1 to 64
/// characters once trimmed, none of them a control character or a comma
/// (the reservations file's separator).
pub fn label(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > 64 {
        return Err(format!("{text:?}: a label is 1 to 64 characters"));
    }
    if t.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!(
            "{text:?}: no control characters or commas in a label"
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests;
