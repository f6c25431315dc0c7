//! Option values from the config file, encoded as they go on the wire:
//! custom options typed like Kea's option-data, the domain search list
//! (RFC 3397) and classless static routes (RFC 3442).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::Route;

pub const MTU: u8 = 26;
pub const NTP: u8 = 42;
pub const DOMAIN_SEARCH: u8 = 119;
pub const CLASSLESS_ROUTES: u8 = 121;

/// Codes the server sets itself (or that would change how a reply is
/// parsed: 52 overload), so a custom option may not carry them.
pub const SERVER_SET: [(u8, &str); 18] = [
    (0, "pad"),
    (1, "subnet mask, from subnet.cidr"),
    (3, "routers, from subnet.routers"),
    (6, "DNS servers, from subnet.dns"),
    (12, "host name, from the reservation or the client"),
    (15, "domain name, from subnet.domain"),
    (28, "broadcast address, from subnet.cidr"),
    (50, "requested address, a client option"),
    (51, "lease time, from subnet.lease_time"),
    (52, "option overload"),
    (53, "message type"),
    (54, "server identifier, from server.address"),
    (55, "parameter request list, a client option"),
    (58, "renewal time, from subnet.renew_time"),
    (59, "rebinding time, from subnet.rebind_time"),
    (61, "client identifier, a client option"),
    (82, "relay agent information, echoed from the request"),
    (255, "end"),
];

/// Codes that a subnet key sets, for "set by" messages.
pub const KEYED: [(u8, &str); 4] = [
    (MTU, "mtu"),
    (NTP, "ntp"),
    (DOMAIN_SEARCH, "domain_search"),
    (CLASSLESS_ROUTES, "routes"),
];

/// The longest custom option: one option, never split (RFC 3396).
pub const MAX_CUSTOM_LEN: usize = 255;

pub const TYPES: &str =
    "\"ipv4-list\", \"ipv4\", \"u8\", \"u16\", \"u32\", \"bool\", \"string\", \"hex\"";

/// Parses `value` as an option of `kind`.
pub fn custom(kind: &str, value: &str) -> Result<Vec<u8>, String> {
    let data = match kind {
        "ipv4" => ipv4(value.trim())?.octets().to_vec(),
        "ipv4-list" => {
            let mut out = Vec::new();
            for part in value.split(',') {
                out.extend(ipv4(part.trim())?.octets());
            }
            out
        }
        "u8" => (integer(value, u8::MAX.into())? as u8)
            .to_be_bytes()
            .to_vec(),
        "u16" => (integer(value, u16::MAX.into())? as u16)
            .to_be_bytes()
            .to_vec(),
        "u32" => (integer(value, u32::MAX.into())? as u32)
            .to_be_bytes()
            .to_vec(),
        "bool" => match value.trim() {
            "true" | "1" => vec![1],
            "false" | "0" => vec![0],
            _ => return Err(format!("{value:?} is not a bool (true, false, 1 or 0)")),
        },
        "string" => {
            if value.is_empty() {
                return Err("a string option must not be empty".into());
            }
            value.as_bytes().to_vec()
        }
        "hex" => hex(value)?,
        other => return Err(format!("{other:?} is not one of {TYPES}")),
    };
    if data.len() > MAX_CUSTOM_LEN {
        return Err(format!(
            "value is {} bytes encoded, more than the {MAX_CUSTOM_LEN} an option holds",
            data.len()
        ));
    }
    Ok(data)
}

fn ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

/// Decimal or 0x-prefixed hexadecimal, at most `max`.
fn integer(s: &str, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    match parsed {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(format!("{s:?} is more than {max}")),
        Err(_) => Err(format!("{s:?} is not an unsigned integer")),
    }
}

/// "0a0b0c", "0x0a0b0c", "0a:0b:0c" or "0a 0b 0c"; at least one byte.
fn hex(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|b| *b != b':' && *b != b' ' && *b != b'-')
        .collect();
    let bad = || format!("{s:?} is not hex bytes (e.g. \"0a0b0c\" or \"0a:0b:0c\")");
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Option 119's value (RFC 3397): the names in DNS wire format, with
/// suffixes already written replaced by compression pointers, which count
/// from the start of the value. Names are valid DNS names (checked when
/// the config is read), so labels are 1..=63 bytes.
pub fn domain_search(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    // Suffix (lower case, as DNS compares names) -> where it was written.
    let mut written: HashMap<String, usize> = HashMap::new();
    for name in names {
        let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
        let mut pointer = None;
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".").to_ascii_lowercase();
            if let Some(&at) = written.get(&suffix) {
                pointer = Some((i, at));
                break;
            }
        }
        let own = pointer.map_or(labels.len(), |(i, _)| i);
        for i in 0..own {
            // Pointers hold 14 bits; later names simply are not targets.
            if out.len() < 0x4000 {
                written
                    .entry(labels[i..].join(".").to_ascii_lowercase())
                    .or_insert(out.len());
            }
            out.push(labels[i].len() as u8);
            out.extend(labels[i].as_bytes());
        }
        match pointer {
            Some((_, at)) => out.extend((0xc000 | at as u16).to_be_bytes()),
            None => out.push(0),
        }
    }
    out
}

