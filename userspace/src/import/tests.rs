//! The importers against the sample files in tests/data/import and the
//! example configurations Debian ships; each output is also run through
//! stormboot's own config validator.

use std::net::Ipv4Addr;
use std::path::Path;

use super::*;

fn data(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A file from a Debian package's documentation; the package is in
/// `cargo xtask setup`'s list, so a missing file is a setup fault.
fn debian(path: &str, package: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{path}: {e}: install the Debian package {package} (cargo xtask setup does)")
    })
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// (mac, ip, hostname) of every reservation.
fn triples(imp: &Import) -> Vec<(String, String, Option<String>)> {
    imp.reservations
        .iter()
        .map(|r| {
            (
                crate::frame::format_mac(&r.mac),
                r.ip.to_string(),
                r.hostname.clone(),
            )
        })
        .collect()
}

fn t(mac: &str, ip: &str, host: Option<&str>) -> (String, String, Option<String>) {
    (mac.into(), ip.into(), host.map(String::from))
}

/// Asserts that line `line` was skipped for a reason containing `part`.
#[track_caller]
fn skipped(imp: &Import, line: usize, part: &str) {
    assert!(
        imp.skipped
            .iter()
            .any(|s| s.line == line && s.reason.contains(part)),
        "no skip at line {line} containing {part:?}; skipped: {:#?}",
        imp.skipped
    );
}

/// The import merged into a minimal config, checked by the validator the
/// daemon uses; `extra` adds what the format cannot carry (a subnet).
#[track_caller]
fn validates(imp: &Import, server: &str, extra: &str) -> crate::config::Config {
    let text = format!(
        "[server]\ninterface = \"sb0\"\naddress = \"{server}\"\n{extra}\n{}",
        render::toml(imp, "input", "test")
    );
    crate::config::Config::from_str(&text, Path::new("/tmp/imported.toml"))
        .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{text}"))
}

#[test]
fn isc_sample() {
    let imp = import(Format::IscDhcpd, &data("dhcpd.conf")).unwrap();
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:12:34:01", "10.50.0.11", Some("rack1-node01")),
            t("52:54:00:12:34:02", "10.50.0.12", Some("rack1-node02")),
            // use-host-decl-names on in their group
            t("52:54:00:12:35:01", "10.51.0.11", Some("rack2-node01")),
            t("52:54:00:12:35:02", "10.51.0.12", Some("rack2-node02")),
            t("52:54:00:12:35:03", "10.51.0.13", Some("rack2-node03")),
            t("52:54:00:12:36:01", "10.52.0.11", None),
        ]
    );
    assert_eq!(imp.reservations[0].line, 20);
    // Options stormboot sends as they are: per host and per subnet.
    assert_eq!(
        imp.reservations[5].options,
        vec![OptionValue {
            code: 17,
            kind: "string",
            value: "10.52.0.5:/srv/nfsroot/rack3-node01".into()
        }]
    );
    let s = &imp.subnets;
    assert_eq!(s.len(), 3);
    assert_eq!(
        s[2].options,
        vec![OptionValue {
            code: 66,
            kind: "string",
            value: "boot.lab.example.net".into()
        }]
    );
    assert_eq!(s[0].cidr.to_string(), "10.50.0.0/24");
    assert_eq!(s[0].routers, vec![ip("10.50.0.1")]);
    // Global options are inherited; the subnet's own win.
    assert_eq!(s[0].dns, vec![ip("10.50.0.2"), ip("10.50.0.3")]);
    assert_eq!(s[0].domain.as_deref(), Some("lab.example.net"));
    assert_eq!(s[0].lease_time, Some(3600));
    assert_eq!(s[0].ntp, vec![ip("10.50.0.2")]);
    assert_eq!(s[0].pools, vec![(ip("10.50.0.100"), ip("10.50.0.199"))]);
    assert_eq!(s[1].domain.as_deref(), Some("rack2.lab.example.net"));
    assert_eq!(s[1].lease_time, Some(7200));
    // A range inside a pool { } belongs to its subnet.
    assert_eq!(s[1].pools, vec![(ip("10.51.0.100"), ip("10.51.0.150"))]);

    skipped(&imp, 3, "include \"/etc/dhcp/dhcpd.keys\" is not followed");
    skipped(&imp, 8, "max-lease-time 86400");
    skipped(&imp, 13, "option pxelinux.magic code 208");
    skipped(&imp, 33, "failover peer");
    skipped(
        &imp,
        40,
        "next-server 10.51.0.5: stormboot boots a machine by its profile",
    );
    skipped(&imp, 41, "filename \"pxelinux.0\"");
    skipped(&imp, 51, "host rack2-node02: filename \"ipxe/snponly.efi\"");
    skipped(
        &imp,
        53,
        "fixed-address 10.51.0.14: stormboot reserves one address per MAC",
    );
    skipped(&imp, 60, "host printer: no hardware ethernet");
    skipped(&imp, 66, "host spare (52:54:00:12:34:99): no fixed-address");
    skipped(
        &imp,
        68,
        "52:54:00:12:34:01 10.50.0.21: duplicate MAC (line 20 is kept)",
    );
    skipped(&imp, 73, "class \"ipmi\"");
    skipped(
        &imp,
        85,
        "host rack3-node01: option 6 per host: stormboot sets it for the whole subnet",
    );
    assert_eq!(imp.skipped.len(), 17, "{:#?}", imp.skipped);

    let cfg = validates(&imp, "10.50.0.250", "");
    assert_eq!(cfg.reservations.len(), 6);
    assert_eq!(cfg.subnets.len(), 3);
}

