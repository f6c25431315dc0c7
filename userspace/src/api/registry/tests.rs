//! The registry's rules, against a small configuration.

use std::path::Path;
use std::sync::Arc;

use super::*;

fn cfg() -> Config {
    Config::from_str(
        r#"
[server]
interface = "sb0"
address = "10.0.0.1"
[[subnet]]
cidr = "10.0.0.0/24"
routers = ["10.0.0.254"]
[[subnet]]
cidr = "10.1.0.0/24"
[[profile]]
name = "linux"
kernel = "vmlinuz"
[[reservation]]
mac = "02:00:00:00:00:01"
ip = "10.0.0.50"
"#,
        Path::new("t.toml"),
    )
    .unwrap()
}

fn spec(mac: &str, ip: &str) -> ReservationSpec {
    ReservationSpec {
        mac: mac.into(),
        ip: ip.into(),
        ..Default::default()
    }
}

fn registry() -> Registry {
    let mut c = cfg();
    let file = std::mem::take(&mut c.reservations);
    Registry::new(Arc::new(c), file)
}

fn field(r: Result<Checked, FieldError>) -> (ErrorKind, String) {
    let e = r.unwrap_err();
    (e.kind, e.field.unwrap_or_default())
}

#[test]
fn the_config_validators_rules_name_the_field() {
    let r = registry();
    let check = |s: &ReservationSpec| field(r.check(s, Mode::Create, None));
    assert_eq!(
        check(&spec("", "10.0.0.5")),
        (ErrorKind::Invalid, "mac".into())
    );
    assert_eq!(
        check(&spec("zz", "10.0.0.5")),
        (ErrorKind::Invalid, "mac".into())
    );
    assert_eq!(
        check(&spec("01:00:5e:00:00:01", "10.0.0.5")),
        (ErrorKind::Invalid, "mac".into())
    );
    for ip in [
        "x",
        "192.168.1.1",
        "10.0.0.0",
        "10.0.0.255",
        "10.0.0.1",
        "10.0.0.254",
    ] {
        assert_eq!(
            check(&spec("02:00:00:00:00:02", ip)),
            (ErrorKind::Invalid, "ip".into()),
            "{ip}"
        );
    }
    let mut s = spec("02:00:00:00:00:02", "10.0.0.5");
    s.hostname = Some("bad_name".into());
    assert_eq!(check(&s), (ErrorKind::Invalid, "hostname".into()));
    s.hostname = Some("node-2".into());
    s.profile = Some("windows".into());
    let e = r.check(&s, Mode::Create, None).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("profile"));
    assert!(e.message.contains("linux"), "{}", e.message);
    s.profile = Some("linux".into());
    s.options = vec![OptionSpec {
        code: 66,
        kind: "string".into(),
        value: "tftp".into(),
    }];
    s.options.push(OptionSpec {
        code: 53,
        kind: "u8".into(),
        value: "1".into(),
    });
    assert_eq!(check(&s), (ErrorKind::Invalid, "options[1].code".into()));
    s.options[1] = OptionSpec {
        code: 150,
        kind: "u16".into(),
        value: "70000".into(),
    };
    assert_eq!(check(&s), (ErrorKind::Invalid, "options[1].value".into()));
    s.options[1].kind = "float".into();
    assert_eq!(check(&s), (ErrorKind::Invalid, "options[1].type".into()));
    s.options.pop();
    let c = r.check(&s, Mode::Create, None).unwrap();
    assert_eq!(c.entry.reservation.subnet, 0);
    assert_eq!(c.entry.reservation.profile, Some(0));
    assert_eq!(c.entry.reservation.options[0].data, b"tftp");
    // A profile gives one reply per boot variant.
    assert!(c.rendered.templates.blocks.len() > 1);
    assert_eq!(r.spec(&c.entry).mac, "02:00:00:00:00:02");
}

#[test]
fn duplicates_and_config_entries_are_conflicts() {
    let mut r = registry();
    // The config's own: read-only.
    let e = r
        .check(&spec("02:00:00:00:00:01", "10.0.0.60"), Mode::Upsert, None)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Conflict, Some("mac"))
    );
    assert!(e.message.contains("t.toml:"), "{}", e.message);
    assert_eq!(
        r.check_remove([2, 0, 0, 0, 0, 1]).unwrap_err().kind,
        ErrorKind::Conflict
    );
    // The config's IP.
    assert_eq!(
        field(r.check(&spec("02:00:00:00:00:02", "10.0.0.50"), Mode::Create, None)),
        (ErrorKind::Conflict, "ip".into())
    );
    let c = r
        .check(&spec("02:00:00:00:00:02", "10.1.0.9"), Mode::Create, None)
        .unwrap();
    assert_eq!(c.entry.reservation.subnet, 1);
    r.insert(c.entry);
    assert_eq!(
        field(r.check(&spec("02:00:00:00:00:02", "10.1.0.10"), Mode::Create, None)),
        (ErrorKind::Conflict, "mac".into())
    );
    // Replacing keeps its own IP free for itself and releases the old one.
    let c = r
        .check(
            &spec("", "10.1.0.10"),
            Mode::Replace,
            Some([2, 0, 0, 0, 0, 2]),
        )
        .unwrap();
    r.insert(c.entry);
    r.insert(
        r.check(&spec("02:00:00:00:00:03", "10.1.0.9"), Mode::Create, None)
            .unwrap()
            .entry,
    );
    assert_eq!(
        field(r.check(&spec("02:00:00:00:00:09", "10.1.0.5"), Mode::Replace, None)),
        (ErrorKind::NotFound, "mac".into())
    );
    assert_eq!(
        field(r.check(
            &spec("02:00:00:00:00:03", "10.1.0.5"),
            Mode::Replace,
            Some([2, 0, 0, 0, 0, 2])
        )),
        (ErrorKind::Invalid, "mac".into())
    );
    assert!(r.remove([2, 0, 0, 0, 0, 2]).is_some());
    assert!(r
        .check(&spec("02:00:00:00:00:04", "10.1.0.10"), Mode::Create, None)
        .is_ok());
}

