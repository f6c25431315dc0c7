//! `stormboot import`: reads another DHCP server's host reservations (and
//! its subnets, where the format has them) and turns them into stormboot's
//! `[[subnet]]` / `[[reservation]]` TOML.
//!
//! Each format is a pure function from text to [`Import`]; what it cannot
//! translate lands in [`Import::skipped`] with the line and the reason, so
//! nothing is lost without a word. [`finish`] then applies the rules every
//! format shares: the subnets as stormboot's validator wants them, and the
//! reservation rule the config loader and the API apply, so that the output
//! passes `check-config`.

pub mod csv;
pub mod dnsmasq;
pub mod isc;
pub mod kea;
pub mod load;
pub mod render;
pub mod tinkerbell;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::reservation::rule::{self, Candidate, Network, OptionText, Refusal, Rest};

/// The formats `stormboot import --from` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISC dhcpd.conf: host blocks and subnet declarations.
    IscDhcpd,
    /// dnsmasq: dhcp-host, dhcp-range, dhcp-option and domain lines.
    Dnsmasq,
    /// Kea's Dhcp4 JSON (comments allowed): subnet4 and reservations.
    Kea,
    /// Tinkerbell Hardware objects (YAML, one or several documents).
    Tinkerbell,
    /// stormboot's own reservations file: mac,ip[,hostname].
    Csv,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::IscDhcpd => "isc-dhcpd",
            Format::Dnsmasq => "dnsmasq",
            Format::Kea => "kea",
            Format::Tinkerbell => "tinkerbell",
            Format::Csv => "csv",
        }
    }
}

/// What one input file holds, in stormboot's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Import {
    pub subnets: Vec<Subnet>,
    pub reservations: Vec<Reservation>,
    pub skipped: Vec<Skipped>,
    /// A network the input serves did not become a subnet (a dnsmasq
    /// range without its netmask): an address outside `subnets` may then
    /// be on it, and is not refused for that.
    pub unknown_subnets: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Where it was declared in the input (1-based).
    pub line: usize,
    pub cidr: Ipv4Net,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub ntp: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    /// Seconds.
    pub lease_time: Option<u64>,
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub options: Vec<OptionValue>,
}

impl Subnet {
    pub fn new(line: usize, cidr: Ipv4Net) -> Self {
        Subnet {
            line,
            cidr: cidr.trunc(),
            routers: Vec::new(),
            dns: Vec::new(),
            domain: None,
            ntp: Vec::new(),
            mtu: None,
            lease_time: None,
            pools: Vec::new(),
            options: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Where it was declared in the input (1-based).
    pub line: usize,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub profile: Option<String>,
    /// False when the input says the machine must not boot from the
    /// network (Tinkerbell's `netboot.allowPXE: false`).
    pub allow_pxe: bool,
    pub options: Vec<OptionValue>,
}

impl Reservation {
    pub fn new(line: usize, mac: [u8; 6], ip: Ipv4Addr) -> Self {
        Reservation {
            line,
            mac,
            ip,
            hostname: None,
            profile: None,
            allow_pxe: true,
            options: Vec::new(),
        }
    }
}

/// A custom option as `[[...option]]` writes it: the value is text parsed
/// by `kind` (one of the config's option types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionValue {
    pub code: u8,
    pub kind: &'static str,
    pub value: String,
}

/// Something in the input that has no stormboot counterpart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// Input that cannot be read at all: the command's only failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// Reads `text` as `format`, then applies [`finish`].
pub fn import(format: Format, text: &str) -> Result<Import, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw = match format {
        Format::IscDhcpd => isc::parse(text)?,
        Format::Dnsmasq => dnsmasq::parse(text)?,
        Format::Kea => kea::parse(text)?,
        Format::Tinkerbell => tinkerbell::parse(text)?,
        Format::Csv => csv::parse(text)?,
    };
    Ok(finish(raw))
}

impl Import {
    pub fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            reason: reason.into(),
        });
    }
}

