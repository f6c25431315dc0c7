//! Turns the wire structs into the runtime [`Config`], checking every
//! value and cross-reference, and naming key and line when one is wrong.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_spanned::Spanned;

use super::boot;
use super::location::Source;
use super::{
    csv, duration, options, wire, Api, Config, ConfigError, CustomOption, Dataplane, Location,
    LogLevel, Mode, Origin, OriginName, Profile, Reservation, Route, Server, Subnet, XdpMode,
};
use crate::compact::{Name, Text};
use crate::frame::parse_mac;
use crate::reservation::rule::{
    self, Candidate, Field, Network, OptionPart, OptionReason, OptionRefusal, OptionText, Refusal,
    Rest,
};

pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/stormboot";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8067";
pub const DEFAULT_OFFER_HOLD: Duration = Duration::from_secs(30);
pub const DEFAULT_DECLINE_QUARANTINE: Duration = Duration::from_secs(600);
/// RFC 2132 9.x: the smallest MTU option 26 may carry.
const MIN_MTU: i64 = 68;
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3_600);
/// Shorter leases make clients renew faster than is worth the traffic.
pub const MIN_LEASE: Duration = Duration::from_secs(60);
/// DHCP carries lease times as u32 seconds and 0xffffffff means "infinite".
pub const MAX_LEASE: Duration = Duration::from_secs(u32::MAX as u64 - 1);
/// Linux IFNAMSIZ, less the terminating NUL.
const MAX_IFNAME: usize = 15;

/// How many subnets, and how many profiles, a configuration may have.
const INDEX_LIMIT: usize = u16::MAX as usize + 1;

fn too_many(what: &str) -> String {
    format!("more than {INDEX_LIMIT} {what}")
}

/// Reads the reservations file; a parameter so tests need no files.
pub type ReadFile<'r> = &'r mut dyn FnMut(&Path) -> std::io::Result<String>;

/// What is known of a configuration before its reservations file is
/// parsed: enough to size and start loading the XDP program beside the
/// parse.
pub struct Outline<'a> {
    pub server: &'a Server,
    /// The reservations the configuration file itself holds.
    pub reservations: &'a [Reservation],
    /// The reservations file's lines: at least as many as its records.
    pub file_lines: usize,
}

/// Called once with the configuration's outline, before the reservations
/// file is parsed.
pub type OnOutline<'o> = &'o mut dyn FnMut(Outline);

