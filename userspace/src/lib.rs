//! stormboot: a DHCP and network-boot server whose known machines are
//! answered by an XDP program, with a complete userspace server behind it.

pub mod boot;
pub mod bootfile;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod dhcp;
pub mod events;
pub mod frame;
pub mod fuzz;
pub mod http;
pub mod leases;
pub mod mutate;
pub mod peerconfig;
pub mod ra;
pub mod rawsock;
pub mod render;
pub mod serve;
pub mod services;
pub mod slowpath;
pub mod stats;
pub mod store;
pub mod storm;
pub mod tftp;
pub mod timeline;
pub mod xdpbench;
pub mod xdpdiff;
