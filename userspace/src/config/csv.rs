//! The reservations file: one `mac,ip[,hostname[,label]]` per line, for
//! sites with more machines than are pleasant to list in TOML.

use super::validate::{Place, ReservationSet, Written};
use super::{ConfigError, Location};

/// Adds every record of `text` to `set`. Blank lines and `#` comments are
/// skipped, and a `mac,ip[,hostname[,label]]` header is allowed before the first
/// record because spreadsheets export one.
pub fn parse(text: &str, file: &str, set: &mut ReservationSet) -> Result<(), ConfigError> {
    // Spreadsheet exports often start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    set.reserve(text.bytes().filter(|&b| b == b'\n').count() + 1);
    let mut seen_record = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let record = raw.trim();
        if record.is_empty() || record.starts_with('#') {
            continue;
        }
        if !seen_record && is_header(record) {
            seen_record = true;
            continue;
        }
        seen_record = true;

        let mut fields = record.split(',').map(str::trim);
        let (Some(mac), Some(ip)) = (fields.next(), fields.next()) else {
            return Err(count_error(file, line, 1));
        };
        let hostname = fields.next().filter(|h| !h.is_empty());
        let label = fields.next().filter(|l| !l.is_empty());
        if fields.next().is_some() {
            return Err(count_error(file, line, record.split(',').count()));
        }
        let place = Place {
            file,
            key_prefix: "",
            mac_line: line,
            ip_line: line,
            hostname_line: line,
            profile_line: line,
            option_lines: Vec::new(),
        };
        let written = Written {
            mac,
            ip,
            hostname,
            profile: None,
            options: &[],
        };
        set.add(&written, &place)?;
        if let Some(l) = label {
            let l =
                super::validate::reservation_label(l).map_err(|message| ConfigError::Invalid {
                    at: Location {
                        file: file.to_owned(),
                        line: Some(line),
                    },
                    key: "label".into(),
                    message,
                })?;
            if let Some(r) = set.list.last_mut() {
                r.label = Some(l);
            }
        }
    }
    Ok(())
}

fn is_header(record: &str) -> bool {
    let mut f = record.split(',').map(str::trim);
    f.next().is_some_and(|s| s.eq_ignore_ascii_case("mac"))
        && f.next().is_some_and(|s| s.eq_ignore_ascii_case("ip"))
        && f.next().is_none_or(|s| s.eq_ignore_ascii_case("hostname"))
        && f.next().is_none_or(|s| s.eq_ignore_ascii_case("label"))
        && f.next().is_none()
}

