//! Decodes a request's BOOTP payload into a dhcproto `Message`, one option
//! at a time.
//!
//! dhcproto's own `Message::decode` stops reading options at the first one
//! it cannot decode (a subnet mask of three bytes, say) and silently drops
//! every option after it, so a request whose option 60 or 93 follows a bad
//! option would get plain DHCP here but its boot file from the XDP
//! program, which walks every option. Here each option is decoded on its
//! own; one that does not decode is left out and the walk goes on, the way
//! the program's walk does. Repeats of a code are concatenated (RFC 3396),
//! as dhcproto does for adjacent ones.

use std::collections::BTreeMap;

use dhcproto::v4::{DhcpOption, Message};
use dhcproto::{Decodable, Decoder};
use stormboot_common::layout::{opt, COOKIE, OPTIONS_OFF};

/// The message in `payload`; an error only when its fixed header is cut
/// short.
pub fn message(payload: &[u8]) -> Result<Message, String> {
    let header = payload
        .get(..OPTIONS_OFF)
        .ok_or_else(|| format!("{} bytes, shorter than a BOOTP header", payload.len()))?;
    // The fixed header alone, its options ended at once.
    let mut head = header.to_vec();
    head.push(opt::END);
    let mut msg = Message::decode(&mut Decoder::new(&head)).map_err(|e| e.to_string())?;
    if header[OPTIONS_OFF - 4..] != COOKIE {
        // Plain BOOTP: what follows the header is vendor data, not options.
        return Ok(msg);
    }
    for (code, value) in options(&payload[OPTIONS_OFF..]) {
        // dhcproto reads an option longer than 255 bytes as consecutive
        // instances of at most 255, the way they are sent.
        let mut tlv = Vec::with_capacity(value.len() + 2 * (value.len() / 255 + 1));
        for chunk in value.chunks(255) {
            tlv.extend_from_slice(&[code, chunk.len() as u8]);
            tlv.extend_from_slice(chunk);
        }
        if value.is_empty() {
            tlv.extend_from_slice(&[code, 0]);
        }
        tlv.push(opt::END);
        if let Ok(o) = DhcpOption::decode(&mut Decoder::new(&tlv)) {
            if !matches!(o, DhcpOption::End | DhcpOption::Pad) {
                msg.opts_mut().insert(o);
            }
        }
    }
    Ok(msg)
}

/// The options up to END (or up to one whose length runs past the end),
/// each code's instances concatenated in order.
fn options(area: &[u8]) -> BTreeMap<u8, Vec<u8>> {
    let mut out: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut i = 0;
    while let Some(&code) = area.get(i) {
        match code {
            opt::END => break,
            opt::PAD => i += 1,
            _ => {
                let Some(&len) = area.get(i + 1) else { break };
                let Some(value) = area.get(i + 2..i + 2 + len as usize) else {
                    break;
                };
                out.entry(code).or_default().extend_from_slice(value);
                i += 2 + len as usize;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{MessageType, OptionCode};

    fn discover() -> Vec<u8> {
        let m = crate::dhcp::tests::req([0x52, 0x54, 0, 0, 0, 1], MessageType::Discover);
        dhcproto::Encodable::to_vec(&m).unwrap()
    }

    #[test]
    fn a_bad_option_does_not_hide_the_ones_after_it() {
        let mut p = discover();
        let end = p.len() - 1;
        // A three-byte subnet mask, then the firmware's options.
        let mut tail = vec![1, 3, 255, 255, 255, 60, 9];
        tail.extend_from_slice(b"PXEClient");
        tail.extend_from_slice(&[93, 2, 0, 7]);
        p.splice(end..end, tail);
        // dhcproto alone loses options 60 and 93.
        let alone = Message::decode(&mut Decoder::new(&p)).unwrap();
        assert!(alone.opts().get(OptionCode::ClassIdentifier).is_none());
        let m = message(&p).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        assert!(m.opts().get(OptionCode::ClientSystemArchitecture).is_some());
        assert!(m.opts().get(OptionCode::SubnetMask).is_none());
    }

    #[test]
    fn repeats_are_concatenated_and_long_values_kept() {
        let mut p = discover();
        let end = p.len() - 1;
        let mut tail = vec![12, 3];
        tail.extend_from_slice(b"abc");
        tail.extend_from_slice(&[0, 0, 12, 2]);
        tail.extend_from_slice(b"de");
        tail.extend_from_slice(&[224, 255]);
        tail.extend(std::iter::repeat_n(7u8, 255));
        tail.extend_from_slice(&[224, 10]);
        tail.extend(std::iter::repeat_n(8u8, 10));
        p.splice(end..end, tail);
        let m = message(&p).unwrap();
        assert_eq!(
            m.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("abcde".into()))
        );
        match m.opts().get(OptionCode::Unknown(224)) {
            Some(DhcpOption::Unknown(u)) => assert_eq!(u.data().len(), 265),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_header_is_an_error() {
        assert!(message(&discover()[..200]).is_err());
        assert!(message(&[]).is_err());
    }
}
