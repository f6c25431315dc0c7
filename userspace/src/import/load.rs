//! `stormboot import --load`: sends the imported reservations to a running
//! daemon, `POST /api/v1/reservations/bulk` with a bearer token.

use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

use super::Reservation;

pub const BULK_PATH: &str = "/api/v1/reservations/bulk";

/// One element of the request body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BulkReservation {
    pub mac: String,
    pub ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Sent only when false, as the API's own reservations are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_pxe: Option<bool>,
}

/// The request body: the reservations as a JSON array.
pub fn body(reservations: &[Reservation]) -> String {
    let list: Vec<BulkReservation> = reservations
        .iter()
        .map(|r| BulkReservation {
            mac: crate::frame::format_mac(&r.mac),
            ip: r.ip.to_string(),
            hostname: r.hostname.clone(),
            profile: r.profile.clone(),
            allow_pxe: (!r.allow_pxe).then_some(false),
        })
        .collect();
    serde_json::to_string(&list).expect("plain strings serialize")
}

/// `http://host:port[/prefix]` as an address and a path prefix.
pub fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    // STORMBOOT_API is HOST:PORT for the other commands, so accept that too.
    let rest = match url.split_once("://") {
        None => url,
        Some(("http", rest)) => rest,
        Some(_) => {
            anyhow::bail!("--api {url:?}: expected http://HOST:PORT (the API speaks plain HTTP)")
        }
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--api {url:?}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--api {url:?}: no address"))?;
    Ok((addr, prefix.to_string()))
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
    field: Option<String>,
}

/// Posts `reservations`; Ok(reply body) on 200/201, else an error that
/// quotes the daemon's `error` and `field`.
pub fn post(
    api: &str,
    token: Option<&str>,
    reservations: &[Reservation],
) -> anyhow::Result<String> {
    let (addr, prefix) = parse_url(api)?;
    let path = format!("{prefix}{BULK_PATH}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (status, reply) =
        crate::http::request(addr, "POST", &path, &headers, body(reservations).as_bytes())?;
    match status {
        200 | 201 => Ok(reply),
        _ => {
            let detail = match serde_json::from_str::<ApiError>(&reply) {
                Ok(ApiError {
                    error,
                    field: Some(f),
                }) => format!("{f}: {error}"),
                Ok(ApiError { error, field: None }) => error,
                Err(_) => reply.trim().to_string(),
            };
            let hint = if status == 401 || status == 403 {
                " (check --token / STORMBOOT_API_TOKEN)"
            } else {
                ""
            };
            anyhow::bail!("{api}{BULK_PATH}: HTTP {status}: {detail}{hint}")
        }
    }
}
