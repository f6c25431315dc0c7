//! The entry paths agree: the same reservation is refused by the config
//! loader (file:line and key), by the API (field and status, one at a time
//! or in bulk) and skipped by the importer (its line), each in its own
//! words, because all three ask the one rule.

use std::path::Path;
use std::sync::Arc;

use crate::api::registry::{ErrorKind, Mode, Registry};
use crate::api::types::ReservationSpec;
use crate::config::{Config, ConfigError};
use crate::import::{import, Format};

/// The server, one subnet with a router, and a reservation already made.
const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.0.0.1"
[[subnet]]
cidr = "10.0.0.0/24"
routers = ["10.0.0.254"]
[[reservation]]
mac = "02:00:00:00:00:01"
ip = "10.0.0.50"
"#;

/// The same network in ISC dhcpd's words.
const DHCPD: &str = "subnet 10.0.0.0 netmask 255.255.255.0 {\n\
                     \x20 option routers 10.0.0.254;\n\
                     }\n\
                     host one { hardware ethernet 02:00:00:00:00:01; fixed-address 10.0.0.50; }\n";

/// Line of the candidate's MAC in the config, and of its host in dhcpd.conf.
const CONFIG_LINE: usize = 11;
const DHCPD_LINE: usize = 5;

fn config_with(mac: &str, ip: &str, hostname: Option<&str>) -> Result<Config, ConfigError> {
    let host = hostname.map_or(String::new(), |h| format!("hostname = \"{h}\"\n"));
    let text = format!("{CONFIG}[[reservation]]\nmac = \"{mac}\"\nip = \"{ip}\"\n{host}");
    Config::from_str(&text, Path::new("t.toml"))
}

fn registry() -> Registry {
    let mut cfg = Config::from_str(CONFIG, Path::new("t.toml")).unwrap();
    let file = std::mem::take(&mut cfg.reservations);
    Registry::new(Arc::new(cfg), file)
}

fn spec(mac: &str, ip: &str, hostname: Option<&str>) -> ReservationSpec {
    ReservationSpec {
        mac: mac.into(),
        ip: ip.into(),
        hostname: hostname.map(String::from),
        ..Default::default()
    }
}

fn dhcpd_with(mac: &str, ip: &str, hostname: Option<&str>) -> crate::import::Import {
    let host = hostname.map_or(String::new(), |h| format!(" option host-name \"{h}\";"));
    let text =
        format!("{DHCPD}host two {{ hardware ethernet {mac}; fixed-address {ip};{host} }}\n");
    import(Format::IscDhcpd, &text).unwrap()
}

#[test]
fn a_bad_reservation_is_refused_by_every_path() {
    let cases = [
        ("03:00:00:00:00:02", "10.0.0.60", "mac", ErrorKind::Invalid),
        ("02:00:00:00:00:01", "10.0.0.60", "mac", ErrorKind::Conflict),
        ("02:00:00:00:00:02", "10.0.0.50", "ip", ErrorKind::Conflict),
        ("02:00:00:00:00:02", "192.168.9.9", "ip", ErrorKind::Invalid),
        ("02:00:00:00:00:02", "10.0.0.0", "ip", ErrorKind::Invalid),
        ("02:00:00:00:00:02", "10.0.0.255", "ip", ErrorKind::Invalid),
        ("02:00:00:00:00:02", "10.0.0.254", "ip", ErrorKind::Invalid),
    ];
    let r = registry();
    for (mac, ip, field, kind) in cases {
        let what = format!("{mac} {ip}");

        let e = config_with(mac, ip, None).unwrap_err().to_string();
        let line = if field == "mac" {
            CONFIG_LINE
        } else {
            CONFIG_LINE + 1
        };
        assert!(
            e.starts_with(&format!("t.toml:{line}: reservation[1].{field}: ")),
            "{what}: config says {e}"
        );

        let e = r
            .check(&spec(mac, ip, None), Mode::Create, None)
            .unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (kind, Some(field)),
            "{what}: {e:?}"
        );
        let e = r.check_bulk(&[spec(mac, ip, None)]).unwrap_err();
        let bulk_field = format!("[0].{field}");
        assert_eq!(
            e.field.as_deref(),
            Some(bulk_field.as_str()),
            "{what}: {e:?}"
        );

        let imp = dhcpd_with(mac, ip, None);
        assert_eq!(imp.reservations.len(), 1, "{what}: imported {imp:?}");
        assert!(
            imp.skipped
                .iter()
                .any(|s| s.line == DHCPD_LINE && s.reason.starts_with(mac)),
            "{what}: skipped {:?}",
            imp.skipped
        );
    }
}

#[test]
fn a_good_reservation_is_accepted_by_every_path() {
    let (mac, ip) = ("02:00:00:00:00:02", "10.0.0.60");
    let cfg = config_with(mac, ip, Some("node2")).unwrap();
    assert_eq!(cfg.reservations.len(), 2);
    let c = registry()
        .check(&spec(mac, ip, Some("node2")), Mode::Create, None)
        .unwrap();
    assert_eq!(c.entry.reservation.hostname.as_deref(), Some("node2"));
    let imp = dhcpd_with(mac, ip, Some("node2"));
    assert_eq!(imp.reservations.len(), 2, "{:?}", imp.skipped);
    assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
}

/// A bad host name refuses the reservation in the file and the API; the
/// importer, whose output must load, keeps the machine without the name
/// and says so at the line.
#[test]
fn a_bad_host_name_is_refused_or_left_out_with_a_word() {
    let (mac, ip) = ("02:00:00:00:00:02", "10.0.0.60");
    let e = config_with(mac, ip, Some("rack_1"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:13: reservation[1].hostname: "), "{e}");
    let e = registry()
        .check(&spec(mac, ip, Some("rack_1")), Mode::Create, None)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Invalid, Some("hostname"))
    );
    let imp = dhcpd_with(mac, ip, Some("rack_1"));
    assert_eq!(imp.reservations.len(), 2);
    assert_eq!(imp.reservations[1].hostname, None);
    assert!(
        imp.skipped
            .iter()
            .any(|s| s.line == DHCPD_LINE && s.reason.contains("host name \"rack_1\" left out")),
        "{:?}",
        imp.skipped
    );
}

/// The server's own address: the importer does not know the server (the
/// other server's file does not say which address stormboot will have), so
/// only the paths that do refuse it.
#[test]
fn the_servers_address_is_refused_where_the_server_is_known() {
    let (mac, ip) = ("02:00:00:00:00:02", "10.0.0.1");
    let e = config_with(mac, ip, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.toml:12: reservation[1].ip: 10.0.0.1 is server.address"
    );
    let e = registry()
        .check(&spec(mac, ip, None), Mode::Create, None)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Invalid, Some("ip"))
    );
    assert_eq!(e.message, "10.0.0.1 is server.address");
}