pub fn validate(
    w: wire::File,
    src: &Source,
    read: ReadFile,
    outline: OnOutline,
) -> Result<Config, ConfigError> {
    let server = server(&w.server, src)?;
    let api = api(w.api.as_ref(), src)?;
    let subnets = subnets(&w.subnet, src, server.address)?;

    let profiles = boot::profiles(&w.profile, src)?;
    // Reservations name their subnet and profile in 16 bits, as the
    // program's maps do.
    if let Some(s) = w.subnet.get(INDEX_LIMIT) {
        return Err(src.invalid(&s.cidr.span(), "subnet", too_many("subnets")));
    }
    if let Some(p) = w.profile.get(INDEX_LIMIT) {
        return Err(src.invalid(&p.name.span(), "profile", too_many("profiles")));
    }
    let boot = boot::boot(w.boot.as_ref(), &profiles, src)?;
    let mut subnets = subnets;
    for (i, s) in w.subnet.iter().enumerate() {
        if let Some(name) = &s.profile {
            subnets[i].profile = Some(boot::profile_ref(
                name,
                &format!("subnet[{i}].profile"),
                &profiles,
                src,
            )?);
        }
    }

    let mut set = ReservationSet::new(&subnets, server.address, &profiles);
    for (i, r) in w.reservation.iter().enumerate() {
        let prefix = format!("reservation[{i}].");
        let line = |start| src.line(start);
        let place = Place {
            file: &src.file,
            key_prefix: &prefix,
            mac_line: line(r.mac.span().start),
            ip_line: line(r.ip.span().start),
            hostname_line: r.hostname.as_ref().map_or(0, |h| line(h.span().start)),
            profile_line: r.profile.as_ref().map_or(0, |p| line(p.span().start)),
            option_lines: r
                .option
                .iter()
                .map(|o| [o.code.span(), o.kind.span(), o.value.span()].map(|s| line(s.start)))
                .collect(),
        };
        let written = Written {
            mac: r.mac.get_ref(),
            ip: r.ip.get_ref(),
            hostname: r.hostname.as_ref().map(|h| h.get_ref().as_str()),
            profile: r.profile.as_ref().map(|p| p.get_ref().as_str()),
            options: &option_texts(&r.option),
        };
        set.add(&written, &place)?;
        if let Some(v) = &r.allow_pxe {
            set.list[i].allow_pxe = *v.get_ref();
        }
        if let Some(l) = &r.label {
            set.list[i].label = Some(
                reservation_label(l.get_ref())
                    .map(Text::from)
                    .map_err(|m| src.invalid(&l.span(), format!("{prefix}label"), m))?,
            );
        }
    }

    let file = match (&server.reservations_file, &w.server.reservations_file) {
        (Some(path), Some(spanned)) => {
            let text = read(path).map_err(|e| {
                src.invalid(
                    &spanned.span(),
                    "server.reservations_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some((path, text))
        }
        _ => None,
    };
    outline(Outline {
        server: &server,
        reservations: &set.list,
        file_lines: file.as_ref().map_or(0, |(_, text)| csv::lines(text)),
    });
    if let Some((path, text)) = file {
        csv::parse(&text, &path.display().to_string(), &mut set)?;
    }
    let reservations = set.list;

    let hooks = super::hooks::hooks(w.hooks.as_ref(), server.mode, src)?;
    let omapi = super::omapi::omapi(w.omapi.as_ref(), src, read)?;
    let mut warnings = Vec::new();
    let store = super::store::store(
        w.store.as_ref(),
        w.server.lease_db.as_ref(),
        src,
        read,
        &mut warnings,
    )?;
    let cluster = super::cluster::cluster(w.cluster.as_ref(), &store, src)?;
    // duration_value refuses zero: every machine would be stuck.
    let dashboard = match w.dashboard.as_ref().and_then(|d| d.stuck_after.as_ref()) {
        None => super::Dashboard::default(),
        Some(d) => super::Dashboard {
            stuck_after: duration_value(d, "dashboard.stuck_after", src)?,
        },
    };
    Ok(Config {
        omapi,
        server,
        api,
        subnets,
        reservations,
        boot,
        profiles,
        hooks,
        dashboard,
        store,
        cluster,
        warnings,
    })
}

fn server(w: &wire::Server, src: &Source) -> Result<Server, ConfigError> {
    let names = &w.interface.get_ref().0;
    if names.is_empty() {
        return Err(src.invalid(
            &w.interface.span(),
            "server.interface",
            "names no interface",
        ));
    }
    let mut interfaces = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let key = if names.len() == 1 {
            "server.interface".to_string()
        } else {
            format!("server.interface[{i}]")
        };
        // The list's span: toml gives no span per element of a plain array.
        let name = ifname(&Spanned::new(w.interface.span(), n.clone()), &key, src)?;
        if interfaces.contains(&name) {
            return Err(src.invalid(
                &w.interface.span(),
                &key,
                format!("{name:?} is listed twice"),
            ));
        }
        interfaces.push(name);
    }

    let address = ipv4(&w.address, "server.address", src)?;
    unicast(address, &w.address.span(), "server.address", src)?;

    // Relative to the config file, so the daemon's working directory does
    // not change which file is read.
    let reservations_file = w.reservations_file.as_ref().map(|f| {
        let p = Path::new(f.get_ref());
        match src.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    });

    let xdp_mode = match &w.xdp_mode {
        None => XdpMode::Driver,
        Some(s) => match s.get_ref().as_str() {
            "driver" => XdpMode::Driver,
            "skb" => XdpMode::Skb,
            other => {
                return Err(src.invalid(
                    &s.span(),
                    "server.xdp_mode",
                    format!("{other:?} is not one of \"driver\", \"skb\""),
                ))
            }
        },
    };

    let xdp_log_level = match &w.xdp_log_level {
        None => LogLevel::Warn,
        Some(s) => LogLevel::from_name(s.get_ref()).ok_or_else(|| {
            src.invalid(
                &s.span(),
                "server.xdp_log_level",
                format!(
                    "{:?} is not one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                    s.get_ref()
                ),
            )
        })?,
    };

    let bpffs_dir = match &w.bpffs_dir {
        None => PathBuf::from(DEFAULT_BPFFS_DIR),
        Some(s) => {
            let p = PathBuf::from(s.get_ref());
            if !p.is_absolute() {
                return Err(src.invalid(
                    &s.span(),
                    "server.bpffs_dir",
                    format!("{:?} must be an absolute path", s.get_ref()),
                ));
            }
            p
        }
    };

    let mode = match &w.mode {
        None => Mode::Authoritative,
        Some(s) => match s.get_ref().as_str() {
            "authoritative" => Mode::Authoritative,
            "boot-only" => Mode::BootOnly,
            "proxy" => Mode::Proxy,
            other => {
                return Err(src.invalid(
                    &s.span(),
                    "server.mode",
                    format!("{other:?} is not one of \"authoritative\", \"proxy\", \"boot-only\""),
                ))
            }
        },
    };

    let dataplane = match &w.dataplane {
        None => Dataplane::Xdp,
        Some(s) => match s.get_ref().as_str() {
            "xdp" => Dataplane::Xdp,
            "userspace" => Dataplane::Userspace,
            other => {
                return Err(src.invalid(
                    &s.span(),
                    "server.dataplane",
                    format!("{other:?} is not one of \"xdp\", \"userspace\""),
                ))
            }
        },
    };

    let offer_hold = match &w.offer_hold {
        None => DEFAULT_OFFER_HOLD,
        Some(d) => duration_value(d, "server.offer_hold", src)?,
    };
    let decline_quarantine = match &w.decline_quarantine {
        None => DEFAULT_DECLINE_QUARANTINE,
        Some(d) => duration_value(d, "server.decline_quarantine", src)?,
    };

    let slowpath_rate = slowpath_limit(&w.slowpath_rate, "server.slowpath_rate", 20, src)?;
    let slowpath_burst = slowpath_limit(&w.slowpath_burst, "server.slowpath_burst", 40, src)?;

    Ok(Server {
        interfaces,
        address,
        reservations_file,
        xdp_mode,
        xdp_log_level,
        bpffs_dir,
        dataplane,
        mode,
        offer_hold,
        decline_quarantine,
        slowpath_rate,
        slowpath_burst,
    })
}

/// Largest slow-path rate or burst: a million requests a second from one
/// MAC is no limit at all.
const MAX_SLOWPATH_LIMIT: i64 = 1_000_000;

fn slowpath_limit(
    v: &Option<Spanned<i64>>,
    key: &str,
    default: u32,
    src: &Source,
) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) => {
            let x = *n.get_ref();
            if !(0..=MAX_SLOWPATH_LIMIT).contains(&x) {
                return Err(src.invalid(
                    &n.span(),
                    key,
                    format!("{x} is outside 0..={MAX_SLOWPATH_LIMIT} (0: no limit)"),
                ));
            }
            Ok(x as u32)
        }
    }
}

