//! Per-CPU counters of the XDP program, indexed by `Counter`, all of a
//! CPU's in one value (`Counts`) of the COUNTERS map's one entry, so that
//! a frame's counts take one lookup. Userspace sums them over CPUs and
//! exports them under `Counter::name`.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the program saw.
    Received = 0,
    /// DHCP requests to port 67 that parsed completely.
    Dhcp,
    Offer,
    Ack,
    Nak,
    /// Passed up: a DHCP request from a MAC without a reservation.
    PassUnknownMac,
    /// Passed up: a reservation, but the request came from another network.
    PassWrongNetwork,
    /// Passed up: other DHCP message types (RELEASE, DECLINE, INFORM, ...)
    /// or REQUEST forms the rules leave to userspace.
    PassOtherDhcp,
    /// Passed up: not IPv4/UDP to port 67 at all (the tax on other traffic).
    PassNotDhcp,
    /// Passed up: something the program does not handle (IP options,
    /// fragments, option 82 too long for the reply, non-Ethernet chaddr).
    PassUnsupported,
    /// Passed up: looked like DHCP but was truncated or inconsistent.
    Malformed,
    /// Dropped: a REQUEST that selected another server.
    DropOtherServer,
    /// A reply could not be built (tail adjustment or store failed); passed.
    TxError,
    /// Reply events lost because this CPU's region of the reply ring was full.
    EventLost,
    /// Passed up: the reply is longer than the request and the buffer had
    /// room at neither end to grow into.
    PassNoRoom,
    /// Dropped: a DHCP request the program would have passed up, from a
    /// MAC that exceeded its slow-path rate (`bucket`).
    DropSlowpathRate,
    /// Passed up in proxy mode: a DHCP request that is no boot request
    /// (no PXE, HTTP boot or iPXE variant); the other DHCP server's.
    PassNotBooting,
    /// Passed up: the machine's slot was being written as the program read
    /// it (`table`); the daemon answers instead.
    PassSlotBusy,
}

/// A CPU's counters: COUNTERS' value, indexed by `Counter`.
pub type Counts = [u64; Counter::COUNT as usize];

impl Counter {
    pub const COUNT: u32 = Counter::PassSlotBusy as u32 + 1;

    pub const ALL: [Counter; Counter::COUNT as usize] = [
        Counter::Received,
        Counter::Dhcp,
        Counter::Offer,
        Counter::Ack,
        Counter::Nak,
        Counter::PassUnknownMac,
        Counter::PassWrongNetwork,
        Counter::PassOtherDhcp,
        Counter::PassNotDhcp,
        Counter::PassUnsupported,
        Counter::Malformed,
        Counter::DropOtherServer,
        Counter::TxError,
        Counter::EventLost,
        Counter::PassNoRoom,
        Counter::DropSlowpathRate,
        Counter::PassNotBooting,
        Counter::PassSlotBusy,
    ];

    /// Stable snake_case name, used by `stormboot stats` and in metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Received => "received",
            Counter::Dhcp => "dhcp",
            Counter::Offer => "offer",
            Counter::Ack => "ack",
            Counter::Nak => "nak",
            Counter::PassUnknownMac => "pass_unknown_mac",
            Counter::PassWrongNetwork => "pass_wrong_network",
            Counter::PassOtherDhcp => "pass_other_dhcp",
            Counter::PassNotDhcp => "pass_not_dhcp",
            Counter::PassUnsupported => "pass_unsupported",
            Counter::Malformed => "malformed",
            Counter::DropOtherServer => "drop_other_server",
            Counter::TxError => "tx_error",
            Counter::EventLost => "event_lost",
            Counter::PassNoRoom => "pass_no_room",
            Counter::DropSlowpathRate => "drop_slowpath_rate",
            Counter::PassNotBooting => "pass_not_booting",
            Counter::PassSlotBusy => "pass_slot_busy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn all_is_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
