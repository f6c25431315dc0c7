//! The whole daemon in this process, on channels instead of packet
//! sockets, with no dataplane, a loopback API listener and a lease
//! database in a temporary directory (or, in two tests, a private
//! PostgreSQL server): exchanges through the daemon as a client sees them,
//! without root or namespaces. What needs the kernel (XDP, packet sockets,
//! the veth) stays in the testbed's tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde_json::{json, Value};
use stormboot::config::Config;
use stormboot::dhcp::Ingress;
use stormboot::frame::{self, Addressing, BROADCAST_MAC};
use stormboot::link::{self, Wire};
use stormboot::serve::{self, Io, ServeOptions};
use stormboot::slowpath::Endpoint;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const POOL_CLIENT: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x42];
const RESERVED: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x01];
const RESERVED_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 11);
const TOKEN: &str = "in-process-token";
/// Far longer than an answer takes (milliseconds); only a daemon that
/// does not answer waits it out.
const PATIENCE: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"
dataplane = "userspace"

[api]
token = "in-process-token"

[[subnet]]
cidr = "10.50.0.0/24"
routers = ["10.50.0.1"]
pool = ["10.50.0.100-10.50.0.110"]
lease_time = "1h"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
hostname = "node1"
"#;

/// A daemon running in this process, and the far ends of its I/O.
struct Daemon {
    api: SocketAddr,
    wire: Wire,
    reload: mpsc::Sender<()>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
    xid: u32,
}

/// A broadcast from a client without an address to `dport`.
fn unaddressed(mac: [u8; 6], dport: u16) -> Addressing {
    Addressing {
        eth_dst: BROADCAST_MAC,
        eth_src: mac,
        vlan: None,
        ip_src: Ipv4Addr::UNSPECIFIED,
        ip_dst: Ipv4Addr::BROADCAST,
        sport: 68,
        dport,
    }
}

