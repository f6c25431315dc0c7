//! The config file exactly as written: serde structs that reject unknown
//! keys and keep each value's byte span, so validation can name the line.
//!
//! Addresses, CIDRs and MACs stay strings here; parsing them in `validate`
//! lets the error name the key, which serde's own messages would not.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub server: Server,
    pub api: Option<Api>,
    pub boot: Option<Boot>,
    pub hooks: Option<S<Hooks>>,
    pub omapi: Option<S<super::omapi::Wire>>,
    pub dashboard: Option<Dashboard>,
    pub store: Option<super::store::Wire>,
    pub cluster: Option<S<super::cluster::Wire>>,
    #[serde(default)]
    pub profile: Vec<Profile>,
    #[serde(default)]
    pub subnet: Vec<Subnet>,
    #[serde(default)]
    pub reservation: Vec<Reservation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub interface: S<Names>,
    pub address: S<String>,
    pub reservations_file: Option<S<String>>,
    pub xdp_mode: Option<S<String>>,
    pub xdp_log_level: Option<S<String>>,
    pub bpffs_dir: Option<S<String>>,
    pub dataplane: Option<S<String>>,
    pub mode: Option<S<String>>,
    /// Deprecated: `[store] path` (see `super::store`).
    pub lease_db: Option<S<String>>,
    pub offer_hold: Option<S<Duration>>,
    pub decline_quarantine: Option<S<Duration>>,
    pub slowpath_rate: Option<S<i64>>,
    pub slowpath_burst: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub listen: Option<S<String>>,
    pub token: Option<S<String>>,
    pub read_token: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    pub stuck_after: Option<S<Duration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub cidr: S<String>,
    #[serde(default)]
    pub routers: Vec<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    pub domain: Option<S<String>>,
    pub lease_time: Option<S<Duration>>,
    pub renew_time: Option<S<Duration>>,
    pub rebind_time: Option<S<Duration>>,
    pub boot_lease_time: Option<S<Duration>>,
    pub cache_threshold: Option<S<f64>>,
    /// "first-last" ranges (or single addresses) handed out dynamically.
    #[serde(default)]
    pub pool: Vec<S<String>>,
    /// Addresses or "first-last" ranges inside the pools never handed out.
    #[serde(default)]
    pub exclude: Vec<S<String>>,
    pub authoritative: Option<S<bool>>,
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub ntp: Vec<S<String>>,
    pub mtu: Option<S<i64>>,
    #[serde(default)]
    pub domain_search: Vec<S<String>>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub option: Vec<OptionData>,
    /// The boot profile of this subnet's pool clients.
    pub profile: Option<S<String>>,
}

/// One classless static route (option 121).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: S<String>,
    pub gateway: S<String>,
}

/// A custom option, typed like Kea's option-data: the value is always a
/// string, parsed according to `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionData {
    pub code: S<i64>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub value: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub mac: S<String>,
    pub ip: S<String>,
    pub hostname: Option<S<String>>,
    #[serde(default)]
    pub option: Vec<OptionData>,
    pub profile: Option<S<String>>,
    pub allow_pxe: Option<S<bool>>,
    pub label: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    pub tftp_root: Option<S<String>>,
    pub artifacts_dir: Option<S<String>>,
    pub http_port: Option<S<i64>>,
    pub http_backlog: Option<S<i64>>,
    pub tftp_port: Option<S<i64>>,
    pub syslog_port: Option<S<i64>>,
    pub ipxe_user_class: Option<S<String>>,
    pub default_profile: Option<S<String>>,
    pub bios_file: Option<S<String>>,
    pub efi_x64_file: Option<S<String>>,
    pub efi_arm64_file: Option<S<String>>,
    pub efi_ia32_file: Option<S<String>>,
    pub ipv6_ra: Option<S<bool>>,
    pub ipxe_no_proxydhcp: Option<S<bool>>,
    pub tftp_max_transfers: Option<S<i64>>,
    pub file_cache_mb: Option<S<i64>>,
}

/// `[hooks]`: what runs when a lease is committed, renewed, expires, is
/// released or declined.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub command: Option<S<String>>,
    pub webhook: Option<S<String>>,
    pub webhook_ca: Option<S<String>>,
    pub timeout: Option<S<Duration>>,
    pub queue: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: S<String>,
    pub kernel: S<String>,
    pub initrd: Option<S<String>>,
    pub cmdline: Option<S<String>>,
    pub script: Option<S<String>>,
}

/// A duration as written: TOML allows both `lease_time = 3600` and
/// `lease_time = "1h"`, so accept either and parse the text later.
#[derive(Debug)]
pub enum Duration {
    Seconds(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"1h30m\" or an integer number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Ok(Duration::Seconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                i64::try_from(v)
                    .map(Duration::Seconds)
                    .map_err(|_| E::custom("duration is too long"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Ok(Duration::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `interface = "sb0"` or `interface = ["sb0", "sb1"]`: one name or several.
/// A visitor rather than an untagged enum, which would lose the span.
#[derive(Debug)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interface name or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    names.push(n);
                }
                Ok(Names(names))
            }
        }
        d.deserialize_any(V)
    }
}
