//! stormboot: a DHCP and network-boot server whose known machines are
//! answered by an XDP program, with a complete userspace server behind it.

pub mod frame;
