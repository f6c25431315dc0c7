//! The network-boot part of the configuration: `[boot]` (where the iPXE
//! binaries and the artifacts are, the service ports, the iPXE marker) and
//! `[[profile]]` (what a machine boots), and the `profile` names that
//! reservations and subnets refer to.

use std::path::PathBuf;

use serde_spanned::Spanned;
use stormboot_common::maps::MARKER_MAX;

use super::location::Source;
use super::{wire, Boot, ConfigError, Profile};

/// Debian's ipxe package puts undionly.kpxe, ipxe.efi and snponly.efi here.
pub const DEFAULT_TFTP_ROOT: &str = "/usr/lib/ipxe";
pub const DEFAULT_ARTIFACTS_DIR: &str = "/srv/stormboot";
pub const DEFAULT_BIOS_FILE: &str = "undionly.kpxe";
pub const DEFAULT_EFI_X64_FILE: &str = "ipxe.efi";
/// Debian ships no arm64 iPXE; the name operators usually give their build.
pub const DEFAULT_EFI_ARM64_FILE: &str = "ipxe-arm64.efi";
/// Bounds of `boot.tftp_max_transfers` and `boot.file_cache_mb`: beyond
/// 65536 transfers the ephemeral ports run out; 64 GiB is no boot file set.
const MAX_TFTP_TRANSFERS: i64 = 65536;
const MAX_FILE_CACHE_MB: i64 = 65536;
/// listen(2) takes an int; the kernel caps it at net.core.somaxconn.
const MAX_HTTP_BACKLOG: i64 = 65535;

pub fn profiles(w: &[wire::Profile], src: &Source) -> Result<Vec<Profile>, ConfigError> {
    let mut out: Vec<Profile> = Vec::with_capacity(w.len());
    for (i, p) in w.iter().enumerate() {
        let key = |f: &str| format!("profile[{i}].{f}");
        let name = p.name.get_ref().trim();
        if name.is_empty() {
            return Err(src.invalid(&p.name.span(), key("name"), "is empty"));
        }
        if let Some(j) = out.iter().position(|o| o.name == name) {
            return Err(src.invalid(
                &p.name.span(),
                key("name"),
                format!("{name:?} is also profile[{j}].name"),
            ));
        }
        if p.kernel.get_ref().trim().is_empty() {
            return Err(src.invalid(&p.kernel.span(), key("kernel"), "is empty"));
        }
        out.push(Profile {
            name: name.to_string(),
            kernel: p.kernel.get_ref().clone(),
            initrd: p.initrd.as_ref().map(|s| s.get_ref().clone()),
            cmdline: p
                .cmdline
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_default(),
            script: p.script.as_ref().map(|s| s.get_ref().clone()),
        });
    }
    Ok(out)
}

/// The index of the profile `name` refers to, or an error at `name`.
pub fn profile_ref(
    name: &Spanned<String>,
    key: &str,
    profiles: &[Profile],
    src: &Source,
) -> Result<usize, ConfigError> {
    profiles
        .iter()
        .position(|p| &p.name == name.get_ref())
        .ok_or_else(|| {
            src.invalid(
                &name.span(),
                key,
                format!("no [[profile]] is named {:?}", name.get_ref()),
            )
        })
}

