//! OMAPI's authenticator: a named key (HMAC-MD5, which every OMAPI client
//! speaks, or HMAC-SHA256, which omshell can use) signing each message's
//! header and lists. Verification is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};

use super::wire::{self, Message};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacMd5,
    HmacSha256,
}

const SUFFIX: &str = ".SIG-ALG.REG.INT.";

impl Algorithm {
    /// The config file's spelling.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            "hmac-md5" => Some(Algorithm::HmacMd5),
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            _ => None,
        }
    }

    /// The name clients send and get back (`hmac-md5.SIG-ALG.REG.INT.`).
    pub fn wire_name(self) -> String {
        match self {
            Algorithm::HmacMd5 => format!("hmac-md5{SUFFIX}"),
            Algorithm::HmacSha256 => format!("hmac-sha256{SUFFIX}"),
        }
    }

    /// Whether a client's `algorithm` names this one: case-insensitive,
    /// with or without the suffix and its final dot (dhcpd compares the
    /// full form; the short ones are harmless to accept).
    pub fn matches(self, wire: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(wire) else {
            return false;
        };
        let t = text.to_ascii_lowercase();
        let suffix = SUFFIX.to_ascii_lowercase();
        let base = t
            .strip_suffix(&suffix)
            .or_else(|| t.strip_suffix(suffix.trim_end_matches('.')))
            .unwrap_or(&t);
        Algorithm::parse(base) == Some(self)
    }

    pub fn signature_len(self) -> usize {
        match self {
            Algorithm::HmacMd5 => 16,
            Algorithm::HmacSha256 => 32,
        }
    }
}

/// A key clients may authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub algorithm: Algorithm,
    /// The decoded secret (never its base64 text).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::HmacMd5 => {
                let mut m = <Hmac<md5::Md5> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::HmacSha256 => {
                let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Whether `raw` (one whole message) carries this key's signature;
    /// a signature of the wrong length never verifies.
    pub fn verify(&self, raw: &[u8], authlen: usize) -> bool {
        if authlen != self.algorithm.signature_len() || raw.len() < 4 + authlen {
            return false;
        }
        let data = wire::signed_part(raw, authlen);
        let sig = &raw[raw.len() - authlen..];
        match self.algorithm {
            Algorithm::HmacMd5 => {
                let mut m = <Hmac<md5::Md5> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.verify_slice(sig).is_ok()
            }
            Algorithm::HmacSha256 => {
                let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.verify_slice(sig).is_ok()
            }
        }
    }
}

