//! How the nodes of a cluster share out new clients and addresses, as
//! pure functions of the alive nodes: each node computes the same answer
//! from the same sorted list, with no message between them.
//!
//! - Clients: RFC 3074 hashes a client's identity into one of 256
//!   buckets; each bucket belongs to one alive node, chosen by rendezvous
//!   (highest random weight) hashing of (node name, bucket), so when a
//!   node dies only its buckets move, each to the node that weighs it
//!   next highest, and when it returns it takes back exactly those.
//! - Addresses: each node starts its search for a free address in its own
//!   slice of every pool (its rank among the alive nodes), so two nodes
//!   answering at once reach for different addresses; a full slice wraps
//!   on into the others'. The database still decides every race.

use dhcproto::v4::{DhcpOption, Message, OptionCode};

use crate::cluster::Membership;
use crate::config::Cluster;

/// RFC 3074 section 6: the mixing table of the load-balancing hash, 256
/// distinct values that every implementation must use.
const MIX: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, 31, 32, 55, 60, 152,
    58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243,
    124, 95, 222, 179, 197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97,
    16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, 207, 9, 178, 204,
    74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25,
    226, 227, 199, 75, 27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241,
    73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, 82,
    163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118,
    112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66, 231,
    52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171,
    72, 50, 33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136,
    208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
];

/// RFC 3074 section 6's Pearson hash: seeded with the key's length, one
/// table lookup per byte, from the last byte to the first.
pub fn pearson(key: &[u8]) -> u8 {
    // The RFC's C keeps the seed in an unsigned char: lengths wrap.
    key.iter()
        .rev()
        .fold(key.len() as u8, |hash, &b| MIX[usize::from(hash ^ b)])
}

/// RFC 3074 section 5: a DHCP client's bucket hashes the client
/// identifier option's value when the request has one, else chaddr's
/// first hlen bytes.
pub fn bucket(msg: &Message) -> u8 {
    match msg.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => pearson(id),
        _ => pearson(msg.chaddr()),
    }
}

