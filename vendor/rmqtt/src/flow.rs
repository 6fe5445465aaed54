//! End-to-end flow control (Turf patch; not part of upstream rmqtt 0.24.0).
//!
//! Upstream rmqtt acknowledges a QoS 1/2 PUBLISH once the message sits in every recipient's
//! unbounded session channel, and drops it later, in the recipient's task, when the recipient's
//! message queue is full. A subscriber slower than its publishers therefore loses acknowledged
//! messages while memory grows with the backlog.
//!
//! With flow control enabled ([`crate::context::ServerContextBuilder::flow_control`]):
//! - every message routed to a session needs a [`FlowPermit`] for its size from that session's
//!   [`SessionBudget`] and from the broker-wide total; the permit travels inside the message
//!   ([`crate::types::Publish::flow`]) and returns its bytes when the message is acknowledged by
//!   the subscriber (QoS 1/2), written to its socket (QoS 0), or dropped for any reason;
//! - a QoS 1/2 copy for a connected subscriber whose budget is exhausted *waits*: the publishing
//!   connection withholds its PUBACK/PUBREC and, once its inbound queue is full, stops reading
//!   its socket (see `SessionState::run_loop`), so the system runs at the slowest consumer's
//!   rate with bounded memory. A wait lasts at most [`FlowConfig::stall_timeout`]: a copy still
//!   without space then is not queued, and its publish fails without being acknowledged (the
//!   publisher is disconnected and sends it again), which also breaks any cycle of publishers
//!   waiting on each other;
//! - a QoS 0 copy never waits: it is dropped (`MessageQueueFull`) when the budget is exhausted;
//! - an offline persistent session never makes a publisher wait: it keeps what fits in its
//!   budget and further copies are dropped (`MessageQueueFull`);
//! - a connected subscriber that holds queued messages, makes no progress for
//!   [`FlowConfig::stall_timeout`] and has publishers waiting on it (or on the total) is
//!   disconnected (`Reason::SubscriberStalled`), which releases its publishers. A subscriber
//!   that is not reading its socket because one of its own publishes waits is never counted
//!   as stalled (its acknowledgements are unread, not missing).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::types::Publish;

/// Bytes charged per queued message on top of its topic and payload: the per-recipient copy of
/// the publish, its channel node, queue and in-flight entries (measured at about 400 bytes).
pub const MESSAGE_OVERHEAD: usize = 400;

/// What a message with this topic and payload length is charged.
pub fn message_cost(topic_len: usize, payload_len: usize) -> usize {
    topic_len + payload_len + MESSAGE_OVERHEAD
}

/// Flow-control limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Bytes of queued and in-flight messages one session may hold.
    pub session_queue_bytes: u32,
    /// Bytes of queued and in-flight messages all sessions together may hold.
    pub total_queue_bytes: u32,
    /// A connected subscriber that makes no progress for this long while publishers wait on it
    /// is disconnected.
    pub stall_timeout: Duration,
    /// Bytes of packets one connection may have read and not yet processed while one of its
    /// publishes waits for queue space; beyond it the connection's socket is not read.
    pub inbound_queue_bytes: usize,
    /// Messages one session may hold (0: bounded by bytes only). Enforced through the byte
    /// budget: a message is charged at least `session_queue_bytes / session_queue_messages`, so
    /// the count never drops a message, it makes publishers wait exactly as bytes do.
    pub session_queue_messages: u32,
    /// PUBLISH packets one connection may send per second, with a burst of as many (0: no
    /// limit). Beyond it the connection's socket is not read until the rate allows the next
    /// one: the client is slowed down, nothing it sent is dropped.
    pub publish_rate: u32,
}

/// Counters kept by flow control.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Publish copies that had to wait for queue space.
    pub waits: AtomicU64,
    /// Subscribers disconnected because they stalled while publishers waited on them.
    pub stalled_disconnects: AtomicU64,
    /// Times a connection's reading was paused because it published faster than `publish_rate`.
    pub throttled: AtomicU64,
    /// PUBLISH packets written to subscribers, by QoS (0, 1, 2).
    pub sent: [AtomicU64; 3],
    /// Topic and payload bytes of those packets.
    pub sent_bytes: AtomicU64,
    /// Publishes that no subscription matched.
    pub nonsubscribed: AtomicU64,
}

