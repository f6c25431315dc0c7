//! Tests of the whole path from TOML text to [`Config`], one or more per
//! validation rule, each checking the key and line the error names.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const EXAMPLE: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"
reservations_file = "hosts.csv"
xdp_mode = "driver"
xdp_log_level = "warn"
bpffs_dir = "/sys/fs/bpf/stormboot"

[api]
listen = "127.0.0.1:8067"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1"]
domain = "rack1.example"
lease_time = "1h"
renew_time = "30m"
rebind_time = "52m30s"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
label = " rack 1 "
"#;

const MINIMAL: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[[subnet]]
cidr = "10.50.0.0/24"
"#;

/// Parses with an in-memory reservations file.
fn parse_with(text: &str, csv: Option<&str>) -> Result<Config, ConfigError> {
    let mut read = |p: &Path| {
        assert_eq!(
            p,
            Path::new("hosts.csv"),
            "resolved against the config's directory"
        );
        csv.map(str::to_owned)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    };
    Config::parse(text, Path::new("stormboot.toml"), &mut read, &mut |_| {})
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, None)
}

fn err_with(text: &str, csv: Option<&str>) -> String {
    match parse_with(text, csv) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e.to_string(),
    }
}

fn err(text: &str) -> String {
    err_with(text, None)
}

/// Asserts the error starts with `stormboot.toml:{line}: {key}: ` and
/// contains `needle`.
#[track_caller]
fn assert_err(text: &str, line: usize, key: &str, needle: &str) {
    let e = err(text);
    let prefix = format!("stormboot.toml:{line}: {key}: ");
    assert!(e.starts_with(&prefix), "want prefix {prefix:?}, got {e:?}");
    assert!(e.contains(needle), "want {needle:?} in {e:?}");
}

/// MINIMAL with `extra` appended.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// MINIMAL's subnet with extra keys in it (they land on line 7 onwards).
fn subnet_with(keys: &str) -> String {
    format!("{MINIMAL}{keys}\n")
}

#[test]
fn example_parses() {
    let c = parse_with(EXAMPLE, Some("")).unwrap();
    let want = Config {
        server: Server {
            interfaces: vec!["sb0".into()],
            address: Ipv4Addr::new(10, 50, 0, 1),
            reservations_file: Some(PathBuf::from("hosts.csv")),
            xdp_mode: XdpMode::Driver,
            xdp_log_level: LogLevel::Warn,
            bpffs_dir: PathBuf::from("/sys/fs/bpf/stormboot"),
            dataplane: Dataplane::Xdp,
            mode: Mode::Authoritative,
            offer_hold: Duration::from_secs(30),
            decline_quarantine: Duration::from_secs(600),
            slowpath_rate: 20,
            slowpath_burst: 40,
        },
        api: Api {
            listen: "127.0.0.1:8067".parse().unwrap(),
            token: None,
            read_token: false,
        },
        subnets: vec![Subnet {
            net: "10.50.0.0/24".parse().unwrap(),
            routers: vec![Ipv4Addr::new(10, 50, 0, 1)],
            dns: vec![Ipv4Addr::new(10, 50, 0, 1)],
            domain: Some("rack1.example".into()),
            lease_time: Duration::from_secs(3600),
            renew_time: Duration::from_secs(1800),
            rebind_time: Duration::from_secs(3150),
            boot_lease_time: None,
            renewal_cache: Duration::ZERO,
            pools: vec![],
            exclude: vec![],
            authoritative: true,
            interface: None,
            ntp: vec![],
            mtu: None,
            domain_search: vec![],
            routes: vec![],
            options: vec![],
            profile: None,
        }],
        reservations: vec![Reservation {
            allow_pxe: true,
            boot_file: None,
            next_server: None,
            mac: [0x52, 0x54, 0, 0, 0, 1],
            ip: Ipv4Addr::new(10, 50, 0, 11),
            hostname: Some("node1".into()),
            subnet: 0,
            origin: "stormboot.toml:22".into(),
            options: Default::default(),
            profile: None,
            label: Some("rack 1".into()),
        }],
        boot: Boot {
            enabled: false,
            tftp_root: PathBuf::from("/usr/lib/ipxe"),
            artifacts_dir: PathBuf::from("/srv/stormboot"),
            http_port: 80,
            http_backlog: 4096,
            tftp_port: 69,
            syslog_port: 514,
            ipxe_user_class: "iPXE".into(),
            default_profile: None,
            bios_file: "undionly.kpxe".into(),
            efi_x64_file: "ipxe.efi".into(),
            efi_arm64_file: "ipxe-arm64.efi".into(),
            efi_ia32_file: None,
            ipv6_ra: false,
            ipxe_no_proxydhcp: true,
            tftp_max_transfers: 1024,
            file_cache_mb: 256,
        },
        profiles: vec![],
        hooks: None,
        omapi: None,
        dashboard: Default::default(),
        store: Store::Sqlite {
            path: PathBuf::from("/var/lib/stormboot/leases.db"),
        },
        cluster: None,
        warnings: vec![],
    };
    assert_eq!(c, want);
}

#[test]
fn reservation_labels_are_short_and_plain() {
    let r = |label: &str| {
        with(&format!(
            "\n[[reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.50.0.11\"\nlabel = \"{label}\"\n"
        ))
    };
    assert_err(&r("a,b"), 11, "reservation[0].label", "commas");
    assert_err(&r("  "), 11, "reservation[0].label", "1 to 64 characters");
    assert_err(&r(&"x".repeat(65)), 11, "reservation[0].label", "1 to 64");
    let c = parse(&r("row 3 / rack 12")).unwrap();
    assert_eq!(c.reservations[0].label.as_deref(), Some("row 3 / rack 12"));
}

#[test]
fn defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.reservations_file, None);
    assert_eq!(c.server.xdp_mode, XdpMode::Driver);
    assert_eq!(c.server.xdp_log_level, LogLevel::Warn);
    assert_eq!(c.server.bpffs_dir, PathBuf::from("/sys/fs/bpf/stormboot"));
    assert_eq!(c.api.listen, "127.0.0.1:8067".parse().unwrap());
    let s = &c.subnets[0];
    assert!(s.routers.is_empty() && s.dns.is_empty() && s.domain.is_none());
    assert_eq!(s.lease_time, Duration::from_secs(3600));
    assert_eq!(s.renew_time, Duration::from_secs(1800));
    assert_eq!(s.rebind_time, Duration::from_secs(3150));
    assert!(c.reservations.is_empty());
}

