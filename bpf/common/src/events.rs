//! Events the XDP program reports to userspace on the EVENTS ring buffer.

/// One reply sent by the fast path: enough for userspace to keep the lease
/// and the boot timeline without being in the packet's way. No timestamp:
/// the daemon stamps what it reads (at most one drain, 10 ms, later), and
/// reading the clock was a tenth of a reply's cost in the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyEvent {
    pub mac: [u8; 6],
    /// The DHCP message type sent (`layout::msg::ACK`, ...).
    pub msg_type: u8,
    pub _pad: u8,
    /// Address acknowledged (network byte order).
    pub ip: [u8; 4],
    /// Transaction id as on the wire (network byte order).
    pub xid: [u8; 4],
    pub ifindex: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no padding (20 bytes, checked below).
unsafe impl aya::Pod for ReplyEvent {}

#[cfg(test)]
mod tests {
    #[test]
    fn no_implicit_padding() {
        assert_eq!(core::mem::size_of::<super::ReplyEvent>(), 20);
    }
}