pub fn boot(
    w: Option<&wire::Boot>,
    profiles: &[Profile],
    src: &Source,
) -> Result<Boot, ConfigError> {
    // Relative directories are taken from the config file's directory, so
    // the daemon's working directory does not matter.
    let dir = |s: &Option<Spanned<String>>, default: &str| -> PathBuf {
        let p = PathBuf::from(s.as_ref().map_or(default, |s| s.get_ref().as_str()));
        match src.path.parent() {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        }
    };
    let port = |s: &Option<Spanned<i64>>, key: &str, default: u16| -> Result<u16, ConfigError> {
        match s {
            None => Ok(default),
            Some(v) => u16::try_from(*v.get_ref())
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    src.invalid(
                        &v.span(),
                        key,
                        format!("{} is not a port (1..=65535)", v.get_ref()),
                    )
                }),
        }
    };
    let Some(w) = w else {
        return Ok(Boot {
            enabled: false,
            tftp_root: PathBuf::from(DEFAULT_TFTP_ROOT),
            artifacts_dir: PathBuf::from(DEFAULT_ARTIFACTS_DIR),
            http_port: 80,
            http_backlog: crate::boot::http1::DEFAULT_BACKLOG,
            tftp_port: 69,
            syslog_port: 514,
            ipxe_user_class: "iPXE".into(),
            default_profile: None,
            bios_file: DEFAULT_BIOS_FILE.into(),
            efi_x64_file: DEFAULT_EFI_X64_FILE.into(),
            efi_arm64_file: DEFAULT_EFI_ARM64_FILE.into(),
            efi_ia32_file: None,
            ipv6_ra: false,
            ipxe_no_proxydhcp: true,
            tftp_max_transfers: crate::tftp::DEFAULT_MAX_TRANSFERS,
            file_cache_mb: crate::filecache::DEFAULT_BUDGET_MB,
        });
    };
    let file =
        |s: &Option<Spanned<String>>, key: &str, default: &str| -> Result<String, ConfigError> {
            match s {
                None => Ok(default.to_string()),
                // Sent in the 128-byte BOOTP file field, NUL-terminated.
                Some(v)
                    if v.get_ref().is_empty()
                        || v.get_ref().len() > 127
                        || v.get_ref().contains("..") =>
                {
                    Err(src.invalid(&v.span(), key, "must be 1 to 127 bytes, without \"..\""))
                }
                Some(v) => Ok(v.get_ref().clone()),
            }
        };
    let marker = w
        .ipxe_user_class
        .as_ref()
        .map_or("iPXE", |s| s.get_ref().as_str());
    if let Some(s) = &w.ipxe_user_class {
        // The XDP program matches the marker from a fixed-size map value:
        // a longer one would be cut there and matched whole in userspace,
        // and the two dataplanes would answer the same request differently.
        if marker.is_empty() || marker.len() > MARKER_MAX {
            return Err(src.invalid(
                &s.span(),
                "boot.ipxe_user_class",
                format!(
                    "must be 1 to {MARKER_MAX} bytes (the XDP program's marker map holds {MARKER_MAX}), not {}",
                    marker.len()
                ),
            ));
        }
    }
    let within = |s: &Option<Spanned<i64>>, key: &str, range: std::ops::RangeInclusive<i64>| match s
    {
        None => Ok(None),
        Some(v) if range.contains(v.get_ref()) => Ok(Some(*v.get_ref())),
        Some(v) => Err(src.invalid(
            &v.span(),
            key,
            format!(
                "{} is out of range: {} to {}",
                v.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    };
    let tftp_max_transfers = within(
        &w.tftp_max_transfers,
        "boot.tftp_max_transfers",
        1..=MAX_TFTP_TRANSFERS,
    )?
    .map_or(crate::tftp::DEFAULT_MAX_TRANSFERS, |n| n as usize);
    let http_backlog = within(&w.http_backlog, "boot.http_backlog", 1..=MAX_HTTP_BACKLOG)?
        .map_or(crate::boot::http1::DEFAULT_BACKLOG, |n| n as u32);
    let file_cache_mb = within(
        &w.file_cache_mb,
        "boot.file_cache_mb",
        0..=MAX_FILE_CACHE_MB,
    )?
    .map_or(crate::filecache::DEFAULT_BUDGET_MB, |n| n as u64);
    let default_profile = match &w.default_profile {
        None => None,
        Some(name) => Some(profile_ref(name, "boot.default_profile", profiles, src)?),
    };
    Ok(Boot {
        enabled: true,
        tftp_root: dir(&w.tftp_root, DEFAULT_TFTP_ROOT),
        artifacts_dir: dir(&w.artifacts_dir, DEFAULT_ARTIFACTS_DIR),
        http_port: port(&w.http_port, "boot.http_port", 80)?,
        http_backlog,
        tftp_port: port(&w.tftp_port, "boot.tftp_port", 69)?,
        syslog_port: port(&w.syslog_port, "boot.syslog_port", 514)?,
        ipxe_user_class: marker.to_string(),
        default_profile,
        bios_file: file(&w.bios_file, "boot.bios_file", DEFAULT_BIOS_FILE)?,
        efi_x64_file: file(&w.efi_x64_file, "boot.efi_x64_file", DEFAULT_EFI_X64_FILE)?,
        efi_arm64_file: file(
            &w.efi_arm64_file,
            "boot.efi_arm64_file",
            DEFAULT_EFI_ARM64_FILE,
        )?,
        efi_ia32_file: match &w.efi_ia32_file {
            None => None,
            Some(_) => Some(file(&w.efi_ia32_file, "boot.efi_ia32_file", "")?),
        },
        ipv6_ra: w.ipv6_ra.as_ref().is_some_and(|v| *v.get_ref()),
        ipxe_no_proxydhcp: w.ipxe_no_proxydhcp.as_ref().is_none_or(|v| *v.get_ref()),
        tftp_max_transfers,
        file_cache_mb,
    })
}