#[test]
fn xdp_mode_and_log_levels() {
    let t = MINIMAL.replace(
        "address = \"10.50.0.1\"\n",
        "address = \"10.50.0.1\"\nxdp_mode = \"skb\"\nxdp_log_level = \"trace\"\n",
    );
    let c = parse(&t).unwrap();
    assert_eq!(c.server.xdp_mode, XdpMode::Skb);
    assert_eq!(c.server.xdp_log_level, LogLevel::Trace);
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    for (n, name) in levels.into_iter().enumerate() {
        assert_eq!(LogLevel::from_name(name).unwrap().as_u8() as usize, n);
    }

    let t = MINIMAL.replace("\n\n[[subnet]]", "\nxdp_mode = \"native\"\n\n[[subnet]]");
    assert_err(&t, 4, "server.xdp_mode", "\"native\"");
    let t = MINIMAL.replace("\n\n[[subnet]]", "\nxdp_log_level = \"loud\"\n\n[[subnet]]");
    assert_err(&t, 4, "server.xdp_log_level", "\"loud\"");
}

#[test]
fn slowpath_rate_and_burst() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!((c.server.slowpath_rate, c.server.slowpath_burst), (20, 40));
    let t = MINIMAL.replace(
        "\n\n[[subnet]]",
        "\nslowpath_rate = 0\nslowpath_burst = 500\n\n[[subnet]]",
    );
    let c = parse(&t).unwrap();
    assert_eq!((c.server.slowpath_rate, c.server.slowpath_burst), (0, 500));

    let t = MINIMAL.replace("\n\n[[subnet]]", "\nslowpath_rate = -1\n\n[[subnet]]");
    assert_err(&t, 4, "server.slowpath_rate", "-1 is outside 0..=1000000");
    let t = MINIMAL.replace(
        "\n\n[[subnet]]",
        "\nslowpath_rate = 5\nslowpath_burst = 2000000\n\n[[subnet]]",
    );
    assert_err(&t, 5, "server.slowpath_burst", "2000000");
    let t = MINIMAL.replace(
        "\n\n[[subnet]]",
        "\nslowpath_burst = \"lots\"\n\n[[subnet]]",
    );
    let e = err(&t);
    assert!(
        e.starts_with("stormboot.toml:4") && e.contains("slowpath_burst"),
        "{e}"
    );
}

#[test]
fn durations_in_subnet() {
    let t = subnet_with("lease_time = 7200\nrenew_time = \"1h\"\nrebind_time = \"1h45m\"");
    let s = &parse(&t).unwrap().subnets[0];
    assert_eq!(s.lease_time, Duration::from_secs(7200));
    assert_eq!(s.renew_time, Duration::from_secs(3600));
    assert_eq!(s.rebind_time, Duration::from_secs(6300));

    let t = subnet_with("lease_time = \"2d\"");
    let s = &parse(&t).unwrap().subnets[0];
    assert_eq!(s.renew_time, Duration::from_secs(86_400));
    assert_eq!(s.rebind_time, Duration::from_secs(151_200));

    assert_err(
        &subnet_with("lease_time = \"1 hour\""),
        7,
        "subnet[0].lease_time",
        "not a duration",
    );
    assert_err(
        &subnet_with("lease_time = -5"),
        7,
        "subnet[0].lease_time",
        "negative",
    );
    assert_err(
        &subnet_with("renew_time = \"0s\""),
        7,
        "subnet[0].renew_time",
        "positive",
    );
    // A float is neither a string nor an integer: toml's own error.
    assert_err(
        &subnet_with("lease_time = 1.5"),
        7,
        "subnet[0].lease_time",
        "expected a duration",
    );
}

#[test]
fn lease_time_minimum_and_maximum() {
    assert_err(
        &subnet_with("lease_time = \"59s\""),
        7,
        "subnet[0].lease_time",
        "59s is outside 1m..=",
    );
    assert_err(
        &subnet_with("lease_time = 4294967295"),
        7,
        "subnet[0].lease_time",
        "outside",
    );
    parse(&subnet_with("lease_time = 60")).unwrap();
}

#[test]
fn renew_rebind_lease_order() {
    let t = subnet_with("renew_time = \"55m\"");
    assert_err(
        &t,
        7,
        "subnet[0].renew_time",
        "renew_time 55m must be less than rebind_time 52m30s (default)",
    );
    let t = subnet_with("lease_time = \"1h\"\nrenew_time = \"40m\"\nrebind_time = \"40m\"");
    assert_err(
        &t,
        8,
        "subnet[0].renew_time",
        "must be less than rebind_time 40m",
    );
    let t = subnet_with("rebind_time = \"1h\"");
    assert_err(
        &t,
        7,
        "subnet[0].rebind_time",
        "rebind_time 1h must be less than lease_time 1h (default)",
    );
    let t = subnet_with("rebind_time = \"20m\"");
    assert_err(
        &t,
        7,
        "subnet[0].rebind_time",
        "renew_time 30m (default) must be less than rebind_time 20m",
    );
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    assert_err(
        &with("\n[api]\nlisten = \"127.0.0.1:1\"\nport = 1\n"),
        10,
        "api.port",
        "unknown field `port`",
    );
    assert_err(
        &subnet_with("gateway = \"10.50.0.1\""),
        7,
        "subnet[0].gateway",
        "unknown field `gateway`",
    );
    let e = err(&with("\n[bogus]\n"));
    assert!(
        e.starts_with("stormboot.toml:8: bogus: unknown field `bogus`"),
        "{e}"
    );
    let t =
        with("\n[[reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.50.0.11\"\nname = \"x\"\n");
    assert_err(&t, 11, "reservation[0].name", "unknown field `name`");
}

#[test]
fn toml_type_and_syntax_errors() {
    let t = MINIMAL.replace("interface = \"sb0\"", "interface = 5");
    assert_err(
        &t,
        2,
        "server.interface",
        "invalid type: integer `5`, expected an interface name or a list of them",
    );
    let t = subnet_with("routers = [\"10.50.0.1\",\n  7]");
    assert_err(&t, 8, "subnet[0].routers[1]", "invalid type: integer `7`");
    let e = err("[server]\ninterface = \"sb0\naddress = \"10.50.0.1\"\n");
    assert!(e.starts_with("stormboot.toml:2: "), "{e}");
    let e = err("[server]\naddress = \"10.50.0.1\"\n");
    assert!(
        e.starts_with("stormboot.toml:1: server: missing field `interface`"),
        "{e}"
    );
    let e = err("");
    assert!(
        e.starts_with("stormboot.toml:1: missing field `server`"),
        "{e}"
    );
}

#[test]
fn several_interfaces() {
    let t = MINIMAL.replace("interface = \"sb0\"", "interface = [\"sb0\", \"vlan42\"]");
    let cfg =
        Config::from_str(&t, Path::new("stormboot.toml")).expect("a list of interfaces is valid");
    assert_eq!(
        cfg.server.interfaces,
        vec!["sb0".to_string(), "vlan42".to_string()]
    );
    let t = MINIMAL.replace("interface = \"sb0\"", "interface = [\"sb0\", \"sb0\"]");
    assert_err(&t, 2, "server.interface[1]", "listed twice");
    let t = MINIMAL.replace("interface = \"sb0\"", "interface = []");
    assert_err(&t, 2, "server.interface", "names no interface");
    let t = MINIMAL.replace("interface = \"sb0\"", "interface = [\"sb0\", \"bad/name\"]");
    assert_err(&t, 2, "server.interface[1]", "not a valid interface name");
}

