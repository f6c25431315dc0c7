//! Tinkerbell `Hardware` objects (YAML, one or several documents, or a
//! `List` of them): each `spec.interfaces[].dhcp` becomes a reservation
//! (mac, ip.address, hostname) and the subnet it implies (ip.netmask,
//! ip.gateway, name_servers, lease_time).
//!
//! stormboot detects the firmware itself (option 93), so `arch` and `uefi`
//! need no counterpart; `allowPXE: false` becomes `allow_pxe = false`; a
//! per-machine iPXE script is listed, since stormboot boots machines by
//! profile.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_yaml::Value;

use super::{Import, ParseError, Reservation, Subnet};

pub fn parse(text: &str) -> Result<Import, ParseError> {
    let mut imp = Import::default();
    for (first_line, doc) in documents(text) {
        if doc.trim().is_empty() {
            continue;
        }
        let v: Value = serde_yaml::from_str(&doc).map_err(|e| {
            let line = e
                .location()
                .map_or(first_line, |l| first_line + l.line() - 1);
            ParseError::new(line, format!("not YAML: {e}"))
        })?;
        let mut at = Finder {
            doc: &doc,
            first_line,
            pos: 0,
        };
        object(&v, &mut at, &mut imp);
    }
    Ok(imp)
}

/// The documents of a YAML stream with the line each starts on.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let marker = line
            .strip_prefix("---")
            .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if let Some(rest) = marker {
            // `--- {...}` starts a document on the marker's own line.
            let rest = rest.trim();
            if rest.is_empty() {
                out.push((i + 2, String::new()));
            } else {
                out.push((i + 1, format!("{rest}\n")));
            }
            continue;
        }
        if line == "..." {
            continue;
        }
        let last = out.last_mut().expect("never empty");
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

/// Finds the line of a value in its document, in document order.
struct Finder<'a> {
    doc: &'a str,
    first_line: usize,
    pos: usize,
}

impl Finder<'_> {
    fn line_of(&mut self, needle: &str) -> usize {
        let at = self.doc[self.pos..]
            .find(needle)
            .map(|p| p + self.pos)
            .or_else(|| self.doc.find(needle));
        match at {
            Some(p) => {
                self.pos = p + needle.len();
                self.first_line + self.doc[..p].matches('\n').count()
            }
            None => self.first_line,
        }
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn object(v: &Value, at: &mut Finder, imp: &mut Import) {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = get(v, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    match kind {
        "Hardware" => {}
        "List" | "HardwareList" => {
            for item in v
                .get("items")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                object(item, at, imp);
            }
            return;
        }
        _ => {
            let line = at.line_of("kind");
            imp.skip(
                line,
                format!("{kind:?} object {name}: only Hardware objects hold reservations"),
            );
            return;
        }
    }
    let interfaces = get(v, &["spec", "interfaces"])
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if interfaces.is_empty() {
        let line = at.line_of(&name);
        imp.skip(line, format!("Hardware {name}: no spec.interfaces"));
    }
    for (i, iface) in interfaces.iter().enumerate() {
        interface(iface, &format!("Hardware {name} interface {i}"), at, imp);
    }
}

fn interface(iface: &Value, what: &str, at: &mut Finder, imp: &mut Import) {
    let dhcp = iface.get("dhcp");
    let Some(mac_text) = dhcp.and_then(|d| d.get("mac")).and_then(text) else {
        let line = at.line_of("interfaces");
        imp.skip(line, format!("{what}: no dhcp.mac"));
        return;
    };
    let dhcp = dhcp.expect("has a mac");
    let line = at.line_of(&mac_text);
    let Some(mac) = super::mac(&mac_text) else {
        imp.skip(line, format!("{what}: {mac_text:?} is not a MAC address"));
        return;
    };
    let ip = |k: &str| get(dhcp, &["ip", k]).and_then(text);
    let Some(addr_text) = ip("address") else {
        imp.skip(
            line,
            format!("{what} ({mac_text}): no dhcp.ip.address; stormboot reserves addresses"),
        );
        return;
    };
    let Ok(addr) = addr_text.parse::<Ipv4Addr>() else {
        imp.skip(
            line,
            format!("{what} ({mac_text}): {addr_text:?} is not an IPv4 address"),
        );
        return;
    };
    let mut r = Reservation::new(line, mac, addr);
    r.hostname = dhcp
        .get("hostname")
        .and_then(text)
        .filter(|h| !h.is_empty());

    match ip("netmask").map(|m| m.parse::<Ipv4Addr>().ok().and_then(super::prefix_of)) {
        Some(Some(prefix)) => {
            let net = Ipv4Net::new(addr, prefix).expect("prefix_of is at most 32");
            let mut s = Subnet::new(line, net);
            if let Some(g) = ip("gateway").filter(|g| !g.is_empty()) {
                match g.parse() {
                    Ok(g) => s.routers.push(g),
                    Err(_) => imp.skip(
                        line,
                        format!("{what}: gateway {g:?} is not an IPv4 address"),
                    ),
                }
            }
            for ns in dhcp
                .get("name_servers")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(text)
            {
                match ns.parse() {
                    Ok(a) => s.dns.push(a),
                    Err(_) => imp.skip(
                        line,
                        format!("{what}: name server {ns:?} is not an IPv4 address"),
                    ),
                }
            }
            s.lease_time = dhcp
                .get("lease_time")
                .and_then(Value::as_u64)
                .filter(|&t| t > 0);
            imp.subnets.push(s);
        }
        Some(None) => imp.skip(
            line,
            format!(
                "{what}: netmask {:?} is not a netmask",
                ip("netmask").unwrap_or_default()
            ),
        ),
        None => imp.skip(
            line,
            format!("{what}: no dhcp.ip.netmask, so no subnet; the reservation needs one"),
        ),
    }
    for (key, label) in [("time_servers", "time servers"), ("vlan_id", "VLAN")] {
        if dhcp.get(key).is_some_and(|v| !v.is_null()) {
            imp.skip(
                line,
                format!("{what}: dhcp.{key} ({label}): no per-machine counterpart"),
            );
        }
    }

    let netboot = iface.get("netboot");
    // The machine still gets its address; only the boot answers stop.
    r.allow_pxe = netboot
        .and_then(|n| n.get("allowPXE"))
        .and_then(Value::as_bool)
        != Some(false);
    if let Some(url) = netboot
        .and_then(|n| get(n, &["ipxe", "url"]))
        .and_then(text)
        .filter(|u| !u.is_empty())
    {
        imp.skip(
            line,
            format!("{what}: netboot.ipxe.url {url}: stormboot boots a machine by its profile; a [[profile]] script can chain this URL"),
        );
    }
    if netboot
        .and_then(|n| get(n, &["ipxe", "contents"]))
        .and_then(text)
        .is_some_and(|c| !c.is_empty())
    {
        imp.skip(
            line,
            format!("{what}: netboot.ipxe.contents: put the script in a [[profile]] script"),
        );
    }
    imp.reservations.push(r);
}
