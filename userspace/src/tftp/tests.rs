//! The server in-process on 127.0.0.1:0 against curl and a hand-built
//! client that sends what OVMF and iPXE send (the QEMU tests in
//! tests/qemu.rs boot the real firmware against the real server:
//! `cargo test -p stormboot-testbed --test qemu -- --test-threads 1`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;

/// Deterministic bytes that differ per file, so a misplaced block shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Server {
    addr: SocketAddr,
    root: tempfile::TempDir,
    events: mpsc::Receiver<Transfer>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    counters: Arc<ServiceCounters>,
}

impl Server {
    async fn start(files: &[(&str, usize)], max_block_size: u16, capacity: usize) -> Server {
        Server::start_with(files, capacity, |o| o.max_block_size = max_block_size).await
    }

    /// `tune` adjusts the options (the root is set already).
    async fn start_with(
        files: &[(&str, usize)],
        capacity: usize,
        tune: impl FnOnce(&mut TftpOptions),
    ) -> Server {
        let root = tempfile::tempdir().unwrap();
        for (i, (name, len)) in files.iter().enumerate() {
            let path = root.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content(*len, i as u64 + 1)).unwrap();
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, events) = mpsc::channel(capacity);
        let shutdown = CancellationToken::new();
        let mut opts = TftpOptions {
            root: root.path().to_owned(),
            ..TftpOptions::default()
        };
        tune(&mut opts);
        let counters = opts.counters.clone();
        let task = tokio::spawn(serve(socket, opts, tx, shutdown.clone()));
        Server {
            addr,
            root,
            events,
            shutdown,
            task,
            counters,
        }
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.path().join(name)).unwrap()
    }

    async fn event(&mut self) -> Transfer {
        tokio::time::timeout(Duration::from_secs(15), self.events.recv())
            .await
            .expect("no transfer event within 15 s")
            .expect("event channel closed")
    }

    /// Next event for `file`, skipping others (e.g. a stalled probe's).
    async fn event_for(&mut self, file: &str) -> Transfer {
        loop {
            let e = self.event().await;
            if e.file == file {
                return e;
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve did not stop within 5 s")
            .unwrap()
            .unwrap();
    }
}

/// curl's exit status for `tftp://addr/<url_path>`, with the output file.
async fn curl(addr: SocketAddr, url_path: &str, extra: &[&str], out: &Path) -> Option<i32> {
    let status = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "60"])
        .args(extra)
        .arg(format!("tftp://{addr}/{url_path}"))
        .arg("-o")
        .arg(out)
        .status()
        .await
        .expect("curl runs");
    status.code()
}

fn request(op: u16, file: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut p = op.to_be_bytes().to_vec();
    for field in [file, "octet"]
        .into_iter()
        .chain(options.iter().flat_map(|(n, v)| [*n, *v]))
    {
        p.extend_from_slice(field.as_bytes());
        p.push(0);
    }
    p
}