#[test]
fn interface_name() {
    let t = MINIMAL.replace("\"sb0\"", "\"a-very-long-interface\"");
    assert_err(&t, 2, "server.interface", "not a valid interface name");
    let t = MINIMAL.replace("\"sb0\"", "\"\"");
    assert_err(&t, 2, "server.interface", "not a valid interface name");
}

#[test]
fn server_address() {
    let t = MINIMAL.replace("\"10.50.0.1\"", "\"10.50.0\"");
    assert_err(
        &t,
        3,
        "server.address",
        "\"10.50.0\" is not an IPv4 address",
    );
    for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1"] {
        let t = MINIMAL.replace("10.50.0.1", bad);
        assert_err(&t, 3, "server.address", "is not a unicast address");
    }
}

#[test]
fn api_listen() {
    assert_err(
        &with("[api]\nlisten = \"localhost\"\n"),
        8,
        "api.listen",
        "not an address:port",
    );
    let c = parse(&with("[api]\nlisten = \"0.0.0.0:9000\"\n")).unwrap();
    assert_eq!(c.api.listen, "0.0.0.0:9000".parse().unwrap());
    // An empty [api] table keeps the default.
    let c = parse(&with("[api]\n")).unwrap();
    assert_eq!(c.api.listen, "127.0.0.1:8067".parse().unwrap());
}

#[test]
fn bpffs_dir_must_be_absolute() {
    let t = MINIMAL.replace("\n\n[[subnet]]", "\nbpffs_dir = \"bpf\"\n\n[[subnet]]");
    assert_err(&t, 4, "server.bpffs_dir", "absolute");
}

#[test]
fn at_least_one_subnet() {
    let e = err("[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n");
    assert_eq!(
        e,
        "stormboot.toml: subnet: at least one [[subnet]] is required"
    );
}

#[test]
fn cidr_rules() {
    let t = MINIMAL.replace("10.50.0.0/24", "10.50.0.0");
    assert_err(&t, 6, "subnet[0].cidr", "not an IPv4 CIDR");
    let t = MINIMAL.replace("10.50.0.0/24", "10.50.0.7/24");
    assert_err(
        &t,
        6,
        "subnet[0].cidr",
        "host bits set (did you mean 10.50.0.0/24?)",
    );
    for bad in ["10.50.0.0/31", "10.50.0.1/32", "0.0.0.0/0"] {
        let t = MINIMAL.replace("10.50.0.0/24", bad);
        assert_err(&t, 6, "subnet[0].cidr", "prefix length must be 1..=30");
    }
    parse(&MINIMAL.replace("10.50.0.0/24", "10.50.0.0/30")).unwrap();
}

#[test]
fn overlapping_subnets() {
    let t =
        with("\n[[subnet]]\ncidr = \"10.60.0.0/24\"\n\n[[subnet]]\ncidr = \"10.50.0.128/25\"\n");
    assert_err(
        &t,
        12,
        "subnet[2].cidr",
        "10.50.0.128/25 overlaps subnet[0].cidr 10.50.0.0/24 (stormboot.toml:6)",
    );
    let t = with("\n[[subnet]]\ncidr = \"10.0.0.0/8\"\n");
    assert_err(&t, 9, "subnet[1].cidr", "overlaps subnet[0].cidr");
}

#[test]
fn routers_and_dns() {
    assert_err(
        &subnet_with("routers = [\"10.50.0.1\", \"10.60.0.1\"]"),
        7,
        "subnet[0].routers[1]",
        "10.60.0.1 is not a host address of 10.50.0.0/24",
    );
    assert_err(
        &subnet_with("routers = [\"10.50.0.255\"]"),
        7,
        "subnet[0].routers[0]",
        "not a host address",
    );
    assert_err(
        &subnet_with("routers = [\"router\"]"),
        7,
        "subnet[0].routers[0]",
        "not an IPv4 address",
    );
    assert_err(
        &subnet_with("dns = [\"8.8.8.8\", \"x\"]"),
        7,
        "subnet[0].dns[1]",
        "not an IPv4 address",
    );
    assert_err(
        &subnet_with("dns = [\"0.0.0.0\"]"),
        7,
        "subnet[0].dns[0]",
        "not a unicast address",
    );
    let c = parse(&subnet_with("dns = [\"8.8.8.8\"]")).unwrap();
    assert_eq!(c.subnets[0].dns, [Ipv4Addr::new(8, 8, 8, 8)]);
}

#[test]
fn domain_rules() {
    for bad in [
        "rack_1.example",
        "rack1..example",
        "-rack.example",
        "rack1.example.",
    ] {
        let t = subnet_with(&format!("domain = \"{bad}\""));
        assert_err(&t, 7, "subnet[0].domain", "not a valid DNS name");
    }
    let long_label = "a".repeat(64);
    assert_err(
        &subnet_with(&format!("domain = \"{long_label}.example\"")),
        7,
        "subnet[0].domain",
        "63",
    );
    let long_name = vec!["a".repeat(63); 4].join(".");
    assert_err(
        &subnet_with(&format!("domain = \"{long_name}\"")),
        7,
        "subnet[0].domain",
        "253",
    );
}

fn reservation(mac: &str, ip: &str, hostname: Option<&str>) -> String {
    let host = hostname
        .map(|h| format!("hostname = \"{h}\"\n"))
        .unwrap_or_default();
    format!("\n[[reservation]]\nmac = \"{mac}\"\nip = \"{ip}\"\n{host}")
}

#[test]
fn reservation_values() {
    let ok = reservation("52:54:00:00:00:01", "10.50.0.11", None);
    // The first reservation's keys are on lines 9 (mac), 10 (ip), 11 (hostname).
    let t = with(&reservation("52:54:00:00:00", "10.50.0.11", None));
    assert_err(&t, 9, "reservation[0].mac", "not a MAC address");
    let t = with(&reservation("01:00:5e:00:00:01", "10.50.0.11", None));
    assert_err(&t, 9, "reservation[0].mac", "not a unicast MAC");
    let t = with(&format!(
        "{ok}{}",
        reservation("52:54:00:00:00:02", "10.50.0.x", None)
    ));
    assert_err(
        &t,
        14,
        "reservation[1].ip",
        "\"10.50.0.x\" is not an IPv4 address",
    );
    let t = with(&reservation(
        "52:54:00:00:00:01",
        "10.50.0.11",
        Some("node_1"),
    ));
    assert_err(&t, 11, "reservation[0].hostname", "not a valid DNS name");
    let t = with(&reservation(
        "52:54:00:00:00:01",
        "10.50.0.11",
        Some(&"n".repeat(64)),
    ));
    assert_err(&t, 11, "reservation[0].hostname", "63");
    let c = parse(&with(&reservation(
        "52-54-00-00-00-01",
        "10.50.0.11",
        Some("node1.rack1"),
    )))
    .unwrap();
    assert_eq!(c.reservations[0].mac, [0x52, 0x54, 0, 0, 0, 1]);
    assert_eq!(c.reservations[0].hostname.as_deref(), Some("node1.rack1"));
}