/// Option 121's value (RFC 3442): for each route the prefix length, the
/// significant octets of the destination, and the gateway.
pub fn classless_routes(routes: &[Route]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in routes {
        let len = r.destination.prefix_len();
        out.push(len);
        out.extend(&r.destination.network().octets()[..usize::from(len).div_ceil(8)]);
        out.extend(r.gateway.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types() {
        let cases: [(&str, &str, &[u8]); 16] = [
            ("ipv4", "10.0.0.1", &[10, 0, 0, 1]),
            (
                "ipv4-list",
                "10.0.0.1, 10.0.0.2",
                &[10, 0, 0, 1, 10, 0, 0, 2],
            ),
            ("ipv4-list", "192.0.2.7", &[192, 0, 2, 7]),
            ("u8", "7", &[7]),
            ("u8", "0xff", &[255]),
            ("u16", "1500", &[0x05, 0xdc]),
            ("u32", "4294967295", &[255, 255, 255, 255]),
            ("u32", "0x01020304", &[1, 2, 3, 4]),
            ("bool", "true", &[1]),
            ("bool", "0", &[0]),
            ("string", "pxelinux.0", b"pxelinux.0"),
            ("hex", "0a0B0c", &[10, 11, 12]),
            ("hex", "0x0a0b", &[10, 11]),
            ("hex", "0a:0b:0c", &[10, 11, 12]),
            ("hex", "0a 0b", &[10, 11]),
            ("hex", "ff", &[255]),
        ];
        for (kind, value, want) in cases {
            assert_eq!(custom(kind, value).as_deref(), Ok(want), "{kind} {value}");
        }
    }

    #[test]
    fn custom_type_errors() {
        let cases = [
            ("ipv4", "10.0.0", "not an IPv4 address"),
            ("ipv4-list", "10.0.0.1,", "not an IPv4 address"),
            ("u8", "256", "more than 255"),
            ("u16", "-1", "not an unsigned integer"),
            ("u32", "4294967296", "more than 4294967295"),
            ("bool", "yes", "not a bool"),
            ("string", "", "must not be empty"),
            ("hex", "abc", "not hex bytes"),
            ("hex", "zz", "not hex bytes"),
            ("hex", "", "not hex bytes"),
            ("int", "1", "is not one of"),
        ];
        for (kind, value, needle) in cases {
            let e = custom(kind, value).unwrap_err();
            assert!(e.contains(needle), "{kind} {value}: {e}");
        }
        let e = custom("string", &"x".repeat(256)).unwrap_err();
        assert!(e.contains("256 bytes"), "{e}");
        custom("string", &"x".repeat(255)).unwrap();
    }

    /// RFC 3397 section 4: "eng.apple.com." and "marketing.apple.com.".
    #[test]
    fn domain_search_rfc3397_example() {
        let names = [
            "eng.apple.com".to_string(),
            "marketing.apple.com".to_string(),
        ];
        let want: &[u8] = &[
            3, b'e', b'n', b'g', 5, b'a', b'p', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 9, b'm',
            b'a', b'r', b'k', b'e', b't', b'i', b'n', b'g', 0xc0, 0x04,
        ];
        assert_eq!(domain_search(&names), want);
        assert_eq!(want.len(), 27, "the RFC's option length");
    }

    #[test]
    fn domain_search_whole_name_and_case() {
        let names = [
            "a.example".to_string(),
            "A.Example".to_string(),
            "b.example".to_string(),
        ];
        let want: &[u8] = &[
            1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, // a.example
            0xc0, 0x00, // A.Example: the whole name again
            1, b'b', 0xc0, 0x02, // b + pointer to example
        ];
        assert_eq!(domain_search(&names), want);
    }

    /// RFC 3442 section 2's table of destination descriptors.
    #[test]
    fn classless_routes_rfc3442_examples() {
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let cases: [(&str, &[u8]); 7] = [
            ("0.0.0.0/0", &[0]),
            ("10.0.0.0/8", &[8, 10]),
            ("10.0.0.0/24", &[24, 10, 0, 0]),
            ("10.17.0.0/16", &[16, 10, 17]),
            ("10.27.129.0/24", &[24, 10, 27, 129]),
            ("10.229.0.128/25", &[25, 10, 229, 0, 128]),
            ("10.198.122.47/32", &[32, 10, 198, 122, 47]),
        ];
        for (dest, descriptor) in cases {
            let route = Route {
                destination: dest.parse().unwrap(),
                gateway: gw,
            };
            let mut want = descriptor.to_vec();
            want.extend(gw.octets());
            assert_eq!(classless_routes(&[route]), want, "{dest}");
        }
        let two = [
            Route {
                destination: "10.60.0.0/16".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 50, 0, 1),
            },
            Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 50, 0, 254),
            },
        ];
        assert_eq!(
            classless_routes(&two),
            [16, 10, 60, 10, 50, 0, 1, 0, 10, 50, 0, 254]
        );
    }
}