/// `text` with the lease database in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("stormboot.toml");
    // Last, so it cannot take over keys of the table before it.
    let text = format!(
        "{text}\n[store]\npath = \"{}\"\n",
        dir.join("leases.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Daemon {
    async fn start(text: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), text);
        let cfg = Config::load(&config).unwrap();
        Self::start_with(cfg, config, dir).await
    }

    async fn start_with(cfg: Config, config: PathBuf, dir: tempfile::TempDir) -> Daemon {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = api.local_addr().unwrap();
        let (link, wire) = link::pair(Endpoint {
            ingress: Ingress {
                ifindex: 7,
                iface_name: "sb0".into(),
                iface_addr: SERVER,
            },
            mac: SERVER_MAC,
            server_ip: cfg.server.address,
        });
        let boot_only = cfg.server.mode == stormboot::config::Mode::BootOnly;
        let (reload, reloads) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let io = Io {
            api,
            omapi: None,
            links: if boot_only { Vec::new() } else { vec![link] },
            stores: match boot_only {
                true => None,
                false => Some(
                    stormboot::store::open_for(&cfg.store, cfg.cluster.as_ref())
                        .await
                        .unwrap(),
                ),
            },
            xdp: None,
            preloaded: None,
            reloads: Some(reloads),
            shutdown: shutdown.clone(),
        };
        let opts = ServeOptions {
            config_path: Some(config),
            ..Default::default()
        };
        let task = tokio::spawn(serve::run(cfg, opts, io));
        Daemon {
            api: addr,
            wire,
            reload,
            shutdown,
            task,
            dir,
            xid: 0,
        }
    }

    /// Sends `msg` from `mac` as a client without an address does, and
    /// returns the daemon's answer: the frame's addressing and message.
    async fn ask(&mut self, mac: [u8; 6], msg: Message) -> Option<(Addressing, Message)> {
        self.send(unaddressed(mac, 67), &msg).await;
        let (addr, answer) = self.answer().await?;
        assert_eq!(answer.xid(), msg.xid(), "an answer to another request");
        Some((addr, answer))
    }

    async fn send(&mut self, addr: Addressing, msg: &Message) {
        let mut payload = Vec::new();
        msg.encode(&mut Encoder::new(&mut payload)).unwrap();
        self.wire
            .arrive
            .send(frame::build(&addr, &payload))
            .await
            .unwrap();
    }

    /// The next frame the daemon sends.
    async fn answer(&mut self) -> Option<(Addressing, Message)> {
        let f = tokio::time::timeout(PATIENCE, self.wire.sent.recv())
            .await
            .ok()??;
        let p = frame::parse(&f).expect("the daemon sends well-formed frames");
        let m = Message::decode(&mut Decoder::new(p.payload)).unwrap();
        Some((p.addr, m))
    }

    /// Whether the daemon sends nothing for `wait`.
    async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.wire.sent.recv())
            .await
            .is_err()
    }

    fn message(&mut self, mac: [u8; 6], t: MessageType) -> Message {
        self.xid += 1;
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(0x5100 + self.xid, z, z, z, z, &mac);
        m.set_opcode(Opcode::BootRequest);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        m
    }

    /// DISCOVER, then REQUEST what was offered: the OFFER's and the ACK's
    /// addresses.
    async fn dora(&mut self, mac: [u8; 6]) -> (Ipv4Addr, Ipv4Addr) {
        let (addr, offer) = self.discover(mac).await;
        assert_eq!(addr.eth_src, SERVER_MAC);
        assert_eq!(addr.ip_src, SERVER);
        let mut req = self.message(mac, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        let (_, ack) = self.ask(mac, req).await.expect("an ACK");
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        (offer.yiaddr(), ack.yiaddr())
    }

    async fn discover(&mut self, mac: [u8; 6]) -> (Addressing, Message) {
        let m = self.message(mac, MessageType::Discover);
        let (addr, offer) = self.ask(mac, m).await.expect("an OFFER");
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        (addr, offer)
    }

    /// An API request: its status and JSON body (Null when empty).
    async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (addr, method, path) = (self.api, method.to_string(), path.to_string());
        let auth = token.map(|t| format!("Bearer {t}"));
        tokio::task::spawn_blocking(move || {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let (status, text) =
                stormboot::http::request(addr, &method, &path, &headers, body.as_bytes()).unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .await
        .unwrap()
    }

    /// Runs the `stormboot` binary against this daemon's API: its exit
    /// status and what it printed.
    async fn cli(&self, args: &[&str]) -> (bool, String) {
        let api = format!("http://{}", self.api);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stormboot"));
        cmd.args(args)
            .args(["--api", &api, "--config", "/nonexistent/stormboot.toml"])
            .env_remove("STORMBOOT_LOG");
        tokio::task::spawn_blocking(move || {
            let out = cmd.output().expect("running stormboot");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        })
        .await
        .unwrap()
    }

    /// Stops the daemon and returns how it ended.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let r = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the daemon stops when told")
            .unwrap();
        drop(self.dir);
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_client_and_a_reservation_complete_dora_and_the_lease_is_kept() {
    let mut d = Daemon::start(CONFIG).await;
    let (offered, acked) = d.dora(POOL_CLIENT).await;
    assert_eq!(offered, acked);
    let pool = u32::from(Ipv4Addr::new(10, 50, 0, 100))..=u32::from(Ipv4Addr::new(10, 50, 0, 110));
    assert!(
        pool.contains(&u32::from(acked)),
        "{acked} is not from the pool"
    );
    assert_eq!(d.dora(RESERVED).await, (RESERVED_IP, RESERVED_IP));

    // The ACK is sent once the lease is stored: the API lists both.
    let (status, leases) = d.api("GET", "/api/v1/leases", None, None).await;
    assert_eq!(status, 200, "{leases}");
    let bound: Vec<(&str, &str)> = leases["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "bound")
        .map(|l| (l["mac"].as_str().unwrap(), l["ip"].as_str().unwrap()))
        .collect();
    let acked = acked.to_string();
    assert!(
        bound.contains(&("52:54:00:00:00:42", acked.as_str())),
        "{leases}"
    );
    assert!(
        bound.contains(&("52:54:00:00:00:01", "10.50.0.11")),
        "{leases}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_made_through_the_api_answers_the_next_discover() {
    let mut d = Daemon::start(CONFIG).await;
    let (_, before) = d.discover(POOL_CLIENT).await;
    assert_ne!(before.yiaddr(), Ipv4Addr::new(10, 50, 0, 20));

    let spec = json!({"mac": "52:54:00:00:00:42", "ip": "10.50.0.20"});
    let (status, body) = d
        .api("POST", "/api/v1/reservations", None, Some(spec.clone()))
        .await;
    assert_eq!(status, 401, "a change without the token: {body}");
    let (status, body) = d
        .api("POST", "/api/v1/reservations", Some(TOKEN), Some(spec))
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");

    // The 200 comes after the userspace server has the change.
    let (_, after) = d.discover(POOL_CLIENT).await;
    assert_eq!(after.yiaddr(), Ipv4Addr::new(10, 50, 0, 20));
    d.stop().await.unwrap();
}

/// The API's reads, the metrics and the DHCP server see one book: after
/// the 200 of a change, each already answers the new way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_sees_a_change_once_it_is_answered() {
    let mut d = Daemon::start(CONFIG).await;
    let count = |stats: &Value| stats["reservations"].as_u64().unwrap();
    let (_, stats) = d.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(count(&stats), 1, "{stats}");

    let spec = json!({"mac": "52:54:00:00:00:42", "ip": "10.50.0.20", "hostname": "node42"});
    let (status, body) = d
        .api("POST", "/api/v1/reservations", Some(TOKEN), Some(spec))
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let (_, one) = d
        .api("GET", "/api/v1/reservations/52:54:00:00:00:42", None, None)
        .await;
    assert_eq!(one["hostname"], "node42", "{one}");
    let (_, page) = d.api("GET", "/api/v1/reservations", None, None).await;
    assert_eq!(page["total"], 2, "{page}");
    let (_, stats) = d.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(count(&stats), 2, "{stats}");
    let (_, offer) = d.discover(POOL_CLIENT).await;
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 50, 0, 20));

    // Removed: gone from every view, and the machine is a pool client again.
    let (status, body) = d
        .api(
            "DELETE",
            "/api/v1/reservations/52:54:00:00:00:42",
            Some(TOKEN),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, _) = d
        .api("GET", "/api/v1/reservations/52:54:00:00:00:42", None, None)
        .await;
    assert_eq!(status, 404);
    let (_, stats) = d.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(count(&stats), 1, "{stats}");
    let (_, offer) = d.discover(POOL_CLIENT).await;
    let pool = u32::from(Ipv4Addr::new(10, 50, 0, 100))..=u32::from(Ipv4Addr::new(10, 50, 0, 110));
    assert!(
        pool.contains(&u32::from(offer.yiaddr())),
        "{}",
        offer.yiaddr()
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_file_as_it_is_now() {
    let mut d = Daemon::start(CONFIG).await;
    let (_, before) = d.discover(POOL_CLIENT).await;
    assert_ne!(before.yiaddr(), Ipv4Addr::new(10, 50, 0, 30));

    let text =
        format!("{CONFIG}\n[[reservation]]\nmac = \"52:54:00:00:00:42\"\nip = \"10.50.0.30\"\n");
    write_config(d.dir.path(), &text);
    d.reload.send(()).await.unwrap();
    // The reload runs beside the DHCP server: ask until it is served.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, offer) = d.discover(POOL_CLIENT).await;
        if offer.yiaddr() == Ipv4Addr::new(10, 50, 0, 30) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reloaded reservation is never offered (still {})",
            offer.yiaddr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The file's other reservation is still served.
    assert_eq!(d.dora(RESERVED).await, (RESERVED_IP, RESERVED_IP));
    d.stop().await.unwrap();
}

/// Boot-only mode answers no DHCP, but serves the one router behind the
/// one token rule: with `read_token`, nothing is readable without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_only_mode_keeps_every_route_behind_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tftp_root = dir.path().join("tftp");
    std::fs::create_dir(&tftp_root).unwrap();
    let text = CONFIG
        .replace("dataplane = \"userspace\"\n", "mode = \"boot-only\"\n")
        .replace("[api]\n", "[api]\nread_token = true\n")
        + &format!("\n[boot]\ntftp_root = \"{}\"\n", tftp_root.display());
    let config = write_config(dir.path(), &text);
    let mut cfg = Config::load(&config).unwrap();
    // Ports the system picks: this test reads only the API.
    (cfg.boot.tftp_port, cfg.boot.http_port, cfg.boot.syslog_port) = (0, 0, 0);
    let d = Daemon::start_with(cfg, config, dir).await;

    for path in [
        "/api/v1/stats",
        "/metrics",
        "/api/v1/machines",
        "/api/v1/reservations",
    ] {
        let (status, body) = d.api("GET", path, None, None).await;
        assert_eq!(status, 401, "{path} without the token: {body}");
        let (status, body) = d.api("GET", path, Some("wrong"), None).await;
        assert_eq!(status, 401, "{path} with a wrong token: {body}");
    }
    let (status, stats) = d.api("GET", "/api/v1/stats", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{stats}");
    assert!(
        stats["dataplane"]
            .as_str()
            .is_some_and(|s| s.contains("boot-only")),
        "{stats}"
    );
    let (status, body) = d
        .api("GET", "/api/v1/reservations", Some(TOKEN), None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("boot-only")),
        "{body}"
    );
    d.stop().await.unwrap();
}

/// proxyDHCP through the whole daemon: the decision is the DHCP server's,
/// by the port a request was sent to. A PXE DISCOVER on 67 gets boot
/// information without an address; a REQUEST on 67 selects the DHCP server
/// that gave the address and gets nothing; a REQUEST to the boot-server
/// port 4011 is answered where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_answers_pxe_clients_by_the_port_they_ask() {
    let dir = tempfile::tempdir().unwrap();
    let tftp_root = dir.path().join("tftp");
    std::fs::create_dir(&tftp_root).unwrap();
    let text = CONFIG.replace("dataplane = \"userspace\"\n", "mode = \"proxy\"\n")
        + &format!(
            "\n[boot]\ntftp_root = \"{}\"\ndefault_profile = \"d\"\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n",
            tftp_root.display()
        );
    let config = write_config(dir.path(), &text);
    let mut cfg = Config::load(&config).unwrap();
    // Ports the system picks: this test reads only DHCP.
    (cfg.boot.tftp_port, cfg.boot.http_port, cfg.boot.syslog_port) = (0, 0, 0);
    let mut d = Daemon::start_with(cfg, config, dir).await;
    let pxe = |d: &mut Daemon, t| {
        let mut m = d.message(POOL_CLIENT, t);
        m.opts_mut().insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003000".to_vec(),
        ));
        m.opts_mut()
            .insert(DhcpOption::ClientSystemArchitecture(7u16.into()));
        m
    };

    let discover = pxe(&mut d, MessageType::Discover);
    let (addr, offer) = d.ask(POOL_CLIENT, discover).await.expect("an OFFER");
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(
        offer.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "a proxy gives no address"
    );
    assert_eq!((addr.ip_dst, addr.dport), (Ipv4Addr::BROADCAST, 68));

    // Requests are handled in the order they arrive: the first answer
    // after both is the boot server's, so the one on 67 got none.
    let on_67 = pxe(&mut d, MessageType::Request);
    d.send(unaddressed(POOL_CLIENT, 67), &on_67).await;
    let mut on_4011 = pxe(&mut d, MessageType::Request);
    let client = Ipv4Addr::new(10, 50, 0, 150);
    on_4011.set_ciaddr(client);
    let mut from = unaddressed(POOL_CLIENT, 4011);
    (from.ip_src, from.sport, from.eth_dst) = (client, 4011, SERVER_MAC);
    d.send(from, &on_4011).await;
    let (addr, ack) = d.answer().await.expect("an ACK from the boot server");
    assert_eq!(ack.xid(), on_4011.xid(), "the REQUEST on 67 was answered");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(
        (addr.eth_dst, addr.ip_dst, addr.dport),
        (POOL_CLIENT, client, 4011)
    );
    d.stop().await.unwrap();
}