#[test]
fn reservation_outside_every_subnet() {
    let t = with(&format!(
        "{}{}",
        reservation("52:54:00:00:00:01", "10.50.0.11", None),
        reservation("52:54:00:00:00:02", "10.60.0.5", None)
    ));
    let e = err(&t);
    assert_eq!(
        e,
        "stormboot.toml:14: reservation[1].ip: 10.60.0.5 is outside every subnet"
    );
}

#[test]
fn reservation_network_broadcast_server_router() {
    let t = with(&reservation("52:54:00:00:00:01", "10.50.0.0", None));
    assert_err(
        &t,
        10,
        "reservation[0].ip",
        "network address of 10.50.0.0/24",
    );
    let t = with(&reservation("52:54:00:00:00:01", "10.50.0.255", None));
    assert_err(
        &t,
        10,
        "reservation[0].ip",
        "broadcast address of 10.50.0.0/24",
    );
    let t = with(&reservation("52:54:00:00:00:01", "10.50.0.1", None));
    assert_err(&t, 10, "reservation[0].ip", "server.address");
    let t = format!(
        "{}{}",
        subnet_with("routers = [\"10.50.0.254\"]"),
        reservation("52:54:00:00:00:01", "10.50.0.254", None)
    );
    assert_err(&t, 11, "reservation[0].ip", "is a router of 10.50.0.0/24");
}

#[test]
fn reservation_subnet_index() {
    let t = with(&format!(
        "\n[[subnet]]\ncidr = \"10.60.0.0/16\"\n{}{}",
        reservation("52:54:00:00:00:01", "10.60.3.4", None),
        reservation("52:54:00:00:00:02", "10.50.0.4", None)
    ));
    let c = parse(&t).unwrap();
    assert_eq!(c.reservations[0].subnet, 1);
    assert_eq!(c.reservations[1].subnet, 0);
}

#[test]
fn duplicate_inline_reservations() {
    let t = with(&format!(
        "{}{}",
        reservation("52:54:00:00:00:01", "10.50.0.11", None),
        reservation("52-54-00-00-00-01", "10.50.0.12", None)
    ));
    assert_eq!(
        err(&t),
        "stormboot.toml:13: reservation[1].mac: duplicate MAC 52:54:00:00:00:01 (also stormboot.toml:9)"
    );
    let t = with(&format!(
        "{}{}",
        reservation("52:54:00:00:00:01", "10.50.0.11", None),
        reservation("52:54:00:00:00:02", "10.50.0.11", None)
    ));
    assert_eq!(
        err(&t),
        "stormboot.toml:14: reservation[1].ip: duplicate IP 10.50.0.11 (also stormboot.toml:9)"
    );
}

const WITH_CSV: &str = "[server]
interface = \"sb0\"
address = \"10.50.0.1\"
reservations_file = \"hosts.csv\"

[[subnet]]
cidr = \"10.50.0.0/24\"

[[reservation]]
mac = \"52:54:00:00:00:01\"
ip = \"10.50.0.11\"
";

#[test]
fn csv_reservations_follow_inline_ones() {
    let csv = "mac,ip,hostname\n# spare\n\n52:54:00:00:00:02,10.50.0.12,node2\n";
    let c = parse_with(WITH_CSV, Some(csv)).unwrap();
    let origins: Vec<_> = c
        .reservations
        .iter()
        .map(|r| r.origin.to_string())
        .collect();
    assert_eq!(origins, ["stormboot.toml:10", "hosts.csv:4"]);
    assert_eq!(c.reservations[1].hostname.as_deref(), Some("node2"));
}

#[test]
fn the_outline_comes_before_the_file_is_parsed() {
    // A bad last line: the outline is given all the same, sized by the
    // file's lines, with the configuration file's own reservation.
    let csv = "mac,ip\n52:54:00:00:00:02,10.50.0.12\nnot a record\n";
    let mut read = |_: &Path| Ok(csv.to_owned());
    let mut seen = Vec::new();
    let e = Config::parse(WITH_CSV, Path::new("stormboot.toml"), &mut read, &mut |o| {
        seen.push((
            o.reservations.len(),
            o.file_lines,
            o.server.interfaces.clone(),
        ))
    });
    assert!(e.is_err());
    assert_eq!(seen, [(1, 4, vec!["sb0".to_string()])]);

    let mut seen = 0;
    parse_with(MINIMAL, None).unwrap();
    Config::parse(MINIMAL, Path::new("stormboot.toml"), &mut read, &mut |o| {
        assert_eq!((o.reservations.len(), o.file_lines), (0, 0));
        seen += 1;
    })
    .unwrap();
    assert_eq!(seen, 1, "once, without a reservations file too");
}

#[test]
fn duplicate_between_inline_and_csv_names_both() {
    let csv = "mac,ip,hostname\n\n52:54:00:00:00:01,10.50.0.12\n";
    assert_eq!(
        err_with(WITH_CSV, Some(csv)),
        "hosts.csv:3: mac: duplicate MAC 52:54:00:00:00:01 (also stormboot.toml:10)"
    );
    let csv = "52:54:00:00:00:02,10.50.0.11\n";
    assert_eq!(
        err_with(WITH_CSV, Some(csv)),
        "hosts.csv:1: ip: duplicate IP 10.50.0.11 (also stormboot.toml:10)"
    );
}

#[test]
fn csv_bad_values_name_file_and_line() {
    let e = err_with(WITH_CSV, Some("# x\n52:54:00:00:00:02,10.60.0.5\n"));
    assert_eq!(e, "hosts.csv:2: ip: 10.60.0.5 is outside every subnet");
    let e = err_with(WITH_CSV, Some("52:54:00:00:00:02;10.50.0.12\n"));
    assert!(e.starts_with("hosts.csv:1: record: "), "{e}");
}

#[test]
fn missing_csv_names_the_key() {
    let e = err(WITH_CSV);
    assert!(
        e.starts_with("stormboot.toml:4: server.reservations_file: cannot read hosts.csv"),
        "{e}"
    );
}

