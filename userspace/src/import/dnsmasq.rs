//! dnsmasq's configuration: `dhcp-host` lines become reservations,
//! `dhcp-range` lines with a netmask become subnets, and untagged
//! `dhcp-option` / `domain` lines set those subnets' options.
//!
//! dnsmasq's DNS, TFTP and other non-DHCP settings are not read; every DHCP
//! line that cannot be translated (tags, client-id hosts, IPv6, `ignore`,
//! ranges whose netmask dnsmasq takes from the interface) is listed.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Import, ParseError, Reservation, Subnet};

pub fn parse(text: &str) -> Result<Import, ParseError> {
    let mut imp = Import::default();
    // Options and domains apply to every range, whatever their order.
    let mut options: Vec<(usize, String)> = Vec::new();
    let mut domains: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = without_comment(raw).trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (key, value) = match l.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (l, ""),
        };
        match key {
            "dhcp-host" => host(line, value, &mut imp),
            "dhcp-range" => range(line, value, &mut imp),
            "dhcp-option" | "dhcp-option-force" => options.push((line, value.to_string())),
            "domain" => domains.push((line, value.to_string())),
            "dhcp-hostsfile" | "dhcp-optsfile" | "conf-file" | "conf-dir" | "dhcp-hostsdir"
            | "dhcp-optsdir" => imp.skip(
                line,
                format!("{key}={value} is not followed: import that file on its own"),
            ),
            k if k.starts_with("dhcp-")
                || k.starts_with("pxe-")
                || k == "enable-tftp"
                || k.starts_with("tftp-") =>
            {
                imp.skip(line, format!("{l}: no stormboot counterpart"))
            }
            _ => {}
        }
    }
    for (line, value) in options {
        option(line, &value, &mut imp);
    }
    for (line, value) in domains {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        if parts.len() > 1 {
            imp.skip(
                line,
                format!(
                    "domain={value}: a domain per address range; set domain on the subnet by hand"
                ),
            );
        } else if imp.subnets.is_empty() {
            imp.skip(line, format!("domain={value}: no subnet to set it on"));
        } else {
            for s in &mut imp.subnets {
                s.domain = Some(parts[0].to_string());
            }
        }
    }
    Ok(imp)
}

/// The line without a trailing ` # comment` (a '#' after a blank, outside
/// double quotes), which dnsmasq allows too.
fn without_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev.is_whitespace() && i > 0 => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// `infinite` or a number with an optional unit: `45m`, `12h`, `3600`.
fn is_lease_time(f: &str) -> bool {
    f == "infinite" || lease_seconds(f).is_some()
}

/// A hardware address, possibly with dnsmasq's `*` wildcards or a
/// `TYPE-` prefix: six (or more) hex pairs separated by ':' or '-'.
fn looks_like_mac(f: &str) -> bool {
    let parts: Vec<&str> = f.split([':', '-']).collect();
    parts.len() >= 6
        && parts.iter().all(|p| {
            *p == "*" || (p.len() <= 2 && !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
        })
}

/// `dhcp-host=[mac,...][,id:..][,set:..][,tag:..][,ip][,name][,lease][,ignore]`
fn host(line: usize, value: &str, imp: &mut Import) {
    let mut macs: Vec<&str> = Vec::new();
    let mut ip: Option<Ipv4Addr> = None;
    let mut name: Option<&str> = None;
    let mut notes: Vec<String> = Vec::new();
    let mut ignore = false;
    let mut client_id = None;
    for f in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(id) = f.strip_prefix("id:") {
            client_id = Some(id);
        } else if f.starts_with("set:") || f.starts_with("tag:") || f.starts_with("net:") {
            notes.push(format!("{f}: stormboot has no tags"));
        } else if f == "ignore" {
            ignore = true;
        } else if f.starts_with('[') {
            notes.push(format!("{f}: IPv6 is not served"));
        } else if let Ok(a) = f.parse::<Ipv4Addr>() {
            ip = Some(a);
        } else if looks_like_mac(f) {
            macs.push(f);
        } else if is_lease_time(f) {
            notes.push(format!(
                "lease time {f}: stormboot sets the lease time per subnet"
            ));
        } else {
            name = Some(f);
        }
    }
    let whole = |why: &str| format!("dhcp-host={value}: {why}");
    if ignore {
        imp.skip(line, whole("ignore: stormboot has no per-host deny list"));
        return;
    }
    let Some(first) = macs.first() else {
        let why = match client_id {
            Some(_) => "reserved by client identifier; stormboot reserves by MAC",
            None => "no MAC address (stormboot reserves by MAC)",
        };
        imp.skip(line, whole(why));
        return;
    };
    let Some(mac) = super::mac(first) else {
        imp.skip(
            line,
            whole(&format!(
                "{first}: wildcard or non-Ethernet hardware address"
            )),
        );
        return;
    };
    let Some(ip) = ip else {
        imp.skip(
            line,
            whole("no IPv4 address: dnsmasq gives it a pool address and this name, which stormboot does not pin"),
        );
        return;
    };
    if let Some(id) = client_id {
        notes.push(format!("id:{id}: matched by MAC only"));
    }
    for other in &macs[1..] {
        notes.push(format!(
            "{other}: one MAC per address in stormboot ({first} is kept)"
        ));
    }
    let mut r = Reservation::new(line, mac, ip);
    r.hostname = name.map(str::to_string);
    imp.reservations.push(r);
    for n in notes {
        imp.skip(line, format!("dhcp-host={value}: {n}"));
    }
}