/// Debian's dhcpd.conf.example, with its commented-out declarations
/// switched on (prose comments start with "# ", declarations with "#x" or
/// "#  "), as an administrator would.
#[test]
fn isc_debian_example() {
    let text = debian(
        "/usr/share/doc/isc-dhcp-server/examples/dhcpd.conf.example",
        "isc-dhcp-server",
    );
    let live = import(Format::IscDhcpd, &text).unwrap();
    // As shipped, only global settings are live.
    assert!(live.subnets.is_empty() && live.reservations.is_empty());
    skipped(&live, 8, "\"ns1.example.org\" is not an IPv4 address");

    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if !rest.is_empty() && (!rest.starts_with(' ') || rest.starts_with("  ")) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let imp = import(Format::IscDhcpd, &uncommented).unwrap();
    let cidrs: Vec<String> = imp.subnets.iter().map(|s| s.cidr.to_string()).collect();
    assert_eq!(
        cidrs,
        [
            "10.152.187.0/24",
            "10.254.239.0/27",
            "10.254.239.32/27",
            "10.5.5.0/27",
            "10.17.224.0/24",
            "10.0.29.0/24"
        ]
    );
    let internal = &imp.subnets[3];
    assert_eq!(internal.routers, vec![ip("10.5.5.1")]);
    assert_eq!(internal.domain.as_deref(), Some("internal.example.org"));
    assert_eq!(internal.pools, vec![(ip("10.5.5.26"), ip("10.5.5.30"))]);
    assert_eq!(imp.subnets[0].domain.as_deref(), Some("example.org"));
    assert_eq!(imp.subnets[0].lease_time, Some(600));
    // range dynamic-bootp
    assert_eq!(
        imp.subnets[2].pools,
        vec![(ip("10.254.239.40"), ip("10.254.239.60"))]
    );
    // The shared network's pools go to the subnet holding their range.
    assert_eq!(
        imp.subnets[4].pools,
        vec![(ip("10.17.224.10"), ip("10.17.224.250"))]
    );
    assert_eq!(
        imp.subnets[5].pools,
        vec![(ip("10.0.29.10"), ip("10.0.29.230"))]
    );

    // Neither host can be reserved: one has no address, one a DNS name.
    assert!(imp.reservations.is_empty());
    let line = |needle: &str| {
        uncommented
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    skipped(
        &imp,
        line("host passacaglia"),
        "host passacaglia (00:00:c0:5d:bd:95): no fixed-address",
    );
    skipped(
        &imp,
        line("host fantasia"),
        "fixed-address \"fantasia.example.com\" is a DNS name",
    );
    skipped(
        &imp,
        line("rtr-239-0-1"),
        "\"rtr-239-0-1.example.org\" is not an IPv4 address",
    );
    skipped(
        &imp,
        line("broadcast-address 10.5.5.31"),
        "derives it from the subnet's cidr",
    );
    skipped(
        &imp,
        line("class \"foo\""),
        "class \"foo\" { ... }: no stormboot counterpart",
    );
    skipped(
        &imp,
        line("allow members"),
        "allow members of \"foo\" (inside a pool)",
    );
    skipped(&imp, line("log-facility"), "log-facility local7");

    let cfg = validates(&imp, "10.5.5.20", "");
    assert_eq!(cfg.subnets.len(), 6);
}

#[test]
fn isc_syntax() {
    // Comments, quoted strings with '#', ';' and braces, nested groups.
    let text = r#"
group { group {
  host "a b" { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.5;
    option host-name "node-1"; filename "x#y;{}"; } # trailing
}}
subnet 10.0.0.0 netmask 255.255.255.0 { range 10.0.0.100; }
"#;
    let imp = parse_only(Format::IscDhcpd, text);
    assert_eq!(imp.reservations.len(), 1);
    assert_eq!(imp.reservations[0].line, 3);
    assert_eq!(imp.reservations[0].hostname.as_deref(), Some("node-1"));
    skipped(&imp, 4, "filename \"x#y;{}\"");
    assert_eq!(
        imp.subnets[0].pools,
        vec![(ip("10.0.0.100"), ip("10.0.0.100"))]
    );

    for (bad, line, msg) in [
        (
            "host a {\n hardware ethernet 52:54:00:00:00:01;\n",
            1,
            "'{' is never closed",
        ),
        ("option a 1;\n}\n", 2, "'}' without a matching '{'"),
        ("option domain-name \"x;\n", 1, "unterminated string"),
        ("host a { fixed-address 10.0.0.1 }", 1, "missing ';'"),
        ("ddns-update-style none", 1, "missing ';'"),
    ] {
        let e = import(Format::IscDhcpd, bad).unwrap_err();
        assert_eq!(e.line, line, "{bad:?}: {e}");
        assert!(e.message.contains(msg), "{bad:?}: {e}");
    }
}

#[test]
fn hostile_nesting_is_an_error_not_a_crash() {
    let deep = "group {\n".repeat(10_000);
    let e = import(Format::IscDhcpd, &deep).unwrap_err();
    assert!(e.message.contains("nested deeper than"), "{e}");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(import(Format::Kea, &deep).is_err());
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(import(Format::Tinkerbell, &deep).is_err());
}

fn parse_only(format: Format, text: &str) -> Import {
    import(format, text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn dnsmasq_sample() {
    let imp = import(Format::Dnsmasq, &data("dnsmasq.conf")).unwrap();
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:12:34:01", "10.50.0.11", Some("rack1-node01")),
            t("52:54:00:12:34:02", "10.50.0.12", Some("rack1-node02")),
            t("52:54:00:12:34:03", "10.50.0.13", Some("rack1-node03")),
            t("52:54:00:12:34:04", "10.50.0.14", Some("rack1-node04")),
            t("52:54:00:12:34:05", "10.50.0.15", Some("rack1-node05")),
            t("52:54:00:12:34:09", "10.50.0.19", None),
        ]
    );
    let s = &imp.subnets;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].cidr.to_string(), "10.50.0.0/24");
    assert_eq!(s[0].pools, vec![(ip("10.50.0.100"), ip("10.50.0.199"))]);
    assert_eq!(s[0].lease_time, Some(12 * 3600));
    assert_eq!(s[0].routers, vec![ip("10.50.0.1")]);
    assert_eq!(s[0].dns, vec![ip("10.50.0.2"), ip("10.50.0.3")]);
    assert_eq!(s[0].domain.as_deref(), Some("lab.example.net"));

    skipped(&imp, 7, "no netmask (dnsmasq takes it from the interface)");
    skipped(&imp, 10, "0.0.0.0 stands for dnsmasq's own address");
    skipped(&imp, 11, "tagged");
    skipped(
        &imp,
        12,
        "dhcp-boot=pxelinux.0,boothost,10.50.0.5: no stormboot counterpart",
    );
    skipped(&imp, 16, "lease time infinite");
    skipped(&imp, 17, "52:54:00:12:34:13: one MAC per address");
    skipped(&imp, 18, "set:rack1: stormboot has no tags");
    skipped(&imp, 18, "lease time 24h");
    skipped(&imp, 19, "id:01:52:54:00:12:34:05: matched by MAC only");
    skipped(&imp, 22, "no IPv4 address");
    skipped(&imp, 23, "reserved by client identifier");
    skipped(&imp, 24, "ignore: stormboot has no per-host deny list");
    skipped(&imp, 25, "wildcard");
    skipped(&imp, 26, "duplicate address (line 15 is kept)");
    skipped(&imp, 27, "host name \"bad_name\" left out");
    skipped(
        &imp,
        28,
        "dhcp-hostsfile=/etc/dnsmasq.d/hosts is not followed",
    );
    assert_eq!(imp.skipped.len(), 16, "{:#?}", imp.skipped);

    validates(&imp, "10.50.0.250", "");
}