#[test]
fn load_reads_files_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stormboot.toml");
    std::fs::write(&config, WITH_CSV).unwrap();
    std::fs::write(
        dir.path().join("hosts.csv"),
        "52:54:00:00:00:02,10.50.0.12,node2\n",
    )
    .unwrap();
    let c = Config::load(&config).unwrap();
    assert_eq!(
        c.server.reservations_file,
        Some(dir.path().join("hosts.csv"))
    );
    assert_eq!(c.reservations.len(), 2);
    assert_eq!(c.reservations[0].origin, format!("{}:10", config.display()));
    assert_eq!(
        c.reservations[1].origin,
        format!("{}:1", dir.path().join("hosts.csv").display())
    );

    // An absolute reservations_file is used as written.
    let elsewhere = tempfile::tempdir().unwrap();
    let csv = elsewhere.path().join("h.csv");
    std::fs::write(&csv, "52:54:00:00:00:03,10.50.0.13\n").unwrap();
    let text = WITH_CSV.replace("\"hosts.csv\"", &format!("{:?}", csv.display().to_string()));
    let c = Config::from_str(&text, &config).unwrap();
    assert_eq!(c.reservations[1].ip, Ipv4Addr::new(10, 50, 0, 13));

    let e = Config::load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

#[test]
fn error_location_accessor() {
    let e = parse_with(WITH_CSV, Some("52:54:00:00:00:02,10.60.0.5\n")).unwrap_err();
    assert_eq!(
        e.location(),
        Some(&Location {
            file: "hosts.csv".into(),
            line: Some(1)
        })
    );
}

/// MINIMAL with `keys` added to [server] (they land on line 4 onwards).
fn server_with(keys: &str) -> String {
    MINIMAL.replace("\n\n[[subnet]]", &format!("\n{keys}\n\n[[subnet]]"))
}

#[test]
fn server_dataplane_and_times() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.dataplane, Dataplane::Xdp);
    assert_eq!(c.server.offer_hold, Duration::from_secs(30));
    assert_eq!(c.server.decline_quarantine, Duration::from_secs(600));

    let t = server_with(
        "dataplane = \"userspace\"\n\
         offer_hold = \"45s\"\ndecline_quarantine = 3600",
    );
    let c = Config::parse(
        &t,
        Path::new("/etc/stormboot/stormboot.toml"),
        &mut |_| unreachable!(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(c.server.dataplane, Dataplane::Userspace);
    assert_eq!(c.server.offer_hold, Duration::from_secs(45));
    assert_eq!(c.server.decline_quarantine, Duration::from_secs(3600));

    assert_err(
        &server_with("dataplane = \"ebpf\""),
        4,
        "server.dataplane",
        "\"ebpf\" is not one of \"xdp\", \"userspace\"",
    );
    assert_err(
        &server_with("lease_db = \" \""),
        4,
        "server.lease_db",
        "empty",
    );
    assert_err(
        &server_with("offer_hold = \"0s\""),
        4,
        "server.offer_hold",
        "positive",
    );
    assert_err(
        &server_with("\ndecline_quarantine = \"soon\""),
        5,
        "server.decline_quarantine",
        "not a duration",
    );
}

#[test]
fn pools_and_excludes() {
    let t = subnet_with(
        "routers = [\"10.50.0.1\"]\npool = [\"10.50.0.200-10.50.0.250\", \"10.50.0.100 - 10.50.0.199\", \"10.50.0.20\"]\n\
         exclude = [\"10.50.0.150\", \"10.50.0.160-10.50.0.165\"]",
    );
    let s = &parse(&t).unwrap().subnets[0];
    let ip = |d| Ipv4Addr::new(10, 50, 0, d);
    assert_eq!(
        s.pools,
        [(ip(20), ip(20)), (ip(100), ip(199)), (ip(200), ip(250))],
        "sorted"
    );
    assert_eq!(s.exclude, [(ip(150), ip(150)), (ip(160), ip(165))]);

    let cases = [
        (
            "pool = [\"10.50.0.10-\"]",
            "subnet[0].pool[0]",
            "not an address range",
        ),
        (
            "pool = [\"10.50.0.10..10.50.0.20\"]",
            "subnet[0].pool[0]",
            "not an address range",
        ),
        (
            "pool = [\"10.50.0.20-10.50.0.10\"]",
            "subnet[0].pool[0]",
            "10.50.0.20 is after 10.50.0.10",
        ),
        (
            "pool = [\"10.50.0.100-10.50.1.10\"]",
            "subnet[0].pool[0]",
            "10.50.1.10 is outside 10.50.0.0/24",
        ),
        (
            "pool = [\"10.50.0.0-10.50.0.10\"]",
            "subnet[0].pool[0]",
            "contains 10.50.0.0, the network address",
        ),
        (
            "pool = [\"10.50.0.200-10.50.0.255\"]",
            "subnet[0].pool[0]",
            "the broadcast address",
        ),
        (
            "pool = [\"10.50.0.1-10.50.0.10\"]",
            "subnet[0].pool[0]",
            "server.address",
        ),
        (
            "routers = [\"10.50.0.254\"]\npool = [\"10.50.0.200-10.50.0.254\"]",
            "subnet[0].pool[0]",
            "contains 10.50.0.254, a router",
        ),
        (
            "exclude = [\"10.60.0.1\"]",
            "subnet[0].exclude[0]",
            "outside 10.50.0.0/24",
        ),
        (
            "exclude = [\"x\"]",
            "subnet[0].exclude[0]",
            "not an address range",
        ),
    ];
    for (keys, key, needle) in cases {
        let line = 7 + keys.matches('\n').count();
        assert_err(&subnet_with(keys), line, key, needle);
    }
    assert_err(
        &subnet_with("pool = [\"10.50.0.10-10.50.0.20\",\n  \"10.50.0.20-10.50.0.30\"]"),
        8,
        "subnet[0].pool[1]",
        "10.50.0.20-10.50.0.30 overlaps subnet[0].pool[0] 10.50.0.10-10.50.0.20 (stormboot.toml:7)",
    );
}

#[test]
fn reservations_may_lie_inside_pools() {
    let t = format!(
        "{}{}",
        subnet_with("pool = [\"10.50.0.10-10.50.0.20\"]"),
        reservation("52:54:00:00:00:01", "10.50.0.15", None)
    );
    let c = parse(&t).unwrap();
    assert_eq!(c.reservations[0].ip, Ipv4Addr::new(10, 50, 0, 15));
}

#[test]
fn authoritative_and_interface() {
    let s = &parse(MINIMAL).unwrap().subnets[0];
    assert!(s.authoritative);
    assert_eq!(s.interface, None);
    let t = subnet_with("authoritative = false\ninterface = \"sb1\"");
    let s = &parse(&t).unwrap().subnets[0];
    assert!(!s.authoritative);
    assert_eq!(s.interface.as_deref(), Some("sb1"));

    assert_err(
        &subnet_with("authoritative = \"no\""),
        7,
        "subnet[0].authoritative",
        "invalid type",
    );
    assert_err(
        &subnet_with("interface = \"a/b\""),
        7,
        "subnet[0].interface",
        "not a valid interface name",
    );
    let t =
        with("interface = \"sb1\"\n\n[[subnet]]\ncidr = \"10.60.0.0/24\"\ninterface = \"sb1\"\n");
    assert_err(
        &t,
        11,
        "subnet[1].interface",
        "\"sb1\" is also subnet[0].interface (stormboot.toml:7)",
    );
}

#[test]
fn ntp_mtu_domain_search_routes() {
    let t = subnet_with(
        "ntp = [\"10.50.0.2\", \"10.50.0.3\"]\nmtu = 9000\n\
         domain_search = [\"rack1.example\", \"example\"]\n\
         routes = [{ destination = \"10.60.0.0/16\", gateway = \"10.50.0.1\" },\n\
         { destination = \"0.0.0.0/0\", gateway = \"10.50.0.254\" }]",
    );
    let s = &parse(&t).unwrap().subnets[0];
    assert_eq!(
        s.ntp,
        [Ipv4Addr::new(10, 50, 0, 2), Ipv4Addr::new(10, 50, 0, 3)]
    );
    assert_eq!(s.mtu, Some(9000));
    assert_eq!(s.domain_search, ["rack1.example", "example"]);
    assert_eq!(
        s.routes,
        [
            Route {
                destination: "10.60.0.0/16".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 50, 0, 1)
            },
            Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 50, 0, 254)
            }
        ]
    );
    let extra = s.extra_options(None);
    let codes: Vec<u8> = extra.iter().map(|o| o.code).collect();
    assert_eq!(codes, [26, 42, 119, 121]);
    assert_eq!(extra[0].data, [0x23, 0x28]);
    assert_eq!(extra[1].data, [10, 50, 0, 2, 10, 50, 0, 3]);
    assert_eq!(extra[3].data, [16, 10, 60, 10, 50, 0, 1, 0, 10, 50, 0, 254]);

    let cases = [
        (
            "ntp = [\"ntp.example\"]",
            "subnet[0].ntp[0]",
            "not an IPv4 address",
        ),
        (
            "ntp = [\"0.0.0.0\"]",
            "subnet[0].ntp[0]",
            "not a unicast address",
        ),
        ("mtu = 67", "subnet[0].mtu", "67 is outside 68..=65535"),
        ("mtu = 65536", "subnet[0].mtu", "outside"),
        ("mtu = \"1500\"", "subnet[0].mtu", "invalid type"),
        (
            "domain_search = [\"ok.example\", \"bad_name\"]",
            "subnet[0].domain_search[1]",
            "not a valid DNS name",
        ),
        (
            "routes = [{ destination = \"10.60.0.1/16\", gateway = \"10.50.0.1\" }]",
            "subnet[0].routes[0].destination",
            "host bits set (did you mean 10.60.0.0/16?)",
        ),
        (
            "routes = [{ destination = \"10.60.0.0\", gateway = \"10.50.0.1\" }]",
            "subnet[0].routes[0].destination",
            "not an IPv4 CIDR",
        ),
        (
            "routes = [{ destination = \"10.60.0.0/16\", gateway = \"gw\" }]",
            "subnet[0].routes[0].gateway",
            "not an IPv4 address",
        ),
        (
            "routes = [{ destination = \"10.60.0.0/16\", gateway = \"224.0.0.1\" }]",
            "subnet[0].routes[0].gateway",
            "not a unicast address",
        ),
        (
            "routes = [{ destination = \"10.60.0.0/16\" }]",
            "subnet[0].routes[0]",
            "missing field `gateway`",
        ),
        (
            "routes = [{ destination = \"10.60.0.0/16\", gateway = \"10.50.0.1\", via = 1 }]",
            "subnet[0].routes[0].via",
            "unknown field `via`",
        ),
    ];
    for (keys, key, needle) in cases {
        assert_err(&subnet_with(keys), 7, key, needle);
    }
}

