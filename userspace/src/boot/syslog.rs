//! UDP syslog receiver: booting machines (installers, iPXE, early userspace)
//! send their log lines here so they show up in the boot timeline.
//!
//! Parsing is lenient on purpose: embedded senders bend both RFC 3164 and
//! RFC 5424, and an odd line is still worth showing. Whatever does not parse
//! is kept as its raw text, with facility and severity from `<PRI>` if any.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest line kept, in bytes; the rest is cut so a flood of large
/// datagrams costs bounded memory per queued line.
pub const MAX_LINE: usize = 2048;

/// Lines dropped by `serve` because the consumer was full or gone.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub from: SocketAddr,
    pub facility: u8,
    pub severity: u8,
    pub host: Option<String>,
    pub app: Option<String>,
    pub text: String,
}

/// Without `<PRI>`, RFC 3164 section 4.3.3 says to assume user.notice.
const DEFAULT_FACILITY: u8 = 1;
const DEFAULT_SEVERITY: u8 = 5;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub fn parse(from: SocketAddr, bytes: &[u8]) -> LogLine {
    let bytes = &bytes[..bytes.len().min(MAX_LINE)];
    let line = String::from_utf8_lossy(bytes);
    let line = line.trim_end_matches(['\n', '\r', '\0']);
    let (pri, rest) = split_pri(line);
    let (facility, severity) =
        pri.map_or((DEFAULT_FACILITY, DEFAULT_SEVERITY), |p| (p >> 3, p & 7));
    let parsed = match rest.strip_prefix("1 ") {
        Some(after_version) => parse_5424(after_version),
        None => Some(parse_3164(rest)),
    };
    let (host, app, text) = parsed.unwrap_or((None, None, rest));
    LogLine {
        from,
        facility,
        severity,
        host: host.map(str::to_owned),
        app: app.map(str::to_owned),
        text: truncate(text, MAX_LINE).to_owned(),
    }
}

type Parts<'a> = (Option<&'a str>, Option<&'a str>, &'a str);

/// `<PRI>`: 1 to 3 digits, at most 191 (facility 23, severity 7).
fn split_pri(line: &str) -> (Option<u8>, &str) {
    let parsed = line.strip_prefix('<').and_then(|s| {
        let end = s.find('>')?;
        let digits = &s[..end];
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let pri: u8 = digits.parse().ok().filter(|p| *p <= 191)?;
        Some((pri, &s[end + 1..]))
    });
    match parsed {
        Some((pri, rest)) => (Some(pri), rest),
        None => (None, line),
    }
}

/// `TIMESTAMP HOST APP PROCID MSGID SD [MSG]`, after the version.
fn parse_5424(s: &str) -> Option<Parts<'_>> {
    let mut fields = s.splitn(6, ' ');
    let _timestamp = fields.next()?;
    let host = nil(fields.next()?);
    let app = nil(fields.next()?);
    let _procid = fields.next()?;
    let _msgid = fields.next()?;
    let sd_and_msg = fields.next().unwrap_or("");
    let msg = skip_structured_data(sd_and_msg)?;
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    // RFC 5424 marks UTF-8 messages with a BOM.
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some((host, app, msg))
}

fn nil(field: &str) -> Option<&str> {
    (field != "-" && !field.is_empty()).then_some(field)
}

/// Returns what follows the STRUCTURED-DATA: `-` or one or more
/// `[id name="value"...]` elements, where `\]` and `\"` are escapes inside
/// values.
fn skip_structured_data(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(rest);
    }
    if !s.starts_with('[') {
        // Empty (no SD and no MSG) or malformed: take it as the message.
        return (s.is_empty()).then_some(s);
    }
    let (mut in_element, mut in_quotes, mut escaped) = (false, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' if in_element => in_quotes = !in_quotes,
            '[' if !in_element => in_element = true,
            ']' if in_element && !in_quotes => {
                in_element = false;
                if !s[i + 1..].starts_with('[') {
                    return Some(&s[i + 1..]);
                }
            }
            _ if !in_element => return None,
            _ => {}
        }
    }
    None
}

/// `Mmm dd hh:mm:ss HOST TAG: MSG`, and the common variants: an ISO
/// timestamp instead (rsyslog forwarding), or no timestamp and maybe no host
/// (iPXE sends `<PRI>host ipxe: msg`).
fn parse_3164(s: &str) -> Parts<'_> {
    if let Some(after) = skip_timestamp(s) {
        let (host, rest) = match after.split_once(' ') {
            Some((host, rest)) => (host, rest),
            None => (after, ""),
        };
        let (app, text) = split_tag(rest).map_or((None, rest), |(t, m)| (Some(t), m));
        return (nil(host), app, text);
    }
    if let Some((app, text)) = split_tag(s) {
        return (None, Some(app), text);
    }
    if let Some((host, rest)) = s.split_once(' ') {
        if let Some((app, text)) = split_tag(rest) {
            return (nil(host), Some(app), text);
        }
    }
    (None, None, s)
}

