//! Renders a machine's iPXE script from its boot profile.
//!
//! Without a custom template the script is the four lines iPXE needs:
//! `#!ipxe`, `kernel`, `initrd`, `boot`. A profile's own template gets a
//! fixed set of variables substituted; every other `${...}` is iPXE's and is
//! left for iPXE to expand at boot time.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::{MachineInfo, Profile};
use crate::frame::format_mac;

/// The variables a custom template may use. Anything else in `${...}` is an
/// iPXE setting (`${net0/mac}`, `${buildarch}`, ...) and must survive as is.
pub const VARIABLES: &[&str] = &[
    "mac",
    "ip",
    "hostname",
    "kernel_url",
    "initrd_url",
    "cmdline",
    "base_url",
];

/// Renders `profile` for machine `m`. `base_url` is where the boot HTTP port
/// is reachable from the machine, e.g. `http://10.50.0.1:8080`.
pub fn render(profile: &Profile, m: &MachineInfo, base_url: &str) -> String {
    let known = Known {
        mac: Some(m.mac),
        ip: m.ip,
        hostname: m.hostname.as_deref(),
    };
    render_known(profile, &known, base_url)
}

/// What is known about the requester, which for a machine without a
/// reservation may be nothing at all.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Known<'a> {
    pub mac: Option<[u8; 6]>,
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<&'a str>,
}

pub(crate) fn render_known(profile: &Profile, known: &Known<'_>, base_url: &str) -> String {
    let kernel_url = resolve(base_url, &profile.kernel);
    let initrd_url = profile.initrd.as_deref().map(|i| resolve(base_url, i));
    match &profile.script {
        Some(template) => substitute(template, |name| {
            let value = match name {
                "mac" => format_mac(&known.mac?),
                "ip" => known.ip?.to_string(),
                "hostname" => known.hostname?.to_owned(),
                "kernel_url" => kernel_url.clone(),
                "initrd_url" => initrd_url.clone().unwrap_or_default(),
                "cmdline" => profile.cmdline.clone(),
                "base_url" => base_url.trim_end_matches('/').to_owned(),
                _ => return None,
            };
            Some(value)
        }),
        None => {
            let mut s = String::from("#!ipxe\n");
            let mut kernel = format!("kernel {kernel_url}");
            if let Some(url) = &initrd_url {
                // EFI stub kernels find their initrd by this name (iPXE hands
                // it over as a file named after the URL's last segment); BIOS
                // boots ignore it.
                let _ = write!(kernel, " initrd={}", image_name(url));
            }
            let cmdline = one_line(profile.cmdline.trim());
            if !cmdline.is_empty() {
                let _ = write!(kernel, " {cmdline}");
            }
            s.push_str(&kernel);
            s.push('\n');
            if let Some(url) = &initrd_url {
                let _ = writeln!(s, "initrd {url}");
            }
            s.push_str("boot\n");
            s
        }
    }
}

/// A name with a scheme is a URL already; anything else is a file in the
/// artifacts directory, served by this process under `/artifacts/`.
pub fn resolve(base_url: &str, name: &str) -> String {
    if name.contains("://") {
        return name.to_owned();
    }
    let base = base_url.trim_end_matches('/');
    let rel = name.trim_start_matches('/');
    format!("{base}/artifacts/{}", encode_path(rel))
}

