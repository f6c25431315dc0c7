//! stormboot: a DHCP and network-boot server whose known machines are
//! answered by an XDP program, with a complete userspace server behind it.

pub mod api;
pub mod boot;
pub mod bootfile;
pub mod cli;
pub mod clidocs;
pub mod config;
pub mod dashboard;
pub mod dataplane;
pub mod dhcp;
pub mod events;
pub mod frame;
pub mod hooks;
pub mod http;
pub mod httpclient;
pub mod import;
pub mod leases;
pub mod link;
pub mod metrics;
pub mod omapi;
pub mod packetlink;
pub mod peerconfig;
pub mod ra;
pub mod rawsock;
pub mod reload;
pub mod render;
pub mod reservation;
pub mod sdnotify;
pub mod serve;
pub mod service;
pub mod services;
pub mod slowpath;
pub mod stats;
pub mod store;
pub mod tftp;
pub mod timeline;
