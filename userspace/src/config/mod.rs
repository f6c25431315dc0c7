//! The daemon's configuration: one TOML file (plus an optional CSV of
//! reservations) read into a serde wire struct, then validated into the
//! runtime [`Config`] with errors of the form `file:line: key: message`.

mod boot;
mod cluster;
mod csv;
mod duration;
mod hooks;
mod location;
mod omapi;
pub use omapi::Omapi;
mod options;
mod store;
mod validate;
mod wire;

pub use options::TYPES as OPTION_TYPES;
pub use validate::{dns_name, reservation_label, OnOutline, Outline};

use std::fmt;

use crate::compact::{List, Name, Text};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hooks::webhook as parse_webhook;
use location::Source;

/// Shared with the reservation rule and `stormboot import`.
pub use options::{custom as parse_option_value, SERVER_SET};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub api: Api,
    pub subnets: Vec<Subnet>,
    /// Inline reservations in file order, then those of `reservations_file`.
    pub reservations: Vec<Reservation>,
    pub boot: Boot,
    pub profiles: Vec<Profile>,
    /// `[hooks]`, when present.
    pub hooks: Option<Hooks>,
    /// `[omapi]`, when present.
    pub omapi: Option<Omapi>,
    pub dashboard: Dashboard,
    /// `[store]` (or the deprecated `server.lease_db`).
    pub store: Store,
    /// `[cluster]`, when this node shares its store with others.
    pub cluster: Option<Cluster>,
    /// Keys that work but should change (deprecated ones), for the daemon
    /// to log once at start and `check-config` to print.
    pub warnings: Vec<Warning>,
}

/// `[store]`: the backend that keeps leases and the API's reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// One SQLite file; already resolved against the config file's
    /// directory.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database, shared by every node pointed at it.
    Postgres(Postgres),
}

/// `[store] backend = "postgres"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// `store.url` as written: a connection string (`host=... dbname=...`)
    /// or a `postgresql://` URL. Never holds a password (refused there:
    /// config files are read by more people than secrets should be).
    pub url: String,
    /// `store.pool_size`: connections kept open to the server.
    pub pool_size: usize,
    /// `store.password_file`'s contents (its last line end removed).
    /// STORMBOOT_PG_PASSWORD, read when the store opens, overrides it,
    /// and PGPASSWORD stands in for both.
    pub password: Option<Secret>,
}

/// `[cluster]`: this node among the nodes sharing one PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `cluster.node`: this node's name among them (default: the host
    /// name); unique per cluster.
    pub node: String,
    /// `cluster.heartbeat`: how often the node records that it is alive.
    pub heartbeat: Duration,
    /// `cluster.dead_after`: a node silent this long is dead, and its
    /// share of new clients goes to the others.
    pub dead_after: Duration,
    /// `cluster.load_balance`: new clients are shared out by the RFC 3074
    /// hash of their client id over the live nodes (else every node
    /// answers every new client).
    pub load_balance: bool,
    /// `cluster.lb_max_secs`: a DISCOVER whose `secs` is at least this is
    /// answered whoever's share it is (its node may be alive but mute).
    pub lb_max_secs: u16,
    /// `cluster.grace`: how long past its expiry an address another node
    /// leased stays out of reach, covering that node's bounded renewals
    /// while it cannot reach the database.
    pub grace: Duration,
    /// `cluster.sync_interval`: how often reservation changes are looked
    /// for even without a notification.
    pub sync_interval: Duration,
    /// `cluster.slices`: each node searches for free addresses from its
    /// own slice of the pools (default). False sends every node to the
    /// same addresses, all arbitrated by the store: for testing that
    /// arbitration under contention.
    pub slices: bool,
}

/// A password or other secret: compared like its text, printed as
/// `Secret(..)`, so no `{:?}` of a config puts it in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A key that still works but should change, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Location,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.key, self.message)
    }
}

/// `[dashboard]`: the live page at `/` on the API listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// A machine that has not booted (no syslog line yet) and reached no
    /// new phase for this long is shown as stuck.
    pub stuck_after: Duration,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            stuck_after: Duration::from_secs(60),
        }
    }
}

