//! `stormboot import` as a user runs it: the binary on the sample files,
//! its TOML merged into a config that `stormboot check-config` must accept,
//! and `--load` against an HTTP endpoint speaking the bulk-reservation
//! contract.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stormboot"));
    // The tests set what they use; nothing leaks in from the caller's shell.
    for var in [
        "STORMBOOT_API",
        "STORMBOOT_API_TOKEN",
        "STORMBOOT_IMPORT_FROM",
        "STORMBOOT_IMPORT_PROFILE",
        "STORMBOOT_IMPORT_LOAD",
        "STORMBOOT_CONFIG",
    ] {
        c.env_remove(var);
    }
    c
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> (String, String) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{o}\nstderr:\n{e}",
        out.status
    );
    (o, e)
}

/// Runs the import, merges its output into a config, runs check-config.
fn import_and_check(format: &str, file: &str, server: &str, extra: &str) -> (String, String) {
    let path = sample(file);
    let out = bin()
        .args(["import", "--from", format, "--profile", "debian"])
        .arg(&path)
        .output()
        .unwrap();
    let (toml, stderr) = ok(&out);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stormboot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ninterface = \"sb0\"\naddress = \"{server}\"\n\n\
             [[profile]]\nname = \"debian\"\nkernel = \"vmlinuz\"\n{extra}\n{toml}"
        ),
    )
    .unwrap();
    let check = bin()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (summary, _) = ok(&check);
    (toml, format!("{stderr}\n{summary}"))
}

#[test]
fn every_sample_imports_into_a_valid_config() {
    let cases = [
        (
            "isc-dhcpd",
            "dhcpd.conf",
            "3 subnet(s), 6 reservation(s)",
            "dhcpd.conf:68: 52:54:00:12:34:01 10.50.0.21: duplicate MAC",
        ),
        (
            "dnsmasq",
            "dnsmasq.conf",
            "1 subnet(s), 6 reservation(s)",
            "dnsmasq.conf:24: dhcp-host=52:54:00:12:34:07,ignore",
        ),
        (
            "kea",
            "kea-dhcp4.conf",
            "2 subnet(s), 5 reservation(s)",
            "kea-dhcp4.conf:30: reservation by client-id",
        ),
        (
            "tinkerbell",
            "tinkerbell-hardware.yaml",
            "2 subnet(s), 3 reservation(s)",
            "tinkerbell-hardware.yaml:75: \"Secret\" object",
        ),
        (
            "csv",
            "hosts.csv",
            "1 subnet(s), 4 reservation(s)",
            "hosts.csv:7: \"10.50.0.300\" is not an IPv4 address",
        ),
    ];
    for (format, file, counts, skip) in cases {
        let extra = if format == "csv" {
            "[[subnet]]\ncidr = \"10.50.0.0/24\"\n"
        } else {
            ""
        };
        let (toml, report) = import_and_check(format, file, "10.50.0.250", extra);
        assert!(report.contains(counts), "{format}: {report}");
        assert!(
            report.contains("item(s) not translated:"),
            "{format}: {report}"
        );
        // The same item is on stderr and, as a comment, in the TOML.
        assert!(report.contains(skip), "{format}: {report}");
        assert!(
            toml.contains(&format!("#   {}", sample(file).display())),
            "{format}: {toml}"
        );
        assert!(toml.contains("profile = \"debian\""), "{format}");
    }
}

#[test]
fn unreadable_or_unparseable_input_fails_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("dhcpd.conf");
    std::fs::write(
        &bad,
        "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.5 10.0.0.9;\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "--from", "isc-dhcpd"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!("{}:1: '{{' is never closed", bad.display())),
        "{e}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let out = bin()
        .args(["import", "--from", "kea", "/nonexistent/kea-dhcp4.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/kea-dhcp4.conf"),
        "{}",
        text(&out.stderr)
    );

    // Untranslatable content alone is not a failure.
    std::fs::write(&bad, "dhcp-host=id:laptop,10.0.0.5\n").unwrap();
    let out = bin()
        .args(["import", "--from", "dnsmasq"])
        .arg(&bad)
        .output()
        .unwrap();
    let (_, e) = ok(&out);
    assert!(
        e.contains(":1: dhcp-host=id:laptop,10.0.0.5: reserved by client identifier"),
        "{e}"
    );
}