/// With `[store] backend = "postgres"` the daemon keeps a pool client's
/// lease and an API reservation in the database, where another node can
/// read them, and a daemon started afresh on that database (nothing of
/// the first one's directory) serves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_api_reservations_are_kept_in_postgresql() {
    use stormboot_testbed::postgres::{Postgres, SUPERUSER};
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x07];
    let pg = Postgres::start("daemon").unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("stormboot")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let start = || async {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("stormboot.toml");
        let store = format!(
            "\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n",
            pg.url("stormboot", SUPERUSER)
        );
        std::fs::write(&config, format!("{CONFIG}{store}")).unwrap();
        let cfg = Config::load(&config).unwrap();
        Daemon::start_with(cfg, config, dir).await
    };

    let mut d = start().await;
    let (_, acked) = d.dora(POOL_CLIENT).await;
    let spec = json!({"mac": "52:54:00:00:00:07", "ip": "10.50.0.30"});
    let (status, body) = d
        .api("POST", "/api/v1/reservations", Some(TOKEN), Some(spec))
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    d.stop().await.unwrap();

    let psql = |sql| {
        pg.psql("stormboot", sql)
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let leases = psql("SELECT ip, encode(mac, 'hex'), state FROM leases");
    assert!(
        leases.contains(&format!("{acked}|525400000042|bound")),
        "{leases}"
    );
    let reservations = psql("SELECT encode(mac, 'hex'), spec::json->>'ip' FROM reservations");
    assert_eq!(reservations.trim(), "525400000007|10.50.0.30");

    let mut d = start().await;
    let (_, offer) = d.discover(MAC).await;
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 50, 0, 30));
    assert_eq!(d.dora(POOL_CLIENT).await, (acked, acked));
    d.stop().await.unwrap();
}