/// `[hooks]`: a command run and/or a webhook POSTed for every lease event
/// (see `crate::hooks`), from a bounded queue, never in a reply's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Run with the event in `STORMBOOT_*` environment variables; no shell.
    pub command: Option<PathBuf>,
    /// Where the event is POSTed as JSON.
    pub webhook: Option<Webhook>,
    /// How long one run (or one POST) may take before it is killed (or
    /// abandoned) and counted as failed.
    pub timeout: Duration,
    /// Events waiting for their hooks; when full, new events are dropped
    /// and counted.
    pub queue: usize,
}

/// An `http://` or `https://host[:port]/path` URL, checked and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL as written, for logs and the client.
    pub url: String,
    /// https:// (verified against the system's roots and `ca`).
    pub tls: bool,
    /// `hooks.webhook_ca`: a PEM file of certificates trusted besides the
    /// system's (a private CA, or the receiver's self-signed certificate).
    pub ca: Option<PathBuf>,
    /// Host name or address, as written (also the Host header).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

/// `[boot]`: what the boot services serve and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The config has a `[boot]` section: the daemon runs TFTP, the boot
    /// HTTP service and the syslog receiver.
    pub enabled: bool,
    /// The iPXE binaries, served over TFTP and HTTP.
    pub tftp_root: PathBuf,
    /// Kernels and initrds, served over HTTP under /artifacts/.
    pub artifacts_dir: PathBuf,
    pub http_port: u16,
    /// Connections the boot HTTP port's kernel queue holds before the
    /// daemon accepts them: past it a machine's SYN is dropped and it waits
    /// for its retransmission (1 s, then 3, 7, 15 ...).
    pub http_backlog: u32,
    pub tftp_port: u16,
    pub syslog_port: u16,
    /// User class (option 77) that marks iPXE's own requests: they get the
    /// script URL, not a binary, which ends the chainload loop.
    pub ipxe_user_class: String,
    /// Index into `Config::profiles` for machines without one of their own.
    pub default_profile: Option<usize>,
    /// Boot files by firmware, in `tftp_root`: BIOS PXE, UEFI x64, UEFI
    /// arm64 (UEFI HTTP boot gets the same names as http:// URLs).
    pub bios_file: String,
    pub efi_x64_file: String,
    pub efi_arm64_file: String,
    /// UEFI IA32 (architecture 6); None: such machines get plain DHCP, as
    /// no default build exists and the x64 binary does not run on them.
    pub efi_ia32_file: Option<String>,
    /// Send IPv6 router advertisements that end iPXE's wait for a router.
    pub ipv6_ra: bool,
    /// Tell iPXE (option 175.176) not to wait for a ProxyDHCP offer. On by
    /// default; off only where a ProxyDHCP server must be heard.
    pub ipxe_no_proxydhcp: bool,
    /// TFTP transfers running at once; more wait, then get "server busy".
    pub tftp_max_transfers: usize,
    /// Memory for boot files served from RAM over TFTP, in MiB (0: every
    /// transfer reads the disk; HTTP sends from the page cache either way).
    pub file_cache_mb: u64,
}

/// `[[profile]]`: what a machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Relative names are served from `boot.artifacts_dir`.
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
    /// A custom iPXE script template; machine variables are filled in.
    pub script: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The interfaces DHCP is served on (and the XDP program attached
    /// to); `interface = "sb0"` or `interface = ["sb0", "sb1"]`.
    pub interfaces: Vec<String>,
    /// Server identifier (option 54) and source address of replies.
    pub address: Ipv4Addr,
    /// Already resolved against the config file's directory.
    pub reservations_file: Option<PathBuf>,
    pub xdp_mode: XdpMode,
    /// The most verbose level the XDP program logs at.
    pub xdp_log_level: LogLevel,
    /// Where program, maps and link are pinned, so a restart adopts them.
    pub bpffs_dir: PathBuf,
    /// Who answers reserved machines: the XDP program, or (for kernels and
    /// drivers that cannot attach it) the userspace server alone.
    pub dataplane: Dataplane,
    /// What the daemon answers (`server.mode`).
    pub mode: Mode,
    /// How long an offered address is held for the client that was
    /// offered it, waiting for its REQUEST.
    pub offer_hold: Duration,
    /// How long an address a client DECLINEd (someone else uses it) is
    /// kept out of the pools.
    pub decline_quarantine: Duration,
    /// DHCP requests a second one MAC may send up to the slow path once
    /// its burst is spent; more are dropped in XDP. 0: no limit.
    pub slowpath_rate: u32,
    /// Requests one MAC may send up at once. 0: no limit.
    pub slowpath_burst: u32,
}

