//! Network boot, second stage: what a machine fetches once iPXE runs.
//!
//! `script` renders the per-machine iPXE script, `web` serves it together
//! with the iPXE binaries and the artifacts directory over HTTP, and `syslog`
//! receives the log lines booting machines send back. The types here are the
//! inputs the daemon hands in; they are converted from `crate::config` so this
//! module does not depend on how the config file spells them.

use std::net::Ipv4Addr;
use std::sync::Arc;

pub mod script;
pub mod syslog;
pub mod web;

/// How one class of machine boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Relative names are served from the artifacts directory; absolute URLs
    /// (`http://`, `https://`, any `scheme://`) are used as they are.
    pub kernel: String,
    /// Resolved like `kernel`.
    pub initrd: Option<String>,
    pub cmdline: String,
    /// A custom iPXE script template replacing the generated one (see
    /// `script::render` for its variables).
    pub script: Option<String>,
}

/// What the daemon knows about one machine when it asks for its script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineInfo {
    pub mac: [u8; 6],
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub profile: Option<Arc<Profile>>,
}

/// `52:54:00:00:00:01`: the spelling iPXE's `${mac}` and most tools use.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parses a MAC written with `:` or `-` between the six octets, in either
/// case (iPXE's `${mac}` gives colons, `${mac:hexhyp}` dashes).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let sep = if s.contains(':') { ':' } else { '-' };
    let mut out = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in &mut out {
        let part = parts.next()?;
        // from_str_radix alone would take "+a".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = [0x52, 0x54, 0x00, 0xab, 0xcd, 0x01];
        assert_eq!(format_mac(&mac), "52:54:00:ab:cd:01");
        assert_eq!(parse_mac("52:54:00:ab:cd:01"), Some(mac));
        assert_eq!(parse_mac("52-54-00-AB-CD-01"), Some(mac));
        assert_eq!(parse_mac("52:54:00:Ab:cD:01"), Some(mac));
    }

    #[test]
    fn mac_rejects_malformed() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:01:02",
            "52:54-00:ab:cd:01",
            "525400abcd01",
            "52:54:00:ab:cd:1",
            "52:54:00:ab:cd:zz",
            "+2:54:00:ab:cd:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
