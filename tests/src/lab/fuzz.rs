//! What the fuzz targets call: one function per input surface, each
//! checking the properties that must hold for any input and panicking
//! (which is what a fuzzer reports) when one does not.
//!
//! - [`request_frame`]: bytes as received on the packet socket, through the
//!   userspace dataplane (decode, the DHCP server, the reply frame), in
//!   authoritative and proxy mode; [`request_frame_and_repaired`] also with
//!   the checksums made right.
//! - [`config_text`]: TOML text through the config parser and validator.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use dhcproto::v4::{Message, Opcode};
use dhcproto::{Decodable, Decoder};
use stormboot::config::{Config, ConfigError};
use stormboot::{dhcp, frame, slowpath};
use stormboot_common::layout::MIN_REPLY_LEN;

use super::fixtures::{endpoint, NOW};

/// Reservations (with and without a boot profile, on the link and behind a
/// relay), a dynamic pool with options of every kind, a relayed subnet
/// selected by option 82 and a boot section: every path of the server.
pub const AUTHORITATIVE: &str = r#"
[server]
interface = "lo"
address = "10.50.0.1"

[boot]
http_port = 8080

[[profile]]
name = "debian"
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0,115200n8"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
dns = ["10.50.0.1", "10.50.0.2"]
domain = "rack1.example"
lease_time = "1h"
pool = ["10.50.0.100-10.50.0.109"]
exclude = ["10.50.0.105"]
ntp = ["10.50.0.2"]
mtu = 9000
domain_search = ["rack1.example", "example"]
routes = [{ destination = "10.60.0.0/16", gateway = "10.50.0.1" }]
profile = "debian"

[[subnet.option]]
code = 150
type = "ipv4-list"
value = "10.50.0.5"

[[subnet]]
cidr = "10.51.0.0/24"
routers = ["10.51.0.1"]
lease_time = "2h"
pool = ["10.51.0.100-10.51.0.101"]

[[subnet]]
cidr = "10.52.0.0/24"
pool = ["10.52.0.10-10.52.0.12"]
authoritative = false

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
profile = "debian"

[[reservation]]
mac = "52:54:00:00:01:01"
ip = "10.51.0.21"
hostname = "remote1"
"#;

/// The same network in proxy mode: boot information only.
pub const PROXY: &str = r#"
[server]
interface = "lo"
address = "10.50.0.1"
mode = "proxy"

[boot]
http_port = 8080
default_profile = "debian"

[[profile]]
name = "debian"
kernel = "vmlinuz"
initrd = "initrd.img"

[[subnet]]
cidr = "10.50.0.0/24"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
profile = "debian"
"#;

fn config(text: &'static str, cell: &'static OnceLock<Arc<Config>>) -> Arc<Config> {
    cell.get_or_init(|| {
        Arc::new(Config::from_str(text, Path::new("fuzz.toml")).expect("the fuzz config is valid"))
    })
    .clone()
}

/// The configurations `request_frame` runs every input against.
pub fn configs() -> [Arc<Config>; 2] {
    static A: OnceLock<Arc<Config>> = OnceLock::new();
    static P: OnceLock<Arc<Config>> = OnceLock::new();
    [config(AUTHORITATIVE, &A), config(PROXY, &P)]
}

/// Runs one received frame through the userspace dataplane of a fresh
/// server for each configuration, three times (as received, again at once,
/// and again after the offer hold and the lease have run out), and checks
/// every reply: a frame with valid checksums, a BOOTREPLY that dhcproto
/// decodes, for the request's transaction and client, at least 300 bytes,
/// sent from port 67. Returns how many replies were sent.
pub fn request_frame(bytes: &[u8]) -> usize {
    let Ok(rx) = slowpath::decode(bytes) else {
        return 0;
    };
    let ep = endpoint();
    let mut sent = 0;
    for cfg in configs() {
        let mut server = dhcp::Server::new(cfg, Vec::new(), NOW);
        for now in [NOW, NOW + 1, NOW + 3 * 3600] {
            let (frame, outcome) = slowpath::respond(&mut server, &rx, &ep, now);
            assert!(
                dhcp::NOTES.contains(&outcome.note),
                "undocumented note {:?}",
                outcome.note
            );
            let Some(f) = frame else { continue };
            check_reply(&rx.msg, &f);
            sent += 1;
        }
    }
    sent
}

