//! What happened to a lease, as the DHCP logic saw it: the events that
//! notification hooks (`crate::hooks`) report.

use super::Lease;

/// The kinds of lease event, as hooks name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseAction {
    /// A new binding: the client was acknowledged an address it did not
    /// hold a bound lease of.
    Commit,
    /// The same client (MAC) was acknowledged the address it already held:
    /// RENEWING, REBINDING or INIT-REBOOT, by either dataplane.
    Renew,
    /// A bound lease ran out without being renewed.
    Expiry,
    /// The client gave the address back (DHCPRELEASE).
    Release,
    /// The client said the address is in use by someone else (DHCPDECLINE).
    Decline,
}

impl LeaseAction {
    pub const ALL: [LeaseAction; 5] = [
        LeaseAction::Commit,
        LeaseAction::Renew,
        LeaseAction::Expiry,
        LeaseAction::Release,
        LeaseAction::Decline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeaseAction::Commit => "commit",
            LeaseAction::Renew => "renew",
            LeaseAction::Expiry => "expiry",
            LeaseAction::Release => "release",
            LeaseAction::Decline => "decline",
        }
    }

    /// Commit or renew of `lease`, given what the table held for its
    /// address before: a renewal only if that was a bound lease of the same
    /// machine.
    pub fn of_binding(before: Option<&Lease>, lease: &Lease) -> LeaseAction {
        match before {
            Some(b)
                if b.state == super::LeaseState::Bound
                    && b.mac == lease.mac
                    && b.ip == lease.ip =>
            {
                LeaseAction::Renew
            }
            _ => LeaseAction::Commit,
        }
    }
}

/// One event: the action and the lease as it is after it (for expiry,
/// release and decline: as it was, with the decline's quarantine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEvent {
    pub action: LeaseAction,
    pub lease: Lease,
}