/// The name iPXE gives an image it downloads: the last path segment of its
/// URL, without query or fragment.
fn image_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// Percent-encodes what would end an iPXE argument or a URL path early
/// (spaces, `?`, `#`, `%`, controls); `/` stays a separator.
fn encode_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Substituted values go into a line-oriented script: a newline in, say, a
/// client-supplied hostname would otherwise start a new iPXE command.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Replaces each `${name}` for which `value` answers; everything else,
/// including unknown names and names whose value is not known (iPXE has its
/// own `${mac}`, `${ip}` and `${hostname}`, which then stand in), is copied
/// verbatim. Single pass: substituted text is never expanded again.
fn substitute(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match value(name) {
                    Some(v) => out.push_str(&one_line(&v)),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://10.50.0.1:8080";

    fn profile() -> Profile {
        Profile {
            name: "debian".into(),
            kernel: "debian/vmlinuz".into(),
            initrd: Some("debian/initrd.img".into()),
            cmdline: "console=ttyS0 quiet".into(),
            script: None,
        }
    }

    fn machine() -> MachineInfo {
        MachineInfo {
            mac: [0x52, 0x54, 0, 0, 0, 1],
            ip: Some(Ipv4Addr::new(10, 50, 0, 10)),
            hostname: Some("node1".into()),
            profile: None,
            label: None,
        }
    }

    #[test]
    fn default_script() {
        assert_eq!(
            render(&profile(), &machine(), BASE),
            "#!ipxe\n\
             kernel http://10.50.0.1:8080/artifacts/debian/vmlinuz initrd=initrd.img console=ttyS0 quiet\n\
             initrd http://10.50.0.1:8080/artifacts/debian/initrd.img\n\
             boot\n"
        );
    }

    #[test]
    fn absolute_urls_kept_and_no_initrd() {
        let p = Profile {
            kernel: "https://mirror.example/k/vmlinuz?v=2".into(),
            initrd: None,
            cmdline: String::new(),
            ..profile()
        };
        assert_eq!(
            render(&p, &machine(), "http://10.50.0.1:8080/"),
            "#!ipxe\nkernel https://mirror.example/k/vmlinuz?v=2\nboot\n"
        );
        let p = Profile {
            initrd: Some("http://x/boot/initrd.gz?token=1#f".into()),
            ..profile()
        };
        let s = render(&p, &machine(), BASE);
        assert!(s.contains(" initrd=initrd.gz console=ttyS0"), "{s}");
        assert!(
            s.contains("\ninitrd http://x/boot/initrd.gz?token=1#f\n"),
            "{s}"
        );
    }

    #[test]
    fn relative_names_are_encoded_and_rooted() {
        assert_eq!(
            resolve("http://h:1/", "/a b/k%1#?"),
            "http://h:1/artifacts/a%20b/k%251%23%3F"
        );
    }

    #[test]
    fn cmdline_cannot_add_lines() {
        let p = Profile {
            cmdline: "a\nshell\r\nb".into(),
            ..profile()
        };
        let s = render(&p, &machine(), BASE);
        assert_eq!(s.lines().count(), 4, "{s}");
        assert!(s.contains("initrd=initrd.img a shell  b\n"), "{s}");
    }

    #[test]
    fn template_substitutes_known_names_only() {
        let p = Profile {
            script: Some(
                "#!ipxe\n\
                 echo ${mac} ${ip} ${hostname} on ${net0/mac} ${buildarch}\n\
                 kernel ${kernel_url} initrd=initrd.img ${cmdline} x=${unknown}\n\
                 initrd ${initrd_url}\n\
                 chain ${base_url}/next?m=${mac:hexhyp} || ${ unterminated"
                    .into(),
            ),
            ..profile()
        };
        assert_eq!(
            render(&p, &machine(), BASE),
            "#!ipxe\n\
             echo 52:54:00:00:00:01 10.50.0.10 node1 on ${net0/mac} ${buildarch}\n\
             kernel http://10.50.0.1:8080/artifacts/debian/vmlinuz initrd=initrd.img console=ttyS0 quiet x=${unknown}\n\
             initrd http://10.50.0.1:8080/artifacts/debian/initrd.img\n\
             chain http://10.50.0.1:8080/next?m=${mac:hexhyp} || ${ unterminated"
        );
    }

    #[test]
    fn template_leaves_unknown_values_to_ipxe() {
        let p = Profile {
            initrd: None,
            script: Some("${mac} ${ip} ${hostname} [${initrd_url}]".into()),
            ..profile()
        };
        let s = render_known(&p, &Known::default(), BASE);
        assert_eq!(s, "${mac} ${ip} ${hostname} []");
    }

    #[test]
    fn template_values_are_not_expanded_again_and_stay_on_one_line() {
        let p = Profile {
            cmdline: "root=${ip}".into(),
            script: Some("${cmdline}|${hostname}".into()),
            ..profile()
        };
        let m = MachineInfo {
            hostname: Some("evil\nshell".into()),
            ..machine()
        };
        assert_eq!(render(&p, &m, BASE), "root=${ip}|evil shell");
    }
}
