//! `[omapi]`: the ISC-compatible OMAPI listener (see `crate::omapi`), its
//! keys and the dhcpd.conf / dhcpd.leases exports Foreman reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::location::Source;
use super::validate::ReadFile;
use super::ConfigError;
use crate::omapi::auth::{Algorithm, Key};

type S<T> = Spanned<T>;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7911";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    pub listen: Option<S<String>>,
    pub allow_unsigned: Option<S<bool>>,
    #[serde(default)]
    pub key: Vec<S<WireKey>>,
    pub conf_export: Option<S<String>>,
    pub leases_export: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireKey {
    pub name: S<String>,
    pub algorithm: S<String>,
    pub secret: Option<S<String>>,
    pub secret_file: Option<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Omapi {
    pub listen: SocketAddr,
    /// Unsigned clients may change reservations (loopback listeners only).
    pub allow_unsigned: bool,
    pub keys: Vec<Key>,
    /// Where the served subnets are written in dhcpd.conf syntax.
    pub conf_export: Option<PathBuf>,
    /// Where host declarations are journalled in dhcpd.leases syntax.
    pub leases_export: Option<PathBuf>,
}

fn path(s: &S<String>, key: &str, src: &Source) -> Result<PathBuf, ConfigError> {
    if s.get_ref().trim().is_empty() {
        return Err(src.invalid(&s.span(), key, "path is empty"));
    }
    let p = Path::new(s.get_ref());
    Ok(match src.path.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    })
}

pub fn omapi(
    w: Option<&S<Wire>>,
    src: &Source,
    read: ReadFile,
) -> Result<Option<Omapi>, ConfigError> {
    let Some(section) = w else {
        return Ok(None);
    };
    let w = section.get_ref();
    let listen = match &w.listen {
        None => DEFAULT_LISTEN.parse().expect("default parses"),
        Some(s) => s.get_ref().parse::<SocketAddr>().map_err(|_| {
            src.invalid(
                &s.span(),
                "omapi.listen",
                format!("{:?} is not an address:port", s.get_ref()),
            )
        })?,
    };
    let allow_unsigned = match &w.allow_unsigned {
        Some(a) if *a.get_ref() && !listen.ip().is_loopback() => {
            // Anyone who reaches the port could then change reservations.
            return Err(src.invalid(
                &a.span(),
                "omapi.allow_unsigned",
                format!("only allowed on a loopback listener (omapi.listen is {listen})"),
            ));
        }
        Some(a) => *a.get_ref(),
        None => false,
    };
    let mut keys: Vec<Key> = Vec::with_capacity(w.key.len());
    for (i, k) in w.key.iter().enumerate() {
        let span = k.span();
        let k = k.get_ref();
        let field = |f: &str| format!("omapi.key[{i}].{f}");
        let name = k.name.get_ref().trim();
        if name.is_empty() || name.len() > 255 {
            return Err(src.invalid(&k.name.span(), field("name"), "a key name of 1..=255 bytes"));
        }
        if keys.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            return Err(src.invalid(
                &k.name.span(),
                field("name"),
                format!("duplicate key name {name:?} (names compare case-insensitively)"),
            ));
        }
        let algorithm = Algorithm::parse(k.algorithm.get_ref()).ok_or_else(|| {
            src.invalid(
                &k.algorithm.span(),
                field("algorithm"),
                format!(
                    "{:?} is not \"hmac-md5\" or \"hmac-sha256\"",
                    k.algorithm.get_ref()
                ),
            )
        })?;
        let (text, at, key) = match (&k.secret, &k.secret_file) {
            (Some(s), None) => (s.get_ref().clone(), s.span(), field("secret")),
            (None, Some(f)) => {
                let p = path(f, &field("secret_file"), src)?;
                let text = read(&p).map_err(|e| {
                    src.invalid(
                        &f.span(),
                        field("secret_file"),
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                (text, f.span(), field("secret_file"))
            }
            _ => {
                return Err(src.invalid(
                    &span,
                    format!("omapi.key[{i}]"),
                    "give exactly one of secret (base64) and secret_file",
                ))
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| src.invalid(&at, key.clone(), format!("not base64: {e}")))?;
        if secret.is_empty() {
            return Err(src.invalid(&at, key, "the secret is empty"));
        }
        keys.push(Key {
            name: name.to_string(),
            algorithm,
            secret,
        });
    }
    if keys.is_empty() && !allow_unsigned {
        return Err(src.invalid(
            &section.span(),
            "omapi",
            "give an [[omapi.key]] (or allow_unsigned = true on a loopback listener)",
        ));
    }
    Ok(Some(Omapi {
        listen,
        allow_unsigned,
        keys,
        conf_export: w
            .conf_export
            .as_ref()
            .map(|s| path(s, "omapi.conf_export", src))
            .transpose()?,
        leases_export: w
            .leases_export
            .as_ref()
            .map(|s| path(s, "omapi.leases_export", src))
            .transpose()?,
    }))
}
