//! `stormboot print-config --for <peer>` run for real: each peer DHCP server
//! (ISC dhcpd 4.4, Kea 2.2, dnsmasq) is started in the server namespace with
//! its user's own part (interface, subnet, pool: what the snippet says
//! stays theirs) plus exactly the lines print-config prints, beside
//! stormboot in boot-only mode; then PXE clients of each architecture and
//! iPXE ask it, and must be sent stormboot's boot file or script URL, the
//! same one stormboot itself would give (`bootfile::boot_spec`).
//!
//! The client is busybox udhcpc with option 60, 93 and 77 (and 175, which
//! iPXE always sends) set on its command line. Windows DHCP cannot run
//! here: see its snippet's note in the README.
//!
//! Privileged (namespaces): run as root.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use stormboot_testbed::daemon::Lab;
use stormboot_testbed::{require_root, Side, SERVER_IF};

const MAC: &str = "52:54:00:00:00:31";

/// boot-only, with a profile for every machine and an IA32 file.
const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"
mode = "boot-only"

[[subnet]]
cidr = "10.50.0.0/24"
"#;

/// One client kind: what it sends, and the boot file it must be given
/// (None: no boot file at all, plain DHCP).
struct Case {
    what: &'static str,
    args: &'static [&'static str],
    file: Option<&'static str>,
    /// The next server is checked for TFTP files; a URL needs none.
    tftp: bool,
}

const SCRIPT_URL: &str = "http://10.50.0.1/${net0/mac}/auto.ipxe";

const CASES: &[Case] = &[
    Case {
        what: "PXE BIOS (93 = 0)",
        args: &["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"],
        file: Some("undionly.kpxe"),
        tftp: true,
    },
    Case {
        what: "PXE UEFI x64 (93 = 7)",
        args: &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"],
        file: Some("ipxe.efi"),
        tftp: true,
    },
    Case {
        what: "PXE UEFI x64 (93 = 9)",
        args: &["-V", "PXEClient:Arch:00009:UNDI:003016", "-x", "0x5d:0009"],
        file: Some("ipxe.efi"),
        tftp: true,
    },
    Case {
        what: "PXE UEFI IA32 (93 = 6)",
        args: &["-V", "PXEClient:Arch:00006:UNDI:003016", "-x", "0x5d:0006"],
        file: Some("ipxe-ia32.efi"),
        tftp: true,
    },
    Case {
        what: "iPXE on UEFI x64 (77 = iPXE, 175)",
        args: &[
            "-V",
            "PXEClient:Arch:00007:UNDI:003016",
            "-x",
            "0x5d:0007",
            "-x",
            "0x4d:69505845",
            "-x",
            "0xaf:b00101",
        ],
        file: Some(SCRIPT_URL),
        tftp: false,
    },
    Case {
        what: "iPXE on BIOS (77 = iPXE, 175)",
        args: &[
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x5d:0000",
            "-x",
            "0x4d:69505845",
            "-x",
            "0xaf:b00101",
        ],
        file: Some(SCRIPT_URL),
        tftp: false,
    },
];

/// A lab with stormboot's boot-only config written (with `boot_extra` in
/// its [boot]) and serving; the snippet print-config prints for `peer`.
fn lab_with_snippet(name: &str, peer: &str, boot_extra: &str) -> (Lab, String) {
    require_root();
    let mut lab = Lab::new(name, Some(MAC));
    let root = lab.scratch.path("ipxe");
    fs::create_dir_all(&root).unwrap();
    let config = format!(
        "{CONFIG}\n[boot]\ntftp_root = \"{}\"\ndefault_profile = \"debian\"\n{boot_extra}\n\
         [[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\n",
        root.display()
    );
    lab.write_config(&config);
    let snippet = lab.print_config(peer);
    lab.scratch.write(&format!("{peer}.snippet"), &snippet);
    let stats = lab.serve();
    assert!(
        stats["dataplane"]
            .as_str()
            .unwrap_or("")
            .contains("boot-only"),
        "{stats}"
    );
    (lab, snippet)
}

