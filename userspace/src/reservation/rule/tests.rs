//! Each refusal of the rule, and what an accepted candidate becomes.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::config::Config;

/// Two subnets, listed out of address order so the lookup is not a scan
/// that happens to stop at the first.
fn network() -> Network {
    let cfg = Config::from_str(
        r#"
[server]
interface = "sb0"
address = "10.1.0.1"
[[subnet]]
cidr = "10.1.0.0/24"
routers = ["10.1.0.254"]
[[subnet]]
cidr = "10.0.0.0/24"
[[profile]]
name = "linux"
kernel = "vmlinuz"
[[profile]]
name = "rescue"
kernel = "vmlinuz"
"#,
        Path::new("t.toml"),
    )
    .unwrap();
    Network::of_config(cfg.server.address, &cfg.subnets, &cfg.profiles)
}

/// A book of (mac, ip, origin) entries.
#[derive(Default)]
struct Entries(HashMap<[u8; 6], (Ipv4Addr, &'static str)>);

impl Rest for Entries {
    fn origin_of(&self, mac: &[u8; 6]) -> Option<Cow<'_, str>> {
        self.0.get(mac).map(|(_, o)| Cow::Borrowed(*o))
    }

    fn holder_of(&self, ip: Ipv4Addr) -> Option<([u8; 6], Cow<'_, str>)> {
        self.0
            .iter()
            .find(|(_, (i, _))| *i == ip)
            .map(|(m, (_, o))| (*m, Cow::Borrowed(*o)))
    }
}

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

fn candidate(ip: &str) -> Candidate<'static> {
    Candidate {
        mac: MAC,
        ip: ip.parse().unwrap(),
        hostname: None,
        profile: None,
        options: &[],
    }
}

fn refusal(c: &Candidate) -> Refusal {
    check(c, &network(), &Entries::default()).unwrap_err()
}

fn opt(code: i64, kind: &'static str, value: &'static str) -> OptionText<'static> {
    OptionText { code, kind, value }
}

#[test]
fn a_good_candidate_gets_its_subnet_profile_and_sorted_options() {
    let options = [opt(150, "ipv4", "10.0.0.2"), opt(66, "string", "tftp")];
    let c = Candidate {
        hostname: Some("node-9.example"),
        profile: Some("rescue"),
        options: &options,
        ..candidate("10.0.0.9")
    };
    let ok = check(&c, &network(), &Entries::default()).unwrap();
    assert_eq!(ok.subnet, Some(1));
    assert_eq!(ok.profile, Some(1));
    let codes: Vec<u8> = ok.options.iter().map(|o| o.code).collect();
    assert_eq!(codes, [66, 150]);
    assert_eq!(ok.options[0].data, b"tftp");
    assert_eq!(ok.options[1].data, [10, 0, 0, 2]);
}

#[test]
fn group_and_zero_macs_are_refused() {
    for mac in [[1, 0, 0, 0, 0, 9], [0xff; 6], [0; 6]] {
        let r = refusal(&Candidate {
            mac,
            ..candidate("10.0.0.9")
        });
        assert_eq!(r, Refusal::MacNotUnicast { mac });
        assert_eq!(r.field(), Field::Mac);
        assert!(!r.is_conflict());
        assert!(
            r.to_string().ends_with("is not a unicast MAC address"),
            "{r}"
        );
    }
}

#[test]
fn addresses_the_network_cannot_give_are_refused() {
    let cases = [
        ("192.168.0.9", "192.168.0.9 is outside every subnet"),
        ("10.0.0.0", "10.0.0.0 is the network address of 10.0.0.0/24"),
        (
            "10.1.0.255",
            "10.1.0.255 is the broadcast address of 10.1.0.0/24",
        ),
        ("10.1.0.1", "10.1.0.1 is server.address"),
        ("10.1.0.254", "10.1.0.254 is a router of 10.1.0.0/24"),
    ];
    for (ip, message) in cases {
        let r = refusal(&candidate(ip));
        assert_eq!(r.to_string(), message);
        assert_eq!(r.field(), Field::Ip);
        assert!(!r.is_conflict());
    }
}

#[test]
fn the_rest_of_the_book_makes_mac_and_address_conflicts() {
    let other = [2, 0, 0, 0, 0, 1];
    let mut book = Entries::default();
    book.0
        .insert(other, ("10.0.0.5".parse().unwrap(), "t.toml:20"));

    let r = check(
        &Candidate {
            mac: other,
            ..candidate("10.0.0.6")
        },
        &network(),
        &book,
    )
    .unwrap_err();
    assert_eq!(
        r,
        Refusal::MacTaken {
            mac: other,
            origin: "t.toml:20".into()
        }
    );
    assert_eq!(
        r.to_string(),
        "duplicate MAC 02:00:00:00:00:01 (also t.toml:20)"
    );
    assert!(r.is_conflict());
    assert_eq!(r.field(), Field::Mac);

    let r = check(&candidate("10.0.0.5"), &network(), &book).unwrap_err();
    assert_eq!(
        r,
        Refusal::IpTaken {
            ip: "10.0.0.5".parse().unwrap(),
            holder: other,
            origin: "t.toml:20".into()
        }
    );
    assert_eq!(r.to_string(), "duplicate IP 10.0.0.5 (also t.toml:20)");
    assert!(r.is_conflict());
    assert_eq!(r.field(), Field::Ip);

    assert!(check(&candidate("10.0.0.6"), &network(), &book).is_ok());
}