/// A host outside every subnet the file declares is skipped, as the config
/// would refuse it, unless a range without its netmask leaves a network
/// unknown: the host may be on it, and is kept.
#[test]
fn dnsmasq_hosts_outside_the_declared_subnets() {
    let known = "dhcp-range=10.50.0.100,10.50.0.199,255.255.255.0,12h\n\
                 dhcp-host=52:54:00:00:00:01,10.60.0.5\n\
                 dhcp-host=52:54:00:00:00:02,10.50.0.5\n";
    let imp = parse_only(Format::Dnsmasq, known);
    assert_eq!(
        triples(&imp),
        vec![t("52:54:00:00:00:02", "10.50.0.5", None)]
    );
    skipped(
        &imp,
        2,
        "52:54:00:00:00:01: 10.60.0.5 is outside every subnet",
    );

    let unknown = format!("dhcp-range=10.60.0.100,10.60.0.199,12h\n{known}");
    let imp = parse_only(Format::Dnsmasq, &unknown);
    assert_eq!(imp.reservations.len(), 2, "{:?}", imp.skipped);
    skipped(&imp, 1, "no netmask");
    // The known subnet's own rules still hold.
    let imp = parse_only(
        Format::Dnsmasq,
        &format!("{unknown}dhcp-host=52:54:00:00:00:03,10.50.0.255\n"),
    );
    skipped(
        &imp,
        5,
        "10.50.0.255 is the broadcast address of 10.50.0.0/24",
    );
}