/// The rules that stormboot's validator applies to every subnet, and the
/// reservation rule, applied here so that the output is accepted as it is:
/// what breaks one is moved to `skipped` with the reason.
pub fn finish(mut imp: Import) -> Import {
    let mut skipped = std::mem::take(&mut imp.skipped);

    let mut subnets: Vec<Subnet> = Vec::with_capacity(imp.subnets.len());
    for mut s in imp.subnets {
        if let Some(other) = subnets
            .iter()
            .find(|o| o.cidr.contains(&s.cidr.network()) || s.cidr.contains(&o.cidr.network()))
        {
            if other.cidr == s.cidr && same_settings(other, &s) {
                // Tinkerbell repeats the subnet on every interface.
                continue;
            }
            skipped.push(Skipped {
                line: s.line,
                reason: format!(
                    "subnet {} overlaps subnet {} (line {}), which is kept",
                    s.cidr, other.cidr, other.line
                ),
            });
            continue;
        }
        let net = s.cidr;
        s.routers.retain(|&r| {
            let ok = net.contains(&r) && r != net.network() && r != net.broadcast();
            if !ok {
                skipped.push(Skipped {
                    line: s.line,
                    reason: format!("router {r} is not a host address of {net}"),
                });
            }
            ok
        });
        if let Some(d) = &s.domain {
            if let Err(m) = crate::config::dns_name(d) {
                skipped.push(Skipped {
                    line: s.line,
                    reason: format!("domain {d:?} of {net}: {m}"),
                });
                s.domain = None;
            }
        }
        s.pools = clip_pools(&s, &mut skipped);
        subnets.push(s);
    }

    // The reservation rule, against the subnets kept above and the
    // reservations kept so far; an invalid host name alone drops the name.
    let network = Network::of_import(
        subnets
            .iter()
            .map(|s| (s.cidr, s.routers.clone()))
            .collect(),
        !imp.unknown_subnets,
    );
    let mut kept = Kept::default();
    let mut reservations: Vec<Reservation> = Vec::with_capacity(imp.reservations.len());
    for mut r in imp.reservations {
        let mac = crate::frame::format_mac(&r.mac);
        let mut verdict = check(&r, &network, &kept);
        if let (Err(Refusal::Hostname { message }), Some(h)) = (&verdict, &r.hostname) {
            skipped.push(Skipped {
                line: r.line,
                reason: format!(
                    "{mac}: host name {h:?} left out ({message}); the reservation is kept"
                ),
            });
            r.hostname = None;
            verdict = check(&r, &network, &kept);
        }
        let reason = match verdict {
            Ok(_) => {
                kept.by_mac.insert(r.mac, r.line);
                kept.by_ip.insert(r.ip, (r.mac, r.line));
                reservations.push(r);
                continue;
            }
            Err(Refusal::MacNotUnicast { .. }) => format!("{mac}: not a unicast MAC address"),
            Err(Refusal::MacTaken { origin, .. }) => {
                format!("{mac} {}: duplicate MAC ({origin} is kept)", r.ip)
            }
            Err(Refusal::IpTaken { origin, .. }) => {
                format!("{mac} {}: duplicate address ({origin} is kept)", r.ip)
            }
            Err(other) => format!("{mac}: {other}"),
        };
        skipped.push(Skipped {
            line: r.line,
            reason,
        });
    }
    skipped.sort_by_key(|s| s.line);
    Import {
        subnets,
        reservations,
        skipped,
        unknown_subnets: imp.unknown_subnets,
    }
}

/// `r` under the reservation rule.
fn check(r: &Reservation, network: &Network, kept: &Kept) -> Result<rule::Accepted, Refusal> {
    let options: Vec<OptionText> = r
        .options
        .iter()
        .map(|o| OptionText {
            code: o.code.into(),
            kind: o.kind,
            value: &o.value,
        })
        .collect();
    let candidate = Candidate {
        mac: r.mac,
        ip: r.ip,
        hostname: r.hostname.as_deref(),
        // Given on the command line afterwards, for the target's profiles.
        profile: None,
        options: &options,
    };
    rule::check(&candidate, network, kept)
}

/// The reservations kept so far, by MAC and by address, with their lines.
#[derive(Default)]
struct Kept {
    by_mac: HashMap<[u8; 6], usize>,
    by_ip: HashMap<Ipv4Addr, ([u8; 6], usize)>,
}

impl Rest for Kept {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        let line = self.by_mac.get(mac)?;
        Some(Cow::Owned(format!("line {line}")))
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        let &(mac, line) = self.by_ip.get(&ip)?;
        Some((mac, Cow::Owned(format!("line {line}"))))
    }
}

