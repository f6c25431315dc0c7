//! The binary's one HTTP client, on reqwest with rustls: the CLI's requests
//! to the daemon's API (blocking) and the lease webhook's POSTs (async) are
//! built here with the same settings, so both speak HTTP/1.1 and https://
//! the same way. Trusted roots: the system's store, plus any PEM file the
//! configuration names (a receiver with a private CA or a self-signed
//! certificate).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// How long a connection may take to open; the caller bounds the whole
/// request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn user_agent() -> String {
    format!("stormboot/{}", env!("CARGO_PKG_VERSION"))
}

/// The certificates of a PEM file (one or more `BEGIN CERTIFICATE` blocks).
pub fn certificates(pem: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let bytes = std::fs::read(pem).with_context(|| format!("reading {}", pem.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes)
        .with_context(|| format!("{}: not PEM certificates", pem.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: holds no PEM certificate",
        pem.display()
    );
    Ok(certs)
}

/// The webhook's client: no redirects (a receiver that moves is a
/// configuration to fix, not to follow), the system's roots and `ca`'s.
pub fn async_client(ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .http1_only();
    for c in ca.map(certificates).transpose()?.into_iter().flatten() {
        b = b.add_root_certificate(c);
    }
    b.build().context("building the HTTP client")
}

/// The CLI's client, with the same settings; `timeout` bounds a request.
/// Not to be built or dropped inside an async runtime (reqwest's rule).
pub fn blocking_client(timeout: Duration) -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .user_agent(user_agent())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .http1_only()
        .build()
        .context("building the HTTP client")
}