fn count_error(file: &str, line: usize, found: usize) -> ConfigError {
    ConfigError::Invalid {
        at: Location {
            file: file.to_owned(),
            line: Some(line),
        },
        key: "record".into(),
        message: format!("expected mac,ip[,hostname[,label]], found {found} field(s)"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Subnet;

    fn subnets(cidr: &str) -> Vec<Subnet> {
        vec![Subnet {
            profile: None,
            net: cidr.parse().unwrap(),
            routers: vec![],
            dns: vec![],
            domain: None,
            lease_time: Duration::from_secs(3600),
            renew_time: Duration::from_secs(1800),
            rebind_time: Duration::from_secs(3150),
            boot_lease_time: None,
            pools: vec![],
            exclude: vec![],
            authoritative: true,
            interface: None,
            ntp: vec![],
            mtu: None,
            domain_search: vec![],
            routes: vec![],
            options: vec![],
        }]
    }

    fn run(text: &str) -> Result<usize, String> {
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).map_err(|e| e.to_string())?;
        Ok(set.list.len())
    }

    #[test]
    fn header_comments_blank_lines_and_crlf() {
        let text = "\u{feff}mac,ip,hostname\r\n\
                    # rack 1\r\n\
                    \r\n\
                    52:54:00:00:00:01, 10.50.0.11 ,node1\r\n\
                    52-54-00-00-00-02,10.50.0.12\r\n\
                    52:54:00:00:00:03,10.50.0.13,\n\
                    \n";
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).unwrap();
        let r = &set.list;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].mac, [0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(r[0].ip, Ipv4Addr::new(10, 50, 0, 11));
        assert_eq!(r[0].hostname.as_deref(), Some("node1"));
        assert_eq!(r[0].origin, "hosts.csv:4");
        assert_eq!(r[1].hostname, None);
        assert_eq!(r[1].origin, "hosts.csv:5");
        assert_eq!(r[2].hostname, None);
    }

    #[test]
    fn a_fourth_column_is_the_label() {
        let text = "mac,ip,hostname,label\n\
                    52:54:00:00:00:01,10.50.0.11,node1, rack 1 \n\
                    52:54:00:00:00:02,10.50.0.12,,rack 2\n\
                    52:54:00:00:00:03,10.50.0.13,node3,\n";
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).unwrap();
        let labels: Vec<_> = set.list.iter().map(|r| r.label.as_deref()).collect();
        assert_eq!(labels, [Some("rack 1"), Some("rack 2"), None]);
        assert_eq!(set.list[1].hostname, None);
        let long = "x".repeat(65);
        let e = run(&format!("52:54:00:00:00:01,10.50.0.11,n1,{long}\n")).unwrap_err();
        assert!(e.starts_with("hosts.csv:1: label:"), "{e}");
    }

    #[test]
    fn header_without_hostname_column() {
        assert_eq!(run("mac,ip\n52:54:00:00:00:01,10.50.0.11\n"), Ok(1));
    }

    #[test]
    fn header_only_allowed_first() {
        let e = run("52:54:00:00:00:01,10.50.0.11\nmac,ip,hostname\n").unwrap_err();
        assert!(
            e.starts_with("hosts.csv:2: mac: \"mac\" is not a MAC"),
            "{e}"
        );
    }

    #[test]
    fn wrong_field_count() {
        let e = run("# c\n52:54:00:00:00:01\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: record: expected mac,ip[,hostname[,label]], found 1 field(s)"
        );
        let e = run("52:54:00:00:00:01,10.50.0.11,a,b,c\n").unwrap_err();
        assert!(e.starts_with("hosts.csv:1: record:"), "{e}");
        assert!(e.contains("found 5"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let cases = [
            ("zz:54:00:00:00:01,10.50.0.11", "hosts.csv:3: mac:"),
            ("52:54:00:00:00:01,10.50.0.300", "hosts.csv:3: ip:"),
            (
                "52:54:00:00:00:01,10.60.0.5",
                "hosts.csv:3: ip: 10.60.0.5 is outside every subnet",
            ),
            (
                "52:54:00:00:00:01,10.50.0.11,bad_name",
                "hosts.csv:3: hostname:",
            ),
        ];
        for (record, want) in cases {
            let e = run(&format!("mac,ip,hostname\n\n{record}\n")).unwrap_err();
            assert!(e.starts_with(want), "{record}: {e}");
        }
    }

    #[test]
    fn duplicates_within_file() {
        let e = run("52:54:00:00:00:01,10.50.0.11\n52:54:00:00:00:01,10.50.0.12\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: mac: duplicate MAC 52:54:00:00:00:01 (also hosts.csv:1)"
        );
        let e = run("52:54:00:00:00:01,10.50.0.11\n52:54:00:00:00:02,10.50.0.11\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: ip: duplicate IP 10.50.0.11 (also hosts.csv:1)"
        );
    }

    /// A million records: run with `cargo test --release -- --ignored` to
    /// check the "a couple of seconds" budget.
    #[test]
    #[ignore = "slow in debug builds; a release-mode performance check"]
    fn million_lines() {
        let mut text = String::from("mac,ip,hostname\n");
        for i in 0u32..1_000_000 {
            let [_, a, b, c] = i.to_be_bytes();
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + i);
            text.push_str(&format!("52:54:00:{a:02x}:{b:02x}:{c:02x},{ip},n{i}\n"));
        }
        let subnets = subnets("10.0.0.0/12");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 15, 255, 254), &[]);
        let start = Instant::now();
        parse(&text, "hosts.csv", &mut set).unwrap();
        let took = start.elapsed();
        assert_eq!(set.list.len(), 1_000_000);
        eprintln!("1,000,000 records in {took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