/// What the daemon is on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Addresses and boot information: a complete DHCP server.
    Authoritative,
    /// proxyDHCP beside another DHCP server: boot information to PXE and
    /// iPXE clients (ports 67 and 4011), never an address.
    Proxy,
    /// No DHCP at all: TFTP, HTTP and syslog for machines another DHCP
    /// server points here (`stormboot print-config` writes its snippet).
    BootOnly,
}

/// Which dataplane answers reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    /// The XDP program, in the kernel; the default.
    Xdp,
    /// The userspace server, with frames byte-identical to the program's.
    Userspace,
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native XDP): the fast path, the default.
    Driver,
    /// Generic XDP, for drivers without native support (and veth tests).
    Skb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The value given to the XDP program as a load-time global; it logs a
    /// line when the line's level is at most this.
    pub fn as_u8(self) -> u8 {
        match self {
            LogLevel::Off => 0,
            LogLevel::Error => 1,
            LogLevel::Warn => 2,
            LogLevel::Info => 3,
            LogLevel::Debug => 4,
            LogLevel::Trace => 5,
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The HTTP API's address; loopback by default, so that without a
    /// token only local users can read it.
    pub listen: SocketAddr,
    /// `api.token`: the bearer token changes need. Without one (and
    /// without STORMBOOT_API_TOKEN) every change is refused.
    pub token: Option<String>,
    /// `api.read_token`: reads need the token too.
    pub read_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// A network address (host bits zero) with a prefix of 1..=30.
    pub net: ipnet::Ipv4Net,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Whole seconds, at least 60, below 0xffffffff (DHCP's "infinite").
    pub lease_time: Duration,
    /// T1, less than `rebind_time`.
    pub renew_time: Duration,
    /// T2, less than `lease_time`.
    pub rebind_time: Duration,
    /// The lease of a machine that is network booting (its reply carries a
    /// boot file): shorter, so an installer's address comes back soon
    /// after the machine moves on. None: `lease_time`.
    pub boot_lease_time: Option<Duration>,
    /// A reserved machine's lease that the XDP program renews less than
    /// this long after it was last written is not written again
    /// (`Lease::renewal_cached`; `cache_threshold` times `lease_time`).
    /// Zero: every renewal is written.
    pub renewal_cache: Duration,
    /// Inclusive ranges handed out dynamically, sorted and disjoint, inside
    /// `net` and free of its network, broadcast, router and server
    /// addresses. Reserved addresses may lie inside; the pool skips them.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Inclusive ranges inside `net` never handed out dynamically, sorted.
    pub exclude: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// When false, requests for addresses the server knows nothing about
    /// are ignored rather than NAKed, so another server can answer them.
    pub authoritative: bool,
    /// The interface whose non-relayed requests this subnet serves; when
    /// absent, the subnet containing the interface's address is served.
    pub interface: Option<String>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 119 (RFC 3397), as written; each a valid DNS name.
    pub domain_search: Vec<String>,
    /// Option 121 (RFC 3442).
    pub routes: Vec<Route>,
    /// Custom options, encoded, sorted by code; none of them is a code the
    /// server sets itself or one that a key above sets.
    pub options: Vec<CustomOption>,
    /// Index into [`Config::profiles`]: what this subnet's pool clients boot.
    pub profile: Option<usize>,
}

/// A classless static route (RFC 3442).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Host bits zero; 0.0.0.0/0 is the default route.
    pub destination: ipnet::Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// An option sent as is: its code and its encoded value (at most 255
/// bytes, so it never needs RFC 3396 splitting).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomOption {
    pub code: u8,
    pub data: Vec<u8>,
}

impl CustomOption {
    /// The option as dhcproto encodes it; dhcproto writes options in code
    /// order, so both dataplanes place it the same way.
    pub fn to_dhcproto(&self) -> dhcproto::v4::DhcpOption {
        dhcproto::v4::DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
            self.code.into(),
            self.data.clone(),
        ))
    }
}

