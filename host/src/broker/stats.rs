//! What the broker counts: messages it dropped, by reason, and how full its queues are.
//!
//! Counters are bumped from rmqtt's hooks and the host outbox (lock-free atomics) and read by
//! [`super::GetBrokerStatus`] for `turf status`. A drop is counted, never logged per message:
//! at most one summary line per [`LOG_EVERY`] says what was dropped since the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::traffic::{TrafficCounters, TrafficCounts};

/// Shortest interval between two "messages dropped" log lines.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a message (one copy for one recipient) was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// QoS 0 for a subscriber whose queue is full, or any QoS for an offline session whose
    /// queue is full.
    QueueFull,
    /// Its message expiry interval passed before delivery.
    Expired,
    /// The publisher was not allowed to publish it.
    Denied,
    /// The recipient's session ended before delivery (disconnect of a clean session, stall).
    SessionEnded,
    /// The host's outbox to devices was full.
    HostOutboxFull,
    /// A subscriber's queue stayed full for the whole wait limit: the copy was not queued and
    /// its publish failed unacknowledged (the publisher was disconnected and sends it again).
    WaitTimedOut,
    /// Queued for a subscription the session no longer holds (it unsubscribed, or a policy
    /// change removed it) and not delivered.
    Unsubscribed,
}

/// What a client asked for and was refused by Turf's hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A CONNECT (not admitted, or its Last Will not allowed).
    Connect,
    /// A TLS client whose certificate imitates a registered one.
    Certificate,
    /// One topic filter of a SUBSCRIBE (policy, quota or depth).
    Subscribe,
    /// A PUBLISH (policy or depth).
    Publish,
}

/// Drop and refusal counters, by reason.
#[derive(Debug, Default)]
pub struct BrokerCounters {
    refused_connects: AtomicU64,
    refused_certificates: AtomicU64,
    refused_subscribes: AtomicU64,
    refused_publishes: AtomicU64,
    queue_full: AtomicU64,
    expired: AtomicU64,
    denied: AtomicU64,
    session_ended: AtomicU64,
    host_outbox_full: AtomicU64,
    wait_timed_out: AtomicU64,
    unsubscribed: AtomicU64,
    host_waits: AtomicU64,
    /// What the hooks saw go by.
    pub traffic: TrafficCounters,
    logged_total: AtomicU64,
    last_log_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl BrokerCounters {
    fn counter(&self, reason: DropReason) -> &AtomicU64 {
        match reason {
            DropReason::QueueFull => &self.queue_full,
            DropReason::Expired => &self.expired,
            DropReason::Denied => &self.denied,
            DropReason::SessionEnded => &self.session_ended,
            DropReason::HostOutboxFull => &self.host_outbox_full,
            DropReason::WaitTimedOut => &self.wait_timed_out,
            DropReason::Unsubscribed => &self.unsubscribed,
        }
    }

    /// Counts one dropped copy and, at most every [`LOG_EVERY`], logs what was dropped since the
    /// last summary (denials are logged by the authorization hooks and not summarised here).
    pub fn dropped(&self, reason: DropReason) {
        self.counter(reason).fetch_add(1, Ordering::Relaxed);
        if matches!(reason, DropReason::Denied | DropReason::Unsubscribed) {
            return;
        }
        let epoch = *self.epoch.get_or_init(Instant::now);
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64 || last == 0;
        if due && self.last_log_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let snapshot = self.snapshot();
            let total = snapshot.total_undelivered();
            let since = total.saturating_sub(self.logged_total.swap(total, Ordering::Relaxed));
            tracing::warn!(
                since_last_report = since,
                queue_full = snapshot.queue_full,
                expired = snapshot.expired,
                session_ended = snapshot.session_ended,
                host_outbox_full = snapshot.host_outbox_full,
                wait_timed_out = snapshot.wait_timed_out,
                "messages dropped (totals since start; see turf status)"
            );
        }
    }

