//! A minimal blocking OMAPI client (startup, authenticator, signed calls)
//! for `stormboot-lab bench-omapi`: one request, one reply.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use anyhow::{bail, Context};

use super::auth::{seal, Key};
use super::wire::{self, Message};

pub struct Client {
    stream: TcpStream,
    signer: Option<(u32, Key)>,
    next_id: u32,
    buf: Vec<u8>,
}

impl Client {
    /// Connects, exchanges startups and opens `key`'s authenticator.
    pub fn connect(addr: SocketAddr, key: Option<Key>) -> anyhow::Result<Client> {
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.write_all(&wire::STARTUP)?;
        let mut b = [0u8; 8];
        stream.read_exact(&mut b)?;
        if b != wire::STARTUP {
            bail!("{addr}: not an OMAPI server (startup {b:02x?})");
        }
        let mut c = Client {
            stream,
            signer: None,
            next_id: 1,
            buf: Vec::new(),
        };
        if let Some(key) = key {
            let r = c.call(Message {
                op: wire::OP_OPEN,
                message: vec![("type".into(), b"authenticator".to_vec())],
                object: vec![
                    ("name".into(), key.name.as_bytes().to_vec()),
                    ("algorithm".into(), key.algorithm.wire_name().into_bytes()),
                ],
                ..Default::default()
            })?;
            if r.op != wire::OP_UPDATE || r.handle == 0 {
                bail!("{addr}: key {:?} refused", key.name);
            }
            c.signer = Some((r.handle, key));
        }
        Ok(c)
    }

    /// Sends `m` (id set here, signed when a key is open); its reply.
    pub fn call(&mut self, mut m: Message) -> anyhow::Result<Message> {
        m.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = seal(&m, self.signer.as_ref().map(|(h, k)| (*h, k)));
        self.stream.write_all(&bytes)?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((r, used)) = wire::decode(&self.buf)? {
                self.buf.drain(..used);
                if r.rid != m.id {
                    bail!("reply to {} for request {}", r.rid, m.id);
                }
                return Ok(r);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A create of host `name` (Foreman's values).
pub fn create_host(name: &str, mac: [u8; 6], ip: std::net::Ipv4Addr) -> Message {
    Message {
        op: wire::OP_OPEN,
        message: vec![
            ("create".into(), vec![0, 0, 0, 1]),
            ("exclusive".into(), vec![0, 0, 0, 1]),
            ("type".into(), b"host".to_vec()),
        ],
        object: vec![
            ("name".into(), name.as_bytes().to_vec()),
            ("ip-address".into(), ip.octets().to_vec()),
            ("hardware-address".into(), mac.to_vec()),
            ("hardware-type".into(), vec![0, 0, 0, 1]),
        ],
        ..Default::default()
    }
}

/// The result code of a status reply (0 for anything else).
pub fn result_of(m: &Message) -> u32 {
    wire::get(&m.message, "result")
        .and_then(wire::int)
        .unwrap_or(0)
}