/// `request_frame` of `bytes` as they are, and again with the IPv4 and UDP
/// checksums made right: most mutations break the checksums, and a frame
/// with a bad one never gets past the frame decoder to the DHCP server.
pub fn request_frame_and_repaired(bytes: &[u8]) -> usize {
    let mut repaired = bytes.to_vec();
    super::mutate::fix_checksums(&mut repaired);
    let mut sent = request_frame(bytes);
    if repaired != bytes {
        sent += request_frame(&repaired);
    }
    sent
}

fn check_reply(req: &Message, f: &[u8]) {
    let p = frame::parse(f).expect("a reply frame has valid headers and checksums");
    assert_eq!(p.addr.sport, 67, "replies come from the server port");
    assert!(
        p.payload.len() >= MIN_REPLY_LEN,
        "reply of {} bytes, shorter than BOOTP's minimum",
        p.payload.len()
    );
    let m = Message::decode(&mut Decoder::new(p.payload)).expect("a reply decodes");
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), req.xid(), "the reply answers the request's xid");
    let n = req.chaddr().len().min(6);
    assert_eq!(
        &m.chaddr()[..n],
        &req.chaddr()[..n],
        "the reply goes to the request's client"
    );
    assert!(m.opts().msg_type().is_some(), "a reply has a message type");
}

/// Parses and validates `text` as a config file (without reading any other
/// file: a `reservations_file` is "not found"). Any error must say where:
/// a line for syntax and type errors, a key for values that are not
/// acceptable. Returns whether the text was a valid configuration.
pub fn config_text(text: &str) -> bool {
    let path = Path::new("fuzz.toml");
    match Config::from_str_with(text, path, &mut |p| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: not read while fuzzing", p.display()),
        ))
    }) {
        Ok(_) => true,
        Err(e) => {
            check_config_error(&e);
            false
        }
    }
}

fn check_config_error(e: &ConfigError) {
    let msg = e.to_string();
    match e {
        ConfigError::Read { .. } => panic!("the config text itself is never read: {msg}"),
        ConfigError::Toml { at, .. } => {
            assert!(at.line.is_some(), "a TOML error without a line: {msg}");
        }
        ConfigError::Invalid { at, key, message } => {
            assert!(!key.is_empty(), "an error that names no key: {msg}");
            assert!(!message.is_empty(), "an error with no message: {msg}");
            assert!(
                at.line.is_some() || !key.contains('.'),
                "an error about a value that gives no line: {msg}"
            );
        }
    }
    assert!(
        msg.starts_with("fuzz.toml"),
        "the error names no file: {msg}"
    );
}

/// A boot-only configuration with every kind of value the validator
/// reads, for the config corpus.
const BOOT_ONLY: &str = r##"
[server]
interface = ["sb0", "vlan42"]
address = "10.50.0.1"
mode = "boot-only"
offer_hold = "30s"
decline_quarantine = "10m"
xdp_log_level = "warn"

[api]
listen = "127.0.0.1:8067"

[boot]
tftp_root = "/usr/lib/ipxe"
artifacts_dir = "/srv/stormboot"
http_port = 80
ipxe_user_class = "iPXE"
default_profile = "debian"
ipv6_ra = true

[[profile]]
name = "debian"
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0,115200n8"
script = """#!ipxe
kernel ${kernel_url}
boot"""

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
renew_time = "10m"
rebind_time = "20m"

[[subnet.option]]
code = 224
type = "hex"
value = "01:02:ff"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"

[[reservation.option]]
code = 225
type = "u32"
value = "7"
"##;

