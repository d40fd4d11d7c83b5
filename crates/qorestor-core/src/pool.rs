//! A small pool of reusable buffers handed out last-in first-out: the buffer given back most
//! recently is the one most likely still in the CPU caches, so filling it again writes to cache
//! rather than to memory (see the writer's and the reader's module documentation).

use std::sync::Arc;

/// Reusable buffers, shared between the threads of one pipeline.
pub(crate) struct Pool<T> {
    items: Arc<parking_lot::Mutex<Vec<T>>>,
    capacity: usize,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool { items: self.items.clone(), capacity: self.capacity }
    }
}

impl<T> Pool<T> {
    /// An empty pool that keeps at most `capacity` buffers (more given back are dropped).
    pub(crate) fn new(capacity: usize) -> Self {
        Pool { items: Arc::default(), capacity }
    }

    /// Gives a buffer back.
    pub(crate) fn put(&self, item: T) {
        let mut items = self.items.lock();
        if items.len() < self.capacity {
            items.push(item);
        }
    }

    /// The buffer given back last, if any.
    pub(crate) fn take(&self) -> Option<T> {
        self.items.lock().pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_buffer_given_back_comes_out_first_and_the_pool_stays_bounded() {
        let pool = Pool::new(2);
        let other = pool.clone();
        pool.put(1);
        other.put(2);
        pool.put(3);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(other.take(), Some(1));
        assert_eq!(pool.take(), None);
    }
}