    /// Counts one refusal (logged by the hook that refused, at most once per client per
    /// interval).
    pub fn refused(&self, what: Refused) {
        let counter = match what {
            Refused::Connect => &self.refused_connects,
            Refused::Certificate => &self.refused_certificates,
            Refused::Subscribe => &self.refused_subscribes,
            Refused::Publish => &self.refused_publishes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The refusal counters of the hooks; the broker adds its own admission counters.
    pub fn refusals(&self) -> RefusalCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RefusalCounts {
            connects: load(&self.refused_connects),
            certificates: load(&self.refused_certificates),
            subscribes: load(&self.refused_subscribes),
            publishes: load(&self.refused_publishes),
            ..RefusalCounts::default()
        }
    }

    /// Counts a device publish that waited for the host's queue space.
    pub fn host_wait(&self) {
        self.host_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Device publishes that waited for the host's queue space since start.
    pub fn host_waits(&self) -> u64 {
        self.host_waits.load(Ordering::Relaxed)
    }

    /// The counters now.
    pub fn snapshot(&self) -> DropCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DropCounts {
            queue_full: load(&self.queue_full),
            expired: load(&self.expired),
            denied: load(&self.denied),
            session_ended: load(&self.session_ended),
            host_outbox_full: load(&self.host_outbox_full),
            wait_timed_out: load(&self.wait_timed_out),
            unsubscribed: load(&self.unsubscribed),
        }
    }
}

/// Messages dropped since the host started, by reason (one per recipient copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    /// QoS 0 for a full subscriber, or anything for an offline session whose queue is full.
    pub queue_full: u64,
    /// Message expiry passed before delivery.
    pub expired: u64,
    /// The publisher was not allowed to publish.
    pub denied: u64,
    /// The recipient's session ended first.
    pub session_ended: u64,
    /// The host's outbox to devices was full.
    pub host_outbox_full: u64,
    /// Not queued within the wait limit; their publishes were not acknowledged.
    #[serde(default)]
    pub wait_timed_out: u64,
    /// Queued for a subscription the session no longer holds.
    #[serde(default)]
    pub unsubscribed: u64,
}

impl DropCounts {
    /// Every copy that was not delivered except denials (refusals by policy) and copies for
    /// subscriptions that were removed (the client or the policy chose that).
    pub fn total_undelivered(&self) -> u64 {
        self.queue_full + self.expired + self.session_ended + self.host_outbox_full + self.wait_timed_out
    }
}

/// What clients were refused or held back since the host started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusalCounts {
    /// CONNECTs refused (unknown or unauthorized client, forbidden Last Will).
    pub connects: u64,
    /// TLS clients refused for a certificate imitating a registered one.
    pub certificates: u64,
    /// Topic filters refused (policy, `max_subscriptions`, `max_topic_levels`).
    pub subscribes: u64,
    /// Publishes refused (policy, `max_topic_levels`).
    pub publishes: u64,
    /// Sockets closed at once: their listener had `max_connections` open.
    pub over_max_connections: u64,
    /// Sockets closed at once: their listener had `max_handshakes` under way.
    pub over_max_handshakes: u64,
    /// Connections closed for sending no MQTT packet within `handshake_timeout_ms`.
    pub handshake_timeouts: u64,
    /// Times a connection was paused for publishing faster than `publish_rate`.
    pub publish_throttles: u64,
    /// Retained publishes refused for want of room (counted in `publishes` too), and retained
    /// messages in the database that could not be read back.
    pub retained: u64,
}

impl RefusalCounts {
    /// All refusals and pauses together.
    pub fn total(&self) -> u64 {
        self.connects
            + self.certificates
            + self.subscribes
            + self.publishes
            + self.over_max_connections
            + self.over_max_handshakes
            + self.handshake_timeouts
            + self.publish_throttles
    }
}