/// The text after `Mmm dd hh:mm:ss ` (day space-padded or not) or after a
/// leading ISO 8601 timestamp.
fn skip_timestamp(s: &str) -> Option<&str> {
    let (first, rest) = s.split_once(' ')?;
    if MONTHS.contains(&first) {
        let rest = rest.trim_start_matches(' ');
        let (day, rest) = rest.split_once(' ')?;
        let (time, rest) = rest.split_once(' ')?;
        let day_ok = (1..=2).contains(&day.len()) && day.bytes().all(|b| b.is_ascii_digit());
        let time_ok = time.len() == 8
            && time.bytes().enumerate().all(|(i, b)| {
                if i == 2 || i == 5 {
                    b == b':'
                } else {
                    b.is_ascii_digit()
                }
            });
        return (day_ok && time_ok).then_some(rest);
    }
    let iso = first.len() >= 19
        && first.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && first.as_bytes()[4] == b'-'
        && first.as_bytes()[10] == b'T';
    iso.then_some(rest)
}

/// `tag: msg` or `tag[pid]: msg`; a tag is one short word.
fn split_tag(s: &str) -> Option<(&str, &str)> {
    let word_end = s.find(' ').unwrap_or(s.len());
    let word = &s[..word_end];
    let word = word.strip_suffix(':')?;
    let tag = match word.find('[') {
        Some(open) => word.ends_with(']').then_some(&word[..open])?,
        None => word,
    };
    let valid = !tag.is_empty() && tag.len() <= 48 && !tag.contains([':', '[', ']', '<', '>']);
    if !valid {
        return None;
    }
    let msg = &s[word_end..];
    Some((tag, msg.strip_prefix(' ').unwrap_or(msg)))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Receives until `shutdown`, counting lines the consumer cannot take in
/// `DROPPED`.
pub async fn serve(
    socket: tokio::net::UdpSocket,
    lines: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_counting(socket, lines, shutdown, &DROPPED).await
}

/// `serve` with its own drop counter (tests, or one counter per socket).
pub async fn serve_counting(
    socket: tokio::net::UdpSocket,
    lines: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
    dropped: &AtomicU64,
) -> std::io::Result<()> {
    // Larger datagrams are cut by the kernel; parse keeps MAX_LINE of them.
    let mut buf = vec![0u8; MAX_LINE * 2];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((len, from)) => {
                // try_send: a stalled consumer must not stall the socket.
                if lines.try_send(parse(from, &buf[..len])).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Errors on a UDP socket are per datagram (e.g. an ICMP error
            // from an earlier send), not the end of the socket.
            Err(e) => tracing::debug!("syslog recv: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn from() -> SocketAddr {
        "10.50.0.10:514".parse().unwrap()
    }

    fn line(
        facility: u8,
        severity: u8,
        host: Option<&str>,
        app: Option<&str>,
        text: &str,
    ) -> LogLine {
        LogLine {
            from: from(),
            facility,
            severity,
            host: host.map(Into::into),
            app: app.map(Into::into),
            text: text.into(),
        }
    }

    #[test]
    fn rfc3164() {
        // RFC 3164 section 5.4's examples.
        assert_eq!(
            parse(
                from(),
                b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
            ),
            line(
                4,
                2,
                Some("mymachine"),
                Some("su"),
                "'su root' failed for lonvick on /dev/pts/8"
            )
        );
        assert_eq!(
            parse(from(), b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!"),
            line(1, 5, Some("10.0.0.99"), None, "Use the BFG!")
        );
        // util-linux logger, and a tag with a pid.
        assert_eq!(
            parse(
                from(),
                b"<30>Jan  5 12:00:01 node1 systemd[1]: Started Journal Service.\n"
            ),
            line(
                3,
                6,
                Some("node1"),
                Some("systemd"),
                "Started Journal Service."
            )
        );
        // rsyslog's forwarding format: an ISO timestamp in a 3164 line.
        assert_eq!(
            parse(from(), b"<134>2024-03-01T10:00:00.123456+00:00 node2 kernel: [    0.000000] Linux version 6.1"),
            line(16, 6, Some("node2"), Some("kernel"), "[    0.000000] Linux version 6.1")
        );
    }

    #[test]
    fn ipxe_and_other_bare_lines() {
        // iPXE's syslog: no timestamp, host only when it has a name.
        assert_eq!(
            parse(
                from(),
                b"<6>node1 ipxe: net0: 52:54:00:00:00:01 using virtio-net"
            ),
            line(
                0,
                6,
                Some("node1"),
                Some("ipxe"),
                "net0: 52:54:00:00:00:01 using virtio-net"
            )
        );
        assert_eq!(
            parse(from(), b"<6>ipxe: http://10.50.0.1/auto.ipxe... ok"),
            line(0, 6, None, Some("ipxe"), "http://10.50.0.1/auto.ipxe... ok")
        );
        assert_eq!(
            parse(from(), b"<14>just some words"),
            line(1, 6, None, None, "just some words")
        );
        // No PRI at all: user.notice, the raw text.
        assert_eq!(
            parse(from(), b"<x>hello"),
            line(1, 5, None, None, "<x>hello")
        );
        assert_eq!(parse(from(), b"<192>x").text, "<192>x");
        assert_eq!(parse(from(), b"").text, "");
    }

    #[test]
    fn rfc5424() {
        // RFC 5424 section 6.5's examples.
        assert_eq!(
            parse(from(), "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8".as_bytes()),
            line(4, 2, Some("mymachine.example.com"), Some("su"), "'su root' failed for lonvick on /dev/pts/8")
        );
        assert_eq!(
            parse(from(), b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."),
            line(20, 5, Some("192.0.2.1"), Some("myproc"), "%% It's time to make the do-nuts.")
        );
        assert_eq!(
            parse(from(), br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event"#),
            line(20, 5, Some("mymachine.example.com"), Some("evntslog"), "An application event")
        );
        // SD only, no MSG; escapes inside values; nil fields.
        assert_eq!(
            parse(
                from(),
                br#"<165>1 2003-10-11T22:14:15.003Z - - - - [a b="x\]y\"z"]"#
            ),
            line(20, 5, None, None, "")
        );
        // Too few fields or broken SD: raw text after PRI.
        assert_eq!(parse(from(), b"<14>1 2003 host").text, "1 2003 host");
        assert_eq!(
            parse(from(), b"<14>1 - h a - - [open message").text,
            "1 - h a - - [open message"
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut long = b"<14>".to_vec();
        long.extend("é".repeat(3000).as_bytes());
        let l = parse(from(), &long);
        assert!(l.text.len() <= MAX_LINE);
        assert!(l.text.len() > MAX_LINE - 8);
        assert!(l.text.chars().all(|c| c == 'é'));
        let l = parse(from(), &[0xff; 5000]);
        assert!(l.text.len() <= MAX_LINE);
    }

    async fn logger(port: u16, format: &str, msg: &str) {
        let status = tokio::process::Command::new("logger")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--udp",
            ])
            .args([format, "-t", "stormtest", "-p", "local3.warning", msg])
            .status()
            .await
            .expect("logger runs");
        assert!(status.success());
    }

    #[tokio::test]
    async fn logger_end_to_end() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let (tx, mut rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(socket, tx, shutdown.clone()));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        for format in ["--rfc3164", "--rfc5424"] {
            logger(port, format, &format!("hello from {format}")).await;
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("line in time")
                .unwrap();
            assert_eq!(got.from.ip(), std::net::Ipv4Addr::LOCALHOST);
            assert_eq!((got.facility, got.severity), (19, 4), "{format}");
            assert_eq!(got.app.as_deref(), Some("stormtest"), "{format}: {got:?}");
            assert_eq!(got.host.as_deref(), Some(host.trim()), "{format}: {got:?}");
            assert_eq!(got.text, format!("hello from {format}"), "{format}");
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn full_consumer_counts_drops() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let dropped: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let task = tokio::spawn(serve_counting(socket, tx, shutdown.clone(), dropped));
        let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..3 {
            sender
                .send_to(format!("<14>n{i}").as_bytes(), addr)
                .await
                .unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while dropped.load(Ordering::Relaxed) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "drops not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rx.recv().await.unwrap().text, "n0");
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    /// The daemon's receiver (`serve`, the process-wide counter) with a
    /// consumer that takes nothing: its drops reach `/metrics` and
    /// `stormboot stats`.
    #[tokio::test]
    async fn drops_are_exported() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let before = DROPPED.load(Ordering::Relaxed);
        let task = tokio::spawn(serve(socket, tx, shutdown.clone()));
        let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..3 {
            sender
                .send_to(format!("<14>n{i}").as_bytes(), addr)
                .await
                .unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while DROPPED.load(Ordering::Relaxed) < before + 2 {
            assert!(tokio::time::Instant::now() < deadline, "drops not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let services = crate::metrics::ServiceCounters::default().snapshot();
        let n = services.syslog_lines_dropped;
        assert!(n >= before + 2, "{services:?}");
        let (metrics, table) = crate::stats::exported_services(services);
        assert!(
            metrics.contains(&format!("\nstormboot_syslog_lines_dropped_total {n}\n")),
            "{metrics}"
        );
        assert!(table.contains(&format!(" lines, {n} dropped")), "{table}");
    }
}