impl FlowStats {
    /// Counts a PUBLISH written to a subscriber.
    pub fn sent(&self, qos: u8, bytes: usize) {
        if let Some(counter) = self.sent.get(usize::from(qos)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Broker-wide flow-control state, held by the server context.
pub struct FlowControl {
    config: FlowConfig,
    total: Arc<Semaphore>,
    waiting_on_total: Arc<AtomicUsize>,
    waiting_any: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    epoch: Instant,
    stats: FlowStats,
}

impl fmt::Debug for FlowControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowControl").field("config", &self.config).field("queued", &self.queued_bytes()).finish()
    }
}

impl FlowControl {
    /// Flow control with `config`; a zero budget is raised to one byte.
    pub fn new(mut config: FlowConfig) -> Self {
        config.session_queue_bytes = config.session_queue_bytes.max(1);
        config.total_queue_bytes = config.total_queue_bytes.max(1);
        Self {
            total: Arc::new(Semaphore::new(config.total_queue_bytes as usize)),
            waiting_on_total: Arc::new(AtomicUsize::new(0)),
            waiting_any: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            epoch: Instant::now(),
            stats: FlowStats::default(),
            config,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Bytes of messages queued or in flight in all sessions (not counting copies still
    /// waiting for a session's space, which hold part of the total meanwhile).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Publish copies waiting for queue space right now.
    pub fn waiting(&self) -> usize {
        self.waiting_any.load(Ordering::Relaxed)
    }

    /// A fresh budget for one session.
    pub fn budget(&self) -> Arc<SessionBudget> {
        Arc::new(SessionBudget {
            session: Semaphore::new(self.config.session_queue_bytes as usize),
            total: Arc::clone(&self.total),
            capacity: self.config.session_queue_bytes,
            total_capacity: self.config.total_queue_bytes,
            min_cost: match self.config.session_queue_messages {
                0 => 0,
                n => (self.config.session_queue_bytes / n).max(1),
            },
            online: AtomicBool::new(true),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            waiting_on_total: Arc::clone(&self.waiting_on_total),
            waiting_any: Arc::clone(&self.waiting_any),
            queued: Arc::clone(&self.queued),
            epoch: self.epoch,
            last_release_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn count_wait(&self) {
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_stall(&self) {
        self.stats.stalled_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_throttle(&self) {
        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a waiting copy could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session went offline, or ended, while the copy waited.
    Gone,
    /// The wait limit passed.
    TimedOut,
}

/// One session's share of queue space.
pub struct SessionBudget {
    session: Semaphore,
    total: Arc<Semaphore>,
    capacity: u32,
    total_capacity: u32,
    min_cost: u32,
    online: AtomicBool,
    changed: Notify,
    waiting: AtomicUsize,
    waiting_on_total: Arc<AtomicUsize>,
    waiting_any: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    epoch: Instant,
    last_release_ms: AtomicU64,
}

impl fmt::Debug for SessionBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBudget")
            .field("held", &self.held())
            .field("capacity", &self.capacity)
            .field("online", &self.is_online())
            .finish()
    }
}

impl SessionBudget {
    /// The bytes a copy of `publish` is charged.
    pub fn cost(&self, publish: &Publish) -> u32 {
        self.charge(message_cost(publish.topic.len(), publish.payload.len()))
    }

    /// What a message costing `bytes` is charged: at least the per-message minimum, at most
    /// what the budgets can ever hold (a message larger than a budget still passes, alone).
    pub fn charge(&self, bytes: usize) -> u32 {
        u32::try_from(bytes).unwrap_or(u32::MAX).max(self.min_cost).min(self.capacity).min(self.total_capacity)
    }

    /// Bytes this session holds now.
    pub fn held(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.session.available_permits())
    }

    /// Whether the session is connected.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Marks the session connected or offline; copies waiting on an offline session give up.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
        if !online {
            self.changed.notify_waiters();
        }
    }

    /// Ends the budget: every copy waiting on it gives up, now and later.
    pub fn close(&self) {
        self.online.store(false, Ordering::Release);
        self.session.close();
        self.changed.notify_waiters();
    }

    /// Whether a publisher waits on this session or on the total.
    pub fn under_pressure(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0 || self.waiting_on_total.load(Ordering::Relaxed) > 0
    }

    /// Time since this session last returned queue space (acknowledged, wrote or dropped a
    /// message) or last went from empty to holding messages.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_release_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Restarts the stall clock (the session made progress, or went from empty to non-empty).
    pub fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_release_ms.store(now, Ordering::Relaxed);
    }

    /// Takes `bytes` if they are free now.
    pub fn try_acquire(self: &Arc<Self>, bytes: u32) -> Option<FlowPermit> {
        let session = self.session.try_acquire_many(bytes).ok()?;
        let total = self.total.try_acquire_many(bytes).ok()?;
        session.forget();
        total.forget();
        Some(self.granted(bytes))
    }

    /// A permit for bytes just taken; the stall clock starts when the session goes from
    /// holding nothing to holding this.
    fn granted(self: &Arc<Self>, bytes: u32) -> FlowPermit {
        self.queued.fetch_add(bytes as usize, Ordering::Relaxed);
        if self.held() <= bytes as usize {
            self.touch();
        }
        FlowPermit { budget: Arc::clone(self), bytes }
    }

    /// Waits until `bytes` are free in the total and then in this session, until the session
    /// goes offline or ends, or until `deadline`. The total comes first, so a copy waiting
    /// holds none of this session's budget (which would make an idle subscriber look stalled).
    pub async fn acquire(self: &Arc<Self>, bytes: u32, deadline: Instant) -> Result<FlowPermit, Refused> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let _counted = Waiting::on(&self.waiting_any);
        // Registered before the first check, so going offline at any point wakes this copy.
        let changed = self.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if !self.is_online() {
            return Err(Refused::Gone);
        }
        let total = {
            let _waiting = Waiting::on(&self.waiting_on_total);
            tokio::select! {
                permit = self.total.acquire_many(bytes) => permit.map_err(|_| Refused::Gone)?,
                _ = changed.as_mut() => return Err(Refused::Gone),
                _ = tokio::time::sleep_until(deadline) => return Err(Refused::TimedOut),
            }
        };
        if !self.is_online() {
            return Err(Refused::Gone);
        }
        let session = {
            let _waiting = Waiting::on(&self.waiting);
            tokio::select! {
                permit = self.session.acquire_many(bytes) => permit.map_err(|_| Refused::Gone)?,
                _ = changed.as_mut() => return Err(Refused::Gone),
                _ = tokio::time::sleep_until(deadline) => return Err(Refused::TimedOut),
            }
        };
        session.forget();
        total.forget();
        Ok(self.granted(bytes))
    }
}

/// Counts a waiter while alive.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn on(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Queue space held by one queued or in-flight message; returned when dropped.
pub struct FlowPermit {
    budget: Arc<SessionBudget>,
    bytes: u32,
}

impl FlowPermit {
    /// Bytes held.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }
}

impl fmt::Debug for FlowPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowPermit({} bytes)", self.bytes)
    }
}

impl Drop for FlowPermit {
    fn drop(&mut self) {
        self.budget.queued.fetch_sub(self.bytes as usize, Ordering::Relaxed);
        self.budget.session.add_permits(self.bytes as usize);
        self.budget.total.add_permits(self.bytes as usize);
        self.budget.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn control(session: u32, total: u32) -> FlowControl {
        FlowControl::new(FlowConfig {
            session_queue_bytes: session,
            total_queue_bytes: total,
            stall_timeout: Duration::from_secs(1),
            inbound_queue_bytes: 1024,
            session_queue_messages: 0,
            publish_rate: 0,
        })
    }

    #[test]
    fn a_message_count_limit_is_a_minimum_charge() {
        let by_bytes = control(10_000, 100_000).budget();
        assert_eq!(by_bytes.charge(450), 450);
        let counted = FlowControl::new(FlowConfig { session_queue_messages: 4, ..control(10_000, 100_000).config().clone() });
        let budget = counted.budget();
        assert_eq!(budget.charge(450), 2500, "four messages fill the session");
        assert_eq!(budget.charge(9_000), 9_000);
        assert_eq!(budget.charge(50_000), 10_000, "never more than the budget holds");
        let permits: Vec<_> = (0..4).filter_map(|_| budget.try_acquire(budget.charge(450))).collect();
        assert_eq!(permits.len(), 4);
        assert!(budget.try_acquire(budget.charge(450)).is_none(), "a fifth small message waits");
    }

    #[test]
    fn permits_return_their_bytes_when_dropped() {
        let flow = control(1000, 1500);
        let a = flow.budget();
        let b = flow.budget();
        let p1 = a.try_acquire(600).unwrap();
        assert!(a.try_acquire(600).is_none(), "session budget exhausted");
        let p2 = b.try_acquire(800).unwrap();
        assert!(b.try_acquire(200).is_none(), "total exhausted (600 + 800 + 200 > 1500)");
        assert_eq!(flow.queued_bytes(), 1400);
        drop(p1);
        drop(p2);
        assert_eq!(flow.queued_bytes(), 0);
        assert_eq!(a.held(), 0);
        assert!(b.try_acquire(1000).is_some());
    }

    #[tokio::test]
    async fn a_waiter_is_released_by_a_drop_and_gives_up_when_the_session_goes_offline() {
        let flow = control(1000, 10_000);
        let budget = flow.budget();
        let held = budget.try_acquire(1000).unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.acquire(500, far()).await.map(|p| p.bytes()) })
        };
        tokio::task::yield_now().await;
        assert!(budget.under_pressure());
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(500));
        assert!(!budget.under_pressure());