impl Subnet {
    /// Lease, T1 and T2 of a reply; `booting`: it carries a boot file.
    /// A boot lease's T1 and T2 are the RFC 2131 fractions of it, in
    /// whole seconds as DHCP carries them.
    pub fn lease_times(&self, booting: bool) -> (Duration, Duration, Duration) {
        match self.boot_lease_time.filter(|_| booting) {
            Some(b) => {
                let s = b.as_secs();
                (
                    b,
                    Duration::from_secs(s / 2),
                    Duration::from_secs(s * 7 / 8),
                )
            }
            None => (self.lease_time, self.renew_time, self.rebind_time),
        }
    }

    /// The options of this subnet's replies beyond the ones every reply
    /// has (53, 54, 51, 58, 59, 1, 28, 3, 6, 12, 15): 26, 42, 119 and 121
    /// from their keys, then the custom options, with the reservation's
    /// custom options replacing any of the same code. Sorted by code.
    ///
    /// Both dataplanes add exactly these to an OFFER/ACK (the renderer for
    /// the XDP program's blocks, `crate::dhcp` for the userspace server's
    /// replies), so they cannot disagree.
    pub fn extra_options(&self, reservation: Option<&Reservation>) -> Vec<CustomOption> {
        let mut out: Vec<CustomOption> = Vec::with_capacity(4 + self.options.len());
        if let Some(mtu) = self.mtu {
            out.push(CustomOption {
                code: options::MTU,
                data: mtu.to_be_bytes().to_vec(),
            });
        }
        if !self.ntp.is_empty() {
            out.push(CustomOption {
                code: options::NTP,
                data: self.ntp.iter().flat_map(|a| a.octets()).collect(),
            });
        }
        if !self.domain_search.is_empty() {
            out.push(CustomOption {
                code: options::DOMAIN_SEARCH,
                data: options::domain_search(&self.domain_search),
            });
        }
        if !self.routes.is_empty() {
            out.push(CustomOption {
                code: options::CLASSLESS_ROUTES,
                data: options::classless_routes(&self.routes),
            });
        }
        out.extend(self.options.iter().cloned());
        if let Some(r) = reservation {
            out.retain(|o| !r.options.iter().any(|ro| ro.code == o.code));
            out.extend(r.options.iter().cloned());
        }
        out.sort_by_key(|o| o.code);
        out
    }
}

/// Where a reservation was written: a file and the line of its MAC
/// ("stormboot.toml:20", "hosts.csv:3"), or a name ("api"). Eight bytes:
/// the file's name is kept once, in a table of the names the process has
/// seen, and the origin holds its number; a pointer to it in each of a
/// million reservations would cost 16 MB, a string each 32 MB.
#[derive(Debug, Clone, Copy, Eq)]
pub struct Origin {
    file: OriginName,
    /// 0: a name, no line.
    line: u32,
}

/// A file's name (or a name) in the origins' table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginName(u32);

/// The names origins were given. Few: the configuration files, "api",
/// "omapi"; each is kept for the life of the process.
static ORIGIN_NAMES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());

impl OriginName {
    /// `name`'s number, the same for every origin of that name.
    pub fn of(name: &str) -> OriginName {
        let find = |names: &[&str]| names.iter().position(|n| *n == name);
        let known = ORIGIN_NAMES.read().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = find(&known) {
            return OriginName(i as u32);
        }
        drop(known);
        let mut names = ORIGIN_NAMES.write().unwrap_or_else(|e| e.into_inner());
        let i = find(&names).unwrap_or_else(|| {
            names.push(Box::leak(name.into()));
            names.len() - 1
        });
        OriginName(i as u32)
    }

    fn as_str(self) -> &'static str {
        ORIGIN_NAMES
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(self.0 as usize)
            .copied()
            .unwrap_or("?")
    }
}

impl Origin {
    pub fn at(file: OriginName, line: usize) -> Origin {
        Origin {
            file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
        }
    }

    /// The line, 0 for a name.
    pub fn line(&self) -> usize {
        self.line as usize
    }
}

impl From<&str> for Origin {
    fn from(name: &str) -> Origin {
        Origin {
            file: OriginName::of(name),
            line: 0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(self.file.as_str()),
            n => write!(f, "{}:{n}", self.file.as_str()),
        }
    }
}

