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

pub fn render(cfg: &Config, peer: Peer) -> String {
    let server = cfg.server.address;
    let b = &cfg.boot;
    let url = script_url(cfg);
    let marker = &b.ipxe_user_class;
    match peer {
        Peer::Dnsmasq => {
            // iPXE always sends option 175; a custom marker is a user class.
            let ipxe = if marker == "iPXE" {
                "dhcp-match=set:ipxe,175\n".to_string()
            } else {
                format!("dhcp-userclass=set:ipxe,{marker}\n")
            };
            format!(
                "# stormboot boot-only: this dnsmasq gives the addresses, {server} the boot files.\n\
                 {ipxe}\
                 dhcp-match=set:efi-x64,option:client-arch,7\n\
                 dhcp-match=set:efi-x64,option:client-arch,9\n\
                 dhcp-match=set:efi-arm64,option:client-arch,11\n\
                 dhcp-boot=tag:ipxe,{url}\n\
                 dhcp-boot=tag:!ipxe,tag:efi-x64,{efi},,{server}\n\
                 dhcp-boot=tag:!ipxe,tag:efi-arm64,{arm},,{server}\n\
                 dhcp-boot=tag:!ipxe,tag:!efi-x64,tag:!efi-arm64,{bios},,{server}\n",
                efi = b.efi_x64_file,
                arm = b.efi_arm64_file,
                bios = b.bios_file,
            )
        }
        Peer::Kea => format!(
            "// stormboot boot-only: add to \"Dhcp4\"; Kea gives the addresses, {server} the boot files.\n\
             \"client-classes\": [\n\
             \x20 {{ \"name\": \"ipxe\", \"test\": \"substring(option[77].hex,0,{n}) == '{marker}'\",\n\
             \x20   \"boot-file-name\": \"{url}\" }},\n\
             \x20 {{ \"name\": \"efi-x64\", \"test\": \"not member('ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)\",\n\
             \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{efi}\" }},\n\
             \x20 {{ \"name\": \"efi-arm64\", \"test\": \"not member('ipxe') and option[93].hex == 0x000b\",\n\
             \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{arm}\" }},\n\
             \x20 {{ \"name\": \"bios\", \"test\": \"not member('ipxe') and option[93].hex == 0x0000\",\n\
             \x20   \"next-server\": \"{server}\", \"boot-file-name\": \"{bios}\" }}\n\
             ]\n",
            n = marker.len(),
            efi = b.efi_x64_file,
            arm = b.efi_arm64_file,
            bios = b.bios_file,
        ),
        Peer::IscDhcpd => format!(
            "# stormboot boot-only: ISC dhcpd gives the addresses, {server} the boot files.\n\
             option arch code 93 = unsigned integer 16;\n\
             next-server {server};\n\
             if exists user-class and option user-class = \"{marker}\" {{\n\
             \x20 filename \"{url}\";\n\
             }} elsif option arch = 7 or option arch = 9 {{\n\
             \x20 filename \"{efi}\";\n\
             }} elsif option arch = 11 {{\n\
             \x20 filename \"{arm}\";\n\
             }} else {{\n\
             \x20 filename \"{bios}\";\n\
             }}\n",
            efi = b.efi_x64_file,
            arm = b.efi_arm64_file,
            bios = b.bios_file,
        ),
        Peer::Windows => format!(
            "# stormboot boot-only: Windows DHCP gives the addresses, {server} the boot files (PowerShell).\n\
             Add-DhcpServerv4Class -Name 'stormboot iPXE' -Type User -Data '{marker}'\n\
             Add-DhcpServerv4Class -Name 'stormboot UEFI x64' -Type Vendor -Data 'PXEClient:Arch:00007'\n\
             Set-DhcpServerv4OptionValue -OptionId 66 -Value '{server}'\n\
             Set-DhcpServerv4OptionValue -OptionId 67 -Value '{bios}'\n\
             Add-DhcpServerv4Policy -Name 'stormboot UEFI x64' -Condition OR -VendorClass EQ,'stormboot UEFI x64*'\n\
             Set-DhcpServerv4OptionValue -PolicyName 'stormboot UEFI x64' -OptionId 67 -Value '{efi}'\n\
             Add-DhcpServerv4Policy -Name 'stormboot iPXE' -Condition OR -UserClass EQ,'stormboot iPXE'\n\
             Set-DhcpServerv4OptionValue -PolicyName 'stormboot iPXE' -OptionId 67 -Value '{url}'\n",
            efi = b.efi_x64_file,
            bios = b.bios_file,
        ),
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
            "dhcp-boot=tag:!ipxe,tag:!efi-x64,tag:!efi-arm64,undionly.kpxe,,10.50.0.1\n"
        ));
        let t = CFG.replace(
            "http_port = 8080",
            "http_port = 8080\nipxe_user_class = \"Tinkerbell\"",
        );
        let cfg = Config::from_str(&t, Path::new("stormboot.toml")).unwrap();
        assert!(render(&cfg, Peer::Dnsmasq).contains("dhcp-userclass=set:ipxe,Tinkerbell\n"));
        assert!(render(&cfg, Peer::Kea).contains("substring(option[77].hex,0,10) == 'Tinkerbell'"));
    }
}