#[test]
fn bulk_is_checked_as_a_whole_and_errors_carry_the_index() {
    let mut r = registry();
    let e = r
        .check_bulk(&[
            spec("02:00:00:00:00:02", "10.0.0.5"),
            spec("02:00:00:00:00:03", "10.0.0.5"),
        ])
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("[1].ip"));
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        e.message,
        "10.0.0.5 is reserved for 02:00:00:00:00:02 (entry [0])"
    );
    // A MAC twice in one request clashes as a MAC already reserved does.
    let e = r
        .check_bulk(&[
            spec("02:00:00:00:00:02", "10.0.0.5"),
            spec("02:00:00:00:00:02", "10.0.0.6"),
        ])
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("[1].mac"));
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        e.message,
        "duplicate MAC 02:00:00:00:00:02 (also entry [0])"
    );
    let e = r
        .check_bulk(&[
            spec("02:00:00:00:00:02", "10.0.0.5"),
            spec("02:00:00:00:00:03", "nope"),
        ])
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("[1].ip"));
    for c in r
        .check_bulk(&[
            spec("02:00:00:00:00:02", "10.0.0.5"),
            spec("02:00:00:00:00:03", "10.0.0.6"),
        ])
        .unwrap()
    {
        r.insert(c.entry);
    }
    // Two machines swap addresses in one import.
    let swapped = r
        .check_bulk(&[
            spec("02:00:00:00:00:02", "10.0.0.6"),
            spec("02:00:00:00:00:03", "10.0.0.5"),
        ])
        .unwrap();
    assert!(swapped.iter().all(|c| c.replaces.is_some()));
}

