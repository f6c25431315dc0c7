//! Several nodes serving the same segments through one PostgreSQL store:
//! what the parts of a node tell each other about the cluster.
//!
//! The heartbeat (membership) publishes which nodes are alive; the DHCP
//! server shares new clients out by it. The reservation sync publishes the
//! last change number it applied; the heartbeat reports it to the others.

pub mod heartbeat;
pub mod identity;
pub mod leader;
pub mod sync;

use std::sync::atomic::{AtomicI64, Ordering};

/// The nodes alive as this node last saw them in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// This node's name (`cluster.node`).
    pub me: String,
    /// Every node whose heartbeat is recent, this one included while it
    /// reaches the database, sorted by name so every node computes the
    /// same shares from the same list.
    pub alive: Vec<String>,
}

impl Membership {
    /// A node alone: before its first heartbeat, or without a cluster.
    pub fn alone(me: &str) -> Membership {
        Membership {
            me: me.to_owned(),
            alive: vec![me.to_owned()],
        }
    }
}

/// The last reservation change number this node applied (0: none yet).
#[derive(Debug, Default)]
pub struct Applied(AtomicI64);

impl Applied {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, number: i64) {
        self.0.store(number, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