/// A `[[subnet.option]]` (or `[[reservation.option]]`) table; its code is
/// on the line after the header.
fn option(table: &str, code: &str, kind: &str, value: &str) -> String {
    format!("\n[[{table}.option]]\ncode = {code}\ntype = \"{kind}\"\nvalue = {value}\n")
}

#[test]
fn custom_options_by_type() {
    let cases: [(&str, &str, &[u8]); 8] = [
        (
            "ipv4-list",
            "\"10.0.0.1, 10.0.0.2\"",
            &[10, 0, 0, 1, 10, 0, 0, 2],
        ),
        ("ipv4", "\"10.0.0.1\"", &[10, 0, 0, 1]),
        ("u8", "\"200\"", &[200]),
        ("u16", "\"1500\"", &[0x05, 0xdc]),
        ("u32", "\"86400\"", &[0, 1, 0x51, 0x80]),
        ("bool", "\"true\"", &[1]),
        ("string", "\"http://boot/x.ipxe\"", b"http://boot/x.ipxe"),
        ("hex", "\"de:ad:be:ef\"", &[0xde, 0xad, 0xbe, 0xef]),
    ];
    for (kind, value, want) in cases {
        let t = subnet_with(&option("subnet", "150", kind, value));
        let s = &parse(&t).unwrap().subnets[0];
        assert_eq!(
            s.options,
            [CustomOption {
                code: 150,
                data: want.to_vec()
            }],
            "{kind}"
        );
    }
    // Sorted by code; the dhcproto option is the same bytes.
    let t = subnet_with(&format!(
        "{}{}",
        option("subnet", "224", "u8", "\"1\""),
        option("subnet", "66", "string", "\"tftp\"")
    ));
    let s = &parse(&t).unwrap().subnets[0];
    let codes: Vec<u8> = s.options.iter().map(|o| o.code).collect();
    assert_eq!(codes, [66, 224]);
    let mut bytes = Vec::new();
    dhcproto::Encodable::encode(
        &s.options[0].to_dhcproto(),
        &mut dhcproto::Encoder::new(&mut bytes),
    )
    .unwrap();
    assert_eq!(bytes, [66, 4, b't', b'f', b't', b'p']);
}