/// The rules of the kernel's dev_valid_name(), so a bad name fails here
/// rather than at attach time with a bare ENODEV.
fn ifname(s: &Spanned<String>, key: &str, src: &Source) -> Result<String, ConfigError> {
    let name = s.get_ref();
    if name.is_empty()
        || name.len() > MAX_IFNAME
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(src.invalid(
            &s.span(),
            key,
            format!("{name:?} is not a valid interface name (1..={MAX_IFNAME} bytes, no '/', ':' or spaces)"),
        ));
    }
    Ok(name.clone())
}

fn api(w: Option<&wire::Api>, src: &Source) -> Result<Api, ConfigError> {
    let listen = match w.and_then(|a| a.listen.as_ref()) {
        None => DEFAULT_LISTEN
            .parse()
            .expect("default listen address parses"),
        Some(s) => s.get_ref().parse::<SocketAddr>().map_err(|_| {
            src.invalid(
                &s.span(),
                "api.listen",
                format!("{:?} is not an address:port", s.get_ref()),
            )
        })?,
    };
    let token = match w.and_then(|a| a.token.as_ref()) {
        None => None,
        Some(t)
            if t.get_ref().trim().is_empty() || t.get_ref().chars().any(char::is_whitespace) =>
        {
            return Err(src.invalid(
                &t.span(),
                "api.token",
                "a token must be non-empty and contain no whitespace",
            ))
        }
        Some(t) => Some(t.get_ref().clone()),
    };
    // Whether a token exists at all is checked when the daemon starts:
    // STORMBOOT_API_TOKEN may give it instead of the file.
    let read_token = w
        .and_then(|a| a.read_token.as_ref())
        .is_some_and(|r| *r.get_ref());
    Ok(Api {
        listen,
        token,
        read_token,
    })
}