fn same_settings(a: &Subnet, b: &Subnet) -> bool {
    Subnet {
        line: 0,
        ..a.clone()
    } == Subnet {
        line: 0,
        ..b.clone()
    }
}

/// Pools as stormboot accepts them: inside the subnet, without its network,
/// broadcast or router addresses (a pool around one is split), no overlap.
fn clip_pools(s: &Subnet, skipped: &mut Vec<Skipped>) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let net = s.cidr;
    let (lo, hi) = (u32::from(net.network()), u32::from(net.broadcast()));
    let mut holes: Vec<u32> = s.routers.iter().map(|&r| u32::from(r)).collect();
    holes.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &(a, b) in &s.pools {
        let (a, b) = (u32::from(a), u32::from(b));
        if a > b || a < lo || b > hi {
            skipped.push(Skipped {
                line: s.line,
                reason: format!(
                    "pool {}-{} is not inside {net}",
                    Ipv4Addr::from(a),
                    Ipv4Addr::from(b)
                ),
            });
            continue;
        }
        let mut pieces = vec![(a.max(lo + 1), b.min(hi - 1))];
        for &h in &holes {
            pieces = pieces
                .into_iter()
                .flat_map(|(x, y)| {
                    if (x..=y).contains(&h) {
                        vec![(x, h.wrapping_sub(1)), (h + 1, y)]
                    } else {
                        vec![(x, y)]
                    }
                })
                .filter(|(x, y)| x <= y && *y != u32::MAX)
                .collect();
        }
        for (x, y) in pieces {
            if let Some(&(p, q)) = out.iter().find(|(p, q)| x <= *q && *p <= y) {
                skipped.push(Skipped {
                    line: s.line,
                    reason: format!(
                        "pool {}-{} overlaps pool {}-{} of {net}",
                        Ipv4Addr::from(x),
                        Ipv4Addr::from(y),
                        Ipv4Addr::from(p),
                        Ipv4Addr::from(q)
                    ),
                });
                continue;
            }
            out.push((x, y));
        }
    }
    out.into_iter()
        .map(|(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
        .collect()
}

/// A netmask in dotted form as a prefix length, if its bits are contiguous.
pub fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// A MAC as the importers meet it: six hex octets separated by ':' or
/// '-', where dhcpd also writes `0:0:c0:5d:bd:95` (leading zeros left out).
pub fn mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// Options known by name to Kea, dnsmasq and dhcpd, with the type
/// stormboot's `[[...option]]` gives them. Options that a subnet key or the
/// server sets are handled by [`subnet_option`] / [`reservation_option`].
pub const NAMED_OPTIONS: [(&str, u8, &str); 19] = [
    ("subnet-mask", 1, "ipv4"),
    ("time-servers", 4, "ipv4-list"),
    ("routers", 3, "ipv4-list"),
    ("domain-name-servers", 6, "ipv4-list"),
    ("log-servers", 7, "ipv4-list"),
    ("host-name", 12, "string"),
    ("domain-name", 15, "string"),
    ("root-path", 17, "string"),
    ("interface-mtu", 26, "u16"),
    ("broadcast-address", 28, "ipv4"),
    ("ntp-servers", 42, "ipv4-list"),
    ("netbios-name-servers", 44, "ipv4-list"),
    ("dhcp-lease-time", 51, "u32"),
    ("tftp-server-name", 66, "string"),
    ("boot-file-name", 67, "string"),
    ("bootfile-name", 67, "string"),
    ("smtp-server", 69, "ipv4-list"),
    ("tz-posix", 100, "string"),
    ("tz-database", 101, "string"),
];

pub fn option_code(name: &str) -> Option<u8> {
    NAMED_OPTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, c, _)| c)
}

fn option_kind(code: u8) -> Option<&'static str> {
    NAMED_OPTIONS
        .iter()
        .find(|(_, c, _)| *c == code)
        .map(|&(_, _, k)| k)
}

/// `a, b, c` as addresses.
pub fn ipv4_list(value: &str) -> Result<Vec<Ipv4Addr>, String> {
    value
        .split(',')
        .map(|p| {
            let p = p.trim();
            p.parse()
                .map_err(|_| format!("{p:?} is not an IPv4 address"))
        })
        .collect()
}