/// `dhcp-range=[tag:..,][set:..,]start[,end|static|proxy][,netmask[,broadcast]][,lease]`
fn range(line: usize, value: &str, imp: &mut Import) {
    let fields: Vec<&str> = value.split(',').map(str::trim).collect();
    let (tags, rest): (Vec<&str>, Vec<&str>) = fields.iter().partition(|f| {
        f.starts_with("tag:")
            || f.starts_with("set:")
            || f.starts_with("net:")
            || f.starts_with("interface:")
    });
    let whole = |why: String| format!("dhcp-range={value}: {why}");
    let Some(Ok(start)) = rest.first().map(|f| f.parse::<Ipv4Addr>()) else {
        imp.skip(line, whole("not an IPv4 range (IPv6 is not served)".into()));
        return;
    };
    let mut pool_end = None;
    let mut addrs: Vec<Ipv4Addr> = Vec::new();
    let mut lease = None;
    let mut mode = None;
    for f in &rest[1..] {
        if let Ok(a) = f.parse::<Ipv4Addr>() {
            addrs.push(a);
        } else if matches!(*f, "static" | "proxy") {
            mode = Some(*f);
        } else if is_lease_time(f) {
            lease = Some(*f);
        } else {
            imp.skip(line, whole(format!("{f}: not understood")));
        }
    }
    if mode == Some("proxy") {
        imp.skip(
            line,
            whole("proxy DHCP: set server.mode = \"proxy\"".into()),
        );
        return;
    }
    if mode.is_none() {
        if addrs.is_empty() {
            imp.skip(line, whole("no end address".into()));
            return;
        }
        pool_end = Some(addrs.remove(0));
    }
    // From here on, a range that becomes no subnet leaves its network
    // unknown.
    let Some(mask) = addrs.first() else {
        imp.unknown_subnets = true;
        imp.skip(
            line,
            whole(format!(
                "no netmask (dnsmasq takes it from the interface): add a [[subnet]] holding {start} by hand, or give the netmask"
            )),
        );
        return;
    };
    let Some(net) = super::prefix_of(*mask).and_then(|p| Ipv4Net::new(start, p).ok()) else {
        imp.unknown_subnets = true;
        imp.skip(line, whole(format!("{mask} is not a netmask")));
        return;
    };
    let mut s = Subnet::new(line, net);
    if let Some(end) = pool_end {
        s.pools.push((start, end));
    }
    if let Some(l) = lease {
        match lease_seconds(l) {
            Some(t) => s.lease_time = Some(t),
            None => imp.skip(
                line,
                whole(format!("lease time {l}: stormboot leases expire")),
            ),
        }
    }
    if !tags.is_empty() {
        imp.skip(
            line,
            whole(format!("{}: stormboot has no tags", tags.join(","))),
        );
    }
    if addrs.len() > 1 {
        imp.skip(
            line,
            whole("broadcast address: stormboot derives it from the netmask".into()),
        );
    }
    if let Some(existing) = imp.subnets.iter_mut().find(|e| e.cidr == s.cidr) {
        existing.pools.extend(s.pools);
        return;
    }
    imp.subnets.push(s);
}

fn lease_seconds(t: &str) -> Option<u64> {
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 604800,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// dnsmasq's option names (`option:NAME`) for the codes the importer reads.
const NAMES: [(&str, u8); 8] = [
    ("router", 3),
    ("dns-server", 6),
    ("domain-name", 15),
    ("ntp-server", 42),
    ("mtu", 26),
    ("tftp-server", 66),
    ("bootfile-name", 67),
    ("domain-search", 119),
];

/// `dhcp-option=[tag:..,]CODE|option:NAME,value...`, untagged: set on
/// every subnet read from the file.
fn option(line: usize, value: &str, imp: &mut Import) {
    let fields: Vec<&str> = value.split(',').map(str::trim).collect();
    let whole = |why: String| format!("dhcp-option={value}: {why}");
    if fields.iter().any(|f| {
        f.starts_with("tag:")
            || f.starts_with("net:")
            || f.starts_with("encap:")
            || f.starts_with("vendor:")
            || f.starts_with("vi-encap:")
    }) {
        imp.skip(
            line,
            whole(
                "tagged, vendor or encapsulated option: stormboot has no tags or option spaces"
                    .into(),
            ),
        );
        return;
    }
    let head = fields[0];
    let code = if let Some(n) = head.strip_prefix("option:") {
        NAMES.iter().find(|(k, _)| *k == n).map(|&(_, c)| c)
    } else if head.starts_with("option6:") {
        imp.skip(line, whole("IPv6 is not served".into()));
        return;
    } else {
        head.parse::<u8>().ok()
    };
    let Some(code) = code else {
        imp.skip(line, whole("option not known to the importer".into()));
        return;
    };
    let data = fields[1..].join(",");
    if data.is_empty() {
        imp.skip(
            line,
            whole("an empty option (not sent): stormboot sends what its subnet says".into()),
        );
        return;
    }
    if data.split(',').any(|d| d.trim() == "0.0.0.0") {
        imp.skip(
            line,
            whole("0.0.0.0 stands for dnsmasq's own address: write the address".into()),
        );
        return;
    }
    if code == 119 {
        imp.skip(line, whole("set the subnet's domain_search by hand".into()));
        return;
    }
    if imp.subnets.is_empty() {
        imp.skip(line, whole("no subnet to set it on".into()));
        return;
    }
    let data = data.trim_matches('"').to_string();
    for s in &mut imp.subnets {
        if let Err(why) = super::subnet_option(s, code, &data) {
            imp.skipped.push(super::Skipped {
                line,
                reason: whole(why),
            });
            return;
        }
    }
}
