//! The queue between a store's callers and its one writer, as both backends
//! use it: calls are queued in call order with their completion, and
//! closing drops the only sender, so the writer drains what was queued and
//! exits.

use std::sync::{PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::counters::Kind;
use super::{LeaseCommit, Lost, StoreError, StoreFuture};

/// One `commit` or `apply` call on its way to the writer.
pub struct Job<Op> {
    pub kind: Kind,
    pub ops: Vec<Op>,
    /// Resolved with the races the job's changes lost (always none for
    /// reservations, and for a store with one writer).
    pub done: oneshot::Sender<Result<Vec<Lost>, StoreError>>,
    /// When it was called: its latency is measured from here.
    pub called: Instant,
}

/// A channel's sending end, whichever channel the writer reads (a thread's
/// or a task's).
pub trait Sender<T> {
    /// False when the writer is gone.
    fn send_job(&self, t: T) -> bool;
}

impl<T> Sender<T> for std::sync::mpsc::Sender<T> {
    fn send_job(&self, t: T) -> bool {
        self.send(t).is_ok()
    }
}

impl<T> Sender<T> for tokio::sync::mpsc::UnboundedSender<T> {
    fn send_job(&self, t: T) -> bool {
        self.send(t).is_ok()
    }
}

/// The callers' side of the writer's queue.
pub struct Calls<S> {
    /// The store's name, for errors.
    name: String,
    /// "thread" or "task", for the error of a writer that died.
    writer: &'static str,
    /// `None` once closed.
    sender: RwLock<Option<S>>,
    /// Changes (to closed) when the writer has exited: its sender is
    /// dropped then, whether it finished or panicked.
    exited: watch::Receiver<()>,
}

impl<S> Calls<S> {
    pub fn new(name: String, writer: &'static str, sender: S, exited: watch::Receiver<()>) -> Self {
        Calls {
            name,
            writer,
            sender: RwLock::new(Some(sender)),
            exited,
        }
    }

    /// Stops accepting calls; the writer drains what was queued, then
    /// exits.
    pub fn stop(&self) {
        drop(
            self.sender
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// `stop`, and a future that resolves once the writer has exited.
    pub fn close(&self) -> StoreFuture<()> {
        self.stop();
        let mut exited = self.exited.clone();
        Box::pin(async move {
            // Nothing is ever sent: `changed` fails once the writer has
            // dropped its sender, that is, once it has exited.
            while exited.changed().await.is_ok() {}
            Ok(())
        })
    }

    pub fn is_closed(&self) -> bool {
        self.sender
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    pub fn backend(&self, message: String) -> StoreError {
        StoreError::Backend {
            store: self.name.clone(),
            message,
        }
    }

    /// Queues one call's encoded changes; the future resolves when the
    /// writer has committed them. It owns what it needs, so the caller can
    /// await it on another task (see `LeaseStore::commit`).
    pub fn submit<Op>(
        &self,
        kind: Kind,
        ops: Result<Vec<Op>, String>,
        called: Instant,
    ) -> LeaseCommit
    where
        S: Sender<Job<Op>>,
    {
        let ops = match ops {
            Ok(ops) => ops,
            Err(message) => return Box::pin(std::future::ready(Err(self.backend(message)))),
        };
        let (done, completion) = oneshot::channel();
        let queued = match &*self.sender.read().unwrap_or_else(PoisonError::into_inner) {
            Some(queue) => queue.send_job(Job {
                kind,
                ops,
                done,
                called,
            }),
            None => return Box::pin(std::future::ready(Err(StoreError::Closed))),
        };
        let lost_error = self.backend(format!(
            "the writer {} stopped before this commit was durable",
            self.writer
        ));
        Box::pin(async move {
            // A failed send or a dropped completion both mean the writer
            // died (it only stops on close, which first takes the queue, or
            // with its runtime), so this commit is not known to be durable.
            let lost = || Err(lost_error);
            if !queued {
                return lost();
            }
            completion.await.unwrap_or_else(|_| lost())
        })
    }
}
