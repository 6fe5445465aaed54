//! Shared subscriptions (`$share/GROUP/FILTER`, MQTT 5): which member of a group gets a message.
//!
//! rmqtt parses shared subscriptions and groups their members, but its default chooser
//! supports none (`is_supported` is false, so `$share/...` would be an ordinary, never-matching
//! filter). [`RoundRobin`] gives each message to the next member that is connected, in turn;
//! when no member is connected it gives it to the next one anyway, whose persistent session
//! queues it (an offline clean session drops it, counted, as for any subscriber). Members are
//! authorized on `FILTER` by the subscribe hook. Lives inside the broker.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions, TopicName,
};

/// Round-robin over a group's connected members (one counter for all groups: fair enough for
/// each, as every message advances it once).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

/// Index of the member to deliver to: the next connected one from `start`, else `start`.
pub fn pick(online: &[bool], start: usize) -> Option<(usize, bool)> {
    let n = online.len();
    if n == 0 {
        return None;
    }
    (0..n).map(|k| (start + k) % n).find(|i| online[*i]).map(|i| (i, true)).or(Some((start % n, false)))
}

type Member = (NodeId, ClientId, SubscriptionOptions, Option<Vec<SubscriptionIdentifier>>, Option<IsOnline>);

#[async_trait]
impl SharedSubscription for RoundRobin {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        _publisher_id: &Id,
        _topic: &TopicName,
        members: &[Member],
    ) -> Option<(usize, IsOnline)> {
        let online: Vec<bool> = members.iter().map(|m| m.4.unwrap_or(true)).collect();
        pick(&online, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_members_take_turns_and_an_offline_one_is_skipped() {
        assert_eq!(pick(&[true, true, true], 0), Some((0, true)));
        assert_eq!(pick(&[true, true, true], 4), Some((1, true)));
        assert_eq!(pick(&[true, false, true], 1), Some((2, true)), "the offline member is skipped");
        assert_eq!(pick(&[false, false], 3), Some((1, false)), "nobody online: the next one queues it");
        assert_eq!(pick(&[], 0), None);
        assert_eq!(pick(&[true], usize::MAX), Some((0, true)));
    }
}