/// Sets option `code` (its value as text, lists comma-separated) on a
/// subnet: the options that stormboot has a subnet key for go there.
pub fn subnet_option(s: &mut Subnet, code: u8, value: &str) -> Result<(), String> {
    match code {
        1 | 28 => return Err("stormboot derives it from the subnet's cidr".into()),
        3 => s.routers = ipv4_list(value)?,
        6 => s.dns = ipv4_list(value)?,
        15 => s.domain = Some(value.trim().to_string()),
        26 => {
            s.mtu = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{value:?} is not an MTU"))?,
            )
        }
        42 => s.ntp = ipv4_list(value)?,
        51 => {
            s.lease_time = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{value:?} is not a number of seconds"))?,
            )
        }
        _ => {
            if let Some((_, what)) = crate::config::SERVER_SET.iter().find(|(c, _)| *c == code) {
                return Err(format!("option {code}: stormboot sets it itself ({what})"));
            }
            let o = custom(code, value)?;
            s.options.retain(|x| x.code != code);
            s.options.push(o);
        }
    }
    Ok(())
}

/// Sets option `code` on a reservation; stormboot sets most network
/// options per subnet, so those are refused with the reason.
pub fn reservation_option(r: &mut Reservation, code: u8, value: &str) -> Result<(), String> {
    if code == 12 {
        r.hostname = Some(value.trim().to_string());
        return Ok(());
    }
    if let Some((_, what)) = crate::config::SERVER_SET.iter().find(|(c, _)| *c == code) {
        return Err(format!(
            "option {code} per host: stormboot sets it for the whole subnet ({what})"
        ));
    }
    let o = custom(code, value)?;
    r.options.retain(|x| x.code != code);
    r.options.push(o);
    Ok(())
}

fn custom(code: u8, value: &str) -> Result<OptionValue, String> {
    let kind = option_kind(code)
        .ok_or_else(|| format!("option {code}: the importer does not know its type"))?;
    let value = value.trim().to_string();
    crate::config::parse_option_value(kind, &value).map_err(|m| format!("option {code}: {m}"))?;
    Ok(OptionValue { code, kind, value })
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.reason)
    }
}

/// `stormboot import`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The format of FILE.
    #[arg(long = "from", value_enum, env = "STORMBOOT_IMPORT_FROM")]
    pub from: Format,
    /// The file to read; "-" reads standard input.
    pub file: std::path::PathBuf,
    /// Boot profile given to every imported reservation (a [[profile]] name).
    #[arg(long, env = "STORMBOOT_IMPORT_PROFILE")]
    pub profile: Option<String>,
    /// Also send the reservations to a running daemon
    /// (POST /api/v1/reservations/bulk).
    #[arg(long, env = "STORMBOOT_IMPORT_LOAD")]
    pub load: bool,
    /// The daemon's API, http://HOST:PORT (or HOST:PORT), for --load.
    #[arg(long, env = "STORMBOOT_API", default_value = "http://127.0.0.1:8067")]
    pub api: String,
    /// Bearer token for the daemon's API, for --load.
    #[arg(long, env = "STORMBOOT_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs `stormboot import`: TOML on stdout, what was not translated on
/// stderr. Fails only when FILE cannot be read or parsed, or --load fails.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    use std::io::Read;
    let name = args.file.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| anyhow::anyhow!("{name}: {e}"))?
    };
    let mut imp = import(args.from, &text)
        .map_err(|e| anyhow::anyhow!("{name}:{}: {}", e.line, e.message))?;
    if let Some(p) = &args.profile {
        for r in &mut imp.reservations {
            r.profile = Some(p.clone());
        }
    }
    print!("{}", render::toml(&imp, &name, args.from.name()));
    if !imp.skipped.is_empty() {
        eprintln!(
            "stormboot import: {} item(s) not translated:",
            imp.skipped.len()
        );
        eprint!("{}", render::skipped(&imp, &name));
    }
    if args.load && imp.reservations.is_empty() {
        eprintln!("stormboot import: no reservations to load; nothing sent");
    } else if args.load {
        let reply = load::post(&args.api, args.token.as_deref(), &imp.reservations)?;
        eprintln!(
            "stormboot import: {} reservation(s) sent to {}: {}",
            imp.reservations.len(),
            args.api,
            reply.trim()
        );
    }
    Ok(())
}