/// Every case against the peer now running; `log` is its log file.
fn check_cases(lab: &Lab, peer: &str, log: &str) {
    let mut wrong = Vec::new();
    for case in CASES {
        let mut args: Vec<&str> = case.args.to_vec();
        args.extend(["-t", "4", "-T", "1"]);
        let got: BTreeMap<String, String> = lab.run_udhcpc(&args).unwrap_or_else(|e| {
            panic!(
                "{peer}: {} got no lease: {e}\n--- {peer} ---\n{}",
                case.what,
                lab.scratch.read(log)
            )
        });
        let file = got.get("boot_file").cloned().unwrap_or_default();
        let want = case.file.unwrap_or("");
        if file != want {
            wrong.push(format!("{}: boot file {file:?}, want {want:?}", case.what));
        }
        if case.tftp && got.get("siaddr").map(String::as_str) != Some("10.50.0.1") {
            wrong.push(format!(
                "{}: next server {:?}, want 10.50.0.1",
                case.what,
                got.get("siaddr")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{peer} configured by `print-config --for {peer}` answers wrongly:\n  {}\n--- snippet ---\n{}\n--- {peer} ---\n{}",
        wrong.join("\n  "),
        lab.scratch.read(&format!("{peer}.snippet")),
        lab.scratch.read(log)
    );
}

const IA32: &str = "efi_ia32_file = \"ipxe-ia32.efi\"\n";

#[test]
fn isc_dhcpd_configured_by_print_config_boots_every_firmware() {
    let (mut lab, snippet) = lab_with_snippet("peer-dhcpd", "isc-dhcpd", IA32);
    // The user's own part: their subnet and range (and no ping before
    // each offer, which only slows the test).
    let conf = lab.scratch.write(
        "dhcpd.conf",
        &format!(
            "authoritative;\nddns-update-style none;\nping-check false;\n\
             subnet 10.50.0.0 netmask 255.255.255.0 {{\n  range 10.50.0.100 10.50.0.150;\n}}\n\
             {snippet}"
        ),
    );
    let leases = lab.scratch.write("dhcpd.leases", "");
    let mut check = Command::new("/usr/sbin/dhcpd");
    check.args(["-t", "-4", "-cf"]).arg(&conf);
    let out = lab.bed.run(Side::Server, check);
    assert!(out.is_ok(), "dhcpd refuses the snippet: {out:?}\n{snippet}");
    let mut dhcpd = Command::new("/usr/sbin/dhcpd");
    // -d: in the foreground, logging every packet to stderr, which is
    // what a failure message wants here.
    dhcpd
        .args(["-d", "-4", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(lab.scratch.path("dhcpd.pid"))
        .arg(SERVER_IF)
        .stderr(lab.scratch.log_file("dhcpd.log"));
    lab.bed
        .spawn(Side::Server, dhcpd)
        .expect("spawning dhcpd (package isc-dhcp-server)");
    check_cases(&lab, "isc-dhcpd", "dhcpd.log");
}

#[test]
fn kea_configured_by_print_config_boots_every_firmware() {
    let (mut lab, snippet) = lab_with_snippet("peer-kea", "kea", IA32);
    let dir: PathBuf = lab.scratch.dir().to_path_buf();
    // The user's own "Dhcp4" part; the snippet is added to it.
    let conf = lab.scratch.write(
        "kea-dhcp4.conf",
        &format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{SERVER_IF}" ] }},
  "lease-database": {{ "type": "memfile", "persist": false }},
  "valid-lifetime": 3600,
  "subnet4": [ {{ "id": 1, "subnet": "10.50.0.0/24",
                  "pools": [ {{ "pool": "10.50.0.100 - 10.50.0.150" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "DEBUG", "debuglevel": 15,
                  "output_options": [ {{ "output": "{log}" }} ] }} ],
{snippet}
}} }}
"#,
            log = dir.join("kea.log").display()
        ),
    );
    let mut check = Command::new("/usr/sbin/kea-dhcp4");
    check.arg("-t").arg(&conf);
    check
        .env("KEA_PIDFILE_DIR", &dir)
        .env("KEA_LOCKFILE_DIR", &dir)
        .stdout(std::process::Stdio::null());
    let out = lab.bed.run(Side::Server, check);
    assert!(out.is_ok(), "Kea refuses the snippet: {out:?}\n{snippet}");
    let mut kea = Command::new("/usr/sbin/kea-dhcp4");
    kea.arg("-c")
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", &dir)
        .env("KEA_LOCKFILE_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(lab.scratch.log_file("kea.stderr"));
    lab.bed
        .spawn(Side::Server, kea)
        .expect("spawning kea-dhcp4 (package kea-dhcp4-server)");
    check_cases(&lab, "kea", "kea.log");
}

#[test]
fn dnsmasq_configured_by_print_config_boots_every_firmware() {
    let (mut lab, snippet) = lab_with_snippet("peer-dnsmasq", "dnsmasq", IA32);
    lab.start_dnsmasq(Side::Server, SERVER_IF, &format!("log-dhcp\n{snippet}"));
    check_cases(&lab, "dnsmasq", "dnsmasq.log");
}

/// Without an IA32 file, IA32 firmware gets no boot file from any peer
/// (stormboot itself answers it with plain DHCP): never the x64 binary,
/// which it cannot run.
#[test]
fn without_an_ia32_file_no_peer_sends_ia32_firmware_a_binary() {
    let (mut lab, snippet) = lab_with_snippet("peer-noia32", "dnsmasq", "");
    lab.start_dnsmasq(Side::Server, SERVER_IF, &format!("log-dhcp\n{snippet}"));
    let got = lab
        .run_udhcpc(&[
            "-V",
            "PXEClient:Arch:00006:UNDI:003016",
            "-x",
            "0x5d:0006",
            "-t",
            "4",
            "-T",
            "1",
        ])
        .unwrap_or_else(|e| panic!("no lease: {e}{}", lab.dnsmasq_log()));
    assert_eq!(
        got.get("boot_file").map(String::as_str),
        Some(""),
        "{got:?}\n{snippet}"
    );
    // The other two peers' snippets have no IA32 rule at all.
    for peer in ["isc-dhcpd", "kea"] {
        let s = lab.print_config(peer);
        assert!(!s.contains("0x0006") && !s.contains("00:06"), "{peer}: {s}");
    }
}