#[test]
fn custom_option_errors() {
    // The option table starts on line 8: code 9, type 10, value 11.
    let e = |code: &str, kind: &str, value: &str| subnet_with(&option("subnet", code, kind, value));
    assert_err(
        &e("3", "ipv4", "\"10.0.0.1\""),
        9,
        "subnet[0].option[0].code",
        "option 3 (routers, from subnet.routers) is set by the server",
    );
    for code in [
        "1", "6", "12", "15", "28", "51", "53", "54", "55", "58", "59", "61", "82",
    ] {
        assert_err(
            &e(code, "u8", "\"1\""),
            9,
            "subnet[0].option[0].code",
            "is set by the server",
        );
    }
    for code in ["0", "255", "256", "-1"] {
        assert_err(
            &e(code, "u8", "\"1\""),
            9,
            "subnet[0].option[0].code",
            "not an option code (1..=254)",
        );
    }
    assert_err(
        &e("150", "int", "\"1\""),
        10,
        "subnet[0].option[0].type",
        "\"int\" is not one of \"ipv4-list\"",
    );
    assert_err(
        &e("150", "u8", "\"300\""),
        11,
        "subnet[0].option[0].value",
        "more than 255",
    );
    assert_err(
        &e("150", "ipv4", "\"10.0.0\""),
        11,
        "subnet[0].option[0].value",
        "not an IPv4 address",
    );
    assert_err(
        &e("150", "hex", "\"xyz\""),
        11,
        "subnet[0].option[0].value",
        "not hex bytes",
    );
    assert_err(
        &e("150", "u8", "1"),
        11,
        "subnet[0].option[0].value",
        "invalid type: integer `1`, expected a string",
    );
    assert_err(
        &e("\"150\"", "u8", "\"1\""),
        9,
        "subnet[0].option[0].code",
        "invalid type",
    );
    let t = subnet_with(&format!(
        "{}{}",
        option("subnet", "150", "u8", "\"1\""),
        option("subnet", "150", "u8", "\"2\"")
    ));
    assert_err(
        &t,
        14,
        "subnet[0].option[1].code",
        "duplicate option 150 (also subnet[0].option[0] at stormboot.toml:9)",
    );
    // A code a key sets, when that key is set.
    let t = subnet_with(&format!(
        "mtu = 1500\n{}",
        option("subnet", "26", "u16", "\"9000\"")
    ));
    assert_err(
        &t,
        10,
        "subnet[0].option[0].code",
        "option 26 is already set by subnet[0].mtu",
    );
    parse(&subnet_with(&option("subnet", "26", "u16", "\"9000\""))).unwrap();
    let t = subnet_with(&option("subnet", "150", "u8", "\"1\"").replace("value", "data"));
    assert_err(&t, 11, "subnet[0].option[0].data", "unknown field `data`");
}

#[test]
fn reservation_options() {
    let res = reservation("52:54:00:00:00:01", "10.50.0.11", None);
    let t = format!(
        "{}{res}{}{}",
        subnet_with("mtu = 9000"),
        option("reservation", "26", "u16", "\"1500\""),
        option("reservation", "150", "ipv4", "\"10.50.0.4\"")
    );
    let c = parse(&t).unwrap();
    let r = &c.reservations[0];
    assert_eq!(
        *r.options,
        [
            CustomOption {
                code: 26,
                data: vec![0x05, 0xdc]
            },
            CustomOption {
                code: 150,
                data: vec![10, 50, 0, 4]
            }
        ]
    );
    let extra = c.subnets[0].extra_options(Some(r));
    assert_eq!(extra, *r.options, "the reservation's 26 replaces mtu");
    assert_eq!(c.subnets[0].extra_options(None)[0].data, [0x23, 0x28]);

    // The reservation's keys: mac on 10, then its option table on 13..16.
    let t = format!(
        "{}{res}{}",
        subnet_with("mtu = 9000"),
        option("reservation", "54", "ipv4", "\"10.50.0.4\"")
    );
    assert_err(
        &t,
        14,
        "reservation[0].option[0].code",
        "is set by the server",
    );
    let t = format!(
        "{}{res}{}",
        subnet_with("mtu = 9000"),
        option("reservation", "150", "ipv4", "\"x\"")
    );
    assert_err(
        &t,
        16,
        "reservation[0].option[0].value",
        "not an IPv4 address",
    );
    // CSV reservations have none.
    let c = parse_with(WITH_CSV, Some("52:54:00:00:00:02,10.50.0.12\n")).unwrap();
    assert!(c.reservations[1].options.is_empty());
}

const BOOT: &str = r##"[server]
interface = "sb0"
address = "10.50.0.1"

[boot]
tftp_root = "/usr/lib/ipxe"
artifacts_dir = "artifacts"
http_port = 8080
ipxe_user_class = "Tinkerbell"
default_profile = "rescue"

[[profile]]
name = "debian"
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0,115200n8"

[[profile]]
name = "rescue"
kernel = "http://mirror.invalid/rescue/vmlinuz"
script = """#!ipxe
echo rescue for ${mac}
"""

[[subnet]]
cidr = "10.50.0.0/24"
pool = ["10.50.0.100-10.50.0.110"]
profile = "rescue"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
profile = "debian"
"##;

#[test]
fn boot_and_profiles() {
    let c = Config::from_str(BOOT, Path::new("/etc/stormboot/stormboot.toml"))
        .expect("valid boot config");
    assert_eq!(
        c.boot.artifacts_dir,
        PathBuf::from("/etc/stormboot/artifacts"),
        "relative to the config file"
    );
    assert_eq!(c.boot.tftp_root, PathBuf::from("/usr/lib/ipxe"));
    assert_eq!(
        (c.boot.http_port, c.boot.tftp_port, c.boot.syslog_port),
        (8080, 69, 514)
    );
    assert_eq!(c.boot.ipxe_user_class, "Tinkerbell");
    assert_eq!(
        (
            c.boot.tftp_max_transfers,
            c.boot.file_cache_mb,
            c.boot.http_backlog
        ),
        (1024, 256, 4096)
    );
    let tuned = BOOT.replace(
        "http_port = 8080",
        "http_port = 8080\ntftp_max_transfers = 64\nfile_cache_mb = 0\nhttp_backlog = 512",
    );
    let t = parse(&tuned).unwrap();
    assert_eq!(
        (
            t.boot.tftp_max_transfers,
            t.boot.file_cache_mb,
            t.boot.http_backlog
        ),
        (64, 0, 512)
    );
    assert_eq!(c.profiles.len(), 2);
    assert_eq!(c.profiles[0].initrd.as_deref(), Some("initrd.img"));
    assert!(c.profiles[1].script.as_deref().unwrap().contains("${mac}"));
    assert_eq!(c.boot.default_profile, Some(1));
    assert_eq!(c.subnets[0].profile, Some(1));
    assert_eq!(c.reservations[0].profile, Some(0));
}