/// `m` encoded; signed with `key` under `authid` when given, else unsigned.
pub fn seal(m: &Message, signer: Option<(u32, &Key)>) -> Vec<u8> {
    let mut m = m.clone();
    match signer {
        None => {
            m.authid = 0;
            m.authlen = 0;
            m.signature.clear();
            wire::encode(&m)
        }
        Some((authid, key)) => {
            m.authid = authid;
            m.authlen = key.algorithm.signature_len() as u32;
            let mut out = wire::encode_unsigned(&m);
            let sig = key.sign(&out[4..]);
            out.extend_from_slice(&sig);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{decode, get, OP_DELETE, OP_OPEN, OP_STATUS, OP_UPDATE};
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The test key the vectors were signed with: 31 ASCII bytes.
    fn key(algorithm: Algorithm) -> Key {
        Key {
            name: "omkey".into(),
            algorithm,
            secret: b"stormboot-test-key-0123456789ab".to_vec(),
        }
    }

    // Captured between omshell and ISC dhcpd 4.4.3-P1 (Debian 12) with
    // key `omkey`: Foreman's create and dhcpd's signed update reply.
    const CREATE: &str = "000000010000001000000001000000006b8b4568000000000006637265617465000000040000000100096578636c7573697665000000040000000100047479706500000004686f7374000000046e616d6500000009612d746573742d3031000a69702d6164647265737300000004c000020a001068617264776172652d6164647265737300000006525400123456000d68617264776172652d747970650000000400000001000a73746174656d656e74730000005366696c656e616d65203d20227078656c696e75782e30223b206e6578742d736572766572203d2063303a30303a30323a30313b206f7074696f6e20686f73742d6e616d65203d2022612d746573742d3031223b0000807825eca953d24ddaff4c353cdaa263";
    const CREATE_REPLY: &str = "00000001000000100000000300000002630ebefa6b8b45680000000a69702d6164647265737300000004c000020a00046e616d6500000009612d746573742d3031001068617264776172652d6164647265737300000006525400123456000d68617264776172652d74797065000000040000000100002421b95a2851248a185412c77e548069";
    // Foreman's delete: open by MAC, delete handle 2, status 0.
    const DEL_OPEN: &str = "000000010000001000000001000000006b8b45680000000000047479706500000004686f73740000001068617264776172652d61646472657373000000065254001234560000133c61012504c748f9e45a8e2b513758";
    const DEL: &str =
        "000000010000001000000006000000026b8b45690000000000000000da06a62b41f540f07af3e1e94dbcc934";
    const DEL_STATUS: &str = "00000001000000100000000500000000773ea5076b8b45690006726573756c74000000040000000000000000cc0beecbb28ab6ac2be6740256e35e6a";
    // Key conflict status, signed.
    const CONFLICT: &str = "000000010000001000000005000000003771fa466b8b45680006726573756c74000000040006000700076d657373616765000000146f626a656374206c6f6f6b7570206661696c656400000000e72a885a51674f77f00490fcefdb1769";
    // No authenticator on message, unsigned.
    const NOKEYS: &str = "00000000000000000000000500000000752512e26b8b45670006726573756c74000000040006000900076d6573736167650000001b4e6f2061757468656e74696361746f72206f6e206d65737361676500000000";
    // HMAC-SHA256 create (same secret).
    const SHA_CREATE: &str = "000000010000002000000001000000006b8b4568000000000006637265617465000000040000000100096578636c7573697665000000040000000100047479706500000004686f7374000000046e616d65000000087368612d686f7374001068617264776172652d6164647265737300000006525400770001000d68617264776172652d747970650000000400000001000a69702d6164647265737300000004c000021e0000c32ff5b57220cb6e40dfd8f4753080c3be58067fba6a72f888ce4dae5c2120b6";

    fn check_vector(raw_hex: &str, k: &Key, op: u32) -> Message {
        let raw = hex(raw_hex);
        let (m, used) = decode(&raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!(m.op, op);
        if m.authlen > 0 {
            assert!(k.verify(&raw, m.authlen as usize), "{raw_hex}");
        }
        let signer = (m.authid != 0).then_some((m.authid, k));
        assert_eq!(seal(&m, signer), raw, "re-encoding {raw_hex}");
        m
    }

    #[test]
    fn the_captured_md5_messages_decode_verify_and_reencode() {
        let k = key(Algorithm::HmacMd5);
        let c = check_vector(CREATE, &k, OP_OPEN);
        assert_eq!(get(&c.message, "type"), Some(&b"host"[..]));
        assert_eq!(get(&c.object, "name"), Some(&b"a-test-01"[..]));
        assert_eq!(
            get(&c.object, "hardware-address"),
            Some(&[0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
        );
        assert_eq!(
            get(&c.object, "statements"),
            Some(&b"filename = \"pxelinux.0\"; next-server = c0:00:02:01; option host-name = \"a-test-01\";"[..])
        );
        let r = check_vector(CREATE_REPLY, &k, OP_UPDATE);
        assert_eq!((r.handle, r.id, r.rid), (2, 0x630e_befa, 0x6b8b_4568));
        check_vector(DEL_OPEN, &k, OP_OPEN);
        let d = check_vector(DEL, &k, OP_DELETE);
        assert_eq!(d.handle, 2);
        check_vector(DEL_STATUS, &k, OP_STATUS);
        let s = check_vector(CONFLICT, &k, OP_STATUS);
        assert_eq!(get(&s.message, "result"), Some(&[0, 6, 0, 7][..]));
        let n = check_vector(NOKEYS, &k, OP_STATUS);
        assert_eq!(
            get(&n.message, "message"),
            Some(&b"No authenticator on message"[..])
        );
    }

    #[test]
    fn the_captured_sha256_create_verifies() {
        let k = key(Algorithm::HmacSha256);
        let m = check_vector(SHA_CREATE, &k, OP_OPEN);
        assert_eq!(m.authlen, 32);
        assert!(!key(Algorithm::HmacMd5).verify(&hex(SHA_CREATE), 32));
    }

    #[test]
    fn a_changed_byte_a_wrong_secret_or_a_short_signature_fails() {
        let k = key(Algorithm::HmacMd5);
        let raw = hex(CREATE);
        let mut flipped = raw.clone();
        flipped[40] ^= 1;
        assert!(!k.verify(&flipped, 16));
        let wrong = Key {
            secret: b"wrong-secret-wrong-secret-012345".to_vec(),
            ..k.clone()
        };
        assert!(!wrong.verify(&raw, 16));
        assert!(!k.verify(&raw[..raw.len() - 1], 15));
        assert!(!k.verify(&raw[..raw.len() - 16], 0));
        assert!(!k.verify(&raw[..3], 16));
    }

    #[test]
    fn algorithm_names_match_as_dhcpd_and_omshell_write_them() {
        let md5 = Algorithm::HmacMd5;
        assert!(md5.matches(b"hmac-md5.SIG-ALG.REG.INT."));
        assert!(md5.matches(b"HMAC-MD5.SIG-ALG.REG.INT."));
        assert!(md5.matches(b"hmac-md5"));
        assert!(!md5.matches(b"hmac-sha256.SIG-ALG.REG.INT."));
        assert!(Algorithm::HmacSha256.matches(b"HMAC-SHA256.SIG-ALG.REG.INT."));
        assert!(!md5.matches(b"\xff"));
    }
}
