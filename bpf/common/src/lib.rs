//! stormboot-common: the contract between the XDP program and the daemon.
//!
//! Everything that crosses the kernel/user boundary is defined here once:
//! map keys and values, counter indices, reply events and their ring, the fixed
//! layout of a rendered reply, and the pure RFC 2131 rules both sides apply.
//! All types are `#[repr(C)]`, `Copy` and free of implicit padding.
#![no_std]

pub mod bucket;
pub mod counters;
pub mod csum;
pub mod events;
pub mod generate;
pub mod layout;
pub mod maps;
pub mod rules;
pub mod table;
pub mod tally;

/// Bumped whenever a map layout, counter index or event changes, so a daemon
/// never drives a program (or pinned maps) built against another contract.
pub const LAYOUT_VERSION: u32 = 6;