#[test]
fn boot_errors_name_key_and_line() {
    let bad = BOOT.replacen("profile = \"debian\"", "profile = \"centos\"", 1);
    assert_err(
        &bad,
        33,
        "reservation[0].profile",
        "no [[profile]] is named \"centos\"",
    );
    let bad = BOOT.replacen(
        "profile = \"rescue\"\n\n[[reservation]]",
        "profile = \"nope\"\n\n[[reservation]]",
        1,
    );
    assert_err(
        &bad,
        28,
        "subnet[0].profile",
        "no [[profile]] is named \"nope\"",
    );
    let bad = BOOT.replace("default_profile = \"rescue\"", "default_profile = \"gone\"");
    assert_err(&bad, 10, "boot.default_profile", "no [[profile]] is named");
    let bad = BOOT.replace("http_port = 8080", "http_port = 70000");
    assert_err(&bad, 8, "boot.http_port", "not a port");
    let bad = BOOT.replace(
        "http_port = 8080",
        "http_port = 8080\ntftp_max_transfers = 0",
    );
    assert_err(&bad, 9, "boot.tftp_max_transfers", "1 to 65536");
    let bad = BOOT.replace("http_port = 8080", "http_port = 8080\nfile_cache_mb = -1");
    assert_err(&bad, 9, "boot.file_cache_mb", "0 to 65536");
    let bad = BOOT.replace("http_port = 8080", "http_port = 8080\nhttp_backlog = 0");
    assert_err(&bad, 9, "boot.http_backlog", "1 to 65535");
    let bad = BOOT.replace("name = \"rescue\"", "name = \"debian\"");
    assert_err(&bad, 19, "profile[1].name", "also profile[0].name");
    let bad = BOOT.replace("kernel = \"vmlinuz\"", "kernel = \"\"");
    assert_err(&bad, 14, "profile[0].kernel", "is empty");
    let bad = BOOT.replace("[boot]\n", "[boot]\ntftp_rot = \"x\"\n");
    assert_err(&bad, 6, "boot.tftp_rot", "unknown field");
}

#[test]
fn ipxe_marker_longer_than_the_map_holds_is_refused() {
    use stormboot_common::maps::{Marker, MARKER_MAX};
    // The longest the XDP program's map holds is accepted, whole.
    let fits = "T".repeat(MARKER_MAX);
    let c = parse(&BOOT.replace("\"Tinkerbell\"", &format!("\"{fits}\""))).unwrap();
    assert_eq!(c.boot.ipxe_user_class, fits);
    assert_eq!(
        Marker::new(fits.as_bytes()).map(|m| m.len as usize),
        Some(MARKER_MAX)
    );
    // One more would be cut in the map and matched whole in userspace.
    let long = "T".repeat(MARKER_MAX + 1);
    assert_err(
        &BOOT.replace("\"Tinkerbell\"", &format!("\"{long}\"")),
        9,
        "boot.ipxe_user_class",
        &format!("must be 1 to {MARKER_MAX} bytes"),
    );
    assert!(Marker::new(long.as_bytes()).is_none(), "never cut");
}

#[test]
fn modes() {
    let t = MINIMAL.replace(
        "address = \"10.50.0.1\"",
        "address = \"10.50.0.1\"\nmode = \"boot-only\"",
    );
    assert_eq!(parse(&t).unwrap().server.mode, Mode::BootOnly);
    let t = MINIMAL.replace(
        "address = \"10.50.0.1\"",
        "address = \"10.50.0.1\"\nmode = \"relay\"",
    );
    assert_err(&t, 4, "server.mode", "not one of");
}

const OMAPI_KEY: &str = "[[omapi.key]]\nname = \"omkey\"\nalgorithm = \"hmac-md5\"\nsecret = \"c3Rvcm1ib290LXRlc3Qta2V5LTAxMjM0NTY3ODlhYg==\"\n";

#[test]
fn omapi_section_parses_with_a_key_and_defaults() {
    let c = parse(&with(&format!("\n[omapi]\n\n{OMAPI_KEY}"))).unwrap();
    let o = c.omapi.unwrap();
    assert_eq!(o.listen.to_string(), "127.0.0.1:7911");
    assert!(!o.allow_unsigned);
    assert_eq!(o.keys[0].name, "omkey");
    assert_eq!(o.keys[0].secret, b"stormboot-test-key-0123456789ab");
    assert!(parse(MINIMAL).unwrap().omapi.is_none());
}

#[test]
fn omapi_errors_name_the_key_and_line() {
    let base = MINIMAL.lines().count();
    // allow_unsigned on a listener others can reach.
    assert_err(
        &with("\n[omapi]\nlisten = \"0.0.0.0:7911\"\nallow_unsigned = true\n"),
        base + 4,
        "omapi.allow_unsigned",
        "only allowed on a loopback listener",
    );
    assert_err(
        &with("\n[omapi]\nallow_unsigned = false\n"),
        base + 2,
        "omapi",
        "give an [[omapi.key]]",
    );
    assert_err(
        &with(&format!(
            "\n[omapi]\n\n{}",
            OMAPI_KEY.replace("hmac-md5", "hmac-sha1")
        )),
        base + 6,
        "omapi.key[0].algorithm",
        "\"hmac-sha1\" is not",
    );
    assert_err(
        &with(&format!(
            "\n[omapi]\n\n{}",
            OMAPI_KEY.replace("c3Rv", "!!!")
        )),
        base + 7,
        "omapi.key[0].secret",
        "not base64",
    );
    assert_err(
        &with("\n[omapi]\nlisten = \"localhost\"\nallow_unsigned = true\n"),
        base + 3,
        "omapi.listen",
        "not an address:port",
    );
    let e = err(&with("\n[omapi]\nallow_unsigned = true\nsecret = \"x\"\n"));
    assert!(e.contains("secret"), "{e}");
    // Loopback: allowed without a key.
    let c = parse(&with("\n[omapi]\nallow_unsigned = true\n")).unwrap();
    assert!(c.omapi.unwrap().allow_unsigned);
}

#[test]
fn dashboard_stuck_after() {
    assert_eq!(
        parse(&with("")).unwrap().dashboard.stuck_after,
        Duration::from_secs(60)
    );
    let c = parse(&with("\n[dashboard]\nstuck_after = \"90s\"\n")).unwrap();
    assert_eq!(c.dashboard.stuck_after, Duration::from_secs(90));
    assert_err(
        &with("\n[dashboard]\nstuck_after = \"0s\"\n"),
        9,
        "dashboard.stuck_after",
        "must be positive",
    );
    assert_err(
        &with("\n[dashboard]\nstuck_after = \"soon\"\n"),
        9,
        "dashboard.stuck_after",
        "not a duration",
    );
}

#[test]
fn a_boot_lease_is_at_most_the_lease() {
    let s = &parse(&subnet_with("boot_lease_time = \"5m\""))
        .unwrap()
        .subnets[0];
    assert_eq!(s.boot_lease_time, Some(Duration::from_secs(300)));
    assert_eq!(
        s.lease_times(true),
        (
            Duration::from_secs(300),
            Duration::from_secs(150),
            Duration::from_secs(262)
        )
    );
    assert_eq!(s.lease_times(false).0, s.lease_time);
    assert_err(
        &subnet_with("lease_time = \"1h\"\nboot_lease_time = \"2h\""),
        8,
        "subnet[0].boot_lease_time",
        "outside 1m..=1h (lease_time)",
    );
    assert_err(
        &subnet_with("boot_lease_time = \"10s\""),
        7,
        "subnet[0].boot_lease_time",
        "outside",
    );
}
