//! A renewal answered while the shared store cannot be reached: ACKed,
//! but for no longer than the store's record of the lease plus the
//! cluster's grace, the time every other node leaves the address alone
//! past its recorded expiry. So such an ACK cannot overlap another node
//! giving the address away, and the lease is written when the store is
//! back.

use std::net::Ipv4Addr;

use stormboot_common::layout::{msg, opt, OPTIONS_OFF};

use crate::leases::{Lease, LeaseChange, LeaseState};

use super::Reply;

/// The ACK of a renewal cut to end at `prior.expires + grace`, and the
/// lease as cut; None when `reply` does not renew `prior` for its holder
/// (the new lease is not the same client's binding of the same address),
/// or when the bound has passed.
pub fn renewal(
    prior: &Lease,
    reply: &Reply,
    changes: &[LeaseChange],
    grace: u64,
    now: u64,
) -> Option<(Reply, Lease)> {
    if reply.msg_type != msg::ACK || prior.state != LeaseState::Bound || reply.yiaddr != prior.ip {
        return None;
    }
    let renewed = changes.iter().find_map(|c| match c {
        LeaseChange::Upsert(l) if l.ip == prior.ip => Some(l),
        _ => None,
    })?;
    if renewed.mac != prior.mac || renewed.state != LeaseState::Bound {
        return None;
    }
    let limit = prior.expires.saturating_add(grace);
    let expires = renewed.expires.min(limit);
    let secs = u32::try_from(expires.checked_sub(now)?)
        .ok()
        .filter(|&s| s > 0)?;
    let mut cut = reply.clone();
    set_times(&mut cut.payload, secs);
    let mut lease = renewed.clone();
    lease.expires = expires;
    Some((cut, lease))
}

/// Rewrites the lease time (51) and the renewal (58) and rebinding (59)
/// times in a rendered reply's options to `secs` and its RFC 2131
/// fractions.
fn set_times(payload: &mut [u8], secs: u32) {
    let mut i = OPTIONS_OFF;
    while let Some(&code) = payload.get(i) {
        match code {
            opt::END => return,
            opt::PAD => i += 1,
            _ => {
                let Some(&len) = payload.get(i + 1) else {
                    return;
                };
                let value = match code {
                    51 => Some(secs),
                    58 => Some(secs / 2),
                    59 => Some((u64::from(secs) * 7 / 8) as u32),
                    _ => None,
                };
                if let (Some(v), 4) = (value, len) {
                    if let Some(field) = payload.get_mut(i + 2..i + 6) {
                        field.copy_from_slice(&v.to_be_bytes());
                    }
                }
                i += 2 + len as usize;
            }
        }
    }
}

/// The address a REQUEST renews (ciaddr, else option 50), for looking up
/// its lease before the request is handled.
pub fn renewed_address(ciaddr: Ipv4Addr, requested: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    if !ciaddr.is_unspecified() {
        return Some(ciaddr);
    }
    requested
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormboot_common::rules::{Destination, EthDest};

    fn lease(expires: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, 20),
            client_id: vec![1, 2, 0, 0, 0, 0, 9],
            mac: [2, 0, 0, 0, 0, 9],
            state: LeaseState::Bound,
            expires,
            updated: 1_000,
            hostname: None,
        }
    }

    fn ack(times: u32) -> Reply {
        let mut payload = vec![0u8; OPTIONS_OFF];
        payload.extend_from_slice(&[53, 1, msg::ACK]);
        for (code, v) in [(51u8, times), (58, times / 2), (59, times / 8 * 7)] {
            payload.extend_from_slice(&[code, 4]);
            payload.extend_from_slice(&v.to_be_bytes());
        }
        payload.push(opt::END);
        Reply {
            payload,
            dest: Destination {
                ip: 0,
                port: 68,
                eth: EthDest::Chaddr,
                flags: 0,
            },
            msg_type: msg::ACK,
            yiaddr: Ipv4Addr::new(10, 0, 0, 20),
        }
    }

    fn option(payload: &[u8], code: u8) -> u32 {
        let i = payload[OPTIONS_OFF..]
            .windows(2)
            .position(|w| w == [code, 4])
            .unwrap()
            + OPTIONS_OFF;
        u32::from_be_bytes(payload[i + 2..i + 6].try_into().unwrap())
    }

    #[test]
    fn a_renewal_ends_at_the_recorded_expiry_plus_grace() {
        // Bound until 1,060; renewed at 1,010 for an hour; grace 5 s.
        let prior = lease(1_060);
        let renewed = lease(1_010 + 3_600);
        let (cut, l) = renewal(
            &prior,
            &ack(3_600),
            &[LeaseChange::Upsert(renewed)],
            5,
            1_010,
        )
        .expect("a renewal");
        assert_eq!(l.expires, 1_065);
        assert_eq!(option(&cut.payload, 51), 55);
        assert_eq!(option(&cut.payload, 58), 27);
        assert_eq!(option(&cut.payload, 59), 48);
        // A grace past the asked lease keeps the lease as asked.
        let (cut, l) = renewal(
            &prior,
            &ack(60),
            &[LeaseChange::Upsert(lease(1_070))],
            3_600,
            1_010,
        )
        .unwrap();
        assert_eq!((l.expires, option(&cut.payload, 51)), (1_070, 60));
    }

    #[test]
    fn only_the_holder_renewing_its_binding_in_time_is_answered() {
        let prior = lease(1_060);
        let renewed = || vec![LeaseChange::Upsert(lease(4_610))];
        // Past the bound: nothing to give.
        assert!(renewal(&prior, &ack(3_600), &renewed(), 5, 1_065).is_none());
        // Another client's lease of the address.
        let mut other = lease(4_610);
        other.mac = [2, 0, 0, 0, 0, 8];
        assert!(renewal(&prior, &ack(3_600), &[LeaseChange::Upsert(other)], 5, 1_010).is_none());
        // An offer, or a NAK, is not a renewal.
        let mut offered = prior.clone();
        offered.state = LeaseState::Offered;
        assert!(renewal(&offered, &ack(3_600), &renewed(), 5, 1_010).is_none());
        let mut nak = ack(3_600);
        nak.msg_type = msg::NAK;
        assert!(renewal(&prior, &nak, &renewed(), 5, 1_010).is_none());
    }
}