fn ack(block: u16) -> Vec<u8> {
    [ACK.to_be_bytes(), block.to_be_bytes()].concat()
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("no packet from the server within 5 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

fn opcode(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn oack_options(p: &[u8]) -> HashMap<String, String> {
    assert_eq!(opcode(p), OACK, "expected an OACK, got {p:?}");
    let fields: Vec<String> = p[2..p.len() - 1]
        .split(|&b| b == 0)
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    fields
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

/// Sends `op file` and returns the ERROR code the server answers with.
async fn refused_with(addr: SocketAddr, op: u16, file: &str) -> u16 {
    let sock = client().await;
    sock.send_to(&request(op, file, &[]), addr).await.unwrap();
    let (p, from) = recv(&sock).await;
    assert_ne!(from, addr, "answers come from a transfer port, not :69");
    assert_eq!(
        opcode(&p),
        ERROR,
        "expected an ERROR for {file:?}, got {p:?}"
    );
    u16::from_be_bytes([p[2], p[3]])
}

/// A windowed download as OVMF does it: ACK 0 after the OACK, then one ACK
/// per window (or at the last block). `lose` drops the first arrival of that
/// block, so the client acknowledges the last in-order block as RFC 7440
/// says and the server must resume from there.
async fn fetch_windowed(
    addr: SocketAddr,
    file: &str,
    blksize: u16,
    window: u16,
    lose: Option<u16>,
) -> Vec<u8> {
    let sock = client().await;
    let (bs, w) = (blksize.to_string(), window.to_string());
    let opts = [("blksize", bs.as_str()), ("windowsize", w.as_str())];
    sock.send_to(&request(RRQ, file, &opts), addr)
        .await
        .unwrap();
    let (oack, tid) = recv(&sock).await;
    let agreed = oack_options(&oack);
    let bs: usize = agreed["blksize"].parse().unwrap();
    let w: u16 = agreed["windowsize"].parse().unwrap();
    sock.send_to(&ack(0), tid).await.unwrap();
    let mut data = Vec::new();
    let mut expected: u16 = 1;
    let mut since_ack = 0;
    let mut lost = false;
    loop {
        let (p, from) = recv(&sock).await;
        assert_eq!(from, tid);
        assert_eq!(opcode(&p), DATA);
        let block = u16::from_be_bytes([p[2], p[3]]);
        if Some(block) == lose && !lost {
            lost = true;
            continue;
        }
        if block == expected {
            data.extend_from_slice(&p[4..]);
            expected = expected.wrapping_add(1);
            since_ack += 1;
            if p.len() - 4 < bs {
                sock.send_to(&ack(block), tid).await.unwrap();
                return data;
            }
            if since_ack == w {
                sock.send_to(&ack(block), tid).await.unwrap();
                since_ack = 0;
            }
        } else {
            sock.send_to(&ack(expected.wrapping_sub(1)), tid)
                .await
                .unwrap();
            since_ack = 0;
        }
    }
}

// ---- pure parts ----

#[test]
fn parses_ovmf_probe_request() {
    let p = request(
        RRQ,
        "ipxe.efi",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let r = parse_request(&p).unwrap();
    assert_eq!(
        r,
        Request {
            write: false,
            file: "ipxe.efi".into(),
            mode: "octet".into(),
            options: vec![
                ("tsize".into(), "0".into()),
                ("blksize".into(), "1468".into()),
                ("windowsize".into(), "4".into()),
            ],
        }
    );
    assert_eq!(parse_request(&ack(3)), Err(ParseError::NotRequest(ACK)));
    assert_eq!(
        parse_request(b"\0\x01ipxe.efi\0oct"),
        Err(ParseError::Unterminated)
    );
    assert_eq!(parse_request(b"\0\x01x\0"), Err(ParseError::Short));
    // Option names are case-insensitive (RFC 2347); a dangling name is ignored.
    let r = parse_request(b"\0\x01f\0OCTET\0BlkSize\0800\0tsize\0").unwrap();
    assert_eq!(r.mode, "octet");
    assert_eq!(r.options, vec![("blksize".into(), "800".into())]);
}

#[test]
fn negotiates_caps_and_skips_invalid_options() {
    let opts = |o: &[(&str, &str)]| -> Vec<(String, String)> {
        o.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    // iPXE.
    let n = negotiate(&opts(&[("blksize", "1432"), ("tsize", "0")]), 74213, 1468);
    assert_eq!(n.block_size, 1432);
    assert_eq!(n.window, 1);
    assert_eq!(
        n.oack,
        vec![("blksize", "1432".into()), ("tsize", "74213".into())]
    );
    // OVMF against a smaller cap.
    let ovmf = opts(&[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]);
    let n = negotiate(&ovmf, 850528, 1024);
    assert_eq!((n.block_size, n.window), (1024, 4));
    assert_eq!(
        n.oack,
        vec![
            ("tsize", "850528".into()),
            ("blksize", "1024".into()),
            ("windowsize", "4".into())
        ]
    );
    // Out of range or garbage: left out, defaults kept.
    let bad = opts(&[
        ("blksize", "4"),
        ("windowsize", "0"),
        ("timeout", "0"),
        ("tsize", "x"),
        ("multicast", ""),
    ]);
    let n = negotiate(&bad, 10, 1468);
    assert_eq!(
        (n.block_size, n.window, n.timeout),
        (512, 1, DEFAULT_TIMEOUT)
    );
    assert!(n.oack.is_empty());
    let n = negotiate(&opts(&[("tsize", "0")]), 0, 1468);
    assert!(n.oack.is_empty(), "no tsize 0 (curl refuses it)");
    // Above u16 or above the caps: capped, not refused.
    let big = opts(&[
        ("blksize", "100000"),
        ("windowsize", "999"),
        ("timeout", "3"),
    ]);
    let n = negotiate(&big, 10, u16::MAX);
    assert_eq!(n.block_size, 65464);
    assert_eq!(n.window, MAX_WINDOW);
    assert_eq!(n.timeout, Duration::from_secs(3));
}

#[test]
fn ack_numbers_map_across_block_wrap() {
    // Blocks 65535..=65538 in flight: wire numbers 65535, 0, 1, 2.
    assert_eq!(ack_to_block(65535, 65534, 65538), Some(65535));
    assert_eq!(ack_to_block(0, 65534, 65538), Some(65536));
    assert_eq!(ack_to_block(2, 65534, 65538), Some(65538));
    assert_eq!(ack_to_block(3, 65534, 65538), None, "not sent yet");
    assert_eq!(ack_to_block(65534, 65534, 65538), None, "duplicate");
    // Second wrap.
    assert_eq!(ack_to_block(1, 131071, 131073), Some(131073));
    assert_eq!(ack_to_block(0, 0, 1), None, "ACK 0 is the OACK's");
}

#[test]
fn data_block_numbers_wrap_to_zero() {
    assert_eq!(data_header(1), [0, 3, 0, 1]);
    assert_eq!(data_header(65535), [0, 3, 0xff, 0xff]);
    assert_eq!(data_header(65536), [0, 3, 0, 0]);
    assert_eq!(data_header(65535 + 65536 + 2), [0, 3, 0, 1]);
}

#[tokio::test]
async fn blocks_are_slices_of_the_shared_copy_or_read_in_order() {
    let data = Bytes::from(content(1000, 5));
    let mut memory = Blocks::Memory(data.clone());
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), &data).unwrap();
    let file = tokio::fs::File::open(path.path()).await.unwrap();
    let mut disk = Blocks::File(BufReader::new(file));
    // 400 + 400 + 200, then nothing: the sizes that end a transfer.
    for (block, want) in [(1, 0..400), (2, 400..800), (3, 800..1000), (4, 1000..1000)] {
        let m = memory.read(block, 400).await.unwrap();
        assert_eq!(m, data.slice(want.clone()), "block {block}");
        // The same memory, not a copy per transfer.
        assert_eq!(m.as_ptr(), data[want.start..].as_ptr());
        let d = disk.read(block, 400).await.unwrap();
        assert_eq!(d, data.slice(want), "block {block} from disk");
    }
}

#[test]
fn names_resolve_inside_the_root() {
    let ok = |s: &str| relative_path(s).unwrap();
    assert_eq!(ok("ipxe.efi"), Path::new("ipxe.efi"));
    assert_eq!(ok("/ipxe.efi"), Path::new("ipxe.efi"));
    assert_eq!(ok("//a/./b"), Path::new("a/b"));
    assert_eq!(
        ok("boot\\x64\\wdsnbp.com"),
        Path::new("boot/x64/wdsnbp.com")
    );
    for bad in [
        "../etc/passwd",
        "/../../etc/passwd",
        "a/../b",
        "..",
        "a\\..\\..\\b",
    ] {
        assert!(
            matches!(relative_path(bad), Err(TransferError::AccessViolation(_))),
            "{bad:?} accepted"
        );
    }
    for empty in ["", "/", "./"] {
        assert!(matches!(relative_path(empty), Err(TransferError::NotFound)));
    }
}

// ---- against curl ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_downloads_match_the_source() {
    let files = [
        ("small.bin", 1000),
        ("exact512.bin", 512 * 4),
        ("exact1468.bin", 1468 * 3),
        ("empty.bin", 0),
        ("undionly.kpxe", 74213),
        ("sub/dir/ipxe.efi", 850528),
    ];
    let mut server = Server::start(&files, 1468, 64).await;
    let out = tempfile::tempdir().unwrap();
    for (name, len) in files {
        for extra in [&[][..], &["--tftp-blksize", "1468"][..]] {
            let dest = out.path().join("out");
            let code = curl(server.addr, name, extra, &dest).await;
            assert_eq!(code, Some(0), "curl {name} {extra:?}");
            assert!(
                std::fs::read(&dest).unwrap() == server.file(name),
                "{name} {extra:?} differs"
            );
            let e = server.event().await;
            assert_eq!(
                (e.file.as_str(), e.bytes, &e.outcome),
                (name, len as u64, &Ok(()))
            );
            assert_eq!(e.peer.ip(), server.addr.ip());
        }
    }
    // A leading '/' (as PXE clients send) names the root: URL "//x" sends "/x".
    let dest = out.path().join("slash");
    assert_eq!(
        curl(server.addr, "/undionly.kpxe", &[], &dest).await,
        Some(0)
    );
    assert!(std::fs::read(&dest).unwrap() == server.file("undionly.kpxe"));
    assert_eq!(server.event().await.file, "/undionly.kpxe");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_large_files_and_block_number_wrap() {
    // 40 MiB at 1468 (28,572 blocks), and 33 MiB at 512: 67,584 blocks, so
    // the block number wraps past 65535 back to 0.
    let files = [("big.bin", 40 << 20), ("wrap.bin", 33 << 20)];
    let mut server = Server::start(&files, 1468, 64).await;
    let out = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("big.bin", &["--tftp-blksize", "1468"][..]),
        ("wrap.bin", &["--tftp-blksize", "512"][..]),
    ] {
        let dest = out.path().join(name);
        let start = Instant::now();
        assert_eq!(
            curl(server.addr, name, extra, &dest).await,
            Some(0),
            "{name}"
        );
        eprintln!("{name}: {:?}", start.elapsed());
        assert!(
            std::fs::read(&dest).unwrap() == server.file(name),
            "{name} differs"
        );
        let e = server.event().await;
        assert_eq!(e.outcome, Ok(()));
        assert_eq!(e.bytes, server.file(name).len() as u64);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traversal_and_missing_files_are_refused() {
    let mut server = Server::start(&[("ipxe.efi", 5000)], 1468, 64).await;
    std::os::unix::fs::symlink("/etc", server.root.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", server.root.path().join("pw")).unwrap();
    // A symlink that stays inside the root is fine.
    std::os::unix::fs::symlink("ipxe.efi", server.root.path().join("link.efi")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let passwd = std::fs::read("/etc/passwd").unwrap();

    // curl: TFTP error 2 is exit 69, error 1 is exit 68.
    for (url_path, code) in [
        ("../etc/passwd", 69),
        ("/../../etc/passwd", 69),
        ("etc/passwd", 69),
        ("pw", 69),
        ("missing.efi", 68),
        ("ipxe.efi/x", 68),
    ] {
        let dest = out.path().join("out");
        let got = curl(server.addr, url_path, &["--path-as-is"], &dest).await;
        assert_eq!(got, Some(code), "curl {url_path}");
        assert!(std::fs::read(&dest).map_or(true, |d| d != passwd));
        let e = server.event().await;
        assert_eq!(e.bytes, 0);
        let want = if code == 68 {
            "file not found"
        } else {
            "access violation"
        };
        assert!(
            e.outcome.as_ref().unwrap_err().starts_with(want),
            "{url_path}: {e:?}"
        );
    }
    let dest = out.path().join("link");
    assert_eq!(curl(server.addr, "link.efi", &[], &dest).await, Some(0));
    assert!(std::fs::read(&dest).unwrap() == server.file("ipxe.efi"));
    assert_eq!(server.event().await.outcome, Ok(()));

    // On the wire: the exact codes, from a transfer port.
    for (file, code) in [
        ("../etc/passwd", 2),
        ("/../../etc/passwd", 2),
        ("etc/passwd", 2),
        ("etc", 2),
        ("", 1),
        ("nothing", 1),
    ] {
        assert_eq!(refused_with(server.addr, RRQ, file).await, code, "{file:?}");
        assert_eq!(server.event().await.file, file);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_requests_are_refused() {
    let mut server = Server::start(&[("ipxe.efi", 100)], 1468, 64).await;
    assert_eq!(refused_with(server.addr, WRQ, "new.efi").await, 2);
    let e = server.event().await;
    assert_eq!(e.file, "new.efi");
    assert_eq!(
        e.outcome,
        Err("write request refused: read-only server".into())
    );
    // And with curl's upload.
    let src = server.root.path().join("ipxe.efi");
    let status = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "20", "-T"])
        .arg(&src)
        .arg(format!("tftp://{}/upload.efi", server.addr))
        .status()
        .await
        .unwrap();
    assert!(!status.success());
    assert!(!server.root.path().join("upload.efi").exists());
    server.stop().await;
}

// ---- what the firmware sends ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ovmf_size_probe_then_windowed_download() {
    let size = 850528;
    let mut server = Server::start(&[("ipxe.efi", size)], 1468, 64).await;
    let probe = [("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")];

    // Probe aborted with an ERROR, as OVMF does.
    let sock = client().await;
    sock.send_to(&request(RRQ, "ipxe.efi", &probe), server.addr)
        .await
        .unwrap();
    let (p, tid) = recv(&sock).await;
    assert_ne!(tid, server.addr);
    let agreed = oack_options(&p);
    assert_eq!(agreed["tsize"], size.to_string());
    assert_eq!(agreed["blksize"], "1468");
    assert_eq!(agreed["windowsize"], "4");
    let abort = [&ERROR.to_be_bytes()[..], &[0, 8], b"size probe\0"].concat();
    sock.send_to(&abort, tid).await.unwrap();
    let e = server.event().await;
    assert_eq!(e.file, "ipxe.efi");
    assert_eq!(e.bytes, 0);
    assert_eq!(e.outcome, Err(SIZE_PROBE.into()));

    // Probe simply abandoned: the server keeps resending the OACK to that
    // client but serves everyone else meanwhile.
    let silent = client().await;
    silent
        .send_to(&request(RRQ, "ipxe.efi", &probe), server.addr)
        .await
        .unwrap();
    assert_eq!(opcode(&recv(&silent).await.0), OACK);

    let start = Instant::now();
    let data = fetch_windowed(server.addr, "ipxe.efi", 1468, 4, None).await;
    eprintln!("windowed 850528 B: {:?}", start.elapsed());
    assert!(data == server.file("ipxe.efi"));
    let e = server.event_for("ipxe.efi").await;
    assert_eq!((e.bytes, e.outcome), (size as u64, Ok(())));

    // A lost block: the client ACKs the last in-order block, the server
    // resumes there (RFC 7440) and stale duplicate ACKs do not derail it.
    let data = fetch_windowed(server.addr, "ipxe.efi", 1468, 4, Some(6)).await;
    assert!(data == server.file("ipxe.efi"));

    // The abandoned probe gives up after its tries and is reported.
    let e = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let e = server.event().await;
            if e.outcome.is_err() {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        e.outcome,
        Err(format!("no answer from the client after {MAX_TRIES} tries"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ipxe_request_and_block_size_cap() {
    let mut server = Server::start(&[("undionly.kpxe", 74213)], 1024, 64).await;
    let sock = client().await;
    let req = request(
        RRQ,
        "/undionly.kpxe",
        &[("blksize", "1432"), ("tsize", "0")],
    );
    sock.send_to(&req, server.addr).await.unwrap();
    let (p, tid) = recv(&sock).await;
    let agreed = oack_options(&p);
    assert_eq!(agreed["blksize"], "1024", "capped by max_block_size");
    assert_eq!(agreed["tsize"], "74213");
    assert!(!agreed.contains_key("windowsize"), "not asked, not offered");
    // Lock-step, one ACK per block.
    sock.send_to(&ack(0), tid).await.unwrap();
    let mut data = Vec::new();
    loop {
        let (p, _) = recv(&sock).await;
        assert_eq!(opcode(&p), DATA);
        assert!(p.len() - 4 <= 1024);
        data.extend_from_slice(&p[4..]);
        let block = u16::from_be_bytes([p[2], p[3]]);
        sock.send_to(&ack(block), tid).await.unwrap();
        if p.len() - 4 < 1024 {
            break;
        }
    }
    assert!(data == server.file("undionly.kpxe"));
    let e = server.event().await;
    assert_eq!(
        (e.file.as_str(), e.bytes, e.outcome),
        ("/undionly.kpxe", 74213, Ok(()))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_transfers_in_flight() {
    let mut server = Server::start(&[("ipxe.efi", 100_000)], 1468, 64).await;
    let sock = client().await;
    sock.send_to(&request(RRQ, "ipxe.efi", &[]), server.addr)
        .await
        .unwrap();
    let (p, tid) = recv(&sock).await;
    assert_eq!(opcode(&p), DATA, "no options, so no OACK");
    // Never ACK; stop the server.
    server.shutdown.cancel();
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), &mut server.task)
        .await
        .expect("serve returns promptly")
        .unwrap()
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(1));
    // The client is told, and the transfer is reported.
    loop {
        let (p, from) = recv(&sock).await;
        assert_eq!(from, tid);
        if opcode(&p) == ERROR {
            break;
        }
    }
    let e = server.event().await;
    assert_eq!(e.outcome, Err("server shutting down".into()));
    assert_eq!(e.bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_event_channel_drops_and_counts() {
    let mut server = Server::start(&[], 1468, 1).await;
    let before = dropped_events();
    for name in ["a", "b", "c"] {
        assert_eq!(refused_with(server.addr, RRQ, name).await, 1);
    }
    // Refusals are reported after the ERROR is sent: wait for the count
    // (polled, as a loaded machine may take a while to run the tasks).
    let deadline = Instant::now() + Duration::from_secs(5);
    while dropped_events() < before + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped_events() >= before + 2);
    // The drops reach `/metrics` and `stormboot stats`.
    let services = crate::metrics::ServiceCounters::default().snapshot();
    let n = services.tftp_events_dropped;
    assert!(n >= before + 2, "{services:?}");
    let (metrics, table) = crate::stats::exported_services(services);
    assert!(
        metrics.contains(&format!("\nstormboot_tftp_events_dropped_total {n}\n")),
        "{metrics}"
    );
    assert!(table.contains(&format!(", {n} events dropped;")), "{table}");
    // Each transfer reports from its own task, so which one found the
    // single slot free is up to the scheduler: one is kept, the rest counted.
    let kept = server.event().await.file;
    assert!(["a", "b", "c"].contains(&kept.as_str()), "{kept}");
    server.stop().await;
}

/// What the network does to a windowed download, client side.
#[derive(Default)]
struct Faults {
    /// DATA blocks lost on the way to the client, with how many of their
    /// arrivals are lost.
    lose_data: Vec<(u16, u32)>,
    /// DATA blocks delivered after the block that follows them.
    swap_data: Vec<u16>,
    /// ACKs (counted from 0, ACK 0 of the OACK included) lost on the way
    /// to the server.
    lose_acks: Vec<usize>,
    /// Every ACK is followed by a late copy of the one before it, as if the
    /// network had held that one back.
    late_acks: bool,
    /// Every ACK is sent twice.
    dup_acks: bool,
}

/// A windowed download (RFC 7440) through `faults`: the client keeps only
/// in-order blocks and, on a gap, acknowledges the last in-order one.
/// Returns the file and the DATA packets that reached the client.
async fn fetch_through(
    addr: SocketAddr,
    file: &str,
    blksize: u16,
    window: u16,
    faults: &Faults,
) -> (Vec<u8>, usize) {
    let sock = client().await;
    let (bs, w) = (blksize.to_string(), window.to_string());
    let opts = [("blksize", bs.as_str()), ("windowsize", w.as_str())];
    sock.send_to(&request(RRQ, file, &opts), addr)
        .await
        .unwrap();
    let (oack, tid) = recv(&sock).await;
    let agreed = oack_options(&oack);
    assert_eq!(agreed["windowsize"], w);
    let bs: usize = agreed["blksize"].parse().unwrap();
    let mut acks_sent = 0;
    let mut previous: Option<u16> = None;
    let mut send_ack = |block: u16| {
        let mut out = Vec::new();
        if !faults.lose_acks.contains(&acks_sent) {
            out.push(ack(block));
            if faults.dup_acks {
                out.push(ack(block));
            }
        }
        if let Some(old) = previous.filter(|_| faults.late_acks) {
            out.push(ack(old));
        }
        acks_sent += 1;
        previous = Some(block);
        out
    };
    for p in send_ack(0) {
        sock.send_to(&p, tid).await.unwrap();
    }
    let mut arrivals: HashMap<u16, u32> = HashMap::new();
    let mut held: Option<Vec<u8>> = None;
    let mut data = Vec::new();
    let mut expected: u16 = 1;
    let mut since_ack = 0;
    let mut received = 0;
    loop {
        let (p, from) = recv(&sock).await;
        assert_eq!(from, tid);
        if opcode(&p) == OACK && expected == 1 {
            // Our ACK 0 was lost: the server sent the OACK again.
            for a in send_ack(0) {
                sock.send_to(&a, tid).await.unwrap();
            }
            continue;
        }
        assert_eq!(opcode(&p), DATA, "{p:?}");
        let block = u16::from_be_bytes([p[2], p[3]]);
        let seen = arrivals.entry(block).or_default();
        *seen += 1;
        let lost = faults
            .lose_data
            .iter()
            .any(|&(b, times)| b == block && *seen <= times);
        if lost {
            continue;
        }
        let mut delivered = vec![p];
        if faults.swap_data.contains(&block) && *seen == 1 {
            held = delivered.pop();
        } else if let Some(h) = held.take() {
            delivered.push(h);
        }
        for p in delivered {
            received += 1;
            let block = u16::from_be_bytes([p[2], p[3]]);
            let reply = if block == expected {
                data.extend_from_slice(&p[4..]);
                expected = expected.wrapping_add(1);
                since_ack += 1;
                let last = p.len() - 4 < bs;
                if last || since_ack == window {
                    since_ack = 0;
                    Some((block, last))
                } else {
                    None
                }
            } else {
                since_ack = 0;
                Some((expected.wrapping_sub(1), false))
            };
            if let Some((b, last)) = reply {
                for a in send_ack(b) {
                    sock.send_to(&a, tid).await.unwrap();
                }
                if last {
                    return (data, received);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn windowed_transfers_survive_loss_duplication_and_reordering() {
    // 40 blocks of 512 and a short last one, in windows of 8.
    let size = 40 * 512 + 100;
    let mut server = Server::start(&[("ipxe.efi", size)], 1468, 64).await;
    let cases = [
        (
            "data lost inside a window and at its end, one block twice",
            Faults {
                lose_data: vec![(3, 1), (16, 1), (30, 2)],
                ..Faults::default()
            },
        ),
        (
            "data reordered inside a window and across two",
            Faults {
                swap_data: vec![5, 8, 21],
                ..Faults::default()
            },
        ),
        (
            "ACKs lost, the OACK's among them",
            Faults {
                lose_acks: vec![0, 2],
                ..Faults::default()
            },
        ),
        (
            "ACKs duplicated and stale ones arriving late",
            Faults {
                dup_acks: true,
                late_acks: true,
                ..Faults::default()
            },
        ),
        (
            "everything at once",
            Faults {
                lose_data: vec![(9, 1), (41, 1)],
                swap_data: vec![12],
                lose_acks: vec![3],
                late_acks: true,
                dup_acks: true,
            },
        ),
    ];
    for (what, faults) in &cases {
        let (data, received) = fetch_through(server.addr, "ipxe.efi", 512, 8, faults).await;
        assert!(data == server.file("ipxe.efi"), "{what}: content differs");
        let e = server.event_for("ipxe.efi").await;
        assert_eq!((e.bytes, &e.outcome), (size as u64, &Ok(())), "{what}");
        // Recovery resends from the gap, not the whole file.
        assert!(received < 41 * 3, "{what}: {received} DATA packets");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_beyond_the_cap_wait_then_are_refused_busy() {
    let mut server = Server::start_with(&[("a.efi", 100), ("b.efi", 3000)], 64, |o| {
        o.max_transfers = 1;
        o.busy_wait = Duration::from_millis(700);
    })
    .await;
    // A holds the only slot: one DATA block, not acknowledged yet.
    let a = client().await;
    a.send_to(&request(RRQ, "a.efi", &[]), server.addr)
        .await
        .unwrap();
    let (p, a_tid) = recv(&a).await;
    assert_eq!(opcode(&p), DATA);
    assert_eq!(server.counters.tftp_in_flight.load(Ordering::Relaxed), 1);

    // B waits, its retransmission is ignored, then it is refused.
    let b = client().await;
    let asked = Instant::now();
    b.send_to(&request(RRQ, "b.efi", &[]), server.addr)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.counters.tftp_waiting.load(Ordering::Relaxed), 1);
    b.send_to(&request(RRQ, "b.efi", &[]), server.addr)
        .await
        .unwrap();
    let (p, _) = recv(&b).await;
    assert!(asked.elapsed() >= Duration::from_millis(700));
    assert_eq!(opcode(&p), ERROR);
    assert_eq!(&p[4..], b"server busy\0");
    let e = server.event_for("b.efi").await;
    assert_eq!(e.outcome, Err("too many transfers in progress".into()));
    assert_eq!(server.counters.tftp_busy.load(Ordering::Relaxed), 1);
    assert_eq!(server.counters.tftp_waiting.load(Ordering::Relaxed), 0);
    // As `/metrics` and `stormboot stats` show it.
    let (metrics, table) = crate::stats::exported_services(server.counters.snapshot());
    for line in [
        "stormboot_tftp_busy_total 1",
        "stormboot_tftp_transfers_in_flight 1",
        "stormboot_tftp_requests_waiting 0",
    ] {
        assert!(
            metrics.contains(&format!("\n{line}\n")),
            "{line}: {metrics}"
        );
    }
    assert!(
        table.contains("TFTP now 1 running, 0 waiting, 1 refused busy"),
        "{table}"
    );

    // C waits too, and is served as soon as A is done.
    let c = client().await;
    c.send_to(&request(RRQ, "b.efi", &[]), server.addr)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send_to(&ack(1), a_tid).await.unwrap();
    let e = server.event_for("a.efi").await;
    assert_eq!((e.bytes, e.outcome), (100, Ok(())));
    let mut data = Vec::new();
    loop {
        let (p, tid) = recv(&c).await;
        assert_eq!(opcode(&p), DATA, "{p:?}");
        data.extend_from_slice(&p[4..]);
        c.send_to(&ack(u16::from_be_bytes([p[2], p[3]])), tid)
            .await
            .unwrap();
        if p.len() - 4 < 512 {
            break;
        }
    }
    assert!(data == server.file("b.efi"));
    let e = server.event_for("b.efi").await;
    assert_eq!((e.bytes, e.outcome), (3000, Ok(())));
    assert_eq!(server.counters.tftp_busy.load(Ordering::Relaxed), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_file_read_once_and_reread_when_changed() {
    let mut server = Server::start(&[("ipxe.efi", 300_000)], 1468, 256).await;
    let out = tempfile::tempdir().unwrap();
    let fetches: Vec<_> = (0..40)
        .map(|i| {
            let dest = out.path().join(format!("{i}"));
            let addr = server.addr;
            tokio::spawn(async move {
                let code = curl(addr, "ipxe.efi", &["--tftp-blksize", "1468"], &dest).await;
                (code, std::fs::read(&dest).unwrap_or_default())
            })
        })
        .collect();
    let want = server.file("ipxe.efi");
    for f in fetches {
        let (code, got) = f.await.unwrap();
        assert_eq!(code, Some(0));
        assert!(got == want, "content differs");
    }
    for _ in 0..40 {
        assert_eq!(server.event_for("ipxe.efi").await.outcome, Ok(()));
    }
    let c = &server.counters;
    assert_eq!(c.file_cache_misses.load(Ordering::Relaxed), 1, "read once");
    assert_eq!(c.file_cache_hits.load(Ordering::Relaxed), 39);
    assert_eq!(c.file_cache_bytes.load(Ordering::Relaxed), 300_000);

    // Replaced with a same-sized file a clock tick later: served new.
    std::thread::sleep(Duration::from_millis(30));
    let new = content(300_000, 99);
    std::fs::write(server.root.path().join("ipxe.efi"), &new).unwrap();
    let dest = out.path().join("after");
    assert_eq!(curl(server.addr, "ipxe.efi", &[], &dest).await, Some(0));
    assert!(std::fs::read(&dest).unwrap() == new, "stale copy served");
    assert_eq!(c.file_cache_misses.load(Ordering::Relaxed), 2);
    assert_eq!(c.file_cache_bytes.load(Ordering::Relaxed), 300_000);
    server.stop().await;
}

/// In the daemon the HTTP downloads keep the main runtime busy; a transfer
/// in lockstep waits for the server at every block, so the server must not
/// queue behind them. Here the caller's (only) runtime thread is blocked
/// outright while a client downloads, block by block.
#[tokio::test(flavor = "current_thread")]
async fn transfers_run_while_the_callers_runtime_is_blocked() {
    let size = 100 * 512 + 7;
    let mut server = Server::start(&[("undionly.kpxe", size)], 1468, 16).await;
    let addr = server.addr;
    let client = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send_to(&request(RRQ, "undionly.kpxe", &[]), addr)
            .unwrap();
        let mut buf = [0u8; 600];
        let mut data = Vec::new();
        loop {
            let (n, tid) = sock.recv_from(&mut buf).expect("a block within 2 s");
            assert_eq!(opcode(&buf[..n]), DATA);
            data.extend_from_slice(&buf[4..n]);
            sock.send_to(&ack(u16::from_be_bytes([buf[2], buf[3]])), tid)
                .unwrap();
            if n - 4 < 512 {
                return data;
            }
        }
    });
    // Blocks this runtime's only thread for longer than the client waits.
    std::thread::sleep(Duration::from_secs(3));
    let data = client.join().expect("the download stalled");
    assert!(data == server.file("undionly.kpxe"));
    let e = server.event_for("undionly.kpxe").await;
    assert_eq!((e.bytes, e.outcome), (size as u64, Ok(())));
    server.stop().await;
}
