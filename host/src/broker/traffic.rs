//! What the broker's hooks see go by: publishes received (by QoS, and their bytes), connects
//! accepted, authentication failures by reason, and authorization decisions by action. Lock-free
//! counters bumped on the hooks' paths, read for `turf status` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::devices::AUTHENTICATION_FAILURES;

/// What an authorization decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `mqtt:connect`.
    Connect,
    /// `mqtt:subscribe`, per topic filter.
    Subscribe,
    /// `mqtt:publish`.
    Publish,
}

impl Action {
    const ALL: [Action; 3] = [Action::Connect, Action::Subscribe, Action::Publish];

    fn name(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Subscribe => "subscribe",
            Action::Publish => "publish",
        }
    }
}

/// The hooks' traffic counters.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    received: [AtomicU64; 3],
    received_bytes: AtomicU64,
    connects: AtomicU64,
    authentication_failures: [AtomicU64; AUTHENTICATION_FAILURES.len()],
    /// `[action][0: allowed, 1: denied]`.
    decisions: [[AtomicU64; 2]; 3],
}

impl TrafficCounters {
    /// Counts a publish received from a client: its QoS and its topic and payload bytes.
    pub fn received(&self, qos: u8, bytes: usize) {
        if let Some(counter) = self.received.get(usize::from(qos)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts an accepted CONNECT.
    pub fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an authentication failure; `reason` is one of [`AUTHENTICATION_FAILURES`].
    pub fn authentication_failed(&self, reason: &str) {
        if let Some(i) = AUTHENTICATION_FAILURES.iter().position(|r| *r == reason) {
            self.authentication_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an authorization decision.
    pub fn decided(&self, action: Action, allowed: bool) {
        let row = &self.decisions[action as usize];
        row[usize::from(!allowed)].fetch_add(1, Ordering::Relaxed);
    }

    /// The hooks' counters now (the broker adds what rmqtt counts).
    pub fn snapshot(&self) -> TrafficCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TrafficCounts {
            received_qos0: load(&self.received[0]),
            received_qos1: load(&self.received[1]),
            received_qos2: load(&self.received[2]),
            received_bytes: load(&self.received_bytes),
            connects_accepted: load(&self.connects),
            authentication_failures: AUTHENTICATION_FAILURES
                .iter()
                .zip(&self.authentication_failures)
                .map(|(reason, count)| ((*reason).to_owned(), load(count)))
                .collect(),
            authorization: Action::ALL
                .iter()
                .map(|action| {
                    let row = &self.decisions[*action as usize];
                    (action.name().to_owned(), Decisions { allowed: load(&row[0]), denied: load(&row[1]) })
                })
                .collect(),
            ..TrafficCounts::default()
        }
    }
}

/// Allowed and denied decisions of one action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
}

/// The traffic counters since the host started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficCounts {
    /// Publishes received at QoS 0.
    pub received_qos0: u64,
    /// Publishes received at QoS 1.
    pub received_qos1: u64,
    /// Publishes received at QoS 2.
    pub received_qos2: u64,
    /// Topic and payload bytes of the publishes received.
    pub received_bytes: u64,
    /// CONNECTs accepted.
    pub connects_accepted: u64,
    /// PUBLISH packets written to subscribers at QoS 0.
    pub sent_qos0: u64,
    /// PUBLISH packets written to subscribers at QoS 1.
    pub sent_qos1: u64,
    /// PUBLISH packets written to subscribers at QoS 2.
    pub sent_qos2: u64,
    /// Topic and payload bytes of the packets sent.
    pub sent_bytes: u64,
    /// Publishes that no subscription matched.
    pub nonsubscribed: u64,
    /// Subscriptions held by sessions.
    pub subscriptions: u64,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: u64,
    /// Failed authentications by reason (every reason listed, from zero).
    pub authentication_failures: BTreeMap<String, u64>,
    /// Authorization decisions by action (`connect`, `subscribe`, `publish`).
    pub authorization: BTreeMap<String, Decisions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_under_their_labels_and_unknown_ones_are_ignored() {
        let traffic = TrafficCounters::default();
        traffic.received(1, 10);
        traffic.received(1, 5);
        traffic.received(7, 1);
        traffic.authentication_failed("unknown_certificate");
        traffic.authentication_failed("not a reason");
        traffic.decided(Action::Publish, true);
        traffic.decided(Action::Publish, false);
        traffic.decided(Action::Subscribe, false);
        let counts = traffic.snapshot();
        assert_eq!((counts.received_qos0, counts.received_qos1, counts.received_bytes), (0, 2, 16));
        assert_eq!(counts.authentication_failures["unknown_certificate"], 1);
        assert_eq!(counts.authentication_failures.values().sum::<u64>(), 1);
        assert_eq!(counts.authentication_failures.len(), AUTHENTICATION_FAILURES.len());
        assert_eq!(counts.authorization["publish"], Decisions { allowed: 1, denied: 1 });
        assert_eq!(counts.authorization["subscribe"], Decisions { allowed: 0, denied: 1 });
        assert_eq!(counts.authorization["connect"], Decisions::default());
    }
}