/// An address's history through the API: the pool client's offer and
/// bind, newest first, then the release an operator forced; `limit`
/// keeps the newest; a bad address or limit names its field. Alone, the
/// daemon says it is in no cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_history_lists_what_happened_newest_first() {
    let mut d = Daemon::start(CONFIG).await;
    let (_, acked) = d.dora(POOL_CLIENT).await;
    let (status, body) = d
        .api(
            "DELETE",
            &format!("/api/v1/leases/{acked}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let history = format!("/api/v1/addresses/{acked}/history");
    let (status, body) = d.api("GET", &history, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ip"], acked.to_string());
    let events: Vec<(&str, &str)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["mac"].as_str().unwrap()))
        .collect();
    let mac = "52:54:00:00:00:42";
    assert_eq!(
        events,
        [("freed", mac), ("bound", mac), ("offered", mac)],
        "{body}"
    );
    let (_, newest) = d
        .api("GET", &format!("{history}?limit=1"), None, None)
        .await;
    assert_eq!(newest["items"].as_array().unwrap().len(), 1, "{newest}");
    assert_eq!(newest["items"][0]["event"], "freed");

    let (status, body) = d
        .api("GET", &format!("{history}?limit=0"), None, None)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("limit")),
        "{body}"
    );
    let (status, body) = d
        .api("GET", "/api/v1/addresses/10.50.0.999/history", None, None)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("ip")),
        "{body}"
    );

    let (ok, text) = d
        .cli(&["history", &acked.to_string(), "--limit", "2"])
        .await;
    assert!(ok, "{text}");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains(" freed ") && rows[1].contains(" bound "),
        "{text}"
    );

    let (status, body) = d.api("GET", "/api/v1/cluster", None, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not in a cluster")),
        "{body}"
    );
    let (ok, text) = d.cli(&["cluster"]).await;
    assert!(ok && text.starts_with("not in a cluster"), "{text}");
    d.stop().await.unwrap();
}