fn subnets(w: &[wire::Subnet], src: &Source, server: Ipv4Addr) -> Result<Vec<Subnet>, ConfigError> {
    if w.is_empty() {
        return Err(ConfigError::Invalid {
            at: Location {
                file: src.file.clone(),
                line: None,
            },
            key: "subnet".into(),
            message: "at least one [[subnet]] is required".into(),
        });
    }
    let mut out: Vec<Subnet> = Vec::with_capacity(w.len());
    for (i, s) in w.iter().enumerate() {
        let key = |field: &str| format!("subnet[{i}].{field}");
        let net = cidr(&s.cidr, &key("cidr"), src)?;
        for (j, earlier) in out.iter().enumerate() {
            if earlier.net.contains(&net.network()) || net.contains(&earlier.net.network()) {
                return Err(src.invalid(
                    &s.cidr.span(),
                    key("cidr"),
                    format!(
                        "{net} overlaps subnet[{j}].cidr {} ({}:{})",
                        earlier.net,
                        src.file,
                        src.line(w[j].cidr.span().start)
                    ),
                ));
            }
        }

        let mut routers = Vec::with_capacity(s.routers.len());
        for (j, r) in s.routers.iter().enumerate() {
            let k = key(&format!("routers[{j}]"));
            let ip = ipv4(r, &k, src)?;
            if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
                return Err(src.invalid(
                    &r.span(),
                    k,
                    format!("{ip} is not a host address of {net}"),
                ));
            }
            routers.push(ip);
        }

        let mut dns = Vec::with_capacity(s.dns.len());
        for (j, d) in s.dns.iter().enumerate() {
            let k = key(&format!("dns[{j}]"));
            let ip = ipv4(d, &k, src)?;
            unicast(ip, &d.span(), &k, src)?;
            dns.push(ip);
        }

        let domain = match &s.domain {
            None => None,
            Some(d) => {
                dns_name(d.get_ref()).map_err(|m| src.invalid(&d.span(), key("domain"), m))?;
                Some(d.get_ref().clone())
            }
        };

        let (lease_time, renew_time, rebind_time) = times(s, &key, src)?;
        // Below the part of the lease left after T1, so a lease not
        // rewritten still outlasts the holder's next renewal.
        let cache_max = 1.0 - renew_time.as_secs_f64() / lease_time.as_secs_f64();
        let renewal_cache = match &s.cache_threshold {
            None => Duration::ZERO,
            Some(t) if *t.get_ref() >= 0.0 && *t.get_ref() < cache_max => {
                Duration::from_secs((t.get_ref() * lease_time.as_secs_f64()) as u64)
            }
            Some(t) => {
                return Err(src.invalid(
                    &t.span(),
                    key("cache_threshold"),
                    format!(
                        "{} is not a fraction of lease_time from 0 (off) to below \
                         1 - renew_time / lease_time = {cache_max:.3}",
                        t.get_ref()
                    ),
                ))
            }
        };
        let boot_lease_time = match &s.boot_lease_time {
            None => None,
            Some(d) => {
                let b = duration_value(d, &key("boot_lease_time"), src)?;
                if b < MIN_LEASE || b > lease_time {
                    return Err(src.invalid(
                        &d.span(),
                        key("boot_lease_time"),
                        format!(
                            "{} is outside {}..={} (lease_time)",
                            duration::format(b),
                            duration::format(MIN_LEASE),
                            duration::format(lease_time)
                        ),
                    ));
                }
                Some(b)
            }
        };

        let mut pools: Vec<((u32, u32), usize)> = Vec::with_capacity(s.pool.len());
        for (j, p) in s.pool.iter().enumerate() {
            let k = key(&format!("pool[{j}]"));
            let (first, last) = range(p, &k, net, src)?;
            let forbidden = [
                (net.network(), "the network address"),
                (net.broadcast(), "the broadcast address"),
                (server, "server.address"),
            ]
            .into_iter()
            .chain(routers.iter().map(|&r| (r, "a router")));
            for (addr, what) in forbidden {
                if (first..=last).contains(&u32::from(addr)) {
                    return Err(src.invalid(
                        &p.span(),
                        k,
                        format!("{} contains {addr}, {what} of {net}", p.get_ref()),
                    ));
                }
            }
            if let Some(&(_, other)) = pools.iter().find(|((a, b), _)| first <= *b && *a <= last) {
                return Err(src.invalid(
                    &p.span(),
                    k,
                    format!(
                        "{} overlaps subnet[{i}].pool[{other}] {} ({}:{})",
                        p.get_ref(),
                        s.pool[other].get_ref(),
                        src.file,
                        src.line(s.pool[other].span().start)
                    ),
                ));
            }
            pools.push(((first, last), j));
        }
        let mut pools: Vec<(u32, u32)> = pools.into_iter().map(|(r, _)| r).collect();
        pools.sort_unstable();

        let mut exclude = Vec::with_capacity(s.exclude.len());
        for (j, e) in s.exclude.iter().enumerate() {
            exclude.push(range(e, &key(&format!("exclude[{j}]")), net, src)?);
        }
        exclude.sort_unstable();

        let authoritative = s.authoritative.as_ref().is_none_or(|a| *a.get_ref());

        let interface = match &s.interface {
            None => None,
            Some(n) => {
                let name = ifname(n, &key("interface"), src)?;
                if let Some((j, _)) = out
                    .iter()
                    .enumerate()
                    .find(|(_, o)| o.interface.as_deref() == Some(name.as_str()))
                {
                    let other = w[j].interface.as_ref().map_or(0, |o| o.span().start);
                    return Err(src.invalid(
                        &n.span(),
                        key("interface"),
                        format!(
                            "{name:?} is also subnet[{j}].interface ({}:{}); an interface serves one subnet",
                            src.file,
                            src.line(other)
                        ),
                    ));
                }
                Some(name)
            }
        };

        let mut ntp = Vec::with_capacity(s.ntp.len());
        for (j, a) in s.ntp.iter().enumerate() {
            let k = key(&format!("ntp[{j}]"));
            let ip = ipv4(a, &k, src)?;
            unicast(ip, &a.span(), &k, src)?;
            ntp.push(ip);
        }

        let mtu = match &s.mtu {
            None => None,
            Some(m) => {
                let v = *m.get_ref();
                if !(MIN_MTU..=i64::from(u16::MAX)).contains(&v) {
                    return Err(src.invalid(
                        &m.span(),
                        key("mtu"),
                        format!("{v} is outside {MIN_MTU}..=65535"),
                    ));
                }
                Some(v as u16)
            }
        };

        let mut domain_search = Vec::with_capacity(s.domain_search.len());
        for (j, d) in s.domain_search.iter().enumerate() {
            dns_name(d.get_ref())
                .map_err(|m| src.invalid(&d.span(), key(&format!("domain_search[{j}]")), m))?;
            domain_search.push(d.get_ref().clone());
        }

        let mut routes = Vec::with_capacity(s.routes.len());
        for (j, r) in s.routes.iter().enumerate() {
            let k = |f: &str| key(&format!("routes[{j}].{f}"));
            let destination = route_destination(&r.destination, &k("destination"), src)?;
            let gateway = ipv4(&r.gateway, &k("gateway"), src)?;
            if gateway.is_broadcast() || gateway.is_multicast() {
                return Err(src.invalid(
                    &r.gateway.span(),
                    k("gateway"),
                    format!("{gateway} is not a unicast address"),
                ));
            }
            routes.push(Route {
                destination,
                gateway,
            });
        }

        let keyed = |code: u8| match code {
            options::MTU => mtu.is_some(),
            options::NTP => !ntp.is_empty(),
            options::DOMAIN_SEARCH => !domain_search.is_empty(),
            options::CLASSLESS_ROUTES => !routes.is_empty(),
            _ => false,
        };
        let options = custom_options(&s.option, &key, &keyed, src)?;

        let addr = |(a, b): (u32, u32)| (Ipv4Addr::from(a), Ipv4Addr::from(b));
        out.push(Subnet {
            profile: None,
            net,
            routers,
            dns,
            domain,
            lease_time,
            renew_time,
            rebind_time,
            boot_lease_time,
            renewal_cache,
            pools: pools.into_iter().map(addr).collect(),
            exclude: exclude.into_iter().map(addr).collect(),
            authoritative,
            interface,
            ntp,
            mtu,
            domain_search,
            routes,
            options,
        });
    }
    Ok(out)
}