/// The weight of (node, bucket) in rendezvous hashing: FNV-1a over the
/// name and the bucket, then a 64-bit finalizer (splitmix64's) so that
/// names differing in one byte weigh unrelated amounts. Fixed here, so
/// every build of every node agrees.
fn weight(node: &str, bucket: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in node.as_bytes().iter().chain(&[0xff, bucket]) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner of each bucket among `alive` (indexes into it); empty when
/// nobody is alive. Ties, vanishingly rare, go to the first name.
pub fn owners(alive: &[String]) -> Vec<usize> {
    if alive.is_empty() {
        return Vec::new();
    }
    (0..=255u8)
        .map(|b| {
            let mut best = 0;
            for (i, n) in alive.iter().enumerate().skip(1) {
                if weight(n, b) > weight(&alive[best], b) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// This node's share of a cluster's work, as the server applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The buckets whose new clients this node answers at once; None:
    /// `cluster.load_balance` is off, every node answers every client.
    mine: Option<Box<[bool; 256]>>,
    /// `cluster.lb_max_secs`: a client that has been trying this long is
    /// answered by every node (its own may be dead without the heartbeat
    /// having told yet).
    lb_max_secs: u16,
    /// This node's slice of each pool: (rank, slices).
    pub slice: (usize, usize),
}

impl Share {
    /// The share of `m.me` among `m.alive`, as `cluster` configures it.
    /// A node missing from the list (it does not reach the database) owns
    /// no bucket, and searches from the start of the pools.
    pub fn new(m: &Membership, cluster: &Cluster) -> Share {
        let rank = m.alive.iter().position(|n| *n == m.me);
        let mine = cluster.load_balance.then(|| {
            let mut mine = Box::new([false; 256]);
            if let Some(rank) = rank {
                for (b, owner) in owners(&m.alive).into_iter().enumerate() {
                    mine[b] = owner == rank;
                }
            }
            mine
        });
        Share {
            mine,
            lb_max_secs: cluster.lb_max_secs,
            slice: match rank {
                Some(r) if cluster.slices => (r, m.alive.len()),
                _ => (0, 1),
            },
        }
    }

    /// Whether this node answers a new client in `bucket` that has been
    /// trying for `secs` seconds.
    pub fn answers(&self, bucket: u8, secs: u16) -> bool {
        match &self.mine {
            None => true,
            Some(mine) => mine[usize::from(bucket)] || secs >= self.lb_max_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(me: &str, alive: &[&str]) -> Membership {
        Membership {
            me: me.into(),
            alive: alive.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `me`'s share among `alive`, with `[cluster]` set by `tweak`.
    fn share(me: &str, alive: &[&str], tweak: impl Fn(&mut Cluster)) -> Share {
        let mut c = Cluster::named(me.into());
        tweak(&mut c);
        Share::new(&members(me, alive), &c)
    }

    #[test]
    fn the_mixing_table_is_a_permutation() {
        let mut seen = [false; 256];
        for &v in &MIX {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
    }

    /// RFC 3074 publishes no test vectors; these were worked by hand from
    /// section 6's table and code: the seed is the key's length, then
    /// hash = MIX[hash ^ byte] from the last byte to the first.
    #[test]
    fn pearson_hash_follows_rfc_3074() {
        // No bytes: the seed, 0.
        assert_eq!(pearson(&[]), 0);
        // Seed 1: MIX[1 ^ 0x00] = MIX[1] = 175; MIX[1 ^ 0x01] = MIX[0] = 251.
        assert_eq!(pearson(&[0x00]), 175);
        assert_eq!(pearson(&[0x01]), 251);
        // Seed 2: MIX[2] = 119, then MIX[119 ^ 0] = 150.
        assert_eq!(pearson(&[0x00, 0x00]), 150);
        // A MAC as chaddr, and the same MAC as an option 61 (type 1 first).
        assert_eq!(pearson(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56]), 156);
        assert_eq!(pearson(&[0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]), 253);
        assert_eq!(pearson(&[0xff; 6]), 79);
    }

    #[test]
    fn a_client_is_hashed_by_its_client_identifier_else_its_chaddr() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let mut m = Message::default();
        m.set_chaddr(&mac);
        assert_eq!(bucket(&m), 156);
        m.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
            1, 0x52, 0x54, 0, 0x12, 0x34, 0x56,
        ]));
        assert_eq!(bucket(&m), 253);
    }

    #[test]
    fn buckets_are_shared_out_and_only_a_dead_nodes_move() {
        let three = ["a", "b", "c"].map(String::from);
        let before = owners(&three);
        for (i, _) in three.iter().enumerate() {
            let n = before.iter().filter(|&&o| o == i).count();
            assert!((40..=130).contains(&n), "node {i} owns {n} of 256");
        }
        // b dies: a's and c's buckets stay theirs; b's are shared out.
        let two = ["a", "c"].map(String::from);
        let after = owners(&two);
        let mut moved_to = [0; 2];
        for b in 0..256 {
            let name = |list: &[String], i: usize| list[i].clone();
            if name(&three, before[b]) == "b" {
                moved_to[after[b]] += 1;
            } else {
                assert_eq!(name(&two, after[b]), name(&three, before[b]), "bucket {b}");
            }
        }
        assert!(moved_to[0] > 0 && moved_to[1] > 0, "{moved_to:?}");
        // b returns: it takes back exactly what it had.
        assert_eq!(owners(&three), before);
    }

    #[test]
    fn every_bucket_has_one_answering_node() {
        let alive = ["n1", "n2", "n3", "n4"];
        let shares: Vec<Share> = alive.iter().map(|me| share(me, &alive, |_| {})).collect();
        for b in 0..=255u8 {
            let answering = shares.iter().filter(|s| s.answers(b, 0)).count();
            assert_eq!(answering, 1, "bucket {b}");
            assert!(
                shares.iter().all(|s| s.answers(b, 3)),
                "secs >= lb_max_secs"
            );
        }
        let slices: Vec<_> = shares.iter().map(|s| s.slice).collect();
        assert_eq!(slices, [(0, 4), (1, 4), (2, 4), (3, 4)]);
        // Without load balancing everyone answers everything.
        assert!(share("n1", &alive, |c| c.load_balance = false).answers(0, 0));
        // Without slices every node searches from the start.
        assert_eq!(share("n3", &alive, |c| c.slices = false).slice, (0, 1));
        // A node cut from the database owns nothing until clients wait.
        let cut = share("n5", &alive, |_| {});
        assert!((0..=255).all(|b| !cut.answers(b, 2) && cut.answers(b, 3)));
        assert_eq!(cut.slice, (0, 1));
    }
}
