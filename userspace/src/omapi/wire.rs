//! OMAPI's bytes: the startup exchange, the message header, the two
//! name/value lists and the trailing signature, decoded from a stream
//! buffer with every length bounded before it is trusted.
//!
//! Pure: no sockets, no keys (signing is `auth`'s).

/// Protocol version and header size each side sends first.
pub const VERSION: u32 = 100;
pub const HEADER_SIZE: u32 = 24;
/// The 8 startup bytes; clients compare the server's with their own.
pub const STARTUP: [u8; 8] = [0, 0, 0, 100, 0, 0, 0, 24];

/// Largest message accepted or sent (pypureomapi refuses larger ones too).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest attribute name.
pub const MAX_NAME: usize = 1024;
/// Longest signature of any algorithm (HMAC-SHA512).
pub const MAX_SIGNATURE: usize = 64;

pub const OP_OPEN: u32 = 1;
pub const OP_REFRESH: u32 = 2;
pub const OP_UPDATE: u32 = 3;
pub const OP_NOTIFY: u32 = 4;
pub const OP_STATUS: u32 = 5;
pub const OP_DELETE: u32 = 6;

const HEADER_LEN: usize = 24;

/// A name/value list in wire order; a value of length 0 is "null".
pub type Values = Vec<(String, Vec<u8>)>;

/// One OMAPI message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Authenticator handle of the connection; 0 = unsigned.
    pub authid: u32,
    /// Signature length as the header states it.
    pub authlen: u32,
    pub op: u32,
    pub handle: u32,
    pub id: u32,
    /// The id of the message this one answers; 0 in requests.
    pub rid: u32,
    pub message: Values,
    pub object: Values,
    pub signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("startup: version {version}, header size {header_size} (want 100, 24)")]
    Startup { version: u32, header_size: u32 },
    #[error("message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("attribute name of {0} bytes (1..={MAX_NAME})")]
    BadName(usize),
    #[error("attribute name is not printable ASCII")]
    NameNotAscii,
    #[error("signature of {0} bytes (at most {MAX_SIGNATURE})")]
    BadAuthlen(u32),
}

/// The peer's startup: Ok(None) until 8 bytes are there.
pub fn decode_startup(buf: &[u8]) -> Result<Option<()>, WireError> {
    let Some(b) = buf.get(..8) else {
        return Ok(None);
    };
    let version = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let header_size = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    // dhcpd would skip header bytes beyond 24; no client sends any, so
    // anything but the exact pair is refused rather than half-supported.
    if version != VERSION || header_size != HEADER_SIZE {
        return Err(WireError::Startup {
            version,
            header_size,
        });
    }
    Ok(Some(()))
}

