//! `stormboot print-config --for ...`: the snippet another DHCP server
//! needs so that stormboot (in boot-only mode) serves its machines' boot:
//! PXE firmware gets an iPXE binary over TFTP from this host, and iPXE
//! itself (recognised by its user class) gets its script over HTTP, which
//! ends the chainload loop.

use crate::bootfile::http_base;
use crate::config::Config;

/// The servers a snippet can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    Dnsmasq,
    Kea,
    IscDhcpd,
    Windows,
}

/// The script URL handed to iPXE. iPXE expands `${net0/mac}` in the boot
/// file name itself, so one line serves every machine and stormboot knows
/// which machine asks without knowing its address.
pub fn script_url(cfg: &Config) -> String {
    format!("{}/${{net0/mac}}/auto.ipxe", http_base(cfg))
}

/// The snippet for `peer`. Each sends the same file for the same request as
/// stormboot's own rule (`rules::boot_variant`, `bootfile::boot_spec`):
/// iPXE first (its script, whatever it runs on), then PXE firmware by
/// option 93; an architecture with no file configured gets none.
pub fn render(cfg: &Config, peer: Peer) -> String {
    let server = cfg.server.address;
    let b = &cfg.boot;
    let url = script_url(cfg);
    let marker = &b.ipxe_user_class;
    let ia32 = b.efi_ia32_file.as_deref();
    match peer {
        Peer::Dnsmasq => {
            // iPXE always sends option 175; a custom marker is a user class.
            let ipxe = if marker == "iPXE" {
                "dhcp-match=set:ipxe,175\n".to_string()
            } else {
                format!("dhcp-userclass=set:ipxe,{marker}\n")
            };
            let ia32_boot = ia32.map_or(String::new(), |f| {
                format!("dhcp-boot=tag:!ipxe,tag:efi-ia32,{f},,{server}\n")
            });
            format!(
                "# stormboot boot-only: this dnsmasq gives the addresses, {server} the boot files.\n\
                 {ipxe}\
                 dhcp-match=set:efi-x64,option:client-arch,7\n\
                 dhcp-match=set:efi-x64,option:client-arch,9\n\
                 dhcp-match=set:efi-arm64,option:client-arch,11\n\
                 dhcp-match=set:efi-ia32,option:client-arch,6\n\
                 dhcp-boot=tag:ipxe,{url}\n\
                 dhcp-boot=tag:!ipxe,tag:efi-x64,{efi},,{server}\n\
                 dhcp-boot=tag:!ipxe,tag:efi-arm64,{arm},,{server}\n\
                 {ia32_boot}\
                 dhcp-boot=tag:!ipxe,tag:!efi-x64,tag:!efi-arm64,tag:!efi-ia32,{bios},,{server}\n",
                efi = b.efi_x64_file,
                arm = b.efi_arm64_file,
                bios = b.bios_file,
            )
        }
        Peer::Kea => {
            let ia32_class = ia32.map_or(String::new(), |f| {
                format!(
                    "\x20 {{ \"name\": \"efi-ia32\", \"test\": \"not member('ipxe') and option[93].hex == 0x0006\",\n\
                     \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{f}\" }},\n"
                )
            });
            format!(
                "// stormboot boot-only: add to \"Dhcp4\"; Kea gives the addresses, {server} the boot files.\n\
                 \"client-classes\": [\n\
                 \x20 {{ \"name\": \"ipxe\", \"test\": \"substring(option[77].hex,0,{n}) == '{marker}'\",\n\
                 \x20   \"boot-file-name\": \"{url}\" }},\n\
                 \x20 {{ \"name\": \"efi-x64\", \"test\": \"not member('ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)\",\n\
                 \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{efi}\" }},\n\
                 \x20 {{ \"name\": \"efi-arm64\", \"test\": \"not member('ipxe') and option[93].hex == 0x000b\",\n\
                 \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{arm}\" }},\n\
                 {ia32_class}\
                 \x20 {{ \"name\": \"bios\", \"test\": \"not member('ipxe') and option[93].hex == 0x0000\",\n\
                 \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{bios}\" }}\n\
                 ]\n",
                n = marker.len(),
                efi = b.efi_x64_file,
                arm = b.efi_arm64_file,
                bios = b.bios_file,
            )
        }
        // Option 93 is two bytes: dhcpd compares data, so the values are
        // written as two-byte data (00:07); a bare 7 is one byte and never
        // matches. Without an `else`, a client with no known architecture
        // gets no file, as from stormboot.
        Peer::IscDhcpd => {
            let ia32_branch = ia32.map_or(String::new(), |f| {
                format!("}} elsif option arch = 00:06 {{\n\x20 filename \"{f}\";\n")
            });
            format!(
                "# stormboot boot-only: ISC dhcpd gives the addresses, {server} the boot files.\n\
                 # Add at the top level of dhcpd.conf; your subnets and ranges stay as they are.\n\
                 option arch code 93 = unsigned integer 16;\n\
                 next-server {server};\n\
                 if exists user-class and option user-class = \"{marker}\" {{\n\
                 \x20 filename \"{url}\";\n\
                 }} elsif option arch = 00:07 or option arch = 00:09 {{\n\
                 \x20 filename \"{efi}\";\n\
                 }} elsif option arch = 00:0b {{\n\
                 \x20 filename \"{arm}\";\n\
                 {ia32_branch}\
                 }} elsif option arch = 00:00 {{\n\
                 \x20 filename \"{bios}\";\n\
                 }}\n",
                efi = b.efi_x64_file,
                arm = b.efi_arm64_file,
                bios = b.bios_file,
            )
        }
        // Microsoft DHCP applies, of all the policies a client matches,
        // each option from the one with the lowest processing order: the
        // iPXE policy is order 1, so iPXE on UEFI (which matches the UEFI
        // vendor class too) gets its script, not ipxe.efi again. The
        // orders are given explicitly rather than left to creation order.
        Peer::Windows => {
            let mut policies = vec![
                ("iPXE", "User", marker.clone(), url.clone()),
                (
                    "UEFI x64",
                    "Vendor",
                    "PXEClient:Arch:00007".into(),
                    b.efi_x64_file.clone(),
                ),
                (
                    "UEFI x64 (9)",
                    "Vendor",
                    "PXEClient:Arch:00009".into(),
                    b.efi_x64_file.clone(),
                ),
                (
                    "UEFI arm64",
                    "Vendor",
                    "PXEClient:Arch:00011".into(),
                    b.efi_arm64_file.clone(),
                ),
            ];
            if let Some(f) = ia32 {
                policies.push((
                    "UEFI IA32",
                    "Vendor",
                    "PXEClient:Arch:00006".into(),
                    f.to_string(),
                ));
            }
            policies.push((
                "BIOS",
                "Vendor",
                "PXEClient:Arch:00000".into(),
                b.bios_file.clone(),
            ));
            let mut out = format!(
                "# stormboot boot-only: Windows DHCP gives the addresses, {server} the boot files (PowerShell).\n\
                 # Policies apply by -ProcessingOrder, lowest first: iPXE must stay first.\n\
                 Set-DhcpServerv4OptionValue -OptionId 66 -Value '{server}'\n"
            );
            for (order, (name, kind, data, file)) in policies.iter().enumerate() {
                let order = order + 1;
                let cond = if *kind == "User" {
                    format!("-UserClass EQ,'stormboot {name}'")
                } else {
                    format!("-VendorClass EQ,'stormboot {name}*'")
                };
                out += &format!(
                    "Add-DhcpServerv4Class -Name 'stormboot {name}' -Type {kind} -Data '{data}'\n\
                     Add-DhcpServerv4Policy -Name 'stormboot {name}' -ProcessingOrder {order} -Condition OR {cond}\n\
                     Set-DhcpServerv4OptionValue -PolicyName 'stormboot {name}' -OptionId 67 -Value '{file}'\n"
                );
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CFG: &str =
        "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\nmode = \"boot-only\"\n\n\
                       [boot]\nhttp_port = 8080\n\n[[subnet]]\ncidr = \"10.50.0.0/24\"\n";

    #[test]
    fn snippets_name_this_host_and_the_script_url() {
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let url = "http://10.50.0.1:8080/${net0/mac}/auto.ipxe";
        for peer in [Peer::Dnsmasq, Peer::Kea, Peer::IscDhcpd, Peer::Windows] {
            let s = render(&cfg, peer);
            assert!(s.contains(url), "{peer:?}: {s}");
            assert!(
                s.contains("undionly.kpxe") && s.contains("ipxe.efi"),
                "{peer:?}: {s}"
            );
            assert!(s.contains("10.50.0.1"), "{peer:?}");
        }
        let d = render(&cfg, Peer::Dnsmasq);
        assert!(d.contains("dhcp-match=set:ipxe,175\n"));
        assert!(d.contains(
            "dhcp-boot=tag:!ipxe,tag:!efi-x64,tag:!efi-arm64,tag:!efi-ia32,undionly.kpxe,,10.50.0.1\n"
        ));
        let t = CFG.replace(
            "http_port = 8080",
            "http_port = 8080\nipxe_user_class = \"Tinkerbell\"",
        );
        let cfg = Config::from_str(&t, Path::new("stormboot.toml")).unwrap();
        assert!(render(&cfg, Peer::Dnsmasq).contains("dhcp-userclass=set:ipxe,Tinkerbell\n"));
        assert!(render(&cfg, Peer::Kea).contains("substring(option[77].hex,0,10) == 'Tinkerbell'"));
    }

    /// Windows cannot run here (tests/peers.rs runs the others): the
    /// order of its policies is checked as text. Microsoft DHCP takes each
    /// option from the matching policy with the lowest processing order,
    /// and iPXE on UEFI matches both the iPXE and the UEFI x64 policy.
    #[test]
    fn windows_evaluates_the_ipxe_policy_first() {
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let w = render(&cfg, Peer::Windows);
        let order = |name: &str| -> usize {
            let line = w
                .lines()
                .find(|l| l.starts_with(&format!("Add-DhcpServerv4Policy -Name '{name}'")))
                .unwrap_or_else(|| panic!("no policy {name}: {w}"));
            let (_, rest) = line
                .split_once("-ProcessingOrder ")
                .expect("explicit order");
            rest.split(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(order("stormboot iPXE"), 1, "{w}");
        for other in [
            "stormboot UEFI x64",
            "stormboot UEFI arm64",
            "stormboot BIOS",
        ] {
            assert!(order(other) > 1, "{other}: {w}");
        }
        // Created before the others too, for readers of the script.
        assert!(w.find("'stormboot iPXE'").unwrap() < w.find("'stormboot UEFI x64'").unwrap());
        // No server-wide boot file: an architecture without a policy (IA32
        // with no efi_ia32_file) gets none, as from stormboot.
        assert!(
            !w.contains("-OptionId 67 -Value 'undionly.kpxe'\nAdd"),
            "{w}"
        );
        assert!(
            !w.lines()
                .any(|l| l.starts_with("Set-DhcpServerv4OptionValue -OptionId 67")),
            "{w}"
        );
        assert!(!w.contains("IA32"), "{w}");
    }

    /// Option 93 is two bytes: dhcpd matches it only as two-byte data.
    #[test]
    fn isc_dhcpd_matches_the_two_byte_architecture() {
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let s = render(&cfg, Peer::IscDhcpd);
        assert!(
            s.contains("option arch = 00:07 or option arch = 00:09 {"),
            "{s}"
        );
        assert!(!s.contains("option arch = 7"), "{s}");
        assert!(!s.contains("00:06"), "no IA32 file, no IA32 branch: {s}");
        let t = CFG.replace(
            "http_port = 8080",
            "http_port = 8080\nefi_ia32_file = \"ia32.efi\"",
        );
        let cfg = Config::from_str(&t, Path::new("stormboot.toml")).unwrap();
        for peer in [Peer::Dnsmasq, Peer::Kea, Peer::IscDhcpd, Peer::Windows] {
            assert!(render(&cfg, peer).contains("ia32.efi"), "{peer:?}");
        }
    }
}
