//! An ISC-compatible OMAPI listener, so that Foreman's smart-proxy,
//! omshell scripts and pypureomapi manage stormboot's reservations as they
//! manage ISC dhcpd's hosts.
//!
//! - `wire`: the bytes (startup, framing, name/value lists), pure.
//! - `auth`: keys, signing and verification, pure.
//! - `statements`: the dhcpd.conf statements hosts carry, parsed into
//!   reservation fields, pure.
//! - `server`: the listener; hosts go through `api::live`.
//! - `client`: a small blocking client for the benchmark.
//! - `export`: the dhcpd.conf and dhcpd.leases files Foreman reads.

pub mod auth;
pub mod client;
pub mod export;
pub mod server;
pub mod statements;
pub mod wire;

/// isc_result_t values, as dhcpd returns them (BIND 9.11 numbering: ISC
/// codes plain, DHCP codes `(6 << 16) + n`).
pub mod result {
    pub const SUCCESS: u32 = 0;
    pub const NOPERM: u32 = 6;
    pub const EXISTS: u32 = 18;
    pub const NOTFOUND: u32 = 23;
    pub const NOTIMPLEMENTED: u32 = 27;
    pub const INVALIDARG: u32 = 0x60003;
    pub const KEYCONFLICT: u32 = 0x60007;
    pub const BADPARSE: u32 = 0x60008;
    pub const NOKEYS: u32 = 0x60009;
    pub const INVALIDKEY: u32 = 0x6000b;
    pub const UNKNOWNATTRIBUTE: u32 = 0x60020;
}