/// Debian's dnsmasq.conf.example ships every dhcp-host form commented
/// out; switched on together they also collide, which the import reports.
#[test]
fn dnsmasq_debian_example() {
    let text = debian(
        "/usr/share/doc/dnsmasq-base/examples/dnsmasq.conf.example",
        "dnsmasq-base",
    );
    assert!(parse_only(Format::Dnsmasq, &text).reservations.is_empty());
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("#dhcp-") {
            Some(rest) => format!("dhcp-{rest}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let imp = parse_only(Format::Dnsmasq, &uncommented);
    let line = |needle: &str| {
        uncommented
            .lines()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("{needle} is not in the example"))
            + 1
    };
    // 11:22:33:44:55:66 has the group bit set: no client sends from it.
    assert!(imp.reservations.is_empty(), "{:#?}", imp.reservations);
    skipped(
        &imp,
        line("dhcp-host=11:22:33:44:55:66,192.168.0.60"),
        "11:22:33:44:55:66: not a unicast MAC",
    );
    skipped(
        &imp,
        line("dhcp-host=11:22:33:44:55:66,fred"),
        "no IPv4 address",
    );
    skipped(
        &imp,
        line("dhcp-host=11:22:33:44:55:66,fred,192.168.0.60,45m"),
        "lease time 45m",
    );
    skipped(
        &imp,
        line("dhcp-host=11:22:33:44:55:66,12:34:56:78:90:12,192.168.0.60"),
        "12:34:56:78:90:12: one MAC per address",
    );
    skipped(
        &imp,
        line("dhcp-host=bert,192.168.0.70,infinite"),
        "no MAC address",
    );
    skipped(
        &imp,
        line("dhcp-host=id:01:02:02:04,192.168.0.60"),
        "reserved by client identifier",
    );
    skipped(
        &imp,
        line("dhcp-host=id:marjorie,192.168.0.60"),
        "reserved by client identifier",
    );
    skipped(&imp, line("dhcp-host=judge"), "no MAC address");
    skipped(&imp, line("dhcp-host=11:22:33:44:55:66,ignore"), "ignore");
    skipped(&imp, line("dhcp-host=11:22:33:*:*:*,set:red"), "wildcard");
    skipped(
        &imp,
        line("dhcp-range=1234::2, 1234::500, 64, 12h"),
        "IPv6 is not served",
    );
    skipped(
        &imp,
        line("dhcp-option=option6:dns-server,[1234::77],[1234::88]"),
        "IPv6",
    );
    skipped(&imp, line("dhcp-option=vendor:MSFT,2,1i"), "vendor");
    // The one range with a netmask is a subnet, with its global options.
    let s: Vec<_> = imp.subnets.iter().map(|s| s.cidr.to_string()).collect();
    assert_eq!(s, ["192.168.0.0/24"]);
    let subnet = &imp.subnets[0];
    assert_eq!(
        subnet.pools,
        vec![(ip("192.168.0.50"), ip("192.168.0.150"))]
    );
    assert_eq!(subnet.lease_time, Some(12 * 3600));
    assert_eq!(subnet.ntp, vec![ip("192.168.0.4"), ip("10.10.0.5")]);
    // The example's router is not on the example's network.
    assert!(subnet.routers.is_empty());
    skipped(
        &imp,
        subnet.line,
        "router 1.2.3.4 is not a host address of 192.168.0.0/24",
    );
    skipped(
        &imp,
        line("dhcp-range=192.168.0.50,192.168.0.150,12h"),
        "no netmask",
    );
    skipped(
        &imp,
        line("dhcp-option=42,0.0.0.0"),
        "dnsmasq's own address",
    );
    skipped(&imp, line("dhcp-option=40,welly"), "does not know its type");
    validates(&imp, "192.168.0.1", "");
}

#[test]
fn dnsmasq_forms() {
    let imp = parse_only(
        Format::Dnsmasq,
        "dhcp-range=10.0.0.10,10.0.0.20,255.255.255.0\n\
         dhcp-option=3,10.0.0.1\n\
         dhcp-host=52:54:00:00:00:01,10.0.0.5,web,1h\n\
         dhcp-host=52:54:00:00:00:02,set:x,tag:y,10.0.0.6\n\
         dhcp-host=52:54:00:00:00:03,[fd00::3],10.0.0.7,db\n",
    );
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:00:00:01", "10.0.0.5", Some("web")),
            t("52:54:00:00:00:02", "10.0.0.6", None),
            t("52:54:00:00:00:03", "10.0.0.7", Some("db")),
        ]
    );
    assert_eq!(imp.subnets[0].routers, vec![ip("10.0.0.1")]);
    assert_eq!(imp.subnets[0].lease_time, None);
    skipped(&imp, 5, "[fd00::3]: IPv6 is not served");
}

