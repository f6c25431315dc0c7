//! The CLI's side of the API: finds the daemon (`--api` and `--token`, or
//! the daemon's own config file) and makes one HTTP/1.1 request. The daemon
//! is local, so a client library would be the larger part of the binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::types::ApiError;

/// A running daemon's API.
#[derive(Clone, Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// An answer: status and body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body of a 2xx answer, else an error carrying the API's message.
    pub fn ok(self) -> anyhow::Result<String> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        match serde_json::from_str::<ApiError>(&self.body) {
            Ok(e) => bail!("{} ({})", e.error, self.status),
            Err(_) => bail!("HTTP {}: {}", self.status, self.body.trim()),
        }
    }
}

/// `http://host:port[/]` or `host:port`.
pub fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if url.starts_with("https://") {
        bail!("--api {url}: the daemon speaks plain HTTP (put TLS in front of it elsewhere)");
    }
    let hostport = rest.trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .with_context(|| format!("--api {url}: not host:port"))?
        .next()
        .ok_or_else(|| anyhow!("--api {url}: resolves to no address"))
}

impl Client {
    /// From explicit settings, each falling back to the daemon's config
    /// file (`api.listen`, `api.token`).
    pub fn find(
        api: Option<&str>,
        token: Option<&str>,
        config: &std::path::Path,
    ) -> anyhow::Result<Client> {
        let needs_file = api.is_none() || token.is_none();
        let file = match needs_file {
            true => match crate::config::Config::load(config) {
                Ok(c) => Some(c),
                // Without --api the file is the only way to the daemon.
                Err(e) if api.is_none() => {
                    bail!("finding the daemon's API (or pass --api URL): {e}")
                }
                Err(_) => None,
            },
            false => None,
        };
        let addr = match api {
            Some(u) => parse_url(u)?,
            None => file.as_ref().map(|c| c.api.listen).expect("loaded above"),
        };
        let token = token
            .map(str::to_owned)
            .or_else(|| file.and_then(|c| c.api.token));
        Ok(Client { addr, token })
    }

    /// One request; `body` is JSON.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Answer> {
        let addr = self.addr;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| anyhow!("cannot reach the stormboot daemon at {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        parse_response(&resp).with_context(|| format!("{method} {path} at {addr}"))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        self.request("GET", path, None)?.ok()
    }
}

/// Status and body of an HTTP/1.1 response (Content-Length or chunked).
pub fn parse_response(resp: &[u8]) -> anyhow::Result<Answer> {
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    let head = std::str::from_utf8(&resp[..split]).context("response head is not UTF-8")?;
    let raw = &resp[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    Ok(Answer {
        status,
        body: String::from_utf8(body).context("response body is not UTF-8")?,
    })
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("malformed chunk"))?;
        let size_text = std::str::from_utf8(&raw[..eol])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("malformed chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_or_chunks() {
        let a = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_str()), (201, "{}"));
        let a = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.body, "abcde");
        let e = Answer {
            status: 409,
            body: r#"{"error":"ip: 10.0.0.5 is reserved","field":"ip"}"#.into(),
        }
        .ok()
        .unwrap_err();
        assert_eq!(e.to_string(), "ip: 10.0.0.5 is reserved (409)");
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8067/").unwrap(),
            "127.0.0.1:8067".parse().unwrap()
        );
        assert_eq!(
            parse_url("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(parse_url("https://127.0.0.1:1").is_err());
    }
}
