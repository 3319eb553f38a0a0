//! A bounded hand-over between two threads that drops the oldest item when
//! full, so that a slow consumer always gets the freshest frames instead of
//! falling further behind.

use std::{
    collections::VecDeque,
    sync::{Condvar, Mutex},
    time::Duration,
};

pub struct Latest<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    dropped: u64,
    closed: bool,
}

impl<T> Latest<T> {
    pub fn new(capacity: usize) -> Latest<T> {
        Latest {
            state: Mutex::new(State { items: VecDeque::new(), dropped: 0, closed: false }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic elsewhere while holding the lock leaves the queue itself valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item`; returns true when an older item was dropped for it.
    pub fn push(&self, item: T) -> bool {
        let mut s = self.lock();
        let dropped = s.items.len() >= self.capacity;
        if dropped {
            s.items.pop_front();
            s.dropped += 1;
        }
        s.items.push_back(item);
        self.ready.notify_one();
        dropped
    }

    /// The oldest item, waiting up to `timeout`; `None` on time-out or once closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let s = self.lock();
        let (mut s, _) = self
            .ready
            .wait_timeout_while(s, timeout, |s| s.items.is_empty() && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        s.items.pop_front()
    }

    /// Wakes the consumer for good: `pop` returns what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        let s = self.lock();
        s.closed && s.items.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest() {
        let q = Latest::new(2);
        assert!(!q.push(1));
        assert!(!q.push(2));
        assert!(q.push(3));
        assert_eq!(q.pop(Duration::ZERO), Some(2));
        assert_eq!(q.pop(Duration::ZERO), Some(3));
        assert_eq!(q.pop(Duration::from_millis(1)), None);
        assert_eq!(q.dropped(), 1);
    }

    #[test]
    fn close_wakes_a_waiting_consumer() {
        let q = std::sync::Arc::new(Latest::<u32>::new(1));
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.pop(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(t.join().unwrap(), None);
    }
}