#[test]
fn kea_sample() {
    let imp = import(Format::Kea, &data("kea-dhcp4.conf")).unwrap();
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:12:34:01", "10.50.0.11", Some("rack1-node01")),
            t("52:54:00:12:34:02", "10.50.0.12", Some("rack1-node02")),
            t("52:54:00:12:34:03", "10.50.0.13", None),
            t("52:54:00:12:35:01", "10.51.0.11", Some("rack2-node01")),
            t("52:54:00:12:35:02", "10.51.0.12", Some("rack2-node02")),
        ]
    );
    assert_eq!(
        imp.reservations[1].options,
        vec![OptionValue {
            code: 66,
            kind: "string",
            value: "10.50.0.5".into()
        }]
    );
    let lines: Vec<usize> = imp.reservations.iter().map(|r| r.line).collect();
    assert_eq!(lines, [23, 25, 28, 45, 47]);
    let s = &imp.subnets;
    assert_eq!(s[0].dns, vec![ip("10.50.0.2"), ip("10.50.0.3")]);
    assert_eq!(s[0].domain.as_deref(), Some("lab.example.net"));
    assert_eq!(s[0].lease_time, Some(3600));
    assert_eq!(s[0].ntp, vec![ip("10.50.0.2")]);
    assert_eq!(s[1].lease_time, Some(7200));
    // A pool written as a prefix.
    assert_eq!(s[1].pools, vec![(ip("10.51.0.128"), ip("10.51.0.191"))]);

    skipped(
        &imp,
        28,
        "boot-file-name: stormboot boots a machine by its profile",
    );
    skipped(&imp, 28, "next-server");
    skipped(
        &imp,
        30,
        "reservation by client-id 01:52:54:00:12:34:04 (10.50.0.14)",
    );
    skipped(&imp, 31, "no ip-address");
    skipped(&imp, 36, "relay: no stormboot counterpart");
    skipped(
        &imp,
        40,
        "vendor-encapsulated-options: raw (csv-format false) data",
    );
    skipped(&imp, 45, "client-classes");
    skipped(&imp, 47, "option 6 per host");
    assert_eq!(imp.skipped.len(), 8, "{:#?}", imp.skipped);

    let cfg = validates(&imp, "10.50.0.250", "");
    assert_eq!(cfg.reservations.len(), 5);
}

