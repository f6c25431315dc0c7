//! Work spread over the machine's cores with the results in order: how a
//! million-line reservations file and a large bulk import are checked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The threads worth starting: one per core the process may run on.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every item, on up to `threads` threads, each taking the next
/// item when done with one (items may take unequal time); the results
/// are in the items' order. A panic in `f` is raised here.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was mapped: the scope ended without a panic")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..1000).collect();
        let out = map(&items, 4, |&i| {
            // Unequal work, so threads finish out of order.
            (0..(i % 7) * 1000).fold(i, |a, _| std::hint::black_box(a))
        });
        assert_eq!(out, items);
    }
}
