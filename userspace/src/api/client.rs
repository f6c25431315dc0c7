//! The CLI's side of the API: finds the daemon (`--api` and `--token`, or
//! the daemon's own config file) and makes requests with the binary's one
//! HTTP client (`httpclient`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::types::ApiError;

/// A running daemon's API.
#[derive(Clone, Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub token: Option<String>,
    http: reqwest::blocking::Client,
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
    /// The API at `addr`. Sockets are opened in the network namespace of
    /// the thread that calls this (the client's own I/O thread starts here).
    pub fn new(addr: SocketAddr, token: Option<String>) -> anyhow::Result<Client> {
        // A bulk import of many reservations takes its time.
        let http = crate::httpclient::blocking_client(Duration::from_secs(60))?;
        Ok(Client { addr, token, http })
    }

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
        Client::new(addr, token)
    }

    /// One request; `body` is JSON.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Answer> {
        let addr = self.addr;
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("{method:?} is not an HTTP method"))?;
        let mut req = self
            .http
            .request(method.clone(), format!("http://{addr}{path}"));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if body.is_some() || method != reqwest::Method::GET {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.unwrap_or("").to_owned());
        }
        let resp = req.send().map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the stormboot daemon at {addr}: {e}")
            } else {
                anyhow!("{method} {path} at {addr}: {e}")
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .with_context(|| format!("{method} {path} at {addr}: reading the answer"))?;
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        self.request("GET", path, None)?.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_the_apis_message() {
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

    /// A request against a real HTTP server (the daemon's own router
    /// stack, axum, on loopback): method, token, body and a chunked answer.
    #[test]
    fn requests_reach_a_real_server() {
        use axum::routing::post;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/echo",
            post(|h: axum::http::HeaderMap, body: String| async move {
                let auth = h
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                // A streamed body goes out chunked.
                let chunks = futures_lite::stream::iter(vec![
                    Ok::<_, std::io::Error>(auth),
                    Ok(format!("|{body}")),
                ]);
                (
                    axum::http::StatusCode::CREATED,
                    axum::body::Body::from_stream(chunks),
                )
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await });
        let c = Client::new(addr, Some("t0ken".into())).unwrap();
        let a = c.request("POST", "/echo", Some("{\"a\":1}")).unwrap();
        assert_eq!(a.status, 201);
        assert_eq!(a.body, "Bearer t0ken|{\"a\":1}");
        let a = c.request("GET", "/nothing", None).unwrap();
        assert_eq!(a.status, 404);
        drop(c);
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        let e = Client::new(addr, None)
            .unwrap()
            .request("GET", "/", None)
            .unwrap_err();
        assert!(e.to_string().contains("cannot reach"), "{e}");
    }
}