#[test]
fn a_host_name_must_be_a_dns_name() {
    for bad in ["", "a_b", "-a", "a..b", &"x".repeat(64)] {
        let r = refusal(&Candidate {
            hostname: Some(bad),
            ..candidate("10.0.0.9")
        });
        assert!(matches!(r, Refusal::Hostname { .. }), "{bad:?}: {r:?}");
        assert_eq!(r.field(), Field::Hostname);
    }
}

#[test]
fn a_profile_must_exist_and_the_refusal_lists_those_that_do() {
    let r = refusal(&Candidate {
        profile: Some("windows"),
        ..candidate("10.0.0.9")
    });
    assert_eq!(r.field(), Field::Profile);
    assert_eq!(
        r.to_string(),
        "no [[profile]] is named \"windows\" (the configuration has: linux, rescue)"
    );
}

#[test]
fn options_are_refused_naming_their_index_and_part() {
    let cases: [(&[OptionText], usize, OptionPart, &str); 7] = [
        (
            &[opt(0, "u8", "1")],
            0,
            OptionPart::Code,
            "0 is not an option code",
        ),
        (
            &[opt(255, "u8", "1")],
            0,
            OptionPart::Code,
            "255 is not an option code",
        ),
        (
            &[opt(300, "u8", "1")],
            0,
            OptionPart::Code,
            "300 is not an option code",
        ),
        (
            &[opt(66, "string", "a"), opt(51, "u32", "60")],
            1,
            OptionPart::Code,
            "option 51 (lease time, from subnet.lease_time) is set by the server",
        ),
        (
            &[
                opt(66, "string", "a"),
                opt(67, "string", "b"),
                opt(66, "string", "c"),
            ],
            2,
            OptionPart::Code,
            "duplicate option 66",
        ),
        (
            &[opt(66, "text", "a")],
            0,
            OptionPart::Type,
            "\"text\" is not one of",
        ),
        (
            &[opt(150, "ipv4", "10.0.0")],
            0,
            OptionPart::Value,
            "10.0.0",
        ),
    ];
    for (options, index, part, message) in cases {
        let r = refusal(&Candidate {
            options,
            ..candidate("10.0.0.9")
        });
        assert_eq!(r.field(), Field::Option { index, part }, "{r}");
        assert!(r.to_string().contains(message), "{r}");
        assert!(!r.is_conflict());
    }
    let dup = options(&[opt(66, "string", "a"), opt(66, "string", "b")]).unwrap_err();
    assert_eq!(dup.reason, OptionReason::Duplicate { code: 66, first: 0 });
}

#[test]
fn field_names_follow_the_writers_list_name() {
    let f = Field::Option {
        index: 2,
        part: OptionPart::Value,
    };
    assert_eq!(f.name("option"), "option[2].value");
    assert_eq!(f.name("options"), "options[2].value");
    assert_eq!(Field::Ip.name("options"), "ip");
}

#[test]
fn an_import_without_subnets_leaves_the_address_to_the_target() {
    let bare = Network::of_import(Vec::new(), true);
    let ok = check(&candidate("192.168.0.9"), &bare, &Entries::default()).unwrap();
    assert_eq!(ok.subnet, None);

    let subnet = || vec![("10.0.0.0/24".parse().unwrap(), vec![])];
    let net = || Network::of_import(subnet(), true);
    assert_eq!(
        check(&candidate("192.168.0.9"), &net(), &Entries::default()).unwrap_err(),
        Refusal::OutsideSubnets {
            ip: "192.168.0.9".parse().unwrap()
        }
    );
    assert_eq!(
        check(&candidate("10.0.0.9"), &net(), &Entries::default())
            .unwrap()
            .subnet,
        Some(0)
    );
    // Some of the input's networks are unknown: outside is not refused,
    // the known subnet's addresses still are.
    let part = Network::of_import(subnet(), false);
    let ok = check(&candidate("192.168.0.9"), &part, &Entries::default()).unwrap();
    assert_eq!(ok.subnet, None);
    assert_eq!(
        check(&candidate("10.0.0.255"), &part, &Entries::default())
            .unwrap_err()
            .field(),
        Field::Ip
    );
    // The server is unknown, and so are the profiles.
    assert!(check(&candidate("10.1.0.1"), &bare, &Entries::default()).is_ok());
    let r = check(
        &Candidate {
            profile: Some("linux"),
            ..candidate("10.0.0.9")
        },
        &net(),
        &Entries::default(),
    )
    .unwrap_err();
    assert_eq!(r.field(), Field::Profile);
}