/// The committed seed corpus of each fuzz target (`fuzz/corpus/<target>/`):
/// real requests built with dhcproto (`mutate::seeds`) and real
/// configurations, named `seed-*`.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = super::mutate::seeds()
        .into_iter()
        .map(|s| ("request_frame", format!("seed-{}", s.name), s.frame))
        .collect();
    for (name, text) in [
        ("fixtures", super::fixtures::CONFIG),
        ("authoritative", AUTHORITATIVE),
        ("proxy", PROXY),
        ("boot-only", BOOT_ONLY),
    ] {
        out.push((
            "config_text",
            format!("seed-{name}.toml"),
            text.as_bytes().to_vec(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::fixtures::{encode, request};
    use crate::lab::mutate::{mutate, seeds, Rng};
    use dhcproto::v4::MessageType;
    use stormboot::slowpath::DecodeError;

    /// The files under fuzz/corpus are `seed_corpus()`; with
    /// STORMBOOT_WRITE_CORPUS=1 this writes them instead of checking.
    #[test]
    fn committed_corpus_is_the_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let write = std::env::var_os("STORMBOOT_WRITE_CORPUS").is_some();
        for (target, name, bytes) in seed_corpus() {
            let path = root.join(target).join(&name);
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is not the seed it should be; regenerate with \
                 STORMBOOT_WRITE_CORPUS=1 cargo test -p stormboot-testbed --lib committed_corpus",
                path.display()
            );
        }
    }

    #[test]
    fn corpus_configs_are_valid() {
        for (target, name, bytes) in seed_corpus() {
            if target == "config_text" {
                let text = String::from_utf8(bytes).unwrap();
                assert!(config_text(&text), "{name}");
            }
        }
    }

    #[test]
    fn seeds_get_replies_from_the_request_path() {
        let s = seeds();
        let answered: usize = s.iter().map(|s| request_frame(&s.frame)).sum();
        // Every seed but the one for another server is answered by one of
        // the two configurations.
        assert!(
            answered >= s.len() - 1,
            "{answered} replies to {} seeds",
            s.len()
        );
    }

    #[test]
    fn mutated_requests_keep_the_request_path_whole() {
        let s = seeds();
        let mut rng = Rng::new(0x5eed);
        for i in 0..3000 {
            let (f, _) = mutate(&mut rng, &s[i % s.len()].frame);
            request_frame(&f);
        }
    }

    #[test]
    fn config_errors_say_where() {
        assert!(config_text(AUTHORITATIVE));
        assert!(!config_text("[server]\ninterface = 5\n"));
        assert!(!config_text("[server\n"));
        assert!(!config_text(""));
    }

    fn discover_payload() -> Vec<u8> {
        encode(&request([0x52, 0x54, 0, 0, 0, 1], MessageType::Discover))
    }

    fn broadcast(payload: &[u8]) -> Vec<u8> {
        crate::lab::fixtures::client_frame([0x52, 0x54, 0, 0, 0, 1], None, payload)
    }

    #[test]
    fn hardware_address_longer_than_chaddr_is_malformed() {
        let mut payload = discover_payload();
        payload[stormboot_common::layout::OFF_HLEN] = 17;
        let f = broadcast(&payload);
        assert_eq!(
            slowpath::decode(&f).err(),
            Some(DecodeError::Dhcp("hlen 17 exceeds 16".into()))
        );
        // And the whole request path survives it.
        assert_eq!(request_frame(&f), 0);
    }

    #[test]
    fn option_of_unexpected_length_is_decoded_without_panic() {
        // dhcproto debug-asserts some options' lengths (94 must be 3,
        // 81 at least 3) and subtracts from others (151): a dev build
        // used to panic on these.
        for (code, len) in [(94u8, 2u8), (94, 5), (81, 1), (81, 0), (151, 0), (80, 2)] {
            let mut payload = discover_payload();
            let end = payload.len() - 1;
            let opt: Vec<u8> = [code, len]
                .into_iter()
                .chain(std::iter::repeat_n(1, len as usize))
                .collect();
            payload.splice(end..end, opt);
            let f = broadcast(&payload);
            let _ = slowpath::decode(&f);
            request_frame(&f);
        }
    }

    #[test]
    fn the_decoder_reads_well_formed_requests_as_dhcproto_does() {
        for s in seeds() {
            let p = frame::parse(&s.frame).unwrap().payload.to_vec();
            let ours = stormboot::dhcp::decode::message(&p).unwrap();
            let theirs = Message::decode(&mut Decoder::new(&p)).unwrap();
            assert_eq!(ours, theirs, "{}", s.name);
        }
    }
}