#[test]
fn kea_debian_examples() {
    let text = debian(
        "/usr/share/doc/kea/examples/kea4/reservations.json",
        "kea-doc",
    );
    let imp = parse_only(Format::Kea, &text);
    assert_eq!(
        triples(&imp),
        vec![t("1a:1b:1c:1d:1e:1f", "192.0.2.201", None)]
    );
    assert_eq!(imp.subnets[0].cidr.to_string(), "192.0.2.0/24");
    assert_eq!(imp.subnets[0].lease_time, Some(4000));
    assert_eq!(
        imp.subnets[0].pools,
        vec![(ip("192.0.2.1"), ip("192.0.2.200"))]
    );
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    skipped(
        &imp,
        line("\"client-id\": \"01:11:22:33:44:55:66\""),
        "reservation by client-id",
    );
    skipped(
        &imp,
        line("\"duid\": \"01:02:03:04:05\""),
        "reservation by duid",
    );
    skipped(
        &imp,
        line("\"circuit-id\": \"01"),
        "reservation by circuit-id",
    );
    skipped(&imp, line("\"flex-id\": "), "reservation by flex-id");
    validates(&imp, "192.0.2.250", "");

    // all-keys.json uses every Kea key, comments of all three kinds and
    // shared networks: it must parse, and its hw-address reservations land.
    let all = debian("/usr/share/doc/kea/examples/kea4/all-keys.json", "kea-doc");
    let imp = parse_only(Format::Kea, &all);
    assert!(!imp.subnets.is_empty(), "{imp:#?}");
    for r in &imp.reservations {
        let mac = crate::frame::format_mac(&r.mac);
        assert!(all.contains(&mac), "{mac} is not in all-keys.json");
        assert_eq!(
            r.line,
            all.lines().position(|l| l.contains(&mac)).unwrap() + 1
        );
    }
    assert!(!imp.skipped.is_empty());
}

#[test]
fn kea_comments_and_errors() {
    let text = r#"# hash
{ /* block
  over lines */ "Dhcp4": { // line
  "subnet4": [ { "subnet": "10.0.0.0/24", "option-data": [
      { "name": "domain-name", "data": "a.example" },
      { "name": "boot-file-name", "data": "http://10.0.0.1/#x//y/*z*/" } ],
    "reservations": [ { "hw-address": "52:54:00:00:00:01", "ip-address": "10.0.0.5" } ] } ]
} }
"#;
    let imp = parse_only(Format::Kea, text);
    assert_eq!(imp.reservations[0].line, 7);
    assert_eq!(imp.subnets[0].domain.as_deref(), Some("a.example"));
    // Comment markers inside strings are data.
    assert_eq!(
        imp.subnets[0].options[0].value,
        "http://10.0.0.1/#x//y/*z*/"
    );

    let e = import(Format::Kea, "{\n \"Dhcp4\": {\n  \"subnet4\": [ }\n}").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    let e = import(Format::Kea, "{ \"Dhcp6\": {} }").unwrap_err();
    assert!(e.message.contains("no \"Dhcp4\""), "{e}");
}

