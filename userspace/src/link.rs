//! One interface the daemon serves, as the daemon sees it: who it is there
//! (`Endpoint`) and its frames, a pair of channels of whole Ethernet
//! frames. The daemon reads the frames that arrived and writes the frames
//! to send; a packet socket is behind the channels in production
//! (`packetlink::open`), a test holds their far ends (`Wire`).

use tokio::sync::mpsc;

use crate::slowpath::Endpoint;

/// Frames queued each way before the side that fills the channel waits.
pub const FRAME_QUEUE: usize = 1024;

/// An interface's frames, the daemon's ends.
pub struct Frames {
    /// Frames that arrived, whole; a UDP checksum the kernel left partial
    /// is zero (`rawsock::clear_partial_checksum`). Closed when the
    /// interface's I/O has failed.
    pub arrived: mpsc::Receiver<Vec<u8>>,
    /// Frames to send out of the interface.
    pub send: mpsc::Sender<Vec<u8>>,
}

/// One served interface.
pub struct Link {
    pub endpoint: Endpoint,
    pub frames: Frames,
}

/// The far ends of a link's channels: what the packet socket (or a test)
/// holds.
pub struct Wire {
    /// Frames for the daemon to read.
    pub arrive: mpsc::Sender<Vec<u8>>,
    /// Frames the daemon sent.
    pub sent: mpsc::Receiver<Vec<u8>>,
}

/// A link on `endpoint` and its far ends.
pub fn pair(endpoint: Endpoint) -> (Link, Wire) {
    let (arrive, arrived) = mpsc::channel(FRAME_QUEUE);
    let (send, sent) = mpsc::channel(FRAME_QUEUE);
    (
        Link {
            endpoint,
            frames: Frames { arrived, send },
        },
        Wire { arrive, sent },
    )
}
