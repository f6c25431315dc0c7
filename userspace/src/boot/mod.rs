//! Network boot, second stage: what a machine fetches once iPXE runs.
//!
//! `script` renders the per-machine iPXE script, `web` serves it together
//! with the iPXE binaries and the artifacts directory over HTTP (`fileserve`
//! answers for one file, `http1` runs the connections), and `syslog`
//! receives the log lines booting machines send back. The types here are the
//! inputs the daemon hands in; they are converted from `crate::config` so this
//! module does not depend on how the config file spells them.

use std::net::Ipv4Addr;
use std::sync::Arc;

pub mod fileserve;
pub mod http1;
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
    /// Its reservation's label (the dashboard groups by it).
    pub label: Option<String>,
}