/// Two daemons with `[cluster]` on one PostgreSQL database: each lists
/// both alive with agreeing configurations and one leader, the metrics
/// say so, an address's history written through one is read through the
/// other, and a node that stops is gone from the other's view at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_cluster_nodes_see_each_other_and_share_the_history() {
    use stormboot_testbed::postgres::{Postgres, SUPERUSER};
    let pg = Postgres::start("membership").unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("stormboot")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let start = |node: &'static str| {
        let url = pg.url("stormboot", SUPERUSER);
        async move {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("stormboot.toml");
            let tail = format!(
                "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\n[cluster]\nnode = \"{node}\"\n"
            );
            std::fs::write(&config, format!("{CONFIG}{tail}")).unwrap();
            let mut cfg = Config::load(&config).unwrap();
            let cluster = cfg.cluster.as_mut().unwrap();
            // Faster than the file's whole seconds allow, for the test.
            (cluster.heartbeat, cluster.dead_after) =
                (Duration::from_millis(100), Duration::from_secs(5));
            Daemon::start_with(cfg, config, dir).await
        }
    };
    let mut a = start("a").await;
    let b = start("b").await;

    // Until both rows are read by a and a leader is named.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let view = loop {
        let (status, view) = a.api("GET", "/api/v1/cluster", None, None).await;
        assert_eq!(status, 200, "{view}");
        let nodes = view["nodes"].as_array().unwrap();
        if nodes.len() == 2 && view["leader"].is_string() {
            break view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["node"], "a");
    assert_eq!(view["store_reachable"], true, "{view}");
    for n in view["nodes"].as_array().unwrap() {
        assert_eq!(n["alive"], true, "{view}");
        assert_eq!(n["config_agrees"], true, "{view}");
        assert_eq!(n["addresses"], json!(["10.50.0.1"]), "{view}");
    }
    let leaders = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["leader"] == true)
        .count();
    assert_eq!(leaders, 1, "{view}");
    let (_, text) = {
        let addr = a.api;
        tokio::task::spawn_blocking(move || {
            stormboot::http::request(addr, "GET", "/metrics", &[], b"").unwrap()
        })
        .await
        .unwrap()
    };
    assert!(text.contains("stormboot_store_reachable 1\n"), "{text}");
    assert!(text.contains("stormboot_cluster_nodes_alive 2\n"), "{text}");

    let (_, acked) = a.dora(POOL_CLIENT).await;
    let (status, body) = b
        .api(
            "GET",
            &format!("/api/v1/addresses/{acked}/history"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["bound", "offered"], "{body}");

    let (ok, text) = b.cli(&["cluster"]).await;
    assert!(ok, "{text}");
    assert!(
        text.starts_with("this node: b; database reachable"),
        "{text}"
    );
    for node in ["a", "b"] {
        assert!(
            text.lines().any(|l| l
                .get(2..)
                .is_some_and(|r| r.starts_with(&format!("{node} ")))
                && l.contains(" alive ")
                && l.contains(" yes ")),
            "{node} is not listed alive and agreeing:\n{text}"
        );
    }

    b.stop().await.unwrap();
    let stopped = tokio::time::Instant::now();
    loop {
        let (_, view) = a.api("GET", "/api/v1/cluster", None, None).await;
        let names: Vec<&str> = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap())
            .collect();
        if names == ["a"] {
            break;
        }
        // Well before dead_after (5 s): b deleted its row as it stopped.
        assert!(stopped.elapsed() < Duration::from_secs(4), "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await.unwrap();
}

#[path = "daemon/cluster.rs"]
mod cluster;

/// Two nodes of a cluster on one PostgreSQL database. A client bound by
/// one rebinds to the other, which has read its lease from the database
/// and extends it. An address the database gives to a client the second
/// node has not heard of is never offered: the node's write loses, its
/// OFFER is withheld (no NAK), and the same DISCOVER is answered again at
/// once with another address, while a REQUEST for the lost one is NAKed. An address
/// neither the node nor the database knows is not NAKed. An operator's
/// removal of a lease another node has renewed since is refused. Without
/// the database, no NAK at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_never_give_one_address_twice() {
    use stormboot_testbed::postgres::{Postgres, SUPERUSER};
    const BOUND_BY_A: [u8; 6] = [0x52, 0x54, 0, 0, 1, 1];
    const NEWCOMER: [u8; 6] = [0x52, 0x54, 0, 0, 1, 2];
    const STRANGER: [u8; 6] = [0x52, 0x54, 0, 0, 1, 3];
    let mut pg = Postgres::start("cluster").unwrap_or_else(|e| panic!("{e:#}"));
    pg.create_database("stormboot")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let psql = |sql: &str| {
        pg.psql("stormboot", sql)
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let url = pg.url("stormboot", SUPERUSER);
    let start = |node: &'static str| {
        let url = url.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("stormboot.toml");
            let store = format!(
                "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\n\
             [cluster]\nnode = \"{node}\"\nload_balance = false\n"
            );
            std::fs::write(&config, format!("{CONFIG}{store}")).unwrap();
            let cfg = Config::load(&config).unwrap();
            Daemon::start_with(cfg, config, dir).await
        }
    };
    let mut a = start("a").await;
    let mut b = start("b").await;

    let (_, held) = a.dora(BOUND_BY_A).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while b
        .api("GET", &format!("/api/v1/leases/{held}"), None, None)
        .await
        .0
        != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never read a's lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await.unwrap();
    // b alone from here: the addresses it picks are its own slice's, and
    // with a gone its slice is the whole pool.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, view) = b.api("GET", "/api/v1/cluster", None, None).await;
        if view["nodes"].as_array().is_some_and(|n| n.len() == 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never saw a leave: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rebind = b.message(BOUND_BY_A, MessageType::Request);
    rebind.set_ciaddr(held);
    rebind.set_flags(dhcproto::v4::Flags::default().set_broadcast());
    let (_, ack) = b
        .ask(BOUND_BY_A, rebind)
        .await
        .expect("an answer to REBINDING");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), held, "the survivor extends the lease");

    // The next free address as b sees it, given meanwhile by a node b
    // has not heard from, with a time before b's last look.
    let taken = Ipv4Addr::from(u32::from(held) + 1);
    psql(&format!(
        "INSERT INTO leases (ip, client_id, mac, state, expires, updated, node, stored)
         VALUES ('{taken}', '\\x01525400000109', '\\x525400000109', 'bound',
                 extract(epoch FROM now())::bigint + 3600, extract(epoch FROM now())::bigint,
                 'c', now() - interval '1 hour')"
    ));
    let (_, offer) = b.discover(NEWCOMER).await;
    assert_ne!(
        offer.yiaddr(),
        taken,
        "an OFFER of an address the database gives to another client"
    );
    assert!(
        b.silent_for(Duration::from_millis(500)).await,
        "a second answer to one DISCOVER"
    );
    let mut init_reboot = b.message(NEWCOMER, MessageType::Request);
    init_reboot
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(taken));
    let (_, nak) = b.ask(NEWCOMER, init_reboot).await.expect("an answer");
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    let (_, stats) = b.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(stats["lease_conflicts"], 1, "{stats}");
    assert_eq!(stats["slow_path_outcomes"]["lost-race"], 1, "{stats}");
    assert_eq!(
        stats["slow_path_outcomes"]["lost-race-answered-again"], 1,
        "{stats}"
    );

    // Another node renews BOUND_BY_A's lease behind b's back (too long
    // ago for b's next look): an operator's removal through b then leaves
    // the row (409), and b takes the renewed lease back into its table
    // from the lost race.
    psql(&format!(
        "UPDATE leases SET expires = expires + 7200, node = 'c',
                           stored = now() - interval '1 hour'
         WHERE ip = '{held}'"
    ));
    let (status, body) = b
        .api(
            "DELETE",
            &format!("/api/v1/leases/{held}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("changed on another node"),
        "{body}"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while b
        .api("GET", &format!("/api/v1/leases/{held}"), None, None)
        .await
        .0
        != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never learned the row back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nobody's address, as far as b and the database know.
    let free = Ipv4Addr::new(10, 50, 0, 109);
    let mut init_reboot = b.message(STRANGER, MessageType::Request);
    init_reboot
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(free));
    let (_, ack) = b.ask(STRANGER, init_reboot).await.expect("an answer");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), free);

    let rows = psql("SELECT ip, encode(mac, 'hex'), node FROM leases ORDER BY ip");
    assert_eq!(
        rows.trim(),
        format!(
            "{held}|525400000101|c\n{taken}|525400000109|c\n{}|525400000102|b\n\
             {free}|525400000103|b",
            offer.yiaddr()
        ),
        "one holder per address, each row naming the node that wrote it"
    );

    // The database goes away: b's table still says `taken` is another
    // client's, but without the database to confirm it b says nothing.
    pg.stop().unwrap_or_else(|e| panic!("{e:#}"));
    // Its next look (every second) fails.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut init_reboot = b.message(NEWCOMER, MessageType::Request);
    init_reboot
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(taken));
    b.send(unaddressed(NEWCOMER, 67), &init_reboot).await;
    assert!(
        b.silent_for(Duration::from_secs(2)).await,
        "a NAK without the database"
    );
    let (_, stats) = b.api("GET", "/api/v1/stats", None, None).await;
    assert_eq!(stats["slow_path_outcomes"]["nak-withheld"], 1, "{stats}");
    b.stop().await.unwrap();
}