        let _held = budget.try_acquire(600).unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.acquire(500, far()).await.map(|p| p.bytes()) })
        };
        tokio::task::yield_now().await;
        budget.set_online(false);
        assert_eq!(waiter.await.unwrap(), Err(Refused::Gone));
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_and_a_waiter_holds_none_of_the_session_budget() {
        let flow = control(1000, 1000);
        let full = flow.budget();
        let other = flow.budget();
        let held = full.try_acquire(1000).unwrap();
        let started = Instant::now();
        let waited = other.acquire(100, Instant::now() + Duration::from_millis(50)).await;
        assert_eq!(waited.map(|p| p.bytes()), Err(Refused::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let waiter = {
            let other = Arc::clone(&other);
            tokio::spawn(async move { other.acquire(100, far()).await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert_eq!(other.held(), 0, "a copy waiting on the total holds nothing of its session yet");
        assert!(full.under_pressure(), "someone waits on the total");
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn a_closed_budget_refuses_waiters() {
        let flow = control(100, 100);
        let budget = flow.budget();
        let _held = budget.try_acquire(100).unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.acquire(50, far()).await.is_err() })
        };
        tokio::task::yield_now().await;
        budget.close();
        let gave_up = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(gave_up.expect("a copy waiting on the total wakes when its session closes").unwrap());
    }
}
