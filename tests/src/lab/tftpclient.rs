//! A TFTP client that reads one file the way boot firmware does: RRQ with
//! the options the firmware asks for (RFC 2347 negotiation, `blksize`,
//! `tsize`, `windowsize`), a window of DATA per ACK (RFC 7440), its own
//! timeouts and retries, and OVMF's size probe before the download.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::UdpSocket;

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;
/// RFC 2347's error for a client that refuses the server's options, which
/// is how a size probe ends.
const ERR_OPTIONS: u16 = 8;

/// How a firmware asks for a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// `blksize` asked for; None: RFC 1350's 512 bytes.
    pub blksize: Option<u16>,
    /// Ask for `tsize` (0 in the RRQ; the server fills it in).
    pub tsize: bool,
    /// `windowsize` asked for (RFC 7440).
    pub windowsize: Option<u16>,
    /// Ask once for `tsize` only and abort after the OACK, then download:
    /// what OVMF's PXE driver does to size its buffer.
    pub size_probe: bool,
    /// Wait for a packet before sending again.
    pub timeout: Duration,
    /// Sends of one packet before the transfer fails.
    pub tries: u32,
}

/// A finished transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Got {
    pub bytes: u64,
    /// The `tsize` the server announced, if it did.
    pub tsize: Option<u64>,
    /// Packets sent again after a timeout.
    pub retries: u32,
}

/// The RRQ packet for `file` with the options of `ask` (`probe`: `tsize`
/// alone, and `blksize`, as OVMF's size probe sends them).
pub fn rrq(file: &str, ask: &Ask, probe: bool) -> Vec<u8> {
    let mut p = RRQ.to_be_bytes().to_vec();
    let mut field = |s: &str| {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    };
    field(file);
    field("octet");
    if let Some(b) = ask.blksize {
        field("blksize");
        field(&b.to_string());
    }
    if ask.tsize || probe {
        field("tsize");
        field("0");
    }
    if let (Some(w), false) = (ask.windowsize, probe) {
        field("windowsize");
        field(&w.to_string());
    }
    p
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, ACK as u8, b[0], b[1]]
}

fn error(code: u16, text: &str) -> Vec<u8> {
    let mut p = ERROR.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(text.as_bytes());
    p.push(0);
    p
}

/// The options of an OACK, names lower-cased.
pub fn oack_options(body: &[u8]) -> Vec<(String, String)> {
    let mut fields = body
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            break;
        }
        out.push((k.to_ascii_lowercase(), v));
    }
    out
}

/// What one received packet is.
#[derive(Debug, PartialEq, Eq)]
enum Packet<'a> {
    Data(u16, &'a [u8]),
    Oack(Vec<(String, String)>),
    Error(u16, String),
    Other,
}

fn parse(p: &[u8]) -> Packet<'_> {
    if p.len() < 4 {
        return Packet::Other;
    }
    let op = u16::from_be_bytes([p[0], p[1]]);
    let n = u16::from_be_bytes([p[2], p[3]]);
    match op {
        DATA => Packet::Data(n, &p[4..]),
        OACK => Packet::Oack(oack_options(&p[2..])),
        ERROR => {
            let text = p[4..].split(|&b| b == 0).next().unwrap_or_default();
            Packet::Error(n, String::from_utf8_lossy(text).into_owned())
        }
        _ => Packet::Other,
    }
}