#[test]
fn tinkerbell_sample() {
    let imp = import(Format::Tinkerbell, &data("tinkerbell-hardware.yaml")).unwrap();
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:12:34:01", "10.50.0.11", Some("rack1-node01")),
            t("52:54:00:12:34:02", "10.50.0.12", Some("rack1-node02")),
            t(
                "52:54:00:12:34:12",
                "192.168.77.12",
                Some("rack1-node02-bmc")
            ),
        ]
    );
    let lines: Vec<usize> = imp.reservations.iter().map(|r| r.line).collect();
    assert_eq!(lines, [24, 48, 55]);
    // node01 and node02 describe the same subnet: it appears once.
    assert_eq!(imp.subnets.len(), 2);
    let s = &imp.subnets[0];
    assert_eq!(s.cidr.to_string(), "10.50.0.0/24");
    assert_eq!(s.routers, vec![ip("10.50.0.1")]);
    assert_eq!(s.dns, vec![ip("10.50.0.2"), ip("10.50.0.3")]);
    assert_eq!(s.lease_time, Some(86400));
    assert_eq!(imp.subnets[1].cidr.to_string(), "192.168.77.0/24");

    skipped(
        &imp,
        48,
        "netboot.ipxe.url http://10.50.0.5/custom/rack1-node02.ipxe",
    );
    skipped(
        &imp,
        70,
        "rack1-node03 interface 0 (52:54:00:12:34:03): no dhcp.ip.address",
    );
    skipped(&imp, 75, "\"Secret\" object bmc-creds");
    assert_eq!(imp.skipped.len(), 3, "{:#?}", imp.skipped);

    // netboot.allowPXE false (the BMC, line 55) is carried, not skipped:
    // the machine keeps its address and gets no boot answer.
    let cfg = validates(&imp, "10.50.0.250", "");
    let allow: Vec<bool> = cfg.reservations.iter().map(|r| r.allow_pxe).collect();
    assert_eq!(allow, [true, true, false]);
    assert!(
        load::body(&imp.reservations)
            .contains(r#""ip":"192.168.77.12","hostname":"rack1-node02-bmc","allow_pxe":false}"#),
        "--load sends it to the API too: {}",
        load::body(&imp.reservations)
    );

    let e = import(Format::Tinkerbell, "kind: Hardware\n---\nspec: [\n").unwrap_err();
    assert!(e.line >= 3, "{e}");
}

#[test]
fn csv_sample() {
    let imp = import(Format::Csv, &data("hosts.csv")).unwrap();
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:12:34:01", "10.50.0.11", Some("rack1-node01")),
            t("52:54:00:12:34:02", "10.50.0.12", Some("rack1-node02")),
            t("52:54:00:12:34:03", "10.50.0.13", None),
            t("52:54:00:12:34:06", "10.50.0.16", None),
        ]
    );
    skipped(&imp, 6, "expected mac,ip[,hostname], found 4 field(s)");
    skipped(&imp, 7, "\"10.50.0.300\" is not an IPv4 address");
    skipped(&imp, 8, "host name \"rack1_node06\" left out");
    assert!(imp.subnets.is_empty());
    let cfg = validates(&imp, "10.50.0.1", "[[subnet]]\ncidr = \"10.50.0.0/24\"\n");
    assert_eq!(cfg.reservations.len(), 4);
}