/// A bulk checked in parallel, in small chunks, accepts what one thread
/// accepts and stops at the entry one thread stops at, with its error.
#[test]
fn a_parallel_bulk_check_is_the_one_thread_check() {
    let r = registry();
    let specs: Vec<ReservationSpec> = (0..2000u32)
        .map(|i| {
            let mut s = spec(
                &format!("02:01:00:00:{:02x}:{:02x}", i >> 8, i & 255),
                &format!("10.1.0.{}", 1 + i % 250),
            );
            s.hostname = Some(format!("n{i}"));
            s
        })
        .collect();
    let both = |specs: &[ReservationSpec]| {
        let [one, many] = [1, 3].map(|threads| {
            r.check_bulk_on(specs, threads, 16).map(|c| {
                c.iter()
                    .map(|c| {
                        (
                            c.entry.reservation.clone(),
                            c.rendered.templates.blocks.len(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        });
        assert_eq!(many, one);
        one
    };
    let fine = &specs[..250];
    assert_eq!(both(fine).unwrap().len(), 250);
    // Entry 250 takes entry 0's address (and entry 1500 is refused alone).
    let mut bad = specs.clone();
    bad[1500].hostname = Some("no_such_name".into());
    let e = both(&bad).unwrap_err();
    assert_eq!(
        (e.field.as_deref(), e.kind),
        (Some("[250].ip"), ErrorKind::Conflict)
    );
    assert_eq!(
        e.message,
        "10.1.0.1 is reserved for 02:01:00:00:00:00 (entry [0])"
    );
    let mut late = specs[..250].to_vec();
    late.extend(specs[1400..1600].iter().cloned());
    late[249].mac = late[10].mac.clone();
    let e = both(&late).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("[249].mac"));
    let mut own = specs[..250].to_vec();
    own[200].hostname = Some("no_such_name".into());
    own[230].ip = own[3].ip.clone();
    let e = both(&own).unwrap_err();
    assert_eq!(
        (e.field.as_deref(), e.kind),
        (Some("[200].hostname"), ErrorKind::Invalid)
    );
}

#[test]
fn pages_follow_the_cursor_and_filters() {
    let mut r = registry();
    for i in 2..=9u8 {
        let mut s = spec(&format!("02:00:00:00:00:{i:02x}"), &format!("10.1.0.{i}"));
        s.hostname = Some(format!("node{i}"));
        if i % 2 == 0 {
            s.profile = Some("linux".into());
        }
        r.insert(r.check(&s, Mode::Create, None).unwrap().entry);
    }
    let q = |limit, after: Option<&str>| ReservationQuery {
        limit,
        after: after.map(Into::into),
        ..Default::default()
    };
    let p = r.page(&q(Some(4), None)).unwrap();
    assert_eq!(p.total, 9);
    assert_eq!(p.items[0].source, Source::Config);
    assert_eq!(p.items[0].origin, "t.toml:14");
    let next = p.next.clone().unwrap();
    assert_eq!(next, "02:00:00:00:00:04");
    let p2 = r.page(&q(Some(4), Some(&next))).unwrap();
    assert_eq!(p2.items[0].spec.mac, "02:00:00:00:00:05");
    let p3 = r.page(&q(Some(4), p2.next.as_deref())).unwrap();
    assert_eq!(p3.items.len(), 1);
    assert!(p3.next.is_none());

    let filtered = |f: ReservationQuery| r.page(&f).unwrap();
    let p = filtered(ReservationQuery {
        source: Some("api".into()),
        profile: Some("linux".into()),
        ..Default::default()
    });
    assert_eq!(p.total, 4);
    let p = filtered(ReservationQuery {
        subnet: Some("10.0.0.0/24".into()),
        ..Default::default()
    });
    assert_eq!(p.total, 1);
    let p = filtered(ReservationQuery {
        hostname: Some("node7".into()),
        ..Default::default()
    });
    assert_eq!(p.items[0].spec.ip, "10.1.0.7");
    for (bad, name) in [
        (
            ReservationQuery {
                source: Some("file".into()),
                ..Default::default()
            },
            "source",
        ),
        (
            ReservationQuery {
                subnet: Some("10.9.0.0/24".into()),
                ..Default::default()
            },
            "subnet",
        ),
        (q(Some(0), None), "limit"),
        (q(Some(MAX_LIMIT + 1), None), "limit"),
        (q(None, Some("x")), "after"),
    ] {
        assert_eq!(r.page(&bad).unwrap_err().field.as_deref(), Some(name));
    }
}

#[test]
fn omapi_names_are_omapis_unique_and_make_the_source() {
    let mut r = registry();
    let named = |mac: &str, ip: &str, name: &str| ReservationSpec {
        omapi_name: Some(name.into()),
        boot_file: Some("pxelinux.0".into()),
        next_server: Some("10.0.0.7".into()),
        ..spec(mac, ip)
    };
    // The REST API may not set an OMAPI name.
    assert_eq!(
        field(r.check(
            &named("02:00:00:00:00:09", "10.0.0.9", "h9"),
            Mode::Create,
            None
        )),
        (ErrorKind::Invalid, "omapi_name".into())
    );
    let c = r
        .check_as(
            &named("02:00:00:00:00:09", "10.0.0.9", "h9"),
            Mode::Create,
            None,
            Writer::Omapi,
        )
        .unwrap();
    assert_eq!(c.entry.source, Source::Omapi);
    assert_eq!(c.entry.reservation.boot_file.as_deref(), Some("pxelinux.0"));
    assert_eq!(
        c.entry.reservation.next_server,
        Some(Ipv4Addr::new(10, 0, 0, 7))
    );
    r.insert(c.entry);
    assert_eq!(
        r.by_omapi_name("h9").map(|e| e.reservation.mac),
        Some([2, 0, 0, 0, 0, 9])
    );
    // Another machine may not take the name; a name outside Foreman's
    // characters is refused.
    let other = r.check_as(
        &named("02:00:00:00:00:0a", "10.0.0.10", "h9"),
        Mode::Create,
        None,
        Writer::Omapi,
    );
    assert_eq!(field(other), (ErrorKind::Conflict, "omapi_name".into()));
    let spaced = r.check_as(
        &named("02:00:00:00:00:0a", "10.0.0.10", "a b"),
        Mode::Create,
        None,
        Writer::Omapi,
    );
    assert_eq!(field(spaced), (ErrorKind::Invalid, "omapi_name".into()));
    let bad_ns = ReservationSpec {
        next_server: Some("boot.example".into()),
        ..spec("02:00:00:00:00:0b", "10.0.0.11")
    };
    assert_eq!(
        field(r.check(&bad_ns, Mode::Create, None)),
        (ErrorKind::Invalid, "next_server".into())
    );
    // Removed: the name is free again.
    r.remove([2, 0, 0, 0, 0, 9]);
    assert!(r.by_omapi_name("h9").is_none());
}

#[test]
fn a_label_is_checked_trimmed_and_kept() {
    let mut r = registry();
    let mut s = spec("02:00:00:00:00:02", "10.0.0.5");
    s.label = Some("a,b".into());
    assert_eq!(
        field(r.check(&s, Mode::Create, None)),
        (ErrorKind::Invalid, "label".into())
    );
    s.label = Some(" rack-7 ".into());
    let c = r.check(&s, Mode::Create, None).unwrap();
    assert_eq!(c.entry.reservation.label.as_deref(), Some("rack-7"));
    let e = c.entry.clone();
    r.insert(c.entry);
    assert_eq!(r.spec(&e).label.as_deref(), Some("rack-7"));
}
