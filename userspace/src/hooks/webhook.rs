//! The webhook: one POST of the event's JSON per event, with the binary's
//! HTTP client (`httpclient`: http:// or https://, no redirects), success
//! being a 2xx answer. The body of the answer is not read.

use crate::config::Webhook;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostError {
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("talking to {0}: {1}")]
    Io(String, String),
    #[error("{0} answered {1}")]
    Status(String, u16),
}

/// The error's chain in one line: reqwest's own message is short and the
/// cause (refused, certificate unknown) is in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// POSTs `body` to `hook` with `http`; Ok(status) for a 2xx answer. The
/// caller bounds the time it takes.
pub async fn post(http: &reqwest::Client, hook: &Webhook, body: Vec<u8>) -> Result<u16, PostError> {
    let url = || hook.url.clone();
    let resp = http
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| match e.is_connect() {
            true => PostError::Connect(url(), chain(&e)),
            false => PostError::Io(url(), chain(&e)),
        })?;
    let code = resp.status().as_u16();
    match code {
        200..=299 => Ok(code),
        _ => Err(PostError::Status(url(), code)),
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn hook(url: &str) -> Webhook {
        crate::config::parse_webhook(url).unwrap()
    }

    fn client() -> reqwest::Client {
        crate::httpclient::async_client(None).unwrap()
    }

    /// A receiver on loopback that answers `answer` and hands back what it
    /// read.
    async fn receiver(answer: &'static str) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            // Up to the end of the body (the test bodies are short).
            while !got.ends_with(b"}") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            got
        });
        (port, task)
    }

    #[tokio::test]
    async fn posts_and_reads_the_status() {
        let (port, task) = receiver("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let h = hook(&format!("http://127.0.0.1:{port}/lease?x=1"));
        assert_eq!(post(&client(), &h, b"{\"x\":2}".to_vec()).await, Ok(200));
        let got = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(got.starts_with("POST /lease?x=1 HTTP/1.1\r\n"), "{got}");
        let lower = got.to_ascii_lowercase();
        assert!(
            lower.contains("\r\ncontent-type: application/json\r\n"),
            "{got}"
        );
        assert!(lower.contains("\r\nuser-agent: stormboot/"), "{got}");
        assert!(got.ends_with("\r\n\r\n{\"x\":2}"), "{got}");

        let (port, task) = receiver("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n").await;
        let h = hook(&format!("http://127.0.0.1:{port}/"));
        let e = post(&client(), &h, b"{}".to_vec()).await.unwrap_err();
        assert_eq!(e, PostError::Status(h.url.clone(), 503));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn refused_connections_are_errors() {
        // Bound and closed again: nobody listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let h = hook(&format!("http://127.0.0.1:{port}/"));
        let e = post(&client(), &h, b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(e, PostError::Connect(..)), "{e}");
    }

    /// What a TLS receiver on loopback needs: a private CA and a server
    /// certificate for 127.0.0.1 signed by it (openssl), and Python's
    /// http.server behind its ssl module, answering 204 and writing each
    /// body to `bodies`.
    struct TlsReceiver {
        dir: tempfile::TempDir,
        child: std::process::Child,
        port: u16,
    }

    const TLS_RECEIVER: &str = r#"import http.server, ssl, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[4], "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(sys.argv[3], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
"#;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("running openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    use std::path::Path;

    impl TlsReceiver {
        fn start() -> TlsReceiver {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let subj = |cn: &str| format!("/CN={cn}");
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-subj",
                    &subj("stormboot test CA"),
                ],
            );
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    &subj("127.0.0.1"),
                ],
            );
            std::fs::write(
                d.join("ext.cnf"),
                "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n\
                 extendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    "server.pem",
                ],
            );
            std::fs::write(d.join("receiver.py"), TLS_RECEIVER).unwrap();
            let child = Command::new("python3")
                .current_dir(d)
                .args(["receiver.py", "server.pem", "server.key", "port", "bodies"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("running python3");
            let port_file = d.join("port");
            let mut port = None;
            for _ in 0..100 {
                if let Some(p) = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                {
                    port = Some(p);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            TlsReceiver {
                port: port.expect("the TLS receiver did not start"),
                dir,
                child,
            }
        }

        fn bodies(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("bodies")).unwrap_or_default()
        }
    }

    impl Drop for TlsReceiver {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// https:// to a receiver whose certificate is signed by a CA the
    /// configuration trusts (`hooks.webhook_ca`) is delivered; without that
    /// CA, the certificate is refused and nothing is delivered.
    #[tokio::test]
    async fn https_is_delivered_to_a_receiver_trusted_by_config() {
        let r = TlsReceiver::start();
        let ca = r.dir.path().join("ca.pem");
        let text = format!(
            "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
             [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n\
             [hooks]\nwebhook = \"https://127.0.0.1:{}/lease\"\nwebhook_ca = {ca:?}\n",
            r.port
        );
        let cfg =
            crate::config::Config::from_str(&text, Path::new("/etc/stormboot/s.toml")).unwrap();
        let h = cfg.hooks.unwrap().webhook.unwrap();
        assert!(h.tls);
        let trusted = crate::httpclient::async_client(h.ca.as_deref()).unwrap();
        assert_eq!(
            post(&trusted, &h, b"{\"action\":\"commit\"}".to_vec()).await,
            Ok(204)
        );
        assert_eq!(r.bodies(), "{\"action\":\"commit\"}\n");

        let e = post(&client(), &h, b"{\"action\":\"renew\"}".to_vec())
            .await
            .unwrap_err();
        assert!(
            e.to_string().to_ascii_lowercase().contains("certificate"),
            "{e}"
        );
        assert_eq!(r.bodies(), "{\"action\":\"commit\"}\n");
    }
}
