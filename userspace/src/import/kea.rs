//! Kea's DHCPv4 configuration (JSON with `//`, `#` and `/* */` comments):
//! `subnet4` entries (also inside `shared-networks`) become subnets, their
//! `reservations` and the global ones become reservations; `option-data`
//! and `valid-lifetime` are inherited from the global and shared-network
//! levels as Kea does.
//!
//! JSON values carry no line, so each reservation's line is found by
//! looking for its identifier in the text, in document order.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use super::{Import, ParseError, Reservation, Subnet};

/// Replaces comments (and `<?include ...?>` lines) with spaces, keeping
/// every newline so that line numbers stay those of the input, and reads
/// what else Kea's parser accepts beyond JSON.
fn strip_comments(text: &str, imp: &mut Import) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_str = false;
    let mut line = 1;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if c == b'"' {
            in_str = true;
            out.push(c);
            i += 1;
        } else if c == b'#' || rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                if b[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
            i = (i + 2).min(b.len());
            out.extend_from_slice(b"  ");
        } else if rest.starts_with(b"<?include") {
            let end = rest.iter().position(|&x| x == b'\n').unwrap_or(rest.len());
            let directive = String::from_utf8_lossy(&rest[..end]).trim().to_string();
            imp.skip(
                line,
                format!("{directive} is not followed: import that file on its own"),
            );
            out.extend(std::iter::repeat_n(b' ', end));
            i += end;
        } else if c == b'.'
            && rest.get(1).is_some_and(u8::is_ascii_digit)
            && out
                .iter()
                .rev()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| matches!(b, b':' | b',' | b'['))
        {
            // Kea reads `.5` as a number (all-keys.json has `"t1-percent": .5`).
            out.extend_from_slice(b"0.");
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    // Only whole ASCII bytes were replaced, so this is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Finds lines of JSON string values in document order.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl Lines<'_> {
    fn of(&mut self, value: &str) -> usize {
        let needle = Value::String(value.to_string()).to_string();
        let at = self.text[self.pos..]
            .find(&needle)
            .map(|p| p + self.pos)
            .or_else(|| self.text.find(&needle));
        match at {
            Some(p) => {
                self.pos = p + needle.len();
                self.text[..p].bytes().filter(|&c| c == b'\n').count() + 1
            }
            None => 1,
        }
    }
}

#[derive(Clone, Default)]
struct Inherited {
    options: Vec<(u8, String)>,
    lease_time: Option<u64>,
}

pub fn parse(text: &str) -> Result<Import, ParseError> {
    let mut imp = Import::default();
    let clean = strip_comments(text, &mut imp);
    let root: Value = serde_json::from_str(&clean)
        .map_err(|e| ParseError::new(e.line(), format!("not JSON: {e}")))?;
    let Some(obj) = root.as_object() else {
        return Err(ParseError::new(1, "expected a JSON object"));
    };
    let mut lines = Lines {
        text: &clean,
        pos: 0,
    };
    let Some(dhcp4) = obj.get("Dhcp4").and_then(Value::as_object) else {
        return Err(ParseError::new(
            1,
            "no \"Dhcp4\" object: not a Kea DHCPv4 configuration",
        ));
    };
    for k in obj.keys().filter(|k| *k != "Dhcp4") {
        let line = lines.of(k);
        imp.skip(line, format!("{k}: only Dhcp4 is imported"));
    }
    let mut global = Inherited::default();
    inherit(dhcp4, &mut global, "Dhcp4", &mut lines, &mut imp);

    for sn in array(dhcp4, "shared-networks") {
        let Some(sn) = sn.as_object() else { continue };
        let name = sn.get("name").and_then(Value::as_str).unwrap_or("?");
        let mut level = global.clone();
        inherit(
            sn,
            &mut level,
            &format!("shared network {name}"),
            &mut lines,
            &mut imp,
        );
        for s in array(sn, "subnet4") {
            subnet(s, &level, &mut lines, &mut imp);
        }
    }
    for s in array(dhcp4, "subnet4") {
        subnet(s, &global, &mut lines, &mut imp);
    }
    for r in array(dhcp4, "reservations") {
        reservation(r, &mut lines, &mut imp);
    }
    Ok(imp)
}

fn array<'a>(o: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    o.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// One `option-data` entry as (code, data), or why it cannot be.
fn option_entry(o: &Value) -> Result<(u8, String), String> {
    let space = o.get("space").and_then(Value::as_str).unwrap_or("dhcp4");
    let label = o
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| o.get("code").map(|c| c.to_string()))
        .unwrap_or_else(|| "?".into());
    if space != "dhcp4" {
        return Err(format!(
            "option {label} in space {space}: stormboot has no option spaces"
        ));
    }
    if o.get("csv-format").and_then(Value::as_bool) == Some(false) {
        return Err(format!("option {label}: raw (csv-format false) data"));
    }
    let code = match (
        o.get("code").and_then(Value::as_u64),
        o.get("name").and_then(Value::as_str),
    ) {
        (Some(c), _) => u8::try_from(c).map_err(|_| format!("option code {c}"))?,
        (None, Some(n)) => {
            super::option_code(n).ok_or_else(|| format!("option {n}: not known to the importer"))?
        }
        (None, None) => return Err("option-data entry without name or code".into()),
    };
    let data = o.get("data").and_then(Value::as_str).unwrap_or_default();
    Ok((code, data.to_string()))
}