/// The broker's queues and counters, for `turf status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerStatus {
    /// Connected clients.
    pub connections: u64,
    /// Sessions, connected or kept for later.
    pub sessions: u64,
    /// Bytes of messages queued or in flight to subscribers.
    pub queued_bytes: u64,
    /// Limit of `queued_bytes`.
    pub queued_bytes_limit: u64,
    /// Publish copies waiting for queue space now.
    pub waiting_publishes: u64,
    /// Publish copies that had to wait since start.
    pub waits: u64,
    /// Subscribers disconnected for stalling while publishers waited.
    pub stalled_disconnects: u64,
    /// Bytes of device messages in transit through the host's services.
    pub host_bytes: u64,
    /// Limit of `host_bytes`.
    pub host_bytes_limit: u64,
    /// Device publishes that waited for the host's queue space since start.
    pub host_waits: u64,
    /// Messages dropped, by reason.
    pub dropped: DropCounts,
    /// Clients refused or slowed down, by reason.
    #[serde(default)]
    pub refused: RefusalCounts,
    /// Retained messages kept.
    #[serde(default)]
    pub retained_messages: u64,
    /// Bytes they are charged.
    #[serde(default)]
    pub retained_bytes: u64,
    /// Limit of `retained_bytes`.
    #[serde(default)]
    pub retained_bytes_limit: u64,
    /// Failed writes of retained messages to the database (retried).
    #[serde(default)]
    pub retained_write_failures: u64,
    /// Publishes received, connects, authentication failures and authorization decisions.
    #[serde(default)]
    pub traffic: TrafficCounts,
}

impl super::Broker {
    /// The broker's queues and counters now (`turf status`, `/metrics`).
    pub(super) fn status(&self) -> BrokerStatus {
        let flow = self.scx.flow.as_ref();
        let stats = flow.map(|f| f.stats());
        let load =
            |c: Option<&std::sync::atomic::AtomicU64>| c.map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed));
        let count = |n: isize| u64::try_from(n).unwrap_or(0);
        let (retained_messages, retained_bytes) = self.retained.usage();
        BrokerStatus {
            connections: count(self.scx.connections.count()),
            sessions: count(self.scx.sessions.count()),
            queued_bytes: flow.map_or(0, |f| f.queued_bytes() as u64),
            queued_bytes_limit: u64::from(self.limits.total_queue_bytes),
            waiting_publishes: flow.map_or(0, |f| f.waiting() as u64),
            waits: load(stats.map(|s| &s.waits)),
            stalled_disconnects: load(stats.map(|s| &s.stalled_disconnects)),
            host_bytes: u64::from(self.hooks.tap_pool.in_use()) + u64::from(self.outbox.in_use()),
            host_bytes_limit: 2 * u64::from(self.limits.host_queue_bytes),
            host_waits: self.hooks.counters.host_waits(),
            dropped: self.hooks.counters.snapshot(),
            refused: RefusalCounts {
                over_max_connections: load(Some(&self.scx.admission.stats.over_max_connections)),
                over_max_handshakes: load(Some(&self.scx.admission.stats.over_max_handshakes)),
                handshake_timeouts: load(Some(&self.scx.admission.stats.handshake_timeouts)),
                publish_throttles: load(stats.map(|s| &s.throttled)),
                retained: self.retained.refused(),
                ..self.hooks.counters.refusals()
            },
            retained_messages: retained_messages as u64,
            retained_bytes: retained_bytes as u64,
            retained_bytes_limit: u64::from(self.limits.retained_bytes),
            retained_write_failures: self.retained.write_failures(),
            traffic: TrafficCounts {
                sent_qos0: load(stats.map(|s| &s.sent[0])),
                sent_qos1: load(stats.map(|s| &s.sent[1])),
                sent_qos2: load(stats.map(|s| &s.sent[2])),
                sent_bytes: load(stats.map(|s| &s.sent_bytes)),
                nonsubscribed: load(stats.map(|s| &s.nonsubscribed)),
                subscriptions: count(self.scx.stats.subscriptions.count()),
                inflight: count(self.scx.stats.out_inflights.count()),
                ..self.hooks.counters.traffic.snapshot()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason() {
        let counters = BrokerCounters::default();
        counters.dropped(DropReason::QueueFull);
        counters.dropped(DropReason::QueueFull);
        counters.dropped(DropReason::Denied);
        counters.dropped(DropReason::HostOutboxFull);
        let counts = counters.snapshot();
        assert_eq!((counts.queue_full, counts.denied, counts.host_outbox_full, counts.expired), (2, 1, 1, 0));
        assert_eq!(counts.total_undelivered(), 3);
    }
}