/// Waits for a packet from the server's address (any port: the server
/// answers from a port of its own, the transfer's TID).
async fn recv_from_server<'b>(
    sock: &UdpSocket,
    server: Ipv4Addr,
    buf: &'b mut [u8],
    timeout: Duration,
) -> anyhow::Result<Option<(&'b [u8], SocketAddr)>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv_from(buf)).await;
        match got {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(e).context("receiving TFTP"),
            Ok(Ok((n, from))) if from.ip() == server => return Ok(Some((&buf[..n], from))),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads `file` from `server` (port 69 for a real one) from a socket bound
/// to `local`.
pub async fn get(
    local: Ipv4Addr,
    server: SocketAddrV4,
    file: &str,
    ask: &Ask,
) -> anyhow::Result<Got> {
    let mut retries = 0;
    if ask.size_probe {
        retries += probe(local, server, file, ask).await?;
    }
    let mut got = download(local, server, file, ask).await?;
    got.retries += retries;
    if let Some(t) = got.tsize {
        if t != got.bytes {
            bail!("{file}: tsize {t} announced, {} bytes received", got.bytes);
        }
    }
    Ok(got)
}

/// OVMF's size probe: RRQ with `tsize`, the OACK, then an ERROR that ends
/// the transfer. The retries it took.
async fn probe(local: Ipv4Addr, to: SocketAddrV4, file: &str, ask: &Ask) -> anyhow::Result<u32> {
    let sock = UdpSocket::bind((local, 0)).await?;
    let server = *to.ip();
    let request = rrq(file, ask, true);
    let mut buf = vec![0u8; 65536];
    for attempt in 0..ask.tries {
        sock.send_to(&request, to).await?;
        let Some((p, tid)) = recv_from_server(&sock, server, &mut buf, ask.timeout).await? else {
            continue;
        };
        match parse(p) {
            Packet::Oack(opts) => {
                if !opts.iter().any(|(k, _)| k == "tsize") {
                    bail!("{file}: size probe: the OACK has no tsize: {opts:?}");
                }
                sock.send_to(&error(ERR_OPTIONS, "size probe"), tid).await?;
                return Ok(attempt);
            }
            Packet::Error(code, text) => bail!("{file}: size probe: error {code}: {text}"),
            // A server without options answers with the first block:
            // there is no size to learn, and the download follows.
            Packet::Data(..) => {
                sock.send_to(&error(0, "size probe"), tid).await?;
                return Ok(attempt);
            }
            Packet::Other => {}
        }
    }
    bail!("{file}: size probe: no answer after {} tries", ask.tries)
}

async fn download(local: Ipv4Addr, to: SocketAddrV4, file: &str, ask: &Ask) -> anyhow::Result<Got> {
    let sock = UdpSocket::bind((local, 0)).await?;
    let server = *to.ip();
    let request = rrq(file, ask, false);
    let mut buf = vec![0u8; 65536];
    let mut got = Got::default();
    let mut blksize = 512usize;
    let mut window = 1u16;
    // The server's transfer port, once it has answered.
    let mut tid: Option<SocketAddr> = None;
    // The last packet sent, sent again on a timeout.
    let mut last: Vec<u8> = request.clone();
    let mut expected: u16 = 1;
    let mut in_window: u16 = 0;
    let mut silent = 0u32;
    sock.send_to(&request, to).await?;
    loop {
        let Some((p, from)) = recv_from_server(&sock, server, &mut buf, ask.timeout).await? else {
            silent += 1;
            if silent >= ask.tries {
                bail!(
                    "{file}: no answer after {} tries ({} bytes received)",
                    ask.tries,
                    got.bytes
                );
            }
            got.retries += 1;
            sock.send_to(&last, tid.map_or(SocketAddr::V4(to), |t| t))
                .await?;
            in_window = 0;
            continue;
        };
        if tid.is_some_and(|t| t != from) {
            // Another transfer's port (RFC 1350: answer it with an error
            // and carry on).
            sock.send_to(&error(5, "unknown transfer ID"), from).await?;
            continue;
        }
        match parse(p) {
            Packet::Oack(opts) if tid.is_none() => {
                tid = Some(from);
                silent = 0;
                for (k, v) in &opts {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().context("OACK blksize")?,
                        "windowsize" => window = v.parse().context("OACK windowsize")?,
                        "tsize" => got.tsize = Some(v.parse().context("OACK tsize")?),
                        _ => {}
                    }
                }
                if window == 0 || !(8..=65464).contains(&blksize) {
                    bail!("{file}: OACK out of range: {opts:?}");
                }
                last = ack(0).to_vec();
                sock.send_to(&last, from).await?;
            }
            Packet::Data(n, data) => {
                tid.get_or_insert(from);
                silent = 0;
                if n == expected {
                    got.bytes += data.len() as u64;
                    in_window += 1;
                    let end = data.len() < blksize;
                    if end || in_window >= window {
                        last = ack(n).to_vec();
                        sock.send_to(&last, from).await?;
                        in_window = 0;
                    }
                    if end {
                        return Ok(got);
                    }
                    expected = expected.wrapping_add(1);
                } else if n == expected.wrapping_sub(1) || in_window > 0 {
                    // A window sent again, or a gap: acknowledge what
                    // arrived in order, and the server goes on from there.
                    last = ack(expected.wrapping_sub(1)).to_vec();
                    sock.send_to(&last, from).await?;
                    in_window = 0;
                }
            }
            Packet::Error(code, text) => bail!("{file}: error {code}: {text}"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> Ask {
        Ask {
            blksize: Some(1468),
            tsize: true,
            windowsize: Some(4),
            size_probe: false,
            timeout: Duration::from_millis(200),
            tries: 3,
        }
    }

    #[test]
    fn requests_carry_the_firmware_options() {
        let p = rrq("ipxe.efi", &ask(), false);
        assert_eq!(
            p,
            b"\0\x01ipxe.efi\0octet\0blksize\x001468\0tsize\x000\0windowsize\x004\0".to_vec()
        );
        // The probe asks for the size, never for a window.
        let p = rrq("ipxe.efi", &ask(), true);
        assert!(!String::from_utf8_lossy(&p).contains("windowsize"));
        assert!(String::from_utf8_lossy(&p).contains("tsize"));
        let plain = Ask {
            blksize: None,
            tsize: false,
            windowsize: None,
            ..ask()
        };
        assert_eq!(rrq("f", &plain, false), b"\0\x01f\0octet\0".to_vec());
    }

    #[test]
    fn packets_are_told_apart() {
        assert_eq!(parse(b"\0\x03\0\x02abc"), Packet::Data(2, b"abc"));
        assert_eq!(
            parse(b"\0\x06BLKSIZE\x001432\0tsize\x0099\0"),
            Packet::Oack(vec![
                ("blksize".into(), "1432".into()),
                ("tsize".into(), "99".into())
            ])
        );
        assert_eq!(
            parse(b"\0\x05\0\x01not found\0"),
            Packet::Error(1, "not found".into())
        );
        assert_eq!(parse(b"\0\x03"), Packet::Other);
    }

    /// A server on loopback that answers one RRQ (or `rrqs`, the first
    /// ones aborted by the client) with an OACK and `size` bytes in windows
    /// of `window`, dropping the first DATA of block 3 once. It returns the
    /// requests it got.
    async fn server(
        size: usize,
        window: u16,
        rrqs: usize,
    ) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let listen = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listen.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut requests = Vec::new();
            loop {
                let (n, client) = listen.recv_from(&mut buf).await.unwrap();
                requests.push(buf[..n].to_vec());
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let oack = format!("\0\x06blksize\x00512\0tsize\0{size}\0windowsize\0{window}\0");
                sock.send_to(oack.as_bytes(), client).await.unwrap();
                if requests.len() < rrqs {
                    let n = sock.recv(&mut buf).await.unwrap();
                    assert_eq!(
                        parse(&buf[..n]),
                        Packet::Error(ERR_OPTIONS, "size probe".into())
                    );
                    continue;
                }
                let blocks = size / 512 + 1;
                let mut dropped = false;
                loop {
                    sock.recv(&mut buf).await.unwrap();
                    let acked = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                    if acked >= blocks {
                        return requests;
                    }
                    let next = acked + 1;
                    for b in next..(next + usize::from(window)).min(blocks + 1) {
                        if b == 3 && !dropped {
                            dropped = true;
                            continue;
                        }
                        let start = (b - 1) * 512;
                        let end = (start + 512).min(size);
                        let mut p = vec![0, 3];
                        p.extend_from_slice(&(b as u16).to_be_bytes());
                        p.extend(std::iter::repeat_n(7u8, end - start));
                        sock.send_to(&p, client).await.unwrap();
                    }
                }
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_windowed_transfer_recovers_a_lost_block() {
        let (port, task) = server(5000, 4, 1).await;
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let got = get(Ipv4Addr::LOCALHOST, to, "f", &ask()).await.unwrap();
        assert_eq!(got.bytes, 5000);
        assert_eq!(got.tsize, Some(5000));
        assert_eq!(task.await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_size_probe_comes_first_and_is_aborted() {
        let (port, task) = server(1500, 1, 2).await;
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let a = Ask {
            size_probe: true,
            ..ask()
        };
        let got = get(Ipv4Addr::LOCALHOST, to, "ipxe.efi", &a).await.unwrap();
        assert_eq!(got.bytes, 1500);
        let requests = task.await.unwrap();
        assert_eq!(
            requests,
            [rrq("ipxe.efi", &a, true), rrq("ipxe.efi", &a, false)]
        );
    }

    #[tokio::test]
    async fn silence_fails_after_the_tries() {
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = match quiet.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        let a = Ask {
            timeout: Duration::from_millis(50),
            ..ask()
        };
        let err = get(Ipv4Addr::LOCALHOST, to, "f", &a).await.unwrap_err();
        assert!(err.to_string().contains("no answer after 3 tries"), "{err}");
    }
}