/// "first-last" (spaces allowed around the '-') or a single address, inside
/// `net`, as host-order bounds.
fn range(
    s: &Spanned<String>,
    key: &str,
    net: Ipv4Net,
    src: &Source,
) -> Result<(u32, u32), ConfigError> {
    let text = s.get_ref();
    let bad = |m: String| src.invalid(&s.span(), key, m);
    let parse = |t: &str| {
        t.trim().parse::<Ipv4Addr>().map_err(|_| {
            bad(format!(
                "{text:?} is not an address range (expected \"a.b.c.d-a.b.c.e\" or one address)"
            ))
        })
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let a = parse(text)?;
            (a, a)
        }
    };
    if first > last {
        return Err(bad(format!("{text:?}: {first} is after {last}")));
    }
    for a in [first, last] {
        if !net.contains(&a) {
            return Err(bad(format!("{a} is outside {net}")));
        }
    }
    Ok((u32::from(first), u32::from(last)))
}

fn route_destination(s: &Spanned<String>, key: &str, src: &Source) -> Result<Ipv4Net, ConfigError> {
    let text = s.get_ref();
    let bad = |m: String| src.invalid(&s.span(), key, m);
    let net: Ipv4Net = text.parse().map_err(|_| {
        bad(format!(
            "{text:?} is not an IPv4 CIDR (expected a.b.c.d/len, 0.0.0.0/0 for the default route)"
        ))
    })?;
    // RFC 3442 sends only the significant octets: host bits would be lost.
    if net.addr() != net.network() {
        return Err(bad(format!(
            "{net} has host bits set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

/// The `[[...option]]` list of a subnet: the options rule, and no code that
/// a subnet key sets as well (`keyed`).
fn custom_options(
    w: &[wire::OptionData],
    key: &dyn Fn(&str) -> String,
    keyed: &dyn Fn(u8) -> bool,
    src: &Source,
) -> Result<Vec<CustomOption>, ConfigError> {
    let out = rule::options(&option_texts(w)).map_err(|e| {
        let o = &w[e.index];
        let span = match e.part() {
            OptionPart::Code => o.code.span(),
            OptionPart::Type => o.kind.span(),
            OptionPart::Value => o.value.span(),
        };
        let field = Field::Option {
            index: e.index,
            part: e.part(),
        };
        let message = match e.reason {
            OptionReason::Duplicate { first, .. } => format!(
                "{e} (also {} at {}:{})",
                key(&format!("option[{first}]")),
                src.file,
                src.line(w[first].code.span().start)
            ),
            _ => e.to_string(),
        };
        src.invalid(&span, key(&field.name("option")), message)
    })?;
    for (j, o) in w.iter().enumerate() {
        if let Some((_, name)) = options::KEYED
            .iter()
            .find(|(c, _)| i64::from(*c) == *o.code.get_ref() && keyed(*c))
        {
            return Err(src.invalid(
                &o.code.span(),
                key(&format!("option[{j}].code")),
                format!(
                    "option {} is already set by {}",
                    o.code.get_ref(),
                    key(name)
                ),
            ));
        }
    }
    Ok(out)
}

/// A `[[...option]]` list as the options rule reads it.
fn option_texts(w: &[wire::OptionData]) -> Vec<OptionText<'_>> {
    w.iter()
        .map(|o| OptionText {
            code: *o.code.get_ref(),
            kind: o.kind.get_ref(),
            value: o.value.get_ref(),
        })
        .collect()
}

fn cidr(s: &Spanned<String>, key: &str, src: &Source) -> Result<Ipv4Net, ConfigError> {
    let text = s.get_ref();
    let bad = |m: String| src.invalid(&s.span(), key, m);
    let net: Ipv4Net = text.parse().map_err(|_| {
        bad(format!(
            "{text:?} is not an IPv4 CIDR (expected a.b.c.d/len)"
        ))
    })?;
    // /31 and /32 leave no host addresses for clients once network and
    // broadcast are excluded; /0 would claim every address.
    if !(1..=30).contains(&net.prefix_len()) {
        return Err(bad(format!(
            "{net}: prefix length must be 1..=30, got /{}",
            net.prefix_len()
        )));
    }
    if net.addr() != net.network() {
        return Err(bad(format!(
            "{net} has host bits set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Lease, T1 and T2, with T1 and T2 defaulting to the RFC 2131 fractions
/// (0.5 and 0.875) of the lease in whole seconds, as DHCP carries them.
fn times(
    s: &wire::Subnet,
    key: &dyn Fn(&str) -> String,
    src: &Source,
) -> Result<(Duration, Duration, Duration), ConfigError> {
    let lease = match &s.lease_time {
        None => DEFAULT_LEASE,
        Some(d) => {
            let lease = duration_value(d, &key("lease_time"), src)?;
            if lease < MIN_LEASE || lease > MAX_LEASE {
                return Err(src.invalid(
                    &d.span(),
                    key("lease_time"),
                    format!(
                        "{} is outside {}..={}",
                        duration::format(lease),
                        duration::format(MIN_LEASE),
                        duration::format(MAX_LEASE)
                    ),
                ));
            }
            lease
        }
    };
    let secs = lease.as_secs();
    let renew = match &s.renew_time {
        None => Duration::from_secs(secs / 2),
        Some(d) => duration_value(d, &key("renew_time"), src)?,
    };
    let rebind = match &s.rebind_time {
        None => Duration::from_secs(secs * 7 / 8),
        Some(d) => duration_value(d, &key("rebind_time"), src)?,
    };

    let explicit = |name: &str, v: &Option<Spanned<wire::Duration>>, d: Duration| {
        let shown = duration::format(d);
        match v {
            Some(_) => format!("{name} {shown}"),
            None => format!("{name} {shown} (default)"),
        }
    };
    // Blame a key the user wrote: the defaults are consistent among
    // themselves, so at least one of the pair is explicit.
    if renew >= rebind {
        let (blame, name) = match &s.renew_time {
            Some(d) => (d.span(), "renew_time"),
            None => (span_of(&s.rebind_time), "rebind_time"),
        };
        return Err(src.invalid(
            &blame,
            key(name),
            format!(
                "{} must be less than {}",
                explicit("renew_time", &s.renew_time, renew),
                explicit("rebind_time", &s.rebind_time, rebind)
            ),
        ));
    }
    if rebind >= lease {
        let (blame, name) = match &s.rebind_time {
            Some(d) => (d.span(), "rebind_time"),
            None => (span_of(&s.lease_time), "lease_time"),
        };
        return Err(src.invalid(
            &blame,
            key(name),
            format!(
                "{} must be less than {}",
                explicit("rebind_time", &s.rebind_time, rebind),
                explicit("lease_time", &s.lease_time, lease)
            ),
        ));
    }
    Ok((lease, renew, rebind))
}

fn span_of<T>(v: &Option<Spanned<T>>) -> Range<usize> {
    v.as_ref().map_or(0..0, Spanned::span)
}

pub(super) fn duration_value(
    d: &Spanned<wire::Duration>,
    key: &str,
    src: &Source,
) -> Result<Duration, ConfigError> {
    let value = match d.get_ref() {
        wire::Duration::Seconds(n) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| format!("{n} is not a duration (seconds must not be negative)")),
        wire::Duration::Text(t) => duration::parse(t),
    }
    .map_err(|m| src.invalid(&d.span(), key, m))?;
    if value.is_zero() {
        return Err(src.invalid(&d.span(), key, "duration must be positive"));
    }
    Ok(value)
}

fn ipv4(s: &Spanned<String>, key: &str, src: &Source) -> Result<Ipv4Addr, ConfigError> {
    s.get_ref().parse().map_err(|_| {
        src.invalid(
            &s.span(),
            key,
            format!("{:?} is not an IPv4 address", s.get_ref()),
        )
    })
}

fn unicast(ip: Ipv4Addr, span: &Range<usize>, key: &str, src: &Source) -> Result<(), ConfigError> {
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(src.invalid(span, key, format!("{ip} is not a unicast address")));
    }
    Ok(())
}

/// A reservation label is the reservation rule's to accept.
pub use crate::reservation::rule::label as reservation_label;

/// Checks a host or domain name as RFC 1123 letters-digits-hyphen labels.
/// Each label is at most 63 bytes, which is also what keeps a host name's
/// first label usable in option 12.
pub fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.len() > 253 {
        return Err(format!("{name:?} is longer than 253 bytes"));
    }
    for label in name.split('.') {
        let bad = |why: &str| Err(format!("{name:?} is not a valid DNS name: {why}"));
        if label.is_empty() {
            return bad("empty label");
        }
        if label.len() > 63 {
            return bad("label longer than 63 bytes");
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return bad(&format!("{c:?} is not a letter, digit or hyphen"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("label starts or ends with a hyphen");
        }
    }
    Ok(())
}

/// Where one reservation's fields were written: a line per field for the
/// TOML file, the same line for all of them in a CSV file.
pub struct Place<'a> {
    pub file: &'a str,
    /// "reservation[3]." for inline entries, "" for CSV columns.
    pub key_prefix: &'a str,
    pub mac_line: usize,
    pub ip_line: usize,
    pub hostname_line: usize,
    pub profile_line: usize,
    /// The code, type and value lines of each option.
    pub option_lines: Vec<[usize; 3]>,
}

impl Place<'_> {
    fn err(&self, line: usize, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            at: Location {
                file: self.file.to_owned(),
                line: Some(line),
            },
            key: format!("{}{field}", self.key_prefix),
            message,
        }
    }

    /// The rule's refusal as a config error, at the line of its field.
    fn refused(&self, r: Refusal) -> ConfigError {
        let field = r.field();
        let line = match field {
            Field::Mac => self.mac_line,
            Field::Ip => self.ip_line,
            Field::Hostname => self.hostname_line,
            Field::Profile => self.profile_line,
            Field::Option { index, part } => {
                let [code, kind, value] = self.option_lines[index];
                match part {
                    OptionPart::Code => code,
                    OptionPart::Type => kind,
                    OptionPart::Value => value,
                }
            }
        };
        let message = match &r {
            Refusal::Option(OptionRefusal {
                reason: OptionReason::Duplicate { first, .. },
                ..
            }) => format!(
                "{r} (also {}option[{first}] at {}:{})",
                self.key_prefix, self.file, self.option_lines[*first][0]
            ),
            _ => r.to_string(),
        };
        self.err(line, &field.name("option"), message)
    }
}

/// One reservation as the file writes it, before anything is parsed.
pub struct Written<'a> {
    pub mac: &'a str,
    pub ip: &'a str,
    pub hostname: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub options: &'a [OptionText<'a>],
}

/// Hashes the set's keys (a MAC, an address) with a multiply and a mix:
/// they come from the operator's own files, so a hash that resists chosen
/// collisions buys nothing, and SipHash took a quarter of the time a
/// million-line file took to check.
type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }

    fn finish(&self) -> u64 {
        // splitmix64's finalizer: every input bit reaches the low bits,
        // which pick the bucket.
        let mut h = self.0;
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// Collects inline and file reservations, indexed so that a million-line
/// reservations file is checked for duplicates in linear time.
pub struct ReservationSet {
    network: Network,
    /// Indexes into `list`, 32 bits (a million-line file's two maps are
    /// 24 MB smaller than with `usize`).
    by_mac: HashMap<[u8; 6], u32, KeyHash>,
    by_ip: HashMap<Ipv4Addr, u32, KeyHash>,
    pub list: Vec<Reservation>,
    /// The file the last reservation came from, shared by its origins.
    file: Option<(String, OriginName)>,
}

impl Rest for ReservationSet {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        let i = *self.by_mac.get(mac)? as usize;
        Some(Cow::Owned(self.list[i].origin.to_string()))
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        let r = &self.list[*self.by_ip.get(&ip)? as usize];
        Some((r.mac, Cow::Owned(r.origin.to_string())))
    }
}

impl ReservationSet {
    pub fn new(subnets: &[Subnet], server: Ipv4Addr, profiles: &[Profile]) -> Self {
        ReservationSet {
            network: Network::of_config(server, subnets, profiles),
            by_mac: HashMap::default(),
            by_ip: HashMap::default(),
            list: Vec::new(),
            file: None,
        }
    }

    /// `name` in the origins' table, looked up once per file.
    pub(super) fn file_name(&mut self, name: &str) -> OriginName {
        match &self.file {
            Some((f, n)) if f == name => *n,
            _ => self.file.insert((name.to_owned(), OriginName::of(name))).1,
        }
    }

    pub fn reserve(&mut self, n: usize) {
        self.by_mac.reserve(n);
        self.by_ip.reserve(n);
        self.list.reserve(n);
    }

    /// Parses `w` and adds it if the reservation rule accepts it.
    pub fn add(&mut self, w: &Written, place: &Place) -> Result<(), ConfigError> {
        let file = self.file_name(place.file);
        let r = accept(&self.network, &*self, w, place, file)?;
        self.push(r);
        Ok(())
    }

    /// Adds `r`, accepted by the rule against the rest of the set.
    pub(super) fn push(&mut self, r: Reservation) {
        let index = self.list.len() as u32;
        self.by_mac.insert(r.mac, index);
        self.by_ip.insert(r.ip, index);
        self.list.push(r);
    }

    /// Adds `r`, accepted by the rule against nothing, unless the set
    /// already holds its MAC or its address (what the rule would then
    /// refuse it for); the error is `r`'s line.
    pub(super) fn push_new(&mut self, r: Reservation) -> Result<(), usize> {
        let index = self.list.len() as u32;
        if let Some(held) = self.by_mac.insert(r.mac, index) {
            self.by_mac.insert(r.mac, held);
            return Err(r.origin.line());
        }
        if let Some(held) = self.by_ip.insert(r.ip, index) {
            self.by_ip.insert(r.ip, held);
            self.by_mac.remove(&r.mac);
            return Err(r.origin.line());
        }
        self.list.push(r);
        Ok(())
    }

    /// The server, subnets and profiles reservations are checked on.
    pub(super) fn network(&self) -> &Network {
        &self.network
    }
}

/// Nothing: what a reservation is checked against when only its own
/// fields are checked.
pub(super) struct Alone;

impl Rest for Alone {
    fn origin_of(&self, _: &[u8; 6]) -> Option<Cow<'_, str>> {
        None
    }

    fn holder_of(&self, _: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        None
    }
}

/// Parses `w` and checks it by the reservation rule on `network` beside
/// `rest`; `file` is its origin's file name.
pub(super) fn accept(
    network: &Network,
    rest: &dyn Rest,
    w: &Written,
    place: &Place,
    file: OriginName,
) -> Result<Reservation, ConfigError> {
    let mac = parse_mac(w.mac).ok_or_else(|| {
        place.err(
            place.mac_line,
            "mac",
            format!(
                "{:?} is not a MAC address (six hex octets separated by ':' or '-')",
                w.mac
            ),
        )
    })?;
    let ip: Ipv4Addr = w.ip.parse().map_err(|_| {
        place.err(
            place.ip_line,
            "ip",
            format!("{:?} is not an IPv4 address", w.ip),
        )
    })?;
    let candidate = Candidate {
        mac,
        ip,
        hostname: w.hostname,
        profile: w.profile,
        options: w.options,
    };
    let ok = rule::check(&candidate, network, rest).map_err(|r| place.refused(r))?;
    // A configuration's network holds every subnet, at most INDEX_LIMIT.
    let subnet = ok.subnet.unwrap_or_default();
    Ok(Reservation {
        profile: ok.profile.map(|p| p as u16),
        allow_pxe: true,
        boot_file: None,
        next_server: None,
        label: None,
        mac,
        ip,
        hostname: w.hostname.map(Name::from),
        subnet: subnet as u16,
        origin: Origin::at(file, place.mac_line),
        options: ok.options.into(),
    })
}