#[test]
fn pools_avoid_routers_and_edges() {
    let mut s = Subnet::new(1, "10.0.0.0/24".parse().unwrap());
    s.routers = vec![ip("10.0.0.50")];
    s.pools = vec![(ip("10.0.0.0"), ip("10.0.0.255"))];
    let imp = finish(Import {
        subnets: vec![s],
        ..Import::default()
    });
    assert_eq!(
        imp.subnets[0].pools,
        vec![
            (ip("10.0.0.1"), ip("10.0.0.49")),
            (ip("10.0.0.51"), ip("10.0.0.254"))
        ]
    );
}

#[test]
fn profile_and_options_render_as_toml() {
    let mut r = Reservation::new(1, [0x52, 0x54, 0, 0, 0, 1], ip("10.0.0.5"));
    r.hostname = Some("a\"b\\c\u{1}\té".into());
    r.profile = Some("debian".into());
    let imp = Import {
        reservations: vec![r],
        skipped: vec![Skipped {
            line: 3,
            reason: "two\nlines".into(),
        }],
        ..Import::default()
    };
    let out = render::toml(&imp, "f", "csv");
    let v: toml::Value = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(v["reservation"][0]["profile"].as_str(), Some("debian"));
    assert_eq!(
        v["reservation"][0]["hostname"].as_str(),
        Some("a\"b\\c\u{1}\té")
    );
    assert!(out.contains("#   f:3: two lines"), "{out}");
}

#[test]
fn kea_shared_networks_and_global_reservations() {
    let text = r#"{ "Dhcp4": {
  "valid-lifetime": 600,
  "option-data": [ { "name": "domain-name-servers", "data": "10.9.0.2" } ],
  "shared-networks": [ {
      "name": "floor1",
      "valid-lifetime": 900,
      "option-data": [ { "code": 42, "data": "10.9.0.3" } ],
      "subnet4": [ { "subnet": "10.9.1.0/24",
                     "option-data": [ { "name": "routers", "data": "10.9.1.1" } ] } ]
  } ],
  "subnet4": [ { "subnet": "10.9.2.0/24" } ],
  "reservations": [ { "hw-address": "52:54:00:00:09:01", "ip-address": "10.9.2.7",
                      "hostname": "global-one" } ]
} }"#;
    let imp = parse_only(Format::Kea, text);
    let floor1 = &imp.subnets[0];
    assert_eq!(floor1.cidr.to_string(), "10.9.1.0/24");
    assert_eq!(floor1.lease_time, Some(900));
    assert_eq!(floor1.dns, vec![ip("10.9.0.2")]);
    assert_eq!(floor1.ntp, vec![ip("10.9.0.3")]);
    assert_eq!(floor1.routers, vec![ip("10.9.1.1")]);
    let plain = &imp.subnets[1];
    assert_eq!(plain.lease_time, Some(600));
    assert!(plain.ntp.is_empty());
    assert_eq!(
        triples(&imp),
        vec![t("52:54:00:00:09:01", "10.9.2.7", Some("global-one"))]
    );
    assert_eq!(imp.reservations[0].line, 12);
    validates(&imp, "10.9.2.1", "");
}

#[test]
fn tinkerbell_list_and_document_markers() {
    let text = "---\napiVersion: v1\nkind: List\nitems:\n- kind: Hardware\n  metadata: {name: a}\n  spec:\n    interfaces:\n    - dhcp:\n        mac: 52:54:00:00:0a:01\n        ip: {address: 10.10.0.5, netmask: 255.255.0.0}\n...\n--- {kind: Hardware, metadata: {name: b}, spec: {interfaces: [{dhcp: {mac: '52:54:00:00:0a:02', ip: {address: 10.10.0.6, netmask: 255.255.0.0}}}]}}\n";
    let imp = parse_only(Format::Tinkerbell, text);
    assert_eq!(
        triples(&imp),
        vec![
            t("52:54:00:00:0a:01", "10.10.0.5", None),
            t("52:54:00:00:0a:02", "10.10.0.6", None)
        ]
    );
    let lines: Vec<usize> = imp.reservations.iter().map(|r| r.line).collect();
    assert_eq!(lines, [10, 13]);
    assert_eq!(imp.subnets.len(), 1);
    assert_eq!(imp.subnets[0].cidr.to_string(), "10.10.0.0/16");
}