/// Equal when written the same: "a.toml:3" as a name equals a.toml, line 3.
impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        match (self.line, other.line) {
            (0, 0) | (1.., 1..) => self.line == other.line && self.file == other.file,
            (0, _) => *other == *self.file.as_str(),
            (_, _) => *self == *other.file.as_str(),
        }
    }
}

impl PartialEq<str> for Origin {
    fn eq(&self, other: &str) -> bool {
        let file = self.file.as_str();
        match self.line {
            0 => file == other,
            n => other
                .strip_prefix(file)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|l| l == n.to_string()),
        }
    }
}

impl PartialEq<&str> for Origin {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Origin {
    fn eq(&self, other: &String) -> bool {
        *self == *other.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// Inline when short: one of a million (see `compact`).
    pub hostname: Option<Name>,
    /// Index into [`Config::subnets`] of the subnet containing `ip` (the
    /// program's maps number subnets in 16 bits too).
    pub subnet: u16,
    /// "stormboot.toml:20" or "hosts.csv:3" (the line of the MAC), so later
    /// messages about this reservation can point at where it was written.
    pub origin: Origin,
    /// Custom options of this machine, sorted by code; they win over the
    /// subnet's options (and its 26/42/119/121 keys) of the same code.
    pub options: List<CustomOption>,
    /// Index into [`Config::profiles`]: what this machine boots.
    pub profile: Option<u16>,
    /// false: plain DHCP only, never boot information, whatever the
    /// profiles say (`allow_pxe = false`, as Tinkerbell's allowPXE).
    pub allow_pxe: bool,
    /// A boot file given for this machine alone (OMAPI's `filename`, the
    /// API's `boot_file`): every request gets it, whatever its
    /// architecture, as ISC dhcpd's host `filename` does.
    pub boot_file: Option<Text>,
    /// The next server (siaddr, option 66) that goes with it; the server's
    /// own address when unset.
    pub next_server: Option<Ipv4Addr>,
    /// What the dashboard can group machines by besides their subnet
    /// (a rack, a row, a role).
    pub label: Option<Text>,
}

/// A file and, when the problem has one, a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    /// The io::Error is the message, not a source, so that error chains
    /// (anyhow's `{:#}`) do not print it twice.
    #[error("{}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Syntax, unknown keys and wrong types, as reported by the toml crate;
    /// `key` is absent for syntax errors, where there is no key to name.
    #[error("{at}: {}{message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Toml {
        at: Location,
        key: Option<String>,
        message: String,
    },
    /// A value that is well-formed TOML but not acceptable.
    #[error("{at}: {key}: {message}")]
    Invalid {
        at: Location,
        key: String,
        message: String,
    },
}

impl ConfigError {
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Toml { at, .. } | ConfigError::Invalid { at, .. } => Some(at),
        }
    }
}

impl Config {
    /// Reads and validates the config file and its reservations file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_outlined(path, &mut |_| {})
    }

    /// `load`, calling `outline` once the configuration is known but for
    /// its reservations file, before that file is parsed.
    pub fn load_outlined(path: &Path, outline: OnOutline) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(
            text.as_str(),
            path,
            &mut |p| std::fs::read_to_string(p),
            outline,
        )
    }

    /// Validates `text` as if read from `path`, which names the file in
    /// messages and anchors a relative `reservations_file` (which is read).
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, path, &mut |p| std::fs::read_to_string(p), &mut |_| {})
    }

    /// `from_str` with `read` in place of the file system, for the files
    /// the config names (the reservations file).
    pub fn from_str_with(
        text: &str,
        path: &Path,
        read: validate::ReadFile,
    ) -> Result<Config, ConfigError> {
        Config::parse(text, path, read, &mut |_| {})
    }

    fn parse(
        text: &str,
        path: &Path,
        read: validate::ReadFile,
        outline: OnOutline,
    ) -> Result<Config, ConfigError> {
        let src = Source::new(text, path);
        let wire: wire::File = toml::from_str(text).map_err(|e| src.toml_error(e))?;
        validate::validate(wire, &src, read, outline)
    }
}

#[cfg(test)]
mod tests;
