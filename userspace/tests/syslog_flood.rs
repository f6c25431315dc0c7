//! A syslog flood: far more lines, and longer ones, than any boot sends,
//! from one machine, through the real receiver (a UDP socket on loopback)
//! into the boot timeline the way the daemon feeds it. What is kept stays
//! bounded (per machine: `MAX_EVENTS` events of at most `MAX_DETAIL`
//! bytes), what could not be queued is counted, and the receiver still
//! takes a line after the flood.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stormboot::boot::syslog;
use stormboot::timeline::{Phase, Timeline, MAX_DETAIL, MAX_EVENTS};
use tokio_util::sync::CancellationToken;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const LINES: u64 = 50_000;

static DROPPED: AtomicU64 = AtomicU64::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_flood_keeps_memory_bounded_and_the_receiver_alive() {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    // The daemon's queue size between the receiver and the timeline.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<syslog::LogLine>(4096);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(syslog::serve_counting(sock, tx, shutdown.clone(), &DROPPED));
    let timeline = Arc::new(Timeline::default());
    let consumer = {
        let timeline = timeline.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(l) = rx.recv().await {
                let last = l.text.starts_with("after the flood");
                // The daemon maps the sender's address to its MAC.
                timeline.record(MAC, Phase::Syslog, "syslog", l.text);
                n += 1;
                if last {
                    return n;
                }
            }
            n
        })
    };

    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let long = format!("<30>Jan  5 12:00:01 node1 kernel: {}", "x".repeat(8000));
    for i in 0..LINES {
        let line = if i % 2 == 0 {
            long.clone()
        } else {
            format!("<30>node1 app: line {i} {}", "é".repeat(600))
        };
        client.send_to(line.as_bytes(), addr).unwrap();
    }
    // The receiver takes lines after the flood: retried, as UDP may drop
    // one while the kernel's buffer is still full.
    let received = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            client
                .send_to(b"<30>node1 app: after the flood", addr)
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if consumer.is_finished() {
                return consumer.await.unwrap();
            }
        }
    })
    .await
    .expect("the receiver still takes lines after the flood");

    let m = timeline.machine(MAC).expect("the machine's lines are kept");
    assert_eq!(m.events.len(), MAX_EVENTS, "events per machine are bounded");
    let bytes: usize = m.events.iter().map(|e| e.detail.len()).sum();
    assert!(m.events.iter().all(|e| e.detail.len() <= MAX_DETAIL));
    assert!(
        bytes <= MAX_EVENTS * MAX_DETAIL,
        "{bytes} bytes of detail kept"
    );
    assert_eq!(
        m.events.last().unwrap().detail,
        "after the flood",
        "the latest line is kept"
    );
    let dropped = DROPPED.load(Ordering::Relaxed);
    assert!(
        received + dropped <= LINES + 1000,
        "{received} received + {dropped} dropped of {LINES}"
    );
    println!(
        "{LINES} lines sent: {received} reached the timeline, {dropped} dropped at the full queue \
         (the rest the kernel dropped)"
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