#[test]
fn reads_standard_input() {
    let mut child = bin()
        .args(["import", "--from", "csv", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"52:54:00:00:00:01,10.50.0.11,node1\nbogus\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (toml, e) = ok(&out);
    assert!(
        toml.contains("mac = \"52:54:00:00:00:01\"\nip = \"10.50.0.11\"\nhostname = \"node1\""),
        "{toml}"
    );
    assert!(
        e.contains("-:2: expected mac,ip[,hostname], found 1 field(s)"),
        "{e}"
    );

    // --load with nothing to send sends nothing (no server listens here).
    let mut child = bin()
        .args([
            "import",
            "--from",
            "csv",
            "-",
            "--load",
            "--api",
            "http://127.0.0.1:9",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"mac,ip\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let (_, e) = ok(&out);
    assert!(e.contains("no reservations to load"), "{e}");
}

/// One HTTP exchange on a real socket: returns the request as read, after
/// answering with `status` and `body`.
fn serve_once(
    status: &str,
    body: &'static str,
) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let status = status.to_string();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut req = vec![0; length];
        reader.read_exact(&mut req).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (head, text(&req))
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn load_posts_the_reservations_with_the_token() {
    let (url, server) = serve_once("201 Created", "{\"created\": 3}");
    let out = bin()
        .args([
            "import",
            "--from",
            "tinkerbell",
            "--load",
            "--profile",
            "debian",
        ])
        .arg(sample("tinkerbell-hardware.yaml"))
        .env("STORMBOOT_API", &url)
        .env("STORMBOOT_API_TOKEN", "s3cret")
        .output()
        .unwrap();
    let (_, e) = ok(&out);
    assert!(e.contains("3 reservation(s) sent to"), "{e}");
    assert!(e.contains("{\"created\": 3}"), "{e}");
    let (head, body) = server.join().unwrap();
    assert!(
        head.starts_with("POST /api/v1/reservations/bulk HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("Authorization: Bearer s3cret\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/json\r\n"),
        "{head}"
    );
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!([
            {"mac": "52:54:00:12:34:01", "ip": "10.50.0.11", "hostname": "rack1-node01", "profile": "debian"},
            {"mac": "52:54:00:12:34:02", "ip": "10.50.0.12", "hostname": "rack1-node02", "profile": "debian"},
            {"mac": "52:54:00:12:34:12", "ip": "192.168.77.12", "hostname": "rack1-node02-bmc", "profile": "debian", "allow_pxe": false},
        ])
    );
}

#[test]
fn load_reports_the_daemons_error_and_fails() {
    let (url, server) = serve_once(
        "409 Conflict",
        "{\"error\": \"duplicate MAC 52:54:00:12:34:03\", \"field\": \"[2].mac\"}",
    );
    let out = bin()
        .args([
            "import", "--from", "csv", "--load", "--api", &url, "--token", "t",
        ])
        .arg(sample("hosts.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("HTTP 409: [2].mac: duplicate MAC 52:54:00:12:34:03"),
        "{e}"
    );
    let (head, body) = server.join().unwrap();
    assert!(head.contains("Authorization: Bearer t\r\n"), "{head}");
    // No hostname or profile key where there is none.
    assert!(
        body.contains("{\"mac\":\"52:54:00:12:34:03\",\"ip\":\"10.50.0.13\"}"),
        "{body}"
    );

    let (url, server) = serve_once("401 Unauthorized", "{\"error\": \"bad token\"}");
    let out = bin()
        .args(["import", "--from", "csv", "--load", "--api", &url])
        .arg(sample("hosts.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("HTTP 401: bad token (check --token / STORMBOOT_API_TOKEN)"),
        "{e}"
    );
    let (head, _) = server.join().unwrap();
    assert!(!head.contains("Authorization"), "{head}");
}

#[test]
fn completions_and_man_page() {
    let out = bin().args(["completions", "bash"]).output().unwrap();
    let (bash, _) = ok(&out);
    assert!(
        bash.contains("import") && bash.contains("check-config"),
        "{bash:.300}"
    );
    let out = bin().arg("man").output().unwrap();
    let (man, _) = ok(&out);
    assert!(man.contains(".TH stormboot"), "{man:.300}");
    assert!(man.contains("stormboot import"), "{man:.300}");
}
