//! What a booting machine is told to load: the boot variant of a request
//! (by the rule the XDP program applies too) and, for a machine with a boot
//! profile, the file or URL and the options that go with it.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, OptionCode};
use stormboot_common::maps::variant;
use stormboot_common::rules;

use crate::config::{self, Config};
use crate::frame::format_mac;

/// The boot part of an OFFER/ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSpec {
    /// Next server (siaddr) and option 66: where the TFTP file is.
    pub next_server: Ipv4Addr,
    /// BOOTP file field and option 67: a TFTP file name or an http:// URL.
    pub file: String,
    /// Option 60 echoed: "PXEClient" or "HTTPClient" (firmware needs it to
    /// take a boot file from a plain DHCP reply).
    pub vendor_class: Option<&'static str>,
    /// Option 43 with PXE discovery control 8: boot the file, no boot-server
    /// discovery.
    pub pxe_discovery_control: bool,
    /// Option 175 sub-option 176 (no-pxedhcp) = 1: iPXE skips its wait for
    /// a ProxyDHCP offer (2-3 s per boot).
    pub ipxe_no_proxydhcp: bool,
}

/// The variant `msg` asks for, by `rules::boot_variant`.
pub fn variant_of(msg: &Message, marker: &str) -> u16 {
    let o = msg.opts();
    let arch = match o.get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(u16::from(*a)),
        _ => None,
    };
    let vendor = match o.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => rules::vendor_of(v),
        _ => rules::Vendor::Other,
    };
    let ipxe = match o.get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(v)) => rules::has_user_class(v, marker.as_bytes()),
        _ => false,
    };
    rules::boot_variant(arch, vendor, ipxe)
}

/// The profile that applies to a reserved machine: its own, else the
/// default.
pub fn reservation_profile(cfg: &Config, r: &config::Reservation) -> Option<usize> {
    if !r.allow_pxe {
        return None;
    }
    r.profile.map(usize::from).or(cfg.boot.default_profile)
}

/// The profile of a pool client of `subnet`: the subnet's, else the default.
pub fn pool_profile(cfg: &Config, subnet: &config::Subnet) -> Option<usize> {
    subnet.profile.or(cfg.boot.default_profile)
}

/// The base URL of the boot HTTP service, as machines reach it.
pub fn http_base(cfg: &Config) -> String {
    match cfg.boot.http_port {
        80 => format!("http://{}", cfg.server.address),
        port => format!("http://{}:{port}", cfg.server.address),
    }
}

/// What a machine with a boot profile gets for `v`; None for plain DHCP.
pub fn boot_spec(cfg: &Config, v: u16, mac: [u8; 6]) -> Option<BootSpec> {
    let b = &cfg.boot;
    let next_server = cfg.server.address;
    let pxe = |file: &str| BootSpec {
        next_server,
        file: file.to_string(),
        vendor_class: Some("PXEClient"),
        pxe_discovery_control: true,
        ipxe_no_proxydhcp: false,
    };
    let http = |file: &str| BootSpec {
        next_server,
        file: format!("{}/{file}", http_base(cfg)),
        vendor_class: Some("HTTPClient"),
        pxe_discovery_control: false,
        ipxe_no_proxydhcp: false,
    };
    match v {
        variant::PXE_BIOS => Some(pxe(&b.bios_file)),
        variant::PXE_EFI_X64 => Some(pxe(&b.efi_x64_file)),
        variant::PXE_EFI_ARM64 => Some(pxe(&b.efi_arm64_file)),
        // No IA32 file configured: plain DHCP, never the x64 binary.
        variant::PXE_EFI_IA32 => b.efi_ia32_file.as_deref().map(pxe),
        variant::HTTP_EFI_X64 => Some(http(&b.efi_x64_file)),
        variant::HTTP_EFI_ARM64 => Some(http(&b.efi_arm64_file)),
        variant::IPXE => Some(BootSpec {
            next_server,
            file: format!("{}/{}/auto.ipxe", http_base(cfg), format_mac(&mac)),
            vendor_class: None,
            pxe_discovery_control: false,
            ipxe_no_proxydhcp: b.ipxe_no_proxydhcp,
        }),
        _ => None,
    }
}

/// The options a boot spec adds to a reply.
pub fn options(b: &BootSpec) -> Vec<DhcpOption> {
    let mut o = vec![DhcpOption::TFTPServerName(
        b.next_server.to_string().into_bytes(),
    )];
    // A reservation may give a next server without a file.
    if !b.file.is_empty() {
        o.push(DhcpOption::BootfileName(b.file.clone().into_bytes()));
    }
    if let Some(v) = b.vendor_class {
        o.push(DhcpOption::ClassIdentifier(v.as_bytes().to_vec()));
    }
    if b.pxe_discovery_control {
        // PXE spec: sub-option 6 (discovery control) = 8, then END.
        o.push(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
    }
    if b.ipxe_no_proxydhcp {
        o.push(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
            OptionCode::Unknown(175),
            vec![176, 1, 1],
        )));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_gets_the_option_that_skips_proxydhcp() {
        let b = BootSpec {
            next_server: Ipv4Addr::new(10, 50, 0, 1),
            file: "http://10.50.0.1/52:54:00:00:00:01/auto.ipxe".into(),
            vendor_class: None,
            pxe_discovery_control: false,
            ipxe_no_proxydhcp: true,
        };
        let mut m = Message::default();
        for o in options(&b) {
            m.opts_mut().insert(o);
        }
        let mut bytes = Vec::new();
        dhcproto::Encodable::encode(&m, &mut dhcproto::Encoder::new(&mut bytes)).unwrap();
        // Option 175 (iPXE's encapsulated options), length 3, holding
        // sub-option 176 (no-pxedhcp), length 1, value 1, as iPXE's
        // include/ipxe/dhcp.h numbers them; tests/qemu.rs shows iPXE acting
        // on it (`bios_ipxe_boots_through_xdp` beside
        // `bios_boot_without_no_pxedhcp`).
        assert!(bytes
            .windows(5)
            .any(|w| w == [0xaf, 0x03, 0xb0, 0x01, 0x01]));
    }
}
