//! The webhook's HTTP/1.1 client: one POST per event on its own connection
//! (`Connection: close`), success being a 2xx status line. Small on
//! purpose: plain HTTP to a receiver the operator runs, no redirects, no
//! keep-alive, nothing read past the status line.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Webhook;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostError {
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("talking to {0}: {1}")]
    Io(String, String),
    #[error("{0} answered {1}")]
    Status(String, u16),
    #[error("{0} did not answer HTTP: {1:?}")]
    Malformed(String, String),
}

/// The request's bytes: headers and `body`.
pub fn request(hook: &Webhook, body: &[u8]) -> Vec<u8> {
    let host = if hook.port == 80 {
        hook.host.clone()
    } else {
        format!("{}:{}", hook.host, hook.port)
    };
    let mut r = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: stormboot/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        hook.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The status code of a response that starts with `head`, once its status
/// line is complete (None: read more).
pub fn status(head: &[u8]) -> Option<Result<u16, String>> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut parts = line.splitn(3, ' ');
    let code = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    Some(code.filter(|c| (100..600).contains(c)).ok_or(line))
}

/// POSTs `body` to `hook`; Ok(status) for a 2xx answer. The caller bounds
/// the time it takes.
pub async fn post(hook: &Webhook, body: &[u8]) -> Result<u16, PostError> {
    let url = || hook.url.clone();
    // An IPv6 literal is written in brackets in the URL, not to connect().
    let host = hook.host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((host, hook.port))
        .await
        .map_err(|e| PostError::Connect(url(), e.to_string()))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&request(hook, body))
        .await
        .map_err(|e| PostError::Io(url(), e.to_string()))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    loop {
        if let Some(s) = status(&head) {
            let code = s.map_err(|line| PostError::Malformed(url(), line))?;
            return match code {
                200..=299 => Ok(code),
                _ => Err(PostError::Status(url(), code)),
            };
        }
        // A status line longer than this is not one.
        if head.len() > 4096 {
            return Err(PostError::Malformed(
                url(),
                String::from_utf8_lossy(&head[..64]).into_owned(),
            ));
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| PostError::Io(url(), e.to_string()))?;
        if n == 0 {
            return Err(PostError::Malformed(
                url(),
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&head)
                ),
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(port: u16) -> Webhook {
        crate::config::parse_webhook(&format!("http://127.0.0.1:{port}/lease?x=1")).unwrap()
    }

    #[test]
    fn request_is_a_complete_http11_post() {
        let r = String::from_utf8(request(&hook(9000), b"{\"a\":1}")).unwrap();
        assert!(
            r.starts_with("POST /lease?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"),
            "{r}"
        );
        assert!(r.contains("\r\nContent-Type: application/json\r\n"), "{r}");
        assert!(r.contains("\r\nContent-Length: 7\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n{\"a\":1}"), "{r}");
        let r = String::from_utf8(request(&hook(80), b"")).unwrap();
        assert!(r.contains("\r\nHost: 127.0.0.1\r\n"), "{r}");
    }

    #[test]
    fn status_lines_are_read_once_complete() {
        assert_eq!(status(b"HTTP/1.1 20"), None);
        assert_eq!(status(b"HTTP/1.1 204 No Content\r\n"), Some(Ok(204)));
        assert_eq!(status(b"HTTP/1.0 500\r\nx"), Some(Ok(500)));
        assert!(matches!(status(b"SSH-2.0-OpenSSH\r\n"), Some(Err(_))));
        assert!(matches!(status(b"HTTP/1.1 abc\r\n"), Some(Err(_))));
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
        assert_eq!(post(&hook(port), b"{\"x\":2}").await, Ok(200));
        let got = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(got.ends_with("\r\n\r\n{\"x\":2}"), "{got}");

        let (port, task) = receiver("HTTP/1.1 503 Busy\r\n\r\n").await;
        let e = post(&hook(port), b"{}").await.unwrap_err();
        assert_eq!(e, PostError::Status(hook(port).url, 503));
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
        let e = post(&hook(port), b"{}").await.unwrap_err();
        assert!(matches!(e, PostError::Connect(..)), "{e}");
    }
}