/// A bounds-checked reader over a buffer that may end early.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// None: the buffer ends first (more bytes needed).
    fn take(&mut self, n: usize) -> Result<Option<&[u8]>, WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::TooLong)?;
        if end > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        let Some(s) = self.buf.get(self.pos..end) else {
            return Ok(None);
        };
        self.pos = end;
        Ok(Some(s))
    }

    fn u16(&mut self) -> Result<Option<usize>, WireError> {
        Ok(self
            .take(2)?
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))))
    }

    fn u32(&mut self) -> Result<Option<u32>, WireError> {
        Ok(self
            .take(4)?
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    fn values(&mut self) -> Result<Option<Values>, WireError> {
        let mut out = Values::new();
        loop {
            let Some(name_len) = self.u16()? else {
                return Ok(None);
            };
            if name_len == 0 {
                return Ok(Some(out));
            }
            if name_len > MAX_NAME {
                return Err(WireError::BadName(name_len));
            }
            let Some(name) = self.take(name_len)? else {
                return Ok(None);
            };
            if !name.iter().all(|c| c.is_ascii_graphic()) {
                return Err(WireError::NameNotAscii);
            }
            let name = String::from_utf8_lossy(name).into_owned();
            let Some(value_len) = self.u32()? else {
                return Ok(None);
            };
            let value_len = usize::try_from(value_len).map_err(|_| WireError::TooLong)?;
            let Some(value) = self.take(value_len)? else {
                return Ok(None);
            };
            out.push((name, value.to_vec()));
        }
    }
}

/// One message from the front of `buf`: Ok(None) until it is complete,
/// then the message and the bytes it took. An error means the stream can
/// no longer be framed: answer if possible, then close.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let mut c = Cursor { buf, pos: 0 };
    macro_rules! need {
        ($e:expr) => {
            match $e? {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let authid = need!(c.u32());
    let authlen = need!(c.u32());
    if authlen as usize > MAX_SIGNATURE {
        return Err(WireError::BadAuthlen(authlen));
    }
    let op = need!(c.u32());
    let handle = need!(c.u32());
    let id = need!(c.u32());
    let rid = need!(c.u32());
    debug_assert_eq!(c.pos, HEADER_LEN);
    let message = need!(c.values());
    let object = need!(c.values());
    let signature = need!(c.take(authlen as usize)).to_vec();
    Ok(Some((
        Message {
            authid,
            authlen,
            op,
            handle,
            id,
            rid,
            message,
            object,
            signature,
        },
        c.pos,
    )))
}

/// The bytes a signature covers: header from `authlen` on and both lists
/// (authid and the signature itself excluded).
pub fn signed_part(raw: &[u8], authlen: usize) -> &[u8] {
    &raw[4..raw.len() - authlen]
}

fn put_values(out: &mut Vec<u8>, values: &Values) {
    for (name, value) in values {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&[0, 0]);
}

/// The message's bytes without a signature, `authlen` already set: sign
/// `signed_part` of them and append the result.
pub fn encode_unsigned(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for v in [m.authid, m.authlen, m.op, m.handle, m.id, m.rid] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    put_values(&mut out, &m.message);
    put_values(&mut out, &m.object);
    out
}

/// The message's bytes, `signature` appended as it is.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = encode_unsigned(m);
    out.extend_from_slice(&m.signature);
    out
}

/// The value of `name` in a list.
pub fn get<'a>(values: &'a Values, name: &str) -> Option<&'a [u8]> {
    values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// A 4-byte big-endian integer value.
pub fn int(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // omshell's authenticator open, captured from omshell 4.4.3-P1.
    const AUTH_OPEN: &str = "000000000000000000000001000000006b8b4567000000000004747970650000000d61757468656e74696361746f72000000046e616d65000000056f6d6b65790009616c676f726974686d00000019686d61632d6d64352e5349472d414c472e5245472e494e542e0000";

    #[test]
    fn the_authenticator_open_decodes_and_reencodes() {
        let raw = hex(AUTH_OPEN);
        let (m, used) = decode(&raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!((m.authid, m.authlen, m.op, m.handle), (0, 0, OP_OPEN, 0));
        assert_eq!((m.id, m.rid), (0x6b8b_4567, 0));
        assert_eq!(get(&m.message, "type"), Some(&b"authenticator"[..]));
        assert_eq!(get(&m.object, "name"), Some(&b"omkey"[..]));
        assert_eq!(
            get(&m.object, "algorithm"),
            Some(&b"hmac-md5.SIG-ALG.REG.INT."[..])
        );
        assert_eq!(encode(&m), raw);
    }

    #[test]
    fn a_partial_message_asks_for_more_at_every_length() {
        let raw = hex(AUTH_OPEN);
        for n in 0..raw.len() {
            assert_eq!(decode(&raw[..n]), Ok(None), "prefix of {n} bytes");
        }
        let mut two = raw.clone();
        two.extend_from_slice(&raw);
        let (_, used) = decode(&two).unwrap().unwrap();
        assert_eq!(used, raw.len());
    }

    #[test]
    fn oversized_and_malformed_input_is_an_error_not_a_panic() {
        // A value that claims 4 GiB.
        let mut m = hex("0000000000000000000000010000000000000001000000000004");
        m.extend_from_slice(b"type");
        m.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode(&m), Err(WireError::TooLong));
        // A name of 60000 bytes.
        let mut m = hex("000000000000000000000001000000000000000100000000ea60");
        m.extend_from_slice(&[b'a'; 100]);
        assert_eq!(decode(&m), Err(WireError::BadName(60000)));
        // A signature of 1000 bytes.
        let m = hex("00000001000003e8");
        assert_eq!(decode(&m), Err(WireError::BadAuthlen(1000)));
        // A name with a NUL.
        let mut m = hex("0000000000000000000000010000000000000001000000000002");
        m.extend_from_slice(b"a\0");
        assert_eq!(decode(&m), Err(WireError::NameNotAscii));
        // Many small values that add up past the limit.
        let mut m = hex("000000000000000000000001000000000000000100000000");
        while m.len() <= MAX_MESSAGE {
            m.extend_from_slice(&[0, 1, b'x', 0, 0, 0, 4, 1, 2, 3, 4]);
        }
        assert_eq!(decode(&m), Err(WireError::TooLong));
        // Every byte string of a pseudo-random stream, at every length:
        // decode returns, whatever it returns.
        let mut x: u32 = 0x1234_5678;
        let junk: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        for start in 0..64 {
            for n in 0..200 {
                let _ = decode(&junk[start..start + n]);
            }
        }
    }

    #[test]
    fn startup_is_exactly_100_and_24() {
        assert_eq!(decode_startup(&STARTUP), Ok(Some(())));
        assert_eq!(decode_startup(&STARTUP[..7]), Ok(None));
        assert!(decode_startup(&[0, 0, 0, 100, 0, 0, 0, 28]).is_err());
        assert!(decode_startup(&[0, 0, 0, 99, 0, 0, 0, 24]).is_err());
    }
}