fn inherit(
    o: &Map<String, Value>,
    into: &mut Inherited,
    what: &str,
    lines: &mut Lines,
    imp: &mut Import,
) {
    if let Some(t) = o.get("valid-lifetime").and_then(Value::as_u64) {
        into.lease_time = Some(t);
    }
    for opt in array(o, "option-data") {
        match option_entry(opt) {
            Ok((code, data)) => {
                into.options.retain(|(c, _)| *c != code);
                into.options.push((code, data));
            }
            Err(why) => {
                let line = lines.of("option-data");
                imp.skip(line, format!("{what}: {why}"));
            }
        }
    }
}

fn pool(text: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if let Some((a, b)) = text.split_once('-') {
        return Some((a.trim().parse().ok()?, b.trim().parse().ok()?));
    }
    let net: Ipv4Net = text.trim().parse().ok()?;
    Some((net.network(), net.broadcast()))
}

/// Keys of a subnet that change nothing a client receives.
const INERT: [&str; 9] = [
    "id",
    "comment",
    "user-context",
    "reservation-mode",
    "reservations-global",
    "reservations-in-subnet",
    "reservations-out-of-pool",
    "interface",
    "subnet",
];

fn subnet(v: &Value, up: &Inherited, lines: &mut Lines, imp: &mut Import) {
    let Some(o) = v.as_object() else { return };
    let Some(cidr_text) = o.get("subnet").and_then(Value::as_str) else {
        imp.skip(lines.of("subnet4"), "subnet4 entry without \"subnet\"");
        return;
    };
    let line = lines.of(cidr_text);
    let Ok(cidr) = cidr_text.parse::<Ipv4Net>() else {
        imp.skip(line, format!("subnet {cidr_text:?} is not an IPv4 CIDR"));
        return;
    };
    let mut level = up.clone();
    inherit(o, &mut level, &format!("subnet {cidr}"), lines, imp);
    let mut s = Subnet::new(line, cidr);
    s.lease_time = level.lease_time;
    for (code, data) in &level.options {
        if let Err(why) = super::subnet_option(&mut s, *code, data) {
            imp.skip(line, format!("subnet {cidr}: {why}"));
        }
    }
    for p in array(o, "pools") {
        let text = p.get("pool").and_then(Value::as_str).unwrap_or_default();
        match pool(text) {
            Some(r) => s.pools.push(r),
            None => imp.skip(line, format!("subnet {cidr}: pool {text:?} is not a range")),
        }
        if let Some(po) = p.as_object() {
            for k in po.keys().filter(|k| *k != "pool") {
                imp.skip(
                    line,
                    format!("subnet {cidr}: pool {text:?}: {k}: no stormboot counterpart"),
                );
            }
        }
    }
    for k in o.keys() {
        if !INERT.contains(&k.as_str())
            && !matches!(
                k.as_str(),
                "pools" | "option-data" | "reservations" | "valid-lifetime"
            )
        {
            imp.skip(
                line,
                format!("subnet {cidr}: {k}: no stormboot counterpart"),
            );
        }
    }
    imp.subnets.push(s);
    for r in array(o, "reservations") {
        reservation(r, lines, imp);
    }
}

fn reservation(v: &Value, lines: &mut Lines, imp: &mut Import) {
    let Some(o) = v.as_object() else { return };
    let ident = ["hw-address", "client-id", "duid", "circuit-id", "flex-id"]
        .into_iter()
        .find_map(|k| o.get(k).and_then(Value::as_str).map(|v| (k, v)));
    let Some((kind, id)) = ident else {
        imp.skip(
            lines.of("reservations"),
            "reservation without an identifier",
        );
        return;
    };
    let line = lines.of(id);
    let ip = o.get("ip-address").and_then(Value::as_str);
    if kind != "hw-address" {
        imp.skip(
            line,
            format!(
                "reservation by {kind} {id} ({}): stormboot reserves by MAC",
                ip.unwrap_or("no address")
            ),
        );
        return;
    }
    let Some(mac) = super::mac(id) else {
        imp.skip(line, format!("hw-address {id:?} is not an Ethernet MAC"));
        return;
    };
    let Some(ip_text) = ip else {
        imp.skip(
            line,
            format!("reservation {id}: no ip-address (only a host name or options); stormboot reserves addresses"),
        );
        return;
    };
    let Ok(addr) = ip_text.parse::<Ipv4Addr>() else {
        imp.skip(
            line,
            format!("reservation {id}: {ip_text:?} is not an IPv4 address"),
        );
        return;
    };
    let mut r = Reservation::new(line, mac, addr);
    r.hostname = o
        .get("hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    for opt in array(o, "option-data") {
        let res = option_entry(opt)
            .and_then(|(code, data)| super::reservation_option(&mut r, code, &data));
        if let Err(why) = res {
            imp.skip(line, format!("reservation {id}: {why}"));
        }
    }
    for k in o.keys() {
        let why = match k.as_str() {
            "hw-address" | "ip-address" | "hostname" | "option-data" | "comment" | "user-context" => continue,
            "next-server" | "boot-file-name" | "server-hostname" => "stormboot boots a machine by its profile; set the reservation's profile (--profile) instead",
            "client-classes" => "stormboot has no client classes",
            _ => "no stormboot counterpart",
        };
        imp.skip(line, format!("reservation {id}: {k}: {why}"));
    }
    imp.reservations.push(r);
}
