//! Flow credit for the host's own message path (pure: a byte semaphore, no actix, no I/O).
//!
//! A device publish that a host service taps (the bridge) takes a [`Credit`] for its size from
//! the broker's tap [`CreditPool`] before it is acknowledged; the credit travels with the
//! message through the bridge, the bus, the shadow manager, the upstream spool and the outbox
//! to devices, in every copy, and returns to the pool when the last copy is done with (dropped).
//! So the bytes of device messages inside the host are bounded, and a device that publishes
//! faster than the host's slowest consumer (say, the shadow manager's fsync) is slowed down
//! instead of growing a mailbox. Messages that do not come from a device carry
//! [`Credit::none`]. Never blocks a thread: waiting is `async`.

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bytes charged per message on top of its topic and payload (the message structs, mailbox
/// entries and copies on the way).
pub const MESSAGE_OVERHEAD: u32 = 256;

/// A pool of bytes that messages in transit hold.
#[derive(Clone)]
pub struct CreditPool {
    semaphore: Arc<Semaphore>,
    capacity: u32,
}

impl fmt::Debug for CreditPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CreditPool({} of {} bytes in use)", self.in_use(), self.capacity)
    }
}

impl CreditPool {
    /// A pool of `capacity` bytes (at least one).
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        Self { semaphore: Arc::new(Semaphore::new(capacity as usize)), capacity }
    }

    /// What a message with this topic and payload is charged (never more than the pool).
    pub fn cost(&self, topic: &str, payload: &[u8]) -> u32 {
        let bytes = u32::try_from(topic.len() + payload.len()).unwrap_or(u32::MAX);
        bytes.saturating_add(MESSAGE_OVERHEAD).min(self.capacity)
    }

    /// Bytes held by messages in transit.
    pub fn in_use(&self) -> u32 {
        let available = u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX);
        self.capacity.saturating_sub(available)
    }

    /// Takes `bytes` if they are free now.
    pub fn try_acquire(&self, bytes: u32) -> Option<Credit> {
        let permit = self.semaphore.try_acquire_many(bytes).ok()?;
        permit.forget();
        Some(self.credit(bytes))
    }

    /// Waits until `bytes` are free.
    pub async fn acquire(&self, bytes: u32) -> Credit {
        match self.semaphore.acquire_many(bytes).await {
            Ok(permit) => {
                permit.forget();
                self.credit(bytes)
            }
            // The semaphore is never closed; an unmetered message is the safe answer anyway.
            Err(_) => Credit::none(),
        }
    }

    fn credit(&self, bytes: u32) -> Credit {
        Credit(Some(Arc::new(Held { semaphore: Arc::clone(&self.semaphore), bytes })))
    }
}

struct Held {
    semaphore: Arc<Semaphore>,
    bytes: u32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.semaphore.add_permits(self.bytes as usize);
    }
}

/// Bytes a message in transit holds; copies share them, and they return to their pool when
/// the last copy is dropped.
#[derive(Clone, Default)]
pub struct Credit(Option<Arc<Held>>);

impl Credit {
    /// No credit: a message that did not come from a device.
    pub fn none() -> Self {
        Self(None)
    }

    /// Bytes held (0 for [`Credit::none`]).
    pub fn bytes(&self) -> u32 {
        self.0.as_ref().map_or(0, |held| held.bytes)
    }
}

impl fmt::Debug for Credit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credit({} bytes)", self.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_return_when_the_last_copy_is_dropped() {
        let pool = CreditPool::new(1000);
        let credit = pool.try_acquire(600).unwrap();
        let copy = credit.clone();
        assert!(pool.try_acquire(600).is_none());
        drop(credit);
        assert_eq!(pool.in_use(), 600, "a copy still holds the bytes");
        drop(copy);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(Credit::none().bytes(), 0);
    }

    #[test]
    fn cost_counts_topic_payload_and_overhead_and_never_exceeds_the_pool() {
        let pool = CreditPool::new(100_000);
        assert_eq!(pool.cost("a/b", &[0; 10]), 3 + 10 + MESSAGE_OVERHEAD);
        assert_eq!(CreditPool::new(500).cost("t", &[0; 4096]), 500);
    }

    #[tokio::test]
    async fn a_waiter_gets_its_credit_when_bytes_come_back() {
        let pool = CreditPool::new(1000);
        let held = pool.try_acquire(1000).unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(400).await.bytes() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), 400);
    }
}
